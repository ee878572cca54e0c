# protect.py - one head per environment branch
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Keep an environment's branch at one head: the hook behind ``protect``.

Who may push to a branch is the ``acl`` extension's job (see the README).
What acl cannot say is "this branch never has two heads": ``hg push
--force`` happily gives a branch a second head, and a deploy then no
longer knows which one to deploy.  With::

  [hooks]
  pretxnchangegroup.envprotect = python:hgext_envdeploy.hooks.protect

  [environments]
  live.protect = true

a push (over ssh or http, local, a pull or an unbundle alike) that leaves
``live``'s branch with more than one open head is rejected whole, naming
the branch and the heads.  It looks at the incoming changesets before the
transaction commits, so nothing of a rejected push is stored, and the
changegroup hook that deploys never runs.  Closed heads do not count.  A
push that does not touch the branch passes even when the branch already
has several heads (they are someone else's to merge); a push that merges
them passes too.  As ``pretxnclose.envprotect`` it runs after the push's
obsolescence markers are applied (changeset evolution: an amended head
replaces the old one rather than counting as a second); as
``pretxncommit.envprotect`` it also stops a commit in the central
repository itself.

A protected environment whose configuration cannot be read rejects the
push with the configuration error: protection that silently switched
itself off would be worse.
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod
from mercurial.utils import stringutil

from . import config, heads as headsmod

HOOKTYPES = (b'pretxnchangegroup', b'pretxnclose', b'pretxncommit')


def enabled(ui, name):
    """Whether environment ``name`` has ``protect`` on (ConfigError if the
    value is not a boolean)."""
    return config.envconfig(ui, name, b'protect')


def protectedbranches(ui):
    """{branch: [environment names]} of the environments with protect on."""
    branches = {}
    for name in config.envnames(ui):
        if enabled(ui, name):
            env = config.load(ui, name)
            branches.setdefault(env.branch, []).append(name)
    return branches


def protect(ui, repo, hooktype, node=None, **kwargs):
    """Reject incoming changesets that give a protected branch a second
    open head; True (reject) or False."""
    if hooktype not in HOOKTYPES:
        ui.warn(_(b'envprotect: config error: the hook cannot stop changesets '
                  b'as %s; use pretxnchangegroup.envprotect\n') % hooktype)
        return True
    try:
        branches = protectedbranches(ui)
    except error.Abort as exc:
        ui.warn(_(b'envprotect: rejected: config error: %s\n') % exc.message)
        if exc.hint:
            ui.warn(_(b'envprotect: (%s)\n') % exc.hint)
        return True
    if not branches or node is None:
        return False

    # The hook's repository shows the pending changesets; look at them as
    # any command would (hidden changesets are not heads).
    repo = repo.filtered(b'visible')
    cl = repo.unfiltered().changelog
    first = cl.rev(nodemod.bin(node))
    # Up to the tip, not node_last: in pretxnclose that names the end of the
    # first changegroup only.
    touched = {cl.branchinfo(rev)[0] for rev in range(first, len(cl))}

    rejected = False
    for branch in sorted(touched & set(branches)):
        heads = headsmod.openheads(repo, branch)
        if len(heads) < 2:
            continue
        rejected = True
        _report(ui, repo, branch, branches[branch], heads, first)
    return rejected


def _report(ui, repo, branch, names, heads, first):
    ui.warn(_(b"envprotect: rejected: branch '%s' (environment %s) would "
              b"have %d heads, and a deploy needs exactly one:\n")
            % (branch, b', '.join(names), len(heads)))
    for head in sorted(heads, key=repo.changelog.rev):
        ctx = repo[head]
        summary = stringutil.firstline(ctx.description())
        ui.warn(_(b'envprotect:   %s  %s  (%s)%s\n')
                % (ctx, summary, ctx.user(),
                   _(b'  [incoming]') if ctx.rev() >= first else b''))
    ui.warn(_(b'envprotect: (pull, merge the heads, commit and push the '
              b'merge; --force does not get past this check)\n'))
