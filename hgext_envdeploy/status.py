# status.py - what is deployed where, and what happened before
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envstatus`` and ``hg envlog``: read the targets, change nothing.

Both open one session per host (hosts in parallel), read what they need in
as few round trips as possible, and print through Mercurial's formatter so
that ``-T json`` gives the same data.  A host that cannot be reached is a
row with its error, never an exception: status is most needed when
something is wrong.

:func:`onhosts` is the read-only counterpart of :class:`~.run.Run`, shared
with ``envsetup`` and ``envcheck`` (provision.py).
"""

import re

from mercurial.i18n import _
from mercurial import error, node as nodemod, pycompat

from . import config, fanout, journal, lock, migrations, transport
from .shell import Shell, ShellError, quote
from .target import HostSession, StepFailed

# A journal line mentions the deployed node as "to" (and often as "from");
# this many of the newest such lines are enough to find who deployed it.
_JOURNAL_MATCHES = 200

_MIGRATION_FILE = re.compile(
    br'(?:^|/)(?P<app>[^/]+)/migrations/(?P<name>(?!__init__)[^/]+)\.py$'
)

KINDS = {
    'deploy': _(b'deploy'),
    'rollback': _(b'rollback'),
    'autorollback': _(b'automatic rollback'),
}


class HostError(Exception):
    """Reading a host failed: the row gets ``msg`` and ``hint``."""

    def __init__(self, msg, hint=None):
        super().__init__(msg)
        self.msg = msg
        self.hint = hint


def _nosay(host, msg, method='status', label=b''):
    """Reading commands collect their messages in rows instead."""


def onhosts(ui, pairs, work, settings, topic):
    """Call ``work(session, row)`` for every ``(env, host)``, in parallel.

    ``session`` is a :class:`~.target.HostSession` (not yet in ``path``).
    Returns one dict per pair, in order, with at least ``env``, ``host``,
    ``reachable``, ``error`` and ``hint``; whatever ``work`` adds is kept.
    One connection per pair; an unreachable host or one that breaks down
    sets ``error`` and never stops the others.
    """
    sshcontext = None
    if any(not env.islocal for env, _host in pairs):
        sshcontext = transport.SSHContext(ui, settings)
    rows = [
        {'env': env.name, 'host': host.name, 'role': host.role or b'',
         'label': host.label, 'reachable': True, 'error': b'', 'hint': None}
        for env, host in pairs
    ]

    def run(index, host):
        env = pairs[index][0]
        row = rows[index]
        try:
            try:
                conn = transport.connect(host, env, sshcontext)
            except transport.ConnectError as exc:
                row.update(reachable=False, error=exc.msg, hint=exc.hint)
                return
            session = HostSession(env, host, Shell(conn, settings[b'timeout']),
                                  settings, _nosay)
            try:
                work(session, row)
            finally:
                session.close()
        except HostError as exc:
            row.update(error=exc.msg, hint=exc.hint)
        except StepFailed as exc:
            row.update(error=exc.message, hint=exc.hint)
        except ShellError as exc:
            row['error'] = _(b'lost the connection: %s') % pycompat.bytestr(
                str(exc))
        except Exception as exc:
            # A bug stays with its host; the other rows are still worth
            # reading.
            row['error'] = _(b'unexpected error: %s') % pycompat.bytestr(
                '%s: %s' % (type(exc).__name__, exc))

    fanout.foreach(ui, [host for _env, host in pairs], run,
                   settings[b'concurrency'], topic)
    return rows


def enter(session):
    """Go into the target repository, or say how to create it."""
    try:
        session.enter()
    except StepFailed as exc:
        raise HostError(exc.message, _(b"run 'hg envsetup %s'")
                        % session.env.name)


def sections(session, parts):
    """Run named snippets in one round trip; ``{name: (status, output)}``.

    The snippets run in order in one subshell, so a ``cd`` in one applies
    to the next.  A snippet must not ``exit``.
    """
    script = []
    for name, snippet in parts:
        script.append(
            b"printf '\\036section %s\\n'\n{ %s\n} 2>&1\n"
            b"printf '\\036status %%d\\n' \"$?\"" % (name, snippet)
        )
    _status, out = session.run(b'\n'.join(script))
    found = {}
    name, lines = None, []
    for line in out.split(b'\n'):
        if line.startswith(b'\x1esection '):
            name, lines = line[len(b'\x1esection '):], []
        elif line.startswith(b'\x1estatus ') and name is not None:
            found[name] = (int(line[len(b'\x1estatus '):]),
                           b'\n'.join(lines))
            name = None
        elif name is not None:
            lines.append(line)
    return found


def lastline(output):
    lines = [l for l in output.splitlines() if l.strip()]
    return lines[-1].strip() if lines else b''


def prefixed(output):
    """``{prefix: [values]}`` from ``prefix:value`` lines; others ignored."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(b':')
        if sep and key.isalpha():
            found.setdefault(key, []).append(value)
    return found


