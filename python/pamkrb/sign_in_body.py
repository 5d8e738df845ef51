"""The body of a sign-in request, ``{"password": "..."}``, read the same way by
the hub (``POST /hub/api/pamkrb/ticket``) and by the server extension
(``POST pamkrb/api/signin``)."""

from __future__ import annotations

import json

from tornado import web

from ._native import MAX_SIGN_IN_BYTES

_SHAPE = 'send JSON: {"password": "..."}'


def sign_in_password(body: bytes, *, allow_empty: bool = False) -> str:
    """The password in ``body``; else ``HTTPError`` 413 (larger than
    ``MAX_SIGN_IN_BYTES``) or 400 (not a JSON object with a string
    ``password``, or an empty one unless ``allow_empty``).

    The hub allows an empty password so that it is refused (403) and audited
    like any wrong one; the server refuses it before it asks the hub. The
    errors never quote the body: it holds the password. A ``str``, not a
    wipeable buffer: ``Authenticator.authenticate`` takes the password as one,
    and the JSON decoder has already made copies we cannot reach."""
    if len(body) > MAX_SIGN_IN_BYTES:
        raise web.HTTPError(413, f"request body too large (at most {MAX_SIGN_IN_BYTES} bytes)")
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise web.HTTPError(400, _SHAPE) from None
    password = parsed.get("password") if isinstance(parsed, dict) else None
    if not isinstance(password, str) or not (password or allow_empty):
        raise web.HTTPError(400, _SHAPE)
    return password
