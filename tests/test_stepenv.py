"""ENVDEPLOY_* in every step's environment, and check.timeout's tries (no server)."""
import doctest
import os

from djangoproject import add_migration
from envtools import (
    MIGRATE, PYTHON, clone_target, commit_on, environment, head, journal, parent,
    ssh_settings, ssh_targets,
)

from hgext_envdeploy import healthcheck

NAMES = ("NODE", "ENV", "BRANCH", "HOST", "ROLE", "ID")


def dump(step):
    """A shell command appending the step's ENVDEPLOY_* values to steps.log."""
    fields = " ".join(f"{n}=${{ENVDEPLOY_{n}-unset}}" for n in NAMES)
    return f'echo "{step} {fields}" >> steps.log'


def logged(target):
    """[(step, {name: value})] in the order the steps ran."""
    path = os.path.join(target, "steps.log")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as fp:
        for line in fp:
            step, *fields = line.split()
            rows.append((step, dict(f.split("=", 1) for f in fields)))
    os.unlink(path)
    return rows


def hg_hook(target):
    """The target's own hg writes what it sees: an update hook in its hgrc."""
    with open(os.path.join(target, ".hg", "hgrc"), "a") as fp:
        fp.write("[hooks]\nupdate.stepenv = %s\n" % dump("hg"))


def expect(node, runid, host="local", role=""):
    return {"NODE": node, "ENV": "staging", "BRANCH": "staging", "HOST": host,
            "ROLE": role, "ID": runid}


def test_every_step_and_hg_see_the_run(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hg_hook(target)
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=f"{MIGRATE} && {dump('migrate')}",
        reload=dump("reload"), check=dump("check")))
    first = head(hgenv, central_repo, "staging")

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    [record] = journal(target)
    want = expect(first, record["id"])
    assert logged(target) == [("hg", want), ("migrate", want), ("reload", want),
                              ("check", want)]

    # A failing deploy: its steps see the new node; its automatic rollback's
    # steps (hg's update, reload, check) the node it goes back to.
    # Its migration goes back first (with the new code), then the code.
    second = commit_on(hgenv, central_repo, "staging", "second",
                       lambda repo: add_migration(repo, 4))
    hgenv.write_hgrc(central_repo, (
        "[environments]\nstaging.check = %s; test \"$ENVDEPLOY_NODE\" = %s\n"
        "staging.migrate.rollback = %s manage.py migrate --noinput {app} "
        "{migration} && %s\n") % (dump("check"), first, PYTHON, dump("unmigrate")))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0 and "rolled back" in r.err, r.text
    assert parent(hgenv, target) == first
    record = journal(target)[-1]
    assert record["rollback"]["reverted"] == ["bar.0004_bar_f0004"]
    forward, back = expect(second, record["id"]), expect(first, record["id"])
    assert logged(target) == [("hg", forward), ("migrate", forward),
                              ("reload", forward), ("check", forward),
                              ("unmigrate", back),
                              ("hg", back), ("reload", back), ("check", back)]

    # hg envrollback: the node it returns to, from its first step (0004 back).
    hgenv.write_hgrc(central_repo, "[environments]\nstaging.check = %s\n" % dump("check"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    logged(target)
    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)
    rolled = journal(target)[-1]
    assert rolled["kind"] == "rollback" and rolled["to"] == first
    back = expect(first, rolled["id"])
    assert logged(target) == [("unmigrate", back), ("hg", back), ("reload", back),
                              ("check", back)]


def test_over_ssh_with_roles(hgenv, central_repo, sshd_hosts, remote_dir):
    h1, h2 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h1, h2], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h1.spec, hosts_worker=h2.spec, path=path,
        reload=dump("reload"), reload_worker=dump("reload")))

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    node = head(hgenv, central_repo, "staging")
    runid = journal(targets[0])[0]["id"]
    assert logged(targets[0]) == [("reload", expect(node, runid, h1.spec))]
    assert logged(targets[1]) == [("reload", expect(node, runid, h2.spec, "worker"))]


def test_check_is_tried_until_it_passes(hgenv, central_repo, tmp_path):
    """The third try passes: the deploy succeeds and says each failed try."""
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, check_timeout=20, check_interval=0.2,
        check="echo try >> tries; test $(wc -l < tries) -ge 3 || "
              "{ echo not yet; exit 7; }"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "local: check: try 1 failed (exit 7: not yet), again in 0.2s" in r.out
    assert "local: check: try 2 failed (exit 7: not yet)" in r.out
    assert "local: check ok (try 3, " in r.out
    [record] = journal(target)
    [check] = [s for s in record["steps"] if s["name"] == "check"]
    assert check["tries"] == 3 and check["status"] == 0


