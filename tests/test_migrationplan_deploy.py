"""The migration plan in real deploys and rollbacks (local environments, real hg, real
Django migrations on SQLite and on the suite's real PostgreSQL server): shown before
anything changes, the irreversible policy, a failed deploy that cannot go back, and a
database backup (real pg_dump / pg_restore) only when a deploy migrates."""
import json
import os

import pgserver
from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, environment, journal, migrations, parent,
)

BASE = ["0001_initial", "0002_bar_description", "0003_bar_created"]


def site(hgenv, central_repo, tmp_path, **keys):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    keys.setdefault("migrate", MIGRATE)
    hgenv.write_hgrc(central_repo, environment("staging", path=target, **keys))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    return target


def irreversible_release(hgenv, central_repo):
    """staging gets 0004_irreversible and 0005_bar_f0005 in one changeset."""
    return commit_on(hgenv, central_repo, "staging", "0004 irreversible, 0005",
                     lambda repo: (add_migration(repo, 4, "irreversible"),
                                   add_migration(repo, 5)))


def test_dry_run_status_json_journal_and_log_carry_the_plan(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    node = irreversible_release(hgenv, central_repo)

    dry = hgenv.hg("envdeploy", "staging", "-n", cwd=central_repo)
    assert dry.rc == 0, dry.text
    assert ("local:   bar.0004_irreversible [irreversible: RunPython without reverse_code]"
            in dry.out)
    assert "local:   bar.0005_bar_f0005\n" in dry.out
    assert ("local: this deploy cannot be rolled back past bar.0004_irreversible: "
            "bar.0004_irreversible cannot be reversed") in dry.err
    assert migrations(target) == BASE and journal(target)[-1]["to"] != node

    js = hgenv.hg("envdeploy", "staging", "-n", "-q", "-T", "json", cwd=central_repo)
    assert js.rc == 0, js.text
    (item,) = json.loads(js.out)
    assert item["newmigrations"] == [
        {"app": "bar", "name": "0004_irreversible", "flags": ["irreversible"]},
        {"app": "bar", "name": "0005_bar_f0005", "flags": []}]
    assert item["reversible"] is False

    status = hgenv.hg("envstatus", "staging", cwd=central_repo)
    assert ("(new migrations: bar.0004_irreversible [irreversible], bar.0005_bar_f0005); "
            "that deploy could not be rolled back past bar.0004_irreversible") in status.out
    (row,) = json.loads(hgenv.hg("envstatus", "staging", "-T", "json",
                                 cwd=central_repo, check=True).out)
    assert row["newmigrations"][0]["flags"] == ["irreversible"]
    assert row["reversible"] is False

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    # warn (the default): said again on the last line.
    assert r.err.splitlines()[-1] == ("staging: this deploy cannot be rolled back past "
                                      "bar.0004_irreversible cannot be reversed")
    record = journal(target)[-1]
    assert record["plan"] == {
        "applies": [{"app": "bar", "name": "0004_irreversible", "flags": ["irreversible"]},
                    {"app": "bar", "name": "0005_bar_f0005", "flags": []}],
        "reversible": False, "blocker": "bar.0004_irreversible"}
    log = hgenv.hg("envlog", "staging", "-l", "1", cwd=central_repo, check=True)
    assert "  could not be rolled back past bar.0004_irreversible\n" in log.out

    # And the rollback names it before changing anything.
    back = hgenv.hg("envrollback", "staging", "-n", cwd=central_repo)
    assert back.rc != 0
    assert "bar.0004_irreversible cannot be reversed: the rollback would stop" in back.text


def test_refuse_stops_the_deploy_with_nothing_changed(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path, irreversible="refuse")
    before, records = parent(hgenv, target), len(journal(target))
    node = irreversible_release(hgenv, central_repo)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert ("abort: refusing to deploy: bar.0004_irreversible cannot be reversed; this "
            "deploy could not be rolled back") in r.err
    assert "(--irreversible deploys anyway (irreversible = refuse))" in r.err
    assert parent(hgenv, target) == before and migrations(target) == BASE
    assert len(journal(target)) == records

    r = hgenv.hg("envdeploy", "staging", "--irreversible", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, target) == node


def test_a_failed_deploy_past_an_irreversible_migration_stays_forward(
        hgenv, central_repo, tmp_path):
    # The check fails with the new code only.
    target = site(hgenv, central_repo, tmp_path,
                  check="test ! -f bar/migrations/0004_irreversible.py")
    node = irreversible_release(hgenv, central_repo)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    message = (f"not rolled back: bar.0004_irreversible cannot be reversed; every host is "
               f"at {node[:12]} with its schema")
    assert f"local: {message}" in r.err
    assert "ROLLBACK" not in r.text and "state unknown" not in r.text
    assert f"now at {node[:12]}" in r.out
    assert parent(hgenv, target) == node
    assert migrations(target) == BASE + ["0004_irreversible", "0005_bar_f0005"]
    record = journal(target)[-1]
    assert record["outcome"] == "failed" and record["failed"] == "check"
    assert record["rollback"]["outcome"] == "skipped"
    assert record["rollback"]["message"] == message
    assert record["rollback"]["at"] == node


# -- backups with real pg_dump / pg_restore


def pg_site(hgenv, central_repo, tmp_path, postgres, pgdb, **keys):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    with open(os.path.join(target, "local_settings.py"), "w") as f:
        f.write(pgserver.local_settings(pgdb, postgres.port))
    bindir = pgserver.find_bindir()
    conn = f"-h 127.0.0.1 -p {postgres.port} -U postgres"
    keys.setdefault("backup", f'{bindir}/pg_dump -Fc {conn} -f "$ENVDEPLOY_BACKUP" {pgdb}')
    keys.setdefault("restore", f'{bindir}/pg_restore --clean {conn} -d {pgdb} '
                               f'"$ENVDEPLOY_BACKUP"')
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE,
                                               **keys))
    return target


