# target.py - one host during one run: its session and what we do there
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The operations every command performs on a target, over one session.

A :class:`HostSession` wraps the host's :class:`~.shell.Shell` (already in
the target repository after :meth:`HostSession.enter`): lock, read the
state, save what an update would discard (see :mod:`.edits`), run a step,
append to the journal, unlock.  The deploy and the rollback orchestrate
these; they never build the shell snippets themselves.  A failing operation raises :class:`StepFailed`.
"""

import contextlib
import time

from mercurial.i18n import _
from mercurial import node as nodemod, pycompat

from . import (
    cmdserver, edits, healthcheck, hints, journal, lock, migrations, stepenv,
)
from .shell import ShellError, quote


class StepFailed(Exception):
    """An operation on a host failed: which, why, its output, a hint."""

    def __init__(self, step, message, output=b'', hint=None):
        super().__init__(step, message)
        self.step = step
        self.message = message
        self.output = output
        self.hint = hint


class Interrupted(Exception):
    """Ctrl-C was pressed: the host starts no further step."""


class HostResult:
    """What happened on one host; its journal record is built from it."""

    def __init__(self, host):
        self.host = host
        self.outcome = b'pending'
        self.failed = None
        self.message = b''
        self.hint = None
        self.output = b''
        self.fromnode = None
        self.tonode = None
        self.dirty = []
        self.patch = None
        self.untracked = []  # saved: the update would have overwritten them
        self.steps = []
        self.current = None
        self.migrations = {}
        self.rollback = None
        self.plan = None  # the journal's plan field (migrationplan.py)
        self.undo = None  # the migration host's own rollback record
        self.converged = False  # already deployed: only the check runs
        self.frozen = None  # the freeze found on the host (freeze.py)
        self.begun = False  # the journal has this run's begin line
        self.state = None
        self.wanted = None
        self.unapplying = []  # envrollback: migrations.unapplysteps
        self.migrationlisting = None  # envrollback: read for the plan
        self.planned = []  # a dry run: the steps the real run would take
        self.session = None
        self.release = None  # releases.py: the release this run leaves live
        self.started = time.time()
        self.duration = 0.0
        self._busy = 0.0  # seconds of this host's own work (see clock)
        self._since = None

    @contextlib.contextmanager
    def clock(self):
        """Count the time inside as this host's (see elapsed)."""
        outer = self._since is None
        if outer:
            self._since = time.time()
        try:
            yield
        finally:
            if outer:
                self._busy += time.time() - self._since
                self._since = None

    def elapsed(self):
        """Seconds this host spent on its own steps so far."""
        running = time.time() - self._since if self._since is not None else 0
        return self._busy + running

    @property
    def ok(self):
        return self.outcome in (b'ok', b'unchanged', b'planned')

    @property
    def nothingchanged(self):
        """Whether this run left the host exactly as it found it."""
        return not self.changed and self.patch is None

    @property
    def changed(self):
        """Whether this run touched the target's code (update started)."""
        return any(s['name'] in (b'update', b'migrate') for s in self.steps)

    def fail(self, step, message, output=b'', hint=None):
        self.outcome = b'failed'
        self.failed = step
        self.message = message
        self.output = output
        self.hint = hint

    def failwith(self, exc):
        self.fail(exc.step, exc.message, exc.output, exc.hint)


class State:
    """The target repository as found: parent, edits, changesets present.

    ``dirty`` lists every edited file; ``added`` and ``deleted`` (missing
    without ``hg rm``) repeat those of two kinds that saving treats apart.
    """

    def __init__(self, parent, dirty, present, added=(), deleted=()):
        self.parent = parent
        self.dirty = dirty
        self.present = present
        self.added = list(added)
        self.deleted = list(deleted)


# For ``hg log -r present(NODE) -r wdir()``: the working directory's
# parent and its modified, added, removed and deleted files, each after its
# ``hg status`` letter; NODE if there.
_STATE = (
    b'{ifeq(rev, "2147483647", '
    b'"parent {p1.node}\n{file_mods % "M {file}\n"}'
    b'{file_adds % "A {file}\n"}{file_dels % "R {file}\n"}'
    b'{files("set:deleted()") % "! {file}\n"}", '
    b'"present {node}\n")}'
)
_KINDS = (b'M ', b'A ', b'R ', b'! ')


