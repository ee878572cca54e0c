"""Real OpenSSH servers on 127.0.0.1, one per simulated host.

Used by the tests (tests/conftest.py) and the benchmarks.  Each sshd runs in
its own mount namespace where the shared mount point shows the host's own
directory: several hosts, one project path, separate disks.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


class SshdError(RuntimeError):
    pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mount_namespace(pid):
    return os.readlink(f"/proc/{pid}/ns/mnt")


# Run by `unshare -m` in the new mount namespace: bind HOST_DIR over the shared
# mount point (visible only in this namespace), then become sshd, keeping the PID.
_BIND_AND_EXEC = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'

_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# Keys and config live under /tmp, which StrictModes would refuse.
StrictModes no
UseDNS no
# The defaults (MaxStartups 10:30:100, MaxSessions 10) drop bursts of connections.
MaxStartups 64:30:128
MaxSessions 64
AllowAgentForwarding yes
Subsystem sftp internal-sftp
# Remote commands must find the venv's hg and python. SHLVL=1 also stops Debian's
# bash from reading root's ~/.bashrc (which runs pyenv) for non-interactive commands.
SetEnv PATH={venv_bin}:/usr/local/bin:/usr/bin:/bin SHLVL=1 PYTHONPATH={project_root}
"""


class Host:
    """One sshd on 127.0.0.1 whose sessions see `dir` mounted at the shared mount point.

    `state_dir` holds its host key, config, pid file and log (not visible remotely).
    """

    def __init__(self, name, dir, state_dir, mount, sshd, authorized_keys):
        self.name = name
        self.dir = dir
        self.mount = mount
        self.port = None  # chosen by the sshd_hosts fixture
        self._sshd = sshd
        self._authorized_keys = authorized_keys
        self._state_dir = state_dir
        self.host_key = os.path.join(state_dir, "host_key")
        self.config = os.path.join(state_dir, "sshd_config")
        self.log = os.path.join(state_dir, "sshd.log")
        self._proc = None
        self._namespace = None
        os.makedirs(dir)
        os.makedirs(state_dir)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key],
                       check=True)

    def __repr__(self):
        return f"<Host {self.name} port={self.port}>"

    @property
    def spec(self):
        return f"root@127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def known_hosts_line(self):
        with open(self.host_key + ".pub") as f:
            key_type, key = f.read().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def _write_config(self):
        with open(self.config, "w") as f:
            f.write(_SSHD_CONFIG.format(
                port=self.port, host_key=self.host_key,
                pid_file=os.path.join(self._state_dir, "sshd.pid"),
                authorized_keys=self._authorized_keys,
                venv_bin=VENV_BIN, project_root=PROJECT_ROOT,
            ))
        check = subprocess.run([self._sshd, "-t", "-f", self.config],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise SshdError(f"{self.name}: invalid {self.config}:\n{check.stderr}")

    def start(self, timeout=10):
        """Start sshd on self.port with the same host key; no-op if it is running."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return
            self.stop()  # it died: clear away whatever is left of its sessions
        self._write_config()
        log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        # The log also collects unshare/mount errors; sshd -E appends to it.
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private",
                 "sh", "-c", _BIND_AND_EXEC, "sh", self.dir, self.mount,
                 self._sshd, "-D", "-f", self.config, "-E", self.log],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # sshd logs this line once it listens: waiting for it rather than connecting
        # cannot be fooled by another process that took the port meanwhile.
        ready = f"Server listening on 127.0.0.1 port {self.port}."
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, errors="replace") as f:
                f.seek(log_offset)
                text = f.read()
            if ready in text:
                break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._proc.kill()
                self._proc.wait()
                self._proc = None
                raise SshdError(f"{self.name}: sshd did not start on port {self.port};"
                                f" log {self.log}:\n{text}")
            time.sleep(0.01)
        # By now the process is sshd inside its own namespace. stop() kills every
        # process in that namespace, so never let it be ours.
        self._namespace = _mount_namespace(self._proc.pid)
        assert self._namespace != _mount_namespace(os.getpid())

    def _processes_in_namespace(self):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if _mount_namespace(entry) == self._namespace:
                    pids.append(int(entry))
            except OSError:  # gone meanwhile, or a zombie (no namespaces left)
                pass
        return pids

    def stop(self, timeout=10):
        """Kill sshd and all its sessions (everything in its mount namespace); no-op if
        stopped. Session processes call setsid() and may daemonize, so neither the
        process group nor the process tree would catch them all."""
        if self._proc is None:
            return
        # The listener first, so that it forks no new sessions.
        self._proc.kill()
        deadline = time.monotonic() + timeout
        while pids := self._processes_in_namespace():
            if time.monotonic() > deadline:
                raise SshdError(f"{self.name}: processes {pids} survive SIGKILL")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        self._proc.wait()
        self._proc = None
        self._namespace = None


class SshdHosts:
    def __init__(self, hosts, mount, known_hosts, client_key, authorized_keys):
        self.hosts = hosts
        self.mount = mount
        self.known_hosts = known_hosts
        self.client_key = client_key
        # Every host reads it at each login: append a key to authorize it.
        self.authorized_keys = authorized_keys

    def local_path(self, host, remote_path):
        """Where the file that `host` sees at remote_path (under .mount) really is."""
        rel = os.path.relpath(remote_path, self.mount)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise ValueError(f"{remote_path} is not under {self.mount}")
        return os.path.normpath(os.path.join(host.dir, rel))

    def stop_all(self):
        for host in self.hosts:
            host.stop()

    def ssh(self, host, command, input=None, timeout=60):
        return subprocess.run(
            ["ssh", "-i", self.client_key,
             # Ignore the outer user's ~/.ssh/config and agent keys.
             "-F", "/dev/null", "-o", "IdentitiesOnly=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
             "-p", str(host.port), "root@127.0.0.1", command],
            input=input, capture_output=True, text=True, timeout=timeout,
        )


def _find_sshd():
    return shutil.which("sshd", path=os.pathsep.join(
        [os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"]))


def find_sshd():
    return shutil.which("sshd", path=os.pathsep.join(
        [os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"]))


def missing():
    """Why real sshd hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "sshd hosts need root (sshd as root, mount namespaces)"
    if find_sshd() is None:
        return "OpenSSH server (sshd) is not installed"
    for tool in ("ssh", "ssh-keygen", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def launch(base, count, prefix="host"):
    """Start `count` sshd hosts under the directory `base`; returns SshdHosts.

    Call .stop_all() when done.  Keys are generated per run.
    """
    sshd = find_sshd()
    # sshd refuses to start without its privilege separation directory.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    mount = os.path.join(base, "srv")
    os.makedirs(mount)
    client_key = os.path.join(base, "client_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", client_key],
                   check=True)
    authorized_keys = os.path.join(base, "authorized_keys")
    shutil.copyfile(client_key + ".pub", authorized_keys)

    hosts = []
    try:
        for i in range(count):
            host = Host(f"{prefix}{i}", os.path.join(base, f"{prefix}{i}"),
                        os.path.join(base, f"{prefix}{i}-sshd"), mount, sshd,
                        authorized_keys)
            hosts.append(host)
            # The free port may be taken between closing the probe socket and sshd's bind.
            for attempt in range(5):
                try:
                    host.port = _free_port()
                    host.start()
                    break
                except SshdError as error:
                    if "Address already in use" not in str(error) or attempt == 4:
                        raise
    except BaseException:
        for host in hosts:
            host.stop()
        raise
    known_hosts = os.path.join(base, "known_hosts")
    with open(known_hosts, "w") as f:
        f.writelines(host.known_hosts_line() for host in hosts)
    return SshdHosts(hosts, mount, known_hosts, client_key, authorized_keys)
