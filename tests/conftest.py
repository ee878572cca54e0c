"""Fixtures: an isolated `hg`, real OpenSSH hosts on 127.0.0.1, a central repository.

hgenv          runs the real `hg` (and other commands) with a private HOME/hgrc.
sshd_hosts     three sshd "hosts", each seeing its own disk at the same absolute path.
fleet          sixteen such hosts (module scope), for many-host deploys.
remote_dir     a fresh directory at that shared path, created on every host.
central_repo   a repository holding the demo Django project, branches default/staging/live.

PostgreSQL (tests/pgserver.py), the one database several hosts share in production:
postgres       a real server on 127.0.0.1 for the session: .port, .createdb(name),
               .local_settings(dbname), .applied_migrations(dbname), .columns(dbname, table).
pgdb           the name of a fresh, empty database on it, dropped after the test.

gunicorn       gunicorn(site) starts a real gunicorn serving the Django project deployed
               at site (tests/gunicornserver.py), on 127.0.0.1; stopped after the test.

A fixture whose real part (sshd, PostgreSQL) is missing here skips the test; with the
environment variable CI set it fails instead, so that CI cannot pass by skipping.
"""
import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

import gunicornserver
import hgpipe
import pgserver
import sshdhosts
from djangoproject import copy_project

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


# ---------------------------------------------------------------------------
# hgenv


# Set-up commands run by one command server per test (hgpipe); never those
# naming this extension's revsets or keyword, loading an extension, or
# moving changesets between repositories (hooks that deploy): those, and
# every hg env* command, run as processes, as a user runs them.
PIPED = frozenset("""add bookmark bookmarks branch cat ci clone commit diff files heads
id identify init log manifest parents phase remove rm st status tag tip up
update""".split())
_UNPIPED = re.compile(r"deployed|pendingdeploy|extensions\.")


def _checked(result, cmd, cwd, check):
    if check and result.rc != 0:
        raise AssertionError(
            f"{cmd} in {cwd or os.getcwd()} exited with {result.rc}\n"
            f"--- stdout\n{result.out}--- stderr\n{result.err}"
        )
    return result


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self):
        return self.out + self.err


