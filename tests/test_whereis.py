"""Where each changeset is deployed, asked of the deploying repository:
deployment records, revsets deployed()/pendingdeploy(), {envdeployed}, promotion
(promotefrom, --untested), and plain hg commands left as fast as they were."""
import json
import os
import textwrap

from envtools import clone_target, commit_on, environment, head, journal, parent

RECORDS = os.path.join(".hg", "envdeploy", "records.jsonl")


def records(repo):
    path = os.path.join(repo, RECORDS)
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        return [json.loads(line) for line in fp if line.strip()]


def two_envs(hgenv, central, tmp_path, **live):
    """Local environments staging and live (each its own clone)."""
    staging = clone_target(hgenv, central, tmp_path / "staging-site")
    livesite = clone_target(hgenv, central, tmp_path / "live-site")
    hgenv.write_hgrc(central, environment("staging", path=staging))
    hgenv.write_hgrc(central, environment("live", path=livesite, **live))
    return staging, livesite


def log(hgenv, repo, revset, template="{node}\n"):
    r = hgenv.hg("log", "-r", revset, "-T", template, cwd=repo)
    assert r.rc == 0, r.text
    return r.out.split()


def write(name, text):
    return lambda repo: open(os.path.join(repo, name), "w").write(text)


# --- records, revsets, template keyword --------------------------------------


def test_deploy_records_revsets_and_keyword(hgenv, central_repo, tmp_path):
    staging_site, _live_site = two_envs(hgenv, central_repo, tmp_path)
    assert log(hgenv, central_repo, "deployed()") == []

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    [record] = records(central_repo)
    assert record["kind"] == "deploy" and record["env"] == "staging"
    assert record["host"] == "local" and record["node"] == staging
    assert record["outcome"] == "ok" and record["user"] == "Test User <test@example.com>"
    assert log(hgenv, central_repo, "deployed(staging)") == [staging]
    assert log(hgenv, central_repo, "deployed()") == [staging]
    assert log(hgenv, central_repo, "deployed(live)") == []
    # What live lacks of staging: staging's own changeset.
    assert log(hgenv, central_repo, "only(staging, deployed(live))") == log(
        hgenv, central_repo, "::staging")
    assert log(hgenv, central_repo, "only(staging, deployed(staging))") == []

    # The keyword, as text and as JSON.
    r = hgenv.hg("log", "-r", "staging", "-T", "{node|short} {envdeployed}\n",
                 cwd=central_repo)
    day = record["date"][:10]
    assert r.out == f"{staging[:12]} staging@local {day}\n"
    r = hgenv.hg("log", "-r", "staging", "-T", "json(node, envdeployed)",
                 cwd=central_repo)
    [entry] = json.loads(r.out)
    assert entry["envdeployed"] == [{
        "env": "staging", "host": "local", "date": record["date"],
        "user": "Test User <test@example.com>", "kind": "deploy", "outcome": "ok"}]
    r = hgenv.hg("log", "-r", "live", "-T", "json(envdeployed)", cwd=central_repo)
    assert json.loads(r.out) == [{"envdeployed": []}]
    # hg log's own output says it too, labelled.
    r = hgenv.hg("log", "-r", "staging", "--color=debug", cwd=central_repo)
    assert "[log.envdeployed|deployed:    staging@local]" in r.out

    # A new changeset on staging is pending until deployed.
    new = commit_on(hgenv, central_repo, "staging", "fix", write("fix.txt", "1\n"))
    assert log(hgenv, central_repo, "pendingdeploy(staging)") == [new]
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    assert log(hgenv, central_repo, "pendingdeploy(staging)") == []
    assert log(hgenv, central_repo, "deployed(staging)") == [new]
    assert parent(hgenv, staging_site) == new
    # Never deployed: the whole branch is pending.
    assert log(hgenv, central_repo, "pendingdeploy(live)") == log(
        hgenv, central_repo, "::live")


def test_unknown_environment_in_a_revset_aborts(hgenv, central_repo, tmp_path):
    two_envs(hgenv, central_repo, tmp_path)
    r = hgenv.hg("log", "-r", "deployed(nosuch)", cwd=central_repo)
    assert r.rc != 0
    assert "unknown environment 'nosuch'" in r.err
    assert "known environments: staging, live" in r.err
    r = hgenv.hg("log", "-r", "pendingdeploy()", cwd=central_repo)
    assert r.rc != 0 and "pendingdeploy takes one environment name" in r.err


