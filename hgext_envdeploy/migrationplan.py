# migrationplan.py - the migrations a deploy or a rollback runs, known ahead
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Which migrations a run brings, and whether they can be undone.

Worked out from the local repository alone, before any host is touched:
the migration files are the ``APP/migrations/NAME.py`` files of a
changeset's manifest (the app label is the directory holding
``migrations/``, as Django's default ``AppConfig.label``), and their source
is read with :mod:`ast` -- no Django needed here.  A deploy from the
deployed changeset to the target applies the files the target adds; a
rollback reverts the ones the database has and the older code lacks,
with the files of the code still checked out.

Each migration gets flags (:data:`FLAGS`):

``irreversible``  Django cannot unapply it: RunPython without
                  ``reverse_code``, RunSQL without ``reverse_sql``
``nonatomic``     ``atomic = False`` (on the migration or a RunPython): a
                  failure can leave part of it in the database
``destructive``   old code still running breaks on it: RemoveField,
                  DeleteModel, RenameField, RenameModel, AlterModelTable,
                  RunSQL that drops or renames
``unknown``       the source cannot be read, or has an operation this
                  module does not know: never silently safe
"""

import ast
import re

from mercurial.i18n import _
from mercurial import error, node as nodemod

IRREVERSIBLE = b'irreversible'
NONATOMIC = b'nonatomic'
DESTRUCTIVE = b'destructive'
UNKNOWN = b'unknown'
FLAGS = (IRREVERSIBLE, NONATOMIC, DESTRUCTIVE, UNKNOWN)

# Django's module loader skips names starting with _ or ~ (__init__ too).
_FILE = re.compile(
    br'(?:^|/)(?P<app>[A-Za-z_]\w*)/migrations/(?P<name>[A-Za-z0-9]\w*)\.py$')

# Every operation Django ships (django.db.migrations.operations and
# django.contrib.postgres.operations); all reversible unless said below.
_KNOWN = frozenset('''
    CreateModel DeleteModel RenameModel AlterModelTable AlterModelTableComment
    AlterUniqueTogether AlterIndexTogether AlterOrderWithRespectTo
    AlterModelOptions AlterModelManagers AddIndex RemoveIndex RenameIndex
    AddConstraint RemoveConstraint AlterConstraint AddField RemoveField
    AlterField RenameField RunSQL RunPython SeparateDatabaseAndState
    CreateExtension BloomExtension BtreeGinExtension BtreeGistExtension
    CITextExtension CryptoExtension HStoreExtension TrigramExtension
    UnaccentExtension AddIndexConcurrently RemoveIndexConcurrently
    CreateCollation RemoveCollation AddConstraintNotValid ValidateConstraint
'''.split())
_DESTRUCTIVE = frozenset(
    'RemoveField DeleteModel RenameField RenameModel AlterModelTable'.split())
_DROPS = re.compile(r'\b(DROP\s+(TABLE|COLUMN|VIEW)|RENAME)\b', re.I)


def _opname(call):
    """``RunPython`` for ``migrations.RunPython(...)`` or ``RunPython(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _arg(call, index, keyword):
    """The argument at ``index`` or named ``keyword``; None when absent."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if len(call.args) > index:
        return call.args[index]
    return None


def _isnone(node):
    return node is None or (isinstance(node, ast.Constant)
                            and node.value is None)


def _strings(node):
    """The string literals in ``node`` (an SQL argument)."""
    if node is None:
        return []
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _operations(nodes, found, state=False):
    """Flag the operation calls in ``nodes`` into ``found``."""
    for op in nodes:
        if not isinstance(op, ast.Call) or _opname(op) is None:
            found.setdefault(UNKNOWN, 'an operation that is not a call')
            continue
        name = _opname(op)
        if name not in _KNOWN:
            found.setdefault(UNKNOWN, 'custom operation %s' % name)
            continue
        if state:
            continue  # state only: nothing happens in the database
        if name == 'RunPython':
            if _isnone(_arg(op, 1, 'reverse_code')):
                found.setdefault(IRREVERSIBLE, 'RunPython without reverse_code')
            atomic = _arg(op, 2, 'atomic')
            if isinstance(atomic, ast.Constant) and atomic.value is False:
                found.setdefault(NONATOMIC, 'RunPython with atomic=False')
        elif name == 'RunSQL':
            if _isnone(_arg(op, 1, 'reverse_sql')):
                found.setdefault(IRREVERSIBLE, 'RunSQL without reverse_sql')
            if any(_DROPS.search(s) for s in _strings(_arg(op, 0, 'sql'))):
                found.setdefault(DESTRUCTIVE, 'RunSQL drops or renames')
        elif name == 'SeparateDatabaseAndState':
            for index, keyword in ((0, 'database_operations'),
                                   (1, 'state_operations')):
                value = _arg(op, index, keyword)
                if value is None:
                    continue
                if not isinstance(value, (ast.List, ast.Tuple)):
                    found.setdefault(UNKNOWN, '%s not a list' % keyword)
                    continue
                _operations(value.elts, found, state=index == 1)
        elif name in _DESTRUCTIVE:
            found.setdefault(DESTRUCTIVE, name)


def analyse(source):
    """``{flag: why}`` for a migration's source (bytes or str).

    >>> analyse(b'''
    ... from django.db import migrations
    ... class Migration(migrations.Migration):
    ...     operations = [migrations.AddField("bar", "x", None)]
    ... ''')
    {}
    >>> sorted(analyse(b'''
    ... from django.db import migrations
    ... class Migration(migrations.Migration):
    ...     atomic = False
    ...     operations = [
    ...         migrations.RunPython(forward),
    ...         migrations.RemoveField(model_name="bar", name="x"),
    ...     ]
    ... ''').items())
    [(b'destructive', 'RemoveField'), (b'irreversible', 'RunPython without reverse_code'), (b'nonatomic', 'atomic = False')]

    A reverse, even a no-op one, makes it reversible; ``None`` does not:

    >>> analyse(b'''class Migration:
    ...     operations = [RunPython(f, RunPython.noop), RunSQL("x", reverse_sql="y")]''')
    {}
    >>> analyse(b'''class Migration:
    ...     operations = [RunSQL("ALTER TABLE t DROP COLUMN c", reverse_sql=None)]''')
    {b'irreversible': 'RunSQL without reverse_sql', b'destructive': 'RunSQL drops or renames'}

    What cannot be read is ``unknown``, never safe:

    >>> analyse(b'class Migration(:')
    {b'unknown': 'cannot parse: invalid syntax (line 1)'}
    >>> analyse(b'OPS = []')
    {b'unknown': 'no Migration class'}
    >>> analyse(b'class Migration:\\n    operations = make()')
    {b'unknown': 'operations is not a list'}
    >>> analyse(b'class Migration:\\n    operations = [MyOperation()]')
    {b'unknown': 'custom operation MyOperation'}
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        text = getattr(exc, 'msg', None) or str(exc)
        line = getattr(exc, 'lineno', None)
        return {UNKNOWN: 'cannot parse: %s%s'
                % (text, ' (line %d)' % line if line else '')}
    classes = [n for n in tree.body
               if isinstance(n, ast.ClassDef) and n.name == 'Migration']
    if not classes:
        return {UNKNOWN: 'no Migration class'}
    found = {}
    operations = None
    for stmt in classes[-1].body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if 'atomic' in names:
            if not isinstance(value, ast.Constant):
                found[NONATOMIC] = 'atomic is not a literal'
            elif not value.value:
                found[NONATOMIC] = 'atomic = False'
        if 'operations' in names:
            operations = value
    if operations is None:
        return found  # Django's default: no operations
    if not isinstance(operations, (ast.List, ast.Tuple)):
        found[UNKNOWN] = 'operations is not a list'
        return found
    _operations(operations.elts, found)
    return found


class Migration:
    """One migration: ``app``, ``name``, ``flags`` (in :data:`FLAGS`
    order) and ``why`` (one reason per flag)."""

    def __init__(self, app, name, found):
        self.app = app
        self.name = name
        self.flags = [f for f in FLAGS if f in found]
        self.why = [found[f].encode('utf-8') for f in self.flags]

    @property
    def key(self):
        return b'%s.%s' % (self.app, self.name)

    @property
    def reversible(self):
        """True, False, or None (not known)."""
        if IRREVERSIBLE in self.flags:
            return False
        return None if UNKNOWN in self.flags else True

    def describe(self):
        """``bar.0005_x [irreversible: RunPython without reverse_code]``."""
        if not self.flags:
            return self.key
        return b'%s [%s]' % (self.key, b', '.join(
            b'%s: %s' % (f, w) for f, w in zip(self.flags, self.why)))

    def entry(self):
        """What -T json and the journal keep."""
        return {'app': self.app, 'name': self.name, 'flags': self.flags}

    def __repr__(self):
        return '<Migration %s %s>' % (self.key.decode(), self.flags)


def files(ctx):
    """``{(app, name): path}`` of the migration files in ``ctx``."""
    found = {}
    for path in ctx.manifest():
        if not path.endswith(b'.py') or b'migrations/' not in path:
            continue
        m = _FILE.search(path)
        if m:
            found[(m.group('app'), m.group('name'))] = path
    return found


def _read(ctx, path):
    try:
        return ctx[path].data()
    except (error.LookupError, error.ManifestLookupError, IOError):
        return None


def flagged(ctx, app, name, path):
    """The :class:`Migration` of ``path`` in ``ctx``."""
    source = _read(ctx, path) if path is not None else None
    if source is None:
        found = {UNKNOWN: 'no source in %s' % ctx.hex()[:12].decode()}
    else:
        found = analyse(source)
    return Migration(app, name, found)


def _changeset(repo, node):
    """The changeset ``node`` (hex, None for the empty working copy), or
    None when this repository does not have it."""
    unfi = repo.unfiltered()
    if node is None or node == nodemod.nullhex:
        return unfi[nodemod.nullrev]
    try:
        binary = nodemod.bin(node)
    except (TypeError, ValueError):
        return None
    if not unfi.changelog.hasnode(binary):
        return None
    return unfi[binary]


class Plan:
    """The migrations going from one changeset to another.

    ``applies``: those the target adds, oldest first by app; ``removes``:
    those only the deployed changeset has (a deploy going backwards, or
    a rollback: they are reverted with the newer code).  ``known`` is
    False when this repository lacks one of the changesets: then nothing
    is known, and nothing is claimed.
    """

    def __init__(self, applies=(), removes=(), known=True, fromnode=None,
                 tonode=None):
        self.applies = list(applies)
        self.removes = list(removes)
        self.known = known
        self.fromnode = fromnode
        self.tonode = tonode

    def blocker(self, migrations=None):
        """The migration a rollback of ``migrations`` (default: those
        applied) stops at: the newest irreversible, else the newest one
        not known to be reversible; None when none."""
        migrations = self.applies if migrations is None else migrations
        newestfirst = list(reversed(migrations))
        for m in newestfirst:
            if m.reversible is False:
                return m
        for m in newestfirst:
            if m.reversible is None:
                return m
        return None

    @property
    def reversible(self):
        """Whether undoing this plan's migrations is possible: True,
        False, or None (not known)."""
        if not self.known:
            return None
        blocker = self.blocker()
        return True if blocker is None else blocker.reversible

    def flagged(self, flag):
        return [m for m in self.applies if flag in m.flags]

    def entries(self):
        return [m.entry() for m in self.applies]

    def record(self):
        """The journal's ``plan`` field (see journal.py)."""
        blocker = self.blocker()
        return {
            'applies': self.entries(),
            'reversible': self.reversible,
            'blocker': blocker.key if blocker is not None else None,
        }


def between(repo, fromnode, tonode):
    """The :class:`Plan` from ``fromnode`` to ``tonode`` (hex; None for
    the empty working copy)."""
    old, new = _changeset(repo, fromnode), _changeset(repo, tonode)
    if old is None or new is None:
        return Plan(known=False, fromnode=fromnode, tonode=tonode)
    before, after = files(old), files(new)
    applies = [flagged(new, app, name, after[(app, name)])
               for app, name in sorted(set(after) - set(before))]
    removes = [flagged(old, app, name, before[(app, name)])
               for app, name in sorted(set(before) - set(after))]
    return Plan(applies, removes, fromnode=fromnode, tonode=tonode)


def reverting(repo, atnode, names):
    """The :class:`Migration` objects of ``names`` (``app.name``, in the
    order they are unapplied), read from the code at ``atnode`` (which
    runs the unapply).  Unknown when that changeset is not here."""
    ctx = _changeset(repo, atnode)
    where = files(ctx) if ctx is not None else {}
    found = []
    for key in names:
        app, name = key.split(b'.', 1)
        if ctx is None:
            found.append(Migration(app, name, {
                UNKNOWN: 'changeset %s not in this repository'
                % (atnode or b'?')[:12].decode()}))
            continue
        found.append(flagged(ctx, app, name, where.get((app, name))))
    return found


def refusal(plan):
    """The Abort ``irreversible = refuse`` raises for ``plan``, or None."""
    blocker = plan.blocker()
    if blocker is None or not plan.known:
        return None
    return error.Abort(
        _(b'refusing to deploy: %s %s; this deploy could not be rolled '
          b'back') % (blocker.key, b'cannot be reversed'
                      if blocker.reversible is False
                      else b'may not be reversible (%s)' % blocker.why[-1]),
        hint=_(b'--irreversible deploys anyway (irreversible = refuse)'))
