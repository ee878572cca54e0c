"""Faults and real-world SSH: Ctrl-C, full disks, jump hosts, agents, encrypted keys."""
import json
import os
import signal
import subprocess
import time

import pytest

from envtools import (
    clone_target, commit_on, environment, head, journal, parent, ssh_settings,
    ssh_targets, wait_for,
)


def start(hgenv, repo, *args, env=None):
    return subprocess.Popen([hgenv.hg_executable, *args], cwd=repo,
                            env=env or hgenv.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# --- Ctrl-C -------------------------------------------------------------------


def test_ctrl_c_lets_running_steps_finish_then_unlocks(hgenv, central_repo,
                                                      sshd_hosts, remote_dir):
    hosts = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, hosts, path)
    # A generous grace: on a loaded machine the 2 s step must still fit in it.
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "grace = 60\n") + environment(
        "staging", hosts=" ".join(h.spec for h in hosts), path=path,
        reload="touch reloading; sleep 2; touch reloaded", check="touch checked"))
    proc = start(hgenv, central_repo, "envdeploy", "staging")
    for t in targets:
        wait_for(lambda: os.path.exists(os.path.join(t, "reloading")))

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode != 0, out + err
    assert "interrupted: no new step starts; running steps have 60 seconds" in err
    assert "deploy of staging interrupted on 2 of 2 hosts" in err
    for t in targets:
        assert os.path.exists(os.path.join(t, "reloaded"))  # the running step finished
        assert not os.path.exists(os.path.join(t, "checked"))  # no new step started
        record = journal(t)[-1]
        assert record["outcome"] == "interrupted"
        assert [s["name"] for s in record["steps"]] == ["update", "reload"]
        assert not os.path.exists(os.path.join(t, ".hg", "envdeploy", "lock"))


def test_second_ctrl_c_leaves_at_once(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, reload="touch reloading; sleep 6"))
    proc = start(hgenv, central_repo, "envdeploy", "staging")
    wait_for(lambda: os.path.exists(os.path.join(target, "reloading")))

    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert time.monotonic() - started < 4  # did not wait for the 6 s step
    # The step's session ends with the step, and its lock with it.
    wait_for(lambda: not os.path.exists(
        os.path.join(target, ".hg", "envdeploy", "lock")), timeout=20)


# --- full disk ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory):
    """Fill the disk holding ``directory``; return the filler's path."""
    filler = os.path.join(directory, "filler")
    subprocess.run(["sh", "-c", f"cat /dev/zero > '{filler}'"], stderr=subprocess.DEVNULL)
    return filler


def test_disk_full_during_update(hgenv, central_repo, small_disk):
    target = clone_target(hgenv, central_repo, small_disk / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    filler = fill(small_disk)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (" in r.err  # the host and the step are named
    assert "No space left on device" in r.text
    assert "Traceback" not in r.text
    os.unlink(filler)
    # Whatever reached the journal reads back; readers survive a torn line.
    for line in open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl"),
                     errors="replace") if os.path.exists(
            os.path.join(target, ".hg", "envdeploy", "journal.jsonl")) else []:
        if line.endswith("\n"):
            json.loads(line)
    assert hgenv.hg("envlog", "staging", cwd=central_repo).rc == 0
    assert hgenv.hg("envstatus", "staging", cwd=central_repo).rc == 0
    # With space again, the deploy goes through.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text


def test_disk_full_while_writing_the_journal(hgenv, central_repo, small_disk):
    target = clone_target(hgenv, central_repo, small_disk / "site")
    filler = os.path.join(small_disk, "filler")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, onfailure="stop",
        # The journal's last page filled too (its begin line is there): a torn line.
        check=f"cat /dev/zero > '{filler}' 2>/dev/null; "
        "cat /dev/zero >> .hg/envdeploy/journal.jsonl 2>/dev/null; true"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local: could not write the journal" in r.err
    assert "local (journal)" in r.err
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))
    os.unlink(filler)
    # A torn last line is skipped by the readers, and the next record is whole.
    r = hgenv.hg("envdeploy", "staging", "--config", "environments.staging.check=true",
                 cwd=central_repo)
    assert r.rc == 0, r.text
    # The last deploy left no record, so this one redoes the steps.
    assert journal_tail_outcome(target) == "ok"
    r = hgenv.hg("envlog", "staging", cwd=central_repo)
    assert r.rc == 0, r.text


def journal_tail_outcome(target):
    path = os.path.join(target, ".hg", "envdeploy", "journal.jsonl")
    lines = [line for line in open(path, errors="replace").read().split("\n") if line]
    return json.loads(lines[-1])["outcome"]


# --- pre-flight through envdeploy ------------------------------------------------


def test_envdeploy_check_changes_nothing(hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=path))

    r = hgenv.hg("envdeploy", "staging", "--check", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == "0" * 40 and journal(target) == []
    r = hgenv.hg("envdeploy", "staging", "--check", "--config",
                 f"environments.staging.path={path}-missing", cwd=central_repo)
    assert r.rc != 0


# --- real-world SSH ---------------------------------------------------------------


def ssh_config(tmp_path, text):
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return path


def test_proxyjump_through_a_second_sshd(hgenv, central_repo, sshd_hosts, remote_dir,
                                         tmp_path):
    jump, web = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [web], path)
    config = ssh_config(tmp_path, f"""\
Host web-behind-bastion
    HostName 127.0.0.1
    Port {web.port}
    User root
    ProxyJump root@127.0.0.1:{jump.port}

Host *
    IdentityFile {sshd_hosts.client_key}
""")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        "sshconfig = /dev/null", f"sshconfig = {config}") + environment(
        "staging", hosts="web-behind-bastion", path=path))
    before = open(jump.log).read().count("Accepted publickey")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")
    # The jump host saw one login (and forwarded the connection).
    assert open(jump.log).read().count("Accepted publickey") - before == 1