class HgEnv:
    """Runs commands with an environment that ignores the machine's Mercurial config."""

    def __init__(self, home):
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)
        self.hgrc = os.path.join(self.home, ".hgrc")
        with open(self.hgrc, "w") as f:
            f.write(
                "[ui]\nusername = Test User <test@example.com>\n"
                "[extensions]\nhgext_envdeploy =\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("HG")}
        pythonpath = [PROJECT_ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
        env.update(
            HOME=self.home,
            # Only this file: system-wide config is ignored, a repository's .hg/hgrc
            # still applies.
            HGRCPATH=self.hgrc,
            HGENCODING="utf-8",
            LANG="C.UTF-8",
            PATH=VENV_BIN + os.pathsep + env.get("PATH", os.defpath),
            # hgext_envdeploy imports from the source tree, installed or not.
            PYTHONPATH=os.pathsep.join(pythonpath),
        )
        self.env = env
        self.hg_executable = shutil.which("hg", path=env["PATH"])
        self._pipe = self._pipekey = None

    def run(self, cmd, cwd=None, input=None, timeout=120, check=False):
        cmd = [os.fspath(arg) for arg in cmd]
        proc = subprocess.run(
            cmd, cwd=cwd, input=input, timeout=timeout, env=self.env,
            capture_output=True, text=True, encoding="utf-8", errors="replace",
        )
        return _checked(Result(proc.returncode, proc.stdout, proc.stderr),
                        cmd, cwd, check)

    def hg(self, *args, cwd=None, input=None, timeout=120, check=False):
        args = [os.fspath(arg) for arg in args]
        if (input is None and args and args[0] in PIPED
                and not any(_UNPIPED.search(a) for a in args)):
            result = self._piped(args, cwd, timeout)
            if result is not None:
                return _checked(result, ["hg (command server)", *args], cwd, check)
        return self.run([self.hg_executable, *args], cwd=cwd, input=input,
                        timeout=timeout, check=check)

    def _piped(self, args, cwd, timeout):
        """Result of a set-up command run by the command server, or None
        (then it runs as a process).  A server whose environment or user
        hgrc changed since it started is replaced, as chg does."""
        with open(self.hgrc, "rb") as fp:
            key = (tuple(sorted(self.env.items())), fp.read())
        if self._pipe is not None and self._pipekey != key:
            self.close()
        try:
            if self._pipe is None:
                self._pipe, self._pipekey = hgpipe.HgPipe(self.hg_executable,
                                                          dict(self.env)), key
            rc, out, err = self._pipe.run(args, os.path.abspath(cwd or os.getcwd()),
                                          timeout)
        except hgpipe.ServerGone:  # not started, or the command not sent
            self._pipe = None
            return None
        except hgpipe.AnswerLost:
            self.close()
            raise
        return Result(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def close(self):
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def write_hgrc(self, repo_dir, text):
        """Append text to repo_dir/.hg/hgrc."""
        with open(os.path.join(repo_dir, ".hg", "hgrc"), "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")


@pytest.fixture
def hgenv(tmp_path):
    env = HgEnv(tmp_path / "home")
    yield env
    env.close()


# ---------------------------------------------------------------------------
# Missing real parts


def unavailable(reason):
    """Skip the test because `reason`; in CI (CI set, e.g. CI=true) fail: there a
    missing sshd or PostgreSQL is a broken setup, and skipping would hide it."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set: failing rather than skipping)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------
# sshd_hosts


@pytest.fixture(scope="session")
def sshd_hosts(tmp_path_factory):
    """Three real sshd hosts. Inside their sessions `.mount` shows the host's own
    `.dir`; in the test process `.mount` itself is just an empty directory.

    A test that stops a host must start it again (e.g. in a finally block): the hosts
    are shared by the whole session."""
    reason = sshdhosts.missing()
    if reason:
        unavailable(reason)
    hosts = sshdhosts.launch(str(tmp_path_factory.mktemp("sshd")), 3)
    yield hosts
    hosts.stop_all()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Sixteen sshd hosts, for the tests of many hosts at once."""
    reason = sshdhosts.missing()
    if reason:
        unavailable(reason)
    hosts = sshdhosts.launch(str(tmp_path_factory.mktemp("fleet")), 16, "web")
    yield hosts
    hosts.stop_all()


_remote_dir_numbers = itertools.count(1)


@pytest.fixture
def remote_dir(sshd_hosts, request):
    """A fresh directory under sshd_hosts.mount, existing on every host."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:50]
    path = os.path.join(sshd_hosts.mount, f"{name}-{next(_remote_dir_numbers)}")
    for host in sshd_hosts.hosts:
        os.makedirs(sshd_hosts.local_path(host, path))
    return path


# ---------------------------------------------------------------------------
# postgres, pgdb


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL server on 127.0.0.1 for the whole session (pgserver.PgServer).
    Its log ends up in the session's postgres* tmp directory."""
    reason = pgserver.missing()
    if reason:
        unavailable(reason)
    server = pgserver.start(log_dir=str(tmp_path_factory.mktemp("postgres")))
    yield server
    server.stop()


_pgdb_numbers = itertools.count(1)


@pytest.fixture
def pgdb(postgres, request):
    """The name of a fresh, empty database on `postgres` (named after the test)."""
    name = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:40]
    name = postgres.createdb(f"t_{name}_{next(_pgdb_numbers)}")
    yield name
    postgres.dropdb(name)


# ---------------------------------------------------------------------------
# gunicorn


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn(site, **opts): a gunicornserver.Gunicorn serving site, its pid file
    and log in tmp_path/gunicorn-N; every one started is stopped after the test."""
    reason = gunicornserver.missing()
    if reason:
        unavailable(reason)
    servers = []

    def start(site, **opts):
        run_dir = tmp_path / f"gunicorn-{len(servers) + 1}"
        run_dir.mkdir()
        servers.append(gunicornserver.start(site, str(run_dir), **opts))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------
# central_repo


@pytest.fixture(scope="session")
def _central_repo_template(tmp_path_factory):
    """Built once with the real hg (eight commands, ~2.5 s); tests get copies."""
    base = tmp_path_factory.mktemp("central-template")
    hgenv = HgEnv(base / "home")
    repo = base / "central"
    hgenv.hg("init", repo, check=True)
    copy_project(repo)

    def hg(*args):
        hgenv.hg(*args, "-q", cwd=repo, check=True)

    hg("commit", "-A", "-m", "initial project")
    hg("branch", "staging")
    hg("commit", "-m", "create staging")
    hg("update", "default")
    hg("branch", "live")
    hg("commit", "-m", "create live")
    hg("update", "default")
    return repo


@pytest.fixture
def central_repo(tmp_path, _central_repo_template):
    """tmp_path/central: the demo project committed on default ("initial project"),
    branches staging and live created from that commit, working copy on default."""
    repo = tmp_path / "central"
    # copy2 keeps mtimes, so the copied dirstate still matches the files.
    shutil.copytree(_central_repo_template, repo, symlinks=True)
    return repo
