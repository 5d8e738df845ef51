"""Passwords never show up in logs, exception messages or reprs.

Logins with a distinctive password ("Pw-" + random) go through every path an
error can take: right password, wrong password, a ticket failure after PAM
accepted the password, a password over the length limit, one with a NUL.
Everything captured at DEBUG is searched: pytest's log capture (root,
``pamkrb`` and ``traitlets`` loggers), the process's stdout/stderr (where Rust
could print), exception messages and reprs, and, through a real hub, the hub
log (which also holds the user's server's log) and the server's environment.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from tornado import web

import sandbox
from pamkrb import PAMKerberosAuthenticator
from pamkrb._native import MAX_PASSWORD_BYTES

LOGGERS = ("", "pamkrb", "pamkrb._native", "traitlets", "JupyterHub")


def distinctive_password() -> str:
    return "Pw-" + secrets.token_urlsafe(18)


@pytest.fixture
def secret_user(user: sandbox.UnixUser) -> sandbox.UnixUser:
    """The user fixture with a distinctive password set through chpasswd."""
    user.password = distinctive_password()
    subprocess.run(["chpasswd"], input=f"{user.name}:{user.password}\n", text=True, check=True)
    return user


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger=name)
    try:
        yield caplog
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.msg))
        parts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


def attempt(auth: PAMKerberosAuthenticator, username: str, password: str) -> tuple[Any, str]:
    """Log in; return the result and the text of any exception raised."""
    try:
        result = asyncio.run(auth.get_authenticated_user(None, {"username": username, "password": password}))
    except Exception as e:
        context = e.__context__ or e.__cause__
        return None, f"{e!s}\n{e!r}\n{getattr(e, 'log_message', '')}\n{context!r}"
    return result, repr(result)


def test_password_never_in_debug_logs_exceptions_or_reprs(
    pam_service: str, secret_user: sandbox.UnixUser, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    user = secret_user
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    auth.log.setLevel(logging.DEBUG)
    seen: list[str] = [repr(auth), str(auth.__dict__)]
    wrong = distinctive_password()

    result, text = attempt(auth, user.name, user.password)
    assert result is not None
    seen.append(text)
    for password in (
        wrong,
        wrong + "\x00" + user.password,
        user.password + "\x00",
        user.password + "x" * MAX_PASSWORD_BYTES,
    ):
        result, text = attempt(auth, user.name, password)
        assert result is None
        seen.append(text)
    # PAM accepts, the ticket fails: the error path that raises HTTPError.
    (user.home / f"{user.name}.keytab").unlink()
    with pytest.raises(web.HTTPError) as info:
        asyncio.run(auth.get_authenticated_user(None, {"username": user.name, "password": user.password}))
    seen += [str(info.value), repr(info.value), str(info.value.log_message), repr(info.value.args)]

    out, err = capfd.readouterr()
    haystack = "\n".join([everything_logged(debug_logs), out, err, *seen])
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records), "DEBUG logging was not captured"
    assert user.name in haystack, "the search would not find anything"
    for password in (user.password, wrong):
        assert password not in haystack
        assert password[3:] not in haystack
    # Nor a repr of it (escapes) or its bytes.
    assert repr(user.password) not in haystack
    assert str(user.password.encode()) not in haystack


def test_password_never_in_hub_log_or_server_environment(hub: sandbox.Hub, secret_user: sandbox.UnixUser) -> None:
    user = secret_user
    wrong = distinctive_password()
    assert hub.login(user.name, wrong).status_code == 403
    assert hub.login(user.name, user.password + "\x00x").status_code == 403
    sandbox.login_and_spawn(hub, user)
    pids = sandbox.singleuser_pids(user.uid)
    assert pids
    environ = "\n".join(f"{k}={v}" for pid in pids for k, v in sandbox.process_environ(pid).items())
    log = hub.log_text()
    assert "[D " in log, "the hub is not logging at DEBUG"
    assert user.name in log
    for password in (user.password, wrong):
        assert password not in log
        assert password[3:] not in log
        assert password not in environ
