"""ENV.layout = releases: path/repo, path/releases/ID (hg share), path/shared,
path/current switched atomically; rollbacks switch back without hg update; keep."""
import os

import pytest

from envtools import MIGRATE, PYTHON, commit_on, environment, journal, journal_lines, migrations


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


def change(name):
    def edit(repo):
        with open(os.path.join(repo, "release.txt"), "w") as fp:
            fp.write(name + "\n")
    return edit


def deployed_twice(hgenv, central_repo, tmp_path, **keys):
    target = setup_site(hgenv, central_repo, tmp_path, **keys)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = release_of(target)
    node = commit_on(hgenv, central_repo, "staging", "second", change("second"))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    return target, first, release_of(target), node


def test_rollback_switches_back_without_hg_update(hgenv, central_repo, tmp_path):
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    assert first != second and on_disk(target) == [first, second]
    old = parent_of(hgenv, os.path.join(target, "releases", first))

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert release_of(target) == first
    assert parent_of(hgenv, os.path.join(target, "current")) == old
    record = repojournal(target)[-1]
    assert record["kind"] == "rollback" and record["outcome"] == "ok"
    assert record["release"] == first
    names = [s["name"] for s in record["steps"]]
    assert "update" not in names and "pull" not in names, names
    assert names == ["switch", "reload"], names
    # The newer release stays on disk: deploying it again is a switch away.
    assert on_disk(target) == [first, second]


def test_a_rollback_starts_no_hg_and_keep_saves_the_edits_it_left(hgenv, central_repo,
                                                                  tmp_path):
    """Speed: the rollback reads the live release from its node file and
    leaves it as it is (no hg on the target); the release it left is not
    looked at, so keep saves its manual edits before removing it."""
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path, keep=2)
    log = tmp_path / "hg.log"
    wrapper = tmp_path / "hg"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                       f'exec {os.path.join(os.path.dirname(PYTHON), "hg")} "$@"\n')
    wrapper.chmod(0o755)
    counted = f"--config=environments.staging.hg={wrapper}"
    edited = os.path.join(target, "releases", second, "release.txt")
    with open(edited, "w") as fp:
        fp.write("fixed by hand\n")

    r = hgenv.hg("envrollback", "staging", counted, cwd=central_repo)

    assert r.rc == 0, r.text
    assert not log.exists(), log.read_text()
    assert release_of(target) == first
    record = repojournal(target)[-1]
    assert record["kind"] == "rollback" and record["from"] == node
    assert record["dirty"] is None  # not looked for
    assert open(edited).read() == "fixed by hand\n"

    # The next deploy keeps both (first was live before it); the one after
    # removes both, saving second's edits first, and only second's.
    for n in (3, 4):
        commit_on(hgenv, central_repo, "staging", f"r{n}", change(f"r{n}"))
        r = hgenv.hg("envdeploy", "staging", counted, cwd=central_repo)
        assert r.rc == 0, r.text
        if n == 3:
            assert on_disk(target) == sorted([first, second, release_of(target)])
    assert first not in on_disk(target) and second not in on_disk(target)
    patches = os.path.join(target, "repo", ".hg", "envdeploy", "patches")
    [saved] = [f for f in os.listdir(patches) if f.endswith(f"-{second}.patch")]
    assert [f for f in os.listdir(patches) if first in f] == []
    with open(os.path.join(patches, saved)) as fp:
        assert "+fixed by hand" in fp.read()
    assert (f"manual edits in release {second} saved as "
            f"{target}/repo/.hg/envdeploy/patches/{saved} before keep removed it") in r.err
    # One hg for the save, beside the deploy's own command server.
    assert sum("diff --git" in line for line in log.read_text().splitlines()) == 1


