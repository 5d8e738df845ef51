"""``GET /hub/api/pamkrb/ticket``: the caller's own credential cache, for
the ticket broker's delivery to servers. ``POST`` with ``{"password": ...}``:
sign in again (PAM, then the KDC) and get a fresh ticket, without restarting
anything.

Who may fetch a ticket: the user it belongs to, authenticated by a token of
theirs (the server's ``JUPYTERHUB_API_TOKEN``) or by their own login.
Services get 403, and so does anyone naming another user (``?user=``),
admins included: nobody fetches another person's ticket. Requests are
rate-limited per user, and a ticket never crosses a network in clear text
unless the admin allows it.
"""

from __future__ import annotations

import ipaddress
import json
import time

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

CONTENT_TYPE = "application/octet-stream"

# A sign-in body holds one password; anything larger is refused unread.
MAX_SIGN_IN_BYTES = 64 * 1024


class RateLimit:
    """A token bucket per user: ``per_minute`` requests a minute, bursts
    of up to that many."""

    def __init__(self, per_minute: int):
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


class TicketAPIHandler(APIHandler):
    """Serves the calling user's own ticket (FILE ccache, format 4)."""

    @property
    def authenticator(self):
        return self.settings["authenticator"]

    def _refuse(self, status: int, message: str) -> None:
        raise web.HTTPError(status, message)

    def _owner(self):
        """The calling user, if they may have their own ticket; else 403."""
        user = self.current_user
        if user is None:
            self._refuse(403, "authenticate with the user's own token or login")
        if getattr(user, "kind", None) != "user":
            self._refuse(403, "services cannot fetch users' tickets")
        wanted = self.get_argument("user", user.name)
        if wanted != user.name:
            # Admins included: a ticket is its owner's alone.
            self.log.warning("Refused %s's request for %s's Kerberos ticket", user.name, wanted[:32])
            self._refuse(403, "a ticket can only be fetched by the user it belongs to")
        return user

    def _check_transport(self) -> None:
        if (
            self.request.protocol != "https"
            and not is_loopback(self.request.remote_ip or "")
            and not self.authenticator.allow_insecure_ticket_delivery
        ):
            self._refuse(
                403,
                "refusing to send a ticket in clear text to a non-loopback address; "
                "use JupyterHub's internal_ssl (or set allow_insecure_ticket_delivery)",
            )

    def _rate_limit(self, limit, key: str, what: str) -> None:
        wait = limit.take(key)
        if wait:
            error = web.HTTPError(429, f"too many {what}; try again later")
            # Tornado clears headers before writing an error: carried to write_error.
            error.retry_after = max(1, round(wait))
            raise error

    def _send_ticket(self, data: bytes) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(data)

    async def get(self):
        auth = self.authenticator
        user = self._owner()
        if not auth.ticket_broker:
            self._refuse(404, "the ticket broker is off (PAMKerberosAuthenticator.ticket_broker)")
        self._check_transport()
        self._rate_limit(auth.ticket_rate_limit, user.name, "ticket requests")
        self._send_ticket(await auth.deliverable_ticket(user.name))

    async def post(self):
        """Sign in again: the password is checked with PAM, then gets (or,
        for keytab users, permits) a fresh ticket. A wrong password is a 403
        and changes nothing. The password is never logged."""
        auth = self.authenticator
        user = self._owner()
        self._check_transport()
        if len(self.request.body) > MAX_SIGN_IN_BYTES:
            self._refuse(413, "request body too large")
        self._rate_limit(auth.sign_in_rate_limit, user.name, "sign-in attempts")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            self._refuse(400, 'send JSON: {"password": "..."}')
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(password, str):
            self._refuse(400, 'send JSON: {"password": "..."}')
        self._send_ticket(await auth.sign_in_again(self, user.name, password))

    def write_error(self, status_code, **kwargs):
        # The JSON error body JupyterHub's API clients expect, without the
        # exception's text beyond the message we chose.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        if getattr(exc, "retry_after", None):
            self.set_header("Retry-After", str(exc.retry_after))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))
