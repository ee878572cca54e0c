"""Rollbacks that know the migrations: hg envrollback and automatic rollback.

Real Django migrations on SQLite, real hg, real sshd for the multi-host cases.
"""
import os

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, PYTHON, commit_on, deployed_site, environment, head, journal, journal_lines,
    migrations, parent, ssh_settings, ssh_targets,
)

BASE = ["0001_initial", "0002_bar_description", "0003_bar_created"]


NAMES = {"field": "{:04d}_bar_f{:04d}", "irreversible": "{:04d}_irreversible",
         "failing": "{:04d}_failing"}


def add(number, kind="field"):
    """(change adding migration NUMBER to a repo, [its name]) for commit_on."""
    name = NAMES[kind].format(number, number)

    def change(repo):
        assert add_migration(repo, number, kind) == name
    return change, [name]


@pytest.fixture
def site(hgenv, central_repo, tmp_path):
    """A local staging environment deployed once (migrations 0001..0003)."""
    target = deployed_site(hgenv, central_repo, tmp_path)
    assert migrations(target) == BASE
    return target


def test_envrollback_reverts_migrations_then_code(hgenv, central_repo, site):
    first = parent(hgenv, site)
    change, [name] = add(4)
    second = commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert migrations(site) == BASE + [name]

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == first
    assert migrations(site) == BASE
    assert f"unapplying bar.{name}" in r.out
    assert f"local: rolled back to {first[:12]}" in r.out
    record = journal(site)[-1]
    assert record["kind"] == "rollback" and record["outcome"] == "ok"
    assert record["from"] == second and record["to"] == first
    assert record["migrations"]["reverted"] == [f"bar.{name}"]
    assert [s["name"] for s in record["steps"]] == ["unmigrate", "update", "reload"]
    # The reload ran after the code went back (3 deploys/rollbacks reloaded).
    assert open(os.path.join(site, "reloads")).read().count("reloaded") == 3


def test_rolling_back_twice_goes_two_deployments_back(hgenv, central_repo, site):
    first = parent(hgenv, site)
    change, [n4] = add(4)
    second = commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    change, [n5] = add(5)
    commit_on(hgenv, central_repo, "staging", "add 0005", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)
    assert parent(hgenv, site) == second
    assert migrations(site) == BASE + [n4]

    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)
    assert parent(hgenv, site) == first
    assert migrations(site) == BASE


