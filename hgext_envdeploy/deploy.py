# deploy.py - the deploy plan and its steps
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""A deploy, in the order a reader can follow on one screen.

Every host, in parallel and over one shell session each::

  connect -> enter path -> lock -> record state (revision, manual edits
  saved as a patch, migration state) -> pull -> update -> migrate ->
  reload -> check

and then, once every started host has finished (so that the verdict is
known everywhere)::

  [roll back, if the deploy failed] -> journal -> unlock

When a step fails on a host, no new host starts.  With ``onfailure =
rollback`` (the default) the failed host and every host this deploy had
changed are rolled back (migrations first, with the new code still
checked out; then the code; then reload), so the environment is never left
with mixed versions.  The changeset is resolved once, locally, before any
host starts: every host ends at the same changeset, even if someone pushes
meanwhile.
"""

import threading

from mercurial.i18n import _
from mercurial import error, logcmdutil, node as nodemod, pycompat
from mercurial.utils import urlutil

from . import config, migrations, rollback
from .run import Run, report
from .shell import ShellError, quote
from .target import HostResult, Interrupted, StepFailed


def resolve(repo, env, rev=None):
    """The changeset to deploy: the branch's single head, or ``rev``."""
    branch = env.branch
    if rev:
        ctx = logcmdutil.revsingle(repo, rev)
        if ctx.branch() != branch:
            raise error.InputError(
                _(b"revision %s is on branch '%s', not on '%s'")
                % (ctx, ctx.branch(), branch),
                hint=_(b"environment '%s' deploys branch '%s'")
                % (env.name, branch),
            )
        return ctx
    if branch not in repo.branchmap():
        raise error.InputError(
            _(b"branch '%s' of environment '%s' does not exist here")
            % (branch, env.name),
            hint=_(b"create it with 'hg branch %s' and commit, or pull it")
            % branch,
        )
    heads = repo.branchmap().branchheads(branch, closed=False)
    if len(heads) > 1:
        raise error.StateError(
            _(b"branch '%s' has %d heads: %s")
            % (branch, len(heads),
               b', '.join(nodemod.short(h) for h in heads)),
            hint=_(b"merge them first ('hg merge'), or deploy one with -r"),
        )
    if not heads:
        raise error.StateError(
            _(b"branch '%s' has no open head") % branch,
            hint=_(b'reopen it, or deploy a changeset with -r'),
        )
    return repo[heads[0]]


