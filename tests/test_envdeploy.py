"""hg envdeploy against real repositories, real sshd and real Django migrations."""
import json
import os
import signal
import subprocess
import sys

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, environment, head, journal, migrations,
    parent, ssh_settings, ssh_targets, wait_for,
)

ALL = ["0001_initial", "0002_bar_description", "0003_bar_created"]


# --- local environments -----------------------------------------------------


def test_local_deploy_updates_migrates_and_journals(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE, reload="touch reloaded",
        check="test -f reloaded"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    assert parent(hgenv, target) == staging
    assert migrations(target) == ALL
    assert f"local: deployed {staging[:12]}" in r.out
    [record] = journal(target)
    assert record["v"] == 2 and record["phase"] == "end"
    assert record["kind"] == "deploy" and record["outcome"] == "ok"
    assert record["env"] == "staging" and record["host"] == "local"
    assert record["from"] is None and record["to"] == staging
    assert record["user"] == "Test User <test@example.com>"
    assert [s["name"] for s in record["steps"]] == ["update", "migrate", "reload", "check"]
    assert all(s["status"] == 0 for s in record["steps"])
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


def test_second_deploy_converges_and_only_checks(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE, reload="echo reloading",
        check="echo checking"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envdeploy", "staging", "-v", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "already at" in r.out and "checking" in r.out
    assert "reloading" not in r.out
    assert [rec["outcome"] for rec in journal(target)] == ["ok", "unchanged"]
    assert [s["name"] for s in journal(target)[1]["steps"]] == ["check"]


def test_converges_after_a_run_of_failed_records(hgenv, central_repo, tmp_path):
    # The lock's round trip reads only the last 5 records: behind them, the
    # deploy that put the changeset there is still found.
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, reload="echo reloading", check="echo checking"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    [ok] = journal(target)
    failed = dict(ok, outcome="failed", failed="lock", to="0" * 40, steps=[])
    with open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl"), "a") as fp:
        fp.write((json.dumps(failed) + "\n") * 6)

    r = hgenv.hg("envdeploy", "staging", "-v", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "already at" in r.out and "reloading" not in r.out
    assert journal(target)[-1]["outcome"] == "unchanged"


def test_new_migration_is_applied(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = head(hgenv, central_repo, "staging")
    name = []
    node = commit_on(hgenv, central_repo, "staging", "add 0004",
                     lambda repo: name.append(add_migration(repo, 4)))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node
    assert migrations(target) == ALL + name
    assert journal(target)[-1]["from"] == before
    assert [s["name"] for s in journal(target)[-1]["steps"]][:2] == ["pull", "update"]


def test_failing_migration_names_host_and_step(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE,
                                               reload="echo reloaded"))
    commit_on(hgenv, central_repo, "staging", "bad migration",
              lambda repo: add_migration(repo, 4, "failing"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "abort: deploy of staging failed on 1 of 1 hosts: local (migrate)" in r.err
    assert "migration 0004 failed on purpose" in r.err  # the command's output
    [record] = journal(target)
    assert record["outcome"] == "failed" and record["failed"] == "migrate"
    assert [s["name"] for s in record["steps"]] == ["pull", "update", "migrate"]
    assert record["steps"][-1]["status"] != 0


def test_failing_check_fails_the_deploy(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, check="echo 'health: 503'; exit 3"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (check)" in r.err
    assert "check exited with status 3" in r.text
    assert "health: 503" in r.err
    assert journal(target)[-1]["failed"] == "check"


def test_dry_run_changes_nothing(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))

    r = hgenv.hg("envdeploy", "staging", "--dry-run", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    assert f"would deploy {staging[:12]}" in r.out
    assert MIGRATE in r.out
    assert parent(hgenv, target) == "0" * 40
    assert journal(target) == []
    assert not os.path.exists(os.path.join(target, "db.sqlite3"))


def test_rev_must_be_on_the_branch(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))

    r = hgenv.hg("envdeploy", "staging", "-r", "live", cwd=central_repo)
    assert r.rc != 0
    assert "is on branch 'live', not on 'staging'" in r.err

    r = hgenv.hg("envdeploy", "staging", "-r", "0", cwd=central_repo)
    assert r.rc != 0  # revision 0 is on default
    assert journal(target) == []


def test_two_heads_abort_with_hint(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    commit_on(hgenv, central_repo, "staging", "one", lambda r: open(r / "a", "w").close())
    hgenv.hg("update", "-q", "staging~1", cwd=central_repo, check=True)
    (central_repo / "b").write_text("b\n")
    hgenv.hg("commit", "-q", "-A", "-m", "two", cwd=central_repo, check=True)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "branch 'staging' has 2 heads" in r.err
    assert "merge them first" in r.err
    assert journal(target) == []


def test_changeset_missing_from_source_says_push_first(hgenv, central_repo, tmp_path):
    # A developer's clone with an unpushed commit; the target pulls from central.
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    commit_on(hgenv, work, "staging", "not pushed", lambda r: (r / "new").write_text("x"))
    hgenv.write_hgrc(work, environment("staging", path=target))

    r = hgenv.hg("envdeploy", "staging", cwd=work)

    assert r.rc != 0
    assert "is not in the source" in r.err
    assert "push it there first" in r.err
    assert journal(target)[-1]["failed"] == "pull"


def test_manual_edits_are_saved_as_a_patch(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    urls = os.path.join(target, "mysite", "urls.py")
    with open(urls, "a") as fp:
        fp.write("# hotfix typed on the server\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "manual edits to mysite/urls.py saved as" in r.err
    assert "hotfix" not in open(urls).read()  # hg update -C restored it
    record = journal(target)[-1]
    assert record["dirty"] == ["mysite/urls.py"]
    patch = os.path.join(target, record["patch"])
    assert "+# hotfix typed on the server" in open(patch).read()
    # The patch brings the edit back.
    hgenv.hg("import", "--no-commit", patch, cwd=target, check=True)
    assert "hotfix" in open(urls).read()


def test_hostile_branch_and_path_are_only_names(hgenv, central_repo, tmp_path):
    canary = tmp_path / "pwned"
    branch = f"x; touch {canary}; $(touch {canary}) `touch {canary}` '\""
    hgenv.hg("update", "-q", "staging", cwd=central_repo, check=True)
    hgenv.hg("branch", "-q", branch, cwd=central_repo, check=True)
    hgenv.hg("commit", "-q", "-m", "hostile branch", cwd=central_repo, check=True)
    target = clone_target(hgenv, central_repo, tmp_path / "it's a $(dir) `x` \"y\"")
    hgenv.write_hgrc(central_repo, environment("weird", branch=branch, path=target))

    r = hgenv.hg("envdeploy", "weird", cwd=central_repo)

    assert r.rc == 0, r.text
    assert not canary.exists()
    assert hgenv.hg("branch", cwd=target).out.strip() == branch
    assert journal(target)[-1]["branch"] == branch


# --- configuration errors ---------------------------------------------------


@pytest.mark.parametrize("hgrc, message, hint", [
    ("[environments]\nstaging.path = /srv/x\n", "abort: unknown environment 'prod'",
     "known environments: staging"),
    ("", "abort: unknown environment 'prod'", "declare one in [environments]"),
    ("[environments]\nprod.hosts = a.example.com\n", "environment 'prod' has no path",
     "set prod.path"),
    ("[environments]\nprod.path = /x\nprod.hosts = a@b@c\n", "malformed host 'a@b@c'",
     "[user@]host[:port]"),
    ("[environments]\nprod.path = /x\nprod.hosts = h:70000\n", "port out of range", "1 to 65535"),
    ("[environments]\nprod.path = /x\nprod.hosts = a, , b\n", "empty host entry", "extra comma"),
    ("[environments]\nprod.path = /x\nprod.reloda = x\n", "unknown key 'reloda'", "known keys:"),
    ("[envdeploy]\nhostkeys = yolo\n[environments]\nprod.path = /x\n",
     "unknown hostkeys mode 'yolo'", "strict, accept-new"),
])
def test_configuration_errors(hgenv, central_repo, hgrc, message, hint):
    hgenv.write_hgrc(central_repo, hgrc)
    r = hgenv.hg("envdeploy", "prod", cwd=central_repo)
    assert r.rc != 0
    assert message in r.err
    assert hint in r.err
    assert "Traceback" not in r.err


def test_config_error_names_file_and_line(hgenv, central_repo):
    hgenv.write_hgrc(central_repo, "[environments]\nprod.path = /x\nprod.hosts = bad@@host\n")
    r = hgenv.hg("envdeploy", "prod", cwd=central_repo)
    assert r.rc == 255
    assert r.err.startswith("config error: ")
    assert f"{central_repo}/.hg/hgrc:3: malformed host 'bad@@host'" in r.err
    # Mercurial's detailed exit code for configuration errors, when asked for.
    r = hgenv.hg("envdeploy", "prod", "--config", "ui.detailed-exit-code=yes",
                 cwd=central_repo)
    assert r.rc == 30


def test_paramiko_is_not_imported_by_plain_hg(hgenv, central_repo):
    r = hgenv.run([sys.executable, "-X", "importtime", hgenv.hg_executable,
                   "log", "-l", "1"], cwd=central_repo)
    assert r.rc == 0, r.text
    assert "hgext_envdeploy" in r.err  # the extension was loaded
    assert "paramiko" not in r.err


def test_help_page(hgenv):
    r = hgenv.hg("help", "-e", "hgext_envdeploy")
    assert r.rc == 0
    assert "deploy named branches to the environments" in r.out
    assert "envdeploy" in r.out and "knownhosts" in r.out


# --- over SSH ---------------------------------------------------------------


def test_deploy_two_hosts_over_ssh(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path, migrate=MIGRATE, migrateon="all",
        reload="touch reloaded", check="hostname > checked"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    for host, target in zip([h0, h1], targets):
        assert parent(hgenv, target) == staging
        assert migrations(target) == ALL
        assert os.path.exists(os.path.join(target, "reloaded"))
        [record] = journal(target)
        assert record["host"] == host.spec and record["outcome"] == "ok"
        assert f"{host.spec}: deployed {staging[:12]}" in r.out
    # Both hosts belong to one run.
    assert journal(targets[0])[0]["id"] == journal(targets[1])[0]["id"]
    # One SSH connection per host for the whole deploy.
    for host in (h0, h1):
        log = open(host.log).read()
        assert log.count("Accepted publickey") >= 1


@pytest.mark.hgneutral
def test_one_connection_per_host(hgenv, central_repo, sshd_hosts, remote_dir):
    h2 = sshd_hosts.hosts[2]
    path = os.path.join(remote_dir, "project")
    ssh_targets(hgenv, central_repo, sshd_hosts, [h2], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h2.spec, path=path, migrate="true", reload="true", check="true"))
    before = open(h2.log).read().count("Accepted publickey")

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    assert open(h2.log).read().count("Accepted publickey") - before == 1


@pytest.mark.hgneutral
@pytest.mark.parametrize("onfailure", ["rollback", "stop"])
def test_failing_host_is_named_and_the_others_follow_onfailure(
        hgenv, central_repo, sshd_hosts, remote_dir, onfailure):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    open(os.path.join(t1, "broken"), "w").close()  # an untracked file, on host1 only
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec} {h1.spec}", path=path, onfailure=onfailure,
        check="if test -f broken; then echo 'host is broken'; exit 1; fi"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"failed on 1 of 2 hosts: {h1.spec} (check)" in r.err
    assert f"{h1.spec}:   host is broken" in r.err
    staging = head(hgenv, central_repo, "staging")
    if onfailure == "rollback":
        # Never mixed versions: both hosts are back where they were (empty).
        assert f"; rolled back: {h0.spec}, {h1.spec}" in r.err
        assert journal(t0)[-1]["outcome"] == "rolledback"
        assert journal(t1)[-1]["outcome"] == "failed"
        for t in (t0, t1):
            assert journal(t)[-1]["rollback"]["outcome"] == "ok"
            assert parent(hgenv, t) == "0" * 40
        assert f"{h0.spec}: rolled back (the deploy failed on another host), now at 000000000000" in r.out
    else:
        assert journal(t0)[-1]["outcome"] == "ok"
        assert journal(t1)[-1]["outcome"] == "failed"
        assert "rollback" not in journal(t1)[-1]
        assert parent(hgenv, t0) == parent(hgenv, t1) == staging
        assert (f"{h1.spec}: FAILED at check: check exited with status 1; "
                f"now at {staging[:12]}") in r.out


@pytest.mark.hgneutral
def test_unknown_host_key_is_refused_under_strict(hgenv, central_repo, sshd_hosts,
                                                  remote_dir, tmp_path):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    known = tmp_path / "known_hosts"
    known.write_text("")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        str(sshd_hosts.known_hosts), str(known)) + environment(
        "staging", hosts=h0.spec, path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"host key for [127.0.0.1]:{h0.port} is unknown" in r.text
    assert "hostkeys = accept-new" in r.text
    assert journal(target) == []
    assert known.read_text() == ""

    # accept-new trusts it once and remembers it.
    hgenv.write_hgrc(central_repo, "[envdeploy]\nhostkeys = accept-new\n")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "permanently added" in r.err
    assert known.read_text().startswith(f"[127.0.0.1]:{h0.port} ssh-ed25519 ")
    assert journal(target)[-1]["outcome"] == "ok"


@pytest.mark.hgneutral
def test_changed_host_key_is_refused_even_with_accept_new(hgenv, central_repo, sshd_hosts,
                                                          remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    # host1's key recorded under host0's name: host0 "changed" its key.
    wrong = h1.known_hosts_line().split(" ", 1)[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{h0.port} {wrong}\n")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        str(sshd_hosts.known_hosts), str(known)) + "hostkeys = accept-new\n" + environment(
        "staging", hosts=h0.spec, path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "has CHANGED" in r.text
    assert journal(target) == []


def test_hostile_branch_over_ssh(hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    canary = os.path.join(remote_dir, "pwned")
    branch = f"$(touch {canary}); touch {canary} `touch {canary}`"
    hgenv.hg("update", "-q", "staging", cwd=central_repo, check=True)
    hgenv.hg("branch", "-q", branch, cwd=central_repo, check=True)
    hgenv.hg("commit", "-q", "-m", "hostile", cwd=central_repo, check=True)
    path = os.path.join(remote_dir, "a dir; $(touch x) 'q'")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "weird", branch=branch, hosts=h0.spec, path=path))

    r = hgenv.hg("envdeploy", "weird", cwd=central_repo)

    assert r.rc == 0, r.text
    assert not os.path.exists(sshd_hosts.local_path(h0, canary))
    assert hgenv.hg("branch", cwd=target).out.strip() == branch


@pytest.mark.hgneutral
def test_unreachable_host_stops_the_deploy_before_any_change(
        hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "connecttimeout = 3\n")
                     + environment("staging", hosts=f"{h0.spec} root@127.0.0.1:1",
                                   path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "root@127.0.0.1:1: unreachable: cannot connect to [127.0.0.1]:1" in r.out
    assert "root@127.0.0.1:1 (unreachable)" in r.err
    # Every host is reached before any changes: the reachable one is untouched.
    assert f"untouched: {h0.spec}" in r.err
    assert parent(hgenv, target) == "0" * 40
    assert journal(target) == []
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


# --- the lock ---------------------------------------------------------------


def _start_deploy(hgenv, repo, *args):
    return subprocess.Popen(
        [hgenv.hg_executable, "envdeploy", *args], cwd=repo, env=hgenv.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.hgneutral
def test_concurrent_deploys_never_interleave(hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "locktimeout = 1\n") + environment(
        "staging", hosts=h0.spec, path=path, reload="echo start >> steps; sleep 3; "
        "echo end >> steps"))
    lockinfo = os.path.join(target, ".hg", "envdeploy", "lock", "info")
    first = _start_deploy(hgenv, central_repo, "staging")
    wait_for(lambda: os.path.exists(lockinfo))

    second = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert second.rc != 0
    assert "locked by Test User <test@example.com>" in second.text
    assert "envdeploy staging" in second.text  # what the holder is doing
    assert "--break-lock" in second.text
    assert open(os.path.join(target, "steps")).read() == "start\nend\n"
    # The loser did not journal a deploy it never started.
    assert [rec["outcome"] for rec in journal(target)] == ["ok"]


@pytest.mark.hgneutral
def test_second_deploy_waits_for_the_lock(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, "[envdeploy]\nlocktimeout = 30\n" + environment(
        "staging", path=target, reload="echo start >> steps; sleep 2; echo end >> steps"))
    lockinfo = os.path.join(target, ".hg", "envdeploy", "lock", "info")
    first = _start_deploy(hgenv, central_repo, "staging")
    wait_for(lambda: os.path.exists(lockinfo))

    second = hgenv.hg("envdeploy", "staging", "--config",
                      "environments.staging.check=echo start >> steps; echo end >> steps",
                      cwd=central_repo)

    first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.rc == 0, second.text
    assert "waiting for the deploy lock held by Test User" in second.out
    # The second deploy's check ran strictly after the first deploy's reload.
    assert open(os.path.join(target, "steps")).read() == "start\nend\n" * 2


@pytest.mark.hgneutral
def test_killed_deploy_does_not_leave_the_lock(hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "locktimeout = 20\n") + environment(
        "staging", hosts=h0.spec, path=path, reload="sleep 2"))
    lockdir = os.path.join(target, ".hg", "envdeploy", "lock")
    first = _start_deploy(hgenv, central_repo, "staging")
    wait_for(lambda: os.path.exists(os.path.join(lockdir, "info")))
    first.send_signal(signal.SIGKILL)
    first.wait()

    # The session on the host ends after the running step; its lock with it.
    wait_for(lambda: not os.path.exists(lockdir), timeout=20)
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text


@pytest.mark.hgneutral
def test_stale_lock_is_detected_and_live_lock_needs_break_lock(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, "[envdeploy]\nlocktimeout = 1\n"
                     + environment("staging", path=target))
    lockdir = os.path.join(target, ".hg", "envdeploy", "lock")
    node = os.uname().nodename

    # A holder process that no longer exists: stale, taken over with a warning.
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.makedirs(lockdir)
    with open(os.path.join(lockdir, "info"), "w") as fp:
        fp.write(f"user=ghost\nclient=laptop\npid={dead.pid}\nnode={node}\n")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "removed a stale lock left by ghost on laptop" in r.err

    # A live holder: refused, then broken on request.
    alive = subprocess.Popen(["sleep", "60"])
    try:
        os.makedirs(lockdir)
        with open(os.path.join(lockdir, "info"), "w") as fp:
            fp.write(f"user=colleague\nclient=desk\npid={alive.pid}\nnode={node}\n")
        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
        assert r.rc != 0
        assert "locked by colleague on desk" in r.text
        assert os.path.exists(lockdir)

        # Breaking needs a confirmation: without a terminal, -y gives it.
        r = hgenv.hg("envdeploy", "staging", "--break-lock", cwd=central_repo)
        assert r.rc != 0
        assert "kept the lock held by colleague on desk" in r.text
        assert "add -y to break it" in r.text
        assert os.path.exists(lockdir)

        r = hgenv.hg("envdeploy", "staging", "--break-lock", "-y", cwd=central_repo)
        assert r.rc == 0, r.text
        assert "broke the lock held by colleague" in r.err
        assert not os.path.exists(lockdir)
    finally:
        alive.kill()
        alive.wait()
