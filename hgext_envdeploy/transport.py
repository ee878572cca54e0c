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
import select
import socket
import subprocess
import threading

from mercurial.i18n import _
from mercurial import demandimport, encoding, pycompat


class ConnectError(Exception):
    """A host could not be reached or authenticated; args: (msg, hint)."""

    def __init__(self, msg, hint=None):
        super().__init__(msg, hint)
        self.msg = msg
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

    def __init__(self, client, channel):
        self._client = client
        self._channel = channel

    def send(self, data):
        self._channel.sendall(data)

    def recv(self, timeout):
        self._channel.settimeout(timeout)
        try:
            return self._channel.recv(65536)
        except socket.timeout:
            return None

    def close(self, wait=True):
        try:
            # End of input ends the remote shell, whose EXIT trap releases
            # the lock; give it a moment before the connection goes away.
            self._channel.shutdown_write()
            if wait:
                self._channel.status_event.wait(10)
        except Exception:
            pass
        self._client.close()


class SSHContext:
    """What every connection of one run shares.

    known_hosts and ~/.ssh/config are parsed once per run, not once per
    host: a large known_hosts file is slow to read.
    """

    def __init__(self, ui, settings):
        with demandimport.deactivated():
            # The idna codec is looked up on first use by socket; if that
            # first use happens in several threads at once, all but one see
            # "unknown encoding: idna".  Import it here, once.
            import encodings.idna  # noqa: F401
            import paramiko
        self.paramiko = paramiko
        self.ui = ui
        self.policy = settings[b'hostkeys']
        self.timeout = settings[b'connecttimeout']
        self.knownhosts = pycompat.fsdecode(settings[b'knownhosts'])
        self.hostkeys = paramiko.HostKeys()
        if os.path.exists(self.knownhosts):
            self.hostkeys.load(self.knownhosts)
        self.sshconfig = paramiko.SSHConfig()
        sshconfig = pycompat.fsdecode(settings[b'sshconfig'])
        if os.path.exists(sshconfig):
            self.sshconfig = paramiko.SSHConfig.from_path(sshconfig)
        self._writelock = threading.Lock()

    def _resolve(self, host):
        """Host, port, user and key files, as the ssh command would."""
        alias = pycompat.sysstr(host.hostname)
        found = self.sshconfig.lookup(alias)
        hostname = found.get('hostname', alias)
        port = host.port or int(found.get('port', 22))
        user = host.user and pycompat.sysstr(host.user)
        user = user or found.get('user') or _localuser()
        keyfiles = [os.path.expanduser(p) for p in found.get('identityfile', [])]
        return hostname, port, user, keyfiles, found.get('proxycommand')

    def connect(self, host, identity=b''):
        """Open ``sh`` on ``host``; return an :class:`SSHTransport`."""
        paramiko = self.paramiko
        hostname, port, user, keyfiles, proxycommand = self._resolve(host)
        if identity:
            keyfiles = [os.path.expanduser(pycompat.fsdecode(identity))]
        keyname = hostname if port == 22 else '[%s]:%d' % (hostname, port)

        client = paramiko.SSHClient()
        known = self.hostkeys.lookup(keyname)
        if known:
            for keytype, key in known.items():
                client.get_host_keys().add(keyname, keytype, key)
        client.set_missing_host_key_policy(_UnknownHostKey(self))
        sock = None
        if proxycommand:
            sock = paramiko.ProxyCommand(proxycommand)
        try:
            client.connect(
                hostname,
                port=port,
                username=user,
                key_filename=keyfiles or None,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                sock=sock,
            )
            transport = client.get_transport()
            # Notice a host that vanished mid-step, instead of waiting on a
            # dead TCP connection forever.
            transport.set_keepalive(15)
            channel = transport.open_session(timeout=self.timeout)
            channel.set_combine_stderr(True)
            channel.exec_command('sh')
        except ConnectError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ConnectError(
                _(b'host key for %s has CHANGED (got %s fingerprint %s)')
                % (
                    pycompat.bytestr(keyname),
                    pycompat.bytestr(exc.key.get_name()),
                    pycompat.bytestr(exc.key.fingerprint),
                ),
                _(b'this may be an attack; if the host was reinstalled, remove '
                  b'its old key from %s') % pycompat.fsencode(self.knownhosts),
            )
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ConnectError(
                _(b'authentication failed for %s@%s: %s')
                % (pycompat.bytestr(user), pycompat.bytestr(keyname),
                   encoding.strtolocal(str(exc))),
                _(b'set the identity key, or load the key into ssh-agent'),
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise ConnectError(
                _(b'cannot connect to %s: %s')
                % (pycompat.bytestr(keyname),
                   encoding.strtolocal(str(exc) or type(exc).__name__)),
            )
        return SSHTransport(client, channel)

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


def _localuser():
    import getpass

    return getpass.getuser()


def connect(host, env, sshcontext):
    """A transport to ``host`` of ``env``; ``sshcontext`` may be None."""
    if host.islocal:
        return LocalTransport()
    return sshcontext.connect(host, env.identity)


def needsssh(envs):
    return any(not e.islocal for e in envs)

