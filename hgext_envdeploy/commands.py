# commands.py - the hg commands of the extension
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Thin command wrappers: parse options, call the deploy logic, report.

Only this module and configitems.py load with the extension; the logic is
imported when a command runs, so plain hg commands stay as fast as without
the extension.
"""

import atexit
import gc
import importlib

from mercurial.i18n import _
from mercurial import cmdutil, demandimport, error, pycompat, registrar

cmdtable = {}
command = registrar.command(cmdtable)


def logic(name):
    """Import one of our modules, and all it imports, for real.

    Deploys run hosts in threads, and a module left lazy by Mercurial's
    demandimport, first touched by two threads at once, can look empty to
    one of them ("module has no attribute").
    """
    _freezeatexit()
    with demandimport.deactivated():
        return importlib.import_module('.' + name, __package__)


_frozen = []


def _freezeatexit():
    """At interpreter exit, spare the last garbage collection.

    After a deploy (paramiko, cryptography, threads) the collection that
    ends the interpreter takes 50-60 ms, for memory the process is about to
    give back anyway.  atexit runs only when the process ends, so chg and
    the command server, whose process outlives the command, are unaffected.
    """
    if not _frozen:
        _frozen.append(True)
        atexit.register(gc.freeze)


def withrepofile(ui, repo, hook=False):
    """``ui`` with the repository's ``.hgenvironments`` under its hgrc."""
    return logic('repofile').attach(ui, repo, hook)


def machineoutput(ui, opts):
    """With -T (any template), keep stdout for the formatter's output only.

    Progress, host lines and notes then go to stderr, as Mercurial's own
    ``ui.message-output = stderr`` sends them, so that ``-T json | jq``
    reads one document.  The command server keeps its message channel.
    """
    if opts.get('template') and ui.config(b'ui', b'message-output') == b'stdio':
        ui.setconfig(b'ui', b'message-output', b'stderr', b'envdeploy')


# The options of every command that changes hosts.
changeopts = (
    [(b'', b'break-lock', False,
      _(b'remove a deploy lock left by a dead deploy (DANGEROUS)'))]
    + cmdutil.dryrunopts
    + cmdutil.formatteropts
)


