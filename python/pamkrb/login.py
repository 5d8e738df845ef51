"""A login's password check: what the form sends, checked and encoded
before PAM sees it; PAM on an executor thread; and the name PAM says it
authenticated. A Refused is the user's failure: the authenticator logs the
reason and denies the login.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial
from typing import Any

from . import _native, lifecycle
from .exceptions import InvalidUsername

# PAM return codes (Linux-PAM's _pam_types.h) that say more than "wrong
# password", and what the login form says for them. Each is said only after
# PAM decided, so it never tells a guesser more than PAM's own answer.
PAM_PERM_DENIED = 6
PAM_MAXTRIES = 11
PAM_NEW_AUTHTOK_REQD = 12
PAM_ACCT_EXPIRED = 13
PAM_AUTHTOK_EXPIRED = 27

PASSWORD_MUST_CHANGE = (
    "Your password has expired or must be changed before you can sign in. "
    "Change it first (for example by signing in to a workstation of the domain), then sign in here."
)
ACCOUNT_EXPIRED = "Your account has expired or is disabled. Please contact your administrator."
ACCOUNT_LOCKED = (
    "Your account is locked (too many failed sign-ins) or not allowed to sign in here. "
    "Wait for it to unlock or contact your administrator."
)
POLICY_MESSAGES = {
    PAM_NEW_AUTHTOK_REQD: PASSWORD_MUST_CHANGE,
    PAM_AUTHTOK_EXPIRED: PASSWORD_MUST_CHANGE,
    PAM_ACCT_EXPIRED: ACCOUNT_EXPIRED,
    PAM_MAXTRIES: ACCOUNT_LOCKED,
    PAM_PERM_DENIED: ACCOUNT_LOCKED,
}


def policy_message(code: int | None) -> str | None:
    """What the login form says for PAM's ``code``; None for a plain
    denial (wrong password, unknown user), which JupyterHub reports as
    "Invalid username or password"."""
    return POLICY_MESSAGES.get(code) if code is not None else None


class Refused(Exception):
    """A login refused before PAM; the message is the reason for the log."""


def check_name(username: str) -> None:
    """The username rule (src/template.rs); Refused with the reason."""
    try:
        _native.check_username(username)
    except UnicodeEncodeError:
        # A lone surrogate cannot cross into Rust as UTF-8; it is not a
        # name anyone has.
        raise Refused("invalid username") from None
    except InvalidUsername as e:
        raise Refused(str(e)) from None


def encoded_secrets(data: dict[str, Any], encoding: str) -> dict[str, bytearray]:
    """The password (and, with JupyterHub's request_otp, the one-time
    password: the answer to PAM's second hidden prompt) as bytearrays the
    native call wipes; Refused when one cannot be a password."""
    password = data.get("password") or ""
    if not password:
        # An account whose password was removed (passwd -d) passes
        # pam_unix's `nullok`, Debian's default; a web login never may.
        # The native call also sets PAM_DISALLOW_NULL_AUTHTOK.
        raise Refused("empty password")
    given = {"password": password}
    if "otp" in data:
        given["one-time password"] = data["otp"] or ""
    encoded: dict[str, bytearray] = {}
    try:
        for what, value in given.items():
            try:
                encoded[what] = bytearray(value.encode(encoding))
            except (UnicodeEncodeError, AttributeError):
                raise Refused(f"bad {what} input") from None
            # PAM's own replies are capped at 512 bytes (PAM_MAX_RESP_SIZE):
            # anything much longer is an attack on the hub's memory.
            if len(encoded[what]) > _native.MAX_PASSWORD_BYTES or 0 in encoded[what]:
                raise Refused(f"{what} too long or has NUL")
    except Refused:
        for buffer in encoded.values():
            buffer[:] = bytes(len(buffer))
        raise
    return encoded


async def check_with_pam(
    executor: Executor | None,
    service: str,
    username: str,
    secrets: dict[str, bytearray],
    *,
    remote_host: str | None,
    check_account: bool,
) -> str:
    """PAM's authenticate (and, with ``check_account``, account) stack on
    ``executor``; the name PAM authenticated. The secrets are wiped whatever
    happens. AuthenticationDenied for the user's failure, PAMSystemError or
    NativePanic for ours."""
    call = partial(
        lifecycle.call_native,
        _native.pam_authenticate,
        service,
        username,
        secrets["password"],
        otp=secrets.get("one-time password"),
        remote_host=remote_host,
        check_account=check_account,
    )
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, call)
    finally:
        # The native call zeroes them; this covers paths where it never ran.
        for buffer in secrets.values():
            buffer[:] = bytes(len(buffer))


def authenticated_name(typed: str, authenticated: Any) -> str:
    """The name PAM authenticated (PAM_USER after the conversation): a
    module may map the typed name to another account (pam_winbind turns
    adalice@ad.example into ADPAMKRB\\adalice), and that account is who
    logged in. It must pass the same username rule: Refused otherwise.
    JupyterHub then makes its username of it (normalize_username,
    pamkrb.usernames)."""
    if not isinstance(authenticated, str) or authenticated == typed:
        return typed
    try:
        check_name(authenticated)
    except Refused as e:
        raise Refused(f"PAM mapped the name to an invalid one: {e}") from None
    return authenticated
