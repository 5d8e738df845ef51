"""``GET /hub/api/pamkrb/ticket``: the caller's own credential cache, for
the ticket broker's delivery to servers. ``POST`` with ``{"password": ...}``:
sign in again (PAM, then the KDC) and get a fresh ticket, without restarting
anything.

Who may call it: only the token JupyterHub issued to one of the user's own
*running* servers (the server's ``JUPYTERHUB_API_TOKEN``). Every other
credential of the same user is refused with 403: cookie sessions, personal
tokens, OAuth tokens minted when the user visits someone else's server or
logs in to a service, tokens of a user with no running server, and every
token of an admin or a service. A visitor's token reaches the visited
server, whose owner controls it; a ticket is a realm-wide credential, so it
goes to nothing but the process that runs as its owner. Requests are
rate-limited per user, and a ticket never crosses a network in clear text
unless the admin allows it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any, NoReturn

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.utils import compare_token, utcnow
from tornado import httputil, iostream, web

from . import audit, kdc_refusals, usernames
from .exceptions import AccountRevoked, KerberosPasswordRejected, PasswordExpired
from .hub_tickets import TICKET_ERRORS, explain
from .keeper import TicketInPlace, shown
from .sign_in_body import sign_in_password

if TYPE_CHECKING:
    from .authenticator import PAMKerberosAuthenticator

CONTENT_TYPE = "application/octet-stream"

# Sign-ins again (POST) per user per minute: each is a PAM check and a KDC
# request with a password, so guessing must stay slow.
SIGN_INS_PER_MINUTE = 5

# Attempts a delivery makes to get the cache's bytes: one that joined a
# running attempt which did not read them (the broker's renewal) reads
# again; a third is only needed if yet another started in between.
DELIVERY_READS = 3

# How stale a server token's "last used" may get from ticket fetches alone.
# JupyterHub writes a token's last_activity, and commits the database on the
# event loop, whenever a request finds it more than activity_resolution
# (30 s) old; a ticket fetch is the server's machinery, not a sign of use,
# and the server's own activity reports (every 5 min, same token) keep the
# value current anyway. Measured (bench/README.md, "Broker: what stalls the
# hub"): with 1,000 servers fetching at the benchmark's pace this removes
# about 1,000 commits a minute from the hub's loop.
TOKEN_ACTIVITY_RESOLUTION = 3600.0


class TooManyRequests(web.HTTPError):
    """HTTP 429; Tornado clears headers before writing an error, so the
    Retry-After value is carried to write_error."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(429, f"too many {what}; try again later")
        self.retry_after = retry_after


