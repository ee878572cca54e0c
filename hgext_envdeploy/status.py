# status.py - what is deployed where
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envstatus``: read the targets, change nothing.

One session per host (hosts in parallel, see :func:`.hostread.onhosts`)
reads what is deployed in as few round trips as possible; the local
repository adds what the next deploy would bring.  Output goes through
Mercurial's formatter, so that ``-T json`` gives the same data.  A host
that cannot be reached is a row with its error, never an exception: status
is most needed when something is wrong.
"""


from mercurial.i18n import _
from mercurial import error, node as nodemod

from . import (config, freeze, heads, journal, lock, migrationplan,
               migrations, promotion, records, releases)
from .hostread import (
    KINDS, HostError, enter, lastline, lockinfo, lockscript, onhosts, plural,
    prefixed, sections, short,
)
from .shell import quote
from .target import StepFailed

# A journal line mentions the deployed node as "to" (and often as "from");
# this many of the newest such lines are enough to find who deployed it.
_JOURNAL_MATCHES = 200

_FAILED = b'envdeploy.failed'


class Branch:
    """The environment's branch in the local repository."""

    def __init__(self, repo, env):
        self.repo = repo
        self.head = None
        self.note = b''
        self._pending = {}
        if env.branch not in repo.branchmap():
            self.note = _(b"branch '%s' does not exist here") % env.branch
            return
        found = heads.openheads(repo, env.branch)
        if not found:
            self.note = _(b"branch '%s' has no open head") % env.branch
            return
        self.head = repo[found[-1]]
        if len(found) > 1:
            self.note = _(b"branch '%s' has %d heads, showing the newest") % (
                env.branch, len(found))

    def pending(self, node):
        """``(count, migration files)`` the next deploy brings to ``node``.

        The count is of the head's ancestors that are not ``node``'s: what
        ``hg envdeploy`` would bring.  ``(None, [])`` when unknown here.
        """
        if self.head is None:
            return None, []
        if node not in self._pending:
            self._pending[node] = self._compute(node)
        return self._pending[node]

    def _compute(self, node):
        repo = self.repo.unfiltered()
        head = self.head.node()
        if not node:
            revs = repo.revs(b'::%n', head)
            base = repo[nodemod.nullrev]
        else:
            binary = nodemod.bin(node)
            if not repo.changelog.hasnode(binary):
                return None, []
            revs = repo.revs(b'only(%n, %n)', head, binary)
            base = repo[binary]
        if not revs:
            return 0, []
        plan = migrationplan.between(repo, base.hex() if node else None,
                                     self.head.hex())
        return len(revs), plan.applies


# -- reading a host


def _statusparts(session):
    """The snippets of the one round trip that reads a target."""
    return [
        # Prefixed lines: a warning on stderr cannot pass for data.
        (b'parent', b"%s log -r . -T 'node:{node}\\nbranch:{branch}\\n"
                    b"desc:{desc|firstline}\\n'" % session.hg),
        (b'dirty', b"%s status -mard -T 'file:{path}\\n'" % session.hg),
        (b'lock', lockscript()),
        (b'freeze', lock.freezescript()),
        # The lines of the last run: its begin line is among them.
        (b'last', b'tail -n 3 %s 2>/dev/null' % journal.JOURNAL),
    ]


def readstatus(session, row, showmigrations=True):
    """Fill ``row`` with what ``session``'s target has deployed."""
    enter(session)
    parts = _statusparts(session)
    if releases.enabled(session.env):
        parts.append(releases.statuspart(session.env))
    found = sections(session, parts)
    if releases.enabled(session.env):
        releases.fillstatus(row, found.get(releases.LAYOUT))
    _readparent(session, row, found.get(b'parent', (1, b'')))
    row['dirty'] = prefixed(found[b'dirty'][1]).get(b'file', [])
    row['locked'], running = lockinfo(found[b'lock'][1])
    row['frozen'] = freeze.shown(found[b'freeze'][1])
    last, _damaged = journal.parse(found[b'last'][1])
    runs = journal.runs(last)
    row['last'] = runs[-1] if runs else None
    # A run without its end line, unless it is the one running now.
    unfinished = journal.unfinished(last)
    if unfinished and unfinished != running:
        row['unfinished'] = unfinished
    row['record'] = _record(session, row['node'])
    row['migrations'] = None
    row['migrationerror'] = b''
    # One database, one reading: on the host that migrates it.
    env = session.env
    if (showmigrations and row['node'] and migrations.statecommand(env)
            and env.migrationhost(session.host) is session.host):
        _readmigrations(session, row)
    row['read'] = True


