"""Many hosts: rolling batches, maxfail, dead and silent hosts, a 16-host deploy."""
import os
import subprocess
import time

import pytest

from envtools import environment, head, journal, parent, ssh_settings, ssh_targets


def stamps(sshd_hosts, hosts, path):
    """When each host's reload ran (seconds, from a file on the host)."""
    return [float(open(os.path.join(sshd_hosts.local_path(h, path), "stamp")).read())
            for h in hosts]


@pytest.fixture
def three(hgenv, central_repo, sshd_hosts, remote_dir):
    """Three hosts cloned at remote_dir/project; returns (hosts, path, targets)."""
    path = os.path.join(remote_dir, "project")
    hosts = sshd_hosts.hosts
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, hosts, path)
    return hosts, path, targets


def configure(hgenv, repo, sshd_hosts, hosts, path, extra="", **keys):
    hgenv.write_hgrc(repo, ssh_settings(sshd_hosts, extra) + environment(
        "live", branch="staging", hosts=" ".join(h.spec for h in hosts), path=path,
        **keys))


def test_serial_batches_run_in_host_order(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    configure(hgenv, central_repo, sshd_hosts, hosts, path, serial="1",
              reload="python3 -c 'import time; print(time.time())' > stamp; sleep 0.3")

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc == 0, r.text
    t0, t1, t2 = stamps(sshd_hosts, hosts, path)
    # One host at a time, in the order of the hosts line.
    assert t0 + 0.3 <= t1 and t1 + 0.3 <= t2
    order = [line.split(":")[1] for line in r.out.splitlines() if ": deployed " in line]
    assert order == [str(h.port) for h in hosts]


def test_serial_percentage_makes_batches(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    # 34% of 3 hosts is 2 per batch: host0 and host1 together, then host2.
    configure(hgenv, central_repo, sshd_hosts, hosts, path, serial="34%",
              reload="python3 -c 'import time; print(time.time())' > stamp; sleep 1")

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc == 0, r.text
    t0, t1, t2 = stamps(sshd_hosts, hosts, path)
    assert abs(t0 - t1) < 0.8
    assert t2 >= max(t0, t1) + 1


def test_failing_host_stops_the_next_batch(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    open(os.path.join(targets[1], "broken"), "w").close()
    configure(hgenv, central_repo, sshd_hosts, hosts, path, serial="1",
              check="test ! -f broken")

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc != 0
    assert f"failed on 1 of 3 hosts: {hosts[1].spec} (check)" in r.err
    assert f"untouched: {hosts[2].spec}" in r.err
    assert f"{hosts[2].spec}: untouched: not started" in r.out
    assert journal(targets[2]) == []
    assert parent(hgenv, targets[2]) == "0" * 40
    # The first batch had changed host0: it is rolled back with host1.
    for t in targets[:2]:
        assert journal(t)[-1]["rollback"]["outcome"] == "ok"
        assert parent(hgenv, t) == "0" * 40


def test_maxfail_tolerates_failed_hosts(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    open(os.path.join(targets[0], "broken"), "w").close()
    configure(hgenv, central_repo, sshd_hosts, hosts, path, serial="1", maxfail="1",
              check="test ! -f broken")

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc != 0  # not every host succeeded
    assert f"failed on 1 of 3 hosts: {hosts[0].spec} (check)" in r.err
    staging = head(hgenv, central_repo, "staging")
    # The failed host rolled itself back; the others went on and stay deployed.
    assert parent(hgenv, targets[0]) == "0" * 40
    assert [parent(hgenv, t) for t in targets[1:]] == [staging, staging]
    assert [journal(t)[-1]["outcome"] for t in targets] == ["failed", "ok", "ok"]


def test_host_killed_mid_deploy_fails_alone(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    configure(hgenv, central_repo, sshd_hosts, hosts, path, onfailure="stop",
              reload="touch reloading; sleep 2")
    lock = os.path.join(targets[1], "reloading")
    proc = subprocess.Popen([hgenv.hg_executable, "envdeploy", "live"], cwd=central_repo,
                            env=hgenv.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(lock) and time.monotonic() < deadline:
            time.sleep(0.05)
        hosts[1].stop()  # sshd and its sessions die while reload runs
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        hosts[1].start()

    assert proc.returncode != 0
    assert f"{hosts[1].spec}: FAILED at " in out
    assert "lost the connection" in out
    assert f"failed on 1 of 3 hosts: {hosts[1].spec}" in err
    staging = head(hgenv, central_repo, "staging")
    assert parent(hgenv, targets[0]) == parent(hgenv, targets[2]) == staging
    assert elapsed < 15  # reported promptly, nothing hangs


def test_silent_host_times_out(hgenv, central_repo, sshd_hosts, three):
    hosts, path, targets = three
    configure(hgenv, central_repo, sshd_hosts, hosts[:2], path, "timeout = 2\n",
              onfailure="stop", check="test ! -f slow || sleep 8")
    open(os.path.join(targets[0], "slow"), "w").close()

    started = time.monotonic()
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)
    elapsed = time.monotonic() - started

    assert r.rc != 0
    assert f"{hosts[0].spec}: FAILED at check: lost the connection: no answer for 2 seconds" in r.out
    assert f"{hosts[1].spec}: deployed" in r.out
    assert elapsed < 8  # did not wait for the silent step


def test_sixteen_hosts(hgenv, central_repo, fleet, tmp_path):
    path = os.path.join(fleet.mount, "project")
    ssh_targets(hgenv, central_repo, fleet, fleet.hosts, path)
    hgenv.write_hgrc(central_repo, ssh_settings(fleet, "concurrency = 16\n") + environment(
        "live", branch="staging", hosts=", ".join(h.spec for h in fleet.hosts), path=path,
        reload="sleep 1"))

    started = time.monotonic()
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)
    elapsed = time.monotonic() - started

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    for h in fleet.hosts:
        target = fleet.local_path(h, path)
        assert parent(hgenv, target) == staging
        assert journal(target)[-1]["outcome"] == "ok"
    # In parallel: 16 one-second reloads took far less than 16 seconds.
    assert elapsed < 12
