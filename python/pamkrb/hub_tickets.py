"""The hub's side of keeping tickets: who each user is for Kerberos, one
:class:`~pamkrb.keeper.TicketKeeper` per user (all sharing the hub's single
flight), the users whose servers run, the broker's schedule, and the end of
a ticket when the last server stops.

The authenticator's hooks (login, spawn, refresh, stop, delete) and the
ticket API call in here; the settings are the authenticator's traits.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _native, audit, lifecycle
from ._native import TicketInfo
from .broker import TicketBroker
from .exceptions import (
    CredentialCacheError,
    KerberosError,
    KeytabError,
    NativePanic,
    TemplateError,
    TicketFormatError,
)
from .keeper import KeepingRules, Target, TicketKeeper, shown
from .lifecycle import TicketSettings, UserPaths

if TYPE_CHECKING:
    from .authenticator import PAMKerberosAuthenticator

# What can go wrong between a successful PAM login and a ticket in place;
# KeyError is pwd's "no such user".
TICKET_ERRORS = (
    KerberosError,
    KeytabError,
    CredentialCacheError,
    TicketFormatError,
    TemplateError,
    NativePanic,
    KeyError,
)


def explain(error: Exception, username: str) -> str:
    """What went wrong, for the hub log."""
    if isinstance(error, KeyError):
        return f"user {shown(username)} is not in the password database"
    return str(error)


class HubTickets:
    """Every user's ticket on the hub, by the authenticator's settings."""

    def __init__(self, settings: PAMKerberosAuthenticator) -> None:
        self.settings = settings
        self.log = settings.log
        self._flight = lifecycle.SingleFlight("pamkrb-kinit")
        # The admin page's looks at caches: a thread and a deadline per user.
        self._looks = lifecycle.SingleFlight("pamkrb-look")
        self._keepers: dict[str, TicketKeeper] = {}
        self._broker: TicketBroker | None = None
        # Users with a server the hub started (JupyterHub's User objects):
        # whether a ticket is still wanted is decided from their spawners.
        self._served: dict[str, Any] = {}
        # The hub's events go to JupyterHub's EventLogger (its app's eventlog).
        self.audit = audit.Audit(
            lambda: getattr(settings.parent, "eventlog", None),
            audit.emitter("hub", str(getattr(settings.parent, "base_url", ""))),
        )

    # -- who the user is ---------------------------------------------------------------

    def resolve_user(self, username: str) -> UserPaths:
        """The user's principal, keytab and cache (pamkrb.lifecycle)."""
        s = self.settings
        return lifecycle.resolve_user(
            username,
            principal_template=s.principal_template,
            keytab_template=s.keytab_template,
            ccache_template=s.ccache_template,
            realm=s.realm,
        )

    def credential_source_of(self, paths: UserPaths) -> str:
        """Where this user's new tickets come from (credential_source)."""
        if self.settings.credential_source == "auto":
            # A stat as root, on the attempt's thread.
            return lifecycle.SOURCE_KEYTAB if os.path.lexists(paths.keytab) else lifecycle.SOURCE_PASSWORD
        return str(self.settings.credential_source)

    def _target(self, username: str) -> Target:
        """What the hub keeps for the user; runs on the attempt's thread."""
        paths = self.resolve_user(username)
        return Target(
            username=paths.username,
            principal=paths.principal,
            ccache=paths.ccache,
            source=self.credential_source_of(paths),
            keytab=paths.keytab,
            uid=paths.uid,
            gid=paths.gid,
            fallback=lifecycle.fallback_ccache(self.settings.fallback_ccache_dir, paths.uid),
        )

    def server_settings(self, target: Target, *, sign_in_by_reload: bool = False) -> TicketSettings:
        """What the user's server needs to keep the ticket the hub installed
        (``target`` as an attempt left it: with the KDC's name for the user);
        ``sign_in_by_reload``: that ticket was delegated by single sign-on."""
        s = self.settings
        keeper = self._keepers.get(target.username)
        return TicketSettings(
            principal=target.principal,
            keytab=target.keytab,
            ccache=target.ccache,
            refresh_margin=s.refresh_margin,
            refresh_interval=s.refresh_interval,
            kdc_timeout=s.kdc_timeout,
            ticket_lifetime=s.ticket_lifetime,
            renewable_lifetime=s.renewable_lifetime,
            broker=s.ticket_broker,
            source=target.source,
            warn_before=s.warn_before,
            retain_after_stop=s.retain_ticket_after_stop,
            password_expires_at=keeper.password_expires_at if keeper is not None else None,
            sign_in_by_reload=sign_in_by_reload,
        )

    # -- keeping ---------------------------------------------------------------------------

    def keeper(self, username: str) -> TicketKeeper:
        """The keeper of the user's ticket."""
        s = self.settings
        rules = KeepingRules(
            s.refresh_margin,
            s.kdc_timeout,
            s.ticket_lifetime,
            s.renewable_lifetime,
            enterprise_principals=s.enterprise_principals,
            fast_armor_keytab=s.fast_armor_keytab,
        )
        keeper = self._keepers.get(username)
        if keeper is None:
            locate = partial(self._target, username)
            keeper = TicketKeeper(
                username,
                locate,
                rules,
                flight=self._flight,
                logger=self.log,
                warn_about_keytabs=True,
                audit=self.audit,
            )
            self._keepers[username] = keeper
        keeper.rules = rules
        return keeper

    async def ensure_fresh(self, username: str, trigger: str = "refresh") -> TicketInfo:
        """Renew the user's ticket unless it is fresh (pamkrb.lifecycle's
        rule); the TicketInfo of the cache, whether renewed or not."""
        return (await self.keeper(username).refresh(trigger)).info

    async def look(self, username: str) -> tuple[Target, TicketInfo | None, str | None]:
        """What the user's cache holds, for the admin page: the target, its
        ticket (None if unreadable, or not the user's) and why unreadable.
        Nothing is renewed; the cache's bytes never leave the native core."""
        keeper = self._keepers.get(username)
        in_use = keeper.in_use if keeper is not None else None

        def attempt(deadline: float) -> tuple[Target, TicketInfo | None, str | None]:
            target = self._target(username)
            if keeper is not None:
                target = dataclasses.replace(target, principal=keeper.principal_of(target))
            path = in_use or target.ccache
            try:
                info = _native.inspect_ticket(path, uid=target.uid)
            except (CredentialCacheError, TicketFormatError) as e:
                return target, None, str(e)
            return target, (info if info.is_for(target.principal) else None), None

        return await self._looks.run(username, attempt, self.settings.kdc_timeout, "a look at the ticket")

    def attempt_running(self, username: str) -> bool:
        """Whether a Kerberos attempt for the user is still in flight (one
        that timed out may be: it installs nothing when it ends)."""
        return self._flight.running(username)

    # -- for whom ----------------------------------------------------------------------------

    def serve(self, user: Any) -> None:
        """A server of the user runs (or starts): keep their ticket for it."""
        self._served[user.name] = user

    def stop_serving(self, username: str) -> None:
        self._served.pop(username, None)

    def serving(self, username: str) -> bool:
        """Whether a server the hub started for the user is running (or
        starting): a ticket is kept fresh for a server, never for a token."""
        user = self._served.get(username)
        if user is None:
            return False
        return any(s.active and s.pending != "stop" for s in user.spawners.values())

    @property
    def broker(self) -> TicketBroker:
        if self._broker is None:
            s = self.settings
            self._broker = TicketBroker(
                self.keeper,
                margin=s.refresh_margin,
                interval=s.refresh_interval,
                errors=TICKET_ERRORS,
                serving=self.serving,
                logger=self.log,
            )
        return self._broker

    async def forget(self, username: str, why: str, *, destroy: bool | None = None) -> None:
        """Stop renewing the user's ticket and (unless retained) destroy the
        caches pamkrb installed for them, after any attempt in flight."""
        if self._broker is not None:
            self._broker.untrack(username)
        if destroy is None:
            destroy = not self.settings.retain_ticket_after_stop
        keeper = self._keepers.pop(username, None)
        if not destroy:
            return
        keeper = keeper or self.keeper(username)
        self._keepers.pop(username, None)
        try:
            removed = await keeper.destroy(lambda target: {target.ccache, target.fallback or target.ccache}, why)
        except TICKET_ERRORS as e:
            self.log.warning("Could not destroy the Kerberos ticket of %s (%s): %s", shown(username), why, e)
            return
        self.log.info(
            "Stopped keeping the Kerberos ticket of %s (%s); destroyed: %s",
            shown(username),
            why,
            ", ".join(removed) or "nothing of theirs was left",
        )
