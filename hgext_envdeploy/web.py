# web.py - the environments page of hgweb
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""hgweb's ``/environments`` page, and where a changeset page's changeset
is deployed.

Everything shown comes from the configuration and this repository's
deployment records (records.py): the page runs no command and contacts no
host, and shows no command, variable or secret of the configuration, only
names, branches, hosts and changesets.

The page has templates of its own for the ``paper`` style (and ``coal``,
which shares paper's), a plain HTML page inside the style's own header and
footer for the other HTML styles, plain text for ``raw``, and data for
``json`` (``?style=json``).  Changeset pages get a ``deployed`` row in
paper; in the other HTML styles a ``deployed`` note at the foot of the
page.
"""

from mercurial.i18n import _
from mercurial import encoding, error, templatefilters
from mercurial.utils import dateutil

from . import config, heads, records, where
from .webtemplates import FALLBACK, PAPER, TEXT

# How many pending changesets and runs the page lists per environment.
PENDING_LIMIT = 50
RUNS_LIMIT = 10


def _family(web):
    """``paper``, ``json``, ``html`` (another HTML style) or ``text``."""
    style = web.tmpl.defaults.get(b'style') or b''
    if style in (b'paper', b'coal'):
        return b'paper'
    mimetype = web.tmpl.render(b'mimetype', {b'encoding': encoding.encoding})
    if mimetype.startswith(b'application/json'):
        return b'json'
    if mimetype.startswith(b'text/html') and b'header' in web.tmpl:
        return b'html'
    return b'text'


# -- the environments page


def environments(web):
    """The ``/environments`` page (registered in ``__init__``)."""
    repo = web.repo
    data = [_environment(repo, name) for name in config.envnames(repo.ui)]
    family = _family(web)
    if family == b'json':
        web.res.setbodybytes(templatefilters.json(
            {b'environments': data}) + b'\n')
        return web.res.sendresponse()
    fragments = {b'paper': PAPER, b'html': FALLBACK, b'text': TEXT}[family]
    web.tmpl.cache.update(fragments)
    return web.sendtemplate(b'envdeploy_page', environments=_mappings(data),
                            count=len(data))


def _environment(repo, name):
    """One environment, as plain data (bytes)."""
    out = {b'name': name, b'branch': b'', b'head': None, b'note': b'',
           b'hosts': [], b'pending': [], b'pendingcount': 0, b'runs': [],
           b'promotefrom': b'', b'tested': None}
    try:
        env = config.load(repo.ui, name)
    except error.Abort:
        # Its message may quote a value: say no more here.
        out[b'note'] = _(b'its configuration cannot be read here (run hg '
                         b'envcheck %s)') % name
        return out
    out[b'branch'] = env.branch
    tips = heads.openheads(repo, env.branch)
    if tips:
        out[b'head'] = _changeset(repo[tips[-1]])
        if len(tips) > 1:
            out[b'note'] = _(b'branch has %d heads') % len(tips)
    else:
        out[b'note'] = _(b'no open head of branch %s here') % env.branch
    known = records.latest(repo)
    for host in env.hosts:
        record = known.get((name, host.spec))
        row = {b'host': host.spec, b'role': host.role or b'',
               b'node': None, b'date': b'', b'user': b'', b'kind': b'',
               b'outcome': b''}
        if record is not None:
            row.update({b'date': record.get('date') or b'',
                        b'user': record.get('user') or b'',
                        b'kind': record.get('kind') or b'',
                        b'outcome': record.get('outcome') or b''})
            node = record.get('node')
            if node and _has(repo, node):
                row[b'node'] = _changeset(repo[node])
            elif node:
                row[b'node'] = {b'node': node, b'short': node[:12],
                                b'desc': _(b'(not in this repository)'),
                                b'user': b'', b'linked': False}
        out[b'hosts'].append(row)
    if tips:
        pending = list(repo.revs(b'pendingdeploy(%s)', name))
        out[b'pendingcount'] = len(pending)
        out[b'pending'] = [_changeset(repo[r])
                           for r in reversed(pending[-PENDING_LIMIT:])]
    out[b'runs'] = [{b'id': r['id'] or b'', b'kind': r['kind'] or b'',
                     b'user': r['user'] or b'', b'date': r['date'] or b'',
                     b'outcome': r['outcome'] or b'',
                     b'hosts': b', '.join(h for h in r['hosts'] if h)}
                    for r in records.runs(repo, name, RUNS_LIMIT)]
    if env.promotefrom and tips:
        from . import promotion

        out[b'promotefrom'] = env.promotefrom
        found = promotion.tested(repo, env.promotefrom, repo[tips[-1]])
        out[b'tested'] = found is not None
    return out


def _has(repo, node):
    try:
        repo[node]
        return True
    except (error.RepoLookupError, error.LookupError):
        return False


def _changeset(ctx):
    return {b'node': ctx.hex(), b'short': ctx.hex()[:12],
            b'desc': ctx.description().split(b'\n')[0],
            b'user': ctx.user(), b'date': dateutil.datestr(ctx.date()),
            b'linked': True}


def _mappings(data):
    """The data as the templater maps it (lists of mappings)."""
    from mercurial import templateutil

    def one(env):
        out = dict(env)
        out[b'hosts'] = templateutil.mappinglist(
            [_flat(h) for h in env[b'hosts']])
        out[b'pending'] = templateutil.mappinglist(env[b'pending'])
        out[b'runs'] = templateutil.mappinglist(env[b'runs'])
        out[b'head'] = env[b'head'] or {}
        out.update({b'head' + k: v for k, v in (env[b'head'] or {}).items()})
        out[b'hashead'] = bool(env[b'head'])
        out[b'tested'] = {None: b'', True: b'yes', False: b'no'}[
            env[b'tested']]
        del out[b'head']
        return out

    return templateutil.mappinglist([one(e) for e in data])


def _flat(host):
    """A host row with its changeset's fields as ``nodeX``."""
    out = dict(host)
    node = host[b'node'] or {}
    del out[b'node']
    out[b'known'] = bool(node)
    out.update({b'node' + k: v for k, v in node.items()})
    return out


# -- changeset pages


def changeset(web, orig):
    """hgweb's changeset page (``orig``), with where it is deployed."""
    from mercurial.hgweb import webutil

    try:
        ctx = webutil.changectx(web.repo, web.req)
    except (error.RepoLookupError, error.LookupError, error.Abort):
        return orig(web)  # hgweb says what is wrong
    found = where.entries(web.repo, ctx)
    if found:
        _showdeployments(web, found)
    return orig(web)


# Where paper's changeset table starts: the deployed row goes first in it.
_PAPER_TABLE = b'<table id="changesetEntry">'


def _showdeployments(web, found):
    from mercurial import templateutil

    family = _family(web)
    if family not in (b'paper', b'html'):
        return
    web.tmpl.cache.update(PAPER if family == b'paper' else FALLBACK)
    web.tmpl.defaults[b'envdeployments'] = templateutil.mappinglist(found)
    if family == b'paper':
        web.tmpl.load(b'changeset')  # the text is in the cache from now
        text = web.tmpl.cache[b'changeset']
        if _PAPER_TABLE in text:
            web.tmpl.cache[b'changeset'] = text.replace(
                _PAPER_TABLE, _PAPER_TABLE + b'\n{envdeploy_csetrow}', 1)
            return
    # Elsewhere, above the style's own message of the day.
    block = web.tmpl.render(b'envdeploy_csetnote', {})
    web.tmpl.defaults[b'motd'] = block + (web.config(b'web', b'motd') or b'')
