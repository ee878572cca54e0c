# provision.py - set up a new environment's hosts
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envsetup``: make the hosts of a new environment ready.

envsetup only ever adds: it clones where ``path`` does not exist, and
uploads ``localsettings`` where it is missing.  It never touches an
existing repository or file, never migrates nor reloads, so running it
again changes nothing.  :class:`Setup` is what it brings, computed once;
its :meth:`~Setup.apply` applies it to one host.

The helpers before it are shared with ``hg envcheck`` (preflight.py),
which checks what envsetup makes.
"""

import os

from mercurial.i18n import _
from mercurial import error, pycompat
from mercurial.utils import urlutil

from . import config, deploy, releases, repofile, target, transfer
from .hostread import lastline, onhosts, prefixed
from .shell import quote

DEFAULT_SETTINGS = b'local_settings.py'

# A local settings file travels inside a shell command: keep it small.
MAX_UPLOAD = 256 * 1024


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


def requirements(env):
    """``(required files, Upload or None)``: the upload's place counts."""
    required = requiredfiles(env)
    upload = None
    if env.localsettings:
        upload = Upload(env, required)
        if upload.dest not in required:
            required.append(upload.dest)
    return required, upload


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

    def shown(self):
        """The script as --debug shows it: without the content."""
        return b"umask 077 && set -C && printf '%%s' <%d bytes of %s> > %s" % (
            len(self.content), pycompat.fsencode(self.local), quote(self.dest))


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


def deployable(repo, env, rev=None):
    """The changeset a deploy would bring, or (None, why not)."""
    ctx, exc = _deployable(repo, env, rev)
    return ctx, exc.message if exc is not None else b''


def _deployable(repo, env, rev=None):
    """The changeset a deploy would bring, or (None, the Abort why not)."""
    try:
        return deploy.resolve(repo, env, rev), None
    except error.Abort as exc:
        return None, exc


def probe(session):
    """``repo``, ``missing``, ``empty`` (directory) or ``other`` at path."""
    _rc, out = session.run(
        b'if [ -d %(p)s/.hg ]; then echo repo; '
        b'elif [ ! -e %(p)s ]; then echo missing; '
        b'elif [ -d %(p)s ] && [ -z "$(ls -A -- %(p)s)" ]; then echo empty; '
        b'else echo other; fi' % {b'p': quote(session.env.path)})
    return lastline(out)


def projectroots(repo):
    """The hex roots of this repository: a clone of it shares one."""
    unfi = repo.unfiltered()
    return {unfi[r].hex() for r in unfi.revs(b'roots(all())')}


def rootsscript(hg):
    return b"%s log -r 'roots(all())' -T 'root:{node}\\n'" % hg


def missingscript(files):
    return (b'for f in %s; do [ -e "$f" ] || printf \'missing:%%s\\n\' "$f";'
            b' done' % b' '.join(quote(f) for f in files))


# -- hg envsetup -------------------------------------------------------------


def envsetup(ui, repo, name, dryrun=False, opts=None):
    """``hg envsetup``: clone where missing, check, upload local settings.

    With -T, one formatter item per host (the text lines go to stderr).
    """
    env = config.load(ui, name)
    settings = config.settings(ui)
    files = repofile.describe(ui, name)
    if any(repofile.FILENAME in f for f in files):
        # Say which file declares it: a tracked one may differ per branch.
        ui.status(_(b'%s is declared in %s\n') % (name, b', '.join(files)))
    setup = Setup(ui, repo, env, dryrun)
    ui.status(_(b'%s %s: %s\n') % (
        _(b'checking the set-up of') if dryrun else _(b'setting up'),
        env.name, env.describe()))
    rows = onhosts(ui, [(env, h) for h in env.hosts], setup.apply, settings,
                   _(b'setting up'))
    bad = []
    with ui.formatter(b'envsetup', opts or {}) as fm:
        for row in rows:
            problems = _writehost(ui, row)
            _hostdata(fm, env, row, dryrun)
            if problems:
                bad.append(b'%s (%s)' % (row['host'], b', '.join(problems)))
    if bad:
        raise error.Abort(
            _(b'envsetup of %s: %d of %d hosts need attention: %s')
            % (env.name, len(bad), len(rows), b', '.join(bad)))
    if setup.failure is not None:
        # Ready hosts, and nothing a deploy could bring: not "set up".
        raise error.Abort(
            _(b'%s: the hosts are ready, but there is nothing to deploy: %s')
            % (env.name, setup.failure.message), hint=setup.failure.hint)
    if dryrun:
        ui.status(_(b'dry run: nothing changed\n'))
    elif not any(row.get('changes') for row in rows):
        ui.status(_(b'%s is set up: nothing changed\n') % env.name)
    else:
        ui.status(_(b"%s is set up; deploy it with 'hg envdeploy %s'\n")
                  % (env.name, env.name))
    return 0