def isotime(stamp):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))


class HostSession:
    """``env``'s ``host`` through ``shell``; ``say(host, msg, ...)`` prints."""

    def __init__(self, env, host, shell, settings, say, confirm=None):
        self.env = env
        self.host = host
        self.shell = shell
        self.settings = settings
        self.say = say
        self.confirm = confirm
        self.hg = env.hg
        self.locked = False
        self.tail = None  # journal records read with the lock
        self.found = None  # the State last read
        self.frozen = None  # the freeze read with the lock (freeze.py)
        self.setaside = None  # (name, files) for the next update
        self.exported = {}  # the variables the session exported (enter)
        self.cancel = None  # the run's Ctrl-C event (Run.open)
        self.listing = None  # releases.py: the layout, read with the lock
        self.entering = False  # enter() sent, its answer not read (lock)
        self.existing = None  # (files, those untracked there): readstate
        self.warmrunner = False  # a warm migration runner waits (lock)
        if env.secretvalues:
            shell.mask = env.mask  # ENV.secret: never shown, never kept
        self.hgserver = cmdserver.CommandServer(
            shell, self.hg, settings.get(b'cmdserver', True))

    def run(self, script, output=None, **opts):
        """Run ``script`` in the session's shell (see Shell.run)."""
        self.hgserver.stop()
        return self.shell.run(script, output=output, **opts)

    def hgcommand(self, args, output=None, last=False):
        """Run ``hg ARGS`` in the target repository (see cmdserver);
        ``last``: no hg command is expected after it (the server ends)."""
        return self.hgserver.run(args, output, last)

    def display(self, script):
        """A step as the shell command it amounts to (dry runs)."""
        if isinstance(script, tuple):
            return self.hgserver.commandline(script)
        if callable(script):
            return script.describe()  # transfer.Send
        return script

    def enter(self, environ=None, wait=True):
        """cd into path in the session's main shell; stable hg output.

        ``environ`` adds variables of the run's own (see stepenv).  With
        ``wait=False`` the answer is read by :meth:`lock`, whose scripts
        travel in the same round trip and run only where the cd succeeded.
        """
        # ENV.env.NAME values are exported here, through the session's
        # input: never on a command line, where ps would show them.
        self.exported = {**self.env.environ, **(environ or {})}
        where = cdpath(self.env.path)
        if self.env.layout == b'releases':
            # Into the live release, else the clone (releases.py); -P: the
            # session stays in that release when current is switched.  The
            # shell knows which: ENVDEPLOY_RELEASE is set there.  BASE
            # keeps path itself, for releases.serverenviron.
            self.exported.pop(stepenv.RELEASE, None)
            where += (b' && %(b)s=$(pwd -P) && '
                      b'{ cd -P current 2>/dev/null && %(v)s=$PWD || '
                      b'{ cd repo && %(v)s=; }; } && export %(v)s'
                      % {b'v': stepenv.RELEASE, b'b': BASE})
        exports = _exports(self.exported)
        self.hgserver.stop()
        self.shell.send(b'cd -- %s && HGPLAIN=1 && export HGPLAIN%s && %s=1'
                        % (where, exports, _ENTERED), subshell=False)
        self.entering = True
        if wait:
            self._entered()

    def _entered(self, queued=0):
        """Read enter's answer; StepFailed when path is not there (the
        ``queued`` scripts' results sent after it are then nobody's; a
        command server started with them ended at once, as greet() sees)."""
        if not self.entering:
            return
        self.entering = False
        status, out = self.shell.result()
        if status:
            for _i in range(queued):
                self.shell.discard()
            raise StepFailed(
                b'path', _(b'%s does not exist on this host') % self.env.path,
                out, hints.missingpath(self.env),
            )

    def export(self, environ):
        """Export ``environ`` in the session, for every later step (hg's
        command server starts again, so that hg sees them too)."""
        changed = {k: v for k, v in environ.items()
                   if self.exported.get(k) != v}
        if not changed:
            return
        status, out = self.run(_exports(changed)[len(b' && '):],
                               subshell=False)
        if status:
            raise StepFailed(b'state', _(b'cannot set the environment'), out)
        self.exported.update(changed)

    def lock(self, holder, breaklock=False, journaltail=0, hgserver=False,
             serverenv=None, warm=None):
        """Take the deploy lock; StepFailed naming the holder if it cannot.

        In the same round trip, when asked: read the last ``journaltail``
        journal records (:attr:`tail`), start ``warm`` in the background
        (migraterunner.warmscript) and the hg command server
        (``serverenv``: see CommandServer.begin).
        """
        if breaklock:
            self._entered()
            breaklock = self._confirmbreak()
        self.hgserver.stop()
        # Each script runs only in path (a failed enter sent just before).
        scripts = [(lock.acquirescript(holder, self.settings[b'locktimeout'],
                                       breaklock), False),
                   (lock.freezescript(), True)]  # after the lock: freeze.py
        if journaltail:
            scripts.append((journal.readscript(journaltail), True))
        layout = self.env.layout == b'releases'
        if layout:
            # The releases on disk, read here: a read later would stop
            # the command server before the share (releases.disk).
            from . import releases
            scripts.append((releases.listscript(self.env.path), True))
        if warm:
            # Not in a subshell: the shell that started it is its parent,
            # whose end it waits for.
            scripts.append((warm, False))
        for script, subshell in scripts:
            self.shell.send(_onlyentered(script), subshell=subshell)
        if hgserver:
            self.hgserver.begin(_onlyentered, serverenv)
        self._entered(len(scripts))
        status, out = self.shell.result(
            timeout=self.settings[b'timeout'] + self.settings[b'locktimeout'])
        self.frozen = lock.parsefreeze(self.shell.result()[1])
        if journaltail:
            self.tail = self._records(self.shell.result()[1])
        if layout:
            listed, out = self.shell.result()
            self.listing = None if listed else out
        if warm:
            self.warmrunner = not self.shell.result()[0]
        self.hgserver.greet()
        held = None
        for event, info in lock.parseinfo(out):
            if event == 'waiting':
                self.say(self.host, _(b'waiting for the deploy lock held by %s')
                         % lock.describe(info))
            elif event == 'stale':
                self.say(self.host, _(b'removed a stale lock left by %s')
                         % lock.describe(info), 'warn')
            elif event == 'broken':
                self.say(self.host, _(b'broke the lock held by %s')
                         % lock.describe(info), 'warn')
            elif event == 'held':
                held = info
        if status:
            if held is not None:
                raise StepFailed(
                    b'lock', _(b'locked by %s') % lock.describe(held), b'',
                    _(b'wait for that deploy to end; if it is dead, run '
                      b'again with --break-lock'),
                )
            raise StepFailed(b'lock', _(b'cannot take the deploy lock'), out)
        self.locked = True

    def _confirmbreak(self):
        """Whether to break the lock, asking about its holder first."""
        status, out = self.run(b'cat %s/info' % lock.LOCKDIR)
        if status:
            return False  # no lock to break
        info = lock.readinfo(out)
        if self.confirm(self.host, _(b'break the deploy lock held by %s')
                        % lock.describe(info)):
            return True
        raise StepFailed(b'lock', _(b'kept the lock held by %s')
                         % lock.describe(info), b'',
                         _(b'confirm at the prompt, or add -y to break it'))

    def release(self):
        if not self.locked:
            return
        try:
            self.run(lock.RELEASE, subshell=False)
        except ShellError:
            pass  # the session is gone, and its lock with it
        self.locked = False

    def close(self):
        self.shell.close()

    def readstate(self, node, expected=(), last=False):
        """Parent, edited files, and whether ``node`` (hex) is present.

        One hg process: ``wdir()`` gives the parent and the files that
        ``hg status -mard`` would list.  ``expected``: the files the update
        is expected to create (from the parent the journal names), asked
        about in the same round trip; :meth:`_existing` then has its
        answer when it asks about those files.  ``last``: no hg command is
        expected after it (the command server ends in the same round
        trip; a later hg command starts it again).
        """
        args = (b'log', b'-r', b'present(%s)' % node, b'-r', b'wdir()',
                b'-T', _STATE)
        self.existing = None
        # Only to a running server: a second hg process would cost more
        # than the round trip it saves (_existing asks the shell then).
        if (expected and self.hgserver.running
                and len(expected) <= edits.MAXPATTERNS):
            (status, out), (found, listed) = self.hgserver.runmany(
                [args, edits.statusargs(expected)], last=last)
            if not found:
                self.existing = (list(expected),
                                 set(listed.splitlines()).intersection(expected))
        else:
            status, out = self.hgcommand(args, last=last)
        if status:
            raise StepFailed(
                b'state', _(b'%s is not a Mercurial repository, or hg cannot '
                            b'run there') % self.env.path,
                out, _(b"set the 'hg' key to the hg executable on the target"),
            )
        parent, present, dirty = nodemod.nullhex, False, []
        kinds = {k: [] for k in _KINDS}
        for line in out.splitlines():
            if line[:2] in kinds:
                dirty.append(line[2:])
                kinds[line[:2]].append(line[2:])
            elif line.startswith(b'parent '):
                parent = line[len(b'parent '):]
            elif line.startswith(b'present '):
                present = line[len(b'present '):] == node
        self.found = State(None if parent == nodemod.nullhex else parent,
                           dirty, present, kinds[b'A '], kinds[b'! '])
        return self.found

    def halfway(self, name):
        """Whether migration ``name`` (``app.name``), which failed, may have
        left part of itself in the database; None when it cannot tell."""
        command = migrations.probecommand(self.env, name)
        if not command:
            return None
        status, out = self.run(b'sh -c %s' % quote(command))
        return migrations.parseprobe(out) if not status else None

    def migrations(self):
        """The migration listing (see migrations.parse), or None."""
        command = migrations.statecommand(self.env)
        if not command:
            return None
        status, out = self.run(b'sh -c %s' % quote(command))
        if status:
            raise StepFailed(b'state', _(b'cannot read the migration state'),
                             out, hints.forstep(self.env, b'migrate', status, out)
                             or _(b'check migrate.state in [environments]'))
        return migrations.parse(out)

    def journal(self, tail=None):
        """This host's journal records (the last ``tail``), oldest first."""
        status, out = self.run(journal.readscript(tail))
        return self._records(out)

    def _records(self, out):
        """The runs in journal output (see journal.runs)."""
        records, damaged = journal.parse(out)
        records = journal.runs(records)
        if damaged:
            self.say(self.host, _(b'journal: skipped %d damaged lines')
                     % damaged, 'warn')
        return records

    def saveedits(self, result, name, repo=None):
        """Keep, as run ``name``, what updating to ``result.tonode`` loses.

        Manual edits go into a patch (``result.patch``); untracked and
        ignored files the update would overwrite, into a directory beside
        it (``result.untracked``).  Each is named in the output with the way
        back.  Nothing is saved or said when nothing would be lost.
        ``repo``, the deploying repository, tells which files the new
        changeset adds (the host may not have it yet); without it the host
        is asked.  Call it before building the update step, which then
        also moves the ``hg add``-ed files aside.
        """
        state = self.found or self.readstate(result.tonode or nodemod.nullhex)
        changed, untracked = self.losses(result, repo)
        clash = [f for f in state.dirty if f not in changed]
        if not changed and not untracked:
            return
        status, out = self.run(edits.savescript(
            self.hg, name, deleted=state.deleted, patch=bool(changed),
            exclude=sorted(clash), untracked=untracked))
        if status:
            raise StepFailed(b'state', _(b'could not save manual edits'), out,
                             _(b'the working copy was not updated'))
        where = edits.shownpath(self.env.path)
        if changed:
            result.patch = edits.patchpath(name)
            self.say(self.host, _(b'manual edits to %s saved as %s/%s (to '
                                  b'restore them: cd %s && %s import '
                                  b'--no-commit %s)')
                     % (b', '.join(changed), self.env.path, result.patch,
                        where, self.hg, result.patch), 'warn')
        if untracked:
            result.untracked = untracked
            self.say(self.host, _(b'untracked files that the update would '
                                  b'overwrite saved in %s/%s/untracked: %s')
                     % (self.env.path, edits.savedir(name),
                        b', '.join(untracked)), 'warn')
        aside = [f for f in state.added if f not in clash]
        self.setaside = (name, aside) if aside else None

    def losses(self, result, repo=None):
        """``(changed, untracked)``: the edited files a patch would keep,
        and the untracked files the update to ``result.tonode`` would
        overwrite (read-only: the dry run asks too)."""
        state = self.found or self.readstate(result.tonode or nodemod.nullhex)
        created = self._created(result.fromnode, result.tonode, repo)
        # Added here and by the new changeset: the patch could not create
        # it again, so it is kept as the untracked files are.
        clash = set(created).intersection(state.added)
        untracked = sorted(self._existing(sorted(set(created) - clash))
                           | clash)
        changed = [f for f in state.dirty if f not in clash]
        return changed, untracked

    def _created(self, parent, node, repo):
        """Files ``node`` has that ``parent`` (None: empty) has not."""
        if repo is not None and node is not None:
            files = edits.created(repo, parent, node)
            if files is not None:
                return files
            wanted = edits.manifest(repo, node)
            if wanted is not None:
                # A parent the deploying repository lacks (a commit made
                # on the host): the host says which files it tracks.
                status, out = self.hgcommand((b'files', b'-r', b'.'))
                tracked = set(out.splitlines()) if status in (0, 1) else set()
                return [f for f in wanted if f not in tracked]
        # No repository here, or it lacks node (a rollback's, from the
        # host's journal): the host says.
        status, out = self.hgcommand(
            (b'status', b'-a', b'-n', b'--rev', parent or nodemod.nullhex,
             b'--rev', node))
        if status:
            return []  # no such changeset here: the update fails and says so
        return out.splitlines()

    def _existing(self, files):
        """Those of ``files`` that exist as files (the parent lacks them)."""
        if not files:
            return set()
        if self.existing is not None and self.existing[0] == files:
            found, self.existing = self.existing[1], None
            return found  # asked with the state (readstate)
        if self.hgserver.running and len(files) <= edits.MAXPATTERNS:
            status, out = self.hgcommand(edits.statusargs(files))
        else:
            # No hg process to start, and no server to stop.
            status, out = self.run(edits.existscript(files))
        if status:
            raise StepFailed(b'state', _(b'cannot look for untracked files'),
                             out, _(b'the working copy was not updated'))
        # Exact names only: a directory of that name lists what is inside.
        return set(out.splitlines()).intersection(files)

    def step(self, result, name, script, output=None, record=None):
        """Run a step and record it; StepFailed when it exits non-zero."""
        self.say(self.host, b'%s ...' % name, 'note')
        result.current = name
        start = time.time()
        tries = None
        if isinstance(script, tuple):
            # After the update come the shell's steps (migrate, reload,
            # check): the server ends with it, in its round trip.
            status, out = self.hgcommand(script, output,
                                         last=name == b'update')
        elif callable(script):
            status, out = script(self, output)  # transfer.Send
        elif name == b'check' and self.env.checktimeout:
            status, out, tries, stopped = healthcheck.repeat(self, script,
                                                             output)
        else:
            status, out = self.run(script, output=output)
        duration = time.time() - start
        entry = {'name': name, 'status': status,
                 'duration': round(duration, 3)}
        if tries is not None:
            entry['tries'] = tries
        (result.steps if record is None else record).append(entry)
        if status:
            raise StepFailed(
                name, _(b'%s exited with status %d') % (name, status)
                + (b' (%s)' % healthcheck.summary(tries, duration, stopped)
                   if tries else b''), out,
                hints.forstep(self.env, name, status, out))
        self.say(self.host, _(b'%s ok (%.1fs)') % (name, duration)
                 if not tries else _(b'%s ok (try %d, %.1fs)')
                 % (name, tries, duration))
        return out

    def update(self, node, begin=None, tie=None):
        """The update step: hg arguments, as every hg step is.

        With ``begin`` (a journal record), the update's own ``preupdate``
        hook appends it as the run's begin line: written ahead, right
        before the working copy changes, by the hg process already
        running (no shell round trip, no second hg start); if it cannot
        be written, the update does not happen.  The first update after
        :meth:`saveedits` moves the ``hg add``-ed files aside, in the same
        step (see edits): a shell step.  ``tie``: shell the hook runs
        first (releases.makerelease: the journal linked to repo's).
        """
        args = (b'update', b'-C', b'-r', node or b'null')
        if begin is not None:
            hook = journal.appendscript(begin, journal.BEGIN)
            if tie:
                hook = b'%s && %s' % (tie, hook)  # releases.makerelease
            args = args[:1] + (b'--config',
                               b'hooks.preupdate.envdeploy=' + hook) + args[1:]
        if not self.setaside:
            return args
        name, files = self.setaside
        self.setaside = None
        return b'%s && %s' % (edits.setasidescript(name, files),
                              self.hgserver.commandline(args))

    def command(self, name):
        """An administrator's command (migrate, reload, check), or None:
        the host's role's own where it has one."""
        command = self.env.command(name, self.host)
        # Run as written, in its own sh: a typo cannot unbalance the session.
        return b'sh -c %s' % quote(command) if command else None

    def append(self, record, unlock=False, phase=None, last=False):
        """Append ``record`` to the journal; StepFailed when it cannot.

        With ``unlock``, release the lock in the same round trip (even when
        the journal cannot be written).  ``phase``: see journal.py.  With
        ``last``, the session's input ends there too: nothing more is sent.
        """
        self.hgserver.stop()
        self.shell.send(journal.appendscript(record, phase or journal.END))
        if unlock and self.locked:
            self.shell.send(lock.RELEASE, subshell=False)
            if last:
                self.shell.endinput()
            status, out = self.shell.result()
            self.locked = False
            self.shell.result()
        else:
            status, out = self.shell.result()
        if status:
            raise StepFailed(b'journal', _(b'could not write the journal: %s')
                             % out.strip())


