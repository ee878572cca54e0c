"""Who may push to an environment branch.

Mercurial's own acl extension decides who may push to `live` (tested here over real
SSH, one key per person on a shared account, beside the deploy hook); ENV.protect
keeps an environment's branch at one head, even against `hg push --force`."""
import os
import shutil
import subprocess
from types import SimpleNamespace

import pytest

import sshdhosts
from conftest import unavailable
from envtools import clone_target, environment, journal, parent

NULL = "0" * 40

DEPLOY_HOOK = (
    # Over SSH the remote hg reads only the central repository's own hgrc files.
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)
PROTECT_HOOK = (
    "[hooks]\npretxnchangegroup.envprotect = python:hgext_envdeploy.hooks.protect\n"
)
# As in the README: only the group deployers may push to live, everyone else may push
# to every other branch.
ACL = """\
[hooks]
pretxnchangegroup.acl = python:hgext.acl.hook
[acl]
sources = serve
[acl.groups]
deployers = alice, carol
[acl.deny.branches]
live = !@deployers
"""

ALICE = "Alice <alice@example.com>"
BOB = "Bob <bob@example.com>"


# --- helpers -------------------------------------------------------------------------


def hglog(hgenv, repo, revs, template="{node}\\n"):
    return hgenv.hg("log", "-R", repo, "-r", revs, "-T", template, check=True).out


def allnodes(hgenv, repo):
    return sorted(hglog(hgenv, repo, "all()").split())


def branchheads(hgenv, repo, branch):
    """The open heads of branch, as `hg heads BRANCH` lists them."""
    return sorted(hgenv.hg("heads", "-R", repo, branch, "-T", "{node}\\n",
                           check=True).out.split())


def commit(hgenv, repo, rev, message, user, close=False):
    """A changeset on top of rev (on rev's branch), by user; its full hash."""
    hgenv.hg("update", "-q", "-C", rev, cwd=repo, check=True)
    name = message.splitlines()[0].replace(" ", "-").lower()
    with open(os.path.join(repo, name), "w") as fp:
        fp.write(message + "\n")
    args = ["commit", "-q", "-A", "-m", message, "-u", user]
    if close:
        args.append("--close-branch")
    hgenv.hg(*args, cwd=repo, check=True)
    return hglog(hgenv, repo, ".", "{node}")


def headline(hgenv, repo, node, incoming=False):
    """The line protect prints for a head, as the tests expect it."""
    short, desc, user = hglog(hgenv, repo, node, "{short(node)}\\0{desc|firstline}\\0"
                              "{author}").split("\0")
    return f"envprotect:   {short}  {desc}  ({user})" + ("  [incoming]" if incoming else "")


# --- over SSH: a shared `hg` account, one key per person -----------------------------


@pytest.fixture(scope="module")
def acl_host(tmp_path_factory):
    """One sshd of our own whose authorized_keys we may rewrite; keys for alice and bob."""
    reason = sshdhosts.missing()
    if reason:
        unavailable(reason)
    base = str(tmp_path_factory.mktemp("acl"))
    hosts = sshdhosts.launch(base, 1, "hg")
    keys = {}
    for person in ("alice", "bob"):
        key = os.path.join(base, f"{person}_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person,
                        "-f", key], check=True)
        keys[person] = key
    yield SimpleNamespace(hosts=hosts, host=hosts.hosts[0], keys=keys,
                          authorized_keys=os.path.join(base, "authorized_keys"))
    hosts.stop_all()


