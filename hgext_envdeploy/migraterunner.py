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

Warm start.  Most of a small project's Django start is importing Django
itself, which no ``hg update`` of the project changes.  Where this
deploy is expected to migrate (the client's records of the host, see
:func:`predict`), the lock's round trip also starts the same Python in the
background (:func:`warmscript`): it imports Django's own modules while the
command server pulls and updates, then waits on a socket under the
target's ``.hg/envdeploy``.  The runner's step is then a small hand-over
(:func:`goscript`): it passes the session's input and output, its
directory and environment to the waiting process, which becomes the
runner above (``manage.py shell -c``, the project's settings and apps
imported only now, from the updated files) and answers with its exit
status.  Whenever the hand-over is refused (nothing waiting, another
directory or ``PYTHON*`` variables, a Django found elsewhere from the
project's directory), the runner starts cold, as without it.  A waiting
process nobody comes for ends with the session's shell.
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
w = b" warm" if os.environ.pop("ENVDEPLOY_RUNNER_WARM", None) else b""
o.write(b"\\x1denvdeploy-migrate-state %%d%%s\\n" %% (len(s), w) + s); o.flush()
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


# The warm runner's socket, relative to the target repository (the
# session's directory when it starts): a socket path has at most about
# 100 bytes, and the directory is the deploy user's.
SOCKET = b'.hg/envdeploy/runner.sock'
_COLD = 96  # the hand-over's status when nothing was handed over

# Django's own modules, importable before any settings: what
# ``django.setup()`` and ``migrate`` spend most of their start on.  One
# that fails (a backend without its driver) is skipped.
_PRELOAD = (
    'django.core.management', 'django.core.management.commands.migrate',
    'django.core.management.commands.showmigrations',
    'django.core.management.commands.shell', 'django.db.models',
    'django.db.migrations.executor', 'django.db.migrations.autodetector',
    'django.db.backends.sqlite3.base', 'django.db.backends.postgresql.base',
    'django.db.backends.mysql.base', 'django.contrib.admin',
    'django.contrib.messages', 'django.contrib.staticfiles',
    'django.contrib.sessions.backends.db', 'django.core.checks',
    'django.forms', 'django.template', 'django.urls',
)

# ``PYTHON -c WARM SOCKET MANAGE``, in the background from the lock's
# round trip (input, output and errors /dev/null: nothing of it reaches
# the session until the hand-over).  It ends when its shell does.
_WARM = '''\
import importlib, importlib.machinery, os, socket, struct, sys, time
os.closerange(3, 256)
sock, manage = sys.argv[1], sys.argv[2]
shell = os.getppid()
mine = {k: v for k, v in os.environb.items() if k.startswith(b"PYTHON")}
safe = getattr(sys.flags, "safe_path", False)
if not safe:
    del sys.path[0]  # -c's "": the repository, whose files may change
try:
    os.unlink(sock)
except OSError:
    pass
mask = os.umask(0o177)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sock)
os.umask(mask)
server.listen(1)
here = os.path.realpath(".") + os.sep
spec = importlib.machinery.PathFinder.find_spec("django", sys.path)
if spec and spec.origin and not os.path.realpath(spec.origin).startswith(here):
    for name in %(preload)r:
        try:
            importlib.import_module(name)
        except Exception:
            pass
server.settimeout(0.5)
deadline = time.monotonic() + 3600
conn = None
while True:
    try:
        conn = server.accept()[0]
        break
    except socket.timeout:
        if os.getppid() != shell or time.monotonic() > deadline:
            break
try:
    os.unlink(sock)
except OSError:
    pass
server.close()
if conn is None:
    sys.exit(0)
conn.settimeout(60)
if hasattr(socket, "SO_PEERCRED"):
    uid = struct.unpack("3i", conn.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
    if uid != os.getuid():
        sys.exit(0)
head, fds = socket.recv_fds(conn, 4, 3)[:2]
data = b""
size = struct.unpack(">I", head)[0]
while len(data) < size:
    chunk = conn.recv(size - len(data))
    if not chunk:
        sys.exit(0)
    data += chunk
cwd, *pairs = data.split(b"\\0")
environ = dict(p.split(b"=", 1) for p in pairs if b"=" in p)
if not safe:
    sys.path.insert(0, os.path.dirname(os.path.realpath(manage)))  # as python manage.py
found = importlib.machinery.PathFinder.find_spec("django", sys.path)
if (len(fds) != 3 or not os.path.samefile(cwd, ".")
        or {k: v for k, v in environ.items() if k.startswith(b"PYTHON")} != mine
        or ("django" in sys.modules and (found is None or found.origin
            != sys.modules["django"].__spec__.origin))):
    sys.exit(0)
conn.sendall(b"T")
os.environb.clear()
os.environb.update(environ)
os.environ["ENVDEPLOY_RUNNER_WARM"] = "1"
for i, fd in enumerate(fds):
    os.dup2(fd, i)
    os.close(fd)
sys.argv = [manage, "shell", "-v", "0", "-c", sys.argv[3]]
code = 0
try:
    import runpy
    runpy.run_path(manage, run_name="__main__")
except SystemExit as e:
    code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
except BaseException:
    import traceback
    traceback.print_exc()
    code = 1
for f in (sys.stdout, sys.stderr):
    try:
        f.flush()
    except Exception:
        pass
null = os.open(os.devnull, os.O_RDWR)
for i in (0, 1, 2):
    os.dup2(null, i)
conn.sendall(struct.pack(">i", code))
conn.close()
sys.exit(code)
'''

# The hand-over, run by the same Python isolated (no site: it only
# passes file descriptors): status 96 when nothing was handed over.
_GO = '''\
import os, socket, struct, sys
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    data = b"\\0".join([os.getcwdb()] + [k + b"=" + v for k, v in os.environb.items()])
    socket.send_fds(s, [struct.pack(">I", len(data))], [0, 1, 2])
    s.sendall(data)
    taken = s.recv(1)
except Exception:
    sys.exit(96)
if taken != b"T":
    sys.exit(96)
b = b""
while len(b) < 4:
    c = s.recv(4 - len(b))
    if not c:
        sys.exit(1)
    b += c
sys.exit(struct.unpack(">i", b)[0])
'''

# The words a warm start needs from ``migrate``'s ``PYTHON DIR/manage.py``:
# plain ones, as the shell reads them in either start.
_WORD = re.compile(br'^[-\w.,:/~+@%=]+$')


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


def _code(args):
    argv = repr(['manage.py', 'migrate']
                + [a.decode('ascii') for a in args])
    return (_CODE % {'argv': argv}).encode()


def script(manage, args):
    """The shell command starting the runner (``ENVDEPLOY_REPO``: the
    target repository, where the journal is, whatever ``manage`` does)."""
    inner = b"%s shell -v 0 -c %s" % (manage, quote(_code(args)))
    return b'ENVDEPLOY_REPO="$PWD" sh -c %s' % quote(inner)


def _warmparts(run, host):
    """``(python, manage.py, args)`` when ``host`` may start warm, or None:
    ``migrate`` is ``PYTHON [DIR/]manage.py migrate ...`` in plain words,
    in place (a release's directory does not exist at the lock yet)."""
    from . import releases

    found = usable(run, host)
    if found is None or releases.enabled(run.env):
        return None
    words = found[0].split()
    if len(words) != 2 or not all(_WORD.match(w) for w in words):
        return None
    return words[0], words[1], found[1]


def predict(run, results, latest):
    """The host specs that should start a warm runner with their lock:
    migration hosts whose last known changeset (``latest``, this
    repository's records: ``{host: record}``) is one from which
    going to the deploy's changes migrations.  A wrong guess costs a
    Django import on the host, or the time a warm start saves."""
    if run.dryrun:
        return set()
    warm = set()
    touched = {}
    for r in results:
        if run.migrator(r) is not r or _warmparts(run, r.host) is None:
            continue
        node = latest.get(r.host.spec, {}).get('node')
        if node not in touched:
            touched[node] = migrations.touched(run.repo, run.env, node,
                                               run.node)
        if touched[node]:
            warm.add(r.host.spec)
    return warm


def warmscript(run, host):
    """The background start sent with the lock (see the module's help)."""
    python, manage, args = _warmparts(run, host)
    code = (_WARM % {'preload': _PRELOAD}).encode()
    return b'%s -c %s %s %s %s </dev/null >/dev/null 2>&1 &' % (
        python, quote(code), quote(SOCKET), manage, quote(_code(args)))


def goscript(python, manage, args):
    """The runner's step after a warm start: the hand-over, or the cold
    start (:func:`script`) when it is refused."""
    return (b'ENVDEPLOY_REPO="$PWD" %s -I -S -c %s %s; s=$?; '
            b'if [ "$s" = %d ]; then %s; else (exit "$s"); fi'
            % (python, quote(_GO.encode()), quote(SOCKET), _COLD,
               script(manage, args)))


def start(run, result):
    """Start the runner on ``result``'s host; a :class:`Runner` holding the
    listing, or None (nothing left running) to read the state as before."""
    found = usable(run, result.host)
    if found is None:
        return None
    session = result.session
    shell = session.shell
    session.hgserver.stop()
    if session.warmrunner:
        session.warmrunner = False
        shell.spawn(goscript(_warmparts(run, result.host)[0], *found))
    else:
        shell.spawn(script(*found))
    shell.busy = True
    try:
        listing, warm = _listing(shell)
        if listing is None:
            shell.result()  # the runner's end, and the shell's marker
            return None
    finally:
        shell.busy = False
    if warm:
        run.say(result.host, _(b'migration runner started warm (Django '
                               b'imported during the update)'), 'debug')
    return Runner(run, session, listing)


def _listing(shell):
    """``(listing, warm)``: the runner's listing, or None when it ended
    without one (what it printed before, a settings module's noise, is
    skipped); whether it started warm."""
    marker = shell._marker
    while True:
        line = b''
        while not line.endswith(b'\n') and marker not in line:
            line += shell.read(1)
        if marker in line:
            shell.unread(line[line.index(marker):])
            return None, False
        if line.startswith(_HEADER):
            fields = line[len(_HEADER):].split()
            size = int(fields[0])
            if size > _MAXLISTING:
                raise ShellError('migration runner: a listing of %d bytes'
                                 % size)
            return migrations.parse(shell.read(size)), b'warm' in fields[1:]


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