def _readparent(session, row, parent):
    """``node``, ``desc`` and ``targetbranch`` from the parent section."""
    rc, out = parent
    if rc:
        raise HostError(
            _(b'%s is not a Mercurial repository, or hg cannot run there:'
              b' %s') % (session.env.path, lastline(out)),
            _(b"run 'hg envcheck %s'") % session.env.name)
    fields = prefixed(out)
    node = fields.get(b'node', [b''])[0]
    if node == nodemod.nullhex:
        node = b''
    row.update(node=node,
               desc=fields.get(b'desc', [b''])[0] if node else b'',
               targetbranch=fields.get(b'branch', [b''])[0] if node else b'')


def _record(session, node):
    """The journal record that brought ``node`` there, or None."""
    if not node:
        return None
    _rc, out = session.run(
        b'grep -F -- %s %s 2>/dev/null | tail -n %d'
        % (quote(node), journal.JOURNAL, _JOURNAL_MATCHES))
    records, _damaged = journal.parse(out)
    return _deployment(journal.runs(records), node)


def _deployment(records, node):
    """The journal record that brought ``node``, or None.

    The newest successful run to ``node``; else the newest run to it at all
    (a deploy that failed after the update still left the code there).
    """
    to = [r for r in records if r.get('to') == node]
    done = [r for r in to if r.get('outcome') == journal.OK]
    return (done or to or [None])[-1]


def _readmigrations(session, row):
    """The migrations not applied, or why they cannot be read."""
    try:
        listing = session.migrations()
    except StepFailed as exc:
        row['migrationerror'] = lastline(exc.output) or exc.message
        return
    row['migrations'] = [
        b'%s.%s' % (app, name)
        for app, names in sorted(listing.items())
        for name, applied in names if not applied
    ]


# -- hg envstatus


def envstatus(ui, repo, names, opts):
    """``hg envstatus``: one row per host of the named environments."""
    named = bool(names)
    names = names or config.envnames(ui)
    if not names:
        raise error.InputError(
            _(b'no environments declared'),
            hint=_(b"declare them in [environments] (see 'hg help -e "
                   b"hgext_envdeploy')"))
    if named:
        envs = [config.load(ui, name) for name in names]
        skipped = 0
    else:
        envs, skipped = _loadall(ui, names)
    settings = config.settings(ui)
    branches = {env.name: Branch(repo, env) for env in envs}
    pairs = [(env, host) for env in envs for host in env.hosts]
    showmigrations = opts.get(b'migrations', True)
    # One fan-out over every host of every environment.
    rows = onhosts(ui, pairs,
                   lambda session, row: readstatus(session, row,
                                                   showmigrations),
                   settings, _(b'reading'))
    # The local repository is read here, not in the host threads: a
    # repository object is not thread-safe.
    for row in rows:
        if row.get('read'):
            row['pending'], row['newmigrations'] = branches[
                row['env']].pending(row['node'])
    records.fromstatus(repo, rows)

    with ui.formatter(b'envstatus', opts) as fm:
        for env in envs:
            branch = branches[env.name]
            fm.plain(_envline(env, branch))
            line, promoted = promotion.status(ui, repo, env, branch.head)
            fm.plain(line)
            for row in rows:
                if row['env'] == env.name:
                    _writestatus(ui, fm, env, branch, dict(_UNREAD, **row))
                    fm.data(**promoted)
    return 1 if skipped else 0


