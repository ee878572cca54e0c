"""A real PostgreSQL server on 127.0.0.1, owned by the tests.

Production has ONE database behind many hosts; the simulated sshd hosts share the
network, so every one of them reaches this server at 127.0.0.1:PORT.  Used by the
`postgres` and `pgdb` fixtures (tests/conftest.py):

    server = start(log_dir)                # initdb + pg_ctl start, a free port
    server.createdb("t_example")           # a fresh database
    local_settings("t_example", server.port)  # Django local_settings.py text for it
    applied_migrations(server.port, "t_example")  # [(app, name)], in id order
    server.stop()                          # by the postmaster's PID; nothing left behind

The cluster is throwaway: no fsync, trust authentication, superuser `postgres`.
The test process talks to it through psycopg (v3), as Django does.
"""
import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"
USER = "postgres"
_NEEDED = ("initdb", "pg_ctl", "postgres")


class PgError(RuntimeError):
    pass


def _version_key(bindir):
    # /usr/lib/postgresql/15/bin -> (15,); sorts 9.6 before 10.
    version = os.path.basename(os.path.dirname(bindir))
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_bindir():
    """The directory of the newest PostgreSQL server binaries, or None.

    Debian keeps them off PATH, in /usr/lib/postgresql/VERSION/bin; elsewhere initdb
    is usually on PATH."""
    def complete(bindir):
        return all(os.access(os.path.join(bindir, name), os.X_OK) for name in _NEEDED)

    debian = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if complete(d)]
    if debian:
        return max(debian, key=_version_key)
    initdb = shutil.which("initdb")
    if initdb:
        bindir = os.path.dirname(os.path.realpath(initdb))
        if complete(bindir):
            return bindir
    return None


def missing():
    """Why a PostgreSQL server cannot run here, or None."""
    if find_bindir() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed"
                " (Debian: apt-get install postgresql; or scripts/setup-env --sshd)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, but runuser (util-linux) is not installed"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start_time(pid):
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or None if
    it is gone or a zombie. Together with the PID it names one process, even after the
    PID is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return found


def _connect(port, dbname):
    import psycopg
    return psycopg.connect(host=HOST, port=port, user=USER, dbname=dbname,
                           autocommit=True, connect_timeout=10)


class PgServer:
    """A running cluster. `port` is where it listens on 127.0.0.1, `log` its log file
    (copied into log_dir at stop), `pid` the postmaster's PID."""

    def __init__(self, bindir, base, log_dir):
        self.bindir = bindir
        self.host = HOST
        self.user = USER
        self.port = None
        self.pid = None
        self._pid_start_time = None
        self._base = base  # owned by the server's user: data, sockets, log
        self.datadir = os.path.join(base, "data")
        self.log = os.path.join(base, "server.log")
        self._log_dir = log_dir

    def __repr__(self):
        return f"<PgServer {self.host}:{self.port} pid={self.pid}>"

    def _as_server_user(self, cmd):
        if os.geteuid() == 0:
            return ["runuser", "-u", USER, "--", *cmd]
        return cmd

    def _run(self, cmd, what):
        proc = subprocess.run(self._as_server_user(cmd), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        if proc.returncode != 0:
            raise PgError(f"{what} failed ({proc.returncode}): {shlex.join(cmd)}\n"
                          f"{proc.stdout}{proc.stderr}{self._log_text()}")
        return proc

    def _log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f"--- {self.log}\n{f.read()}"
        except FileNotFoundError:
            return ""

    def _init(self):
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir,
                   "--auth=trust", f"--username={USER}", "--encoding=UTF8",
                   "--locale=C", "--no-sync", "--no-instructions"], "initdb")

    def _start(self, attempts=5):
        # The port may be taken between the probe and the server's bind: try another.
        for attempt in range(attempts):
            self.port = _free_port()
            options = " ".join([
                f"-p {self.port}", f"-k {shlex.quote(self.datadir)}",
                f"-c listen_addresses={HOST}",
                # Throwaway data: durability only costs time.
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            ])
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                           "-o", options, "-l", self.log, "-w", "-t", "60", "-s",
                           "start"], "pg_ctl start")
                break
            except PgError as error:
                if "already in use" not in str(error) or attempt == attempts - 1:
                    raise
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        self._pid_start_time = _start_time(self.pid)
        atexit.register(self.stop)

    @property
    def running(self):
        return self.pid is not None and _start_time(self.pid) == self._pid_start_time

    def stop(self, timeout=30):
        """Stop the postmaster by its PID: SIGINT (fast shutdown: it ends its backends,
        then itself), SIGKILL to it and its children if it is still there after timeout.
        Then remove the cluster's files, the log copied to log_dir first. No-op if
        stopped."""
        if self.pid is None:
            return
        atexit.unregister(self.stop)
        if self.running:
            os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.running:
                for pid in [self.pid, *_children(self.pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                while self.running:
                    time.sleep(0.02)
        self.pid = None
        if self._log_dir and os.path.exists(self.log):
            shutil.copyfile(self.log, os.path.join(self._log_dir, "postgresql.log"))
        shutil.rmtree(self._base, ignore_errors=True)

    # -- databases -----------------------------------------------------------

    def connect(self, dbname="postgres"):
        """A psycopg connection (autocommit) to dbname as the superuser."""
        return _connect(self.port, dbname)

    def createdb(self, name):
        """Create the empty database `name` (exactly that name); returns it."""
        from psycopg import sql
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def dropdb(self, name):
        """Drop database `name`, ending any sessions still connected to it."""
        from psycopg import sql
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))

    def local_settings(self, dbname):
        return local_settings(dbname, self.port)

    def applied_migrations(self, dbname):
        return applied_migrations(self.port, dbname)

    def columns(self, dbname, table):
        return columns(self.port, dbname, table)


def start(log_dir=None):
    """initdb a new cluster and start it on a free port; returns a running PgServer.

    Its files live in a fresh directory under the system's temporary directory (the
    server's user must reach them, and pytest's tmp directories are private to root);
    they are removed by stop(), the server's log first copied into log_dir, if given.
    """
    bindir = find_bindir()
    if bindir is None:
        raise PgError(missing())
    base = tempfile.mkdtemp(prefix="envdeploy-pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam(USER)
        os.chown(base, user.pw_uid, user.pw_gid)
    server = PgServer(bindir, base, log_dir)
    try:
        server._init()
        server._start()
    except BaseException:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    return server


# -- what the tests look at ---------------------------------------------------


def local_settings(dbname, port):
    """The text of a Django local_settings.py whose default database is `dbname` on the
    test server at 127.0.0.1:port."""
    return (
        "# Written by the tests (tests/pgserver.py): the database all hosts share.\n"
        "DATABASES = {\n"
        '    "default": {\n'
        '        "ENGINE": "django.db.backends.postgresql",\n'
        f'        "HOST": {HOST!r},\n'
        f'        "PORT": {str(port)!r},\n'
        f'        "USER": {USER!r},\n'
        f'        "NAME": {dbname!r},\n'
        "    }\n"
        "}\n"
    )


def applied_migrations(port, dbname):
    """(app, name) of the migrations recorded in dbname's django_migrations, in id
    order (the order applied); empty if the table does not exist yet."""
    with _connect(port, dbname) as conn:
        if conn.execute("SELECT to_regclass('django_migrations')").fetchone()[0] is None:
            return []
        rows = conn.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall()
    return [tuple(row) for row in rows]


def columns(port, dbname, table):
    """Names of the columns of `table` (in the public schema), in table order; empty if
    there is no such table."""
    with _connect(port, dbname) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (table,)).fetchall()
    return [row[0] for row in rows]
