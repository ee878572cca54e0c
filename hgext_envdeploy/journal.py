# journal.py - what was deployed where, kept on the target
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The deploy journal: ``.hg/envdeploy/journal.jsonl`` in the target repository.

One JSON object per line, appended, never rewritten.  A run writes ahead:
before it changes anything on a host it appends a ``begin`` line (id, who,
from and to changeset, the saved patch); the migration host adds a
``migrating`` line with the state it read just before migrating; the end of
the run appends the complete record (``phase: end``).  A run whose ``end``
line is missing never finished (its session was lost, its client killed):
:func:`runs` gives it the outcome ``unfinished``, and nothing is inferred
from it.  Format 1 (before write-ahead) had only complete lines.

Every line has ``v`` (format version, 2), ``id`` (the run's id, shared by
all hosts of one run) and ``phase`` (``begin``, ``migrating``, ``end``);
a complete record has at least:

``kind``      ``deploy`` or ``rollback`` (the automatic rollback of a failed
              deploy is part of its deploy's record: ``rollback``), or
              ``exec`` (see below)
``role``      the host's role (``ENV.hosts.ROLE``), or null
``env``       environment name; ``branch`` its branch
``host``      the host entry as written in hgrc (``local`` for local)
``user``      who deployed (Mercurial username); ``client`` from which machine
``started``, ``finished``  UTC times, ISO 8601; ``duration`` seconds
``from``      full hash the target was at before (null: empty working copy)
``to``        full hash deployed
``dirty``     files with manual edits found before the update; null when
              not looked for (a rollback with releases leaves the live
              release as it is, and keep saves its edits before removing it)
``patch``     where those edits were saved (relative to the repository), or null;
              ``hg import --no-commit PATCH`` in the repository brings them back
``untracked`` files the target's parent did not track (unknown, ignored, or
              added with ``hg add``) that the update would overwrite, saved
              under ``.hg/envdeploy/patches/ID/untracked/``; ``[]`` when none
``migrations`` when ``migrate`` is set: ``on`` (the host that migrated
              the environment's database), ``before`` (app -> latest
              applied migration, or ``zero``, read just before migrating;
              carried forward, with ``unchanged: true``, when no migration
              file changed, on a deploy or a rollback), ``applied``
              (``app.name``, in the order applied), ``reverted`` (in the
              order unapplied) and ``after``: the state the run left, read
              or carried forward; null when it is not known
              (and ``backup``: the file ``ENV.backup`` wrote before
              migrating; ``restored``: the backup ``--restore`` restored)
``plan``      on a deploy with ``migrate``: the migrations it applies, read
              from the local repository before any host changed (see
              migrationplan.py): ``applies`` (``{"app", "name", "flags"}``),
              ``reversible`` (true, false, null: not known) and
              ``blocker`` (``app.name`` a rollback would stop at, or null)
``rollback``  on a deploy rolled back: ``to``, ``outcome`` (``ok``,
              ``partial``: the schema was not restored, ``failed``,
              ``skipped``: not attempted, an applied migration cannot be
              reversed), ``steps``, ``reverted``, ``message``
``steps``     list of ``{"name", "status", "duration"}`` in the order run;
              a check tried again (``check.timeout``) adds ``tries``
``outcome``   one of :data:`OUTCOMES`
``failed``    name of the failing step, when ``outcome`` is ``failed``
``message``   a one-line explanation, when there is one
``trigger``   on a deploy started by a push (the hooks): ``hook``
              (``changegroup`` or ``post-push``), ``source`` and ``url`` as
              Mercurial gives them to the hook (``remote:ssh:ADDRESS`` ...),
              and ``pusher``: the user the push came from, as the ``acl``
              extension finds it (the authenticated HTTP user, else the
              account that received the push, never empty), and
              ``username`` when the push carried the pusher's name (``hg push
              --pushvars USER=...``, where ``push.pushvars.server`` is on);
              ``user`` of such a record is that name, else ``pusher``
``untested``  on a deploy made with ``--untested`` although ``promotefrom``
              refused it (promotion.py): ``from`` (the environment it
              promotes from), ``tested`` (that environment's last deployed
              changeset, or null) and ``files`` (those that differ)

