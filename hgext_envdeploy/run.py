# run.py - what a deploy and a rollback share
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""One run of a command over the hosts of an environment.

:class:`Run` opens each host's session (connect, enter the path, lock),
keeps a host's failure with that host, writes the journal record, unlocks;
:func:`report` prints the summary and decides the exit status.  The deploy
and the rollback subclass :class:`Run` with their own steps.
"""

import contextlib
import threading
import time

from mercurial.i18n import _
from mercurial import error, node as nodemod, pycompat

from . import (fanout, freeze, hostread, journal, migrationplan, stepenv,
               target, transport)
from .shell import ShellError
from .target import Interrupted, StepFailed

# Lines of a failing command's output shown in the error report.
FAILURE_TAIL = 40


class Run:
    """What a deploy and a rollback share: hosts, sessions, output, journal."""

    kind = None
    # Read with the lock, in its round trip: the last journal records, and
    # whether to start the target's hg command server (see target.lock).
    journaltail = 0
    hgserver = False
    trigger = None  # which push started the run (Deploy, from the hooks)
    node = None  # the changeset the run brings, when one for every host
    untested = None  # deployed with --untested (promotion.check says why)

    def __init__(self, ui, env, settings, dryrun=False, breaklock=False):
        self.ui = ui
        self.env = env
        self.settings = settings
        self.dryrun = dryrun
        self.breaklock = breaklock
        # UTC time to the microsecond: ids sort as the runs started, which
        # envlog relies on when two runs start within one second.
        now = time.time()
        self.id = pycompat.sysbytes(
            time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
            + '-%06d' % int(now % 1 * 1e6)
        )
        self.user = target.who(ui)
        self.client = target.clientname()
        self._outlock = threading.Lock()
        self.cancel = threading.Event()
        self._sshcontext = None

    # -- output, safe from several threads

    def say(self, host, msg, method='status', label=b''):
        with self._outlock:
            getattr(self.ui, method)(b'%s: %s\n' % (host.name, msg),
                                     label=label)

    # -- the hosts that share a database

    def groupresults(self, results):
        """Index ``results`` by host, for :meth:`migrator`."""
        self._byspec = {r.host.spec: r for r in results}

    def migrator(self, result):
        """The result of the host that migrates ``result``'s database."""
        return self._byspec[self.env.migrationhost(result.host).spec]

    def sharing(self, result, results):
        """The other results whose database ``result``'s host migrates."""
        return [r for r in results
                if r is not result and self.migrator(r) is result]

    def migratorsfirst(self, results):
        """``results`` with the migration host first (the first batch)."""
        return sorted(results, key=lambda r: self.migrator(r) is not r)

    def select(self, results, which):
        """The ``results`` a phase runs on: ``all``, ``migrators``, ``others``."""
        if which == 'all':
            return results
        mine = which == 'migrators'
        return [r for r in results if (self.migrator(r) is r) == mine]

    def printer(self, host):
        def output(line):
            self.say(host, b'| ' + line, 'note')

        return output

    def confirm(self, host, question):
        """Ask yes/no (default no); with ``-y``, yes without asking.

        ``-y`` is Mercurial's "do not prompt, pick the first choice": it
        sets ``ui.interactive`` to false (as the config may do).  Unset,
        ``ui.interactive()`` says whether stdin is a terminal: none is no
        answer, and no yes.  A pager that owns the terminal sets it false
        too: no yes either.
        """
        with self._outlock:
            if self.ui.interactive():
                return self.ui.promptchoice(
                    b'%s: %s (yn)?$$ &Yes $$ &No' % (host.name, question),
                    default=1) == 0
            return (self.ui.configbool(b'ui', b'interactive') is False
                    and not self.ui.pageractive)

    # -- phases

    def foreach(self, results, work, topic):
        def timed(i, host):
            # A host's duration is the time of its own work, not the wait
            # for other hosts and batches (serial).
            with results[i].clock():
                work(results[i])

        fanout.foreach(self.ui, [r.host for r in results], timed,
                       self.settings[b'concurrency'], topic, self.cancel,
                       self.settings[b'grace'])

    def serverenviron(self):
        """What the command server started with the lock sees beyond the
        session's variables (see CommandServer.begin): nothing."""
        return None

    def warmscript(self, result):
        """What the lock starts in the background on ``result``'s host
        (Deploy: a warm migration runner), or None."""
        return None

    def open(self, result):
        """Connect, enter the path, take the lock: a ready HostSession.

        None when the host cannot be reached (the result says why).
        """
        host = result.host
        if self._sshcontext is None and not self.env.islocal:
            self._sshcontext = transport.SSHContext(self.ui, self.settings)
        try:
            session = hostread.connect(self.env, host, self._sshcontext,
                                       self.settings, self.say, self.confirm,
                                       ui=self.ui)
        except transport.ConnectError as exc:
            result.outcome = b'unreachable'
            result.message, result.hint = hostread.explain(exc)
            self.say(host, result.message, 'warn', b'envdeploy.failed')
            return None
        result.session = session
        session.cancel = self.cancel
        # Without a dry run, its answer comes with the lock's (one round trip).
        session.enter(stepenv.variables(self, host, self.node), wait=self.dryrun)
        if not self.dryrun:
            session.lock(target.holder(self.user, self.client, self.kind,
                                       self.env.name, self.id),
                         self.breaklock,
                         self.journaltail, self.hgserver,
                         self.serverenviron(), self.warmscript(result))
        freeze.check(self, result, session)  # refused, before any change
        return session

    def guarded(self, result, work):
        """Run ``work(result)``; keep any failure with its host."""
        try:
            work(result)
        except Interrupted:
            result.fail(result.current, _(b'interrupted before this step'))
            result.outcome = b'interrupted'
        except StepFailed as exc:
            result.failwith(exc)
        except Exception as exc:
            if not isinstance(exc, (ShellError, error.Abort)):
                # A bug or an unexpected library error stays with its host:
                # the other hosts go on, and the summary names it
                # (--traceback shows where).
                self.ui.traceback()
            message, hint = hostread.explain(exc)
            result.fail(result.current or _outside(exc), message, hint=hint)
        if result.outcome == b'failed':
            self.say(result.host, _(b'FAILED at %s: %s')
                     % (result.failed or b'connection', result.message),
                     'warn', b'envdeploy.failed')

    def begin(self, result):
        """Journal ``result``'s run as begun, before it changes anything."""
        result.session.append(self.header(result), phase=journal.BEGIN)
        result.begun = True

    def progress(self, result, fields):
        """Journal a line of ``result``'s run in progress (``migrating``)."""
        result.session.append(dict(fields, id=self.id),
                              phase=journal.MIGRATING)

    def refuse(self, results, why):
        """Before any change: release every host, journal nothing, and mark
        the hosts not started as untouched because of ``why`` (the caller
        then raises its refusal)."""
        for r in results:
            if r.outcome in (b'prepared', b'planned', b'pending'):
                r.outcome = b'untouched'
                r.message = why
            self.finish(r, None)

    def finish(self, result, record):
        """Journal ``record`` (unless dry run), unlock, disconnect."""
        session = result.session
        if session is None:
            return
        if session.shell.busy:
            # Still inside a step after Ctrl-C's grace period: leave it to
            # finish; the lock goes when its session ends.
            self.say(result.host, _(b'left running: %s (the lock is released '
                                    b'when it ends)') % (result.current or b'?'),
                     'warn')
            session.shell.broken = 'interrupted'
            session.close()
            result.session = None
            return
        try:
            if session.locked and record is not None:
                session.append(record, unlock=True, last=True)
        except StepFailed as exc:
            self.say(result.host, exc.message, 'warn', b'envdeploy.failed')
            if result.ok:
                result.fail(b'journal', _(b'could not write the journal'))
        except ShellError as exc:
            self.say(result.host, _(b'could not write the journal: %s')
                     % pycompat.bytestr(str(exc)), 'warn', b'envdeploy.failed')
            if result.ok:
                result.fail(b'journal', _(b'could not write the journal'))
        finally:
            session.release()
            session.close()
            result.session = None
            result.duration = result.elapsed()

    def header(self, result):
        """What a journal record says from the start (the begin line)."""
        record = {
            'id': self.id,
            'kind': self.kind,
            'env': self.env.name,
            'branch': self.env.branch,
            'host': result.host.spec,
            'role': result.host.role,
            'user': self.user,
            'client': self.client,
            'started': target.isotime(result.started),
            'from': result.fromnode,
            'to': result.tonode,
            'dirty': result.dirty,
            'patch': result.patch,
            'untracked': result.untracked,
        }
        if self.trigger:
            record['trigger'] = self.trigger  # the push behind it (hooks)
        if self.untested:
            record['untested'] = self.untested  # promotion.py
        if result.plan is not None:
            record['plan'] = result.plan  # migrationplan.py
        if result.release:
            record['release'] = result.release  # releases.py
        return record

    def record(self, result):
        """The journal record of ``result`` (format in journal.py)."""
        record = self.header(result)
        record.update({
            'finished': target.isotime(time.time()),
            'duration': round(result.elapsed(), 3),
            'steps': result.steps,
            'outcome': result.outcome,
        })
        if result.migrations:
            record['migrations'] = result.migrations
        if result.failed:
            record['failed'] = result.failed
            record['message'] = result.message
        if result.rollback is not None:
            record['rollback'] = result.rollback
        return record


