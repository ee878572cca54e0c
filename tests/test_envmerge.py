"""hg envmerge against real repositories: a central one (local path or over the
test sshd) and a developer's clone that merges into an environment's branch."""
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import HgEnv
from envtools import clone_target, environment, journal, parent

SSH_HGRC = (
    "[ui]\nssh = ssh -i {key} -o UserKnownHostsFile={known} "
    "-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null\n"
)


# --- helpers ------------------------------------------------------------------


def log(hgenv, repo, revs, template="{node}\\n"):
    return hgenv.hg("log", "-R", repo, "-r", revs, "-T", template, check=True).out


def node(hgenv, repo, rev):
    return log(hgenv, repo, rev, "{node}")


def allnodes(hgenv, repo):
    return sorted(log(hgenv, repo, "all()").split())


def snapshot(hgenv, repo):
    """What a user sees of the working copy and the repository: every file's
    status (a stray .orig shows as unknown), the summary (parent, branch,
    active bookmark, merge or conflicts in progress), the changesets."""
    def out(*args):
        return hgenv.hg(*args, cwd=repo, check=True).out
    return {
        "status": out("status", "--all"),
        "summary": out("summary"),
        "nodes": allnodes(hgenv, repo),
    }


def write(repo, name, text):
    path = os.path.join(repo, name)
    with open(path, "w") as fp:
        fp.write(text)


def commit(hgenv, repo, message, files, branch=None, rev=None):
    """Commit files ({name: text}) on top of rev (or the working copy parent),
    on a new named branch if given; the working copy stays there."""
    if rev:
        hgenv.hg("update", "-q", rev, cwd=repo, check=True)
    if branch:
        hgenv.hg("branch", "-q", branch, cwd=repo, check=True)
    for name, text in files.items():
        write(repo, name, text)
    hgenv.hg("commit", "-q", "-A", "-m", message, cwd=repo, check=True)
    return node(hgenv, repo, ".")


def conflicting(hgenv, repo):
    """Make live (pushed) and feature change the same line of mysite/urls.py."""
    live = commit(hgenv, repo, "live fix", {"mysite/urls.py": "# live\n"}, rev="live")
    hgenv.hg("push", "-q", "-r", ".", cwd=repo, check=True)
    feature = commit(hgenv, repo, "feature change",
                     {"mysite/urls.py": "# feature\n"}, rev="feature")
    hgenv.hg("update", "-q", "default", cwd=repo, check=True)
    return live, feature


@dataclass
class Repos:
    central: Path
    work: Path
    live: str  # head of live
    feature: str  # head of feature


@pytest.fixture(scope="session")
def _templates(tmp_path_factory, _central_repo_template):
    """Built once with the real hg; tests get copies (see repos, conflict).

    plain: central, and work, a developer's clone of it (default = ../central)
    with an unpushed feature branch (one commit off default adding
    feature.txt), on default.  conflict: the same, then live (pushed) and
    feature both changed the same line of mysite/urls.py."""
    base = tmp_path_factory.mktemp("envmerge")
    hgenv = HgEnv(base / "home")
    plain = base / "plain"
    shutil.copytree(_central_repo_template, plain / "central", symlinks=True)
    hgenv.hg("clone", "-q", plain / "central", plain / "work", check=True)
    # Relative, so that copies push to their own central.
    (plain / "work" / ".hg" / "hgrc").write_text("[paths]\ndefault = ../central\n")
    commit(hgenv, plain / "work", "add feature", {"feature.txt": "feature\n"},
           branch="feature")
    hgenv.hg("update", "-q", "default", cwd=plain / "work", check=True)
    conflict = base / "conflict"
    shutil.copytree(plain, conflict, symlinks=True)
    conflicting(hgenv, conflict / "work")
    return {
        name: (path, node(hgenv, path / "work", "live"),
               node(hgenv, path / "work", "feature"))
        for name, path in (("plain", plain), ("conflict", conflict))
    }


