# configitems.py - the config items hg registers at start-up
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Every key's name and typed default, registered with Mercurial.

This is all of the configuration that loads with the extension, so every
hg command pays for it: names and defaults only.  How a value is parsed,
and what an error about it says, is config.py's (imported on first use).
"""

from mercurial import registrar

configtable = {}
configitem = registrar.configitem(configtable)

# Per-environment keys (``[environments] ENV.KEY``, default in
# ``[envdeploy] KEY``), each documented in the extension help and in
# hgrc.example.  None means "not set".
ENV_KEYS = {
    b'branch': None,  # the environment's own name
    b'hosts': b'',
    b'path': None,
    b'source': b'',
    b'migrate': b'',
    b'reload': b'',
    b'check': b'',
    b'check.timeout': 0,  # seconds the check is tried for (0: once)
    b'check.interval': 2,  # seconds between tries
    b'hg': None,  # 'hg' on a remote host, this hg for a local environment
    b'identity': b'',
    b'forwardagent': False,  # lend the target our ssh-agent (hg pull)
    b'pushto': b'',  # where envmerge pushes; default-push/default if unset
    b'onfailure': b'rollback',
    b'serial': b'',  # hosts per batch, N or N%; all at once when empty
    b'maxfail': 0,  # failed hosts tolerated before the deploy stops
    b'migrate.state': b'',  # derived from migrate when it runs manage.py
    b'migrate.rollback': b'',
    b'requiredfiles': list,  # untracked files a deploy needs
    b'localsettings': b'',  # local file envsetup uploads where missing
    b'autodeploy': False,  # true, false or background (hooks.py)
    b'protect': False,  # one head only (protect.py)
    b'secret': list,  # names of env.NAME values never shown
    b'migrateon': b'',  # host or role migrating the one database; or all
    b'irreversible': b'warn',  # a deploy that could not be rolled back
    b'backup': b'',  # before migrate, when migrations are pending
    b'restore': b'',  # envrollback --restore
    b'backup.keep': 5,
    b'onedits': b'save',  # manual edits: saved as a patch, or refused
    b'transfer': b'pull',  # the target pulls, or we send (transfer.py)
    b'promotefrom': b'',  # whose tested files this one deploys
    b'confirm': False,  # type the environment's name first (confirm.py)
    b'layout': b'inplace',  # or repo/ releases/ shared/ current
    b'linked': list,  # shared/ files linked into each release
    b'keep': 5,
}
# The user's steps around update, migrate, reload and check: flow.py's
# USERSTEPS (a test holds them equal), named here so that hg's start-up
# does not load flow.py.
USERSTEP_KEYS = (b'before.update', b'after.update', b'before.migrate',
                 b'after.migrate', b'before.reload', b'after.reload',
                 b'before.check', b'after.check')
ENV_KEYS.update(dict.fromkeys(USERSTEP_KEYS, b''))

# Settings that only make sense once, in [envdeploy].
GLOBAL_KEYS = {
    b'knownhosts': b'~/.ssh/known_hosts',
    b'hostkeys': b'strict',
    b'sshconfig': b'~/.ssh/config',
    b'concurrency': 8,
    b'locktimeout': 30,
    b'timeout': 600,
    b'connecttimeout': 15,
    b'grace': 10,  # seconds running steps get to finish after Ctrl-C
    b'cmdserver': True,  # a target's hg commands in one process
    b'autodeploy.sources': lambda: [b'serve', b'push'],
    b'trustrepofile': False,  # a pushed .hgenvironments may decide
}

for _key, _default in {**ENV_KEYS, **GLOBAL_KEYS}.items():
    configitem(b'envdeploy', _key, default=_default)
configitem(b'environments', b'.*', default=None, generic=True)
configitem(b'envdeploy', br'env\..*', default=None, generic=True)
