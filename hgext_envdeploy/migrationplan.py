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


# -- the plan in a run (deploy.py and rollback.py call these, one line each)

POLICIES = (b'warn', b'refuse')
BACKUPS = b'.hg/envdeploy/backups'
SKIPPED = b'skipped'  # journal: a rollback not attempted (see keepforward)


def _setting(run, key):
    from . import config

    return config.envconfig(run.ui, run.env.name, key)


def _blockertext(m):
    if m.reversible is False:
        return _(b'%s cannot be reversed') % m.key
    return _(b'%s may not be reversible (%s)') % (m.key, m.why[-1])


def plandeploy(run, results):
    """Before any host changes: each database's plan, said; the policy.

    Called in the run's own thread (the repository is not for several
    threads).  Sets ``result.plan`` (the journal's field) on every host
    and ``run.plans`` (migration host spec -> :class:`Plan`).  With
    ``irreversible = refuse`` and no ``--irreversible``, releases every
    host and raises error.Abort: nothing changed.
    """
    run.plans = {}
    env = run.env
    if not env.migrate:
        return
    for r in results:
        if r.state is None or run.migrator(r) is not r:
            continue
        plan = run.plans[r.host.spec] = between(run.repo, r.state.parent,
                                                run.node)
        _sayplan(run, r, plan)
    for r in results:
        plan = run.plans.get(run.migrator(r).host.spec)
        if plan is not None:
            r.plan = plan.record()
    refused = [(r, refusal(run.plans[r.host.spec])) for r in results
               if r.host.spec in run.plans and refusal(run.plans[r.host.spec])]
    if not refused or run.irreversible:
        return
    if _setting(run, b'irreversible') != b'refuse':
        return
    run.refuse(results,
               _(b'not started: the deploy could not be rolled back'))
    raise refused[0][1]


def _sayplan(run, result, plan):
    host = result.host
    if not plan.known:
        run.say(host, _(b'migrations: not known here (%s is not in this '
                        b'repository)') % (plan.fromnode or b'?')[:12],
                'warn')
        return
    if not plan.applies:
        run.say(host, _(b'migrations: none to apply'), 'note')
        return
    run.say(host, _(b'migrations to apply:'))
    for m in plan.applies:
        run.say(host, b'  %s' % m.describe())
    blocker = plan.blocker()
    if blocker is None:
        run.say(host, _(b'this deploy can be rolled back'))
    else:
        run.say(host, _(b'this deploy cannot be rolled back past %s: %s')
                % (blocker.key, _blockertext(blocker)), 'warn')
    env = run.env
    destructive = plan.flagged(DESTRUCTIVE)
    if destructive and len(env.hosts) > 1 and (env.serial
                                              or not env.migrateall):
        run.say(host, _(b'destructive migrations while other hosts still '
                        b'run the old code (%s): %s')
                % (_(b'serial') if env.serial else _(b'one database'),
                   b', '.join(m.key for m in destructive)), 'warn')


def finalnote(ui, run):
    """The deploy's last line when it cannot be rolled back past a
    migration (``irreversible = warn``)."""
    for plan in sorted(getattr(run, 'plans', {}).values(),
                       key=lambda p: p.tonode or b''):
        blocker = plan.blocker()
        if blocker is not None and plan.known:
            ui.warn(_(b'%s: this deploy cannot be rolled back past %s\n')
                    % (run.env.name, _blockertext(blocker)))
            return


def fmdata(fm, result):
    """-T json's ``newmigrations`` and ``reversible`` for a host."""
    plan = result.plan or {}
    return {
        'newmigrations': fm.formatlist(
            [{b'app': e['app'], b'name': e['name'],
              b'flags': fm.formatlist(e['flags'], name=b'flag')}
             for e in plan.get('applies') or []], name=b'migration'),
        'reversible': plan.get('reversible'),
    }


def keepforward(run, undo):
    """A failed deploy that applied an irreversible migration: no partial
    rollback.  Every host stays at the new changeset with its schema,
    said and recorded (``rollback.outcome: skipped``).  True when so."""
    for r in undo:
        if r.migrations.get('backup'):
            run.say(r.host, backupnote(run, r.migrations['backup']), 'warn')
    blockers = []
    for r in undo:
        plan = run.plans.get(r.host.spec)
        applied = set(r.migrations.get('applied') or ())
        if plan is None or not applied:
            continue
        done = [m for m in plan.applies if m.key in applied]
        blocker = plan.blocker(done)
        if blocker is not None and blocker.reversible is False:
            blockers.append(blocker)
    if not blockers:
        return False
    updated = lambda r: any(s['name'] == b'update' and s['status'] == 0
                            for s in r.steps)
    behind = [r.host.name for r in undo if not updated(r)]
    message = _(b'not rolled back: %s cannot be reversed; %s is at %s with '
                b'its schema') % (blockers[0].key,
                                  _(b'every host') if not behind
                                  else _(b'every updated host'),
                                  run.node[:12])
    if behind:
        message += _(b' (not updated: %s)') % b', '.join(behind)
    for r in undo:
        r.rollback = {'to': r.fromnode, 'steps': [], 'reverted': [],
                      'outcome': SKIPPED, 'message': message,
                      'at': run.node if updated(r) else r.fromnode}
        run.say(r.host, message, 'warn', b'envdeploy.failed')
    return True