def _copy(template, tmp_path):
    path, live, feature = template
    # copy2 keeps mtimes, so the copied dirstates still match the files.
    for name in ("central", "work"):
        shutil.copytree(path / name, tmp_path / name, symlinks=True)
    with open(tmp_path / "work" / ".hg" / "hgrc", "a") as fp:
        fp.write(environment("live", path=tmp_path / "live-site"))
    return Repos(tmp_path / "central", tmp_path / "work", live, feature)


@pytest.fixture
def repos(_templates, tmp_path):
    return _copy(_templates["plain"], tmp_path)


@pytest.fixture
def conflict(_templates, tmp_path):
    return _copy(_templates["conflict"], tmp_path)


# --- the main path --------------------------------------------------------------


def test_merge_over_ssh_commits_pushes_and_goes_back(
        hgenv, central_repo, tmp_path, sshd_hosts, remote_dir):
    # The central repository lives on a host, reached over real ssh.
    host = sshd_hosts.hosts[0]
    remote_central = os.path.join(remote_dir, "central")
    central = sshd_hosts.local_path(host, remote_central)
    shutil.copytree(central_repo, central, symlinks=True)
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central, work, check=True)
    hgenv.write_hgrc(work, SSH_HGRC.format(key=sshd_hosts.client_key,
                                           known=sshd_hosts.known_hosts)
                     + f"[paths]\ndefault = ssh://root@127.0.0.1:{host.port}/"
                       f"{remote_central}\n"
                     + environment("live", path=tmp_path / "site"))
    live_before = node(hgenv, work, "live")
    feature = commit(hgenv, work, "add feature", {"feature.txt": "x\n"},
                     branch="feature", rev="default")
    # The user works on the feature branch and merges from there.

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=work)

    assert r.rc == 0, r.text
    merge = node(hgenv, work, "live")
    assert log(hgenv, work, merge, "{p1.node} {p2.node} {branch} {desc}") == (
        f"{live_before} {feature} live Merging feature into live")
    assert f"committed merge {merge[:12]} on branch live" in r.out
    assert f"pushed merge {merge[:12]}" in r.out
    # The central repository has it, as the head of live, public.
    assert node(hgenv, central, "head() and branch(live)") == merge
    assert log(hgenv, work, merge, "{phase}") == "public"
    # Back where the user was: the feature head, on branch feature, clean.
    assert parent(hgenv, work) == feature
    assert hgenv.hg("branch", cwd=work).out == "feature\n"
    assert hgenv.hg("status", cwd=work).out == ""


def test_bookmark_message_user_pushto_and_pending_branch_name(hgenv, repos, tmp_path):
    work = repos.work
    # A feature kept as a bookmark on default, active in the working copy.
    mark = commit(hgenv, work, "bookmarked work", {"bm.txt": "bm\n"})
    hgenv.hg("bookmark", "topic", cwd=work, check=True)
    # A branch name set for the next commit is part of where the user is.
    hgenv.hg("branch", "-q", "next", cwd=work, check=True)
    # live pushes to its own destination, not to default.
    mirror = tmp_path / "mirror"
    shutil.copytree(repos.central, mirror, symlinks=True)
    hgenv.write_hgrc(work, f"[paths]\nrelease = {mirror}\n"
                           "[environments]\nlive.pushto = release\n")
    central_before = allnodes(hgenv, repos.central)

    r = hgenv.hg("envmerge", "topic", "--into", "live", "-m", "Ship topic",
                 "-u", "Rel Eng <rel@example.com>", cwd=work)

    assert r.rc == 0, r.text
    merge = node(hgenv, work, "live")
    assert log(hgenv, work, merge, "{p1.node}|{p2.node}|{desc}|{author}|{branch}") == (
        f"{repos.live}|{mark}|Ship topic|Rel Eng <rel@example.com>|live")
    assert node(hgenv, mirror, "head() and branch(live)") == merge
    assert allnodes(hgenv, repos.central) == central_before
    # The bookmark did not follow the commit, and is still active; the
    # pending branch name is still there.
    summary = hgenv.hg("summary", cwd=work).out
    assert "bookmarks: *topic" in summary and "branch: next" in summary
    assert node(hgenv, work, "topic") == mark
    assert parent(hgenv, work) == mark


