# deploy.py - the deploy plan and its steps
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""A deploy, host by host, in the order a reader can follow on one screen.

For every host, in its own thread and over one shell session:

  connect -> enter path -> lock -> record state (saving manual edits) ->
  pull -> update -> migrate -> reload -> check -> journal -> unlock

A failing step ends that host's deploy; the journal records it and the lock
is released on every path (the lock dies with the session anyway).  The
changeset is resolved once, locally, before any host starts, so every host
ends at the same changeset even if someone pushes meanwhile.
"""

import getpass
import socket
import threading
import time

from mercurial.i18n import _
from mercurial import error, logcmdutil, node as nodemod, pycompat

from . import config, fanout, journal, lock, transport
from .shell import Shell, ShellError, quote

STEPS = (b'pull', b'update', b'migrate', b'reload', b'check')

# Lines of a failing command's output shown in the error report.
FAILURE_TAIL = 40


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


class HostResult:
    """What happened on one host; the journal record is built from it."""

    def __init__(self, host):
        self.host = host
        self.outcome = b'pending'
        self.failed = None
        self.message = b''
        self.hint = None
        self.output = b''
        self.fromnode = None
        self.tonode = None
        self.dirty = []
        self.patch = None
        self.steps = []
        self.current = None
        self.started = time.time()
        self.duration = 0.0

    @property
    def ok(self):
        return self.outcome in (b'ok', b'unchanged', b'planned')

    def fail(self, step, message, output=b'', hint=None):
        self.outcome = b'failed'
        self.failed = step
        self.message = message
        self.output = output
        self.hint = hint


class StepFailed(Exception):
    """Ends a host's deploy; the result already says why."""


def _isotime(stamp):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))


def _who(ui):
    return ui.config(b'ui', b'username') or pycompat.sysbytes(getpass.getuser())


