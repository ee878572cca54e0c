# preflight.py - is every host ready for a deploy?
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envcheck`` (and ``hg envdeploy --check``): the pre-flight checks.

Every check a deploy needs, on every host, changing nothing (not even
known_hosts: host keys are checked strictly), every problem reported at
once.  :data:`CHECKS` is the table that drives them: each row names a
check, its function and the sections of the one shared round trip it
reads (:data:`SECTIONS` holds their scripts), in the order they are
shown.  A function reads a :class:`Reading` of the host, which runs that
round trip (only the sections some check reads) the first time one of
them asks, and returns ``(status, message, hint)``.  A new check is a
function and a row.
"""

import re

from mercurial.i18n import _
from mercurial import util
from mercurial.utils import urlutil

from . import config, freeze, hints, journal, lock, migrations, releases
from .hostread import (
    lastline, lockinfo, lockscript, onhosts, plural, prefixed, sections,
)
from .provision import (
    deployable, missingscript, probe, projectroots, requirements,
    rootsscript,
)
from .shell import quote
from .target import cdpath

OK, FAILED, SKIPPED = b'ok', b'failed', b'skipped'

_VERSION = re.compile(br'\(version ([^)]+)\)')

# A check's hint goes under its message.
_HINTINDENT = b' ' * 24


class Wanted:
    """What every host of ``env`` is checked against, read here once."""

    def __init__(self, repo, env, rev=None):
        self.env = env
        self.required, _upload = requirements(env)
        self.ctx, self.why = deployable(repo, env, rev)
        self.roots = projectroots(repo)
        self.shown = urlutil.hidepassword(env.source) if env.source else None

    def check(self, session, row):
        """Run :data:`CHECKS` on one host, into ``row['checks']``.

        A host that breaks down keeps the checks done before.
        """
        reading = Reading(self, session)
        row['checks'] = checks = []
        for name, func, _reads in CHECKS:
            found = func(reading)
            if found is not None:  # None: not a check of this layout
                checks.append((name,) + found)


class Reading:
    """One host as the checks see it, read when first asked."""

    def __init__(self, wanted, session):
        self.wanted = wanted
        self.env = wanted.env
        self.session = session
        self.hg = session.hg

    @util.propertycache
    def hgversion(self):
        """``(exit status, output)`` of ``hg version -q``."""
        return self.session.run(b'%s version -q' % self.hg)

    @util.propertycache
    def version(self):
        """Mercurial's version on the host, or None when hg cannot run."""
        rc, out = self.hgversion
        found = _VERSION.search(out)
        return found.group(1) if not rc and found is not None else None

    @util.propertycache
    def where(self):
        """What path is (see provision.probe); with layout = releases,
        ``repo`` is the layout, and ``inplace`` a clone to convert."""
        if releases.enabled(self.env):
            where = releases.probe(self.session)
            return b'repo' if where == b'layout' else where
        return probe(self.session)

    @util.propertycache
    def found(self):
        """``{section: (exit status, output)}``, in one round trip: the
        :data:`SECTIONS` the :data:`CHECKS` read, that apply to this host."""
        self.session.enter()
        wanted = {name for _check, _func, reads in CHECKS for name in reads}
        parts = [(name, script(self)) for name, script in SECTIONS
                 if name in wanted]
        return sections(self.session, [p for p in parts if p[1] is not None])

    @util.propertycache
    def lock(self):
        """``(holder, run id)`` of the deploy lock (see hostread.lockinfo)."""
        return lockinfo(self.found[b'lock'][1])


def _needsrepo():
    return SKIPPED, _(b'needs the repository'), None


def _needshg():
    return SKIPPED, _(b'needs hg'), None


def _connect(r):
    if r.session.host.islocal:
        return OK, _(b'local'), None
    return OK, _(b'reachable, host key known'), None


def _hg(r):
    if r.version is not None:
        return OK, _(b'Mercurial %s') % r.version, None
    return (FAILED, _(b'cannot run %s: %s') % (r.hg, lastline(r.hgversion[1])),
            _(b'install Mercurial on the host; %s') % hints.shortpath(
                r.env, b'hg'))