def test_already_merged_commits_and_pushes_nothing(hgenv, repos):
    hgenv.hg("envmerge", "feature", "--into", "live", cwd=repos.work, check=True)
    local, central = allnodes(hgenv, repos.work), allnodes(hgenv, repos.central)

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=repos.work)

    assert r.rc == 0, r.text
    assert "is already merged into live" in r.out
    assert "pushing" not in r.out
    assert allnodes(hgenv, repos.work) == local
    assert allnodes(hgenv, repos.central) == central


# --- conflicts ------------------------------------------------------------------


def test_conflict_abandons_the_merge_and_restores_everything(hgenv, conflict):
    work = conflict.work
    hgenv.hg("update", "-q", "feature", cwd=work, check=True)
    before = snapshot(hgenv, work)
    central = allnodes(hgenv, conflict.central)

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=work)

    assert r.rc != 0
    assert "conflicts merging feature into live:\n  mysite/urls.py\n" in r.err
    assert "merge of feature into live abandoned" in r.err
    assert "hg merge feature" in r.err  # how to do it by hand
    assert "hg resolve" not in r.text  # Mercurial's advice does not apply
    # Same status (so no stray .orig), summary (no merge in progress),
    # parent, branch, changesets; nothing pushed.
    assert snapshot(hgenv, work) == before
    assert (work / "mysite" / "urls.py").read_text() == "# feature\n"
    assert not os.path.exists(work / ".hg" / "envmerge-backups")
    assert allnodes(hgenv, conflict.central) == central


def test_merge_tool_that_resolves_everything_commits(hgenv, conflict):
    r = hgenv.hg("envmerge", "feature", "--into", "live", "-t", ":other",
                 cwd=conflict.work)

    assert r.rc == 0, r.text
    merge = node(hgenv, conflict.central, "head() and branch(live)")
    assert log(hgenv, conflict.central, merge, "{p1.node} {p2.node}") == (
        f"{conflict.live} {conflict.feature}")
    assert hgenv.hg("cat", "-r", merge, "mysite/urls.py",
                    cwd=conflict.work).out == "# feature\n"
    assert hgenv.hg("status", cwd=conflict.work).out == ""  # no .orig left


# --- refusing to start -----------------------------------------------------------


def _modified(hgenv, repo):
    write(repo, "mysite/urls.py", "# edited, not committed\n")


def _uncommitted_merge(hgenv, repo):
    hgenv.hg("update", "-q", "live", cwd=repo, check=True)
    hgenv.hg("merge", "-q", "feature", cwd=repo, check=True)


def _unfinished_graft(hgenv, repo):
    hgenv.hg("update", "-q", "live", cwd=repo, check=True)
    r = hgenv.hg("graft", "-r", "feature", cwd=repo)
    assert r.rc != 0 and os.path.exists(repo / ".hg" / "graftstate")


def _unfinished_rebase(hgenv, repo):
    # Started with the rebase extension, which the envmerge run lacks.
    r = hgenv.hg("rebase", "-s", "feature", "-d", "live",
                 "--config", "extensions.rebase=", cwd=repo)
    assert r.rc != 0 and os.path.exists(repo / ".hg" / "rebasestate")


@pytest.mark.parametrize("setup, message, repos_fixture", [
    (_modified, "uncommitted changes", "repos"),
    (_uncommitted_merge, "outstanding uncommitted merge", "repos"),
    (_unfinished_graft, "graft in progress", "conflict"),
    (_unfinished_rebase, "rebase in progress", "conflict"),
])
def test_refuses_to_start_and_changes_nothing(hgenv, request, setup, message,
                                              repos_fixture):
    repos = request.getfixturevalue(repos_fixture)
    work = repos.work
    setup(hgenv, work)
    before = snapshot(hgenv, work)
    central = allnodes(hgenv, repos.central)

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=work)

    assert r.rc != 0
    assert message in r.err
    assert "merging" not in r.out
    assert snapshot(hgenv, work) == before
    assert allnodes(hgenv, repos.central) == central


# --- the push ---------------------------------------------------------------------


