"""hg envsetup and the pre-flight check (hg envcheck) against real targets and sshd."""
import json
import os
import stat


from envtools import (
    MIGRATE, clone_target, commit_on, environment, head, journal, parent,
    ssh_settings, ssh_targets,
)

SECRET = "SECRET_KEY = 'do-not-print-me-7c1e'\n"
UNREACHABLE = "root@127.0.0.1:1"


def _settings_file(tmp_path, text=SECRET):
    path = tmp_path / "live_settings.py"
    path.write_text(text)
    return path


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _checks(out):
    """{(host, check): status} from envcheck -T json."""
    return {(c["host"], c["check"]): c["status"] for c in json.loads(out)}


# --- envsetup -----------------------------------------------------------------


def test_setup_clones_where_missing_uploads_settings_and_is_idempotent(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = [sshd_hosts.local_path(h, path) for h in (h0, h1)]
    settings = _settings_file(tmp_path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec} {h1.spec}", path=path, source=central_repo,
        migrate=MIGRATE, reload="touch reloaded", requiredfiles="local_settings.py",
        localsettings=settings))

    r = hgenv.hg("envsetup", "--dry-run", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"{h0.spec}: would clone {central_repo} into {path}" in r.out
    assert f"would upload {settings} as local_settings.py" in r.out
    assert not any(os.path.exists(t) for t in targets)

    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    for host, target in zip((h0, h1), targets):
        assert f"{host.spec}: cloned {central_repo} into {path}" in r.out
        assert f"{host.spec}: updated to {staging[:12]} (staging)" in r.out
        assert parent(hgenv, target) == staging
        assert hgenv.hg("paths", "default", cwd=target).out.strip() == str(central_repo)
        uploaded = os.path.join(target, "local_settings.py")
        assert open(uploaded).read() == SECRET
        assert _mode(uploaded) == 0o600
        # Set up, not deployed: no migration, no reload, no journal.
        assert not os.path.exists(os.path.join(target, "db.sqlite3"))
        assert not os.path.exists(os.path.join(target, "reloaded"))
        assert journal(target) == []
    assert "do-not-print-me" not in r.text
    assert "deploy it with 'hg envdeploy staging'" in r.out

    # A second run changes nothing, not even a local_settings.py edited on the host.
    with open(os.path.join(targets[0], "local_settings.py"), "w") as fp:
        fp.write("DEBUG = True  # edited on the host\n")
    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    for host in (h0, h1):
        assert f"{host.spec}: {path}: already a clone of this project" in r.out
        assert f"{host.spec}: required files present: local_settings.py" in r.out
        assert f"{host.spec}: nothing to change" in r.out
    assert "staging is set up: nothing changed" in r.out
    assert "edited on the host" in open(os.path.join(targets[0], "local_settings.py")).read()


def test_setup_existing_clone_and_unrelated_repository(hgenv, central_repo, sshd_hosts,
                                                      remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    [clone] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    other = sshd_hosts.local_path(h1, path)
    hgenv.hg("init", other, check=True)
    with open(os.path.join(other, "README"), "w") as fp:
        fp.write("another project\n")
    hgenv.hg("commit", "-q", "-A", "-m", "another project", cwd=other, check=True)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"{h0.spec} {h1.spec}", path=path, source=central_repo))

    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"{h0.spec}: {path}: already a clone of this project" in r.out
    assert f"{h0.spec}: nothing to change" in r.out
    assert f"{h1.spec}: {path} is a repository of another project" in r.err
    assert "envsetup never changes an existing repository" in r.err
    assert f"1 of 2 hosts need attention: {h1.spec} (path)" in r.err
    # Neither was touched.
    assert parent(hgenv, clone) == "0" * 40
    assert hgenv.hg("log", "-T", "{desc}\n", cwd=other).out == "another project\n"


def test_setup_reports_missing_required_file_without_local_settings(
        hgenv, central_repo, tmp_path):
    target = tmp_path / "site"
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, requiredfiles="local_settings.py, mysite/extra.cfg"))

    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc != 0
    # Cloned (from this very repository: a local environment without source)...
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")
    # ... but not ready.
    assert "local: local_settings.py is missing (not under version control)" in r.err
    assert "local: mysite/extra.cfg is missing" in r.err
    assert "set staging.localsettings to a local file that envsetup uploads" in r.err
    assert "1 of 1 hosts need attention: local (requiredfiles)" in r.err

    (target / "local_settings.py").write_text("DEBUG = False\n")
    (target / "mysite" / "extra.cfg").write_text("x\n")
    r = hgenv.hg("envsetup", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "local: required files present: local_settings.py, mysite/extra.cfg" in r.out
    assert "local: nothing to change" in r.out


def test_setup_never_overwrites_existing_local_settings(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    (target / "mysite").mkdir()
    (target / "mysite" / "local_settings.py").write_text("# the host's own\n")
    # The file goes where the required file of the same name is.
    local = tmp_path / "local_settings.py"
    local.write_text(SECRET)
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, requiredfiles="mysite/local_settings.py",
        localsettings=local))

    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert (target / "mysite" / "local_settings.py").read_text() == "# the host's own\n"
    assert not (target / "local_settings.py").exists()
    assert "required files present: mysite/local_settings.py" in r.out
    assert "nothing changed" in r.out


