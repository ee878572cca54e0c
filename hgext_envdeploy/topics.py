# topics.py - envmerge of a topic (hg-evolve's topic extension)
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envmerge TOPIC --into ENV`` where the topic extension is enabled.

A topic is a feature in progress: draft changesets that carry its name.
envmerge takes it as it takes a named branch: its single head; an abort
naming the heads when it has several; a refusal while it has orphans
(changesets whose parent was rewritten: ``hg evolve`` first), since the
merge would carry obsolete history.  Merging into an environment's branch
and pushing it publishes the topic's changesets (a publishing central
repository makes them public, and a public changeset has no topic any
more): envmerge says so.
"""

from mercurial.i18n import _
from mercurial import error, extensions, logcmdutil, node as nodemod


def enabled(repo):
    """Whether hg-evolve's topic extension is on for ``repo``."""
    try:
        extensions.find(b'topic')
    except KeyError:
        return False
    return hasattr(repo, 'topics')


def featurectx(repo, spec):
    """The changeset FEATURE ``spec`` names: a topic's head when it is a
    topic here (see the module docstring), else ``spec`` as a revision."""
    if not enabled(repo) or spec not in repo.topics:
        return logcmdutil.revsingle(repo, spec)
    heads = list(repo.revs(b'heads(topic(%s))', b'literal:' + spec))
    if not heads:
        return logcmdutil.revsingle(repo, spec)  # the current, empty topic
    orphans = list(repo.revs(b'topic(%s) and orphan()', b'literal:' + spec))
    if orphans:
        raise error.StateError(
            _(b"topic '%s' has %d unstable (orphan) changesets: %s")
            % (spec, len(orphans),
               b', '.join(nodemod.short(repo[r].node()) for r in orphans)),
            hint=_(b"stabilize them first ('hg evolve --any --topic %s'); "
                   b'nothing was changed') % spec)
    if len(heads) > 1:
        raise error.StateError(
            _(b"topic '%s' has %d heads: %s")
            % (spec, len(heads),
               b', '.join(nodemod.short(repo[r].node()) for r in heads)),
            hint=_(b"merge or rebase them into one ('hg update %s', 'hg "
                   b"merge'), or name the head to merge by its hash")
            % spec)
    count = len(repo.revs(b'topic(%s)', b'literal:' + spec))
    repo.ui.status(
        _(b"note: merging topic '%s' (%d changesets, head %s) publishes its "
          b'changesets once pushed to a publishing repository\n')
        % (spec, count, nodemod.short(repo[heads[0]].node())))
    return repo[heads[0]]
