# releases.py - one working copy per deploy, and an atomic switch
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``ENV.layout = releases``: ``path`` laid out as Capistrano's deploy_to.

::

  path/repo/           the clone, without a working copy; its .hg holds
                       the journal, the lock, the saved edits (envdeploy/)
  path/releases/ID/    a deploy's working copy: hg share of repo, updated
                       to the changeset (ID is the run's id); its
                       .hg/envdeploy links to repo's, so that the journal,
                       the lock and hg's hooks are the same from anywhere
  path/shared/         kept across releases: ENV.linked is linked from
                       each new release into it; requiredfiles and
                       localsettings are there
  path/current         a symlink to the live release

A deploy's session enters the live release (``path/current``, or
``path/repo`` before the first deploy): the state, the manual edits and
the pull are read and done there.  The update step makes the new release
(``hg share`` and ``hg -R RELEASE update`` in the command server already
running, which was started for that release: see :func:`serverenviron`)
and enters it: migrate runs from it; before the reload, ``current`` is
switched to it (a new symlink renamed over the old one: atomic).  Nothing
serves the new code before that, so a deploy failing before the switch
changed nothing live (but migrations, reverted from the new release as in
place).  Going back (a failed deploy, ``hg envrollback``) reverts the
migrations from the newer release, then switches ``current`` back to the
release of the earlier changeset still on disk, with no update and no
pull; one no longer there is made again.  After a successful deploy, the
releases beyond ``ENV.keep`` are removed, never the live one nor the one
a rollback would return to.

:class:`Releases` supplies the steps it does otherwise than
:class:`~.deploy.InPlace`, which it is given for the others.
"""

import posixpath

from mercurial.i18n import _

from . import edits, flow, lock, stepenv, transfer
from .shell import quote
from .target import BASE, State, StepFailed, cdpath

RELEASES = b'releases'
LAYOUT = b'releases'
REPO = b'repo'
SHARED = b'shared'
CURRENT = b'current'
# In a release's own .hg: the changeset it was made at (no hg to read it).
NODEFILE = b'.hg/envdeploy.node'
# Beside it: left live by a switch that did not look for manual edits in it
# (envrollback: see livestate); prune saves them before removing it.
UNCHECKED = b'.hg/envdeploy.unchecked'
# A share's own .hg is two levels under path: this reaches repo's.
_TOREPO = b'../../../repo/.hg/envdeploy'


def enabled(env):
    return env.layout == LAYOUT


def choose(env, inplace):
    """The deploy's layout for ``env``: :class:`Releases`, or ``inplace``."""
    return Releases(inplace) if enabled(env) else inplace


class Disk:
    """What ``path`` holds: ``{release id: node}``, the live release, the
    releases whose edits no one looked for since they were live
    (``unchecked``), and the absolute path (for ENVDEPLOY_RELEASE)."""

    def __init__(self, output):
        self.releases = {}
        self.unchecked = set()
        self.live = None
        self.base = b''
        for line in output.splitlines():
            kind, _sep, rest = line.partition(b' ')
            if kind == b'release':
                name, _sep, node = rest.partition(b' ')
                self.releases[name] = node or None
            elif kind == b'unchecked':
                self.unchecked.add(rest)
            elif kind == b'current' and rest:
                self.live = posixpath.basename(rest.rstrip(b'/'))
            elif kind == b'base':
                self.base = rest

    def newest(self, node):
        """The newest release made at ``node``, or None."""
        found = [n for n, at in self.releases.items() if at == node]
        return max(found) if found else None

    def directory(self, name):
        return b'%s/%s/%s' % (self.base, RELEASES, name)


def listscript(path):
    """One round trip, no hg: the releases, their nodes, the live one."""
    return (
        b'cd -- %s && for d in %s/*/; do d=${d%%/}; [ -d "$d" ] || continue; '
        b'printf \'release %%s %%s\\n\' "${d##*/}" '
        b'"$(cat "$d"/%s 2>/dev/null)"; '
        b'if [ -e "$d"/%s ]; then printf \'unchecked %%s\\n\' "${d##*/}"; fi; '
        b'done; '
        b'printf \'current %%s\\n\' "$(readlink %s)"; '
        b'printf \'base %%s\\n\' "$(pwd -P)"'
        % (cdpath(path), RELEASES, NODEFILE, UNCHECKED, CURRENT))


