"""hgrc.example, the file every user copies, loads as it is."""
import os

from mercurial import configitems, ui as uimod

from hgext_envdeploy import config, configitems as envconfigitems

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "hgrc.example")


def test_every_environment_and_setting_of_the_example_loads():
    ui = uimod.ui()  # no rc file of this machine: only the example
    configitems.loadconfigtable(ui, b"hgext_envdeploy", envconfigitems.configtable)
    ui.readconfig(os.fsencode(EXAMPLE), trust=True)

    envs = {name: config.load(ui, name) for name in config.envnames(ui)}
    settings = config.settings(ui)

    assert set(envs) == {b"staging", b"live"}
    assert [(h.spec, h.role) for h in envs[b"live"].hosts] == [
        (b"deploy@web1.example.com", None), (b"deploy@web2.example.com:2222", None),
        (b"deploy@worker1.example.com", b"worker")]
    live = envs[b"live"]
    web1, _web2, worker = live.hosts
    assert live.migrationhost(worker) is web1
    assert live.command(b"reload", worker) == b"sudo systemctl restart celery"
    assert live.command(b"check", worker) == b""
    assert live.command(b"reload", web1) == b"touch deploy/wsgi.py"
    assert envs[b"live"].environ == {b"DJANGO_SETTINGS_MODULE": b"mysite.settings.live"}
    assert envs[b"live"].serial == b"1"
    assert config.envconfig(ui, b"live", b"irreversible") == b"refuse"
    assert config.envconfig(ui, b"staging", b"irreversible") == b"warn"
    assert config.envconfig(ui, b"live", b"backup.keep") == 5
    assert config.envconfig(ui, b"live", b"backup").startswith(b"pg_dump ")
    assert (live.checktimeout, live.checkinterval) == (30, 2)
    assert b'"$ENVDEPLOY_NODE" ]' in live.command(b"check", web1)
    assert live.onedits == b"refuse" and envs[b"staging"].onedits == b"save"
    assert live.command(b"before.reload", worker).startswith(b".venv/bin/pip")
    assert live.command(b"before.reload", web1) == b""
    assert settings[b"hostkeys"] == b"strict" and settings[b"cmdserver"] is True
