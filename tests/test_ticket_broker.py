"""The ticket broker through a real hub: GET /hub/api/pamkrb/ticket, who may
call it, and the hub's own renewals (TGS while renewable).

Every request is made the way a client would make it: the server's own
``JUPYTERHUB_API_TOKEN`` read from the running single-user server, other
users' and an admin's tokens made through the REST API, a service's token
from the hub's configuration.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

import sandbox

SERVICE_TOKEN = secrets.token_hex(16)
CCACHE_V4 = b"\x05\x04"


def broker_hub(hub_factory, realm: sandbox.Realm | None = None, **config: Any) -> sandbox.Hub:
    settings = {
        "PAMKerberosAuthenticator.ticket_broker": True,
        "JupyterHub.services": [{"name": "pamkrb-test-service", "api_token": SERVICE_TOKEN}],
    }
    settings.update({f"PAMKerberosAuthenticator.{k}": v for k, v in config.items()})
    if realm is not None:
        return hub_factory(settings, realm=realm)
    return hub_factory(settings)


def client() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def server_token(user: sandbox.UnixUser) -> str:
    """The running server's own JUPYTERHUB_API_TOKEN, as the extension uses it."""
    pids = sandbox.singleuser_pids(user.uid)
    assert pids, f"no single-user server runs for {user.name}"
    return sandbox.process_environ(pids[0])["JUPYTERHUB_API_TOKEN"]


