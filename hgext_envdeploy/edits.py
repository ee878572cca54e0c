# edits.py - what an update would discard on a target, and where it is kept
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The shell and the file lists behind :meth:`.target.HostSession.saveedits`.

``hg update -C`` discards manual edits, and silently replaces an untracked
(or ignored) file when the new changeset adds a tracked file of that name.
Before it runs, a deploy or a rollback keeps, for run ``ID``::

  .hg/envdeploy/patches/ID.patch            hg diff --git of the edits
  .hg/envdeploy/patches/ID/untracked/FILE   files the update would replace
  .hg/envdeploy/patches/ID/added/FILE       files added with hg add

The patch holds every edit ``hg import --no-commit`` can bring back:
changes, binary files, modes, ``hg add``, ``hg rm``, copies and renames.
Two things make that import apply on the updated working copy:

- a file deleted without ``hg rm`` is not in ``hg diff``: it is marked
  removed (``hg remove -A``) first, so the patch deletes it again;
- a file added with ``hg add`` is left behind, untracked, by the update,
  and the import would refuse to create it: it is moved to ``added/``
  just before the update (not earlier: a failed pull must leave the live
  tree as it was).

A file added with ``hg add`` that the new changeset adds as well cannot be
both: it is kept out of the patch and saved with the untracked files.
"""

import posixpath
import threading

from mercurial import node as nodemod

from . import journal
from .shell import quote

PATCHES = journal.DIRECTORY + b'/patches'

# "Which exist" goes to the running hg command server (stopping it for a
# shell command would cost a new one for the pull), unless there are more
# candidates than this: hg's matcher gets slow with thousands of patterns
# (about 4 s for 20000), where a shell loop of builtins takes 0.1 s.
MAXPATTERNS = 200

# User settings that would make the diff drop changes (HGPLAIN does not
# neutralise them).
_DIFFCONFIG = (b'ignorews', b'ignorewsamount', b'ignorewseol',
               b'ignoreblanklines')

# The deploying repository is shared by the hosts' threads: one at once
# (here, and rollback.py's migration-file check).
REPOLOCK = threading.Lock()


def patchpath(name):
    return b'%s/%s.patch' % (PATCHES, name)


def savedir(name):
    return b'%s/%s' % (PATCHES, name)


def created(repo, parent, node):
    """Files changeset ``node`` has that ``parent`` has not (hex; None for
    an empty working copy), sorted; None when ``repo`` lacks ``parent``
    (or ``node``: a rollback's, from a host's journal)."""
    with REPOLOCK:
        unfi = repo.unfiltered()
        if not unfi.changelog.hasnode(nodemod.bin(node)):
            return None
        if parent is None:
            base = unfi[nodemod.nullrev]
        elif unfi.changelog.hasnode(nodemod.bin(parent)):
            base = unfi[nodemod.bin(parent)]
        else:
            return None
        return sorted(base.status(unfi[nodemod.bin(node)]).added)


def manifest(repo, node):
    """Every file of ``node``, sorted; None when ``repo`` lacks it."""
    with REPOLOCK:
        unfi = repo.unfiltered()
        if not unfi.changelog.hasnode(nodemod.bin(node)):
            return None
        return sorted(unfi[nodemod.bin(node)].manifest())


def existscript(files):
    """Shell printing those of ``files`` that exist (not as directories).

    Only builtins: no command line to outgrow, whatever the count.
    """
    return (b'for f in %s; do if [ -f "$f" ] || [ -L "$f" ]; then '
            b"printf '%%s\\n' \"$f\"; fi; done"
            % b' '.join(quote(f) for f in files))


def statusargs(files):
    """hg arguments listing those of ``files`` that are unknown or ignored.

    ``-I`` patterns: hg walks only their directories (never a whole media
    tree) and says nothing of the files that do not exist.
    """
    args = [b'status', b'-u', b'-i', b'-n']
    for f in files:
        args += [b'-I', b'path:' + f]
    return tuple(args)


def savescript(hg, name, deleted=(), patch=True, exclude=(), untracked=()):
    """Shell saving run ``name``'s edits and ``untracked`` files."""
    parts = [b'mkdir -p %s' % PATCHES]
    if deleted:
        parts.append(b'%s remove -A -q -- %s' % (hg, _paths(deleted)))
    if patch:
        config = b''.join(b' --config diff.%s=no' % k for k in _DIFFCONFIG)
        excludes = b''.join(b' -X %s' % quote(b'path:' + f) for f in exclude)
        parts.append(b'%s diff --git%s%s > %s'
                     % (hg, config, excludes, patchpath(name)))
    for f in untracked:
        parts.append(_moved(b'cp -P -p', f, b'%s/untracked' % savedir(name)))
    return b' && '.join(parts)


def setasidescript(name, files):
    """Shell moving ``files`` (added with hg add) to the save directory."""
    return b' && '.join(
        b'if [ -e %s ] || [ -L %s ]; then %s; fi'
        % (quote(f), quote(f), _moved(b'mv -f', f, b'%s/added' % savedir(name)))
        for f in files)


def _moved(command, f, directory):
    dest = b'%s/%s' % (directory, f)
    return b'mkdir -p %s && %s -- %s %s' % (
        quote(posixpath.dirname(dest)), command, quote(f), quote(dest))


def _paths(files):
    # path: so that a file named like a pattern (re:x, glob:*) is only a name
    return b' '.join(quote(b'path:' + f) for f in files)


def shownpath(path):
    """``path`` for a ``cd`` the user types on the host (``~`` kept)."""
    if path == b'~' or path.startswith(b'~/'):
        return b'~/' + quote(path[2:]) if path[2:] else b'~'
    if path.startswith(b'-'):
        path = b'./' + path
    return quote(path)