def test_push_race_keeps_the_merge_commit_and_reports_it(hgenv, repos, tmp_path):
    # Somebody pushes to live after our last pull.
    other = tmp_path / "other"
    hgenv.hg("clone", "-q", repos.central, other, check=True)
    theirs = commit(hgenv, other, "hotfix", {"hotfix.txt": "x\n"}, rev="live")
    hgenv.hg("push", "-q", cwd=other, check=True)

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=repos.work)

    assert r.rc != 0
    merge = node(hgenv, repos.work, "head() and branch(live) and draft()")
    assert log(hgenv, repos.work, merge, "{p1.node} {p2.node} {desc}") == (
        f"{repos.live} {repos.feature} Merging feature into live")
    assert (f"merge {merge[:12]} of feature into live was committed here but "
            "not pushed") in r.err
    assert "push creates new remote head" in r.err
    assert "hg pull" in r.err
    # Nothing forced: central still has only their head on live.
    assert node(hgenv, repos.central, "head() and branch(live)") == theirs
    assert merge not in allnodes(hgenv, repos.central)
    assert parent(hgenv, repos.work) == node(hgenv, repos.work, "default")


def test_deploy_leaves_the_target_at_the_merge(hgenv, repos, tmp_path):
    target = clone_target(hgenv, repos.central, tmp_path / "live-site")

    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy",
                 cwd=repos.work)

    assert r.rc == 0, r.text
    merge = node(hgenv, repos.work, "live")
    assert parent(hgenv, target) == merge
    assert os.path.exists(os.path.join(target, "feature.txt"))
    [record] = journal(target)
    assert record["to"] == merge and record["outcome"] == "ok"


def test_failing_deploy_fails_the_command(hgenv, repos, tmp_path):
    target = clone_target(hgenv, repos.central, tmp_path / "live-site")
    hgenv.write_hgrc(repos.work, "[environments]\nlive.check = exit 3\n")

    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy",
                 cwd=repos.work)

    assert r.rc != 0
    assert "deploy of live failed" in r.err
    # The merge itself was pushed before the deploy.
    merge = node(hgenv, repos.central, "live")
    assert log(hgenv, repos.central, merge, "{p2.node}") == repos.feature
    assert journal(target)[-1]["failed"] == "check"


# --- dry run and resolution -------------------------------------------------------------


def test_dry_run_lists_what_it_would_merge(hgenv, repos):
    central, local = allnodes(hgenv, repos.central), allnodes(hgenv, repos.work)

    r = hgenv.hg("envmerge", "feature", "--into", "live", "-n", cwd=repos.work)

    assert r.rc == 0, r.text
    assert "would merge feature (1 changesets) into live" in r.out
    assert f"{repos.feature[:12]} feature: add feature" in r.out
    assert "files touched: feature.txt" in r.out
    assert "would merge without conflicts" in r.out
    assert f"push branch live to {repos.central}" in r.out
    assert allnodes(hgenv, repos.work) == local
    assert allnodes(hgenv, repos.central) == central

    # -T json: the same plan as one item, and nothing else on stdout.
    r = hgenv.hg("envmerge", "feature", "--into", "live", "-n", "-T", "json",
                 cwd=repos.work)
    assert r.rc == 0, r.text
    [item] = json.loads(r.out)
    assert item["incoming"] == [repos.feature] and item["files"] == ["feature.txt"]
    assert item["conflicts"] is False and item["merged"] is False, item
    assert item["env"] == "live" and item["dest"] == str(repos.central), item
    assert allnodes(hgenv, repos.work) == local


def test_dry_run_predicts_the_conflict_and_changes_nothing(hgenv, conflict):
    work = conflict.work
    before = snapshot(hgenv, work)

    r = hgenv.hg("envmerge", "feature", "--into", "live", "-n", cwd=work)

    assert r.rc == 0, r.text
    assert "(2 changesets)" in r.out
    assert "files touched: feature.txt, mysite/urls.py" in r.out
    assert "would conflict with tool :merge" in r.out
    assert re.search(r"changed on both sides since [0-9a-f]{12}: mysite/urls.py\n",
                     r.out)
    assert snapshot(hgenv, work) == before