def test_setup_clones_the_default_path_of_this_repository(hgenv, central_repo, tmp_path):
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    target = tmp_path / "new" / "site"
    hgenv.write_hgrc(work, environment("staging", path=target))

    r = hgenv.hg("envsetup", "staging", cwd=work)

    assert r.rc == 0, r.text
    assert f"local: cloned {central_repo} into {target}" in r.out
    assert hgenv.hg("paths", "default", cwd=target).out.strip() == str(central_repo)


def test_first_deploy_after_setup_migrates(hgenv, central_repo, tmp_path):
    target = tmp_path / "site"
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    hgenv.hg("envsetup", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert os.path.exists(target / "db.sqlite3")


# --- pre-flight: hg envcheck --------------------------------------------------


def test_check_healthy_host(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    with open(os.path.join(target, "local_settings.py"), "w") as fp:
        fp.write(SECRET)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=path, requiredfiles="local_settings.py"))
    version = hgenv.hg("version", "-q").out.split("(version ")[1].split(")")[0]
    known = open(sshd_hosts.known_hosts).read()

    r = hgenv.hg("envcheck", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    lines = [l.split(None, 2) for l in r.out.splitlines() if l.startswith("  ")]
    assert [(status, check) for status, check, _msg in lines] == [
        ("ok", "connect"), ("ok", "hg"), ("ok", "path"), ("ok", "source"),
        ("ok", "requiredfiles"), ("ok", "lock"), ("ok", "freeze"), ("ok", "journal"),
        ("ok", "workingcopy"), ("ok", "migrations")]
    assert f"Mercurial {version}" in r.out
    assert f"{path}: a clone of this project" in r.out
    assert f"the host's default path has {staging[:12]}" in r.out
    assert "staging: every check passed on 1 host" in r.out
    # It changed nothing.
    assert journal(target) == [] and parent(hgenv, target) == "0" * 40
    assert open(sshd_hosts.known_hosts).read() == known


def test_check_reports_every_problem_at_once(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h1], path)  # none on h0
    hgenv.hg("update", "-q", "-R", target, "staging", check=True)
    with open(os.path.join(target, "manage.py"), "a") as fp:
        fp.write("# edited on the host\n")
    lockdir = os.path.join(target, ".hg", "envdeploy", "lock")
    os.makedirs(lockdir)
    with open(os.path.join(lockdir, "info"), "w") as fp:
        fp.write("user=colleague\nclient=desk\npid=1\nnode=elsewhere\n")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts, "connecttimeout = 3\n")
                     + environment("staging", path=path, requiredfiles="local_settings.py",
                                   hosts=f"{h0.spec} {h1.spec} {UNREACHABLE}"))

    r = hgenv.hg("envcheck", "staging", cwd=central_repo)

    assert r.rc == 1, r.text
    assert f"FAILED  path          {path} does not exist" in r.out
    assert "(run 'hg envsetup staging': it clones the repository there)" in r.out
    assert "FAILED  requiredfiles missing: local_settings.py" in r.out
    assert "FAILED  lock          locked by colleague on desk" in r.out
    assert "FAILED  workingcopy   manual edits: manage.py" in r.out
    assert "FAILED  connect       cannot connect to [127.0.0.1]:1" in r.out
    assert (f"staging: 5 checks failed: {h0.spec} (path), {h1.spec} (requiredfiles, "
            f"lock, workingcopy), {UNREACHABLE} (connect)") in r.err
    # Nothing was changed: the edit and the lock are still there.
    assert "edited on the host" in open(os.path.join(target, "manage.py")).read()
    assert os.path.exists(lockdir)

    # hg missing on the target: said once, and what needs hg is skipped.
    r = hgenv.hg("envcheck", "-T", "json", "staging", "--config",
                 "environments.staging.hg=/nonexistent/hg", cwd=central_repo)
    assert r.rc == 1
    checks = _checks(r.out)
    assert checks[(h1.spec, "hg")] == "failed"
    assert checks[(h1.spec, "source")] == "skipped"
    assert checks[(h1.spec, "workingcopy")] == "skipped"
    assert checks[(h1.spec, "lock")] == "failed"
    assert checks[(h0.spec, "path")] == "failed"
    assert checks[(UNREACHABLE, "connect")] == "failed"
    assert checks[(UNREACHABLE, "hg")] == "skipped"
    [hg] = [c for c in json.loads(r.out) if (c["host"], c["check"]) == (h1.spec, "hg")]
    assert "cannot run /nonexistent/hg" in hg["message"]
    assert "set staging.hg" in hg["hint"]


def test_check_changeset_missing_from_source_and_unknown_host_key(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    # A developer's clone with an unpushed commit; the target pulls from central.
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "staging", "not pushed",
                     lambda r: (r / "new").write_text("x"))
    hgenv.write_hgrc(work, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=path))

    r = hgenv.hg("envcheck", "staging", cwd=work)

    assert r.rc == 1
    assert f"FAILED  source        {node[:12]} is not in the host's default path" in r.out
    assert f"(push it there first (hg push -r {node[:12]}))" in r.out

    # The check never trusts a new host key, even with accept-new.
    known = tmp_path / "known_hosts"
    known.write_text("")
    hgenv.write_hgrc(work, f"[envdeploy]\nknownhosts = {known}\nhostkeys = accept-new\n")
    r = hgenv.hg("envcheck", "staging", cwd=work)
    assert r.rc == 1
    assert f"FAILED  connect       host key for [127.0.0.1]:{h0.port} is unknown" in r.out
    assert known.read_text() == ""
