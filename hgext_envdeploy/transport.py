# transport.py - a byte pipe to a shell on a host: SSH or this machine
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Two ways to reach ``sh`` on a target, behind one small interface.

``send(data)``, ``recv(timeout)`` (bytes, ``b''`` at end of stream, None on
timeout) and ``close()``.  :class:`LocalTransport` starts ``/bin/sh`` here;
:class:`SSHTransport` runs ``sh`` over one paramiko connection.  The deploy
logic above never knows which one it talks to.

paramiko is imported only in :class:`SSHContext`, inside a deactivated
demandimport: importing it at module level breaks loading under Mercurial's
lazy importer and would slow down every hg command.
"""

import os
import re
import select
import socket
import subprocess
import sys
import threading

from mercurial.i18n import _
from mercurial import demandimport, encoding, pycompat

from . import config, hints


# Connections being set up at once, per run (see SSHContext).
HANDSHAKES = 8


class ConnectError(Exception):
    """A host could not be reached or authenticated; ``message`` and
    ``hint`` as in error.Abort."""

    def __init__(self, message, hint=None):
        super().__init__(message, hint)
        self.message = message
        self.hint = hint


def _cleanenv():
    """This process's environment minus hook variables.

    A hook's ``HG_NODE`` and friends would otherwise leak into the hg
    commands run on a local target and change what they do.
    """
    env = dict(os.environ)
    for key in list(env):
        if key.startswith('HG_') or key == 'HGPLAIN':
            del env[key]
    return env


class LocalTransport:
    """``/bin/sh`` on this machine, for environments without hosts."""

    def __init__(self):
        # A session of its own: Ctrl-C in the terminal reaches hg, which
        # then ends the shell cleanly (its EXIT trap releases the lock).
        self._proc = subprocess.Popen(
            ['/bin/sh'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_cleanenv(),
            start_new_session=True,
        )
        self._fd = self._proc.stdout.fileno()

    def send(self, data):
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def recv(self, timeout):
        ready, _w, _x = select.select([self._fd], [], [], timeout)
        if not ready:
            return None
        return os.read(self._fd, 65536)

    def endinput(self):
        """No more input: the shell ends once it ran what it was sent."""
        self._proc.stdin.close()

    def close(self, wait=True):
        try:
            self._proc.stdin.close()
        except (OSError, ValueError):
            pass
        if wait:
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()


class SSHTransport:
    """``sh`` on a remote host over one paramiko connection."""

    def __init__(self, clients, channel):
        self._clients = clients  # jump hosts first, the target last
        self._channel = channel

    def send(self, data):
        self._channel.sendall(data)

    def recv(self, timeout):
        self._channel.settimeout(timeout)
        try:
            return self._channel.recv(65536)
        except socket.timeout:
            return None

    def openchannel(self):
        """Another session on the same connection (``hg envexec -i``)."""
        return self._clients[-1].get_transport().open_session()

    def endinput(self):
        """No more input: the shell ends once it ran what it was sent."""
        self._channel.shutdown_write()

    def close(self, wait=True):
        try:
            # End of input ends the remote shell, whose EXIT trap releases
            # the lock; give it a moment before the connection goes away.
            self._channel.shutdown_write()
            if wait:
                self._channel.status_event.wait(10)
        except Exception:
            pass
        for client in reversed(self._clients):
            client.close()


def _execnowait(channel, command):
    """``channel.exec_command(command)`` without waiting for the server's
    answer: the first scripts go in the same round trip (a far host's
    connection is round trips).  A refused command closes the channel,
    which the first read reports as a lost connection."""
    channel._wait_for_event = lambda: None  # exec_command's wait, skipped
    try:
        channel.exec_command(command)
    finally:
        del channel._wait_for_event


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges at once what it receives next.

    sshd leaves Nagle's algorithm on for a session without a terminal: a
    small write that follows another waits until the first is
    acknowledged, and Linux delays that acknowledgement by 40 ms when it
    has just sent something itself.  TCP_QUICKACK after every send turns
    that delay off until the answer comes (opening the session's channel
    took 44 ms, 1.5 ms with it, measured here).  Not permanent in the
    kernel, hence after every send; elsewhere than Linux a no-op.
    """

    def send(self, data, *flags):
        sent = super().send(data, *flags)
        try:
            self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass
        return sent


