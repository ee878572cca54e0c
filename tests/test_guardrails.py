"""Guardrails for live, with real hg, real terminals (ptys) and real sshd hosts:
ENV.confirm, the freeze (envlock/envunlock), envexec, and envmerge without a terminal."""
import glob
import json
import os
import pty
import select
import shutil
import subprocess
import time

import pytest

from envtools import (
    MIGRATE, clone_target, commit_on, environment, head, journal, journal_lines,
    parent, ssh_settings, ssh_targets,
)
from test_envmerge import _copy, _templates, conflict, snapshot  # noqa: F401

HOOK = (
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)
NULL = "0" * 40


def on_terminal(hgenv, args, cwd, answer=None, after="", timeout=120):
    """Run hg with stdin, stdout and stderr on a real pty (a terminal, as a user's);
    type `answer` (bytes) once the output shows `after`. Returns (exit status,
    everything the terminal showed)."""
    master, slave = pty.openpty()
    command = [hgenv.hg_executable, "--color=never", *map(os.fspath, args)]
    proc = subprocess.Popen(command, cwd=cwd, env=hgenv.env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the process and its terminal are gone
                    break
                if not data:
                    break
                seen += data
            if answer is not None and after.encode() in seen:
                os.write(master, answer)
                answer = None
        else:
            proc.kill()
            raise AssertionError(f"hg {args} timed out on its terminal:\n{seen!r}")
        return proc.wait(timeout=30), seen.decode("utf-8", "replace")
    finally:
        os.close(master)


def freeze_file(target):
    return os.path.join(target, ".hg", "envdeploy", "freeze")


# --- ENV.confirm ---------------------------------------------------------------


@pytest.fixture
def confirmed_site(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("live", path=target, confirm="true",
                                               reload="echo reloaded >> reloads"))
    return target


def test_confirm_without_a_terminal_aborts_unless_y(hgenv, central_repo, confirmed_site):
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc == 255, r.text
    assert "deploy of live needs confirmation, and there is no terminal" in r.err
    assert "add -y to confirm" in r.err
    assert parent(hgenv, confirmed_site) == NULL and journal(confirmed_site) == []

    r = hgenv.hg("envdeploy", "live", "-y", cwd=central_repo)

    assert r.rc == 0, r.text
    live = head(hgenv, central_repo, "live")
    assert f"changeset: {live[:12]}" in r.out and "hosts:     local" in r.out
    assert "confirmed by -y" in r.out
    assert parent(hgenv, confirmed_site) == live
    # The dry run changes nothing, so it asks nothing.
    assert hgenv.hg("envdeploy", "live", "-n", cwd=central_repo).rc == 0


def test_confirm_on_a_terminal_takes_only_the_name(hgenv, central_repo, confirmed_site):
    live = head(hgenv, central_repo, "live")

    rc, shown = on_terminal(hgenv, ["envdeploy", "live"], central_repo,
                            answer=b"yes\r", after="anything else stops:")

    assert rc != 0, shown
    assert f"changeset: {live[:12]} \"create live\"" in shown
    assert "branch:    live" in shown and "hosts:     local" in shown
    assert "deploy of live not confirmed: nothing was changed" in shown
    assert parent(hgenv, confirmed_site) == NULL and journal(confirmed_site) == []

    rc, shown = on_terminal(hgenv, ["envdeploy", "live"], central_repo,
                            answer=b"live\r", after="anything else stops:")

    assert rc == 0, shown
    assert f"local: deployed {live[:12]}" in shown
    assert parent(hgenv, confirmed_site) == live
    assert [r["outcome"] for r in journal(confirmed_site)] == ["ok"]


def test_confirm_rollback_and_envmerge_deploy_without_a_terminal(
        hgenv, conflict, tmp_path):
    work = conflict.work
    site = tmp_path / "live-site"
    clone_target(hgenv, conflict.central, site)
    hgenv.write_hgrc(work, "[environments]\nlive.confirm = true\n")
    central_before = snapshot(hgenv, conflict.central)["nodes"]

    # Asked before the merge: nothing merged, committed or pushed.
    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy", "-t", ":other",
                 cwd=work)
    assert r.rc == 255, r.text
    assert "deploy of live needs confirmation" in r.err
    assert "merging" not in r.out
    assert snapshot(hgenv, conflict.central)["nodes"] == central_before

    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy", "-t", ":other",
                 "-y", cwd=work)
    assert r.rc == 0, r.text
    assert "the merge of feature" in r.out
    assert r.out.count("confirmed by -y") == 1  # once, not again for the deploy
    merge = head(hgenv, conflict.central, "live")
    assert parent(hgenv, site) == merge

    r = hgenv.hg("envrollback", "live", cwd=work)
    assert r.rc == 255, r.text
    assert "rollback of live needs confirmation" in r.err
    assert parent(hgenv, site) == merge


