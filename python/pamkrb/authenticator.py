"""PAMKerberosAuthenticator: JupyterHub's PAMAuthenticator plus a Kerberos
ticket for each user, kept fresh and handed to their server.

This class holds the settings, ``authenticate`` and JupyterHub's hooks. The
tickets are kept by :class:`pamkrb.keeper.TicketKeeper` (one per user), the
broker's schedule by :mod:`pamkrb.broker`, and the ticket API's HTTP by
:mod:`pamkrb.ticket_api`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from tornado import web
from traitlets import Bool, Bunch, Callable, CaselessStrEnum, Float, Integer, TraitError, Unicode, default, validate

from . import _native, kdc_refusals, lifecycle, login, spnego, usernames
from .admin import HANDLERS as ADMIN_HANDLERS
from .exceptions import (
    AuthenticationDenied,
    InvalidUsername,
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
    that class keeps its meaning. After a login the user gets a ticket from
    their keytab or password (credential_source) in their own cache (0600);
    their server and its kernels get ``KRB5CCNAME`` pointing at it.
    """

    principal_template = Unicode(
        lifecycle.DEFAULT_PRINCIPAL_TEMPLATE,
        config=True,
        help="""
        Kerberos principal of a user, as a template. Placeholders: {user},
        {domain}, {username}, {uid}, {gid}, {home}, {realm}, from the
        authenticated user's password database entry and `realm` (never from
        the login form); {{ and }} are literal braces. {user} is the name
        without a domain (lower-case for a domain account), {domain} the
        domain ("" for a local account), {username} "user@domain" for a
        domain account and the local name otherwise (pamkrb.usernames).
        Per-host principals: "{user}/pg-dmp-workbench2@{realm}".
        Default: "{user}@{realm}".
        """,
    )

    keytab_template = Unicode(
        lifecycle.DEFAULT_KEYTAB_TEMPLATE,
        config=True,
        help="""
        Path of a user's keytab, as a template (placeholders as in
        principal_template); must expand to an absolute path. The hub reads
        it as root: a symbolic link or fifo there is refused, and it yields
        tickets for the user's own principal only. Keep it owned by the user
        (or root) and unreadable by others. Default: "/home/{username}/{username}.keytab".
        """,
    )

    ccache_template = Unicode(
        lifecycle.DEFAULT_CCACHE_TEMPLATE,
        config=True,
        help="""
        Path of a user's FILE credential cache, as a template (same
        placeholders as `principal_template`); must expand to an absolute path.
        The default, "/tmp/krb5cc_{uid}", is MIT's own default name, so JVM
        clients find the ticket even without KRB5CCNAME. The cache is replaced
        atomically, owned by the user with mode 0600; anything else found at
        the path (a link, a directory, a file not the user's own with mode
        0600: what another local user may plant) is never trusted, and is
        replaced, logged and counted (pamkrb_cache_plants_total). Root refuses
        a path through a symlink, or through a directory others can write
        without the sticky bit.
        """,
    )

    realm = Unicode(
        config=True,
        help="""
        Kerberos realm used for {realm} in the templates. Default:
        `default_realm` of the krb5.conf libkrb5 reads (KRB5_CONFIG, else
        /etc/krb5.conf).
        """,
    )

    ticket_lifetime = Integer(
        None,
        allow_none=True,
        min=60,
        config=True,
        help="""
        Requested ticket lifetime in seconds; the KDC may grant less.
        Default: None (krb5.conf's ticket_lifetime and the KDC decide).
        """,
    )

    refresh_margin = Integer(
        lifecycle.DEFAULT_REFRESH_MARGIN,
        min=0,
        config=True,
        help=f"""
        Seconds. A ticket with this much or less left is renewed (by TGS while
        renewable, else from the keytab): by the hub at spawn and refresh, and
        by the user's server (passed to the pamkrb server extension). Keep it
        below the ticket lifetime, or every check renews.
        Default: {lifecycle.DEFAULT_REFRESH_MARGIN}.
        """,
    )

    refresh_interval = Integer(
        lifecycle.DEFAULT_REFRESH_INTERVAL,
        min=0,
        config=True,
        help=f"""
        Seconds: the longest the user's server goes between two looks at an
        idle ticket (passed to the pamkrb server extension). Its timer is due
        when the ticket enters refresh_margin, so an idle ticket never lapses
        whatever this says; 0: the ticket's expiry alone schedules looks.
        Default: {lifecycle.DEFAULT_REFRESH_INTERVAL}.
        """,
    )

    renewable_lifetime = Integer(
        None,
        allow_none=True,
        min=60,
        config=True,
        help="""
        Requested renewable lifetime of new tickets, in seconds (the KDC may
        grant less). While a ticket is renewable the hub and the user's server
        renew it by a TGS request, not a new AS request from the keytab.
        Default: None (krb5.conf's renew_lifetime and the KDC decide).
        """,
    )

    credential_source = CaselessStrEnum(
        ["keytab", "password", "auto"],
        default_value="keytab",
        config=True,
        help="""
        Where a user's ticket comes from. "keytab" (default): their keytab
        (keytab_template). "password": the password they logged in with,
        in-process, never stored, wiped after use; renewable for
        renewable_lifetime (default 7 days for password tickets) by TGS
        requests, after which the user signs in again from the status bar,
        without a restart. A Kerberos password that differs from the PAM one
        refuses the login (see kinit_required). "auto": the keytab when its
        file exists, else the password.
        """,
    )

    warn_before = Integer(
        lifecycle.DEFAULT_WARN_BEFORE,
        min=0,
        config=True,
        help="""
        Seconds before a password ticket's renewable life ends that the
        status bar asks the user to sign in again. Default: 3600.
        """,
    )

    ticket_broker = Bool(
        False,
        config=True,
        help="""
        Whether the hub keeps every running server's ticket fresh (by TGS
        while renewable, from the source only when it must) and serves it at
        GET /hub/api/pamkrb/ticket to that server's own token. Servers then
        need neither the keytab nor the hub's /tmp: keytabs can be root's
        alone (e.g. /etc/security/keytabs/{username}.keytab, 0600), and
        servers on other hosts (KubeSpawner, BatchSpawner, PrivateTmp) get
        tickets. Off (default): each server renews its own ticket, from a
        keytab the user can read on the hub's host.
        """,
    )

    allow_insecure_ticket_delivery = Bool(
        False,
        config=True,
        help="""
        Whether the ticket broker may send a ticket over plain HTTP to a
        non-loopback address, where anyone who sees it can use it until it
        expires. Default: False; use JupyterHub's internal_ssl instead.
        """,
    )

    ticket_requests_per_minute = Integer(
        30,
        min=1,
        config=True,
        help="""
        GET /hub/api/pamkrb/ticket requests each user may make per minute
        (bursts up to that many); more get HTTP 429 with Retry-After.
        Default: 30.
        """,
    )

    kinit_required = Bool(
        True,
        config=True,
        help="""
        Whether a login needs a Kerberos ticket. True (default): a user whose
        ticket cannot be obtained is refused with a message on the login
        page, and the hub log says why. False: the login proceeds without a
        ticket, with a warning in the log.
        """,
    )

    kdc_timeout = Float(
        lifecycle.DEFAULT_KDC_TIMEOUT,
        min=1.0,
        config=True,
        help=f"""
        Seconds to wait for a ticket before giving up on the KDC (libkrb5
        alone tries a silent KDC for ~30 s). An attempt that outlives it
        installs nothing when it ends; at most one runs per user, on its own
        thread, so a hung KDC or keytab never delays other users or the
        hub's event loop. Default: {lifecycle.DEFAULT_KDC_TIMEOUT}.
        """,
    )

    fallback_ccache_dir = Unicode(
        lifecycle.DEFAULT_FALLBACK_CCACHE_DIR,
        config=True,
        help="""
        Where a user's ticket goes when their cache path cannot be replaced
        (e.g. another user's FUSE mount on /tmp/krb5cc_<uid>, which root can
        neither read nor rename over): "<dir>/<uid>/krb5cc", in a directory
        of the user's (0700) inside this root-owned one (0755), both created
        by the hub. The server then gets that path in KRB5CCNAME, the plant
        is logged and the status shows the path. Must be an absolute path
        on the hub's host that no user can write to. Default: "/run/pamkrb".
        """,
    )

    enterprise_principals = Bool(
        False,
        config=True,
        help="""
        Whether the principal of a password ticket is sent to the KDC as an
        enterprise name (kinit -E): set it when principal_template gives a
        user principal name (UPN) of Active Directory, such as
        "{username}@corp.example", whose domain is not a Kerberos realm. The
        default realm's KDC then looks the UPN up and answers with the
        account's own name ("alice@CORP.EXAMPLE"), which is the name the
        cache, the status and the renewals use from then on. Default: False
        (the principal is parsed as name@REALM). Keytab tickets are not
        affected: Active Directory exports keys under sAMAccountName@REALM,
        so a keytab site's principal_template must give that name.
        Canonicalization (kinit -C) is always requested, with or without
        this: an MIT KDC answers with the name asked for.
        """,
    )

    fast_armor_keytab = Unicode(
        "",
        config=True,
        help="""
        A keytab whose key armors every password ticket request (FAST,
        RFC 6113), e.g. the host's machine keytab /etc/krb5.keytab after
        `net ads join` or `realm join`. The hub first gets a ticket for the
        keytab's machine account (the first "NAME$" principal, else the first
        entry) into memory, and wraps each user's request in it, so the
        password exchange cannot be attacked offline. Requests then fail with
        a clear error if the KDC does not support FAST or the keytab is
        stale. Read as root through the same checks as users' keytabs (no
        symbolic links); keep it root-only. Default: "" (no armor; the
        KDC's "FAST required" policy would then refuse password logins).
        """,
    )

    retain_ticket_after_stop = Bool(
        False,
        config=True,
        help="""
        Whether a user's cache stays after their last server stops. False
        (default): it is destroyed then (with ticket_broker, each server also
        removes the copy it installed), and when the user is deleted or
        blocked, and nothing renews it, as pam_krb5 does at session close, so
        no ticket waits in /tmp for whoever later gains the uid. True: keep it
        (pam_krb5's retain_after_close), for ssh sessions sharing the cache.
        """,
    )

    keep_username_domain = Bool(
        False,
        config=True,
        help="""
        Whether a domain account's JupyterHub username always keeps its
        domain. False (default): ADPAMKRB\\adalice, adalice@ad.example and
        the other forms of one account become the JupyterHub user "adalice"
        when the host resolves the bare name "adalice" to that same account
        (winbind's default domain, SSSD without fully qualified names), and
        "adalice@adpamkrb" otherwise, so a local "adalice" and a domain one
        never share a JupyterHub user. True: always "user@domain". Applied
        before JupyterHub's username_map; local accounts are unaffected.
        """,
    )

    # -- single sign-on (pamkrb.spnego) -----------------------------------------

    spnego = Bool(
        False,
        config=True,
        help="""
        Whether the login page offers Kerberos single sign-on (SPNEGO):
        GET /hub/login answers 401 with "WWW-Authenticate: Negotiate" beside
        the usual form, and a browser that sends a valid ticket for the hub's
        service principal is logged in without a form (after PAM's account
        check, with check_account, and the allow/block lists). A ticket the
        browser delegates becomes the user's cache when its principal is the
        one principal_template names (else it is refused like any ticket
        that cannot be installed: see kinit_required); without one the
        ticket comes from credential_source. A signed-in browser gets a
        fresh delegated ticket at /hub/login?negotiate=1: when a delegated
        ticket reaches its renew-till, the user's server (told by
        PAMKRB_SIGN_IN=reload) says "sign in again by reloading" with that
        link, the sign-in dialog staying as a fallback. Needs
        spnego_keytab, and a proxy that passes the Authorization header on.
        Default: False.
        """,
    )

    spnego_keytab = Unicode(
        "/etc/pamkrb/http.keytab",
        config=True,
        help="""
        The hub's service keytab for single sign-on, holding the keys of
        HTTP/<the host name browsers use>@REALM. Must be a regular file owned
        by root with no group or other permission bits (whoever reads it can
        log in as anyone); read through the same checks as users' keytabs.
        Every principal in it is accepted, so keep only the hub's own there.
        Default: "/etc/pamkrb/http.keytab".
        """,
    )

    spnego_username = Callable(
        None,
        allow_none=True,
        config=True,
        help="""
        Maps a single sign-on's client principal ("alice@EXAMPLE.ORG") to a
        username, or to None to refuse it: a callable taking the principal as
        a string. Default: None, the rule "name@REALM of `realm` → name":
        principals of other realms or with an instance ("alice/admin") are
        refused. The username still passes PAM's account check and the
        allow/block lists.
        """,
    )

    spnego_replay_cache = Unicode(
        "",
        config=True,
        help="""
        MIT replay cache for single sign-on tokens ("dfl:", "file2:/path").
        A token seen before is refused, so a captured Authorization header
        cannot be used twice. Default: "" (MIT's default: KRB5RCACHENAME,
        else the file2 cache in KRB5RCACHEDIR or /var/tmp). "none:" turns
        replay detection off; never do that.
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

    @validate("fast_armor_keytab")
    def _validate_armor_keytab(self, proposal: Bunch) -> str:
        path = str(proposal.value)
        if path and not path.startswith("/"):
            # Root reads it: a relative path would depend on the hub's working directory.
            raise TraitError(f"PAMKerberosAuthenticator.fast_armor_keytab must be an absolute path, not {path!r}")
        return path

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
        # Users whose ticket is the one their browser delegated at their
        # last login: their server's status tells them to reload to get a
        # fresh one (pamkrb.spnego.RENEW_ARGUMENT).
        self.delegated_logins: set[str] = set()
        for problem in spnego.problems(self):
            self.log.warning("PAMKerberosAuthenticator: %s", problem)
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

    def normalize_username(self, username: str) -> str:
        """JupyterHub's username for a login name, by pamkrb's one naming
        rule (pamkrb.usernames.hub_name), then username_map. A name that
        rule refuses gets JupyterHub's own normalization (lower-case): such
        a name never passes a pamkrb login anyway. With JupyterHub's
        pam_normalize_username the name is first the one the password
        database gives for its uid, as in PAMAuthenticator."""
        if self.pam_normalize_username:
            username = usernames.by_uid(username)
        try:
            name = usernames.hub_name(username, keep_domain=self.keep_username_domain)
        except InvalidUsername:
            name = username.lower()
        mapped: str = self.username_map.get(name, name)
        return mapped

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        """Check the password with PAM (and the account, if `check_account`).

        Returns the username, or None if PAM denies the login. A broken PAM
        stack raises: that is our failure, not the user's.
        """
        negotiated = data.get(spnego.DATA_KEY)
        if isinstance(negotiated, spnego.Negotiated):
            return await spnego.authenticate(self, handler, negotiated)
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
        name = None
        try:
            authenticated = await login.check_with_pam(
                self.executor, self.service, username, encoded, remote_host=remote_ip, check_account=self.check_account
            )
            name = login.authenticated_name(username, authenticated)
        except AuthenticationDenied as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            message = login.policy_message(e.code)
            if message is not None:
                # Told on the login form (JupyterHub renders an HTTPError
                # raised by a form login as its login_error), before any
                # KDC request.
                raise web.HTTPError(403, "%s", message) from None
            return None
        except login.Refused as e:
            self.log.warning("PAM Authentication failed (%s): %s", who, e)
            return None
        except (PAMSystemError, NativePanic) as e:
            self.log.error("PAM failed (%s): %s", who, e)
            raise
        finally:
            if stash is not None and name is None:
                stash[:] = bytes(len(stash))
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
        delegated = spnego.delegated_source(self, handler, name)
        try:
            keeper = self.tickets.keeper(name)
            if delegated is not None:
                info = (await keeper.replace("spnego", obtain=delegated)).info
            else:
                info = (await keeper.replace("login", password=password)).info
        except TICKET_ERRORS as e:
            rejected = isinstance(e, KerberosPasswordRejected)
            message = kdc_refusals.user_message(e) or (KERBEROS_PASSWORD_REFUSED if rejected else LOGIN_REFUSED)
            self._no_ticket(f"login of {shown(name)}", e, name, 403, message)
            return auth_model
        finally:
            if password is not None:
                password[:] = bytes(len(password))
        if delegated is not None:
            self.delegated_logins.add(name)
        else:
            self.delegated_logins.discard(name)
        expires = lifecycle.local_time(info.expires_at)
        self.log.info("Kerberos ticket for %s (%s) valid until %s", shown(name), info.principal, expires)
        return auth_model

    def _no_ticket(self, what: str, error: Exception, username: str, status: int, message: str) -> None:
        """No ticket for ``what``: with kinit_required, refuse it (the reason
        in the log, ``message`` for the user); else go on, with a warning."""
        reason = explain(error, username)
        if self.kinit_required:
            self.log.error("Refusing %s: no Kerberos ticket: %s", what, reason)
            raise web.HTTPError(status, "%s", message) from None
        self.log.warning("%s without a Kerberos ticket: %s", what[0].upper() + what[1:], reason)

    # -- spawning and refreshing ----------------------------------------------

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Open the PAM session if configured, make sure the ticket is fresh,
        and point the server's KRB5CCNAME at the user's cache."""
        await super().pre_spawn_start(user, spawner)
        self.tickets.serve(user)
        try:
            in_place = await self.tickets.keeper(user.name).refresh("spawn")
        except TICKET_ERRORS as e:
            self._no_ticket(f"spawn of {shown(user.name)}", e, user.name, 500, SPAWN_REFUSED)
            return
        # KRB5CCNAME for every Kerberos client in the server and its kernels,
        # and what the pamkrb server extension needs to renew as the user:
        # the path in use, the fallback one if the usual one was planted.
        by_reload = self.spnego and user.name in self.delegated_logins
        settings = self.tickets.server_settings(in_place.target, sign_in_by_reload=by_reload)
        spawner.environment.update(settings.to_env())
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
        # The Negotiate login page first: tornado takes the first match for /login.
        own = [*spnego.handlers(self), ("/api/pamkrb/ticket", TicketAPIHandler), *ADMIN_HANDLERS]
        return [*own, *super().get_handlers(app)]
