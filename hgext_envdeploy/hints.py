# hints.py - one hint per situation, the same from every command
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The hints shown under a failure, worded once.

envdeploy, envrollback, envcheck, envsetup and envstatus meet the same
situations (a missing path, a refused key, a closed port, a command not on
the short PATH of an SSH session): each situation has one function here,
so that every command gives the same advice.
"""

import errno
import re
import socket

from mercurial.i18n import _
from mercurial import encoding, pycompat


def missingpath(env):
    """``path`` does not exist on the host."""
    return _(b"run 'hg envsetup %s': it clones the repository there") % env.name


def shortpath(env, what=None):
    """A command not found, or a Python without the project's packages.

    ``what`` names the key to fix (``hg``, ``migrate``): an absolute path
    in it works as well as a longer PATH.
    """
    fix = (_(b'set %s.%s with an absolute path') % (env.name, what) if what
           else _(b'give the command an absolute path'))
    return _(b'SSH sessions have a short PATH and read no login profile: '
             b'%s, or set %s.env.PATH '
             b'(e.g. /srv/venv/bin:/usr/local/bin:/usr/bin:/bin)') % (
                 fix, env.name)


# "sh: 1: gunicorn: not found", "bash: hg: command not found",
# "No module named 'django'", "ImportError: ...".
_SHORTPATH = re.compile(
    br'(\bnot found$|No module named |'
    br'ImportError|ModuleNotFoundError)', re.M)


def forstep(env, name, status, output):
    """The hint for step ``name`` exiting with ``status``, or None."""
    if env.islocal:
        return None
    if status == 127 or _SHORTPATH.search(output or b''):
        return shortpath(env, name if name in (b'migrate', b'reload',
                                               b'check', b'hg') else None)
    return None


def authfailed(user, keyfiles):
    """The host refused every key offered for ``user``."""
    if keyfiles:
        return _(b'the host refused the key %s for user %s: check the user '
                 b'name, and that the public key (%s.pub) is in ~%s/.ssh/'
                 b'authorized_keys on the host') % (
                     pycompat.fsencode(keyfiles[0]), user,
                     pycompat.fsencode(keyfiles[0]), user)
    return _(b'set the identity key, or load the key into ssh-agent')


def connectfailure(exc, hostname, port):
    """``(what happened, hint)`` for a failed TCP connection to the host.

    paramiko wraps a refused connection as ``[Errno None] Unable to connect
    to port N``: look at the socket errors inside.
    """
    errors = getattr(exc, 'errors', None)
    if errors:
        exc = list(errors.values())[0]
    where = b'%s port %d' % (pycompat.sysbytes(hostname), port)
    if isinstance(exc, ConnectionRefusedError) or getattr(
            exc, 'errno', None) == errno.ECONNREFUSED:
        return (_(b'connection refused'),
                _(b'no SSH server answers on %s: check that sshd runs there '
                  b'and the port (USER@HOST:PORT in hosts, or Port in '
                  b'~/.ssh/config)') % where)
    if isinstance(exc, socket.gaierror):
        return (_(b'unknown host name %s') % pycompat.sysbytes(hostname),
                _(b'check the host name (hosts, or HostName in '
                  b'~/.ssh/config)'))
    if isinstance(exc, socket.timeout):
        return (_(b'timed out'),
                _(b'%s does not answer: a firewall, or a host that is down '
                  b'([envdeploy] connecttimeout to wait longer)') % where)
    return (encoding.strtolocal(str(exc) or type(exc).__name__), None)
