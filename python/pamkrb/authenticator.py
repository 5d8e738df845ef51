"""PAMKerberosAuthenticator: JupyterHub's PAMAuthenticator plus a Kerberos
ticket for each user, kept fresh and handed to their server.

This class holds the settings, ``authenticate`` and JupyterHub's hooks. The
tickets are kept by :class:`pamkrb.keeper.TicketKeeper` (one per user), the
broker's schedule by :mod:`pamkrb.broker`, and the ticket API's HTTP by
:mod:`pamkrb.ticket_api`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from functools import partial
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from tornado import web
from traitlets import Bool, Bunch, CaselessStrEnum, Float, Integer, TraitError, Unicode, default, validate

from . import _native, lifecycle, login
from .exceptions import (
    AuthenticationDenied,
    KerberosError,
    KerberosPasswordRejected,
    NativePanic,
    PAMSystemError,
    TemplateError,
)
from .hub_tickets import TICKET_ERRORS, HubTickets, explain
from .keeper import shown
from .pam_stack import unsafe_service_reason
from .passwords import PendingPasswords
from .ticket_api import TicketAPIHandler

SPAWN_REFUSED = "No Kerberos ticket could be obtained for your server; please contact your administrator."

KERBEROS_PASSWORD_REFUSED = (
    "Your password was accepted, but the Kerberos server did not accept it: your Kerberos password "
    "differs from your login password. Please contact your administrator."
)

LOGIN_REFUSED = (
    "Your password was accepted, but no Kerberos ticket could be obtained for you, "
    "so Spark and Hadoop would not work. Please contact your administrator."
)


class PAMKerberosAuthenticator(PAMAuthenticator):  # type: ignore[misc]  # JupyterHub is untyped
    """Authenticate local users with PAM, then give each a Kerberos ticket.

    A drop-in for :class:`jupyterhub.auth.PAMAuthenticator`: every option of
    that class keeps its meaning. After a successful login the user gets a
    ticket-granting ticket (in-process, through libkrb5) from their keytab or
    their login password (credential_source), written atomically to their
    credential cache, owned by the user with mode 0600. The spawned server
    and its kernels get ``KRB5CCNAME`` pointing at that cache.
    """

    principal_template = Unicode(
        lifecycle.DEFAULT_PRINCIPAL_TEMPLATE,
        config=True,
        help="""
        Kerberos principal of a user, as a template.

        Placeholders: {username}, {uid}, {gid}, {home} and {realm}, filled in from
        the password database entry of the authenticated user and from `realm`
        (never from what was typed into the login form). Write {{ and }} for
        literal braces. Example for per-host principals:
        "{username}/pg-dmp-workbench2@{realm}".
        Default: "{username}@{realm}".
        """,
    )

    keytab_template = Unicode(
        lifecycle.DEFAULT_KEYTAB_TEMPLATE,
        config=True,
        help="""
        Path of a user's keytab, as a template (same placeholders as
        `principal_template`); must expand to an absolute path.

        The hub reads it as root: a symbolic link or fifo at this path is
        refused, and the keytab may only yield tickets for the user's own
        principal. Keep it owned by the user and not readable by others.
        Default: "/home/{username}/{username}.keytab".
        """,
    )

    ccache_template = Unicode(
        lifecycle.DEFAULT_CCACHE_TEMPLATE,
        config=True,
        help="""
        Path of a user's FILE credential cache, as a template (same
        placeholders as `principal_template`); must expand to an absolute path.

        The default, "/tmp/krb5cc_{uid}", is MIT Kerberos's own default cache
        name, so Hadoop, Spark and JVM clients find the ticket even without
        KRB5CCNAME. The cache is replaced atomically through a random temporary
        file in the same directory, owned by the user with mode 0600. Whatever
        else is found at the path (a symlink, hard link, directory, or a file
        that is not the user's own with mode 0600: what another local user
        may plant) is never trusted as a ticket and is replaced; the hub logs
        a warning naming it and counts it in pamkrb_cache_plants_total. Root
        refuses to write when a directory on the path is a symlink, or is
        writable by others without the sticky bit.
        """,
    )

    realm = Unicode(
        config=True,
        help="""
        Kerberos realm used for {realm} in the templates.

        Default: `default_realm` from the krb5.conf that libkrb5 reads
        (/etc/krb5.conf, or the file named by KRB5_CONFIG in the hub's
        environment).
        """,
    )

    ticket_lifetime = Integer(
        None,
        allow_none=True,
        min=60,
        config=True,
        help="""
        Requested ticket lifetime in seconds. The KDC may grant less.

        Default: None (krb5.conf's ticket_lifetime and the KDC decide).
        """,
    )

    refresh_margin = Integer(
        lifecycle.DEFAULT_REFRESH_MARGIN,
        min=0,
        config=True,
        help=f"""
        Seconds. A ticket with this much or less left is renewed (by a TGS
        request while it is renewable, else from the keytab): by the hub when
        the server is spawned and when JupyterHub refreshes the user, and by
        the user's server (the pamkrb server extension gets this value). Keep it below the ticket lifetime, or
        every check renews. Default: {lifecycle.DEFAULT_REFRESH_MARGIN}.
        """,
    )

    refresh_interval = Integer(
        lifecycle.DEFAULT_REFRESH_INTERVAL,
        min=0,
        config=True,
        help=f"""
        Seconds: the longest the user's server goes between two looks at its
        ticket while the user does nothing. Passed to the pamkrb server
        extension. Its timer follows the ticket (the next look is due when
        the ticket enters refresh_margin), so this is only an upper bound:
        an idle server's ticket never lapses, whatever the two settings.
        0: looks are scheduled from the ticket's expiry only.
        Default: {lifecycle.DEFAULT_REFRESH_INTERVAL}.
        """,
    )

    renewable_lifetime = Integer(
        None,
        allow_none=True,
        min=60,
        config=True,
        help="""
        Requested renewable lifetime of new tickets, in seconds (passed to
        the user's server too); the KDC may grant less. While a ticket is
        renewable the hub and the user's server renew it with a TGS request
        instead of a new AS request from the keytab (fewer KDC requests).
        Default: None (krb5.conf's renew_lifetime and the KDC decide).
        """,
    )

    credential_source = CaselessStrEnum(
        ["keytab", "password", "auto"],
        default_value="keytab",
        config=True,
        help="""
        Where a user's ticket comes from.

        "keytab" (default): the user's keytab (keytab_template), renewed from it
        for as long as the server runs. "password": the password the user
        logged in with, in-process (never a subprocess, never stored, wiped
        after use), renewable for renewable_lifetime (default 7 days for
        password tickets; the KDC may grant less) and renewed by TGS requests
        until then; after that the user signs in again from the status bar
        (POST /hub/api/pamkrb/ticket), without restarting anything. A
        Kerberos password that differs from the PAM one refuses the login
        (kinit_required) or lets the user in without a ticket. "auto": the
        keytab when its file exists, else the password.
        """,
    )

    warn_before = Integer(
        lifecycle.DEFAULT_WARN_BEFORE,
        min=0,
        config=True,
        help="""
        Seconds: how long before a password ticket can no longer be renewed
        the status bar asks the user to sign in again (passed to the pamkrb
        server extension). Default: 3600.
        """,
    )

    ticket_broker = Bool(
        False,
        config=True,
        help="""
        Whether the hub keeps every running server's ticket fresh and hands
        it out, instead of each server renewing from the user's keytab.

        On: the hub schedules each user's renewal from the ticket's expiry
        (a TGS renewal while renewable, a keytab kinit only when it must, one
        attempt per user, failures backing off), and the pamkrb server
        extension fetches the ticket from GET /hub/api/pamkrb/ticket with the
        server's own token and installs it in its local cache. Servers then
        need neither the keytab nor the hub's /tmp: keytabs can live where
        only root reads them (e.g. /etc/security/keytabs/{username}.keytab,
        root-owned, 0600), and servers on other hosts (KubeSpawner,
        BatchSpawner, SystemdSpawner with PrivateTmp) get tickets.
        Off (default): each server renews from the user's keytab, which the
        user must be able to read, on the hub's host.
        """,
    )

    allow_insecure_ticket_delivery = Bool(
        False,
        config=True,
        help="""
        Whether the ticket broker may send a ticket over plain HTTP to a
        non-loopback address. A ticket is a credential: anyone who sees it on
        the wire can use it until it expires. Keep this False and use
        JupyterHub's internal_ssl for servers on other hosts. Default: False.
        """,
    )

    ticket_requests_per_minute = Integer(
        30,
        min=1,
        config=True,
        help="""
        How many GET /hub/api/pamkrb/ticket requests each user may make per
        minute (bursts up to that many); more get HTTP 429 with Retry-After.
        A server asks only when its own copy is no longer fresh. Default: 30.
        """,
    )

    kinit_required = Bool(
        True,
        config=True,
        help="""
        Whether a login needs a Kerberos ticket to succeed.

        If True (default), a user whose ticket cannot be obtained (no keytab,
        KDC down, principal missing) is refused with a message on the login page,
        and the hub log says exactly why. If False, the login proceeds without a
        ticket and the failure is logged as a warning.
        """,
    )

    kdc_timeout = Float(
        lifecycle.DEFAULT_KDC_TIMEOUT,
        min=1.0,
        config=True,
        help=f"""
        Seconds to wait for a ticket before giving up on the KDC.

        libkrb5 itself retries for about 30 seconds against a KDC that accepts
        connections but never answers; after this many seconds the login (or
        renewal) fails with a clear message instead, and the attempt, when it
        ends, installs nothing. At most one attempt per user runs at a time,
        on a thread of its own: logins and spawns of that user meanwhile share
        it, and a hung KDC or keytab never delays other users' attempts,
        password checks or the hub's event loop. Default: {lifecycle.DEFAULT_KDC_TIMEOUT}.
        """,
    )

    fallback_ccache_dir = Unicode(
        lifecycle.DEFAULT_FALLBACK_CCACHE_DIR,
        config=True,
        help="""
        Where a user's ticket goes when their cache path (ccache_template)
        cannot be replaced: "<dir>/<uid>/krb5cc", in a directory owned by the
        user (mode 0700) inside this one (owned by root, mode 0755; both
        created by the hub).

        Another local user can make the cache path unusable for root: a
        FUSE mount on /tmp/krb5cc_<uid> (any user can mount one where
        /dev/fuse is 0666 and fusermount is setuid) answers root with
        EACCES, and nothing can be renamed over a mount point. Refusing
        would lock the victim out; instead the ticket is installed here, the
        server and its kernels get this path in KRB5CCNAME, the hub logs the
        plant, and the status shows the path in use. Must be an absolute
        path on the hub's host that no user can write to. Default:
        "/run/pamkrb".
        """,
    )

    retain_ticket_after_stop = Bool(
        False,
        config=True,
        help="""
        Whether a user's ticket stays in their cache after their last server
        stops (stopped, culled or failed to start).

        False (default): the cache pamkrb installed is destroyed when the
        user's last server stops, and when the user is deleted or blocked,
        and nothing renews it any more, as pam_krb5 does at session close. A
        ticket, above all a password ticket renewable for days, is then not
        left in /tmp for anyone who later gains the user's uid. True: keep
        it (pam_krb5's retain_after_close), for sites where ssh sessions on
        the hub's host share the same cache.
        """,
    )

    @default("realm")
    def _default_realm(self) -> str:
        try:
            return _native.default_realm()
        except KerberosError as e:
            self.log.warning("No default Kerberos realm (%s); set PAMKerberosAuthenticator.realm", e)
            return ""

    @validate("principal_template", "keytab_template", "ccache_template")
    def _validate_template(self, proposal: Bunch) -> str:
        try:
            _native.validate_template(proposal.value)
        except TemplateError as e:
            name = f"PAMKerberosAuthenticator.{proposal.trait.name}"
            raise TraitError(f"{name}: {e}") from None
        return str(proposal.value)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        reason = unsafe_service_reason(self.service)
        if reason:
            # Checked here rather than in a validator so that the default
            # service is checked too: /etc/pam.d/login could be edited.
            raise TraitError(
                f"PAMKerberosAuthenticator: refusing to start: {reason}. Set "
                "c.PAMKerberosAuthenticator.service to a login service such as 'login'."
            )
        self.tickets = HubTickets(self)
        self.pending_passwords = PendingPasswords()
        for problem in lifecycle.settings_problems(self.refresh_margin, self.refresh_interval, self.ticket_lifetime):
            self.log.warning("PAMKerberosAuthenticator: %s", problem)
        templates = (self.principal_template, self.keytab_template, self.ccache_template)
        uses_realm = any("{realm}" in t for t in templates)
        if uses_realm and not self.realm:
            raise TraitError(
                "PAMKerberosAuthenticator: the templates use {realm}, but no realm is "
                "configured and krb5.conf has no default_realm; "
                "set c.PAMKerberosAuthenticator.realm"
            )

    # -- login ---------------------------------------------------------------

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        """Check the password with PAM (and the account, if `check_account`).

        Returns the username, or None if PAM denies the login. A broken PAM
        stack raises: that is our failure, not the user's.
        """
        username = data.get("username") or ""
        remote_ip = handler.request.remote_ip if handler is not None else None
        who = shown(username) + (f"@{remote_ip}" if remote_ip else "")
        try:
            login.check_name(username)
            encoded = login.encoded_secrets(data, self.encoding)
        except login.Refused as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            return None
        # The password source needs the password again after the allow
        # checks; a copy is kept for this request only.
        stash = bytearray(encoded["password"]) if self.credential_source != "keytab" else None
        loop = asyncio.get_running_loop()
        call = partial(
            lifecycle.call_native,
            _native.pam_authenticate,
            self.service,
            username,
            encoded["password"],
            otp=encoded.get("one-time password"),
            remote_host=remote_ip,
            check_account=self.check_account,
        )
        accepted = False
        try:
            authenticated = await loop.run_in_executor(self.executor, call)
            accepted = True
        except AuthenticationDenied as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            return None
        except (PAMSystemError, NativePanic) as e:
            self.log.error("PAM failed (%s): %s", who, e)
            raise
        finally:
            # The native layer already zeroed them; this covers paths where
            # the call never ran.
            for buffer in encoded.values():
                buffer[:] = bytes(len(buffer))
            if stash is not None and not accepted:
                stash[:] = bytes(len(stash))
        try:
            name = login.authenticated_name(username, authenticated)
        except login.Refused as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            if stash is not None:
                stash[:] = bytes(len(stash))
            return None
        if name != username:
            self.log.info("PAM authenticated %s as %s", who, shown(name))
        if stash is not None:
            self.pending_passwords.stash(handler, name, stash)
        return name

    def take_password(self, handler: Any, username: str) -> bytearray | None:
        """The password this request's login was checked with (pamkrb.passwords)."""
        return self.pending_passwords.take(handler, username, self.normalize_username)

    async def run_post_auth_hook(self, handler: Any, auth_model: dict[str, Any]) -> dict[str, Any]:
        """Obtain the ticket once the user is known to be allowed in.

        Doing it here rather than in `authenticate` means a user who passes
        PAM but is not allowed or is blocked gets no cache written.
        """
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        name = auth_model["name"]
        password = self.take_password(handler, name)
        try:
            info = (await self.tickets.keeper(name).replace("login", password=password)).info
        except KerberosPasswordRejected as e:
            self.log.error("Login of %s: %s", shown(name), e)
            if self.kinit_required:
                raise web.HTTPError(403, "%s", KERBEROS_PASSWORD_REFUSED) from None
            self.log.warning("Login of %s without a Kerberos ticket", shown(name))
            return auth_model
        except TICKET_ERRORS as e:
            reason = explain(e, name)
            if self.kinit_required:
                self.log.error(
                    "Refusing login of %s: no Kerberos ticket: %s",
                    shown(name),
                    reason,
                )
                raise web.HTTPError(403, "%s", LOGIN_REFUSED) from None
            self.log.warning("Login of %s without a Kerberos ticket: %s", shown(name), reason)
            return auth_model
        finally:
            if password is not None:
                password[:] = bytes(len(password))
        if info is not None:
            self.log.info(
                "Kerberos ticket for %s (%s) valid until %s",
                shown(name),
                info.principal,
                lifecycle.local_time(info.expires_at),
            )
        return auth_model

    # -- spawning and refreshing ----------------------------------------------

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Open the PAM session if configured, make sure the ticket is fresh,
        and point the server's KRB5CCNAME at the user's cache."""
        await super().pre_spawn_start(user, spawner)
        self.tickets.serve(user)
        try:
            in_place = await self.tickets.keeper(user.name).refresh("spawn")
        except TICKET_ERRORS as e:
            reason = explain(e, user.name)
            name = shown(user.name)
            if self.kinit_required:
                self.log.error("Not spawning %s: no Kerberos ticket: %s", name, reason)
                raise web.HTTPError(500, "%s", SPAWN_REFUSED) from None
            self.log.warning("Spawning %s without a fresh Kerberos ticket: %s", name, reason)
            return
        # KRB5CCNAME for every Kerberos client in the server and its kernels,
        # and what the pamkrb server extension needs to renew as the user:
        # the path in use, the fallback one if the usual one was planted.
        spawner.environment.update(self.tickets.server_settings(in_place.target).to_env())
        if self.ticket_broker:
            self.tickets.broker.track(user.name)

    async def post_spawn_stop(self, user: Any, spawner: Any) -> None:
        """Close the PAM session if configured. When the user's last server
        has stopped (or failed to start), stop renewing their ticket and,
        unless retain_ticket_after_stop, destroy it."""
        await super().post_spawn_stop(user, spawner)
        others = [s for s in user.spawners.values() if s is not spawner and s.active and s.pending != "stop"]
        if others:
            return
        self.tickets.stop_serving(user.name)
        await self.tickets.forget(user.name, "server stopped")

    def delete_user(self, user: Any) -> Awaitable[None]:
        """A deleted user keeps no ticket and nothing renews one."""
        super().delete_user(user)
        self.tickets.stop_serving(user.name)
        return self.tickets.forget(user.name, "user deleted", destroy=True)

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        """Renew the user's ticket when it is not fresh and a server of
        theirs runs; a blocked user's ticket is destroyed.

        A failed renewal is logged, not turned into a logout: the user's
        server keeps working, and the next refresh tries again.
        """
        if not self.check_blocked_users(user.name):
            self.tickets.stop_serving(user.name)
            await self.tickets.forget(user.name, "user blocked", destroy=True)
            return False
        if not any(s.active and s.pending != "stop" for s in user.spawners.values()):
            return True
        self.tickets.serve(user)
        try:
            await self.tickets.ensure_fresh(user.name, "refresh")
        except TICKET_ERRORS as e:
            self.log.warning("Could not renew the Kerberos ticket of %s: %s", shown(user.name), explain(e, user.name))
        return True

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [*super().get_handlers(app), ("/api/pamkrb/ticket", TicketAPIHandler)]
