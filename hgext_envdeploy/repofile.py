# repofile.py - environments declared in the repository: .hgenvironments
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``.hgenvironments``: the environments, versioned with the code.

A tracked file at the repository's root, in hgrc syntax, with the same
``[environments]`` and ``[envdeploy]`` sections.  It is parsed with
Mercurial's own config parser and laid *under* the hgrc: a key the hgrc
sets (``[environments] ENV.KEY``, or ``[envdeploy] KEY`` as the default of
every environment) wins over the file's ``ENV.KEY`` and ``KEY``.  Every
value keeps its file and line as its source, so errors and ``--debug``
name them as they name the hgrc's.

Which revision's file:

- a repository with a working copy (a developer's clone): the working
  copy's file, for every command, as a checkout's ``deploy.yml`` is read;
- a repository without one (``hg clone -U``, the central repository), and
  the push hooks always: the file as of the head of the environment's
  branch, which is the changeset a deploy brings (the hook deploys the
  head the push brought).  ``envstatus`` and ``envrollback`` read the same
  file as ``envdeploy``: a rollback goes back on the hosts the environment
  has now, not on those of the changeset it returns to.

Trust: in the hooks the file arrived with a push, so its values for the
keys of :data:`HOOKTRUSTED` (where to deploy, with which key, from where,
whether at all) are ignored with a warning naming them; they come from the
central repository's own hgrc only, unless that hgrc says ``[envdeploy]
trustrepofile = true``.  ``trustrepofile`` itself is never read from the
file.  A secret's value (``ENV.env.NAME`` for a NAME in ``secret``) in the
file is an error everywhere: it would be in the history for good.
``%include`` lines in the file are not followed.
"""

import weakref

from mercurial.i18n import _
from mercurial import config as configmod, error, node as nodemod

from . import config

FILENAME = b'.hgenvironments'
SECTIONS = (b'environments', b'envdeploy')

# What a push must not decide (see the module docstring): the hosts and
# paths, the key and the host keys, the source, whether to deploy and to
# protect; also the ssh config (its HostName and ProxyCommand redirect a
# host), lending the server's agent, and which pushes deploy.
HOOKTRUSTED = frozenset([
    b'hosts', b'path', b'identity', b'source', b'knownhosts', b'hostkeys',
    b'autodeploy', b'protect', b'forwardagent', b'sshconfig',
    b'autodeploy.sources'])
NEVER = frozenset([b'trustrepofile'])  # hgrc only, whoever runs


def attach(ui, repo, hook=False):
    """``ui`` with ``repo``'s ``.hgenvironments`` laid under its hgrc.

    With a working copy (and not ``hook``): a copy of ``ui`` holding the
    working copy's file.  Otherwise a copy that reads, for each
    environment, the file at the head of its branch (see config.perenv).
    ``ui`` itself is never changed.
    """
    ui = _base(ui)
    if not hook and repo[b'.'].rev() != nodemod.nullrev:
        data = repo.wvfs.tryread(FILENAME)
        if not data:
            return ui
        layered = layer(ui, data, repo.wjoin(FILENAME))
        _BASE[layered] = ui
        return layered
    heads = Heads(ui, repo, hook)
    attached = _copy(ui)
    _BASE[attached] = ui
    config.perenv(attached, heads)
    return attached


_BASE = weakref.WeakKeyDictionary()  # attached ui -> the ui it was made from


def _base(ui):
    return _BASE.get(ui, ui)


def _copy(ui):
    """A copy with all of ``ui``'s configuration: a repository's
    ``ui.copy()`` drops the repository's own hgrc, on purpose."""
    return ui.__class__(ui)


def parse(data, where):
    """The file's config (a mercurial.config.config), sources ``where:LINE``."""
    cfg = configmod.config()
    cfg.parse(where, data)  # no include callback: %include is ignored
    return cfg


def layer(base, data, where, hook=False):
    """A copy of ``base`` with the file's values (``data``, read from
    ``where``) for every key ``base`` does not set; see the module
    docstring for ``hook``."""
    cfg = parse(data, where)
    ui = _copy(base)
    trust = hook and config.envconfig(base, None, b'trustrepofile')
    ignored = []
    for section in cfg.sections():
        if section not in SECTIONS:
            base.warn(_(b'%s: ignoring [%s]: %s holds [environments] and '
                        b'[envdeploy] only\n') % (where, section, FILENAME))
            continue
        for item, value in cfg.items(section):
            key = _keyof(section, item)
            source = cfg.source(section, item)
            if key in NEVER or (hook and not trust and _trusted(key)):
                ignored.append(_shown(section, item))
                continue
            if _sethere(base, section, item, key):
                base.debug(b'envdeploy: %s: %s overridden by %s\n'
                           % (source, _shown(section, item),
                              _where(base, section, item, key)))
                continue
            ui.setconfig(section, item, value, source)
    if ignored:
        if hook:
            hint = _(b'set them in the hgrc of this repository; or, to let '
                     b'pushes decide them, [envdeploy] trustrepofile = true '
                     b'there')
        else:
            hint = _(b'set it in an hgrc')
        base.warn(_(b'warning: %s: ignoring %s (%s)\n')
                  % (where, b', '.join(ignored), hint))
    _checksecrets(ui, cfg)
    _showprovenance(ui)
    return ui


def _keyof(section, item):
    """The key an item sets: ``KEY`` of ``ENV.KEY``, of ``ENV.KEY.ROLE``
    or of ``[envdeploy] KEY``; ``env.NAME`` for a variable."""
    if section == b'environments':
        item = item.partition(b'.')[2]
    if item.startswith(config.ENVVAR):
        return item
    base, dot, role = item.partition(b'.')
    if dot and base in config.ROLE_KEYS:
        return base
    return item


def _trusted(key):
    return key in HOOKTRUSTED


def _sethere(base, section, item, key):
    """Whether the hgrc sets this key: the item itself, or for ``ENV.KEY``
    the ``[envdeploy] KEY`` that is its default."""
    if base.hasconfig(section, item):
        return True
    sub = item.partition(b'.')[2]
    return (section == b'environments' and key == sub
            and base.hasconfig(b'envdeploy', sub))


def _where(base, section, item, key):
    if base.hasconfig(section, item):
        return base.configsource(section, item) or b'--config'
    return base.configsource(b'envdeploy', key) or b'--config'


def _shown(section, item):
    return item if section == b'environments' else b'envdeploy.%s' % item


def _checksecrets(ui, cfg):
    """ConfigError for a secret's value in the file, wherever it is."""
    for section in SECTIONS:
        for item, value in cfg.items(section):
            key = _keyof(section, item)
            if not key.startswith(config.ENVVAR):
                continue
            var = key[len(config.ENVVAR):]
            if section == b'environments':
                names = [item.partition(b'.')[0]]
            else:
                names = config.envnames(ui)
            for name in names:
                if var in config.envconfig(ui, name, b'secret'):
                    raise error.ConfigError(
                        _(b"%s: the value of secret %s does not belong in "
                          b"%s") % (cfg.source(section, item), var, FILENAME),
                        hint=_(b'remove it from the file (and from the '
                               b'history: it was committed); set it as '
                               b'%s.env.%s in .hg/hgrc or ~/.hgrc')
                        % (name, var))


def _showprovenance(ui):
    """With --debug: every value of the two sections and where it is from,
    as ``hg config --debug`` shows them (secrets masked)."""
    if not ui.debugflag:
        return
    for section in SECTIONS:
        for item, value in ui.configitems(section):
            if _keyof(section, item).startswith(config.ENVVAR):
                value = _masked(ui, section, item, value)
            ui.debug(b'envdeploy: config: %s: %s.%s=%s\n'
                     % (ui.configsource(section, item) or b'none', section,
                        item, value))


def _masked(ui, section, item, value):
    var = _keyof(section, item)[len(config.ENVVAR):]
    names = ([item.partition(b'.')[0]] if section == b'environments'
             else config.envnames(ui))
    for name in names:
        if var in config.envconfig(ui, name, b'secret'):
            return config.MASK
    return value


class Heads:
    """Without a working copy: each environment reads the file at the head
    of its branch.  Laid once per head (warnings included)."""

    def __init__(self, base, repo, hook):
        self.base = base
        self.repo = repo
        self.hook = hook
        self._layers = {}  # node -> layered ui
        self._declared = None  # name -> branch, from the files at the heads

    def forenv(self, name):
        node = self._headof(name)
        return self.base if node is None else self.at(node)

    def at(self, node):
        """The ui with the file as of ``node`` (the hgrc alone without it)."""
        if node not in self._layers:
            ctx = self.repo[node]
            ui = self.base
            if FILENAME in ctx:
                where = b'%s@%s' % (FILENAME, nodemod.short(ctx.node()))
                ui = layer(self.base, ctx[FILENAME].data(), where, self.hook)
            self._layers[node] = ui
        return self._layers[node]

    def names(self):
        """The hgrc's environments, then those the file at a branch's head
        declares for that very branch."""
        names = config.envnames(self.base)
        for name in self._scan():
            if name not in names:
                names.append(name)
        return names

    def _scan(self):
        if self._declared is None:
            self._declared = {}
            branchmap = self.repo.branchmap()
            for branch in sorted(branchmap):
                node = branchmap.branchtip(branch)
                if FILENAME not in self.repo[node]:
                    continue
                ui = self.at(node)
                for name in config.envnames(ui):
                    if (name not in self._declared
                            and _branch(ui, name) == branch):
                        self._declared[name] = branch
        return self._declared

    def _headof(self, name):
        """The tip-most open head of ``name``'s branch, or None."""
        if self.base.hasconfig(b'environments', name + b'.branch'):
            branch = _branch(self.base, name)
        else:
            branch = self._scan().get(name, name)
        branchmap = self.repo.branchmap()
        if branch not in branchmap:
            return None
        return branchmap.branchtip(branch)


def _branch(ui, name):
    return config.envconfig(ui, name, b'branch') or name


def describe(ui, name):
    """The files ``name``'s keys were read from, for envsetup to show."""
    files = []
    prefix = name + b'.'
    ui = config.envui(ui, name)
    for section in SECTIONS:
        for item, _value in ui.configitems(section):
            if section == b'environments' and not item.startswith(prefix):
                continue
            where = ui.configsource(section, item).rpartition(b':')[0]
            if where and where not in files:
                files.append(where)
    return files
