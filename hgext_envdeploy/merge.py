# merge.py - merge a feature into an environment's branch and push it
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envmerge FEATURE --into ENV``, in the order a reader can follow:

  check the working copy -> resolve FEATURE, ENV's head, the destination ->
  already merged? stop -> update to ENV's head -> merge -> commit ->
  back where the user was -> push the merge -> deploy (--deploy)

The working copy always ends where the user started (parent, branch name,
active bookmark): after a commit, a conflict, a failing hook or Ctrl-C.
A merge that a merge tool did not fully resolve is abandoned, never left
half done.  A push that fails leaves the merge commit here, reported, and
nothing is forced.  Repository and working copy stay locked (wlock + lock)
from the first check to the end of the push.
"""

import contextlib
import contextvars
import os
import shutil

from mercurial.i18n import _
from mercurial import (
    bookmarks,
    cmdutil,
    context,
    error,
    exchange,
    extensions,
    filemerge,
    logcmdutil,
    merge as mergemod,
    mergestate as mergestatemod,
    node as nodemod,
)
from mercurial.utils import procutil, stringutil, urlutil

from . import compat, config, confirm, deploy as deploymod, heads, topics

# checkunfinished() only knows the operations of enabled extensions; a
# rebase or histedit started before its extension was disabled still counts.
_EXTENSION_STATES = (
    (b'rebasestate', b'rebase', b'hg rebase --continue'),
    (b'histedit-state', b'histedit', b'hg histedit --continue'),
)

# Where filemerge's backups (*.orig) of an abandoned merge go: a private
# directory removed afterwards, so none lands in the user's working copy.
_BACKUPS = b'envmerge-backups'


def short(node):
    return nodemod.short(node)


class Plan:
    """What the merge would do, resolved before touching anything."""

    def __init__(self, env, spec, feature, target, path):
        self.env = env
        self.spec = spec  # FEATURE as the user typed it
        self.feature = feature
        self.target = target
        self.path = path  # the push destination, or None with --no-push
        self.merged = feature.isancestorof(target)

    def dest(self):
        return urlutil.hidepassword(self.path.loc) if self.path else None

    def incoming(self, repo):
        """The changesets of FEATURE that ENV does not have yet."""
        return [repo[r] for r in repo.revs(b'only(%d, %d)',
                                           self.feature.rev(),
                                           self.target.rev())]


# -- the command


def envmerge(ui, repo, spec, envname, message=None, user=None, tool=None,
             push=True, deploy=False, dryrun=False, opts=None):
    """Merge FEATURE (``spec``) into environment ``envname``; return 0.

    ``opts`` (-T): one formatter item with the merge's result and, with
    ``deploy``, the deploy's host items nested in ``hosts``; written also
    when the push or the deploy fails (which then still aborts), never
    when the merge is refused before it starts.
    """
    result = {}
    failure = None
    if dryrun:
        # What it would do, as text or as one item (-T json).
        with ui.formatter(b'envmerge', opts or {}) as fm:
            fm.startitem()
            return _envmerge(ui, repo, spec, envname, message, user, tool,
                             push, deploy, fm, result)
    try:
        _envmerge(ui, repo, spec, envname, message, user, tool, push,
                  deploy, None, result)
    except error.Abort as exc:
        if not result:
            raise  # refused before anything was done: no item
        failure = exc
    status = 0
    with ui.formatter(b'envmerge', opts or {}) as fm:
        fm.startitem()
        # The deploy runs without our locks: it only reads this
        # repository, and may take long.
        if deploy and failure is None:
            try:
                status = deploymod.deployenv(
                    ui, repo, result['env'], rev=result['merge'] or None,
                    confirmed=True, via=b'envmerge',
                    into=fm.nested(b'hosts'))
            except error.Abort as exc:
                failure = exc
        fm.data(**result)
    if failure is not None:
        raise failure
    return status


def _envmerge(ui, repo, spec, envname, message, user, tool, push, deploy,
              dryrun, result):
    """The merge and its push; ``result`` gets the fields of envmerge's
    item as they are known.  ``dryrun``: None, or the formatter the dry
    run writes its plan to; it returns its exit status."""
    env = config.load(ui, envname)
    if deploy and not push:
        raise error.InputError(
            _(b'--deploy needs the push: the hosts pull the merge from the '
              b'central repository'),
            hint=_(b'drop --no-push, or deploy later with '
                   b"'hg envdeploy %s'") % env.name,
        )
    with repo.wlock(), repo.lock():
        if dryrun is not None:
            _checkstart(repo, warnonly=True)
        else:
            _checkstart(repo)
        plan = Plan(env, spec, resolvefeature(repo, spec),
                    envhead(repo, env), _destination(ui, repo, env, push))
        if dryrun is not None:
            return _dryrun(dryrun, repo, plan, tool, deploy)
        if deploy:
            # Before the merge and its push, not after: a no here leaves
            # everything as it was.
            confirm.ask(ui, env, b'deploy', _deployplan(plan))
        if plan.merged:
            ui.status(_(b'%s (%s) is already merged into %s (branch %s at '
                        b'%s): nothing to commit or push\n')
                      % (spec, plan.feature, env.name, env.branch,
                         plan.target))
            node = None
        else:
            node = _mergecommit(ui, repo, plan, message, user, tool)
        result.update(feature=spec, featurenode=plan.feature.hex(),
                      env=env.name, branch=env.branch,
                      merged=plan.merged,  # already, before this run
                      merge=nodemod.hex(node) if node else b'',
                      pushed=False, dest=plan.dest() or b'')
        if node is not None and plan.path is not None:
            _push(ui, repo, plan, node)
            result['pushed'] = True
    return 0


def _deployplan(plan):
    """What confirm.ask shows before the merge of a --deploy."""
    env = plan.env
    if plan.merged:
        what = _(b'%s "%s" (%s is merged already)') % (
            plan.target, plan.target.description().split(b'\n')[0],
            plan.spec)
    else:
        what = _(b'the merge of %s (%s) into %s at %s') % (
            plan.spec, plan.feature, env.branch, plan.target)
    return [(_(b'changeset'), what), (_(b'branch'), env.branch),
            (_(b'hosts'), env.describe())]


# -- checks and resolution


def _checkstart(repo, warnonly=False):
    """Refuse a dirty working copy or an unfinished operation."""
    hint = _(b"commit, shelve or revert them (or 'hg merge --abort' an "
             b'uncommitted merge), then run envmerge again; nothing was '
             b'changed')
    try:
        cmdutil.checkunfinished(repo)
        for fname, opname, cont in _EXTENSION_STATES:
            if repo.vfs.exists(fname):
                raise error.StateError(
                    _(b'%s in progress') % opname,
                    hint=_(b"enable the %s extension and use '%s' or "
                           b"'--abort'") % (opname, cont),
                )
        compat.bail_if_changed(repo, hint=hint)
    except error.Abort as exc:
        if not warnonly:
            raise
        repo.ui.warn(_(b'(the real run would refuse to start: %s)\n')
                     % stringutil.forcebytestr(exc))


def _heads(repo, branch):
    """The branch's open heads, or its closed ones when all are closed."""
    bm = repo.branchmap()
    heads = bm.branchheads(branch, closed=False)
    if not heads:
        heads = bm.branchheads(branch, closed=True)
    return heads