def test_failed_check_after_the_switch_switches_back(hgenv, central_repo, tmp_path):
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    commit_on(hgenv, central_repo, "staging", "third", change("third"))
    hgenv.write_hgrc(central_repo, environment(
        "staging", **layout(target, migrate=MIGRATE, check="grep -q second release.txt")))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0 and "rolled back" in r.err, r.text
    assert release_of(target) == second
    record = repojournal(target)[-1]
    assert record["failed"] == "check" and record["release"] == second
    back = [s["name"] for s in record["rollback"]["steps"]]
    assert back == ["switch", "reload", "check"], back
    assert len(on_disk(target)) == 3  # the failed release is kept, to look at


def test_failed_migrate_leaves_current_untouched(hgenv, central_repo, tmp_path):
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    before = os.readlink(os.path.join(target, "current"))
    commit_on(hgenv, central_repo, "staging", "third", change("third"))
    hgenv.write_hgrc(central_repo, environment(
        "staging", **layout(target, migrate="false")))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    assert os.readlink(os.path.join(target, "current")) == before
    record = repojournal(target)[-1]
    assert record["failed"] == "migrate"
    assert "switch" not in [s["name"] for s in record["steps"]]
    assert "switch" not in [s["name"] for s in record["rollback"]["steps"]]


def test_a_failed_share_leaves_no_release_and_nothing_live_changed(hgenv, central_repo,
                                                                    tmp_path):
    """The share (in the command server) refused by a pre-share hook: no
    half-made release stays, current is untouched, the lock is free."""
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    before = os.readlink(os.path.join(target, "current"))
    hgrc = os.path.join(target, "repo", ".hg", "hgrc")
    with open(hgrc) as fp:
        saved = fp.read()
    with open(hgrc, "a") as fp:
        fp.write("[hooks]\npre-share.refuse = echo no shares today; exit 1\n")
    third = commit_on(hgenv, central_repo, "staging", "third", change("third"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    assert "no shares today" in r.text and "release" in r.err, r.text
    assert os.readlink(os.path.join(target, "current")) == before
    assert on_disk(target) == [first, second]
    with open(hgrc, "w") as fp:
        fp.write(saved)
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)  # the lock was freed
    assert r.rc == 0, r.text
    assert parent_of(hgenv, os.path.join(target, "current")) == third


def test_a_failed_link_leaves_current_untouched_and_the_undo_in_the_live_release(
        hgenv, central_repo, tmp_path):
    """The link step, run in the same round trip as entering the new release,
    fails (a linked path under a tracked file): the undo's reload runs in the
    live release and sees it as ENVDEPLOY_RELEASE, not the failed one."""
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    before = os.readlink(os.path.join(target, "current"))
    commit_on(hgenv, central_repo, "staging", "third", change("third"))
    seen = os.path.join(target, "shared", "seen")
    keys = layout(target, migrate=MIGRATE,
                  reload=f'echo "$ENVDEPLOY_RELEASE $(pwd -P)" >> {seen}')
    keys["linked"] = "db.sqlite3 release.txt/x"  # release.txt is a file
    hgenv.write_hgrc(central_repo, environment("staging", **keys))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    assert "link exited with status" in r.err, r.text
    assert os.readlink(os.path.join(target, "current")) == before
    record = repojournal(target)[-1]
    assert record["failed"] == "link" and record["outcome"] != "ok"
    live = os.path.realpath(os.path.join(target, "releases", second))
    assert open(seen).read().split() == [live, live]
    keys["linked"] = "db.sqlite3"
    hgenv.write_hgrc(central_repo, environment("staging", **keys))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)  # the lock was freed
    assert r.rc == 0, r.text
    new = os.path.realpath(os.path.join(target, "current"))
    assert open(seen).read().split()[2:] == [new, new] and new != live


def test_keep_prunes_old_releases_never_the_live_one(hgenv, central_repo, tmp_path):
    target = setup_site(hgenv, central_repo, tmp_path, keep=2)
    made = []
    for n in range(4):
        if n:
            commit_on(hgenv, central_repo, "staging", f"r{n}", change(f"r{n}"))
        hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
        made.append(release_of(target))
        assert release_of(target) in on_disk(target)
    assert on_disk(target) == made[-2:]
    # A rollback to the previous one, then a deploy: the one rolled back
    # from is the oldest but stays, as live's predecessor... only 2 kept.
    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)
    assert release_of(target) == made[-2]
    assert made[-2] in on_disk(target)


