# confirm.py - ask before a deploy to an environment that says so
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``ENV.confirm = true``: type the environment's name to go on.

``hg envdeploy``, ``hg envrollback`` and ``hg envmerge --deploy`` show the
plan (what is known before any host is reached) and ask for the
environment's name.  How that meets Mercurial's own ``-y``:

- ``ui.interactive()`` is true (stdin is a terminal, or ``[ui] interactive
  = true``): the plan is shown and the answer read; anything but the
  name aborts, nothing changed.
- ``-y``/``--noninteractive`` sets ``ui.interactive`` to false ("do not
  prompt, take the defaults"): that is the answer, given in advance; the
  plan is shown and the run goes on.  ``[ui] interactive = false`` (or
  ``--config ui.interactive=no``) is the same setting and means the same.
- Neither (no terminal, and ``ui.interactive`` unset): abort before any
  host is reached.  Never ``ui.prompt`` there: without a terminal it
  returns its default without reading anything.

Push deploys are never asked: ``autodeploy`` is that decision.
"""

from mercurial.i18n import _
from mercurial import error


def consented(ui):
    """Whether ``-y`` (``ui.interactive`` set to false) answered already."""
    return ui.configbool(b'ui', b'interactive') is False


def ask(ui, env, what, plan):
    """Confirm ``what`` (``deploy``, ``rollback``) of ``env``, or abort.

    ``plan`` is a list of ``(label, value)`` lines shown first.  Does
    nothing when ``env.confirm`` is off.
    """
    if not env.confirm:
        return
    ui.status(_(b'%s of %s, which asks for confirmation:\n') % (what, env.name))
    for label, value in plan:
        ui.status(b'  %-10s %s\n' % (label + b':', value))
    if ui.interactive():
        answer = ui.prompt(_(b"type '%s' to %s it, anything else stops:")
                           % (env.name, what), default=b'')
        if answer.strip() == env.name:
            return
        raise error.CanceledError(
            _(b'%s of %s not confirmed: nothing was changed') % (what, env.name),
            hint=_(b"type the environment's name, %s, to go on") % env.name)
    if consented(ui):
        ui.status(_(b'confirmed by -y (ui.interactive is off)\n'))
        return
    raise error.InputError(
        _(b'%s of %s needs confirmation, and there is no terminal to ask on')
        % (what, env.name),
        hint=_(b'run it on a terminal, or add -y to confirm (%s.confirm '
               b'is set); nothing was changed') % env.name)


def deployplan(env, ctx):
    """The lines :func:`ask` shows for a deploy of ``ctx``."""
    return [
        (_(b'changeset'), b'%s "%s"' % (ctx.hex()[:12],
                                        ctx.description().split(b'\n')[0])),
        (_(b'branch'), env.branch),
        (_(b'hosts'), env.describe()),
    ]


def rollbackplan(env, node=None, toid=None):
    """The lines :func:`ask` shows for a rollback (its target as given)."""
    if node:
        to = node[:12]
    elif toid:
        to = _(b'journal record %s') % toid
    else:
        to = _(b"the deployment before the current one, in each host's "
               b"journal")
    return [(_(b'back to'), to), (_(b'branch'), env.branch),
            (_(b'hosts'), env.describe())]
