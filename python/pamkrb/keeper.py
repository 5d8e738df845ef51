"""TicketKeeper: keeps one user's ticket, by one strategy, wherever it runs.

The hub (login, spawn, refresh, the ticket broker, the ticket API) and the
user's server (the pamkrb server extension) keep a ticket the same way:

1. the cache holds the user's ticket with more than the margin left
   (:func:`pamkrb.lifecycle.is_fresh`): nothing to do;
2. the KDC would renew it with more than the margin left
   (``TicketInfo.can_renew``, decided by the native core):
   a TGS renewal, one cheap request that needs neither keytab nor password;
3. otherwise a new ticket from the source: the keytab, the user's password
   (only at a login or a sign-in: it is never stored), or the hub (a server
   fed by the ticket broker, which never talks to the KDC itself).

They differ only in the :class:`Target`: whose ticket, where it goes (as
root for a uid, or as the user), and where new tickets come from. Each
attempt runs through a :class:`~pamkrb.lifecycle.SingleFlight`: at most one
per user at a time, on its own thread, with a deadline the native calls
honour, so an attempt its callers gave up on installs nothing. The keeper
also counts what it does (:mod:`pamkrb.metrics`) and reports what it found
at the cache path (plants) and keytabs others can read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _native, audit, lifecycle, metrics
from ._native import Installation, TicketInfo
from .exceptions import (
    CredentialCacheError,
    KerberosError,
    KeytabError,
    LoginRequired,
    TicketFormatError,
    TicketNotRenewable,
)

SOURCE_HUB = "hub"
"""A server fed by the ticket broker: new tickets come from the hub's API."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Whose ticket an attempt keeps, where it goes, and where new ones come from."""

    username: str  # for log lines only
    principal: str
    ccache: str  # the path in use (the fallback after a plant)
    source: str  # lifecycle.SOURCE_KEYTAB, lifecycle.SOURCE_PASSWORD or SOURCE_HUB
    keytab: str = ""
    # None: the process's own (the user's server runs as the user).
    uid: int | None = None
    gid: int | None = None
    # Where the ticket goes when ``ccache`` cannot be replaced; None: nowhere else.
    fallback: str | None = None


# A new ticket for a target, installed before the deadline (time.monotonic()).
Obtain = Callable[[Target, float], Installation]


@dataclass(frozen=True)
class TicketInPlace:
    """What an attempt left: the target (with the cache path now in use),
    its ticket, and (when asked for) the cache's bytes."""

    target: Target
    info: TicketInfo
    data: bytes | None = None


@dataclass(frozen=True)
class KeepingRules:
    """The settings every keeper follows."""

    refresh_margin: float
    kdc_timeout: float
    ticket_lifetime: int | None = None
    renewable_lifetime: int | None = None
    # Password tickets: the principal is an enterprise name (a UPN).
    enterprise_principals: bool = False
    # Password tickets: armor every request (FAST) with this keytab's key; "" for none.
    fast_armor_keytab: str = ""


