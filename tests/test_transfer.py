"""transfer = push: the changesets travel through the deploy's own SSH session, to
hosts that cannot read the central repository at all."""
import contextlib
import os
import subprocess

from envtools import clone_target, commit_on, environment, journal, parent, ssh_settings


@contextlib.contextmanager
def unreadable(hosts, path):
    """`path` shows an empty tmpfs on each host (in its sshd's mount namespace
    only): the host cannot read the repository there, by any key or agent."""
    for host in hosts:
        subprocess.run(["nsenter", "-t", str(host.pid), "-m",
                        "mount", "-t", "tmpfs", "none", str(path)], check=True)
    try:
        yield
    finally:
        for host in hosts:
            subprocess.run(["nsenter", "-t", str(host.pid), "-m", "umount", str(path)],
                           check=True)


def branches(hgenv, repo):
    return set(hgenv.hg("log", "-R", repo, "-T", "{branch}\n", check=True).out.split())


def has(hgenv, repo, node):
    return hgenv.hg("log", "-R", repo, "-r", node, "-T", "{node}").out == node


def nodes(hgenv, repo):
    return set(hgenv.hg("log", "-R", repo, "-T", "{node}\n", check=True).out.split())


def default_path(hgenv, repo):
    return hgenv.hg("paths", "-R", repo, "default").out.strip()


def test_push_deploys_and_rolls_back_where_the_source_cannot_be_read(
        hgenv, central_repo, sshd_hosts, remote_dir):
    hosts = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "site")
    targets = [clone_target(hgenv, central_repo, sshd_hosts.local_path(h, path))
               for h in hosts]
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=", ".join(h.spec for h in hosts), path=path,
        reload="echo reloaded"))
    node = commit_on(hgenv, central_repo, "staging", "feature",
                     lambda repo: open(repo / "feature", "w").write("1\n"))
    # Work on another branch, never to reach the hosts.
    wip = commit_on(hgenv, central_repo, "live", "live secret",
              lambda repo: open(repo / "wip", "w").write("wip\n"))

    with unreadable(hosts, central_repo):
        # Pulling cannot work there: the test would otherwise prove nothing.
        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
        assert r.rc != 0 and "FAILED at pull" in r.out, r.text

        hgenv.write_hgrc(central_repo, "[environments]\nstaging.transfer = push\n")
        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
        assert r.rc == 0, r.text
        for target in targets:
            assert parent(hgenv, target) == node
            assert not has(hgenv, target, wip)
            assert default_path(hgenv, target) == str(central_repo)

        # A rollback to a changeset the hosts never had.
        later = commit_on(hgenv, central_repo, "staging", "later",
                          lambda repo: open(repo / "feature", "w").write("2\n"))
        r = hgenv.hg("envrollback", "staging", "-r", later, cwd=central_repo)
        assert r.rc == 0, r.text
        for target in targets:
            assert parent(hgenv, target) == later
            assert journal(target)[-1]["kind"] == "rollback"
            assert not has(hgenv, target, wip)


def test_push_sets_up_new_hosts_without_any_access_to_the_source(
        hgenv, central_repo, sshd_hosts, remote_dir):
    hosts = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "new", "site")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=", ".join(h.spec for h in hosts), path=path,
        transfer="push"))
    head = hgenv.hg("log", "-R", central_repo, "-r", "staging", "-T", "{node}",
                    check=True).out

    with unreadable(hosts, central_repo):
        r = hgenv.hg("envsetup", "staging", cwd=central_repo)
        assert r.rc == 0, r.text
        assert "sent the history of staging" in r.out
        for host in hosts:
            target = sshd_hosts.local_path(host, path)
            assert parent(hgenv, target) == head
            assert branches(hgenv, target) == {"default", "staging"}
            assert default_path(hgenv, target) == ""  # nothing to pull from

        # Then deploys go the same way; a second setup changes nothing.
        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
        assert r.rc == 0, r.text
        r = hgenv.hg("envsetup", "staging", cwd=central_repo)
        assert r.rc == 0 and "nothing changed" in r.out, r.text


HOOK = (
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)


def test_push_deploy_from_the_central_repository_sends_the_changesets(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    hosts = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "site")
    targets = [clone_target(hgenv, central_repo, sshd_hosts.local_path(h, path))
               for h in hosts]
    hgenv.write_hgrc(central_repo, HOOK + ssh_settings(sshd_hosts) + environment(
        "staging", hosts=", ".join(h.spec for h in hosts), path=path,
        reload="echo reloaded", transfer="push", autodeploy="true"))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "staging", "feature",
                     lambda repo: open(repo / "feature", "w").write("1\n"))
    # Pushed in the same push, on a branch no environment deploys.
    wip = commit_on(hgenv, work, "live", "live secret",
                    lambda repo: open(repo / "wip", "w").write("wip\n"))

    before = [nodes(hgenv, target) for target in targets]

    with unreadable(hosts, central_repo):
        r = hgenv.hg("push", "-v", central_repo, cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {node[:12]}" in r.out, r.text
    # With -v every line of the deploy says which host it is about: the bundle
    # writer's own "1 changesets found" and sizes are not left unprefixed (the
    # push's "2 changesets found" before the hook is hg's own).
    deploy = r.out.split("calling hook changegroup.envdeploy")[1].splitlines()[1:]
    assert deploy[0].startswith(f"deploying {node[:12]} (staging) to staging: ")
    assert deploy[-1] == f"autodeploy: staging: deployed {node[:12]}"
    prefixes = tuple(f"{h.spec}: " for h in hosts)
    assert [line for line in deploy[1:-1] if not line.startswith(prefixes)] == []
    for host in hosts:
        assert f"{host.spec}: | sending 1 changesets" in r.out, r.text
    for target, had in zip(targets, before):
        assert parent(hgenv, target) == node
        # Only the pushed staging changeset arrived, not the live one beside it.
        assert nodes(hgenv, target) == had | {node}
        assert not has(hgenv, target, wip)
        assert default_path(hgenv, target) == str(central_repo)
        [record] = journal(target)
        assert record["outcome"] == "ok" and record["to"] == node
        assert record["trigger"]["hook"] == "changegroup"
        assert record["trigger"]["source"] == "push"
        assert [s["name"] for s in record["steps"]] == ["pull", "update", "reload"]
