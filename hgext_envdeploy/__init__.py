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
  it there once.

``source``
  What the target pulls from (default: the target repository's own
  ``default`` path, as a plain ``hg pull`` there would).

``migrate``, ``reload``, ``check``
  Shell commands run in ``path`` on the target after the update, in this
  order; an empty value skips the step.  They are the administrator's and
  run as written (each in its own ``sh -c``).  ``check`` is a health check:
  its failure fails the deploy.  They see ``HGPLAIN=1``.

``hg``
  The hg executable on the target (default ``hg``; for a local
  environment, the hg running this command).  Non-interactive SSH sessions
  often have a short PATH: give an absolute path if ``hg`` is not found.

``identity``
  A private key file.  Otherwise ``~/.ssh/config`` (``HostName``, ``User``,
  ``Port``, ``IdentityFile``, ``ProxyCommand``) and ssh-agent apply, as
  they do for the ``ssh`` command.

Settings of the whole run, in ``[envdeploy]``:

``knownhosts``
  The known_hosts file (default ``~/.ssh/known_hosts``), read once a run.

``hostkeys``
  ``strict`` (default): an unknown or changed host key is refused.
  ``accept-new``: an unknown host's key is trusted and added to
  ``knownhosts``; a changed key is still refused.

``sshconfig``
  The OpenSSH client configuration read (default ``~/.ssh/config``).

``concurrency``
  How many hosts are deployed at once (default 8).

``locktimeout``
  Seconds a deploy waits for another deploy's lock on a host before it
  gives up, naming the holder (default 30).

``timeout``
  Seconds a host may stay silent during a step before it is reported as
  failed (default 600); ``connecttimeout`` (default 15) bounds connecting.

What a deploy does on each host
===============================

1. Takes the deploy lock ``.hg/envdeploy/lock`` in the target repository.
   It is held by the deploy's own shell session and released when that
   session ends, however it ends.  A lock whose holder process is gone is
   reported and taken over; a live one makes the deploy wait
   ``locktimeout`` seconds, then fail naming who holds it.
   ``--break-lock`` removes a lock by force.
2. Records the target's revision and manual edits; edits are saved as a
   patch under ``.hg/envdeploy/patches/`` before they are discarded.
3. ``hg pull -r NODE [SOURCE]`` (skipped when the changeset is already
   there), ``hg update -C -r NODE``, then ``migrate``, ``reload`` and
   ``check``.
4. Appends a record to ``.hg/envdeploy/journal.jsonl`` (JSON lines, format
   version 1): who, from which changeset to which, each step's status and
   duration, and the outcome.

Every value the extension puts into a command on the target (path,
revision, source) is quoted; the changeset is always passed as a full hash
resolved in this repository, so branch names never reach a shell.
"""

from . import commands, config

testedwith = b'6.9 7.0 7.1 7.2'
minimumhgversion = b'6.9'

cmdtable = commands.cmdtable
configtable = config.configtable

colortable = {
    b'envdeploy.ok': b'green',
    b'envdeploy.failed': b'red bold',
}