def readdisk(session):
    status, out = session.run(listscript(session.env.path))
    if status:
        raise StepFailed(b'state', _(b'cannot read the releases in %s')
                         % session.env.path, out)
    return Disk(out)


def disk(result):
    """The layout as found when the host was reached (read once)."""
    found = getattr(result, '_disk', None)
    if found is None:
        listing = result.session.listing  # read with the lock
        found = result._disk = (Disk(listing) if listing is not None
                                else readdisk(result.session))
        result.live = found.live
    return found


def sharescript(env, name):
    """A new release ``name``, shared from repo, its .hg/envdeploy linked
    to repo's; removed again if any of it fails."""
    rel = b'%s/%s' % (RELEASES, name)
    return (
        b'cd -- %(path)s && mkdir -p %(releases)s %(repo)s/.hg/envdeploy && '
        b'{ %(hg)s --config extensions.share= share -U -q -- %(repo)s %(rel)s'
        b' && ln -s %(torepo)s %(rel)s/.hg/envdeploy || '
        b'{ rm -rf -- %(rel)s; false; }; }'
        % {b'path': cdpath(env.path), b'releases': RELEASES, b'repo': REPO,
           b'hg': env.hg, b'rel': quote(rel), b'torepo': _TOREPO})


def shareargs(found, name):
    """``hg share`` of repo as release ``name``, as hg arguments: for the
    command server already running (no hg process of its own); absolute
    paths, since the server runs in the live release.  share makes the
    missing directories."""
    return (b'--config', b'extensions.share=', b'share', b'-U', b'-q', b'--',
            b'%s/%s' % (found.base, REPO), found.directory(name))


def serverenviron(name):
    """The deploy's command server, started with the lock in the live
    release, runs the update of release ``name`` too (``hg -R``, no second
    hg start): from its start it sees that release as ENVDEPLOY_RELEASE,
    as the hooks of that update must.  So do the pull's hooks (into repo,
    for that release)."""
    return {stepenv.RELEASE: b'"$%s"/%s/%s' % (BASE, RELEASES, quote(name))}


def tiescript():
    """Run in a new release (the update's hook, before the journal line):
    its .hg/envdeploy linked to repo's."""
    return b'ln -s %s .hg/envdeploy' % _TOREPO


def removescript(env, names):
    """Releases ``names`` removed from disk."""
    return b'cd -- %s && rm -rf -- %s' % (cdpath(env.path), b' '.join(
        quote(b'%s/%s' % (RELEASES, n)) for n in names))


def savedname(runid, name):
    """The name prune saves release ``name``'s edits under (edits.patchpath)."""
    return b'%s-%s' % (runid, name)


def rescuescript(env, hg, runid, names):
    """Prune's first part: the edits of the unchecked releases ``names``
    saved as patches (kept only when not empty).  Prints ``saved NAME`` or
    ``unsaved NAME`` for each: one that could not be saved stays."""
    parts = []
    for name in names:
        patch = edits.patchpath(savedname(runid, name))
        parts.append(
            b'if (cd -- %(rel)s && %(save)s) >/dev/null 2>&1; then '
            b'if [ -s %(rel)s/%(patch)s ]; then echo saved %(name)s; '
            b'else rm -f %(rel)s/%(patch)s; fi; '
            b'else echo unsaved %(name)s; fi'
            % {b'rel': quote(b'%s/%s' % (RELEASES, name)),
               b'save': edits.savescript(hg, savedname(runid, name)),
               b'patch': quote(patch), b'name': quote(name)})
    return b'cd -- %s && { %s; }' % (cdpath(env.path), b'; '.join(parts))


def tierepo(env, name):
    """The new release's .hg/envdeploy linked to repo's (after
    :func:`shareargs`); the release removed again if that fails."""
    rel = quote(b'%s/%s' % (RELEASES, name))
    return (b'cd -- %s && { ln -s %s %s/.hg/envdeploy || '
            b'{ rm -rf -- %s; false; }; }'
            % (cdpath(env.path), _TOREPO, rel, rel))