def backups(target):
    path = os.path.join(target, ".hg", "envdeploy", "backups")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_a_backup_only_when_migrations_are_pending(hgenv, central_repo, tmp_path,
                                                  postgres, pgdb):
    target = pg_site(hgenv, central_repo, tmp_path, postgres, pgdb, backup_keep="2")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = journal(target)[-1]
    (made,) = backups(target)
    assert first["migrations"]["backup"] == os.path.join(
        str(target), ".hg", "envdeploy", "backups", made)
    assert os.path.getsize(first["migrations"]["backup"]) > 0

    # No migration in this changeset: no backup step at all.
    commit_on(hgenv, central_repo, "staging", "readme",
              lambda repo: open(os.path.join(repo, "README"), "w").write("x\n"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    record = journal(target)[-1]
    assert "backup" not in [s["name"] for s in record["steps"]]
    assert "backup" not in record["migrations"] and backups(target) == [made]

    # backup.keep = 2: the oldest goes.
    for n in (4, 5):
        commit_on(hgenv, central_repo, "staging", f"add {n}",
                  lambda repo, n=n: add_migration(repo, n))
        hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert len(backups(target)) == 2 and made not in backups(target)
    log = hgenv.hg("envlog", "staging", "-l", "1", cwd=central_repo, check=True)
    assert f"  database backup: {journal(target)[-1]['migrations']['backup']}" in log.out


def test_a_failing_or_empty_backup_leaves_the_schema_untouched(hgenv, central_repo, tmp_path,
                                                             postgres, pgdb):
    target = pg_site(hgenv, central_repo, tmp_path, postgres, pgdb)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = parent(hgenv, target)
    commit_on(hgenv, central_repo, "staging", "add 0004", lambda repo: add_migration(repo, 4))
    applied = pgserver.applied_migrations(postgres.port, pgdb)

    for command in ("exit 3", "true"):  # fails; succeeds but writes nothing
        hgenv.write_hgrc(central_repo, f"[environments]\nstaging.backup = {command}\n")
        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
        assert r.rc != 0
        assert "FAILED at backup: backup failed: nothing migrated" in r.text
        assert pgserver.applied_migrations(postgres.port, pgdb) == applied
        assert "f0004" not in pgserver.columns(postgres.port, pgdb, "bar_bar")
        assert parent(hgenv, target) == before
        record = journal(target)[-1]
        assert record["failed"] == "backup"
        assert "migrate" not in [s["name"] for s in record["steps"]]
    assert "the backup left no file, or an empty one" in r.text


def test_restore_brings_the_data_back(hgenv, central_repo, tmp_path, postgres, pgdb):
    import psycopg

    target = pg_site(hgenv, central_repo, tmp_path, postgres, pgdb)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, target)
    dsn = f"host=127.0.0.1 port={postgres.port} user=postgres dbname={pgdb}"
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO bar_bar (name, description) VALUES ('kept', '')")
    irreversible_release(hgenv, central_repo)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    path = journal(target)[-1]["migrations"]["backup"]
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("DELETE FROM bar_bar")  # the loss a restore is for

    back = hgenv.hg("envrollback", "staging", "-n", cwd=central_repo)
    assert back.rc != 0 and f"hg envrollback staging --restore restores {path}" in back.text
    dry = hgenv.hg("envrollback", "staging", "--restore", "-n", cwd=central_repo)
    assert dry.rc == 0, dry.text
    assert f"would restore {path} instead of reverting migrations" in dry.out

    r = hgenv.hg("envrollback", "staging", "--restore", "-y", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == first
    with psycopg.connect(dsn) as db:
        assert db.execute("SELECT name FROM bar_bar").fetchall() == [("kept",)]
    assert [n for a, n in pgserver.applied_migrations(postgres.port, pgdb)
            if a == "bar"] == BASE
    record = journal(target)[-1]
    assert record["kind"] == "rollback" and record["migrations"]["restored"] == path
    assert "restore" in [s["name"] for s in record["steps"]]


def test_destructive_migrations_are_named_when_old_code_still_runs(
        hgenv, central_repo, sshd_hosts, remote_dir):
    from envtools import ssh_settings, ssh_targets
    from migrationproject import edit, manage

    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", path=path, migrate=MIGRATE, hosts=f"{h0.spec}, {h1.spec}", serial="1"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    def drop_created(repo):
        edit(os.path.join(repo, "bar", "models.py"),
             "    created = models.DateTimeField(null=True, blank=True)\n", "")
        manage(str(repo), "makemigrations", "bar")  # real Django writes RemoveField

    commit_on(hgenv, central_repo, "staging", "drop created", drop_created)

    r = hgenv.hg("envdeploy", "staging", "-n", cwd=central_repo)

    assert r.rc == 0, r.text
    assert f"{h0.spec}:   bar.0004_remove_bar_created [destructive: RemoveField]" in r.out
    assert (f"{h0.spec}: destructive migrations while other hosts still run the old code "
            "(serial): bar.0004_remove_bar_created") in r.err
    assert f"{h1.spec}:   bar.0004" not in r.out  # said once, for the database
