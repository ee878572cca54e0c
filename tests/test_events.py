"""The hooks around deploys and rollbacks: preenvdeploy, envdeploy, preenvrollback,
envrollback, fired through Mercurial's hook machinery (shell and python: hooks).

Real hg and local environments where hosts do not matter; real sshd for the
multi-host outcome; real curl against an HTTP server this test starts for the
chat example of hgrc.example.
"""
import http.server
import json
import os
import re
import shutil
import threading

import pytest

from conftest import unavailable
from envtools import (
    clone_target, commit_on, environment, head, journal, parent, ssh_settings,
    ssh_targets, wait_for,
)

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "hgrc.example")
NULL = "0" * 40
USER = "Test User <test@example.com>"

# A Python hook (python:FILE:FUNC) that appends what it got to hooks.jsonl.
PYHOOK = '''
import json, os

def record(ui, repo, hooktype, **kwargs):
    got = {k: v.decode() for k, v in kwargs.items()}
    got["hooktype"] = hooktype.decode()
    with open(os.path.join(os.path.dirname(__file__), "hooks.jsonl"), "a") as fp:
        fp.write(json.dumps(got) + "\\n")
    return got.get("env") == os.environ.get("REFUSE_ENV")
'''


def shell_hook(out):
    """A shell hook that appends its HG_* variables, as one JSON line, to out."""
    return (f"python3 -c 'import json, os; print(json.dumps({{k: v for k, v in "
            f"os.environ.items() if k.startswith(\"HG_\")}}))' >> {out}")


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        return [json.loads(line) for line in fp]


def hooks(tmp_path, *types):
    """[hooks] with a shell and a Python hook for each type; where they write."""
    hookfile = tmp_path / "pyhook.py"
    hookfile.write_text(PYHOOK)
    text = "[hooks]\n"
    for t in types:
        text += f"{t}.sh = {shell_hook(tmp_path / 'shell.jsonl')}\n"
        text += f"{t}.py = python:{hookfile}:record\n"
    return text, tmp_path / "shell.jsonl", tmp_path / "hooks.jsonl"


@pytest.fixture
def site(hgenv, central_repo, tmp_path):
    return clone_target(hgenv, central_repo, tmp_path / "site")


def add_file(name, text="x"):
    def change(repo):
        with open(os.path.join(repo, name), "w") as fp:
            fp.write(text)
    return change


def test_shell_and_python_hooks_get_the_documented_values(hgenv, central_repo, site,
                                                          tmp_path):
    text, shell, python = hooks(tmp_path, "preenvdeploy", "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment(
        "staging", path=site, reload="echo reloaded"))

    r = hgenv.hg("envdeploy", "staging", "-q", "-T", "json", cwd=central_repo)

    assert r.rc == 0, r.text
    # Hook output goes to stderr: stdout stays the JSON the user asked for.
    assert json.loads(r.out)[0]["outcome"] == "ok"
    staging = head(hgenv, central_repo, "staging")
    [record] = journal(site)
    before = dict(env="staging", branch="staging", node=staging, hosts="local",
                  runid=record["id"], user=USER, trigger="command", pusher="", url="")
    after = dict(before, outcome="ok", results="local=ok", message="")
    pre_sh, post_sh = lines(shell)
    for got, want, name in ((pre_sh, before, "preenvdeploy"),
                            (post_sh, after, "envdeploy")):
        assert {k: got[k] for k in got if k not in ("HG_HOOKTYPE", "HG_HOOKNAME")} == {
            "HG_" + k.upper(): v for k, v in want.items()}
        assert got["HG_HOOKTYPE"] == name and got["HG_HOOKNAME"] == name + ".sh"
    pre_py, post_py = lines(python)
    assert pre_py == dict(before, hooktype="preenvdeploy")
    assert post_py == dict(after, hooktype="envdeploy")