def linkscript(env, node):
    """In the release (the session's directory): ENV.linked linked to
    shared/, and the node it was made at."""
    parts = []
    for name in env.linked:
        up = b'../' * (2 + name.count(b'/'))
        parts.append(b'mkdir -p -- %s && rm -rf -- %s && ln -s %s %s'
                     % (quote(posixpath.dirname(name) or b'.'), quote(name),
                        quote(b'%s%s/%s' % (up, SHARED, name)), quote(name)))
    parts.append(b"printf '%%s' %s > %s" % (quote(node), NODEFILE))
    return b' && '.join(parts)


def switchscript(env, name, leaving=None, looked=True):
    """``current`` to release ``name`` (None: no live release): a new
    symlink renamed over the old one, so that no request finds none.

    ``leaving``, the live release, is marked unchecked unless its edits
    were ``looked`` for (and saved) before: see :func:`prune`.
    """
    before = after = b''
    if leaving and leaving != name:
        marker = quote(b'%s/%s/%s' % (RELEASES, leaving, UNCHECKED))
        if looked:
            after = b' && { rm -f %s || true; }' % marker
        else:
            before = b': > %s && ' % marker  # no switch unless it is marked
    if name is None:
        switch = b'rm -f %s' % CURRENT
    else:
        switch = (b'ln -sfn %s current.new && mv -T current.new %s'
                  % (quote(b'%s/%s' % (RELEASES, name)), CURRENT))
    return b'cd -- %s && %s%s%s' % (cdpath(env.path), before, switch, after)


def _enterscript(where):
    return b'cd -- %s && export %s=%s' % (quote(where), stepenv.RELEASE,
                                          quote(where))


def enterrelease(session, found, name):
    """Make release ``name`` the session's directory, and
    ENVDEPLOY_RELEASE (in one round trip); hg's too, where its command
    server starts next."""
    where = found.directory(name)
    status, out = session.run(_enterscript(where), subshell=False)
    if status:
        raise StepFailed(b'release', _(b'cannot enter release %s') % name, out)
    session.exported[stepenv.RELEASE] = where


def enterandlink(run, found, name, node):
    """The link step, entering release ``name`` first in the same round
    trip (the release made by the server: hg starts no more in it)."""
    where = found.directory(name)

    def step(session, output):
        # In the session's shell itself: the cd and the export stay.
        status, out = session.run(b'%s && %s' % (
            _enterscript(where), linkscript(run.env, node)),
            output=output, subshell=False)
        if status:
            # The cd may have failed: let the next export say it again.
            session.exported.pop(stepenv.RELEASE, None)
        else:
            session.exported[stepenv.RELEASE] = where
        return status, out

    return step


def makerelease(run, result, name, node, output, steps, begin=None):
    """Release ``name`` at ``node``: share, update (its hook journals
    ``begin``), enter, link.  Leaves the session in it."""
    session = result.session
    found = disk(result)
    server = session.hgserver
    inserver = server.running and found.base
    if (inserver and begin is not None and not session.setaside
            and server.environ == serverenviron(name)):
        # The server started for this release shares and updates it; the
        # update's hook links the journal before it writes the begin line.
        try:
            session.step(result, b'release', shareargs(found, name), output,
                         record=steps)
        except StepFailed:
            session.run(removescript(run.env, [name]))
            raise
        found.releases[name] = None
        run.update(result, (b'-R', found.directory(name))
                   + session.update(node, begin, tiescript()))
        link = enterandlink(run, found, name, node)
    else:
        if inserver:
            try:
                session.step(result, b'release', shareargs(found, name),
                             output, record=steps)
            finally:
                # Linked to repo, or removed when the share failed half-way.
                status, out = session.run(tierepo(run.env, name))
            if status:
                raise StepFailed(b'release', _(b'cannot link release %s to '
                                               b'%s') % (name, REPO), out)
        else:
            session.step(result, b'release', sharescript(run.env, name),
                         output, record=steps)
        found.releases[name] = None
        enterrelease(session, found, name)  # hg starts again in it
        script = session.update(node, begin)
        if begin is not None:
            run.update(result, script)  # journaled as begun, written ahead
        else:
            session.step(result, b'update', script, output, record=steps)
        link = linkscript(run.env, node)
    session.step(result, b'link', link, output, record=steps)
    found.releases[name] = node


