# direction.py - never deploy backwards by accident
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Which way a deploy moves each host, and the refusal when it is back.

A host at a changeset this repository does not have (deployed from a
newer clone), or at a descendant of the changeset to deploy, would lose
changesets: :func:`guard` stops such a deploy before any host changes,
unless ``--force``.  Going back on purpose is ``hg envrollback``'s job.
A host on another line (a sibling head, another branch) is an ordinary
deploy.
"""

from mercurial.i18n import _
from mercurial import error, node as nodemod

UNKNOWN = b'unknown'
BACKWARDS = b'backwards'


def verdict(target, current, known, isancestor):
    """How deploying ``target`` moves a host at ``current`` (hex nodes).

    ``UNKNOWN`` when ``known(current)`` is false, ``BACKWARDS`` when
    ``isancestor(target, current)``; None for every ordinary deploy
    (forwards, sideways, already there, or an empty working copy).

    >>> parents = {b'a': [], b'b': [b'a'], b'c': [b'b'], b'd': [b'a']}
    >>> def isancestor(x, y):
    ...     return x == y or any(isancestor(x, p) for p in parents[y])
    >>> def moves(target, current):
    ...     return verdict(target, current, parents.__contains__, isancestor)
    >>> moves(b'b', b'c') == BACKWARDS   # c descends from b
    True
    >>> moves(b'b', b'x') == UNKNOWN     # x was never pulled here
    True
    >>> moves(b'c', b'a'), moves(b'c', b'c'), moves(b'c', None)
    (None, None, None)
    >>> moves(b'c', b'd'), moves(b'd', b'c')   # sibling lines
    (None, None)
    """
    if current is None or current == target:
        return None
    if not known(current):
        return UNKNOWN
    if isancestor(target, current):
        return BACKWARDS
    return None


def refusal(target, found):
    """``(message, hint)`` naming every ``(host, current, verdict)``.

    Hosts at the same changeset for the same reason share a clause.

    >>> m, h = refusal(b'1a2b3c4d5e6f' + b'0' * 28,
    ...                [(b'web1', b'8a93c6893101' + b'f' * 28, BACKWARDS)])
    >>> print(m.decode())
    web1 is at 8a93c6893101, a descendant of 1a2b3c4d5e6f: the deploy would go backwards
    >>> print(h.decode())
    nothing was changed; use hg envrollback to go back, or --force to deploy anyway
    >>> m, h = refusal(b'1' * 40, [(b'web1', b'8' * 40, UNKNOWN),
    ...                            (b'web2', b'8' * 40, UNKNOWN),
    ...                            (b'web3', b'9' * 40, BACKWARDS)])
    >>> print(m.decode())
    web1, web2 are at 888888888888, which this repository does not have; web3 is at 999999999999, a descendant of 111111111111: the deploy would go backwards
    >>> print(h.decode())
    nothing was changed; pull first, use hg envrollback to go back, or --force to deploy anyway
    """
    groups = {}
    for host, current, how in found:
        groups.setdefault((how, current), []).append(host)
    clauses = []
    for (how, current), hosts in groups.items():
        names = b', '.join(hosts)
        if how == UNKNOWN:
            if len(hosts) == 1:
                text = _(b'%s is at %s, which this repository does not have')
            else:
                text = _(b'%s are at %s, which this repository does not have')
            clauses.append(text % (names, current[:12]))
        else:
            if len(hosts) == 1:
                text = _(b'%s is at %s, a descendant of %s: the deploy would '
                         b'go backwards')
            else:
                text = _(b'%s are at %s, descendants of %s: the deploy would '
                         b'go backwards')
            clauses.append(text % (names, current[:12], target[:12]))
    kinds = {how for how, _current in groups}
    if kinds == {UNKNOWN}:
        hint = _(b'nothing was changed; pull first, or use hg envrollback '
                 b'(or --force to deploy anyway)')
    elif kinds == {BACKWARDS}:
        hint = _(b'nothing was changed; use hg envrollback to go back, or '
                 b'--force to deploy anyway')
    else:
        hint = _(b'nothing was changed; pull first, use hg envrollback to go '
                 b'back, or --force to deploy anyway')
    return b'; '.join(clauses), hint


def judge(repo, target, currents):
    """``[(key, current, verdict)]`` for the ``(key, current)`` that
    deploying ``target`` would not move forwards or sideways."""
    # Unfiltered: a host at a changeset hidden here (obsoleted by an amend
    # or a prune) is known, and judged by its ancestry like any other.
    changelog = repo.unfiltered().changelog

    def known(node):
        try:
            return changelog.hasnode(nodemod.bin(node))
        except ValueError:  # not a hash: nothing we have
            return False

    def isancestor(a, b):
        return changelog.isancestor(nodemod.bin(a), nodemod.bin(b))

    found = []
    for key, current in currents:
        how = verdict(target, current, known, isancestor)
        if how is not None:
            found.append((key, current, how))
    return found


def guard(run, results):
    """Stop ``run`` (a Deploy) that would take a host backwards.

    Called once every host was reached and read, before any change.  On a
    refusal every host is released with nothing journaled (dry runs
    alike), then error.StateError names them all.  With ``run.force``,
    each such host gets a warning and the deploy goes on.
    """
    found = judge(run.repo, run.node,
                  [(r, r.state.parent) for r in results if r.state is not None])
    if not found:
        return
    if run.force:
        for r, current, how in found:
            if how == UNKNOWN:
                text = (_(b'at %s, which this repository does not have: '
                          b'deploying anyway (--force)') % current[:12])
            else:
                text = (_(b'at %s, a descendant of %s: going backwards '
                          b'(--force)') % (current[:12], run.node[:12]))
            run.say(r.host, text, 'warn')
        return
    run.refuse(results, _(b'not started: the deploy would go backwards'))
    message, hint = refusal(
        run.node, [(r.host.name, current, how) for r, current, how in found])
    raise error.StateError(message, hint=hint)
