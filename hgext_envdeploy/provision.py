# provision.py - set up a new environment's hosts, and check them
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envsetup`` (make the hosts ready) and ``hg envcheck`` (are they?).

envsetup only ever adds: it clones where ``path`` does not exist, and
uploads ``localsettings`` where it is missing.  It never touches an
existing repository or file, never migrates nor reloads, so running it
again changes nothing.

:func:`preflight` checks everything a deploy needs, changes nothing (not
even known_hosts: host keys are checked strictly), and reports every
problem at once; ``hg envdeploy --check`` calls it too.
"""

import os
import re

from mercurial.i18n import _
from mercurial import error, pycompat
from mercurial.utils import urlutil

from . import config, deploy, journal
from .shell import quote
from .status import (
    lastline, lockinfo, lockscript, onhosts, plural, prefixed,
    sections,
)

DEFAULT_SETTINGS = b'local_settings.py'

# A local settings file travels inside a shell command: keep it small.
MAX_UPLOAD = 256 * 1024

_VERSION = re.compile(br'\(version ([^)]+)\)')


def requiredfiles(env):
    """``requiredfiles`` as a list of paths relative to ``path``."""
    files = []
    for name in env.requiredfiles:
        parts = name.split(b'/')
        if name.startswith(b'/') or b'..' in parts:
            raise error.ConfigError(
                _(b"required file '%s' of environment '%s' is not inside "
                  b"its path") % (name, env.name),
                hint=_(b'give paths relative to %s.path, like '
                       b'mysite/local_settings.py') % env.name)
        if name not in files:
            files.append(name)
    return files


class Upload:
    """``localsettings``: a local file and where it goes on the targets."""

    def __init__(self, env, required):
        self.local = os.path.expanduser(env.localsettings)
        try:
            with open(self.local, 'rb') as fp:
                self.content = fp.read(MAX_UPLOAD + 1)
        except OSError as exc:
            raise error.ConfigError(
                _(b"cannot read %s.localsettings %s: %s")
                % (env.name, self.local,
                   pycompat.bytestr(exc.strerror or str(exc))))
        if len(self.content) > MAX_UPLOAD or b'\0' in self.content:
            raise error.ConfigError(
                _(b'%s.localsettings %s is not a small text file')
                % (env.name, self.local),
                hint=_(b'copy large or binary files to the hosts yourself'))
        # Its place: the required file of the same name (so that
        # mysite/local_settings.py can be filled), else the first one,
        # else Django's usual local_settings.py at the top of path.
        base = os.path.basename(self.local)
        same = [f for f in required if f.split(b'/')[-1] == base]
        self.dest = (same or required or [DEFAULT_SETTINGS])[0]

    def script(self):
        """Create dest with the content, only if absent, readable by us.

        The content travels inside the command (as a printf argument of the
        shell itself: no process shows it) and is never printed.
        """
        return b"umask 077 && set -C && printf '%%s' %s > %s" % (
            quote(self.content), quote(self.dest))


def clonesource(ui, repo, env):
    """What a new target clones: ``source``, else our ``default`` path.

    A local environment without either clones this very repository.
    """
    if env.source:
        return env.source
    paths = ui.paths.get(b'default')
    if paths:
        return paths[0].loc
    if env.islocal:
        return repo.root
    return None


def _target(repo, env, rev=None):
    """The changeset a deploy would bring, or (None, why not)."""
    try:
        return deploy.resolve(repo, env, rev), b''
    except error.Abort as exc:
        return None, exc.message


def _probe(session):
    """``repo``, ``missing``, ``empty`` (directory) or ``other`` at path."""
    _status, out = session.run(
        b'if [ -d %(p)s/.hg ]; then echo repo; '
        b'elif [ ! -e %(p)s ]; then echo missing; '
        b'elif [ -d %(p)s ] && [ -z "$(ls -A -- %(p)s)" ]; then echo empty; '
        b'else echo other; fi' % {b'p': quote(session.env.path)})
    return lastline(out)


def _roots(repo):
    unfi = repo.unfiltered()
    return {unfi[r].hex() for r in unfi.revs(b'roots(all())')}


def _rootsscript(hg):
    return b"%s log -r 'roots(all())' -T 'root:{node}\\n'" % hg


def _missingscript(files):
    return (b'for f in %s; do [ -e "$f" ] || printf \'missing:%%s\\n\' "$f";'
            b' done' % b' '.join(quote(f) for f in files))


# -- hg envsetup -------------------------------------------------------------


def envsetup(ui, repo, name, dryrun=False):
    """``hg envsetup``: clone where missing, check, upload local settings."""
    env = config.load(ui, name)
    settings = config.settings(ui)
    required = requiredfiles(env)
    upload = None
    if env.localsettings:
        upload = Upload(env, required)
        if upload.dest not in required:
            required.append(upload.dest)
    source = clonesource(ui, repo, env)
    ctx, why = _target(repo, env)
    roots = _roots(repo)

    def work(session, row):
        changes, notes = row['changes'], row['notes']
        problems = row['problems']
        env = session.env
        hg = session.hg
        where = _probe(session)
        if where in (b'missing', b'empty'):
            if not source:
                problems.append((b'clone', _(b'%s does not exist and there is '
                                             b'nothing to clone') % env.path,
                                 _(b'set %s.source, or a default path in '
                                   b'this repository') % env.name))
                return
            shown = urlutil.hidepassword(source)
            if dryrun:
                changes.append(_(b'would clone %s into %s')
                               % (shown, env.path))
                if ctx is not None:
                    changes.append(_(b'would update to %s') % ctx.hex()[:12])
                if upload is not None:
                    changes.append(_(b'would upload %s as %s')
                                   % (upload.local, upload.dest))
                if [f for f in required if upload is None or f != upload.dest]:
                    notes.append(_(b'required files are checked after the '
                                   b'clone'))
                return
            status, out = session.run(
                b'%s -y clone -U -- %s %s'
                % (hg, quote(source), quote(env.path)))
            if status:
                problems.append((b'clone', _(b'cannot clone %s: %s')
                                 % (shown, lastline(out)),
                                 _(b'check that the host can reach the source '
                                   b"(try 'hg envcheck %s')") % env.name))
                return
            changes.append(_(b'cloned %s into %s') % (shown, env.path))
            session.enter()
            if ctx is None:
                notes.append(_(b'working copy left empty: %s') % why)
            else:
                status, out = session.run(
                    b'%s -y update -r %s' % (hg, ctx.hex()))
                if status:
                    problems.append((
                        b'update', _(b'cannot update to %s: %s')
                        % (ctx.hex()[:12], lastline(out)),
                        _(b'push it to %s first') % shown))
                else:
                    changes.append(_(b'updated to %s (%s)')
                                   % (ctx.hex()[:12], env.branch))
        elif where == b'repo':
            session.enter()
            status, out = session.run(_rootsscript(hg))
            if status:
                problems.append((b'hg', _(b'cannot run hg in %s: %s')
                                 % (env.path, lastline(out)),
                                 _(b"set %s.hg to the hg executable on the "
                                   b"host") % env.name))
                return
            theirs = set(prefixed(out).get(b'root', []))
            if not theirs:
                notes.append(_(b'%s: an empty repository (the first deploy '
                               b'pulls into it)') % env.path)
            elif theirs & roots:
                notes.append(_(b'%s: already a clone of this project')
                             % env.path)
            else:
                problems.append((
                    b'path', _(b'%s is a repository of another project (no '
                               b'changeset in common with this one)')
                    % env.path,
                    _(b'check %s.path; envsetup never changes an existing '
                      b'repository') % env.name))
                return
        else:
            problems.append((
                b'path', _(b'%s exists and is not a Mercurial repository')
                % env.path,
                _(b'move it away, or set %s.path to another place')
                % env.name))
            return

        if not required:
            return
        _status, out = session.run(_missingscript(required))
        missing = prefixed(out).get(b'missing', [])
        for f in missing:
            if upload is not None and f == upload.dest:
                if dryrun:
                    changes.append(_(b'would upload %s as %s')
                                   % (upload.local, f))
                    continue
                status, out = session.run(upload.script())
                if status:
                    problems.append((b'requiredfiles',
                                     _(b'cannot upload %s as %s: %s')
                                     % (upload.local, f, lastline(out)), None))
                else:
                    changes.append(_(b'uploaded %s as %s (mode 600)')
                                   % (upload.local, f))
                continue
            problems.append((
                b'requiredfiles',
                _(b'%s is missing (not under version control)') % f,
                _(b'create it on the host, or set %s.localsettings to a '
                  b'local file that envsetup uploads') % env.name))
        present = [f for f in required if f not in missing]
        if present:
            notes.append(_(b'required files present: %s')
                         % b', '.join(present))

    def start(session, row):
        row.update(changes=[], notes=[], problems=[])
        work(session, row)

    ui.status(_(b'%s %s: %s\n') % (
        _(b'checking the set-up of') if dryrun else _(b'setting up'),
        env.name, env.describe()))
    rows = onhosts(ui, [(env, h) for h in env.hosts], start, settings,
                   _(b'setting up'))

    bad = []
    anychange = False
    for row in rows:
        host = row['host']
        problems = list(row.get('problems', []))
        if row['error']:
            what = b'connect' if not row['reachable'] else b'host'
            problems.append((what, row['error'], row['hint']))
        for text in row.get('changes', []):
            anychange = True
            ui.status(b'%s: %s\n' % (host, text), label=b'envdeploy.ok')
        for text in row.get('notes', []):
            ui.status(b'%s: %s\n' % (host, text))
        for what, msg, hint in problems:
            ui.warn(b'%s: %s\n' % (host, msg), label=b'envdeploy.failed')
            if hint:
                ui.warn(b'%s: (%s)\n' % (host, hint))
        if problems:
            bad.append(b'%s (%s)' % (
                host, b', '.join(_unique(p[0] for p in problems))))
        elif not row.get('changes'):
            ui.status(_(b'%s: nothing to change\n') % host)
    if bad:
        raise error.Abort(
            _(b'envsetup of %s: %d of %d hosts need attention: %s')
            % (env.name, len(bad), len(rows), b', '.join(bad)))
    if dryrun:
        ui.status(_(b'dry run: nothing changed\n'))
    elif not anychange:
        ui.status(_(b'%s is set up: nothing changed\n') % env.name)
    else:
        ui.status(_(b"%s is set up; deploy it with 'hg envdeploy %s'\n")
                  % (env.name, env.name))
    return 0


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# -- hg envcheck (pre-flight) ------------------------------------------------

OK, FAILED, SKIPPED = b'ok', b'failed', b'skipped'
CHECKS = (b'connect', b'hg', b'path', b'source', b'requiredfiles', b'lock',
          b'journal', b'workingcopy')


def preflight(ui, repo, name, rev=None, opts=None):
    """Check every host of ``name`` for a deploy; print; return 0 or 1.

    Changes nothing anywhere.  ``rev`` is the changeset a deploy would
    bring (default: the branch head), whose presence in the source is
    checked.
    """
    env = config.load(ui, name)
    # Strict host keys whatever the configuration: a check records nothing,
    # and an unknown key is worth knowing before the deploy.
    settings = dict(config.settings(ui))
    settings[b'hostkeys'] = b'strict'
    required = requiredfiles(env)
    if env.localsettings:
        dest = Upload(env, required).dest
        if dest not in required:
            required.append(dest)
    ctx, why = _target(repo, env, rev)
    roots = _roots(repo)
    shown = urlutil.hidepassword(env.source) if env.source else None

    def work(session, row):
        checks = row['checks']
        env = session.env
        hg = session.hg

        def add(check, status, message, hint=None):
            checks.append((check, status, message, hint))

        add(b'connect', OK, _(b'local') if session.host.islocal
            else _(b'reachable, host key known'))
        status, out = session.run(b'%s version -q' % hg)
        version = _VERSION.search(out)
        hgok = not status and version is not None
        if hgok:
            add(b'hg', OK, _(b'Mercurial %s') % version.group(1))
        else:
            add(b'hg', FAILED, _(b'cannot run %s: %s') % (hg, lastline(out)),
                _(b'install Mercurial on the host, or set %s.hg to its hg '
                  b'(SSH sessions have a short PATH)') % env.name)
        where = _probe(session)
        if where != b'repo':
            if where == b'missing':
                add(b'path', FAILED, _(b'%s does not exist') % env.path,
                    _(b"run 'hg envsetup %s'") % env.name)
            else:
                add(b'path', FAILED, _(b'%s is not a Mercurial repository')
                    % env.path, _(b'move it away and run \'hg envsetup %s\'')
                    % env.name)
            for check in (b'source', b'requiredfiles', b'lock', b'journal',
                          b'workingcopy'):
                add(check, SKIPPED, _(b'needs the repository'))
            return
        session.enter()
        parts = [(b'lock', lockscript()),
                 (b'last', b'tail -n 3 %s 2>/dev/null' % journal.JOURNAL)]
        if required:
            parts.append((b'required', _missingscript(required)))
        if hgok:
            identify = b'%s -y identify' % hg
            if ctx is not None:
                identify += b' -r %s' % ctx.hex()
            identify += b' -- %s' % (quote(env.source) if env.source
                                     else b'default')
            parts += [
                (b'roots', _rootsscript(hg)),
                (b'dirty', b"%s status -mard -T 'file:{path}\\n'" % hg),
                (b'source', identify),
            ]
        found = sections(session, parts)

        if hgok:
            status, out = found[b'roots']
            theirs = set(prefixed(out).get(b'root', []))
            if status:
                add(b'path', FAILED, _(b'cannot read %s: %s')
                    % (env.path, lastline(out)))
            elif not theirs:
                add(b'path', OK, _(b'%s: an empty repository') % env.path)
            elif theirs & roots:
                add(b'path', OK, _(b'%s: a clone of this project') % env.path)
            else:
                add(b'path', FAILED, _(b'%s is a repository of another '
                                       b'project') % env.path,
                    _(b'check %s.path') % env.name)
            _source(add, found[b'source'], ctx, shown, env)
        else:
            add(b'path', OK, _(b'%s exists') % env.path)
            add(b'source', SKIPPED, _(b'needs hg'))

        if required:
            missing = prefixed(found[b'required'][1]).get(b'missing', [])
            if missing:
                add(b'requiredfiles', FAILED, _(b'missing: %s')
                    % b', '.join(missing),
                    _(b"run 'hg envsetup %s' (with %s.localsettings), or "
                      b"create them on the host") % (env.name, env.name))
            else:
                add(b'requiredfiles', OK, b', '.join(required))
        else:
            add(b'requiredfiles', OK, _(b'none required'))

        holder, running = lockinfo(found[b'lock'][1])
        if holder:
            add(b'lock', FAILED, _(b'locked by %s') % holder,
                _(b'wait for that deploy to end; if it is dead, deploy with '
                  b'--break-lock'))
        else:
            add(b'lock', OK, _(b'free'))

        last, _damaged = journal.parse(found[b'last'][1])
        unfinished = journal.unfinished(last)
        if unfinished and pycompat.sysbytes(unfinished) != running:
            begun = journal.runs(last)[-1]
            add(b'journal', FAILED, _(b'run %s (env%s by %s) never finished: '
                                      b'its end was never recorded')
                % (pycompat.sysbytes(unfinished),
                   pycompat.sysbytes(begun.get('kind') or '?'),
                   pycompat.sysbytes(begun.get('user') or '?')),
                _(b'the next deploy reads the real migration state; '
                  b'hg envrollback %s returns to the state before that run')
                % env.name)
        else:
            add(b'journal', OK, _(b'last run finished'))

        if hgok:
            dirty = prefixed(found[b'dirty'][1]).get(b'file', [])
            if dirty:
                add(b'workingcopy', FAILED, _(b'manual edits: %s')
                    % b', '.join(dirty),
                    _(b'a deploy saves them as a patch under %s/%s/patches '
                      b'and discards them') % (env.path, journal.DIRECTORY))
            else:
                add(b'workingcopy', OK, _(b'clean'))
        else:
            add(b'workingcopy', SKIPPED, _(b'needs hg'))

    def start(session, row):
        row['checks'] = []
        work(session, row)

    failures = []
    with ui.formatter(b'envcheck', opts or {}) as fm:
        plain = fm.isplain()
        if plain:
            fm.plain(_(b'checking %s (%s): %s\n') % (
                env.name, ctx.hex()[:12] if ctx is not None else why,
                env.describe()))
        rows = onhosts(ui, [(env, h) for h in env.hosts], start, settings,
                       _(b'checking'))
        if ctx is None:
            _writecheck(fm, env.name, b'', (b'changeset', FAILED, why, None))
            failures.append((env.name, b'changeset'))
        for row in rows:
            checks = row.get('checks', [])
            if not row['reachable']:
                checks = [(b'connect', FAILED, row['error'], row['hint'])] + [
                    (c, SKIPPED, _(b'unreachable'), None) for c in CHECKS[1:]]
            elif row['error']:
                # The session broke down: what was checked still counts.
                checks = checks + [(b'host', FAILED, row['error'],
                                    row['hint'])]
            if fm.isplain():
                fm.plain(b'%s:\n' % row['host'])
            for check in checks:
                _writecheck(fm, env.name, row['host'], check)
                if check[1] == FAILED:
                    failures.append((row['host'], check[0]))

    if not failures:
        if plain:
            ui.status(_(b'%s: every check passed on %s\n') % (
                env.name, plural(len(rows), _(b'1 host'), _(b'%d hosts'))))
        return 0
    hosts = []
    for host, _check in failures:
        if host not in hosts:
            hosts.append(host)
    ui.warn(_(b'%s: %s: %s\n') % (
        env.name, plural(len(failures), _(b'1 check failed'),
                         _(b'%d checks failed')), b', '.join(
            b'%s (%s)' % (h, b', '.join(c for hh, c in failures if hh == h))
            for h in hosts)))
    return 1


def _source(add, found, ctx, shown, env):
    status, out = found
    where = shown or _(b"the host's default path")
    if not status:
        if ctx is not None:
            add(b'source', OK, _(b'%s has %s') % (where, ctx.hex()[:12]))
        else:
            add(b'source', OK, _(b'%s is reachable') % where)
        return
    if ctx is not None and b'unknown revision' in out:
        add(b'source', FAILED, _(b'%s is not in %s')
            % (ctx.hex()[:12], where),
            _(b'push it there first (hg push -r %s)') % ctx.hex()[:12])
    elif b'default' in out and not shown:
        add(b'source', FAILED, _(b'the host has no default path to pull '
                                 b'from: %s') % lastline(out),
            _(b'set %s.source') % env.name)
    else:
        add(b'source', FAILED, _(b'cannot reach %s from the host: %s')
            % (where, lastline(out)),
            _(b"check the host's access to the source (SSH key, [auth])"))


def _writecheck(fm, envname, host, check):
    name, status, message, hint = check
    fm.startitem()
    fm.data(env=envname, host=host, check=name, status=status,
            message=message, hint=hint or b'')
    if fm.isplain():
        label = {OK: b'envdeploy.ok', FAILED: b'envdeploy.failed'}.get(
            status, b'')
        fm.plain(b'  %-7s %-13s %s\n' % (status.upper() if status == FAILED
                                         else status, name, message),
                 label=label)
        if hint and status == FAILED:
            fm.plain(b'  %-7s %-13s (%s)\n' % (b'', b'', hint))
