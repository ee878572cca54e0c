"""Helpers shared by the tests that deploy: targets, environments, journals."""
import json
import os
import sys
import time

from djangoproject import applied_migrations

PYTHON = sys.executable
MIGRATE = f"{PYTHON} manage.py migrate --noinput"


def clone_target(hgenv, central, dest):
    """A target as the docs say to make one: hg clone -U CENTRAL PATH."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    hgenv.hg("clone", "-q", "-U", central, dest, check=True)
    return dest


def ssh_targets(hgenv, central, sshd_hosts, hosts, remote_path):
    """Clone central to remote_path on each host; return each host's real path."""
    return [
        clone_target(hgenv, central, sshd_hosts.local_path(h, remote_path))
        for h in hosts
    ]


def ssh_settings(sshd_hosts, extra=""):
    """[envdeploy] for the test sshd: its known_hosts and the run's client key."""
    return (
        "[envdeploy]\n"
        f"knownhosts = {sshd_hosts.known_hosts}\n"
        f"identity = {sshd_hosts.client_key}\n"
        "sshconfig = /dev/null\n" + extra
    )


def environment(name, **keys):
    """[environments] lines for one environment."""
    lines = ["[environments]"]
    for key, value in keys.items():
        lines.append(f"{name}.{key.replace('_', '.')} = {value}")
    return "\n".join(lines) + "\n"


def journal_lines(target):
    """The journal's lines as written (begin, migrating and end lines)."""
    path = os.path.join(target, ".hg", "envdeploy", "journal.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fp:
        return [json.loads(line) for line in fp if line.strip()]


def journal(target):
    """One record per run, as the extension reads them back: a run whose
    end line is missing has the outcome "unfinished"."""
    from hgext_envdeploy.journal import runs, tobytes, totext

    return [totext(r) for r in runs([tobytes(l) for l in journal_lines(target)])]


NULL = "0" * 40


def parent(hgenv, target):
    """The working copy's parent, what `hg log -r .` prints: the first 20 bytes
    of the dirstate hg wrote (format v1), read without starting hg (some 200
    reads in the suite, 0.3 s each).  hg answers for any other format."""
    hgdir = os.path.join(target, ".hg")
    with open(os.path.join(hgdir, "requires")) as fp:
        v1 = "dirstate-v2" not in fp.read().split()
    if not v1:
        return hgenv.hg("log", "-R", target, "-r", ".", "-T", "{node}", check=True).out
    try:
        with open(os.path.join(hgdir, "dirstate"), "rb") as fp:
            first = fp.read(20)
    except FileNotFoundError:
        return NULL  # no working copy written yet: the null revision
    return first.hex() if len(first) == 20 else NULL


def head(hgenv, repo, branch):
    return hgenv.hg("log", "-R", repo, "-r", f"head() and branch({branch!r})",
                    "-T", "{node}", check=True).out


def migrations(target):
    return [name for app, name in applied_migrations(os.path.join(target, "db.sqlite3"))
            if app == "bar"]


def commit_on(hgenv, repo, branch, message, change):
    """Update repo to branch, let change(repo) edit files, commit, go back."""
    hgenv.hg("update", "-q", branch, cwd=repo, check=True)
    change(repo)
    hgenv.hg("commit", "-q", "-A", "-m", message, cwd=repo, check=True)
    node = hgenv.hg("log", "-r", ".", "-T", "{node}", cwd=repo, check=True).out
    hgenv.hg("update", "-q", "default", cwd=repo, check=True)
    return node


def wait_for(predicate, timeout=30, what="condition"):
    """Poll predicate() until true; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pg_targets(hgenv, central, sshd_hosts, hosts, remote_path, port, dbname):
    """ssh_targets, each with a local_settings.py beside manage.py pointing Django at
    the ONE PostgreSQL database `dbname` on 127.0.0.1:port (the `postgres` fixture):
    the production topology, many hosts and one database. The file is ignored by the
    project's .hgignore, so deploys leave it alone. Returns each host's real path."""
    from pgserver import local_settings

    targets = ssh_targets(hgenv, central, sshd_hosts, hosts, remote_path)
    for target in targets:
        with open(os.path.join(target, "local_settings.py"), "w") as f:
            f.write(local_settings(dbname, port))
    return targets


def deployed_site(hgenv, central_repo, tmp_path):
    """A local staging environment at tmp_path/site, deployed once (migrations
    0001..0003, reload appending to its "reloads" file)."""
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=target, migrate=MIGRATE, reload="echo reloaded >> reloads"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    return target
