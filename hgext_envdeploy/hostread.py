# hostread.py - reach a host and read it, for every command
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The read-only host layer: reach a target, read it, word what went wrong.

:func:`connect` opens a host's session and :func:`explain` turns whatever
a host's work raises into the message and hint shown with that host; both
serve :class:`~.run.Run` (the commands that change hosts) and
:func:`onhosts`, which the commands that only read (envstatus, envlog,
envsetup's survey, envcheck) use to read hosts in parallel, one row per
host.  The rest reads several things in one round trip (:func:`sections`)
and turns the output into values.
"""

import re

from mercurial.i18n import _
from mercurial import error, pycompat

from . import fanout, hints, lock, transport
from .shell import Shell, ShellError
from .target import HostSession, StepFailed

KINDS = {
    b'deploy': _(b'deploy'),
    b'rollback': _(b'rollback'),
}


class HostError(Exception):
    """Reading a host failed; ``message`` and ``hint`` as in error.Abort."""

    def __init__(self, message, hint=None):
        super().__init__(message, hint)
        self.message = message
        self.hint = hint


# What carries its own message and hint.
_WORDED = (HostError, StepFailed, transport.ConnectError, error.Abort)


def explain(exc):
    """``(message, hint)`` of ``exc``, raised while working on a host."""
    if isinstance(exc, _WORDED):
        return exc.message, exc.hint
    if isinstance(exc, ShellError):
        return _(b'lost the connection: %s') % pycompat.bytestr(str(exc)), None
    return _(b'unexpected error: %s') % pycompat.bytestr(
        '%s: %s' % (type(exc).__name__, exc)), None


def _nosay(host, msg, method='status', label=b''):
    """Reading commands collect their messages in rows instead."""


def connect(env, host, sshcontext, settings, say=_nosay, confirm=None,
            ui=None):
    """A :class:`~.target.HostSession` on ``host``, not yet in ``path``.

    Raises :class:`~.transport.ConnectError` when the host cannot be
    reached; ``sshcontext`` may be None for a local host.  With ``ui``
    under --debug, every script sent is shown (see :func:`tracer`).
    """
    conn = transport.connect(host, env, sshcontext)
    shell = Shell(conn, settings[b'timeout'])
    if ui is not None and ui.debugflag:
        shell.trace = tracer(ui, env, host)
    return HostSession(env, host, shell, settings, say, confirm)


# One section of sections(): its name, output, and the snippet's status.
_SECTION = re.compile(br'\x1esection ([^\n]*)\n(.*?)\n\x1estatus (\d+)(?:\n|\Z)',
                      re.DOTALL)
# user:password@ in a URL (a source, a pull from https://...).
_URLPASSWORD = re.compile(br'(://[^/@:\s]+:)[^/@\s]+@')


def tracer(ui, env, host):
    """``trace(script)`` for --debug: ``HOST: running SCRIPT``, masked.

    As sshpeer's ``running ssh ...``: what reaches the target's shell, with
    ``ENV.secret`` values and URL passwords replaced by ``***``.
    """
    def trace(script):
        if env.secretvalues:
            script = env.mask(script)
        script = _URLPASSWORD.sub(br'\1***@', script)
        lines = script.rstrip(b'\n').split(b'\n')
        ui.debug(b''.join([b'%s: running %s\n' % (host.name, lines[0])]
                          + [b'%s:   %s\n' % (host.name, l)
                             for l in lines[1:]]))
    return trace


def onhosts(ui, pairs, work, settings, topic):
    """Call ``work(session, row)`` for every ``(env, host)``, in parallel.

    ``session`` is a :class:`~.target.HostSession` (not yet in ``path``).
    Returns one dict per pair, in order, with at least ``env``, ``host``,
    ``reachable``, ``error`` and ``hint``; whatever ``work`` adds is kept.
    One connection per pair; an unreachable host or one that breaks down
    sets ``error`` and never stops the others.
    """
    sshcontext = None
    if any(not env.islocal for env, _host in pairs):
        sshcontext = transport.SSHContext(ui, settings)
    rows = [
        {'env': env.name, 'host': host.name, 'role': host.role or b'',
         'label': host.label, 'reachable': True, 'error': b'', 'hint': None}
        for env, host in pairs
    ]

    def readhost(index, host):
        env, row = pairs[index][0], rows[index]
        try:
            try:
                session = connect(env, host, sshcontext, settings, ui=ui)
            except transport.ConnectError:
                row['reachable'] = False
                raise
            try:
                work(session, row)
            finally:
                session.close()
        except Exception as exc:
            # Even a bug stays with its host: the other rows are still
            # worth reading (--traceback shows where).
            if not isinstance(exc, _WORDED + (ShellError,)):
                ui.traceback()
            row['error'], row['hint'] = explain(exc)

    fanout.foreach(ui, [host for _env, host in pairs], readhost,
                   settings[b'concurrency'], topic)
    return rows


def enter(session):
    """Go into the target repository, or say how to create it."""
    try:
        session.enter()
    except StepFailed as exc:
        raise HostError(exc.message, hints.missingpath(session.env))


def sections(session, parts):
    """Run named snippets in one round trip; ``{name: (exit status, output)}``.

    The snippets run in order in one subshell, so a ``cd`` in one applies
    to the next.  A snippet must not ``exit``.
    """
    script = []
    for name, snippet in parts:
        # The newline before the status: output without a last newline
        # would otherwise hide the status line, and the section with it.
        script.append(
            b"printf '\\036section %s\\n'\n{ %s\n} 2>&1\n"
            b"printf '\\n\\036status %%d\\n' \"$?\"" % (name, snippet)
        )
    _rc, out = session.run(b'\n'.join(script))
    return parsesections(out)


def parsesections(out):
    r"""``{name: (status, output)}`` from what :func:`sections` printed.

    >>> parsesections(b'\x1esection a\nx\ny\n\n\x1estatus 0\n'
    ...               b'\x1esection b\nno newline\n\x1estatus 3\n'
    ...               b'\x1esection c\n\n\x1estatus 1\n\x1esection cut\nz')
    {b'a': (0, b'x\ny'), b'b': (3, b'no newline'), b'c': (1, b'')}
    """
    found = {}
    for m in re.finditer(_SECTION, out):
        found[m.group(1)] = (int(m.group(3)), m.group(2).rstrip(b'\n'))
    return found


def lastline(output):
    lines = [l for l in output.splitlines() if l.strip()]
    return lines[-1].strip() if lines else b''


def prefixed(output):
    """``{prefix: [values]}`` from ``prefix:value`` lines; others ignored."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(b':')
        if sep and key.isalpha():
            found.setdefault(key, []).append(value)
    return found


def lockscript():
    """Prints the lock's info lines after ``locked``, or nothing."""
    return (b'if [ -d %(d)s ]; then echo locked; cat %(d)s/info 2>/dev/null; '
            b'fi' % {b'd': lock.LOCKDIR})


def lockinfo(output):
    """``(description, run id)`` of the lock holder; ``(b'', None)`` when
    the lock is free."""
    first, _sep, info = output.partition(b'\n')
    if first != b'locked':
        return b'', None
    info = lock.readinfo(info)
    return lock.describe(info), info.get(b'run')


# -- the wording the reading commands share


def plural(count, one, many):
    return one if count == 1 else many % count


def short(node):
    return node[:12] if node else _(b'(empty)')
