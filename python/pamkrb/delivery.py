"""The server's side of the ticket broker: fetch the user's ticket from the
hub's API and install it into the server's own cache, as the user.

Runs on the lifecycle's attempt thread (blocking I/O is fine there). The hub's
address, the server's token and, with JupyterHub's ``internal_ssl``, the
certificates come from the environment JupyterHub gives every single-user
server; nothing here is configured separately.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPResponse
from typing import Any, cast

from . import _native
from ._native import Installation
from .exceptions import TicketDeliveryError

TICKET_PATH = "/pamkrb/ticket"
"""Below the hub's API URL: ``<hub>/hub/api/pamkrb/ticket``."""


def ticket_url(environ: Mapping[str, str] = os.environ) -> str:
    api = environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    if not api:
        raise TicketDeliveryError("JUPYTERHUB_API_URL is not set: this server was not started by JupyterHub")
    return api + TICKET_PATH


def _ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext | None:
    """internal_ssl: trust the hub's internal CA and present the server's
    certificate, as JupyterHub's own clients do."""
    ca = environ.get("JUPYTERHUB_SSL_CLIENT_CA")
    if not ca:
        return None
    context = ssl.create_default_context(cafile=ca)
    cert, key = environ.get("JUPYTERHUB_SSL_CERTFILE"), environ.get("JUPYTERHUB_SSL_KEYFILE")
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


def fetch_from_hub(
    principal: str, ccache: str, deadline: float, environ: Mapping[str, str] = os.environ
) -> Installation:
    """GET the user's ticket from the hub and install it at the server's
    cache; returns the native Installation. Raises TicketDeliveryError when
    the hub cannot be reached or refuses, and the native errors when what it
    sent is not a valid cache for the user's principal."""
    return _exchange(principal, ccache, deadline, environ, None)


def sign_in(
    principal: str, ccache: str, password: str, deadline: float, environ: Mapping[str, str] = os.environ
) -> Installation:
    """POST the user's password to the hub (sign in again) and install the
    fresh ticket it answers with; the native Installation. A wrong password
    is TicketDeliveryError with status 403."""
    body = json.dumps({"password": password}).encode()
    return _exchange(principal, ccache, deadline, environ, body)


def _exchange(
    principal: str, ccache: str, deadline: float, environ: Mapping[str, str], body: bytes | None
) -> Installation:
    url = ticket_url(environ)
    token = environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        raise TicketDeliveryError("JUPYTERHUB_API_TOKEN is not set: the hub cannot tell who is asking")
    headers = {"Authorization": f"token {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # the hub is reached directly, never via a proxy
    context = _ssl_context(environ)
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    timeout = max(0.1, deadline - time.monotonic())
    try:
        with cast(HTTPResponse, opener.open(request, timeout=timeout)) as response:
            data = response.read(_native.MAX_CACHE_BYTES + 1)
    except urllib.error.HTTPError as e:
        reason = _hub_message(e)
        raise TicketDeliveryError(f"the hub refused the ticket ({e.code}): {reason}", status=e.code) from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        why = getattr(e, "reason", e)
        raise TicketDeliveryError(f"cannot reach the hub at {url}: {why}") from None
    if len(data) > _native.MAX_CACHE_BYTES:
        raise TicketDeliveryError(f"the hub sent more than {_native.MAX_CACHE_BYTES} bytes; not a credential cache")
    return _native.install_cache(ccache, data, principal=principal, deadline=deadline)


def _hub_message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read(4096)).get("message") or error.reason)
    except Exception:  # the body is the hub's to format; the status code says enough
        return str(error.reason)