@pytest.fixture
def shared_account(hgenv, central_repo, acl_host, tmp_path, request):
    """The central repository on the host, served to each key by a forced command that
    names the person (LOGNAME, which acl reads); local environments staging and live
    beside it; a clone per person."""
    h = acl_host.host
    remote = os.path.join(acl_host.hosts.mount, request.node.name)
    local = acl_host.hosts.local_path(h, remote)
    os.makedirs(local)
    central = os.path.join(local, "central")
    shutil.copytree(central_repo, central, symlinks=True)
    for name in ("staging", "live"):
        clone_target(hgenv, central, os.path.join(local, name))
    # sshd reads authorized_keys at every login: this test's repository from now on.
    with open(acl_host.authorized_keys, "w") as fp:
        for person, key in acl_host.keys.items():
            with open(key + ".pub") as pub:
                fp.write(
                    f'command="LOGNAME={person} USER={person} exec hg -R '
                    f'{remote}/central serve --stdio",no-pty,no-port-forwarding,'
                    f'no-X11-forwarding,no-agent-forwarding {pub.read()}')
    url = f"ssh://root@127.0.0.1:{h.port}/central"
    work = {}
    for person in acl_host.keys:
        work[person] = tmp_path / person
        hgenv.hg("clone", "-q", central, work[person], check=True)

    def push(person, *args):
        ssh = (f"ssh -i {acl_host.keys[person]} -o IdentitiesOnly=yes "
               f"-o UserKnownHostsFile={acl_host.hosts.known_hosts} "
               "-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null")
        return hgenv.hg("push", "--config", f"ui.ssh={ssh}", *args, url,
                        cwd=work[person])

    def environments(**extra):
        return "".join(environment(name, path=f"{remote}/{name}", **extra)
                       for name in ("staging", "live"))

    return SimpleNamespace(
        central=central, work=work, push=push, environments=environments,
        staging=os.path.join(local, "staging"), live=os.path.join(local, "live"))


def central_log(repo):
    path = os.path.join(repo, ".hg", "envdeploy", "autodeploy.log")
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        return [line.split(" ", 4)[1:4] for line in fp.read().splitlines()]


def test_acl_rejects_a_push_to_live_by_bob_whole_and_alices_deploys(
        hgenv, shared_account):
    s = shared_account
    hgenv.write_hgrc(s.central, DEPLOY_HOOK + ACL + s.environments(autodeploy="true"))
    bob = s.work["bob"]
    on_staging = commit(hgenv, bob, "staging", "Staging tweak", BOB)
    on_live = commit(hgenv, bob, "live", "Live tweak", BOB)
    before = allnodes(hgenv, s.central)

    r = s.push("bob")

    assert r.rc != 0, r.text
    assert (f'remote: acl: user "bob" denied on branch "live" '
            f'(changeset "{on_live[:12]}")') in r.text
    assert "abort: push failed on remote" in r.err
    # Rejected whole: not even the staging changeset stayed, nothing deployed.
    assert allnodes(hgenv, s.central) == before
    assert parent(hgenv, s.staging) == parent(hgenv, s.live) == NULL
    assert journal(s.staging) == journal(s.live) == []
    assert central_log(s.central) == []

    # Bob may still push to every other branch, and that deploys.
    r = s.push("bob", "-r", "staging")
    assert r.rc == 0, r.text
    assert f"remote: autodeploy: staging: deployed {on_staging[:12]}" in r.text
    assert parent(hgenv, s.staging) == on_staging
    assert parent(hgenv, s.live) == NULL

    # Alice is a deployer: her push of the same live changeset (acl checks who
    # pushes, not who committed) lands and deploys.
    hgenv.hg("pull", "-q", bob, cwd=s.work["alice"], check=True)
    r = s.push("alice")
    assert r.rc == 0, r.text
    assert f"remote: autodeploy: live: deployed {on_live[:12]}" in r.text
    assert parent(hgenv, s.live) == on_live
    [record] = journal(s.live)
    assert record["outcome"] == "ok" and record["to"] == on_live
    assert central_log(s.central) == [["staging", "deployed", on_staging],
                                      ["live", "deployed", on_live]]