def lockscript():
    """Prints the lock's info lines after ``locked``, or nothing."""
    return (b'if [ -d %(d)s ]; then echo locked; cat %(d)s/info 2>/dev/null; '
            b'fi' % {b'd': lock.LOCKDIR})


def parselock(output):
    """The lock holder's description, or b'' when the lock is free."""
    return lockinfo(output)[0]


def lockinfo(output):
    """``(description, run id)`` of the lock holder; ``(b'', None)`` when
    the lock is free."""
    first, _sep, info = output.partition(b'\n')
    if first != b'locked':
        return b'', None
    info = lock.readinfo(info)
    return lock.describe(info), info.get(b'run')


def tobytes(value):
    """Journal values (JSON text) as the bytes the formatter wants."""
    if isinstance(value, str):
        return value.encode('utf-8', 'surrogateescape')
    if isinstance(value, list):
        return [tobytes(v) for v in value]
    if isinstance(value, dict):
        return {tobytes(k): tobytes(v) for k, v in value.items()}
    return value


def plural(count, one, many):
    return one if count == 1 else many % count


def short(node):
    return node[:12] if node else _(b'(empty)')


# -- hg envstatus ------------------------------------------------------------


class Branch:
    """The environment's branch in the local repository."""

    def __init__(self, repo, env):
        self.repo = repo
        self.head = None
        self.note = b''
        self._pending = {}
        branchmap = repo.branchmap()
        if env.branch not in branchmap:
            self.note = _(b"branch '%s' does not exist here") % env.branch
            return
        heads = branchmap.branchheads(env.branch, closed=False)
        if not heads:
            self.note = _(b"branch '%s' has no open head") % env.branch
            return
        self.head = max((repo[h] for h in heads), key=lambda c: c.rev())
        if len(heads) > 1:
            self.note = _(b"branch '%s' has %d heads, showing the newest") % (
                env.branch, len(heads))

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
        added = repo.status(base, self.head).added
        found = []
        for f in added:
            m = _MIGRATION_FILE.search(f)
            if m:
                found.append(b'%s.%s' % (m.group('app'), m.group('name')))
        return len(revs), sorted(found)


def _deployment(records, node):
    """The journal record that brought ``node``, or None.

    The newest successful run to ``node``; else the newest run to it at all
    (a deploy that failed after the update still left the code there).
    """
    to = [r for r in records if r.get('to') == node]
    done = [r for r in to if r.get('outcome') == 'ok']
    return (done or to or [None])[-1]


def _readstatus(showmigrations):
    def work(session, row):
        env = session.env
        enter(session)
        found = sections(session, [
            # Prefixed lines: a warning on stderr cannot pass for data.
            (b'parent', b"%s log -r . -T 'node:{node}\\nbranch:{branch}\\n"
                        b"desc:{desc|firstline}\\n'" % session.hg),
            (b'dirty', b"%s status -mard -T 'file:{path}\\n'" % session.hg),
            (b'lock', lockscript()),
            # The lines of the last run: its begin line is among them.
            (b'last', b'tail -n 3 %s 2>/dev/null' % journal.JOURNAL),
        ])
        status, out = found.get(b'parent', (1, b''))
        if status:
            raise HostError(
                _(b'%s is not a Mercurial repository, or hg cannot run there:'
                  b' %s') % (env.path, lastline(out)),
                _(b"run 'hg envcheck %s'") % env.name)
        parent = prefixed(out)
        node = parent.get(b'node', [b''])[0]
        if node == nodemod.nullhex:
            node = b''
        row.update(node=node,
                   desc=parent.get(b'desc', [b''])[0] if node else b'',
                   targetbranch=parent.get(b'branch', [b''])[0] if node
                   else b'')
        row['dirty'] = prefixed(found[b'dirty'][1]).get(b'file', [])
        row['locked'], running = lockinfo(found[b'lock'][1])
        last, _damaged = journal.parse(found[b'last'][1])
        runs = journal.runs(last)
        row['last'] = runs[-1] if runs else None
        # A run without its end line, unless it is the one running now.
        unfinished = journal.unfinished(last)
        if unfinished and pycompat.sysbytes(unfinished) != running:
            row['unfinished'] = pycompat.sysbytes(unfinished)
        row['record'] = None
        if node:
            _status, out = session.run(
                b'grep -F -- %s %s 2>/dev/null | tail -n %d'
                % (quote(node), journal.JOURNAL, _JOURNAL_MATCHES))
            records, _damaged = journal.parse(out)
            row['record'] = _deployment(journal.runs(records),
                                        pycompat.sysstr(node))
        row['migrations'] = None
        row['migrationerror'] = b''
        # One database, one reading: on the host that migrates it.
        if (showmigrations and node and migrations.statecommand(env)
                and env.migrationhost(session.host) is session.host):
            try:
                listing = session.migrations()
            except StepFailed as exc:
                row['migrationerror'] = lastline(exc.output) or exc.message
            else:
                row['migrations'] = [
                    ('%s.%s' % (app, name)).encode('utf-8')
                    for app, names in sorted(listing.items())
                    for name, applied in names if not applied
                ]
        row['read'] = True

    return work


