# where.py - where each changeset is deployed, in hg's own language
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Revsets ``deployed([ENV])`` and ``pendingdeploy(ENV)``, the template
keyword ``{envdeployed}`` and the ``deployed:`` line of ``hg log``.

All of them read this repository's deployment records (records.py) and
the configuration, never a host.  The extension's ``__init__`` registers
them with thin functions that import this module on first use, so that a
plain ``hg log`` pays nothing for them.
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod, smartset

from . import config, heads, records


def _configured(ui, name):
    """The host specs configured for ``name``, or None when it cannot be
    loaded (unknown here, or a broken configuration): then every record
    counts."""
    try:
        return {h.spec for h in config.load(ui, name).hosts}
    except error.Abort:
        return None


def known(repo):
    """``[record]``: the newest record of each host of each environment,
    hosts no longer configured left out, hosts in an unknown state too."""
    ui = repo.ui
    hostsof = {}
    found = []
    for (env, host), record in sorted(records.latest(repo).items()):
        if env not in hostsof:
            hostsof[env] = _configured(ui, env)
        if hostsof[env] is not None and host not in hostsof[env]:
            continue
        if not record.get('node'):
            continue
        found.append(record)
    return found


def bynode(repo):
    """``{binary node: [record]}`` of :func:`known`, cached per records
    file state (hg log asks once per changeset)."""
    key = len(records.read(repo)), id(records.read(repo))
    cache = getattr(repo.unfiltered(), '_envdeploybynode', None)
    if cache is not None and cache[0] == key:
        return cache[1]
    index = {}
    for record in known(repo):
        try:
            binary = nodemod.bin(record['node'])
        except (TypeError, ValueError):
            continue
        index.setdefault(binary, []).append(record)
    repo.unfiltered()._envdeploybynode = (key, index)
    return index


def _nodesof(repo, env=None):
    """Binary nodes last known deployed to ``env`` (every environment when
    None) that this repository has."""
    has = repo.unfiltered().changelog.hasnode
    found = set()
    for record in known(repo):
        if env is not None and record['env'] != env:
            continue
        binary = nodemod.bin(record['node'])
        if has(binary):
            found.add(binary)
    return found


def _envarg(repo, x, what, optional=False):
    """The environment named by revset argument ``x`` (or None)."""
    from mercurial import revset

    args = revset.getargs(x, 0 if optional else 1, 1,
                          _(b'%s takes one environment name') % what)
    if not args:
        return None
    name = revset.getstring(args[0], _(b'%s takes one environment name')
                            % what)
    names = config.envnames(repo.ui)
    if name not in names and name not in {
            r['env'] for r in records.latest(repo).values()}:
        raise error.RepoLookupError(
            _(b"unknown environment '%s'") % name,
            hint=_(b'known environments: %s') % b', '.join(names)
            if names else None)
    return name


def deployed(repo, subset, x):
    """``deployed([ENV])``"""
    env = _envarg(repo, x, b'deployed', optional=True)
    cl = repo.changelog
    revs = {cl.rev(n) for n in _nodesof(repo, env) if _visible(repo, n)}
    return subset & smartset.baseset(sorted(revs))


def _visible(repo, node):
    """Whether ``node`` is a changeset of ``repo`` as filtered (not
    hidden)."""
    try:
        repo.changelog.rev(node)
        return True
    except error.LookupError:
        return False


def pendingdeploy(repo, subset, x):
    """``pendingdeploy(ENV)``"""
    name = _envarg(repo, x, b'pendingdeploy')
    try:
        env = config.load(repo.ui, name)
    except error.Abort:
        return smartset.baseset()
    tips = heads.openheads(repo, env.branch)
    if not tips:
        return smartset.baseset()
    deployedto = [n for n in _nodesof(repo, name) if _visible(repo, n)]
    hosts = {h.spec for h in env.hosts}
    everywhere = {r['host'] for r in known(repo) if r['env'] == name}
    if not deployedto or everywhere != hosts:
        # A host with nothing known here has all of it to come.
        return subset & repo.revs(b'::%ln', tips)
    # Pending on at least one host: what its changeset lacks.
    pending = set()
    for node in deployedto:
        pending.update(repo.revs(b'only(%ln, %n)', tips, node))
    return subset & smartset.baseset(sorted(pending))


def entries(repo, ctx):
    """The deployments of ``ctx``: dicts with bytes keys ``env``,
    ``host``, ``date``, ``user`` (and ``kind``, ``outcome``)."""
    found = bynode(repo).get(ctx.node(), [])
    return [{b'env': r['env'], b'host': r.get('host') or b'',
             b'date': r.get('date') or b'', b'user': r.get('user') or b'',
             b'kind': r.get('kind') or b'', b'outcome': r.get('outcome') or b''}
            for r in found]


def text(entry):
    """``live@web1 2026-12-02``"""
    return b'%s@%s %s' % (entry[b'env'], entry[b'host'],
                          entry[b'date'][:10] or b'?')


def showenvdeployed(context, mapping):
    from mercurial import templateutil

    repo = context.resource(mapping, b'repo')
    ctx = context.resource(mapping, b'ctx')
    found = entries(repo, ctx)
    return templateutil.hybrid(None, found, lambda e: e, text)


# -- the namespace behind hg log's "deployed:" line


def names(repo):
    return sorted({b'%s@%s' % (r['env'], r['host']) for r in known(repo)})


def namemap(repo, name):
    return [nodemod.bin(r['node']) for r in known(repo)
            if b'%s@%s' % (r['env'], r['host']) == name
            and _visible(repo, nodemod.bin(r['node']))]


def nodemap(repo, node):
    return [b'%s@%s' % (r['env'], r['host'])
            for r in bynode(repo).get(node, [])]
