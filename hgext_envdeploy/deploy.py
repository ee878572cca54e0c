# deploy.py - the deploy plan and its steps
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""A deploy, as :mod:`.flow` lists its steps.

Every phase runs on its hosts in parallel, over the one shell session each
host has for the whole run; :class:`Deploy` walks :data:`.flow.PHASES` and
:data:`.flow.STEPS`, and a layout (:class:`InPlace`: ``path`` is the
working copy that serves) carries out each step.  The dry run lists the
same steps with the commands they would run.

Hosts go in batches of ``serial`` (the migration host in the first one).
When a step fails on a host, no new host starts; a failed migration stops
the deploy whatever ``maxfail`` says (its database is shared).  Then the
failure path (:data:`.flow.UNDO`) puts back what must go back, and every
host journals its outcome and is unlocked.  The changeset is resolved
once, locally, before any host starts: every host ends at the same
changeset, even if someone pushes meanwhile.
"""

import threading

from mercurial.i18n import _
from mercurial import error, logcmdutil, node as nodemod
from mercurial.utils import urlutil

from . import (config, confirm, direction, edits, events, flow, freeze, heads,
               journal, migrationplan, migraterunner, migrations, promotion,
               records, releases, rollback, transfer)
from .run import Run, report
from .shell import quote
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
    return heads.envhead(
        repo, env, _(b"merge them first ('hg merge'), or deploy one with -r"))


class Deploy(Run):
    """Deploy ``ctx`` to every host of ``env``."""

    kind = journal.DEPLOY
    # Journal lines read with the lock: enough to find the last deploy and
    # the state it left, as a rule (a run writes two or three lines).
    journaltail = 12
    hgserver = True  # the state is read next
    _warm = frozenset()  # hosts starting a warm migration runner (run)
    _converging = frozenset()  # hosts the records say are deployed (run)

    def __init__(self, ui, repo, env, ctx, settings, dryrun=False,
                 breaklock=False, trigger=None, force=False, redeploy=False,
                 irreversible=False):
        super().__init__(ui, env, settings, dryrun, breaklock)
        self.repo = repo
        self.irreversible = irreversible  # deploy past irreversible = refuse
        self.plans = {}
        self.trigger = trigger
        if trigger:  # a push: who pushed, not who runs the central hg
            self.user = (trigger.get('username') or trigger.get('pusher')
                         or self.user)
        self.force = force
        self.redeploy = redeploy
        self.node = ctx.hex()
        self.layout = releases.choose(env, InPlace())
        self._failures = 0
        self._countlock = threading.Lock()
        self.stopped = threading.Event()

    def warmscript(self, result):
        if result.host.spec in self._warm:
            return migraterunner.warmscript(self, result.host)
        return None

    def serverenviron(self):
        if releases.enabled(self.env):
            return releases.serverenviron(self.id)  # the release it makes
        return None

    def run(self):
        """Deploy to all hosts; return the list of :class:`HostResult`.

        Ctrl-C starts no new host or step, lets running steps finish
        within ``[envdeploy] grace`` seconds, then journals ``interrupted``
        and unlocks every host it still can.
        """
        results = [HostResult(h) for h in self.env.hosts]
        self.groupresults(results)
        # In this thread, as _touched below, from this repository's
        # records: which hosts start a warm migration runner with their
        # lock, which are expected to be at the changeset already.
        latest = records.latestof(self.repo, self.env.name,
                                  [r.host.spec for r in results])
        self._warm = migraterunner.predict(self, results, latest)
        self._converging = {
            r.host.spec for r in results
            if latest.get(r.host.spec, {}).get('node') == self.node}
        try:
            self.foreach(results, self._prepare, _(b'connecting'))
            freeze.guard(self, results)
            direction.guard(self, results)
            refuseedits(self, results)
            migrationplan.plandeploy(self, results)
            # In this thread, once per revision the hosts are at: the
            # repository is not for several threads at once.
            self._touched = {
                r.state.parent: migrations.touched(
                    self.repo, self.env, r.state.parent, self.node)
                for r in results if r.state is not None
            }
            if self.dryrun:
                self._new = {parent: newmigrations(self.repo, parent,
                                                   self.node)
                             for parent in self._touched}
                self.foreach([r for r in results if r.outcome == b'prepared'],
                             lambda r: self.guarded(r, self._plan),
                             _(b'planning'))
            else:
                for batch in batches(self.migratorsfirst(results),
                                     self.env.serial):
                    for phase, topic, which in flow.PHASES:
                        self.foreach(self.select(batch, which),
                                     lambda r, p=phase: self._step(r, p),
                                     topic)
            stopped = self.stopped.is_set()
            self._undo(results, stopped)
            self.foreach(results, self._end, _(b'finishing'))
        except KeyboardInterrupt:
            for r in results:
                if r.outcome in (b'pending', b'prepared'):
                    r.fail(r.current, _(b'interrupted') if r.steps
                           else _(b'interrupted before any change'))
                    r.outcome = b'interrupted'
                self.finish(r, self._record(r))
        return results

    def _counted(self, result):
        """Count a failed host; stop the deploy past ``maxfail``, or when
        the database its migration host migrates must go back."""
        if result.ok or result.outcome in (b'prepared', b'pending'):
            return
        with self._countlock:
            self._failures += 1
            if (self._failures > self.env.maxfail
                    or result.failed == b'migrate' or migrated(result)):
                self.stopped.set()

    def _prepare(self, result):
        self.guarded(result, self._reach)
        self._counted(result)

    def _step(self, result, phase):
        """One phase on one host, if the host is still deploying."""
        if result.outcome == b'prepared':
            if self.stopped.is_set() or self.cancel.is_set():
                return
            result.outcome = b'pending'
        if result.outcome != b'pending':
            return
        why = phase == b'update' and self.blocked(result)
        if why:
            result.outcome = b'untouched'
            result.message = why
            return
        if self.stopped.is_set():
            if not result.changed:
                result.outcome = b'untouched'
                result.message = _(b'nothing changed: the deploy stopped')
            return  # a changed host waits for the verdict (see _undo)
        if self.cancel.is_set():
            result.current = result.current or phase
            result.fail(result.current, _(b'interrupted before this step'))
            result.outcome = b'interrupted'
            return
        self.guarded(result, lambda r: self._phase(r, phase))
        self._counted(result)

    def _phase(self, result, phase):
        """The steps of ``phase`` on one host, in order (see flow.py)."""
        for index, step in enumerate(self.steps(result, phase)):
            if index and self.cancel.is_set():
                result.current = step.name
                raise Interrupted()
            if result.outcome != b'pending':
                return
            self.layout.run(self, result, step)
        if phase == flow.PHASES[-1][0] and result.outcome == b'pending':
            result.outcome = b'unchanged' if result.converged else b'ok'
            if self.migrator(result) is not result:
                result.migrations.update(self.migrator(result).migrations)

    def steps(self, result, phase=None):
        """The steps ``result``'s host runs (in ``phase``), in order."""
        out = []
        for name, topic, which in flow.PHASES:
            if phase not in (None, name) or not self.select([result], which):
                continue
            out.extend(s for s in flow.phasesteps(name)
                       if s.converged or not result.converged)
        return out

    def blocked(self, result):
        """Why ``result``'s host must not take the new code, or None: its
        database was not migrated."""
        migrator = self.migrator(result)
        if migrator is result or not self.env.migrate or migrator.converged:
            return None
        if any(s['name'] == b'migrate' and s['status'] == 0
               for s in migrator.steps):
            return None
        return _(b'nothing changed: the migration host %s did not '
                 b'migrate') % migrator.host.name

    def _reach(self, result):
        """Connect, lock, read the state; whether the host is deployed."""
        session = self.open(result)
        if session is None:
            return
        if self.dryrun:
            # No lock, so no journal read with it: the converge check asks.
            session.tail = session.journal(tail=self.journaltail)
        # Where the records say the host is deployed already, the command
        # server ends with the state (nothing but check will run there):
        # the round trip that would stop it before check is saved.
        result.state = state = session.readstate(
            self.node, self._expected(session),
            last=result.host.spec in self._converging and not self.redeploy)
        result.fromnode = state.parent
        result.dirty = state.dirty
        result.tonode = self.node
        result.outcome = b'prepared'
        if (state.present and state.parent == self.node and not state.dirty
                and not self.redeploy and self._deployedhere(session)):
            # Converge: nothing to change, but the health check runs.
            self.say(result.host, _(b'already at %s') % self.node[:12])
            result.converged = True
            result.migrations.update(self.carried(session))

    def _expected(self, session):
        """The files the update will create, if the host is where its
        journal says (readstate asks whether they exist already)."""
        last = _lastdeploy(session.tail or [])
        if (self.repo is None or last is None or not last.get('to')
                or last['to'] == self.node):
            return ()
        return edits.created(self.repo, last['to'], self.node) or ()

    def _record(self, result):
        """The journal record, or None when there is nothing to say."""
        if self.dryrun or (result.outcome in (b'untouched', b'prepared')
                           and not result.begun):
            return None
        return self.record(result)

    # -- what the layout's steps share

    def pullfailed(self, exc):
        """``exc`` of a failed pull, told as the user can act on it."""
        if b'unknown revision' in exc.output:
            exc.message = (_(b'changeset %s is not in the source')
                           % self.node[:12])
            exc.hint = (_(b'push it there first (hg push -r %s)')
                        % self.node[:12])
        return exc

    def migrate(self, result, script):
        """On the migration host, after the update: migrate the database,
        reading the migration state around it."""
        session = result.session
        host = result.host
        found = result.migrations
        found['on'] = host.spec
        carried = self.carried(session)
        if self._touched[result.state.parent] or carried.get('after') is None:
            # Read with the new code (it knows every app) before the
            # migrations run: what a rollback returns to.  In the Django
            # that then migrates, where it can (migraterunner).
            runner = migraterunner.start(self, result)
            listing = runner.listing if runner else session.migrations()
            if listing is not None:
                found['before'] = migrations.latest(listing)
                (runner.progress if runner else self.progress)(
                    result, {'migrations': {'on': host.spec,
                                            'before': found['before']}})
            script = runner or script
        else:
            found['unchanged'] = True
            found['before'] = carried['after']
        migrationplan.backup(self, result)
        try:
            out = session.step(result, b'migrate', script, self.printer(host))
        except StepFailed as exc:
            self._migratefailed(result, exc.output)
            raise
        self._migrated(result, out)

    def _migrated(self, result, output):
        """After a successful migrate: what it applied, the state it left."""
        found = result.migrations
        done = migrations.progress(output)
        if done is not None:
            found['applied'] = done[0]
        if done is not None and found.get('before') is not None:
            found['after'] = migrations.advance(found['before'], done[0])
            return
        listing = result.session.migrations()  # not Django's output: read
        found['after'] = listing and migrations.latest(listing)
        if done is None and listing and found.get('before') is not None:
            found['applied'] = migrations.appliedsince(found['before'], listing)

    def _migratefailed(self, result, output):
        """After a failed migrate: read the state again, say what is left."""
        found = result.migrations
        done = migrations.progress(output)
        if done is not None:
            found['applied'] = done[0]
            if done[1] and result.session.halfway(done[1]) is not False:
                # Not atomic, or no transactional DDL: part of it may be
                # in the database, and no rollback can tell.
                found['halfway'] = [done[1]]
                self.say(result.host, _(b'%s stopped halfway: it is not '
                                        b'atomic, or the database has no '
                                        b'transactional DDL; part of it may '
                                        b'be in the database')
                         % done[1], 'warn',
                         b'envdeploy.failed')
        try:
            listing = result.session.migrations()
        except StepFailed:
            listing = None
        found['after'] = listing and migrations.latest(listing)

    def update(self, result, script):
        """hg update, its hook journaling the run as begun (written ahead)."""
        session = result.session
        result.begun = True  # the end line follows whatever happens
        try:
            session.step(result, b'update', script, self.printer(result.host))
        except StepFailed as exc:
            if _HOOKFAILED in exc.output:
                # Its hook could not write ahead: the update never began.
                result.steps[-1]['name'] = b'journal'
                exc.step = b'journal'
                exc.message = _(b'could not write the journal: nothing '
                                b'changed')
            raise

    # -- reading the journal read with the lock

    def _deployedhere(self, session):
        """Whether the journal says this changeset was deployed here.

        A clone updated by hand (or by envsetup) is at the changeset but
        never migrated: it gets the full deploy.  So does a host whose last
        run never finished: nothing is inferred from it.
        """
        records = self.records(session)
        if records and records[-1].get('outcome') == journal.UNFINISHED:
            return False
        last = _lastdeploy(records)
        return last is not None and last.get('to') == self.node

    def records(self, session):
        """The host's last runs, read with the lock; further back (once)
        when those hold no deploy."""
        records = session.tail or []
        if (len(records) * 2 >= self.journaltail
                and not _lastdeploy(records)):
            # A run of failures: read further back, and keep it, since
            # the converge check and the carried state both ask.
            records = session.tail = session.journal(tail=400)
        return records

    def carried(self, session):
        """The migration state the last run on this host left, to carry
        forward; ``{}`` when it is not known (or that run never ended)."""
        after = journal.leftstate(self.records(session))
        return {} if after is None else {'after': after}

    # -- the dry run: the same steps, said instead of done

    def _plan(self, result):
        """Say what the real run would do on this host, step by step."""
        session = result.session
        host = result.host
        at = result.fromnode and result.fromnode[:12] or b'(empty)'
        changed, untracked = [], []
        if result.converged:
            self.say(host, _(b'at %s, deployed there: would only check')
                     % at)
        else:
            changed, untracked = session.losses(result, self.repo)
            self.say(host, _(b'at %s%s, would deploy %s')
                     % (at, _edited(result.dirty), self.node[:12]))
        environ = self.env.environ
        if environ:
            # Secrets go before quoting: quoted, a value is no longer found.
            self.say(host, b'  env: %s' % b' '.join(
                b'%s=%s' % (k, config.MASK if k in self.env.secret
                            else quote(v))
                for k, v in sorted(environ.items())))
        planned = []
        steps = list(self.steps(result))
        for step in steps:
            name = step.name
            for line in self.layout.said(self, result, step):
                self.say(host, b'  ' + line)
            if name == b'edits':
                if changed:
                    self.say(host, _(b'  edits: would save %s as a patch and '
                                     b'discard them from the working copy')
                             % b', '.join(changed))
                if untracked:
                    self.say(host, _(b'  edits: would move aside untracked '
                                     b'%s (the update would overwrite them)')
                             % b', '.join(untracked))
                continue
            script = self.layout.script(self, result, step)
            if script is None:
                if name == b'pull':
                    self.say(host, _(b'  pull: skipped, changeset present'))
                continue
            planned.append(name)
            if name in (b'migrate', b'reload', b'check') or step.user:
                shown = self.env.command(name, host)
            else:
                shown = session.display(script)
                if name == b'pull' and self.env.source:
                    # Show the source as Mercurial shows URLs: no password.
                    shown = shown.replace(
                        quote(self.env.source),
                        quote(urlutil.hidepassword(self.env.source)))
            self.say(host, b'  %s: %s' % (name, shown))
            if name == b'migrate':
                new = self._new.get(result.fromnode)
                if new:
                    self.say(host, _(b'  migrate: would apply %s')
                             % b', '.join(new))
            if name == b'pull':
                self._planpull(result)
        for line in self.layout.said(self, result, None, after=True):
            self.say(host, b'  ' + line)
        result.planned = planned
        if result.outcome == b'prepared':
            result.outcome = b'planned'

    def _planpull(self, result):
        """Whether the pull would find the changeset in the source: the
        same question, read-only (``hg identify``)."""
        source = self.env.source or b'default'
        status, out = result.session.hgcommand(
            (b'identify', b'-r', self.node, b'--', source))
        if not status:
            return
        if self.env.source:
            # As the plan shows the source: no password.
            out = out.replace(self.env.source,
                              urlutil.hidepassword(self.env.source))
        exc = self.pullfailed(StepFailed(
            b'pull', out.strip().splitlines()[-1:] and
            self.env.mask(out.strip().splitlines()[-1]) or
            _(b'the source cannot be read'), out))
        result.fail(b'pull', exc.message, hint=exc.hint)
        result.outcome = b'wouldfail'
        self.say(result.host, _(b'  pull: would FAIL: %s') % exc.message,
                 'warn', b'envdeploy.failed')

    # -- the end: undo if needed, journal, unlock

    def _undo(self, results, stopped):
        """Roll back what must go back: migrations once, then the code.

        A host goes back when it failed after changing, or when the deploy
        stopped (more failures than ``maxfail``) and it had changed.  When
        a migration host goes back, so does every host sharing its
        database: the older schema wants the older code.
        """
        if self.dryrun or self.env.onfailure != b'rollback':
            return
        undo = [r for r in results if r.changed and r.session is not None
                and r.session.locked and (stopped or not r.ok)]
        for r in list(undo):
            if self.migrator(r) is r and migrated(r):
                undo += [o for o in self.sharing(r, results)
                         if o.changed and o not in undo
                         and o.session is not None and o.session.locked]
        if not undo or migrationplan.keepforward(self, undo):
            return
        for r in undo:
            r.rollback = {'to': r.fromnode, 'steps': [], 'reverted': []}
            if r.ok or r.outcome == b'pending':
                r.outcome = b'rolledback'
                r.message = _(b'the deploy failed on another host')
            # On the stream of the step lines it explains (see Run.say).
            self.say(r.host, _(b'rolling back to %s')
                     % (r.fromnode and r.fromnode[:12] or b'(empty)'),
                     label=b'envdeploy.failed')
        # flow.UNDO: the migrations on their hosts, then the code.
        self.foreach(self.select(undo, flow.MIGRATORS),
                     self._undomigrations, _(b'unmigrating'))
        self.foreach(undo, self._undocode, _(b'rolling back'))

    def _undomigrations(self, result):
        """The migration host: this deploy's migrations back, verified."""
        found = result.migrations
        record = result.rollback
        if not migrated(result):
            return  # nothing was migrated
        if found.get('before') is None:
            self.say(result.host, _(b'no migration state recorded for the '
                                    b'target: migrations left as they are'),
                     'warn')
            return
        if rollback.attempt(self, result, record, rollback.revertmigrations,
                            self, result, found['before'], record):
            halfway = found.get('halfway') or ()
            if halfway and record.get('outcome') != journal.PARTIAL:
                # The state reads as restored; the database may not be.
                rollback.verify(self, result, found['before'], record,
                                halfway)
        found['reverted'] = record['reverted']
        if record.get('after') is not None:
            found['after'] = record['after']

    def _undocode(self, result):
        """Every host to undo: the code back, reload, check."""
        migrator = self.migrator(result)
        record = result.rollback
        theirs = migrator.rollback or {}
        if theirs.get('outcome') == journal.FAILED:
            # The schema stayed ahead: so does the code that needs it.
            if migrator is not result:
                rollback.kept(self, result, record, _(
                    b'the migrations of %s did not go back')
                    % migrator.host.name)
            else:
                record['at'] = result.tonode if result.changed else None
            return
        if rollback.attempt(self, result, record, rollback.revertcode,
                            self, result, result.fromnode, record):
            if record.get('outcome') is None:
                record['outcome'] = journal.OK
        if theirs.get('outcome') == journal.PARTIAL and record.get(
                'outcome') == journal.OK:
            record['outcome'] = journal.PARTIAL
            record['message'] = theirs['message']
        if result.outcome == b'rolledback' and record['outcome'] != journal.OK:
            result.outcome = b'partial' if record['outcome'] == \
                journal.PARTIAL else b'failed'
            result.failed = result.failed or b'rollback'
        if migrator is not result:
            result.migrations.update(migrator.migrations)

    def _end(self, result):
        if result.outcome == b'pending':
            # Changed, then stopped by another host's failure, and left
            # so (onfailure = stop).
            result.fail(result.current, _(b'stopped after %s: the deploy '
                                          b'failed on another host')
                        % result.current)
        elif result.outcome == b'prepared':
            result.outcome = b'untouched'
            result.message = _(b'not started: the deploy stopped')
        elif result.outcome == b'untouched' and result.begun:
            result.message = result.message or _(b'nothing changed')
        self.finish(result, self._record(result))


