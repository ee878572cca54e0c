# stepenv.py - what every step on a target knows about the run
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The ``ENVDEPLOY_*`` variables of a run, exported in each host's session.

Every step (``migrate``, ``reload``, ``check``, and the target's hg with
its hooks) sees them, so that a check can prove that the code answering
is the code deployed (``ENVDEPLOY_NODE``), and a reload can log which run
asked for it (``ENVDEPLOY_ID``, the id in the journal and ``hg envlog``).

They are exported once, when the session enters ``path``
(:meth:`~.target.HostSession.enter`), with the node the run brings; a
rollback (``hg envrollback``, or a failed deploy going back) exports the
node it returns to before its first step (:func:`towards`).
"""

NODE = b'ENVDEPLOY_NODE'
RELEASE = b'ENVDEPLOY_RELEASE'  # set when the session enters a release


def variables(run, host, node):
    """``{name: value}`` for ``host`` in ``run``, heading for ``node``
    (full hex, or None when not known yet: empty)."""
    return {
        NODE: node or b'',
        b'ENVDEPLOY_ENV': run.env.name,
        b'ENVDEPLOY_BRANCH': run.env.branch,
        b'ENVDEPLOY_HOST': host.spec,
        b'ENVDEPLOY_ROLE': host.role or b'',
        b'ENVDEPLOY_ID': run.id,
        # Empty in place, as ROLE is without roles: a value inherited from
        # the login environment must not pass for a release.
        RELEASE: b'',
    }


def towards(session, node):
    """From now on the steps on ``session`` go to ``node`` (None: the
    empty working copy): a rollback's target."""
    session.export({NODE: node or b''})
