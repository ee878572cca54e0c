# events.py - the hooks a deploy and a rollback fire on this machine
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``preenvdeploy``, ``envdeploy``, ``preenvrollback``, ``envrollback``.

Hook types of Mercurial's own machinery (:func:`mercurial.hook.hook`), so
``[hooks] NAME.SUFFIX`` takes shell and ``python:`` hooks alike, with
priorities and trust as for every other hook.  :func:`around` runs a
:class:`~run.Run` between its two hooks:

  pre    before any host is touched; a failing hook aborts the run with
         nothing changed anywhere
  run    the deploy or rollback, then its report
  after  whatever happened (success, failure, Ctrl-C); a failing hook
         only warns: the outcome is already on the hosts

A dry run fires neither: it changes nothing.  The automatic rollback of a
failed deploy is part of that deploy (its ``envdeploy`` hook says
``rolledback`` for the hosts that went back), not an ``envrollback``.
"""

from mercurial.i18n import _
from mercurial import error, hook
from mercurial.utils import stringutil

from . import journal

# (pre hook, after hook) of each kind of run.
HOOKS = {
    journal.DEPLOY: (b'preenvdeploy', b'envdeploy'),
    journal.ROLLBACK: (b'preenvrollback', b'envrollback'),
}

# What started the run (``trigger``).
COMMAND, ENVMERGE, PUSH = b'command', b'envmerge', b'push'

# The outcome the after hook sees: every host ended well, at least one did
# not (``results`` says how each ended), or Ctrl-C stopped the run.
OK, FAILED, INTERRUPTED = b'ok', b'failed', b'interrupted'


def around(ui, repo, run, report, via=None):
    """``report(run.run())`` between ``run``'s hooks; what report returns.

    ``via`` says what started the run when it is not its command nor a
    push (``envmerge``).  The hooks get :func:`arguments`; the after hook
    also the ``outcome``, each host's ``results`` and the ``message`` the
    run failed with.
    """
    if run.dryrun:
        return report(run.run())
    pre, after = HOOKS[run.kind]
    args = arguments(run, via)
    fire(ui, repo, pre, args, throw=True)
    results, outcome, message = None, FAILED, b''
    try:
        results = run.run()
        outcome = verdict(results)
        return report(results)
    except KeyboardInterrupt:
        outcome = INTERRUPTED
        raise
    except error.Abort as exc:
        message = exc.message
        raise
    finally:
        args[b'outcome'] = outcome
        args[b'message'] = message
        args[b'results'] = b' '.join(b'%s=%s' % (r.host.spec, r.outcome)
                                     for r in results or ())
        if run.kind == journal.ROLLBACK and results:
            # Known now: where the hosts went (one changeset, or several).
            args[b'node'] = b' '.join(dict.fromkeys(
                r.tonode for r in results if r.tonode))
        fire(ui, repo, after, args)


def arguments(run, via=None):
    """What both hooks of ``run`` get: ``HG_*`` variables, keyword args.

    Values are bytes, as Mercurial's own hooks give them; lists are
    space-separated (host specs have no spaces).
    """
    pushed = run.trigger or {}
    node = getattr(run, 'node', None) or b''  # a rollback without -r: b''
    return {
        b'env': run.env.name,
        b'branch': run.env.branch,
        b'node': node,
        b'hosts': b' '.join(h.spec for h in run.env.hosts),
        b'runid': run.id,  # the id of the run's journal records
        b'user': run.user,
        b'trigger': via or (PUSH if pushed else COMMAND),
        b'pusher': pushed.get('pusher') or b'',
        b'url': pushed.get('url') or b'',
    }


def verdict(results):
    """The outcome of a run whose hosts ended as ``results`` say."""
    if all(r.ok for r in results):
        return OK
    if any(r.outcome == b'interrupted' for r in results):
        return INTERRUPTED
    return FAILED


def fire(ui, repo, name, args, throw=False):
    """Run the ``name`` hooks; with ``throw``, a failing one aborts.

    Their output goes to stderr: stdout is the run's data (``-T json``).
    """
    saved = ui.fout
    ui.fout = ui.ferr
    try:
        hook.hook(ui, repo, name, throw=throw, **_strkeys(args))
    except Exception as exc:
        if not throw and isinstance(exc, error.Abort):
            # A hook that cannot even load (HookLoadError, whatever
            # throw says): the run's outcome, already on the hosts, stands.
            ui.warn(_(b'warning: %s\n') % exc.message)
            return
        if not throw:
            raise
        if not isinstance(exc, error.Abort):
            ui.traceback()
        message = getattr(exc, 'message', None) or (
            _(b'%s hook raised an exception: %s')
            % (name, stringutil.forcebytestr(exc)))
        raise error.HookAbort(message, hint=_(
            b'nothing was changed: the %s hooks run before any host of %s '
            b'is touched') % (name, args[b'env']))
    finally:
        ui.fout = saved


def _strkeys(args):
    return {k.decode('ascii'): v for k, v in args.items()}