def _oneheadonly(branch, heads, hint):
    if len(heads) > 1:
        raise error.StateError(
            _(b"branch '%s' has %d heads: %s")
            % (branch, len(heads), b', '.join(short(h) for h in heads)),
            hint=hint,
        )


def resolvefeature(repo, spec):
    """FEATURE: a named branch's single head, a bookmark, or a revision."""
    # Bookmarks and tags win over a branch of the same name, as they do
    # in revsets.
    isname = spec in repo._bookmarks or spec in repo.tags()
    if not isname and spec in repo.branchmap():
        heads = _heads(repo, spec)
        _oneheadonly(spec, heads, _(
            b"merge them first, or name the head to merge by its hash "
            b"('hg envmerge HASH --into ENV')"))
        return repo[heads[0]]
    return topics.featurectx(repo, spec)  # a topic's head, or a revision


def envhead(repo, env):
    """The single head of the environment's branch (see heads.py)."""
    return heads.envhead(repo, env, _(
        b"merge them first ('hg update %s', 'hg merge', 'hg commit'), then "
        b"run envmerge again") % env.branch, closed=True)


def _destination(ui, repo, env, push):
    """The push destination: ENV.pushto, else default-push or default."""
    if not push:
        return None
    try:
        return urlutil.get_unique_push_path(
            b'envmerge', repo, ui, env.pushto or None)
    except error.ConfigError as exc:
        raise error.ConfigError(
            stringutil.forcebytestr(exc),
            hint=_(b'set [paths] default (or default-push), or %s.pushto in '
                   b'[environments]; or merge without pushing: --no-push')
            % env.name,
        )


