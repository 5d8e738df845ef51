"""Single sign-on (issue 23): ``Authorization: Negotiate`` at a real hub, from
curl's GSS-API client (MIT libgssapi, the same library browsers on Linux use)
with the user's own cache, against the session's MIT KDC.

Checked: a login without a form; the delegated TGT becomes the user's cache
(owned by them, 0600, the forwarded flag, no AS request for it); without
delegation the configured source makes the ticket (an AS request); hostile
tokens (garbage, another service, replayed, a foreign realm, 1 MB, a user not
allowed) get the form with a status below 500, no cache, and the hub stays
healthy.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from spnego_common import SERVICE, SSO, principal_exists

import sandbox
from conftest import assert_no_cache, assert_user_cache

pytest_plugins = ["spnego_fixtures"]


@dataclass
class Negotiation:
    status: int
    location: str
    cookies: str  # the cookie jar's text
    token: str | None  # the Authorization header curl sent, if any
    body: str


def negotiate(
    sso: SSO,
    hub: sandbox.Hub,
    *,
    delegation: str = "always",
    base: str | None = None,
    curl_args: tuple[str, ...] = (),
    query: str = "",
    cookies: str = "",
    auth: bool = True,
    path: str = "/hub/login",
) -> Negotiation:
    """curl --negotiate with the desktop's cache against /hub/login (at
    ``base``, default the hub's own URL), not following the redirect."""
    with tempfile.TemporaryDirectory(prefix="pamkrb-curl-") as tmp:
        jar, body = Path(tmp) / "jar", Path(tmp) / "body"
        jar.write_text(cookies)
        env = sso.realm.client_env()
        env["KRB5CCNAME"] = f"FILE:{sso.cache}"
        result = subprocess.run(
            [
                "curl",
                # curl sends its token at once, without waiting for the 401.
                *(["--negotiate", "-u", ":", "--delegation", delegation] if auth else []),
                "-sS",
                "-v",
                "--noproxy",
                "*",
                "-o",
                str(body),
                "-b",
                str(jar),
                "-c",
                str(jar),
                "-w",
                "%{http_code} %{redirect_url}",
                *curl_args,
                f"{base or hub.url}{path}{query}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        status, _, location = result.stdout.partition(" ")
        sent = re.search(r"^> Authorization: (Negotiate \S+)", result.stderr, re.MULTILINE)
        return Negotiation(
            int(status),
            location,
            jar.read_text() if jar.exists() else "",
            sent[1] if sent else None,
            body.read_text(errors="replace"),
        )


def logged_in(result: Negotiation) -> bool:
    return result.status == 302 and "/hub/login" not in result.location and "jupyterhub-hub-login" in result.cookies


def assert_signed_in(sso: SSO, hub: sandbox.Hub, result: Negotiation, *, forwarded: bool | None = None) -> None:
    """Logged in, the user's cache in place; with ``forwarded``, whether it
    holds the forwarded TGT ("F") or one the hub fetched."""
    assert logged_in(result), (result.status, result.location, hub.log_tail())
    assert_user_cache(sso.realm, sso.user)
    if forwarded is not None:
        assert ("F" in sso.server_flags()) == forwarded, sso.server_flags()


def assert_refused(hub: sandbox.Hub, status: int, body: str, user: sandbox.UnixUser) -> None:
    assert 400 <= status < 500, status
    assert 'name="password"' in body or "password" in body.lower(), body[:500]
    assert_no_cache(user)
    session = hub.session()
    assert session.get(f"{hub.url}/hub/health", timeout=10).status_code == 200


def assert_negotiate_refused(sso: SSO, hub: sandbox.Hub, log: str) -> None:
    """The desktop's token gets the form, and the hub's log says ``log``."""
    result = negotiate(sso, hub)
    assert_refused(hub, result.status, result.body, sso.user)
    assert log in hub.log_text()


def keytab_for(realm: sandbox.Realm, principal: str, tmp_path: Path, name: str) -> Path:
    """``principal`` (added if missing) in a root-only 0600 keytab under ``tmp_path``."""
    if not principal_exists(realm, principal):
        realm.add_principal(principal)
    directory = tmp_path / "kt"
    directory.mkdir(mode=0o700)
    return realm.write_keytab(principal, directory / name, 0, 0, 0o600)


def loose_copy(keytab: Path, tmp_path: Path, mode: int = 0o644) -> Path:
    """A copy of ``keytab`` that others may read: an admin's mistake."""
    loose = tmp_path / "loose.keytab"
    shutil.copyfile(keytab, loose)
    loose.chmod(mode)
    return loose


def oversized_header_status(hub: sandbox.Hub, header: str) -> int:
    """The status a server answers a request with ``header`` with; over a raw
    socket, since the proxy answers and closes before the request is sent."""
    host, port = hub.url.removeprefix("http://").split(":")
    request = f"GET /hub/login HTTP/1.1\r\nHost: {host}\r\nAuthorization: {header}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        # The proxy may answer and close before the whole request is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert match, answer[:200]
    return int(match[1])


def test_login_page_offers_negotiate_beside_the_form(sso: SSO) -> None:
    hub = sso.hub()
    response = hub.session().get(f"{hub.url}/hub/login", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Negotiate"
    assert 'name="password"' in response.text


def test_delegated_ticket_becomes_the_users_cache(sso: SSO) -> None:
    hub = sso.hub()
    as_requests = sso.as_requests()
    result = negotiate(sso, hub)
    # The forwarded TGT itself ("F"), not one the hub fetched: the KDC saw
    # no AS request for the user since the desktop's kinit.
    assert_signed_in(sso, hub, result, forwarded=True)
    assert sso.as_requests() == as_requests
    log = hub.log_text()
    assert result.token is not None
    assert result.token.split()[1][:40] not in log


def test_a_signed_in_browser_renegotiates_a_fresh_ticket(sso: SSO) -> None:
    """The delegated ticket ran out (here: is gone): /hub/login?negotiate=1
    offers Negotiate again to a signed-in browser, which answers it, and the
    new delegated ticket is installed, still with no AS request."""
    hub = sso.hub()
    first = negotiate(sso, hub)
    assert logged_in(first)
    os.unlink(sso.user.default_ccache)
    # Signed in, no renewal asked for: JupyterHub's own redirect, no challenge.
    plain = negotiate(sso, hub, cookies=first.cookies, auth=False)
    assert plain.status == 302
    assert_no_cache(sso.user)
    # Asked for one: the challenge, and a link on for a browser that cannot answer it.
    challenged = negotiate(sso, hub, query="?negotiate=1", cookies=first.cookies, auth=False)
    assert challenged.status == 401
    assert "Continue" in challenged.body

    as_requests = sso.as_requests()
    again = negotiate(sso, hub, query="?negotiate=1", cookies=first.cookies)
    assert again.token is not None
    assert again.status == 302, (again.status, hub.log_tail())
    assert_user_cache(sso.realm, sso.user)
    assert "F" in sso.server_flags()
    assert sso.as_requests() == as_requests


def test_the_delegated_ticket_is_renewed_by_tgs(sso: SSO) -> None:
    """A short, renewable delegated TGT: at spawn the hub renews it with a
    TGS request (the keeper's rule for renewable tickets), never an AS
    request, and the cache stays the forwarded ticket."""
    realm, user = sso.realm, sso.user
    sso.kinit("-l", "5m", "-r", "2h")
    # Five minutes left is inside the margin: the hub renews at spawn.
    hub = sso.hub(refresh_margin=600)
    login = negotiate(sso, hub)
    assert logged_in(login)
    assert sso.server_flags().count("F") == 1
    before = realm.klist(user.default_ccache)
    as_requests = sso.as_requests()
    krbtgt = f"krbtgt/{realm.name}"
    renewals = realm.kdc_requests("TGS_REQ", client=user.name, service=krbtgt)

    negotiate(sso, hub, cookies=login.cookies, auth=False, path="/hub/spawn")
    sandbox.wait_until(
        lambda: realm.kdc_requests("TGS_REQ", client=user.name, service=krbtgt) > renewals,
        timeout=60,
        message="a TGS renewal of the delegated ticket",
    )
    assert sso.as_requests() == as_requests
    sandbox.wait_until(
        lambda: realm.klist(user.default_ccache).expires > before.expires, timeout=30, message="the renewed cache"
    )
    assert_user_cache(realm, user)
    assert {"F", "R"} <= set(sso.server_flags())


def test_without_delegation_the_configured_source_makes_the_ticket(sso: SSO) -> None:
    hub = sso.hub()
    as_requests = sso.as_requests()
    result = negotiate(sso, hub, delegation="none")
    assert_signed_in(sso, hub, result, forwarded=False)
    # credential_source="keytab": the hub asked the KDC for a new TGT.
    assert sso.as_requests() == as_requests + 1


def test_hostile_tokens_get_the_form(sso: SSO) -> None:
    hub, user = sso.hub(), sso.user

    def send(header: str) -> Any:
        session = hub.session()
        return session.get(f"{hub.url}/hub/login", headers={"Authorization": header}, allow_redirects=False, timeout=30)

    # Garbage, and a header that is not even base64.
    for header in ["Negotiate " + "Z2FyYmFnZQ==", "Negotiate !!!", "Negotiate " + "A" * 100]:
        response = send(header)
        assert_refused(hub, response.status_code, response.text, user)
    # A 1 MB header: the proxy refuses it (431) before the hub sees it.
    assert 400 <= oversized_header_status(hub, "Negotiate " + "A" * (1 << 20)) < 500
    assert_no_cache(user)
    assert hub.session().get(f"{hub.url}/hub/health", timeout=10).status_code == 200

    # A replayed token: the first use logs in; the same header again is
    # refused by MIT's replay cache, even with the user's cache gone.
    first = negotiate(sso, hub)
    assert logged_in(first)
    assert first.token is not None
    os.unlink(user.default_ccache)
    replay = send(first.token)
    assert_refused(hub, replay.status_code, replay.text, user)
    assert "Request is a replay" in hub.log_text()
    assert first.token.split()[1][:40] not in hub.log_text()


def test_token_for_another_service_is_refused(sso: SSO, tmp_path: Path) -> None:
    """The hub's keytab holds another service's keys: the browser's ticket
    for HTTP/127.0.0.1 cannot be decrypted."""
    other = sso.realm.qualify(f"HTTP/other-{secrets.token_hex(3)}.invalid")
    keytab = keytab_for(sso.realm, other, tmp_path, "other.keytab")
    assert_negotiate_refused(sso, sso.hub(keytab), "not found in keytab")


def test_foreign_realm_and_disallowed_users_get_the_form(sso: SSO) -> None:
    # The hub's realm is another one: PAMKRB.TEST principals map to nobody.
    hub = sso.hub(realm="OTHER.TEST", principal_template=f"{{username}}@{sso.realm.name}")
    assert_negotiate_refused(sso, hub, "maps to no user")
    hub.close()

    # A principal that maps to a user JupyterHub does not allow.
    hub = sso.hub(settings={"Authenticator.allow_all": False, "Authenticator.allowed_users": {"somebody-else"}})
    assert_negotiate_refused(sso, hub, f"User {sso.user.name!r} not allowed")


def test_a_loose_service_keytab_is_refused(sso: SSO, tmp_path: Path) -> None:
    """A keytab others can read is the admin's mistake: logged as an error,
    the user gets the form, nothing is accepted."""
    assert_negotiate_refused(sso, sso.hub(loose_copy(sso.keytab, tmp_path)), "readable by it alone")


def test_an_expired_account_is_refused_by_pams_account_check(sso: SSO) -> None:
    """A valid ticket is not enough: pam_acct_mgmt (pam_unix) refuses an
    expired account, as it would a password login."""
    subprocess.run(["usermod", "--expiredate", "1970-01-02", sso.user.name], check=True, capture_output=True)
    assert_negotiate_refused(sso, sso.hub(), "PAM account check")


# -- pamkrb doctor --spnego ---------------------------------------------------------


def doctor_spnego(realm: sandbox.Realm, user: sandbox.UnixUser, tmp_path: Path, keytab: Path) -> Any:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c = get_config()  # noqa: F821\n"
        'c.JupyterHub.authenticator_class = "pamkrb"\n'
        f"c.PAMKerberosAuthenticator.service = {sandbox.PAM_TEST_SERVICE!r}\n"
        "c.PAMKerberosAuthenticator.spnego = True\n"
        f"c.PAMKerberosAuthenticator.spnego_keytab = {str(keytab)!r}\n"
    )
    return sandbox.run_pamkrb(["doctor", user.name, "--spnego", "--config", str(config)], env=realm.client_env())


def test_doctor_checks_the_service_keytab_against_the_kdc(
    realm: sandbox.Realm, service_keytab: Path, user: sandbox.UnixUser, pam_service: str, tmp_path: Path
) -> None:
    result = doctor_spnego(realm, user, tmp_path, service_keytab)
    out = result.stdout
    principal = realm.qualify(SERVICE)
    assert f"✓ service keytab {service_keytab}: owner root, mode 0600, {principal}; enctypes aes" in out, out
    assert f"✓ KDC: {principal}: kvno " in out, out
    assert "at the KDC matches the keytab" in out, out
    assert f"✓ KDC: {principal} delegation: ok_as_delegate" in out, out
    # (The user has no cache yet: that is the one ✗ of the user's own checks.)
    assert not [line for line in out.splitlines() if line.startswith("✗") and "HTTP/" in line], out


def test_doctor_finds_a_stale_service_key(
    realm: sandbox.Realm, service_keytab: Path, user: sandbox.UnixUser, pam_service: str, tmp_path: Path
) -> None:
    """A principal re-keyed at the KDC after the keytab was exported (a new
    kvno): the keytab's key no longer gets a ticket."""
    other = realm.qualify(f"HTTP/stale-{secrets.token_hex(3)}.invalid")
    keytab = keytab_for(realm, other, tmp_path, "stale.keytab")
    realm.kadmin(f"cpw -randkey {other}")
    result = doctor_spnego(realm, user, tmp_path, keytab)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"✗ KDC: {other}: no ticket from the service keytab (kvno 1)" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_refuses_a_loose_service_keytab(
    realm: sandbox.Realm, service_keytab: Path, user: sandbox.UnixUser, pam_service: str, tmp_path: Path
) -> None:
    loose = loose_copy(service_keytab, tmp_path)
    result = doctor_spnego(realm, user, tmp_path, loose)
    assert result.returncode == 1
    assert f"✗ service keytab {loose}: owner uid 0, mode 0644" in result.stdout, result.stdout


# -- through nginx (pamkrb nginx-config) ------------------------------------------------

SSO_NAME = "sso.test"


def test_negotiate_through_the_generated_nginx_config(sso: SSO, tmp_path: Path) -> None:
    """nginx-config keeps the Authorization header (and room for a large
    token): a browser behind nginx signs in with its delegated ticket."""
    keytab = keytab_for(sso.realm, sso.realm.qualify(f"HTTP/{SSO_NAME}"), tmp_path, "http.keytab")
    cert, key = sandbox.self_signed_certificate(tmp_path, [SSO_NAME])
    hub = sso.hub(keytab)
    port = sandbox.free_port()
    generated = sandbox.run_pamkrb(
        [
            "nginx-config",
            "--server-name",
            SSO_NAME,
            "--upstream",
            hub.url,
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--listen",
            f"127.0.0.1:{port}",
        ]
    )
    assert generated.returncode == 0, generated.stderr
    assert "proxy_set_header Authorization $http_authorization;" in generated.stdout
    nginx = sandbox.Nginx(generated.stdout)
    try:
        nginx.start([port])
        result = negotiate(
            sso,
            hub,
            base=f"https://{SSO_NAME}:{port}",
            curl_args=("--resolve", f"{SSO_NAME}:{port}:127.0.0.1", "--cacert", str(cert)),
        )
    finally:
        nginx.close()
    assert_signed_in(sso, hub, result, forwarded=True)


# -- the native boundary ------------------------------------------------------------


def test_native_errors_map_to_the_authenticators_exceptions(service_keytab: Path, tmp_path: Path) -> None:
    """A refused token is the client's failure (AuthenticationDenied); a
    missing or loose keytab, or a passed deadline, is ours."""
    from pamkrb import _native
    from pamkrb.exceptions import AuthenticationDenied, KerberosError, KeytabError

    with pytest.raises(AuthenticationDenied, match="Invalid token was supplied"):
        _native.accept_negotiate(b"garbage", str(service_keytab))
    with pytest.raises(AuthenticationDenied, match="65537 bytes"):
        _native.accept_negotiate(b"\x60" * 65537, str(service_keytab))
    with pytest.raises(KeytabError, match="does not exist"):
        _native.accept_negotiate(b"garbage", str(tmp_path / "missing.keytab"))
    loose = loose_copy(service_keytab, tmp_path, 0o640)
    with pytest.raises(KerberosError, match="readable by it alone"):
        _native.accept_negotiate(b"garbage", str(loose))
    with pytest.raises(KerberosError, match="after the deadline"):
        _native.accept_negotiate(b"garbage", str(service_keytab), deadline=0.0)


def test_the_account_check_alone(pam_service: str, user: sandbox.UnixUser) -> None:
    from pamkrb import _native
    from pamkrb.exceptions import AuthenticationDenied, InvalidUsername

    assert _native.pam_check_account(pam_service, user.name, remote_host="127.0.0.1") == user.name
    with pytest.raises(AuthenticationDenied):
        _native.pam_check_account(pam_service, f"nobody-{secrets.token_hex(3)}")
    with pytest.raises(InvalidUsername):
        _native.pam_check_account(pam_service, "../etc")
    subprocess.run(["usermod", "--expiredate", "1970-01-02", user.name], check=True, capture_output=True)
    with pytest.raises(AuthenticationDenied, match="account check"):
        _native.pam_check_account(pam_service, user.name)


def test_a_mapping_callable_decides_who_the_principal_is(sso: SSO) -> None:
    """spnego_username replaces the default rule: here it accepts the
    session realm although the hub's realm is another one."""
    realm_name = sso.realm.name
    rule = f"lambda principal: principal.split('@')[0] if principal.endswith('@{realm_name}') else None"
    hub = sso.hub(
        realm="OTHER.TEST",
        principal_template=f"{{username}}@{realm_name}",
        extra_config=f"c.PAMKerberosAuthenticator.spnego_username = {rule}",
    )
    assert_signed_in(sso, hub, negotiate(sso, hub))


# -- a delegated ticket's whole life: renewals, its end, a reload ---------------------

# The desktop's ticket, and so the delegated one: 90 s, renewable for 150 s.
SHORT_LIFE, RENEWABLE_LIFE = 90, 150
# Inside SHORT_LIFE: the server renews each ticket 60 s before it ends.
SHORT_MARGIN = 60

KERNEL_KLIST = (
    "import json, os, subprocess\n"
    "env = {**os.environ, 'LC_ALL': 'C'}\n"
    "listed = subprocess.run(['klist', '-f'], capture_output=True, text=True, env=env)\n"
    "valid = subprocess.run(['klist', '-s'], env=env).returncode == 0\n"
    "seen = {'klist': listed.stdout, 'valid': valid, 'ccname': os.environ.get('KRB5CCNAME'), 'pid': os.getpid(),\n"
    "        'sign_in': os.environ.get('PAMKRB_SIGN_IN')}\n"
    "print(json.dumps(seen))\n"
)


def session_with(hub: sandbox.Hub, jar: str) -> Any:
    """A requests session holding curl's cookies (Netscape jar text)."""
    session = hub.session()
    for line in jar.splitlines():
        line = line.removeprefix("#HttpOnly_")
        if not line or line.startswith("#"):
            continue
        domain, _, path, _, _, name, value = line.split("\t")
        session.cookies.set(name, value, domain=domain, path=path)
    return session


def tgt_start(klist: str) -> str:
    """The "Valid starting" column of the TGT's row in klist's output."""
    match = re.search(r"^(\S+ \S+)\s+\S+ \S+\s+krbtgt/", klist, re.MULTILINE)
    assert match, klist
    return match[1]


def in_kernel(session: Any, server: str, kernel: str) -> Any:
    """klist in a running kernel, over a new connection to it (the proxy
    closes one left idle for minutes; the kernel process stays)."""
    import json

    ws = sandbox.kernel_websocket(session, server, kernel)
    try:
        outcome = sandbox.kernel_execute(ws, KERNEL_KLIST)
    finally:
        ws.close()
    assert outcome["status"] == "ok", outcome
    return json.loads(outcome["stdout"])


def test_a_delegated_ticket_runs_out_and_a_reload_brings_a_fresh_one(sso: SSO) -> None:
    """The issue's renewal chain, with short tickets: the server renews the
    delegated TGT by TGS only until its renew-till, then says
    login_required, worded for single sign-on (reload); a reload of the hub's
    login page with ?negotiate=1, from a desktop with a fresh ticket,
    installs a fresh delegated ticket with no form, and the kernel that ran
    all along sees it."""
    realm, user = sso.realm, sso.user
    sso.kinit("-l", f"{SHORT_LIFE}s", "-r", f"{RENEWABLE_LIFE}s")
    # No keytab and no password at the hub: only a sign-in (here, a
    # delegation) brings a new ticket once renew-till is reached.
    hub = sso.hub(credential_source="password", refresh_margin=SHORT_MARGIN)
    as_requests = sso.as_requests()
    krbtgt = f"krbtgt/{realm.name}"
    tgs_before = realm.kdc_requests("TGS_REQ", client=user.name, service=krbtgt)

    login = negotiate(sso, hub, query=f"?next=/user/{user.name}/")
    assert logged_in(login), (login.status, login.location, hub.log_tail())
    delegated = realm.klist(user.default_ccache)
    assert delegated.renew_until is not None
    session = session_with(hub, login.cookies)
    session.get(f"{hub.url}/hub/spawn", timeout=60)
    hub.wait_for_server(session, user.name, timeout=120)
    server = f"{hub.url}/user/{user.name}"
    kernel = sandbox.start_kernel(session, server, "python3")
    first = in_kernel(session, server, kernel)
    assert first["valid"], first
    assert first["ccname"].removeprefix("FILE:") == str(user.default_ccache), first
    assert first["sign_in"] == "reload", first

    def status() -> Any:
        return session.get(f"{server}/pamkrb/api/status", timeout=30).json()

    # Renewed by TGS until the renew-till (by the server, or at spawn by the
    # hub: which one depends on how long the spawn took), then a sign-in is needed.
    ended = sandbox.wait_until(
        lambda: (s := status())["state"] == "login_required" and s,
        timeout=RENEWABLE_LIFE + 180,
        interval=2,
        message="login_required after the delegated ticket's renew-till",
    )
    assert realm.kdc_requests("TGS_REQ", client=user.name, service=krbtgt) > tgs_before
    assert sso.as_requests() == as_requests
    assert ended["source"] == "password"
    assert ended["login_required_at"] is not None, ended
    assert "sign in again by reloading" in ended["last_error"], ended
    assert f"/hub/login?negotiate=1&next=%2Fuser%2F{user.name}%2F" in ended["last_error"], ended
    page = session.get(f"{server}/pamkrb/status", timeout=30).text
    assert "Expired — sign in again by reloading" in page
    assert 'id="pamkrb-reload" href="/hub/login?negotiate=1&amp;next=' in page
    assert not in_kernel(session, server, kernel)["valid"]

    # The desktop signed in again (its own AS request); the reload.
    sso.kinit()
    as_requests = sso.as_requests()
    reload = negotiate(sso, hub, query=f"?negotiate=1&next=/user/{user.name}/", cookies=login.cookies)
    assert reload.token is not None
    assert reload.status == 302, (reload.status, hub.log_tail())
    assert reload.location.endswith(f"/user/{user.name}/"), reload.location
    assert 'name="password"' not in reload.body
    assert_user_cache(realm, user)
    assert "F" in sso.server_flags()
    assert sso.as_requests() == as_requests

    # The running kernel sees the new ticket; the status is valid again.
    second = in_kernel(session, server, kernel)
    assert second["valid"], second
    assert second["pid"] == first["pid"]
    assert tgt_start(second["klist"]) != tgt_start(first["klist"]), (first, second)
    assert status()["state"] == "valid"


def test_a_password_login_at_a_single_sign_on_hub_is_not_told_to_reload(sso: SSO) -> None:
    """Only a delegated ticket comes back by reloading: a user who typed
    their password gets no PAMKRB_SIGN_IN, so their status keeps the
    password wording."""
    hub, user = sso.hub(), sso.user
    session = hub.session()
    # The form beside the 401 challenge, as a browser without a ticket sees it.
    assert session.get(f"{hub.url}/hub/login", timeout=10).status_code == 401
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": user.name, "password": user.password, "_xsrf": session.cookies.get("_xsrf")},
        timeout=60,
    )
    assert "/hub/login" not in response.url, (response.status_code, hub.log_tail())
    hub.wait_for_server(session, user.name, timeout=120)
    seen = sandbox.run_in_server(
        session,
        f"{hub.url}/user/{user.name}",
        "import json, os\nprint(json.dumps({'sign_in': os.environ.get('PAMKRB_SIGN_IN'), "
        "'ccname': os.environ.get('KRB5CCNAME')}))",
    )
    assert seen["ccname"].removeprefix("FILE:") == str(user.default_ccache), seen
    assert seen["sign_in"] is None, seen