_QUICKACK = getattr(socket, 'TCP_QUICKACK', None)


def _tcpconnect(hostname, port, timeout):
    """A TCP connection for paramiko, set up before its handshake.

    TCP_NODELAY before the first message (paramiko's own connection gets
    it only afterwards): with Nagle's algorithm each small handshake
    message after the first waited for the server's delayed ACK, 40 ms a
    connection.  Errors are the socket module's, as paramiko's would be.
    """
    sock = socket.create_connection((hostname, port), timeout=timeout)
    _nodelay(sock)
    if _QUICKACK is None:
        return sock
    timeout = sock.gettimeout()
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto,
                            fileno=sock.detach())
    quick.settimeout(timeout)
    return quick


def _nodelay(sock):
    """Send each write at once, as OpenSSH does for a session: Nagle's
    algorithm would hold a small write (the end of input after the last
    scripts, a frame to the command server) until the previous one is
    acknowledged, a round trip on a far host.  Through a jump host the
    "socket" is a channel: its TCP connection is the jump host's."""
    if hasattr(sock, 'setsockopt'):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a ProxyCommand's pipe)


def importparamiko():
    """paramiko, imported for real, without ``invoke``.

    paramiko.config imports invoke (about 50 ms, 40% of paramiko's import)
    for ssh_config's ``Match exec`` alone; hosts are resolved by ``ssh -G``
    where it is installed, so invoke is handed back only where paramiko's
    own parser looks a host up (:func:`givebackinvoke`).
    """
    with demandimport.deactivated():
        # The idna codec is looked up on first use by socket; if that
        # first use happens in several threads at once, all but one see
        # "unknown encoding: idna".  Import it here, once.
        import encodings.idna  # noqa: F401
        blocked = 'invoke' not in sys.modules and 'paramiko' not in sys.modules
        if blocked:
            sys.modules['invoke'] = None  # "import invoke" raises ImportError
        try:
            import paramiko
            import paramiko.agent  # noqa: F401  (agent forwarding)
        finally:
            if blocked:
                del sys.modules['invoke']
    return paramiko


def givebackinvoke(paramiko):
    """Let paramiko's ssh_config parser run ``Match exec`` as it would."""
    if paramiko.config.invoke is None:
        try:
            with demandimport.deactivated():
                import invoke
        except ImportError:
            return
        paramiko.config.invoke = invoke
        paramiko.config.invoke_import_error = None


