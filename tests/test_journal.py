"""A journal that never lies, and outcomes that say what happened (local environments,
real hg, real Django migrations on SQLite).

The multi-host and lost-session cases are in test_shared_db.py.
"""
import doctest
import os
import signal
import subprocess

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, deployed_site, environment, journal, journal_lines,
    migrations, parent, wait_for,
)
from hgext_envdeploy import (
    config, deploy, direction, journal as journalmod, lock, migrations as migmod, rollback,
)

BASE = ["0001_initial", "0002_bar_description", "0003_bar_created"]


@pytest.mark.parametrize("module", [journalmod, migmod, deploy, direction, config, rollback,
                                    lock], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture
def site(hgenv, central_repo, tmp_path):
    target = deployed_site(hgenv, central_repo, tmp_path)
    return target


def test_a_run_writes_ahead_then_completes_its_record(hgenv, central_repo, site):
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: add_migration(repo, 4))

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    last = journal(site)[-1]
    lines = [l for l in journal_lines(site) if l["id"] == last["id"]]
    assert [l["phase"] for l in lines] == ["begin", "migrating", "end"]
    begin = lines[0]
    assert begin["to"] == last["to"] and begin["from"] == last["from"]
    assert "outcome" not in begin
    assert lines[1]["migrations"]["before"] == {"bar": "0003_bar_created"}
    assert last["migrations"]["applied"] == ["bar.0004_bar_f0004"]
    assert last["migrations"]["after"] == {"bar": "0004_bar_f0004"}


def test_a_noop_redeploy_does_not_break_the_next_rollback(hgenv, central_repo, site):
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: add_migration(repo, 4))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert "already at" in r.out
    assert journal(site)[-1]["migrations"]["after"] == {"bar": "0004_bar_f0004"}

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "unapplying bar.0004_bar_f0004" in r.out
    assert parent(hgenv, site) == first and migrations(site) == BASE


@pytest.mark.hgneutral
def test_client_killed_mid_migration_leaves_an_unfinished_run(hgenv, central_repo, site):
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: add_migration(repo, 4))
    slow = f"{MIGRATE} && touch migrated && sleep 3"
    proc = subprocess.Popen(
        [hgenv.hg_executable, "envdeploy", "staging", "--config",
         f"environments.staging.migrate={slow}"],
        cwd=central_repo, env=hgenv.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(os.path.join(site, "migrated")), 60,
                 "the migration to be applied")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not os.path.exists(os.path.join(site, ".hg", "envdeploy", "lock")),
             30, "the lock to go with the step's shell")
    assert journal(site)[-1]["outcome"] == "unfinished"
    assert migrations(site) == BASE + ["0004_bar_f0004"]
    status = hgenv.hg("envstatus", "staging", cwd=central_repo, check=True)
    assert "last deploy UNFINISHED" in status.out

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == first and migrations(site) == BASE
    assert journal(site)[-1]["kind"] == "rollback"
    assert hgenv.hg("envcheck", "staging", cwd=central_repo).rc == 0


def test_first_deploy_rolled_back_to_empty_does_not_reload(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    reloads = tmp_path / "reloads"
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, reload=f"echo reload >> {reloads}",
        check="exit 3"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert reloads.read_text() == "reload\n"  # the deploy's; none in the empty copy
    assert parent(hgenv, target) == "0" * 40
    record = journal(target)[-1]
    assert record["rollback"]["outcome"] == "ok"
    assert [s["name"] for s in record["rollback"]["steps"]] == ["update"]
    assert "rolled back; now at 000000000000" in r.out


def test_failure_at_path_says_nothing_changed(hgenv, central_repo, tmp_path):
    hgenv.write_hgrc(central_repo, environment("staging", path=tmp_path / "missing"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "nothing changed" in r.out
    assert "state unknown" not in r.text
    lines = r.text.splitlines()
    assert len(lines) == len(set(lines)), r.text  # no line printed twice


@pytest.mark.parametrize("line, message", [
    ("staging.hosts.state = web1", "invalid role name 'state'"),
    ("staging.hosts.all = web1", "invalid role name 'all'"),
    ("staging.reload.web = touch x", "names role 'web', which has no hosts"),
    ("staging.migrateon = nosuch", "migrateon names 'nosuch', which is no host or role"),
    ("staging.hosts.web = a.example.com\nstaging.hosts.worker = a.example.com",
     "host listed twice: a.example.com"),
])
@pytest.mark.hgneutral
def test_role_and_migrateon_errors_name_the_line(hgenv, central_repo, tmp_path, line,
                                                  message):
    hgenv.write_hgrc(central_repo, f"[environments]\nstaging.path = {tmp_path}\n{line}\n")

    r = hgenv.hg("envdeploy", "staging", "-n", cwd=central_repo)

    assert r.rc == 255, r.text  # 30 with ui.detailed-exit-code
    assert r.err.startswith("config error: ")
    assert message in r.err
    assert os.path.join(str(central_repo), ".hg", "hgrc") + ":" in r.err