# -- the backup before migrating


def backuppath(run):
    return b'%s/%s/%s' % (run.env.path.rstrip(b'/'), BACKUPS, run.id)


def backupnote(run, path):
    """What every failure and rollback message says of the run's backup."""
    text = _(b'database backup made before migrating: %s') % path
    if _setting(run, b'restore'):
        text += _(b' (to restore: hg envrollback %s --restore)') % run.env.name
    return text


def backup(run, result):
    """On the migration host, right before migrate: ``ENV.backup``, when
    this deploy applies a migration (or cannot tell).  Fails closed: a
    failing backup, or an empty file, fails the step before migrate."""
    from .shell import quote
    from .target import StepFailed

    command = _setting(run, b'backup')
    plan = run.plans.get(result.host.spec)
    if not command or (plan is not None and plan.known and not plan.applies):
        return
    path = backuppath(run)
    keep = _setting(run, b'backup.keep')
    script = (
        b'mkdir -p %(dir)s && ENVDEPLOY_BACKUP="$PWD"/%(rel)s sh -c %(cmd)s '
        b'&& if [ -s %(rel)s ]; then :; else echo "envdeploy: the backup '
        b'left no file, or an empty one: %(rel)s" >&2; exit 1; fi '
        b'&& ls -1t %(dir)s | tail -n +%(next)d | '
        b'while read f; do rm -f %(dir)s/"$f"; done'
        % {b'dir': BACKUPS, b'rel': quote(b'%s/%s' % (BACKUPS, run.id)),
           b'cmd': quote(command), b'next': keep + 1})
    try:
        result.session.step(result, b'backup', script,
                            run.printer(result.host))
    except StepFailed as exc:
        exc.message = _(b'backup failed: nothing migrated')
        exc.hint = _(b'fix ENV.backup (%s) or unset it') % command
        raise
    result.migrations['backup'] = path


def lastbackup(records, node):
    """The backup of the newest deploy to ``node`` that made one, or None."""
    for record in reversed(records):
        if record.get('kind') == b'deploy' and record.get('to') == node:
            found = (record.get('migrations') or {}).get('backup')
            if found:
                return found
    return None


# -- a rollback: the blocker, or the restore


def planrollback(run, results):
    """Before any host changes (``_agree``): name the migration that would
    stop the rollback; with ``--restore``, check there is a backup and
    ask.  A blocked host fails at ``plan``, so nothing changes anywhere."""
    for r in results:
        if r.outcome != b'planned' or run.migrator(r) is not r:
            continue
        if run.restore:
            _planrestore(run, r)
            continue
        names = [b'%s.%s' % (app, n) for app, _m, undo in r.unapplying
                 for n in undo]
        if not names:
            continue
        undo = reverting(run.repo, r.fromnode, names)
        for m in undo:
            if m.flags:
                run.say(r.host, b'  %s' % m.describe())
        blocker = Plan().blocker(list(reversed(undo)))
        if blocker is None:
            continue
        if blocker.reversible is False:
            hint = _(b'roll back to a deployment after it (--to, or -r with '
                     b'--migration)')
            path = run.backups.get(r.host.spec)
            if path and _setting(run, b'restore'):
                hint = _(b'hg envrollback %s --restore restores %s instead') % (
                    run.env.name, path)
            r.fail(b'plan', _(b'%s: the rollback would stop there; nothing '
                              b'changed') % _blockertext(blocker), hint=hint)
        else:
            run.say(r.host, _(b'warning: %s') % _blockertext(blocker), 'warn')


def _planrestore(run, r):
    path = run.backups.get(r.host.spec)
    if not _setting(run, b'restore'):
        r.fail(b'plan', _(b'--restore given, but %s.restore is not set')
               % run.env.name)
    elif not path:
        r.fail(b'plan', _(b'no backup recorded for the deploy of %s')
               % (r.fromnode or b'(empty)')[:12])
    elif run.dryrun:
        run.say(r.host, _(b'would restore %s instead of reverting '
                          b'migrations') % path)
    elif not run.confirm(r.host, _(b'restore the database from %s, '
                                   b'replacing what is there now') % path):
        r.fail(b'plan', _(b'restore not confirmed: nothing changed'))


def restore(run, result):
    """``ENV.restore`` for the backup, in place of reverting migrations."""
    from . import migrations
    from .shell import quote

    path = run.backups[result.host.spec]
    script = b'ENVDEPLOY_BACKUP=%s sh -c %s' % (
        quote(path), quote(_setting(run, b'restore')))
    result.session.step(result, b'restore', script, run.printer(result.host))
    result.migrations['restored'] = path
    listing = result.session.migrations()
    if listing is not None:
        result.migrations['after'] = migrations.latest(listing)