class SSHContext:
    """What every connection of one run shares.

    known_hosts is parsed once per run, not once per host: a large
    known_hosts file is slow to read.  A host's ssh configuration is what
    ``ssh -G`` says (Include, Match, IdentitiesOnly as OpenSSH reads them)
    where the ssh client is installed, else paramiko's parser.
    """

    def __init__(self, ui, settings):
        paramiko = importparamiko()
        # No gc.freeze() here, though it saves ~0.1 s at the exit of a plain
        # hg: under chg or a command server the process outlives the command,
        # and everything alive when it ran would never be collected again.
        self.paramiko = paramiko
        self.ui = ui
        self.policy = settings[b'hostkeys']
        self.timeout = settings[b'connecttimeout']
        self.knownhosts = pycompat.fsdecode(settings[b'knownhosts'])
        self.hostkeys = paramiko.HostKeys()
        if os.path.exists(self.knownhosts):
            self.hostkeys.load(self.knownhosts)
        self.sshconfig = paramiko.SSHConfig()
        sshconfig = os.path.expanduser(pycompat.fsdecode(settings[b'sshconfig']))
        if os.path.exists(sshconfig):
            self.sshconfig = paramiko.SSHConfig.from_path(sshconfig)
        # OpenSSH's own reading (Include, Match, every key) where the ssh
        # client is installed; paramiko's parser otherwise.
        self.openssh = OpenSSHConfig.find(sshconfig)
        self._writelock = threading.Lock()
        # sshd drops unauthenticated connections beyond MaxStartups (10 by
        # default): never have more handshakes than that in flight at once.
        self._handshakes = threading.BoundedSemaphore(HANDSHAKES)

    def _resolve(self, alias, user=None, port=None):
        """What ~/.ssh/config says of ``alias``, as the ssh command reads it.

        ``user`` and ``port`` given in hgrc win over the config file.
        """
        if self.openssh is not None:
            resolved = self.openssh.resolve(alias, user, port)
            if resolved is not None:
                return resolved
        givebackinvoke(self.paramiko)
        found = self.sshconfig.lookup(alias)
        return {
            'hostname': found.get('hostname', alias),
            'port': port or int(found.get('port', 22)),
            'user': user or found.get('user') or _localuser(),
            'keyfiles': [os.path.expanduser(p)
                         for p in found.get('identityfile', [])],
            'proxycommand': found.get('proxycommand'),
            'proxyjump': found.get('proxyjump'),
            'forwardagent': found.get('forwardagent', 'no').lower() == 'yes',
            'identitiesonly': found.get('identitiesonly', 'no').lower() == 'yes',
            'agent': found.get('identityagent', '').lower() != 'none',
        }

    def connect(self, host, env):
        """Open ``sh`` on ``host`` of ``env``; return an :class:`SSHTransport`.

        Through every ``ProxyJump`` host in turn, or a ``ProxyCommand``; each
        hop's host key is checked like the target's.
        """
        paramiko = self.paramiko
        user = host.user and pycompat.sysstr(host.user)
        target = self._resolve(pycompat.sysstr(host.hostname), user, host.port)
        if env.identity:
            target['keyfiles'] = [
                os.path.expanduser(pycompat.fsdecode(env.identity))]
        clients = []
        try:
            sock = None
            if target['proxycommand']:
                sock = paramiko.ProxyCommand(target['proxycommand'])
            elif target['proxyjump'] and target['proxyjump'] != 'none':
                for jump in target['proxyjump'].split(','):
                    spec = config.parsehost(pycompat.sysbytes(jump.strip()))
                    hop = self._resolve(pycompat.sysstr(spec.hostname),
                                        spec.user and pycompat.sysstr(spec.user),
                                        spec.port)
                    clients.append(self._client(hop, sock))
                    sock = self._forward(clients[-1], target)
            client = self._client(target, sock)
            clients.append(client)
            channel = client.get_transport().open_session(timeout=self.timeout)
            if env.forwardagent or target['forwardagent']:
                # The target's own ssh (an hg pull from ssh://) can then use
                # the deploying user's agent; the key never leaves here.
                paramiko.agent.AgentRequestHandler(channel)
            channel.set_combine_stderr(True)
            _execnowait(channel, 'sh')
        except BaseException:
            for c in clients:
                c.close()
            raise
        return SSHTransport(clients, channel)

    def _forward(self, jump, target):
        """A channel through ``jump`` to the next hop (ssh -W)."""
        try:
            return jump.get_transport().open_channel(
                'direct-tcpip', (target['hostname'], target['port']),
                ('127.0.0.1', 0), timeout=self.timeout)
        except (self.paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectError(
                _(b'cannot reach %s through the jump host: %s')
                % (_keyname(target), encoding.strtolocal(str(exc))))

    def _client(self, hop, sock=None):
        """An authenticated SSHClient to ``hop``; ConnectError otherwise."""
        paramiko = self.paramiko
        keyname = _keyname(hop)
        client = paramiko.SSHClient()
        known = self.hostkeys.lookup(pycompat.sysstr(keyname))
        if known:
            for keytype, key in known.items():
                client.get_host_keys().add(pycompat.sysstr(keyname), keytype,
                                           key)
        client.set_missing_host_key_policy(_UnknownHostKey(self))
        try:
            with self._handshakes:
                if sock is None:
                    sock = _tcpconnect(hop['hostname'], hop['port'],
                                       self.timeout)
                client.connect(
                    hop['hostname'],
                    port=hop['port'],
                    username=hop['user'],
                    key_filename=hop['keyfiles'] or None,
                    # IdentitiesOnly: the configured keys, nothing else.
                    look_for_keys=not hop['identitiesonly'],
                    allow_agent=hop['agent'] and not (
                        hop['identitiesonly'] and hop['keyfiles']),
                    timeout=self.timeout,
                    banner_timeout=self.timeout,
                    auth_timeout=self.timeout,
                    sock=sock,
                )
            # Notice a host that vanished mid-step, instead of waiting on a
            # dead TCP connection forever.
            client.get_transport().set_keepalive(15)
            _nodelay(client.get_transport().sock)
            return client
        except ConnectError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ConnectError(
                _(b'host key for %s has CHANGED (got %s fingerprint %s)')
                % (keyname, pycompat.bytestr(exc.key.get_name()),
                   pycompat.bytestr(exc.key.fingerprint)),
                _(b'this may be an attack; if the host was reinstalled, remove '
                  b'its old key from %s') % pycompat.fsencode(self.knownhosts),
            )
        except paramiko.PasswordRequiredException:
            client.close()
            raise ConnectError(
                _(b'the private key for %s@%s is encrypted and no passphrase '
                  b'can be asked here')
                % (pycompat.bytestr(hop['user']), keyname),
                _(b'load it into ssh-agent (ssh-add KEYFILE); the agent is '
                  b'used when it holds the key'),
            )
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ConnectError(
                _(b'authentication failed for %s@%s: %s')
                % (pycompat.bytestr(hop['user']), keyname,
                   encoding.strtolocal(str(exc))),
                hints.authfailed(pycompat.bytestr(hop['user']),
                                 hop['keyfiles']),
            )
        except OSError as exc:  # refused, unknown name, timeout: say which
            client.close()
            what, hint = hints.connectfailure(exc, hop['hostname'], hop['port'])
            raise ConnectError(_(b'cannot connect to %s: %s') % (keyname, what),
                               hint)
        except (paramiko.SSHException, EOFError) as exc:
            client.close()
            raise ConnectError(
                _(b'cannot connect to %s: %s')
                % (keyname, encoding.strtolocal(str(exc) or type(exc).__name__)),
            )

    def remember(self, keyname, key):
        """Trust a new host key (accept-new) and append it to known_hosts."""
        with self._writelock:
            self.hostkeys.add(keyname, key.get_name(), key)
            line = '%s %s %s\n' % (keyname, key.get_name(), key.get_base64())
            directory = os.path.dirname(self.knownhosts)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700)
            with open(self.knownhosts, 'a') as fp:
                fp.write(line)
        self.ui.warn(
            _(b'warning: permanently added %s (%s) to %s\n')
            % (pycompat.bytestr(keyname), pycompat.bytestr(key.get_name()),
               pycompat.fsencode(self.knownhosts))
        )


