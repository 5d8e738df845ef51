"""Keeping one user's ticket fresh from inside their server.

A trigger (notebook opened, file saved, kernel starting, timer) first looks at
the credential cache: a stat, and a parse on a worker thread only when the
file changed. Only when the ticket is not fresh (the rule in
:mod:`pamkrb.lifecycle`) does it renew, through the lifecycle's single-flight
runner: from the keytab, or, with the hub's ticket broker, by fetching the
ticket the hub keeps fresh. After a failure, triggers wait out a growing
backoff before trying again. Triggers never raise: a failed renewal is
recorded and reported, the current ticket is kept, and whatever the user was
doing goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Any, Callable

from . import _native, lifecycle
from .exceptions import PamkrbError
from .lifecycle import TicketSettings

log = logging.getLogger(__name__)


def renew_from_keytab(settings: TicketSettings, deadline: float) -> Any:
    """Without the broker: a kinit from the keytab, as the user, installed at
    the cache. Blocks; returns the native Installation."""
    return _native.obtain_ticket(
        settings.principal,
        settings.keytab,
        settings.ccache,
        lifetime=settings.ticket_lifetime,
        deadline=deadline,
    )


def renew_from_cache(settings: TicketSettings, deadline: float) -> Any:
    """A password ticket without the broker: a TGS renewal of the cache's own
    ticket, as the user, until its renewable life ends (then the user signs
    in again: TicketNotRenewable)."""
    return _native.renew_ticket(settings.principal, settings.ccache, deadline=deadline)


def source_for(settings: TicketSettings) -> Callable[[TicketSettings, float], Any]:
    """Where this server's renewals come from."""
    if settings.broker:
        from .delivery import fetch_from_hub

        return fetch_from_hub
    if settings.source == lifecycle.SOURCE_PASSWORD:
        return renew_from_cache
    return renew_from_keytab


class TicketRefresher:
    """Renews one credential cache when it runs low, and reports its state."""

    def __init__(
        self,
        settings: TicketSettings,
        *,
        logger: logging.Logger | logging.LoggerAdapter = log,
        clock: Callable[[], float] = time.time,
        source: Callable[[TicketSettings, float], Any] | None = None,
        on_renewal: Callable[[str, str, float], None] | None = None,
        on_check: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.log = logger
        self.clock = clock
        self.source = source or source_for(settings)
        # Called with (trigger, result, seconds) after each renewal attempt;
        # the metrics hook.
        self.on_renewal = on_renewal
        self.on_check = on_check
        self.triggers: collections.Counter[str] = collections.Counter()
        self.renewals = 0
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self._info = None
        self._stat_key: tuple | None = None
        self._inspect_error: str | None = None
        self._flight = lifecycle.SingleFlight("pamkrb-renew")
        self._warned_settings = False
        # Failures in a row, and the monotonic time before which triggers do
        # not try again.
        self.failures = 0
        self._retry_at = 0.0

    # -- reading the cache ---------------------------------------------------

    async def look(self):
        """The cache's ticket, or None. A stat when the cache has not changed
        since the last look; the read and parse run off the event loop."""
        path = self.settings.ccache
        try:
            st = os.stat(path)
        except OSError as e:
            self._info, self._stat_key = None, None
            self._inspect_error = f"cannot read {path}: {e.strerror}"
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_uid, st.st_mode)
        if key == self._stat_key:
            return self._info
        try:
            self._info = await asyncio.to_thread(lifecycle.call_native, _native.inspect_ticket, path)
            self._inspect_error = None
        except PamkrbError as e:
            # Someone else's file, a wrong mode, garbage: no ticket, renew.
            self._info = None
            self._inspect_error = str(e)
        self._stat_key = key
        self._warn_about_settings()
        return self._info

    def _warn_about_settings(self) -> None:
        if self._warned_settings or self._info is None:
            return
        self._warned_settings = True
        lifetime = self._info.expires_at - self._info.starts_at
        for problem in self.settings.problems(lifetime):
            self.log.warning("pamkrb: %s", problem)

    def is_fresh(self, info) -> bool:
        s = self.settings
        return lifecycle.is_fresh(info, s.principal, s.refresh_margin, self.clock())

    def next_check_delay(self) -> float:
        """Seconds until the timer should look again (from the last look);
        after failures, not before the backoff is over."""
        s = self.settings
        delay = lifecycle.next_check_delay(self._info, s.refresh_margin, s.refresh_interval, self.clock())
        if self.failures:
            delay = max(delay, self._retry_at - time.monotonic())
        return delay

    # -- triggers --------------------------------------------------------------

    async def trigger(self, reason: str) -> None:
        """Make sure the ticket is fresh; never raises."""
        self.triggers[reason] += 1
        if self.on_check is not None:
            self.on_check(reason)
        try:
            if not self.is_fresh(await self.look()) and time.monotonic() >= self._retry_at:
                await self.renew(reason)
        except Exception:  # a trigger must never break a save or an open
            self.log.exception("pamkrb: unexpected error in the %s trigger", reason)

    async def renew(self, reason: str) -> bool:
        """Renew now; concurrent callers, and callers after one timed out,
        share the running attempt. Returns whether it succeeded in time."""
        started = time.perf_counter()
        timeout = self.settings.kdc_timeout
        try:
            installed = await self._flight.run(
                "ticket", lambda deadline: self.source(self.settings, deadline), timeout, "ticket renewal"
            )
        except PamkrbError as e:
            self.last_error = str(e)
            self.failures += 1
            wait = lifecycle.failure_backoff(self.failures)
            self._retry_at = time.monotonic() + wait
            self.log.warning(
                "pamkrb: ticket renewal (%s) failed (%d in a row; next try in %.0f s): %s",
                reason,
                self.failures,
                wait,
                e,
            )
            self._report(reason, "failure", started)
            return False
        info = installed.ticket
        self.failures = 0
        self._retry_at = 0.0
        self.renewals += 1
        self.last_refresh = self.clock()
        self.last_error = None
        self.log.info(
            "pamkrb: renewed the ticket of %s (%s); valid until %s",
            info.principal,
            reason,
            lifecycle.iso_time(info.expires_at),
        )
        self._report(reason, "success", started)
        await self.look()
        return True

    async def signed_in(self) -> None:
        """The user signed in again and a new ticket is in place: forget the
        failures and look at it now."""
        self.failures = 0
        self._retry_at = 0.0
        self.last_error = None
        self.last_refresh = self.clock()
        self.renewals += 1
        await self.look()

    def _report(self, reason: str, result: str, started: float) -> None:
        if self.on_renewal is not None:
            try:
                self.on_renewal(reason, result, time.perf_counter() - started)
            except Exception:
                self.log.exception("pamkrb: renewal hook failed")

    # -- status ------------------------------------------------------------------

    async def status(self) -> dict:
        info = await self.look()
        s = self.settings
        now = self.clock()
        password = s.source == lifecycle.SOURCE_PASSWORD
        state = lifecycle.ticket_state(info, s.principal, s.refresh_margin, now, self.last_error, password=password)
        return lifecycle.status(
            state,
            info=info if info is not None and info.principal == s.principal else None,
            principal=s.principal,
            ccache=s.ccache,
            now=now,
            refresh_margin=s.refresh_margin,
            last_refresh=self.last_refresh,
            last_error=self.last_error or (None if info else self._inspect_error),
            renewals=self.renewals,
            triggers=self.triggers,
            renewed_by=s.renewed_by,
            source=s.source,
            login_required_at=(info.renew_until or info.expires_at) if password and info is not None else None,
            warn_before=s.warn_before if password else None,
        )
