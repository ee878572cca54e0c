"""One `hg serve --cmdserver pipe` for a test's own Mercurial commands.

The suite's set-up commands (commit, update, clone, log...) are some 30 % of
the hg processes it starts, each paying 0.3 s of Python and Mercurial start
for milliseconds of work.  Mercurial's command server runs them in one
process, as chg does: a repository is opened afresh for every command (the
server starts outside any, and `--cwd` names where each runs), so what other
processes wrote is seen.  The commands under test (`hg envdeploy` and the
rest) still run as their own `hg` processes: see HgEnv.hg in conftest.

The protocol: https://wiki.mercurial-scm.org/CommandServer
"""
import os
import selectors
import struct
import subprocess
import time


class ServerGone(Exception):
    """The server did not start, or the command could not be sent to it:
    run the command as a process."""


class AnswerLost(Exception):
    """A command was sent and its answer never came: it may have run, in
    part or whole, so it is not run again (the test fails, naming it)."""


class HgPipe:
    def __init__(self, hg, env):
        # Outside any repository: every command names its own with --cwd.
        self.proc = subprocess.Popen(
            [hg, "serve", "--cmdserver", "pipe"], cwd="/", env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""
        channel, hello = self._read(time.monotonic() + 60)
        if channel != b"o" or b"runcommand" not in hello:
            self.close()
            raise ServerGone(f"no command server: {hello!r}")

    def _fill(self, size, deadline):
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while len(self._buffer) < size:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.close()
                    raise ServerGone("the command server did not answer in time")
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.close()
                    raise ServerGone(f"the command server ended: {err!r}")
                self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read(self, deadline):
        channel, length = struct.unpack(">cI", self._fill(5, deadline))
        if channel in b"IL":  # asks for input: the set-up commands never do
            self.close()
            raise ServerGone("the command asked for input")
        return channel, self._fill(length, deadline)

    def run(self, args, cwd, timeout):
        """(exit code, stdout, stderr) of `hg --cwd CWD ARGS`, as bytes."""
        data = b"\0".join(os.fsencode(a) for a in ["--cwd", cwd, *args])
        try:
            self.proc.stdin.write(b"runcommand\n" + struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            self.close()
            raise ServerGone("the command server ended")
        deadline = time.monotonic() + timeout
        out, err = [], []
        while True:
            try:
                channel, payload = self._read(deadline)
            except ServerGone as exc:
                raise AnswerLost(f"hg {' '.join(args)} in {cwd}: {exc}") from None
            if channel == b"r":
                return struct.unpack(">i", payload)[0], b"".join(out), b"".join(err)
            if channel == b"o":
                out.append(payload)
            elif channel == b"e":
                err.append(payload)
            # "d" (debug) and unknown optional channels: ignored, as the
            # protocol says lower-case ones may be.

    def close(self):
        """End the server; its stderr, if any."""
        if self.proc.stdout.closed:
            return b""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            return self.proc.stderr.read()
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()
