# rollback.py - return an environment to an earlier deployment
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Rollbacks that know the migrations.

The order is what makes a rollback work: the migrations are reverted while
the newer code (which holds the migration files) is still checked out, then
the older code is put back, then the server is reloaded.  :func:`revert`
does that on one host; the automatic rollback of a failed deploy and
``hg envrollback`` both use it.

``hg envrollback`` runs in two phases: every host is locked and read (its
journal, revision and migration state) and its target computed; only if
all hosts agree on the target (or ``--force``) are they changed.

Which migration state belongs to a deployment: each journal record holds
the state found *before* it ran (``migrations.before``), so the state a
deployment left is the ``before`` of the record that followed it.
"""

from mercurial.i18n import _
from mercurial import error, logcmdutil, node as nodemod, pycompat

from . import (config, confirm, edits, events, flow, freeze, journal,
               migrationplan, migrations, records, releases, stepenv,
               transfer)
from .run import Run, report
from .shell import ShellError
from .target import HostResult, StepFailed

OK = journal.DEPLOYED


def revertmigrations(run, result, state, record, listing=None):
    """Unapply migrations back to ``state``, with the current code; verify.

    Runs on the migration host only, while the newer code (which holds the
    migration files) is still checked out.  ``record`` receives the steps
    (``steps``), the migrations unapplied (``reverted``), the state read
    afterwards (``after``) and, when the database is not at ``state``
    after all, ``outcome: partial`` and a ``message`` naming what is left.
    A migration that cannot be reversed raises StepFailed (``outcome:
    failed``), with the schema migrated forward again: the code must then
    stay where it is.  ``listing``: the migration state as read just
    before, under the same lock (hg envrollback's plan), else read here.
    """
    session = result.session
    host = result.host
    output = run.printer(host)
    if 'to' in record:
        # A failed deploy going back: its steps now head for ``to``.
        stepenv.towards(session, record['to'])
    if listing is None:
        listing = session.migrations()
    if listing is None:
        return
    unapplied = False
    for app, migration, undo in migrations.unapplysteps(listing, state):
        unapplied = True
        run.say(host, _(b'unapplying %s')
                % b', '.join(b'%s.%s' % (app, n)
                             for n in undo))
        try:
            out = session.step(result, b'unmigrate',
                               migrations.rollbackcommand(session.env, app,
                                                          migration),
                               output, record=record['steps'])
        except StepFailed as exc:
            _putback(run, result, listing, record, exc)
            raise
        done = migrations.progress(out)
        record['reverted'].extend(
            done[0] if done else [b'%s.%s' % (app, n) for n in undo])
    # Nothing unapplied: the state just read is the state after (one
    # Django start fewer).
    verify(run, result, state, record,
           listing=None if unapplied else listing)


def _putback(run, result, listing, record, exc):
    """A migration would not go back: migrate forward again, so that the
    schema fits the code still checked out, and say how that went."""
    session = result.session
    name = migrations.irreversible(exc.output)
    if name:
        exc.message = (_(b'migration %s cannot be reversed')
                       % name)
    forward = session.command(b'migrate')
    # Forward again with the code still checked out: the host stays there.
    stepenv.towards(session, result.tonode if 'to' in record
                    else result.fromnode)
    if forward:
        session.run(forward, output=run.printer(result.host))
    record['outcome'] = journal.FAILED
    record['message'] = exc.message
    exc.hint = _(b'the rollback stopped before touching the code; '
                 b'code and schema are as they were')
    try:
        left = session.migrations()
    except (StepFailed, ShellError):
        left = None
    if left is None:
        return
    record['after'] = migrations.latest(left)
    missing = migrations.differences(left, migrations.latest(listing))
    if missing:
        record['outcome'] = journal.PARTIAL
        record['message'] = exc.message + _(b'; schema NOT restored: %s') % (
            b', '.join(missing))
        exc.hint = _(b'the code was not touched; the schema is neither as it '
                     b'was nor as wanted: repair it by hand')


def verify(run, result, state, record, halfway=(), listing=None):
    """Read the migration state again (unless ``listing`` is the state as
    it is); compare it with ``state``."""
    if listing is None:
        listing = result.session.migrations()
    record['after'] = migrations.latest(listing)
    left = migrations.differences(listing, state)
    left += [b'%s stopped halfway (it is not atomic, or the database has no '
             b'transactional DDL)' % name for name in halfway]
    if left:
        record['outcome'] = journal.PARTIAL
        record['message'] = _(b'schema NOT restored: %s') % b', '.join(left)
        run.say(result.host, record['message'], 'warn', b'envdeploy.failed')


def revertcode(run, result, node, record, check=True):
    """Put the code back at ``node``, then reload and check.

    An empty working copy (``node`` None: a first deploy went back) gets
    no reload and no check: there is nothing there to serve.
    """
    if releases.enabled(run.env):
        return releases.revertcode(run, result, node, record, check)
    session = result.session
    output = run.printer(result.host)
    stepenv.towards(session, node)
    transfer.bring(run, result, node, output, record['steps'])
    session.step(result, b'update', session.update(node), output,
                 record=record['steps'])
    record['at'] = node
    if not node:
        return
    for name in flow.RESTORE[1:] if check else (b'reload',):
        script = session.command(name)
        if script:
            session.step(result, name, script, output, record=record['steps'])


def attempt(run, result, record, work, *args):
    """``work(*args)``; a failure goes into ``record`` (and is said)."""
    try:
        work(*args)
    except (StepFailed, ShellError, error.Abort) as exc:
        if record.get('outcome') not in (journal.FAILED, journal.PARTIAL):
            record['outcome'] = journal.FAILED
            record['message'] = getattr(exc, 'message', None) or \
                pycompat.bytestr(str(exc))
        run.say(result.host, _(b'rollback FAILED: %s') % record['message'],
                'warn', b'envdeploy.failed')
        return False
    return True


def kept(run, result, record, why):
    """``result``'s code stays: the schema it needs could not go back."""
    record['outcome'] = journal.FAILED
    record['message'] = _(b'code kept: %s') % why
    if result.changed:
        record['at'] = result.tonode


def deployments(records):
    """The stack of deployments a host went through, newest last.

    Items are ``(node, index of the record that put it there)``.  A
    rollback pops back to its target, so rolling back twice goes two
    deployments back, not forth again.

    >>> def rec(to, outcome=b'ok', kind=b'deploy'):
    ...     return {'kind': kind, 'to': to, 'outcome': outcome}
    >>> records = [rec(b'a'), rec(b'b'), rec(b'c', b'rolledback'), rec(b'b', b'unchanged'),
    ...            rec(b'c'), rec(None, b'planned')]
    >>> deployments(records)   # b again (unchanged): one entry, its newest record
    [(b'a', 0), (b'b', 3), (b'c', 4)]
    >>> records.append(rec(b'b', kind=b'rollback'))
    >>> deployments(records)
    [(b'a', 0), (b'b', 6)]
    >>> records.append(rec(b'a', kind=b'rollback'))
    >>> deployments(records)
    [(b'a', 7)]

    A rollback that failed moved nothing; one to a changeset this host
    never deployed (``-r``) starts the stack anew:

    >>> deployments([rec(b'a'), rec(b'b'), rec(b'a', b'failed', b'rollback')])
    [(b'a', 0), (b'b', 1)]
    >>> deployments([rec(b'a'), rec(b'b'), rec(b'x', kind=b'rollback'), rec(b'c')])
    [(b'x', 2), (b'c', 3)]
    """
    stack = []
    for index, record in enumerate(records):
        if record.get('outcome') not in OK or not record.get('to'):
            continue
        node = record['to']
        if record.get('kind') == journal.ROLLBACK:
            while stack and stack[-1][0] != node:
                stack.pop()
            if stack:
                stack[-1] = (node, index)
                continue
        elif stack and stack[-1][0] == node:
            stack[-1] = (node, index)
            continue
        stack.append((node, index))
    return stack


def stateafter(records, index):
    """The migration state deployment ``index`` left, when recorded.

    A record of format 2 says it (``migrations.after``).  Older records:
    the ``before`` of the next record that read it; ``{}`` (nothing to
    revert) when every later record says no migration file changed; None
    when nothing tells.

    >>> records = [
    ...     {'to': b'a', 'migrations': {'before': {b'bar': b'zero'},
    ...                                'after': {b'bar': b'0002_b'}}},
    ...     {'to': b'b', 'migrations': {'before': {b'bar': b'0002_b'}}},  # format 1
    ...     {'to': b'c', 'migrations': {'before': {b'bar': b'0003_c'}}},
    ...     {'to': b'd'},  # migrate unset then
    ...     {'to': b'e', 'migrations': {'before': {b'bar': b'0003_c'},
    ...                                'unchanged': True}},
    ... ]
    >>> stateafter(records, 0)  # said by the record itself
    {b'bar': b'0002_b'}
    >>> stateafter(records, 1)  # what the next run read before migrating
    {b'bar': b'0003_c'}
    >>> stateafter(records, 2)  # past a record that says nothing
    {b'bar': b'0003_c'}
    >>> print(stateafter(records[:4], 2))
    None

    ``{}`` when no later run changed a migration (or there is none: the
    newest deployment left the state the database is in):

    >>> old = [{'to': b'a', 'migrations': {'before': {b'bar': b'0001_a'}}},
    ...        {'to': b'b', 'migrations': {'unchanged': True}},
    ...        {'to': b'c', 'migrations': {'unchanged': True}}]
    >>> stateafter(old, 0), stateafter(old, 2)
    ({}, {})
    """
    found = records[index].get('migrations') or {}
    if found.get('after') is not None:
        return found['after']
    unchanged = True
    for record in records[index + 1 :]:
        found = record.get('migrations') or {}
        if found.get('before') is not None:
            return found['before']
        unchanged = unchanged and found.get('unchanged', False)
    return {} if unchanged else None


def beforeunfinished(records):
    """``(node, state)`` found before the newest run, which never ended.

    Its ``from``, and the migration state it read before migrating, else
    the state the run before it left.  None when the newest run ended.

    >>> ok = {'to': b'a' * 40, 'outcome': b'ok',
    ...       'migrations': {'after': {b'bar': b'0003_c'}}}
    >>> beforeunfinished([ok]) is None and beforeunfinished([]) is None
    True

    Killed while migrating: back to what it read before migrating.  Killed
    before that: the state the previous deployment left.

    >>> beforeunfinished([ok, {'from': b'a' * 40, 'outcome': b'unfinished',
    ...                        'migrations': {'before': {b'bar': b'0003_c'}}}])
    (b'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', {b'bar': b'0003_c'})
    >>> failed = {'to': b'b' * 40, 'outcome': b'failed',  # no deployment
    ...           'migrations': {'after': {b'bar': b'0009_x'}}}
    >>> beforeunfinished([ok, failed, {'from': b'a' * 40, 'outcome': b'unfinished'}])
    (b'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', {b'bar': b'0003_c'})

    A first deploy that never ended goes back to the empty working copy,
    with no state known:

    >>> beforeunfinished([{'from': None, 'outcome': b'unfinished'}])
    (None, None)
    """
    if not records or records[-1].get('outcome') != journal.UNFINISHED:
        return None
    last = records[-1]
    node = last.get('from')
    state = (last.get('migrations') or {}).get('before')
    if state is None:
        for index in range(len(records) - 2, -1, -1):
            if records[index].get('outcome') in OK:
                state = stateafter(records, index)
                break
    return node or None, state


class Rollback(Run):
    """Return every host of ``env`` to an earlier deployment.

    Phases: every host locked and read (journal, revision; the migration
    state on the migration host) and its target computed; if every host
    agrees (or ``--force``): each journals the run as begun; the
    migrations go back once per database, on its migration host with the
    newer code; then the code on every host; reload, check.
    """

    kind = journal.ROLLBACK
    repo = None  # this repository, for migrationplan (set by rollbackenv)
    restore = False  # --restore: the deploy's backup, not the migrations

    def __init__(self, ui, env, settings, node=None, toid=None,
                 explicit=None, force=False, dryrun=False, breaklock=False):
        super().__init__(ui, env, settings, dryrun, breaklock)
        self.node = node
        self.toid = toid
        self.explicit = explicit or {}
        self.force = force
        self.disagree = False
        self.backups = {}  # host spec -> the backup of the deploy undone

    def run(self):
        results = [HostResult(h) for h in self.env.hosts]
        self.groupresults(results)
        proceed = False
        try:
            self.foreach(results, lambda r: self.guarded(r, self._prepare),
                         _(b'reading'))
            freeze.guard(self, results)
            proceed = self._agree(results)
            if proceed and not self.dryrun:
                for phase, topic, which in flow.ROLLBACK:
                    work = getattr(self, '_' + phase.decode('ascii'))
                    self.foreach(self.select(results, which),
                                 lambda r, w=work: self.guarded(r, w), topic)
        finally:
            for r in results:
                if r.outcome == b'pending':
                    r.outcome = b'untouched'
                    r.message = r.message or _(b'not rolled back')
                journaled = proceed and not self.dryrun and r.begun
                self.finish(r, self.record(r) if journaled else None)
        return results

    def _prepare(self, result):
        session = self.open(result)
        if session is None:
            return
        records = session.journal()
        # With releases, the live release is left as it is: no hg start.
        state = (releases.enabled(self.env) and releases.livestate(result)
                 or session.readstate(self.node or nodemod.nullhex))
        self.backups[result.host.spec] = migrationplan.lastbackup(
            records, state.parent)
        result.fromnode = state.parent
        result.dirty = state.dirty
        result.state = state
        migrator = self.migrator(result) is result
        node, wanted = self._target(records)
        listing = None
        if migrator and self._carried(records, state.parent, node, wanted):
            result.migrations.update(on=result.host.spec, before=wanted,
                                     unchanged=True)
        elif migrator:
            listing = session.migrations()
        if listing is not None:
            result.migrations['on'] = result.host.spec
            result.migrations['before'] = migrations.latest(listing)
        if self.explicit:
            if migrator and listing is None:
                raise StepFailed(b'plan', _(b'--migration given, but this '
                                            b'environment has no migrate'))
            if listing is not None:
                wanted = {app: migrations.resolve(listing, app, target)
                          for app, target in self.explicit.items()}
        elif wanted is None and listing is not None:
            raise StepFailed(
                b'plan', _(b'no recorded migration state for %s')
                % (node or b'(empty)')[:12],
                hint=_(b'give the target with --migration APP.NNNN'))
        result.tonode = node
        result.wanted = wanted
        result.migrationlisting = listing
        result.unapplying = migrations.unapplysteps(listing, wanted) if (
            listing is not None and wanted) else []
        result.outcome = b'planned'

    def _carried(self, records, fromnode, tonode, wanted):
        """Whether the migration state need not be read (one Django start
        fewer): no migration file differs between the two changesets, and
        the journal says the database is where the deployment to return to
        left it.  As a deploy carries the state forward (deploy.py)."""
        if (self.explicit or self.restore or not self.env.migrate
                or wanted is None or self.repo is None
                or journal.leftstate(records) != wanted):
            return False
        with edits.REPOLOCK:  # the hosts are read in threads
            return not migrations.touched(self.repo, self.env, fromnode,
                                          tonode)

    def _target(self, records):
        """``(node, migration state)`` this host should return to."""
        if self.toid:
            for index, record in enumerate(records):
                if record.get('id') == self.toid:
                    if record.get('outcome') not in OK:
                        raise StepFailed(
                            b'plan', _(b'journal record %s did not deploy '
                                       b'successfully') % self.toid)
                    return (record['to'],
                            stateafter(records, index))
            raise StepFailed(b'plan', _(b'no journal record %s on this host')
                             % self.toid, hint=_(b'see hg envlog'))
        if self.node:
            for index in range(len(records) - 1, -1, -1):
                record = records[index]
                if (record.get('to') == self.node
                        and record.get('outcome') in OK):
                    return self.node, stateafter(records, index)
            return self.node, None
        before = beforeunfinished(records)
        if before is not None:
            return before
        stack = deployments(records)
        if len(stack) < 2:
            raise StepFailed(b'plan', _(b'no earlier deployment in the '
                                        b'journal of this host'),
                             hint=_(b'give a changeset with -r'))
        node, index = stack[-2]
        return node, stateafter(records, index)

    def _agree(self, results):
        """Show the plan; True when every host may proceed."""
        migrationplan.planrollback(self, results)
        for r in results:
            if r.outcome != b'planned':
                continue
            steps = [b'%s.%s' % (app, n)
                     for app, _m, undo in r.unapplying for n in undo]
            # A real run says "unapplying ..." as it does it: once.
            self.say(r.host, _(b'at %s, back to %s%s')
                     % ((r.fromnode or b'(empty)')[:12],
                        (r.tonode or b'(empty)')[:12],
                        _(b', unapplying %s') % b', '.join(steps)
                        if steps and self.dryrun else b''))
        bad = [r for r in results if r.outcome != b'planned']
        targets = {r.tonode for r in results if r.outcome == b'planned'}
        self.disagree = len(targets) > 1 and not self.force
        if (bad and not self.force) or self.disagree:
            for r in results:
                if r.outcome == b'planned':
                    r.outcome = b'untouched'
                    r.message = _(b'nothing changed: not every host can be '
                                  b'rolled back')
            return False
        return True

    def _begin(self, result):
        if result.outcome != b'planned':
            return
        result.outcome = b'pending'
        if releases.enabled(self.env):
            releases.saveedits(self, result)  # the live release stays
        else:
            # This repository says which files going back creates (no
            # hg command on the host, where the server has just ended).
            result.session.saveedits(result, self.id, self.repo)
        stepenv.towards(result.session, result.tonode)
        self.begin(result)

    def _unmigrate(self, result):
        """The migration host: the schema back, with the newer code."""
        if result.outcome != b'pending':
            return
        if self.restore:
            return migrationplan.restore(self, result)
        if result.migrations.get('unchanged'):
            # Nothing to revert (see _carried): the state stays.
            result.migrations.update(after=result.wanted, reverted=[])
            return
        if result.wanted is None:
            if self.env.migrate:
                self.say(result.host, _(b'no migration state recorded for '
                                        b'the target: migrations left as '
                                        b'they are'), 'warn')
            return
        record = result.undo = {'steps': result.steps, 'reverted': []}
        try:
            # The plan's listing: read a moment ago, the lock held since
            # (one Django start fewer).
            revertmigrations(self, result, result.wanted, record,
                             result.migrationlisting)
        finally:
            result.migrations['reverted'] = record['reverted']
            if record.get('after') is not None:
                result.migrations['after'] = record['after']

    def _code(self, result):
        if result.outcome != b'pending':
            return
        migrator = self.migrator(result)
        if migrator.outcome not in (b'pending', b'ok', b'partial'):
            result.message = _(b'nothing changed: the migrations of %s did '
                               b'not go back') % migrator.host.name
            return  # stays pending: untouched, journaled
        record = {'steps': result.steps, 'reverted': []}
        revertcode(self, result, result.tonode, record)
        undo = migrator.undo or {}
        if undo.get('outcome') == journal.PARTIAL:
            # The code went back, but the schema is not what it was.
            result.outcome = b'partial'
            result.message = undo['message']
        if migrator is not result:
            result.migrations.update(
                {k: v for k, v in migrator.migrations.items()
                 if k in ('on', 'after', 'reverted')})
        elif 'after' not in result.migrations and result.wanted is not None:
            result.migrations['after'] = result.wanted
        if result.outcome == b'pending':
            result.outcome = b'ok'


def rollbackenv(ui, repo, name, rev=None, toid=None, migration=(),
                force=False, dryrun=False, breaklock=False, opts=None,
                restore=False):
    """``hg envrollback``: 0, or error.Abort naming the failed hosts."""
    env = config.load(ui, name)
    settings = config.settings(ui)
    explicit = migrations.explicit(migration)
    if explicit and not (rev or toid):
        raise error.InputError(_(b'--migration needs -r/--rev or --to'),
                               hint=_(b'say which code goes with that schema'))
    node = None
    if rev:
        # Revision numbers differ between repositories: send the full hash.
        node = logcmdutil.revsingle(repo, rev).hex()
    if not dryrun:
        confirm.ask(ui, env, b'rollback', confirm.rollbackplan(env, node, toid))
    rollingback = Rollback(ui, env, settings, node=node, toid=toid, explicit=explicit,
                   force=force, dryrun=dryrun, breaklock=breaklock)
    transfer.sender(rollingback, repo)  # transfer = push: what -r needs
    rollingback.repo, rollingback.restore = repo, restore

    def verdict(results):
        records.fromrun(repo, rollingback, results)
        if rollingback.disagree:
            raise error.Abort(
                _(b'hosts disagree on the deployment to return to: %s')
                % b', '.join(b'%s -> %s' % (r.host.name, r.tonode[:12])
                             for r in results if r.tonode),
                hint=_(b'nothing was changed; use --force to return each '
                       b'host to its own previous deployment, or pick one '
                       b'with -r'))
        return report(ui, env, results, opts or {}, b'rollback')

    # Between the preenvrollback and envrollback hooks.
    return events.around(ui, repo, rollingback, verdict)
