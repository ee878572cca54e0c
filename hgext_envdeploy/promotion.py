# promotion.py - deploy to ENV only what OTHER ran
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``ENV.promotefrom = OTHER``: ENV gets only files OTHER was deployed with.

Before a deploy of ENV (``hg envdeploy``, ``envmerge --deploy``, the push
hooks), the changeset to deploy must have exactly the files (the same
manifest: contents and flags) of a changeset deployed with success to
OTHER.  Which those are comes from this repository's deployment records
(records.py); when none matches, from the journals of OTHER's hosts
(read, never changed).  Otherwise the deploy is refused, naming the files
that differ from the last changeset deployed to OTHER; ``--untested``
deploys anyway and the journal records it (``untested``).

The manifest, not the changeset, is compared: ``live`` usually deploys the
merge of ``staging`` into ``live``, a changeset of its own whose files are
those staging ran.
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod

from . import config, journal, records

# Files named in a refusal (the journal keeps as many).
FILES_SHOWN = 20


def _ctx(repo, node):
    try:
        return repo[node]
    except (error.RepoLookupError, error.LookupError):
        return None


def tested(repo, other, ctx, candidates=None):
    """The hex node of a changeset deployed with success to ``other``
    whose files are ``ctx``'s, or None (this repository's records, or the
    ``candidates`` given, newest first)."""
    if candidates is None:
        candidates = reversed(records.successes(repo, other))
    want = ctx.manifestnode()
    for node in candidates:
        found = _ctx(repo, node)
        if found is not None and found.manifestnode() == want:
            return node
    return None


def _fromjournals(ui, repo, other):
    """Nodes deployed with success to ``other``, newest first, read from
    its hosts' journals (unreachable hosts say nothing)."""
    from . import envlog, hostread

    env = config.load(ui, other)
    rows = hostread.onhosts(ui, [(env, h) for h in env.hosts],
                            envlog.readjournal, config.settings(ui),
                            _(b'reading journals of %s') % other)
    found = []
    for row in rows:
        for record in row.get('records') or []:
            if (record.get('kind') == journal.DEPLOY and record.get('to')
                    and record.get('outcome') in journal.DEPLOYED):
                found.append((record.get('finished') or b'', record['to']))
    return [node for _when, node in sorted(found, reverse=True)]


def verdict(ui, repo, env, ctx):
    """``(tested, last, files)``: the node of OTHER's that ``ctx`` matches
    (or None), the last node deployed to OTHER (or None), and the files
    that differ from it (None when it is unknown here)."""
    other = env.promotefrom
    if other not in config.envnames(ui):
        where = config.envsource(ui, env.name, b'promotefrom')
        raise error.ConfigError(
            (where + b': ' if where else b'')
            + _(b"%s.promotefrom names '%s', which is no environment")
            % (env.name, other),
            hint=_(b'known environments: %s')
            % b', '.join(config.envnames(ui)))
    local = list(reversed(records.successes(repo, other)))
    found = tested(repo, other, ctx, local)
    remote = []
    if found is None:
        remote = _fromjournals(ui, repo, other)
        found = tested(repo, other, ctx, remote)
    if found is not None:
        return found, found, []
    last = (local or remote or [None])[0]
    lastctx = last and _ctx(repo, last)
    files = None
    if lastctx is not None:
        files = sorted(ctx.manifest().diff(lastctx.manifest()))
    return None, last, files


def _describe(env, ctx, last, files):
    other = env.promotefrom
    if last is None:
        return _(b"the files of %s were never deployed to %s (%s is promoted "
                 b"from %s, which has no successful deploy known)") % (
            ctx, other, env.name, other)
    text = _(b'the files of %s were never deployed to %s (%s is promoted '
             b'from %s); %s was deployed there last') % (
        ctx, other, env.name, other, last[:12])
    if files is None:
        return text + _(b' (not in this repository: pull it to see the '
                        b'differing files)')
    shown = b', '.join(files[:FILES_SHOWN])
    if len(files) > FILES_SHOWN:
        shown += _(b' and %d more') % (len(files) - FILES_SHOWN)
    return text + _(b', and differs in: %s') % shown


def check(ui, repo, env, ctx, untested=False, dryrun=False):
    """Before deploying ``ctx`` to ``env``: nothing when ``promotefrom``
    is not set or ``ctx`` was tested; else abort, or with ``untested``
    return what the journal records (``untested``)."""
    other = env.promotefrom
    if not other:
        return None
    found, last, files = verdict(ui, repo, env, ctx)
    if found is not None:
        ui.status(_(b'promotion: %s has the files %s ran (%s)\n')
                  % (ctx, other, found[:12]))
        return None
    message = _describe(env, ctx, last, files)
    if untested or dryrun:
        ui.warn(_(b'promotion: %s; %s\n') % (
            message, _(b'deploying anyway (--untested)') if untested
            else _(b'the deploy would be refused')),
            label=b'envdeploy.failed')
        return {'from': other, 'tested': last,
                'files': (files or [])[:FILES_SHOWN]}
    raise error.StateError(
        message,
        hint=_(b'deploy these files to %s first (merge them into its branch '
               b"and 'hg envdeploy %s'), or deploy untested: --untested")
        % (other, other))


def status(ui, repo, env, head):
    """envstatus: ``(line, fields)``, whether the next deploy's changeset
    was tested on ``promotefrom``; ``(b'', {})`` when it is not set.  The
    fields go into each of the environment's items (-T json)."""
    if not env.promotefrom or head is None:
        return b'', {}
    found, last, files = verdict(ui, repo, env, head)
    fields = {'promotefrom': env.promotefrom, 'tested': found is not None,
              'testedas': found or b''}
    if found is not None:
        return _(b'  next deploy %s: tested on %s (as %s)\n') % (
            head, env.promotefrom, found[:12]), fields
    return _(b'  next deploy %s: NOT tested on %s: %s\n') % (
        head, env.promotefrom, _describe(env, head, last, files)), fields
