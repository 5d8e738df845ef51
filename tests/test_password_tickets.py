"""Sites without per-user keytabs: a renewable ticket from the login password,
renewed by TGS only, and signing in again without restarting anything.

Users here have a password principal in the KDC (``addprinc -pw``) and no
keytab file at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
import time
from typing import Any

import pytest
import requests
from tornado import web

import sandbox
from conftest import PASSWORD_LIFETIME, PASSWORD_RENEWABLE, password_user
from pamkrb import PAMKerberosAuthenticator, _native, kdc_refusals, lifecycle

LIFETIME = PASSWORD_LIFETIME
RENEWABLE = PASSWORD_RENEWABLE


@pytest.fixture
def pw_user(pw_realm: sandbox.Realm, bare_user: sandbox.UnixUser) -> sandbox.UnixUser:
    password_user(pw_realm, bare_user)
    assert not (bare_user.home / f"{bare_user.name}.keytab").exists()
    return bare_user


def authenticator(pam_service: str, realm: sandbox.Realm, **traits: Any) -> PAMKerberosAuthenticator:
    return PAMKerberosAuthenticator(service=pam_service, allow_all=True, realm=realm.name, **traits)


def log_in(auth: PAMKerberosAuthenticator, user: sandbox.UnixUser) -> Any:
    data = {"username": user.name, "password": user.password}
    return asyncio.run(auth.get_authenticated_user(None, data))


@pytest.fixture
def in_pw_realm(pw_realm: sandbox.Realm, monkeypatch: pytest.MonkeyPatch) -> sandbox.Realm:
    """KRB5_CONFIG of ``pw_realm`` for in-process tests (libkrb5 reads it per context)."""
    monkeypatch.setenv("KRB5_CONFIG", str(pw_realm.krb5_conf))
    return pw_realm


def test_login_gets_a_renewable_ticket_from_the_password(pam_service, in_pw_realm, pw_user):
    auth = authenticator(pam_service, in_pw_realm, credential_source="password")
    as_before = in_pw_realm.kdc_requests("AS_REQ")

    assert log_in(auth, pw_user) is not None

    st = os.lstat(pw_user.default_ccache)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (pw_user.uid, pw_user.gid, 0o600)
    info = _native.inspect_ticket(str(pw_user.default_ccache), uid=pw_user.uid)
    assert info.principal == in_pw_realm.qualify(pw_user.name)
    assert info.renewable
    assert info.renew_until > info.expires_at
    assert in_pw_realm.kdc_requests("AS_REQ") > as_before
    assert in_pw_realm.klist_valid(pw_user.default_ccache)


def test_a_different_kerberos_password_is_refused_clearly(pam_service, in_pw_realm, bare_user, caplog):
    password_user(in_pw_realm, bare_user, kerberos_password=secrets.token_urlsafe(12))
    auth = authenticator(pam_service, in_pw_realm, credential_source="password")

    with caplog.at_level(logging.INFO), pytest.raises(web.HTTPError) as refused:
        log_in(auth, bare_user)

    assert refused.value.status_code == 403
    assert "Kerberos password differs" in refused.value.log_message % refused.value.args
    assert not os.path.lexists(bare_user.default_ccache)
    assert bare_user.password not in caplog.text
    # Without kinit_required the user gets in, without a ticket.
    lenient = authenticator(pam_service, in_pw_realm, credential_source="password", kinit_required=False)
    assert log_in(lenient, bare_user) is not None
    assert not os.path.lexists(bare_user.default_ccache)


def test_an_expired_kerberos_password_is_refused_with_the_reason(pam_service, in_pw_realm, pw_user, caplog):
    """PAM accepted the password, the KDC says it has expired (as an Active
    Directory KDC says of a must-change password): the login form tells the
    user to change it, not to call the administrator."""
    in_pw_realm.kadmin(f'modprinc -pwexpire "2001-01-01 00:00:00" {in_pw_realm.qualify(pw_user.name)}')
    auth = authenticator(pam_service, in_pw_realm, credential_source="password")
    with caplog.at_level(logging.INFO), pytest.raises(web.HTTPError) as refused:
        log_in(auth, pw_user)
    assert refused.value.status_code == 403
    assert refused.value.log_message % refused.value.args == kdc_refusals.PASSWORD_EXPIRED
    assert "has expired and must be changed" in caplog.text  # the hub log has the KDC's words
    assert pw_user.password not in caplog.text
    assert not os.path.lexists(pw_user.default_ccache)


def test_auto_uses_the_keytab_when_there_is_one_else_the_password(pam_service, in_pw_realm, pw_user, attacker):
    auth = authenticator(pam_service, in_pw_realm, credential_source="auto")
    assert log_in(auth, pw_user) is not None  # no keytab: the password
    assert in_pw_realm.klist_valid(pw_user.default_ccache)

    # A keytab user whose PAM password is not their Kerberos password: only
    # the keytab can give them a ticket.
    keytab_user = attacker
    principal = in_pw_realm.add_principal(keytab_user.name)
    in_pw_realm.write_keytab(
        principal, keytab_user.home / f"{keytab_user.name}.keytab", keytab_user.uid, keytab_user.gid
    )
    assert log_in(auth, keytab_user) is not None
    assert in_pw_realm.klist_valid(keytab_user.default_ccache)


def test_renewal_without_a_keytab_is_tgs_until_renew_till_then_sign_in(pam_service, in_pw_realm, pw_user):
    """The hub's own renewals (spawn, refresh) of a password ticket."""
    auth = authenticator(pam_service, in_pw_realm, credential_source="password", refresh_margin=LIFETIME + 10)
    assert log_in(auth, pw_user) is not None
    as_after_login = in_pw_realm.kdc_requests("AS_REQ")
    tgs_before = in_pw_realm.kdc_requests("TGS_REQ")

    info = asyncio.run(auth.tickets.ensure_fresh(pw_user.name, "spawn"))

    assert in_pw_realm.kdc_requests("TGS_REQ") == tgs_before + 1
    assert in_pw_realm.kdc_requests("AS_REQ") == as_after_login
    assert info.renewable
    # A ticket that cannot be renewed any further (here: not renewable at
    # all, as one at its renew-till) is kept while it is valid, with no KDC
    # request; once it has expired the hub does not fall back to anything:
    # the user must sign in.
    in_pw_realm.kadmin(f"modprinc -maxrenewlife 0 {in_pw_realm.qualify(pw_user.name)}")
    try:
        last = _native.obtain_ticket_with_password(
            in_pw_realm.qualify(pw_user.name),
            bytearray(pw_user.password.encode()),
            str(pw_user.default_ccache),
            uid=pw_user.uid,
            gid=pw_user.gid,
            lifetime=5,
        ).ticket
        requests_before = in_pw_realm.kdc_requests()
        kept = asyncio.run(auth.tickets.ensure_fresh(pw_user.name, "refresh"))
        assert kept.expires_at == last.expires_at
        assert in_pw_realm.kdc_requests() == requests_before
        from pamkrb.exceptions import LoginRequired

        sandbox.wait_until(lambda: time.time() > last.expires_at + 1, timeout=30, message="the ticket's end")
        with pytest.raises(LoginRequired, match="sign in again"):
            asyncio.run(auth.tickets.ensure_fresh(pw_user.name, "refresh"))
        assert in_pw_realm.kdc_requests() == requests_before
    finally:
        in_pw_realm.kadmin(f"modprinc -maxrenewlife {RENEWABLE} {in_pw_realm.qualify(pw_user.name)}")


