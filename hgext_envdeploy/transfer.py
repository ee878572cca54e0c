# transfer.py - send the changesets a target lacks through its session
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``ENV.transfer = push``: the target needs no access to any repository.

With ``pull`` (the default) a target pulls the changeset from ``source``
(or its ``default`` path), so every server needs read access to the
central repository: a deploy key, or a lent agent.  With ``push`` the
deploying side asks the host which heads it has, bundles what it lacks of
the changeset being deployed and its ancestors (never another branch's
changesets that are not ancestors of it), and writes the bundle into the
deploy's own session, where ``hg unbundle`` reads it (``head -c SIZE``
hands it exactly the bundle, so the shell's input after it is untouched).
The host's paths are left as they were.

One bundle serves every host that has the same heads (32 fresh hosts: one
bundle); bundles are computed one at a time, the repository is not for
several threads at once, and sent in parallel.
"""

import os
import threading
import weakref

from mercurial.i18n import _
from mercurial import (bundle2, changegroup, discovery, hg, node as nodemod,
                       pycompat)

from .shell import ShellError

PUSH = b'push'
_READY = b'envdeploy-unbundle-ready\n'
_CHUNK = 1 << 16


class Send:
    """The step that brings ``node`` (hex) to a host: called with the
    host's session, it returns ``(status, output)`` as a shell step does.

    ``ui`` shows the progress of the bytes sent (all hosts together).
    """

    def __init__(self, ui, repo, node):
        self.ui = ui
        self.repo = repo
        self.node = node
        self._lock = threading.Lock()
        self._bundles = {}  # frozenset(common heads) -> (file, size, count)
        self._quietrepo = None
        self._progress = None
        self._total = 0
        self._sent = 0

    def describe(self):
        """What the step amounts to, for a dry run."""
        return _(b'send the changesets of %s the host lacks through the '
                 b'session, hg unbundle there (transfer = push)') % (
                     self.node[:12])

    def __call__(self, session, output=None):
        status, out = session.hgcommand(
            (b'log', b'-r', b'heads(all())', b'-T', b'{node}\n'))
        if status:
            return status, out
        bundle = self._bundle(out.split())
        if bundle is None:
            return 0, _(b'the host has every changeset of %s\n') % (
                self.node[:12])
        fp, size, count = bundle
        if output is not None:
            output(_(b'sending %d changesets (%s)')
                   % (count, _size(size)))
        session.hgserver.stop()  # the shell reads its input again
        shell = session.shell
        shell.spawn(b"printf '%s' && head -c %d | %s unbundle /dev/stdin 2>&1"
                    % (_READY.replace(b'\n', b'\\n'), size, session.hg))
        ready = shell.read(len(_READY))
        if ready != _READY:
            if shell.isend(ready):
                shell.unread(ready)
                return shell.result(output)[0] or 1, ready
            shell.broken = 'unbundle did not start'
            raise ShellError(shell.broken)
        self._send(shell, fp, size)
        return shell.result(output)

    def _send(self, shell, fp, size):
        fd = fp.fileno()
        with self._lock:
            if self._progress is None:
                self._progress = self.ui.makeprogress(
                    _(b'sending changesets'), unit=_(b'bytes'))
            self._total += size
            self._progress.total = self._total
        offset = 0
        while offset < size:
            data = os.pread(fd, min(_CHUNK, size - offset), offset)
            if not data:
                raise ShellError('bundle file ended early')
            shell.write(data)
            offset += len(data)
            with self._lock:
                self._progress.increment(len(data))
                self._sent += len(data)
                if self._sent == self._total:  # every host has its bundle
                    self._progress.complete()
                    self._progress = None

    def _bundle(self, theirs):
        """``(file, size, changesets)`` of what a host with heads
        ``theirs`` lacks of ``node``; None when it lacks nothing."""
        with self._lock:
            unfi = self.repo.unfiltered()
            has = unfi.changelog.index.has_node
            common = frozenset(n for n in (nodemod.bin(h) for h in theirs
                                           if len(h) == 40) if has(n))
            if common not in self._bundles:
                repo = self._quiet()
                self._bundles[common] = _write(repo.ui, repo, common,
                                               nodemod.bin(self.node))
            return self._bundles[common]

    def _quiet(self):
        """The repository opened again with a ui of its own that says
        nothing.  The bundle writer prints through ``repo.ui`` (``N
        changesets found`` and sizes with -v, node lists with --debug),
        the ui the other hosts' threads print through as well, so it can
        neither be silenced there nor given a host's prefix; each host's
        ``sending N changesets`` line says the same."""
        if self._quietrepo is None:
            ui = self.repo.baseui.copy()
            for key, value in ((b'quiet', b'true'), (b'verbose', b'false'),
                               (b'debug', b'false')):
                ui.setconfig(b'ui', key, value, b'envdeploy')
            repo = hg.repository(ui, self.repo.root).unfiltered()
            if self.repo.filtername:  # what the command sees (--hidden)
                repo = repo.filtered(self.repo.filtername)
            self._quietrepo = repo
        return self._quietrepo


def _write(ui, repo, common, node):
    """The bundle of ``::node - ::common``, in an unlinked temporary file."""
    outgoing = discovery.outgoing(repo, commonheads=list(common),
                                  ancestorsof=[node])
    if not outgoing.missing:
        return None
    fd, path = pycompat.mkstemp(prefix=b'envdeploy-', suffix=b'.hg')
    os.close(fd)
    try:
        bundle2.writenewbundle(
            ui, repo, b'envdeploy', path, b'HG20', outgoing,
            {b'cg.version': changegroup.safeversion(repo), b'phases': True},
            compression=b'GZ')
        fp = open(path, 'rb')
    finally:
        os.unlink(path)
    return fp, os.fstat(fp.fileno()).st_size, len(outgoing.missing)


def _size(n):
    for unit in (b'B', b'KB', b'MB'):
        if n < 1024 or unit == b'MB':
            return b'%d %s' % (n, unit) if unit == b'B' else (
                b'%.1f %s' % (n, unit))
        n /= 1024.0


# -- where the commands hook in: one sender per run


# run -> Send; the bundle files go with the run.
_SENDERS = weakref.WeakKeyDictionary()
_SENDERSLOCK = threading.Lock()


def sender(run, repo=None):
    """The run's :class:`Send` (None unless ``transfer = push``)."""
    if run.env.transfer != PUSH:
        return None
    with _SENDERSLOCK:
        send = _SENDERS.get(run)
        if send is None and repo is not None:
            send = _SENDERS[run] = Send(run.ui, repo, run.node or b'')
        return send


def step(run, pull):
    """The deploy's pull step: ``pull`` itself, or a :class:`Send`."""
    return sender(run, run.repo) or pull


def bring(run, result, node, output, steps):
    """Before a rollback updates ``result``'s host to ``node``: send what
    the host lacks of it (``transfer = push`` only).  Only ``envrollback
    -r`` can name a changeset the host never had: a journal's target and
    a failed deploy's way back were there before."""
    send = sender(run)
    if send is None or not node or node != run.node or result.state.present:
        return
    result.session.step(result, b'pull', send, output, record=steps)
