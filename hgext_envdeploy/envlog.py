# envlog.py - what happened on an environment's hosts
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envlog``: the journals of an environment's hosts, merged by run.

Every host's journal (see :mod:`.journal`) is read in parallel (see
:func:`.hostread.onhosts`); the records of one run, which share its id,
become one :class:`Entry`, shown newest first with every host's result.
Output goes through Mercurial's formatter, so that ``-T json`` gives the
same data.
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod

from . import config, journal
from .hostread import KINDS, enter, onhosts, short


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
        return min((r.get('started') or b'') for _h, r in self.records)

    @property
    def finished(self):
        return max((r.get('finished') or b'') for _h, r in self.records)

    @property
    def duration(self):
        return max((r.get('duration') or 0) for _h, r in self.records)

    @property
    def kind(self):
        return self.first('kind') or journal.DEPLOY

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
    def trigger(self):
        """The push that started the run, as bytes; ``{}`` when none."""
        trigger = self.first('trigger')
        return trigger if isinstance(trigger, dict) else {}

    @property
    def outcome(self):
        outcomes = [r.get('outcome') for _h, r in self.records]
        bad = [o for o in outcomes if o not in journal.DEPLOYED]
        if not bad:
            return (journal.UNCHANGED if set(outcomes) == {journal.UNCHANGED}
                    else journal.OK)
        if len(set(bad)) == 1 and len(bad) == len(outcomes):
            return bad[0]
        return journal.FAILED


def merge(rows, hostorder):
    """Journal records of every host, grouped by run, newest first."""
    entries = {}
    for row in rows:
        for rec in row.get('records') or []:
            key = rec.get('id') or b'%s@%s' % (rec.get('started') or b'?',
                                                  row['host'])
            entries.setdefault(key, Entry(key)).records.append(
                (row['host'], rec))
    for entry in entries.values():
        entry.records.sort(key=lambda item: hostorder.index(item[0])
                           if item[0] in hostorder else len(hostorder))
    return sorted(entries.values(), key=lambda e: (e.started, e.id),
                  reverse=True)


def envlog(ui, repo, name, limit=None, hostname=None, opts=None):
    """``hg envlog``: the journals of ENV's hosts, merged by run."""
    env = config.load(ui, name)
    hosts = _hosts(env, hostname)
    rows = onhosts(ui, [(env, h) for h in hosts], readjournal,
                   config.settings(ui), _(b'reading journals'))
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
    with ui.formatter(b'envlog', opts or {}) as fm:
        if not entries:
            fm.plain(_(b'no deploys recorded for %s\n') % name)
        for entry in entries:
            _writeentry(fm, repo, env, entry)
    return 0


def _hosts(env, hostname):
    """``env``'s hosts, or only ``hostname``."""
    if not hostname:
        return env.hosts
    hosts = [h for h in env.hosts if h.name == hostname]
    if not hosts:
        raise error.InputError(
            _(b"host '%s' is not in environment '%s'") % (hostname, env.name),
            hint=_(b'its hosts: %s') % b', '.join(h.name for h in env.hosts))
    return hosts


def readjournal(session, row):
    """Fill ``row`` with the runs in ``session``'s journal."""
    enter(session)
    _rc, out = session.run(journal.readscript())
    lines, row['damaged'] = journal.parse(out)
    row['records'] = journal.runs(lines)


def _desc(repo, node):
    """First line of the description of hex ``node``, when known here."""
    if not node:
        return b''
    unfi = repo.unfiltered()
    binary = nodemod.bin(node)
    if not unfi.changelog.hasnode(binary):
        return b''
    return unfi[binary].description().split(b'\n')[0]


def _writeentry(fm, repo, env, entry):
    fm.startitem()
    _entrydata(fm, env, entry)
    # Under -T, fm.plain writes nothing and fm.condwrite keeps the data.
    _entrytext(fm, repo, entry)


def _entrydata(fm, env, entry):
    """Every field, as the text shows it in other words (or not at all)."""
    trigger = entry.trigger
    fm.data(
        id=entry.id,
        env=env.name,
        kind=entry.kind,
        user=entry.first('user') or b'',
        client=entry.first('client') or b'',
        started=entry.started,
        finished=entry.finished,
        duration=entry.duration,
        outcome=entry.outcome,
        pusher=trigger.get('pusher') or b'',
        pushurl=trigger.get('url') or b'',
        reversible=(entry.first('plan') or {}).get('reversible'),
        # layout = releases: the release the run left live (journal header)
        release=entry.common('release') or b'',
    )
    if entry.kind == journal.EXEC:
        fm.data(command=entry.common('command') or b'')
    # 'from' is a Python keyword: pass it through a dict.
    fm.data(**{'from': entry.common('from') or b'',
               'to': entry.common('to') or b''})
    _hostsdata(fm, entry)


