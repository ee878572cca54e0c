"""The steps of a deploy as one list: steps users add, --redeploy, onedits,
a dry run that predicts the real run, and each host's own duration.

Real hg, real Django migrations, real sshd for the multi-host cases."""
import json
import os
import time

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, environment, journal, migrations,
    parent, ssh_settings, ssh_targets,
)

ALL = ["0001_initial", "0002_bar_description", "0003_bar_created"]
EVERY_STEP = ["before.update", "update", "after.update",
              "before.migrate", "migrate", "after.migrate",
              "before.reload", "reload", "after.reload",
              "before.check", "check", "after.check"]


def steps(record):
    return [s["name"] for s in record["steps"]]


def rows(out):
    """The -T json list in stdout (whatever context lines come before it)."""
    start = 0 if out.startswith("[") else out.index("\n[") + 1
    return json.loads(out[start:])


def site(hgenv, central_repo, tmp_path, **keys):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    keys.setdefault("migrate", MIGRATE)
    hgenv.write_hgrc(central_repo, environment("staging", path=target, **keys))
    return target


def logged(name):
    # Each user step appends its name to a file in path: the order they ran.
    return f"echo {name} >> order"


def test_user_steps_run_in_order_as_steps_of_their_own(hgenv, central_repo, tmp_path):
    keys = {name.replace(".", "_"): logged(name)
            for name in EVERY_STEP if "." in name}
    del keys["after_reload"]  # from [envdeploy], the default for every environment
    target = site(hgenv, central_repo, tmp_path, reload="echo reload >> order",
                  check="test -f db.sqlite3", **keys)
    with open(central_repo / ".hg" / "hgrc", "a") as fp:
        fp.write(f"[envdeploy]\nafter.reload = {logged('after.reload')}\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    order = open(os.path.join(target, "order")).read().split()
    assert order == [n for n in EVERY_STEP if "." in n or n == "reload"]
    [record] = journal(target)
    assert steps(record) == EVERY_STEP
    assert all(s["status"] == 0 for s in record["steps"])
    assert migrations(target) == ALL
    assert "local: before.migrate ok" in r.out

    # Already deployed: only the check runs, with its own before and after.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert steps(journal(target)[-1]) == ["before.check", "check", "after.check"]


def test_failing_user_step_fails_the_deploy_and_rolls_back(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = parent(hgenv, target)
    name = []
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: name.append(add_migration(repo, 4)))
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE,
        after_migrate="echo 'collectstatic: no such file'; exit 4"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "deploy of staging failed on 1 of 1 hosts: local (after.migrate)" in r.err
    assert "after.migrate exited with status 4" in r.text
    assert "collectstatic: no such file" in r.err
    record = journal(target)[-1]
    assert record["failed"] == "after.migrate"
    assert steps(record) == ["pull", "update", "migrate", "after.migrate"]
    assert record["rollback"]["outcome"] == "ok"
    # The automatic rollback took the migration and the code back.
    assert migrations(target) == ALL
    assert parent(hgenv, target) == before


def test_user_step_of_a_role(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", path=path, hosts_web=h0.spec, hosts_worker=h1.spec,
        after_update="echo all > marker",
        after_update_worker="echo worker > marker"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert open(os.path.join(t0, "marker")).read() == "all\n"
    assert open(os.path.join(t1, "marker")).read() == "worker\n"
    assert steps(journal(t1)[-1]) == ["update", "after.update"]


def test_user_step_role_without_hosts_is_a_config_error(hgenv, central_repo, tmp_path):
    site(hgenv, central_repo, tmp_path, before_migrate_worker="true")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0
    assert "before.migrate.worker names role 'worker', which has no hosts" in r.err


def test_redeploy_runs_every_step(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path, reload="echo reloaded >> reloads")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envdeploy", "staging", "--redeploy", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "already at" not in r.out
    record = journal(target)[-1]
    assert record["outcome"] == "ok"
    assert steps(record) == ["update", "migrate", "reload"]
    assert open(os.path.join(target, "reloads")).read() == "reloaded\n" * 2


def test_onedits_refuse_changes_nothing(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    deployed = parent(hgenv, target)
    urls = os.path.join(target, "mysite", "urls.py")
    with open(urls, "a") as fp:
        fp.write("# hotfix typed on the server\n")
    commit_on(hgenv, central_repo, "staging", "more", lambda r: (r / "more").write_text("x"))
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE, onedits="refuse"))

    for args in (["-n"], []):
        r = hgenv.hg("envdeploy", "staging", *args, cwd=central_repo)
        assert r.rc != 0
        assert "abort: manual edits on local: mysite/urls.py" in r.err
        assert "onedits = refuse" in r.err

    assert parent(hgenv, target) == deployed
    assert len(journal(target)) == 1
    assert open(urls).read().endswith("# hotfix typed on the server\n")
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "patches"))
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