# -- through a real hub: an idle server, the status, signing in again ------------------


def hub_for(hub_factory, realm: sandbox.Realm, **traits: Any) -> sandbox.Hub:
    config = {"PAMKerberosAuthenticator.credential_source": "password", "PAMKerberosAuthenticator.refresh_margin": 30}
    config.update({f"PAMKerberosAuthenticator.{k}": v for k, v in traits.items()})
    return hub_factory(config, realm=realm)


def server_status(session: Any, hub: sandbox.Hub, user: sandbox.UnixUser) -> dict[str, Any]:
    return session.get(f"{hub.url}/user/{user.name}/pamkrb/api/status", timeout=30).json()


def sign_in_via_server(session: Any, hub: sandbox.Hub, user: sandbox.UnixUser, password: str) -> Any:
    """What the status bar's dialog sends: POST to the user's own server."""
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user.name}/") or ""
    return session.post(
        f"{hub.url}/user/{user.name}/pamkrb/api/signin",
        json={"password": password},
        headers={"X-XSRFToken": xsrf},
        timeout=60,
    )


@pytest.mark.parametrize("broker", [False, True], ids=["server-renews", "hub-renews-broker"])
def test_idle_server_renews_by_tgs_until_renew_till_then_asks_to_sign_in(hub_factory, pw_realm, pw_user, broker):
    """Who renews differs (the server itself, or the hub's broker delivering to
    it); what the user sees must not: TGS only, then a sign-in, then a ticket."""
    hub = hub_for(hub_factory, pw_realm, ticket_broker=broker)
    session = sandbox.login_and_spawn(hub, pw_user)
    as_after_login = pw_realm.kdc_requests("AS_REQ")
    tgs_before = pw_realm.kdc_requests("TGS_REQ")
    first = server_status(session, hub, pw_user)
    assert first["source"] == "password"
    assert first["login_required_at"] is not None
    assert first["warn_before"] == 3600

    # Idle until the renewable life is over and the last ticket expired.
    status = sandbox.wait_until(
        lambda: (s := server_status(session, hub, pw_user))["state"] == "login_required" and s,
        timeout=RENEWABLE + 2 * LIFETIME,
        interval=2,
        message="the status to ask for a sign-in",
    )
    renewals = pw_realm.kdc_requests("TGS_REQ") - tgs_before
    assert renewals > 0, "the server never renewed"
    if broker:
        assert status["renewed_by"] == "hub", status
    print(f"idle password user: {renewals} TGS_REQ and 0 AS_REQ until renew-till ({RENEWABLE} s)")
    assert pw_realm.kdc_requests("AS_REQ") == as_after_login, "a password user's renewals must be TGS only"
    assert status["login_required_at"] is not None

    # A kernel started before the sign-in sees the new ticket afterwards, under the same KRB5CCNAME.
    server = f"{hub.url}/user/{pw_user.name}"
    kernel = sandbox.start_kernel(session, server, "python3")
    ws = sandbox.kernel_websocket(session, server, kernel)
    probe = (
        "import os, subprocess, json\n"
        "c = os.environ['KRB5CCNAME']\n"
        "print(json.dumps({'cache': c, 'valid': subprocess.run(['klist', '-s', '-c', c.split(':', 1)[-1]])"
        ".returncode == 0}))"
    )
    try:
        before = sandbox.kernel_execute(ws, probe)
        assert '"valid": false' in before["stdout"], before
        started = time.monotonic()
        response = sign_in_via_server(session, hub, pw_user, pw_user.password)
        assert response.status_code == 200, response.text
        after = sandbox.kernel_execute(ws, probe)
        elapsed = time.monotonic() - started
    finally:
        ws.close()
    assert '"valid": true' in after["stdout"], after
    assert response.json()["status"]["state"] == "valid"
    print(f"sign-in to the kernel seeing the new ticket: {elapsed * 1000:.0f} ms")