def test_check_fails_when_the_time_is_up(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, onfailure="stop", check_timeout=2,
        check_interval=0.3, check="echo down; exit 3"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    [check] = [s for s in journal(target)[-1]["steps"] if s["name"] == "check"]
    # No try starts once fewer than check.interval seconds are left.
    assert check["tries"] >= 2 and 1.7 <= check["duration"] < 20, check
    assert (f"check exited with status 3 ({check['tries']} tries in "
            in r.err), r.text
    record = journal(target)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "check"


def test_bad_timeouts_are_config_errors(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target,
                                               check_timeout="soon"))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0
    assert "invalid check.timeout value 'soon' for environment 'staging'" in r.err
    assert "(a number of seconds (0: one try))" in r.err

    with open(os.path.join(central_repo, ".hg", "hgrc"), "w") as fp:
        fp.write(environment("staging", path=target, check_interval=0))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0
    assert "invalid check.interval value '0'" in r.err
    assert journal(target) == []


def test_doctests():
    result = doctest.testmod(healthcheck)
    assert result.attempted > 0 and result.failed == 0


def test_ctrl_c_ends_the_tries(hgenv, central_repo, tmp_path):
    import signal
    import subprocess
    import time

    from envtools import wait_for

    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, onfailure="stop", check_timeout=120,
        check_interval=1, check="touch tried; exit 5"))
    proc = subprocess.Popen([hgenv.hg_executable, "envdeploy", "staging"],
                            cwd=central_repo, env=hgenv.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: os.path.exists(os.path.join(target, "tried")))

    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert time.monotonic() - started < 5, out + err  # not the 120 s, nor the grace
    assert "local: check: interrupted, no more tries" in err, out + err
    record = journal(target)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "check"
    assert record["message"] == ("check exited with status 5 (interrupted after "
                                 "1 try)"), record
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


STEPS = ("before.migrate", "migrate", "after.migrate", "before.reload", "reload",
         "after.reload", "before.check", "check", "after.check")


def release_dump(step, log):
    return f'echo "{step} $ENVDEPLOY_NODE ${{ENVDEPLOY_RELEASE-unset}}" >> {log}'


def releases_seen(path):
    """[(step, node, ENVDEPLOY_RELEASE)] in the order the steps ran."""
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        rows = [tuple(line.split()) for line in fp]
    os.unlink(path)
    return rows


def test_every_step_sees_the_release_over_ssh(hgenv, central_repo, sshd_hosts,
                                              remote_dir):
    """layout = releases over sshd: each step, forward and back, sees the
    release it runs in; in place ENVDEPLOY_RELEASE is empty, not inherited."""
    [host] = sshd_hosts.hosts[:1]
    path = os.path.join(remote_dir, "project")
    log = os.path.join(path, "shared", "steps.log")
    local = os.path.join(sshd_hosts.local_path(host, path), "shared", "steps.log")
    steps = {key.replace(".", "_"): release_dump(key, log) for key in STEPS}
    steps["migrate"] = f"{MIGRATE} && {steps['migrate']}"
    settings = ssh_settings(sshd_hosts)
    hgenv.write_hgrc(central_repo, settings + environment(
        "staging", hosts=host.spec, path=path, layout="releases", source=central_repo,
        linked="db.sqlite3", migrate_rollback=(
            f"{PYTHON} manage.py migrate --noinput {{app}} {{migration}} && "
            + release_dump("unmigrate", log)), **steps))
    hgenv.hg("envsetup", "staging", cwd=central_repo, check=True)

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = head(hgenv, central_repo, "staging")
    first_release = os.path.join(path, "releases", host_journal(sshd_hosts, host,
                                                               path)[-1]["release"])
    assert releases_seen(local) == [(s, first, first_release) for s in STEPS]

    # A deploy whose check fails after the switch: its steps see the new
    # release; the migration goes back from it; reload and check (the
    # rollback's only steps besides it) from the old.
    second = commit_on(hgenv, central_repo, "staging", "second",
                       lambda repo: add_migration(repo, 4))
    hgenv.write_hgrc(central_repo, "[environments]\nstaging.check = %s && "
                     "test \"$ENVDEPLOY_NODE\" = %s\n" % (release_dump("check", log), first))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0 and "rolled back" in r.err, r.text
    record = host_journal(sshd_hosts, host, path)[-1]
    assert record["rollback"]["reverted"] == ["bar.0004_bar_f0004"], record
    second_release = os.path.join(path, "releases", record["id"])
    forward = [(s, second, second_release) for s in STEPS[:-1]]  # check failed
    back = [("reload", first, first_release), ("check", first, first_release)]
    assert releases_seen(local) == forward + [
        ("unmigrate", first, second_release)] + back

    # hg envrollback from a good second deploy: back from the newer release.
    hgenv.write_hgrc(central_repo, "[environments]\nstaging.check = %s\n"
                     % release_dump("check", log))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    newer = os.path.join(path, "releases", host_journal(sshd_hosts, host,
                                                        path)[-1]["release"])
    releases_seen(local)
    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)
    assert releases_seen(local) == [("unmigrate", first, newer)] + back

    # In place: set, and empty (no release to point at).
    inplace = os.path.join(remote_dir, "inplace")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [host], inplace)
    log = os.path.join(inplace, "steps.log")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=inplace, layout="inplace", check=release_dump("check", log)))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert releases_seen(os.path.join(target, "steps.log")) == [("check", second)]


def host_journal(sshd_hosts, host, path):
    return journal(os.path.join(sshd_hosts.local_path(host, path), "repo"))
