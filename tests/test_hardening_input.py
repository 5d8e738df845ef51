"""Hostile input in the login form: every case is a clean refusal.

Each case is submitted through a real hub's login form, with the *right*
password of an existing victim account wherever the case is about the
username, so a name that some layer quietly turned into the victim's (a path
walk, a shell expansion, a look-alike, a C string cut at a NUL) would log in
and fail the test. For each case: HTTP 403 on the login page (never 500), no
credential cache or pamkrb temporary file created in /tmp, no process started
by the hub, /hub/health still 200.

Tornado replaces control characters other than tab, newline and carriage
return in form fields by spaces and JupyterHub strips the username, so the
NUL cases are repeated in-process against the authenticator, where the raw
bytes arrive.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sandbox
from pamkrb import PAMKerberosAuthenticator
from pamkrb._native import MAX_PASSWORD_BYTES

Case = Callable[[sandbox.UnixUser], tuple[str, str]]


def cyrillic(name: str) -> str:
    """``name`` with its Latin letters that have Cyrillic twins swapped for them."""
    twins = str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445"})
    swapped = name.translate(twins)
    return swapped if swapped != name else "\u0430" + name


# (id, victim -> (username, password))
USERNAME_CASES: list[tuple[str, Case]] = [
    ("slash-dotdot", lambda v: (f"{v.name}/..", v.password)),
    ("dotdot-slash", lambda v: (f"../{v.name}", v.password)),
    ("dotdot", lambda v: ("..", v.password)),
    ("etc-passwd", lambda v: ("../../../etc/passwd", v.password)),
    ("absolute-cache-path", lambda v: (f"/tmp/krb5cc_{v.uid}", v.password)),
    ("home-path", lambda v: (f"{v.home}/{v.name}.keytab", v.password)),
    ("semicolon", lambda v: (f"{v.name};id", v.password)),
    ("command-substitution", lambda v: (f"{v.name}$(touch /tmp/pamkrb-pwned)", v.password)),
    ("backticks", lambda v: (f"`id`{v.name}", v.password)),
    ("pipe", lambda v: (f"{v.name}|id", v.password)),
    ("and-and", lambda v: (f"{v.name}&&id", v.password)),
    ("quotes", lambda v: (f"{v.name}'\"", v.password)),
    ("glob", lambda v: ("pk*", v.password)),
    ("redirect", lambda v: (f"{v.name}>/tmp/pamkrb-pwned", v.password)),
    ("nul-inside", lambda v: (f"{v.name}\x00root", v.password)),
    ("nul-then-name", lambda v: (f"x\x00{v.name}", v.password)),
    ("control-char", lambda v: (f"{v.name[:3]}\x01{v.name[3:]}", v.password)),
    ("escape-sequence", lambda v: (f"{v.name}\x1b[2J", v.password)),
    ("newline-inside", lambda v: (f"{v.name}\nroot", v.password)),
    ("carriage-return", lambda v: (f"{v.name}\rroot", v.password)),
    ("tab-inside", lambda v: (f"{v.name}\troot", v.password)),
    ("5000-chars", lambda v: ("a" * 5000, v.password)),
    ("5000-chars-victim-prefix", lambda v: (v.name + "a" * 5000, v.password)),
    ("cyrillic-lookalike", lambda v: (cyrillic(v.name), v.password)),
    ("cyrillic-root", lambda v: ("r\u043e\u043et", v.password)),
    ("fullwidth", lambda v: ("".join(chr(ord(c) + 0xFEE0) for c in v.name), v.password)),
    ("zero-width-space", lambda v: (f"{v.name[:3]}\u200b{v.name[3:]}", v.password)),
    ("combining-accent", lambda v: (f"{v.name}\u0301", v.password)),
    ("right-to-left-override", lambda v: (f"\u202e{v.name}", v.password)),
    ("leading-dash", lambda v: (f"-{v.name}", v.password)),
    ("option-like", lambda v: ("--help", v.password)),
    ("placeholder-uid", lambda v: ("{uid}", v.password)),
    ("placeholder-in-name", lambda v: (f"{v.name}{{username}}", v.password)),
    ("format-string", lambda v: ("%s%n%x", v.password)),
    ("empty", lambda v: ("", v.password)),
    ("root-with-victims-password", lambda v: ("root", v.password)),
]

PASSWORD_CASES: list[tuple[str, Case]] = [
    ("nul-after-right-password", lambda v: (v.name, v.password + "\x00junk")),
    ("nul-only", lambda v: (v.name, "\x00" * 16)),
    ("right-password-plus-1mb", lambda v: (v.name, v.password + "A" * (1 << 20))),
    ("1mb", lambda v: (v.name, "A" * (1 << 20))),
    ("4mb", lambda v: (v.name, "\u00e9" * (2 << 20))),
    ("empty", lambda v: (v.name, "")),
]

CASES = [pytest.param(case, id=f"username-{name}") for name, case in USERNAME_CASES] + [
    pytest.param(case, id=f"password-{name}") for name, case in PASSWORD_CASES
]


@pytest.fixture(scope="module")
def victim(realm: sandbox.Realm) -> Iterator[sandbox.UnixUser]:
    """An account with a keytab whose password every case knows."""
    with sandbox.provisioned_user(realm, "pkv") as user:
        yield user


def new_credential_files(before: set[str], victim: sandbox.UnixUser) -> set[str]:
    """Caches or temp files that appeared in /tmp, except those of sandbox
    users other than the victim (tests running concurrently)."""
    others = sandbox.foreign_sandbox_uids() - {victim.uid}
    added = sandbox.credential_entries() - before
    return {name for name in added if not any(name.startswith((f"krb5cc_{uid}", f".krb5cc_{uid}.")) for uid in others)}


@pytest.mark.parametrize("case", CASES)
def test_hostile_login_is_a_clean_refusal(hub: sandbox.Hub, victim: sandbox.UnixUser, case: Case) -> None:
    username, password = case(victim)
    before = sandbox.credential_entries()
    log_offset = len(hub.log_text())

    response = hub.login(username, password)

    assert response.status_code == 403, (response.status_code, hub.log_tail())
    assert urllib.parse.urlparse(response.url).path == "/hub/login"
    assert new_credential_files(before, victim) == set()
    assert not os.path.lexists("/tmp/pamkrb-pwned")
    assert sandbox.singleuser_pids(victim.uid) == []
    assert hub._proc is not None
    spawned = [cmd for _, cmd in sandbox.child_processes(hub._proc.pid) if "singleuser" in cmd]
    assert spawned == []
    new_log = hub.log_text()[log_offset:]
    assert "Traceback" not in new_log
    assert " 500 " not in new_log
    assert hub.session().get(f"{hub.url}/hub/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "raw", [b"\xed\xb3\xbf", b"\xff\xfe", b"\xc0\xaf"], ids=["surrogate", "ff-fe", "overlong-slash"]
)
def test_invalid_utf8_username_is_a_client_error(hub: sandbox.Hub, victim: sandbox.UnixUser, raw: bytes) -> None:
    """Bytes that are not UTF-8 never reach the authenticator: Tornado answers
    400 (a client error, not a crash) and the hub stays healthy."""
    session = hub.session()
    session.get(f"{hub.url}/hub/login", timeout=10).raise_for_status()
    xsrf = session.cookies.get("_xsrf")
    body = b"username=" + urllib.parse.quote_from_bytes(victim.name.encode() + raw).encode()
    body += b"&password=" + urllib.parse.quote(victim.password).encode() + b"&_xsrf=" + xsrf.encode()
    response = session.post(
        f"{hub.url}/hub/login",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code in (400, 403), response.status_code
    assert sandbox.singleuser_pids(victim.uid) == []
    assert hub.session().get(f"{hub.url}/hub/health", timeout=10).status_code == 200


# -- in-process: the raw strings, as an authenticator sees them ------------------


RAW_CASES: list[tuple[str, Case]] = [
    ("nul-after-name", lambda v: (v.name + "\x00", v.password)),
    ("nul-after-name-then-more", lambda v: (v.name + "\x00root", v.password)),
    ("newline-after-name", lambda v: (v.name + "\n", v.password)),
    ("nul-after-right-password", lambda v: (v.name, v.password + "\x00")),
    ("nul-after-right-password-then-more", lambda v: (v.name, v.password + "\x00anything")),
    ("over-limit-with-right-prefix", lambda v: (v.name, v.password + "A" * MAX_PASSWORD_BYTES)),
    ("lone-surrogate", lambda v: (v.name, v.password + "\ud800")),
]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=name) for name, c in RAW_CASES]
    + [
        pytest.param(
            lambda v: (v.name + "\udcff", v.password),
            id="surrogate-username",
        )
    ],
)
def test_raw_hostile_input_is_refused_in_process(pam_service: str, victim: sandbox.UnixUser, case: Case) -> None:
    username, password = case(victim)
    auth = PAMKerberosAuthenticator(service=pam_service, allow_all=True)
    before = sandbox.credential_entries()
    result: Any = asyncio.run(auth.get_authenticated_user(None, {"username": username, "password": password}))
    assert result is None
    assert new_credential_files(before, victim) == set()


def test_the_victim_itself_can_log_in(hub: sandbox.Hub, realm: sandbox.Realm, victim: sandbox.UnixUser) -> None:
    """The control: the same form, name and password do let the victim in, so
    the refusals above are not an artefact of a broken setup. Defined last in
    this module, so it runs after every case above."""
    response = hub.login(victim.name, victim.password)
    assert response.status_code == 200
    assert urllib.parse.urlparse(response.url).path != "/hub/login"
    assert realm.klist_valid(victim.default_ccache)
