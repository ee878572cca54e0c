"""ENV.layout = releases: path/repo, path/releases/ID (hg share), path/shared,
path/current switched atomically; rollbacks switch back without hg update; keep."""
import os

from envtools import MIGRATE, commit_on, environment, journal, migrations


def layout(target, **keys):
    return dict(path=target, layout="releases", linked="db.sqlite3", **keys)


def release_of(target):
    """The live release's id, by the symlink."""
    return os.path.basename(os.readlink(os.path.join(target, "current")))


def on_disk(target):
    return sorted(os.listdir(os.path.join(target, "releases")))


def parent_of(hgenv, directory):
    return hgenv.hg("log", "-R", directory, "-r", ".", "-T", "{node}", check=True).out


def repojournal(target):
    return journal(os.path.join(target, "repo"))


def setup_site(hgenv, central_repo, tmp_path, **keys):
    target = str(tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", **layout(target, migrate=MIGRATE,
                            reload="echo reloaded >> ../../shared/reloads", **keys)))
    r = hgenv.hg("envsetup", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    return target


def test_envsetup_then_deploy_makes_a_release_and_switches(hgenv, central_repo, tmp_path):
    target = setup_site(hgenv, central_repo, tmp_path)
    assert os.path.isdir(os.path.join(target, "repo", ".hg"))
    assert not os.path.exists(os.path.join(target, "current"))
    assert on_disk(target) == []

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    live = release_of(target)
    assert on_disk(target) == [live]
    head = hgenv.hg("log", "-r", "staging", "-T", "{node}", cwd=central_repo).out
    assert parent_of(hgenv, os.path.join(target, "current")) == head
    # migrate ran from the release, on the shared database
    assert os.path.islink(os.path.join(target, "current", "db.sqlite3"))
    assert len(migrations(os.path.join(target, "shared"))) == 3
    record = repojournal(target)[-1]
    assert record["outcome"] == "ok" and record["release"] == live
    names = [s["name"] for s in record["steps"]]
    assert names.index("migrate") < names.index("switch") < names.index("reload")