def test_failing_preenvdeploy_changes_nothing(hgenv, central_repo, site, tmp_path):
    text, shell, _python = hooks(tmp_path, "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment(
        "staging", path=site, reload="touch reloaded") +
        "[hooks]\npreenvdeploy.freeze = echo 'deploys are frozen'; exit 3\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 255, r.text
    assert "deploys are frozen" in r.err
    assert "abort: preenvdeploy.freeze hook exited with status 3" in r.err
    assert ("(nothing was changed: the preenvdeploy hooks run before any host of "
            "staging is touched)") in r.err
    # Not a thing on the host: revision, journal, lock, reload.
    assert parent(hgenv, site) == NULL
    assert journal(site) == []
    assert not os.path.exists(os.path.join(site, ".hg", "envdeploy"))
    assert not os.path.exists(os.path.join(site, "reloaded"))
    # The run never happened: no envdeploy hook either.
    assert lines(shell) == []


def test_python_preenvdeploy_returning_true_refuses(hgenv, central_repo, site,
                                                    tmp_path):
    text, _shell, python = hooks(tmp_path, "preenvdeploy", "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment("staging", path=site))
    hgenv.env["REFUSE_ENV"] = "staging"

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 255, r.text
    assert "abort: preenvdeploy.py hook failed" in r.err
    assert parent(hgenv, site) == NULL and journal(site) == []
    assert [got["hooktype"] for got in lines(python)] == ["preenvdeploy"]


def test_envdeploy_gets_the_failure_and_its_hook_only_warns(hgenv, central_repo, site,
                                                            tmp_path):
    text, shell, _python = hooks(tmp_path, "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment(
        "staging", path=site, check="test ! -f broken") +
        "[hooks]\nenvdeploy.zfails = exit 1\n"
        "envdeploy.zbroken = python:nosuchmodule.hook\n")
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    # A failing after hook warns, as does one that cannot load; the deploy's
    # exit status is the deploy's.
    assert r.rc == 0, r.text
    assert "warning: envdeploy.zfails hook exited with status 1" in r.err
    assert ('warning: envdeploy.zbroken hook is invalid: import of "nosuchmodule" '
            'failed') in r.err
    first = parent(hgenv, site)
    broken = commit_on(hgenv, central_repo, "staging", "broken", add_file("broken"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 255, r.text
    assert parent(hgenv, site) == first  # rolled back
    got = lines(shell)[-1]
    assert got["HG_OUTCOME"] == "failed" and got["HG_NODE"] == broken
    assert got["HG_RESULTS"] == "local=failed"
    assert got["HG_MESSAGE"] == ("deploy of staging failed on 1 of 1 hosts: local "
                                 "(check); rolled back: local")
    assert got["HG_RUNID"] == journal(site)[-1]["id"]
    # The hook ran before the abort was printed.
    assert r.err.index("warning: envdeploy.zfails") < r.err.index("abort: deploy of")


def test_refused_deploy_fires_envdeploy_with_failed(hgenv, central_repo, site, tmp_path):
    text, shell, _python = hooks(tmp_path, "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment("staging", path=site))
    ahead = commit_on(hgenv, central_repo, "staging", "ahead", add_file("ahead"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    # Back to the parent of what is deployed: refused before any change.
    r = hgenv.hg("envdeploy", "staging", "-r", f"{ahead}^", cwd=central_repo)

    assert r.rc != 0 and "backwards" in r.err, r.text
    assert parent(hgenv, site) == ahead
    got = lines(shell)[-1]
    assert got["HG_OUTCOME"] == "failed" and got["HG_RESULTS"] == ""
    assert "backwards" in got["HG_MESSAGE"]


def test_dry_run_fires_no_hook(hgenv, central_repo, site, tmp_path):
    text, shell, python = hooks(tmp_path, "preenvdeploy", "envdeploy")
    hgenv.write_hgrc(central_repo, text + environment("staging", path=site))

    for args in (["-n"], ["--check"]):
        r = hgenv.hg("envdeploy", "staging", *args, cwd=central_repo)
        assert r.rc == 0, r.text
    assert lines(shell) == [] and lines(python) == []


def test_rollback_hooks(hgenv, central_repo, site, tmp_path):
    text, shell, python = hooks(tmp_path, "preenvrollback", "envrollback")
    hgenv.write_hgrc(central_repo, text + environment("staging", path=site))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    first = parent(hgenv, site)
    second = commit_on(hgenv, central_repo, "staging", "second", add_file("second"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    r = hgenv.hg("envrollback", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, site) == first
    record = journal(site)[-1]
    assert record["kind"] == "rollback"
    before = dict(env="staging", branch="staging", hosts="local", runid=record["id"],
                  user=USER, trigger="command", pusher="", url="")
    pre, post = lines(python)
    # Without -r the target comes from each host's journal, read after the hook.
    assert pre == dict(before, node="", hooktype="preenvrollback")
    assert post == dict(before, node=first, outcome="ok", results="local=ok",
                        message="", hooktype="envrollback")
    assert [got["HG_HOOKTYPE"] for got in lines(shell)] == ["preenvrollback",
                                                           "envrollback"]

    # A failing preenvrollback: nothing changed; with -r the hook knows the node.
    hgenv.write_hgrc(central_repo, "[hooks]\npreenvrollback.no = exit 1\n")
    journaled = len(journal(site))
    r = hgenv.hg("envrollback", "staging", "-r", second, cwd=central_repo)
    assert r.rc == 255 and "abort: preenvrollback.no hook exited with status 1" in r.err
    assert parent(hgenv, site) == first and len(journal(site)) == journaled
    assert lines(python)[-1]["node"] == second
    assert lines(python)[-1]["hooktype"] == "preenvrollback"


def test_envmerge_deploy_says_envmerge(hgenv, central_repo, site, tmp_path):
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    text, _shell, python = hooks(tmp_path, "envdeploy")
    hgenv.write_hgrc(work, text + environment("staging", path=site))
    hgenv.hg("branch", "-q", "feature", cwd=work, check=True)
    (work / "feature.txt").write_text("f")
    hgenv.hg("commit", "-q", "-A", "-m", "feature", cwd=work, check=True)
    hgenv.hg("update", "-q", "default", cwd=work, check=True)

    r = hgenv.hg("envmerge", "feature", "--into", "staging", "--deploy", cwd=work)

    assert r.rc == 0, r.text
    [got] = lines(python)
    assert got["trigger"] == "envmerge" and got["outcome"] == "ok"
    assert got["node"] == parent(hgenv, site) == head(hgenv, central_repo, "staging")


# --- push deploys: the central repository's hooks


CHANGEGROUP = ("[extensions]\nhgext_envdeploy =\n[hooks]\n"
               "changegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup\n")


@pytest.mark.parametrize("autodeploy", ["true", "background"])
def test_push_deploy_fires_the_hooks(hgenv, central_repo, site, tmp_path, autodeploy):
    text, shell, python = hooks(tmp_path, "preenvdeploy", "envdeploy")
    hgenv.write_hgrc(central_repo, CHANGEGROUP + text + environment(
        "staging", path=site, autodeploy=autodeploy))
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "staging", "pushed", add_file("pushed"))

    r = hgenv.hg("push", "-q", central_repo, cwd=work)

    assert r.rc == 0, r.text
    wait_for(lambda: len(lines(python)) == 2, what="the envdeploy hook")
    pre, post = lines(python)
    assert parent(hgenv, site) == node
    [record] = journal(site)
    for got in (pre, post):
        assert got["trigger"] == "push" and got["node"] == node
        assert got["runid"] == record["id"]
        assert got["url"] == record["trigger"]["url"]
        assert got["pusher"] == record["trigger"]["pusher"] != ""
    assert post["outcome"] == "ok" and post["results"] == "local=ok"
    assert [got["HG_TRIGGER"] for got in lines(shell)] == ["push", "push"]


def test_failing_preenvdeploy_stops_a_push_deploy(hgenv, central_repo, site, tmp_path):
    hgenv.write_hgrc(central_repo, CHANGEGROUP + environment(
        "staging", path=site, autodeploy="true") + "[hooks]\npreenvdeploy.freeze = exit 1\n")
    work = tmp_path / "work"
    hgenv.hg("clone", "-q", central_repo, work, check=True)
    node = commit_on(hgenv, work, "staging", "pushed", add_file("pushed"))

    r = hgenv.hg("push", central_repo, cwd=work)

    assert r.rc == 0, r.text  # a changegroup hook cannot fail a push
    assert ("autodeploy: staging: FAILED, not deployed: preenvdeploy.freeze hook "
            "exited with status 1") in r.text
    assert parent(hgenv, site) == NULL and journal(site) == []
    log = open(os.path.join(central_repo, ".hg", "envdeploy", "autodeploy.log")).read()
    assert f"staging failed {node} preenvdeploy.freeze hook exited" in log


# --- several hosts over SSH


def test_results_name_every_host(hgenv, central_repo, sshd_hosts, remote_dir, tmp_path):
    h0, h1 = sshd_hosts.hosts[:2]
    path = os.path.join(remote_dir, "project")
    t0, t1 = ssh_targets(hgenv, central_repo, sshd_hosts, [h0, h1], path)
    text, _shell, python = hooks(tmp_path, "preenvdeploy", "envdeploy")
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + text + environment(
        "staging", hosts=f"{h0.spec}, {h1.spec}", path=path,
        check="test ! -f broken"))
    open(os.path.join(t1, "broken"), "w").close()

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 255, r.text
    pre, post = lines(python)
    assert pre["hosts"] == post["hosts"] == f"{h0.spec} {h1.spec}"
    assert post["outcome"] == "failed"
    assert post["results"] == f"{h0.spec}=rolledback {h1.spec}=failed"
    assert post["runid"] == journal(t0)[-1]["id"] == journal(t1)[-1]["id"]


# --- the chat notification of hgrc.example, against a local HTTP server


class _Chat(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"],
                                  json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def chat():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    server.posts, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def example_hook(name):
    """The commented-out `[hooks] NAME = ...` line of hgrc.example, as it is."""
    with open(EXAMPLE) as fp:
        found = [line[2:].strip() for line in fp if line.startswith(f"# {name} = ")]
    assert len(found) == 1, found
    return found[0]


def test_the_chat_example_posts_to_a_webhook(hgenv, central_repo, site, chat):
    if shutil.which("curl", path=hgenv.env["PATH"]) is None:
        unavailable("curl is missing (scripts/setup-env --sshd installs it)")
    line = example_hook("envdeploy.chat")
    url = "https://chat.example.com/hooks/CHANGE-ME"
    assert url in line
    port = chat.server_address[1]
    hgenv.write_hgrc(central_repo, "[hooks]\n" + line.replace(
        url, f"http://127.0.0.1:{port}/hooks/T0") + "\n" + environment(
        "staging", path=site, check="test ! -f broken"))

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc == 0, r.text
    staging = head(hgenv, central_repo, "staging")
    assert chat.posts == [("/hooks/T0", "application/json", {
        "text": f"staging: envdeploy ok, {staging[:12]} by {USER} (command): local=ok"})]

    broken = commit_on(hgenv, central_repo, "staging", "broken", add_file("broken"))
    chat.status = 500  # and the chat server is having a bad day
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)
    assert r.rc == 255, r.text
    assert chat.posts[-1][2] == {
        "text": f"staging: envdeploy failed, {broken[:12]} by {USER} (command): "
                "local=failed"}
    # curl -f: the refused message warns, the deploy's own verdict stands.
    assert re.search(r"warning: envdeploy.chat hook exited with status 22", r.err)
    assert "abort: deploy of staging failed on 1 of 1 hosts" in r.err
