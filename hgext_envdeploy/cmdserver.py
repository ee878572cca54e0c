# cmdserver.py - hg commands on a target through one Mercurial command server
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Run the target's hg commands in one process.

Reading the state, pulling and updating are three hg commands; as three
processes, each pays Python's start and Mercurial's imports (about 0.2 s
apiece on a small server), more than the work itself.  Mercurial's own
command server (``hg serve --cmdserver pipe``, the protocol of chg and
python-hglib, in Mercurial's ``commandserver.py``) runs them in one: it
starts in the host's shell, on the session's own input and output, answers
commands until it reads an empty line, then the shell takes over again.

Where it cannot start (an ``hg`` wrapper that is not Mercurial, a server
that says something else), or with ``[envdeploy] cmdserver = false``,
every command runs as its own process instead, with the same output and
exit status.
"""

import struct

from mercurial.i18n import _

from .shell import ShellError, quote

# Frames: a channel letter, a big-endian length, then the data; the
# result channel's data is the exit status.
_INT = struct.Struct('>i')
# Beyond these a length is noise, not a frame.
_MAXFRAME = 1 << 26
_MAXHELLO = 1 << 16


class CommandServer:
    """``hg`` (a shell snippet) commands on ``shell``, in one process.

    :meth:`run` starts the server on first use; :meth:`stop` ends it before
    the shell runs anything else.
    """

    def __init__(self, shell, hg, enabled=True):
        self.shell = shell
        self.hg = hg
        self.usable = enabled
        self.running = False
        self.starting = False
        self.environ = {}  # what begin() added to the running server's

    def commandline(self, args):
        """``args`` as a shell command line (run, or shown on a dry run)."""
        return b' '.join([self.hg] + [quote(a) for a in args])

    def run(self, args, output=None, last=False):
        """Run ``hg ARGS``; ``(exit status, output)`` as a process would."""
        return self.runmany([args], output, last)[0]

    def runmany(self, commands, output=None, last=False):
        """Run each of ``commands`` (hg arguments), in order, sent together:
        one round trip for all, where the server runs.  Each runs whatever
        the one before did, so they must not depend on each other.  A list
        of ``(exit status, output)``; ``output`` gets the first one's lines.

        ``last``: the server ends after them, told in the same round trip
        (the empty line is the server's to read, nothing after it)."""
        if not self.running and self.usable:
            self.begin()
            self.greet()
        if not self.running:
            return [self.shell.run(self.commandline(args),
                                   output=output if not i else None)
                    for i, args in enumerate(commands)]
        if self.shell.trace is not None:
            for args in commands:
                self.shell.trace(b'%s (command server)'
                                 % self.commandline(args))
        self.shell.busy = True
        try:
            for args in commands:
                data = b'\0'.join(args)
                self.shell.write(b'runcommand\n' + struct.pack('>I', len(data))
                                 + data)
            if last:
                self.shell.write(b'\n')
            answers = [self._answer(output if not i else None)
                       for i in range(len(commands))]
            if last and self.running:
                self.running = False
                self.environ = {}
                self.shell.result()  # its end, and the shell's marker
            return answers
        finally:
            self.shell.busy = False

    def _answer(self, output):
        """The frames of one command, up to its exit status."""
        lines = _Lines(self.shell, output)
        while True:
            frame = self._frame()
            if frame is None:
                lines.add(_(b'hg command server ended unexpectedly\n'))
                return 255, lines.close()
            channel, data = frame
            if channel in b'oe':
                lines.add(data)
            elif channel == b'r':
                return _INT.unpack(data)[0], lines.close()
            elif channel in b'IL':
                self.shell.write(struct.pack('>I', 0))  # no input: EOF
            elif channel.isupper():
                # A required channel we do not know: the protocol is
                # lost, and with it the session.
                raise self._lost('unknown channel %r' % channel)

    def stop(self):
        """End the server (an empty line); the shell is ours again."""
        self.greet()
        if not self.running:
            return
        self.running = False
        self.environ = {}
        if self.shell.broken:
            return  # the session is lost: the server ends with it
        self.shell.write(b'\n')
        self.shell.result()

    def begin(self, guard=None, environ=None):
        """Start the server without waiting (see :meth:`greet`): sent after
        other scripts, it costs no round trip of its own.  ``guard(script)``
        wraps the command line (HostSession.lock: only in path).
        ``environ``: ``{name: shell word}`` exported to the server only
        (the words are ours, expanded by the shell: never a user's value)."""
        if self.usable and not self.running:
            script = b'%s serve --cmdserver pipe' % self.hg
            if environ:
                # A subshell: the session's own variables stay as they are.
                script = b'( %s && %s )' % (b' && '.join(
                    b'export %s=%s' % item for item in sorted(environ.items())),
                    script)
            self.shell.spawn(guard(script) if guard else script)
            self.starting = True
            self.environ = dict(environ or {})

    def greet(self):
        """Read the greeting of the server :meth:`begin` started."""
        if not self.starting:
            return
        self.starting = False
        header = self.shell.read(1)
        if self.shell.isend(header):
            # It did not start (no such command, no repository ...): each
            # command runs as a process, which shows why if it fails too.
            self.shell.unread(header)
            self.shell.result()
            self.usable = False
            return
        if header == b'o':
            (length,) = struct.unpack('>I', self.shell.read(4))
            # A greeting is a few lines: a text that merely starts with
            # 'o' reads as an enormous length.
            hello = self.shell.read(length) if length < _MAXHELLO else b''
            fields = dict(line.split(b': ', 1)
                          for line in hello.splitlines() if b': ' in line)
            if b'runcommand' in fields.get(b'capabilities', b'').split():
                self.running = True
                return
        # Something else answered: let it end, then run processes.
        self.shell.write(b'\n')
        self.shell.result()
        self.usable = False

    def _frame(self):
        """The next ``(channel, data)``; None when the server has ended."""
        header = self.shell.read(1)
        if self.shell.isend(header):
            self.shell.unread(header)
            self.shell.result()
            self.running = False
            return None
        return self._rest(header)

    def _rest(self, channel):
        (length,) = struct.unpack('>I', self.shell.read(4))
        if channel in b'IL':
            return channel, length  # how much input it wants
        if length > _MAXFRAME:
            raise self._lost('a frame of %d bytes' % length)
        return channel, self.shell.read(length)

    def _lost(self, why):
        self.shell.broken = 'hg command server: %s' % why
        self.running = False
        return ShellError(self.shell.broken)


class _Lines:
    """Output as it comes, handed to ``output`` a complete line at a time
    (as the shell's steps hand theirs), whatever the frames' boundaries."""

    def __init__(self, shell, output):
        self.emit = shell.emit
        self.output = output
        self.captured = []
        self.partial = b''

    def add(self, data):
        data = self.partial + data
        cut = data.rfind(b'\n') + 1
        self.emit(data[:cut], self.captured, self.output)
        self.partial = data[cut:]

    def close(self):
        self.emit(self.partial, self.captured, self.output)
        return b''.join(self.captured)