class Deploy(Run):
    """Deploy ``ctx`` to every host of ``env``."""

    kind = b'deploy'
    journaltail = 5  # enough to find the last deploy, as a rule
    hgserver = True  # the state is read next

    def __init__(self, ui, repo, env, ctx, settings, dryrun=False,
                 breaklock=False, trigger=None):
        super().__init__(ui, env, settings, dryrun, breaklock)
        self.repo = repo
        self.trigger = trigger
        self.node = ctx.hex()
        self._failures = 0
        self._countlock = threading.Lock()
        self.stopped = threading.Event()

    def run(self):
        """Deploy to all hosts; return the list of :class:`HostResult`.

        Every host is reached, locked and read before any host changes: a
        host that is down (beyond ``maxfail``) stops the deploy with nothing
        changed anywhere.  Then hosts go in batches of ``serial`` (all at
        once by default); a batch starts only while the failures so far are
        within ``maxfail``.  Ctrl-C starts no new host or step, lets running
        steps finish within ``[envdeploy] grace`` seconds, then journals
        ``interrupted`` and unlocks every host it still can.
        """
        results = [HostResult(h) for h in self.env.hosts]
        try:
            self.foreach(results, self._prepare, _(b'connecting'))
            # In this thread, once per revision the hosts are at: the
            # repository is not for several threads at once.
            self._touched = {
                r.state.parent: migrations.touched(
                    self.repo, self.env, r.state.parent, self.node)
                for r in results if r.state is not None
            }
            if not self.dryrun:
                for batch in batches(results, self.env.serial):
                    self.foreach(batch, self._start, _(b'deploying'))
            stopped = self.stopped.is_set()
            self.foreach(results, lambda r: self._end(r, stopped),
                         _(b'rolling back') if stopped else _(b'finishing'))
        except KeyboardInterrupt:
            for r in results:
                if r.outcome in (b'pending', b'prepared'):
                    r.fail(r.current, _(b'interrupted') if r.steps
                           else _(b'interrupted before any change'))
                    r.outcome = b'interrupted'
                self.finish(r, self._record(r))
        return results

    def _counted(self, result):
        """Count a failed host; stop the deploy past ``maxfail``."""
        if result.ok or result.outcome == b'prepared':
            return
        with self._countlock:
            self._failures += 1
            if self._failures > self.env.maxfail:
                self.stopped.set()

    def _prepare(self, result):
        self.guarded(result, self._reach)
        self._counted(result)

    def _start(self, result):
        if result.outcome != b'prepared':
            return
        if self.stopped.is_set() or self.cancel.is_set():
            result.outcome = b'untouched'
            result.message = _(b'not started: the deploy stopped')
            return
        result.outcome = b'pending'
        self.guarded(result, self._deploy)
        self._counted(result)

    def _reach(self, result):
        """Connect, lock, read the state; print the plan on a dry run."""
        session = self.open(result)
        if session is None:
            return
        result.state = session.state(self.node)
        result.fromnode = result.state.parent
        result.dirty = result.state.dirty
        result.tonode = self.node
        if self.dryrun:
            steps = self._stepscripts(session, result.state.present)
            self._plan(result, [(n, s and session.display(s))
                                for n, s in steps])
        else:
            result.outcome = b'prepared'

    def _record(self, result):
        """The journal record, or None when there is nothing to say."""
        if self.dryrun or result.outcome in (b'untouched', b'prepared'):
            return None
        if self.trigger:
            return self.record(result, trigger=self.trigger)
        return self.record(result)

    def _stepscripts(self, session, have):
        """The steps as (name, script); None for a step not configured."""
        pull = None
        if not have:
            pull = (b'pull', b'-r', self.node)
            if self.env.source:
                pull += (b'--', self.env.source)
        return [
            (b'pull', pull),
            (b'update', session.update(self.node)),
            (b'migrate', session.command(b'migrate')),
            (b'reload', session.command(b'reload')),
            (b'check', session.command(b'check')),
        ]

    def _deploy(self, result):
        session = result.session
        host = result.host
        state = result.state
        session.saveedits(result, self.id, self.repo)  # before the steps
        steps = self._stepscripts(session, state.present)
        if (state.present and state.parent == self.node and not state.dirty
                and self._deployedhere(session)):
            # Converge: nothing to change, but the health check runs.
            self.say(host, _(b'already at %s') % self.node[:12])
            steps = [s for s in steps if s[0] == b'check']
            result.outcome = b'unchanged'
        for name, script in steps:
            if script is None:
                continue
            if self.cancel.is_set():
                result.current = name
                raise Interrupted()
            if name == b'migrate':
                if self._touched[state.parent]:
                    # Read with the new code (it knows every app) before
                    # the migrations run: what a rollback returns to.
                    listing = session.migrations()
                    if listing is not None:
                        result.migrations['before'] = migrations.latest(
                            listing)
                else:
                    result.migrations['unchanged'] = True
            try:
                session.step(result, name, script, self.printer(host))
            except StepFailed as exc:
                if name == b'pull' and b'unknown revision' in exc.output:
                    exc.message = (_(b'changeset %s is not in the source')
                                   % self.node[:12])
                    exc.hint = (_(b'push it there first (hg push -r %s)')
                                % self.node[:12])
                raise
        if result.outcome == b'pending':
            result.outcome = b'ok'

    def _deployedhere(self, session):
        """Whether the journal says this changeset was deployed here.

        A clone updated by hand (or by envsetup) is at the changeset but
        never migrated: it gets the full deploy.
        """
        records = session.tail or []
        if len(records) >= self.journaltail and not _lastdeploy(records):
            records = session.journal(tail=200)  # a run of failures
        last = _lastdeploy(records)
        return last is not None and last.get('to') == self.node.decode('ascii')

    def _plan(self, result, steps):
        host = result.host
        self.say(host, _(b'at %s%s, would deploy %s')
                 % (result.fromnode and result.fromnode[:12] or b'(empty)',
                    _(b' with %d edited files') % len(result.dirty)
                    if result.dirty else b'',
                    self.node[:12]))
        environ = self.env.environ
        if environ:
            # Secrets go before quoting: quoted, a value is no longer found.
            self.say(host, b'  env: %s' % b' '.join(
                b'%s=%s' % (k, config.MASK if k in self.env.secret
                            else quote(v))
                for k, v in sorted(environ.items())))
        for name, script in steps:
            if script is None:
                if name == b'pull':
                    self.say(host, _(b'  pull: skipped, changeset present'))
                continue
            if name in (b'migrate', b'reload', b'check'):
                script = self.env.values[name]
            elif name == b'pull' and self.env.source:
                # Show the source as Mercurial shows URLs: no password.
                script = script.replace(
                    quote(self.env.source),
                    quote(urlutil.hidepassword(self.env.source)))
            self.say(host, b'  %s: %s' % (name, script))
        result.outcome = b'planned'

    def _end(self, result, stopped):
        """Roll back if this host must go back; journal; unlock.

        A host goes back when it failed after changing, or when the deploy
        stopped (more failures than ``maxfail``) and it had changed.
        """
        session = result.session
        if (not self.dryrun and session is not None and session.locked
                and result.changed and self.env.onfailure == b'rollback'
                and (stopped or not result.ok)):
            self._undo(result)
        if result.outcome == b'prepared':
            result.outcome = b'untouched'
            result.message = _(b'not started: the deploy stopped')
        self.finish(result, self._record(result))

    def _undo(self, result):
        host = result.host
        before = result.migrations.get('before')
        if result.migrations.get('unchanged'):
            before = {}  # no migration file changed: nothing to revert
        result.rollback = {'to': result.fromnode, 'steps': [], 'reverted': []}
        if result.ok:
            result.outcome = b'rolledback'
            result.message = _(b'the deploy failed on another host')
        self.say(host, _(b'rolling back to %s')
                 % (result.fromnode and result.fromnode[:12] or b'(empty)'),
                 'warn')
        try:
            rollback.revert(self, result, result.fromnode, before,
                            result.rollback, check=False)
            result.rollback['outcome'] = 'ok'
        except (StepFailed, ShellError) as exc:
            result.rollback['outcome'] = 'failed'
            msg = getattr(exc, 'message', pycompat.bytestr(str(exc)))
            result.rollback['message'] = msg
            result.message += _(b'; ROLLBACK FAILED: %s') % msg
            self.say(host, _(b'rollback FAILED: %s') % msg, 'warn',
                     b'envdeploy.failed')