def envstatus(ui, repo, names, opts):
    """``hg envstatus``: one row per host of the named environments."""
    names = names or config.envnames(ui)
    if not names:
        raise error.InputError(
            _(b'no environments declared'),
            hint=_(b"declare them in [environments] (see 'hg help -e "
                   b"hgext_envdeploy')"))
    envs = [config.load(ui, name) for name in names]
    settings = config.settings(ui)
    branches = {env.name: Branch(repo, env) for env in envs}
    pairs = [(env, host) for env in envs for host in env.hosts]
    # One fan-out over every host of every environment.
    rows = onhosts(ui, pairs, _readstatus(opts.get(b'migrations', True)),
                   settings, _(b'reading'))
    # The local repository is read here, not in the host threads: a
    # repository object is not thread-safe.
    for row in rows:
        if row.get('read'):
            row['pending'], row['newmigrations'] = branches[
                row['env']].pending(row['node'])

    with ui.formatter(b'envstatus', opts) as fm:
        for env in envs:
            branch = branches[env.name]
            if fm.isplain():
                _writeenv(ui, fm, env, branch)
            for row in rows:
                if row['env'] == env.name:
                    _writestatus(ui, fm, env, branch, row)
    return 0


def _writeenv(ui, fm, env, branch):
    head = branch.head
    if head is None:
        text = b'%s: %s' % (env.name, branch.note)
    else:
        text = _(b'%s: branch %s at %s "%s"') % (
            env.name, env.branch, head.hex()[:12],
            head.description().split(b'\n')[0])
        if branch.note:
            text += b' (%s)' % branch.note
    fm.plain(text + b'\n')


def _describerecord(record):
    if record is None:
        return _(b'not deployed by envdeploy (no journal record)')
    rec = tobytes(record)
    kind = KINDS.get(record.get('kind'), tobytes(record.get('kind') or '?'))
    verb = _(b'rolled back') if record.get('kind') in (
        'rollback', 'autorollback') else _(b'deployed')
    text = _(b'%s %s by %s') % (verb, rec.get(b'finished') or b'?',
                                rec.get(b'user') or b'?')
    if record.get('outcome') == journal.UNFINISHED:
        return _(b'put there by an unfinished %s started %s by %s') % (
            kind, rec.get(b'started') or b'?', rec.get(b'user') or b'?')
    if record.get('outcome') not in ('ok', 'unchanged'):
        text += _(b' (%s %s)') % (kind, rec.get(b'outcome') or b'?')
    return text


# What a row says before (or without) reading its host.
_UNREAD = {
    'node': b'', 'desc': b'', 'targetbranch': b'', 'record': None,
    'last': None, 'dirty': [], 'locked': b'', 'migrations': None,
    'migrationerror': b'', 'pending': None, 'newmigrations': [],
    'read': False, 'unfinished': b'', 'role': b'',
}