def personal_token(hub: sandbox.Hub, user: sandbox.UnixUser) -> str:
    """A token the user makes for themself through the REST API (cookie + XSRF)."""
    session = hub.login(user.name, user.password).session
    xsrf = session.cookies.get("_xsrf", path="/hub/") or ""
    response = session.post(
        f"{hub.url}/hub/api/users/{user.name}/tokens",
        json={"note": "pamkrb test"},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def fetch(hub: sandbox.Hub, token: str | None, *, user: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    params = {"user": user} if user else {}
    return client().get(f"{hub.url}/hub/api/pamkrb/ticket", headers=headers, params=params, timeout=30, **kwargs)


def principal_in(realm: sandbox.Realm, data: bytes, tmp_path: Path) -> str:
    """Write the bytes to a private file and let MIT's klist say whose ticket it is."""
    path = tmp_path / f"delivered-{secrets.token_hex(4)}"
    path.write_bytes(data)
    path.chmod(0o600)
    out = subprocess.run(
        ["klist", "-c", str(path)], env=realm.client_env(), capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("Default principal:"))
    return line.split(":", 1)[1].strip()


def test_the_users_server_token_fetches_their_own_ticket(hub_factory, realm, user, tmp_path):
    hub = broker_hub(hub_factory)
    sandbox.login_and_spawn(hub, user)

    response = fetch(hub, server_token(user))

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.content.startswith(CCACHE_V4)
    assert principal_in(realm, response.content, tmp_path) == f"{user.name}@{realm.name}"


@pytest.fixture
def admin(realm: sandbox.Realm) -> Any:
    with sandbox.provisioned_user(realm, "pkadm") as user:
        yield user


def test_nobody_fetches_another_persons_ticket(hub_factory, realm, user, attacker, admin, tmp_path):
    attacker_principal = realm.add_principal(attacker.name)
    realm.write_keytab(attacker_principal, attacker.home / f"{attacker.name}.keytab", attacker.uid, attacker.gid)
    hub = broker_hub(hub_factory, admin_users={admin.name})
    sandbox.login_and_spawn(hub, user)
    sandbox.login_and_spawn(hub, attacker)
    others = {
        "another user's server token": server_token(attacker),
        "another user's personal token": personal_token(hub, attacker),
        "an admin's token": personal_token(hub, admin),
        "a service's token": SERVICE_TOKEN,
    }

    for who, token in others.items():
        response = fetch(hub, token, user=user.name)
        assert response.status_code == 403, f"{who}: {response.status_code} {response.text[:200]}"
        assert not response.content.startswith(CCACHE_V4)
    assert fetch(hub, SERVICE_TOKEN).status_code == 403
    assert fetch(hub, None).status_code == 403
    assert fetch(hub, None, user=user.name).status_code == 403
    # Without naming anyone, another user's server only ever gets its own ticket.
    own = fetch(hub, others["another user's server token"])
    assert own.status_code == 200, own.text
    assert principal_in(realm, own.content, tmp_path) == attacker_principal
    # The victim's own server still gets theirs.
    assert fetch(hub, server_token(user), user=user.name).status_code == 200


def test_ticket_requests_are_rate_limited_per_user(hub_factory, user):
    hub = broker_hub(hub_factory, ticket_requests_per_minute=3)
    sandbox.login_and_spawn(hub, user)
    token = server_token(user)

    codes = [fetch(hub, token).status_code for _ in range(3)]
    limited = fetch(hub, token)

    assert codes == [200, 200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("allowed", [False, True])
def test_no_ticket_in_clear_text_to_another_host(hub_factory, user, allowed):
    """Straight to the hub's own port, as a server elsewhere would call it.
    JupyterHub takes the client address from X-Forwarded-For; a non-loopback
    one stands for a server on another host."""
    hub = broker_hub(hub_factory, allow_insecure_ticket_delivery=allowed)
    sandbox.login_and_spawn(hub, user)
    headers = {"Authorization": f"token {server_token(user)}", "X-Forwarded-For": "192.0.2.10"}

    response = client().get(f"http://127.0.0.1:{hub.hub_port}/hub/api/pamkrb/ticket", headers=headers, timeout=30)

    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert "clear text" in response.json()["message"]
        assert not response.content.startswith(CCACHE_V4)


def test_broker_off_serves_no_ticket(hub_factory, user):
    hub = hub_factory()
    sandbox.login_and_spawn(hub, user)

    response = fetch(hub, server_token(user))

    assert response.status_code == 404
    assert "ticket_broker" in response.json()["message"]


def test_hub_renews_a_renewable_ticket_with_tgs_not_the_keytab(hub_factory, short_realm, short_user):
    """90-second renewable tickets, margin 60: the hub's scheduled refresh
    uses a TGS renewal; the keytab (AS request) is needed only at login."""
    hub = broker_hub(hub_factory, short_realm, refresh_margin=60, renewable_lifetime=3600)
    sandbox.login_and_spawn(hub, short_user)
    as_before = short_realm.kdc_requests("AS_REQ")
    tgs_before = short_realm.kdc_requests("TGS_REQ")
    first = short_realm.klist(short_user.default_ccache).expires

    sandbox.wait_until(
        lambda: short_realm.klist(short_user.default_ccache).expires > first,
        timeout=90,
        interval=1,
        message="the hub's renewal",
    )

    assert short_realm.kdc_requests("TGS_REQ") > tgs_before
    assert short_realm.kdc_requests("AS_REQ") == as_before
    st = os.lstat(short_user.default_ccache)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (short_user.uid, 0o600)


def test_spawn_renews_a_renewable_ticket_with_tgs_and_falls_back_to_the_keytab(pam_service, realm, user):
    """In-process: the hub's renewal path. A renewable ticket inside the margin
    is renewed by a TGS request; one that is not renewable needs the keytab."""
    import asyncio

    from pamkrb import PAMKerberosAuthenticator, _native

    auth = PAMKerberosAuthenticator(
        service=pam_service, allow_all=True, refresh_margin=11 * 3600, renewable_lifetime=24 * 3600
    )
    data = {"username": user.name, "password": user.password}
    assert asyncio.run(auth.get_authenticated_user(None, data)) is not None
    counts = (realm.kdc_requests("AS_REQ"), realm.kdc_requests("TGS_REQ"))

    info = asyncio.run(auth.tickets.ensure_fresh(user.name, "spawn"))

    assert info.renewable
    assert (realm.kdc_requests("AS_REQ"), realm.kdc_requests("TGS_REQ")) == (counts[0], counts[1] + 1)
    # Not renewable (a principal whose renewable life is 0): the keytab.
    realm.kadmin(f"modprinc -maxrenewlife 0 {user.name}@{realm.name}")
    assert asyncio.run(auth.get_authenticated_user(None, data)) is not None
    # The KDC may still set the R flag, with a renewable life that ends now.
    left = _native.inspect_ticket(str(user.default_ccache), uid=user.uid)
    assert not left.renewable or left.renew_until <= left.starts_at + 1
    before = realm.kdc_requests("AS_REQ")
    asyncio.run(auth.tickets.ensure_fresh(user.name, "spawn"))
    assert realm.kdc_requests("AS_REQ") == before + 1