def switch(run, result, name, steps=None):
    """``current`` to release ``name``, as a step."""
    session = result.session
    found = disk(result)
    state = getattr(result, 'state', None)
    looked = state is None or state.dirty is not None
    session.step(result, b'switch',
                 switchscript(run.env, name, found.live, looked),
                 run.printer(result.host), record=steps)
    if found.live and found.live != name:
        (found.unchecked.discard if looked else found.unchecked.add)(
            found.live)
    found.live = name
    result.release = name


def livestate(result):
    """The live release's :class:`~.target.State` without hg, or None: the
    changeset its node file names (a release is made at one and never
    updated), its edits not looked for (``dirty`` None).  For a rollback,
    which leaves that release on disk as it is: :func:`prune` saves its
    edits before it removes it."""
    found = disk(result)
    node = found.releases.get(found.live) or b''
    if len(node) != 40 or node.strip(b'0123456789abcdef'):
        return None
    return State(node, None, True)


def saveedits(run, result):
    """Manual edits in the live release: kept as a patch (nothing is
    discarded there: the new release starts clean, and the live one
    serves until the switch)."""
    state = result.state
    if not state or not state.dirty:
        return
    session = result.session
    status, out = session.run(edits.savescript(session.hg, run.id,
                                               patch=True))
    if status:
        raise StepFailed(b'state', _(b'could not save manual edits'), out,
                         _(b'nothing was changed'))
    result.patch = edits.patchpath(run.id)
    run.say(result.host, _(b'manual edits to %s in release %s saved as '
                           b'%s/%s/%s (the new release does not have them)')
            % (b', '.join(state.dirty), disk(result).live or b'?',
               run.env.path, REPO, result.patch), 'warn')


def toremove(env, found, protected, new=None):
    """The releases ``keep`` removes: the oldest beyond ``env.keep``
    (counting ``new``, one about to be made), never one ``protected``."""
    names = sorted(set(found.releases) | ({new} if new else set()))
    keep = set(names[-env.keep:])
    keep.update(n for n in protected if n)
    return [n for n in names if n not in keep and n != new]


def prune(run, result):
    """Remove the releases beyond ``keep``: never the live one nor the one
    a rollback returns to.  A failure is said, not fatal."""
    found = disk(result)
    old = toremove(run.env, found, (found.live, getattr(result, 'live', None),
                                    result.release))
    unchecked = [n for n in old if n in found.unchecked]
    if unchecked:
        # Nothing discarded unsaved: these were left live (a rollback)
        # without a look for manual edits.  One hg start, only then.
        session = result.session
        status, out = session.run(rescuescript(run.env, session.hg, run.id,
                                               unchecked))
        for line in out.splitlines():
            word, _sep, name = line.partition(b' ')
            if word == b'saved':
                run.say(result.host, _(b'manual edits in release %s saved as '
                                       b'%s/%s/%s before keep removed it')
                        % (name, run.env.path, REPO,
                           edits.patchpath(savedname(run.id, name))), 'warn')
            elif word == b'unsaved':
                old.remove(name)
                run.say(result.host, _(b'kept release %s: could not save its '
                                       b'manual edits') % name, 'warn')
        if status:
            run.say(result.host, _(b'could not look for manual edits in old '
                                   b'releases: %s') % out.strip(), 'warn')
            return
        if not old:
            return
    status, out = result.session.run(removescript(run.env, old))
    if status:
        run.say(result.host, _(b'could not remove old releases: %s')
                % out.strip(), 'warn')
        return
    for n in old:
        del found.releases[n]
    run.say(result.host, _(b'removed %s (keep = %d)')
            % (b', '.join(old), run.env.keep), 'note')