class Deploy:
    """Deploy ``ctx`` to every host of ``env``."""

    def __init__(self, ui, repo, env, ctx, settings, dryrun=False,
                 breaklock=False, kind=b'deploy'):
        self.ui = ui
        self.repo = repo
        self.env = env
        self.ctx = ctx
        self.node = ctx.hex()
        self.settings = settings
        self.dryrun = dryrun
        self.breaklock = breaklock
        self.kind = kind
        self.hg = env.hg
        self.id = pycompat.sysbytes(
            time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
            + '-' + '%06x' % (int(time.time() * 1e6) & 0xFFFFFF)
        )
        self.user = _who(ui)
        self.client = pycompat.sysbytes(socket.gethostname())
        self._outlock = threading.Lock()
        self._cancel = threading.Event()
        self._sshcontext = None

    # -- output, safe from several threads

    def _say(self, host, msg, method='status', label=b''):
        with self._outlock:
            getattr(self.ui, method)(
                b'%s: %s\n' % (host.name, msg), label=label
            )

    def _lineprinter(self, host):
        def output(line):
            self._say(host, b'| ' + line, 'note')

        return output

    # -- the run

    def run(self):
        """Deploy to all hosts; return the list of :class:`HostResult`."""
        hosts = self.env.hosts
        if not self.env.islocal:
            self._sshcontext = transport.SSHContext(self.ui, self.settings)
        results = [HostResult(h) for h in hosts]

        def work(index, host):
            if self._cancel.is_set():
                results[index].outcome = b'untouched'
                results[index].message = _(b'not started: interrupted')
                return
            self._host(results[index])

        topic = _(b'checking') if self.dryrun else _(b'deploying')
        fanout.foreach(self.ui, hosts, work, self.settings[b'concurrency'],
                       topic, self._cancel)
        return results

    def _host(self, result):
        host = result.host
        try:
            try:
                conn = transport.connect(host, self.env, self._sshcontext)
            except transport.ConnectError as exc:
                result.outcome = b'unreachable'
                result.message = exc.msg
                result.hint = exc.hint
                self._say(host, exc.msg, 'warn', b'envdeploy.failed')
                return
            shell = Shell(conn, self.settings[b'timeout'])
            try:
                if self.dryrun:
                    self._plan(shell, result)
                else:
                    self._deploy(shell, result)
            except StepFailed:
                pass
            except ShellError as exc:
                result.fail(
                    result.current or b'connection',
                    _(b'lost the connection: %s') % pycompat.bytestr(str(exc)),
                )
            finally:
                shell.close()
        except Exception as exc:
            # A bug or an unexpected library error stays with its host: the
            # other hosts go on, and the summary names it.
            result.fail(result.current or b'internal',
                        _(b'unexpected error: %s') % pycompat.bytestr(
                            '%s: %s' % (type(exc).__name__, exc)))
        finally:
            result.duration = time.time() - result.started
            if result.outcome == b'failed':
                where = result.failed or b'connection'
                self._say(host, _(b'FAILED at %s: %s') % (where, result.message),
                          'warn', b'envdeploy.failed')

    def _enter(self, shell, result):
        """cd into path in the session's main shell; stable hg output."""
        status, out = shell.run(
            b'cd -- %s && HGPLAIN=1 && export HGPLAIN' % quote(self.env.path),
            subshell=False,
        )
        if status:
            result.fail(
                b'path', _(b'%s does not exist on this host') % self.env.path,
                out, _(b'clone the repository there first'),
            )
            raise StepFailed()

    def _readstate(self, shell, result):
        """Revision, manual edits and whether the changeset is there."""
        hg = self.hg
        status, out = shell.run(
            b'%(hg)s log -r ". + present(%(node)s)" -T "{node}\\n" || exit 3\n'
            b'echo "dirty:"\n'
            b'%(hg)s status -mard -n'
            % {b'hg': hg, b'node': self.node}
        )
        if status:
            result.fail(
                b'state', _(b'%s is not a Mercurial repository, or hg cannot '
                            b'run there') % self.env.path,
                out, _(b"set the 'hg' key to the hg executable on the target"),
            )
            raise StepFailed()
        nodes, _sep, dirty = out.partition(b'dirty:\n')
        nodes = nodes.split()
        parent = nodes[0] if nodes else nodemod.nullhex
        result.fromnode = None if parent == nodemod.nullhex else parent
        result.dirty = [f for f in dirty.splitlines() if f]
        return self.node in nodes

    def _stepscripts(self, have):
        """The steps as (name, script), skipping what is not configured."""
        env = self.env
        pull = None
        if not have:
            pull = b'%s pull -r %s' % (self.hg, self.node)
            if env.source:
                pull += b' -- %s' % quote(env.source)
        commands = [
            (b'pull', pull),
            (b'update', b'%s update -C -r %s' % (self.hg, self.node)),
        ]
        for name in (b'migrate', b'reload', b'check'):
            command = getattr(env, pycompat.sysstr(name))
            # The administrator's command, run as written, but in its own
            # sh so that a typo cannot unbalance the session's script.
            commands.append(
                (name, b'sh -c %s' % quote(command) if command else None)
            )
        return commands

    def _plan(self, shell, result):
        host = result.host
        self._enter(shell, result)
        have = self._readstate(shell, result)
        self._say(host, _(b'at %s%s, would deploy %s')
                  % (result.fromnode and result.fromnode[:12] or b'(empty)',
                     _(b' with %d edited files') % len(result.dirty)
                     if result.dirty else b'',
                     self.node[:12]))
        for name, script in self._stepscripts(have):
            if script is None:
                if name == b'pull':
                    self._say(host, _(b'  pull: skipped, changeset present'))
                continue
            if name in (b'migrate', b'reload', b'check'):
                script = getattr(self.env, pycompat.sysstr(name))
            self._say(host, b'  %s: %s' % (name, script))
        result.tonode = self.node
        result.outcome = b'planned'

    def _deploy(self, shell, result):
        host = result.host
        self._enter(shell, result)
        self._lock(shell, result)
        try:
            have = self._readstate(shell, result)
            result.tonode = self.node
            if result.dirty:
                self._savepatch(shell, result)
            if (have and result.fromnode == self.node and not result.dirty):
                # Converge: nothing to change, but the health check runs.
                self._say(host, _(b'already at %s') % self.node[:12])
                steps = [s for s in self._stepscripts(have) if s[0] == b'check']
                result.outcome = b'unchanged'
            else:
                steps = self._stepscripts(have)
                result.outcome = b'ok'
            try:
                for name, script in steps:
                    if script is not None:
                        self._step(shell, result, name, script)
            finally:
                self._journal(shell, result)
        finally:
            try:
                shell.run(lock.RELEASE, subshell=False)
            except ShellError:
                pass  # the session is gone, and its lock with it

    def _lock(self, shell, result):
        host = result.host
        holder = {
            b'user': self.user,
            b'client': self.client,
            b'since': pycompat.sysbytes(_isotime(time.time())),
            b'command': b'env%s %s' % (self.kind, self.env.name),
        }
        status, out = shell.run(
            lock.acquirescript(holder, self.settings[b'locktimeout'],
                               self.breaklock),
            subshell=False,
            timeout=self.settings[b'timeout'] + self.settings[b'locktimeout'],
        )
        for event, info in lock.parseinfo(out):
            if event == 'waiting':
                self._say(host, _(b'waiting for the deploy lock held by %s')
                          % lock.describe(info))
            elif event == 'stale':
                self._say(host, _(b'removed a stale lock left by %s')
                          % lock.describe(info), 'warn')
            elif event == 'broken':
                self._say(host, _(b'broke the lock held by %s')
                          % lock.describe(info), 'warn')
            elif event == 'held':
                result.fail(
                    b'lock', _(b'locked by %s') % lock.describe(info), b'',
                    _(b'wait for that deploy to end; if it is dead, run '
                      b'again with --break-lock'),
                )
        if status:
            if result.outcome != b'failed':
                result.fail(b'lock', _(b'cannot take the deploy lock'), out)
            raise StepFailed()

    def _savepatch(self, shell, result):
        name = b'%s/patches/%s.patch' % (journal.DIRECTORY, self.id)
        status, out = shell.run(
            b'mkdir -p %s/patches && %s diff --git > %s'
            % (journal.DIRECTORY, self.hg, name)
        )
        if status:
            result.fail(b'state', _(b'could not save manual edits'), out,
                        _(b'nothing was changed on this host'))
            raise StepFailed()
        result.patch = name
        self._say(result.host, _(b'manual edits to %s saved as %s/%s')
                  % (b', '.join(result.dirty), self.env.path, name), 'warn')

    def _step(self, shell, result, name, script):
        host = result.host
        if self._cancel.is_set():
            result.fail(name, _(b'interrupted before this step'))
            result.outcome = b'interrupted'
            raise StepFailed()
        self._say(host, b'%s ...' % name, 'note')
        result.current = name
        start = time.time()
        status, out = shell.run(script, output=self._lineprinter(host))
        duration = time.time() - start
        result.steps.append(
            {'name': name.decode('ascii'), 'status': status,
             'duration': round(duration, 3)}
        )
        if status == 0:
            self._say(host, _(b'%s ok (%.1fs)') % (name, duration))
            return
        hint = None
        message = _(b'%s exited with status %d') % (name, status)
        if name == b'pull' and b'unknown revision' in out:
            message = _(b'changeset %s is not in the source') % self.node[:12]
            hint = _(b"push it there first (hg push -r %s)") % self.node[:12]
        result.fail(name, message, out, hint)
        raise StepFailed()

    def _journal(self, shell, result):
        record = {
            'id': self.id,
            'kind': self.kind,
            'env': self.env.name,
            'branch': self.env.branch,
            'host': result.host.spec,
            'user': self.user,
            'client': self.client,
            'started': _isotime(result.started),
            'finished': _isotime(time.time()),
            'duration': round(time.time() - result.started, 3),
            'from': result.fromnode,
            'to': result.tonode,
            'dirty': result.dirty,
            'patch': result.patch,
            'steps': result.steps,
            'outcome': result.outcome,
        }
        if result.failed:
            record['failed'] = result.failed
            record['message'] = result.message
        record = {k: _jsonable(v) for k, v in record.items()}
        status, out = shell.run(journal.appendscript(record))
        if status:
            self._say(result.host, _(b'could not write the journal: %s')
                      % out.strip(), 'warn', b'envdeploy.failed')
            if result.ok:
                result.fail(b'journal', _(b'could not write the journal'), out)


def _jsonable(value):
    """Journal values are text: decode bytes (lossless for ASCII hashes)."""
    if isinstance(value, bytes):
        return value.decode('utf-8', 'surrogateescape')
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def deployenv(ui, repo, name, rev=None, dryrun=False, breaklock=False,
              opts=None):
    """Deploy environment ``name`` as ``hg envdeploy`` does; return 0.

    The one entry point for the command, ``envmerge --deploy`` and the
    hooks, so that all of them lock, journal and report the same way.
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
                 breaklock=breaklock)
    return report(ui, env, run.run(), opts or {})


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
            tail = r.output.splitlines()[-FAILURE_TAIL:]
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
