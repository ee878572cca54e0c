"""Nothing lost on the target: manual edits and untracked files a deploy replaces.

Real hg on real repositories; local environments, and one over the real sshd.
Each test restores with the command the deploy printed, as a user would.
"""
import os
import re
import stat

from envtools import (
    clone_target, commit_on, environment, journal, parent, ssh_settings,
    ssh_targets,
)

BINARY = bytes(range(256)) + b"\0\0end"
EDITED_BINARY = b"\x89PNG\r\n\x1a\n\0\xff\xfe" + bytes(range(255, -1, -1))
NEW_BINARY = b"\0\1\2 new \xff"

# hg status -C after make_every_edit, and after the restore: a file deleted
# without hg rm comes back removed (R), as hg import leaves it.
EDITED = """\
M manage.py
M mysite/urls.py
M scripts/run.sh
M static/logo.bin
A docs/renamed.txt
  docs/moved.txt
A hotfix.py
A static/new.bin
R docs/moved.txt
R docs/old.txt
! docs/gone.txt
"""
RESTORED = EDITED.replace("R docs/moved.txt\nR docs/old.txt\n! docs/gone.txt",
                          "R docs/gone.txt\nR docs/moved.txt\nR docs/old.txt")


def extra_files(repo):
    """Tracked files for every kind of edit."""
    os.makedirs(repo / "static", exist_ok=True)
    os.makedirs(repo / "docs", exist_ok=True)
    os.makedirs(repo / "scripts", exist_ok=True)
    (repo / "static" / "logo.bin").write_bytes(BINARY)
    (repo / "scripts" / "run.sh").write_text("#!/bin/sh\necho run\n")
    for name in ("old.txt", "gone.txt", "moved.txt"):
        (repo / "docs" / name).write_text(f"{name}\n")


def site(hgenv, central_repo, tmp_path, setup=extra_files):
    """A local staging target deployed once at a changeset with the extra files."""
    if setup:
        commit_on(hgenv, central_repo, "staging", "extra files", setup)
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    return target


def make_every_edit(hgenv, target):
    """Every kind of manual edit; returns hg status -C before the deploy."""
    def hg(*args):
        hgenv.hg(*args, cwd=target, check=True)

    # Settings of the target's user that would make a diff lossy.
    hgenv.write_hgrc(target, "[diff]\nignorews = true\nignoreblanklines = true\n")
    t = str(target)
    with open(os.path.join(t, "mysite", "urls.py"), "a") as fp:
        fp.write("# hotfix typed on the server\n")
    with open(os.path.join(t, "manage.py"), "a") as fp:
        fp.write("   \n\n")  # whitespace only
    with open(os.path.join(t, "static", "logo.bin"), "wb") as fp:
        fp.write(EDITED_BINARY)
    os.chmod(os.path.join(t, "scripts", "run.sh"), 0o755)
    hg("rm", "-q", "docs/old.txt")
    os.remove(os.path.join(t, "docs", "gone.txt"))
    hg("mv", "-q", "docs/moved.txt", "docs/renamed.txt")
    with open(os.path.join(t, "hotfix.py"), "w") as fp:
        fp.write("FIX = True\n")
    with open(os.path.join(t, "static", "new.bin"), "wb") as fp:
        fp.write(NEW_BINARY)
    hg("add", "-q", "hotfix.py", "static/new.bin")
    return status(hgenv, target)


def snapshot(target):
    """{path: (bytes, executable)} of the working copy, .hg left out."""
    files = {}
    for root, dirs, names in os.walk(target):
        dirs[:] = [d for d in dirs if d != ".hg" and d != "__pycache__"]
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fp:
                files[os.path.relpath(path, target)] = (
                    fp.read(), bool(os.stat(path).st_mode & stat.S_IXUSR))
    return files


def status(hgenv, target):
    return hgenv.hg("status", "-C", cwd=target, check=True).out


def leftovers(target):
    """.rej and .orig files anywhere in the working copy."""
    return [name for name in snapshot(target)
            if name.endswith((".rej", ".orig"))]


