"""Every message true, every -T json parseable (issue 17).

Real hg, real Django migrations on SQLite, real sshd where a host is remote.
"""
import json
import os

import pytest

from conftest import unavailable

from djangoproject import add_migration
from envtools import (
    MIGRATE, clone_target, commit_on, deployed_site, environment, head, journal,
    migrations, parent, ssh_settings, ssh_targets,
)

BASE = ["0001_initial", "0002_bar_description", "0003_bar_created"]


def _json(r):
    """stdout as the one JSON document it must be."""
    assert r.out.lstrip().startswith("["), r.text
    return json.loads(r.out)


# --- -T json: stdout carries the formatter's output only -----------------------


def test_json_stdout_is_pure_for_every_command(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE, reload="echo reloaded",
        check="echo checked"))

    deploy = hgenv.hg("envdeploy", "staging", "-T", "json", "-v", cwd=central_repo)
    assert deploy.rc == 0, deploy.text
    [item] = _json(deploy)
    assert item["outcome"] == "ok" and item["node"] == head(hgenv, central_repo, "staging")
    # The progress and host lines are still shown, on stderr.
    assert "deploying" in deploy.err and "local: migrate ok" in deploy.err
    assert "local: | checked" in deploy.err

    again = hgenv.hg("envdeploy", "staging", "-T", "json", cwd=central_repo)
    assert _json(again)[0]["outcome"] == "unchanged"
    assert "already at" in again.err

    dry = hgenv.hg("envdeploy", "staging", "-n", "-T", "json", cwd=central_repo)
    assert dry.rc == 0 and isinstance(_json(dry), list), dry.text

    status = hgenv.hg("envstatus", "-T", "json", cwd=central_repo)
    assert _json(status)[0]["host"] == "local"
    log = hgenv.hg("envlog", "staging", "-T", "json", cwd=central_repo)
    assert [e["outcome"] for e in _json(log)] == ["unchanged", "ok"]
    check = hgenv.hg("envcheck", "staging", "-T", "json", cwd=central_repo)
    assert check.rc == 0, check.text
    assert {c["status"] for c in _json(check)} == {"ok"}
    setup = hgenv.hg("envsetup", "staging", "-T", "json", cwd=central_repo)
    assert setup.rc == 0, setup.text
    [host] = _json(setup)
    assert host["status"] == "ok" and host["problems"] == []
    assert "already a clone" in host["notes"][0]
    assert "local: nothing to change" in setup.err

    rollback = hgenv.hg("envrollback", "staging", "-T", "json", cwd=central_repo)
    # Only one deploy: nothing to go back to, and still one JSON document.
    assert rollback.rc != 0
    [rb] = _json(rollback)
    assert rb["outcome"] == "failed" and rb["failed"] == "plan"
    assert "no earlier deployment" in rollback.err

    # Without -T, the host lines stay on stdout.
    plain = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert "local: already at" in plain.out


def test_json_envsetup_reports_problems_per_host(hgenv, central_repo, tmp_path):
    other = tmp_path / "other"
    hgenv.hg("init", other, check=True)
    (other / "x").write_text("x")
    hgenv.hg("commit", "-q", "-A", "-m", "x", cwd=other, check=True)
    hgenv.write_hgrc(central_repo, environment("staging", path=other))

    r = hgenv.hg("envsetup", "staging", "-T", "json", cwd=central_repo)

    assert r.rc != 0
    [host] = _json(r)
    assert host["status"] == "failed"
    [problem] = host["problems"]
    assert problem["check"] == "path" and "another project" in problem["message"]
    assert "abort: envsetup of staging" in r.err