class Releases:
    """The deploy's steps in the releases layout (see the module doc);
    ``inplace`` carries out the others."""

    def __init__(self, inplace):
        self.inplace = inplace

    def script(self, deploy, result, step):
        name = step.name
        if name == b'update':
            return b'%s && cd -- %s && %s' % (
                sharescript(deploy.env, deploy.id),
                quote(b'%s/%s' % (RELEASES, deploy.id)),
                result.session.display(result.session.update(deploy.node)))
        return self.inplace.script(deploy, result, step)

    def said(self, deploy, result, step, after=False):
        """The dry run's lines about the layout, before ``step`` (the
        release it would make, the switch), and ``after`` all the steps
        (what keep would remove)."""
        name = step.name if step is not None else None
        found = disk(result)
        making = getattr(result, 'wouldmake', False)
        if not after and name == b'update':
            result.wouldmake = True
            linked = (_(b', linking %s from shared/')
                      % b' '.join(deploy.env.linked)) if deploy.env.linked \
                else b''
            return [_(b'release: would make %s/%s (hg share of %s) at %s%s')
                    % (RELEASES, deploy.id, REPO, deploy.node[:12], linked)]
        if not after and name == b'before.reload' and making:
            return [_(b'switch: would point current at %s/%s (live now: '
                      b'%s), before the reload')
                    % (RELEASES, deploy.id, found.live or _(b'none'))]
        if after:
            new = deploy.id if making else None
            old = toremove(deploy.env, found, (found.live, new), new)
            if old:
                return [_(b'keep: would remove %s (keep = %d)')
                        % (b', '.join(old), deploy.env.keep)]
            return [_(b'keep: would remove none (keep = %d)')
                    % deploy.env.keep]
        return []

    def run(self, deploy, result, step):
        name = step.name
        disk(result)
        if name == b'edits':
            saveedits(deploy, result)
            return
        if name == b'update':
            result.release = deploy.id
            makerelease(deploy, result, deploy.id, deploy.node,
                        deploy.printer(result.host), result.steps,
                        begin=deploy.header(result))
            return
        if name == b'before.reload':
            # After migrate (from the new release), before the reload.
            switch(deploy, result, deploy.id)
        self.inplace.run(deploy, result, step)
        if name == flow.STEPS[-1].name:
            prune(deploy, result)


def revertcode(run, result, node, record, check=True):
    """Back to ``node`` (None: nothing live): ``current`` switched to its
    release still on disk (made again if gone), then reload and check."""
    session = result.session
    output = run.printer(result.host)
    stepenv.towards(session, node)
    found = disk(result)
    if not node:
        if found.live is not None:
            switch(run, result, None, record['steps'])
        result.release = None
        record['at'] = None
        return
    previous = getattr(result, 'live', None)
    name = previous if found.releases.get(previous) == node else \
        found.newest(node)
    if name is None:
        name = run.id if run.id not in found.releases else run.id + b'-back'
        transfer.bring(run, result, node, output, record['steps'])
        makerelease(run, result, name, node, output, record['steps'])
    else:
        enterrelease(session, found, name)
    if found.live != name:
        switch(run, result, name, record['steps'])
    result.release = name
    record['at'] = node
    record['release'] = name
    for step in flow.RESTORE[1:] if check else (b'reload',):
        script = session.command(step)
        if script:
            session.step(result, step, script, output, record=record['steps'])


# -- hg envsetup ------------------------------------------------------------


def _probescript(path):
    return (b'p=%(p)s; if [ -d "$p"/repo/.hg ]; then echo layout; '
            b'elif [ -d "$p"/.hg ]; then echo inplace; '
            b'elif [ ! -e "$p" ]; then echo missing; '
            b'elif [ -d "$p" ] && [ -z "$(ls -A -- "$p")" ]; then echo empty; '
            b'else echo other; fi' % {b'p': cdpath(path)})


def newid():
    """A release id as a run's (see Run.id), for a conversion."""
    import time
    now = time.time()
    return (time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
            + '-%06d' % int(now % 1 * 1e6)).encode('ascii')


def probe(session):
    """``layout``, ``inplace`` (a clone to convert), ``missing``, ``empty``
    or ``other`` at path."""
    from .hostread import lastline
    _rc, out = session.run(_probescript(session.env.path))
    return lastline(out)