class InPlace:
    """The steps of :data:`.flow.STEPS` where ``path`` is the working copy
    that serves: the update changes the code in place.

    ``script`` is the command a step runs on a host (shown by the dry
    run; None: nothing to run there), ``run`` carries it out.  Another
    layout (releases) supplies its own for the steps it does otherwise.
    """

    def said(self, deploy, result, step, after=False):
        """The dry run's lines about the layout around ``step`` (after
        all the steps: ``step`` None, ``after``): none in place."""
        return []

    def script(self, deploy, result, step):
        session = result.session
        name = step.name
        if name == b'edits':
            return None  # saving runs only when there are edits (see plan)
        if name == b'pull':
            if result.state.present:
                return None
            pull = (b'pull', b'-r', deploy.node)
            if deploy.env.source:
                pull += (b'--', deploy.env.source)
            return transfer.step(deploy, pull)
        if name == b'update':
            return session.update(deploy.node)
        # migrate, reload, check, and the user's before./after. steps
        return session.command(name)

    def run(self, deploy, result, step):
        session = result.session
        name = step.name
        if name == b'edits':
            session.saveedits(result, deploy.id, deploy.repo)
            return
        if name == b'update':
            deploy.update(result, session.update(deploy.node,
                                                 deploy.header(result)))
            return
        script = self.script(deploy, result, step)
        if script is None:
            return
        if name == b'migrate':
            deploy.migrate(result, script)
            return
        try:
            session.step(result, name, script, deploy.printer(result.host))
        except StepFailed as exc:
            if name == b'pull':
                raise deploy.pullfailed(exc)
            raise