# -- the merge


class _Start:
    """Where the user was: parent, branch name and active bookmark."""

    def __init__(self, repo):
        self.ctx = repo[b'.']
        self.branch = repo.dirstate.branch()
        self.bookmark = repo._activebookmark

    def describe(self):
        return b'%s (branch %s)' % (self.ctx, self.branch)

    def restore(self, repo):
        # Clean: the working copy was clean when we started, so whatever
        # differs now is ours (a merge in progress, conflict markers).
        mergemod.clean_update(self.ctx)
        if repo.dirstate.branch() != self.branch:
            repo.dirstate.setbranch(self.branch, repo.currenttransaction())
        if self.bookmark and self.bookmark in repo._bookmarks:
            bookmarks.activate(repo, self.bookmark)


def _mergecommit(ui, repo, plan, message, user, tool):
    """Update to ENV's head, merge FEATURE, commit; return the new node.

    However it ends, the working copy is back at the start.
    """
    env = plan.env
    incoming = plan.incoming(repo)
    ui.status(_(b'merging %s (%d changesets, %s) into %s (branch %s at %s)\n')
              % (plan.spec, len(incoming), plan.feature, env.name,
                 env.branch, plan.target))
    start = _Start(repo)
    backups = repo.vfs.join(_BACKUPS)
    overrides = {
        (b'ui', b'origbackuppath'): backups,
        # An untracked file in the way stops the update or the merge rather
        # than being overwritten (and backed up where we would delete it).
        (b'merge', b'checkunknown'): b'abort',
        (b'merge', b'checkignored'): b'abort',
    }
    tool = mergetool(ui, tool)
    if tool:
        overrides[(b'ui', b'forcemerge')] = tool
    conflicts = None
    try:
        # The active bookmark would follow the commit onto ENV's branch.
        if start.bookmark:
            bookmarks.deactivate(repo)
        # A branch name set for the next commit makes update() see a dirty
        # working copy; restore() sets it again.
        if start.branch != start.ctx.branch():
            repo.dirstate.setbranch(start.ctx.branch(),
                                    repo.currenttransaction())
        with ui.configoverride(overrides, b'envmerge'):
            if repo[b'.'] != plan.target:
                mergemod.update(plan.target)
            # Mercurial's own advice on conflicts ("use 'hg resolve'") does
            # not apply to a merge we abandon: show it only with --verbose.
            # Prompts and merge tools are not buffered.
            ui.pushbuffer(error=True)
            stats = None
            try:
                stats = mergemod.merge(
                    plan.feature,
                    labels=[env.name, plan.spec, b'common ancestor'],
                )
            finally:
                chatter = ui.popbuffer()
                if stats is not None and not stats.unresolvedcount:
                    ui.status(chatter)
                else:
                    ui.note(chatter)
        if stats.unresolvedcount:
            ms = mergestatemod.mergestate.read(repo)
            conflicts = sorted(ms.unresolved())
        else:
            if not message:
                message = b'Merging %s into %s' % (plan.spec, env.name)
            node = repo.commit(text=message, user=user or None)
            if node is None:  # cannot happen for a merge; never push None
                raise error.Abort(_(b'the merge committed nothing'))
    finally:
        start.restore(repo)
        shutil.rmtree(backups, ignore_errors=True)
    if conflicts is not None:
        ui.warn(_(b'conflicts merging %s into %s:\n') % (plan.spec, env.name))
        for f in conflicts:
            ui.warn(b'  %s\n' % f)
        raise error.Abort(
            _(b'merge of %s into %s abandoned: unresolved conflicts%s')
            % (plan.spec, env.name, _notool(ui, tool)),
            hint=_(b"nothing was committed or pushed; the working copy is "
                   b"back at %s. Merge by hand: 'hg update %s', "
                   b"'hg merge %s', resolve, 'hg commit', 'hg push -r %s'; "
                   b"or run envmerge with -t TOOL")
            % (start.describe(), env.branch, plan.spec, env.branch),
        )
    ui.status(_(b'committed merge %s on branch %s\n')
              % (short(node), env.branch))
    ui.note(_(b'working copy back at %s\n') % start.describe())
    return node