def test_explicit_migration_and_rev(hgenv, central_repo, site):
    """The seed's form: --migration bar.0002 --rev N."""
    change, [name] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    rev = hgenv.hg("log", "-r", "staging~1", "-T", "{rev}", cwd=central_repo).out
    node = hgenv.hg("log", "-r", rev, "-T", "{node}", cwd=central_repo).out

    r = hgenv.hg("envrollback", "staging", "--migration", "bar.0002", "--rev", rev,
                 cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == node  # sent as a full hash, not a number
    assert migrations(site) == BASE[:2]
    assert journal(site)[-1]["migrations"]["reverted"] == [
        f"bar.{name}", "bar.0003_bar_created"]


@pytest.mark.parametrize("value", ["bar", "bar.", "0002", "bar.x2", "bar.0002.1"])
def test_malformed_migration_value_is_an_input_error(hgenv, central_repo, site, value):
    r = hgenv.hg("envrollback", "staging", "--migration", value, "-r", "staging",
                 cwd=central_repo)
    assert r.rc == 255
    assert f"abort: malformed --migration value '{value}'" in r.err
    assert "expected APP.NNNN (for example bar.0007)" in r.err
    assert journal(site)[-1]["kind"] == "deploy"


def test_dry_run_prints_the_plan_and_changes_nothing(hgenv, central_repo, site):
    first = parent(hgenv, site)
    change, [n4] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    change, [n5] = add(5)
    second = commit_on(hgenv, central_repo, "staging", "add 0005", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envrollback", "staging", "-n", cwd=central_repo)

    assert r.rc == 0, r.text
    # Newest first: the order Django unapplies them.
    assert (f"at {second[:12]}, back to {first[:12]}, unapplying bar.{n5}, bar.{n4}"
            in r.out)
    assert f"would roll back to {first[:12]}" in r.out
    assert parent(hgenv, site) == second
    assert migrations(site) == BASE + [n4, n5]
    assert journal(site)[-1]["kind"] == "deploy"


def test_irreversible_migration_stops_the_rollback_before_any_change(hgenv, central_repo,
                                                                     site):
    change, [n4] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    change, [n5] = add(5, "irreversible")
    change2, [n6] = add(6)
    second = commit_on(hgenv, central_repo, "staging", "add 0005, 0006",
                       lambda repo: (change(repo), change2(repo)))
    hgenv.hg("envdeploy", "staging", "-r", "staging~1", cwd=central_repo, check=True)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert migrations(site) == BASE + [n4, n5, n6]

    records = len(journal(site))
    dry = hgenv.hg("envrollback", "staging", "-n", cwd=central_repo)
    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    # Known from this repository's copy of the migration files: named ahead, by
    # the dry run as by the real one, and nothing changes (0006 is not unapplied).
    for run in (dry, r):
        assert run.rc != 0
        assert (f"local: FAILED at plan: bar.{n5} cannot be reversed: the rollback "
                "would stop there; nothing changed") in run.text
        assert f"bar.{n5} [irreversible: RunPython without reverse_code]" in run.out
    assert parent(hgenv, site) == second
    assert migrations(site) == BASE + [n4, n5, n6]
    assert len(journal(site)) == records  # nothing happened, nothing recorded


def test_failed_migration_rolls_the_deploy_back(hgenv, central_repo, site):
    first = parent(hgenv, site)
    change, [n4] = add(4)
    change2, [n5] = add(5, "failing")
    commit_on(hgenv, central_repo, "staging", "0004 ok, 0005 fails",
              lambda repo: (change(repo), change2(repo)))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (migrate)" in r.err and "rolled back: local" in r.err
    assert "migration 0005 failed on purpose" in r.err
    # 0004 had been applied before 0005 failed: it is unapplied again.
    assert migrations(site) == BASE
    assert parent(hgenv, site) == first
    assert f"now at {first[:12]}" in r.out
    record = journal(site)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "migrate"
    assert record["rollback"]["outcome"] == "ok"
    assert record["rollback"]["reverted"] == [f"bar.{n4}"]
    assert record["migrations"]["before"] == {"bar": "0003_bar_created"}


def test_failed_check_rolls_back_schema_and_code(hgenv, central_repo, site):
    first = parent(hgenv, site)
    change, [n4] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    # Fails with the new code only: the rollback's own check passes.
    hgenv.write_hgrc(central_repo, "[environments]\n"
                     "staging.check = ! grep -q f0004 bar/models.py || exit 7\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (check)" in r.err
    assert parent(hgenv, site) == first
    assert migrations(site) == BASE
    record = journal(site)[-1]
    assert record["failed"] == "check" and record["rollback"]["outcome"] == "ok"
    # A later plain envrollback is not confused by the failed deploy.
    hgenv.hg("envdeploy", "staging", "--config", "environments.staging.check=",
             cwd=central_repo, check=True)
    assert migrations(site) == BASE + [n4]
    hgenv.hg("envrollback", "staging", "--config", "environments.staging.check=",
             cwd=central_repo, check=True)
    assert parent(hgenv, site) == first and migrations(site) == BASE


def test_onfailure_stop_leaves_the_failed_deploy(hgenv, central_repo, site):
    change, [n4] = add(4)
    new = commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.write_hgrc(central_repo, "[environments]\nstaging.check = exit 7\n"
                     "staging.onfailure = stop\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert parent(hgenv, site) == new
    assert migrations(site) == BASE + [n4]
    assert "rollback" not in journal(site)[-1]


def test_second_host_failing_rolls_back_the_first(hgenv, central_repo, sshd_hosts,
                                                  remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path, migrate=MIGRATE, migrateon="all",
        check="test ! -f broken || exit 1"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, t0)
    change, [n4] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    open(os.path.join(t1, "broken"), "w").close()

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"failed on 1 of 2 hosts: {h1.spec} (check)" in r.err
    for t in (t0, t1):
        assert parent(hgenv, t) == first
        assert migrations(t) == BASE
        assert journal(t)[-1]["rollback"]["reverted"] == [f"bar.{n4}"]
    assert f"{h0.spec}: rolled back" in r.out


def test_hosts_that_disagree_need_force(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    base = head(hgenv, central_repo, "staging")
    change, [n4] = add(4)
    a = commit_on(hgenv, central_repo, "staging", "a", change)
    b = commit_on(hgenv, central_repo, "staging", "b", lambda r: (r / "b").write_text("b"))
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path, migrate=MIGRATE, migrateon="all")
        + f"one.branch = staging\none.path = {path}\none.hosts = {h0.spec}\n"
        f"one.migrate = {MIGRATE}\n")
    # host0 went base -> a -> b, host1 went base -> b: different previous deployments.
    hgenv.hg("envdeploy", "staging", "-r", base, cwd=central_repo, check=True)
    hgenv.hg("envdeploy", "one", "-r", a, cwd=central_repo, check=True)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "hosts disagree on the deployment to return to" in r.err
    assert f"{h0.spec} -> {a[:12]}, {h1.spec} -> {base[:12]}" in r.err
    assert "--force" in r.err
    assert parent(hgenv, t0) == parent(hgenv, t1) == b
    assert journal(t0)[-1]["kind"] == journal(t1)[-1]["kind"] == "deploy"
    assert migrations(t1) == BASE + [n4]

    r = hgenv.hg("envrollback", "staging", "--force", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, t0) == a and migrations(t0) == BASE + [n4]
    assert parent(hgenv, t1) == base and migrations(t1) == BASE


def test_code_only_change_skips_the_migration_state(hgenv, central_repo, site):
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "code only",
              lambda repo: (repo / "views.py").write_text("# no migration\n"))

    r = hgenv.hg("envdeploy", "staging", "--config",
                 "environments.staging.check=test ! -f views.py", cwd=central_repo)

    assert r.rc != 0
    record = journal(site)[-1]
    # No migration file changed: no Django start to read the state (it is
    # carried forward from the last deploy), and the rollback reverts the
    # code only, without a warning.
    assert record["migrations"]["unchanged"] is True
    assert record["migrations"]["before"] == record["migrations"]["after"] == {
        "bar": "0003_bar_created"}
    assert [l["phase"] for l in journal_lines(site) if l["id"] == record["id"]] == [
        "begin", "end"]
    assert record["rollback"]["outcome"] == "ok"
    assert record["rollback"]["reverted"] == []
    assert "no migration state recorded" not in r.text
    assert parent(hgenv, site) == first and migrations(site) == BASE


def test_envrollback_reads_the_migration_state_once_for_its_plan(hgenv, central_repo,
                                                                site, tmp_path):
    """Speed: the plan's reading (under the lock) is the one the revert
    works from; only a revert that unapplied something reads it again."""
    log = tmp_path / "states.log"
    state = f"--config=environments.staging.migrate.state=echo read >> {log} && " \
            f"{PYTHON} manage.py showmigrations"
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "code only",
              lambda repo: (repo / "views.py").write_text("# no migration\n"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envrollback", "staging", state, cwd=central_repo)

    assert r.rc == 0, r.text
    assert log.read_text().split() == ["read"]
    assert parent(hgenv, site) == first and migrations(site) == BASE
    assert journal(site)[-1]["migrations"]["after"] == {"bar": "0003_bar_created"}

    change, [name] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    log.write_text("")

    r = hgenv.hg("envrollback", "staging", state, cwd=central_repo)

    assert r.rc == 0, r.text
    assert log.read_text().split() == ["read", "read"]  # the plan, then the check
    assert migrations(site) == BASE
    record = journal(site)[-1]
    assert record["migrations"]["reverted"] == [f"bar.{name}"]
    assert record["migrations"]["after"] == {"bar": "0003_bar_created"}


def test_a_code_only_rollback_starts_no_django(hgenv, central_repo, site, tmp_path):
    """Speed, as a deploy carries the state forward: no migration file differs
    between the two changesets and the journal says where the database is, so
    the rollback starts no Django; one going back over a migration reads it."""
    log = tmp_path / "django.log"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec {PYTHON} "$@"\n')
    python.chmod(0o755)
    counted = f"--config=environments.staging.migrate={python} manage.py migrate --noinput"
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "code only",
              lambda repo: (repo / "views.py").write_text("# no migration\n"))
    hgenv.hg("envdeploy", "staging", counted, cwd=central_repo, check=True)
    log.write_text("")

    r = hgenv.hg("envrollback", "staging", counted, cwd=central_repo)

    assert r.rc == 0, r.text
    assert log.read_text() == ""
    assert parent(hgenv, site) == first and migrations(site) == BASE
    record = journal(site)[-1]
    assert record["kind"] == "rollback" and record["outcome"] == "ok"
    state = {"bar": "0003_bar_created"}
    assert {k: record["migrations"].get(k) for k in ("before", "after", "unchanged")} \
        == {"before": state, "after": state, "unchanged": True}

    change, [name] = add(4)
    commit_on(hgenv, central_repo, "staging", "add 0004", change)
    hgenv.hg("envdeploy", "staging", counted, cwd=central_repo, check=True)
    log.write_text("")

    r = hgenv.hg("envrollback", "staging", counted, cwd=central_repo)

    assert r.rc == 0, r.text
    assert "showmigrations" in log.read_text().split()
    assert f"unapplying bar.{name}" in r.out
    assert migrations(site) == BASE
    assert "unchanged" not in journal(site)[-1]["migrations"]


def test_envrollback_to_a_changeset_this_repository_no_longer_has(hgenv, central_repo,
                                                                  site):
    """The host's journal names the changeset to return to; this repository
    stripped it since: the host says which files going back creates."""
    first = parent(hgenv, site)
    second = commit_on(hgenv, central_repo, "staging", "second",
                       lambda repo: (repo / "second.txt").write_text("2\n"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    # Back to first, which has no second.txt; then first itself disappears here.
    hgenv.hg("--config", "extensions.strip=", "strip", "-q", "--no-backup", "-r",
             f"{first}::", "-R", central_repo, check=True)
    assert hgenv.hg("log", "-r", first, cwd=central_repo).rc != 0

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == first
    assert not os.path.exists(os.path.join(site, "second.txt"))
    record = journal(site)[-1]
    assert record["kind"] == "rollback" and record["outcome"] == "ok"
    assert record["from"] == second and record["to"] == first
