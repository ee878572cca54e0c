"""Push to deploy: the changegroup hook in a central repository, over real SSH and
locally, and the client-side post-push hook."""
import getpass
import json
import os
import re
import shutil
from types import SimpleNamespace

import pytest

from envtools import clone_target, commit_on, environment, journal, parent, wait_for

HOOK = (
    # The central repository enables the extension itself: over SSH the remote hg
    # reads only its own hgrc files.
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)


def central_log(repo):
    """The central repository's autodeploy.log as (env, outcome, node, message)."""
    path = os.path.join(repo, ".hg", "envdeploy", "autodeploy.log")
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        return [tuple((line.rstrip("\n").split(" ", 4) + [""])[1:5]) for line in fp]


def write(path, text=""):
    with open(path, "w") as fp:
        fp.write(text)


def commit(hgenv, work, branch, name):
    """A commit on branch in the developer's clone; its full hash."""
    return commit_on(hgenv, work, branch, name, lambda repo: write(repo / name, name))


def has_node(hgenv, repo, node):
    return hgenv.hg("log", "-R", repo, "-r", node, "-T", "{node}").out == node


# --- over SSH: the central repository on a host, pushed to as ssh://...


@pytest.fixture
def ssh_central(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    """The central repository on host0 with a local environment `staging` beside it
    (the web application shares the server); the developer's clone in tmp_path/work."""
    h0 = sshd_hosts.hosts[0]
    remote = os.path.join(remote_dir, "central")
    central = sshd_hosts.local_path(h0, remote)
    shutil.copytree(central_repo, central, symlinks=True)
    site_remote = os.path.join(remote_dir, "site")
    site = clone_target(hgenv, central, sshd_hosts.local_path(h0, site_remote))
    with open(hgenv.hgrc, "a") as fp:
        fp.write(
            "[ui]\nssh = ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} "
            "-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null\n".format(
                sshd_hosts.client_key, sshd_hosts.known_hosts))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central, work, check=True)

    return SimpleNamespace(
        local=central, site=site, site_remote=site_remote, work=work,
        url=f"ssh://root@127.0.0.1:{h0.port}/{remote}",
        remote_to_local=lambda path: sshd_hosts.local_path(h0, path))


def test_push_over_ssh_deploys_while_the_push_waits(hgenv, ssh_central):
    c = ssh_central
    hgenv.write_hgrc(c.local, HOOK + environment(
        "staging", path=c.site_remote, reload="echo reloading the app",
        autodeploy="true"))
    node = commit(hgenv, c.work, "staging", "feature")

    r = hgenv.hg("push", "-r", "staging", c.url, cwd=c.work)

    assert r.rc == 0, r.text
    assert parent(hgenv, c.site) == node
    # Everything the deploy says reaches the pusher, then one verdict line.
    assert f"remote: deploying {node[:12]} (staging) to staging: local" in r.text
    assert "remote: local: reload ok" in r.text
    assert f"remote: local: deployed {node[:12]}" in r.text
    assert f"remote: autodeploy: staging: deployed {node[:12]}" in r.text
    [record] = journal(c.site)
    assert record["outcome"] == "ok" and record["to"] == node
    assert [s["name"] for s in record["steps"]] == ["pull", "update", "reload"]
    # Which push it was: over ssh, from this address, received by root.
    assert record["trigger"] == {"hook": "changegroup", "source": "serve",
                                 "url": "remote:ssh:127.0.0.1", "pusher": "root"}
    assert central_log(c.local) == [("staging", "deployed", node, "")]


def test_failed_deploy_keeps_the_push_and_says_so(hgenv, ssh_central):
    c = ssh_central
    hgenv.write_hgrc(c.local, HOOK + environment(
        "staging", path=c.site_remote, reload="echo 'wsgi: syntax error'; exit 4",
        autodeploy="true", onfailure="stop"))
    node = commit(hgenv, c.work, "staging", "broken")

    r = hgenv.hg("push", "-r", "staging", c.url, cwd=c.work)

    # Mercurial cannot fail a push from a changegroup hook: it exits 0 ...
    assert r.rc == 0, r.text
    assert has_node(hgenv, c.local, node)
    # ... so the pusher is told plainly, with the failing command's output.
    assert "remote: local:   wsgi: syntax error" in r.text
    assert ("remote: autodeploy: staging: FAILED, not deployed: deploy of staging "
            "failed on 1 of 1 hosts: local (reload)") in r.text
    assert "remote: autodeploy: staging: (the push itself succeeded" in r.text
    assert "remote: warning: changegroup.envdeploy hook failed" in r.text
    # And the server keeps the record: the journal and its own log.
    assert journal(c.site)[-1]["outcome"] == "failed"
    assert journal(c.site)[-1]["failed"] == "reload"
    [(env, outcome, logged, message)] = central_log(c.local)
    assert (env, outcome, logged) == ("staging", "failed", node)
    assert "local (reload)" in message


