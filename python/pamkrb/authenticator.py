"""PAMKerberosAuthenticator: JupyterHub's PAMAuthenticator plus a Kerberos
ticket from the user's keytab, kept fresh and handed to their server."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from jupyterhub.auth import PAMAuthenticator
from tornado import web
from traitlets import Any, Bool, Float, Integer, TraitError, Unicode, default, validate

from . import _native, metrics
from .exceptions import (
    AuthenticationDenied,
    CredentialCacheError,
    InvalidUsername,
    KerberosError,
    KeytabError,
    PAMSystemError,
    TemplateError,
    TicketFormatError,
)
from .pam_stack import unsafe_service_reason

# PAM's own replies are capped at 512 bytes (PAM_MAX_RESP_SIZE); anything
# much longer is an attack on the hub's memory, not a password.
MAX_PASSWORD_BYTES = 8192

# What can go wrong between a successful PAM login and a ticket in place;
# KeyError is pwd's "no such user".
_TICKET_ERRORS = (
    KerberosError,
    KeytabError,
    CredentialCacheError,
    TicketFormatError,
    TemplateError,
    KeyError,
)

SPAWN_REFUSED = "No Kerberos ticket could be obtained for your server; please contact your administrator."

LOGIN_REFUSED = (
    "Your password was accepted, but no Kerberos ticket could be obtained for you, "
    "so Spark and Hadoop would not work. Please contact your administrator."
)


def shown_username(name: str) -> str:
    """A user-supplied name fit for a log line: truncated, never the whole input."""
    if len(name) > 32:
        return f"{name[:16]!r}...({len(name)} chars)"
    return repr(name)


@dataclass(frozen=True)
class UserKerberos:
    """Where one user's Kerberos material lives, from the password database."""

    username: str
    uid: int
    gid: int
    principal: str
    keytab: str
    ccache: str


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
        "{username}@{realm}",
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
        "/home/{username}/{username}.keytab",
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
        "/tmp/krb5cc_{uid}",
        config=True,
        help="""
        Path of a user's FILE credential cache, as a template (same
        placeholders as `principal_template`); must expand to an absolute path.

        The default, "/tmp/krb5cc_{uid}", is MIT Kerberos's own default cache
        name, so Hadoop, Spark and JVM clients find the ticket even without
        KRB5CCNAME. The cache is replaced atomically through a random temporary
        file in the same directory, owned by the user with mode 0600. Root
        refuses to write when the path holds a symlink, hard link, directory or
        someone else's file, when a directory on the path is a symlink, or when
        the directory is writable by others without the sticky bit.
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
        3600,
        min=0,
        config=True,
        help="""
        Seconds. A ticket with less than this left is renewed from the keytab
        (when the server is spawned and when JupyterHub refreshes the user).
        Below the ticket lifetime, or every check would renew. Default: 3600.
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
        15.0,
        min=1.0,
        config=True,
        help="""
        Seconds to wait for a ticket before giving up on the KDC.

        libkrb5 itself retries for about 30 seconds against a KDC that accepts
        connections but never answers; after this many seconds the login (or
        renewal) fails with a clear message instead. Kerberos work runs on its
        own threads, so a hung KDC never delays password checks or the hub's
        event loop. Default: 15.
        """,
    )

    kerberos_executor = Any(
        help="""Thread pool for keytab kinit and cache installation, separate
        from the PAM executor. Not configurable; sized like `executor_threads`."""
    )

    @default("kerberos_executor")
    def _default_kerberos_executor(self):
        return ThreadPoolExecutor(max(self.executor_threads, 4), thread_name_prefix="pamkrb-kinit")

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
        self._renewals: dict[str, asyncio.Future] = {}
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
        loop = asyncio.get_running_loop()
        call = partial(
            _native.pam_authenticate,
            self.service,
            username,
            encoded["password"],
            otp=encoded.get("one-time password"),
            remote_host=remote_ip,
            check_account=self.check_account,
        )
        try:
            await loop.run_in_executor(self.executor, call)
        except AuthenticationDenied as e:
            self.log.warning("PAM Authentication failed (%s): %s", where, e)
            return None
        except PAMSystemError as e:
            self.log.error("PAM failed (%s): %s", where, e)
            raise
        finally:
            # The native layer already zeroed them; this covers paths where
            # the call never ran.
            for buffer in encoded.values():
                buffer[:] = bytes(len(buffer))
        return username

    async def run_post_auth_hook(self, handler, auth_model):
        """Obtain the ticket once the user is known to be allowed in.

        Doing it here rather than in `authenticate` means a user who passes
        PAM but is not allowed or is blocked gets no cache written.
        """
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        name = auth_model["name"]
        try:
            info = await self._kerberos(self._login_ticket, name)
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
        self.log.info(
            "Kerberos ticket for %s (%s) valid until %s",
            shown_username(name),
            info.principal,
            _format_time(info.expires_at),
        )
        return auth_model

    # -- spawning and refreshing ----------------------------------------------

    async def pre_spawn_start(self, user, spawner):
        """Open the PAM session if configured, make sure the ticket is fresh,
        and point the server's KRB5CCNAME at the user's cache."""
        await super().pre_spawn_start(user, spawner)
        try:
            where = await self.ensure_fresh_ticket(user.name, trigger="spawn")
        except _TICKET_ERRORS as e:
            reason = _explain(e, user.name)
            shown = shown_username(user.name)
            if self.kinit_required:
                self.log.error("Not spawning %s: no Kerberos ticket: %s", shown, reason)
                raise web.HTTPError(500, "%s", SPAWN_REFUSED) from None
            self.log.warning("Spawning %s without a fresh Kerberos ticket: %s", shown, reason)
            return
        spawner.environment["KRB5CCNAME"] = f"FILE:{where.ccache}"
        # What the pamkrb server extension needs to renew the ticket as the
        # user, so there is no per-user setup.
        spawner.environment["PAMKRB_PRINCIPAL"] = where.principal
        spawner.environment["PAMKRB_KEYTAB"] = where.keytab
        spawner.environment["PAMKRB_CCACHE"] = where.ccache
        spawner.environment["PAMKRB_REFRESH_MARGIN"] = str(self.refresh_margin)
        spawner.environment["PAMKRB_KDC_TIMEOUT"] = f"{self.kdc_timeout:g}"
        if self.ticket_lifetime is not None:
            spawner.environment["PAMKRB_TICKET_LIFETIME"] = str(self.ticket_lifetime)

    async def refresh_user(self, user, handler=None):
        """Renew the user's ticket when less than `refresh_margin` remains.

        A failed renewal is logged, not turned into a logout: the user's
        server keeps working, and the next refresh tries again.
        """
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
        """Renew the user's ticket if it is missing or has less than
        `refresh_margin` left, and return where the user's principal, keytab
        and cache are. Concurrent calls for the same user share one renewal."""
        future = self._renewals.get(username)
        if future is None:
            future = asyncio.ensure_future(self._kerberos(self._fresh_ticket, username, trigger))
            self._renewals[username] = future

            def forget(done):
                if self._renewals.get(username) is done:
                    del self._renewals[username]

            future.add_done_callback(forget)
        # shield: a cancelled request must not cancel a renewal others await.
        return await asyncio.shield(future)

    # -- blocking work, run on the executor ------------------------------------

    async def _kerberos(self, func, *args):
        """Run Kerberos work on its own threads, giving up after kdc_timeout.

        On a time-out the thread finishes in the background (libkrb5 cannot
        be interrupted); its result is dropped.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.kerberos_executor, partial(func, *args))
        try:
            return await asyncio.wait_for(future, self.kdc_timeout)
        except asyncio.TimeoutError:
            raise KerberosError(
                f"no ticket within {self.kdc_timeout:g} s (kdc_timeout): "
                "the KDC did not answer; is it running and reachable?"
            ) from None

    def _user_kerberos(self, username) -> UserKerberos:
        entry = pwd.getpwnam(username)
        fields = {
            "username": entry.pw_name,
            "uid": entry.pw_uid,
            "gid": entry.pw_gid,
            "home": entry.pw_dir,
            "realm": self.realm,
        }
        return UserKerberos(
            username=entry.pw_name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            principal=_native.expand_template(self.principal_template, **fields),
            keytab=_native.expand_template(self.keytab_template, path=True, **fields),
            ccache=_native.expand_template(self.ccache_template, path=True, **fields),
        )

    def _login_ticket(self, username):
        return self._install_ticket(self._user_kerberos(username), "acquisition", "login")

    def _install_ticket(self, where: UserKerberos, kind, trigger):
        self._warn_about_keytab(where)
        with metrics.timed(kind, trigger):
            return _native.obtain_ticket(
                where.principal,
                where.keytab,
                where.ccache,
                uid=where.uid,
                gid=where.gid,
                lifetime=self.ticket_lifetime,
            )

    def _warn_about_keytab(self, where: UserKerberos) -> None:
        """A keytab is a password: others must not be able to read it."""
        try:
            st = os.lstat(where.keytab)
        except OSError:
            return  # the kinit reports a missing keytab with the reason
        if st.st_uid not in (where.uid, 0):
            self.log.warning(
                "Keytab %s of %s is owned by uid %d, not by the user or root",
                where.keytab,
                shown_username(where.username),
                st.st_uid,
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            self.log.warning(
                "Keytab %s of %s has mode %o: group or others can read or change it; run chmod 600 %s",
                where.keytab,
                shown_username(where.username),
                stat.S_IMODE(st.st_mode),
                where.keytab,
            )

    def _fresh_ticket(self, username, trigger) -> UserKerberos:
        metrics.count_check(trigger)
        where = self._user_kerberos(username)
        try:
            info = _native.inspect_ticket(where.ccache)
        except (CredentialCacheError, TicketFormatError) as e:
            self.log.info(
                "Kerberos cache of %s needs a new ticket (%s): %s",
                shown_username(username),
                trigger,
                e,
            )
        else:
            seconds_left = info.expires_at - time.time()
            if info.principal == where.principal and seconds_left > self.refresh_margin:
                return where
        self._install_ticket(where, "renewal", trigger)
        return where


def _explain(error: Exception, username: str) -> str:
    if isinstance(error, KeyError):
        return f"user {shown_username(username)} is not in the password database"
    return str(error)


def _format_time(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