def _path(r):
    env = r.env
    if r.where == b'missing':
        return (FAILED, _(b'%s does not exist') % env.path,
                hints.missingpath(env))
    if r.where == b'inplace':
        return (FAILED, _(b'%s is an in-place clone, not the releases '
                          b'layout') % env.path,
                _(b"run 'hg envsetup %s': it converts it") % env.name)
    if r.where != b'repo':
        return (FAILED, _(b'%s is not a Mercurial repository') % env.path,
                _(b"move it away and run 'hg envsetup %s'") % env.name)
    found = r.found
    if r.version is None:
        return OK, _(b'%s exists') % env.path, None
    rc, out = found[b'roots']
    theirs = set(prefixed(out).get(b'root', []))
    if rc:
        return (FAILED, _(b'cannot read %s: %s') % (env.path, lastline(out)),
                None)
    if not theirs:
        return OK, _(b'%s: an empty repository') % env.path, None
    if theirs & r.wanted.roots:
        if releases.enabled(env):
            return OK, _(b'%s: the releases layout of a clone of this '
                         b'project') % env.path, None
        return OK, _(b'%s: a clone of this project') % env.path, None
    return (FAILED, _(b'%s is a repository of another project') % env.path,
            _(b'check %s.path') % env.name)


def _release(r):
    """layout = releases: the live release, its changeset, the others."""
    env = r.env
    if not releases.enabled(env):
        return None
    if r.where != b'repo':
        return _needsrepo()
    rc, out = r.found[b'release']
    if rc:
        return (FAILED, _(b'cannot read the releases in %s: %s')
                % (env.path, lastline(out)), None)
    disk = releases.Disk(out)
    names = sorted(disk.releases)
    ondisk = plural(len(names), _(b'1 release on disk'),
                    _(b'%d releases on disk')) + (
        b': %s' % b', '.join(names) if names else b'')
    redeploy = _(b"run 'hg envsetup %s' to check the layout, then "
                 b"'hg envdeploy %s': it makes a release and switches "
                 b"current to it") % (env.name, env.name)
    if disk.live is None:
        if not names:
            return OK, _(b'no release yet: the first deploy makes one'), None
        return (FAILED, _(b'%s/current is missing: no release is live (%s)')
                % (env.path, ondisk), redeploy)
    if disk.live not in disk.releases:
        return (FAILED, _(b'%s/current points to releases/%s, which is not '
                          b'on disk (%s)') % (env.path, disk.live, ondisk),
                redeploy)
    node = disk.releases[disk.live]
    return OK, _(b'releases/%s live, at %s; %s') % (
        disk.live, node[:12] if node else _(b'an unknown changeset'),
        ondisk), None


def _source(r):
    if r.where != b'repo':
        return _needsrepo()
    if r.env.transfer == b'push':
        return OK, _(b'not needed: the deploy sends the changesets '
                     b'(transfer = push)'), None
    if r.version is None:
        return _needshg()
    rc, out = r.found[b'source']
    ctx, env = r.wanted.ctx, r.env
    where = r.wanted.shown or _(b"the host's default path")
    if not rc:
        if ctx is not None:
            return OK, _(b'%s has %s') % (where, ctx.hex()[:12]), None
        return OK, _(b'%s is reachable') % where, None
    if ctx is not None and b'unknown revision' in out:
        return (FAILED, _(b'%s is not in %s') % (ctx.hex()[:12], where),
                _(b'push it there first (hg push -r %s)') % ctx.hex()[:12])
    if b'default' in out and not r.wanted.shown:
        return (FAILED, _(b'the host has no default path to pull from: %s')
                % lastline(out), _(b'set %s.source') % env.name)
    return (FAILED, _(b'cannot reach %s from the host: %s')
            % (where, lastline(out)),
            _(b"check the host's access to the source (SSH key, [auth])"))


def _requiredfiles(r):
    if r.where != b'repo':
        return _needsrepo()
    required = r.wanted.required
    if not required:
        return OK, _(b'none required'), None
    missing = prefixed(r.found[b'required'][1]).get(b'missing', [])
    if not missing:
        return OK, b', '.join(required), None
    return (FAILED, _(b'missing: %s') % b', '.join(missing),
            _(b"run 'hg envsetup %s' (with %s.localsettings), or create "
              b"them on the host") % (r.env.name, r.env.name))


def _lock(r):
    if r.where != b'repo':
        return _needsrepo()
    holder, _running = r.lock
    if not holder:
        return OK, _(b'free'), None
    return (FAILED, _(b'locked by %s') % holder,
            _(b'wait for that deploy to end; if it is dead, deploy with '
              b'--break-lock'))