def test_background_push_returns_before_the_deploy_ends(hgenv, ssh_central):
    c = ssh_central
    # reload blocks while the file `hold` exists on the target.
    hgenv.write_hgrc(c.local, HOOK + environment(
        "staging", path=c.site_remote,
        reload="touch reloading; while [ -f hold ]; do sleep 0.1; done",
        autodeploy="background"))
    write(os.path.join(c.site, "hold"))
    node = commit(hgenv, c.work, "staging", "feature")

    r = hgenv.hg("push", "-r", "staging", c.url, cwd=c.work, timeout=60)

    assert r.rc == 0, r.text
    m = re.search(rf"remote: autodeploy: staging: deploying {node[:12]} in the "
                  r"background, log: (\S+)", r.text)
    assert m, r.text
    runlog = c.remote_to_local(m.group(1))
    assert runlog.startswith(os.path.join(c.local, ".hg", "envdeploy") + os.sep)
    # The push is back while the deploy is still in its reload step.
    wait_for(lambda: os.path.exists(os.path.join(c.site, "reloading")),
             what="the background deploy to reach reload")
    # Begun (written ahead), not ended: the deploy is still running.
    assert [r["outcome"] for r in journal(c.site)] in ([], ["unfinished"])
    os.remove(os.path.join(c.site, "hold"))
    wait_for(lambda: ("staging", "deployed", node, "") in central_log(c.local),
             what="the background deploy to end")
    assert parent(hgenv, c.site) == node
    assert journal(c.site)[-1]["outcome"] == "ok"
    # The detached deploy still knows which push started it.
    assert journal(c.site)[-1]["trigger"]["url"] == "remote:ssh:127.0.0.1"
    assert f"autodeploy: staging: deployed {node[:12]}" in open(runlog).read()


@pytest.mark.parametrize("autodeploy", ["true", "background"])
def test_the_hook_alone_enables_the_extension(hgenv, ssh_central, autodeploy):
    c = ssh_central
    # No [extensions] entry: over SSH nothing else enables it.
    hgenv.write_hgrc(c.local, HOOK.replace("[extensions]\nhgext_envdeploy =\n", "")
                     + environment("staging", path=c.site_remote,
                                   reload="echo reloading the app",
                                   autodeploy=autodeploy))
    node = commit(hgenv, c.work, "staging", "feature")

    r = hgenv.hg("push", "-r", "staging", c.url, cwd=c.work, timeout=60)

    assert r.rc == 0, r.text
    assert "enable the extension" not in r.text
    # The detached deploy of background mode has it enabled as well.
    wait_for(lambda: ("staging", "deployed", node, "") in central_log(c.local),
             what="the deploy to end")
    assert parent(hgenv, c.site) == node
    assert journal(c.site)[-1]["outcome"] == "ok"


# --- a local central repository


@pytest.fixture
def local_central(hgenv, central_repo, tmp_path):
    """central_repo with the hook; targets site (staging) and live-site (live);
    the developer's clone in tmp_path/work."""
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    live = clone_target(hgenv, central_repo, tmp_path / "live-site")
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    return central_repo, site, live, work


def test_push_to_a_branch_without_autodeploy_deploys_nothing(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment(
        "staging", path=site, autodeploy="true") + environment("live", path=live))
    commit(hgenv, work, "default", "on-default")
    commit(hgenv, work, "live", "on-live")

    r = hgenv.hg("push", central, cwd=work)

    assert r.rc == 0, r.text
    assert "autodeploy" not in r.text and "deploying" not in r.text
    assert journal(site) == [] and journal(live) == []
    assert central_log(central) == []

    # The same push to staging does deploy (so the hook was really there).
    node = commit(hgenv, work, "staging", "on-staging")
    r = hgenv.hg("push", central, cwd=work)
    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {node[:12]}" in r.text
    assert parent(hgenv, site) == node and journal(live) == []
    [record] = journal(site)
    assert record["outcome"] == "ok" and record["to"] == node
    assert central_log(central) == [("staging", "deployed", node, "")]


