"""The test infrastructure itself: sshd hosts, per-host disks, the Django project, hg."""
import os
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import VENV_BIN, HgEnv
from djangoproject import add_migration, applied_migrations, copy_project

INITIAL = [("bar", "0001_initial"), ("bar", "0002_bar_description"), ("bar", "0003_bar_created")]


def on_all_hosts(sshd_hosts, command):
    with ThreadPoolExecutor(len(sshd_hosts.hosts)) as pool:
        return list(pool.map(lambda host: sshd_hosts.ssh(host, command), sshd_hosts.hosts))


def test_ssh_runs_the_venv_hg_on_every_host(sshd_hosts):
    results = on_all_hosts(sshd_hosts, "command -v hg python && hg version -q")
    for host, proc in zip(sshd_hosts.hosts, results):
        assert proc.returncode == 0, (host, proc.stderr)
        hg, python, version = proc.stdout.splitlines()[:3]
        assert hg == os.path.join(VENV_BIN, "hg")
        assert python == os.path.join(VENV_BIN, "python")
        assert version.startswith("Mercurial Distributed SCM")


def test_each_host_has_its_own_disk_at_the_same_path(sshd_hosts, remote_dir):
    host0, host1 = sshd_hosts.hosts[:2]
    marker = os.path.join(remote_dir, "marker")
    with open(sshd_hosts.local_path(host0, marker), "w") as f:
        f.write("on host0\n")
    assert sshd_hosts.ssh(host0, f"cat {marker}").stdout == "on host0\n"
    assert sshd_hosts.ssh(host1, f"test -e {marker}").returncode == 1
    # And the other way round: what host1 writes lands in host1's dir only.
    assert sshd_hosts.ssh(host1, f"echo on host1 > {marker}").returncode == 0
    with open(sshd_hosts.local_path(host1, marker)) as f:
        assert f.read() == "on host1\n"
    with open(sshd_hosts.local_path(host0, marker)) as f:
        assert f.read() == "on host0\n"
    assert not os.path.exists(marker)  # the mount point itself stays empty here


def test_local_path_refuses_paths_outside_the_mount(sshd_hosts):
    with pytest.raises(ValueError):
        sshd_hosts.local_path(sshd_hosts.hosts[0], os.path.dirname(sshd_hosts.mount))


def alive(pid):
    """Running, as opposed to gone or a zombie (its new parent, init, reaps it later)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stopped_host_refuses_connections_then_restarts(sshd_hosts):
    host = sshd_hosts.hosts[2]
    # A session left running must die with its host.
    session = sshd_hosts.ssh(host, "sleep 300 > /dev/null 2>&1 & echo $!")
    assert session.returncode == 0, session.stderr
    sleeper = int(session.stdout)
    old_pid = host.pid
    try:
        host.stop()
        assert host.pid is None
        assert not alive(sleeper)
        assert sshd_hosts.ssh(host, "true").returncode == 255
    finally:
        host.start()
    assert host.pid != old_pid
    # Same port and host key: StrictHostKeyChecking accepts it again.
    proc = sshd_hosts.ssh(host, "true")
    assert proc.returncode == 0, proc.stderr


def manage(hgenv, project, *args, check=True):
    return hgenv.run([sys.executable, "manage.py", *args], cwd=project, check=check)


def bar_columns(db):
    with sqlite3.connect(db) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(bar_bar)")]


def test_django_project_migrates_on_sqlite(hgenv, tmp_path):
    project = copy_project(tmp_path / "project")
    db = project / "db.sqlite3"
    assert applied_migrations(db) == []
    manage(hgenv, project, "migrate", "--noinput")
    assert applied_migrations(db) == INITIAL
    assert "[X] 0003_bar_created" in manage(hgenv, project, "showmigrations", "bar").out


def test_applied_migrations_without_table(tmp_path):
    db = tmp_path / "db.sqlite3"
    sqlite3.connect(db).close()
    assert applied_migrations(db) == []


def test_field_migrations_apply_and_revert(hgenv, tmp_path):
    project = copy_project(tmp_path / "project")
    assert add_migration(project, 4) == "0004_bar_f0004"
    assert add_migration(project, 5, kind="field") == "0005_bar_f0005"
    # models.py still matches the migrations.
    manage(hgenv, project, "makemigrations", "bar", "--check", "--dry-run")
    db = project / "db.sqlite3"
    manage(hgenv, project, "migrate", "--noinput")
    assert applied_migrations(db) == INITIAL + [("bar", "0004_bar_f0004"), ("bar", "0005_bar_f0005")]
    assert bar_columns(db)[-2:] == ["f0004", "f0005"]
    manage(hgenv, project, "migrate", "bar", "0003")
    assert applied_migrations(db) == INITIAL
    assert "f0004" not in bar_columns(db)


def test_add_migration_refuses_an_existing_number(tmp_path):
    project = copy_project(tmp_path / "project")
    with pytest.raises(ValueError):
        add_migration(project, 3)


def test_irreversible_migration(hgenv, tmp_path):
    project = copy_project(tmp_path / "project")
    assert add_migration(project, 4, kind="irreversible") == "0004_irreversible"
    manage(hgenv, project, "migrate", "--noinput")
    back = manage(hgenv, project, "migrate", "bar", "0003", check=False)
    assert back.rc != 0 and "IrreversibleError" in back.err
    assert applied_migrations(project / "db.sqlite3")[-1] == ("bar", "0004_irreversible")


def test_failing_migration(hgenv, tmp_path):
    project = copy_project(tmp_path / "project")
    assert add_migration(project, 4, kind="failing") == "0004_failing"
    result = manage(hgenv, project, "migrate", "--noinput", check=False)
    assert result.rc != 0 and "migration 0004 failed on purpose" in result.err
    assert applied_migrations(project / "db.sqlite3") == INITIAL


def test_hgenv_is_isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPLAIN", "1")
    monkeypatch.setenv("HGUSER", "Someone Else <else@example.com>")
    hgenv = HgEnv(tmp_path / "home")
    assert "HGPLAIN" not in hgenv.env and "HGUSER" not in hgenv.env
    assert hgenv.hg("config", "ui.username", check=True).out == "Test User <test@example.com>\n"
    with pytest.raises(AssertionError, match="no-such-command"):
        hgenv.hg("no-such-command", check=True)


def test_central_repo_has_the_three_branches(hgenv, central_repo):
    log = hgenv.hg("log", "-r", "all()", "-T", "{rev} {branch} {p1rev} {desc}\n",
                   cwd=central_repo, check=True)
    assert log.out.splitlines() == [
        "0 default -1 initial project",
        "1 staging 0 create staging",
        "2 live 0 create live",
    ]
    assert hgenv.hg("id", "-b", cwd=central_repo, check=True).out == "default\n"
    status = hgenv.hg("status", "-A", cwd=central_repo, check=True).out.splitlines()
    assert all(line.startswith("C ") for line in status)  # clean working copy
    assert "C bar/migrations/0003_bar_created.py" in status
