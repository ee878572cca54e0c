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

ZERO = b'zero'

_MANAGE = re.compile(br'^(?P<manage>.*\bmanage\.py)\s+migrate\b')
_APPLIED = re.compile(br'^\s+\[(?P<mark>[X ])\]\s+(?P<name>\S+)')
_IRREVERSIBLE = re.compile(br'in (?P<migration>\w+\.\w+) is not reversible')
# Django's migrate output: "  Applying bar.0004_x... OK" (and Unapplying).
_APPLYING = re.compile(br'^\s*(?P<verb>Applying|Unapplying) '
                       br'(?P<app>\w+)\.(?P<name>\w+)\.\.\.(?P<ok> OK)?')
_MIGRATE_OUTPUT = re.compile(br'^(Running migrations:|\s+No migrations to apply)',
                             re.M)
_EXPLICIT = re.compile(br'^(?P<app>[A-Za-z_]\w*)\.(?P<target>zero|\d+\w*)$')


def _django(env):
    if not env.migrate:
        return None
    m = _MANAGE.match(env.migrate.strip())
    return m and m.group('manage')


def statecommand(env):
    """The command printing the state, or None when none is known."""
    if not env.migrate:
        return None
    configured = env.migratestate
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
    if env.migratestate or fromnode is None:
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
    template = env.migraterollback
    if not template:
        manage = _django(env) or b'python manage.py'
        template = manage + b' migrate --noinput {app} {migration}'
    return template.replace(b'{app}', quote(app)).replace(
        b'{migration}', quote(migration))


def parse(output):
    """``{app: [(name, applied), ...]}`` from showmigrations output."""
    listing = {}
    app = None
    for line in output.splitlines():
        if not line.strip():
            continue
        if not line[:1].isspace():
            app = line.strip()
            listing[app] = []
            continue
        m = _APPLIED.match(line)
        if m and app is not None:
            listing[app].append((m.group('name'), m.group('mark') == b'X'))
    return listing


def latest(listing):
    """The state: ``{app: latest applied name, or 'zero'}``."""
    state = {}
    for app, migrations in listing.items():
        applied = [name for name, done in migrations if done]
        state[app] = applied[-1] if applied else ZERO
    return state


