"""hg envmerge TOPIC --into ENV with hg-evolve's topic extension (from PyPI):
the topic's single head, an abort naming its heads, a refusal while it has orphans,
and the note that merging publishes it."""
import os
import subprocess
import sys

import pytest

from conftest import unavailable


@pytest.fixture
def topicrepo(hgenv, central_repo):
    probe = subprocess.run([sys.executable, "-c", "import hgext3rd.topic, hgext3rd.evolve"],
                           capture_output=True)
    if probe.returncode:
        unavailable("hg-evolve is not installed (pip install hg-evolve, or "
                    "pip install -e '.[test]')")
    hgenv.write_hgrc(central_repo, "[extensions]\ntopic =\nevolve =\n"
                     "[environments]\nstaging.path = /nonexistent\n")
    return central_repo


def commit(hgenv, repo, name, topic=None):
    if topic:
        hgenv.hg("topic", "-q", topic, cwd=repo, check=True)
    with open(os.path.join(repo, name), "w") as fp:
        fp.write(name + "\n")
    hgenv.hg("commit", "-q", "-A", "-m", name, cwd=repo, check=True)
    return hgenv.hg("log", "-r", ".", "-T", "{node}", cwd=repo, check=True).out


def p2(hgenv, repo, rev):
    return hgenv.hg("log", "-r", f"p2({rev})", "-T", "{node}", cwd=repo,
                    check=True).out


def clear(hgenv, repo):
    hgenv.hg("update", "-q", "default", cwd=repo, check=True)
    hgenv.hg("topic", "-q", "--clear", cwd=repo, check=True)


def test_merging_a_topic_takes_its_head_and_says_it_publishes(hgenv, topicrepo):
    commit(hgenv, topicrepo, "one", topic="feat")
    top = commit(hgenv, topicrepo, "two")
    clear(hgenv, topicrepo)

    r = hgenv.hg("envmerge", "feat", "--into", "staging", "--no-push", cwd=topicrepo)

    assert r.rc == 0, r.text
    assert "note: merging topic 'feat' (2 changesets, head" in r.out
    assert "publishes its changesets" in r.out
    assert p2(hgenv, topicrepo, "staging") == top
    assert hgenv.hg("log", "-r", "staging", "-T", "{topic}", cwd=topicrepo).out == ""


def test_a_topic_with_two_heads_is_refused_naming_them(hgenv, topicrepo):
    base = commit(hgenv, topicrepo, "base", topic="split")
    a = commit(hgenv, topicrepo, "a")
    hgenv.hg("update", "-q", base, cwd=topicrepo, check=True)
    b = commit(hgenv, topicrepo, "b", topic="split")
    clear(hgenv, topicrepo)
    before = hgenv.hg("log", "-r", "staging", "-T", "{node}", cwd=topicrepo).out

    r = hgenv.hg("envmerge", "split", "--into", "staging", "--no-push", cwd=topicrepo)

    assert r.rc != 0
    assert f"topic 'split' has 2 heads: {a[:12]}, {b[:12]}" in r.err
    assert hgenv.hg("log", "-r", "staging", "-T", "{node}", cwd=topicrepo).out == before


def test_a_topic_with_orphans_is_refused(hgenv, topicrepo):
    first = commit(hgenv, topicrepo, "first", topic="orph")
    second = commit(hgenv, topicrepo, "second")
    hgenv.hg("update", "-q", first, cwd=topicrepo, check=True)
    with open(os.path.join(topicrepo, "first"), "a") as fp:
        fp.write("amended\n")
    hgenv.hg("amend", "-q", cwd=topicrepo, check=True)  # second is now an orphan
    clear(hgenv, topicrepo)

    r = hgenv.hg("envmerge", "orph", "--into", "staging", "--no-push", cwd=topicrepo)

    assert r.rc != 0
    assert f"topic 'orph' has 1 unstable (orphan) changesets: {second[:12]}" in r.err
    assert "hg evolve" in r.err
