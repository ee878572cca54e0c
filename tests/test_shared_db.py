"""One database behind many hosts: real sshd hosts sharing one real PostgreSQL database.

Migrations run once, on the migration host; rollbacks revert them once; a migration
that stops halfway is reported as such; roles reload differently; a session killed
mid-migration leaves an unfinished journal record that nothing infers from.
"""
import json
import os
import signal
import subprocess

import pgserver
from djangoproject import add_migration
from envtools import (
    MIGRATE, commit_on, environment, journal, parent, pg_targets,
    ssh_settings, wait_for,
)

BASE = [("bar", "0001_initial"), ("bar", "0002_bar_description"), ("bar", "0003_bar_created")]

# Counts its runs in the host's own directory: which host migrated, how often.
# (After manage.py migrate: the state command is derived from what precedes it.)
COUNTED = f"{MIGRATE}; s=$?; echo run >> migrate-runs; exit $s"
UNMIGRATE = ("echo run >> unmigrate-runs; "
             f"{MIGRATE.replace(' migrate --noinput', '')} migrate --noinput {{app}} {{migration}}")

_NONATOMIC = '''\
from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("0004 failed halfway on purpose")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("bar", "0003_bar_created")]

    operations = [
        migrations.AddField(model_name="bar", name="half", field=models.IntegerField(null=True)),
        migrations.RunPython(fail),
    ]
'''


def runs(target, name="migrate-runs"):
    path = os.path.join(target, name)
    return len(open(path).read().split()) if os.path.exists(path) else 0


def two_hosts(hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb, **keys):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = pg_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path, postgres.port, pgdb)
    keys.setdefault("hosts", f"{h0.spec}, {h1.spec}")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", path=path, migrate=COUNTED, **keys))
    return (h0, h1), targets


def applied(postgres, pgdb):
    return pgserver.applied_migrations(postgres.port, pgdb)