# What hg says when the update's journal hook (target.update) failed.
_HOOKFAILED = b'preupdate.envdeploy hook'


def migrated(result):
    """Whether this run changed the database of ``result``'s host."""
    found = result.migrations
    return bool(found.get('applied') or found.get('halfway'))


def refuseedits(run, results):
    """With ``onedits = refuse``: stop ``run`` before any change when a
    host has manual edits, naming them (dry runs alike, as direction.guard
    does)."""
    if run.env.onedits != b'refuse':
        return
    dirty = [r for r in results if r.state is not None and r.state.dirty
             and not r.converged]
    if not dirty:
        return
    run.refuse(results, _(b'not started: manual edits on a host'))
    raise error.StateError(
        _(b'manual edits on %s')
        % b'; '.join(b'%s: %s' % (r.host.name, b', '.join(r.state.dirty))
                     for r in dirty),
        hint=_(b"nothing was changed (onedits = refuse); commit or revert "
               b"them on the host, or set onedits = save to keep them as a "
               b"patch"))


def _edited(files):
    """`` with N edited files``, or nothing.

    >>> _edited([b'a']), _edited([b'a', b'b']), _edited([])
    (b' with 1 edited file', b' with 2 edited files', b'')
    """
    if not files:
        return b''
    if len(files) == 1:
        return _(b' with 1 edited file')
    return _(b' with %d edited files') % len(files)