def _writestatus(ui, fm, env, branch, row):
    row = dict(_UNREAD, **row)
    fm.startitem()
    record = row['record']
    node = row['node']
    fm.data(
        env=env.name,
        host=row['host'],
        role=row['role'],
        unfinished=row['unfinished'],
        reachable=row['reachable'],
        error=row['error'],
        node=node,
        desc=row['desc'],
        targetbranch=row['targetbranch'],
        deployedat=tobytes(record.get('finished') or '') if record else b'',
        deployedby=tobytes(record.get('user') or '') if record else b'',
        branchhead=branch.head.hex() if branch.head is not None else b'',
        pending=row['pending'],
        newmigrations=fm.formatlist(row['newmigrations'], name=b'migration'),
        dirty=fm.formatlist(row['dirty'], name=b'file'),
        locked=row['locked'],
        migrations=None if row['migrations'] is None else
        fm.formatlist(row['migrations'], name=b'migration'),
    )
    if not fm.isplain():
        return
    host = row['label']
    bad = b'envdeploy.failed'
    if not row['reachable']:
        fm.plain(_(b'  %s: unreachable: %s\n') % (host, row['error']),
                 label=bad)
        if row['hint']:
            fm.plain(b'    (%s)\n' % row['hint'])
        return
    if not row['read']:
        fm.plain(_(b'  %s: cannot read: %s\n') % (host, row['error']),
                 label=bad)
        if row['hint']:
            fm.plain(b'    (%s)\n' % row['hint'])
        return
    if node:
        text = b'%s "%s", %s' % (node[:12], row['desc'],
                                 _describerecord(record))
        if row['targetbranch'] != env.branch:
            text += _(b', on branch %s!') % row['targetbranch']
    else:
        text = _(b'never deployed (empty working copy)')
    pending = row['pending']
    if pending is None:
        if branch.head is not None:
            text += _(b'; deployed changeset unknown here (pull?)')
    elif pending == 0:
        text += _(b'; up to date')
    else:
        text += b'; ' + plural(pending, _(b'1 changeset not deployed'),
                               _(b'%d changesets not deployed'))
        new = row['newmigrations']
        if new:
            # The first few; JSON has them all.
            names = b', '.join(new[:3])
            if len(new) > 3:
                names += _(b' and %d more') % (len(new) - 3)
            text += _(b' (new migrations: %s)') % names
    fm.plain(b'  %s: %s\n' % (host, text),
             label=b'envdeploy.ok' if pending == 0 else b'')
    last = row['last']
    if row['unfinished']:
        rec = tobytes(last)
        fm.plain(_(b'    last %s UNFINISHED (run %s, %s by %s, to %s): its end '
                   b'was never recorded; the next deploy or rollback reads '
                   b'the real state\n') % (
            KINDS.get(last.get('kind'), rec.get(b'kind') or b'?'),
            row['unfinished'], rec.get(b'started') or b'?',
            rec.get(b'user') or b'?', short(rec.get(b'to'))), label=bad)
    elif (last and last.get('outcome') == 'failed'
            and last.get('id') != (record or {}).get('id')):
        rec = tobytes(last)
        fm.plain(_(b'    last %s FAILED at %s, %s by %s: %s\n') % (
            KINDS.get(last.get('kind'), rec.get(b'kind') or b'?'),
            rec.get(b'failed') or b'?', rec.get(b'finished') or b'?',
            rec.get(b'user') or b'?', rec.get(b'message') or b''), label=bad)
    if row['dirty']:
        if ui.verbose:
            fm.plain(_(b'    manual edits: %s\n') % b', '.join(row['dirty']),
                     label=bad)
        else:
            fm.plain(b'    %s\n' % plural(
                len(row['dirty']),
                _(b'manual edits in 1 file (-v lists it)'),
                _(b'manual edits in %d files (-v lists them)')), label=bad)
    if row['locked']:
        fm.plain(_(b'    locked by %s\n') % row['locked'], label=bad)
    if row['migrations']:
        fm.plain(_(b'    migrations not applied%s: %s\n')
                 % (b'' if len(env.hosts) == 1 or env.migrateall else
                    _(b' (the database of %s)') % env.name,
                    b', '.join(row['migrations'])), label=bad)
    elif row['migrationerror']:
        fm.plain(_(b'    migrations: cannot read (%s)\n')
                 % row['migrationerror'])


# -- hg envlog ---------------------------------------------------------------


