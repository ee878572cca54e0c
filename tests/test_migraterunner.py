"""One Django process reads the migration state and migrates (migraterunner),
and the fallback to showmigrations + migrate: the journal and the rollbacks
are the same either way.  Real hg, real Django migrations on SQLite, real
sshd for the remote case.
"""
import os
import time

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, commit_on, deployed_site, environment, journal, journal_lines,
    migrations, parent, ssh_settings, ssh_targets,
)

BASE = ["0001_initial", "0002_bar_description", "0003_bar_created"]
RUNNER = " shell -v 0 -c "
STATE = "manage.py showmigrations"
WARM = "migration runner started warm"

# A project whose own `shell` command refuses to run code: the runner ends
# before its listing, and the deploy reads the state as before.
_NOSHELL = '''\
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("-c", "--command")

    def handle(self, **options):
        raise CommandError("no shell here")
'''


def noshell(repo):
    commands = repo / "bar" / "management" / "commands"
    commands.mkdir(parents=True)
    for d in (commands.parent, commands):
        (d / "__init__.py").write_text("")
    (commands / "shell.py").write_text(_NOSHELL)


def add(number, kind="field"):
    def change(repo):
        add_migration(repo, number, kind)
    return change


@pytest.fixture
def site(hgenv, central_repo, tmp_path):
    target = deployed_site(hgenv, central_repo, tmp_path)
    assert migrations(target) == BASE
    return target


def _deploy_migration(hgenv, central_repo, site, *extra):
    node = commit_on(hgenv, central_repo, "staging", "add 0004", add(4))
    r = hgenv.hg("--debug", "envdeploy", "staging", *extra, cwd=central_repo)
    assert r.rc == 0, r.text
    assert migrations(site) == BASE + ["0004_bar_f0004"]
    return node, r


def _assert_journaled(site, node):
    """The run's lines: begin, migrating (the state before, written ahead),
    end (what was applied, the state after)."""
    record = journal(site)[-1]
    assert record["to"] == node and record["outcome"] == "ok"
    lines = [l for l in journal_lines(site) if l["id"] == record["id"]]
    assert [l["phase"] for l in lines] == ["begin", "migrating", "end"]
    assert lines[1]["migrations"]["before"] == {"bar": "0003_bar_created"}
    found = record["migrations"]
    assert found["before"] == {"bar": "0003_bar_created"}
    assert found["applied"] == ["bar.0004_bar_f0004"]
    assert found["after"] == {"bar": "0004_bar_f0004"}
    assert [s["name"] for s in record["steps"]] == ["pull", "update", "migrate", "reload"]


def test_one_django_reads_the_state_and_migrates(hgenv, central_repo, site):
    first = parent(hgenv, site)
    node, r = _deploy_migration(hgenv, central_repo, site)

    assert r.out.count(RUNNER) == 1
    assert STATE not in r.out  # no second Django start for the state
    assert WARM in r.out  # Django was imported while hg updated
    assert "Applying bar.0004_bar_f0004... OK" in r.out
    assert "\x1d" not in r.out  # the protocol stays hidden
    _assert_journaled(site, node)

    back = hgenv.hg("envrollback", "staging", cwd=central_repo)
    assert back.rc == 0, back.text
    assert parent(hgenv, site) == first and migrations(site) == BASE


def test_a_project_without_a_usable_shell_falls_back(hgenv, central_repo, site):
    commit_on(hgenv, central_repo, "staging", "own shell command", noshell)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, site)

    node, r = _deploy_migration(hgenv, central_repo, site)

    assert RUNNER in r.out and STATE in r.out
    _assert_journaled(site, node)
    back = hgenv.hg("envrollback", "staging", cwd=central_repo)
    assert back.rc == 0, back.text
    assert parent(hgenv, site) == first and migrations(site) == BASE


