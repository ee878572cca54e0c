"""A real gunicorn serving a deployed copy of the test Django project on 127.0.0.1.

Used by the `gunicorn` fixture (tests/conftest.py):

    server = start(site, run_dir)   # gunicorn --chdir SITE, a port of its own choosing
    server.get("/revision/")        # (HTTP status, body text)
    server.reload                   # "kill -HUP $(cat PIDFILE)": the reload a deploy runs
    server.stop()                   # by the master's PID (also at exit)

Its log (access and errors, the workers' tracebacks) is run_dir/gunicorn.log.
"""
import atexit
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

VENV_BIN = os.path.dirname(sys.executable)
GUNICORN = os.path.join(VENV_BIN, "gunicorn")
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def missing():
    """Why gunicorn cannot run here, or None."""
    if not os.access(GUNICORN, os.X_OK):
        return f"gunicorn is not installed in {VENV_BIN} (pip install -e '.[test]')"
    return None


class Gunicorn:
    def __init__(self, site, run_dir, workers=2, preload=False):
        self.site = str(site)
        self.pidfile = os.path.join(run_dir, "gunicorn.pid")
        self.log = os.path.join(run_dir, "gunicorn.log")
        args = [GUNICORN, "--chdir", self.site, "--bind", "127.0.0.1:0",
                "--workers", str(workers), "--pid", self.pidfile,
                "--graceful-timeout", "5", "--log-file", self.log,
                "--access-logfile", self.log]
        if preload:
            args.append("--preload")
        with open(os.path.join(run_dir, "gunicorn.out"), "ab") as out:
            # HOME of its own: recent gunicorn puts a control socket in ~/.gunicorn,
            # which servers running side by side would share.
            self.proc = subprocess.Popen(args + ["mysite.wsgi:application"],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         env=dict(os.environ, HOME=run_dir))
        atexit.register(self.stop)
        self.port = self._port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.reload = f"kill -HUP $(cat {shlex.quote(self.pidfile)})"

    def _port(self, timeout=30):
        """The port gunicorn bound (it chose one: no race for a free one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n"
                                   + self.logtext())
            match = _LISTENING.search(self.logtext())
            if match and os.path.exists(self.pidfile):
                return int(match.group(1))
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("gunicorn did not start:\n" + self.logtext())

    def logtext(self):
        if not os.path.exists(self.log):
            return ""
        with open(self.log, errors="replace") as fp:
            return fp.read()

    def get(self, path, timeout=10):
        """(status, body) of GET path; status 0 when nothing answered in time."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return 0, ""

    def wait_for(self, path, body, timeout=30):
        """Wait until GET path answers 200 with body; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.get(path, timeout=2)
            if last == (200, body):
                return
            time.sleep(0.1)
        raise AssertionError(f"{path} answered {last}, not {body!r}:\n" + self.logtext())

    def stop(self):
        """Stop the master by its PID (its workers go with it)."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start(site, run_dir, **opts):
    return Gunicorn(site, run_dir, **opts)