def test_push_with_a_closed_second_head_deploys_the_open_one(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment("staging", path=site,
                                                 autodeploy="true"))
    base = commit(hgenv, work, "staging", "first")
    hgenv.hg("update", "-q", base, cwd=work, check=True)
    write(work / "doomed", "x")
    hgenv.hg("commit", "-q", "-A", "-m", "doomed head", cwd=work, check=True)
    hgenv.hg("commit", "-q", "--close-branch", "-m", "close it", cwd=work, check=True)
    hgenv.hg("update", "-q", base, cwd=work, check=True)
    write(work / "kept", "x")
    hgenv.hg("commit", "-q", "-A", "-m", "kept head", cwd=work, check=True)
    kept = hgenv.hg("log", "-r", ".", "-T", "{node}", cwd=work).out

    r = hgenv.hg("push", "-f", central, cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {kept[:12]}" in r.text
    assert parent(hgenv, site) == kept


def test_push_making_two_open_heads_deploys_neither(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment("staging", path=site,
                                                 autodeploy="true"))
    base = commit(hgenv, work, "staging", "first")
    hgenv.hg("update", "-q", base, cwd=work, check=True)
    write(work / "a", "x")
    hgenv.hg("commit", "-q", "-A", "-m", "head a", cwd=work, check=True)
    hgenv.hg("update", "-q", base, cwd=work, check=True)
    write(work / "b", "x")
    hgenv.hg("commit", "-q", "-A", "-m", "head b", cwd=work, check=True)

    r = hgenv.hg("push", "-f", central, cwd=work)

    assert r.rc == 0, r.text
    assert "autodeploy: staging: branch staging has 2 heads, not deployed" in r.text
    assert journal(site) == []


def test_two_quick_pushes_end_at_the_second_head(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment(
        "staging", path=site,
        reload="touch reloading; while [ -f hold ]; do sleep 0.1; done",
        autodeploy="background"))
    write(os.path.join(site, "hold"))
    first = commit(hgenv, work, "staging", "first")
    hgenv.hg("push", central, cwd=work, check=True)
    # The first deploy is under way (and holds its turn) ...
    wait_for(lambda: os.path.exists(os.path.join(site, "reloading")),
             what="the first deploy to reach reload")
    # ... when two more pushes land, each starting its own deploy.
    second = commit(hgenv, work, "staging", "second")
    hgenv.hg("push", central, cwd=work, check=True)
    third = commit(hgenv, work, "staging", "third")
    r = hgenv.hg("push", central, cwd=work, check=True)
    assert f"deploying {third[:12]} in the background" in r.text
    os.remove(os.path.join(site, "hold"))

    wait_for(lambda: len([e for e in central_log(central)
                          if e[1] != "background"]) == 3,
             what="the three deploys to end")
    assert parent(hgenv, site) == third
    # In order, never back to an older head: the waiting deploy of `second` found
    # the branch already moved on to `third` and stepped aside.
    assert [rec["to"] for rec in journal(site)] == [first, third]
    ends = {node: (outcome, message)
            for env, outcome, node, message in central_log(central)
            if outcome != "background"}
    assert ends[first][0] == ends[third][0] == "deployed"
    assert ends[second] == (
        "skipped", f"branch staging has moved on to {third[:12]}, whose deploy follows")
    runlogs = os.path.join(central, ".hg", "envdeploy", "autodeploy")
    text = "".join(open(os.path.join(runlogs, f)).read() for f in os.listdir(runlogs))
    assert "waiting for lock on autodeploy of staging held by process" in text
    assert f"autodeploy: staging: skipped {second[:12]}" in text


def test_pull_and_unbundle_do_not_deploy_unless_asked(hgenv, local_central, tmp_path):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment("staging", path=site, autodeploy="true"))
    commit(hgenv, work, "staging", "pulled")

    r = hgenv.hg("pull", work, cwd=central)
    assert r.rc == 0, r.text
    bundle = tmp_path / "b.hg"
    node = commit(hgenv, work, "staging", "unbundled")
    hgenv.hg("bundle", "-r", node, "--base", "staging~1", bundle, cwd=work, check=True)
    r = hgenv.hg("unbundle", bundle, cwd=central)
    assert r.rc == 0, r.text

    assert has_node(hgenv, central, node)
    assert journal(site) == [] and central_log(central) == []

    # A source listed in autodeploy.sources deploys.
    pulled = commit(hgenv, work, "staging", "pulled-too")
    r = hgenv.hg("pull", work, "--config", "envdeploy.autodeploy.sources=pull",
                 cwd=central)
    assert r.rc == 0, r.text
    assert parent(hgenv, site) == pulled


