# lock.py - the deploy lock on a target
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""One deploy at a time per target repository.

The lock is the directory ``.hg/envdeploy/lock`` (``mkdir`` is atomic on
every POSIX system and network file system) holding an ``info`` file of
``key=value`` lines: ``user``, ``client``, ``since``, ``command``, and the
``pid`` and ``node`` (``uname -n``) of the shell on the target that holds
it.

That shell is the deploy's own session (see shell.py): it removes the lock
in an EXIT trap, so the lock goes away with the session even when the
deploying machine dies or the user presses Ctrl-C.  A lock whose holder
shell is gone from the machine that holds it (a target that crashed, a
killed sshd) is stale: the next deploy says so and takes it over.  A lock
held by a live process is never broken without ``--break-lock``.
"""

from .shell import quote

LOCKDIR = b'.hg/envdeploy/lock'
# A freeze (freeze.py): read in the lock's round trip, never removed by it.
FREEZE = b'.hg/envdeploy/freeze'
FROZEN = b'frozen:'

# The acquiring script's exit status when another deploy holds the lock
# (0 when it took it).
BUSY = 75

_ACQUIRE = b'''\
_envdeploy_lock="$PWD/%(lockdir)s"
_envdeploy_waited=0
_envdeploy_status=%(busy)d
mkdir -p "$(dirname "$_envdeploy_lock")"
if [ %(breaklock)s = yes ] && [ -d "$_envdeploy_lock" ]; then
  echo "broken:"; cat "$_envdeploy_lock/info" 2>/dev/null
  rm -rf "$_envdeploy_lock"
fi
while :; do
  if mkdir "$_envdeploy_lock" 2>/dev/null; then
    printf '%%s\\n' %(info)s "pid=$$" "node=$(uname -n)" > "$_envdeploy_lock/info"
    trap 'rm -rf "$_envdeploy_lock"' EXIT
    # A session cut off mid-step gets HUP, or PIPE at its next output:
    # leave through the EXIT trap either way.
    trap 'exit 129' HUP
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
    _envdeploy_status=0
    break
  fi
  _envdeploy_pid=$(sed -n 's/^pid=//p' "$_envdeploy_lock/info" 2>/dev/null)
  _envdeploy_node=$(sed -n 's/^node=//p' "$_envdeploy_lock/info" 2>/dev/null)
  if [ -n "$_envdeploy_pid" ] && [ "$_envdeploy_node" = "$(uname -n)" ] \\
     && ! kill -0 "$_envdeploy_pid" 2>/dev/null \\
     && [ ! -d "/proc/$_envdeploy_pid" ] \\
     && ! ps -p "$_envdeploy_pid" >/dev/null 2>&1; then
    echo "stale:"; cat "$_envdeploy_lock/info"
    rm -rf "$_envdeploy_lock"
    continue
  fi
  if [ "$_envdeploy_waited" -ge %(timeout)d ]; then
    echo "held:"; cat "$_envdeploy_lock/info" 2>/dev/null
    break
  fi
  if [ "$_envdeploy_waited" = 0 ]; then
    echo "waiting:"; cat "$_envdeploy_lock/info" 2>/dev/null
  fi
  sleep 1
  _envdeploy_waited=$((_envdeploy_waited + 1))
done
[ "$_envdeploy_status" = 0 ]'''

RELEASE = b'rm -rf "$_envdeploy_lock"; trap - EXIT HUP PIPE TERM'


def acquirescript(holder, timeout, breaklock=False):
    """Shell for the deploy's main shell: take the lock, wait ``timeout`` s.

    ``holder`` maps info keys to bytes; newlines are flattened so that the
    info file stays one fact per line.
    """
    info = b' '.join(
        quote(b'%s=%s' % (k, _oneline(v))) for k, v in sorted(holder.items())
    )
    return _ACQUIRE % {
        b'lockdir': LOCKDIR,
        b'busy': BUSY,
        b'breaklock': b'yes' if breaklock else b'no',
        b'info': info,
        b'timeout': timeout,
    }


def _oneline(value):
    return value.replace(b'\r', b' ').replace(b'\n', b' ')


def readinfo(data):
    """The ``info`` file's ``key=value`` lines as a dict.

    A value keeps any further ``=``; a line without one is no fact:

    >>> info = readinfo(b'user=alice\\nclient=laptop\\ncommand=envdeploy live\\n'
    ...                 b'since=2026-01-02T03:04:05Z\\nrun=a=b\\npid=4242\\n'
    ...                 b'node=web1\\n')
    >>> info[b'command'], info[b'run'], info[b'pid']
    (b'envdeploy live', b'a=b', b'4242')
    >>> readinfo(b''), readinfo(b'cat: info: No such file or directory\\n')
    ({}, {})
    """
    return dict(line.split(b'=', 1) for line in data.split(b'\n')
                if b'=' in line)


def parseinfo(output):
    """Split the acquiring script's output into events.

    Returns a list of ``(event, info)`` where event is ``waiting``,
    ``stale``, ``broken`` or ``held`` and info maps keys to bytes.  Each
    event's ``info`` is the lines up to the next event; anything before the
    first event is not lock info.

    A deploy that waited for a holder until ``locktimeout``, and one that
    took over the lock of a holder that had died:

    >>> parseinfo(b'waiting:\\nuser=bob\\npid=7\\nheld:\\nuser=bob\\npid=7\\n')
    [('waiting', {b'user': b'bob', b'pid': b'7'}), ('held', {b'user': b'bob', b'pid': b'7'})]
    >>> parseinfo(b'noise=1\\nstale:\\nuser=ghost\\npid=9\\nnode=web1\\n')
    [('stale', {b'user': b'ghost', b'pid': b'9', b'node': b'web1'})]

    ``--break-lock`` on a lock whose info file was never written (the
    holder died between ``mkdir`` and ``printf``); no output, no event:

    >>> parseinfo(b'broken:\\n'), parseinfo(b'')
    ([('broken', {})], [])
    >>> parseinfo(b'note:\\nuser=x\\n')  # only the four events count
    []
    """
    events = []
    for line in output.split(b'\n'):
        if line.endswith(b':') and line[:-1] in (
            b'waiting', b'stale', b'broken', b'held'
        ):
            events.append((line[:-1].decode('ascii'), {}))
        elif events:
            events[-1][1].update(readinfo(line))
    return events


def describe(info):
    """``USER on CLIENT since TIME (COMMAND, pid N on NODE)`` for messages.

    >>> print(describe(readinfo(b'user=alice\\nclient=laptop\\n'
    ...                         b'since=2026-01-02T03:04:05Z\\n'
    ...                         b'command=envdeploy live\\npid=4242\\n'
    ...                         b'node=web1\\n')).decode())
    alice on laptop since 2026-01-02T03:04:05Z (envdeploy live, pid 4242 on web1)

    What the file does not say is ``?``; no file at all says so:

    >>> print(describe({b'user': b'alice', b'pid': b'4242'}).decode())
    alice on ? since ? (?, pid 4242 on ?)
    >>> print(describe({}).decode())
    unknown holder (no lock info)
    """
    if not info:
        return b'unknown holder (no lock info)'
    return b'%s on %s since %s (%s, pid %s on %s)' % (
        info.get(b'user', b'?'),
        info.get(b'client', b'?'),
        info.get(b'since', b'?'),
        info.get(b'command', b'?'),
        info.get(b'pid', b'?'),
        info.get(b'node', b'?'),
    )


def freezescript():
    """Prints ``frozen:`` and the freeze's lines (see freeze.py), or nothing."""
    return b'if [ -f %(f)s ]; then echo %(m)s; cat %(f)s; fi' % {
        b'f': FREEZE, b'm': FROZEN}


def parsefreeze(output):
    """The freeze's info from :func:`freezescript`'s output; None if none.

    >>> parsefreeze(b'') is None
    True
    >>> info = parsefreeze(b'frozen:\\nuser=alice\\nreason=incident 42: db=slow\\n')
    >>> info[b'user'], info[b'reason']
    (b'alice', b'incident 42: db=slow')
    >>> parsefreeze(b'frozen:\\n')  # a file emptied by hand still freezes
    {}
    """
    first, _sep, rest = output.partition(b'\n')
    if first.strip() != FROZEN:
        return None
    return readinfo(rest)