def _waiting_runners(target):
    """The pids of warm runners (migraterunner.warmscript) in ``target``."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError):
            continue
        if b".hg/envdeploy/runner.sock" in cmdline and cwd == str(target):
            found.append(pid)
    return found


def _gone(target, seconds=5):
    """Whether no warm runner is left in ``target`` within ``seconds``
    (one waits half a second between looks at its shell)."""
    deadline = time.monotonic() + seconds
    while _waiting_runners(target):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return not (target / ".hg" / "envdeploy" / "runner.sock").exists()


def test_a_warm_runner_ends_after_migrating(hgenv, central_repo, site):
    _deploy_migration(hgenv, central_repo, site)
    assert _gone(site)


def test_no_warm_start_where_no_migration_changes(hgenv, central_repo, site):
    """The records say the host is at the changeset before: a code change
    there starts no Django beforehand."""
    _deploy_migration(hgenv, central_repo, site)
    commit_on(hgenv, central_repo, "staging", "code only",
              lambda repo: (repo / "bar" / "views.py").write_text("# v2\n"))
    r = hgenv.hg("--debug", "envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "runner.sock" not in r.out and RUNNER not in r.out


def test_a_refused_hand_over_starts_the_runner_cold(hgenv, central_repo, site):
    """Nothing to hand over to (here its socket is gone): the runner
    starts as without a warm start, and the deploy is the same."""
    node = commit_on(hgenv, central_repo, "staging", "add 0004", add(4))
    r = hgenv.hg("--debug", "envdeploy", "staging", "--config",
                 "environments.staging.before.migrate="
                 "rm .hg/envdeploy/runner.sock", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "runner.sock" in r.out and RUNNER in r.out  # the warm start was tried
    assert WARM not in r.out and STATE not in r.out  # one Django, started cold
    assert migrations(site) == BASE + ["0004_bar_f0004"]
    record = journal(site)[-1]
    assert record["to"] == node and record["migrations"]["applied"] == [
        "bar.0004_bar_f0004"]
    assert _gone(site)


def test_a_warm_runner_nobody_comes_for_ends_with_the_session(
        hgenv, central_repo, site):
    """Started with the lock, but the deploy fails before migrate: the
    waiting process ends with the session's shell, its socket removed."""
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "add 0004", add(4))
    r = hgenv.hg("--debug", "envdeploy", "staging", "--config",
                 "environments.staging.before.migrate=false", cwd=central_repo)

    assert r.rc != 0
    assert "runner.sock" in r.out and WARM not in r.out
    assert parent(hgenv, site) == first and migrations(site) == BASE
    assert _gone(site)


def test_a_migrate_that_is_not_the_standard_form_runs_as_written(
        hgenv, central_repo, site):
    node, r = _deploy_migration(
        hgenv, central_repo, site, "--config",
        f"environments.staging.migrate={MIGRATE} && echo migrated")

    assert RUNNER not in r.out and STATE in r.out
    assert "migrated" in r.out
    _assert_journaled(site, node)


def test_a_failing_migration_is_rolled_back_with_the_runner(hgenv, central_repo,
                                                            site):
    first = parent(hgenv, site)
    commit_on(hgenv, central_repo, "staging", "add 0004", add(4))
    commit_on(hgenv, central_repo, "staging", "add 0005", add(5, "failing"))

    r = hgenv.hg("--debug", "envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert RUNNER in r.out
    assert "migration 0005 failed on purpose" in r.text
    assert parent(hgenv, site) == first and migrations(site) == BASE
    record = journal(site)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "migrate"
    assert record["migrations"]["before"] == {"bar": "0003_bar_created"}
    assert record["migrations"]["applied"] == ["bar.0004_bar_f0004"]
    assert record["rollback"]["outcome"] == "ok"


def test_an_unwritable_journal_migrates_nothing(hgenv, central_repo, site):
    """The migrating line is written ahead through the runner: when it
    cannot be written, no migration runs."""
    commit_on(hgenv, central_repo, "staging", "add 0004", add(4))
    # The update's own begin line goes in; then the journal turns into a
    # directory, which nothing can append to.
    hook = ("mv .hg/envdeploy/journal.jsonl .hg/envdeploy/saved && "
            "mkdir .hg/envdeploy/journal.jsonl")
    r = hgenv.hg("envdeploy", "staging", "--config",
                 f"environments.staging.before.migrate={hook}", cwd=central_repo)

    assert r.rc != 0
    assert "could not write the journal" in r.text
    assert migrations(site) == BASE


def test_runner_over_ssh(hgenv, central_repo, sshd_hosts, remote_dir):
    host = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [host], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=host.spec, path=path, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert migrations(target) == BASE

    node, r = _deploy_migration(hgenv, central_repo, target)

    assert RUNNER in r.out and STATE not in r.out
    assert WARM in r.out
    record = journal(target)[-1]
    assert record["to"] == node
    assert record["migrations"]["applied"] == ["bar.0004_bar_f0004"]
