"""PAMKerberosAuthenticator: JupyterHub's PAMAuthenticator plus a Kerberos
ticket from the user's keytab, kept fresh and handed to their server."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from tornado import web
from traitlets import Bool, CaselessStrEnum, Float, Integer, TraitError, Unicode, default, validate

from . import _native, lifecycle, metrics
from .broker import TicketBroker
from .exceptions import (
    AuthenticationDenied,
    CredentialCacheError,
    InvalidUsername,
    KerberosError,
    KerberosPasswordRejected,
    KeytabError,
    LoginRequired,
    NativePanic,
    PAMSystemError,
    TemplateError,
    TicketFormatError,
)
from .lifecycle import TicketSettings, UserTicket
from .pam_stack import unsafe_service_reason
from .ticket_api import RateLimit, TicketAPIHandler

# PAM's own replies are capped at 512 bytes (PAM_MAX_RESP_SIZE); anything
# much longer is an attack on the hub's memory, not a password.
MAX_PASSWORD_BYTES = 8192

# A login's password waits for the allow/block checks between PAM and the
# ticket; no login takes this long, and after it the password is wiped
# whether or not the login went on.
PENDING_PASSWORD_SECONDS = 120

# Sign-ins again (POST /hub/api/pamkrb/ticket) per user per minute: each is
# a PAM check and a KDC request with a password, so guessing must stay slow.
SIGN_INS_PER_MINUTE = 5

# What can go wrong between a successful PAM login and a ticket in place;
# KeyError is pwd's "no such user".
_TICKET_ERRORS = (
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


@dataclass(frozen=True)
class Kept:
    """One Kerberos attempt's outcome: the user (with the cache path in
    use), where new tickets come from, the ticket, and (when asked for)
    the cache's bytes."""

    where: UserTicket
    source: str
    info: Any
    data: bytes | None = None


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


