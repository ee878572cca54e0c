# heads.py - the head of an environment's branch, decided in one place
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Which changeset is "the head of ENV's branch".

One rule for every command and hook: the branch's single open head.  Two
open heads are never guessed between (``protect`` keeps a branch at one);
closed heads do not count, except that ``envmerge`` may merge into a
branch whose every head is closed (``closed=True``: the merge reopens it).
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod


def openheads(repo, branch, closed=False):
    """The open heads of ``branch``, oldest first ([] if none, or no such
    branch); with ``closed``, its closed heads when none is open."""
    branchmap = repo.branchmap()
    if branch not in branchmap:
        return []
    heads = branchmap.branchheads(branch, closed=False)
    if not heads and closed:
        heads = branchmap.branchheads(branch, closed=True)
    return sorted(heads, key=repo.changelog.rev)


def envhead(repo, env, hint, closed=False):
    """The changectx of the single head of ``env``'s branch.

    InputError when the branch does not exist here, StateError when it has
    no open head or several (``hint`` says what to do about several).
    """
    branch = env.branch
    if branch not in repo.branchmap():
        raise error.InputError(
            _(b"branch '%s' of environment '%s' does not exist here")
            % (branch, env.name),
            hint=_(b"pull it if it exists elsewhere; to create it: 'hg update "
                   b"REV', 'hg branch %s', 'hg commit -m \"create %s\"', "
                   b"'hg push --new-branch -r %s'") % (branch, branch, branch),
        )
    heads = openheads(repo, branch, closed)
    if len(heads) > 1:
        raise error.StateError(
            _(b"branch '%s' has %d heads: %s")
            % (branch, len(heads),
               b', '.join(nodemod.short(h) for h in heads)),
            hint=hint,
        )
    if not heads:
        raise error.StateError(
            _(b"branch '%s' has no open head") % branch,
            hint=_(b'reopen it, or deploy a changeset with -r'),
        )
    return repo[heads[0]]


def deployable(ui, repo, env):
    """The binary node of the single open head a push would deploy, or
    None (no branch, no open head, or several: warned, never guessed)."""
    heads = openheads(repo, env.branch)
    if len(heads) > 1:
        ui.warn(_(b'autodeploy: %s: branch %s has %d heads, not deployed '
                  b'(merge them; [environments] %s.protect = true rejects '
                  b'such pushes)\n')
                % (env.name, env.branch, len(heads), env.name))
        return None
    return heads[0] if heads else None
