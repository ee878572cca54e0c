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
from mercurial import error, logcmdutil, node as nodemod

from . import config, migrations
from .run import Run, report
from .target import HostResult, StepFailed

OK = ('ok', 'unchanged')


def revert(run, result, node, state, record, check=True):
    """Migrations back to ``state``, code to ``node``, reload (and check).

    ``record`` receives the steps run (``steps``) and the migrations
    unapplied (``reverted``, as ``app.name``, in the order unapplied).
    Raises StepFailed; a migration that cannot be reversed stops the
    rollback before the code is touched, with the schema put back.
    """
    session = result.session
    host = result.host
    output = run.printer(host)
    if state:
        listing = session.migrations()
        plan = migrations.plan(listing or {}, state)
        for app, migration, undo in plan:
            run.say(host, _(b'unapplying %s')
                    % b', '.join(b'%s.%s' % (app.encode(), n.encode())
                                 for n in undo))
            try:
                session.step(result, b'unmigrate',
                             migrations.rollbackcommand(session.env, app,
                                                        migration),
                             output, record=record['steps'])
            except StepFailed as exc:
                # Put the schema back where the checked-out code expects it,
                # so the host stays as it was before the rollback.
                forward = session.command(b'migrate')
                if forward:
                    session.run(forward, output=output)
                name = migrations.irreversible(exc.output)
                if name:
                    exc.message = (_(b'migration %s cannot be reversed')
                                   % name.encode())
                exc.hint = _(b'the rollback stopped before touching the code; '
                             b'code and schema are as they were')
                raise
            record['reverted'].extend('%s.%s' % (app, n) for n in undo)
    elif state is None and session.env.migrate:
        run.say(host, _(b'no migration state recorded for the target: '
                        b'migrations left as they are'), 'warn')
    session.step(result, b'update', session.update(node), output,
                 record=record['steps'])
    for name in (b'reload', b'check') if check else (b'reload',):
        script = session.command(name)
        if script:
            session.step(result, name, script, output, record=record['steps'])


def deployments(records):
    """The stack of deployments a host went through, newest last.

    Items are ``(node, index of the record that put it there)``.  A
    rollback pops back to its target, so rolling back twice goes two
    deployments back, not forth again.
    """
    stack = []
    for index, record in enumerate(records):
        if record.get('outcome') not in OK or not record.get('to'):
            continue
        node = record['to']
        if record.get('kind') == 'rollback':
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

    ``{}`` (nothing to revert) when every later record says no migration
    file changed; None when nothing tells.
    """
    unchanged = True
    for record in records[index + 1 :]:
        found = record.get('migrations') or {}
        if found.get('before') is not None:
            return found['before']
        unchanged = unchanged and found.get('unchanged', False)
    return {} if unchanged else None


class Rollback(Run):
    """Return every host of ``env`` to an earlier deployment."""

    kind = b'rollback'

    def __init__(self, ui, env, settings, node=None, toid=None,
                 explicit=None, force=False, dryrun=False, breaklock=False):
        super().__init__(ui, env, settings, dryrun, breaklock)
        self.node = node
        self.toid = toid
        self.explicit = explicit or {}
        self.force = force
        self.disagree = False

    def run(self):
        results = [HostResult(h) for h in self.env.hosts]
        proceed = False
        try:
            self.foreach(results, lambda r: self.guarded(r, self._prepare),
                         _(b'reading'))
            proceed = self._agree(results)
            if proceed and not self.dryrun:
                self.foreach(results,
                             lambda r: self.guarded(r, self._rollback),
                             _(b'rolling back'))
        finally:
            for r in results:
                if r.outcome == b'pending':
                    r.outcome = b'untouched'
                    r.message = _(b'not rolled back')
                journaled = proceed and not self.dryrun
                self.finish(r, self.record(r) if journaled else None)
        return results

    def _prepare(self, result):
        session = self.open(result)
        if session is None:
            return
        records = session.journal()
        state = session.state(self.node or nodemod.nullhex)
        result.fromnode = state.parent
        result.dirty = state.dirty
        listing = session.migrations()
        if listing is not None:
            result.migrations['before'] = migrations.latest(listing)
        node, wanted = self._target(records)
        if self.explicit:
            if listing is None:
                raise StepFailed(b'plan', _(b'--migration given, but this '
                                            b'environment has no migrate'))
            wanted = {app: migrations.resolve(listing, app, target)
                      for app, target in self.explicit.items()}
        elif wanted is None and listing is not None:
            raise StepFailed(
                b'plan', _(b'no recorded migration state for %s') % node[:12],
                hint=_(b'give the target with --migration APP.NNNN'))
        result.tonode = node
        result.wanted = wanted
        result.plan = migrations.plan(listing, wanted) if wanted else []
        result.outcome = b'planned'

    def _target(self, records):
        """``(node, migration state)`` this host should return to."""
        if self.toid:
            for index, record in enumerate(records):
                if record.get('id') == self.toid.decode():
                    if record.get('outcome') not in OK:
                        raise StepFailed(
                            b'plan', _(b'journal record %s did not deploy '
                                       b'successfully') % self.toid)
                    return (record['to'].encode(),
                            stateafter(records, index))
            raise StepFailed(b'plan', _(b'no journal record %s on this host')
                             % self.toid, hint=_(b'see hg envlog'))
        if self.node:
            for index in range(len(records) - 1, -1, -1):
                record = records[index]
                if (record.get('to') == self.node.decode()
                        and record.get('outcome') in OK):
                    return self.node, stateafter(records, index)
            return self.node, None
        stack = deployments(records)
        if len(stack) < 2:
            raise StepFailed(b'plan', _(b'no earlier deployment in the '
                                        b'journal of this host'),
                             hint=_(b'give a changeset with -r'))
        node, index = stack[-2]
        return node.encode(), stateafter(records, index)

    def _agree(self, results):
        """Show the plan; True when every host may proceed."""
        for r in results:
            if r.outcome != b'planned':
                continue
            steps = [b'%s.%s' % (app.encode(), n.encode())
                     for app, _m, undo in r.plan for n in undo]
            self.say(r.host, _(b'at %s, back to %s%s')
                     % ((r.fromnode or b'(empty)')[:12], r.tonode[:12],
                        _(b', unapplying %s') % b', '.join(steps)
                        if steps else b''))
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

    def _rollback(self, result):
        if result.outcome != b'planned':
            return
        result.outcome = b'pending'
        result.session.saveedits(result, self.id)
        record = {'steps': result.steps, 'reverted': []}
        try:
            revert(self, result, result.tonode, result.wanted, record)
        finally:
            result.migrations['reverted'] = record['reverted']
        result.outcome = b'ok'


def rollbackenv(ui, repo, name, rev=None, toid=None, migration=(),
                force=False, dryrun=False, breaklock=False, opts=None):
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
    run = Rollback(ui, env, settings, node=node, toid=toid, explicit=explicit,
                   force=force, dryrun=dryrun, breaklock=breaklock)
    results = run.run()
    if run.disagree:
        raise error.Abort(
            _(b'hosts disagree on the deployment to return to: %s')
            % b', '.join(b'%s -> %s' % (r.host.name, r.tonode[:12])
                         for r in results if r.tonode),
            hint=_(b'nothing was changed; use --force to return each host '
                   b'to its own previous deployment, or pick one with -r'))
    return report(ui, env, results, opts or {}, b'rollback')