def _outside(exc):
    """The step a failure outside every step is recorded at."""
    if isinstance(exc, ShellError):
        return b'connection'
    if isinstance(exc, error.Abort):
        return b'plan'
    return b'internal'


@contextlib.contextmanager
def _formatter(ui, opts, into):
    """``into`` (a caller's nested formatter: envmerge --deploy -T) or a
    formatter of our own."""
    if into is None:
        with ui.formatter(b'envdeploy', opts) as fm:
            yield fm
    else:
        yield into
        into.end()


def report(ui, env, results, opts, what, into=None):
    """The summary: one line per host, then the verdict; exit status."""
    with _formatter(ui, opts, into) as fm:
        for r in results:
            fm.startitem()
            label = b'envdeploy.ok' if r.ok else b'envdeploy.failed'
            fm.write(b'host', b'%s', r.host.name, label=label)
            fm.condwrite(r.host.role is not None, b'role', b' (%s)',
                         r.host.role or b'', label=label)
            described = _describe(r, what)
            fm.plain(b': %s\n' % described, label=label)
            # For the blackbox extension (and any ui.log listener).
            ui.log(b'envdeploy', b'%s %s: %s: %s\n', what, env.name,
                   r.host.name, described, env=env.name, host=r.host.name,
                   outcome=r.outcome, node=r.tonode or b'')
            fm.data(env=env.name, outcome=r.outcome, node=r.tonode or b'',
                    fromnode=r.fromnode or b'', failed=r.failed or b'',
                    message=r.message, duration=round(r.duration, 3),
                    final=_final(r) or b'',
                    steps=r.planned or [s['name'] for s in r.steps],
                    rollback=(r.rollback or {}).get('outcome') or b'',
                    **migrationplan.fmdata(fm, r))
    bad = [r for r in results if not r.ok]
    if not bad:
        return 0
    for r in bad:
        if r.output:
            tail = r.output.splitlines()[-FAILURE_TAIL:]
            ui.warn(_(b'%s: output of %s:\n') % (r.host.name, r.failed))
            for line in tail:
                ui.warn(b'%s:   %s\n' % (r.host.name, line))
        if r.hint:
            ui.warn(_(b'%s: (%s)\n') % (r.host.name, r.hint))
    failed = [r for r in bad if r.outcome not in (b'rolledback', b'untouched')]
    verb = _(b'failed')
    if any(r.outcome == b'interrupted' for r in results):
        verb = _(b'interrupted')
    elif any(r.outcome == b'wouldfail' for r in results):
        verb = _(b'would fail')
    msg = _(b'%s of %s %s on %d of %d hosts: %s') % (
        what, env.name, verb, len(failed), len(results),
        b', '.join(b'%s (%s)' % (r.host.name, r.failed or r.outcome)
                   for r in failed))
    undone = [r for r in results if _rollback(r) == journal.OK]
    if undone:
        msg += _(b'; rolled back: %s') % b', '.join(
            r.host.name for r in undone)
    partial = [r for r in results if _rollback(r) == journal.PARTIAL]
    if partial:
        msg += _(b'; schema NOT restored: %s') % b', '.join(
            r.host.name for r in partial)
    untouched = [r for r in results if r.outcome == b'untouched']
    if untouched:
        msg += _(b'; untouched: %s') % b', '.join(
            r.host.name for r in untouched)
    raise error.Abort(msg)