An ``exec`` record (``hg envexec``, one ``end`` line written when the
command has ended, no ``begin`` line) has ``id``, ``kind``, ``env``,
``branch``, ``host``, ``role``, ``user``, ``client``, ``started``,
``finished``, ``duration``, ``command`` (as run, with the values of
``ENV.secret`` replaced by ``***``), ``interactive`` (true with ``-i``),
``status`` (the command's exit status) and ``outcome`` (``ok`` or
``failed``); no ``from`` nor ``to``: it deployed nothing, and readers
looking for deployments pass over it.

Readers skip a damaged line (a full disk can tear the last one) and report
how many they skipped; writers first end a torn last line with a newline.
"""

import json

from .shell import quote

# In memory a record is a dict with str field names and bytes values, as
# everything else in the extension (and Mercurial) speaks bytes; on disk it
# is JSON text.  tobytes and totext, here only, convert between the two.
# The migration states (``before``, ``after``) are keyed by app: bytes.
_KEYED = ('before', 'after')


def tobytes(value, field=None):
    """A value read from JSON, its text as bytes.

    >>> tobytes({'to': 'ab', 'migrations': {'before': {'bar': '0003'}},
    ...          'steps': [{'name': 'update', 'status': 0}]})
    {'to': b'ab', 'migrations': {'before': {b'bar': b'0003'}}, 'steps': [{'name': b'update', 'status': 0}]}
    """
    if isinstance(value, str):
        return value.encode('utf-8', 'surrogateescape')
    if isinstance(value, list):
        return [tobytes(v) for v in value]
    if isinstance(value, dict):
        if field in _KEYED:
            return {tobytes(k): tobytes(v) for k, v in value.items()}
        return {k: tobytes(v, k) for k, v in value.items()}
    return value


def totext(value):
    """A value as JSON takes it: bytes decoded (lossless: surrogateescape).

    >>> totext({'to': b'ab', 'before': {b'bar': b'0003'}, 'n': 1})
    {'to': 'ab', 'before': {'bar': '0003'}, 'n': 1}
    """
    if isinstance(value, bytes):
        return value.decode('utf-8', 'surrogateescape')
    if isinstance(value, (list, tuple)):
        return [totext(v) for v in value]
    if isinstance(value, dict):
        return {totext(k): totext(v) for k, v in value.items()}
    return value

VERSION = 2
DIRECTORY = b'.hg/envdeploy'
JOURNAL = DIRECTORY + b'/journal.jsonl'

# The phases of a run's lines.
BEGIN = b'begin'
MIGRATING = b'migrating'
END = b'end'

# Kinds of run.
DEPLOY = b'deploy'
ROLLBACK = b'rollback'
EXEC = b'exec'  # hg envexec: a command run on the hosts, no deployment

# Outcomes of a host in a run: the one vocabulary of the journal, the
# summary and -T json.
OK = b'ok'  # deployed (or rolled back) as asked
UNCHANGED = b'unchanged'  # already there: only the check ran, and passed
PLANNED = b'planned'  # a dry run: nothing changed
FAILED = b'failed'  # a step failed (``rollback`` says what was undone)
ROLLEDBACK = b'rolledback'  # changed, then rolled back (verified) because
# another host failed
PARTIAL = b'partial'  # rolled back, but the schema is NOT as it was
INTERRUPTED = b'interrupted'  # Ctrl-C
UNTOUCHED = b'untouched'  # nothing changed on this host
UNREACHABLE = b'unreachable'  # never reached: nothing changed
UNFINISHED = b'unfinished'  # read back only: a run without its end line
OUTCOMES = (OK, UNCHANGED, PLANNED, FAILED, ROLLEDBACK, PARTIAL, INTERRUPTED,
            UNTOUCHED, UNREACHABLE, UNFINISHED)
# What left its host deployed at ``to``.
DEPLOYED = (OK, UNCHANGED)


def encode(record, phase=END):
    """One journal line (ASCII-only JSON, no newline inside)."""
    record = totext(dict(record, v=VERSION, phase=phase))
    return json.dumps(record, sort_keys=True, ensure_ascii=True).encode('ascii')


def appendscript(record, phase=END):
    """Shell that appends ``record``; run with the target repo as cwd.

    ``tee`` writes, not the shell's own ``printf``: when the disk is full
    it says so (dash's printf only says "I/O error").
    """
    return (
        b'mkdir -p %(dir)s && '
        b'{ if [ -s %(j)s ] && [ -n "$(tail -c 1 %(j)s)" ]; then echo; fi; '
        b"printf '%%s\\n' %(line)s; } | tee -a %(j)s >/dev/null"
        % {b'dir': DIRECTORY, b'j': JOURNAL,
           b'line': quote(encode(record, phase))}
    )


def readscript(tail=None):
    """Shell printing the journal, or its last ``tail`` lines."""
    if tail:
        return b'tail -n %d %s 2>/dev/null || true' % (tail, JOURNAL)
    return b'cat %s 2>/dev/null || true' % JOURNAL


def parse(data):
    """Records from journal bytes, oldest first, and the damaged-line count."""
    records = []
    damaged = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            damaged += 1
            continue
        if not isinstance(record, dict) or 'v' not in record:
            damaged += 1
            continue
        records.append(tobytes(record))
    return records, damaged


def runs(lines):
    """One record per run from journal lines, oldest first.

    The lines of a run are merged (its ``end`` line is complete on its
    own); a run without an ``end`` line gets the outcome ``unfinished``.

    >>> [(r['id'], r['outcome']) for r in runs([
    ...     {'v': 1, 'id': b'a', 'outcome': b'ok'},
    ...     {'v': 2, 'id': b'b', 'phase': b'begin', 'from': b'x'},
    ...     {'v': 2, 'id': b'b', 'phase': b'end', 'outcome': b'failed'},
    ...     {'v': 2, 'id': b'c', 'phase': b'begin', 'from': b'y'},
    ...     {'v': 2, 'id': b'c', 'phase': b'migrating',
    ...      'migrations': {'before': {b'bar': b'0003'}}}])]
    [(b'a', b'ok'), (b'b', b'failed'), (b'c', b'unfinished')]
    >>> runs([{'v': 2, 'id': b'c', 'phase': b'begin', 'from': b'y'},
    ...       {'v': 2, 'id': b'c', 'phase': b'migrating',
    ...        'migrations': {'before': {b'bar': b'0003'}}}])[0]['migrations']
    {'before': {b'bar': b'0003'}}
    """
    merged = {}
    order = []
    for line in lines:
        key = line.get('id')
        phase = line.get('phase', END)
        record = merged.get(key)
        if record is None or record.get('phase') == END:
            # Format 1 had no phases: every line a run of its own.
            key = (key, len(order))
            record = merged[key] = {}
            order.append(key)
            if line.get('id') is not None:
                merged[line.get('id')] = record
        if phase == END:
            record.clear()
            record.update(line)
            continue
        found = dict(record.get('migrations') or {})
        found.update(line.get('migrations') or {})
        record.update(line)
        if found:
            record['migrations'] = found
        record['outcome'] = UNFINISHED
    return [merged[k] for k in order]


def unfinished(lines):
    """The id of the newest run when it has no end line, else None."""
    if lines and lines[-1].get('phase', END) != END:
        return lines[-1].get('id')
    return None


def leftstate(records):
    """The migration state the last run in ``records`` left, to carry
    forward; None when it is not known (or that run never ended).

    >>> leftstate([{'outcome': b'ok', 'migrations': {'after': {b'a': b'1'}}},
    ...            {'outcome': b'untouched'}])
    {b'a': b'1'}
    >>> print(leftstate([{'outcome': b'ok', 'migrations': {'after': {}}},
    ...                  {'outcome': b'unfinished'}]))
    None
    """
    for record in reversed(records):
        if record.get('outcome') == UNFINISHED:
            return None
        if record.get('outcome') in (UNTOUCHED, UNREACHABLE):
            continue
        return (record.get('migrations') or {}).get('after')
    return None