def test_failed_deploy_explains_its_rollback_on_stdout(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate="false"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    lines = [l for l in r.out.splitlines() if l.startswith("local:")]
    # After the migration plan, two "update ok" lines: the deploy's, then
    # the rollback's, explained between.
    first = next(i for i, l in enumerate(lines) if "update ok" in l)
    assert "migrations to apply" in " ".join(lines[:first]), r.out
    assert "rolling back to (empty)" in lines[first + 1], r.out
    assert "update ok" in lines[first + 2]
    assert "FAILED at migrate" in lines[first + 3]


def test_rollback_prints_its_migration_line_once(hgenv, central_repo, tmp_path):
    site = deployed_site(hgenv, central_repo, tmp_path)
    name = []
    commit_on(hgenv, central_repo, "staging", "add 0004",
              lambda repo: name.append(add_migration(repo, 4)))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    dry = hgenv.hg("envrollback", "staging", "-n", cwd=central_repo)
    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert dry.rc == 0, dry.text
    assert dry.out.count(f"bar.{name[0]}") == 1, dry.out
    assert r.rc == 0, r.text
    assert r.out.count(f"bar.{name[0]}") == 1, r.out
    assert migrations(site) == BASE


# --- envsetup ------------------------------------------------------------------


def test_envsetup_of_a_branch_that_does_not_exist_fails(hgenv, central_repo, tmp_path):
    hgenv.write_hgrc(central_repo, environment("qa", path=tmp_path / "qa"))

    r = hgenv.hg("envsetup", "qa", cwd=central_repo)

    assert r.rc != 0
    assert "is set up" not in r.text
    assert "branch 'qa' of environment 'qa' does not exist here" in r.err
    assert "hg branch qa" in r.err  # the hint says how to create it
    # The clone was still made: the hosts are ready for when the branch is.
    assert os.path.isdir(tmp_path / "qa" / ".hg")


# --- envlog --------------------------------------------------------------------


@pytest.mark.parametrize("verbosity", ["", " -v 0"])
def test_envlog_shows_the_migrations_a_deploy_applied(hgenv, central_repo, tmp_path,
                                                      verbosity):
    # With -v 0 Django prints nothing: what was applied comes from the state
    # read before and after.
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE + verbosity))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    names = []

    def two(repo):
        names.append(add_migration(repo, 4))
        names.append(add_migration(repo, 5))
    commit_on(hgenv, central_repo, "staging", "add 0004 and 0005", two)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert migrations(target) == BASE + names

    r = hgenv.hg("envlog", "staging", "-T", "json", cwd=central_repo)

    newest, first = _json(r)
    assert newest["applied"] == [f"bar.{n}" for n in names]
    assert first["applied"] == [f"bar.{n}" for n in BASE]
    text = hgenv.hg("envlog", "staging", "-l", "1", cwd=central_repo, check=True)
    assert f"migrations applied: bar.{names[0]}, bar.{names[1]}" in text.out


# --- one hint per situation, the same from every command ----------------------


def test_missing_path_gets_the_same_hint_from_every_command(
        hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=os.path.join(remote_dir, "nothing-here")))
    hint = "(run 'hg envsetup staging': it clones the repository there)"

    deploy = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    check = hgenv.hg("envcheck", "staging", cwd=central_repo)
    status = hgenv.hg("envstatus", "staging", cwd=central_repo)

    assert deploy.rc != 0 and check.rc != 0
    for r in (deploy, check, status):
        assert hint in r.text, r.text
    assert "clone the repository there first" not in deploy.text


def test_wrong_user_with_an_identity_is_not_told_to_set_the_identity(
        hgenv, central_repo, sshd_hosts, remote_dir):
    h0 = sshd_hosts.hosts[0]
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"nobody@127.0.0.1:{h0.port}", path=remote_dir))

    for command in ("envdeploy", "envcheck"):
        r = hgenv.hg(command, "staging", cwd=central_repo)
        assert r.rc != 0
        assert "authentication failed for nobody@" in r.text, r.text
        assert "set the identity key" not in r.text
        assert (f"the host refused the key {sshd_hosts.client_key} for user nobody"
                in r.text)
        assert "~nobody/.ssh/authorized_keys" in r.text


def test_refused_connection_says_so_with_a_hint(hgenv, central_repo, sshd_hosts,
                                                 tmp_path):
    import socket
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=f"root@127.0.0.1:{port}", path="/srv/x"))

    for command in ("envdeploy", "envcheck", "envstatus"):
        r = hgenv.hg(command, "staging", cwd=central_repo)
        assert f"cannot connect to [127.0.0.1]:{port}: connection refused" in r.text, r.text
        assert "Errno" not in r.text and "Unable to connect" not in r.text
        assert f"no SSH server answers on 127.0.0.1 port {port}" in r.text


