# commands.py - the hg commands of the extension
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Thin command wrappers: parse options, call the deploy logic, report.

Only this module and config.py load with the extension; the logic is
imported when a command runs, so plain hg commands stay as fast as without
the extension.
"""

import importlib

from mercurial.i18n import _
from mercurial import cmdutil, demandimport, pycompat, registrar

cmdtable = {}
command = registrar.command(cmdtable)


def logic(name):
    """Import one of our modules, and all it imports, for real.

    Deploys run hosts in threads, and a module left lazy by Mercurial's
    demandimport, first touched by two threads at once, can look empty to
    one of them ("module has no attribute").
    """
    with demandimport.deactivated():
        return importlib.import_module('.' + name, __package__)


@command(
    b'envdeploy',
    [
        (b'r', b'rev', b'', _(b'deploy this changeset of the branch'), _(b'REV')),
        (b'', b'break-lock', False,
         _(b'remove a deploy lock left by a dead deploy (DANGEROUS)')),
    ]
    + cmdutil.dryrunopts
    + cmdutil.formatteropts,
    _(b'[-r REV] [-n] ENV'),
    helpcategory=command.CATEGORY_REMOTE_REPO_MANAGEMENT,
)
def envdeploy(ui, repo, env, **opts):
    """deploy the head of an environment's branch to its hosts

    On every host of ENV (in parallel, at most ``[envdeploy] concurrency``
    at a time, one SSH connection each; on this machine when ENV has no
    hosts): take the deploy lock, save manual edits of the target's working
    copy as a patch under its ``.hg/envdeploy/patches/``, pull the
    changeset, ``hg update -C`` to it, run ``migrate``, ``reload`` and
    ``check``, and append what happened to the target's journal.

    The changeset is the single head of the environment's branch in this
    repository, or REV, which must be on that branch.  A host already at
    that changeset with a clean working copy only runs ``check``.

    With -n/--dry-run, show each host's current revision and the commands
    that would run, and change nothing.

    Exits 0 when every host succeeded; otherwise aborts naming each failed
    host and step, after showing the end of the failing command's output.
    """
    return logic('deploy').deployenv(
        ui, repo, env, rev=opts.get('rev'), dryrun=opts.get('dry_run'),
        breaklock=opts.get('break_lock'), opts=pycompat.byteskwargs(opts),
    )
