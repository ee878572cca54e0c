# envexec.py - run a command on the hosts of an environment
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envexec ENV [--host HOST | --role ROLE] [-i] -- COMMAND [ARG]...``

The command runs in ``path`` on each host (in parallel, one session each,
as a deploy's steps do), with the environment's ``env.NAME`` values
exported through the session; its output is printed line by line, after
the host's name, with the values of ``ENV.secret`` masked.  Several
arguments are quoted one by one; a single argument is the user's own
command line and runs as written.  No deploy lock is taken: an exec
changes no deployment (a deploy may run beside it).

``-i`` gives one host's command a terminal (a pty) wired to the user's:
over SSH a second channel of the host's connection, whose environment
comes from a file only the user can read, created by the first session
and removed by the command before it starts; for a local environment a
pty of this machine.  Output is masked there too, chunk by chunk (a
secret split between two reads escapes it).

Each host's journal gets one ``exec`` record when the command has ended
(see journal.py): who, the command (masked), its exit status.
"""

import os
import select
import signal
import subprocess
import time

from mercurial.i18n import _
from mercurial import error, pycompat
from mercurial.utils import procutil

from . import config, fanout, hostread, journal, transport
from .run import Run
from .shell import ShellError, quote
from .target import StepFailed, cdpath, isotime


class Exec(Run):
    """One envexec over the selected hosts of ``env``."""

    kind = journal.EXEC

    def __init__(self, ui, env, settings, hosts, script, interactive=False):
        super().__init__(ui, env, settings)
        self.hosts = hosts
        self.script = script
        self.shown = env.mask(script)  # what output and journal may say
        self.interactive = interactive

    def connect(self, host):
        if self._sshcontext is None and not self.env.islocal:
            self._sshcontext = transport.SSHContext(self.ui, self.settings)
        session = hostread.connect(self.env, host, self._sshcontext,
                                   self.settings, self.say)
        session.enter()  # cd path, export env.NAME
        return session

    def run(self):
        """Run on every host; ``{host spec: (exit status or None, error)}``."""
        found = {}

        def onehost(index, host):
            found[host.spec] = self._onhost(host)

        # Not self.foreach: it works on HostResults.
        fanout.foreach(self.ui, self.hosts, onehost,
                       self.settings[b'concurrency'], _(b'running'),
                       self.cancel, self.settings[b'grace'])
        return found

    def _onhost(self, host):
        started = time.time()
        try:
            session = self.connect(host)
        except (transport.ConnectError, StepFailed, ShellError) as exc:
            message, _hint = hostread.explain(exc)
            return None, message
        try:
            status, _out = session.run(b'sh -c %s' % quote(self.script),
                                       output=self._printer(host))
        except ShellError as exc:
            session.close()
            return None, hostread.explain(exc)[0]
        self._journal(session, host, started, status)
        session.close()
        return status, b''

    def _printer(self, host):
        def output(line):
            with self._outlock:
                self.ui.write(b'%s: | %s\n' % (host.name, line))  # as a deploy's

        return output

    def _journal(self, session, host, started, status):
        """Append the exec record; a failure to do so is said, not fatal."""
        try:
            session.append(self.execrecord(host, started, status))
        except (StepFailed, ShellError) as exc:
            self.say(host, _(b'could not write the journal: %s')
                     % hostread.explain(exc)[0], 'warn', b'envdeploy.failed')

    def execrecord(self, host, started, status):
        """The journal record (format in journal.py)."""
        now = time.time()
        return {
            'id': self.id,
            'kind': journal.EXEC,
            'env': self.env.name,
            'branch': self.env.branch,
            'host': host.spec,
            'role': host.role,
            'user': self.user,
            'client': self.client,
            'started': isotime(started),
            'finished': isotime(now),
            'duration': round(now - started, 3),
            'command': self.shown,
            'interactive': self.interactive,
            'status': status,
            'outcome': journal.OK if status == 0 else journal.FAILED,
        }

    # -- -i: one host, a terminal

    def runinteractive(self, host, fin, fout):
        """The command on a pty of ``host``, wired to the terminal."""
        started = time.time()
        session = self.connect(host)
        try:
            if self.env.islocal:
                pipe = _LocalPty(self.env, self.script, fout)
            else:
                pipe = _RemotePty(session, self.env, self.script, fout)
            status = _relay(pipe, fin, fout, self.env.mask)
            self._journal(session, host, started, status)
        finally:
            session.close()
        return status


def command(args):
    """The command line for ``args``: one argument as written, several
    quoted one by one.

    >>> command([b'python manage.py check | tail -1'])
    b'python manage.py check | tail -1'
    >>> command([b'python', b'manage.py', b'shell', b'-c', b'print(1); x'])
    b"python manage.py shell -c 'print(1); x'"
    """
    if len(args) == 1:
        return args[0]
    return b' '.join(quote(a) for a in args)


def select_hosts(env, hostname=None, role=None):
    """The hosts of ``env`` to run on: all, HOST, or those of ROLE."""
    if hostname and role:
        raise error.InputError(_(b'give --host or --role, not both'))
    if hostname:
        hosts = [h for h in env.hosts if h.spec == hostname]
        if not hosts:
            raise error.InputError(
                _(b"host '%s' is not in environment '%s'") % (hostname,
                                                            env.name),
                hint=_(b'its hosts: %s') % b', '.join(h.spec
                                                     for h in env.hosts))
        return hosts
    if role:
        hosts = [h for h in env.hosts if h.role == role]
        if not hosts:
            roles = sorted({h.role for h in env.hosts if h.role})
            raise error.InputError(
                _(b"environment '%s' has no role '%s'") % (env.name, role),
                hint=_(b'its roles: %s') % (b', '.join(roles) or _(b'none')))
        return hosts
    return list(env.hosts)


def envexec(ui, repo, name, args, hostname=None, role=None,
            interactive=False):
    """``hg envexec``: 0, the one host's exit status, or 1."""
    env = config.load(ui, name)
    if not args:
        raise error.InputError(_(b'what should run? hg envexec %s -- COMMAND')
                               % name)
    hosts = select_hosts(env, hostname, role)
    script = command(args)
    settings = config.settings(ui)
    run = Exec(ui, env, settings, hosts, script, interactive)
    if interactive:
        if len(hosts) != 1:
            raise error.InputError(
                _(b'-i runs on one host, and %s has %d here')
                % (env.name, len(hosts)),
                hint=_(b'pick one with --host'))
        if not (procutil.isatty(ui.fin) and procutil.isatty(ui.fout)):
            raise error.InputError(
                _(b'-i needs a terminal'),
                hint=_(b'run it from a terminal, or without -i'))
        ui.note(_(b'%s: %s (interactive)\n') % (hosts[0].name, run.shown))
        try:
            status = run.runinteractive(hosts[0], ui.fin, ui.fout)
        except (transport.ConnectError, StepFailed) as exc:
            message, hint = hostread.explain(exc)
            raise error.Abort(b'%s: %s' % (hosts[0].name, message), hint=hint)
        return status
    ui.note(_(b'running on %s: %s\n')
            % (b', '.join(h.label for h in hosts), run.shown))
    found = run.run()
    failed = []
    for host in hosts:
        status, message = found.get(host.spec, (None, _(b'interrupted')))
        if status is None:
            ui.warn(_(b'%s: %s\n') % (host.name, message),
                    label=b'envdeploy.failed')
            failed.append(b'%s (%s)' % (host.name, message))
        elif status:
            ui.warn(_(b'%s: exited with status %d\n') % (host.name, status),
                    label=b'envdeploy.failed')
            failed.append(b'%s (status %d)' % (host.name, status))
    if not failed:
        return 0
    if len(hosts) > 1:
        ui.warn(_(b'envexec: failed on %d of %d hosts: %s\n')
                % (len(failed), len(hosts), b', '.join(failed)),
                label=b'envdeploy.failed')
        return 1
    status = found.get(hosts[0].spec, (None, b''))[0]
    return 255 if status is None else status  # as ssh says it


# -- the terminal relay of -i


def _winsize(fout):
    try:
        size = os.get_terminal_size(fout.fileno())
        return size.columns, size.lines
    except (OSError, ValueError):
        return 80, 24


class _RemotePty:
    """The command on a pty channel of the host's SSH connection."""

    def __init__(self, session, env, script, fout):
        # The environment goes into a file only we can read, written by
        # the session's shell (its input is no command line); the command
        # reads it and removes it before it starts.
        exports = b''.join(b'export %s=%s\n' % (k, quote(v))
                           for k, v in sorted(env.environ.items()))
        status, out = session.run(
            b'_f=$(umask 077 && mktemp) && printf %%s %s > "$_f" && '
            b'printf "path:%%s\\n" "$_f"' % quote(exports))
        where = hostread.prefixed(out).get(b'path')
        if status or not where:
            raise StepFailed(b'exec', _(b'cannot prepare the session: %s')
                             % hostread.lastline(out))
        self.channel = session.shell.transport.openchannel()
        width, height = _winsize(fout)
        term = pycompat.sysstr(os.environ.get('TERM') or 'vt100')
        self.channel.get_pty(term=term, width=width, height=height)
        self.channel.exec_command(
            b'cd -- %s && . %s && rm -f %s && HGPLAIN=1 && export HGPLAIN '
            b'&& exec sh -c %s'
            % (cdpath(env.path), quote(where[0]), quote(where[0]),
               quote(script)))

    def fileno(self):
        return self.channel.fileno()

    def recv(self):
        return self.channel.recv(65536)

    def send(self, data):
        self.channel.sendall(data)

    def resize(self, width, height):
        self.channel.resize_pty(width=width, height=height)

    def done(self):
        return self.channel.exit_status_ready() and not self.channel.recv_ready()

    def status(self):
        return self.channel.recv_exit_status()


class _LocalPty:
    """The command on a pty of this machine (a local environment)."""

    def __init__(self, env, script, fout):
        import pty

        self.master, slave = pty.openpty()
        self._setsize(slave, *_winsize(fout))
        environ = transport._cleanenv()
        environ.update({pycompat.sysstr(k): pycompat.sysstr(v)
                        for k, v in env.environ.items()})
        environ['HGPLAIN'] = '1'
        self.proc = subprocess.Popen(
            ['/bin/sh', '-c', pycompat.sysstr(script)],
            cwd=pycompat.fsdecode(env.path), env=environ,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: _controlling(slave))
        os.close(slave)
        self.ended = False

    @staticmethod
    def _setsize(fd, width, height):
        import fcntl
        import struct
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ,
                    struct.pack('HHHH', height, width, 0, 0))

    def fileno(self):
        return self.master

    def recv(self):
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the last process holding the pty has gone
            data = b''
        if not data:
            self.ended = True
        return data

    def send(self, data):
        os.write(self.master, data)

    def resize(self, width, height):
        self._setsize(self.master, width, height)

    def done(self):
        return self.ended

    def status(self):
        status = self.proc.wait()
        os.close(self.master)
        return status if status >= 0 else 128 - status


def _controlling(fd):
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _relay(pipe, fin, fout, mask):
    """Wire the terminal (raw) to ``pipe`` until its command ends."""
    import termios
    import tty

    infd, outfd = fin.fileno(), fout.fileno()
    fout.flush()
    saved = termios.tcgetattr(infd)
    resized = None
    try:
        resized = signal.signal(
            signal.SIGWINCH, lambda *a: pipe.resize(*_winsize(fout)))
    except ValueError:  # not the main thread: no resizing
        pass
    tty.setraw(infd)
    try:
        inputopen = True
        while not pipe.done():
            watched = [pipe] + ([infd] if inputopen else [])
            try:
                ready, _w, _x = select.select(watched, [], [], 0.2)
            except InterruptedError:
                continue
            if pipe in ready:
                data = pipe.recv()
                if data:
                    os.write(outfd, mask(data))
                elif not pipe.done():
                    break
            if infd in ready:
                data = os.read(infd, 4096)
                if data:
                    pipe.send(data)
                else:
                    inputopen = False
    finally:
        termios.tcsetattr(infd, termios.TCSADRAIN, saved)
        if resized is not None:
            signal.signal(signal.SIGWINCH, resized)
    return pipe.status()
