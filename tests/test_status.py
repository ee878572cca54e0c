"""hg envstatus and hg envlog against real targets, sshd and Django migrations."""
import json
import os

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, environment, head, journal, ssh_settings,
    ssh_targets,
)

UNREACHABLE = "root@127.0.0.1:1"


def _accepted(host):
    with open(host.log) as f:
        return f.read().count("Accepted publickey")


def _by_host(out):
    items = json.loads(out)
    return {item["host"]: item for item in items}


def _line(out, prefix):
    """The output line starting with prefix (after indentation)."""
    found = [l.strip() for l in out.splitlines() if l.strip().startswith(prefix)]
    assert len(found) == 1, (prefix, out)
    return found[0]


def _lock(target, user="colleague", client="desk"):
    lockdir = os.path.join(target, ".hg", "envdeploy", "lock")
    os.makedirs(lockdir)
    with open(os.path.join(lockdir, "info"), "w") as fp:
        fp.write(f"user={user}\nclient={client}\nsince=2026-01-02T03:04:05Z\n"
                 f"command=envdeploy staging\npid=1\nnode=elsewhere\n")


# --- envstatus ----------------------------------------------------------------


def test_status_never_deployed_up_to_date_behind_and_unreachable(
        hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1, h2 = sshd_hosts.hosts
    path = os.path.join(remote_dir, "project")
    t0, t1, t2 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1, h2], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "connecttimeout = 3\n")
                     + environment("staging", path=path, migrate=MIGRATE, migrateon="all",
                                   hosts=f"{h0.spec} {h1.spec} {h2.spec} {UNREACHABLE}"))
    first = head(hgenv, central_repo, "staging")
    hgenv.hg("envdeploy", "staging", "--config",
             f"environments.staging.hosts={h0.spec} {h1.spec}", cwd=central_repo,
             check=True)
    migration = []
    second = commit_on(hgenv, central_repo, "staging", "add 0004",
                       lambda repo: migration.append(add_migration(repo, 4)))
    # host0 gets the new code, but not its migration.
    hgenv.hg("envdeploy", "staging", "--config", f"environments.staging.hosts={h0.spec}",
             "--config", "environments.staging.migrate=", cwd=central_repo, check=True)
    before = [_accepted(h) for h in (h0, h1, h2)]

    r = hgenv.hg("envstatus", cwd=central_repo)

    assert r.rc == 0, r.text
    assert [_accepted(h) for h in (h0, h1, h2)] == [n + 1 for n in before]
    new = f"bar.{migration[0]}"
    assert f'staging: branch staging at {second[:12]} "add 0004"' in r.out
    up = _line(r.out, f"{h0.spec}:")
    assert up.startswith(f'{h0.spec}: {second[:12]} "add 0004", deployed ')
    assert "by Test User <test@example.com>; up to date" in up
    assert f"migrations not applied: {new}" in r.out
    behind = _line(r.out, f"{h1.spec}:")
    assert behind.startswith(f'{h1.spec}: {first[:12]} "create staging", deployed ')
    assert behind.endswith(f"; 1 changeset not deployed (new migrations: {new})")
    assert _line(r.out, f"{h2.spec}:") == (
        f"{h2.spec}: never deployed (empty working copy); 3 changesets not deployed"
        " (new migrations: bar.0001_initial, bar.0002_bar_description,"
        " bar.0003_bar_created and 1 more)")
    assert _line(r.out, f"{UNREACHABLE}:").startswith(
        f"{UNREACHABLE}: unreachable: cannot connect to [127.0.0.1]:1")

    r = hgenv.hg("envstatus", "-T", "json", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    rows = _by_host(r.out)
    assert list(rows) == [h0.spec, h1.spec, h2.spec, UNREACHABLE]
    assert rows[h0.spec]["node"] == second and rows[h0.spec]["pending"] == 0
    assert rows[h0.spec]["migrations"] == [new]
    assert rows[h0.spec]["deployedby"] == "Test User <test@example.com>"
    assert rows[h1.spec]["node"] == first and rows[h1.spec]["pending"] == 1
    assert rows[h1.spec]["newmigrations"] == [
        {"app": "bar", "name": migration[0], "flags": []}]
    assert rows[h1.spec]["reversible"] is True
    assert rows[h1.spec]["migrations"] == []  # all of its code's migrations ran
    assert rows[h2.spec]["node"] == "" and rows[h2.spec]["pending"] == 3
    assert rows[h2.spec]["migrations"] is None  # no code there to ask
    for spec in (h0.spec, h1.spec, h2.spec):
        row = rows[spec]
        assert row["env"] == "staging" and row["branchhead"] == second
        assert row["reachable"] is True and row["error"] == ""
        assert row["dirty"] == [] and row["locked"] == ""
    gone = rows[UNREACHABLE]
    assert gone["reachable"] is False and "cannot connect" in gone["error"]
    assert gone["node"] == "" and gone["pending"] is None
    # Reading changed nothing.
    assert [len(journal(t)) for t in (t0, t1, t2)] == [2, 1, 0]


def test_status_dirty_and_locked(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    with open(os.path.join(target, "mysite", "urls.py"), "a") as fp:
        fp.write("# hotfix typed on the server\n")
    os.remove(os.path.join(target, "manage.py"))
    _lock(target)

    r = hgenv.hg("envstatus", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "local: " in r.out and "; up to date" in r.out
    assert "manual edits in 2 files (-v lists them)" in r.out
    assert "urls.py" not in r.out
    assert "locked by colleague on desk since 2026-01-02T03:04:05Z" in r.out

    r = hgenv.hg("envstatus", "-v", cwd=central_repo)
    # In hg status order: modified, then missing.
    assert "manual edits: mysite/urls.py, manage.py" in r.out

    r = hgenv.hg("envstatus", "-T", "json", cwd=central_repo)
    [row] = json.loads(r.out)
    assert row["dirty"] == ["mysite/urls.py", "manage.py"]
    assert row["locked"].startswith("colleague on desk since 2026-01-02T03:04:05Z")
    assert row["migrations"] is None  # no migrate command configured
    # Status reads; it neither restores the file nor touches the lock.
    assert not os.path.exists(os.path.join(target, "manage.py"))
    assert os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock", "info"))


def test_status_of_every_environment_and_of_a_broken_one(hgenv, central_repo,
                                                        tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target)
                     + "live.path = %s\n" % (tmp_path / "nowhere"))

    r = hgenv.hg("envstatus", cwd=central_repo)

    assert r.rc == 0, r.text  # a host in trouble is a row, not a failure
    assert "staging: branch staging at" in r.out
    assert "local: never deployed (empty working copy); 2 changesets" in r.out
    assert "live: branch live at" in r.out
    assert f"local: cannot read: {tmp_path / 'nowhere'} does not exist" in r.out
    assert "(run 'hg envsetup live': it clones the repository there)" in r.out
    r = hgenv.hg("envstatus", "-T", "json", "live", cwd=central_repo)
    [row] = json.loads(r.out)
    assert row["reachable"] is True and "does not exist" in row["error"]

    r = hgenv.hg("envstatus", "prod", cwd=central_repo)
    assert r.rc != 0
    assert "unknown environment 'prod'" in r.err


# --- envlog -------------------------------------------------------------------


def _append_record(target, record):
    """A journal line in the documented format (journal.py), written by hand."""
    path = os.path.join(target, ".hg", "envdeploy", "journal.jsonl")
    with open(path, "a") as fp:
        fp.write(json.dumps(dict(record, v=1), sort_keys=True) + "\n")


def test_log_after_deploy_failed_deploy_and_rollback(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    good = head(hgenv, central_repo, "staging")
    second = commit_on(hgenv, central_repo, "staging", "second",
                       lambda repo: (repo / "second").write_text("x"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    bad = commit_on(hgenv, central_repo, "staging", "breaks the site",
                    lambda repo: (repo / "broken").write_text("x"))
    r = hgenv.hg("envdeploy", "staging", "--config",
                 "environments.staging.check=test ! -f broken", cwd=central_repo)
    assert r.rc != 0  # and rolled back to second
    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envlog", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    blocks = [b for b in r.out.split("\n\n") if b.strip()]
    assert len(blocks) == 4, r.out
    rollback, failed, deploy2, deploy = blocks
    assert rollback.startswith("rollback ")
    assert rollback.split("\n")[0].endswith(": ok")
    assert "by Test User <test@example.com>" in rollback
    assert f'{second[:12]} -> {good[:12]} "create staging"' in rollback
    assert failed.startswith("deploy ") and failed.split("\n")[0].endswith(": failed")
    assert f'{second[:12]} -> {bad[:12]} "breaks the site"' in failed
    assert "local: failed at check: check exited with status 1" in failed
    assert deploy2.startswith("deploy ") and deploy2.split("\n")[0].endswith(": ok")
    assert f'{good[:12]} -> {second[:12]} "second"' in deploy2
    assert f'(empty) -> {good[:12]} "create staging"' in deploy
    assert "local: ok (" in deploy

    r = hgenv.hg("envlog", "-T", "json", "-l", "2", "staging", cwd=central_repo)
    entries = json.loads(r.out)
    assert [e["kind"] for e in entries] == ["rollback", "deploy"]
    assert [e["outcome"] for e in entries] == ["ok", "failed"]
    assert entries[0]["from"] == second and entries[0]["to"] == good
    assert entries[0]["reverted"] == []  # no migrate configured: code only
    assert entries[0]["user"] == "Test User <test@example.com>"
    [host] = entries[1]["hosts"]
    assert host["host"] == "local" and host["failed"] == "check"
    assert host["from"] == second and host["to"] == bad

    # A torn last line (full disk) is skipped and counted, not fatal.
    with open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl"), "a") as fp:
        fp.write('{"v": 1, "id": "torn')
    r = hgenv.hg("envlog", "-l", "1", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "local: skipped 1 damaged journal lines" in r.err
    assert r.out.startswith("rollback ")


def test_log_merges_hosts_of_one_run(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "connecttimeout = 3\n")
                     + environment("staging", path=path,
                                   hosts=f"{h0.spec} {h1.spec} {UNREACHABLE}"))
    hgenv.hg("envdeploy", "staging", "--config",
             f"environments.staging.hosts={h0.spec} {h1.spec}", cwd=central_repo,
             check=True)
    hgenv.hg("envdeploy", "staging", "--config", f"environments.staging.hosts={h1.spec}",
             cwd=central_repo, check=True)
    staging = head(hgenv, central_repo, "staging")

    r = hgenv.hg("envlog", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert f"{UNREACHABLE}: cannot read the journal: cannot connect" in r.err
    newest, oldest = [b for b in r.out.split("\n\n") if b.strip()]
    assert newest.split("\n")[0].endswith(": unchanged")
    assert f"{h1.spec}: unchanged" in newest and h0.spec not in newest
    assert oldest.split("\n")[0].endswith(": ok")
    assert f"(empty) -> {staging[:12]}" in oldest
    assert f"{h0.spec}: ok (" in oldest and f"{h1.spec}: ok (" in oldest

    r = hgenv.hg("envlog", "-T", "json", "--host", h0.spec, "staging", cwd=central_repo)
    [entry] = json.loads(r.out)
    assert [h["host"] for h in entry["hosts"]] == [h0.spec]
    assert entry["to"] == staging and entry["outcome"] == "ok"

    r = hgenv.hg("envlog", "--host", "nosuchhost", "staging", cwd=central_repo)
    assert r.rc != 0
    assert "host 'nosuchhost' is not in environment 'staging'" in r.err
    assert h0.spec in r.err  # the hint lists the real ones


def test_run_ids_sort_as_the_runs_started(monkeypatch):
    # Two runs in one second, across the moment the microseconds since the
    # epoch pass a multiple of 2**24: envlog orders runs by (start, id).
    from mercurial import ui as uimod
    from hgext_envdeploy import run as runmod

    wrap = ((1_700_000_000 * 10**6) | 0xFFFFFF) + 1  # microseconds
    first, second = (wrap - 10) / 1e6, (wrap + 10) / 1e6
    assert int(first) == int(second)  # within one second
    ids = []
    for now in (first, second):
        monkeypatch.setattr(runmod.time, "time", lambda now=now: now)
        ids.append(runmod.Run(uimod.ui(), None, {}).id)

    assert ids[0] < ids[1]


def test_status_reads_a_journal_whose_last_write_was_cut(hgenv, central_repo, tmp_path):
    """A session that died mid-write leaves a last line without its newline:
    envstatus still reads the host, and says what the journal holds."""
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    with open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl"), "a") as fp:
        fp.write('{"id": "20990101T000000Z-000001", "kind": "deplo')

    r = hgenv.hg("envstatus", "-T", "json", cwd=central_repo)

    assert r.rc == 0, r.text
    [row] = json.loads(r.out)
    assert row["node"] == head(hgenv, central_repo, "staging"), row
    assert not row.get("error"), row
    r = hgenv.hg("envstatus", cwd=central_repo)
    assert r.rc == 0 and "; up to date" in r.out, r.text
