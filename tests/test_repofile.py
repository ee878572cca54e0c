"""Environments declared in a tracked .hgenvironments: read by the developer's
commands from the working copy, by the push hook from the pushed head, under the
hgrc, and trusted by the hook only as far as the central hgrc allows."""
import os

from envtools import clone_target, commit_on, environment, journal, parent, ssh_settings

HOOK = (
    "[extensions]\nhgext_envdeploy =\n"
    "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"
)


def write(path, text):
    with open(path, "w") as fp:
        fp.write(text)


def commit_file(hgenv, work, branch, text, message="environments"):
    """Commit .hgenvironments with `text` on `branch` of work; the new head."""
    return commit_on(hgenv, work, branch, message,
                     lambda repo: write(os.path.join(repo, ".hgenvironments"), text))


def developer(hgenv, central_repo, tmp_path, text):
    """A developer's clone whose staging has .hgenvironments with `text`, pushed to
    central, checked out; the head's hash."""
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_file(hgenv, work, "staging", text)
    hgenv.hg("push", "-q", "-r", "staging", central_repo, cwd=work, check=True)
    hgenv.hg("update", "-q", "staging", cwd=work, check=True)
    return work, node


def test_developer_deploys_and_reads_status_from_the_file_alone(
        hgenv, central_repo, tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    # The working copy's file is read: the developer is on staging.
    work, node = developer(hgenv, central_repo, tmp_path, environment(
        "staging", path=site, reload="echo from-file >> reloads"))
    assert "staging" not in open(work / ".hg" / "hgrc").read()

    r = hgenv.hg("envdeploy", "staging", cwd=work)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == node
    assert open(site / "reloads").read() == "from-file\n"
    r = hgenv.hg("envstatus", "staging", cwd=work)
    assert r.rc == 0, r.text
    assert f"local: {node[:12]}" in r.out and "up to date" in r.out

    r = hgenv.hg("envsetup", "staging", "-n", cwd=work)
    assert f"staging is declared in {work}/.hgenvironments" in r.out, r.text
    # --debug names each value's file and line.
    r = hgenv.hg("envdeploy", "staging", "-n", "--debug", cwd=work)
    assert (f"envdeploy: config: {work}/.hgenvironments:3: "
            "environments.staging.reload=echo from-file >> reloads") in r.out


def test_hgrc_overrides_the_file_key_by_key(hgenv, central_repo, tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    work, _node = developer(hgenv, central_repo, tmp_path, environment(
        "staging", path=site, reload="echo from-file >> reloads",
        check="echo checked-from-file"))
    # An environment-wide default in the hgrc beats the file's ENV.KEY too.
    hgenv.write_hgrc(work, "[envdeploy]\nreload = echo from-hgrc >> reloads\n")

    r = hgenv.hg("envdeploy", "staging", "-v", "--debug", cwd=work)

    assert r.rc == 0, r.text
    assert open(site / "reloads").read() == "from-hgrc\n"
    assert "checked-from-file" in r.out  # the keys the hgrc leaves alone still count
    assert (f"{work}/.hgenvironments:3: staging.reload overridden by "
            f"{work}/.hg/hgrc:") in r.out


def test_a_secret_in_the_file_is_an_error(hgenv, central_repo, tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    work, _node = developer(hgenv, central_repo, tmp_path, environment(
        "staging", path=site, env_TOKEN="s3cr3t-in-history"))
    hgenv.write_hgrc(work, "[environments]\nstaging.secret = TOKEN\n")

    r = hgenv.hg("envdeploy", "staging", cwd=work)

    assert r.rc != 0
    assert (f"config error: {work}/.hgenvironments:3: the value of secret TOKEN "
            "does not belong in .hgenvironments") in r.err
    assert "s3cr3t-in-history" not in r.text
    assert journal(site) == []


# --- the push hook in the central repository, with real SSH hosts


def _central(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path, hgrc):
    """Targets cloned on host0 and host1 at remote_dir/site; the developer's clone."""
    path = os.path.join(remote_dir, "site")
    targets = [clone_target(hgenv, central_repo, sshd_hosts.local_path(h, path))
               for h in sshd_hosts.hosts[:2]]
    hgenv.write_hgrc(central_repo, HOOK + ssh_settings(sshd_hosts) + hgrc)
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    return path, targets, work


def test_hook_ignores_where_a_pushed_file_says_to_deploy(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "site")
    path, (t0, t1), work = _central(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path,
        environment("staging", hosts=h0.spec, path=path, autodeploy="true"))
    before = parent(hgenv, t1)
    # A push that tries to send staging elsewhere, with another key.
    node = commit_file(hgenv, work, "staging", environment(
        "staging", hosts=h1.spec, identity="/tmp/stolen_key",
        reload="echo reloaded-as-the-file-says"))

    r = hgenv.hg("push", "-r", "staging", central_repo, cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {node[:12]}" in r.text
    assert parent(hgenv, t0) == node  # where the central hgrc says
    assert parent(hgenv, t1) == before  # not where the push said
    assert journal(t1) == []
    assert "staging.hosts, staging.identity" in r.err
    assert "trustrepofile = true" in r.err
    # The file's other keys apply: the commands come with the code.
    assert "reload" in [s["name"] for s in journal(t0)[-1]["steps"]]


def test_hook_with_trustrepofile_deploys_environments_of_the_file_alone(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path, (t0, t1), work = _central(
        hgenv, central_repo, sshd_hosts, remote_dir, tmp_path,
        "trustrepofile = true\n")  # in [envdeploy], after ssh_settings
    before = parent(hgenv, t0)
    node = commit_file(hgenv, work, "staging", environment(
        "staging", hosts=h1.spec, path=path, autodeploy="true"))

    r = hgenv.hg("push", "-r", "staging", central_repo, cwd=work)

    assert r.rc == 0, r.text
    assert f"autodeploy: staging: deployed {node[:12]}" in r.text
    assert parent(hgenv, t1) == node
    assert parent(hgenv, t0) == before
    assert "ignoring" not in r.err