def _entrytext(fm, repo, entry):
    bad = [r for _h, r in entry.records
           if r.get('outcome') not in journal.DEPLOYED]
    outcome = entry.outcome
    if bad and len(bad) < len(entry.records):
        outcome = _(b'failed on %d of %d hosts') % (len(bad),
                                                    len(entry.records))
    fm.plain(_(b'%s %s by %s, %s (%.1fs): %s\n') % (
        KINDS.get(entry.kind, entry.kind), entry.id,
        entry.first('user') or b'?', entry.started,
        entry.duration, outcome),
        label=b'envdeploy.failed' if bad else b'envdeploy.ok')
    differs = _(b'(differs per host)')
    samefrom, sameto = entry.agree('from'), entry.agree('to')
    if entry.kind == journal.EXEC:
        # A command run on the hosts: no changeset moved (as shown, masked).
        fm.plain(_(b'  ran: %s\n') % (entry.common('command') or differs))
    else:
        tonode = entry.common('to') or b''
        desc = _desc(repo, tonode)
        fm.plain(_(b'  %s -> %s%s\n') % (
            short(entry.common('from') or b'') if samefrom else differs,
            short(tonode) if sameto else differs,
            b' "%s"' % desc if desc else b''))
    release = entry.common('release')
    if release:
        fm.plain(_(b'  release %s\n') % release)
    trigger = entry.trigger
    if trigger:
        claimed = trigger.get('username')
        fm.plain(_(b'  started by a push from %s%s%s\n') % (
            trigger.get('pusher') or b'?',
            _(b', as %s') % claimed if claimed else b'',
            b' (%s)' % trigger['url'] if trigger.get('url') else b''))
    for field, text in (('applied', _(b'  migrations applied: %s\n')),
                        ('reverted', _(b'  migrations reverted: %s\n'))):
        names = entry.migrations(field)
        fm.condwrite(bool(names), field.encode('ascii'), text,
                     fm.formatlist(names, name=b'migration', sep=b', '))
    plan = entry.first('plan') or {}
    fm.condwrite(bool(plan.get('blocker')), b'blocker',
                 _(b'  could not be rolled back past %s\n'),
                 plan.get('blocker') or b'')
    backups = [(r.get('migrations') or {}).get('backup')
               for _h, r in entry.records]
    backup = ([b for b in backups if b] or [b''])[0]
    fm.condwrite(bool(backup), b'backup', _(b'  database backup: %s\n'),
                 backup)
    samerelease = entry.agree('release')
    for host, rec in entry.records:
        fm.plain(b'  %s: %s\n' % (host,
                                   _hostresult(rec, samefrom, sameto,
                                               samerelease)),
                 label=b'envdeploy.failed'
                 if rec.get('outcome') not in journal.DEPLOYED else b'')
    fm.plain(b'\n')


def _hostsdata(fm, entry):
    """The ``hosts`` list of an entry: one item per host's record."""
    sub = fm.nested(b'hosts')
    for host, rec in entry.records:
        sub.startitem()
        rb = rec.get('rollback') if isinstance(rec.get('rollback'),
                                               dict) else None
        sub.data(
            host=host,
            outcome=rec.get('outcome') or b'',
            failed=rec.get('failed') or b'',
            message=rec.get('message') or b'',
            to=rec.get('to') or b'',
            duration=rec.get('duration'),
            patch=rec.get('patch') or b'',
            rollback=rb.get('outcome') or b'' if rb else b'',
            release=rec.get('release') or b'',
        )
        if rec.get('kind') == journal.EXEC:
            sub.data(status=rec.get('status'))
        sub.data(**{'from': rec.get('from') or b''})
    sub.end()


def _hostresult(rec, samefrom, sameto, samerelease=True):
    """One host's part of a run, for its line under the run."""
    text = rec.get('outcome') or b'?'
    if rec.get('kind') == journal.EXEC:
        status = rec.get('status')
        return text + (_(b' (exit %d, %.1fs)') % (status, rec.get('duration') or 0)
                       if isinstance(status, int) else b'')
    if rec.get('outcome') == journal.FAILED:
        text = _(b'failed at %s: %s') % (rec.get('failed') or b'?',
                                         rec.get('message') or b'')
    if not samefrom:
        text += _(b', from %s') % short(rec.get('from'))
    if not sameto:
        text += _(b', to %s') % short(rec.get('to'))
    if not samerelease and rec.get('release'):
        text += _(b', release %s') % rec['release']
    if rec.get('duration') is not None:
        text += b' (%.1fs)' % rec['duration']
    rb = rec.get('rollback')
    if isinstance(rb, dict):
        text += _(b'; automatic rollback to %s: %s') % (
            short(rb.get('to')), rb.get('outcome') or b'?')
    if rec.get('patch'):
        text += _(b'; manual edits saved as %s') % rec['patch']
    return text
