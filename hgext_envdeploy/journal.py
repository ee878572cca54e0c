# journal.py - what was deployed where, kept on the target
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The deploy journal: ``.hg/envdeploy/journal.jsonl`` in the target repository.

One JSON object per line, appended after every deploy (successful or not),
never rewritten.  Format version 1; every record has at least:

``v``         format version (1)
``id``        the run's id, shared by all hosts of one deploy
``kind``      ``deploy`` (later: ``rollback``, ``autorollback``)
``env``       environment name; ``branch`` its branch
``host``      the host entry as written in hgrc (``local`` for local)
``user``      who deployed (Mercurial username); ``client`` from which machine
``started``, ``finished``  UTC times, ISO 8601; ``duration`` seconds
``from``      full hash the target was at before (null: empty working copy)
``to``        full hash deployed
``dirty``     files with manual edits found before the update
``patch``     where those edits were saved (relative to the repository), or null;
              ``hg import --no-commit PATCH`` in the repository brings them back
``untracked`` files the target's parent did not track (unknown, ignored, or
              added with ``hg add``) that the update would overwrite, saved
              under ``.hg/envdeploy/patches/ID/untracked/``; ``[]`` when none
``migrations`` when ``migrate`` is set: ``before`` (app -> latest applied
              migration, or ``zero``, read just before migrating), or
              ``unchanged: true`` when no migration file changed; rollbacks
              add ``reverted`` (``app.name``, in the order unapplied)
``rollback``  on a deploy rolled back: ``to``, ``outcome``, ``steps``,
              ``reverted``
``steps``     list of ``{"name", "status", "duration"}`` in the order run
``outcome``   ``ok``, ``unchanged`` (already there), or ``failed``
``failed``    name of the failing step, when ``outcome`` is ``failed``
``message``   a one-line explanation, when there is one
``trigger``   on a deploy started by a push (the hooks): ``hook``
              (``changegroup`` or ``post-push``), ``source`` and ``url`` as
              Mercurial gives them to the hook (``remote:ssh:ADDRESS`` ...),
              and ``pusher``: the user the push came from, as the ``acl``
              extension finds it (the authenticated HTTP user, else the
              account that received the push)

Readers skip a damaged line (a full disk can tear the last one) and report
how many they skipped; writers first end a torn last line with a newline.
"""

import json

from .shell import quote

VERSION = 1
DIRECTORY = b'.hg/envdeploy'
JOURNAL = DIRECTORY + b'/journal.jsonl'


def encode(record):
    """One journal line (ASCII-only JSON, no newline inside)."""
    record = dict(record, v=VERSION)
    return json.dumps(record, sort_keys=True, ensure_ascii=True).encode('ascii')


def appendscript(record):
    """Shell that appends ``record``; run with the target repo as cwd."""
    return (
        b'mkdir -p %(dir)s && '
        b'{ if [ -s %(j)s ] && [ -n "$(tail -c 1 %(j)s)" ]; then echo; fi; '
        b"printf '%%s\\n' %(line)s; } >> %(j)s"
        % {b'dir': DIRECTORY, b'j': JOURNAL, b'line': quote(encode(record))}
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
        records.append(record)
    return records, damaged
