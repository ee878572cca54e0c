"""ENV.env.NAME values exported to the steps, and ENV.secret keeping them unseen."""
import json
import os

from envtools import (
    clone_target, environment, head, journal, parent, ssh_settings, ssh_targets,
)

# Quotes, expansions, a separator: exported as it is, never interpreted.
# (No backslash: echo would turn one into something that is not the secret.)
SECRET = "s3cr'et \"$HOME\" `x`; $(id)"


def _deploy_env(**keys):
    return environment("staging", **keys) + (
        "[environments]\n"
        "staging.env.GREETING = hello world\n"
        f"staging.env.DB_PASSWORD = {SECRET}\n"
        "staging.secret = DB_PASSWORD\n")


def test_values_reach_the_steps_and_secrets_never_show(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, _deploy_env(
        path=target, onfailure="stop",
        reload="printf '%s|%s' \"$GREETING\" \"$DB_PASSWORD\" > seen; "
               "echo \"reload sees $DB_PASSWORD\"",
        check="echo \"db password: $DB_PASSWORD\"; exit 3"))

    r = hgenv.hg("envdeploy", "staging", "-v", cwd=central_repo)

    assert r.rc != 0
    # Exported exactly, quotes and all, to every step.
    with open(os.path.join(target, "seen")) as fp:
        assert fp.read() == f"hello world|{SECRET}"
    # Masked in what the steps print, and in the failing step's output tail.
    assert "local: | reload sees ***" in r.out
    assert "local:   db password: ***" in r.err
    assert SECRET not in r.text
    # Never kept: not in the journal, not in -T json.
    with open(os.path.join(target, ".hg", "envdeploy", "journal.jsonl")) as fp:
        assert SECRET not in fp.read()
    r = hgenv.hg("envdeploy", "staging", "-T", "json", cwd=central_repo)
    assert "db password: ***" in r.err and SECRET not in r.text
    assert json.loads(r.out[r.out.index("[\n"):])[0]["failed"] == "check"


def test_over_ssh_values_go_through_the_session(hgenv, central_repo, sshd_hosts,
                                                remote_dir):
    h1 = sshd_hosts.hosts[1]
    path = os.path.join(remote_dir, "project")
    [target] = ssh_targets(hgenv, central_repo, sshd_hosts, [h1], path)
    hgenv.write_hgrc(central_repo, ssh_settings(sshd_hosts) + _deploy_env(
        hosts=h1.spec, path=path,
        reload="printf '%s' \"$DB_PASSWORD\" > seen; echo \"using $DB_PASSWORD\""))

    r = hgenv.hg("envdeploy", "staging", "-v", cwd=central_repo)

    assert r.rc == 0, r.text
    assert parent(hgenv, target) == head(hgenv, central_repo, "staging")
    with open(os.path.join(target, "seen")) as fp:
        assert fp.read() == SECRET
    assert f"{h1.spec}: | using ***" in r.out
    assert SECRET not in r.text


def test_dry_run_shows_the_values_but_not_the_secrets(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, _deploy_env(path=target))

    r = hgenv.hg("envdeploy", "staging", "-n", cwd=central_repo)

    assert r.rc == 0, r.text
    assert "local:   env: DB_PASSWORD=*** GREETING='hello world'" in r.out
    assert SECRET not in r.text


def test_envdeploy_defaults_apply_to_every_environment(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgenv.write_hgrc(central_repo, (
        "[envdeploy]\nenv.TIER = default\nenv.REGION = eu\n"
    ) + environment("staging", path=target, env_TIER="staging",
                    reload="echo \"$TIER/$REGION\" > seen"))

    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)

    with open(os.path.join(target, "seen")) as fp:
        assert fp.read() == "staging/eu\n"  # the environment's own wins


def test_bad_names_are_config_errors(hgenv, central_repo, tmp_path):
    target = clone_target(hgenv, central_repo, tmp_path / "site")
    hgrc = os.path.join(central_repo, ".hg", "hgrc")
    hgenv.write_hgrc(central_repo, environment("staging", path=target)
                     + "staging.env.1ST = x\n")

    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    assert f"config error: {hgrc}:" in r.err
    assert "invalid environment variable name '1ST'" in r.err

    with open(hgrc, "w") as fp:
        fp.write(environment("staging", path=target, secret="DB_PASSWORD"))
    r = hgenv.hg("envdeploy", "staging", cwd=central_repo)

    assert r.rc != 0, r.text
    assert "secret names DB_PASSWORD, which is not set" in r.err
    assert "(secret lists names of values set as staging.env.NAME)" in r.err
    assert journal(target) == []