class OpenSSHConfig:
    """A host's configuration as OpenSSH reads it: ``ssh -G HOST``.

    ``ssh -G`` prints the effective configuration (Include and Match
    applied, ``~`` and tokens expanded) without connecting.  One run per
    host and run, cached.
    """

    def __init__(self, ssh, configfile):
        self.ssh = ssh
        self.configfile = configfile
        self._cache = {}
        self._lock = threading.Lock()

    @classmethod
    def find(cls, configfile):
        """The reader for ``configfile``, or None without an ssh client."""
        import shutil

        ssh = shutil.which('ssh')
        return cls(ssh, configfile) if ssh else None

    def command(self, alias, user=None, port=None):
        args = [self.ssh, '-G']
        # Without -F, ssh reads the passwd home's ~/.ssh/config and the
        # system's ssh_config: the same as here unless HOME says otherwise.
        default = os.path.join(os.path.expanduser('~' + _localuser()),
                               '.ssh', 'config')
        if self.configfile != default:
            args += ['-F', self.configfile if os.path.exists(self.configfile)
                     else os.devnull]
        if user:
            args += ['-l', user]
        if port:
            args += ['-p', str(port)]
        return args + ['--', alias]

    def resolve(self, alias, user=None, port=None):
        """The dict :meth:`SSHContext._resolve` returns; None when ssh
        cannot say (then paramiko's parser answers)."""
        key = (alias, user, port)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._read(alias, user, port)
        return self._cache[key]

    def _read(self, alias, user, port):
        try:
            proc = subprocess.run(self.command(alias, user, port),
                                  stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode:
            # A configuration ssh itself rejects: say so, as ssh would.
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            raise ConnectError(
                _(b'ssh cannot read its configuration for %s: %s')
                % (pycompat.sysbytes(alias), lines[-1] if lines else b'?'),
                _(b"'ssh -G %s' shows the same") % pycompat.sysbytes(alias))
        return parsesshg(proc.stdout)


def parsesshg(output):
    """The connection settings in ``ssh -G`` output.

    >>> found = parsesshg(b'hostname 10.0.0.5\\nport 2222\\nuser deploy\\n'
    ...                   b'identityfile /nonexistent/id_x\\n'
    ...                   b'proxyjump none\\nidentitiesonly yes\\n')
    >>> found['hostname'], found['port'], found['user'], found['keyfiles']
    ('10.0.0.5', 2222, 'deploy', [])
    >>> found['proxyjump'], found['identitiesonly'], found['agent']
    (None, True, True)
    """
    values = {}
    for line in output.decode('utf-8', 'replace').splitlines():
        key, _sep, value = line.partition(' ')
        values.setdefault(key.lower(), []).append(value.strip())

    def one(key, default=None):
        value = values.get(key, [default])[0]
        return None if value is None or value.lower() == 'none' else value

    # ssh -G lists the default identity files too: only those that exist.
    keyfiles = [os.path.expanduser(p) for p in values.get('identityfile', [])]
    found = {
        'hostname': one('hostname'),
        'port': int(one('port', '22')),
        'user': one('user') or _localuser(),
        'keyfiles': [p for p in keyfiles if os.path.exists(p)],
        'proxyjump': one('proxyjump'),
        'forwardagent': (one('forwardagent') or 'no').lower() == 'yes',
        'identitiesonly': (one('identitiesonly') or 'no').lower() == 'yes',
        'agent': values.get('identityagent', [''])[0].lower() != 'none',
    }
    # ssh expands ProxyCommand's tokens only when it connects.
    command = one('proxycommand')
    if command:
        tokens = {'h': found['hostname'], 'p': str(found['port']),
                  'r': found['user'], 'n': found['hostname'], '%': '%'}
        command = re.sub(r'%([hprn%])', lambda m: tokens[m.group(1)], command)
    found['proxycommand'] = command
    return found


class _UnknownHostKey:
    """paramiko's missing-host-key policy, following [envdeploy] hostkeys."""

    def __init__(self, context):
        self.context = context

    def missing_host_key(self, client, keyname, key):
        context = self.context
        if context.policy == b'accept-new':
            context.remember(keyname, key)
            return
        raise ConnectError(
            _(b'host key for %s is unknown (%s fingerprint %s)')
            % (pycompat.bytestr(keyname), pycompat.bytestr(key.get_name()),
               pycompat.bytestr(key.fingerprint)),
            _(b'check the key and add it to %s (ssh-keyscan), or set '
              b'[envdeploy] hostkeys = accept-new')
            % pycompat.fsencode(context.knownhosts),
        )


def _keyname(hop):
    """The host's name in known_hosts: ``[host]:port`` off port 22."""
    if hop['port'] == 22:
        return pycompat.sysbytes(hop['hostname'])
    return pycompat.sysbytes('[%s]:%d' % (hop['hostname'], hop['port']))


def _localuser():
    import getpass

    return getpass.getuser()


def connect(host, env, sshcontext):
    """A transport to ``host`` of ``env``; ``sshcontext`` may be None."""
    if host.islocal:
        return LocalTransport()
    return sshcontext.connect(host, env)

