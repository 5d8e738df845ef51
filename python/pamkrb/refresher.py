"""Keeping one user's ticket fresh from inside their server.

A trigger (notebook opened, file saved, kernel starting, timer) first looks at
the credential cache in-process; only when less than the refresh margin is
left does it renew from the keytab, on a worker thread, with at most one
renewal in flight. Triggers never raise: a failed renewal is recorded and
reported, and whatever the user was doing goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from . import _native
from .exceptions import PamkrbError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefresherConfig:
    principal: str
    keytab: str
    ccache: str
    refresh_margin: int = 3600
    ticket_lifetime: int | None = None
    # libkrb5 keeps trying a silent KDC for about 30 s; a trigger stops
    # waiting after this long (the attempt finishes in the background).
    kdc_timeout: float = 15.0


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class TicketRefresher:
    """Renews one credential cache from one keytab when it runs low."""

    def __init__(
        self,
        config: RefresherConfig,
        *,
        logger: logging.Logger | logging.LoggerAdapter = log,
        clock: Callable[[], float] = time.time,
        on_renewal: Callable[[str, str, float], None] | None = None,
        on_check: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.log = logger
        self.clock = clock
        # Called with (trigger, result, seconds) after each renewal attempt;
        # the metrics hook.
        self.on_renewal = on_renewal
        self.on_check = on_check
        self.triggers: collections.Counter[str] = collections.Counter()
        self.renewals = 0
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self._info = None
        self._stat_key = None
        self._inspect_error: str | None = None
        self._thread: asyncio.Future | None = None

    # -- reading the cache ---------------------------------------------------

    def inspect(self):
        """The cache's ticket, or None. Costs a stat when the cache has not
        changed since the last look, and a few microseconds of parsing when it
        has (an atomic replacement changes the inode)."""
        try:
            st = os.stat(self.config.ccache)
        except OSError as e:
            self._info, self._stat_key = None, None
            self._inspect_error = f"cannot read {self.config.ccache}: {e.strerror}"
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._stat_key:
            return self._info
        try:
            self._info = _native.inspect_ticket(self.config.ccache)
            self._inspect_error = None
        except PamkrbError as e:
            self._info = None
            self._inspect_error = str(e)
        self._stat_key = key
        return self._info

    def seconds_left(self, info=None) -> float | None:
        info = info if info is not None else self.inspect()
        if info is None:
            return None
        return info.expires_at - self.clock()

    def needs_renewal(self, info) -> bool:
        if info is None or info.principal != self.config.principal:
            return True
        return info.expires_at - self.clock() < self.config.refresh_margin

    # -- triggers --------------------------------------------------------------

    async def trigger(self, reason: str) -> None:
        """Make sure the ticket is fresh; never raises."""
        self.triggers[reason] += 1
        if self.on_check is not None:
            self.on_check(reason)
        try:
            if self.needs_renewal(self.inspect()):
                await self.renew(reason)
        except Exception:  # a trigger must never break a save or an open
            self.log.exception("pamkrb: unexpected error in the %s trigger", reason)

    async def renew(self, reason: str) -> bool:
        """Renew from the keytab now; concurrent callers share one kinit.
        Returns whether it succeeded within kdc_timeout."""
        cfg = self.config
        if self._thread is None:
            # One kinit at a time: concurrent triggers, and triggers while a
            # kinit that outlived its time-out still waits on a silent KDC,
            # share the running one.
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            self._thread = loop.run_in_executor(
                None,
                lambda: _native.obtain_ticket(cfg.principal, cfg.keytab, cfg.ccache, lifetime=cfg.ticket_lifetime),
            )
            self._thread.add_done_callback(lambda done: self._finished(done, reason, started))
        try:
            await asyncio.wait_for(asyncio.shield(self._thread), cfg.kdc_timeout)
        except asyncio.TimeoutError:
            self.last_error = f"no ticket within {cfg.kdc_timeout:g} s: the KDC did not answer"
            self.log.warning("pamkrb: ticket renewal (%s): %s", reason, self.last_error)
            return False
        except PamkrbError:
            return False
        return True

    def _finished(self, done: asyncio.Future, reason: str, started: float) -> None:
        self._thread = None
        error = done.exception()
        if error is not None:
            self.last_error = str(error)
            self.log.warning("pamkrb: ticket renewal (%s) failed: %s", reason, error)
            self._report(reason, "failure", started)
            return
        info = done.result()
        self.renewals += 1
        self.last_refresh = self.clock()
        self.last_error = None
        self.log.info(
            "pamkrb: renewed the ticket of %s (%s); valid until %s",
            info.principal,
            reason,
            _iso(info.expires_at),
        )
        self._report(reason, "success", started)

    def _report(self, reason, result, started):
        if self.on_renewal is not None:
            try:
                self.on_renewal(reason, result, time.perf_counter() - started)
            except Exception:
                self.log.exception("pamkrb: renewal hook failed")

    # -- status ------------------------------------------------------------------

    def status(self) -> dict:
        info = self.inspect()
        now = self.clock()
        margin = self.config.refresh_margin
        if info is None:
            state = "missing"
        elif self.last_error is not None and info.expires_at - now < margin:
            state = "error"
        elif info.expires_at <= now:
            state = "expired"
        elif info.expires_at - now < margin:
            state = "expiring"
        else:
            state = "valid"
        if state == "missing" and self.last_error is not None:
            state = "error"
        return {
            "state": state,
            "principal": info.principal if info else self.config.principal,
            "ccache": self.config.ccache,
            "expires_at": _iso(info.expires_at) if info else None,
            "seconds_left": max(0, int(info.expires_at - now)) if info else None,
            "renew_until": _iso(info.renew_until) if info and info.renew_until else None,
            "last_refresh": _iso(self.last_refresh),
            "last_error": self.last_error or (None if info else self._inspect_error),
            "refresh_margin": margin,
            "renewals": self.renewals,
            "triggers": dict(self.triggers),
        }


def disabled_status(reason: str) -> dict:
    return {
        "state": "disabled",
        "principal": None,
        "ccache": None,
        "expires_at": None,
        "seconds_left": None,
        "renew_until": None,
        "last_refresh": None,
        "last_error": reason,
        "refresh_margin": None,
        "renewals": 0,
        "triggers": {},
    }
