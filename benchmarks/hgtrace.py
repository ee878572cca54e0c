"""Run ``hg`` as the hg script does, with a timeline of the extension's phases.

    BENCH_TRACE=OUT.json python hgtrace.py envdeploy ENV ...

Instruments (by wrapping, without changing them) the session operations of
hgext_envdeploy once the deploy logic is loaded: the SSH context (paramiko
import, known_hosts), connect, and each HostSession operation (enter, lock,
state, journal read, migration state, each step, journal write and unlock,
close).  Writes a JSON list of events ``{"what", "host", "start", "end"}``
(seconds since this script started) plus ``"command"`` (when the command
function started and ended) and ``"exit"``.  Used only to explain where the
time goes; the timed runs use the real ``hg``.
"""
import atexit
import functools
import json
import os
import sys
import threading
import time

T0 = time.perf_counter()
EVENTS = []
MARKS = {"script_wall": time.time()}
_lock = threading.Lock()


def _now():
    return time.perf_counter() - T0


def _record(what, host, start, end):
    with _lock:
        EVENTS.append({"what": what, "host": host, "start": start, "end": end})


def _hostname(obj):
    host = getattr(obj, "host", None)
    return host.spec.decode() if host is not None else ""


def _wrap(cls, name, label=None, host_of=_hostname):
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        start = _now()
        try:
            return original(self, *args, **kwargs)
        finally:
            what = label(args) if callable(label) else (label or name)
            _record(what, host_of(self), start, _now())

    setattr(cls, name, wrapper)


_patched = False


def _instrument(package):
    global _patched
    if _patched:
        return
    _patched = True
    # The first logic module a command loads may not be the session's
    # (repofile comes first): load the ones instrumented here at once.
    import importlib

    target = importlib.import_module(package + ".target")
    transport = importlib.import_module(package + ".transport")
    deploy = importlib.import_module(package + ".deploy")
    if deploy is not None:
        _wrap(deploy.Deploy, "run", "deploy: all hosts", host_of=lambda self: "")
        for name, label in (("resolve", "resolve the changeset"), ("report", "report")):
            original = getattr(deploy, name)

            def timedfunc(*args, _original=original, _label=label, **kwargs):
                start = _now()
                try:
                    return _original(*args, **kwargs)
                finally:
                    _record(_label, "", start, _now())

            setattr(deploy, name, timedfunc)
    _wrap(transport.SSHContext, "__init__", "ssh context (paramiko import)",
          host_of=lambda self: "")

    original_connect = transport.SSHContext.connect

    def connect(self, host, identity=b""):
        start = _now()
        try:
            return original_connect(self, host, identity)
        finally:
            _record("connect", host.spec.decode(), start, _now())

    transport.SSHContext.connect = connect
    S = target.HostSession
    _wrap(S, "enter", "cd path")
    # The lock's round trip also reads the journal's tail and starts the
    # hg command server; the first shell step after the server's commands
    # includes stopping it (about 0.04 s: the server's interpreter exit).
    _wrap(S, "lock", "lock + journal tail + hg command server start")
    _wrap(S, "readstate", "state (hg log, in the command server)")
    _wrap(S, "journal", "journal read")
    _wrap(S, "migrations", "migration state (server stop + showmigrations)")
    _wrap(S, "saveedits", "save manual edits")
    _wrap(S, "update", "update (pull + update, or a new release)")
    _wrap(S, "step", label=lambda args: "step " + args[1].decode())
    _wrap(S, "append", "journal write + unlock")
    _wrap(S, "release", "unlock")
    _wrap(S, "close", "close session")


def _dispatched(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            MARKS["dispatched"] = _now()
    return wrapper


def _dump():
    MARKS["exit"] = _now()
    path = os.environ.get("BENCH_TRACE")
    if path:
        with open(path, "w") as f:
            json.dump({"events": EVENTS, "marks": MARKS}, f)


def main():
    atexit.register(_dump)
    import hgdemandimport

    hgdemandimport.enable()
    from mercurial import dispatch

    MARKS["imported"] = _now()
    # Wrap the command functions' loader: the logic modules are imported
    # when a command runs, and instrumented right after.  (A lazy module
    # would re-run its code on first use and undo the wrapping.)
    with hgdemandimport.deactivated():
        import hgext_envdeploy.commands as commands

    original_logic = commands.logic

    def logic(name):
        start = _now()
        MARKS.setdefault("command", start)
        module = original_logic(name)
        _instrument("hgext_envdeploy")
        _record("load the deploy logic", "", start, _now())
        return module

    commands.logic = logic
    dispatch.dispatch = _dispatched(dispatch.dispatch)
    dispatch.run()


if __name__ == "__main__":
    main()
