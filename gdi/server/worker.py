"""gunicorn's threaded worker, with connections spread evenly over the workers.

All workers accept from one listening socket, and a keep-alive connection
stays with the worker that accepted it. A burst of new connections (a map
opening its tiles and layers, a load test) lands on whichever worker happens
to poll first: measured with 16 wrk connections on 2 workers, splits of 13/3
and 12/4 were common, leaving one core idle while the other queued requests
(p99 latency doubled, throughput varied by half between identical runs).

This worker therefore pauses accepting for two milliseconds whenever it holds
more connections than it has threads, so a less busy worker takes the next
one; when every worker is that busy, each still accepts after its pause.
Request handling is gunicorn's own.
"""
from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

PAUSE = 0.002   # seconds: an idle worker, waiting in its poll, takes the connection well within this


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resume_at = 0.0

    def accept(self, listener) -> None:
        super().accept(listener)
        if self.nr_conns > self.cfg.threads:
            self._resume_at = time.monotonic() + PAUSE
            self.set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self._resume_at:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        pause = self._resume_at - time.monotonic()
        if not self._accepting and pause > 0:            # wake up in time to accept again
            timeout = min(timeout, pause)
        super().wait_for_and_dispatch_events(timeout)