def test_protect_rejects_a_forced_second_head_on_live(hgenv, shared_account):
    s = shared_account
    hgenv.write_hgrc(s.central, DEPLOY_HOOK + PROTECT_HOOK + s.environments(
        autodeploy="true", protect="true"))
    alice, bob = s.work["alice"], s.work["bob"]
    release = commit(hgenv, alice, "live", "Release 1.2", ALICE)
    r = s.push("alice")
    assert r.rc == 0, r.text
    assert parent(hgenv, s.live) == release
    # Bob has not pulled: his change on live is a second head, and he forces it.
    fix = commit(hgenv, bob, "live", "Fix the footer\n\nlong story", BOB)
    before = allnodes(hgenv, s.central)

    r = s.push("bob", "--force")

    assert r.rc != 0, r.text
    assert ("remote: envprotect: rejected: branch 'live' (environment live) would "
            "have 2 heads, and a deploy needs exactly one:") in r.text
    assert "remote: " + headline(hgenv, alice, release) in r.text
    assert "remote: " + headline(hgenv, bob, fix, incoming=True) in r.text
    assert "remote: pretxnchangegroup.envprotect hook failed" in r.text, r.text
    # Nothing stored, nothing deployed: live still has its one head, deployed.
    assert allnodes(hgenv, s.central) == before
    assert branchheads(hgenv, s.central, "live") == [release]
    assert parent(hgenv, s.live) == release and len(journal(s.live)) == 1

    # Merged, the same change goes through (without --force) and deploys.
    hgenv.hg("pull", "-q", cwd=bob, check=True)
    hgenv.hg("merge", "-q", release, cwd=bob, check=True)
    hgenv.hg("commit", "-q", "-m", "Merge the footer fix", "-u", BOB, cwd=bob,
             check=True)
    merge = hglog(hgenv, bob, ".", "{node}")
    r = s.push("bob")
    assert r.rc == 0, r.text
    assert "envprotect" not in r.text
    assert branchheads(hgenv, s.central, "live") == [merge]
    assert parent(hgenv, s.live) == merge


# --- a local central repository ------------------------------------------------------


@pytest.fixture
def local_central(hgenv, central_repo, tmp_path):
    """central_repo with environments staging and live (protected, no autodeploy);
    the developer's clone in tmp_path/work."""
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    return central_repo, work


def test_protect_counts_open_heads_of_protected_branches_only(hgenv, local_central):
    central, work = local_central
    hgenv.write_hgrc(central, PROTECT_HOOK + environment("staging", path="/srv/s")
                     + environment("live", path="/srv/l", protect="true"))
    # Two heads on staging, which is not protected.
    staging_root = hglog(hgenv, work, "staging", "{node}")
    one = commit(hgenv, work, staging_root, "Staging one", ALICE)
    two = commit(hgenv, work, staging_root, "Staging two", BOB)
    # On live a second head that is closed in the same push: one open head stays.
    live_root = hglog(hgenv, work, "live", "{node}")
    release = commit(hgenv, work, live_root, "Release", ALICE)
    abandoned = commit(hgenv, work, live_root, "Abandoned idea", BOB)
    closed = commit(hgenv, work, abandoned, "Close the idea", BOB, close=True)

    r = hgenv.hg("push", "--force", central, cwd=work)

    assert r.rc == 0, r.text
    assert "envprotect" not in r.text
    assert branchheads(hgenv, central, "staging") == sorted([one, two])
    assert branchheads(hgenv, central, "live") == [release]
    assert closed in allnodes(hgenv, central)


def test_protect_lets_two_heads_be_merged_but_not_grown(hgenv, local_central):
    central, work = local_central
    live_root = hglog(hgenv, work, "live", "{node}")
    first = commit(hgenv, work, live_root, "First", ALICE)
    second = commit(hgenv, work, live_root, "Second", BOB)
    # live got its two heads before protect was on.
    hgenv.hg("push", "-q", "--force", central, cwd=work, check=True)
    hgenv.write_hgrc(central, PROTECT_HOOK + environment("live", path="/srv/l",
                                                         protect="true"))

    # A push elsewhere is not held up by live's heads ...
    elsewhere = commit(hgenv, work, "default", "Elsewhere", BOB)
    r = hgenv.hg("push", "-r", elsewhere, central, cwd=work)
    assert r.rc == 0, r.text
    assert "envprotect" not in r.text
    # ... one that builds on a head is rejected, naming the heads it would leave ...
    grown = commit(hgenv, work, first, "Grow the first", ALICE)
    r = hgenv.hg("push", "--force", "-r", grown, central, cwd=work)
    assert r.rc != 0, r.text
    assert ("envprotect: rejected: branch 'live' (environment live) would have 2 "
            "heads") in r.err
    assert headline(hgenv, work, second) in r.err
    assert headline(hgenv, work, grown, incoming=True) in r.err
    assert grown not in allnodes(hgenv, central)
    # (pulled from the central repository's side, the same)
    r = hgenv.hg("pull", "-r", grown, work, cwd=central)
    assert r.rc != 0 and headline(hgenv, work, grown, incoming=True) in r.err, r.text
    assert grown not in allnodes(hgenv, central)
    # ... and a merge of the two passes.
    hgenv.hg("update", "-q", grown, cwd=work, check=True)
    hgenv.hg("merge", "-q", second, cwd=work, check=True)
    hgenv.hg("commit", "-q", "-m", "Merge", cwd=work, check=True)
    merge = hglog(hgenv, work, ".", "{node}")
    r = hgenv.hg("push", "-r", merge, central, cwd=work)
    assert r.rc == 0, r.text
    assert branchheads(hgenv, central, "live") == [merge]


