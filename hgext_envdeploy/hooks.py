# hooks.py - push to deploy
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Push to deploy: hooks that deploy the environments with ``autodeploy``.

``changegroup`` runs in the central repository, after changesets land;
``postpush`` runs in a developer's repository, after ``hg push``, for
central repositories where no hook can be installed.  Both deploy through
:func:`deploy.deployenv`, as ``hg envdeploy`` does, one environment at a
time, via :func:`autodeploy`, which ``hg debugenvautodeploy`` (the
background mode's detached process) runs too.

What a push deployed, skipped or failed is appended to the repository's
``.hg/envdeploy/autodeploy.log``: Mercurial only warns about a failing
changegroup hook and ``hg push`` still exits 0, so the server keeps its
own record.  One line per environment and push::

  TIME ENV OUTCOME NODE MESSAGE

``OUTCOME`` is ``deployed``, ``failed``, ``skipped`` or ``background``
(started, the detached process adds its own line when it ends).  The
output of background deploys goes to ``.hg/envdeploy/autodeploy/``, where
the newest 50 are kept.
"""

import os
import time

from mercurial.i18n import _
from mercurial import (
    error,
    extensions,
    lock as lockmod,
    logcmdutil,
    node as nodemod,
    pycompat,
    revsetlang,
    util,
)
from mercurial.utils import procutil, stringutil, urlutil

from . import (config, deploy, heads, protect as protectmod, repofile, target,
               transport)

LOG = b'envdeploy/autodeploy.log'  # under .hg/
RUNLOGS = b'envdeploy/autodeploy'  # output of background deploys
KEEPRUNLOGS = 50  # the newest are kept; autodeploy.log keeps every line

WAIT = b'wait'
BACKGROUND = config.BACKGROUND

# How the extension is enabled: by its package, or as hgext3rd.envdeploy.
_EXTNAMES = (b'hgext_envdeploy', b'envdeploy')
_HOOKSOURCE = b'hgext_envdeploy.hooks'  # ensureenabled() enabled it


def mode(ui, name):
    """How environment ``name`` deploys on push: None, WAIT or BACKGROUND.

    Read without loading the whole environment, so that an environment
    that never autodeploys costs nothing and cannot break a push.
    """
    how = config.envconfig(ui, name, b'autodeploy')
    if how == BACKGROUND:
        return BACKGROUND
    return WAIT if how else None


def changegroup(ui, repo, hooktype, node=None, node_last=None, source=None,
                url=None, **kwargs):
    """Deploy the autodeploy environments whose branch head this push moved.

    ``[hooks] changegroup.envdeploy =
    python:hgext_envdeploy.hooks.changegroup`` in the central repository.
    """
    if not _enabled(ui, repo, _(b'autodeploy: nothing deployed')):
        return True
    # The pushed .hgenvironments, as far as this repository trusts it.
    ui = repofile.attach(ui, repo, hook=True)
    # Pulls are not among the default sources, so a hook that pulls into
    # this repository does not deploy (nor trigger itself).
    sources = config.envconfig(ui, None, b'autodeploy.sources')
    if source not in sources:
        ui.debug(b'autodeploy: ignoring changesets from %s\n' % source)
        return False
    cl = repo.unfiltered().changelog
    first = cl.rev(nodemod.bin(node))
    last = cl.rev(nodemod.bin(node_last)) if node_last else len(cl) - 1
    touched = {cl.branchinfo(rev)[0] for rev in range(first, last + 1)}

    def newhead(env):
        """The branch's open head, when this push brought it."""
        if env.branch not in touched:
            return None
        head = heads.deployable(ui, repo, env)
        # A push that only closed a head, or brought older changesets,
        # leaves the open head where it was: nothing new to deploy.
        if head is not None and first <= cl.rev(head) <= last:
            return nodemod.hex(head)
        return None

    trigger = {'hook': hooktype, 'source': source or b'',
               'url': urlutil.hidepassword(url or b''),
               'pusher': _pusher(source, url)}
    # Mercurial does not send the pusher's ui.username; a client may, as
    # ``hg push --pushvars USER=...`` where the server takes pushvars
    # (push.pushvars.server): a claim, recorded beside the account.
    claimed = kwargs.get('USERVAR_USER')
    if claimed:
        trigger['username'] = claimed
    return _deployall(ui, repo, newhead, trigger)


def _pusher(source, url):
    """Who pushed, found as the acl extension finds it: the authenticated
    HTTP user (REMOTE_USER, which hgweb puts in ``url``), else the account
    that received the push (the ssh login, or the web server's account for
    an anonymous HTTP push); never empty."""
    if source == b'serve' and url:
        parts = url.split(b':')
        if (len(parts) > 3 and parts[0] == b'remote'
                and parts[1].startswith(b'http') and parts[3]):
            return util.urlreq.unquote(parts[3])
    return procutil.getuser()


def postpush(ui, repo, hooktype, result=None, opts=None, pats=None,
             **kwargs):
    """After ``hg push``, deploy the autodeploy environments it sent.

    ``[hooks] post-push.envdeploy = python:hgext_envdeploy.hooks.postpush``
    in a developer's repository.  An environment is deployed when the push
    included the head of its branch and that head was not deployed from
    this repository already (``.hg/envdeploy/autodeploy.log`` says).
    """
    if result:  # the push failed, or there was nothing to push
        return False
    if not _enabled(ui, repo, _(b'autodeploy: nothing deployed')):
        return True
    # The developer's own checkout, as their hg envdeploy reads it.
    ui = repofile.attach(ui, repo)
    opts = opts or {}
    covered = _pushedrevs(ui, repo, opts, pats or [])

    def newhead(env):
        head = heads.deployable(ui, repo, env)
        if head is None:
            return None
        if covered is not None and repo.changelog.rev(head) not in covered:
            return None
        head = nodemod.hex(head)
        if _lastdeployed(repo, env.name) == head:
            return None
        return head

    where = urlutil.get_push_paths(repo, ui, pats or [])
    trigger = {'hook': hooktype, 'source': b'push',
               'url': b' '.join(urlutil.hidepassword(p.loc) for p in where),
               'pusher': ui.config(b'ui', b'username')
               or procutil.getuser()}
    return _deployall(ui, repo, newhead, trigger)


def protect(ui, repo, hooktype, **kwargs):
    """Reject changesets that give a protected environment's branch a
    second head (see protect.py).

    ``[hooks] pretxnchangegroup.envprotect =
    python:hgext_envdeploy.hooks.protect`` in the central repository.
    """
    # Without our config items the environments cannot be read: fail
    # closed.
    if not _enabled(ui, repo, _(b'envprotect: rejected')):
        return True
    ui = repofile.attach(ui, repo, hook=True)
    return protectmod.protect(ui, repo, hooktype, **kwargs)


def _pushedrevs(ui, repo, opts, dests):
    """Revisions ``hg push`` sent along (None: all of them)."""
    specs = list(opts.get(b'rev') or []) + list(opts.get(b'bookmark') or [])
    specs += [revsetlang.formatspec(b'branch(%s)', b)
              for b in opts.get(b'branch') or []]
    for path in urlutil.get_push_paths(repo, ui, dests):
        if path.branch:
            specs.append(revsetlang.formatspec(b'branch(%s)', path.branch))
        if not specs and path.pushrev:
            specs.append(path.pushrev)
    if not specs:
        return None
    return set(repo.revs(b'::%ld', logcmdutil.revrange(repo, specs)))


def ensureenabled(ui):
    """Enable the extension for a hook that runs without it; whether it is.

    A repository whose hgrc only names the hook (``python:hgext_envdeploy.
    hooks...``) never loads the extension, so its config items are not
    registered and every key would read as None.  As ``hgext/acl.py``
    does, load it then.  An extension disabled on purpose (``= !``) stays
    disabled.
    """
    if _registered(ui):
        return True
    for name in _EXTNAMES:
        if (ui.config(b'extensions', name) or b'').startswith(b'!'):
            return False
    ui.setconfig(b'extensions', _EXTNAMES[0], b'', source=_HOOKSOURCE)
    extensions.loadall(ui, [_EXTNAMES[0]])
    return _registered(ui)  # False if it failed to load (hg warned)


def _registered(ui):
    return ui.configdefault(b'envdeploy', b'autodeploy.sources') is not None


def _enabled(ui, repo, outcome):
    """:func:`ensureenabled`, saying ``outcome`` and what to do when not."""
    if ensureenabled(ui):
        return True
    ui.warn(_(b'%s: enable the extension in %s ([extensions] hgext_envdeploy '
              b'=)\n') % (outcome, repo.root))
    return False


def _deployall(ui, repo, headof, trigger):
    """Deploy each autodeploy environment that ``headof(env)`` names a
    node for (hex, or None); True if any failed.  ``trigger`` says which
    push, for the journal.

    A broken configuration fails its own environment, not the others.
    """
    failed = False
    for name in config.envnames(ui):
        try:
            how = mode(ui, name)
            if how is None:
                continue
            env = config.load(ui, name)
        except error.Abort as exc:
            _failed(ui, repo, name, None, exc)
            failed = True
            continue
        head = headof(env)
        if head is not None:
            deployhow = _background if how == BACKGROUND else autodeploy
            failed |= deployhow(ui, repo, name, head, trigger)
    return failed


def autodeploy(ui, repo, name, node, trigger=None):
    """Deploy ``node`` to environment ``name`` for a push; True if failed.

    Deploys of one environment take their turn behind a lock in this
    repository, so two quick pushes deploy in order.  A deploy that waited
    while a later push moved the branch on is skipped: that push's own
    deploy, next in line, brings the newer head.
    """
    try:
        env = config.load(ui, name)
        node = logcmdutil.revsingle(repo, node).hex()
        with _turn(ui, repo, name):
            # Later pushes may have landed while we waited: look again.
            repo.invalidate()
            head = deploy.resolve(repo, env).hex()
            if head != node:
                message = _(b'branch %s has moved on to %s, whose deploy '
                            b'follows') % (env.branch, head[:12])
                ui.status(_(b'autodeploy: %s: skipped %s: %s\n')
                          % (name, node[:12], message))
                _log(ui, repo, name, b'skipped', node, message)
                return False
            deploy.deployenv(ui, repo, name, rev=node, trigger=trigger)
    except error.LockHeld as exc:
        _failed(ui, repo, name, node, error.Abort(
            _(b'an earlier autodeploy of %s still runs (lock held by %s)')
            % (name, pycompat.bytestr(exc.locker)),
            hint=_(b"raise [ui] timeout, or deploy with 'hg envdeploy %s'")
            % name))
        return True
    except error.LockError as exc:
        _failed(ui, repo, name, node, error.Abort(
            _(b'cannot take the autodeploy lock: %s')
            % stringutil.forcebytestr(exc.strerror or exc)))
        return True
    except error.Abort as exc:
        _failed(ui, repo, name, node, exc)
        return True
    except Exception as exc:
        ui.traceback()
        _failed(ui, repo, name, node, error.Abort(
            _(b'unexpected error: %s') % stringutil.forcebytestr(exc),
            hint=_(b'run with --traceback for the stack trace')))
        return True
    ui.status(_(b'autodeploy: %s: deployed %s\n') % (name, node[:12]),
              label=b'envdeploy.ok')
    _log(ui, repo, name, b'deployed', node)
    return False


def _turn(ui, repo, name):
    """The lock that makes deploys of ``name`` from this repository queue.

    Mercurial's own lock file (``.hg/envdeploy/autodeploy-ENV.lock``): it
    says who waits for whom, a dead holder's lock is taken over, and a
    waiter gives up after ``[ui] timeout`` seconds like any hg command.
    """
    repo.vfs.makedirs(b'envdeploy')
    return lockmod.trylock(
        ui, repo.vfs, b'envdeploy/autodeploy-%s.lock' % name,
        ui.configint(b'ui', b'timeout'),
        ui.configint(b'ui', b'timeout.warn'),
        desc=_(b'autodeploy of %s') % name,
    )


def _failed(ui, repo, name, node, exc):
    """The one line that says an environment was not deployed, and why."""
    message = exc.message
    if isinstance(exc, error.ConfigError):
        message = _(b'config error: %s') % message
    ui.warn(_(b'autodeploy: %s: FAILED, not deployed: %s\n') % (name, message),
            label=b'envdeploy.failed')
    if exc.hint:
        ui.warn(_(b'autodeploy: %s: (%s)\n') % (name, exc.hint))
    logged = _log(ui, repo, name, b'failed', node, message)
    if logged:
        ui.warn(_(b'autodeploy: %s: (the push itself succeeded; this failure '
                  b'is recorded in %s)\n') % (name, logged))


def _background(ui, repo, name, node, trigger):
    """Start ``hg debugenvautodeploy ENV NODE`` detached; True if it failed.

    Its output goes to a log file of its own under ``.hg/envdeploy/``; the
    push returns at once.
    """
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    runlog = b'%s/%s-%s-%d.log' % (RUNLOGS, name, pycompat.sysbytes(stamp),
                                   os.getpid())
    path = repo.vfs.join(runlog)
    command = [procutil.hgexecutable(), b'-R', repo.root]
    if ui.configsource(b'extensions', _EXTNAMES[0]) == _HOOKSOURCE:
        # Enabled by the hook alone: the detached hg needs it as well.
        command += [b'--config', b'extensions.%s=' % _EXTNAMES[0]]
    command.append(b'debugenvautodeploy')
    for key, value in sorted(trigger.items()):
        command += [b'--%s' % pycompat.sysbytes(key), value]
    command += [b'--', name, node]
    try:
        repo.vfs.makedirs(RUNLOGS)
        _prunerunlogs(repo)
        with repo.vfs(runlog, b'ab') as out:
            # Hook variables (HG_NODE, ...) would change what the nested
            # hg commands do.
            procutil.runbgcommand(command, transport._cleanenv(),
                                  stdout=out, stderr=out)
    except (OSError, error.Abort) as exc:
        _failed(ui, repo, name, node, error.Abort(
            _(b'cannot start the background deploy: %s')
            % stringutil.forcebytestr(exc)))
        return True
    ui.status(_(b'autodeploy: %s: deploying %s in the background, log: %s\n')
              % (name, node[:12], path))
    _log(ui, repo, name, BACKGROUND, node, b'log %s' % path)
    return False


def _prunerunlogs(repo, keep=KEEPRUNLOGS):
    """Remove all but the newest ``keep - 1`` run logs (one is coming)."""
    logs = [(repo.vfs.lstat(b'%s/%s' % (RUNLOGS, f)).st_mtime, f)
            for f in repo.vfs.listdir(RUNLOGS) if f.endswith(b'.log')]
    for _mtime, f in sorted(logs)[: max(0, len(logs) - keep + 1)]:
        repo.vfs.tryunlink(b'%s/%s' % (RUNLOGS, f))


def _log(ui, repo, name, outcome, node, message=b''):
    """Append one line to .hg/envdeploy/autodeploy.log; its path, or None."""
    stamp = pycompat.sysbytes(target.isotime(time.time()))
    line = b'%s %s %s %s %s' % (stamp, name, outcome, node or b'-',
                                b' '.join(message.split()))
    try:
        repo.vfs.makedirs(b'envdeploy')
        # One write per line, in append mode: concurrent pushes do not tear
        # each other's lines.
        with repo.vfs(LOG, b'ab') as fp:
            fp.write(line.rstrip() + b'\n')
    except (IOError, OSError) as exc:
        ui.warn(_(b'autodeploy: cannot write %s: %s\n')
                % (repo.vfs.join(LOG), stringutil.forcebytestr(exc)))
        return None
    return repo.vfs.join(LOG)


def _lastdeployed(repo, name):
    """The node the last autodeploy of ``name`` from here deployed."""
    try:
        data = repo.vfs.tryread(LOG)
    except (IOError, OSError):
        return None
    for line in reversed(data.splitlines()):
        fields = line.split(b' ', 4)
        if len(fields) >= 4 and fields[1] == name and fields[2] == b'deployed':
            return fields[3]
    return None