def setup(setup, session, row):
    """envsetup in the releases layout: create it (clone into repo), or
    convert an in-place clone, or recognise it; then shared/'s files.
    Whether the host is ready."""
    from .hostread import lastline
    env = setup.env
    _rc, out = session.run(_probescript(env.path))
    where = lastline(out)
    if where in (b'missing', b'empty'):
        ready = _create(setup, session, row)
    elif where == b'inplace':
        ready = _convert(setup, session, row)
    elif where == b'layout':
        ready = setup._recognise(session, row)
        if ready and not setup.dryrun:
            status, out = session.run(
                b'cd -- %s && for d in %s %s; do [ -d "$d" ] || '
                b'{ mkdir -- "$d" && echo "made:$d"; }; done'
                % (cdpath(env.path), RELEASES, SHARED))
            for line in out.splitlines():
                if line.startswith(b'made:'):
                    row['changes'].append(_(b'created %s/%s')
                                          % (env.path, line[5:]))
    else:
        row['problems'].append((
            b'path', _(b'%s exists and is neither a Mercurial repository nor '
                       b'the releases layout') % env.path,
            _(b'move it away, or set %s.path to another place') % env.name))
        return False
    if ready and setup.required and not setup.dryrun:
        status, out = session.run(b'cd -- %s/%s' % (cdpath(env.path), SHARED),
                                  subshell=False)
        if not status:
            setup._requiredfiles(session, row)
    return ready


def _create(setup, session, row):
    from .hostread import lastline
    env = setup.env
    repo = b'%s/%s' % (env.path, REPO)
    if setup.dryrun:
        row['changes'].append(_(b'would create the releases layout in %s '
                                b'(repo, releases, shared)') % env.path)
        return False
    status, out = session.run(b'mkdir -p -- %s/%s %s/%s' % (
        cdpath(env.path), RELEASES, cdpath(env.path), SHARED))
    if setup.send is not None:
        command = b'%s init -- %s' % (session.hg, cdpath(repo))
    elif setup.source:
        command = b'%s -y clone -U -- %s %s' % (
            session.hg, quote(setup.source), cdpath(repo))
    else:
        row['problems'].append((
            b'clone', _(b'%s does not exist and there is nothing to clone')
            % env.path, _(b'set %s.source, or a default path in this '
                          b'repository') % env.name))
        return False
    if not status:
        status, out = session.run(command)
    if status:
        row['problems'].append((b'clone', _(b'cannot create %s: %s')
                                % (repo, lastline(out)), None))
        return False
    session.enter()  # into repo: no release yet
    if setup.send is not None and setup.ctx is not None:
        status, out = setup.send(session)
        if status:
            row['problems'].append((b'clone', _(b'cannot send the '
                                                b'changesets: %s')
                                    % lastline(out), None))
            return False
    row['changes'].append(_(b'created the releases layout in %s: repo (the '
                            b'history, no working copy), releases, shared')
                          % env.path)
    row['notes'].append(_(b'the first deploy makes the first release and '
                          b'%s/current') % env.path)
    return True


