"""The migration plan from the local repository: real migration files written by real
Django `makemigrations`, committed with real hg, read with `ast` only."""
import doctest

import pytest
from mercurial import hg, ui as uimod

from hgext_envdeploy import migrationplan
from migrationproject import build, irreversible_by_django


def test_doctests():
    result = doctest.testmod(migrationplan)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from conftest import HgEnv

    base = tmp_path_factory.mktemp("migrationplan")
    hgenv = HgEnv(base / "home")
    repo = base / "project"
    steps = build(hgenv, repo)
    return str(repo), steps, hg.repository(uimod.ui(), str(repo).encode())


def flags(plan):
    return {m.key.decode(): [f.decode() for f in m.flags] for m in plan.applies}


def test_a_plan_lists_the_migrations_added_per_app_with_nothing_to_flag(project):
    _path, steps, repo = project
    plan = migrationplan.between(repo, steps["base"].encode(), steps["plain"].encode())
    assert flags(plan) == {"bar.0004_bar_rank": [], "foo.0001_initial": []}
    assert plan.removes == []
    assert plan.reversible is True and plan.blocker() is None
    assert plan.record() == {
        "applies": [{"app": b"bar", "name": b"0004_bar_rank", "flags": []},
                    {"app": b"foo", "name": b"0001_initial", "flags": []}],
        "reversible": True, "blocker": None}


def test_each_flag_from_real_migration_files(project):
    _path, steps, repo = project
    plan = migrationplan.between(repo, steps["plain"].encode(), steps["flagged"].encode())
    assert flags(plan) == {
        "bar.0005_backfill": ["irreversible"],
        "bar.0006_concurrently": ["nonatomic"],
        "bar.0007_remove_bar_created": ["destructive"],
        "foo.0002_rename_title_foo_heading": ["destructive"],
        "foo.0003_fill": [],
    }
    assert plan.reversible is False
    assert plan.blocker().key == b"bar.0005_backfill"
    assert plan.blocker().describe() == (
        b"bar.0005_backfill [irreversible: RunPython without reverse_code]")

    later = migrationplan.between(repo, steps["flagged"].encode(), steps["dropped"].encode())
    assert flags(later) == {
        "foo.0004_tag": [],
        "foo.0005_delete_tag": ["destructive"],
        "foo.0006_purge": ["irreversible"],
    }
    custom = migrationplan.between(repo, steps["dropped"].encode(), steps["custom"].encode())
    assert flags(custom) == {"bar.0008_custom": ["unknown"]}
    assert custom.reversible is None  # not known: never claimed safe
    assert custom.blocker().why == [b"custom operation Vacuum"]


def test_the_irreversible_flag_agrees_with_django(project):
    path, steps, repo = project
    plan = migrationplan.between(repo, None, steps["dropped"].encode())
    ours = {m.key.decode() for m in plan.applies if b"irreversible" in m.flags}
    assert ours == irreversible_by_django(path) == {"bar.0005_backfill", "foo.0006_purge"}


def test_going_back_lists_the_removed_migrations_of_both_apps(project):
    _path, steps, repo = project
    plan = migrationplan.between(repo, steps["dropped"].encode(), steps["plain"].encode())
    assert plan.applies == []
    assert [m.key for m in plan.removes] == [
        b"bar.0005_backfill", b"bar.0006_concurrently", b"bar.0007_remove_bar_created",
        b"foo.0002_rename_title_foo_heading", b"foo.0003_fill", b"foo.0004_tag",
        b"foo.0005_delete_tag", b"foo.0006_purge"]
    # What a rollback from "dropped" unapplies, newest first, read from that code.
    undo = migrationplan.reverting(repo, steps["dropped"].encode(),
                                   [b"foo.0006_purge", b"foo.0005_delete_tag",
                                    b"bar.0007_remove_bar_created", b"bar.0005_backfill"])
    assert [m.flags for m in undo] == [[b"irreversible"], [b"destructive"],
                                      [b"destructive"], [b"irreversible"]]
    assert plan.blocker(list(reversed(undo))).key == b"foo.0006_purge"


def test_a_changeset_this_repository_lacks_claims_nothing(project):
    _path, steps, repo = project
    plan = migrationplan.between(repo, b"1" * 40, steps["plain"].encode())
    assert plan.known is False and plan.applies == [] and plan.reversible is None
    undo = migrationplan.reverting(repo, b"1" * 40, [b"bar.0004_bar_rank"])
    assert undo[0].flags == [b"unknown"]
    # A name with no file in that changeset: unknown too.
    undo = migrationplan.reverting(repo, steps["plain"].encode(), [b"bar.0099_gone"])
    assert undo[0].flags == [b"unknown"]


def test_an_unparsable_migration_is_unknown(project):
    assert migrationplan.analyse(b"class Migration(\n") == {
        b"unknown": "cannot parse: '(' was never closed (line 1)"}
    assert migrationplan.analyse(b"\xff\xfe") [b"unknown"].startswith("cannot parse")
