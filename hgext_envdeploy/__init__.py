# hgext_envdeploy - branch per environment, push to deploy
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""deploy named branches to the environments they stand for

Each environment (``staging``, ``live``, ...) is a named branch deployed to
one or more hosts: ``hg envdeploy ENV`` brings every host of ENV to the head
of that branch, runs the database migrations, reloads the web server, checks
its health, and writes what it did in a journal on the target.

To enable it::

  [extensions]
  hgext_envdeploy =

Environments
============

Environments are declared in ``[environments]``, one ``ENV.KEY`` per line.
Any key may also be given in ``[envdeploy]``, as the default for every
environment::

  [envdeploy]
  migrate = python manage.py migrate --noinput

  [environments]
  staging.hosts = deploy@staging.example.com
  staging.path = /srv/staging/project
  staging.reload = touch mysite/wsgi.py
  live.hosts = deploy@web1.example.com, deploy@web2.example.com:2222
  live.path = /srv/live/project
  live.check = curl -fsS http://localhost/health/

``branch``
  The named branch deployed (default: the environment's name).

``hosts``
  ``[user@]host[:port]`` entries separated by commas or spaces.  Without
  hosts the environment is local: it runs on this machine, in ``path``,
  without SSH (the quickest way to try the extension, and the real set-up
  when the central repository and the web application share a server).

``path``
  The repository on the target (required).  It must already exist: clone
  it there once, or let ``hg envsetup ENV`` do it.

``source``
  What the target pulls from (default: the target repository's own
  ``default`` path, as a plain ``hg pull`` there would).

``migrate``, ``reload``, ``check``
  Shell commands run in ``path`` on the target after the update, in this
  order; an empty value skips the step.  They are the administrator's and
  run as written (each in its own ``sh -c``).  ``check`` is a health check:
  its failure fails the deploy.  They see ``HGPLAIN=1``.  ``migrate`` runs
  on one host only: see ``migrateon``.

  Every step (and hg itself, with its hooks) also sees the run:
  ``ENVDEPLOY_NODE`` (the full hash being deployed, or rolled back to),
  ``ENVDEPLOY_ENV``, ``ENVDEPLOY_BRANCH``, ``ENVDEPLOY_HOST`` (as written
  in ``hosts``; ``local``), ``ENVDEPLOY_ROLE`` (empty without a role),
  ``ENVDEPLOY_ID`` (the run's id, as ``hg envlog`` and the journal show it)
  and ``ENVDEPLOY_RELEASE`` (with ``layout = releases``, the release
  directory the step runs in; empty in place; a deploy's hg, which makes
  the new release without a second start, sees that release from its
  first command, the pull's hooks included).

``layout``
  ``inplace`` (default): ``path`` is the working copy that serves, updated
  in place.  ``releases``: ``path`` holds ``repo`` (the clone, without a
  working copy; the journal and the lock are in its ``.hg``),
  ``releases/ID`` (each deploy's working copy, made with ``hg share`` from
  ``repo``, the share extension enabled for it only; ID is the run's id),
  ``shared/`` (files kept across releases) and ``current`` (a symlink to
  the live release: point the web server and its workers there).  The
  update step makes the new release; ``migrate`` runs from it; then
  ``current`` is switched to it atomically (a new symlink renamed over the
  old one, ``mv -T``) before ``before.reload`` and ``reload``.  A deploy
  failing before the switch changed nothing live (its migrations are
  reverted from the new release).  After the switch, the automatic
  rollback and ``hg envrollback`` revert the migrations from the newer
  release, then switch ``current`` back to the earlier release still on
  disk: no update, no pull (one no longer there is made again).  Manual
  edits are looked for in the live release and saved as a patch; nothing
  is discarded there.  ``hg envrollback`` starts no hg on the target: it
  reads the live release's changeset from the file the deploy that made it
  wrote, and leaves that release on disk as it is, its edits not looked
  for (the journal's ``dirty`` is null); ``keep`` saves them as a patch
  before it removes that release.  ``hg envsetup`` creates the layout, or
  converts an in-place clone (its ``.hg`` becomes ``repo``, its changeset
  the first release, ``linked`` files move to ``shared``; the old files
  stay for the web server to be pointed at ``current`` first), saying what
  it does, under the deploy lock (a deploy holding it stops the conversion).
  ``requiredfiles`` and ``localsettings`` are in ``shared/``.  The journal
  records each run's ``release``; ``hg envstatus`` shows the live one
  (``release``) and the releases on disk (``releases``), ``hg envlog``
  each run's, ``hg envcheck`` the live release and its changeset (a
  ``current`` missing or pointing nowhere fails), and ``hg envdeploy -n``
  the release it would make, the switch and what ``keep`` would remove.

``linked``
  With ``layout = releases``: paths (relative to a release) linked into
  each new release from ``shared/``, as ``local_settings.py media
  db.sqlite3``.

``keep``
  With ``layout = releases``: releases kept on disk (default 5); older ones
  are removed after a successful deploy, never the live one nor the one a
  rollback would return to.  One a rollback left without looking at its
  manual edits has them saved as a patch first (a warning names it).

``check.timeout``, ``check.interval``
  Seconds the check is tried for (default 0: once), and between tries
  (default 2).  A reload is mostly asynchronous: it returns before the new
  workers serve, and a check run at once is answered by an old worker, or
  by nobody.  With a timeout the check runs again until it passes or the
  time is up; each failed try is shown with its reason; only when the time
  is up does the deploy fail (and roll back, whose check waits the same).

  A check proves that the reload took when it compares the revision the
  application serves with the one deployed.  Let the application read its
  revision once, when a worker starts (a module constant: the working
  copy's parent, or a file the ``reload`` writes from ``$ENVDEPLOY_NODE``),
  and report it on a health view; then::

    live.reload = kill -HUP $(cat /run/gunicorn.pid)
    live.check = r=$(curl -fsS http://127.0.0.1:8000/health/) || exit;
      [ "$r" = "$ENVDEPLOY_NODE" ] || { echo "serving $r"; exit 1; }
    live.check.timeout = 30

  Reloads that do not take: gunicorn with ``preload_app`` imports the
  application in its master, and HUP forks new workers from it with the old
  code: restart it fully, or send USR2 (a new master, with the new code;
  the old one's pid file becomes ``gunicorn.pid.oldbin``), then TERM to
  the old master once the new one serves (gunicorn's QUIT is a quick
  shutdown, unlike unicorn's and nginx's).  uWSGI's chain reload
  (``touch-chain-reload = FILE``, or ``c`` written to its master FIFO)
  replaces one worker at a time, each with the new code.  ``systemctl
  reload`` waits for the unit's ``ExecReload`` only, which mostly sends
  a signal and returns: check with a timeout as for HUP.

``before.STEP``, ``after.STEP``
  Commands of your own, run in ``path`` before or after STEP, for STEP in
  ``update``, ``migrate``, ``reload``, ``check``.  Each is a step of its
  own, named as its key (``before.migrate``) in the output, the dry run,
  ``-T json`` (``steps``) and the journal; it fails the deploy as any step
  does, with the automatic rollback.  It runs on the hosts STEP runs on
  (``before.migrate``: the migration host only) and, around ``check``, on
  a host already deployed too.  With roles, ``before.STEP.ROLE`` is that
  role's own (an empty value: none).

  A deploy's steps, phase by phase (every host of a phase in parallel):
  edits, pull; update, migrate (on the migration host); update (on the
  other hosts); reload, check.  A host already at the changeset, clean and
  deployed there by its journal, runs only ``check`` (``--redeploy``: all
  of them).  A failed deploy then reverts the migrations on the migration
  host, the code, reload and check (``onfailure``).  For example, for
  every environment (in the envdeploy section)::

    before.migrate = .venv/bin/pip install -r requirements.txt
    after.migrate = .venv/bin/python manage.py collectstatic --noinput

``onedits``
  What a deploy does with manual edits in a target's working copy:
  ``save`` (default) keeps them as a patch under ``.hg/envdeploy/patches/``
  and updates anyway; ``refuse`` stops the deploy before any host changes,
  naming the hosts and files (the dry run says the same).

``migrateon``
  The host whose ``migrate`` migrates the environment's one database (a
  host as written in ``hosts``, or a role: its first host).  Reading the
  migration state and every migration rollback run there too, never two
  at once.  Default: the first host.  ``all``: every host migrates its own
  database (a SQLite file per host, say).

``hosts.ROLE``, ``reload.ROLE``, ``check.ROLE``
  Hosts with a role, and the commands that role's hosts run instead of
  ``reload`` and ``check`` (an empty value: none)::

    live.hosts.web = web1.example.com, web2.example.com
    live.hosts.worker = worker1.example.com
    live.reload.web = sudo systemctl reload gunicorn
    live.reload.worker = sudo systemctl restart celery
    live.check.worker =
    live.migrateon = web

  A host has one role at most; output, ``-T json`` (``role``), ``hg
  envstatus`` and the journal name it.  A role is letters, digits, ``-``
  and ``_``, and not ``all``, ``env``, ``interval``, ``rollback``,
  ``sources``, ``state`` or ``timeout``.

``hg``
  The hg executable on the target (default ``hg``; for a local
  environment, the hg running this command).  Non-interactive SSH sessions
  often have a short PATH: give an absolute path if ``hg`` is not found.

``identity``
  A private key file.  Otherwise ``~/.ssh/config`` (``HostName``, ``User``,
  ``Port``, ``IdentityFile``, ``ProxyCommand``, ``ProxyJump``,
  ``ForwardAgent``) and ssh-agent apply, as they do for the ``ssh``
  command.  An encrypted key is used through the agent (``ssh-add``): no
  passphrase is ever asked for or stored.

``forwardagent``
  ``true`` lends the target the deploying user's ssh-agent for the
  session, so that its ``hg pull`` from an ``ssh://`` source works without
  a key of its own on the server (default ``false``).

``transfer``
  How the changesets reach the target.  ``pull`` (default): the target
  runs ``hg pull`` from ``source``, so it needs read access to it.
  ``push``: this side asks the host which heads it has, bundles what it
  lacks of the changeset being deployed and its ancestors (never other
  branches' changesets), and sends the bundle through the deploy's own
  SSH session, where ``hg unbundle`` reads it: the server needs no deploy
  key, no agent, no access to any repository.  Deploys, ``envrollback -r``
  to a changeset the host lacks, ``envsetup`` (an empty repository, then
  the whole history of the branch head, with a progress bar) and push
  deploys from the central repository all send this way.  The host's
  ``default`` path is left as it was.

``serial``
  Deploy the hosts in batches of N hosts, or N% of them (``serial = 1``:
  one at a time); a batch starts only when the previous one succeeded.
  Default: all at once, ``concurrency`` at a time.

``maxfail``
  How many failed hosts are tolerated before the deploy stops (default 0:
  the first failure stops it).  Hosts never started are reported as
  untouched.

``pushto``
  Where ``hg envmerge`` pushes the environment's branch: a name from
  ``[paths]`` or a URL (default: ``default-push``, else ``default``).

``env.NAME``
  An environment variable exported to everything run on the targets
  (``migrate``, ``reload``, ``check`` and hg), for example
  ``live.env.DJANGO_SETTINGS_MODULE = mysite.settings.live``.  Values go
  through the SSH session, never on a command line.  ``[envdeploy]
  env.NAME`` gives every environment one; the environment's own wins.

``secret``
  Names of ``env.NAME`` values that are never shown: every output of the
  targets (steps, errors, ``-T``, background logs) has them replaced by
  ``***``, and they are never journaled.  Masking finds the value as
  written: a step that transforms it (encodes it, splits it) is beyond
  its reach.

``confirm``
  ``true``: ``hg envdeploy``, ``hg envrollback`` and ``hg envmerge
  --deploy`` show the plan (changeset, branch, hosts) and ask you to type
  the environment's name; anything else stops, nothing changed.  Without
  a terminal they abort, unless ``-y``: Mercurial's "never prompt" option
  sets ``ui.interactive`` to false, which is taken as the answer (so is
  ``[ui] interactive = false``, the same setting; ``--config
  ui.interactive=true`` reads the answer from a piped stdin).  envmerge
  asks before the merge, so a no leaves nothing merged or pushed.  Push
  deploys are never asked: ``autodeploy`` is that decision.  Default
  ``false``.

The environments in the repository: .hgenvironments
===================================================

A tracked file ``.hgenvironments`` at the repository's root, in hgrc
syntax with the same ``[environments]`` and ``[envdeploy]`` sections,
declares the environments with the code, reviewed and versioned with it.
The hgrc wins over it key by key: a key any hgrc sets, as ``ENV.KEY`` or
as the ``[envdeploy] KEY`` default, is not read from the file.  With
``--debug``, every command lists each value with its file and line
(``envdeploy: config: FILE:LINE: environments.staging.hosts=...``) and
names the file's values an hgrc overrides.

Which revision's file is read: in a repository with a working copy, the
working copy's (as a checkout's ``deploy.yml``), by every command,
``envstatus`` and ``envrollback`` included.  In a repository without one
(``hg clone -U``, a central repository), the file as of the head of the
environment's branch: the changeset a deploy brings.  The push hooks
always read the head the push brought (``postpush``, in a developer's
repository, reads the working copy).  A rollback reads the same file as a
deploy, not the file of the changeset it returns to: it goes back on the
hosts the environment has now.

In the hooks the file came with a push, and a push must not decide where
the central repository deploys: the file's ``hosts`` (and
``hosts.ROLE``), ``path``, ``identity``, ``source``, ``forwardagent``,
``autodeploy``, ``protect``, and ``[envdeploy]`` ``knownhosts``,
``hostkeys``, ``sshconfig`` and ``autodeploy.sources`` are ignored there,
with a warning naming them, and come from the central repository's hgrc
only, unless that hgrc sets ``[envdeploy] trustrepofile = true``.  The
commands, ``migrate``, ``reload``, ``check`` and the rest are read from
the file: they come with the code, as ``manage.py`` does.  A developer's
own commands use the whole file.  ``trustrepofile`` is never read from
the file, ``%include`` lines in it are not followed, and a secret's value
(``ENV.env.NAME`` for a NAME in ``secret``) in it is an error: it would
stay in the history; keep secrets in an hgrc.

Settings of the whole run, in ``[envdeploy]``:

``knownhosts``
  The known_hosts file (default ``~/.ssh/known_hosts``), read once a run.

``hostkeys``
  ``strict`` (default): an unknown or changed host key is refused.
  ``accept-new``: an unknown host's key is trusted and added to
  ``knownhosts``; a changed key is still refused.

``sshconfig``
  The OpenSSH client configuration read (default ``~/.ssh/config``). Where
  the ``ssh`` client is installed, each host's settings are what ``ssh -G
  HOST`` prints (``Include``, ``Match`` and ``IdentitiesOnly`` as OpenSSH
  applies them); without it, paramiko's parser reads the file.

``concurrency``
  How many hosts are deployed at once (default 8).

``locktimeout``
  Seconds a deploy waits for another deploy's lock on a host before it
  gives up, naming the holder (default 30).

``timeout``
  Seconds a host may stay silent during a step before it is reported as
  failed (default 600); ``connecttimeout`` (default 15) bounds connecting.

``grace``
  Seconds running steps get to finish after Ctrl-C (default 10).  No new
  host or step starts; the journal says ``interrupted``; every reachable
  host is unlocked.  A second Ctrl-C leaves at once (a step still running
  on a host unlocks that host when it ends).

``cmdserver``
  Whether a target's hg commands (reading its state, pull, update) run in
  one Mercurial command server (``hg serve --cmdserver pipe``) instead of
  one process each (default true): Python and Mercurial start once, not
  three times.  Where the target's ``hg`` cannot serve, each command runs
  as its own process anyway; ``false`` never tries.  With it, a
  ``migrate`` of the form ``PYTHON [DIR/]manage.py migrate [options]``
  reads the migration state and migrates in one Django, whose own modules
  the migration host imports while hg updates when the layout is in place
  (a process waiting on a socket in ``.hg/envdeploy``, readable by the
  deploy user only, that ends with the session); ``false`` starts Django
  twice, after the update.

``trustrepofile``
  ``true`` lets a pushed ``.hgenvironments`` decide, in the hooks, the
  keys it may not otherwise (hosts, paths, keys, source: see above).  Read
  from an hgrc only (default ``false``).

Merging into an environment
===========================

``hg envmerge FEATURE --into ENV`` merges a named branch (its single head),
a bookmark or any revision into ENV's branch: it updates to the branch's
head, merges, commits ``Merging FEATURE into ENV`` (or ``-m TEXT``), pushes
that branch to ``pushto`` and, with ``--deploy``, deploys ENV.  It refuses
to start on a dirty working copy or an unfinished operation, and always
puts the working copy back where it was (parent, branch name, active
bookmark).  Conflicts that the merge tool (``-t``) does not resolve
abandon the merge and list the files; a push that fails (someone pushed
to the branch meanwhile) keeps the merge commit here, named, and forces
nothing.  ``-n`` shows the changesets and files to merge and whether the
merge would conflict (tried in memory with an internal merge tool).
Without a terminal (stdin and stdout, and no ``-y``), no merge tool that
waits for a user is started: unless ``-t`` names one, the merge (and the
dry run's prediction) uses the internal ``:merge``, and conflicts abandon
the merge as above.  On a terminal, Mercurial picks the tool as for ``hg
merge`` (``ui.merge``, ``[merge-tools]``, ``HGMERGE``, vimdiff ...).

Guardrails
==========

``hg envlock ENV -m REASON`` freezes ENV: every host records (in
``.hg/envdeploy/freeze``) who froze it, when and why, and every deploy
and rollback of ENV (the commands, ``envmerge --deploy``, push to deploy,
background deploys) is refused before any host changes, naming them,
until ``hg envunlock ENV``.  The freeze is read with the deploy lock, so
a deploy that was waiting for the lock is refused too; one already
running finishes.  ``--break-lock`` does not lift a freeze.  ``hg
envstatus`` (``frozen`` in ``-T json``) and ``hg envcheck`` (check
``freeze``) show it.

``hg envexec ENV [--host HOST | --role ROLE] -- COMMAND [ARG]...`` runs
a command in ``path`` on the hosts (in parallel), with ``env.NAME``
exported and ``secret`` values masked, its output prefixed by the host
(``HOST: | LINE``).  Several arguments are quoted one by one; a single
one is your command line, run as written.  Exit status 0 when every host
succeeded; with one host, its status; else 1.  ``-i`` gives one host's
command a pty wired to your terminal (``manage.py shell``,
``createsuperuser``).  Each host's journal gets an ``exec`` record (who,
the command with secrets masked, the exit status); no lock is taken.

Where hg-evolve's ``topic`` extension is enabled, FEATURE may be a topic:
its single head is merged (a branch or bookmark of the same name wins).
envmerge aborts naming the heads when the topic has several, refuses while
it has unstable (orphan) changesets (``hg evolve`` first), and notes that
merging publishes the topic's changesets once pushed to a publishing
repository.

Push to deploy
==============

The central repository (the one everybody pushes to) can deploy an
environment as soon as changesets land on its branch::

  [extensions]
  hgext_envdeploy =

  [hooks]
  changegroup.envdeploy = python:hgext_envdeploy.hooks.changegroup

  [environments]
  staging.autodeploy = true

The hooks enable the extension themselves where the hgrc only names them
(as the ``acl`` extension's hook does), so the extensions section may leave
it out; ``hgext_envdeploy = !`` there keeps it off, and the hooks then
deploy nothing and reject every push (protect).

``autodeploy``
  ``false`` (default): only ``hg envdeploy`` deploys.  ``true``: a push
  that moves the head of the environment's branch deploys that head while
  the push waits; everything the deploy prints reaches the pusher (as
  ``remote:`` lines over SSH and HTTP), ending with one line per
  environment: deployed, skipped, or FAILED and why.  ``background``: the
  push starts the deploy detached and returns at once, naming the deploy's
  log file (under ``.hg/envdeploy/autodeploy/``, which keeps the newest
  50).

``autodeploy.sources``
  In ``[envdeploy]``: where changesets must come from to deploy (default
  ``serve push``: pushes over SSH or HTTP, and local pushes).  A pull or
  an unbundle into the central repository does not deploy.

The deploy is the one ``hg envdeploy ENV -r NODE`` does (locks, journal,
host key checks alike), run by the user the push runs as on the server;
its journal records also say which push started it (``trigger``: the
hook, where the push came from, and the pusher as the ``acl`` extension
finds it: the HTTP user, else the ssh login or the account serving an
anonymous push).  Their ``user`` is the pusher, or the pusher's own name
when the push carries it (``hg push --pushvars USER=NAME`` to a central
repository that sets ``push.pushvars.server = true``).
A failed deploy never undoes the push, and Mercurial only warns about a
failing changegroup hook (``hg push`` still exits 0): every outcome is
also appended to ``.hg/envdeploy/autodeploy.log`` in the central
repository.  The deploys of an environment take turns behind a lock there
(waiting up to ``[ui] timeout`` seconds); a deploy that waited while a
later push moved the branch on is skipped with a note, the later push's
deploy bringing the newer head.

Where no hook can be installed in the central repository (hosted
services), a developer's repository can deploy after its own pushes::

  [hooks]
  post-push.envdeploy = python:hgext_envdeploy.hooks.postpush

It deploys the autodeploy environments whose branch head the push
included, unless that head was already deployed from this repository.

Hooks and environments in an hgrc that the user running hg on the server
does not trust are ignored (``hg help config.trusted``): see ``[trusted]``
in the README.

Hooks around deploys and rollbacks
==================================

Deploys and rollbacks fire hooks on the machine that runs them, through
Mercurial's hook machinery (``hg help config.hooks``): shell and
``python:`` hooks alike, in ``[hooks]`` as ``NAME.SUFFIX``::

  [hooks]
  preenvdeploy.freeze = test ! -e /etc/no-deploys
  envdeploy.chat = curl -fsS -o /dev/null -d "$HG_ENV: $HG_OUTCOME" URL

``preenvdeploy``, ``preenvrollback``
  Before any host is touched.  A failing hook (non-zero exit, or a true
  return value) aborts the run with nothing changed anywhere.

``envdeploy``, ``envrollback``
  After the run, whatever its outcome (also after a failure or Ctrl-C).
  A failing hook only warns.

They fire for ``hg envdeploy``, ``hg envrollback``, ``hg envmerge
--deploy`` and push deploys (in the central repository, background mode
included); not for dry runs (``-n``, ``--check``).  The automatic rollback
of a failed deploy belongs to that deploy: its ``envdeploy`` hook says
``rolledback`` for the hosts that went back.  Shell hooks get these as
``HG_*`` variables (``HG_ENV``, ...), Python hooks as keyword arguments,
all bytes:

``env``, ``branch``
  The environment and its named branch.

``node``
  The changeset (full hash).  For ``preenvrollback`` only with ``-r``
  (otherwise each host's journal decides, read later; empty);
  ``envrollback`` gets the changesets the hosts went back to.

``hosts``
  The hosts of the environment, separated by spaces (``local`` for a local
  environment).

``runid``
  The run's id, as its journal records on the hosts have it (``hg envlog``).

``user``
  Who ran it (``ui.username``, as the journal says).

``trigger``
  ``command``, ``envmerge`` or ``push``; for a push also ``pusher`` and
  ``url`` (empty otherwise).

After the run, also:

``outcome``
  ``ok`` (every host deployed, or already at the changeset), ``failed``
  (at least one host did not end well, or the run was refused before any
  change, e.g. a host would go backwards) or ``interrupted`` (Ctrl-C).

``results``
  ``HOST=OUTCOME`` per host, separated by spaces, with the outcomes of the
  journal (``ok``, ``unchanged``, ``failed``, ``rolledback``, ``partial``,
  ``unreachable``, ``untouched``, ``interrupted``); empty when the run was
  refused as a whole (a host would go backwards).

``message``
  What the run failed with (the ``abort:`` line); empty on success.

The hooks' output goes to stderr, so that ``-T json`` keeps stdout for
data.  ``hgrc.example`` shows a chat notification with ``curl``.

Who may push to an environment
==============================

Who may push to ``live`` is for Mercurial's ``acl`` extension to decide
(``hg help acl``), in the central repository beside the deploy hook::

  [hooks]
  pretxnchangegroup.acl = python:hgext.acl.hook

  [acl]
  sources = serve

  [acl.groups]
  deployers = alice, carol

  [acl.deny.branches]
  live = !@deployers

A push that brings a changeset on ``live`` from anyone outside
``deployers`` is rejected whole: nothing stored, nothing deployed.  acl
knows the pusher over ssh by the login name (``LOGNAME``) of the hg
serving the push, over http by the web server's authenticated user; the
README shows how with a shared ssh account.

What acl cannot do is keep a branch at one head.  ``protect`` does::

  [hooks]
  pretxnchangegroup.envprotect = python:hgext_envdeploy.hooks.protect

  [environments]
  live.protect = true

``protect``
  ``true``: changesets (pushed, pulled or unbundled) that would leave the
  environment's branch with more than one open head are rejected whole,
  even after ``hg push --force``, naming the branch and its heads.  Closed
  heads do not count, and changesets on other branches always pass.
  Default ``false``.  A protected environment whose configuration cannot
  be read rejects every push until it is fixed.  With changeset evolution
  on a non-publishing repository, use ``pretxnclose.envprotect`` instead:
  it runs once the push's obsolescence markers are in, so an amended head
  replaces the old one.  ``pretxncommit.envprotect`` also stops commits
  made in the central repository itself.

Where changesets are deployed
=============================

Every deploy, rollback and ``hg envstatus`` run from a repository (and
every push deploy the central repository's hooks run) records in that
repository's ``.hg/envdeploy/records.jsonl`` what it learned: per
environment and host, the changeset there, when and by whom it was
deployed, and the run (format in ``records.py``; never a command, a
variable or a secret).  A dry run records nothing; envstatus records a
host only when what it sees differs.  Reading the records needs no
network:

``deployed([ENV])``
  Revset: the changesets last known deployed to ENV's hosts (to any
  environment without ENV).  ``hg log -r "only(staging, deployed(live))"``
  lists what live lacks of staging.

``pendingdeploy(ENV)``
  Revset: the changesets of the head of ENV's branch not yet on every host
  of ENV (all of them for a host with no record here).

``{envdeployed}``
  Template keyword: a list of ``env``, ``host``, ``date`` (UTC) and
  ``user`` (also ``kind`` and ``outcome``), shown as ``ENV@HOST
  YYYY-MM-DD``: ``hg log -G -T '{node|short} {envdeployed}\\n'`` shows
  ``live@web1 2026-12-02``; ``-T 'json(node, envdeployed)'`` gives the
  fields.  Plain ``hg log`` shows a ``deployed:`` line (label
  ``log.envdeployed``).

Hosts no longer in an environment's configuration are left out.  None of
it loads on hg commands that do not ask for it.

With the extension enabled for hgweb (``hg serve``, hgweb.wsgi), the page
``/environments`` lists every environment: its branch and head, the
changeset each host is last known at (when, by whom), the changesets not
deployed yet (linked to their pages) and the last runs; ``?style=json``
gives the same as data.  Changeset pages say where the changeset is
deployed.  It is drawn for the ``paper`` (and ``coal``) style, plainly in
the others; it runs no command and contacts no host.

``promotefrom``
  The environment this one promotes from (``live.promotefrom =
  staging``): ``hg envdeploy``, ``envmerge --deploy`` and the push hooks
  refuse a changeset whose files (its manifest) are not exactly those of a
  changeset deployed with success to it, as the records here know or, when
  they do not, its hosts' journals; the refusal names the files that
  differ and that environment's last deployed changeset.  ``hg envdeploy
  --untested`` deploys anyway, and the journal records it (``untested``).
  ``hg envstatus`` says whether the next deploy's changeset was tested
  there.

Setting up and looking at environments
======================================

``hg envsetup ENV`` prepares the hosts of a new environment: where
``path`` does not exist it clones ``source`` there (default: this
repository's ``default`` path; for a local environment without one, this
repository) and updates to the branch head; where it exists, it checks
that it is a clone of this project.  Then it checks ``requiredfiles`` and
uploads ``localsettings`` where it is missing.  It never migrates, reloads
or overwrites anything, so a second run changes nothing.

``hg envcheck ENV`` is the pre-flight check: host reachable with a known
key (never added to known_hosts, whatever ``hostkeys`` says), ``hg`` runs
there, ``path`` is a clone of this project, the changeset to deploy is in
the source the host pulls from, the required files are there, the lock is
free, the working copy clean, and the migration state readable where
``migrate`` runs (``migrate.state`` or ``showmigrations``, read-only), so
that a migrate that cannot start fails here, not in the deploy.  It
changes nothing, reports every problem
at once, and exits 1 when a check failed.

``hg envstatus [ENV]...`` shows, per host: the deployed changeset, who
deployed it and when, how many changesets the next deploy would bring (and
their new migrations), manual edits, a lock and its holder, and the
migrations not applied (``--no-migrations`` skips reading them).  ``hg
envlog ENV`` shows the journals of ENV's hosts, one entry per run, newest
first.  Both read the hosts in parallel and accept ``-T json``.

``requiredfiles``
  Files a deploy needs that are not under version control, relative to
  ``path``, separated by commas or spaces (e.g. ``local_settings.py``,
  which Django projects keep out of the repository in ``.hgignore``).

``localsettings``
  A file on this machine that ``hg envsetup`` uploads where it is missing
  (mode 600, never over an existing file, never printed): as the entry of
  ``requiredfiles`` with the same file name, else as the first entry, else
  as ``local_settings.py`` at the top of ``path``.

What a deploy does on each host
===============================

1. Takes the deploy lock ``.hg/envdeploy/lock`` in the target repository.
   It is held by the deploy's own shell session and released when that
   session ends, however it ends.  A lock whose holder process is gone is
   reported and taken over; a live one makes the deploy wait
   ``locktimeout`` seconds, then fail naming who holds it.
   ``--break-lock`` removes a lock by force, after showing its holder and
   asking (without a terminal, ``-y`` answers yes).
2. Records the target's revision and manual edits.  Before they are
   discarded, edits are saved as ``.hg/envdeploy/patches/ID.patch`` (``ID``
   is the run's id; binary files, modes, ``hg add``, ``hg rm`` and files
   deleted without it included), and the untracked or ignored files the
   update would replace by tracked ones into
   ``.hg/envdeploy/patches/ID/untracked/``; the deploy names both.  On the
   target, in the repository, ``hg import --no-commit
   .hg/envdeploy/patches/ID.patch`` brings every edit back (files added with
   ``hg add`` are moved to ``patches/ID/added/`` before the update, so that
   the import can create them again).
   When a host is at a changeset this repository does not have (pull
   first), or at a descendant of NODE (the deploy would go backwards),
   the deploy stops before any host changes, naming every such host;
   ``--force`` deploys anyway, and ``hg envrollback`` is the way back on
   purpose.  A host on another line (a sibling head, another branch) is
   deployed as usual.  The push hooks and ``envmerge --deploy`` never
   force: the refusal is their deploy's failure.
3. ``hg pull -r NODE [SOURCE]`` (skipped when the changeset is already
   there), then writes ahead in ``.hg/envdeploy/journal.jsonl`` that the
   run began (who, from which changeset to which, the saved patch): a
   session lost later still leaves a record, which ``hg envstatus`` and
   ``hg envcheck`` show as unfinished, and from which nothing is inferred.
4. On the migration host (``migrateon``) first: ``hg update -C -r NODE``,
   then, when ``migrate`` is set, reads the migration state with the new
   code (skipped when no file under a ``migrations`` directory changed and
   the last run recorded the state it left), journals it, and runs
   ``migrate``.  Only then ``hg update -C -r NODE`` on the other hosts, and
   ``reload`` and ``check`` everywhere (each host's role's own).  With
   ``serial``, the migration host is in the first batch.  A host already
   at NODE with a clean working copy and a journal record of that deploy
   only runs ``check``.  The hg commands share one hg process (see
   ``cmdserver``).
5. Once every host has finished its steps: if the deploy failed anywhere
   and ``onfailure = rollback``, every host this deploy changed is rolled
   back (see below), so the environment never keeps mixed versions.  When
   a host fails, no further host starts; a failed migration, or a failure
   of the migration host after it migrated, stops the deploy whatever
   ``maxfail`` says.
6. Completes the journal record (format 2, documented in ``journal.py``):
   each step's status and duration, the migrations applied and the state
   left (read, or carried forward), the outcome and any rollback; then
   unlocks.

Rollbacks and migrations
========================

``hg envrollback ENV`` returns every host of ENV to the deployment before
the current one in its journal (``--to ID`` picks a journal record, ``-r
REV`` a changeset, ``--migration APP.NNNN`` a migration target).  The order
is what makes it work: the migrations of every app whose state differs from
the one that deployment left are reverted first, while the current code
(which holds the migration files) is checked out; then ``hg update -C`` to
the older changeset; then ``reload`` and ``check`` (none after going back
to an empty working copy).  The migrations go back once, on the migration
host; then the code moves on every host.  A migration that cannot be
reversed stops the rollback before the code is touched, and the schema is
migrated forward again.  Where no migration file differs between the two
changesets and the journal says the database is where that deployment left
it, the state is carried, not read (no Django start), as a deploy carries
it forward.

After a failed ``migrate`` and after every migration rollback the state is
read again and compared with what was wanted.  Where they differ (a
migration with ``atomic = False`` that stopped halfway, MySQL's DDL outside
transactions, a partial run), the output says ``schema NOT restored`` and
names what is still applied or missing, and the journal records the
rollback as ``partial``: such a host is never reported as rolled back.
When the newest run on a host never finished, ``hg envrollback`` returns
to the code and schema recorded before that run.

``onfailure``
  ``rollback`` (default): when ``migrate``, ``reload`` or ``check`` fails
  during a deploy, roll back the failed host and every host the deploy had
  changed (migrations, then code, then reload).  ``stop``: leave the hosts
  as the failure found them.

``irreversible``
  ``warn`` (default) or ``refuse``.  Before any host changes, the
  migrations a deploy applies are read from this repository (the
  ``APP/migrations/*.py`` files of the deployed and the new changeset,
  parsed, no Django needed here) and flagged ``irreversible`` (RunPython
  without ``reverse_code``, RunSQL without ``reverse_sql``), ``nonatomic``
  (``atomic = False``), ``destructive`` (RemoveField, DeleteModel, a
  rename: old code on other hosts breaks on it) or ``unknown`` (cannot be
  read).  ``warn`` says in the plan and on the last line that the deploy
  cannot be rolled back past the migration; ``refuse`` aborts before any
  host changes unless ``--irreversible``.  A failed deploy that applied
  one is not rolled back: every host stays at the new changeset with its
  schema, and says so.

``backup``
  A command run on the migration host right before ``migrate``, only when
  the deploy applies a migration, with ``ENVDEPLOY_BACKUP`` set to a file
  under the target's ``.hg/envdeploy/backups/``, e.g. ``pg_dump -Fc -f
  "$ENVDEPLOY_BACKUP" "$PGDATABASE"``.  A failing backup, or an empty
  file, fails the deploy before anything is migrated.  The path is
  journaled and named when the deploy fails.

``backup.keep``
  How many backups stay on the host (default 5).

``restore``
  The command ``hg envrollback --restore`` runs (after asking) in place of
  reverting the migrations, with ``ENVDEPLOY_BACKUP`` set to the backup of
  the deploy rolled back, e.g. ``pg_restore --clean -d "$PGDATABASE"
  "$ENVDEPLOY_BACKUP"``.

``migrate.state``
  A command printing the migration state in Django's ``showmigrations``
  format.  Default: when ``migrate`` runs ``manage.py migrate``, the same
  ``manage.py showmigrations`` (so the same Python runs it); otherwise no
  state is recorded and rollbacks only revert code.

``migrate.rollback``
  A command reverting one app, with ``{app}`` and ``{migration}`` replaced
  by quoted values (``zero`` for none).  Default: ``manage.py migrate
  --noinput {app} {migration}`` as above.

Every value the extension puts into a command on the target (path,
revision, source) is quoted; the changeset is always passed as a full hash
resolved in this repository, so branch names never reach a shell.
"""

from mercurial import registrar

from . import commands, configitems

__version__ = '0.1.0'

testedwith = b'6.9 7.0 7.1 7.2'
minimumhgversion = b'6.9'
buglink = b'the maintainers of hgext_envdeploy (README.md, "Reporting bugs")'


def getversion():
    """The version ``hg version -v`` lists beside the extension."""
    return __version__.encode('ascii')

cmdtable = commands.cmdtable
configtable = configitems.configtable

colortable = {
    b'envdeploy.ok': b'green',
    b'envdeploy.failed': b'red bold',
    b'log.envdeployed': b'cyan',
}

# Where changesets are deployed (where.py, imported on first use: a plain
# hg command never loads it).
revsetpredicate = registrar.revsetpredicate()
templatekeyword = registrar.templatekeyword()


@revsetpredicate(b'deployed([env])', safe=True)
def deployedrevset(repo, subset, x):
    """Changesets last known deployed to environment ``env`` (to any
    environment without it), from this repository's deployment records
    (``.hg/envdeploy/records.jsonl``): one per host, as the last deploy,
    rollback or envstatus run from here left it.  No host is contacted.
    ``only(staging, deployed(live))`` is what live lacks of staging.
    """
    return commands.logic('where').deployed(repo, subset, x)


@revsetpredicate(b'pendingdeploy(env)', safe=True)
def pendingdeployrevset(repo, subset, x):
    """Changesets of the head of ``env``'s branch not yet deployed to
    every host of ``env``, as this repository's deployment records know it
    (all of them for a host with no record here).
    """
    return commands.logic('where').pendingdeploy(repo, subset, x)


@templatekeyword(b'envdeployed', requires={b'repo', b'ctx'})
def showenvdeployed(context, mapping):
    """List of dicts with ``env``, ``host``, ``date`` (UTC, ISO 8601) and
    ``user``: where this changeset is last known deployed, from this
    repository's deployment records.  Shown as ``ENV@HOST YYYY-MM-DD``.
    """
    return commands.logic('where').showenvdeployed(context, mapping)


def reposetup(ui, repo):
    """hg log's ``deployed:`` line, as a namespace read only when shown."""
    if not repo.local():
        return
    from mercurial import namespaces

    where = []  # the module, once imported

    def call(name):
        def lookup(*args):
            if not where:
                where.append(commands.logic('where'))
            return getattr(where[0], name)(*args)

        return lookup

    repo.names.addnamespace(namespaces.namespace(
        b'envdeployments', templatename=b'envdeployment',
        logname=b'deployed', colorname=b'envdeployed',
        listnames=call('names'), namemap=call('namemap'),
        nodemap=call('nodemap')))


def uisetup(ui):
    """hgweb's ``/environments`` page and the ``deployed`` row of its
    changeset pages (web.py, imported by the first such request)."""
    from mercurial import extensions
    from mercurial.hgweb import webcommands  # loaded by hg itself already

    if hasattr(webcommands, 'environments'):
        return  # hgwebdir loads extensions once per repository
    # hgweb calls the module's attribute named as the page (as the
    # highlight extension's highlightcss).
    webcommands.environments = webcommands.webcommand(b'environments')(
        _environmentspage)
    for name in ('changeset', 'rev'):
        extensions.wrapfunction(webcommands, name, _withdeployments)


def _environmentspage(web):
    """
    /environments
    -------------

    The environments of the repository (hgext_envdeploy): each one's
    branch and head, the changeset each host is last known at, the
    changesets not deployed yet and the last runs, from the repository's
    deployment records.  No host is contacted.
    """
    return commands.logic('web').environments(web)


def _withdeployments(orig, web):
    return commands.logic('web').changeset(web, orig)