def _convert(setup, session, row):
    """An in-place clone at path becomes the layout: its .hg moves to
    repo, its working copy's changeset becomes the first release (live),
    ENV.linked files move to shared.  The old files stay (the web server
    may still serve them)."""
    from .hostread import lastline, prefixed
    env = setup.env
    path = cdpath(env.path)
    status, out = session.run(
        b'cd -- %(p)s && for n in repo releases shared current; do '
        b'if [ -e "$n" ] || [ -L "$n" ]; then echo "clash:$n"; fi; done; '
        b'[ -d %(lock)s ] && { echo locked:yes; '
        b"sed 's/^/lockinfo:/' %(lock)s/info 2>/dev/null; }; "
        b"%(hg)s status -mard -T 'dirty:{path}\\n'; "
        b"%(hg)s log -r . -T 'node:{node}\\n'"
        % {b'p': path, b'hg': session.hg, b'lock': lock.LOCKDIR})
    found = prefixed(out)
    node = (found.get(b'node') or [b''])[0]

    def refuse(why, hint=_(b'convert by hand, or fix that and run envsetup '
                           b'again')):
        row['problems'].append((b'layout', _(b'cannot convert to the '
                                             b'releases layout: %s') % why,
                                hint))
        return False

    def heldby(info):
        # The same words whether the first look or the lock itself found it.
        return refuse(_(b'a deploy holds the lock of %s: %s')
                      % (env.path, lock.describe(info)),
                      _(b'run envsetup again when it is done'))

    why = None
    if found.get(b'clash'):
        why = _(b'%s already has %s') % (env.path,
                                         b', '.join(found[b'clash']))
    elif found.get(b'locked'):
        return heldby(lock.readinfo(b'\n'.join(found.get(b'lockinfo', []))))
    elif found.get(b'dirty'):
        why = _(b'manual edits in %s: %s') % (env.path,
                                             b', '.join(found[b'dirty']))
    elif not node or node == b'0' * 40:
        why = _(b'%s has no working copy to make a release of') % env.path
    if why:
        return refuse(why)
    name = newid()
    what = (_(b'%s: in-place clone at %s; %s: its history moved to repo, its '
              b'working copy made release releases/%s, live as current%s')
            % (_(b'would convert') if setup.dryrun else _(b'converted'),
               node[:12], env.path, name,
               (_(b'; %s moved to shared') % b', '.join(env.linked))
               if env.linked else b''))
    if setup.dryrun:
        row['changes'].append(what)
        return False
    rel = b'%s/%s' % (RELEASES, name)
    # Under the deploy lock, taken without waiting (a deploy may have
    # begun since the check above); it moves with .hg, and the EXIT trap
    # of this subshell removes it where it went.
    take = lock.acquirescript(setup.holder, 0)
    moves = b''.join(
        b' && if [ -e %(n)s ] || [ -L %(n)s ]; then mkdir -p -- %(d)s && '
        b'mv -- %(n)s %(s)s; fi'
        % {b'n': quote(f), b's': quote(b'%s/%s' % (SHARED, f)),
           b'd': quote(posixpath.dirname(b'%s/%s' % (SHARED, f)))}
        for f in env.linked)
    status, out = session.run(
        b'cd -- %(p)s && {\n%(take)s\n} && mkdir repo && mv .hg repo/.hg && '
        b'_envdeploy_lock="$PWD/repo/%(lockdir)s" && '
        b'%(hg)s -R repo update -q null && mkdir -p releases shared '
        b'repo/.hg/envdeploy && '
        b'%(hg)s --config extensions.share= share -U -q -- repo %(rel)s && '
        b'ln -s %(torepo)s %(rel)s/.hg/envdeploy && '
        b'%(hg)s -R %(rel)s update -q -r %(node)s%(moves)s && '
        b'(cd %(rel)s && %(link)s) && ln -s %(rel)s current'
        % {b'p': path, b'hg': session.hg, b'rel': quote(rel),
           b'torepo': _TOREPO, b'node': node, b'moves': moves,
           b'link': linkscript(env, node), b'take': take,
           b'lockdir': lock.LOCKDIR})
    held = [info for event, info in lock.parseinfo(out) if event == 'held']
    if held:
        return heldby(held[-1])
    if status:
        row['problems'].append((b'layout', _(b'conversion to the releases '
                                             b'layout failed: %s')
                                % lastline(out),
                                _(b'see %s: repo/.hg is the history') %
                                env.path))
        return False
    row['changes'].append(what)
    row['notes'].append(_(b"the old working copy's files are left in %s: "
                          b"point the web server at %s/current, then remove "
                          b"them") % (env.path, env.path))
    session.enter()
    return True


# -- envstatus, envlog, envcheck ----------------------------------------------


def statuspart(env):
    """The snippet of envstatus's round trip that reads the layout."""
    return (LAYOUT, listscript(env.path))


def fillstatus(row, found):
    """``release`` (the live one) and ``releases`` (on disk) of a row."""
    disk = Disk(found[1]) if found else Disk(b'')
    row['release'] = disk.live or b''
    row['releases'] = sorted(disk.releases)
