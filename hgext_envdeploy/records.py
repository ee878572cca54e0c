# records.py - what this repository knows about where it deployed
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Deployment records kept in the deploying repository.

The journals on the targets say what each host ran; this file says what
*this* repository learned, so that it can answer "where is this changeset
deployed?" without the network: ``.hg/envdeploy/records.jsonl`` in the
repository that ran ``hg envdeploy``, ``hg envrollback`` or ``hg
envstatus`` (and in the central repository, for the deploys its push hooks
ran).  One JSON object per host and run, appended, never rewritten::

  {"v": 1, "id": RUN, "kind": "deploy", "env": "live", "host": "web1",
   "node": HEX, "outcome": "ok", "user": "...", "date": ISO, "seen": ISO}

``kind``     ``deploy``, ``rollback``, or ``status`` (seen by envstatus)
``node``     the changeset the host is at after the run, as the run knows
             it; null when it does not know (a failure that left the host
             in an unknown state): the host then counts as deployed nowhere
``outcome``  the host's outcome (journal.py's vocabulary)
``user``, ``date``  who deployed ``node`` there, and when (UTC); for a
             ``status`` record, as the host's journal says
``seen``     when this repository learned it
``untested`` a deploy made with ``--untested`` although ``promotefrom``
             refused it: ``from`` (the environment) and ``files`` differing
``trigger``  the push behind a deploy (the hooks), as in the journal

The newest record of a host is what is known of it.  envstatus only adds a
record when what it sees differs from that.  Nothing here is secret: no
command, no environment variable, no output.  Readers skip damaged lines.
This module imports nothing costly: the revsets and the template keyword
read it on plain ``hg log``.
"""

import json
import os
import time

from mercurial import node as nodemod, pycompat

from . import journal

RECORDS = b'envdeploy/records.jsonl'  # under .hg/
VERSION = 1
STATUS = b'status'
# What a record's outcome must be for its node to count as deployed with
# success (promotion): the deploy (or its convergence) went through.
SUCCESS = journal.DEPLOYED


def _isotime(when):
    return pycompat.sysbytes(time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                           time.gmtime(when)))


def append(repo, records):
    """Append ``records`` (dicts, str keys, bytes values); never raises for
    a disk that refuses (the run itself is done): warns instead."""
    if not records:
        return
    data = b''.join(
        json.dumps(journal.totext(dict(r, v=VERSION)), sort_keys=True,
                   ensure_ascii=True).encode('ascii') + b'\n'
        for r in records)
    try:
        repo.vfs.makedirs(b'envdeploy')
        # One write in append mode: concurrent runs do not tear lines.
        with repo.vfs(RECORDS, b'ab') as fp:
            fp.write(data)
    except (IOError, OSError) as exc:
        repo.ui.warn(b'envdeploy: cannot record the deployment in %s: %s\n'
                     % (repo.vfs.join(RECORDS),
                        pycompat.bytestr(exc.strerror or str(exc))))
    _cache.pop(repo.vfs.join(RECORDS), None)


# Parsed records by file path, with the (size, mtime) they were read at:
# hgweb keeps its repository between requests, hg log asks per changeset.
_cache = {}


def read(repo):
    """Every record, oldest first (damaged lines skipped)."""
    path = repo.vfs.join(RECORDS)
    try:
        st = os.stat(path)
    except OSError:
        return []
    key = (st.st_size, st.st_mtime_ns)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with open(path, 'rb') as fp:
        data = fp.read()
    found = [r for r in map(_parse, data.splitlines()) if r is not None]
    _cache[path] = (key, found)
    return found


def _parse(line):
    """The record on ``line``, or None (empty, damaged, no environment)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get('env'):
        return journal.tobytes(record)
    return None


def latest(repo):
    """``{(env, host): record}``: the newest record of each host."""
    known = {}
    for record in read(repo):
        known[(record['env'], record.get('host'))] = record
    return known


# How much of the file's end latestof() reads at a time.
_CHUNK = 1 << 16


