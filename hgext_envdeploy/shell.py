# shell.py - one POSIX shell on a target, driven command by command
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Quoting, and a long-lived ``sh`` on the target fed through a transport.

A deploy opens one shell per host and writes each step to its standard
input, so the whole deploy is one SSH session (one connection, no new
channel per step), the deploy lock can live exactly as long as that shell,
and the client still decides after every step what comes next.  After each
step the shell prints a marker carrying a random token and the step's exit
status; nothing a step prints can forge it.
"""

import os
import shlex
import time

from mercurial import pycompat


def quote(value):
    """Quote bytes for a POSIX shell: the result is one literal word."""
    text = value.decode('utf-8', 'surrogateescape')
    return shlex.quote(text).encode('utf-8', 'surrogateescape')


class ShellError(Exception):
    """The shell or its transport broke down (not a failing command)."""


class Shell:
    """Run scripts one after the other in one ``sh`` over ``transport``.

    ``transport`` has ``send(bytes)``, ``recv(timeout) -> bytes`` (``b''``
    at end of stream) and ``close()``.  ``mask``, when set, rewrites every
    output before anyone sees or keeps it (secrets: config.Environment).
    """

    def __init__(self, transport, timeout):
        self.transport = transport
        self.timeout = timeout
        self._token = pycompat.sysbytes(os.urandom(12).hex())
        self._marker = b'\x1eenvdeploy-%s:' % self._token
        self._buffer = b''
        # What is sent but not yet written: written in one piece when an
        # answer is awaited, so that scripts queued together travel in one
        # packet (small writes in a row would wait on TCP's acknowledgements).
        self._outgoing = []
        self._unclaimed = 0  # results sent for, that nobody will collect
        self.broken = None
        self.busy = False
        self.mask = None
        self.trace = None  # trace(script): --debug shows what is sent

    def run(self, script, output=None, subshell=True, timeout=None,
            shown=None):
        """Run ``script``; return ``(status, output bytes)``.

        Standard input is /dev/null, so a step never eats the next one.  In
        a subshell, ``exit`` or ``cd`` in the script do not affect later
        scripts; the lock and the working directory use ``subshell=False``.
        ``output(line)`` receives each complete line as it arrives.
        ``shown`` is what --debug shows instead of a script that carries
        a file's content.
        """
        self.send(script, subshell, shown)
        return self.result(output, timeout)

    def send(self, script, subshell=True, shown=None):
        """Queue ``script`` without waiting: several sent in a row cost one
        round trip; :meth:`result` then collects each, in order."""
        if self.trace is not None:
            self.trace(script if shown is None else shown)
        if self.broken:
            # After a timeout the shell may still be running the last step:
            # its output would answer the next question.  Never reuse it.
            raise ShellError(self.broken)
        opener, closer = (b'(', b')') if subshell else (b'{', b'}')
        if not script.strip():
            script = b':'
        self._outgoing.append(
            b'%s %s\n%s </dev/null 2>&1\n'
            b'printf \'\\036envdeploy-%s:%%d\\n\' "$?"\n'
            % (opener, script, closer, self._token)
        )

    def result(self, output=None, timeout=None):
        """``(status, output)`` of the oldest script sent and not collected."""
        self.busy = True
        try:
            return self._collect(output, timeout or self.timeout)
        except ShellError as exc:
            self.broken = str(exc)
            raise
        finally:
            self.busy = False

    # -- a program that speaks its own protocol on the session

    def spawn(self, script):
        """Start ``script`` reading the session's input.

        The caller then talks to it with :meth:`write` and :meth:`read`,
        and :meth:`result` waits for it to end and gives its exit status.
        Its error output is discarded: only its protocol reaches us.  The
        shell reads its own input no further than its current line, and
        nothing more is sent until the program answers, so the program
        never reads what is meant for the shell.
        """
        if self.trace is not None:
            self.trace(script)
        if self.broken:
            raise ShellError(self.broken)
        self._outgoing.append(
            b'{ %s\n} 2>/dev/null\n'
            b'printf \'\\036envdeploy-%s:%%d\\n\' "$?"\n'
            % (script, self._token)
        )

    def write(self, data):
        self._outgoing.append(data)

    def flush(self):
        """Write what was sent: before waiting for an answer, and before
        the shell closes."""
        if self._outgoing:
            data = b''.join(self._outgoing)
            self._outgoing = []
            self.transport.send(data)

    def endinput(self):
        """Write what was sent, then the end of input, in one go: the last
        scripts' answers and the shell's end come back together."""
        self.flush()
        self.transport.endinput()

    def discard(self):
        """The oldest result not collected yet is nobody's: the next
        :meth:`result` skips it (a command server told to end, say)."""
        self._unclaimed += 1

    def read(self, size):
        """Exactly ``size`` bytes of the spawned program's output."""
        self._drain(self.timeout)
        self.flush()
        deadline = time.monotonic() + self.timeout
        try:
            while len(self._buffer) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ShellError('no answer for %d seconds' % self.timeout)
                data = self.transport.recv(remaining)
                if data is None:
                    continue
                if not data:
                    raise ShellError('connection closed')
                self._buffer += data
                deadline = time.monotonic() + self.timeout
        except ShellError as exc:
            self.broken = str(exc)
            raise
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def unread(self, data):
        """Put back what :meth:`read` returned (it was the shell's marker)."""
        self._buffer = data + self._buffer

    def isend(self, data):
        """Whether ``data``, read where a reply was due, is the shell's
        marker: the spawned program has ended."""
        return data.startswith(self._marker[:len(data)])

    def _collect(self, output, timeout):
        self._drain(timeout)
        return self._collectone(output, timeout)

    def _drain(self, timeout):
        while self._unclaimed:
            self._unclaimed -= 1
            self._collectone(None, timeout)

    def _collectone(self, output, timeout):
        self.flush()
        captured = []
        deadline = time.monotonic() + timeout
        while True:
            pos = self._buffer.find(self._marker)
            if pos >= 0:
                end = self._buffer.find(b'\n', pos)
                if end >= 0:
                    status = int(self._buffer[pos + len(self._marker) : end])
                    self.emit(self._buffer[:pos], captured, output)
                    self._buffer = self._buffer[end + 1 :]
                    return status, b''.join(captured)
            # Emit complete lines now, keep a partial line (it may be the
            # start of the marker) for later.
            cut = self._buffer.rfind(b'\n') + 1
            if cut:
                self.emit(self._buffer[:cut], captured, output)
                self._buffer = self._buffer[cut:]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ShellError('no answer for %d seconds' % timeout)
            data = self.transport.recv(remaining)
            if data is None:
                continue  # silence: the deadline decides
            if not data:
                self.emit(self._buffer, captured, output)
                self._buffer = b''
                raise ShellError('connection closed')
            self._buffer += data
            # A step that prints steadily is alive: the timeout is for
            # silence, as ssh's ServerAliveInterval thinks of it.
            deadline = time.monotonic() + timeout

    def emit(self, data, captured, output):
        """Keep ``data`` in ``captured``; hand its lines to ``output``
        (the last one even without its newline).  Every output passes
        here, the command server's too: the one place to mask it."""
        if not data:
            return
        if self.mask is not None:
            data = self.mask(data)
        captured.append(data)
        if output is not None:
            lines = data.split(b'\n')
            if lines[-1] == b'':
                lines.pop()
            for line in lines:
                output(line)

    def close(self):
        """End the shell: its EXIT trap runs, then the transport closes.

        A broken shell may still be busy with its last step: do not wait
        for it (it ends, and unlocks, when that step does).
        """
        if not self.broken:
            try:
                self.flush()  # the last scripts (unlock) were only queued
            except OSError:
                pass  # the connection is gone: the EXIT trap unlocks
        self.transport.close(wait=not self.broken)
