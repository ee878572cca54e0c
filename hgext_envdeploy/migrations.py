# migrations.py - the database migration state, and how to go back
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Read the migration state of a target and plan reverting it.

The state command prints Django's ``showmigrations`` format (another
framework plugs in by printing the same)::

  bar
   [X] 0001_initial
   [ ] 0002_bar_description

A state is a dict ``app -> latest applied migration`` (``zero`` when none).
Reverting an app runs ``migrate.rollback`` with ``{app}`` and
``{migration}`` replaced by quoted values.  Both commands default to the
Django ones, built from the ``migrate`` command when it runs ``manage.py``
(so the same Python is used); with any other ``migrate`` and no
``migrate.state``, no state is recorded and rollbacks revert code only.
"""

import re

from mercurial.i18n import _
from mercurial import error, node as nodemod

from .shell import quote

ZERO = 'zero'

_MANAGE = re.compile(br'^(?P<manage>.*\bmanage\.py)\s+migrate\b')
_APPLIED = re.compile(r'^\s+\[(?P<mark>[X ])\]\s+(?P<name>\S+)')
_IRREVERSIBLE = re.compile(r'in (?P<migration>[\w]+\.[\w]+) is not reversible')
_EXPLICIT = re.compile(r'^(?P<app>[A-Za-z_]\w*)\.(?P<target>zero|\d+\w*)$')


def _django(env):
    if not env.migrate:
        return None
    m = _MANAGE.match(env.migrate.strip())
    return m and m.group('manage')


def statecommand(env):
    """The command printing the state, or None when none is known."""
    if not env.migrate:
        return None
    configured = env.values.get(b'migrate.state')
    if configured:
        return configured
    manage = _django(env)
    return manage and manage + b' showmigrations'


def touched(repo, env, fromnode, tonode):
    """Whether going from ``fromnode`` to ``tonode`` may change migrations.

    For the Django default only: False when no file under a ``migrations``
    directory differs between the two changesets (both known here), so the
    state need not be read again (one Django start saved per host).  The
    state then stays what the previous deploy recorded: migrations the
    database was missing get applied, and the older code knows them too.
    """
    if env.values.get(b'migrate.state') or fromnode is None:
        return True
    unfi = repo.unfiltered()
    try:
        old, new = unfi[nodemod.bin(fromnode)], unfi[nodemod.bin(tonode)]
    except (error.LookupError, error.RepoLookupError, TypeError, ValueError):
        return True
    status = unfi.status(old.node(), new.node())
    changed = status.modified + status.added + status.removed
    return any(b'migrations/' in f for f in changed)


def rollbackcommand(env, app, migration):
    template = env.values.get(b'migrate.rollback')
    if not template:
        manage = _django(env) or b'python manage.py'
        template = manage + b' migrate --noinput {app} {migration}'
    return template.replace(b'{app}', quote(app.encode('utf-8'))).replace(
        b'{migration}', quote(migration.encode('utf-8')))


def parse(output):
    """``{app: [(name, applied), ...]}`` from showmigrations output."""
    listing = {}
    app = None
    for line in output.decode('utf-8', 'replace').splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            app = line.strip()
            listing[app] = []
            continue
        m = _APPLIED.match(line)
        if m and app is not None:
            listing[app].append((m.group('name'), m.group('mark') == 'X'))
    return listing


def latest(listing):
    """The state: ``{app: latest applied name, or 'zero'}``."""
    state = {}
    for app, migrations in listing.items():
        applied = [name for name, done in migrations if done]
        state[app] = applied[-1] if applied else ZERO
    return state


def plan(listing, target):
    """How to go from ``listing`` to the ``target`` state.

    Returns ``[(app, migration, [names unapplied, newest first])]`` for the
    apps whose latest applied migration differs from the target.
    """
    steps = []
    for app, wanted in sorted(target.items()):
        migrations = listing.get(app)
        if migrations is None:
            continue
        names = [name for name, _done in migrations]
        if wanted != ZERO and wanted not in names:
            raise error.Abort(
                _(b"migration %s.%s is not known on the target")
                % (app.encode('utf-8'), wanted.encode('utf-8')))
        keep = 0 if wanted == ZERO else names.index(wanted) + 1
        undo = [name for name, done in migrations[keep:] if done]
        if undo:
            steps.append((app, wanted, list(reversed(undo))))
    return steps


def resolve(listing, app, target):
    """An explicit ``--migration`` target (``0002`` means ``0002_...``)."""
    if target == ZERO:
        return ZERO
    for name, _done in listing.get(app, []):
        if name == target or name.startswith(target + '_'):
            return name
    raise error.InputError(
        _(b"no migration %s.%s on the target")
        % (app.encode('utf-8'), target.encode('utf-8')),
        hint=_(b'see python manage.py showmigrations %s') % app.encode('utf-8'))


def explicit(values):
    """Parse ``--migration APP.NNNN`` values into ``{app: target}``."""
    targets = {}
    for value in values:
        m = _EXPLICIT.match(value.decode('utf-8', 'replace'))
        if not m:
            raise error.InputError(
                _(b"malformed --migration value '%s'") % value,
                hint=_(b'expected APP.NNNN (for example bar.0007) or APP.zero'))
        targets[m.group('app')] = m.group('target')
    return targets


def irreversible(output):
    """The migration Django refused to reverse, from its output, or None."""
    m = _IRREVERSIBLE.search(output.decode('utf-8', 'replace'))
    return m and m.group('migration')