def _loadall(ui, names):
    """``(environments, skipped)``: every environment that loads; one
    that does not is skipped with a warning naming its file and line, as
    hg skips a ``[paths]`` entry it cannot use (the others are still worth
    seeing; the exit code says one was left out)."""
    envs = []
    for name in names:
        try:
            envs.append(config.load(ui, name))
        except error.ConfigError as exc:
            ui.warn(_(b"warning: skipping environment '%s': %s\n")
                    % (name, exc.message))
            if exc.hint:
                ui.warn(b'(%s)\n' % exc.hint)
    return envs, len(names) - len(envs)


def _envline(env, branch):
    head = branch.head
    if head is None:
        text = b'%s: %s' % (env.name, branch.note)
    else:
        text = _(b'%s: branch %s at %s "%s"') % (
            env.name, env.branch, head.hex()[:12],
            head.description().split(b'\n')[0])
        if branch.note:
            text += b' (%s)' % branch.note
    return text + b'\n'


# What a row says before (or without) reading its host.
_UNREAD = {
    'node': b'', 'desc': b'', 'targetbranch': b'', 'record': None,
    'last': None, 'dirty': [], 'locked': b'', 'migrations': None,
    'migrationerror': b'', 'pending': None, 'newmigrations': [],
    'read': False, 'unfinished': b'', 'role': b'', 'frozen': b'',
}


def _writestatus(ui, fm, env, branch, row):
    fm.startitem()
    _statusdata(fm, env, branch, row)
    if row['read']:
        _writeread(ui, fm, env, branch, row)
    else:
        _writeunread(fm, row)


def _statusdata(fm, env, branch, row):
    """The fields the text shows in other words, or not at all."""
    record = row['record']
    fm.data(
        env=env.name,
        host=row['host'],
        role=row['role'],
        unfinished=row['unfinished'],
        reachable=row['reachable'],
        node=row['node'],
        desc=row['desc'],
        targetbranch=row['targetbranch'],
        deployedat=record.get('finished') or b'' if record else b'',
        deployedby=record.get('user') or b'' if record else b'',
        branchhead=branch.head.hex() if branch.head is not None else b'',
        pending=row['pending'],
        newmigrations=fm.formatlist(
            [{b'app': m.app, b'name': m.name,
              b'flags': fm.formatlist(m.flags, name=b'flag')}
             for m in row['newmigrations']], name=b'migration'),
        reversible=migrationplan.Plan(row['newmigrations']).reversible
        if row['pending'] else None,
    )
    if not row['read']:
        fm.data(dirty=fm.formatlist([], name=b'file'), migrations=None)
    if 'release' in row:
        fm.data(release=row['release'],
                releases=fm.formatlist(row['releases'], name=b'release'))


def _writeunread(fm, row):
    """A host that could not be reached, or read: why."""
    fm.plain(b'  %s: ' % row['label'], label=_FAILED)
    fm.write(b'error', _(b'cannot read: %s\n') if row['reachable']
             else _(b'unreachable: %s\n'), row['error'], label=_FAILED)
    if row['hint']:
        fm.plain(b'    (%s)\n' % row['hint'])
    fm.data(locked=row['locked'], frozen=row['frozen'])