def _lastdeploy(records):
    """The newest record that left its host deployed, or None."""
    for record in reversed(records):
        if record.get('outcome') in ('ok', 'unchanged'):
            return record
    return None


def deployenv(ui, repo, name, rev=None, dryrun=False, breaklock=False,
              opts=None, trigger=None):
    """Deploy environment ``name`` as ``hg envdeploy`` does; return 0.

    The one entry point for the command, ``envmerge --deploy`` and the
    hooks, so that all of them lock, journal and report the same way.
    ``trigger`` (the hooks) goes into the journal records as it is.
    Raises error.Abort naming the failed hosts when any host failed.
    """
    env = config.load(ui, name)
    settings = config.settings(ui)
    ctx = resolve(repo, env, rev)
    ui.status(
        _(b'%s %s (%s) to %s: %s\n')
        % (_(b'checking deploy of') if dryrun else _(b'deploying'),
           ctx, env.branch, env.name, env.describe())
    )
    run = Deploy(ui, repo, env, ctx, settings, dryrun=dryrun,
                 breaklock=breaklock, trigger=trigger)
    return report(ui, env, run.run(), opts or {}, b'deploy')


def batches(items, serial):
    """Split ``items`` by ``serial``: b'' (one batch), b'N' or b'N%'."""
    if not serial:
        return [items]
    if serial.endswith(b'%'):
        size = -(-len(items) * int(serial[:-1]) // 100)
    else:
        size = int(serial)
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]
