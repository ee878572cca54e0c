# commands.py - the hg commands of the extension
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Thin command wrappers: parse options, call the deploy logic, report.

Only this module and config.py load with the extension; the logic is
imported when a command runs, so plain hg commands stay as fast as without
the extension.
"""

import importlib

from mercurial.i18n import _
from mercurial import cmdutil, demandimport, pycompat, registrar

cmdtable = {}
command = registrar.command(cmdtable)


def logic(name):
    """Import one of our modules, and all it imports, for real.

    Deploys run hosts in threads, and a module left lazy by Mercurial's
    demandimport, first touched by two threads at once, can look empty to
    one of them ("module has no attribute").
    """
    with demandimport.deactivated():
        return importlib.import_module('.' + name, __package__)


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
    return logic('deploy').deployenv(
        ui, repo, env, rev=opts.get('rev'), dryrun=opts.get('dry_run'),
        breaklock=opts.get('break_lock'), opts=pycompat.byteskwargs(opts),
    )


@command(
    b'envrollback',
    [
        (b'', b'to', b'', _(b'return to this journal record (see hg envlog)'),
         _(b'ID')),
        (b'r', b'rev', b'', _(b'return to this changeset'), _(b'REV')),
        (b'', b'migration', [],
         _(b'migration target, as APP.NNNN or APP.zero (with -r or --to)'),
         _(b'APP.NNNN')),
        (b'f', b'force', False,
         _(b'roll back even when the hosts disagree or one cannot be read')),
        (b'', b'break-lock', False,
         _(b'remove a deploy lock left by a dead deploy (DANGEROUS)')),
    ]
    + cmdutil.dryrunopts
    + cmdutil.formatteropts,
    _(b'[--to ID | -r REV [--migration APP.NNNN]...] [-n] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envrollback(ui, repo, env, **opts):
    """return an environment to an earlier deployment

    On every host of ENV: revert the database migrations to the state the
    earlier deployment left (while the current code, which holds the
    migration files, is still checked out), then ``hg update -C`` to that
    deployment's changeset, then run ``reload`` and ``check``.  The journal
    gets a ``rollback`` record.

    Without options, the target is the deployment before the current one in
    each host's journal (rolling back twice goes two deployments back).
    ``--to ID`` picks a journal record; ``-r REV`` a changeset (resolved
    here to its full hash); ``--migration APP.NNNN`` (repeatable, e.g.
    ``bar.0007`` or ``bar.zero``) sets migration targets explicitly.

    All hosts are locked and read first.  When their journals disagree on
    the target, or a host cannot be read, nothing changes unless --force.
    A migration that cannot be reversed stops the rollback of its host
    before the code is touched, with the schema put back.

    With -n/--dry-run, show per host which migrations would be unapplied, in
    which order, and the target changeset; change nothing.
    """
    return logic('rollback').rollbackenv(
        ui, repo, env, rev=opts.get('rev'), toid=opts.get('to'),
        migration=opts.get('migration'), force=opts.get('force'),
        dryrun=opts.get('dry_run'), breaklock=opts.get('break_lock'),
        opts=pycompat.byteskwargs(opts),
    )
