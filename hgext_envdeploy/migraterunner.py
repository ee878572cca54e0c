# migraterunner.py - read the migration state and migrate in one Django
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""One Django process for the migration state and ``migrate``.

A deploy that migrates reads the state first (what a rollback returns to),
journals it, then migrates: two Django starts, the first one about a
quarter of a small deploy.  When ``migrate`` is the standard form
(``PYTHON [DIR/]manage.py migrate [plain options]``, no ``migrate.state``,
no ``backup``), a small runner does both in one process, started through
the project's own ``manage.py shell -c`` (so the project's Python and
settings), on the session's input and output as the command server is:

1. it prints ``showmigrations``'s listing behind a header;
2. the client journals the ``migrating`` line as before, through the
   runner: it sends the very shell script :func:`journal.appendscript`
   builds, which the runner runs in the target repository and answers
   with its exit status (written ahead: no migration runs unless the line
   is in the journal);
3. then, standard input closed and errors sent to the output, the runner
   is ``manage.py migrate ARGS`` (``execute_from_command_line``: the same
   output, prompts refused, exit status), read as the migrate step.

Where the runner ends before its listing (another Django, a project whose
``shell`` is its own), :func:`start` says so and the deploy reads the state
with ``showmigrations`` as before.
"""

import re

from mercurial.i18n import _

from . import journal, migrations
from .shell import ShellError, quote
from .target import StepFailed

# ``PYTHON manage.py migrate`` and options that are plain words: anything
# else (a pipe, ``&&``, a wrapper script) runs as written, as before.
_ARGS = re.compile(br'^(\s+[-\w=.,:/]+)*\s*$')
_HEADER = b'\x1denvdeploy-migrate-state '
_JOURNALED = b'\x1denvdeploy-migrate-journal '
# Beyond this a header's length is noise.
_MAXLISTING = 1 << 24

# Runs inside ``manage.py shell -c`` (Django set up).  It reads its
# questions from fd 0 byte by byte: nothing past them is the shell's.
# The interpreter's last collection after Django takes about 40 ms on the
# deploy's path, for memory the process is about to give back; migrate
# itself (run_from_argv) closes the database connections before.
_CODE = '''\
import atexit, gc, io, os, subprocess, sys
atexit.register(gc.freeze)
from django.core.management import call_command, execute_from_command_line
o = sys.stdout.buffer
def line():
    b = b""
    while not b.endswith(b"\\n"):
        c = os.read(0, 1)
        if not c:
            sys.exit(97)
        b += c
    return b
def data(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            sys.exit(97)
        b += c
    return b
s = io.StringIO()
call_command("showmigrations", stdout=s)
s = s.getvalue().encode()
o.write(b"\\x1denvdeploy-migrate-state %%d\\n" %% len(s) + s); o.flush()
n = int(line())
if n:
    p = subprocess.run(["sh", "-c", data(n).decode("utf-8", "surrogateescape")],
                       cwd=os.environ["ENVDEPLOY_REPO"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    o.write(b"\\x1denvdeploy-migrate-journal %%d %%d\\n" %% (p.returncode, len(p.stdout)) + p.stdout)
    o.flush()
    if p.returncode:
        sys.exit(98)
sys.stdout.flush(); sys.stderr.flush()
os.dup2(1, 2)
d = os.open(os.devnull, os.O_RDONLY); os.dup2(d, 0); os.close(d)
sys.stdin = open(os.devnull)
execute_from_command_line(%(argv)s)
'''


def usable(run, host):
    """``(manage, args)`` when the runner may migrate ``host``, or None."""
    env = run.env
    command = env.command(b'migrate', host)
    if not command or command != env.migrate or env.migratestate:
        return None
    if not run.settings.get(b'cmdserver', True):
        return None  # the user asked for plain processes
    from . import migrationplan
    if migrationplan._setting(run, b'backup'):
        return None  # the backup runs between the state and migrate
    m = migrations._MANAGE.match(command.strip())
    if not m:
        return None
    rest = command.strip()[m.end():]
    if not _ARGS.match(rest):
        return None
    return m.group('manage'), rest.split()


def script(manage, args):
    """The shell command starting the runner (``ENVDEPLOY_REPO``: the
    target repository, where the journal is, whatever ``manage`` does)."""
    argv = repr(['manage.py', 'migrate']
                + [a.decode('ascii') for a in args])
    code = _CODE % {'argv': argv}
    inner = b"%s shell -v 0 -c %s" % (manage, quote(code.encode()))
    return b'ENVDEPLOY_REPO="$PWD" sh -c %s' % quote(inner)


def start(run, result):
    """Start the runner on ``result``'s host; a :class:`Runner` holding the
    listing, or None (nothing left running) to read the state as before."""
    found = usable(run, result.host)
    if found is None:
        return None
    session = result.session
    shell = session.shell
    session.hgserver.stop()
    shell.spawn(script(*found))
    shell.busy = True
    try:
        listing = _listing(shell)
        if listing is None:
            shell.result()  # the runner's end, and the shell's marker
            return None
    finally:
        shell.busy = False
    return Runner(run, session, listing)


def _listing(shell):
    """The runner's listing, or None when it ended without one (what it
    printed before, a settings module's noise, is skipped)."""
    marker = shell._marker
    while True:
        line = b''
        while not line.endswith(b'\n') and marker not in line:
            line += shell.read(1)
        if marker in line:
            shell.unread(line[line.index(marker):])
            return None
        if line.startswith(_HEADER):
            size = int(line[len(_HEADER):])
            if size > _MAXLISTING:
                raise ShellError('migration runner: a listing of %d bytes'
                                 % size)
            return migrations.parse(shell.read(size))


class Runner:
    """The runner, waiting: :meth:`progress` journals through it, then the
    migrate step calls it (``session.step``'s callable form)."""

    def __init__(self, run, session, listing):
        self.run = run
        self.session = session
        self.command = run.env.migrate
        self.listing = listing
        self.waiting = True

    def progress(self, result, fields):
        """Journal the ``migrating`` line (run.progress's), through the
        runner; StepFailed, and the runner ended, when it cannot."""
        self.waiting = False
        script = journal.appendscript(dict(fields, id=self.run.id),
                                      journal.MIGRATING)
        shell = self.session.shell
        if shell.trace is not None:
            shell.trace(b'%s (migration runner)' % script)
        self._send(script)
        shell.busy = True
        try:
            line = b''
            while not line.endswith(b'\n'):
                line += shell.read(1)
            if not line.startswith(_JOURNALED):
                raise ShellError('migration runner: no answer to the journal')
            status, size = (int(x) for x in line[len(_JOURNALED):].split())
            out = shell.read(size)
            if status:
                shell.result()
                self.waiting = False
                raise StepFailed(b'journal', _(b'could not write the journal: '
                                               b'%s') % out.strip())
        finally:
            shell.busy = False

    def _send(self, data):
        self.session.shell.write(b'%d\n%s' % (len(data), data))

    def describe(self):
        return self.command

    def __call__(self, session, output):
        if self.waiting:
            self.waiting = False
            self._send(b'')  # no journal line: migrate at once
        return session.shell.result(output)