def _writehost(ui, row):
    """Say what envsetup did on a host; the kinds of problem left there."""
    host = row['host']
    problems = list(row.get('problems', []))
    if row['error']:
        what = b'connect' if not row['reachable'] else b'host'
        problems.append((what, row['error'], row['hint']))
    for text in row.get('changes', []):
        ui.status(b'%s: %s\n' % (host, text), label=b'envdeploy.ok')
    for text in row.get('notes', []):
        ui.status(b'%s: %s\n' % (host, text))
    for _what, message, hint in problems:
        ui.warn(b'%s: %s\n' % (host, message), label=b'envdeploy.failed')
        if hint:
            ui.warn(b'%s: (%s)\n' % (host, hint))
    if not problems and not row.get('changes'):
        ui.status(_(b'%s: nothing to change\n') % host)
    return list(dict.fromkeys(what for what, _m, _h in problems))


def _hostdata(fm, env, row, dryrun):
    """A host's item for -T: what changed, notes, problems."""
    fm.startitem()
    problems = list(row.get('problems', []))
    if row['error']:
        what = b'connect' if not row['reachable'] else b'host'
        problems.append((what, row['error'], row['hint']))
    fm.data(env=env.name, host=row['host'], dryrun=bool(dryrun),
            status=b'failed' if problems else b'ok',
            changes=fm.formatlist(row.get('changes', []), name=b'change'),
            notes=fm.formatlist(row.get('notes', []), name=b'note'))
    sub = fm.nested(b'problems')
    for what, message, hint in problems:
        sub.startitem()
        sub.data(check=what, message=message, hint=hint or b'')
    sub.end()


def _problem(row, what, message, hint=None):
    row['problems'].append((what, message, hint))


