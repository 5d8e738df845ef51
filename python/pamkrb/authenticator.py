"""PAMKerberosAuthenticator: JupyterHub's PAMAuthenticator plus a Kerberos
ticket for each user, kept fresh and handed to their server.

This class holds the settings, ``authenticate`` and JupyterHub's hooks. The
tickets are kept by :class:`pamkrb.keeper.TicketKeeper` (one per user), the
broker's schedule by :mod:`pamkrb.broker`, and the ticket API's HTTP by
:mod:`pamkrb.ticket_api`."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from tornado import web
from traitlets import Bool, CaselessStrEnum, Float, Integer, TraitError, Unicode, default, validate

from . import _native, lifecycle
from ._native import TicketInfo
from .broker import TicketBroker
from .exceptions import (
    AuthenticationDenied,
    CredentialCacheError,
    InvalidUsername,
    KerberosError,
    KerberosPasswordRejected,
    KeytabError,
    NativePanic,
    PAMSystemError,
    TemplateError,
    TicketFormatError,
)
from .keeper import KeepingRules, Target, TicketKeeper, shown
from .lifecycle import TicketSettings, UserPaths
from .pam_stack import unsafe_service_reason
from .ticket_api import TicketAPIHandler

# PAM's own replies are capped at 512 bytes (PAM_MAX_RESP_SIZE); anything
# much longer is an attack on the hub's memory, not a password.
MAX_PASSWORD_BYTES = 8192

# A login's password waits for the allow/block checks between PAM and the
# ticket; no login takes this long, and after it the password is wiped
# whether or not the login went on.
PENDING_PASSWORD_SECONDS = 120

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

SPAWN_REFUSED = "No Kerberos ticket could be obtained for your server; please contact your administrator."

KERBEROS_PASSWORD_REFUSED = (
    "Your password was accepted, but the Kerberos server did not accept it: your Kerberos password "
    "differs from your login password. Please contact your administrator."
)

LOGIN_REFUSED = (
    "Your password was accepted, but no Kerberos ticket could be obtained for you, "
    "so Spark and Hadoop would not work. Please contact your administrator."
)


@dataclass
class PendingPassword:
    """A login's password between PAM and the ticket step (password source)."""

    username: str
    password: bytearray
    timer: asyncio.TimerHandle | None = None

    def wipe(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.password[:] = bytes(len(self.password))


class PAMKerberosAuthenticator(PAMAuthenticator):
    """Authenticate local users with PAM, then give each a Kerberos ticket.

    A drop-in for :class:`jupyterhub.auth.PAMAuthenticator`: every option of
    that class keeps its meaning. After a successful login the user's keytab
    is used (in-process, through libkrb5) to obtain a ticket-granting ticket,
    which is written atomically to the user's credential cache, owned by
    the user with mode 0600. The spawned server and its kernels get
    ``KRB5CCNAME`` pointing at that cache.
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
        Seconds. A ticket with this much or less left is renewed from the
        keytab: by the hub when the server is spawned and when JupyterHub
        refreshes the user, and by the user's server (the pamkrb server
        extension gets this value). Keep it below the ticket lifetime, or
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
        Requested renewable lifetime of the tickets the hub obtains, in
        seconds; the KDC may grant less. While a ticket is renewable the hub
        renews it with a TGS request instead of a new AS request from the
        keytab (fewer KDC requests; see ticket_broker).
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
    def _default_realm(self):
        try:
            return _native.default_realm()
        except KerberosError as e:
            self.log.warning("No default Kerberos realm (%s); set PAMKerberosAuthenticator.realm", e)
            return ""

    @validate("principal_template", "keytab_template", "ccache_template")
    def _validate_template(self, proposal):
        try:
            _native.validate_template(proposal.value)
        except TemplateError as e:
            name = f"PAMKerberosAuthenticator.{proposal.trait.name}"
            raise TraitError(f"{name}: {e}") from None
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        reason = unsafe_service_reason(self.service)
        if reason:
            # Checked here rather than in a validator so that the default
            # service is checked too: /etc/pam.d/login could be edited.
            raise TraitError(
                f"PAMKerberosAuthenticator: refusing to start: {reason}. Set "
                "c.PAMKerberosAuthenticator.service to a login service such as 'login'."
            )
        self._attempts = lifecycle.SingleFlight("pamkrb-kinit")
        self._broker = None
        # Login passwords between PAM and the ticket (password source only),
        # by request (one login per request), with the name PAM authenticated;
        # wiped when used, or PENDING_PASSWORD_SECONDS later at the latest.
        self._pending_passwords: dict[int, PendingPassword] = {}
        self._keepers: dict[str, TicketKeeper] = {}
        # Users with a server the hub started (JupyterHub's User objects):
        # whether a ticket is still wanted is decided from their spawners.
        self._served: dict[str, Any] = {}
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

    async def authenticate(self, handler, data):
        """Check the password with PAM (and the account, if `check_account`).

        Returns the username, or None if PAM denies the login. A broken PAM
        stack raises: that is our failure, not the user's.
        """
        username = data.get("username") or ""
        password = data.get("password") or ""
        remote_ip = handler.request.remote_ip if handler is not None else None
        who = shown(username)
        if remote_ip:
            who = f"{who}@{remote_ip}"
        try:
            _native.check_username(username)
        except UnicodeEncodeError:
            # A lone surrogate cannot cross into Rust as UTF-8; it is not a
            # name anyone has.
            self.log.warning("PAM Authentication failed (%s): invalid username", who)
            return None
        except InvalidUsername as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            return None
        if not password:
            # An account whose password was removed (passwd -d) passes
            # pam_unix's `nullok`, Debian's default; a web login never may.
            # The native call also sets PAM_DISALLOW_NULL_AUTHTOK.
            self.log.warning("PAM Authentication failed (%s): empty password", who)
            return None
        # JupyterHub's login form sends "otp" when Authenticator.request_otp is
        # set; PAM gets it as the answer to the second hidden prompt.
        given = {"password": password}
        if "otp" in data:
            given["one-time password"] = data["otp"] or ""
        encoded = {}
        for what, value in given.items():
            try:
                encoded[what] = bytearray(value.encode(self.encoding))
            except (UnicodeEncodeError, AttributeError):
                self.log.warning("PAM Authentication failed (%s): bad %s input", who, what)
                return None
            if len(encoded[what]) > MAX_PASSWORD_BYTES or 0 in encoded[what]:
                self.log.warning("PAM Authentication failed (%s): %s too long or has NUL", who, what)
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
        name = self._authenticated_name(username, authenticated, who)
        if name is None:
            if stash is not None:
                stash[:] = bytes(len(stash))
            return None
        if stash is not None:
            self._stash_password(handler, name, stash)
        return name

    def _authenticated_name(self, typed: str, authenticated: Any, who: str) -> str | None:
        """The name PAM authenticated (PAM_USER after the conversation): a
        module may map the typed name to another account, and that account
        is who logged in. It must pass the same username rule."""
        if not isinstance(authenticated, str) or authenticated == typed:
            return typed
        try:
            _native.check_username(authenticated)
        except (InvalidUsername, UnicodeEncodeError) as e:
            self.log.warning("PAM Authentication failed (%s): PAM mapped the name to an invalid one: %s", who, e)
            return None
        self.log.info("PAM authenticated %s as %s", who, shown(authenticated))
        return authenticated

    def _stash_password(self, handler, username: str, password: bytearray) -> None:
        key = id(handler)
        self._drop_password(key)
        pending = PendingPassword(username, password)
        self._pending_passwords[key] = pending
        # A login that passes PAM but is then refused (not allowed, blocked)
        # never takes its password: it is wiped here at the latest.
        pending.timer = asyncio.get_running_loop().call_later(
            PENDING_PASSWORD_SECONDS, self._drop_password, key, pending
        )

    def _drop_password(self, key: int, only: PendingPassword | None = None) -> None:
        pending = self._pending_passwords.get(key)
        if pending is None or (only is not None and pending is not only):
            return
        del self._pending_passwords[key]
        pending.wipe()

    def take_password(self, handler: Any, username: str) -> bytearray | None:
        """The password this request's login was checked with, if the name
        that reached the ticket step is the one PAM authenticated (after
        JupyterHub's normalization); wiped otherwise."""
        pending = self._pending_passwords.pop(id(handler), None)
        if pending is None:
            return None
        if pending.timer is not None:
            pending.timer.cancel()
        if self.normalize_username(pending.username) != username:
            pending.wipe()
            return None
        return pending.password

    async def run_post_auth_hook(self, handler, auth_model):
        """Obtain the ticket once the user is known to be allowed in.

        Doing it here rather than in `authenticate` means a user who passes
        PAM but is not allowed or is blocked gets no cache written.
        """
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        name = auth_model["name"]
        password = self.take_password(handler, name)
        try:
            info = (await self.keeper(name).replace("login", password=password)).info
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

    async def pre_spawn_start(self, user, spawner):
        """Open the PAM session if configured, make sure the ticket is fresh,
        and point the server's KRB5CCNAME at the user's cache."""
        await super().pre_spawn_start(user, spawner)
        self._served[user.name] = user
        try:
            in_place = await self.keeper(user.name).refresh("spawn")
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
        spawner.environment.update(self.ticket_settings(in_place.target).to_env())
        if self.ticket_broker:
            self.broker.track(user.name)

    async def post_spawn_stop(self, user, spawner):
        """Close the PAM session if configured. When the user's last server
        has stopped (or failed to start), stop renewing their ticket and,
        unless retain_ticket_after_stop, destroy it."""
        await super().post_spawn_stop(user, spawner)
        others = [s for s in user.spawners.values() if s is not spawner and s.active and s.pending != "stop"]
        if others:
            return
        self._served.pop(user.name, None)
        await self.forget_ticket(user.name, "server stopped")

    def delete_user(self, user):
        """A deleted user keeps no ticket and nothing renews one."""
        super().delete_user(user)
        self._served.pop(user.name, None)
        return self.forget_ticket(user.name, "user deleted", destroy=True)

    def serve(self, user: Any) -> None:
        """A server of the user runs (or starts): keep their ticket for it."""
        self._served[user.name] = user

    def serving(self, username: str) -> bool:
        """Whether a server the hub started for the user is running (or
        starting): a ticket is kept fresh for a server, never for a token."""
        user = self._served.get(username)
        if user is None:
            return False
        return any(s.active and s.pending != "stop" for s in user.spawners.values())

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        """Renew the user's ticket when it is not fresh and a server of
        theirs runs; a blocked user's ticket is destroyed.

        A failed renewal is logged, not turned into a logout: the user's
        server keeps working, and the next refresh tries again.
        """
        if not self.check_blocked_users(user.name):
            self._served.pop(user.name, None)
            await self.forget_ticket(user.name, "user blocked", destroy=True)
            return False
        if not any(s.active and s.pending != "stop" for s in user.spawners.values()):
            return True
        self._served[user.name] = user
        try:
            await self.ensure_fresh_ticket(user.name, trigger="refresh")
        except TICKET_ERRORS as e:
            self.log.warning("Could not renew the Kerberos ticket of %s: %s", shown(user.name), explain(e, user.name))
        return True

    async def forget_ticket(self, username: str, why: str, *, destroy: bool | None = None) -> None:
        """Stop renewing the user's ticket and (unless retained) destroy the
        caches pamkrb installed for them, after any attempt in flight."""
        if self._broker is not None:
            self._broker.untrack(username)
        if destroy is None:
            destroy = not self.retain_ticket_after_stop
        keeper = self._keepers.pop(username, None)
        if not destroy:
            return
        keeper = keeper or self.keeper(username)
        self._keepers.pop(username, None)
        try:
            removed = await keeper.destroy(lambda target: {target.ccache, target.fallback or target.ccache})
        except TICKET_ERRORS as e:
            self.log.warning("Could not destroy the Kerberos ticket of %s (%s): %s", shown(username), why, e)
            return
        self.log.info(
            "Stopped keeping the Kerberos ticket of %s (%s); destroyed: %s",
            shown(username),
            why,
            ", ".join(removed) or "nothing of theirs was left",
        )

    # -- the ticket broker -----------------------------------------------------

    @property
    def broker(self) -> TicketBroker:
        if self._broker is None:
            self._broker = TicketBroker(
                self.keeper,
                margin=self.refresh_margin,
                interval=self.refresh_interval,
                errors=TICKET_ERRORS,
                serving=self.serving,
                logger=self.log,
            )
        return self._broker

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [*super().get_handlers(app), ("/api/pamkrb/ticket", TicketAPIHandler)]

    # -- the users' tickets ----------------------------------------------------

    async def ensure_fresh_ticket(self, username: str, trigger: str = "refresh") -> TicketInfo:
        """Renew the user's ticket unless it is fresh (pamkrb.lifecycle's
        rule); the TicketInfo of the cache, whether renewed or not."""
        return (await self.keeper(username).refresh(trigger)).info

    def keeper(self, username: str) -> TicketKeeper:
        """The keeper of the user's ticket: one per user, all sharing the
        hub's single flight (one Kerberos attempt per user at a time)."""
        rules = KeepingRules(self.refresh_margin, self.kdc_timeout, self.ticket_lifetime, self.renewable_lifetime)
        keeper = self._keepers.get(username)
        if keeper is None:
            keeper = TicketKeeper(
                username,
                partial(self._target, username),
                rules,
                flight=self._attempts,
                logger=self.log,
                warn_about_keytabs=True,
            )
            self._keepers[username] = keeper
        keeper.rules = rules
        return keeper

    def attempt_running(self, username: str) -> bool:
        """Whether a Kerberos attempt for the user is still in flight (one
        that timed out may be: it installs nothing when it ends)."""
        return self._attempts.running(username)

    def resolve_user(self, username: str) -> UserPaths:
        """The user's principal, keytab and cache (pamkrb.lifecycle)."""
        return lifecycle.resolve_user(
            username,
            principal_template=self.principal_template,
            keytab_template=self.keytab_template,
            ccache_template=self.ccache_template,
            realm=self.realm,
        )

    def credential_source_of(self, paths: UserPaths) -> str:
        """Where this user's new tickets come from (credential_source)."""
        if self.credential_source == "auto":
            # A stat as root, on the attempt's thread.
            return lifecycle.SOURCE_KEYTAB if os.path.lexists(paths.keytab) else lifecycle.SOURCE_PASSWORD
        return str(self.credential_source)

    def _target(self, username: str) -> Target:
        """What the hub keeps for the user: runs on the attempt's thread."""
        paths = self.resolve_user(username)
        return Target(
            username=paths.username,
            principal=paths.principal,
            ccache=paths.ccache,
            source=self.credential_source_of(paths),
            keytab=paths.keytab,
            uid=paths.uid,
            gid=paths.gid,
            fallback=lifecycle.fallback_ccache(self.fallback_ccache_dir, paths.uid),
        )

    def ticket_settings(self, target: Target) -> TicketSettings:
        """What the user's server needs to keep the ticket the hub installed."""
        return TicketSettings(
            principal=target.principal,
            keytab=target.keytab,
            ccache=target.ccache,
            refresh_margin=self.refresh_margin,
            refresh_interval=self.refresh_interval,
            kdc_timeout=self.kdc_timeout,
            ticket_lifetime=self.ticket_lifetime,
            renewable_lifetime=self.renewable_lifetime,
            broker=self.ticket_broker,
            source=target.source,
            warn_before=self.warn_before,
        )


def explain(error: Exception, username: str) -> str:
    """What went wrong, for the hub log."""
    if isinstance(error, KeyError):
        return f"user {shown(username)} is not in the password database"
    return str(error)