def unapplysteps(listing, target):
    """How to go from ``listing`` to the ``target`` state.

    Returns ``[(app, migration, [names unapplied, newest first])]`` for the
    apps whose latest applied migration differs from the target, by app.
    Only what is applied gets unapplied; an app not in ``target`` is left
    alone, one the target no longer has (not in ``listing``) is skipped:

    >>> listing = {b'foo': [(b'0001_a', True)],
    ...            b'bar': [(b'0001_initial', True), (b'0002_b', False),
    ...                    (b'0003_c', True), (b'0004_d', True)],
    ...            b'baz': [(b'0001_x', True), (b'0002_y', True)]}
    >>> unapplysteps(listing, {b'foo': b'zero', b'bar': b'0001_initial', b'gone': b'zero'})
    [(b'bar', b'0001_initial', [b'0004_d', b'0003_c']), (b'foo', b'zero', [b'0001_a'])]
    >>> unapplysteps(listing, {b'bar': b'0004_d', b'baz': b'0002_y'})  # already there
    []
    >>> unapplysteps(listing, {b'bar': b'0002_b'})  # 0002_b itself was never applied
    [(b'bar', b'0002_b', [b'0004_d', b'0003_c'])]

    A target the code on the target does not know (a state recorded by
    code that has since been rewritten) stops the plan:

    >>> unapplysteps(listing, {b'bar': b'0003_renamed'})
    Traceback (most recent call last):
      ...
    mercurial.error.Abort: migration bar.0003_renamed is not known on the target
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
                % (app, wanted))
        keep = 0 if wanted == ZERO else names.index(wanted) + 1
        undo = [name for name, done in migrations[keep:] if done]
        if undo:
            steps.append((app, wanted, list(reversed(undo))))
    return steps


def resolve(listing, app, target):
    """An explicit ``--migration`` target (``0002`` means ``0002_...``).

    >>> listing = {b'bar': [(b'0001_initial', False), (b'0002_b', False),
    ...                    (b'0012_c', False)]}
    >>> resolve(listing, b'bar', b'0002'), resolve(listing, b'bar', b'0002_b')
    (b'0002_b', b'0002_b')
    >>> resolve(listing, b'bar', b'zero'), resolve({}, b'bar', b'zero')
    (b'zero', b'zero')

    The number is matched whole (``001`` is not ``0012_c``); an unknown app
    is refused like an unknown migration:

    >>> resolve(listing, b'bar', b'001')
    Traceback (most recent call last):
      ...
    mercurial.error.InputError: no migration bar.001 on the target
    >>> try:
    ...     resolve(listing, b'foo', b'0001')
    ... except error.InputError as exc:
    ...     print(exc.message.decode(), '--', exc.hint.decode())
    no migration foo.0001 on the target -- see python manage.py showmigrations foo
    """
    if target == ZERO:
        return ZERO
    for name, _done in listing.get(app, []):
        if name == target or name.startswith(target + b'_'):
            return name
    raise error.InputError(
        _(b"no migration %s.%s on the target")
        % (app, target),
        hint=_(b'see python manage.py showmigrations %s') % app)


def explicit(values):
    """Parse ``--migration APP.NNNN`` values into ``{app: target}``.

    >>> explicit([b'bar.0002', b'foo.zero', b'baz.0003_c'])
    {b'bar': b'0002', b'foo': b'zero', b'baz': b'0003_c'}
    >>> explicit([b'bar.0002', b'bar.0001'])  # the last one given wins
    {b'bar': b'0001'}
    >>> explicit([])
    {}

    The part after the dot is a number (maybe with the rest of the name)
    or ``zero``:

    >>> for value in (b'bar', b'bar.latest', b'0002', b'bar.0002.x', b'1bar.0002'):
    ...     try:
    ...         explicit([value])
    ...     except error.InputError as exc:
    ...         print(exc.message.decode())
    malformed --migration value 'bar'
    malformed --migration value 'bar.latest'
    malformed --migration value '0002'
    malformed --migration value 'bar.0002.x'
    malformed --migration value '1bar.0002'
    """
    targets = {}
    for value in values:
        m = _EXPLICIT.match(value)
        if not m:
            raise error.InputError(
                _(b"malformed --migration value '%s'") % value,
                hint=_(b'expected APP.NNNN (for example bar.0007) or APP.zero'))
        targets[m.group('app')] = m.group('target')
    return targets


def irreversible(output):
    """The migration Django refused to reverse, from its output, or None."""
    m = _IRREVERSIBLE.search(output)
    return m and m.group('migration')


def progress(output):
    """What a ``migrate`` run did, from Django's output.

    ``(done, current)``: the migrations applied (or unapplied) to the end,
    ``app.name`` in order, and the one it was in when it stopped (None).
    ``None`` when the output is not Django's (another framework, ``-v 0``).

    >>> progress(b'Operations to perform:\\n  Apply all migrations: bar\\n'
    ...          b'Running migrations:\\n  Applying bar.0004_x... OK\\n'
    ...          b'  Applying bar.0005_y...Traceback (most recent call last):')
    ([b'bar.0004_x'], b'bar.0005_y')
    >>> progress(b'Operations to perform:\\n  Apply all migrations: bar\\n'
    ...          b'Running migrations:\\n  No migrations to apply.\\n')
    ([], None)
    >>> progress(b'done') is None
    True
    """
    if not _MIGRATE_OUTPUT.search(output):
        return None
    done, current = [], None
    for line in output.splitlines():
        m = _APPLYING.match(line)
        if not m:
            continue
        name = b'%s.%s' % (m.group('app'), m.group('name'))
        if m.group('ok'):
            done.append(name)
            current = None
        else:
            current = name
    return done, current


def advance(state, applied):
    """``state`` after applying ``applied`` (``app.name``, in order).

    >>> advance({b'bar': b'0003_c', b'foo': b'zero'}, [b'foo.0001_a', b'bar.0004_d'])
    {b'bar': b'0004_d', b'foo': b'0001_a'}
    """
    state = dict(state)
    for name in applied:
        app, migration = name.split(b'.', 1)
        state[app] = migration
    return state


def appliedsince(state, listing):
    """The migrations applied in ``listing`` after ``state``, ``app.name``.

    What a ``migrate`` whose output is not Django's (``-v 0``, a wrapper
    script) applied, from the state read before it and the listing after.

    >>> appliedsince({b'bar': b'0001_a', b'foo': b'zero'},
    ...              {b'bar': [(b'0001_a', True), (b'0002_b', True)],
    ...               b'foo': [(b'0001_x', True)], b'new': [(b'0001_n', True)]})
    [b'bar.0002_b', b'foo.0001_x', b'new.0001_n']
    """
    done = []
    for app, entries in listing.items():
        names = [name for name, _applied in entries]
        before = state.get(app, ZERO)
        start = names.index(before) + 1 if before in names else 0
        done.extend(b'%s.%s' % (app, name)
                    for name, applied in entries[start:] if applied)
    return done


def differences(listing, wanted):
    """How the database (``listing``) differs from the ``wanted`` state.

    A list of ``app.name still applied`` / ``app.name missing``; empty when
    they agree.

    >>> listing = {b'bar': [(b'0001_a', True), (b'0002_b', True), (b'0003_c', False)]}
    >>> differences(listing, {b'bar': b'0001_a'})
    [b'bar.0002_b still applied']
    >>> differences(listing, {b'bar': b'0003_c'})
    [b'bar.0003_c missing']
    >>> differences(listing, {b'bar': b'0002_b', b'gone': b'zero'})
    []
    """
    found = []
    for app, want in sorted(wanted.items()):
        migrations = listing.get(app)
        if migrations is None:
            continue  # an app the code no longer has: nothing to compare
        names = [name for name, _done in migrations]
        keep = 0 if want == ZERO else (
            names.index(want) + 1 if want in names else len(names))
        for name, done in migrations[:keep]:
            if not done:
                found.append(b'%s.%s missing' % (app, name))
        for name, done in migrations[keep:]:
            if done:
                found.append(b'%s.%s still applied' % (app, name))
    return found


# Asks Django whether a migration could stop halfway: it is not atomic, or
# the database has no transactional DDL (MySQL).  Names are \w+ (from
# Django's own output), so they go into the code as they are.
_PROBE = (
    b"from django.db import connections as c;"
    b"from django.db.migrations.loader import MigrationLoader as L;"
    b"d=c['default'];m=L(d,ignore_no_migrations=True).disk_migrations"
    b".get(('%s','%s'));"
    b"print('envdeploy-probe', int(bool(d.features.can_rollback_ddl)),"
    b" int(bool(getattr(m,'atomic',True))))"
)
_PROBED = re.compile(br'^envdeploy-probe ([01]) ([01])$', re.M)
_NAME = re.compile(br'^\w+\.\w+$')


def probecommand(env, name):
    """The command asking Django about migration ``name``, or None."""
    manage = _django(env)
    if not manage or not _NAME.match(name):
        return None
    app, migration = name.split(b'.', 1)
    return b'%s shell -c %s' % (manage, quote(_PROBE % (app, migration)))


def parseprobe(output):
    """Whether the probed migration may have stopped halfway, or None."""
    m = _PROBED.search(output)
    if not m:
        return None
    ddl, atomic = m.group(1) == b'1', m.group(2) == b'1'
    return not (ddl and atomic)
