"""Reloads that are verified: a real gunicorn, reloaded with HUP, checked with
check.timeout and a check comparing the revision served with $ENVDEPLOY_NODE.

HUP returns at once; gunicorn then starts new workers, which take a while to boot
(BOOT seconds here, as a real application's imports do): a check run at that instant
is answered by an old worker or by nobody.  The views report the revision the
answering worker imported when it started (tests/djangoproject.py)."""
import os

import pytest

from djangoproject import add_revision_views
from envtools import PYTHON, clone_target, commit_on, environment, journal, parent

BOOT = 2.0  # seconds a worker takes to start (a margin over a try on a loaded machine)
HTTPGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "httpget.py")


def release(hgenv, central_repo, name, healthy=True):
    """Commit a release on staging: the revision views, and a file naming it."""
    def change(repo):
        add_revision_views(repo, healthy=healthy, boot=BOOT)
        with open(os.path.join(repo, "release.txt"), "w") as fp:
            fp.write(name + "\n")
    return commit_on(hgenv, central_repo, "staging", name, change)


def served(url):
    """The check of the docs: the revision served must be the one deployed."""
    return (f'r=$({PYTHON} {HTTPGET} {url}/health/ 0.5) || exit; '
            f'[ "$r" = "$ENVDEPLOY_NODE" ] || '
            f'{{ echo "served $r, want $ENVDEPLOY_NODE"; exit 1; }}')


@pytest.fixture
def live(hgenv, central_repo, tmp_path, gunicorn):
    """A local staging site at the first release, served by gunicorn; deploys reload
    it with HUP and check it for up to 15 seconds (a loaded machine boots slowly)."""
    first = release(hgenv, central_repo, "first")
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    server = gunicorn(target)
    server.wait_for("/revision/", first + "\n")
    hgenv.write_hgrc(central_repo, environment(
        "staging", reload=server.reload, check=served(server.url),
        check_timeout=15, check_interval=0.5))
    return target, server, first


def checks(record):
    return [s for s in record["steps"] if s["name"] == "check"]


def test_healthy_deploy_passes_once_the_new_workers_answer(hgenv, central_repo, live):
    target, server, first = live
    second = release(hgenv, central_repo, "second")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text + server.logtext()
    # The first try came too early: an old worker (the old revision), or nobody
    # (no answer within the try's half second), answered it.
    assert (f"local: check: try 1 failed (exit 1: served {first}, want {second})"
            in r.out or "local: check: try 1 failed (exit 28: httpget: no answer"
            in r.out), r.out
    [ok] = [line for line in r.out.splitlines() if line.startswith("local: check ok")]
    tries = int(ok.split("(try ")[1].split(",")[0])
    assert tries >= 2
    assert server.get("/revision/") == (200, second + "\n")
    record = journal(target)[-1]
    assert record["outcome"] == "ok" and checks(record)[0]["tries"] == tries


def test_broken_release_is_seen_and_rolled_back(hgenv, central_repo, live):
    target, server, first = live
    broken = release(hgenv, central_repo, "broken health", healthy=False)

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    # It waited for the new workers and saw their failure ...
    why = r.text + server.logtext()
    assert "The requested URL returned error: 500" in r.out, why
    assert "check exited with status 22 (" in r.err, why
    assert "rolled back" in r.err, why
    # ... and the rollback's own check waited for the old code to answer again:
    # gunicorn serves the first release, at once.
    assert parent(hgenv, target) == first
    assert server.get("/revision/") == (200, first + "\n")
    assert server.get("/health/") == (200, first + "\n")
    record = journal(target)[-1]
    assert record["to"] == broken and record["failed"] == "check"
    assert checks(record)[0]["tries"] >= 2
    assert record["rollback"]["outcome"] == "ok"
    # The mirror case: without tries, the rollback's check too would have been
    # answered by a worker of the broken release, or by nobody.
    [back] = checks(record["rollback"])
    assert back["status"] == 0 and back["tries"] >= 2


def test_preload_app_keeps_the_old_code_on_hup(hgenv, central_repo, tmp_path,
                                                 gunicorn):
    """gunicorn's trap: with preload_app the master imported the application, and
    HUP forks new workers from it, old code and all.  The check sees it."""
    first = release(hgenv, central_repo, "first")
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment("staging", path=target))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    server = gunicorn(target, preload=True)
    server.wait_for("/revision/", first + "\n")
    hgenv.write_hgrc(central_repo, environment(
        "staging", reload=server.reload, check=served(server.url),
        check_timeout=3, check_interval=0.5, onfailure="stop"))
    second = release(hgenv, central_repo, "second")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0
    assert f"served {first}, want {second}" in r.out, r.out
    assert parent(hgenv, target) == second  # the code on disk is new ...
    assert server.get("/revision/") == (200, first + "\n")  # ... not the one served