@command(
    b'envdeploy',
    [
        (b'r', b'rev', b'', _(b'deploy this changeset of the branch'), _(b'REV')),
        (b'', b'check', False,
         _(b'check everything a deploy needs, change nothing (as envcheck)')),
        (b'f', b'force', False,
         _(b'deploy even when a host would go backwards')),
        (b'', b'irreversible', False,
         _(b'deploy even when it could not be rolled back '
           b'(irreversible = refuse)')),
        (b'', b'redeploy', False,
         _(b'run every step, also on a host already at the changeset')),
        (b'', b'untested', False,
         _(b'deploy even what promotefrom has not run (journaled)')),
    ]
    + changeopts,
    _(b'[-r REV] [-f] [--redeploy] [--untested] [--irreversible] '
      b'[-n | --check] [--break-lock] [-T TEMPLATE] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envdeploy(ui, repo, env, **opts):
    """deploy the head of an environment's branch to its hosts

    On every host of ENV (in parallel, at most ``[envdeploy] concurrency``
    at a time, one SSH connection each; on this machine when ENV has no
    hosts): take the deploy lock, save manual edits of the target's working
    copy as a patch under its ``.hg/envdeploy/patches/`` (``hg import
    --no-commit PATCH`` brings them back), and the untracked files the
    update would replace beside it, pull the changeset, ``hg update -C`` to
    it, run ``migrate``, ``reload`` and ``check``, and append what happened
    to the target's journal.

    The changeset is the single head of the environment's branch in this
    repository, or REV, which must be on that branch.  A host already at
    that changeset, with a clean working copy and a journal record of that
    deploy, only runs ``check``; --redeploy runs every step there too
    (after a change to ``local_settings.py`` or to the server).
    ``before.STEP`` and ``after.STEP`` add steps of your own (see
    :hg:`help -e hgext_envdeploy`); ``onedits = refuse`` stops a deploy
    to a host with manual edits before any host changes.

    Every host is reached and locked before any changes.  When a host
    fails, no further host starts and, with ``onfailure = rollback`` (the
    default), every host this deploy changed is rolled back: migrations,
    then code, then reload.  ``serial`` and ``maxfail`` make rolling
    deploys.

    A host at a changeset this repository does not have (pull first), or
    at a descendant of the changeset to deploy, would go backwards: the
    deploy stops before any host changes, naming those hosts.  --force
    deploys anyway (also with -r on an older changeset); :hg:`envrollback`
    is the way back on purpose.  A host on another line (a sibling head,
    another branch) is an ordinary deploy.

    Before any host changes, the migrations the deploy applies are read
    from this repository (the files under each app's ``migrations/`` in the
    deployed and the new changeset) and listed with their flags:
    ``irreversible``, ``nonatomic``, ``destructive``, ``unknown``; with
    whether the deploy could be rolled back.  ``irreversible = refuse``
    stops such a deploy unless --irreversible.  A failed deploy that
    applied an irreversible migration is not rolled back: every host stays
    at the new changeset with its schema.  ``backup`` runs on the migration
    host before migrate, when there is a migration to apply.

    With -n/--dry-run, show each host's current revision and the steps the
    real run would take with their commands (only ``check`` on a host
    already deployed), the manual edits it would save, the migrations it
    would apply with their flags, and a pull that would fail because the
    changeset is not in the host's source (then it exits non-zero); change
    nothing.  With --check, run the pre-flight checks of :hg:`envcheck`
    instead.

    With ``ENV.promotefrom = OTHER``, the changeset must have exactly the
    files of one deployed with success to OTHER (as this repository's
    records, else OTHER's journals, know it); otherwise the deploy is
    refused, naming the files that differ from OTHER's last deployed
    changeset.  --untested deploys it anyway, and the journal says so.

    Exits 0 when every host succeeded; otherwise aborts naming each failed
    host and step, after showing the end of the failing command's output.
    """
    ui = withrepofile(ui, repo)
    machineoutput(ui, opts)
    if opts.get('check'):
        return logic('preflight').envcheck(
            ui, repo, env, rev=opts.get('rev'), opts=pycompat.byteskwargs(opts))
    return logic('deploy').deployenv(
        ui, repo, env, rev=opts.get('rev'), dryrun=opts.get('dry_run'),
        breaklock=opts.get('break_lock'), opts=pycompat.byteskwargs(opts),
        force=opts.get('force'), redeploy=opts.get('redeploy'),
        untested=opts.get('untested'),
        irreversible=opts.get('irreversible'),
    )


@command(
    b'envrollback',
    [
        (b'', b'to', b'', _(b'return to this journal record (see hg envlog)'),
         _(b'ID')),
        (b'r', b'rev', b'', _(b'return to this changeset'), _(b'REV')),
        (b'', b'migration', [],
         _(b'migration target, as APP.NNNN or APP.zero (with -r or --to)'),
         _(b'APP.NNNN')),
        (b'f', b'force', False,
         _(b'roll back even when the hosts disagree or one cannot be read')),
        (b'', b'restore', False,
         _(b'restore the database backup of the deploy instead of '
           b'reverting migrations (asks first)')),
    ]
    + changeopts,
    _(b'[--to ID | -r REV [--migration APP.NNNN]...] [-f] [--restore] [-n] '
      b'[--break-lock] [-T TEMPLATE] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envrollback(ui, repo, env, **opts):
    """return an environment to an earlier deployment

    On every host of ENV: revert the database migrations to the state the
    earlier deployment left (while the current code, which holds the
    migration files, is still checked out), then ``hg update -C`` to that
    deployment's changeset, then run ``reload`` and ``check``.  The journal
    gets a ``rollback`` record.

    Without options, the target is the deployment before the current one in
    each host's journal (rolling back twice goes two deployments back).
    ``--to ID`` picks a journal record; ``-r REV`` a changeset (resolved
    here to its full hash); ``--migration APP.NNNN`` (repeatable, e.g.
    ``bar.0007`` or ``bar.zero``) sets migration targets explicitly.

    All hosts are locked and read first.  When their journals disagree on
    the target, or a host cannot be read, nothing changes unless --force.
    A migration that cannot be reversed (read from this repository's copy
    of the deployed changeset) stops the rollback before any host changes,
    naming it.  --restore runs ``restore`` for the backup the deploy being
    rolled back made (``backup``), after asking, in place of reverting the
    migrations.

    With -n/--dry-run, show per host which migrations would be unapplied, in
    which order, and the target changeset; change nothing.
    """
    ui = withrepofile(ui, repo)
    machineoutput(ui, opts)
    return logic('rollback').rollbackenv(
        ui, repo, env, rev=opts.get('rev'), toid=opts.get('to'),
        migration=opts.get('migration'), force=opts.get('force'),
        dryrun=opts.get('dry_run'), breaklock=opts.get('break_lock'),
        opts=pycompat.byteskwargs(opts), restore=opts.get('restore'),
    )


@command(
    b'envmerge',
    [
        (b'', b'into', b'', _(b'the environment to merge into'), _(b'ENV')),
        (b'm', b'message', b'', _(b'commit message (default: "Merging '
                                   b'FEATURE into ENV")'), _(b'TEXT')),
        (b'u', b'user', b'', _(b'record the merge as committed by USER'),
         _(b'USER')),
        (b't', b'tool', b'', _(b'merge tool for conflicts'), _(b'TOOL')),
        (b'', b'no-push', False, _(b'commit the merge but do not push it')),
        (b'', b'deploy', False, _(b'deploy ENV after the push')),
    ]
    + cmdutil.dryrunopts
    + cmdutil.formatteropts,
    _(b'FEATURE --into ENV [-m TEXT] [-u USER] [-t TOOL] [--no-push] '
      b'[--deploy] [-n] [-T TEMPLATE]'),
    helpcategory=command.CATEGORY_CHANGE_MANAGEMENT,
)
def envmerge(ui, repo, feature, **opts):
    """merge a feature into an environment's branch and push it

    FEATURE is a named branch (its single head), a bookmark, or any
    revision.  The merge goes into the branch of ENV (``ENV.branch``):
    update to its head, merge FEATURE, commit ``Merging FEATURE into ENV``
    (or -m TEXT), then push that branch to ``ENV.pushto``, else
    ``default-push`` or ``default``.  The working copy then goes back to
    where it was (parent, branch name, active bookmark).

    Refuses to start with uncommitted changes or an unfinished merge,
    rebase, histedit or graft.  When FEATURE is already merged, says so and
    does nothing.  On conflicts that the merge tool (-t, or your
    configuration) does not resolve, the merge is abandoned, the working
    copy is left exactly as it was, and the conflicting files are listed.
    When the push fails (somebody pushed to ENV meanwhile), the merge
    commit stays here and is named; nothing is forced.

    With --deploy, deploy ENV after the push (or at once when FEATURE was
    already merged), as ``hg envdeploy ENV`` does; its exit status counts.
    With -n/--dry-run, list the changesets and files that would be merged
    and whether the merge would conflict (tried in memory with Mercurial's
    internal merge), and change nothing.

    ``-T json`` gives one item: ``feature``, ``featurenode``, ``env``,
    ``branch``, ``merge`` (the merge changeset, empty when FEATURE was
    merged already: ``merged``), ``pushed``, ``dest`` and, with --deploy,
    ``hosts``: the deploy's items as ``hg envdeploy -T json`` gives them.
    The item is written when the push or the deploy fails too.
    """
    machineoutput(ui, opts)
    envname = opts.get('into')
    if not envname:
        raise error.InputError(_(b'which environment? use --into ENV'))
    ui = withrepofile(ui, repo)
    return logic('merge').envmerge(
        ui, repo, feature, envname, message=opts.get('message'),
        user=opts.get('user'), tool=opts.get('tool'),
        push=not opts.get('no_push'), deploy=opts.get('deploy'),
        dryrun=opts.get('dry_run'), opts=pycompat.byteskwargs(opts),
    )


@command(
    b'envstatus',
    [
        (b'', b'migrations', True,
         _(b'read the migrations not yet applied (--no-migrations skips)')),
    ]
    + cmdutil.formatteropts,
    _(b'[-v] [--no-migrations] [-T TEMPLATE] [ENV]...'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envstatus(ui, repo, *envs, **opts):
    """show what is deployed on each host, and what the next deploy brings

    For every environment (or those named), per host: the deployed
    changeset and who deployed it when (from the target's journal), how
    many changesets of the branch head here are not deployed yet, manual
    edits in the target's working copy (listed with -v), a deploy lock and
    its holder, and, when ``migrate`` runs Django's ``manage.py``, the
    migrations not applied.  Hosts are read in parallel; an unreachable
    host is shown as such.

    ``-T json`` gives one item per host with the fields ``env``, ``host``,
    ``reachable``, ``error``, ``node`` (deployed changeset, empty when never
    deployed), ``desc``, ``targetbranch``, ``deployedat``, ``deployedby``,
    ``branchhead``, ``pending`` (changesets not deployed; null when
    unknown), ``newmigrations`` (migration files they add), ``dirty``
    (edited files), ``locked`` (holder, or empty) and ``migrations`` (not
    applied; null when not read).

    Exits 0 whatever the hosts' state; non-zero only when the command
    itself cannot run (unknown environment, configuration error).  Without
    names, an environment whose configuration is malformed is skipped with
    a warning naming the file and line, the others are shown, and the exit
    code is 1; commands naming another environment are not affected.
    """
    ui = withrepofile(ui, repo)
    machineoutput(ui, opts)
    return logic('status').envstatus(ui, repo, list(envs),
                                     pycompat.byteskwargs(opts))


@command(
    b'envlog',
    [
        (b'l', b'limit', 0, _(b'show at most NUM runs'), _(b'NUM')),
        (b'', b'host', b'', _(b'read only this host'), _(b'HOST')),
    ]
    + cmdutil.formatteropts,
    _(b'[-l NUM] [--host HOST] [-T TEMPLATE] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envlog(ui, repo, env, **opts):
    """show the deploy history of an environment

    Reads the journal of every host of ENV (in parallel) and shows each run
    once, newest first, with every host's result: kind (deploy, rollback,
    automatic rollback), who, when, from and to changeset, outcome,
    duration, and the migrations applied or reverted.

    ``-T json`` gives one item per run: ``id``, ``env``, ``kind``, ``user``,
    ``client``, ``started``, ``finished``, ``duration``, ``from``, ``to``,
    ``outcome``, ``applied``, ``reverted`` and ``hosts`` (a list of
    ``host``, ``outcome``, ``failed``, ``message``, ``from``, ``to``,
    ``duration``, ``patch``, ``rollback``).
    """
    machineoutput(ui, opts)
    opts = pycompat.byteskwargs(opts)
    ui = withrepofile(ui, repo)
    return logic('envlog').envlog(ui, repo, env, limit=opts.get(b'limit'),
                                  hostname=opts.get(b'host'), opts=opts)


@command(
    b'envsetup',
    cmdutil.dryrunopts + cmdutil.formatteropts,
    _(b'[-n] [-T TEMPLATE] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envsetup(ui, repo, env, **opts):
    """prepare the hosts of a new environment

    On every host of ENV: where ``path`` does not exist, clone ``source``
    there (default: this repository's ``default`` path) and update it to
    the head of the environment's branch; where it exists, check that it is
    a clone of this project.  Then check the files a deploy needs that are
    not under version control (``requiredfiles``), and upload
    ``localsettings`` where it is missing (never over an existing file).

    Never migrates nor reloads; running it again changes nothing.  With
    -n/--dry-run, say what it would do.  Exits non-zero when a host still
    needs attention.

    ``-T json`` gives one item per host: ``env``, ``host``, ``status`` (ok,
    failed), ``dryrun``, ``changes``, ``notes`` and ``problems`` (a list of
    ``check``, ``message``, ``hint``).
    """
    ui = withrepofile(ui, repo)
    machineoutput(ui, opts)
    return logic('provision').envsetup(ui, repo, env,
                                       dryrun=opts.get('dry_run'),
                                       opts=pycompat.byteskwargs(opts))


@command(
    b'envcheck',
    cmdutil.formatteropts,
    _(b'[-T TEMPLATE] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envcheck(ui, repo, env, **opts):
    """check that every host of an environment is ready for a deploy

    Checks, changing nothing, and reports every problem at once: the host
    is reachable and its key known, ``hg`` runs there (its version), ``path``
    is a clone of this project, the changeset to deploy can be pulled from
    the source, the ``requiredfiles`` are present, the deploy lock is free,
    the working copy has no manual edits, and the migration state can be
    read on the host that migrates (``migrate.state``, or Django's
    ``showmigrations``; read-only), so that a ``migrate`` that cannot start
    (no Python, an ImportError, the short PATH of an SSH session) fails
    here rather than in the deploy.

    ``-T json`` gives one item per check: ``env``, ``host``, ``check``,
    ``status`` (ok, failed, skipped), ``message``, ``hint``.

    Exits 1 when a check failed.
    """
    ui = withrepofile(ui, repo)
    machineoutput(ui, opts)
    return logic('preflight').envcheck(ui, repo, env,
                                       opts=pycompat.byteskwargs(opts))


@command(
    b'envlock',
    [(b'm', b'message', b'', _(b'why (shown to every deploy refused)'),
      _(b'REASON'))],
    _(b'-m REASON ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envlock(ui, repo, env, **opts):
    """freeze an environment: refuse every deploy and rollback of it

    Records on every host of ENV (``.hg/envdeploy/freeze`` in the target
    repository) who froze it, when, and REASON.  Until :hg:`envunlock`
    lifts it, every deploy and rollback of ENV (:hg:`envdeploy`,
    :hg:`envrollback`, :hg:`envmerge` --deploy, push to deploy, in the
    background too) is refused before any host changes, with that reason.
    --break-lock does not lift a freeze.  A deploy already running
    finishes.  :hg:`envstatus` and :hg:`envcheck` show the freeze.

    A host already frozen keeps its freeze (and who set it).  Exits
    non-zero when a host could not be frozen (a deploy is refused while
    any host is frozen).
    """
    return logic('freeze').envlock(ui, repo, env, opts.get('message'))


@command(
    b'envunlock',
    [],
    _(b'ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envunlock(ui, repo, env, **opts):
    """lift the freeze of an environment (see :hg:`envlock`)

    Removes the freeze from every host of ENV, saying who had set it and
    why.  Exits non-zero when a host could not be reached: it stays
    frozen, and deploys stay refused.
    """
    return logic('freeze').envunlock(ui, repo, env)


@command(
    b'envexec',
    [
        (b'', b'host', b'', _(b'only this host'), _(b'HOST')),
        (b'', b'role', b'', _(b'only the hosts of this role'), _(b'ROLE')),
        (b'i', b'interactive', False,
         _(b'an interactive session on one host (needs a terminal)')),
    ],
    _(b'[--host HOST | --role ROLE] [-i] ENV -- COMMAND [ARG]...'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envexec(ui, repo, env, *command, **opts):
    """run a command on the hosts of an environment

    Runs COMMAND in ``path`` on every host of ENV (or HOST, or the hosts
    of ROLE) in parallel, with the environment's ``env.NAME`` values,
    and prints its output line by line, prefixed by the host.  The values
    named in ``secret`` are masked (``***``) in the output and the
    journal.

    Several arguments are quoted one by one, as every value the extension
    sends; a single argument is a command line of your own and runs as
    written (``hg envexec live -- 'python manage.py showmigrations |
    grep -v X'``).  Put ``--`` before COMMAND, so that its options are
    not read as hg's.

    With -i, on one host and from a terminal, the command gets a terminal
    of its own (a pty) and your keyboard, for ``manage.py shell`` or
    ``createsuperuser``.

    Each host's journal records the run (kind ``exec``): who, the command
    with the secrets masked, its exit status.  No deploy lock is taken.

    Exits 0 when the command succeeded on every host; with one host, its
    exit status; otherwise 1.
    """
    return logic('envexec').envexec(
        ui, repo, env, list(command), hostname=opts.get('host'),
        role=opts.get('role'), interactive=opts.get('interactive'))


@command(
    b'debugenvautodeploy',
    [(b'', key, b'', _(b"the push's %s, for the journal") % key)
     for key in (b'hook', b'source', b'url', b'pusher', b'username')],
    _(b'[--hook H --source S --url U --pusher P --username N] ENV NODE'),
)
def debugenvautodeploy(ui, repo, env, node, **opts):
    """deploy NODE to ENV as a push's autodeploy does (internal)

    What ``autodeploy = background`` runs detached after a push: wait for
    the earlier autodeploys of ENV from this repository, skip if the
    branch has moved on past NODE since (a later push deploys it), else
    deploy NODE, and record the outcome in ``.hg/envdeploy/autodeploy.log``.

    Exits 0 when deployed or skipped, 1 when the deploy failed.
    """
    # Field names are str in journal records (see journal.py).
    trigger = {k: v for k, v in opts.items() if v}
    # Run for a push, in the central repository: a push's file is trusted
    # as the hook trusts it.
    ui = withrepofile(ui, repo, hook=True)
    return int(logic('hooks').autodeploy(ui, repo, env, node,
                                         trigger or None))
