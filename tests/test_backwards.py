"""Never backwards by accident: a host at a changeset this repository lacks, or at a
descendant of the one to deploy, stops the deploy before any host changes."""
import os

from envtools import (
    clone_target, commit_on, environment, head, journal, parent, ssh_settings,
    ssh_targets,
)

DETAILED = ("--config", "ui.detailed-exit-code=yes")
HOOK = (
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)


def touch(name):
    def change(repo):
        with open(os.path.join(repo, name), "w") as fp:
            fp.write(name)
    return change


def unlocked(target):
    return not os.path.exists(os.path.join(target, ".hg", "envdeploy", "lock"))


def hgnode(hgenv, repo, rev="."):
    return hgenv.hg("log", "-R", repo, "-r", rev, "-T", "{node}", check=True).out


# --- local environments -----------------------------------------------------


def test_stale_clone_is_refused_and_changes_nothing(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    stale = tmp_path / "stale"
    hgenv.hg("clone", "-q", central_repo, stale, check=True)
    for repo in (central_repo, stale):
        hgenv.write_hgrc(repo, environment("staging", path=target, check="true"))
    new = commit_on(hgenv, central_repo, "staging", "new", touch("new"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = journal(target)

    r = hgenv.hg("envdeploy", "staging", *DETAILED, cwd=stale)

    assert r.rc == 20, r.text  # StateError
    assert (f"abort: local is at {new[:12]}, which this repository does not have"
            in r.err)
    assert "pull first, or use hg envrollback" in r.err and "--force" in r.err
    assert parent(hgenv, target) == new
    assert journal(target) == before
    assert unlocked(target)
    # Without detailed exit codes, Mercurial's plain abort.
    assert hgenv.hg("envdeploy", "staging", cwd=stale).rc == 255

    # A dry run says the same, and changes nothing either.
    r = hgenv.hg("envdeploy", "staging", "-n", *DETAILED, cwd=stale)
    assert r.rc == 20, r.text
    assert f"local is at {new[:12]}, which this repository" in r.err
    assert journal(target) == before

    # The lock was released: the up-to-date repository deploys at once.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "already at" in r.out

    # --force deploys the stale clone's head anyway, and says so.
    r = hgenv.hg("envdeploy", "staging", "--force", cwd=stale)
    assert r.rc == 0, r.text
    old = head(hgenv, stale, "staging")
    assert parent(hgenv, target) == old
    assert (f"local: at {new[:12]}, which this repository does not have: "
            "deploying anyway (--force)") in r.err
    record = journal(target)[-1]
    assert record["outcome"] == "ok"
    assert (record["from"], record["to"]) == (new, old)


def test_explicit_rev_on_an_ancestor_needs_force(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    a = commit_on(hgenv, central_repo, "staging", "a", touch("a"))
    b = commit_on(hgenv, central_repo, "staging", "b", touch("b"))
    # An empty working copy (parent null) is an ordinary first deploy.
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert parent(hgenv, target) == b
    before = journal(target)

    for extra in ([], ["-n"]):
        r = hgenv.hg("envdeploy", "staging", "-r", a, *extra, *DETAILED,
                     cwd=central_repo)
        assert r.rc == 20, r.text
        assert (f"abort: local is at {b[:12]}, a descendant of {a[:12]}: the deploy "
                "would go backwards") in r.err
        assert "hg envrollback" in r.err and "--force" in r.err
        assert parent(hgenv, target) == b
        assert journal(target) == before
        assert unlocked(target)

    # A dry run with --force shows the plan.
    r = hgenv.hg("envdeploy", "staging", "-r", a, "-n", "--force", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"would deploy {a[:12]}" in r.out
    assert parent(hgenv, target) == b

    r = hgenv.hg("envdeploy", "staging", "-r", a, "--force", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"local: at {b[:12]}, a descendant of {a[:12]}: going backwards" in r.err
    assert parent(hgenv, target) == a
    assert (journal(target)[-1]["from"], journal(target)[-1]["to"]) == (b, a)

    # From there the head is forwards again: no --force.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, target) == b


def test_another_line_is_an_ordinary_deploy(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target)
                     + f"other.branch = live\nother.path = {target}\n")
    base = head(hgenv, central_repo, "staging")
    a = commit_on(hgenv, central_repo, "staging", "a", touch("a"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    # A sibling head of the branch: neither ancestor nor descendant of a.
    hgenv.hg("update", "-q", base, cwd=central_repo, check=True)
    touch("b")(central_repo)
    hgenv.hg("commit", "-q", "-A", "-m", "b", cwd=central_repo, check=True)
    b = hgnode(hgenv, central_repo)

    r = hgenv.hg("envdeploy", "staging", "-r", b, cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == b
    assert "backwards" not in r.text and "--force" not in r.text

    # Another branch altogether, deployed to the same path.
    r = hgenv.hg("envdeploy", "other", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "live")


def test_hidden_changesets_are_judged_by_their_ancestry(hgenv, central_repo,
                                                        tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target)
                     + "[experimental]\nevolution.createmarkers = true\n")
    a = commit_on(hgenv, central_repo, "staging", "a", touch("a"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    # Amended here: a is hidden, but known, and not an ancestor of a2.
    hgenv.hg("update", "-q", a, cwd=central_repo, check=True)
    hgenv.hg("commit", "-q", "--amend", "-m", "a, amended", cwd=central_repo,
             check=True)
    a2 = hgnode(hgenv, central_repo)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "does not have" not in r.text
    assert parent(hgenv, target) == a2

    # Pruned here after its deploy: c is hidden, and a descendant of the head a2.
    touch("c")(central_repo)
    hgenv.hg("commit", "-q", "-A", "-m", "c", cwd=central_repo, check=True)
    c = hgnode(hgenv, central_repo)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    hgenv.hg("update", "-q", a2, cwd=central_repo, check=True)
    hgenv.hg("debugobsolete", "-q", c, cwd=central_repo, check=True)
    assert head(hgenv, central_repo, "staging") == a2

    r = hgenv.hg("envdeploy", "staging", *DETAILED, cwd=central_repo)

    assert r.rc == 20, r.text
    assert f"local is at {c[:12]}, a descendant of {a2[:12]}" in r.err
    assert parent(hgenv, target) == c


def test_push_hook_reports_the_refusal_and_keeps_the_push(hgenv, central_repo,
                                                          tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, HOOK + environment(
        "staging", path=site, autodeploy="true"))
    # Alice deploys a changeset of hers that the central repository lacks.
    alice = tmp_path / "alice"
    hgenv.hg("clone", "-q", central_repo, alice, check=True)
    hgenv.write_hgrc(alice, environment("staging", path=site, source=alice))
    x = commit_on(hgenv, alice, "staging", "x", touch("x"))
    hgenv.hg("envdeploy", "staging", cwd=alice, check=True)
    before = journal(site)
    # Bob pushes another changeset to the central repository.
    bob = tmp_path / "bob"
    hgenv.hg("clone", "-q", central_repo, bob, check=True)
    y = commit_on(hgenv, bob, "staging", "y", touch("y"))

    r = hgenv.hg("push", central_repo, cwd=bob)

    assert r.rc == 0, r.text  # the push is kept
    assert head(hgenv, central_repo, "staging") == y
    assert (f"autodeploy: staging: FAILED, not deployed: local is at {x[:12]}, "
            "which this repository does not have") in r.text
    assert "autodeploy: staging: (nothing was changed; pull first" in r.text
    assert parent(hgenv, site) == x
    assert journal(site) == before
    assert unlocked(site)


# --- over SSH -----------------------------------------------------------------


def test_stale_clone_over_ssh_names_every_host(hgenv, central_repo, sshd_hosts,
                                               remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    targets = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    stale = tmp_path / "stale"
    hgenv.hg("clone", "-q", central_repo, stale, check=True)
    for repo in (central_repo, stale):
        hgenv.write_hgrc(repo, ssh_settings(sshd_hosts) + environment(
            "staging", hosts=f"{h0.spec}, {h1.spec}", path=path))
    new = commit_on(hgenv, central_repo, "staging", "new", touch("new"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = [journal(t) for t in targets]

    r = hgenv.hg("envdeploy", "staging", *DETAILED, cwd=stale)

    assert r.rc == 20, r.text
    assert (f"abort: {h0.spec}, {h1.spec} are at {new[:12]}, which this repository "
            "does not have") in r.err
    assert [parent(hgenv, t) for t in targets] == [new, new]
    assert [journal(t) for t in targets] == before
    assert all(unlocked(t) for t in targets)

    # Both locks are free: the next deploy goes through.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"{h0.spec}: already at" in r.out and f"{h1.spec}: already at" in r.out

    r = hgenv.hg("envdeploy", "staging", "--force", cwd=stale)
    assert r.rc == 0, r.text
    old = head(hgenv, stale, "staging")
    assert [parent(hgenv, t) for t in targets] == [old, old]
    assert [journal(t)[-1]["outcome"] for t in targets] == ["ok", "ok"]