def newmigrations(repo, fromnode, tonode):
    """``APP.NAME`` of the migration files ``tonode`` adds to ``fromnode``
    (None: the empty working copy), as this repository knows them: what
    ``migrate`` would apply when the database is where ``fromnode`` left
    it.  None when this repository lacks ``fromnode``.
    """
    unfi = repo.unfiltered()
    try:
        new = unfi[nodemod.bin(tonode)]
        old = unfi[nodemod.bin(fromnode or nodemod.nullhex)]
    except (error.LookupError, error.RepoLookupError, TypeError, ValueError):
        return None
    added = unfi.status(old.node(), new.node()).added
    names = []
    for path in added:
        parts = path.split(b'/')
        if (len(parts) >= 3 and parts[-2] == b'migrations'
                and parts[-1].endswith(b'.py') and parts[-1][:1].isdigit()):
            names.append(b'%s.%s' % (parts[-3], parts[-1][:-3]))
    return sorted(names, key=lambda n: (n.split(b'.')[0], n))


def _lastdeploy(records):
    """The newest record that left its host deployed, or None."""
    for record in reversed(records):
        if (record.get('outcome') in journal.DEPLOYED
                and record.get('kind') != journal.EXEC):
            return record
    return None


def deployenv(ui, repo, name, rev=None, dryrun=False, breaklock=False,
              opts=None, trigger=None, force=False, redeploy=False,
              untested=False, irreversible=False, confirmed=False, via=None,
              into=None):
    """Deploy environment ``name`` as ``hg envdeploy`` does; return 0.

    The one entry point for the command, ``envmerge --deploy`` and the
    hooks, so that all of them lock, journal and report the same way.
    ``trigger`` (the hooks) goes into the journal records as it is.
    Without ``force``, a host that would go backwards stops the deploy
    before any change (see direction.py); the hooks never force.
    ``redeploy`` runs every step on a host already at the changeset too.
    Raises error.Abort naming the failed hosts when any host failed.
    ``promotefrom`` refuses a changeset not tested there, unless
    ``untested`` (see promotion.py); this repository records what the run
    left on each host (records.py).
    With ``ENV.confirm``, asks first (see confirm.py), unless a push
    started it (``trigger``) or the caller asked already (``confirmed``).
    The preenvdeploy and envdeploy hooks fire around it (events.py; ``via``
    names a caller other than the command and the hooks: ``envmerge``).
    ``into``: a nested formatter that takes the host items (envmerge -T).
    """
    env = config.load(ui, name)
    settings = config.settings(ui)
    ctx = resolve(repo, env, rev)
    ui.status(
        _(b'%s %s (%s) to %s: %s\n')
        % (_(b'checking deploy of') if dryrun else _(b'deploying'),
           ctx, env.branch, env.name, env.describe())
    )
    # Refusals that need no host come before the question.
    untested = promotion.check(ui, repo, env, ctx, untested, dryrun)
    if not (dryrun or trigger or confirmed):
        confirm.ask(ui, env, b'deploy', confirm.deployplan(env, ctx))
    deploying = Deploy(ui, repo, env, ctx, settings, dryrun=dryrun,
                 breaklock=breaklock, trigger=trigger, force=force,
                 redeploy=redeploy, irreversible=irreversible)
    deploying.untested = untested

    def finish(results):
        records.fromrun(repo, deploying, results)
        status = report(ui, env, results, opts or {}, b'deploy', into)
        migrationplan.finalnote(ui, deploying)
        return status

    # Between the preenvdeploy and envdeploy hooks.
    return events.around(ui, repo, deploying, finish, via)


def batches(items, serial):
    """Split ``items`` by ``serial``: b'' (one batch), b'N' or b'N%'.

    >>> batches([1, 2, 3, 4, 5], b'')
    [[1, 2, 3, 4, 5]]
    >>> batches([1, 2, 3, 4, 5], b'2')
    [[1, 2], [3, 4], [5]]
    >>> batches([1, 2, 3, 4, 5], b'25%')
    [[1, 2], [3, 4], [5]]
    """
    if not serial:
        return [items]
    if serial.endswith(b'%'):
        size = -(-len(items) * int(serial[:-1]) // 100)
    else:
        size = int(serial)
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]
