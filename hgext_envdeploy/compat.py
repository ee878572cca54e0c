# compat.py - what differs between the Mercurial versions we support
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Every difference between the supported Mercurial versions, in one place.

Each shim is tagged with the newest version that needs it and, where
known, the Mercurial changeset that made it necessary, so that it can be
deleted when that version is no longer supported (``minimumhgversion``).
"""

from mercurial import cmdutil, scmutil

# hg <= 7.1 (7c6e323cb685): cmdutil.bailifchanged became
# scmutil.bail_if_changed; the old name warns from 7.2 and goes in 7.3.
try:
    bail_if_changed = scmutil.bail_if_changed
except AttributeError:
    bail_if_changed = cmdutil.bailifchanged  # pytype: disable=module-attr

# hg <= 7.1: peer() and repository() moved from mercurial.hg to
# mercurial.repo.factory; the hg.* names warn from 7.2 and go in 7.3.
try:
    from mercurial.repo import factory as peers
except ImportError:
    from mercurial import hg as peers