def test_rollback_and_envstatus_record_what_they_learn(hgenv, central_repo, tmp_path):
    staging_site, _ = two_envs(hgenv, central_repo, tmp_path)
    first = head(hgenv, central_repo, "staging")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    second = commit_on(hgenv, central_repo, "staging", "two", write("two.txt", "2\n"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    hgenv.hg("envrollback", "staging", cwd=central_repo, check=True)

    assert records(central_repo)[-1]["kind"] == "rollback"
    assert log(hgenv, central_repo, "deployed(staging)") == [first]

    # Someone updates the target by hand: envstatus sees it and records it,
    # once (a second envstatus that sees the same adds nothing).
    hgenv.hg("update", "-q", "-R", staging_site, second, check=True)
    hgenv.hg("envstatus", "staging", cwd=central_repo, check=True)
    assert records(central_repo)[-1]["kind"] == "status"
    assert log(hgenv, central_repo, "deployed(staging)") == [second]
    count = len(records(central_repo))
    hgenv.hg("envstatus", "staging", cwd=central_repo, check=True)
    assert len(records(central_repo)) == count


def test_dry_run_records_nothing(hgenv, central_repo, tmp_path):
    two_envs(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "-n", "staging", cwd=central_repo, check=True)
    assert records(central_repo) == []


# --- promotion -----------------------------------------------------------------


def test_promotion_refuses_untested_files_and_untested_deploys(
        hgenv, central_repo, tmp_path):
    staging_site, live_site = two_envs(hgenv, central_repo, tmp_path,
                                       promotefrom="staging")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    staging = head(hgenv, central_repo, "staging")
    # staging and live have the same files (branches made from one commit).
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)
    assert r.rc == 0, r.text
    assert f"has the files staging ran ({staging[:12]})" in r.out
    live_ok = head(hgenv, central_repo, "live")
    r = hgenv.hg("envstatus", "live", "--no-migrations", "-T", "json",
                 cwd=central_repo)
    [row] = json.loads(r.out)
    assert (row["tested"], row["testedas"]) == (True, staging), row

    hotfix = commit_on(hgenv, central_repo, "live", "hotfix on live only",
                       write("hotfix.txt", "x\n"))
    r = hgenv.hg("envstatus", "live", "--no-migrations", cwd=central_repo)
    assert f"next deploy {hotfix[:12]}: NOT tested on staging" in r.out
    assert "differs in: hotfix.txt" in r.out
    r = hgenv.hg("envstatus", "live", "--no-migrations", "-T", "json",
                 cwd=central_repo)
    [row] = json.loads(r.out)
    assert (row["promotefrom"], row["tested"], row["testedas"]) == (
        "staging", False, ""), row

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc != 0
    assert f"the files of {hotfix[:12]} were never deployed to staging" in r.err
    assert f"{staging[:12]} was deployed there last" in r.err
    assert "differs in: hotfix.txt" in r.err
    assert "--untested" in r.err
    assert parent(hgenv, live_site) == live_ok  # nothing changed

    r = hgenv.hg("envdeploy", "live", "--untested", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "deploying anyway (--untested)" in r.err
    assert parent(hgenv, live_site) == hotfix
    last = journal(live_site)[-1]
    assert last["outcome"] == "ok"
    assert last["untested"] == {"from": "staging", "tested": staging,
                                "files": ["hotfix.txt"]}
    assert records(central_repo)[-1]["untested"]["from"] == "staging"


def test_promotion_reads_the_journals_when_nothing_is_known_here(
        hgenv, central_repo, tmp_path):
    _staging_site, live_site = two_envs(hgenv, central_repo, tmp_path,
                                        promotefrom="staging")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    os.unlink(os.path.join(central_repo, RECORDS))  # as from another clone

    r = hgenv.hg("envdeploy", "live", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "has the files staging ran" in r.out
    assert parent(hgenv, live_site) == head(hgenv, central_repo, "live")


def test_promotion_from_an_environment_never_deployed(hgenv, central_repo, tmp_path):
    two_envs(hgenv, central_repo, tmp_path, promotefrom="staging")
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)
    assert r.rc != 0
    assert "were never deployed to staging" in r.err
    assert "which has no successful deploy known" in r.err


def test_promotefrom_naming_no_environment_is_a_config_error(
        hgenv, central_repo, tmp_path):
    two_envs(hgenv, central_repo, tmp_path, promotefrom="stagin")
    r = hgenv.hg("envdeploy", "live", cwd=central_repo)
    assert r.rc != 0, r.text
    assert "hgrc:" in r.err  # where it is written
    assert "live.promotefrom names 'stagin', which is no environment" in r.err


def test_envmerge_deploy_is_promoted_too(hgenv, central_repo, tmp_path):
    _, live_site = two_envs(hgenv, central_repo, tmp_path, promotefrom="staging")
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    before = parent(hgenv, live_site)
    feature = commit_on(hgenv, central_repo, "default", "feature",
                        write("feature.txt", "f\n"))
    upstream = tmp_path / "upstream"
    hgenv.hg("clone", "-q", "-U", central_repo, upstream, check=True)
    hgenv.write_hgrc(central_repo, f"[paths]\ndefault = {upstream}\n")

    r = hgenv.hg("envmerge", feature, "--into", "live", "--deploy", cwd=central_repo)

    assert r.rc != 0
    assert "were never deployed to staging" in r.err
    assert "feature.txt" in r.err
    assert parent(hgenv, live_site) == before


# --- plain hg commands load none of it -----------------------------------------


PROBE = textwrap.dedent("""\
    import atexit, sys
    def uisetup(ui):
        def report():
            with open(%r, 'w') as fp:
                fp.write(' '.join(sorted(m for m in sys.modules
                                         if m.startswith('hgext_envdeploy.'))))
        atexit.register(report)
    """)


def test_plain_commands_do_not_load_the_logic(hgenv, central_repo, tmp_path):
    two_envs(hgenv, central_repo, tmp_path)
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    out = tmp_path / "modules"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE % str(out))
    for args in (["version", "-q"], ["log", "-T", "{node}\n"], ["status"]):
        hgenv.hg(*args, "--config", f"extensions.probe={probe}", cwd=central_repo,
                 check=True)
        loaded = set(out.read_text().split())
        assert not loaded & {"hgext_envdeploy.where", "hgext_envdeploy.records",
                             "hgext_envdeploy.web", "hgext_envdeploy.promotion",
                             "hgext_envdeploy.deploy"}, (args, loaded)
    # Asking for it loads it.
    hgenv.hg("log", "-r", "deployed()", "--config", f"extensions.probe={probe}",
             cwd=central_repo, check=True)
    assert "hgext_envdeploy.where" in out.read_text().split()


# --- the push hook: promoted, and recorded in the central repository -----------


HOOK = "[hooks]\nchangegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n"


def test_push_deploy_is_promoted_and_recorded_centrally(hgenv, central_repo, tmp_path):
    staging_site, live_site = two_envs(hgenv, central_repo, tmp_path,
                                       promotefrom="staging", autodeploy="true")
    hgenv.write_hgrc(central_repo, HOOK + "[environments]\nstaging.autodeploy = true\n")
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    live_before = parent(hgenv, live_site)

    # A change pushed to staging deploys there, and is recorded here.
    fix = commit_on(hgenv, work, "staging", "fix", write("fix.txt", "1\n"))
    r = hgenv.hg("push", "-q", "-r", "staging", cwd=work)
    assert parent(hgenv, staging_site) == fix, r.text
    assert log(hgenv, central_repo, "deployed(staging)") == [fix]

    # The same files on live pass; a live-only change is refused on push.
    hotfix = commit_on(hgenv, work, "live", "hotfix", write("hot.txt", "1\n"))
    r = hgenv.hg("push", "-r", "live", cwd=work)

    assert "autodeploy: live: FAILED, not deployed" in r.text
    assert f"the files of {hotfix[:12]} were never deployed to staging" in r.text
    assert parent(hgenv, live_site) == live_before
    assert log(hgenv, central_repo, "deployed(live)") == []