def test_envstatus_says_the_release(hgenv, central_repo, tmp_path):
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    import json
    r = hgenv.hg("envstatus", "staging", "-T", "json", cwd=central_repo)
    assert r.rc == 0, r.text
    [row] = json.loads(r.out)
    assert row["release"] == second and row["node"] == node
    assert row["releases"] == [first, second]
    r = hgenv.hg("envstatus", "staging", cwd=central_repo)
    assert f"release {second}" in r.out, r.out


def test_envsetup_converts_an_inplace_clone(hgenv, central_repo, tmp_path):
    from envtools import clone_target, parent
    target = str(clone_target(hgenv, central_repo, tmp_path / "site"))
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    node = parent(hgenv, target)
    hgenv.write_hgrc(central_repo, environment(
        "staging", **layout(target, migrate=MIGRATE)))

    r = hgenv.hg("envsetup", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "converted: in-place clone at %s" % node[:12] in r.out, r.out
    assert parent_of(hgenv, os.path.join(target, "current")) == node
    assert os.path.exists(os.path.join(target, "shared", "db.sqlite3"))
    assert len(repojournal(target)) == 1  # the journal came along
    # and the next deploy is one of the layout
    commit_on(hgenv, central_repo, "staging", "second", change("second"))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert len(on_disk(target)) == 2


def test_envsetup_converts_only_under_the_deploy_lock(hgenv, central_repo, tmp_path):
    """A deploy that takes the lock after envsetup looked for one (here: a
    pre-status hook of the clone's, run by that very look) stops the
    conversion: nothing moves.  A conversion leaves no lock behind."""
    import subprocess
    from envtools import clone_target, parent
    target = str(clone_target(hgenv, central_repo, tmp_path / "site"))
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    node = parent(hgenv, target)
    holder = subprocess.Popen(["sleep", "60"])
    hgrc = os.path.join(target, ".hg", "hgrc")
    with open(hgrc) as fp:
        saved = fp.read()
    with open(hgrc, "a") as fp:
        fp.write("[hooks]\npre-status.racer = mkdir .hg/envdeploy/lock && printf "
                 f"'user=Racer\\ncommand=envdeploy staging\\npid={holder.pid}\\n"
                 f"node=%s\\n' \"$(uname -n)\" > .hg/envdeploy/lock/info\n")
    hgenv.write_hgrc(central_repo, environment(
        "staging", **layout(target, migrate=MIGRATE)))
    try:
        r = hgenv.hg("envsetup", "staging", cwd=central_repo)
    finally:
        holder.kill()
        holder.wait()

    assert r.rc != 0, r.text
    assert "a deploy holds the lock of %s: Racer on ?" % target in r.text, r.text
    assert f"envdeploy staging, pid {holder.pid}" in r.text
    assert sorted(os.listdir(target)).count(".hg") == 1
    assert not {"repo", "releases", "current"} & set(os.listdir(target))
    assert parent(hgenv, target) == node
    assert os.path.isdir(os.path.join(target, ".hg", "envdeploy", "lock"))  # the racer's
    with open(hgrc, "w") as fp:
        fp.write(saved)
    # A lock there already: refused at the first look, naming the holder.
    r = hgenv.hg("envsetup", "staging", cwd=central_repo)
    assert r.rc != 0 and "a deploy holds the lock of %s: Racer on ?" % target in r.text
    assert "run envsetup again when it is done" in r.text, r.text
    assert not {"repo", "releases", "current"} & set(os.listdir(target))

    import shutil
    shutil.rmtree(os.path.join(target, ".hg", "envdeploy", "lock"))
    r = hgenv.hg("envsetup", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert parent_of(hgenv, os.path.join(target, "current")) == node
    assert not os.path.exists(os.path.join(target, "repo", ".hg", "envdeploy", "lock"))
    assert not os.path.exists(os.path.join(target, ".hg"))


# -- a real gunicorn serving path/current ---------------------------------------

import threading  # noqa: E402
import time  # noqa: E402

from djangoproject import add_revision_views  # noqa: E402
from envtools import PYTHON  # noqa: E402

HTTPGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "httpget.py")


def revision_release(hgenv, central_repo, name):
    def edit(repo):
        add_revision_views(repo, boot=1.0)
        change(name)(repo)
    return commit_on(hgenv, central_repo, "staging", name, edit)


class Client:
    """Requests /revision/ one after the other until stopped: at most MAX
    requests, at most SECONDS; every answer kept, in order."""
    MAX, SECONDS = 3000, 120

    def __init__(self, server):
        self.server = server
        self.answers = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        deadline = time.monotonic() + self.SECONDS
        while (not self.stop.is_set() and len(self.answers) < self.MAX
               and time.monotonic() < deadline):
            self.answers.append(self.server.get("/revision/", timeout=15))
            time.sleep(0.02)

    def finish(self):
        time.sleep(0.3)  # a few answers after the run
        self.stop.set()
        self.thread.join(30)
        return self.answers


def changes_once(answers, old, new):
    """Every answer 200; the revisions old...old then new...new."""
    assert answers, "no answer at all"
    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:5]
    revisions = [body.strip() for _status, body in answers]
    assert set(revisions) <= {old, new}, set(revisions)
    switched = revisions.index(new) if new in revisions else len(revisions)
    assert revisions[:switched] == [old] * switched
    assert revisions[switched:] == [new] * (len(revisions) - switched), revisions
    assert revisions[-1] == new