def test_the_kdcs_password_expiry_reaches_the_servers_status(hub_factory, pw_realm, pw_user):
    """The password's expiry the KDC reports with the login's ticket (MIT's
    key-expiration here; an Active Directory KDC reports it on every login:
    tests/test_ad_tickets.py) goes from the hub to the server and into its
    status, and the login goes on."""
    soon = int(time.time()) + 10 * 86400
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(soon))
    pw_realm.kadmin(f'modprinc -pwexpire "{when}" {pw_realm.qualify(pw_user.name)}')
    hub = hub_for(hub_factory, pw_realm)
    session = sandbox.login_and_spawn(hub, pw_user)
    status = server_status(session, hub, pw_user)
    assert status["state"] == "valid", status
    assert status["password_expires_at"] == lifecycle.iso_time(soon), status


@pytest.fixture
def signed_in_hub(hub_factory, pw_realm, pw_user) -> Any:
    hub = hub_for(hub_factory, pw_realm)
    session = sandbox.login_and_spawn(hub, pw_user)
    return hub, session


def hub_sign_in(hub: sandbox.Hub, token: str, body: Any, **kwargs: Any) -> requests.Response:
    """POST /hub/api/pamkrb/ticket with a token, as the server extension does."""
    return hub.session().post(
        f"{hub.url}/hub/api/pamkrb/ticket",
        data=body,
        headers={"Authorization": f"token {token}"},
        timeout=60,
        **kwargs,
    )


