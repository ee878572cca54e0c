# flow.py - the steps of a deploy and of a rollback, in one place
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The named steps of every run: the one list that the deploy, the
automatic rollback of a failed deploy, ``hg envrollback``, the dry run and
the help read.

A deploy first *reaches* every host (connect, enter ``path``, lock, read
the state; nothing changes anywhere until every host was reached).  Then,
batch by batch (``serial``), the hosts go through the PHASES in order: a
phase runs on its hosts in parallel and ends when all of them are done.
Within a phase, a host runs its STEPS in order.  A host already at the
changeset (clean, and deployed there by the journal) runs only the steps
marked ``converged`` (unless ``--redeploy``).  ``ENV.before.STEP`` and
``ENV.after.STEP`` (:data:`USERSTEPS`) are steps of their own, around the
step they name and in its phase.

When the deploy failed, UNDO runs on the hosts it changed (the failure
path, ``onfailure = rollback``); then, on every host, the end: journal the
outcome, unlock.  ``hg envrollback`` is ROLLBACK after the same reach.

Which function carries out a step is the layout's business (deploy.py's
:class:`~.deploy.InPlace`): the names, the order and the hosts are here.
"""

from mercurial.i18n import _

ALL = 'all'
MIGRATORS = 'migrators'  # the host migrating each database (migrateon)
OTHERS = 'others'  # the hosts sharing a database they do not migrate


class Step:
    """A named step: the phase it runs in, whether a host already
    deployed runs it, and whether the user wrote it (before./after.)."""

    __slots__ = ('name', 'phase', 'converged', 'user')

    def __init__(self, name, phase, converged=False, user=False):
        self.name = name
        self.phase = phase
        self.converged = converged
        self.user = user

    def __repr__(self):
        return '<Step %s in %s>' % (self.name.decode(), self.phase.decode())


# The deploy, per batch: (phase, progress topic, the hosts it runs on).
PHASES = (
    (b'begin', _(b'preparing'), ALL),
    (b'migrate', _(b'migrating'), MIGRATORS),
    (b'update', _(b'updating'), OTHERS),  # once their database was migrated
    (b'publish', _(b'reloading'), ALL),
)

# The deploy's steps, in order, each in its phase.
BUILTIN = (
    Step(b'edits', b'begin'),  # manual edits saved as a patch (onedits)
    Step(b'pull', b'begin'),  # skipped when the changeset is there
    Step(b'update', b'migrate'),  # journals the run as begun, written ahead
    Step(b'migrate', b'migrate'),  # reads the migration state around it
    Step(b'update', b'update'),
    Step(b'reload', b'publish'),
    Step(b'check', b'publish', converged=True),
)

# The steps a user can add commands before and after (ENV.before.STEP).
HOOKABLE = (b'update', b'migrate', b'reload', b'check')
USERSTEPS = tuple(b'%s.%s' % (when, name)
                  for name in HOOKABLE for when in (b'before', b'after'))


def _withuser(steps):
    out = []
    for step in steps:
        if step.name not in HOOKABLE:
            out.append(step)
            continue
        for name, user in ((b'before.' + step.name, True), (step.name, False),
                           (b'after.' + step.name, True)):
            out.append(Step(name, step.phase, step.converged, user))
    return tuple(out)


STEPS = _withuser(BUILTIN)

# The failure path of a deploy (onfailure = rollback): (step, hosts).
UNDO = (
    (b'unmigrate', MIGRATORS),  # this deploy's migrations, with the new code
    (b'update', ALL),  # the code back
    (b'reload', ALL),
    (b'check', ALL),
)

# hg envrollback, after every host was reached and agreed: (phase, hosts).
ROLLBACK = (
    (b'begin', _(b'preparing'), ALL),  # edits saved, journaled as begun
    (b'unmigrate', _(b'unmigrating'), MIGRATORS),
    (b'code', _(b'rolling back'), ALL),  # update, reload, check
)

# The steps that put the code back (UNDO and ROLLBACK's code phase).
RESTORE = tuple(name for name, hosts in UNDO if hosts == ALL)


def phasesteps(phase):
    """The STEPS of ``phase``, in order.

    >>> [s.name for s in phasesteps(b'begin')]
    [b'edits', b'pull']
    >>> [s.name for s in phasesteps(b'publish')]  # doctest: +NORMALIZE_WHITESPACE
    [b'before.reload', b'reload', b'after.reload',
     b'before.check', b'check', b'after.check']
    """
    return [s for s in STEPS if s.phase == phase]


def hostsof(phase):
    for name, topic, hosts in PHASES:
        if name == phase:
            return hosts
    raise KeyError(phase)


def describe():
    """The deploy's steps as the help lists them: phase by phase.

    >>> print(describe().decode())
    edits, pull; update, migrate (on the migration host); update (on the other hosts); reload, check
    """
    where = {ALL: b'', MIGRATORS: _(b' (on the migration host)'),
             OTHERS: _(b' (on the other hosts)')}
    return b'; '.join(
        b', '.join(s.name for s in BUILTIN if s.phase == phase) + where[hosts]
        for phase, topic, hosts in PHASES)