@pytest.mark.parametrize("migrate,shown", [
    ("no-such-manage-command migrate", "not found"),
    ("/usr/bin/python3 manage.py migrate --noinput", "No module named"),
])
def test_a_step_not_on_the_short_path_gets_the_path_hint(
        hgenv, central_repo, sshd_hosts, remote_dir, migrate, shown):
    import shutil
    if "python3" in migrate and not shutil.which("/usr/bin/python3"):
        unavailable("no system python3 without Django here")
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=h0.spec, path=path, migrate=migrate))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    # The state read (showmigrations) runs first with the same Python.
    assert "FAILED at migrate" in r.err or "FAILED at state" in r.err
    assert shown in r.err, r.text
    assert ("(SSH sessions have a short PATH and read no login profile: set "
            "staging.migrate with an absolute path, or set staging.env.PATH") in r.err


# --- observability -------------------------------------------------------------


def test_debug_shows_every_script_sent_with_secrets_masked(hgenv, central_repo,
                                                           tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, env_TOKEN="s3cr3t-value", secret="TOKEN",
        reload='echo "reloading with $TOKEN"', source="https://deployer:pw0rd@example.com/repo"))

    r = hgenv.hg("--debug", "envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "local: running cd -- " in r.out
    assert "export TOKEN=***" in r.out
    assert "local: running sh -c 'echo \"reloading with $TOKEN\"'" in r.out
    [update] = [l for l in r.out.splitlines() if "bin/hg update " in l]
    assert update.startswith("local: running ") and " -C -r " in update
    assert "s3cr3t-value" not in r.text and "pw0rd" not in r.text
    plain = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert "running" not in plain.text


def test_deploy_outcomes_reach_the_blackbox(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, "[extensions]\nblackbox =\n" + environment(
        "staging", path=target) + environment("broken", path=target,
                                              branch="staging", check="false"))

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    failed = hgenv.hg("envdeploy", "broken", cwd=central_repo)

    assert failed.rc != 0
    with open(os.path.join(central_repo, ".hg", "blackbox.log")) as fp:
        log = fp.read()
    node = head(hgenv, central_repo, "staging")
    assert f"deploy staging: local: deployed {node[:12]}" in log
    assert "deploy broken: local: already at" not in log
    assert "deploy broken: local: FAILED at" in log, log


def test_traceback_shows_the_stack_of_an_unexpected_error(hgenv, central_repo,
                                                         tmp_path):
    # A bug in a host's reader (planted by a tiny extension): the command
    # turns it into one line for that host; --traceback shows where it was.
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    broken = os.path.join(tmp_path, "breakit.py")
    with open(broken, "w") as fp:
        fp.write(
            "from hgext_envdeploy import envlog\n"
            "def boom(session, row):\n"
            "    raise KeyError('boom in the reader')\n"
            "def extsetup(ui):\n"
            "    envlog.readjournal = boom\n")

    one = hgenv.hg("--config", f"extensions.breakit={broken}", "envlog", "staging",
                   cwd=central_repo)
    full = hgenv.hg("--config", f"extensions.breakit={broken}", "envlog", "staging",
                    "--traceback", cwd=central_repo)

    assert "unexpected error: KeyError" in one.err and "Traceback" not in one.err
    assert "Traceback (most recent call last)" in full.err, full.err
    assert "boom in the reader" in full.err


# --- help and README ---------------------------------------------------------


def test_help_and_readme_agree_on_every_synopsis(hgenv, tmp_path):
    from conftest import PROJECT_ROOT
    with open(os.path.join(PROJECT_ROOT, "README.md")) as fp:
        readme = fp.read()
    for command in ("envdeploy", "envrollback", "envmerge", "envstatus", "envlog",
                    "envsetup", "envcheck"):
        r = hgenv.hg("help", command, cwd=tmp_path, check=True)
        # hg wraps a long synopsis: up to the first blank line.
        synopsis = " ".join(r.out.split("\n\n", 1)[0].split())
        assert synopsis.startswith(f"hg {command} ")
        assert f"`{synopsis}`" in readme, synopsis
        # Every option the synopsis names is one the command takes.
        for option in ("--check", "--break-lock", "-T TEMPLATE", "--no-push"):
            if option in synopsis:
                assert option.split()[0] in r.out.split("options", 1)[1]


# --- ssh_config as OpenSSH reads it ---------------------------------------------


def test_ssh_config_include_match_and_alias_as_openssh_reads_them(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    import shutil
    if not shutil.which("ssh"):
        unavailable("no OpenSSH client here: paramiko's parser is used")
    h0, h1, h2 = sshd_hosts.hosts
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1, h2], path)
    included = tmp_path / "included.conf"
    # An alias paramiko's parser never sees: it only is in the Include.
    included.write_text(f"Host from-include\n    HostName 127.0.0.1\n"
                        f"    Port {h0.port}\n    User root\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"""\
Include {included}

Match originalhost via-match
    HostName 127.0.0.1
    Port {h1.port}
    User root

Host plain-alias
    HostName 127.0.0.1
    Port {h2.port}
    User root

Host *
    IdentityFile {sshd_hosts.client_key}
    IdentitiesOnly yes
""")
    settings = ssh_settings(sshd_hosts).replace(
        "sshconfig = /dev/null", f"sshconfig = {config}")
    # No identity key in hgrc: the config's IdentityFile is the key.
    settings = "\n".join(l for l in settings.splitlines() if not l.startswith("identity"))
    hgenv.write_hgrc(central_repo, settings + "\n" + environment(
        "staging", hosts="from-include via-match plain-alias", path=path))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    node = head(hgenv, central_repo, "staging")
    assert [parent(hgenv, t) for t in targets] == [node] * 3
    check = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert check.rc == 0, check.text


def test_ssh_config_that_ssh_rejects_is_reported(hgenv, central_repo, sshd_hosts,
                                                 tmp_path):
    import shutil
    if not shutil.which("ssh"):
        unavailable("no OpenSSH client here")
    config = tmp_path / "ssh_config"
    config.write_text("Host broken\n    NoSuchKeyword yes\n")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts).replace(
        "sshconfig = /dev/null", f"sshconfig = {config}") + environment(
        "staging", hosts="broken", path="/srv/x"))

    r = hgenv.hg("envcheck", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "ssh cannot read its configuration for broken" in r.text, r.text
    assert "'ssh -G broken' shows the same" in r.text


# --- the demo ------------------------------------------------------------------


def test_demo_echoes_commands_with_their_quoting_intact(tmp_path):
    import shlex
    import subprocess
    from conftest import PROJECT_ROOT
    with open(os.path.join(PROJECT_ROOT, "demo", "run.sh")) as fp:
        functions = "".join(l for l in fp if not l.startswith(("set ", "#!")))
    functions = functions.split("\nrun() {", 1)[0] + "\nrun() {" + \
        functions.split("\nrun() {", 1)[1].split("\n", 1)[0] + "\n"
    args = ["hg", "envdeploy", "staging", "--config",
            "environments.staging.check=test ! -f x || { echo 'site is down'; exit 1; }",
            "", "it's"]
    r = subprocess.run(["bash", "-c", functions + 'run true "$@"', "bash", *args],
                       capture_output=True, text=True, check=True)
    assert r.stdout.startswith("$ true ")
    assert shlex.split(r.stdout[2:]) == ["true", *args]


# --- one malformed environment fails only what concerns it ---------------------


@pytest.mark.parametrize("broken, message", [
    ("café.path = /srv/cafe", "invalid environment name 'café'"),
    ("live.path = /srv/live\nlive.hosts = web1,, web2", "empty host entry"),
    ("live.path = /srv/live\nlive.relaod = touch wsgi.py",
     "unknown key 'relaod' for environment 'live'"),
    ("live.hosts = web1", "environment 'live' has no path"),
])
def test_one_malformed_environment_fails_only_its_own_commands(
        hgenv, central_repo, tmp_path, broken, message):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target) + broken)
    hgrc = os.path.join(str(central_repo), ".hg", "hgrc")
    bad = broken.split("\n")[-1]
    line = 1 + open(hgrc).read().split("\n").index(bad)
    if "no path" in message:
        line = 1 + open(hgrc).read().split("\n").index("live.hosts = web1")
    where = f"{hgrc}:{line}: "

    # The other environment's commands work.
    deploy = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert deploy.rc == 0, deploy.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")
    status = hgenv.hg("envstatus", "staging", cwd=central_repo)
    assert status.rc == 0 and "up to date" in status.out, status.text
    assert "warning" not in status.err
    assert hgenv.hg("envcheck", "staging", cwd=central_repo).rc == 0
    assert hgenv.hg("envlog", "staging", cwd=central_repo).rc == 0

    # The broken one's commands fail, naming file and line.
    name = "café" if "café" in message else "live"
    own = hgenv.hg("envstatus", name, cwd=central_repo)
    assert own.rc == 255 and f"config error: {where}{message}" in own.err, own.text
    own = hgenv.hg("envdeploy", name, cwd=central_repo)
    assert own.rc == 255 and f"{where}{message}" in own.err, own.text

    # Listing every environment: a warning naming file and line, then the
    # rest, and an exit code that says one was left out.
    every = hgenv.hg("envstatus", cwd=central_repo)
    assert every.rc == 1, every.text
    assert f"warning: skipping environment '{name}': {where}{message}" in every.err
    assert "staging: branch staging" in every.out and "up to date" in every.out
    js = hgenv.hg("envstatus", "-T", "json", cwd=central_repo)
    assert js.rc == 1 and [r["env"] for r in _json(js)] == ["staging"]
    assert "warning: skipping" in js.err


# --- a push deploy records who pushed ------------------------------------------

PUSH_HOOK = (
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)


def _pushed(hgenv, central, site):
    """The push deploy's journal record, and envlog's text of it."""
    [record] = journal(site)
    log = hgenv.hg("envlog", "staging", f"--config=environments.staging.path={site}",
                   cwd=central, check=True)
    return record, log.out


def test_push_over_ssh_records_the_login_or_the_name_the_push_carries(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    import shutil
    h0 = sshd_hosts.hosts[0]
    remote = os.path.join(remote_dir, "central")
    central = sshd_hosts.local_path(h0, remote)
    shutil.copytree(central_repo, central, symlinks=True)
    site_remote = os.path.join(remote_dir, "site")
    site = clone_target(hgenv, central, sshd_hosts.local_path(h0, site_remote))
    hgenv.write_hgrc(central, PUSH_HOOK + "[push]\npushvars.server = true\n"
                     + environment("staging", path=site_remote, autodeploy="true"))
    with open(hgenv.hgrc, "a") as fp:
        fp.write(
            "[ui]\nusername = Alice Liddell <alice@example.com>\n"
            "ssh = ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} "
            "-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null\n".format(
                sshd_hosts.client_key, sshd_hosts.known_hosts))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central, work, check=True)
    url = f"ssh://root@127.0.0.1:{h0.port}/{remote}"

    # A plain push: the ssh login that received it.
    commit_on(hgenv, work, "staging", "one", lambda r: (r / "one").write_text("1"))
    push = hgenv.hg("push", "-r", "staging", url, cwd=work)
    assert push.rc == 0, push.text
    record, log = _pushed(hgenv, central, site)
    assert record["user"] == "root" and record["trigger"]["pusher"] == "root"
    assert "by root," in log and "started by a push from root (remote:ssh:" in log

    # The pusher's name, where the push carries it.
    commit_on(hgenv, work, "staging", "two", lambda r: (r / "two").write_text("2"))
    push = hgenv.hg("push", "-r", "staging", "--pushvars",
                    "USER=Alice Liddell <alice@example.com>", url, cwd=work)
    assert push.rc == 0, push.text
    newest = journal(site)[-1]
    assert newest["user"] == "Alice Liddell <alice@example.com>"
    assert newest["trigger"]["pusher"] == "root"  # the account, still recorded
    here = f"--config=environments.staging.path={site}"
    log = hgenv.hg("envlog", "staging", "-l", "1", here, cwd=central, check=True).out
    assert "by Alice Liddell <alice@example.com>," in log
    assert "started by a push from root, as Alice Liddell" in log
    js = json.loads(hgenv.hg("envlog", "staging", "-T", "json", here, cwd=central,
                             check=True).out)
    assert [e["user"] for e in js] == ["Alice Liddell <alice@example.com>", "root"]
    assert [e["pusher"] for e in js] == ["root", "root"]


def test_anonymous_http_push_records_the_account_that_served_it(
        hgenv, central_repo, tmp_path):
    import getpass
    import socket
    import subprocess
    import time
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, PUSH_HOOK
                     + "[web]\nallow_push = *\npush_ssl = false\n"
                     + environment("staging", path=site, autodeploy="true"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    pidfile = tmp_path / "serve.pid"
    hgenv.hg("serve", "-d", "--pid-file", pidfile, "-a", "127.0.0.1", "-p", str(port),
             "-E", tmp_path / "serve.err", cwd=central_repo, check=True)
    try:
        commit_on(hgenv, work, "staging", "one", lambda r: (r / "one").write_text("1"))
        push = hgenv.hg("push", "-r", "staging", f"http://127.0.0.1:{port}/", cwd=work)
        assert push.rc == 0, push.text
    finally:
        os.kill(int(pidfile.read_text()), 15)
    me = getpass.getuser()
    record, log = _pushed(hgenv, central_repo, site)
    assert record["user"] == me and record["trigger"]["pusher"] == me
    assert record["trigger"]["url"].startswith("remote:http:127.0.0.1")
    assert f"by {me}," in log and f"started by a push from {me} (" in log
    assert "?" not in log.split("\n")[0]


# --- envcheck reads the migration state, as the deploy will --------------------


@pytest.mark.parametrize("keys,shown", [
    ({"migrate": "/usr/bin/python3 manage.py migrate --noinput"}, "No module named"),
    ({"migrate": "python manage.py migrate", "migrate_state": "no-such-command list"},
     "not found"),
])
def test_envcheck_fails_a_migrate_that_cannot_start_with_the_path_hint(
        hgenv, central_repo, sshd_hosts, remote_dir, keys, shown):
    import shutil
    if "python3" in str(keys) and not shutil.which("/usr/bin/python3"):
        unavailable("no system python3 without Django here")
    h0 = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h0], path)
    settings = ssh_settings(sshd_hosts) + environment("staging", hosts=h0.spec, path=path)
    hgenv.write_hgrc(central_repo, settings)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)  # no migrate yet
    before = journal(target)
    hgenv.write_hgrc(central_repo, "\n".join(
        f"staging.{k.replace('_', '.')} = {v}" for k, v in keys.items()))

    check = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert check.rc == 1, check.text
    [row] = [l for l in check.out.splitlines() if "migrations" in l]
    assert row.split()[:2] == ["FAILED", "migrations"] and shown in row, check.out
    assert ("(SSH sessions have a short PATH and read no login profile: set "
            "staging.migrate with an absolute path, or set staging.env.PATH") in check.out
    assert "1 check failed: " in check.err and "(migrations)" in check.err
    js = hgenv.hg("envcheck", "staging", "-T", "json", cwd=central_repo)
    [item] = [c for c in _json(js) if c["check"] == "migrations"]
    assert item["status"] == "failed" and "short PATH" in item["hint"]
    assert journal(target) == before  # read-only: nothing ran, nothing recorded


def test_envcheck_reads_the_migration_state_of_a_working_project(
        hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    fresh = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert fresh.rc == 0, fresh.text
    assert "skipped migrations    nothing deployed yet" in " ".join(fresh.out.split()) \
        or "nothing deployed yet" in fresh.out
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    check = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert check.rc == 0, check.text
    assert "ok      migrations    readable, 0 migrations not applied" in check.out
    assert migrations(target) == BASE
