"""Keeping one user's ticket fresh from inside their server: when to act.

A trigger (notebook opened, file saved, kernel starting, timer) first looks at
the credential cache: a stat, and a parse on a worker thread only when the
file changed. Only when the ticket is not fresh (the rule in
:mod:`pamkrb.lifecycle`) does it hand over to the server's
:class:`~pamkrb.keeper.TicketKeeper`, which renews the way the hub does: by
TGS while the ticket is renewable, else from the keytab, or, with the hub's
ticket broker, by fetching the ticket the hub keeps fresh. After a failure,
triggers wait out a growing backoff before trying again. Triggers never
raise: a failed renewal is recorded and reported, the current ticket is kept,
and whatever the user was doing goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from . import _native, delivery, lifecycle, metrics
from ._native import Installation, TicketInfo
from .audit import Audit
from .exceptions import PamkrbError
from .keeper import SOURCE_HUB, KeepingRules, Obtain, Target, TicketKeeper
from .lifecycle import TicketSettings

log = logging.getLogger(__name__)


def target_of(settings: TicketSettings) -> Target:
    """What the server keeps: its own cache, as the user; new tickets from
    the hub with the broker, else from the keytab or (no keytab) a sign-in."""
    source = SOURCE_HUB if settings.broker else settings.source
    return Target(
        # JupyterHub names the server's user; the principal stands in elsewhere.
        username=os.environ.get("JUPYTERHUB_USER", settings.principal),
        principal=settings.principal,
        ccache=settings.ccache,
        source=source,
        keytab=settings.keytab,
    )


def reload_url(environ: Mapping[str, str] = os.environ) -> str:
    """The hub page whose reload brings a fresh single sign-on ticket: the
    login page asked to negotiate again (pamkrb.spnego.RENEW_ARGUMENT), and
    back to this server."""
    base = environ.get("JUPYTERHUB_BASE_URL", "/")
    base = base if base.endswith("/") else base + "/"
    query = urllib.parse.urlencode({"negotiate": "1", "next": environ.get("JUPYTERHUB_SERVICE_PREFIX", base)})
    return f"{base}hub/login?{query}"


def reload_message(url: str) -> str:
    """What a user whose delegated ticket ran out reads (the status's
    last_error, which the status bar's tooltip shows)."""
    return f"single sign-on ticket ran out: sign in again by reloading {url} (or with your password: click)"


class TicketRefresher:
    """Renews one credential cache when it runs low, and reports its state."""

    def __init__(
        self,
        settings: TicketSettings,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
        clock: Callable[[], float] = time.time,
        source: Obtain | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.settings = settings
        self.log = logger
        self.clock = clock
        target = target_of(settings)
        rules = KeepingRules(
            refresh_margin=settings.refresh_margin,
            kdc_timeout=settings.kdc_timeout,
            ticket_lifetime=settings.ticket_lifetime,
            renewable_lifetime=settings.renewable_lifetime,
        )
        self.keeper = TicketKeeper(
            "ticket",
            lambda: target,
            rules,
            flight=lifecycle.SingleFlight("pamkrb-renew"),
            logger=logger,
            count_checks=False,
            source=source,
            audit=audit,
        )
        self.triggers: collections.Counter[str] = collections.Counter()
        self.renewals = 0
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self._info: TicketInfo | None = None
        self._stat_key: tuple[int, ...] | None = None
        self._inspect_error: str | None = None
        self._warned_settings = False
        # Failures in a row, and the monotonic time before which triggers do
        # not try again.
        self.failures = 0
        self._retry_at = 0.0

    # -- reading the cache ---------------------------------------------------

    async def current_ticket(self) -> TicketInfo | None:
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

    def is_fresh(self, info: TicketInfo | None) -> bool:
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
        metrics.count_check(reason)
        try:
            if not self.is_fresh(await self.current_ticket()) and time.monotonic() >= self._retry_at:
                await self.renew(reason)
        except Exception:  # a trigger must never break a save or an open
            self.log.exception("pamkrb: unexpected error in the %s trigger", reason)

    async def renew(self, reason: str) -> bool:
        """Renew now; concurrent callers, and callers after one timed out,
        share the running attempt. Returns whether it succeeded in time."""
        try:
            in_place = await self.keeper.refresh(reason)
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
            return False
        info = in_place.info
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
        await self.current_ticket()
        return True

    async def sign_in(self, password: str) -> None:
        """Sign in again through the hub (PAM, then a new ticket) and install
        the ticket it answers with, in the keeper's flight: never beside a
        renewal of the same cache. Raises TicketDeliveryError (a wrong
        password: status 403) or the native errors of the install."""
        s = self.settings

        def through_the_hub(target: Target, deadline: float) -> Installation:
            return delivery.sign_in(target.principal, target.ccache, password, deadline)

        await self.keeper.replace("sign-in", obtain=through_the_hub, timeout=s.kdc_timeout * 2)
        self.failures = 0
        self._retry_at = 0.0
        self.last_error = None
        self.last_refresh = self.clock()
        self.renewals += 1
        await self.current_ticket()

    # -- status ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        info = await self.current_ticket()
        s = self.settings
        now = self.clock()
        password = s.source == lifecycle.SOURCE_PASSWORD
        state = lifecycle.ticket_state(info, s.principal, s.refresh_margin, now, self.last_error, password=password)
        last_error = self.last_error or (None if info else self._inspect_error)
        if state is lifecycle.TicketState.LOGIN_REQUIRED and s.sign_in_by_reload:
            # A status-bar of any version shows last_error: the one way to
            # say "reload" without a new field in the status contract.
            last_error = reload_message(reload_url())
        return lifecycle.status(
            state,
            info=info if info is not None and info.is_for(s.principal) else None,
            principal=s.principal,
            ccache=s.ccache,
            now=now,
            refresh_margin=s.refresh_margin,
            last_refresh=self.last_refresh,
            last_error=last_error,
            renewals=self.renewals,
            triggers=self.triggers,
            renewed_by=s.renewed_by,
            source=s.source,
            login_required_at=(info.renew_until or info.expires_at) if password and info is not None else None,
            warn_before=s.warn_before if password else None,
            password_expires_at=s.password_expires_at,
        )
