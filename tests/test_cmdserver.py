"""The target's hg commands run in one command server, or one process each."""
import os
import stat
import time

import pytest

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, environment, head, journal, migrations, parent,
    ssh_settings, ssh_targets,
)


def _logging_hg(hgenv, tmp_path, refuse_serve=False):
    """An 'hg' for the target that logs each start, then runs the real hg."""
    log = tmp_path / "hg-starts.log"
    script = tmp_path / "logging-hg"
    refuse = ('case "$1" in serve) echo "no server here" >&2; exit 1;; esac\n'
              if refuse_serve else "")
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> {log}\n'
        + refuse +
        f'exec {hgenv.hg_executable} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def _starts(log):
    """The hg commands started on the target (their first argument)."""
    with open(log) as fp:
        return [line.split()[0] for line in fp if line.strip()]


def _deploy_with_migration(hgenv, central_repo, tmp_path, hgrc=""):
    """A target one deploy behind: the next brings a changeset and 0004."""
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hg, log = _logging_hg(hgenv, tmp_path, refuse_serve="refuse" in hgrc)
    hgenv.write_hgrc(central_repo, hgrc.replace("refuse", "") + environment(
        "staging", path=target, migrate=MIGRATE, hg=hg))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    os.unlink(log)
    node = commit_on(hgenv, central_repo, "staging", "add 0004",
                     lambda repo: add_migration(repo, 4))
    return target, log, node


def test_state_pull_and_update_share_one_hg_process(hgenv, central_repo, tmp_path):
    target, log, node = _deploy_with_migration(hgenv, central_repo, tmp_path)

    r = hgenv.hg("envdeploy", "staging", "-v", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node
    assert migrations(target)[-1].startswith("0004")
    # One start: the state read, the pull and the update ran in it.
    assert _starts(log) == ["serve"]
    assert [s["name"] for s in journal(target)[-1]["steps"]] == [
        "pull", "update", "migrate"]
    # The output of hg's commands still reaches the user (-v).
    assert "local: | added 1 changesets with" in r.out


def test_envrollback_starts_hg_twice_the_state_then_the_update(hgenv, central_repo,
                                                              tmp_path):
    """In place, hg envrollback needs hg for the state and for the update;
    the files going back creates are this repository's to say (no third
    start between Django's and the update)."""
    target, log, node = _deploy_with_migration(hgenv, central_repo, tmp_path)
    before = parent(hgenv, target)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    os.unlink(log)

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == before
    assert migrations(target)[-1].startswith("0003")
    assert _starts(log) == ["serve", "serve"]
    record = journal(target)[-1]
    assert record["kind"] == "rollback" and record["outcome"] == "ok"
    assert record["migrations"]["reverted"] == ["bar.0004_bar_f0004"]


def test_cmdserver_off_runs_a_process_per_command(hgenv, central_repo, tmp_path):
    target, log, node = _deploy_with_migration(
        hgenv, central_repo, tmp_path, "[envdeploy]\ncmdserver = false\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node
    assert migrations(target)[-1].startswith("0004")
    assert _starts(log) == ["log", "pull", "update"]


def test_an_hg_that_cannot_serve_gets_a_process_per_command(hgenv, central_repo,
                                                             tmp_path):
    target, log, node = _deploy_with_migration(hgenv, central_repo, tmp_path,
                                               "refuse")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node
    assert _starts(log) == ["serve", "log", "pull", "update"]
    assert "no server here" not in r.text  # tried quietly


@pytest.mark.parametrize("cmdserver", ["true", "false"])
def test_hg_killed_mid_update_fails_the_step_and_frees_the_host(
        hgenv, central_repo, tmp_path, cmdserver):
    target, log, node = _deploy_with_migration(
        hgenv, central_repo, tmp_path, f"[envdeploy]\ncmdserver = {cmdserver}\n")
    before = parent(hgenv, target)
    # The hook's parent is the hg process running the update.
    with open(os.path.join(target, ".hg", "hgrc"), "a") as fp:
        fp.write("[hooks]\npreupdate.die = kill -9 $PPID\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (update)" in r.err
    record = journal(target)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "update"
    assert parent(hgenv, target) == before  # killed before it changed a file
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


def test_hg_silent_in_the_server_times_out(hgenv, central_repo, tmp_path):
    target, log, node = _deploy_with_migration(
        hgenv, central_repo, tmp_path, "[envdeploy]\ntimeout = 2\n")
    hgenv.write_hgrc(central_repo, "[environments]\nstaging.onfailure = stop\n")
    with open(os.path.join(target, ".hg", "hgrc"), "a") as fp:
        fp.write("[hooks]\npreupdate.slow = sleep 8\n")

    started = time.monotonic()
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    elapsed = time.monotonic() - started

    assert r.rc != 0
    assert "local: FAILED at update: lost the connection: no answer for 2 seconds" in r.out
    assert elapsed < 8  # did not wait for the silent server


def test_over_ssh_the_hg_commands_share_one_process(hgenv, central_repo, sshd_hosts,
                                                    remote_dir, tmp_path):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hg, log = _logging_hg(hgenv, tmp_path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=path, source=central_repo, hg=hg,
        migrate=MIGRATE))
    before = open(h0.log).read().count("Accepted publickey")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")
    assert _starts(log) == ["serve"]
    assert open(h0.log).read().count("Accepted publickey") == before + 1


def test_a_host_not_where_the_records_say_is_deployed_all_the_same(
        hgenv, central_repo, tmp_path):
    """The records say the host is at the changeset, so its command server
    ends with the state; someone updated it by hand since: the deploy
    starts the server again for the update, and the host is deployed."""
    target, log, node = _deploy_with_migration(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = hgenv.hg("log", "-r", f"p1({node})", "-T", "{node}",
                      cwd=central_repo, check=True).out
    hgenv.hg("update", "-q", "-r", before, cwd=target, check=True)
    os.unlink(log)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node
    assert _starts(log) == ["serve", "serve"]  # ended with the state, then again
    record = journal(target)[-1]
    assert record["outcome"] == "ok" and record["from"] == before
    assert [s["name"] for s in record["steps"]] == ["update", "migrate"]


def test_a_host_deployed_already_starts_one_server(hgenv, central_repo, tmp_path):
    target, log, node = _deploy_with_migration(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    os.unlink(log)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "already at" in r.out
    assert _starts(log) == ["serve"]
    assert journal(target)[-1]["outcome"] == "unchanged"