def test_migrations_run_once_on_the_migration_host(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert applied(postgres, pgdb) == BASE
    node = commit_on(hgenv, central_repo, "staging", "add 0004",
                     lambda repo: add_migration(repo, 4))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert applied(postgres, pgdb) == BASE + [("bar", "0004_bar_f0004")]
    assert "f0004" in pgserver.columns(postgres.port, pgdb, "bar_bar")
    # Only the first host ever ran migrate: once per deploy.
    assert (runs(t0), runs(t1)) == (2, 0)
    assert parent(hgenv, t0) == parent(hgenv, t1) == node
    for target in (t0, t1):
        found = journal(target)[-1]["migrations"]
        assert found["on"] == h0.spec
        assert found["applied"] == ["bar.0004_bar_f0004"]
        assert found["after"] == {"bar": "0004_bar_f0004"}
    assert [s["name"] for s in journal(t0)[-1]["steps"]] == ["pull", "update", "migrate"]
    assert [s["name"] for s in journal(t1)[-1]["steps"]] == ["pull", "update"]


def test_the_migration_host_alone_imports_django_during_the_update(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    """The standard migrate on one PostgreSQL behind two hosts: the warm
    migration runner starts on the migration host only, and migrates."""
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = pg_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path,
                        postgres.port, pgdb)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    node = commit_on(hgenv, central_repo, "staging", "add 0004",
                     lambda repo: add_migration(repo, 4))

    r = hgenv.hg("--debug", "envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert applied(postgres, pgdb) == BASE + [("bar", "0004_bar_f0004")]
    lines = r.out.splitlines()
    warm = [l for l in lines if "migration runner started warm" in l]
    assert len(warm) == 1 and warm[0].startswith(h0.spec + ":"), warm
    assert not [l for l in lines
                if l.startswith(h1.spec + ":") and "runner.sock" in l]
    assert parent(hgenv, t0) == parent(hgenv, t1) == node
    assert journal(t1)[-1]["migrations"]["applied"] == ["bar.0004_bar_f0004"]


def test_failing_migration_is_rolled_back_once(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb, migrate_rollback=UNMIGRATE)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, t0)
    commit_on(hgenv, central_repo, "staging", "0004 ok, 0005 fails",
              lambda repo: (add_migration(repo, 4), add_migration(repo, 5, "failing")))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"failed on 1 of 2 hosts: {h0.spec} (migrate)" in r.err
    assert "migration 0005 failed on purpose" in r.err
    # The schema is exactly as before, for both hosts (one database).
    assert applied(postgres, pgdb) == BASE
    assert "f0004" not in pgserver.columns(postgres.port, pgdb, "bar_bar")
    assert parent(hgenv, t0) == parent(hgenv, t1) == first
    # One migrate and one unmigrate, both on the migration host; the other host never
    # took the new code.
    assert (runs(t0), runs(t1)) == (2, 0)
    assert (runs(t0, "unmigrate-runs"), runs(t1, "unmigrate-runs")) == (1, 0)
    record = journal(t0)[-1]
    assert record["rollback"]["outcome"] == "ok"
    assert record["rollback"]["reverted"] == ["bar.0004_bar_f0004"]
    assert record["migrations"]["after"] == {"bar": "0003_bar_created"}
    # Nothing changed there: no record of this run in its journal.
    assert journal(t1)[-1]["id"] != record["id"]
    assert f"{h1.spec}: untouched: nothing changed" in r.out


def test_non_atomic_migration_failing_halfway_is_not_called_rolled_back(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, t0)

    def change(repo):
        with open(os.path.join(repo, "bar", "migrations", "0004_half.py"), "w") as f:
            f.write(_NONATOMIC)

    commit_on(hgenv, central_repo, "staging", "non-atomic 0004", change)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    # The column was added, the migration never recorded: Django cannot tell.
    assert "half" in pgserver.columns(postgres.port, pgdb, "bar_bar")
    assert applied(postgres, pgdb) == BASE
    assert "schema NOT restored: bar.0004_half stopped halfway" in r.text
    assert "schema NOT restored: " + h0.spec in r.err
    line = [l for l in r.out.splitlines() if l.startswith(f"{h0.spec}: ")][-1]
    assert "ROLLBACK PARTIAL" in line and "rolled back" not in line
    record = journal(t0)[-1]
    assert record["rollback"]["outcome"] == "partial"
    assert record["migrations"]["halfway"] == ["bar.0004_half"]
    assert parent(hgenv, t0) == first


def test_roles_reload_differently_and_are_named(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    h0, h1 = sshd_hosts.hosts[:2]
    (h0, h1), (t0, t1) = two_hosts(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb,
        hosts="", hosts_web=h0.spec, hosts_worker=h1.spec, migrateon="worker",
        reload="echo default > reloaded", reload_worker="echo worker > reloaded",
        check="test -f reloaded", check_worker="")

    r = hgenv.hg("envdeploy", "staging", "-q", "-T", "json", cwd=central_repo)

    assert r.rc == 0, r.text
    rows = {row["host"]: row for row in json.loads(r.out)}
    assert rows[h0.spec]["role"] == "web" and rows[h1.spec]["role"] == "worker"
    assert open(os.path.join(t0, "reloaded")).read() == "default\n"
    assert open(os.path.join(t1, "reloaded")).read() == "worker\n"
    # migrateon names the worker role: its host migrated, the web host did not.
    assert (runs(t0), runs(t1)) == (0, 1)
    assert [journal(t)[-1]["role"] for t in (t0, t1)] == ["web", "worker"]
    steps = [s["name"] for s in journal(t1)[-1]["steps"]]
    assert steps == ["update", "migrate", "reload"]  # no check for workers

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert f"{h1.spec} (worker): already at" in r.out
    status = hgenv.hg("envstatus", "staging", cwd=central_repo, check=True)
    assert f"  {h1.spec} (worker): " in status.out


def test_serial_puts_the_migration_host_in_the_first_batch(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    h0, h1 = sshd_hosts.hosts[:2]
    stamp = "python3 -c 'import time; print(time.time())' >> stamps"
    (h0, h1), (t0, t1) = two_hosts(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb,
        serial="1", migrateon=h1.spec, reload=stamp)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert (runs(t0), runs(t1)) == (0, 1)
    assert applied(postgres, pgdb) == BASE
    first = float(open(os.path.join(t1, "stamps")).read())
    second = float(open(os.path.join(t0, "stamps")).read())
    assert first < second  # h1, the migration host, went first


def _session_pids(host):
    """The sshd processes serving sessions (children of the host's listener)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == host.pid:
            pids.append(int(entry))
    return pids


def _lose_the_session_mid_migration(hgenv, central_repo, host, target):
    """Deploy a new migration and kill the host's sshd session processes once it is
    applied; ``(stdout, stderr, exit status)`` of the deploy."""
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: add_migration(repo, 4))
    # A migration that goes on after applying: the session dies in the middle (the
    # step itself runs on; its shell, and the lock with it, end when it does).
    slow = f"{MIGRATE} && touch migrated && sleep 3"
    proc = subprocess.Popen(
        [hgenv.hg_executable, "envdeploy", "staging", "--config",
         f"environments.staging.migrate={slow}"],
        cwd=central_repo, env=hgenv.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(target, "migrated")), 60,
                 "the migration to be applied")
        for pid in _session_pids(host):
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, err, proc.returncode


def test_session_killed_mid_migration_leaves_an_unfinished_record(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb, hosts=sshd_hosts.hosts[0].spec)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, t0)
    out, err, rc = _lose_the_session_mid_migration(hgenv, central_repo, h0, t0)
    assert rc != 0
    assert "lost the connection" in out + err
    assert applied(postgres, pgdb) == BASE + [("bar", "0004_bar_f0004")]
    [record] = [r for r in journal(t0) if r["outcome"] == "unfinished"]
    assert record["from"] == first
    assert record["migrations"]["before"] == {"bar": "0003_bar_created"}

    wait_for(lambda: not os.path.exists(os.path.join(t0, ".hg", "envdeploy", "lock")),
             30, "the lock to go with the session")
    status = hgenv.hg("envstatus", "staging", "-T", "json", cwd=central_repo, check=True)
    assert json.loads(status.out)[0]["unfinished"] == record["id"]
    text = hgenv.hg("envstatus", "staging", cwd=central_repo, check=True).out
    assert f"last deploy UNFINISHED (run {record['id']}" in text
    check = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert check.rc == 1 and f"run {record['id']} (envdeploy by " in check.text

    # The next deploy reads the real state (0004 is applied) and records it.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    last = journal(t0)[-1]
    assert last["outcome"] == "ok"
    assert last["migrations"]["before"] == {"bar": "0004_bar_f0004"}
    assert last["migrations"]["after"] == {"bar": "0004_bar_f0004"}
    status = hgenv.hg("envstatus", "staging", "-T", "json", cwd=central_repo, check=True)
    assert json.loads(status.out)[0]["unfinished"] == ""

    # And a rollback returns code and schema to where they were before that run.
    r = hgenv.hg("envrollback", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, t0) == first
    assert applied(postgres, pgdb) == BASE


def test_rollback_right_after_an_unfinished_run(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb, hosts=sshd_hosts.hosts[0].spec)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, t0)
    _lose_the_session_mid_migration(hgenv, central_repo, h0, t0)
    wait_for(lambda: not os.path.exists(os.path.join(t0, ".hg", "envdeploy", "lock")),
             30, "the lock to go with the session")

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert f"back to {first[:12]}\n" in r.out
    assert "unapplying bar.0004_bar_f0004" in r.out
    assert parent(hgenv, t0) == first
    assert applied(postgres, pgdb) == BASE


def test_status_reads_the_migrations_once_per_environment(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    (h0, h1), (t0, t1) = two_hosts(hgenv, central_repo, sshd_hosts, remote_dir,
                                   postgres, pgdb)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    hgenv.run([MIGRATE.split()[0], "manage.py", "migrate", "--noinput", "bar", "0002"],
              cwd=t0, check=True)

    text = hgenv.hg("envstatus", "staging", cwd=central_repo, check=True).out
    rows = json.loads(hgenv.hg("envstatus", "staging", "-T", "json",
                               cwd=central_repo, check=True).out)

    assert text.count("migrations not applied") == 1
    assert "bar.0003_bar_created" in text
    assert rows[0]["migrations"] == ["bar.0003_bar_created"]
    assert rows[1]["migrations"] is None