def test_invalid_autodeploy_value_is_named_and_the_push_kept(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment(
        "staging", path=site, autodeploy="yes please"))
    node = commit(hgenv, work, "staging", "feature")

    r = hgenv.hg("push", central, cwd=work)

    assert r.rc == 0, r.text
    assert has_node(hgenv, central, node)
    assert ("autodeploy: staging: FAILED, not deployed: config error: "
            f"{central}/.hg/hgrc:") in r.err
    assert "invalid autodeploy value 'yes please' for environment 'staging'" in r.err
    assert "(use true, false or background)" in r.err
    assert journal(site) == []
    assert [e[:2] for e in central_log(central)] == [("staging", "failed")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the hgrc away")
def test_untrusted_central_hgrc_skips_the_hook_until_trusted(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment("staging", path=site, autodeploy="true"))
    os.chown(os.path.join(central, ".hg", "hgrc"), 65534, 65534)  # nobody
    node = commit(hgenv, work, "staging", "feature")

    r = hgenv.hg("push", central, cwd=work)

    assert r.rc == 0, r.text
    assert "not trusting file" in r.text
    assert "warning: untrusted hook changegroup.envdeploy not executed" in r.text
    assert journal(site) == []
    # The fix from the README: trust the owner of the central repository's hgrc.
    with open(hgenv.hgrc, "a") as fp:
        fp.write("[trusted]\nusers = nobody\n")
    node = commit(hgenv, work, "staging", "trusted")
    r = hgenv.hg("push", central, cwd=work)
    assert f"autodeploy: staging: deployed {node[:12]}" in r.text


# --- the client-side alternative: post-push in the developer's repository


def test_postpush_deploys_what_the_push_sent(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(work, (
        "[hooks]\npost-push.envdeploy = python:hgext_envdeploy.hooks.postpush\n"
    ) + environment("staging", path=site, autodeploy="true") + environment(
        "live", path=live))
    node = commit(hgenv, work, "staging", "feature")
    commit(hgenv, work, "live", "on-live")

    r = hgenv.hg("push", cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {node[:12]}" in r.out
    assert parent(hgenv, site) == node
    assert journal(site)[0]["trigger"] == {
        "hook": "post-push", "source": "push", "url": str(central),
        "pusher": "Test User <test@example.com>"}
    assert journal(live) == []  # live has no autodeploy

    # A later push that does not move staging leaves it alone.
    commit(hgenv, work, "default", "elsewhere")
    r = hgenv.hg("push", cwd=work)
    assert r.rc == 0, r.text
    assert "autodeploy" not in r.text
    assert len(journal(site)) == 1
    # Nothing to push: nothing deployed, and push's own exit status stands.
    r = hgenv.hg("push", cwd=work)
    assert r.rc == 1 and "autodeploy" not in r.text


def test_background_keeps_the_newest_fifty_run_logs(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment(
        "staging", path=site, autodeploy="background"))
    runlogs = os.path.join(central, ".hg", "envdeploy", "autodeploy")
    os.makedirs(runlogs)
    for i in range(60):
        old = os.path.join(runlogs, f"staging-old-{i:02d}.log")
        write(old)
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    node = commit(hgenv, work, "staging", "feature")

    r = hgenv.hg("push", central, cwd=work, check=True)

    m = re.search(r"in the background, log: (\S+)", r.text)
    assert m, r.text
    kept = sorted(os.listdir(runlogs))
    assert len(kept) == 50
    assert os.path.basename(m.group(1)) in kept
    # The oldest went first.
    assert "staging-old-10.log" not in kept and "staging-old-11.log" in kept
    wait_for(lambda: ("staging", "deployed", node, "") in central_log(central),
             what="the background deploy to end")


def test_pusher_is_found_as_acl_finds_it():
    from mercurial.utils import procutil
    from hgext_envdeploy.hooks import _pusher

    assert _pusher(b"serve", b"remote:http:10.0.0.7:alice") == b"alice"
    assert _pusher(b"serve", b"remote:https:10.0.0.7:bob%20smith") == b"bob smith"
    # Over ssh (and for an unauthenticated HTTP push): the receiving account.
    assert _pusher(b"serve", b"remote:ssh:10.0.0.7") == procutil.getuser()
    assert _pusher(b"push", b"file:/tmp/x") == procutil.getuser()


def test_envlog_names_the_push_behind_an_autodeploy(hgenv, local_central):
    central, site, live, work = local_central
    hgenv.write_hgrc(central, HOOK + environment("staging", path=site, autodeploy="true"))
    commit(hgenv, work, "staging", "feature")
    hgenv.hg("push", central, cwd=work, check=True)
    hgenv.hg("envdeploy", "staging", cwd=central, check=True)  # by hand: no trigger

    r = hgenv.hg("envlog", "staging", cwd=central, check=True)
    by_hand, pushed = r.out.split("\n\n")[:2]  # newest first

    me = getpass.getuser()  # a local push: received by this account
    assert f"started by a push from {me} (" in pushed
    assert "started by a push" not in by_hand
    entries = json.loads(hgenv.hg("envlog", "staging", "-T", "json", cwd=central,
                                  check=True).out)
    assert [e["pusher"] for e in entries] == ["", me]