# -- the push


def _push(ui, repo, plan, node):
    """Push the merge (and so ENV's branch, nothing else) to the destination.

    New heads are never forced.  New named branches are allowed: FEATURE's
    changesets travel with the merge, and its branch may be new there.
    """
    env = plan.env
    dest = plan.dest()
    ui.status(_(b'pushing %s (branch %s) to %s\n')
              % (short(node), env.branch, dest))
    failure = hint = None
    try:
        other = compat.peers.peer(repo, {}, plan.path)
        if ui.config(b'ui', b'message-output') == b'stderr':
            # A local destination speaks through a ui of its own: -T keeps
            # its "adding changesets" off stdout too.
            other.ui.setconfig(b'ui', b'message-output', b'stderr',
                               b'envmerge')
        try:
            pushop = exchange.push(repo, other, revs=[node], newbranch=True)
        finally:
            other.close()
        if pushop.cgresult == 0:
            failure = _(b'the destination did not accept the changesets')
    except (error.Abort, error.RepoError, error.ResponseError, OSError) as exc:
        failure = stringutil.forcebytestr(exc)
        hint = getattr(exc, 'hint', None)
    if failure is None:
        ui.status(_(b'pushed merge %s to %s\n') % (short(node), dest))
        return
    ui.warn(_(b'push to %s failed: %s\n') % (dest, failure))
    if hint:
        ui.warn(b'(%s)\n' % hint)
    raise error.Abort(
        _(b'merge %s of %s into %s was committed here but not pushed')
        % (short(node), plan.spec, env.name),
        hint=_(b"nothing was forced and nothing is lost. Run 'hg pull'; if "
               b"'%s' then has two heads, merge them ('hg update %s', "
               b"'hg merge', 'hg commit') and 'hg push -r %s'; otherwise push "
               b"again with 'hg push -r %s'")
        % (env.branch, short(node), env.branch, short(node)),
    )


# -- --dry-run


def _dryrun(fm, repo, plan, tool, deploy):
    """The plan, through ``fm``: text, or the fields of one item."""
    env = plan.env
    fm.data(feature=plan.spec, featurenode=plan.feature.hex(), env=env.name,
            branch=env.branch, target=plan.target.hex(), merged=plan.merged,
            dest=plan.dest() or b'' if plan.path is not None else b'',
            deploy=bool(deploy))
    if plan.merged:
        fm.plain(_(b'%s (%s) is already merged into %s (branch %s at %s): '
                   b'nothing would be committed or pushed\n')
                 % (plan.spec, plan.feature, env.name, env.branch,
                    plan.target))
    else:
        incoming = plan.incoming(repo)
        fm.plain(_(b'would merge %s (%d changesets) into %s (branch %s at '
                   b'%s):\n')
                 % (plan.spec, len(incoming), env.name, env.branch,
                    plan.target))
        for ctx in incoming:
            fm.plain(b'  %s %s: %s\n' % (
                ctx, ctx.branch(),
                stringutil.firstline(ctx.description())))
        fm.data(incoming=fm.formatlist([c.hex() for c in incoming],
                                       name=b'node'))
        ancestor = plan.target.ancestor(plan.feature)
        touched = _changed(ancestor, plan.feature)
        fm.plain(_(b'files touched: %s\n')
                 % (b', '.join(touched) or _(b'none')))
        fm.data(files=fm.formatlist(touched, name=b'file'))
        _predict(fm, repo, plan, tool, ancestor, touched)
        if plan.path is not None:
            fm.plain(_(b"would commit 'Merging %s into %s' and push branch "
                       b'%s to %s\n')
                     % (plan.spec, env.name, env.branch, plan.dest()))
        else:
            fm.plain(_(b"would commit 'Merging %s into %s' on branch %s, "
                       b'without pushing\n')
                     % (plan.spec, env.name, env.branch))
    if deploy:
        fm.plain(_(b'would then deploy %s\n') % env.name)
    return 0


def _changed(base, ctx):
    st = base.status(ctx)
    return sorted(set(st.modified) | set(st.added) | set(st.removed))