class RateLimit:
    """A token bucket per user: ``per_minute`` requests a minute, bursts
    of up to that many."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 if a request is allowed now, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate if self.rate > 0 else float("inf")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_running_servers_token(user: Any, token: str) -> bool:
    """Whether ``token`` is the API token JupyterHub issued to one of
    ``user``'s servers that is running (or starting) now.

    The spawner holds its token in memory from the spawn; after a hub
    restart it does not, and the server's OAuth client secret, which
    JupyterHub sets to the same token (stored hashed), is compared instead.
    """
    for spawner in user.spawners.values():
        if not spawner.active or spawner.pending == "stop":
            continue
        if spawner.api_token:
            if hmac.compare_digest(spawner.api_token.encode(), token.encode()):
                return True
            continue
        client = spawner.orm_spawner.oauth_client
        if client is not None and client.secret and compare_token(client.secret, token):
            return True
    return False


def last_forwarded(request: httputil.HTTPServerRequest, name: str) -> str:
    """The last entry of a forwarding header: the one the nearest proxy
    appended. Entries before it are whatever the client sent."""
    values = ",".join(request.headers.get_list(name))
    return values.rsplit(",", 1)[-1].strip() if values else ""


def is_private_transport(request: httputil.HTTPServerRequest) -> bool:
    """Whether a ticket may travel on this request: TLS on the socket, or a
    loopback peer that is not relaying a plain-HTTP client from elsewhere.

    Decided from the socket and the nearest proxy's headers only. JupyterHub
    runs Tornado with ``xheaders``, so ``request.remote_ip`` and
    ``request.protocol`` come from ``X-Real-Ip`` and ``X-Scheme``, which any
    client can set and configurable-http-proxy passes on.
    """
    connection = request.connection
    if isinstance(getattr(connection, "stream", None), iostream.SSLIOStream):
        return True
    address = getattr(getattr(connection, "context", None), "address", None)
    peer = address[0] if isinstance(address, tuple) and address else ""
    if not is_loopback(peer):
        return False
    forwarded_for = last_forwarded(request, "X-Forwarded-For")
    if not forwarded_for or is_loopback(forwarded_for):
        return True
    # A proxy on this host relayed a client from elsewhere: fine only if
    # that client reached the proxy over TLS, as the proxy itself says.
    return last_forwarded(request, "X-Forwarded-Proto").lower() == "https"


async def deliverable_ticket(auth: PAMKerberosAuthenticator, user: Any, client: str | None = None) -> bytes:
    """The fresh ticket of ``user`` (whose running server asks) as FILE
    ccache bytes. Also (re)starts brokering the user, e.g. after a hub
    restart."""
    username = user.name
    tickets = auth.tickets
    if not auth.check_blocked_users(username):
        await tickets.forget(username, "user blocked", destroy=True)
        raise web.HTTPError(403, "this user is blocked")
    tickets.serve(user)
    try:
        data: bytes | None = None
        for _ in range(DELIVERY_READS):
            in_place = await tickets.keeper(username).refresh("delivery", read=True)
            data = in_place.data
            if data is not None:
                break
            # The fetch shared an attempt already running for the user that
            # reads no bytes (the broker's own renewal, a refresh_user): the
            # ticket is fresh now, so the next attempt only reads it.
        if data is None:
            raise web.HTTPError(503, "the ticket is being renewed; try again")
    except TICKET_ERRORS as e:
        auth.log.warning("No ticket to deliver to %s: %s", shown(username), explain(e, username))
        raise web.HTTPError(503, "no fresh Kerberos ticket for this user right now; see the hub log") from None
    tickets.broker.track(username)
    info, target = in_place.info, in_place.target
    tickets.audit.emit(
        audit.TICKET,
        action="delivered",
        user=username,
        principal=target.principal,
        source=target.source,
        trigger="delivery",
        expires_at=audit.when(info.expires_at),
        renew_till=audit.when(info.renew_until),
        client_address=client,
    )
    return data


async def sign_in_again(auth: PAMKerberosAuthenticator, handler: Any, username: str, password: str) -> bytes:
    """Check ``password`` with PAM and get a fresh ticket (from it, for a
    password user; from the keytab otherwise); the new cache's bytes.
    A wrong password: HTTP 403, nothing changes."""
    started = time.monotonic()
    try:
        in_place = await _sign_in_again(auth, handler, username, password)
    except web.HTTPError as e:
        signed_in(auth, handler, username, started, e.log_message or "refused", e.__context__)
        raise
    signed_in(auth, handler, username, started, principal=in_place.target.principal)
    assert in_place.data is not None
    return in_place.data


def signed_in(
    auth: PAMKerberosAuthenticator,
    handler: Any,
    username: str,
    started: float,
    refused: str | None = None,
    error: BaseException | None = None,
    *,
    principal: str | None = None,
) -> None:
    """The sign-in event (pamkrb.audit.SIGN_IN); never the password. The
    principal is known once the sign-in got a ticket."""
    auth.tickets.audit.emit(
        audit.SIGN_IN,
        user=username,
        principal=principal,
        outcome="refused" if refused else "ok",
        reason=refused,
        kdc_error_code=getattr(error, "code", None),
        client_address=handler.request.remote_ip,
        duration_ms=round((time.monotonic() - started) * 1000, 3),
    )


async def _sign_in_again(auth: PAMKerberosAuthenticator, handler: Any, username: str, password: str) -> TicketInPlace:
    if not password:
        raise web.HTTPError(403, "the password was not accepted")
    # PAM gets the account's own name (ADPAMKRB\\adalice for the JupyterHub
    # user adalice@adpamkrb): one PAM attempt, as one form login would be.
    account = usernames.account_name(username)
    authenticated = await auth.authenticate(handler, {"username": account, "password": password})
    stashed = auth.take_password(handler, username)
    try:
        if authenticated is None or auth.normalize_username(authenticated) != username:
            raise web.HTTPError(403, "the password was not accepted")
        # A password attempt never joins a running one without it (a
        # broker renewal, a spawn): that one would discard the password.
        in_place = await auth.tickets.keeper(username).replace("sign-in", password=stashed, read=True)
    except KerberosPasswordRejected as e:
        auth.log.warning("Sign-in of %s: %s", shown(username), e)
        raise web.HTTPError(403, "the Kerberos server did not accept the password") from None
    except (PasswordExpired, AccountRevoked) as e:
        # The account's policy, not a wrong password and not the system: the
        # user gets the reason (the same words as on the login form).
        auth.log.warning("Sign-in of %s: %s", shown(username), e)
        raise web.HTTPError(403, kdc_refusals.user_message(e)) from None
    except TICKET_ERRORS as e:
        auth.log.warning("Sign-in of %s: no ticket: %s", shown(username), explain(e, username))
        raise web.HTTPError(503, "no Kerberos ticket could be obtained; see the hub log") from None
    finally:
        if stashed is not None:
            stashed[:] = bytes(len(stashed))
    auth.log.info("%s signed in again; new Kerberos ticket", shown(username))
    return in_place


class TicketAPIHandler(APIHandler):  # type: ignore[misc]  # JupyterHub is untyped
    """Serves the calling user's own ticket (FILE ccache, format 4)."""

    @property
    def authenticator(self) -> PAMKerberosAuthenticator:
        auth: PAMKerberosAuthenticator = self.settings["authenticator"]
        return auth

    def _limit(self, name: str, per_minute: int) -> RateLimit:
        """The app's rate limit ``name``: one per hub, kept in its settings."""
        limit: RateLimit = self.settings.setdefault(f"pamkrb_{name}", RateLimit(per_minute))
        return limit

    def _record_activity(self, obj: Any, timestamp: Any = None) -> bool:
        """JupyterHub's activity bookkeeping, with a server token's own
        last_activity written at most once per TOKEN_ACTIVITY_RESOLUTION."""
        if isinstance(obj, orm.APIToken) and obj.last_activity is not None:
            now = timestamp if timestamp is not None else utcnow(with_tz=False)
            if (now - obj.last_activity).total_seconds() <= TOKEN_ACTIVITY_RESOLUTION:
                return False
        recorded: bool = super()._record_activity(obj, timestamp)
        return recorded

    def _refuse(self, status: int, message: str) -> NoReturn:
        raise web.HTTPError(status, message)

    def _owner(self) -> Any:
        """The user whose running server's own token made the request; else 403."""
        token = self.get_auth_token() if self.get_token() is not None else None
        if not token:
            # A cookie session, or no credential: a browser page (perhaps
            # another user's page on the hub's origin) must not get a ticket.
            self._refuse(403, "only the user's own server may fetch its ticket: use the server's JUPYTERHUB_API_TOKEN")
        user = self.current_user
        if user is None:
            self._refuse(403, "authenticate with the user's own server's token")
        if getattr(user, "kind", None) != "user":
            self._refuse(403, "services cannot fetch users' tickets")
        wanted = self.get_argument("user", user.name)
        if wanted != user.name:
            # Admins included: a ticket is its owner's alone.
            self.log.warning("Refused %s's request for %s's Kerberos ticket", user.name, wanted[:32])
            self._refuse(403, "a ticket can only be fetched by the user it belongs to")
        if not is_running_servers_token(user, token):
            self.log.warning(
                "Refused a Kerberos ticket request for %s: the token is not one of their running servers'",
                user.name[:32],
            )
            self._refuse(403, "only the token JupyterHub issued to the user's running server may fetch its ticket")
        return user

    def _check_transport(self) -> None:
        if not is_private_transport(self.request) and not self.authenticator.allow_insecure_ticket_delivery:
            self._refuse(
                403,
                "refusing to send a ticket in clear text to a non-loopback address; "
                "use JupyterHub's internal_ssl (or set allow_insecure_ticket_delivery)",
            )

    def _rate_limit(self, limit: RateLimit, key: str, what: str) -> None:
        wait = limit.take(key)
        if wait:
            raise TooManyRequests(what, max(1, round(wait)))

    def _send_ticket(self, data: bytes) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(data)

    async def get(self) -> None:
        auth = self.authenticator
        user = self._owner()
        if not auth.ticket_broker:
            self._refuse(404, "the ticket broker is off (PAMKerberosAuthenticator.ticket_broker)")
        self._check_transport()
        self._rate_limit(self._limit("ticket_requests", auth.ticket_requests_per_minute), user.name, "ticket requests")
        self._send_ticket(await deliverable_ticket(auth, user, self.request.remote_ip))

    async def post(self) -> None:
        """Sign in again: the password is checked with PAM, then gets (or,
        for keytab users, permits) a fresh ticket. A wrong password is a 403
        and changes nothing. The password is never logged."""
        auth = self.authenticator
        user = self._owner()
        self._check_transport()
        password = sign_in_password(self.request.body, allow_empty=True)
        self._rate_limit(self._limit("sign_ins", SIGN_INS_PER_MINUTE), user.name, "sign-in attempts")
        self._send_ticket(await sign_in_again(auth, self, user.name, password))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # The JSON error body JupyterHub's API clients expect, without the
        # exception's text beyond the message we chose.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        if isinstance(exc, TooManyRequests):
            self.set_header("Retry-After", str(exc.retry_after))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))
