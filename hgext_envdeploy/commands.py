# commands.py - the hg commands of the extension
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Thin command wrappers: parse options, call the deploy logic, report."""

from mercurial.i18n import _
from mercurial import cmdutil, error, pycompat, registrar

from . import config, deploy

cmdtable = {}
command = registrar.command(cmdtable)


@command(
    b'envdeploy',
    [
        (b'r', b'rev', b'', _(b'deploy this changeset of the branch'), _(b'REV')),
        (b'', b'break-lock', False,
         _(b'remove a deploy lock left by a dead deploy (DANGEROUS)')),
    ]
    + cmdutil.dryrunopts
    + cmdutil.formatteropts,
    _(b'[-r REV] [-n] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envdeploy(ui, repo, env, **opts):
    """deploy the head of an environment's branch to its hosts

    On every host of ENV (in parallel, at most ``[envdeploy] concurrency``
    at a time, one SSH connection each; on this machine when ENV has no
    hosts): take the deploy lock, save manual edits of the target's working
    copy as a patch under its ``.hg/envdeploy/patches/``, pull the
    changeset, ``hg update -C`` to it, run ``migrate``, ``reload`` and
    ``check``, and append what happened to the target's journal.

    The changeset is the single head of the environment's branch in this
    repository, or REV, which must be on that branch.  A host already at
    that changeset with a clean working copy only runs ``check``.

    With -n/--dry-run, show each host's current revision and the commands
    that would run, and change nothing.

    Exits 0 when every host succeeded; otherwise aborts naming each failed
    host and step, after showing the end of the failing command's output.
    """
    environment = config.load(ui, env)
    settings = config.settings(ui)
    ctx = deploy.resolve(repo, environment, opts.get('rev'))
    dryrun = opts.get('dry_run')
    ui.status(
        _(b'%s %s (%s) to %s: %s\n')
        % (_(b'checking deploy of') if dryrun else _(b'deploying'),
           ctx, environment.branch, environment.name, environment.describe())
    )
    run = deploy.Deploy(ui, repo, environment, ctx, settings, dryrun=dryrun,
                        breaklock=opts.get('break_lock'))
    results = run.run()
    return report(ui, environment, results, pycompat.byteskwargs(opts))


def report(ui, env, results, opts):
    """The summary: one line per host, then the verdict; exit status."""
    with ui.formatter(b'envdeploy', opts) as fm:
        for r in results:
            fm.startitem()
            fm.data(env=env.name, host=r.host.name,
                    outcome=r.outcome, node=r.tonode or b'',
                    fromnode=r.fromnode or b'', failed=r.failed or b'',
                    message=r.message, duration=round(r.duration, 3))
            if fm.isplain():
                label = b'envdeploy.ok' if r.ok else b'envdeploy.failed'
                fm.plain(b'%s: %s\n' % (r.host.name, _describe(r)),
                         label=label)
    failed = [r for r in results if not r.ok]
    if not failed:
        return 0
    for r in failed:
        if r.output:
            tail = r.output.splitlines()[-deploy.FAILURE_TAIL :]
            ui.warn(_(b'%s: output of %s:\n') % (r.host.name, r.failed))
            for line in tail:
                ui.warn(b'%s:   %s\n' % (r.host.name, line))
        if r.hint:
            ui.warn(_(b'%s: (%s)\n') % (r.host.name, r.hint))
    raise error.Abort(
        _(b'deploy of %s failed on %d of %d hosts: %s')
        % (env.name, len(failed), len(results),
           b', '.join(b'%s (%s)' % (r.host.name, r.failed or r.outcome)
                      for r in failed)),
    )


def _describe(r):
    if r.outcome == b'ok':
        return _(b'deployed %s (%.1fs)') % (r.tonode[:12], r.duration)
    if r.outcome == b'planned':
        return _(b'would deploy %s') % r.tonode[:12]
    if r.outcome == b'unchanged':
        return _(b'already at %s, check passed (%.1fs)') % (r.tonode[:12],
                                                          r.duration)
    if r.outcome == b'unreachable':
        return _(b'unreachable: %s') % r.message
    return _(b'FAILED at %s: %s') % (r.failed or r.outcome, r.message)
