"""Single sign-on at the hub's login: ``Authorization: Negotiate`` (SPNEGO).

With ``spnego = True``, ``GET /hub/login`` answers 401 with
``WWW-Authenticate: Negotiate`` and the usual form as its body. A browser
that holds a Kerberos ticket and trusts the hub sends its token on the next
request; the token is accepted off the event loop (src/gssapi.rs, the GIL
released), the client principal is mapped to a username by an explicit rule,
PAM's account stack and JupyterHub's allow/block checks run as for a password
login, and the user is in without a form. A browser that delegated its TGT
gets that ticket installed as their cache (the same safe installer as every
other ticket); without delegation the ticket comes from ``credential_source``.

A bad, replayed or foreign token, or a principal that maps to nobody, gets the
form again (status 403), writes nothing, and logs only the principal and
libgssapi's reason: never the token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from jupyterhub.handlers.login import LoginHandler
from tornado.escape import xhtml_escape

from . import _native, lifecycle, login
from .exceptions import AuthenticationDenied, KerberosError, KeytabError, NativePanic, PAMSystemError
from .keeper import Obtain, Target, shown

if TYPE_CHECKING:
    from ._native import Installation
    from .authenticator import PAMKerberosAuthenticator

SCHEME = "Negotiate"

# What a browser's token may be, base64-encoded: src/gssapi.rs refuses more
# than 64 KiB of token; the header is checked before it is decoded.
MAX_HEADER_CHARS = 4 * (64 * 1024 // 3 + 1) + len(SCHEME) + 1

# GET /hub/login?negotiate=1 by a signed-in user: offer Negotiate again, so
# that a browser whose delegated ticket ran out gets a fresh one installed.
RENEW_ARGUMENT = "negotiate"

# The key under which a negotiated login reaches ``authenticate``: its value
# is a Negotiated object, which a form (strings only) can never send.
DATA_KEY = "pamkrb.negotiated"

# Where the delegated ticket waits between ``authenticate`` and the post-auth
# hook, on the request's handler (so it dies with the request).
_HANDLER_ATTRIBUTE = "_pamkrb_delegated"


@dataclass(frozen=True)
class Negotiated:
    """What an accepted token says."""

    principal: str  # name@REALM, as the ticket names the client
    realm: str
    components: tuple[str, ...]
    output_token: bytes = field(repr=False)
    # The delegated TGT as FILE-cache bytes (with its session key); None
    # when the browser delegated nothing.
    delegated: bytes | None = field(default=None, repr=False)


def token_from_header(header: str) -> bytes | None:
    """The token of an ``Authorization: Negotiate <base64>`` header; None
    for another scheme or a malformed or oversized one."""
    if len(header) > MAX_HEADER_CHARS:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        return None
    try:
        token = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return token or None


def default_username(negotiated: Negotiated, realm: str) -> str | None:
    """The default rule: ``name@REALM`` of the configured realm → ``name``;
    any other realm, or a principal with an instance (``name/admin``), maps to
    nobody."""
    if not realm or negotiated.realm != realm or len(negotiated.components) != 1:
        return None
    return negotiated.components[0]


async def accept(settings: PAMKerberosAuthenticator, header: str) -> Negotiated:
    """Accept the header's token on the authenticator's executor, within
    kdc_timeout. AuthenticationDenied for the client's failure; KeytabError,
    KerberosError or NativePanic for ours."""
    token = token_from_header(header)
    if token is None:
        raise AuthenticationDenied("not a well-formed Negotiate token")
    deadline = time.monotonic() + settings.kdc_timeout
    call = partial(
        lifecycle.call_native,
        _native.accept_negotiate,
        token,
        settings.spnego_keytab,
        replay_cache=settings.spnego_replay_cache or None,
        deadline=deadline,
    )
    loop = asyncio.get_running_loop()
    try:
        principal, realm, components, output, delegated = await asyncio.wait_for(
            loop.run_in_executor(settings.executor, call), settings.kdc_timeout
        )
    except asyncio.TimeoutError:
        raise KerberosError(f"accepting a Negotiate token took over {settings.kdc_timeout} s", None) from None
    return Negotiated(principal, realm, tuple(components), output, delegated)


def map_username(settings: PAMKerberosAuthenticator, negotiated: Negotiated) -> str | None:
    # Any: traitlets types a Callable trait as never None, allow_none or not.
    rule: Any = settings.spnego_username
    if rule is None:
        return default_username(negotiated, settings.realm)
    try:
        mapped = rule(negotiated.principal)
    except Exception as e:  # the admin's code: their failure, reported, and nobody let in
        settings.log.error("spnego_username failed for %r: %s: %s", negotiated.principal[:256], type(e).__name__, e)
        return None
    return mapped if isinstance(mapped, str) and mapped else None


async def authenticate(settings: PAMKerberosAuthenticator, handler: Any, negotiated: Negotiated) -> str | None:
    """``authenticate`` for a negotiated login: the mapped username after
    PAM's account stack (with check_account), or None. The delegated ticket
    waits on ``handler`` for the post-auth hook."""
    who = repr(negotiated.principal[:256])
    username = map_username(settings, negotiated)
    if username is None:
        settings.log.warning("Single sign-on refused: principal %s maps to no user", who)
        return None
    try:
        login.check_name(username)
    except login.Refused as e:
        settings.log.warning("Single sign-on refused for %s: %s", who, e)
        return None
    remote_ip = handler.request.remote_ip if handler is not None else None
    name = username
    if settings.check_account:
        call = partial(
            lifecycle.call_native, _native.pam_check_account, settings.service, username, remote_host=remote_ip
        )
        try:
            authenticated = await asyncio.get_running_loop().run_in_executor(settings.executor, call)
            name = login.authenticated_name(username, authenticated)
        except (AuthenticationDenied, login.Refused) as e:
            settings.log.warning("Single sign-on refused for %s (%s): PAM account check: %s", who, shown(username), e)
            return None
        except (PAMSystemError, NativePanic) as e:
            settings.log.error("PAM account check failed for %s (%s): %s", who, shown(username), e)
            raise
    settings.log.info("Single sign-on: %s as %s%s", who, shown(name), " (delegated)" if negotiated.delegated else "")
    if handler is not None and negotiated.delegated is not None:
        setattr(handler, _HANDLER_ATTRIBUTE, (name, negotiated))
    return name


def delegated_source(settings: PAMKerberosAuthenticator, handler: Any, username: str) -> Obtain | None:
    """The source that installs this request's delegated ticket as
    ``username``'s cache (taken: it is used once), or None."""
    stashed = getattr(handler, _HANDLER_ATTRIBUTE, None) if handler is not None else None
    if stashed is None:
        return None
    delattr(handler, _HANDLER_ATTRIBUTE)
    name, negotiated = stashed
    # JupyterHub normalized the name authenticate returned before the hook.
    if settings.normalize_username(name) != username or negotiated.delegated is None:
        return None
    data: bytes = negotiated.delegated

    def install(target: Target, deadline: float) -> Installation:
        # install_cache refuses a cache whose entries are not all
        # target.principal's: a delegated ticket of another principal than
        # principal_template names never becomes this user's cache.
        return _native.install_cache(
            target.ccache,
            data,
            principal=target.principal,
            uid=target.uid,
            gid=target.gid,
            deadline=deadline,
            fallback=None if target.fallback == target.ccache else target.fallback,
        )

    return install


