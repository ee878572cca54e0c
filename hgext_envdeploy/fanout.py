# fanout.py - run one piece of work per host, in parallel
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Hosts of an environment in parallel, a bounded number at a time.

Threads, not processes: the work is waiting on SSH sessions.  The main
thread only shows progress and stays interruptible: on Ctrl-C it sets
``cancel`` (the work checks it before each step), waits for the running
work to end cleanly, and re-raises; a second Ctrl-C leaves at once (the
threads are daemons, and every target's lock dies with its session).
"""

import threading
import time

from mercurial.i18n import _


def foreach(ui, hosts, work, concurrency, topic, cancel=None, grace=10):
    """Call ``work(index, host)`` for every host; return when all are done.

    On Ctrl-C, wait at most ``grace`` seconds for the running work, then
    re-raise KeyboardInterrupt.
    """
    cancel = cancel or threading.Event()
    slots = threading.Semaphore(concurrency)
    # Completion is tracked with events, not Thread.is_alive(): a join()
    # interrupted by Ctrl-C can leave a running thread reported as dead.
    done = [threading.Event() for _host in hosts]

    def onehost(index, host):
        try:
            with slots:
                work(index, host)
        finally:
            done[index].set()

    for i, h in enumerate(hosts):
        threading.Thread(target=onehost, args=(i, h), daemon=True).start()
    with ui.makeprogress(topic, unit=_(b'hosts'), total=len(hosts)) as progress:
        pending = list(range(len(hosts)))
        try:
            while pending:
                done[pending[0]].wait(0.05)
                for index in list(pending):
                    if done[index].is_set():
                        pending.remove(index)
                        progress.increment(item=hosts[index].name)
        except KeyboardInterrupt:
            cancel.set()
            ui.warn(_(b'interrupted: no new step starts; running steps have '
                      b'%d seconds to finish (Ctrl-C again to leave now)\n')
                    % grace)
            deadline = time.monotonic() + grace
            for event in done:
                event.wait(max(0.0, deadline - time.monotonic()))
            raise