def test_onedits_rejects_unknown_values(hgenv, central_repo, tmp_path):
    site(hgenv, central_repo, tmp_path, onedits="ignore")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc != 0
    assert "unknown onedits mode 'ignore'" in r.err
    assert "use one of: save, refuse" in r.err


# --- the dry run predicts the real run ------------------------------------


def _first(hgenv, central_repo, target):
    """A target as cloned (-U): the changeset is there, nothing checked out."""


def _new_commit(hgenv, central_repo, target):
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: add_migration(repo, 4))


def _converged(hgenv, central_repo, target):
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)


def _dirty(hgenv, central_repo, target):
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    with open(os.path.join(target, "mysite", "urls.py"), "a") as fp:
        fp.write("# hotfix\n")


SCENARIOS = {
    "first deploy": (_first, []),
    "new changeset": (_new_commit, []),
    "already there": (_converged, []),
    "manual edits": (_dirty, []),
    "redeploy": (_converged, ["--redeploy"]),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dry_run_plan_is_what_the_real_run_journals(
        hgenv, central_repo, tmp_path, scenario):
    prepare, args = SCENARIOS[scenario]
    target = site(hgenv, central_repo, tmp_path, reload="true",
                  check="test -f db.sqlite3", before_migrate="true")
    prepare(hgenv, central_repo, target)
    runs = len(journal(target))

    dry = hgenv.hg("envdeploy", "staging", "-n", "-T", "json", *args, cwd=central_repo)

    assert dry.rc == 0, dry.text
    [row] = rows(dry.out)
    assert row["outcome"] == "planned"
    assert len(journal(target)) == runs  # the dry run journals nothing

    real = hgenv.hg("envdeploy", "staging", *args, cwd=central_repo)

    assert real.rc == 0, real.text
    assert row["steps"] == steps(journal(target)[-1])
    if scenario == "already there":
        assert row["steps"] == ["check"]
        assert "deployed there: would only check" in dry.text
        assert "would deploy" not in dry.text  # nor in the last line
    if scenario == "new changeset":
        assert row["steps"][0] == "pull"
        assert "migrate: would apply bar.0004_bar_f0004" in dry.text
        assert "bar.0004_bar_f0004" in journal(target)[-1]["migrations"]["applied"]
    if scenario == "manual edits":
        assert "with 1 edited file, would deploy" in dry.text
        assert "edits: would save mysite/urls.py as a patch" in dry.text
        assert journal(target)[-1]["patch"]


def test_dry_run_says_the_pull_would_fail(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "staging", "not pushed",
                     lambda r: (r / "new").write_text("x"))
    hgenv.write_hgrc(work, environment("staging", path=target))

    dry = hgenv.hg("envdeploy", "staging", "-n", cwd=work)

    assert dry.rc != 0
    assert f"would FAIL at pull: changeset {node[:12]} is not in the source" in dry.out
    assert "would deploy" not in dry.out.splitlines()[-1]
    assert f"push it there first (hg push -r {node[:12]})" in dry.err
    assert "deploy of staging would fail on 1 of 1 hosts: local (pull)" in dry.err
    assert journal(target) == []

    real = hgenv.hg("envdeploy", "staging", cwd=work)
    assert real.rc != 0
    assert f"push it there first (hg push -r {node[:12]})" in real.err
    assert journal(target)[-1]["failed"] == "pull"


# --- each host's own duration ----------------------------------------------


def test_serial_host_duration_is_its_own(hgenv, central_repo, sshd_hosts, remote_dir):
    hosts = sshd_hosts.hosts
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, hosts, path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "live", branch="staging", hosts=" ".join(h.spec for h in hosts),
        path=path, serial="1", reload="sleep 1.5"))

    start = time.monotonic()
    r = hgenv.hg("envdeploy", "live", "-T", "json", cwd=central_repo)
    total = time.monotonic() - start

    assert r.rc == 0, r.text
    assert total >= 4.5  # three batches, one after the other
    durations = [row["duration"] for row in rows(r.out)]
    for duration, target in zip(durations, targets):
        # Its own reload (1.5 s) and steps, not the other batches' 3 s.
        assert 1.5 <= duration < total - 2.0, (durations, total)
        assert abs(journal(target)[-1]["duration"] - duration) < 0.5


def test_the_help_lists_the_steps_of_the_table():
    import hgext_envdeploy
    from hgext_envdeploy import config, configitems, flow

    assert " ".join(flow.describe().decode().split()) in " ".join(
        hgext_envdeploy.__doc__.split())
    # Named again in configitems.py, so that hg's start-up need not load flow.py.
    assert configitems.USERSTEP_KEYS == flow.USERSTEPS
    for key in config.USERSTEP_KEYS:
        assert key in config.ENV_KEYS
        assert configitems.configtable[b"envdeploy"][key].default == b""
    # update runs in two phases (migration host, then the others): so do its own.
    user = [s.name for s in flow.STEPS if s.user]
    assert list(dict.fromkeys(user)) == list(flow.USERSTEPS)
    assert user.count(b"before.update") == 2 and user.count(b"before.migrate") == 1
