# healthcheck.py - the check, tried again until the new code answers
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""``ENV.check.timeout``: a check that waits for the reload to take.

Most reloads are asynchronous: ``kill -HUP`` (gunicorn), ``touch
wsgi.py`` (mod_wsgi), ``systemctl reload`` return before the new workers
serve, so a check run at once may be answered by an old worker, or by
nobody.  With a timeout the check is run again every ``check.interval``
seconds until it passes or the time is up (as Kamal polls ``/up``); each
failed try is said with the reason, and only the last one fails the step.
Ctrl-C ends the tries (the check then counts as failed).
"""

import time

from mercurial.i18n import _

# How much of a failed try's last line the try's message repeats.
_REASON = 120


def repeat(session, script, output):
    """Run the check ``script`` until it passes or the timeout is up.

    ``(status, output, tries, interrupted)``: the first two of the last
    try, as Shell.run gives them.
    """
    env = session.env
    deadline = time.monotonic() + env.checktimeout
    tries = 0
    while True:
        tries += 1
        status, out = session.run(script, output=output)
        if not status:
            return status, out, tries, False
        left = deadline - time.monotonic()
        if left < env.checkinterval:
            return status, out, tries, False
        session.say(session.host, _(b'check: try %d failed (%s), again in '
                                    b'%ss (%ds left)')
                    % (tries, reason(status, out), _seconds(env.checkinterval),
                       int(left)))
        if _interrupted(session, env.checkinterval):
            session.say(session.host, _(b'check: interrupted, no more tries'),
                        'warn')
            return status, out, tries, True


def _interrupted(session, seconds):
    """Wait ``seconds``; True at once when Ctrl-C was pressed."""
    if session.cancel is None:
        time.sleep(seconds)
        return False
    return session.cancel.wait(seconds)


def summary(tries, duration, interrupted):
    """How the tries of a failed check ended, for its message.

    >>> summary(5, 9.96, False), summary(1, 0.2, True)
    (b'5 tries in 10.0s', b'interrupted after 1 try')
    """
    if interrupted:
        return _(b'interrupted after %d %s') % (
            tries, _(b'try') if tries == 1 else _(b'tries'))
    return _(b'%d tries in %.1fs') % (tries, duration)


def reason(status, out):
    """What a failed try said: its status and its last line.

    >>> reason(22, b'curl: (22) The requested URL returned error: 500\\n')
    b'exit 22: curl: (22) The requested URL returned error: 500'
    >>> reason(1, b''), reason(1, b'x' * 200)[-4:]
    (b'exit 1', b'x...')
    """
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        return b'exit %d' % status
    last = lines[-1]
    if len(last) > _REASON:
        last = last[:_REASON] + b'...'
    return b'exit %d: %s' % (status, last)


def _seconds(value):
    """``2`` or ``0.5``, as the hgrc would have said it.

    >>> _seconds(2), _seconds(2.0), _seconds(0.5)
    (b'2', b'2', b'0.5')
    """
    return (b'%g' % value)