def cookie_sign_in(hub: sandbox.Hub, session: Any, body: Any, **kwargs: Any) -> requests.Response:
    """The same from a browser session on the hub's origin, with its XSRF token."""
    headers = {"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""}
    return session.post(f"{hub.url}/hub/api/pamkrb/ticket", data=body, headers=headers, timeout=60, **kwargs)


def test_one_reading_of_the_sign_in_body_for_the_hub_and_the_server():
    """pamkrb.sign_in_body is what both POST handlers call: the same 413 and
    400s; only the hub takes an empty password (to refuse it as a wrong one,
    in the audit trail); no error quotes the body."""
    from pamkrb._native import MAX_SIGN_IN_BYTES
    from pamkrb.sign_in_body import sign_in_password

    assert sign_in_password(b'{"password": "s3cret"}') == "s3cret"
    assert sign_in_password(b'{"password": ""}', allow_empty=True) == ""
    too_large = b'{"password": "' + b"s3cret" * MAX_SIGN_IN_BYTES + b'"}'
    refusals = {
        too_large: 413,
        b'{"password": ""}': 400,
        b"password=s3cret": 400,
        b'["s3cret"]': 400,
        b'{"password": ["s3cret"]}': 400,
        b'{"pass": "s3cret"}': 400,
        b"": 400,
    }
    for body, status in refusals.items():
        with pytest.raises(web.HTTPError) as refused:
            sign_in_password(body)
        assert refused.value.status_code == status, body[:40]
        assert "s3cret" not in str(refused.value), body[:40]
    for body in (b'{"password": null}', b"{not json", b'"s3cret"'):
        with pytest.raises(web.HTTPError, match="400"):
            sign_in_password(body, allow_empty=True)
    from pamkrb import status_handlers, ticket_api

    assert status_handlers.sign_in_password is ticket_api.sign_in_password is sign_in_password


def test_hostile_sign_ins_change_nothing(signed_in_hub, pw_realm, pw_user, attacker):
    import json

    hub, session = signed_in_hub
    token = sandbox.server_token(pw_user.uid)
    cache = pw_user.default_ccache
    before = sandbox.FileState.of(cache)
    as_before = pw_realm.kdc_requests("AS_REQ")
    attempts = {
        "wrong password": (hub_sign_in(hub, token, json.dumps({"password": "not-" + pw_user.password})), 403),
        "empty password": (hub_sign_in(hub, token, json.dumps({"password": ""})), 403),
        "10 MB body": (hub_sign_in(hub, token, json.dumps({"password": "x" * (10 << 20)})), 413),
        "not JSON": (hub_sign_in(hub, token, b"password=x"), 400),
        # The user's own browser session, right password: only the server's token signs in.
        "a cookie session": (cookie_sign_in(hub, session, json.dumps({"password": pw_user.password})), 403),
    }
    for what, (response, expected) in attempts.items():
        assert response.status_code == expected, f"{what}: {response.status_code} {response.text[:200]}"
        assert not response.content.startswith(b"\x05\x04"), what
    # Another user's login naming the victim.
    password_user(pw_realm, attacker)
    other = hub.login(attacker.name, attacker.password).session
    response = cookie_sign_in(hub, other, json.dumps({"password": attacker.password}), params={"user": pw_user.name})
    assert response.status_code == 403
    assert sandbox.FileState.of(cache) == before
    assert pw_realm.kdc_requests("AS_REQ") == as_before + 1  # the attacker's own login only
    client = requests.Session()
    client.trust_env = False
    assert client.get(f"{hub.url}/hub/health", timeout=30).status_code == 200
    assert pw_user.password not in hub.log_text()


def test_sign_in_with_the_right_password_replaces_the_ticket(signed_in_hub, pw_realm, pw_user):
    import json

    hub, _ = signed_in_hub
    first = os.stat(pw_user.default_ccache).st_ino

    response = hub_sign_in(hub, sandbox.server_token(pw_user.uid), json.dumps({"password": pw_user.password}))

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert os.stat(pw_user.default_ccache).st_ino != first
    assert pw_realm.klist_valid(pw_user.default_ccache)
    assert pw_user.password not in hub.log_text()