def latestof(repo, env, hosts):
    """``{host: record}``: the newest record of each of ``hosts`` in
    ``env``, as :func:`latest` has them, read from the end of the file
    back only as far as it takes to find them all.

    A deploy asks at its start, and the file only grows (20,000 records,
    4 MiB, take 120 ms to read whole); its newest lines are the ones
    asked for, as a rule.  A host with no record costs the whole file.
    """
    want = set(hosts)
    found = {}
    try:
        fp = open(repo.vfs.join(RECORDS), 'rb')
    except OSError:
        return found
    with fp:
        end = fp.seek(0, os.SEEK_END)
        rest = b''  # the start of a line, the rest of it read already
        while end > 0 and len(found) < len(want):
            start = max(0, end - _CHUNK)
            fp.seek(start)
            lines = (fp.read(end - start) + rest).split(b'\n')
            end = start
            rest = lines.pop(0) if start else b''
            for record in map(_parse, reversed(lines)):
                if (record is not None and record['env'] == env
                        and record.get('host') in want):
                    found.setdefault(record['host'], record)
    return found


def runs(repo, env, limit=10):
    """The newest ``limit`` deploys and rollbacks of ``env``, newest first:
    dicts with ``id``, ``kind``, ``user``, ``date``, ``outcome`` (``ok``
    only when every host's was a success) and ``hosts``."""
    byid = {}
    order = []
    for record in read(repo):
        if record.get('env') != env or record.get('kind') == STATUS:
            continue
        rid = record.get('id')
        if rid not in byid:
            byid[rid] = {'id': rid, 'kind': record.get('kind'),
                         'user': record.get('user'),
                         'date': record.get('date'), 'hosts': [],
                         'outcomes': []}
            order.append(rid)
        run = byid[rid]
        run['hosts'].append(record.get('host'))
        run['outcomes'].append(record.get('outcome'))
    found = []
    for rid in reversed(order[-limit:] if limit else order):
        run = byid.pop(rid)
        outcomes = run.pop('outcomes')
        run['outcome'] = (journal.OK if all(o in SUCCESS for o in outcomes)
                          else journal.FAILED)
        found.append(run)
    return found


def successes(repo, env):
    """Nodes deployed with success to ``env`` (any host), oldest first."""
    return [r['node'] for r in read(repo)
            if r.get('env') == env and r.get('node')
            and r.get('kind') == journal.DEPLOY
            and r.get('outcome') in SUCCESS]


# -- what a run learned


def fromrun(repo, run, results):
    """Record what a deploy or rollback run left on each host."""
    if run.dryrun:
        return
    from .run import _final  # what the summary says the host is at

    now = _isotime(time.time())
    records = []
    for r in results:
        if r.outcome in (journal.UNREACHABLE, b'planned'):
            continue  # nothing learned
        node = _final(r)
        if r.outcome == journal.UNTOUCHED and node is None:
            node = r.fromnode  # read, and left as it was
        record = {
            'id': run.id, 'kind': run.kind, 'env': run.env.name,
            'host': r.host.spec, 'node': node or None,
            'outcome': r.outcome, 'user': run.user, 'date': now,
            'seen': now,
        }
        if node == nodemod.nullhex:
            record['node'] = None
            record['empty'] = True
        if run.untested:
            record['untested'] = run.untested
        if run.trigger:
            record['trigger'] = run.trigger
        records.append(record)
    append(repo, records)


def fromstatus(repo, rows):
    """Record what ``hg envstatus`` read on each host, where it is news."""
    known = latest(repo)
    now = _isotime(time.time())
    records = []
    for row in rows:
        if not row.get('read'):
            continue  # unreachable or unreadable: nothing learned
        node = row.get('node') or None
        journaled = row.get('record') or {}
        last = known.get((row['env'], row['host']))
        if last is not None and last.get('node') == node:
            continue
        records.append({
            'id': b'status-' + now, 'kind': STATUS, 'env': row['env'],
            'host': row['host'], 'node': node,
            'outcome': journaled.get('outcome') or b'',
            'user': journaled.get('user') or b'',
            'date': journaled.get('finished') or b'', 'seen': now,
        })
    append(repo, records)