def test_dry_run_leaves_no_temporary_file(hgenv, conflict, tmp_path):
    # The in-memory merge writes a backup of each merged file to the temporary
    # directory, and leaves the one it stopped at behind when it conflicts.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    hgenv.env["TMPDIR"] = str(tmpdir)

    r = hgenv.hg("envmerge", "feature", "--into", "live", "-n", cwd=conflict.work)

    assert "would conflict with tool :merge" in r.out, r.text
    assert os.listdir(tmpdir) == []


def test_ambiguous_feature_and_missing_environment_branch(hgenv, repos):
    work = repos.work
    one = commit(hgenv, work, "feature head 1", {"one.txt": "1\n"}, rev=repos.feature)
    second = commit(hgenv, work, "feature head 2", {"two.txt": "2\n"},
                    rev=repos.feature)
    hgenv.hg("update", "-q", "default", cwd=work, check=True)

    r = hgenv.hg("envmerge", "feature", "--into", "live", cwd=work)

    assert r.rc != 0
    assert "branch 'feature' has 2 heads" in r.err
    assert one[:12] in r.err and second[:12] in r.err
    # Naming one head by its hash works.
    r = hgenv.hg("envmerge", one[:12], "--into", "live", "--no-push", cwd=work)
    assert r.rc == 0, r.text
    assert log(hgenv, work, "live", "{p2.node}") == one

    hgenv.write_hgrc(work, "[environments]\nqa.path = /nonexistent\n")
    r = hgenv.hg("envmerge", one[:12], "--into", "qa", cwd=work)
    assert r.rc != 0
    assert "branch 'qa' of environment 'qa' does not exist here" in r.err
    assert "hg branch qa" in r.err


# --- -T json: one item, stdout pure ------------------------------------------------------


def test_json_gives_the_merge_and_the_nested_deploy(hgenv, repos, tmp_path):
    target = clone_target(hgenv, repos.central, tmp_path / "live-site")

    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy", "-T", "json",
                 cwd=repos.work)

    assert r.rc == 0, r.text
    [item] = json.loads(r.out)  # stdout is the JSON document alone
    merge = node(hgenv, repos.central, "live")
    assert item["merge"] == merge and item["pushed"] is True
    assert item["merged"] is False and item["feature"] == "feature"
    assert item["featurenode"] == repos.feature and item["env"] == "live"
    assert item["dest"].endswith("central")
    [host] = item["hosts"]
    assert host["host"] == "local" and host["outcome"] == "ok"
    assert host["node"] == merge == parent(hgenv, target)
    assert "pushed merge" in r.err and "local: update ok" in r.err

    # Already merged: nothing committed or pushed, the deploy still nested.
    again = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy", "-T", "json",
                     cwd=repos.work)
    assert again.rc == 0, again.text
    [item] = json.loads(again.out)
    assert item["merged"] is True and item["merge"] == "" and item["pushed"] is False
    assert [h["outcome"] for h in item["hosts"]] == ["unchanged"]


def test_json_is_written_when_the_deploy_fails(hgenv, repos, tmp_path):
    clone_target(hgenv, repos.central, tmp_path / "live-site")
    hgenv.write_hgrc(repos.work, "[environments]\nlive.check = exit 3\n")

    r = hgenv.hg("envmerge", "feature", "--into", "live", "--deploy", "-T", "json",
                 cwd=repos.work)

    assert r.rc != 0 and "deploy of live failed" in r.err
    [item] = json.loads(r.out)
    assert item["pushed"] is True and item["merge"] == node(hgenv, repos.central, "live")
    [host] = item["hosts"]
    assert host["failed"] == "check"


def test_json_without_deploy_and_after_a_refused_start(hgenv, repos):
    r = hgenv.hg("envmerge", "feature", "--into", "live", "--no-push", "-T", "json",
                 cwd=repos.work)
    assert r.rc == 0, r.text
    [item] = json.loads(r.out)
    assert item["pushed"] is False and item["merge"] and "hosts" not in item
    write(repos.work, "dirty.txt", "x")
    hgenv.hg("add", "dirty.txt", cwd=repos.work, check=True)
    refused = hgenv.hg("envmerge", "feature", "--into", "live", "-T", "json",
                       cwd=repos.work)
    assert refused.rc != 0 and refused.out == ""  # an abort, nothing half-written