def _internaltool(tool):
    return tool and (tool.startswith(b':') or tool.startswith(b'internal:'))


# The tool used when no terminal is there for an interactive one.
NOTERMINAL_TOOL = b':merge'


def terminal(ui):
    """Whether a merge tool could talk to the user: stdin and stdout are
    a terminal, and ``-y`` (``ui.interactive`` off) did not say no."""
    return ui.interactive() and procutil.isatty(ui.fout)


def mergetool(ui, tool):
    """The merge tool the merge uses, dry run and real run alike.

    ``-t TOOL``: that one, as asked.  Else, on a terminal: None,
    Mercurial's own choice (``ui.merge``, ``[merge-tools]``, ``HGMERGE``,
    its fallbacks such as vimdiff).  Without a terminal: the internal
    ``:merge``, which starts nothing and leaves conflicts unresolved
    (the merge is then abandoned), never a tool that waits for a user
    who is not there.
    """
    if tool:
        return tool
    if terminal(ui):
        return None
    return NOTERMINAL_TOOL


def _notool(ui, tool):
    """Why no tool ran, for the abandon message."""
    if tool == NOTERMINAL_TOOL and not terminal(ui):
        return _(b' (no terminal: no merge tool was started)')
    return b''


def _predict(fm, repo, plan, tool, ancestor, touched):
    """Say whether the merge would conflict, merging in memory only.

    External merge tools cannot run in memory: the prediction uses the
    given internal tool, else Mercurial's internal 3-way merge.
    """
    ui = repo.ui
    both = sorted(set(touched) & set(_changed(ancestor, plan.target)))
    tool = mergetool(ui, tool)
    used = tool if _internaltool(tool) else b':merge'
    wctx = context.overlayworkingctx(repo)
    wctx.setbase(plan.target)
    clean = True
    with ui.configoverride({(b'ui', b'forcemerge'): used}, b'envmerge'), \
            _removingbackups():
        ui.pushbuffer(error=True)
        try:
            # force, as rebase does in memory: otherwise merge() reads the
            # real working copy's status, which has nothing to do with this.
            mergemod.merge(plan.feature, force=True, wc=wctx,
                           labels=[plan.env.name, plan.spec])
        except error.InMemoryMergeConflictsError:
            clean = False
        finally:
            ui.popbuffer()
    fm.data(conflicts=not clean, tool=used,
            bothchanged=fm.formatlist(both if not clean else [], name=b'file'))
    if clean:
        fm.plain(_(b'would merge without conflicts (tool %s)\n') % used)
        return
    # The in-memory merge stops at the first conflict, without naming it.
    fm.plain(_(b'would conflict with tool %s, in one or more of the files '
               b'changed on both sides since %s: %s\n')
             % (used, ancestor, b', '.join(both) or _(b'(renamed files)')))
    if not _internaltool(tool):
        fm.plain(_(b'(a merge tool, given with -t or configured, may still '
                   b'resolve them)\n'))
    elif not terminal(ui) and tool == NOTERMINAL_TOOL:
        fm.plain(_(b'(no terminal: the real run starts no merge tool either, '
                   b'and would abandon the merge)\n'))


# The in-memory merge writes a backup of every file it merges into the
# temporary directory, and leaves the one it stopped at behind when that
# file conflicts.  Those made in _predict's context are noted, then removed.
# hg's process may be a long-lived command server: no global setting such as
# tempfile.tempdir changes; filemerge._makebackup is wrapped only while the
# prediction runs, and notes nothing for merges elsewhere in the process.
_backups = contextvars.ContextVar('envmerge_backups', default=None)


def _notebackup(orig, repo, ui, fcd):
    backup = orig(repo, ui, fcd)
    noted = _backups.get()
    if noted is not None and backup is not None \
            and isinstance(fcd, context.overlayworkingfilectx):
        noted.append(backup.path())
    return backup


@contextlib.contextmanager
def _removingbackups():
    """Remove the in-memory merge's backup files afterwards."""
    if not hasattr(filemerge, '_makebackup'):  # hg 6.9-7.2 have it
        yield
        return
    noted = []
    token = _backups.set(noted)
    try:
        with extensions.wrappedfunction(filemerge, '_makebackup', _notebackup):
            yield
    finally:
        _backups.reset(token)
        for path in noted:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # removed by Mercurial: the file merged cleanly