def test_proxycommand(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    jump, web = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [web], path)
    config = ssh_config(tmp_path, f"""\
Host web
    HostName 127.0.0.1
    Port {web.port}
    User root
    IdentityFile {sshd_hosts.client_key}
    ProxyCommand ssh -F /dev/null -i {sshd_hosts.client_key} -o IdentitiesOnly=yes -o UserKnownHostsFile={sshd_hosts.known_hosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -p {jump.port} -W %h:%p root@127.0.0.1
""")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        "sshconfig = /dev/null", f"sshconfig = {config}") + environment(
        "staging", hosts="web", path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")


@pytest.fixture
def agent(hgenv, tmp_path):
    """A real ssh-agent for this test; its socket in hgenv.env."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(sock), timeout=10)
    hgenv.env["SSH_AUTH_SOCK"] = sock
    yield sock
    proc.kill()
    proc.wait()


def add_to_agent(sock, key, passphrase=None):
    env = dict(os.environ, SSH_AUTH_SOCK=sock)
    if passphrase:
        askpass = os.path.join(os.path.dirname(sock), "askpass")
        with open(askpass, "w") as fp:
            fp.write(f"#!/bin/sh\necho '{passphrase}'\n")
        os.chmod(askpass, 0o700)
        env.update(SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    subprocess.run(["ssh-add", key], env=env, check=True, stdin=subprocess.DEVNULL,
                   capture_output=True)


def test_forwardagent_lets_the_target_pull_over_ssh(hgenv, central_repo, sshd_hosts,
                                                    remote_dir, agent):
    repo_host, web = sshd_hosts.hosts[1:3]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [web], path)
    # A changeset the target does not have, so it must pull it over ssh from the
    # central repository, which lives on its own host.
    node = commit_on(hgenv, central_repo, "staging", "new",
                     lambda repo: (repo / "new").write_text("x"))
    central_path = os.path.join(remote_dir, "central")
    hgenv.hg("clone", "-q", "-U", central_repo,
             sshd_hosts.local_path(repo_host, central_path), check=True)
    url = f"ssh://root@127.0.0.1:{repo_host.port}/{central_path}"
    # The target has no key of its own: only a forwarded agent can log it in.
    with open(os.path.join(target, ".hg", "hgrc"), "w") as fp:
        fp.write(f"[paths]\ndefault = {url}\n[ui]\nssh = ssh -F /dev/null "
                 f"-o UserKnownHostsFile={sshd_hosts.known_hosts} "
                 "-o StrictHostKeyChecking=yes -o BatchMode=yes\n")
    add_to_agent(agent, sshd_hosts.client_key)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=web.spec, path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0  # without forwarding the pull cannot log in
    assert f"{web.spec} (pull)" in r.err

    r = hgenv.hg("envdeploy", "staging", "--config",
                 "environments.staging.forwardagent=true", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node


def test_encrypted_key_without_agent_is_a_clear_error(hgenv, central_repo, sshd_hosts,
                                                      remote_dir, tmp_path, agent):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    key = str(tmp_path / "locked_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-phrase", "-f", key],
                   check=True)
    with open(sshd_hosts.authorized_keys, "a") as fp:
        fp.write(open(key + ".pub").read())
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        str(sshd_hosts.client_key), key) + environment("staging", hosts=h0.spec, path=path))

    r = hgenv.hg("envdeploy", "staging", "--debug", cwd=central_repo)

    assert r.rc != 0
    assert "is encrypted and no passphrase can be asked here" in r.text
    assert "ssh-add" in r.text
    assert "PRIVATE KEY" not in r.text and "s3cret" not in r.text
    assert journal(target) == []

    # With the key in the agent, the same configuration deploys.
    add_to_agent(agent, key, "s3cret-phrase")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "s3cret" not in r.text


def test_a_missing_path_takes_no_lock_anywhere(hgenv, central_repo, tmp_path):
    """The lock is sent with the cd into path, in one round trip: where the
    cd fails, neither the lock nor the command server may run, in the
    directory the session started in (here the central repository)."""
    missing = tmp_path / "nowhere" / "site"
    hgenv.write_hgrc(central_repo, environment("staging", path=missing))
    # A stale lock there: a lock script run in the wrong directory would
    # take it over (and release it at the end).
    stale = os.path.join(central_repo, ".hg", "envdeploy", "lock")
    os.makedirs(stale)
    info = f"user=ghost\npid=999999999\nnode={os.uname().nodename}\n"
    with open(os.path.join(stale, "info"), "w") as fp:
        fp.write(info)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"FAILED at path: {missing} does not exist on this host; nothing changed" \
        in r.out + r.err, r.text
    assert "hg envsetup staging" in r.out + r.err, r.text
    with open(os.path.join(stale, "info")) as fp:
        assert fp.read() == info
    assert not os.path.exists(os.path.join(central_repo, ".hg", "envdeploy",
                                           "journal.jsonl"))