def test_push_deploys_are_not_asked(hgenv, central_repo, tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, HOOK + environment(
        "live", path=site, confirm="true", autodeploy="true"))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "live", "fix", lambda r: (r / "fix").write_text("x"))

    r = hgenv.hg("push", "-r", node, central_repo, cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: live: deployed {node[:12]}" in r.text
    assert "confirmation" not in r.text
    assert parent(hgenv, site) == node


# --- envmerge without a terminal -------------------------------------------------


FAKE_VIMDIFF = """#!/bin/sh
# Stands in for vimdiff: says it started, paints the screen, fails to resolve.
echo "$@" >> {marker}
printf '\\033[?1049h\\033[H\\033[2J"%s" vimdiff screen\\n' "$1"
exit 1
"""


@pytest.fixture
def vimdiff(hgenv, tmp_path):
    """A vimdiff first on PATH, the configured merge tool; its marker file says
    whether it was started."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "vimdiff-started"
    script = bindir / "vimdiff"
    script.write_text(FAKE_VIMDIFF.format(marker=marker))
    script.chmod(0o755)
    hgenv.env["PATH"] = f"{bindir}{os.pathsep}{hgenv.env['PATH']}"
    with open(hgenv.hgrc, "a") as fp:
        fp.write("[ui]\nmerge = vimdiff\n")
    return marker


def test_envmerge_without_a_terminal_starts_no_tool(hgenv, conflict, vimdiff):
    work = conflict.work
    before = snapshot(hgenv, work)
    central = snapshot(hgenv, conflict.central)["nodes"]

    r = hgenv.hg("envmerge", "feature", "--into", "live", "-n", cwd=work)
    assert r.rc == 0, r.text
    assert "would conflict with tool :merge" in r.out
    assert "(no terminal: the real run starts no merge tool either" in r.out

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=work)

    assert r.rc == 255, r.text
    assert not vimdiff.exists()
    assert "\x1b" not in r.text and "vimdiff" not in r.text
    assert "conflicts merging feature into live:\n  mysite/urls.py\n" in r.err
    assert ("merge of feature into live abandoned: unresolved conflicts (no terminal: "
            "no merge tool was started)") in r.err
    assert "hg merge feature" in r.err and "-t TOOL" in r.err
    assert snapshot(hgenv, work) == before
    assert snapshot(hgenv, conflict.central)["nodes"] == central

    # -y is "no prompts": the same on a terminal.
    rc, shown = on_terminal(hgenv, ["envmerge", "feature", "--into", "live", "-y"],
                            work)
    assert rc == 255, shown
    assert not vimdiff.exists() and "no merge tool was started" in shown


def test_envmerge_on_a_terminal_uses_the_configured_tool(hgenv, conflict, vimdiff):
    # The other side of the test above: on a terminal the configured tool runs.
    work = conflict.work
    before = snapshot(hgenv, work)

    rc, shown = on_terminal(hgenv, ["envmerge", "feature", "--into", "live"], work)

    assert rc == 255, shown
    assert vimdiff.exists()
    assert "merge of feature into live abandoned: unresolved conflicts" in shown
    assert "no terminal" not in shown
    assert snapshot(hgenv, work) == before


# --- the freeze -----------------------------------------------------------------


@pytest.fixture
def frozen_env(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    """live on two sshd hosts, deployable on push from tmp_path/work (the central
    repository is local, its hook deploys over ssh)."""
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, HOOK + ssh_settings(sshd_hosts) + environment(
        "live", hosts=f"{h0.spec}, {h1.spec}", path=path, autodeploy="true",
        reload="echo reloaded >> reloads"))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    return targets, (h0, h1), work


def test_freeze_refuses_every_deploy_until_envunlock(hgenv, central_repo, frozen_env):
    targets, (h0, h1), work = frozen_env
    central = central_repo

    r = hgenv.hg("envlock", "live", "-m", "incident 42: payments down",
                 cwd=central)

    assert r.rc == 0, r.text
    assert f"{h0.spec}: frozen" in r.out and f"{h1.spec}: frozen" in r.out
    for target in targets:
        info = open(freeze_file(target)).read()
        assert "reason=incident 42: payments down\n" in info
        assert "user=Test User <test@example.com>\n" in info and "since=" in info

    # A manual deploy: refused before any host changes, with who, when, why.
    r = hgenv.hg("envdeploy", "live", cwd=central)
    assert r.rc == 255, r.text
    assert "abort: deploy of live refused: frozen by Test User" in r.err
    assert "incident 42: payments down" in r.err
    assert "hg envunlock live" in r.err
    # --break-lock does not lift it.
    r = hgenv.hg("envdeploy", "live", "--break-lock", "-y", cwd=central)
    assert r.rc == 255 and "refused: frozen" in r.err, r.text
    for target in targets:
        assert parent(hgenv, target) == NULL
        assert journal(target) == []
        assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))
        assert not os.path.exists(os.path.join(target, "reloads"))

    # A push deploy: the push lands, the deploy is refused, and says why.
    node = commit_on(hgenv, work, "live", "hotfix", lambda r: (r / "hf").write_text("x"))
    r = hgenv.hg("push", "-r", node, central, cwd=work)
    assert r.rc == 0, r.text
    assert "autodeploy: live: FAILED, not deployed: deploy of live refused: " \
           "frozen by Test User" in r.text
    assert all(parent(hgenv, t) == NULL for t in targets)

    # A rollback too.
    r = hgenv.hg("envrollback", "live", "-r", node, cwd=central)
    assert r.rc == 255 and "rollback of live refused: frozen" in r.err, r.text

    # envstatus and envcheck show it.
    r = hgenv.hg("envstatus", "live", "--no-migrations", cwd=central)
    assert r.rc == 0, r.text
    assert r.out.count("FROZEN by Test User") == 2 and "payments down" in r.out
    rows = json.loads(hgenv.hg("envstatus", "live", "--no-migrations", "-T", "json",
                               cwd=central, check=True).out)
    assert all("incident 42" in row["frozen"] for row in rows)
    r = hgenv.hg("envcheck", "live", cwd=central)
    assert r.rc == 1
    assert r.out.count("FAILED  freeze        FROZEN by Test User") == 2, r.out

    r = hgenv.hg("envunlock", "live", cwd=central)
    assert r.rc == 0, r.text
    assert f"{h0.spec}: unfrozen (was frozen by Test User" in r.out
    assert not any(os.path.exists(freeze_file(t)) for t in targets)

    r = hgenv.hg("envdeploy", "live", cwd=central)
    assert r.rc == 0, r.text
    assert all(parent(hgenv, t) == node for t in targets)
    r = hgenv.hg("envcheck", "live", cwd=central)
    assert "ok      freeze        not frozen" in r.out, r.out


def test_freeze_on_one_host_refuses_the_whole_deploy(hgenv, central_repo, frozen_env):
    # A host added after envlock, or frozen alone: still no host changes, even with
    # maxfail allowing one failed host.
    targets, (h0, h1), _work = frozen_env
    hgenv.write_hgrc(central_repo, "[environments]\nlive.maxfail = 1\n")
    os.makedirs(os.path.dirname(freeze_file(targets[1])), exist_ok=True)
    with open(freeze_file(targets[1]), "w") as fp:
        fp.write("user=ops\nreason=db migration by hand\n")

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc == 255, r.text
    assert f"db migration by hand (on {h1.spec})" in r.err
    assert all(parent(hgenv, t) == NULL for t in targets)
    assert all(journal(t) == [] for t in targets)

    r = hgenv.hg("envlock", "live", "-m", "second opinion", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"{h1.spec}: already frozen by ops" in r.out
    assert "reason=db migration by hand" in open(freeze_file(targets[1])).read()
    assert "reason=second opinion" in open(freeze_file(targets[0])).read()
    r = hgenv.hg("envlock", "live", cwd=central_repo)
    assert r.rc == 255 and "-m REASON" in r.err


# --- envexec ----------------------------------------------------------------------


SECRET = "s3cr3t-Pa55"


@pytest.fixture
def exec_env(hgenv, central_repo, sshd_hosts, remote_dir):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "live", hosts=h0.spec, hosts_worker=h1.spec, path=path, secret="DB_PASSWORD")
        + f"live.env.DB_PASSWORD = {SECRET}\nlive.env.MODE = prod\n")
    return targets, (h0, h1), path


def test_envexec_on_two_hosts_masks_secrets_and_journals(hgenv, central_repo, exec_env):
    targets, (h0, h1), path = exec_env

    r = hgenv.hg("envexec", "live", "--", "sh", "-c",
                 'echo "pw=$DB_PASSWORD mode=$MODE in $(pwd)"; hostname', "x y",
                 cwd=central_repo)

    assert r.rc == 0, r.text
    assert SECRET not in r.text
    for host in (h0, h1):
        assert f"{host.spec}: | pw=*** mode=prod in {path}\n" in r.out
    for target in targets:
        [record] = [l for l in journal_lines(target) if l["kind"] == "exec"]
        assert record["status"] == 0 and record["outcome"] == "ok"
        assert record["user"] == "Test User <test@example.com>"
        assert record["command"].startswith("sh -c 'echo")
        assert "x y" in record["command"]
        assert "to" not in record and "from" not in record
        text = open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl")).read()
        assert SECRET not in text
    assert journal_lines(targets[0])[0]["id"] == journal_lines(targets[1])[0]["id"]

    # Arguments quoted one by one: a; is only a character.
    r = hgenv.hg("envexec", "live", "--host", h0.spec, "--", "printf", "[%s]\\n",
                 "a b", "$MODE;", cwd=central_repo)
    assert r.rc == 0, r.text
    assert r.out == f"{h0.spec}: | [a b]\n{h0.spec}: | [$MODE;]\n"
    # One string: the user's command line, as written (pipes, variables).
    r = hgenv.hg("envexec", "live", "--role", "worker", "--",
                 "echo $MODE $DB_PASSWORD | sed s/prod/PROD/", cwd=central_repo)
    assert r.rc == 0, r.text
    assert r.out == f"{h1.spec}: | PROD ***\n"


def test_envexec_exit_status(hgenv, central_repo, exec_env):
    targets, (h0, h1), path = exec_env

    r = hgenv.hg("envexec", "live", "--", 'test "$(hostname)" = never; echo $?; '
                 '[ -f ../fail-here ] && exit 3; exit 0', cwd=central_repo)
    assert r.rc == 0, r.text
    open(os.path.join(os.path.dirname(targets[1]), "fail-here"), "w").close()

    r = hgenv.hg("envexec", "live", "--", "[ ! -f ../fail-here ] || exit 3",
                 cwd=central_repo)

    assert r.rc == 1, r.text
    assert f"{h1.spec}: exited with status 3" in r.err
    assert f"envexec: failed on 1 of 2 hosts: {h1.spec} (status 3)" in r.err
    last = [l for l in journal_lines(targets[1]) if l["kind"] == "exec"][-1]
    assert last["status"] == 3 and last["outcome"] == "failed"
    # One host: its own exit status, as ssh gives it.
    r = hgenv.hg("envexec", "live", "--host", h1.spec, "--", "exit 7",
                 cwd=central_repo)
    assert r.rc == 7, r.text
    # hg envlog: what ran and how it ended, not a deployment from nowhere.
    r = hgenv.hg("envlog", "live", "-l", "2", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "(empty)" not in r.out, r.out
    assert "  ran: exit 7\n" in r.out, r.out
    assert f"  {h1.spec}: failed (exit 7" in r.out, r.out
    assert f"  {h0.spec}: ok (exit 0" in r.out, r.out
    assert f"  {h1.spec}: failed (exit 3" in r.out, r.out
    [last, previous] = json.loads(hgenv.hg("envlog", "live", "-l", "2", "-T", "json",
                                           cwd=central_repo).out)
    assert last["kind"] == "exec" and last["command"] == "exit 7", last
    assert [(h["host"], h["status"]) for h in previous["hosts"]] == [
        (h0.spec, 0), (h1.spec, 3)], previous
    # An exec is no deployment: the next deploy still sees none there.
    r = hgenv.hg("envrollback", "live", "-n", cwd=central_repo)
    assert "no earlier deployment" in r.text

    r = hgenv.hg("envexec", "live", "--host", "nowhere", "--", "true",
                 cwd=central_repo)
    assert r.rc == 255 and "host 'nowhere' is not in environment 'live'" in r.err
    r = hgenv.hg("envexec", "live", "-i", "--", "true", cwd=central_repo)
    assert r.rc == 255 and "-i runs on one host" in r.err
    r = hgenv.hg("envexec", "live", "-i", "--host", h0.spec, "--", "true",
                 cwd=central_repo)
    assert r.rc == 255 and "-i needs a terminal" in r.err


def test_envexec_interactive_gets_a_pty(hgenv, central_repo, exec_env):
    targets, (h0, _h1), path = exec_env

    rc, shown = on_terminal(
        hgenv, ["envexec", "live", "-i", "--host", h0.spec, "--",
                'test -t 0 && echo "on a tty in $(pwd)"; printf "name? "; read name; '
                'echo "hello $name, pw $DB_PASSWORD"; exit 4'],
        central_repo, answer=b"ada\r", after="name? ")

    assert rc == 4, shown
    assert f"on a tty in {path}" in shown
    assert "hello ada, pw ***" in shown and SECRET not in shown
    [record] = [l for l in journal_lines(targets[0]) if l["kind"] == "exec"]
    assert record["interactive"] is True and record["status"] == 4
    assert SECRET not in json.dumps(record)
    # The environment file it read (mktemp's, mode 600) is gone.
    for name in glob.glob("/tmp/tmp.*"):
        if os.path.isfile(name):
            with open(name, errors="replace") as fp:
                assert SECRET not in fp.read(), name


@pytest.mark.parametrize("name", ["freeze", "envexec", "hostread"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"hgext_envdeploy.{name}"))
    assert result.attempted > 0 and result.failed == 0
