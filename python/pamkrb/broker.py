"""The hub's ticket broker: keeps a fresh ticket for every user whose server
runs, so servers anywhere can fetch it (``GET /hub/api/pamkrb/ticket``) and
keytabs can stay where only root reads them.

The broker only schedules. Per user, one asyncio task sleeps until the
ticket is due (the lifecycle's schedule: when it enters the margin, with
jitter), then asks the user's :class:`~pamkrb.keeper.TicketKeeper` to
refresh it (a TGS renewal while the ticket is renewable, a new ticket from
the source only when it must, one attempt per user at a time). Failures back
off. Nothing here blocks the event loop: the Kerberos work runs on the
keeper's attempt threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import lifecycle
from .keeper import TicketKeeper

log = logging.getLogger(__name__)


class TicketBroker:
    """Schedules the refreshes of tracked users' tickets."""

    def __init__(
        self,
        keeper: Callable[[str], TicketKeeper],
        *,
        margin: float,
        interval: float,
        errors: tuple[type[BaseException], ...],
        serving: Callable[[str], bool] = lambda username: True,
        logger: logging.Logger = log,
    ) -> None:
        # The keeper of a user's ticket.
        self._keeper = keeper
        # Whether the user still has a running server: a ticket is kept
        # fresh for a server, never for a token or a user alone.
        self._serving = serving
        self.margin = margin
        self.interval = interval
        self._errors = errors
        self.log = logger
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: dict[str, int] = {}

    def track(self, username: str) -> None:
        """Keep ``username``'s ticket fresh from now on (idempotent)."""
        if username in self._tasks and not self._tasks[username].done():
            return
        self._tasks[username] = asyncio.ensure_future(self._schedule(username))

    def untrack(self, username: str) -> None:
        task = self._tasks.pop(username, None)
        self.failures.pop(username, None)
        if task is not None:
            task.cancel()

    async def _schedule(self, username: str) -> None:
        shown = username[:32]
        while True:
            if not self._serving(username):
                self.log.info("Ticket broker: %r has no running server; no longer renewing its ticket", shown)
                self._tasks.pop(username, None)
                self.failures.pop(username, None)
                return
            try:
                info = (await self._keeper(username).refresh("broker")).info
            except self._errors as e:
                failures = self.failures.get(username, 0) + 1
                self.failures[username] = failures
                delay = lifecycle.failure_backoff(failures)
                self.log.warning(
                    "Ticket broker: no fresh ticket for %r (%d in a row; next try in %.0f s): %s",
                    shown,
                    failures,
                    delay,
                    e,
                )
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # the loop must outlive any one bad refresh, a native panic included
                self.log.exception("Ticket broker: unexpected error refreshing %r", shown)
                delay = lifecycle.MAX_BACKOFF
            else:
                self.failures.pop(username, None)
                delay = lifecycle.next_check_delay(info, self.margin, self.interval, time.time())
            await asyncio.sleep(delay)