def _rollback(r):
    """The outcome of ``r``'s rollback (``ok``, ``partial``, ``failed``)."""
    if r.outcome == b'partial':
        return journal.PARTIAL
    return (r.rollback or {}).get('outcome')


def _final(r):
    """The revision the host ended at, when this run knows it."""
    if r.rollback is not None and 'at' in r.rollback:
        return r.rollback['at'] or nodemod.nullhex
    if r.outcome in (b'ok', b'unchanged'):
        return r.tonode
    if not r.changed:
        return r.fromnode or (nodemod.nullhex if r.state is not None
                              else None)
    if any(s['name'] == b'update' and s['status'] == 0 for s in r.steps):
        return r.tonode
    return None


_PHRASES = {
    b'deploy': (_(b'deployed %s (%.1fs)'), _(b'would deploy %s')),
    b'rollback': (_(b'rolled back to %s (%.1fs)'), _(b'would roll back to %s')),
}


def _short(node):
    return node[:12] if node else b'(empty)'


def _describe(r, what):
    if r.outcome == b'ok':
        return _PHRASES[what][0] % (_short(r.tonode), r.duration)
    if r.outcome == b'planned':
        if r.converged:  # the real run would only check (see flow.py)
            return _(b'already at %s, would only check') % _short(r.tonode)
        return _PHRASES[what][1] % _short(r.tonode)
    if r.outcome == b'unchanged':
        return _(b'already at %s, check passed (%.1fs)') % (_short(r.tonode),
                                                          r.duration)
    if r.outcome == b'wouldfail':
        return _(b'would FAIL at %s: %s; nothing changed') % (r.failed,
                                                               r.message)
    if r.outcome == b'unreachable':
        return _(b'unreachable: %s') % r.message
    if r.outcome == b'untouched':
        return _(b'untouched: %s') % r.message
    final = _final(r)
    if final:
        where = _(b'now at %s') % _short(final)
    elif r.nothingchanged:
        where = _(b'nothing changed')
    else:
        where = _(b'state unknown')
    undo = b''
    outcome = _rollback(r)
    if outcome == journal.OK:
        undo = _(b'rolled back; ')
    elif outcome == migrationplan.SKIPPED:
        undo = b''  # said on its own line: not rolled back, and why
    elif outcome is not None:
        undo = _(b'ROLLBACK %s: %s; ') % (
            _(b'PARTIAL') if outcome == journal.PARTIAL else _(b'FAILED'),
            r.rollback.get('message') or b'?')
    if r.outcome == b'rolledback':
        return _(b'rolled back (%s), %s') % (r.message, where)
    if r.outcome == b'partial':
        return _(b'ROLLBACK PARTIAL: %s; %s') % (
            (r.rollback or {}).get('message') or r.message, where)
    if r.failed == b'path' or r.failed == b'lock':
        where = _(b'nothing changed')
    return _(b'FAILED at %s: %s; %s%s') % (r.failed or r.outcome, r.message,
                                           undo, where)