def _freeze(r):
    if r.where != b'repo':
        return _needsrepo()
    frozen = freeze.shown(r.found[b'freeze'][1])
    if not frozen:
        return OK, _(b'not frozen'), None
    return (FAILED, _(b'FROZEN %s') % frozen,
            _(b"'hg envunlock %s' lifts it; until then every deploy and "
              b'rollback is refused') % r.env.name)


def _journal(r):
    if r.where != b'repo':
        return _needsrepo()
    last, _damaged = journal.parse(r.found[b'last'][1])
    unfinished = journal.unfinished(last)
    if not unfinished or unfinished == r.lock[1]:
        return OK, _(b'last run finished'), None
    begun = journal.runs(last)[-1]
    return (FAILED, _(b'run %s (env%s by %s) never finished: its end was '
                      b'never recorded')
            % (unfinished, begun.get('kind') or b'?',
               begun.get('user') or b'?'),
            _(b'the next deploy reads the real migration state; '
              b'hg envrollback %s returns to the state before that run')
            % r.env.name)


def _workingcopy(r):
    if r.where != b'repo':
        return _needsrepo()
    if r.version is None:
        return _needshg()
    dirty = prefixed(r.found[b'dirty'][1]).get(b'file', [])
    if not dirty:
        return OK, _(b'clean'), None
    if releases.enabled(r.env):
        return (FAILED, _(b'manual edits in the live release: %s')
                % b', '.join(dirty),
                _(b'a deploy saves them as a patch under %s/%s/%s/patches; '
                  b'the new release does not have them')
                % (r.env.path, releases.REPO, journal.DIRECTORY))
    return (FAILED, _(b'manual edits: %s') % b', '.join(dirty),
            _(b'a deploy saves them as a patch under %s/%s/patches and '
              b'discards them') % (r.env.path, journal.DIRECTORY))


def _migrationstate(r):
    """Whether the migration state can be read (read-only: migrate.state,
    or Django's showmigrations), as the deploy reads it before migrate: a
    migrate that cannot start fails here, not halfway through a deploy."""
    env = r.env
    if not migrations.statecommand(env):
        return OK, _(b'no migration state to read'), None
    if env.migrationhost(r.session.host) is not r.session.host:
        return (OK, _(b'read on %s, which migrates')
                % env.migrationhost(r.session.host).spec, None)
    if r.where != b'repo':
        return _needsrepo()
    if r.version is None:
        return _needshg()
    rc, out = r.found[b'migrations']
    lines = out.split(b'\n', 1)
    if lines[0] == b'parent:' + b'0' * 40:
        return SKIPPED, _(b'nothing deployed yet: read by the first '
                          b'deploy'), None
    out = lines[1] if lines[0].startswith(b'parent:') and len(lines) > 1 \
        else out
    if rc:
        return (FAILED, _(b'cannot read the migration state: %s')
                % lastline(out),
                hints.forstep(env, b'migrate', rc, out)
                or _(b'check %s.migrate.state, or the Python that %s.migrate '
                     b'runs') % (env.name, env.name))
    listing = migrations.parse(out)
    pending = sum(1 for names in listing.values()
                  for _name, applied in names if not applied)
    return OK, plural(pending, _(b'readable, 1 migration not applied'),
                      _(b'readable, %d migrations not applied')), None


def _statescript(r):
    """The parent (nothing is read from an empty working copy), then the
    state command, run as the deploy runs it."""
    command = migrations.statecommand(r.env)
    if not command or r.version is None:
        return None
    if r.env.migrationhost(r.session.host) is not r.session.host:
        return None
    return (b"p=$(%s log -r . -T '{node}'); echo \"parent:$p\"; "
            b"case $p in %s) ;; *) sh -c %s;; esac"
            % (r.hg, b'0' * 40, quote(command)))


def _identify(r):
    """Whether the source has the changeset (or answers at all)."""
    identify = b'%s -y identify' % r.hg
    if r.wanted.ctx is not None:
        identify += b' -r %s' % r.wanted.ctx.hex()
    return identify + b' -- %s' % (quote(r.env.source) if r.env.source
                                   else b'default')


def _inshared(r, script):
    """``script`` where requiredfiles are: path/shared with releases (in
    a subshell: the next sections stay in the live release)."""
    if not releases.enabled(r.env):
        return script
    return b'( cd -- %s/%s && %s )' % (cdpath(r.env.path), releases.SHARED,
                                      script)