# Set by enter() once the session is in path.
_ENTERED = b'_envdeploy_entered'
# Set by enter() with layout = releases: path, as ``pwd -P`` names it.
BASE = b'_envdeploy_base'


def _onlyentered(script):
    """``script``, run only if the session entered path (else status 1)."""
    return b'if [ -n "${%s-}" ]; then\n%s\nelse false; fi' % (_ENTERED, script)


def _exports(environ):
    """`` && export NAME=VALUE`` for each of ``environ``, quoted."""
    return b''.join(b' && export %s=%s' % (name, quote(value))
                    for name, value in sorted(environ.items()))


def cdpath(path):
    """``path`` for ``cd --``, quoted: ``~/x`` is under the login's home,
    and a relative path starts with ``./`` (``cd -- -`` would go back to
    ``$OLDPWD``)."""
    if path == b'~' or path.startswith(b'~/'):
        return b'"$HOME"/%s' % quote(path[2:] or b'.')
    if not path.startswith(b'/'):
        path = b'./' + path
    return quote(path)


def who(ui):
    """Who runs the command: the Mercurial username, as the journal says."""
    import getpass
    return (ui.config(b'ui', b'username')
            or pycompat.sysbytes(getpass.getuser()))


def clientname():
    """The deploying machine, as the journal and the lock say."""
    import socket
    return pycompat.sysbytes(socket.gethostname())


def holder(user, client, kind, envname, runid):
    return {
        b'user': user,
        b'client': client,
        b'since': pycompat.sysbytes(isotime(time.time())),
        b'command': b'env%s %s' % (kind, envname),
        b'run': runid,  # an unfinished journal run is not one still running
    }