class NegotiateLoginHandler(LoginHandler):  # type: ignore[misc]  # JupyterHub is untyped
    """JupyterHub's login page, plus ``Authorization: Negotiate`` when the
    authenticator's ``spnego`` is on (otherwise exactly JupyterHub's)."""

    async def get(self) -> None:
        settings = self.authenticator
        if not getattr(settings, "spnego", False):
            return await super().get()  # type: ignore[no-any-return]
        header = self.request.headers.get("Authorization")
        if header is not None and not header.strip().lower().startswith(SCHEME.lower()):
            header = None
        signed_in = self.current_user
        if header is None:
            if signed_in is None:
                self.set_status(401)
                self.set_header("WWW-Authenticate", SCHEME)
                return await super().get()  # type: ignore[no-any-return]
            if self.get_argument(RENEW_ARGUMENT, "") == "":
                return await super().get()  # type: ignore[no-any-return]
            # Signed in, and asked for a fresh ticket (the old one ran out):
            # offer Negotiate again; a browser that cannot answer it follows
            # the link on to where it was going.
            self.set_status(401)
            self.set_header("WWW-Authenticate", SCHEME)
            target = xhtml_escape(self.get_next_url(signed_in))
            self.finish(f'<!DOCTYPE html><title>Single sign-on</title><a href="{target}">Continue</a>')
            return None
        user = None
        try:
            negotiated = await accept(settings, header)
        except AuthenticationDenied as e:
            self.log.warning("Single sign-on refused (from %s): %s", self.request.remote_ip, e)
        except (KeytabError, KerberosError, NativePanic) as e:
            self.log.error("Single sign-on failed (from %s): %s", self.request.remote_ip, e)
        else:
            # A signed-in user's browser negotiating again logs in again:
            # the post-auth hook installs the new (delegated) ticket.
            user = await self.login_user({DATA_KEY: negotiated})
            if user is not None and negotiated.output_token:
                # Mutual authentication: the browser checks the hub too.
                self.set_header("WWW-Authenticate", f"{SCHEME} {base64.b64encode(negotiated.output_token).decode()}")
        if user is None:
            if signed_in is not None:
                # Still signed in: only the new ticket failed.
                self.redirect(self.get_next_url(signed_in))
                return None
            # The form, as for a wrong password; no second Negotiate offer,
            # which a browser would answer with the same refused ticket.
            self.set_status(403)
            return await super().get()  # type: ignore[no-any-return]
        self._jupyterhub_user = user
        self.redirect(self.get_next_url(user))
        return None


def handlers(settings: PAMKerberosAuthenticator) -> list[tuple[str, Any]]:
    """The login page that offers Negotiate, when spnego is on: registered
    before JupyterHub's own /login (the authenticator's handlers come first)."""
    return [("/login", NegotiateLoginHandler)] if settings.spnego else []


def problems(settings: PAMKerberosAuthenticator) -> list[str]:
    """What makes single sign-on unusable as configured (for startup)."""
    if not settings.spnego:
        return []
    found = []
    if not settings.spnego_keytab:
        found.append("spnego is on but spnego_keytab is empty")
    rule: Any = settings.spnego_username
    if rule is None and not settings.realm:
        found.append("spnego is on, but no realm is configured for the default principal → username rule")
    return found


__all__ = [
    "DATA_KEY",
    "RENEW_ARGUMENT",
    "NegotiateLoginHandler",
    "Negotiated",
    "accept",
    "authenticate",
    "default_username",
    "delegated_source",
    "handlers",
    "problems",
    "token_from_header",
]
