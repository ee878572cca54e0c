# freeze.py - stop every deploy of an environment until it is lifted
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``hg envlock ENV -m REASON`` and ``hg envunlock ENV``: a freeze.

A freeze is the file ``.hg/envdeploy/freeze`` in the target repository of
every host of ENV, ``key=value`` lines as the deploy lock's info
(``user``, ``client``, ``since``, ``reason``).  Unlike the deploy lock it
belongs to no session: it stays until ``hg envunlock`` removes it, and
``--break-lock`` leaves it alone.

Every run that changes hosts (deploy, rollback; from the command, a push
hook, the background autodeploy) reads it in the round trip that takes
the deploy lock (see target.HostSession.lock), so a freeze set while a
deploy waited for the lock still stops it; :func:`check` fails a frozen
host, and :func:`guard`, once every host was reached, refuses the whole
run before any host changes, naming who froze it, when and why.  A
deploy already past its lock when the freeze comes finishes.
"""

import time

from mercurial.i18n import _
from mercurial import error, pycompat

from . import config, hostread, journal, lock, target
from .shell import quote

FILE = lock.FREEZE

# A frozen host's refusal is recorded at this step.
STEP = b'freeze'

_FROZEN = lock.FROZEN
readscript = lock.freezescript
parse = lock.parsefreeze


def describe(info):
    """``by USER on CLIENT since TIME: REASON``.

    >>> print(describe({b'user': b'alice', b'client': b'laptop',
    ...                 b'since': b'2026-01-02T03:04:05Z',
    ...                 b'reason': b'incident 42'}).decode())
    by alice on laptop since 2026-01-02T03:04:05Z: incident 42
    >>> print(describe({}).decode())
    by ? on ? since ?: ?
    """
    return _(b'by %s on %s since %s: %s') % (
        info.get(b'user', b'?'), info.get(b'client', b'?'),
        info.get(b'since', b'?'), info.get(b'reason', b'?'))


def shown(output):
    """The freeze in :func:`readscript`'s output as envstatus and
    envcheck show it, b'' when there is none."""
    info = parse(output)
    return b'' if info is None else describe(info)


def _hint(env):
    return (_(b"'hg envunlock %s' lifts the freeze (--break-lock does not)")
            % env.name)


# -- the check in every run that changes hosts (run.Run.open)


def check(run, result, session):
    """Fail ``result``'s host when it is frozen (StepFailed).

    The real run reads the freeze with the lock (``session.frozen``); a
    dry run, which takes no lock, reads it here and only says so.
    """
    info = session.frozen
    if run.dryrun:
        _rc, out = session.run(readscript())
        info = parse(out)
    if info is None:
        return
    result.frozen = info
    what = _(b'%s of %s') % (run.kind, run.env.name)
    if run.dryrun:
        run.say(result.host, _(b'FROZEN %s: the %s would be refused')
                % (describe(info), what), 'warn', b'envdeploy.failed')
        return
    raise target.StepFailed(
        STEP, _(b'%s is frozen %s') % (run.env.name, describe(info)),
        hint=_hint(run.env))


def guard(run, results):
    """Refuse ``run`` (a deploy or rollback) when any host is frozen.

    Called once every host was reached, before any change: every host is
    released with nothing journaled, then error.StateError says who froze
    the environment, when and why.  Dry runs alike, after their plan.
    """
    frozen = [r for r in results if r.frozen is not None]
    if not frozen:
        return
    run.refuse(results, _(b'not started: %s is frozen') % run.env.name)
    reasons = []
    for r in frozen:
        text = describe(r.frozen)
        if text not in reasons:
            reasons.append(text)
    verb = _(b'would be refused') if run.dryrun else _(b'refused')
    raise error.StateError(
        _(b'%s of %s %s: frozen %s (on %s)')
        % (run.kind, run.env.name, verb, b'; '.join(reasons),
           b', '.join(r.host.name for r in frozen)),
        hint=_(b'nothing was changed; %s') % _hint(run.env))


# -- hg envlock, hg envunlock


def _setscript(info):
    """Freeze, unless frozen already: then print the freeze kept."""
    lines = b' '.join(quote(b'%s=%s' % (k, v.replace(b'\n', b' ')))
                      for k, v in sorted(info.items()))
    return (b'if [ -f %(f)s ]; then echo %(m)s; cat %(f)s; else '
            b"mkdir -p %(d)s && printf '%%s\\n' %(lines)s > %(f)s.new "
            b'&& mv -f %(f)s.new %(f)s; fi'
            % {b'f': FILE, b'm': _FROZEN, b'd': journal.DIRECTORY,
               b'lines': lines})


def _liftscript():
    """Lift the freeze; print what it said (nothing when there was none)."""
    return b'if [ -f %(f)s ]; then echo %(m)s; cat %(f)s; rm -f %(f)s; fi' % {
        b'f': FILE, b'm': _FROZEN}


def _onhosts(ui, env, script, topic):
    """Run ``script`` in every host's repository; rows with ``info`` (the
    freeze found), ``locked`` (a deploy's lock holder) and ``status``."""

    def work(session, row):
        hostread.enter(session)
        found = hostread.sections(session, [
            (b'lock', hostread.lockscript()), (b'freeze', script)])
        row['locked'] = hostread.lockinfo(found[b'lock'][1])[0]
        row['status'], out = found[b'freeze']
        row['info'] = parse(out)
        if row['status']:
            raise hostread.HostError(
                _(b'cannot write %s/%s: %s')
                % (env.path, FILE, hostread.lastline(out)))

    return hostread.onhosts(ui, [(env, h) for h in env.hosts], work,
                            config.settings(ui), topic)


def envlock(ui, repo, name, reason):
    """``hg envlock ENV -m REASON``: freeze every host of ENV."""
    env = config.load(ui, name)
    reason = b' '.join((reason or b'').split())
    if not reason:
        raise error.InputError(_(b'say why ENV is frozen: -m REASON'),
                               hint=_(b'the reason is shown to everyone '
                                      b'whose deploy it refuses'))
    info = {
        b'user': target.who(ui),
        b'client': target.clientname(),
        b'since': pycompat.sysbytes(target.isotime(time.time())),
        b'reason': reason,
    }
    rows = _onhosts(ui, env, _setscript(info), _(b'freezing'))
    missed = []
    for row in rows:
        host = row['label']
        if row['error']:
            ui.warn(_(b'%s: NOT frozen: %s\n') % (host, row['error']),
                    label=b'envdeploy.failed')
            missed.append(row['host'])
            continue
        if row['info'] is not None:
            ui.status(_(b'%s: already frozen %s (kept)\n')
                      % (host, describe(row['info'])))
        else:
            ui.status(_(b'%s: frozen\n') % host)
        if row['locked']:
            ui.warn(_(b'%s: a %s of %s is running (locked by %s): the freeze '
                      b'stops the runs after it\n')
                    % (host, _(b'deploy or rollback'), env.name,
                       row['locked']))
    if missed:
        raise error.Abort(
            _(b'%s frozen on %d of %d hosts; not on %s')
            % (env.name, len(rows) - len(missed), len(rows),
               b', '.join(missed)),
            hint=_(b'a deploy is refused while any host is frozen; run '
                   b"'hg envlock %s' again once every host can be reached")
            % env.name)
    ui.status(_(b'%s is frozen: deploys and rollbacks are refused until '
                b"'hg envunlock %s'\n") % (env.name, env.name))
    return 0


def envunlock(ui, repo, name):
    """``hg envunlock ENV``: lift the freeze on every host of ENV."""
    env = config.load(ui, name)
    rows = _onhosts(ui, env, _liftscript(), _(b'unfreezing'))
    missed = []
    for row in rows:
        host = row['label']
        if row['error']:
            ui.warn(_(b'%s: freeze NOT lifted: %s\n') % (host, row['error']),
                    label=b'envdeploy.failed')
            missed.append(row['host'])
        elif row['info'] is not None:
            ui.status(_(b'%s: unfrozen (was frozen %s)\n')
                      % (host, describe(row['info'])))
        else:
            ui.status(_(b'%s: was not frozen\n') % host)
    if missed:
        raise error.Abort(
            _(b'%s is still frozen on %s') % (env.name, b', '.join(missed)),
            hint=_(b"deploys stay refused; run 'hg envunlock %s' again once "
                   b'every host can be reached') % env.name)
    ui.status(_(b'%s is not frozen\n') % env.name)
    return 0