class Entry:
    """One run (a journal ``id``) merged across the hosts that wrote it."""

    def __init__(self, key):
        self.id = key
        self.records = []  # (host name, record)

    def first(self, field):
        for _host, rec in self.records:
            if rec.get(field) is not None:
                return rec[field]
        return None

    @property
    def started(self):
        return min((r.get('started') or '') for _h, r in self.records)

    @property
    def finished(self):
        return max((r.get('finished') or '') for _h, r in self.records)

    @property
    def duration(self):
        return max((r.get('duration') or 0) for _h, r in self.records)

    @property
    def kind(self):
        return self.first('kind') or 'deploy'

    def agree(self, field):
        """Whether every host has the same ``field``."""
        return len({r.get(field) for _h, r in self.records}) == 1

    def common(self, field):
        """The value every host agrees on, or None."""
        return self.records[0][1].get(field) if self.agree(field) else None

    def migrations(self, field):
        """``app.name`` applied or reverted, over all hosts, in order."""
        seen = []
        for _host, rec in self.records:
            for name in (rec.get('migrations') or {}).get(field) or []:
                if name not in seen:
                    seen.append(name)
            if field == 'reverted':
                for name in (rec.get('rollback') or {}).get('reverted') or []:
                    if name not in seen:
                        seen.append(name)
        return seen

    @property
    def outcome(self):
        outcomes = [r.get('outcome') for _h, r in self.records]
        bad = [o for o in outcomes if o not in ('ok', 'unchanged')]
        if not bad:
            return 'unchanged' if set(outcomes) == {'unchanged'} else 'ok'
        if len(set(bad)) == 1 and len(bad) == len(outcomes):
            return bad[0]
        return 'failed'

    def autorollback(self):
        """The automatic rollbacks inside a deploy, per host."""
        return [(h, r['rollback']) for h, r in self.records
                if isinstance(r.get('rollback'), dict)]


def merge(rows, hostorder):
    """Journal records of every host, grouped by run, newest first."""
    entries = {}
    for row in rows:
        for rec in row.get('records') or []:
            key = rec.get('id') or '%s@%s' % (rec.get('started'), row['host'])
            entries.setdefault(key, Entry(key)).records.append(
                (row['host'], rec))
    for entry in entries.values():
        entry.records.sort(key=lambda item: hostorder.index(item[0])
                           if item[0] in hostorder else len(hostorder))
    return sorted(entries.values(), key=lambda e: (e.started, e.id),
                  reverse=True)


def envlog(ui, repo, name, limit=None, hostname=None, opts=None):
    """``hg envlog``: the journals of ENV's hosts, merged by run."""
    opts = opts or {}
    env = config.load(ui, name)
    settings = config.settings(ui)
    hosts = env.hosts
    if hostname:
        hosts = [h for h in hosts if h.name == hostname]
        if not hosts:
            raise error.InputError(
                _(b"host '%s' is not in environment '%s'") % (hostname, name),
                hint=_(b'its hosts: %s') % b', '.join(
                    h.name for h in env.hosts))

    def work(session, row):
        enter(session)
        _status, out = session.run(journal.readscript())
        lines, row['damaged'] = journal.parse(out)
        row['records'] = journal.runs(lines)

    rows = onhosts(ui, [(env, h) for h in hosts], work, settings,
                   _(b'reading journals'))
    for row in rows:
        if row['error']:
            ui.warn(_(b'%s: cannot read the journal: %s\n')
                    % (row['host'], row['error']))
        elif row.get('damaged'):
            ui.warn(_(b'%s: skipped %d damaged journal lines\n')
                    % (row['host'], row['damaged']))
    if all(row['error'] for row in rows):
        raise error.Abort(_(b'could not read the journal of any host of %s')
                          % name, hint=rows[0]['hint'])
    entries = merge(rows, [h.name for h in hosts])
    if limit:
        entries = entries[:limit]
    with ui.formatter(b'envlog', opts) as fm:
        if not entries and fm.isplain():
            fm.plain(_(b'no deploys recorded for %s\n') % name)
        for entry in entries:
            _writeentry(ui, fm, repo, env, entry)
    return 0


def _desc(repo, node):
    """First line of the description of hex ``node``, when known here."""
    if not node:
        return b''
    unfi = repo.unfiltered()
    binary = nodemod.bin(node)
    if not unfi.changelog.hasnode(binary):
        return b''
    return unfi[binary].description().split(b'\n')[0]