def restore_command(output):
    [command] = re.findall(r"\(to restore them: (.*)\)$", output, re.M)
    return command


def test_every_kind_of_edit_comes_back(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    before = make_every_edit(hgenv, target)
    edited = snapshot(target)
    assert before == EDITED
    new = commit_on(hgenv, central_repo, "staging", "news",
                    lambda r: (r / "NEWS.txt").write_text("news\n"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == new
    record = journal(target)[-1]
    run = record["id"]
    patch = f".hg/envdeploy/patches/{run}.patch"
    assert record["patch"] == patch and record["untracked"] == []
    assert sorted(record["dirty"]) == sorted(
        line[2:] for line in before.splitlines() if line[0] != " ")
    assert (f"local: manual edits to {', '.join(record['dirty'])} saved as "
            f"{target}/{patch} (to restore them: cd {target} && ") in r.err
    assert "untracked files" not in r.text
    # The update left a clean tree: the added files were set aside.
    assert status(hgenv, target) == ""
    aside = os.path.join(target, ".hg", "envdeploy", "patches", run, "added")
    assert open(os.path.join(aside, "hotfix.py")).read() == "FIX = True\n"
    assert leftovers(target) == []

    command = restore_command(r.err)
    assert command.endswith(f"import --no-commit {patch}")
    restored = hgenv.run(["sh", "-c", command])

    assert restored.rc == 0, restored.text
    edited["NEWS.txt"] = (b"news\n", False)
    assert snapshot(target) == edited  # contents, binary bytes, exec bits
    assert not os.path.exists(os.path.join(target, "docs", "gone.txt"))
    assert status(hgenv, target) == RESTORED
    assert leftovers(target) == []


def test_untracked_and_ignored_files_the_update_replaces_are_saved(
        hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path, setup=None)
    t = str(target)
    files = {
        "notes.txt": "untracked notes\n",
        "local_settings.py": "SECRET = 'from the server'\n",  # ignored
        "extra.py": "added on the server\n",  # hg add
    }
    for name, text in files.items():
        with open(os.path.join(t, name), "w") as fp:
            fp.write(text)
    os.makedirs(os.path.join(t, "media"))
    with open(os.path.join(t, "media", "upload.png"), "wb") as fp:
        fp.write(b"\x89PNG upload")
    hgenv.hg("add", "-q", "extra.py", cwd=target, check=True)
    with open(os.path.join(t, "mysite", "urls.py"), "a") as fp:
        fp.write("# edit\n")
    assert "I local_settings.py" in hgenv.hg("status", "-i", cwd=target).out

    def change(repo):
        for name in files:
            (repo / name).write_text(f"{name} as committed\n")
        hgenv.hg("add", "-q", "local_settings.py", cwd=repo, check=True)
    new = commit_on(hgenv, central_repo, "staging", "track them", change)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == new
    run = journal(target)[-1]["id"]
    saved = os.path.join(t, ".hg", "envdeploy", "patches", run, "untracked")
    assert (f"local: untracked files that the update would overwrite saved in "
            f"{saved}: extra.py, local_settings.py, notes.txt") in r.err
    # extra.py is in the patch no more: the patch would fail to create it.
    assert "local: manual edits to mysite/urls.py saved as" in r.err
    record = journal(target)[-1]
    assert record["untracked"] == ["extra.py", "local_settings.py", "notes.txt"]
    assert record["dirty"] == ["mysite/urls.py", "extra.py"]
    for name, text in files.items():
        assert open(os.path.join(saved, name)).read() == text
        assert open(os.path.join(t, name)).read() == f"{name} as committed\n"
    # Not in the way of the update: left alone, not saved.
    assert open(os.path.join(t, "media", "upload.png"), "rb").read() == b"\x89PNG upload"
    assert sorted(os.listdir(saved)) == sorted(files)
    assert leftovers(target) == []
    assert status(hgenv, target) == "? media/upload.png\n"

    restored = hgenv.run(["sh", "-c", restore_command(r.err)])

    assert restored.rc == 0, restored.text
    assert status(hgenv, target) == "M mysite/urls.py\n? media/upload.png\n"
    assert leftovers(target) == []


def test_nothing_to_save_saves_and_says_nothing(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    with open(os.path.join(target, "untouched.log"), "w") as fp:
        fp.write("not in the way\n")
    commit_on(hgenv, central_repo, "staging", "more",
              lambda r: (r / "NEWS.txt").write_text("news\n"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "saved" not in r.text
    assert not os.path.exists(os.path.join(target, ".hg", "envdeploy", "patches"))
    record = journal(target)[-1]
    assert record["patch"] is None and record["untracked"] == []
    assert record["outcome"] == "ok"
    assert open(os.path.join(target, "untouched.log")).read() == "not in the way\n"


def test_a_failed_pull_leaves_the_live_tree_as_it_was(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    before = make_every_edit(hgenv, target)
    edited = snapshot(target)
    # A developer's clone with an unpushed commit; the target pulls from central.
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    commit_on(hgenv, work, "staging", "not pushed",
              lambda r: (r / "hotfix.py").write_text("FIX = False\n"))
    hgenv.write_hgrc(work, environment("staging", path=target))

    r = hgenv.hg("envdeploy", "staging", cwd=work)

    assert r.rc != 0
    assert journal(target)[-1]["failed"] == "pull"
    assert "manual edits to" in r.err
    # Still the edited tree; hg rm -A marked the deleted file removed.
    assert snapshot(target) == edited
    assert status(hgenv, target) == RESTORED
    # The next deploy from central saves the edits again and goes through.
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert status(hgenv, target) == ""


def test_rollback_saves_edits_and_untracked_files(hgenv, central_repo, tmp_path):
    target = site(hgenv, central_repo, tmp_path)
    first = parent(hgenv, target)
    commit_on(hgenv, central_repo, "staging", "drop old.txt",
              lambda r: os.remove(r / "docs" / "old.txt"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    t = str(target)
    with open(os.path.join(t, "docs", "old.txt"), "w") as fp:
        fp.write("recreated by hand\n")
    with open(os.path.join(t, "hotfix.py"), "w") as fp:
        fp.write("FIX = True\n")
    hgenv.hg("add", "-q", "hotfix.py", cwd=target, check=True)
    with open(os.path.join(t, "mysite", "urls.py"), "a") as fp:
        fp.write("# edit\n")

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == first
    record = journal(target)[-1]
    assert record["kind"] == "rollback" and record["untracked"] == ["docs/old.txt"]
    saved = os.path.join(t, ".hg", "envdeploy", "patches", record["id"], "untracked")
    assert (f"untracked files that the update would overwrite saved in {saved}: "
            f"docs/old.txt") in r.err
    assert open(os.path.join(saved, "docs", "old.txt")).read() == "recreated by hand\n"
    assert open(os.path.join(t, "docs", "old.txt")).read() == "old.txt\n"
    assert status(hgenv, target) == ""

    restored = hgenv.run(["sh", "-c", restore_command(r.err)])

    assert restored.rc == 0, restored.text
    assert status(hgenv, target) == "M mysite/urls.py\nA hotfix.py\n"
    assert leftovers(target) == []


def test_an_edit_the_new_changeset_also_changes(hgenv, central_repo, tmp_path):
    # The patch is saved whole; what conflicts is the user's to merge.
    target = site(hgenv, central_repo, tmp_path)
    with open(os.path.join(target, "docs", "old.txt"), "w") as fp:
        fp.write("edited on the server\n")
    with open(os.path.join(target, "mysite", "urls.py"), "a") as fp:
        fp.write("# edit\n")
    commit_on(hgenv, central_repo, "staging", "old.txt changed",
              lambda r: (r / "docs" / "old.txt").write_text("changed upstream\n"))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text

    restored = hgenv.run(["sh", "-c", restore_command(r.err)])

    assert restored.rc != 0
    assert "abort: patch failed to apply" in restored.err
    assert "saving rejects to file docs/old.txt.rej" in restored.text
    assert status(hgenv, target) == "M mysite/urls.py\n? docs/old.txt.rej\n"


def test_a_parent_this_repository_lacks(hgenv, central_repo, tmp_path):
    # Someone committed on the target: the host says which files it tracks.
    target = site(hgenv, central_repo, tmp_path, setup=None)
    with open(os.path.join(target, "made-here.txt"), "w") as fp:
        fp.write("committed on the server\n")
    hgenv.hg("commit", "-q", "-A", "-m", "on the server", cwd=target, check=True)
    with open(os.path.join(target, "notes.txt"), "w") as fp:
        fp.write("untracked notes\n")
    commit_on(hgenv, central_repo, "staging", "notes",
              lambda r: (r / "notes.txt").write_text("committed notes\n"))

    # (--force: a changeset this repository lacks is refused otherwise.)
    r = hgenv.hg("envdeploy", "staging", "--force", cwd=central_repo)

    assert r.rc == 0, r.text
    record = journal(target)[-1]
    assert record["untracked"] == ["notes.txt"]
    saved = os.path.join(target, ".hg", "envdeploy", "patches", record["id"],
                         "untracked", "notes.txt")
    assert open(saved).read() == "untracked notes\n"
    assert "manual edits" not in r.text


def test_an_untracked_file_where_a_directory_comes(hgenv, central_repo, tmp_path):
    # Mercurial refuses to replace a file by a directory: the update fails,
    # the deploy rolls back, the file stays where it was.
    target = site(hgenv, central_repo, tmp_path, setup=None)
    before = parent(hgenv, target)
    with open(os.path.join(target, "docs"), "w") as fp:
        fp.write("a file named docs\n")
    commit_on(hgenv, central_repo, "staging", "docs", extra_files)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert "local (update)" in r.err
    assert "Not a directory" in r.err
    assert parent(hgenv, target) == before
    assert open(os.path.join(target, "docs")).read() == "a file named docs\n"
    assert journal(target)[-1]["rollback"]["outcome"] == "ok"


# --- over SSH ---------------------------------------------------------------


def many_files(repo):
    """More new files than hg is asked about (edits.MAXPATTERNS)."""
    os.makedirs(repo / "assets")
    for i in range(250):
        (repo / "assets" / f"f{i:03d}.txt").write_text(f"asset {i}\n")


def test_edits_and_untracked_files_over_ssh(hgenv, central_repo, sshd_hosts, remote_dir):
    host = sshd_hosts.hosts[0]
    path = os.path.join(remote_dir, "project")
    commit_on(hgenv, central_repo, "staging", "extra files", extra_files)
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [host], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + environment(
        "staging", hosts=host.spec, path=path))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = make_every_edit(hgenv, target)
    edited = snapshot(target)
    os.makedirs(os.path.join(target, "assets"))
    with open(os.path.join(target, "assets", "f123.txt"), "w") as fp:
        fp.write("uploaded by hand\n")
    edited["assets/f123.txt"] = (b"uploaded by hand\n", False)
    new = commit_on(hgenv, central_repo, "staging", "assets", many_files)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == new
    record = journal(target)[-1]
    assert record["untracked"] == ["assets/f123.txt"]
    saved = f"{path}/.hg/envdeploy/patches/{record['id']}/untracked"
    assert (f"{host.spec}: untracked files that the update would overwrite saved "
            f"in {saved}: assets/f123.txt") in r.err
    assert f"{host.spec}: manual edits to " in r.err
    local_saved = sshd_hosts.local_path(host, saved)
    assert open(os.path.join(local_saved, "assets", "f123.txt")).read() == "uploaded by hand\n"
    assert status(hgenv, target) == ""
    assert leftovers(target) == []

    command = restore_command(r.err)
    assert command.startswith(f"cd {path} && hg import --no-commit ")
    restored = sshd_hosts.ssh(host, command)

    assert restored.returncode == 0, restored.stdout + restored.stderr
    now = snapshot(target)
    assert now.pop("assets/f123.txt") == (b"asset 123\n", False)
    del edited["assets/f123.txt"]
    assert {k: v for k, v in now.items() if not k.startswith("assets/")} == edited
    assert status(hgenv, target) == RESTORED
    assert leftovers(target) == []