class Setup:
    """What envsetup brings to every host of an environment.

    :meth:`apply` fills the host's row with ``changes`` (what it did, or
    would do), ``notes`` (what it found) and ``problems`` (``(what,
    message, hint)``: what needs attention).
    """

    def __init__(self, ui, repo, env, dryrun=False):
        self.env = env
        self.dryrun = dryrun
        self.required, self.upload = requirements(env)
        self.source = clonesource(ui, repo, env)
        self.ctx, self.failure = _deployable(repo, env)
        self.why = self.failure.message if self.failure is not None else b''
        self.roots = projectroots(repo)
        # Who holds the lock while envsetup converts a clone (releases).
        self.holder = target.holder(target.who(ui), target.clientname(),
                                    b'setup', env.name, b'')
        # transfer = push: the host gets its history from us, not source.
        self.send = None
        if env.transfer == transfer.PUSH:
            self.send = transfer.Send(ui, repo, self.ctx and self.ctx.hex())

    def apply(self, session, row):
        """Set up one host: its repository first, then the files."""
        row.update(changes=[], notes=[], problems=[])
        if releases.enabled(self.env):
            releases.setup(self, session, row)
            return
        where = probe(session)
        if where in (b'missing', b'empty'):
            ready = self._clone(session, row)
        elif where == b'repo':
            ready = self._recognise(session, row)
        else:
            _problem(row, b'path',
                     _(b'%s exists and is not a Mercurial repository')
                     % self.env.path,
                     _(b'move it away, or set %s.path to another place')
                     % self.env.name)
            ready = False
        if ready and self.required:
            self._requiredfiles(session, row)

    def _clone(self, session, row):
        """Clone into a missing or empty path; whether the files follow."""
        env = self.env
        if self.send is not None:
            return self._sendhistory(session, row)
        if not self.source:
            _problem(row, b'clone',
                     _(b'%s does not exist and there is nothing to clone')
                     % env.path,
                     _(b'set %s.source, or a default path in this '
                       b'repository') % env.name)
            return False
        shown = urlutil.hidepassword(self.source)
        if self.dryrun:
            self._wouldclone(row, shown)
            return False
        rc, out = session.run(b'%s -y clone -U -- %s %s' % (
            session.hg, quote(self.source), quote(env.path)))
        if rc:
            _problem(row, b'clone',
                     _(b'cannot clone %s: %s') % (shown, lastline(out)),
                     _(b'check that the host can reach the source '
                       b"(try 'hg envcheck %s')") % env.name)
            return False
        row['changes'].append(_(b'cloned %s into %s') % (shown, env.path))
        session.enter()
        self._update(session, row, shown)
        return True

    def _sendhistory(self, session, row):
        """transfer = push: an empty repository, then the history of the
        branch head sent through the session; whether the files follow."""
        env = self.env
        if self.dryrun:
            self._wouldclone(row, _(b'this repository (transfer = push)'))
            return False
        rc, out = session.run(b'%s init -- %s' % (session.hg, quote(env.path)))
        if rc:
            _problem(row, b'clone', _(b'cannot create a repository at %s: %s')
                     % (env.path, lastline(out)))
            return False
        session.enter()
        if self.ctx is not None:
            rc, out = self.send(session)
            if rc:
                _problem(row, b'clone', _(b'cannot send the changesets: %s')
                         % lastline(out))
                return False
        row['changes'].append(_(b'sent the history of %s into %s')
                              % (env.branch, env.path))
        self._update(session, row, _(b'this repository'))
        return True

    def _wouldclone(self, row, shown):
        changes = row['changes']
        changes.append(_(b'would clone %s into %s') % (shown, self.env.path))
        if self.ctx is not None:
            changes.append(_(b'would update to %s') % self.ctx.hex()[:12])
        upload = self.upload
        if upload is not None:
            changes.append(_(b'would upload %s as %s')
                           % (upload.local, upload.dest))
        if [f for f in self.required if upload is None or f != upload.dest]:
            row['notes'].append(_(b'required files are checked after the '
                                  b'clone'))

    def _update(self, session, row, shown):
        """Update a new clone to the changeset a deploy would bring."""
        ctx = self.ctx
        if ctx is None:
            row['notes'].append(_(b'working copy left empty: %s') % self.why)
            return
        rc, out = session.run(b'%s -y update -r %s' % (session.hg, ctx.hex()))
        if rc:
            _problem(row, b'update', _(b'cannot update to %s: %s')
                     % (ctx.hex()[:12], lastline(out)),
                     _(b'push it to %s first') % shown)
        else:
            row['changes'].append(_(b'updated to %s (%s)')
                                  % (ctx.hex()[:12], self.env.branch))

    def _recognise(self, session, row):
        """Whether the existing repository at path is of this project."""
        env = self.env
        session.enter()
        rc, out = session.run(rootsscript(session.hg))
        if rc:
            _problem(row, b'hg', _(b'cannot run hg in %s: %s')
                     % (env.path, lastline(out)),
                     _(b"set %s.hg to the hg executable on the host")
                     % env.name)
            return False
        theirs = set(prefixed(out).get(b'root', []))
        if not theirs:
            row['notes'].append(_(b'%s: an empty repository (the first '
                                  b'deploy pulls into it)') % env.path)
        elif theirs & self.roots:
            row['notes'].append(_(b'%s: already a clone of this project')
                                % env.path)
        else:
            _problem(row, b'path',
                     _(b'%s is a repository of another project (no '
                       b'changeset in common with this one)') % env.path,
                     _(b'check %s.path; envsetup never changes an existing '
                       b'repository') % env.name)
            return False
        return True

    def _requiredfiles(self, session, row):
        """Upload the local settings where missing; the others must exist."""
        _rc, out = session.run(missingscript(self.required))
        missing = prefixed(out).get(b'missing', [])
        upload = self.upload
        for f in missing:
            if upload is not None and f == upload.dest:
                self._upload(session, row)
                continue
            _problem(row, b'requiredfiles',
                     _(b'%s is missing (not under version control)') % f,
                     _(b'create it on the host, or set %s.localsettings to '
                       b'a local file that envsetup uploads') % self.env.name)
        present = [f for f in self.required if f not in missing]
        if present:
            row['notes'].append(_(b'required files present: %s')
                                % b', '.join(present))

    def _upload(self, session, row):
        upload = self.upload
        if self.dryrun:
            row['changes'].append(_(b'would upload %s as %s')
                                  % (upload.local, upload.dest))
            return
        rc, out = session.run(upload.script(), shown=upload.shown())
        if rc:
            _problem(row, b'requiredfiles', _(b'cannot upload %s as %s: %s')
                     % (upload.local, upload.dest, lastline(out)))
        else:
            row['changes'].append(_(b'uploaded %s as %s (mode 600)')
                                  % (upload.local, upload.dest))