def _writeentry(ui, fm, repo, env, entry):
    fm.startitem()
    fromnode = entry.common('from')
    tonode = entry.common('to')
    applied = tobytes(entry.migrations('applied'))
    reverted = tobytes(entry.migrations('reverted'))
    trigger = entry.first('trigger')
    trigger = tobytes(trigger) if isinstance(trigger, dict) else {}
    fm.data(
        id=tobytes(entry.id),
        env=env.name,
        kind=tobytes(entry.kind),
        user=tobytes(entry.first('user') or ''),
        client=tobytes(entry.first('client') or ''),
        started=tobytes(entry.started),
        finished=tobytes(entry.finished),
        duration=entry.duration,
        outcome=tobytes(entry.outcome),
        applied=fm.formatlist(applied, name=b'migration'),
        reverted=fm.formatlist(reverted, name=b'migration'),
        pusher=trigger.get(b'pusher') or b'',
        pushurl=trigger.get(b'url') or b'',
    )
    # 'from' is a Python keyword: pass it through a dict.
    fm.data(**{'from': tobytes(fromnode or ''), 'to': tobytes(tonode or '')})
    sub = fm.nested(b'hosts')
    for host, rec in entry.records:
        sub.startitem()
        rb = rec.get('rollback') if isinstance(rec.get('rollback'),
                                               dict) else None
        sub.data(
            host=host,
            outcome=tobytes(rec.get('outcome') or ''),
            failed=tobytes(rec.get('failed') or ''),
            message=tobytes(rec.get('message') or ''),
            to=tobytes(rec.get('to') or ''),
            duration=rec.get('duration'),
            patch=tobytes(rec.get('patch') or ''),
            rollback=tobytes(rb.get('outcome') or '') if rb else b'',
        )
        sub.data(**{'from': tobytes(rec.get('from') or '')})
    sub.end()
    if not fm.isplain():
        return

    kind = KINDS.get(entry.kind, tobytes(entry.kind))
    outcome = tobytes(entry.outcome)
    bad = [r for _h, r in entry.records
           if r.get('outcome') not in ('ok', 'unchanged')]
    if bad and len(bad) < len(entry.records):
        outcome = _(b'failed on %d of %d hosts') % (len(bad),
                                                    len(entry.records))
    label = b'envdeploy.failed' if bad else b'envdeploy.ok'
    fm.plain(_(b'%s %s by %s, %s (%.1fs): %s\n') % (
        kind, tobytes(entry.id), tobytes(entry.first('user') or '?'),
        tobytes(entry.started), entry.duration, outcome), label=label)
    differs = _(b'(differs per host)')
    samefrom, sameto = entry.agree('from'), entry.agree('to')
    fromtext = short(tobytes(fromnode or '')) if samefrom else differs
    totext = short(tobytes(tonode or '')) if sameto else differs
    desc = _desc(repo, tobytes(tonode or ''))
    fm.plain(_(b'  %s -> %s%s\n') % (fromtext, totext,
                                     b' "%s"' % desc if desc else b''))
    if trigger:
        fm.plain(_(b'  started by a push from %s%s\n') % (
            trigger.get(b'pusher') or b'?',
            b' (%s)' % trigger[b'url'] if trigger.get(b'url') else b''))
    if applied:
        fm.plain(_(b'  migrations applied: %s\n') % b', '.join(applied))
    if reverted:
        fm.plain(_(b'  migrations reverted: %s\n') % b', '.join(reverted))
    for host, rec in entry.records:
        brec = tobytes(rec)
        text = brec.get(b'outcome') or b'?'
        if rec.get('outcome') == 'failed':
            text = _(b'failed at %s: %s') % (brec.get(b'failed') or b'?',
                                             brec.get(b'message') or b'')
        if not samefrom:
            text += _(b', from %s') % short(brec.get(b'from'))
        if not sameto:
            text += _(b', to %s') % short(brec.get(b'to'))
        if rec.get('duration') is not None:
            text += b' (%.1fs)' % rec['duration']
        rb = rec.get('rollback')
        if isinstance(rb, dict):
            brb = tobytes(rb)
            text += _(b'; automatic rollback to %s: %s') % (
                short(brb.get(b'to')), brb.get(b'outcome') or b'?')
        if rec.get('patch'):
            text += _(b'; manual edits saved as %s') % brec[b'patch']
        fm.plain(b'  %s: %s\n' % (tobytes(host), text),
                 label=b'envdeploy.failed'
                 if rec.get('outcome') not in ('ok', 'unchanged') else b'')
    fm.plain(b'\n')