class TicketKeeper:
    """Keeps one user's ticket (see the module's docstring).

    ``locate`` runs on the attempt's thread (it may read the password
    database or stat a keytab) and says what to keep. ``flight`` and ``key``
    name the single flight the attempts share: the hub's for all users,
    keyed by user name, or a server's own.
    """

    def __init__(
        self,
        key: str,
        locate: Callable[[], Target],
        rules: KeepingRules,
        *,
        flight: lifecycle.SingleFlight,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
        count_checks: bool = True,
        warn_about_keytabs: bool = False,
        source: Obtain | None = None,
        audit: audit.Audit | None = None,
    ) -> None:
        self.key = key
        self._locate = locate
        self.rules = rules
        self._flight = flight
        self.log = logger
        # The server counts every look at the trigger, stat included; the
        # hub counts the looks its attempts make.
        self._count_checks = count_checks
        # The hub reads keytabs as root and warns when others could read them.
        self._warn_about_keytabs = warn_about_keytabs
        # Instead of the target's own source (a benchmark's recording fetch).
        self._source = source
        # Where each attempt's outcome is reported (pamkrb.audit); None: nowhere.
        self.audit = audit
        # The cache path in use when it is not the target's own (the fallback
        # after a plant that could not be replaced).
        self.in_use: str | None = None
        # The KDC's name for the configured principal, learned from an AS
        # reply (canonicalization is always requested): (configured, canonical).
        self.canonical: tuple[str, str] | None = None
        self._configured = ""
        # When the user's password expires, as the KDC last reported it with
        # a password ticket (seconds since the epoch); None if never reported.
        self.password_expires_at: int | None = None

    def principal_of(self, target: Target) -> str:
        """The user's principal from now on: the KDC's canonical name for
        ``target.principal`` once an AS reply has told it (``ADAlice@REALM``
        asked, ``adalice@REALM`` answered; a UPN sent as an enterprise name),
        else the configured one. Freshness, TGS renewal, delivery and status
        all use this name, so a ticket the KDC renamed is never taken for a
        stranger's (which would mean an AS request on every check)."""
        if self.canonical is not None and self.canonical[0] == target.principal:
            return self.canonical[1]
        return target.principal

    async def refresh(self, trigger: str, *, read: bool = False, force: bool = False) -> TicketInPlace:
        """Keep the ticket fresh: renew it unless fresh, by TGS while it is
        renewable, else from the source. Shares a running attempt.
        ``read``: also read the cache's bytes inside the attempt, so that a
        cache on a hung file system holds only this user's attempt thread.
        ``force``: renew even a fresh ticket (an admin's "renew now"), after
        any attempt in flight."""
        return await self._run(
            lambda deadline: self._attempt(deadline, trigger, unless_fresh=True, read=read, force=force),
            exclusive=force,
        )

    async def replace(
        self,
        trigger: str,
        *,
        password: bytearray | None = None,
        obtain: Obtain | None = None,
        read: bool = False,
        timeout: float | None = None,
    ) -> TicketInPlace:
        """A new ticket whatever the cache holds (a login, a sign-in): from
        the source, ``password`` being what a password ticket is made from
        (a bytearray the native call wipes), or from ``obtain``. An attempt
        with either never shares a running one, which would discard what it
        carries: it waits for that one to end, then runs."""
        exclusive = password is not None or obtain is not None
        return await self._run(
            lambda deadline: self._attempt(
                deadline, trigger, unless_fresh=False, read=read, password=password, obtain=obtain
            ),
            exclusive=exclusive,
            timeout=timeout,
        )

    async def destroy(self, caches: Callable[[Target], set[str]], why: str = "stop") -> list[str]:
        """Remove the caches pamkrb installed for the user (``caches`` names
        them; the one in use is added), after any attempt in flight. The
        paths removed."""

        def attempt(deadline: float) -> list[str]:
            target = self._locate()
            paths = caches(target) | {self.in_use or target.ccache}
            self.in_use = None
            uid = os.geteuid() if target.uid is None else target.uid
            removed = [path for path in sorted(paths) if _native.destroy_cache(path, uid=uid)]
            self._report("destroyed", target, why, reason=why, paths=removed)
            return removed

        return await self._flight.run(self.key, attempt, self.rules.kdc_timeout, "the cache removal", exclusive=True)

    async def _run(
        self, attempt: Callable[[float], TicketInPlace], *, exclusive: bool = False, timeout: float | None = None
    ) -> TicketInPlace:
        limit = self.rules.kdc_timeout if timeout is None else timeout
        return await self._flight.run(self.key, attempt, limit, exclusive=exclusive)

    # -- one attempt, on its own thread ---------------------------------------------

    def _attempt(
        self,
        deadline: float,
        trigger: str,
        *,
        unless_fresh: bool,
        read: bool,
        password: bytearray | None = None,
        obtain: Obtain | None = None,
        force: bool = False,
    ) -> TicketInPlace:
        started = time.monotonic()
        target = self._locate()
        if self.in_use is not None:
            target = dataclasses.replace(target, ccache=self.in_use)
        self._configured = target.principal
        target = dataclasses.replace(target, principal=self.principal_of(target))
        try:
            return self._keep(target, deadline, trigger, started, unless_fresh, read, password, obtain, force)
        except Exception as e:
            self._report("refused", target, trigger, started=started, error=e)
            raise

    def _keep(
        self,
        target: Target,
        deadline: float,
        trigger: str,
        started: float,
        unless_fresh: bool,
        read: bool,
        password: bytearray | None,
        obtain: Obtain | None,
        force: bool,
    ) -> TicketInPlace:
        info = None
        if unless_fresh:
            if self._count_checks:
                metrics.count_check(trigger)
            target, current = self._current(target, trigger)
            now = time.time()
            if not force and lifecycle.is_fresh(current, target.principal, self.rules.refresh_margin, now):
                info = current
            elif target.source != SOURCE_HUB and current is not None:
                # A password ticket is renewed to the end of its renewable
                # life; a keytab can always start afresh.
                margin = self.rules.refresh_margin if target.source == lifecycle.SOURCE_KEYTAB else 0
                if current.can_renew(now, margin) and renewal_lengthens(current):
                    target, info = self._renew(target, trigger, deadline)
                    if info is not None:
                        self._report("renewed", target, trigger, method="tgs", info=info, started=started)
                elif target.source == lifecycle.SOURCE_PASSWORD and current.expires_at > now:
                    # Already valid until its renew-till: a renewal would
                    # return the same ticket, and only a sign-in gives a
                    # new one. It is kept (and used) until it expires.
                    info = current
        if info is None:
            kind = "renewal" if unless_fresh else "acquisition"
            target, info = self._obtain(target, kind, trigger, deadline, obtain or self._source_of(target, password))
            method = SOURCE_HUB if obtain is not None else target.source
            action = "renewed" if unless_fresh else "issued"
            self._report(action, target, trigger, method=method, info=info, started=started)
        data = _native.read_cache(target.ccache, uid=target.uid) if read else None
        return TicketInPlace(target, info, data)

    def _current(self, target: Target, trigger: str) -> tuple[Target, TicketInfo | None]:
        """The cache's ticket if the cache is the user's own and holds their
        principal, else None. A cache the user does not own (or with a loose
        mode, or links) is never taken for theirs: the native read refuses
        it, and it is replaced. When the usual path is unreadable and the
        fallback holds the user's ticket (a plant seen before a hub restart),
        that one is in use."""
        try:
            info = _native.inspect_ticket(target.ccache, uid=target.uid)
        except (CredentialCacheError, TicketFormatError) as e:
            fallback = target.fallback
            if fallback is not None and target.ccache != fallback:
                try:
                    found: TicketInfo | None = _native.inspect_ticket(fallback, uid=target.uid)
                except (CredentialCacheError, TicketFormatError):
                    found = None
                if found is not None and found.is_for(target.principal):
                    self.in_use = fallback
                    return dataclasses.replace(target, ccache=fallback), found
            self.log.info("Kerberos cache of %s needs a new ticket (%s): %s", shown(target.username), trigger, e)
            return target, None
        return target, (info if info.is_for(target.principal) else None)

    def _renew(self, target: Target, trigger: str, deadline: float) -> tuple[Target, TicketInfo | None]:
        """A TGS renewal of the cache's ticket; no ticket when the KDC will
        not renew it (the caller goes to the source). A password ticket's
        renewal that fails for another reason (the KDC is down) raises that
        reason: a sign-in would not help."""
        try:
            with metrics.timed("renewal", trigger):
                installed = _native.renew_ticket(
                    target.principal,
                    target.ccache,
                    uid=target.uid,
                    gid=target.gid,
                    deadline=deadline,
                    fallback=self._fallback(target),
                )
        except KerberosError as e:  # TicketNotRenewable too; a passed deadline fails the kinit as well
            if target.source == lifecycle.SOURCE_PASSWORD and not isinstance(e, TicketNotRenewable):
                raise
            self.log.info(
                "Renewing the ticket of %s failed (%s); a new one from the %s", shown(target.username), e, target.source
            )
            return target, None
        return self._installed(target, installed)

    def _source_of(self, target: Target, password: bytearray | None) -> Obtain:
        if self._source is not None:
            return self._source
        if target.source == lifecycle.SOURCE_KEYTAB:
            return self.from_keytab
        if target.source == SOURCE_HUB:
            return self.from_hub
        if password is None:
            raise LoginRequired(
                f"the ticket of {target.principal} can no longer be renewed and there is no keytab: "
                "the user must sign in again"
            )
        return self.with_password(password)

    def _obtain(
        self, target: Target, kind: str, trigger: str, deadline: float, obtain: Obtain
    ) -> tuple[Target, TicketInfo]:
        if target.source == lifecycle.SOURCE_KEYTAB and self._warn_about_keytabs:
            self._warn_about_keytab(target)
        with metrics.timed(kind, trigger):
            installed = obtain(target, deadline)
        return self._installed(target, installed)

    # -- the sources ------------------------------------------------------------------

    def from_keytab(self, target: Target, deadline: float) -> Installation:
        return _native.obtain_ticket(
            target.principal,
            target.keytab,
            target.ccache,
            uid=target.uid,
            gid=target.gid,
            lifetime=self.rules.ticket_lifetime,
            renew_lifetime=self.rules.renewable_lifetime,
            deadline=deadline,
            fallback=self._fallback(target),
        )

    def with_password(self, password: bytearray) -> Obtain:
        """A source that makes the ticket from ``password`` (wiped by the
        native call); renewable for renewable_lifetime, by default
        lifecycle.DEFAULT_PASSWORD_RENEWABLE_LIFETIME."""

        def obtain(target: Target, deadline: float) -> Installation:
            return _native.obtain_ticket_with_password(
                target.principal,
                password,
                target.ccache,
                uid=target.uid,
                gid=target.gid,
                lifetime=self.rules.ticket_lifetime,
                renew_lifetime=self.rules.renewable_lifetime or lifecycle.DEFAULT_PASSWORD_RENEWABLE_LIFETIME,
                deadline=deadline,
                fallback=self._fallback(target),
                enterprise=self.rules.enterprise_principals,
                armor_keytab=self.rules.fast_armor_keytab or None,
            )

        return obtain

    @staticmethod
    def from_hub(target: Target, deadline: float) -> Installation:
        from .delivery import fetch_from_hub

        return fetch_from_hub(target.principal, target.ccache, deadline)

    # -- reports ------------------------------------------------------------------------

    @staticmethod
    def _fallback(target: Target) -> str | None:
        return None if target.fallback == target.ccache else target.fallback

    def _installed(self, target: Target, installed: Installation) -> tuple[Target, TicketInfo]:
        """Report what the install replaced or could not replace; the target
        with the path the ticket is now at (and the principal the KDC named),
        and the ticket."""
        target = self._learn_from(target, installed)
        if installed.fallback_reason is not None:
            self._report_plant(target, "unreplaceable", "unknown", None, in_use=installed.ccache)
            metrics.count_plant("unreplaceable")
            self.log.warning(
                "Could not install the Kerberos ticket of %s at %s (%s): another local user may have "
                "planted something there (a FUSE mount, say). Using %s instead; the server gets that path.",
                shown(target.username),
                target.ccache,
                installed.fallback_reason,
                installed.ccache,
            )
        if installed.ccache != target.ccache:
            self.in_use = installed.ccache
            target = dataclasses.replace(target, ccache=installed.ccache)
        planted = installed.replaced
        if planted is not None:
            self._report_plant(target, planted.kind, lifecycle.owner_name(planted.owner_uid), planted.moved_to)
            metrics.count_plant(planted.kind)
            self.log.warning(
                "Replaced what was at the Kerberos cache of %s, %s: a %s owned by %s%s. "
                "Another local user may have planted it; it was not trusted or followed.",
                shown(target.username),
                target.ccache,
                planted.kind,
                lifecycle.owner_name(planted.owner_uid),
                f" (moved aside to {planted.moved_to})" if planted.moved_to else "",
            )
        return target, installed.ticket

    def _learn_from(self, target: Target, installed: Installation) -> Target:
        """What an AS reply tells about the user: the KDC's canonical name
        for the principal, and when the password expires."""
        if installed.password_expires_at is not None:
            self.password_expires_at = installed.password_expires_at
            days = (installed.password_expires_at - time.time()) / 86400
            self.log.info(
                "The password of %s (%s) expires in %.0f days, at %s",
                shown(target.username),
                target.principal,
                max(days, 0),
                lifecycle.local_time(installed.password_expires_at),
            )
        ticket = installed.ticket
        if ticket.is_for(target.principal):
            return target
        # Only an initial ticket can carry another name: a renewal and a
        # delivered cache are checked against target.principal natively.
        self.canonical = (self._configured or target.principal, ticket.principal)
        self.log.info(
            "The KDC names %s %s (canonical name); their tickets are kept under that name",
            target.principal,
            ticket.principal,
        )
        return dataclasses.replace(target, principal=ticket.principal)

    def _report(
        self,
        action: str,
        target: Target,
        trigger: str,
        *,
        method: str | None = None,
        info: TicketInfo | None = None,
        started: float | None = None,
        error: Exception | None = None,
        **fields: Any,
    ) -> None:
        """One ticket event (pamkrb.audit.TICKET): names, times and the
        error's message, never a secret."""
        if self.audit is None:
            return
        self.audit.emit(
            audit.TICKET,
            action=action,
            user=target.username,
            principal=target.principal,
            source=target.source,
            trigger=trigger,
            method=method,
            expires_at=audit.when(info.expires_at) if info else None,
            renew_till=audit.when(info.renew_until) if info and info.renew_until else None,
            duration_ms=round((time.monotonic() - started) * 1000, 3) if started is not None else None,
            kdc_error_code=getattr(error, "code", None),
            reason=str(error)[:500] if error is not None else fields.pop("reason", None),
            **fields,
        )

    def _report_plant(
        self, target: Target, kind: str, owner: str, moved_to: str | None, *, in_use: str | None = None
    ) -> None:
        """One plant event (pamkrb.audit.PLANT) at ``target.ccache``."""
        if self.audit is not None:
            self.audit.emit(
                audit.PLANT,
                user=target.username,
                principal=target.principal,
                kind=kind,
                owner=owner,
                path=target.ccache,
                moved_to=moved_to,
                in_use=in_use or target.ccache,
            )

    def _warn_about_keytab(self, target: Target) -> None:
        """A keytab is a password: others must not be able to read it."""
        if target.uid is None or target.gid is None:
            return
        try:
            keytab = _native.inspect_keytab(target.keytab)
        except KeytabError:
            return  # the kinit that follows reports it with the reason
        paths = lifecycle.UserPaths(
            target.username, target.uid, target.gid, "", target.principal, target.keytab, target.ccache
        )
        for problem in lifecycle.keytab_problems(keytab, paths):
            # A missing key fails the kinit with its own message.
            if problem.what in ("owner", "mode"):
                self.log.warning("Keytab %s of %s: %s", target.keytab, shown(target.username), problem.detail)


def renewal_lengthens(info: TicketInfo) -> bool:
    """Whether a TGS renewal would move the expiry: the KDC caps a renewed
    ticket at its renew-till, so one that already ends there gains nothing
    (renewing it on every check would only load the KDC)."""
    return info.renew_until is not None and info.renew_until - info.expires_at >= 1


def shown(name: str) -> str:
    """A user-supplied name fit for a log line: truncated, never the whole input."""
    if len(name) > 32:
        return f"{name[:16]!r}...({len(name)} chars)"
    return repr(name)