def shown_username(name: str) -> str:
    """A user-supplied name fit for a log line: truncated, never the whole input."""
    if len(name) > 32:
        return f"{name[:16]!r}...({len(name)} chars)"
    return repr(name)


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
        # Users whose cache had to move to the fallback path: the path in use.
        self._in_use: dict[str, str] = {}
        # Users with a server the hub started (JupyterHub's User objects):
        # whether a ticket is still wanted is decided from their spawners.
        self._served: dict[str, Any] = {}
        self.sign_in_rate_limit = RateLimit(SIGN_INS_PER_MINUTE)
        self.ticket_rate_limit = RateLimit(self.ticket_requests_per_minute)
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
        where = shown_username(username)
        if remote_ip:
            where = f"{where}@{remote_ip}"
        try:
            _native.check_username(username)
        except UnicodeEncodeError:
            # A lone surrogate cannot cross into Rust as UTF-8; it is not a
            # name anyone has.
            self.log.warning("PAM Authentication failed (%s): invalid username", where)
            return None
        except InvalidUsername as e:
            self.log.warning("PAM Authentication failed (%s): %s", where, e)
            return None
        if not password:
            # An account whose password was removed (passwd -d) passes
            # pam_unix's `nullok`, Debian's default; a web login never may.
            # The native call also sets PAM_DISALLOW_NULL_AUTHTOK.
            self.log.warning("PAM Authentication failed (%s): empty password", where)
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
                self.log.warning("PAM Authentication failed (%s): bad %s input", where, what)
                return None
            if len(encoded[what]) > MAX_PASSWORD_BYTES or 0 in encoded[what]:
                self.log.warning("PAM Authentication failed (%s): %s too long or has NUL", where, what)
                return None
        # The password source needs the password again after the allow
        # checks; a copy is kept for this request only.
        keep = bytearray(encoded["password"]) if self.credential_source != "keytab" else None
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
            self.log.warning("PAM Authentication failed (%s): %s", where, e)
            return None
        except (PAMSystemError, NativePanic) as e:
            self.log.error("PAM failed (%s): %s", where, e)
            raise
        finally:
            # The native layer already zeroed them; this covers paths where
            # the call never ran.
            for buffer in encoded.values():
                buffer[:] = bytes(len(buffer))
            if keep is not None and not accepted:
                keep[:] = bytes(len(keep))
        name = self._authenticated_name(username, authenticated, where)
        if name is None:
            if keep is not None:
                keep[:] = bytes(len(keep))
            return None
        if keep is not None:
            self._keep_password(handler, name, keep)
        return name

    def _authenticated_name(self, typed: str, authenticated: Any, where: str) -> str | None:
        """The name PAM authenticated (PAM_USER after the conversation): a
        module may map the typed name to another account, and that account
        is who logged in. It must pass the same username rule."""
        if not isinstance(authenticated, str) or authenticated == typed:
            return typed
        try:
            _native.check_username(authenticated)
        except (InvalidUsername, UnicodeEncodeError) as e:
            self.log.warning("PAM Authentication failed (%s): PAM mapped the name to an invalid one: %s", where, e)
            return None
        self.log.info("PAM authenticated %s as %s", where, shown_username(authenticated))
        return authenticated

    def _keep_password(self, handler, username: str, password: bytearray) -> None:
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

    def _take_password(self, handler, username: str) -> bytearray | None:
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
        password = self._take_password(handler, name)
        try:
            info = await self.ticket_for(name, "login", password=password)
        except KerberosPasswordRejected as e:
            self.log.error("Login of %s: %s", shown_username(name), e)
            if self.kinit_required:
                raise web.HTTPError(403, "%s", KERBEROS_PASSWORD_REFUSED) from None
            self.log.warning("Login of %s without a Kerberos ticket", shown_username(name))
            return auth_model
        except _TICKET_ERRORS as e:
            reason = _explain(e, name)
            if self.kinit_required:
                self.log.error(
                    "Refusing login of %s: no Kerberos ticket: %s",
                    shown_username(name),
                    reason,
                )
                raise web.HTTPError(403, "%s", LOGIN_REFUSED) from None
            self.log.warning("Login of %s without a Kerberos ticket: %s", shown_username(name), reason)
            return auth_model
        finally:
            if password is not None:
                password[:] = bytes(len(password))
        if info is not None:
            self.log.info(
                "Kerberos ticket for %s (%s) valid until %s",
                shown_username(name),
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
            kept = await self.keep_ticket(user.name, "spawn", only_if_stale=True)
        except _TICKET_ERRORS as e:
            reason = _explain(e, user.name)
            shown = shown_username(user.name)
            if self.kinit_required:
                self.log.error("Not spawning %s: no Kerberos ticket: %s", shown, reason)
                raise web.HTTPError(500, "%s", SPAWN_REFUSED) from None
            self.log.warning("Spawning %s without a fresh Kerberos ticket: %s", shown, reason)
            return
        # KRB5CCNAME for every Kerberos client in the server and its kernels,
        # and what the pamkrb server extension needs to renew as the user:
        # the path in use, the fallback one if the usual one was planted.
        spawner.environment.update(self.ticket_settings(kept.where, kept.source).to_env())
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

    def serving(self, username: str) -> bool:
        """Whether a server the hub started for the user is running (or
        starting): a ticket is kept fresh for a server, never for a token."""
        user = self._served.get(username)
        if user is None:
            return False
        return any(s.active and s.pending != "stop" for s in user.spawners.values())

    async def forget_ticket(self, username: str, why: str, *, destroy: bool | None = None) -> None:
        """Stop renewing the user's ticket and (unless retained) destroy the
        caches pamkrb installed for them, after any attempt in flight."""
        if self._broker is not None:
            self._broker.untrack(username)
        if destroy is None:
            destroy = not self.retain_ticket_after_stop
        if not destroy:
            self._in_use.pop(username, None)
            return

        def attempt(deadline):
            where = self.resolve_user(username)
            paths = {where.ccache, self.fallback_ccache(where), self._in_use.pop(where.username, where.ccache)}
            removed = [path for path in sorted(paths) if _native.destroy_cache(path, uid=where.uid)]
            return removed

        try:
            removed = await self._attempts.run(username, attempt, self.kdc_timeout, "the cache removal", exclusive=True)
        except _TICKET_ERRORS as e:
            self.log.warning("Could not destroy the Kerberos ticket of %s (%s): %s", shown_username(username), why, e)
            return
        self.log.info(
            "Stopped keeping the Kerberos ticket of %s (%s); destroyed: %s",
            shown_username(username),
            why,
            ", ".join(removed) or "nothing of theirs was left",
        )

    # -- the ticket broker -----------------------------------------------------

    @property
    def broker(self) -> TicketBroker:
        if self._broker is None:
            self._broker = TicketBroker(
                lambda name: self.ensure_fresh_ticket(name, trigger="broker"),
                margin=self.refresh_margin,
                interval=self.refresh_interval,
                errors=_TICKET_ERRORS,
                serving=self.serving,
                logger=self.log,
            )
        return self._broker

    def get_handlers(self, app):
        return [*super().get_handlers(app), ("/api/pamkrb/ticket", TicketAPIHandler)]

    async def sign_in_again(self, handler, username, password: str) -> bytes:
        """Check ``password`` with PAM and get a fresh ticket (from it, for a
        password user; from the keytab otherwise); the new cache's bytes.
        A wrong password: HTTP 403, nothing changes."""
        if not password:
            raise web.HTTPError(403, "the password was not accepted")
        authenticated = await self.authenticate(handler, {"username": username, "password": password})
        kept_password = self._take_password(handler, username)
        try:
            if authenticated is None or self.normalize_username(authenticated) != username:
                raise web.HTTPError(403, "the password was not accepted")
            # A password attempt never joins a running one without it (a
            # broker renewal, a spawn): that one would discard the password.
            kept = await self.keep_ticket(username, "sign-in", password=kept_password, read=True)
        except KerberosPasswordRejected as e:
            self.log.warning("Sign-in of %s: %s", shown_username(username), e)
            raise web.HTTPError(403, "the Kerberos server did not accept the password") from None
        except _TICKET_ERRORS as e:
            self.log.warning("Sign-in of %s: no ticket: %s", shown_username(username), _explain(e, username))
            raise web.HTTPError(503, "no Kerberos ticket could be obtained; see the hub log") from None
        finally:
            if kept_password is not None:
                kept_password[:] = bytes(len(kept_password))
        self.log.info("%s signed in again; new Kerberos ticket", shown_username(username))
        return kept.data

    async def deliverable_ticket(self, user) -> bytes:
        """The fresh ticket of ``user`` (whose running server asks) as FILE
        ccache bytes, for the API. Also (re)starts brokering the user, e.g.
        after a hub restart."""
        username = user.name
        if not self.check_blocked_users(username):
            await self.forget_ticket(username, "user blocked", destroy=True)
            raise web.HTTPError(403, "this user is blocked")
        self._served[username] = user
        try:
            kept = await self.keep_ticket(username, "delivery", only_if_stale=True, read=True)
        except _TICKET_ERRORS as e:
            self.log.warning("No ticket to deliver to %s: %s", shown_username(username), _explain(e, username))
            raise web.HTTPError(503, "no fresh Kerberos ticket for this user right now; see the hub log") from None
        self.broker.track(username)
        return kept.data

    async def refresh_user(self, user, handler=None):
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
        except _TICKET_ERRORS as e:
            self.log.warning(
                "Could not renew the Kerberos ticket of %s: %s",
                shown_username(user.name),
                _explain(e, user.name),
            )
        return True

    async def ensure_fresh_ticket(self, username, trigger="refresh"):
        """Renew the user's ticket unless it is fresh (pamkrb.lifecycle's
        rule); returns the TicketInfo of the cache, whether renewed or not."""
        return (await self.keep_ticket(username, trigger, only_if_stale=True)).info

    async def ticket_for(self, username, trigger, *, only_if_stale=False, password=None):
        """One Kerberos attempt for the user (see keep_ticket); its TicketInfo."""
        return (await self.keep_ticket(username, trigger, only_if_stale=only_if_stale, password=password)).info

    async def keep_ticket(self, username, trigger, *, only_if_stale=False, password=None, read=False) -> Kept:
        """Run one Kerberos attempt for the user, or share the one running.

        A login forces a new ticket; spawn and refresh only renew one that
        is not fresh. Either way at most one attempt per user is in flight,
        and one that outlives kdc_timeout installs nothing. ``password`` (a
        bytearray, wiped by the native call) is what a password ticket is
        made from; without it a password user's ticket can only be renewed.
        An attempt with a password never shares one without.
        ``read``: also read the cache's bytes, inside the attempt, so that a
        cache on a hung file system holds only this user's attempt thread.
        """

        def attempt(deadline):
            where = self._where(username)
            source = self.source_for(where)
            info = None
            if only_if_stale:
                metrics.count_check(trigger)
                where, current = self._current_info(where, trigger)
                now = time.time()
                if lifecycle.is_fresh(current, where.principal, self.refresh_margin, now):
                    info = current
                else:
                    # A TGS renewal while the ticket allows one: no keytab, one
                    # cheap KDC request. A password ticket is renewed to the end
                    # of its renewable life; a keytab can always start afresh.
                    margin = self.refresh_margin if source == lifecycle.SOURCE_KEYTAB else 0
                    if lifecycle.is_renewable(current, margin, now):
                        renewed = self._renew_ticket(where, trigger, deadline)
                        if renewed is not None:
                            where, info = renewed
            if info is None:
                kind = "renewal" if only_if_stale else "acquisition"
                if source == lifecycle.SOURCE_PASSWORD:
                    if password is None:
                        raise LoginRequired(
                            f"the ticket of {where.principal} can no longer be renewed and there is no keytab: "
                            "the user must sign in again"
                        )
                    where, info = self._install_password_ticket(where, kind, trigger, deadline, password)
                else:
                    where, info = self._install_ticket(where, kind, trigger, deadline)
            data = _native.read_cache(where.ccache, uid=where.uid) if read else None
            return Kept(where, source, info, data)

        return await self._attempts.run(username, attempt, self.kdc_timeout, exclusive=password is not None)

    def attempt_running(self, username) -> bool:
        """Whether a Kerberos attempt for the user is still in flight (one
        that timed out may be: it installs nothing when it ends)."""
        return self._attempts.running(username)

    # -- who the user is, and the settings handed to their server -------------

    def resolve_user(self, username) -> UserTicket:
        """The user's principal, keytab and cache (pamkrb.lifecycle)."""
        return lifecycle.resolve_user(
            username,
            principal_template=self.principal_template,
            keytab_template=self.keytab_template,
            ccache_template=self.ccache_template,
            realm=self.realm,
        )

    def ticket_settings(self, where: UserTicket, source: str = lifecycle.SOURCE_KEYTAB) -> TicketSettings:
        return TicketSettings(
            principal=where.principal,
            keytab=where.keytab,
            ccache=where.ccache,
            refresh_margin=self.refresh_margin,
            refresh_interval=self.refresh_interval,
            kdc_timeout=self.kdc_timeout,
            ticket_lifetime=self.ticket_lifetime,
            broker=self.ticket_broker,
            source=source,
            warn_before=self.warn_before,
        )

    # -- blocking work, on the attempt's own thread ------------------------------

    def fallback_ccache(self, where: UserTicket) -> str:
        """Where the user's cache goes when its usual path cannot be replaced."""
        return lifecycle.fallback_ccache(self.fallback_ccache_dir, where.uid)

    def _where(self, username) -> UserTicket:
        """The user, with the cache path in use (the fallback after a plant)."""
        where = self.resolve_user(username)
        in_use = self._in_use.get(where.username)
        return dataclasses.replace(where, ccache=in_use) if in_use else where

    def _current_info(self, where: UserTicket, trigger):
        """``(where, info)``: the cache's ticket if the cache is the user's own
        and holds their principal, else None. A cache the user does not own
        (or with a loose mode, or links) is never taken for theirs: the
        native read refuses it, and it is replaced. When the usual path is
        unreadable and the fallback holds the user's ticket (a plant seen
        before a hub restart), that one is in use."""
        try:
            info = _native.inspect_ticket(where.ccache, uid=where.uid)
        except (CredentialCacheError, TicketFormatError) as e:
            fallback = self.fallback_ccache(where)
            if where.ccache != fallback:
                try:
                    info = _native.inspect_ticket(fallback, uid=where.uid)
                except (CredentialCacheError, TicketFormatError):
                    info = None
                if info is not None and info.principal == where.principal:
                    self._in_use[where.username] = fallback
                    return dataclasses.replace(where, ccache=fallback), info
            self.log.info(
                "Kerberos cache of %s needs a new ticket (%s): %s",
                shown_username(where.username),
                trigger,
                e,
            )
            return where, None
        return where, (info if info.principal == where.principal else None)

    def source_for(self, where: UserTicket) -> str:
        """Where this user's new tickets come from (credential_source)."""
        if self.credential_source == "auto":
            # A stat as root, on the attempt's thread.
            return lifecycle.SOURCE_KEYTAB if os.path.lexists(where.keytab) else lifecycle.SOURCE_PASSWORD
        return self.credential_source

    def _fallback_for(self, where: UserTicket) -> str | None:
        fallback = self.fallback_ccache(where)
        return None if fallback == where.ccache else fallback

    def _install_password_ticket(self, where: UserTicket, kind, trigger, deadline, password):
        with metrics.timed(kind, trigger):
            installed = _native.obtain_ticket_with_password(
                where.principal,
                password,
                where.ccache,
                uid=where.uid,
                gid=where.gid,
                lifetime=self.ticket_lifetime,
                renew_lifetime=self.renewable_lifetime or lifecycle.DEFAULT_PASSWORD_RENEWABLE_LIFETIME,
                deadline=deadline,
                fallback=self._fallback_for(where),
            )
        return self._installed(where, installed)

    def _renew_ticket(self, where: UserTicket, trigger, deadline):
        """A TGS renewal of the cache's ticket, ``(where, info)``; None when the
        KDC will not renew it (the caller falls back to the keytab)."""
        try:
            with metrics.timed("renewal", trigger):
                installed = _native.renew_ticket(
                    where.principal,
                    where.ccache,
                    uid=where.uid,
                    gid=where.gid,
                    deadline=deadline,
                    fallback=self._fallback_for(where),
                )
        except KerberosError as e:  # TicketNotRenewable too; a passed deadline fails the kinit as well
            self.log.info("Renewing the ticket of %s failed (%s); using the keytab", shown_username(where.username), e)
            return None
        return self._installed(where, installed)

    def _install_ticket(self, where: UserTicket, kind, trigger, deadline):
        self._warn_about_keytab(where)
        with metrics.timed(kind, trigger):
            installed = _native.obtain_ticket(
                where.principal,
                where.keytab,
                where.ccache,
                uid=where.uid,
                gid=where.gid,
                lifetime=self.ticket_lifetime,
                renew_lifetime=self.renewable_lifetime,
                deadline=deadline,
                fallback=self._fallback_for(where),
            )
        return self._installed(where, installed)

    def _installed(self, where: UserTicket, installed) -> tuple[UserTicket, Any]:
        """Report what the install replaced or could not replace; ``(where, info)``
        with the path the ticket is now at."""
        if installed.fallback_reason is not None:
            metrics.count_plant("unreplaceable")
            self.log.warning(
                "Could not install the Kerberos ticket of %s at %s (%s): another local user may have "
                "planted something there (a FUSE mount, say). Using %s instead; the server gets that path.",
                shown_username(where.username),
                where.ccache,
                installed.fallback_reason,
                installed.ccache,
            )
        if installed.ccache != where.ccache:
            self._in_use[where.username] = installed.ccache
            where = dataclasses.replace(where, ccache=installed.ccache)
        self._report_plant(where, installed)
        return where, installed.ticket

    def _report_plant(self, where: UserTicket, installed) -> None:
        if installed.replaced is not None:
            planted = installed.replaced
            metrics.count_plant(planted.kind)
            self.log.warning(
                "Replaced what was at the Kerberos cache of %s, %s: a %s owned by %s%s. "
                "Another local user may have planted it; it was not trusted or followed.",
                shown_username(where.username),
                where.ccache,
                planted.kind,
                lifecycle.owner_name(planted.owner_uid),
                f" (moved aside to {planted.moved_to})" if planted.moved_to else "",
            )

    def _warn_about_keytab(self, where: UserTicket) -> None:
        """A keytab is a password: others must not be able to read it."""
        try:
            keytab = _native.inspect_keytab(where.keytab)
        except KeytabError:
            return  # the kinit that follows reports it with the reason
        for problem in lifecycle.keytab_problems(keytab, where):
            # A missing key fails the kinit with its own message.
            if problem.what in ("owner", "mode"):
                self.log.warning("Keytab %s of %s: %s", where.keytab, shown_username(where.username), problem.detail)


def _explain(error: Exception, username: str) -> str:
    if isinstance(error, KeyError):
        return f"user {shown_username(username)} is not in the password database"
    return str(error)