def _withhg(script):
    """``script(reading)`` where hg runs on the host, else not asked."""
    return lambda r: script(r) if r.version is not None else None


# The sections of the shared round trip, in the order they run: name,
# script(reading) (None: not asked of this host).
SECTIONS = (
    (b'lock', lambda r: lockscript()),
    (b'last', lambda r: b'tail -n 3 %s 2>/dev/null' % journal.JOURNAL),
    (b'freeze', lambda r: lock.freezescript()),
    (b'required', lambda r: _inshared(r, missingscript(r.wanted.required))
     if r.wanted.required else None),
    (b'release', lambda r: b'(%s)' % releases.listscript(r.env.path)
     if releases.enabled(r.env) else None),
    (b'roots', _withhg(lambda r: rootsscript(r.hg))),
    (b'dirty', _withhg(lambda r: b"%s status -mard -T 'file:{path}\\n'"
                       % r.hg)),
    (b'source', _withhg(_identify)),
    (b'migrations', _statescript),
)

# The checks, in the order they are shown: name, function, the sections it
# reads.  The first is the connection: an unreachable host skips the rest.
CHECKS = (
    (b'connect', _connect, ()),
    (b'hg', _hg, ()),
    (b'path', _path, (b'roots',)),
    (b'release', _release, (b'release',)),
    (b'source', _source, (b'source',)),
    (b'requiredfiles', _requiredfiles, (b'required',)),
    (b'lock', _lock, (b'lock',)),
    (b'freeze', _freeze, (b'freeze',)),
    (b'journal', _journal, (b'lock', b'last')),
    (b'workingcopy', _workingcopy, (b'dirty',)),
    (b'migrations', _migrationstate, (b'migrations',)),
)


def envcheck(ui, repo, name, rev=None, opts=None):
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
    wanted = Wanted(repo, env, rev)
    failures = []
    with ui.formatter(b'envcheck', opts or {}) as fm:
        plain = fm.isplain()
        fm.plain(_(b'checking %s (%s): %s\n') % (
            env.name, wanted.ctx.hex()[:12] if wanted.ctx is not None
            else wanted.why, env.describe()))
        rows = onhosts(ui, [(env, h) for h in env.hosts], wanted.check,
                       settings, _(b'checking'))
        if wanted.ctx is None:
            _writecheck(fm, env.name, b'',
                        (b'changeset', FAILED, wanted.why, None))
            failures.append((env.name, b'changeset'))
        for row in rows:
            fm.plain(b'%s:\n' % row['host'])
            for check in _rowchecks(row, env):
                _writecheck(fm, env.name, row['host'], check)
                if check[1] == FAILED:
                    failures.append((row['host'], check[0]))
    if not failures:
        if plain:
            ui.status(_(b'%s: every check passed on %s\n') % (
                env.name, plural(len(rows), _(b'1 host'), _(b'%d hosts'))))
        return 0
    hosts = list(dict.fromkeys(host for host, _check in failures))
    ui.warn(_(b'%s: %s: %s\n') % (
        env.name, plural(len(failures), _(b'1 check failed'),
                         _(b'%d checks failed')), b', '.join(
            b'%s (%s)' % (h, b', '.join(c for hh, c in failures if hh == h))
            for h in hosts)))
    return 1


def _rowchecks(row, env):
    """A host's checks, with why the others could not run."""
    if not row['reachable']:
        return [(CHECKS[0][0], FAILED, row['error'], row['hint'])] + [
            (name, SKIPPED, _(b'unreachable'), None)
            for name, _func, _reads in CHECKS[1:]
            if name != b'release' or releases.enabled(env)]
    if row['error']:
        # The session broke down: what was checked still counts.
        return row.get('checks', []) + [
            (b'host', FAILED, row['error'], row['hint'])]
    return row.get('checks', [])


def _writecheck(fm, envname, host, check):
    name, status, message, hint = check
    label = {OK: b'envdeploy.ok', FAILED: b'envdeploy.failed'}.get(status, b'')
    fm.startitem()
    fm.data(env=envname, host=host, status=status)
    fm.plain(b'  %-7s ' % (status.upper() if status == FAILED else status),
             label=label)
    fm.write(b'check message', b'%-13s %s\n', name, message, label=label)
    fm.condwrite(hint and status == FAILED, b'hint', _HINTINDENT + b'(%s)\n',
                 hint or b'')