def test_gunicorn_serves_old_then_new_never_a_mix(hgenv, central_repo, tmp_path,
                                                   gunicorn):
    first = revision_release(hgenv, central_repo, "first")
    target = setup_site(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    server = gunicorn(os.path.join(target, "current"))
    server.wait_for("/revision/", first + "\n")
    served = (f'r=$({PYTHON} {HTTPGET} {server.url}/health/ 0.5) || exit; '
              f'[ "$r" = "$ENVDEPLOY_NODE" ]')
    hgenv.write_hgrc(central_repo, environment("staging", **layout(
        target, migrate=MIGRATE, reload=server.reload, check=served,
        check_timeout=15, check_interval=0.3)))
    second = revision_release(hgenv, central_repo, "second")

    client = Client(server)
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    answers = client.finish()
    assert r.rc == 0, r.text + server.logtext()
    changes_once(answers, first, second)

    client = Client(server)
    r = hgenv.hg("envrollback", "staging", cwd=central_repo)
    answers = client.finish()
    assert r.rc == 0, r.text + server.logtext()
    changes_once(answers, second, first)
    record = repojournal(target)[-1]
    assert "update" not in [s["name"] for s in record["steps"]]


def test_envlog_shows_each_runs_release(hgenv, central_repo, tmp_path):
    import json
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envlog", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    runs = r.out.split("\n\n")
    # newest first: the rollback left first live, the deploys made theirs
    assert runs[0].startswith("rollback") and f"  release {first}\n" in runs[0], r.out
    assert f"  release {second}\n" in runs[1], r.out
    assert f"  release {first}\n" in runs[2], r.out
    entries = json.loads(hgenv.hg("envlog", "staging", "-T", "json",
                                  cwd=central_repo, check=True).out)
    assert [e["release"] for e in entries] == [first, second, first]
    assert [h["release"] for h in entries[1]["hosts"]] == [second]


def test_envlog_in_place_has_no_release(hgenv, central_repo, tmp_path):
    import json
    from envtools import clone_target
    target = str(clone_target(hgenv, central_repo, tmp_path / "site"))
    hgenv.write_hgrc(central_repo, environment("staging", path=target, migrate=MIGRATE))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    r = hgenv.hg("envlog", "staging", cwd=central_repo, check=True)
    assert "release" not in r.out, r.out
    [entry] = json.loads(hgenv.hg("envlog", "staging", "-T", "json",
                                  cwd=central_repo, check=True).out)
    assert entry["release"] == ""


# -- envcheck ---------------------------------------------------------------------


def checkrows(out):
    """{check name: (status, message)} of one host's envcheck text."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("  ") and not line.strip().startswith("("):
            status, name, message = (line.split(None, 2) + [""])[:3]
            rows[name] = (status, message)
    return rows


def required(hgenv, central_repo, target):
    """The site's configuration, with a required file (in shared/)."""
    hgenv.write_hgrc(central_repo, environment("staging", **layout(
        target, migrate=MIGRATE, requiredfiles="local.cfg")))


def test_envcheck_shows_the_live_release_and_looks_in_it(hgenv, central_repo, tmp_path):
    target = setup_site(hgenv, central_repo, tmp_path)
    required(hgenv, central_repo, target)
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 1, r.text  # local.cfg is not in shared/ yet
    rows = checkrows(r.out)
    assert rows["release"] == ("ok", "no release yet: the first deploy makes one"), r.out
    assert rows["requiredfiles"] == ("FAILED", "missing: local.cfg"), r.out
    assert rows["path"] == ("ok", f"{target}: the releases layout of a clone of this project")

    with open(os.path.join(target, "shared", "local.cfg"), "w") as fp:
        fp.write("x\n")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = release_of(target)
    node = commit_on(hgenv, central_repo, "staging", "second", change("second"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    second = release_of(target)
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    rows = checkrows(r.out)
    assert rows["release"] == (
        "ok", f"releases/{second} live, at {node[:12]}; 2 releases on disk: {first}, {second}"), r.out
    assert rows["requiredfiles"] == ("ok", "local.cfg"), r.out  # in shared/
    assert rows["workingcopy"] == ("ok", "clean")

    # A manual edit in the live release is seen; one in an older release is not.
    with open(os.path.join(target, "releases", first, "release.txt"), "w") as fp:
        fp.write("edited old\n")
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    with open(os.path.join(target, "current", "release.txt"), "w") as fp:
        fp.write("edited live\n")
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 1, r.text
    assert checkrows(r.out)["workingcopy"] == (
        "FAILED", "manual edits in the live release: release.txt"), r.out
    assert "staging: 1 check failed: local (workingcopy)" in r.err


def test_envcheck_fails_when_current_is_missing_or_dangling(hgenv, central_repo, tmp_path):
    target, first, second, node = deployed_twice(hgenv, central_repo, tmp_path)
    current = os.path.join(target, "current")
    os.unlink(current)
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 1, r.text
    status, message = checkrows(r.out)["release"]
    assert status == "FAILED" and message.startswith(f"{target}/current is missing"), r.out
    assert "(run 'hg envsetup staging'" in r.out, r.out
    assert "staging: 1 check failed: local (release)" in r.err

    os.symlink(os.path.join("releases", "gone"), current)
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 1, r.text
    assert checkrows(r.out)["release"] == (
        "FAILED", f"{target}/current points to releases/gone, which is not on disk "
                  f"(2 releases on disk: {first}, {second})"), r.out


def test_envcheck_says_an_in_place_clone_needs_converting(hgenv, central_repo, tmp_path):
    from envtools import clone_target
    target = str(clone_target(hgenv, central_repo, tmp_path / "site"))
    hgenv.write_hgrc(central_repo, environment("staging", **layout(target)))
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 1, r.text
    assert checkrows(r.out)["path"] == (
        "FAILED", f"{target} is an in-place clone, not the releases layout"), r.out
    assert "(run 'hg envsetup staging': it converts it)" in r.out
    assert checkrows(r.out)["release"] == ("skipped", "needs the repository")


# -- the dry run ------------------------------------------------------------------


def test_dry_run_names_the_release_the_switch_and_what_keep_removes(hgenv, central_repo,
                                                                     tmp_path):
    target = setup_site(hgenv, central_repo, tmp_path, keep=2)
    r = hgenv.hg("envdeploy", "-n", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "  release: would make releases/" in r.out, r.out
    assert "switch: would point current at releases/" in r.out
    assert "(live now: none), before the reload" in r.out
    assert "  keep: would remove none (keep = 2)" in r.out
    assert not os.path.exists(os.path.join(target, "current"))
    assert on_disk(target) == []

    made = []
    for n in range(2):
        if n:
            commit_on(hgenv, central_repo, "staging", f"r{n}", change(f"r{n}"))
        hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
        made.append(release_of(target))
    node = commit_on(hgenv, central_repo, "staging", "r2", change("r2"))

    r = hgenv.hg("envdeploy", "-n", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    lines = [line.split(": ", 1)[1] for line in r.out.splitlines() if ": " in line]
    [made_line] = [line for line in lines if line.startswith("  release: ")]
    new = made_line.split("releases/")[1].split()[0]
    assert new not in made
    assert made_line == (f"  release: would make releases/{new} (hg share of repo) "
                         f"at {node[:12]}, linking db.sqlite3 from shared/"), r.out
    assert (f"  switch: would point current at releases/{new} (live now: {made[1]}), "
            f"before the reload") in lines, r.out
    assert f"  keep: would remove {made[0]} (keep = 2)" in lines, r.out
    # in the order the deploy does them
    order = [next(i for i, line in enumerate(lines) if line.startswith(p))
             for p in ("  release:", "  migrate:", "  switch:", "  reload:", "  keep:")]
    assert order == sorted(order), r.out
    # nothing changed
    assert release_of(target) == made[1] and on_disk(target) == made


@pytest.mark.parametrize("cmdserver", [True, False], ids=["cmdserver", "processes"])
def test_a_release_is_made_by_the_running_command_server(hgenv, central_repo, tmp_path,
                                                         cmdserver):
    """Speed: one hg process for the whole deploy, the share and the new
    release's update included (an hg wrapper logs every hg process started
    on the target); the update's hooks still see the new release.  Without
    the command server, the same with a process per hg command."""
    target = setup_site(hgenv, central_repo, tmp_path)
    log = tmp_path / "hg.log"
    wrapper = tmp_path / "hg"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {hgenv.hg_executable} "$@"\n')
    wrapper.chmod(0o755)
    hgenv.write_hgrc(central_repo, environment("staging", **layout(
        target, migrate=MIGRATE, hg=str(wrapper)))
        + f"[envdeploy]\ncmdserver = {str(cmdserver).lower()}\n")
    seen = tmp_path / "hook.log"
    with open(os.path.join(target, "repo", ".hg", "hgrc"), "a") as fp:  # share-safe
        fp.write('[hooks]\nupdate.seen = echo "$ENVDEPLOY_RELEASE $ENVDEPLOY_NODE '
                 f'$(pwd -P) $(readlink .hg/envdeploy)" >> {seen}\n')
    for n in range(2):
        if n:
            commit_on(hgenv, central_repo, "staging", "second", change("second"))
        log.write_text("")

        r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

        assert r.rc == 0, r.text
        started = log.read_text().splitlines()
        if cmdserver:
            assert started == ["serve --cmdserver pipe"]
        else:
            assert len(started) > 2 and not [c for c in started if "serve" in c], started
        live = release_of(target)
        release = os.path.realpath(os.path.join(target, "releases", live))
        node = hgenv.hg("log", "-r", "staging", "-T", "{node}", cwd=central_repo).out
        assert seen.read_text().splitlines()[-1].split() == [
            release, node, release, "../../../repo/.hg/envdeploy"]
        assert parent_of(hgenv, os.path.join(target, "current")) == node
        record = repojournal(target)[-1]
        assert record["outcome"] == "ok" and record["release"] == live
        assert record["to"] == node
        names = [s["name"] for s in record["steps"]]
        assert names[names.index("release"):][:3] == ["release", "update", "link"]
    # Each run's begin line written ahead by the update's hook, into repo's journal.
    lines = journal_lines(os.path.join(target, "repo"))
    assert [r["phase"] for r in lines] == ["begin", "migrating", "end", "begin", "end"]