def test_protect_in_pretxncommit_stops_a_second_head_committed_in_place(
        hgenv, local_central):
    central, work = local_central
    hgenv.write_hgrc(central, (
        "[hooks]\npretxncommit.envprotect = python:hgext_envdeploy.hooks.protect\n"
    ) + environment("live", path="/srv/l", protect="true"))
    # The first changeset on live's only head is fine, a second head is not.
    release = commit(hgenv, central, "live", "Release", ALICE)
    hgenv.hg("update", "-q", "-C", "live~1", cwd=central, check=True)
    with open(os.path.join(central, "hotfix"), "w") as fp:
        fp.write("hotfix\n")

    r = hgenv.hg("commit", "-A", "-m", "Hotfix", cwd=central)

    assert r.rc != 0, r.text
    assert "envprotect: rejected: branch 'live'" in r.err
    assert "abort: pretxncommit.envprotect hook failed" in r.err
    assert branchheads(hgenv, central, "live") == [release]


def test_protect_in_pretxnclose_lets_an_amended_head_replace_the_old(
        hgenv, local_central):
    central, work = local_central
    # Changeset evolution with a non-publishing central repository: an amended head
    # arrives with a marker obsoleting the old one.  pretxnchangegroup runs before
    # the markers are applied (two heads then); pretxnclose after.
    with open(hgenv.hgrc, "a") as fp:
        fp.write("[experimental]\nevolution = all\n[phases]\npublish = false\n")
    hgenv.write_hgrc(central, (
        "[hooks]\npretxnclose.envprotect = python:hgext_envdeploy.hooks.protect\n"
    ) + environment("live", path="/srv/l", protect="true"))
    live_root = hglog(hgenv, work, "live", "{node}")
    commit(hgenv, work, live_root, "Release", ALICE)
    hgenv.hg("push", "-q", central, cwd=work, check=True)
    hgenv.hg("commit", "-q", "--amend", "-m", "Release, amended", cwd=work, check=True)
    amended = hglog(hgenv, work, ".", "{node}")

    r = hgenv.hg("push", "--force", central, cwd=work)

    assert r.rc == 0, r.text
    assert "obsoleted 1 changesets" in r.out
    assert branchheads(hgenv, central, "live") == [amended]
    # A second head that obsoletes nothing is still rejected.
    fix = commit(hgenv, work, live_root, "Fix", BOB)
    r = hgenv.hg("push", "--force", central, cwd=work)
    assert r.rc != 0, r.text
    assert headline(hgenv, work, fix, incoming=True) in r.err
    assert "abort: pretxnclose.envprotect hook failed" in r.err
    assert branchheads(hgenv, central, "live") == [amended]


def test_protect_fails_closed_on_a_broken_configuration(hgenv, local_central):
    central, work = local_central
    hgenv.write_hgrc(central, PROTECT_HOOK + environment("live", path="/srv/l",
                                                         protect="yes please"))
    before = allnodes(hgenv, central)
    commit(hgenv, work, "default", "Anything", BOB)

    r = hgenv.hg("push", central, cwd=work)

    assert r.rc != 0, r.text
    assert (f"envprotect: rejected: config error: {central}/.hg/hgrc:") in r.err
    assert "invalid protect value 'yes please' for environment 'live'" in r.err
    assert "envprotect: (use true or false)" in r.err
    assert allnodes(hgenv, central) == before

    # Without the extension enabled the environments cannot be read: rejected too.
    with open(os.path.join(central, ".hg", "hgrc"), "w") as fp:
        fp.write(PROTECT_HOOK + environment("live", path="/srv/l", protect="true"))
    r = hgenv.hg("push", "--config", "extensions.hgext_envdeploy=!", central, cwd=work)
    assert r.rc != 0, r.text
    assert ("envprotect: rejected: enable the extension in "
            f"{central} ([extensions] hgext_envdeploy =)") in r.err
    assert allnodes(hgenv, central) == before
