"""The PostgreSQL part of the test infrastructure: one real server, a fresh database per
test, and several sshd hosts whose Django projects share that one database."""
import os
import sys

import pytest

import pgserver
from envtools import environment, head, parent, pg_targets, ssh_settings

INITIAL = [("bar", "0001_initial"), ("bar", "0002_bar_description"), ("bar", "0003_bar_created")]


def tables(postgres, dbname):
    with postgres.connect(dbname) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                            " ORDER BY tablename").fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_an_empty_database(postgres, pgdb, run):
    # Both runs create the same table: the second one would find the first's if the
    # databases were shared between tests.
    assert tables(postgres, pgdb) == []
    assert pgserver.applied_migrations(postgres.port, pgdb) == []
    with postgres.connect(pgdb) as conn:
        conn.execute("CREATE TABLE left_behind (run text)")
        conn.execute("INSERT INTO left_behind VALUES (%s)", (run,))
    assert tables(postgres, pgdb) == ["left_behind"]
    assert pgserver.columns(postgres.port, pgdb, "left_behind") == ["run"]


def test_local_settings_is_valid_python_for_the_database(postgres, pgdb):
    namespace = {}
    exec(pgserver.local_settings(pgdb, postgres.port), namespace)
    assert namespace["DATABASES"] == {"default": {
        "ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1",
        "PORT": str(postgres.port), "USER": "postgres", "NAME": pgdb,
    }}


def test_two_hosts_deployed_over_ssh_share_one_database(
        hgenv, central_repo, sshd_hosts, remote_dir, postgres, pgdb):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = pg_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path,
                        postgres.port, pgdb)
    # The real deploy puts the code on both hosts; no migrate step, so that the one
    # migrate below is the only one.
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    assert parent(hgenv, t0) == parent(hgenv, t1) == staging
    assert pgserver.applied_migrations(postgres.port, pgdb) == []

    hgenv.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=t0, check=True)

    assert pgserver.applied_migrations(postgres.port, pgdb) == INITIAL
    assert pgserver.columns(postgres.port, pgdb, "bar_bar") == [
        "id", "name", "description", "created"]
    # Django used PostgreSQL, not the project's default SQLite file; and the deploy
    # left each host's local_settings.py in place.
    for target in (t0, t1):
        assert not os.path.exists(os.path.join(target, "db.sqlite3"))
        assert os.path.exists(os.path.join(target, "local_settings.py"))
    # The other host, from inside its own sshd session, sees the migrations applied.
    shown = sshd_hosts.ssh(h1, f"cd {path} && python manage.py showmigrations bar")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [
        "bar", "[X]", "0001_initial", "[X]", "0002_bar_description", "[X]", "0003_bar_created"]