def _writeread(ui, fm, env, branch, row):
    fm.data(error=row['error'])
    fm.plain(b'  %s: %s\n' % (row['label'], _hostline(env, branch, row)),
             label=b'envdeploy.ok' if row['pending'] == 0 else b'')
    if row.get('release') is not None:
        fm.plain(_(b'    release %s (%d on disk)\n')
                 % (row['release'] or _(b'none live'), len(row['releases'])))
    last = _lastrun(row)
    if last:
        fm.plain(last, label=_FAILED)
    dirty = row['dirty']
    fm.condwrite(bool(dirty) and ui.verbose, b'dirty',
                 _(b'    manual edits: %s\n'),
                 fm.formatlist(dirty, name=b'file', sep=b', '), label=_FAILED)
    if dirty and not ui.verbose:
        fm.plain(b'    %s\n' % plural(
            len(dirty), _(b'manual edits in 1 file (-v lists it)'),
            _(b'manual edits in %d files (-v lists them)')), label=_FAILED)
    fm.condwrite(row['locked'], b'locked', _(b'    locked by %s\n'),
                 row['locked'], label=_FAILED)
    fm.condwrite(row['frozen'], b'frozen', _(b'    FROZEN %s\n'),
                 row['frozen'], label=_FAILED)
    where = (b'' if len(env.hosts) == 1 or env.migrateall
             else _(b' (the database of %s)') % env.name)
    missing = row['migrations']
    if missing is None:
        fm.data(migrations=None)  # not read: JSON says null, not []
    else:
        fm.condwrite(bool(missing), b'migrations',
                     _(b'    migrations not applied%s: %%s\n') % where,
                     fm.formatlist(missing, name=b'migration', sep=b', '),
                     label=_FAILED)
    if not missing and row['migrationerror']:
        fm.plain(_(b'    migrations: cannot read (%s)\n')
                 % row['migrationerror'])


def _hostline(env, branch, row):
    """What is deployed, and what the next deploy would bring."""
    node = row['node']
    if node:
        text = b'%s "%s", %s' % (node[:12], row['desc'],
                                 _describerecord(row['record']))
        if row['targetbranch'] != env.branch:
            text += _(b', on branch %s!') % row['targetbranch']
    else:
        text = _(b'never deployed (empty working copy)')
    pending = row['pending']
    if pending is None:
        if branch.head is not None:
            text += _(b'; deployed changeset unknown here (pull?)')
        return text
    if pending == 0:
        return text + _(b'; up to date')
    text += b'; ' + plural(pending, _(b'1 changeset not deployed'),
                           _(b'%d changesets not deployed'))
    new = row['newmigrations']
    if new:
        # The first few; JSON has them all.
        names = b', '.join(
            m.key + (b' [%s]' % b', '.join(m.flags) if m.flags else b'')
            for m in new[:3])
        if len(new) > 3:
            names += _(b' and %d more') % (len(new) - 3)
        text += _(b' (new migrations: %s)') % names
        blocker = migrationplan.Plan(new).blocker()
        if blocker is not None:
            text += _(b'; that deploy could not be rolled back past %s') % (
                blocker.key)
    return text


def _describerecord(record):
    if record is None:
        return _(b'not deployed by envdeploy (no journal record)')
    rec = record
    kind = KINDS.get(record.get('kind'), record.get('kind') or b'?')
    verb = (_(b'rolled back') if record.get('kind') == journal.ROLLBACK
            else _(b'deployed'))
    text = _(b'%s %s by %s') % (verb, rec.get('finished') or b'?',
                                rec.get('user') or b'?')
    if record.get('outcome') == journal.UNFINISHED:
        return _(b'put there by an unfinished %s started %s by %s') % (
            kind, rec.get('started') or b'?', rec.get('user') or b'?')
    if record.get('outcome') not in journal.DEPLOYED:
        text += _(b' (%s %s)') % (kind, rec.get('outcome') or b'?')
    return text


def _lastrun(row):
    """The last run, when it did not finish or failed after the deploy
    that put the code there; else b''."""
    last = row['last']
    if row['unfinished']:
        rec = last
        return _(b'    last %s UNFINISHED (run %s, %s by %s, to %s): its end '
                 b'was never recorded; the next deploy or rollback reads '
                 b'the real state\n') % (
            KINDS.get(last.get('kind'), rec.get('kind') or b'?'),
            row['unfinished'], rec.get('started') or b'?',
            rec.get('user') or b'?', short(rec.get('to')))
    if (last and last.get('outcome') == journal.FAILED
            and last.get('id') != (row['record'] or {}).get('id')):
        rec = last
        return _(b'    last %s FAILED at %s, %s by %s: %s\n') % (
            KINDS.get(last.get('kind'), rec.get('kind') or b'?'),
            rec.get('failed') or b'?', rec.get('finished') or b'?',
            rec.get('user') or b'?', rec.get('message') or b'')
    return b''
