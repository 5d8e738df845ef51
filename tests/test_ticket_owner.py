"""Who gets a ticket from GET/POST /hub/api/pamkrb/ticket: only the token
JupyterHub issued to the user's own running server. Each test is an attack,
made as the attacker would make it, through the real hub, proxy, KDC and PAM.

- An admin opens Bob's server: JupyterHub mints an OAuth token for the admin
  and hands it to Bob's server, which Bob controls. Bob's server-side code
  replays it against the ticket API.
- The user's own narrow, personal and cookie credentials: none is the server.
- A wrong password sent with a visitor's token must not reach PAM (where it
  would count towards the victim's pam_faillock).
- Forwarding headers a client sets itself must not make a plain-HTTP request
  from elsewhere look local or encrypted.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest
import requests

import sandbox

CCACHE_V4 = b"\x05\x04"


def broker_hub(hub_factory, **config: Any) -> sandbox.Hub:
    settings: dict[str, Any] = {"PAMKerberosAuthenticator.ticket_broker": True}
    settings.update(config)
    return hub_factory(settings)


def client() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def fetch(hub: sandbox.Hub, token: str, **kwargs: Any) -> requests.Response:
    return client().get(
        f"{hub.url}/hub/api/pamkrb/ticket", headers={"Authorization": f"token {token}"}, timeout=30, **kwargs
    )


def xsrf(session: requests.Session) -> str:
    return session.cookies.get("_xsrf", path="/hub/") or ""


def user_token(hub: sandbox.Hub, session: requests.Session, name: str, **body: Any) -> str:
    response = session.post(
        f"{hub.url}/hub/api/users/{name}/tokens", json=body, headers={"X-XSRFToken": xsrf(session)}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def visitor_oauth_token(hub: sandbox.Hub, visitor: requests.Session, owner: sandbox.UnixUser) -> str:
    """What the owner's server receives when ``visitor`` opens it: the
    authorization code from the hub's OAuth flow, exchanged with the server's
    own client secret (its API token), which the owner can read."""
    client_id = f"jupyterhub-user-{owner.name}"
    params = {
        "client_id": client_id,
        "redirect_uri": f"/user/{owner.name}/oauth_callback",
        "response_type": "code",
        "state": secrets.token_hex(8),
    }
    authorize = f"{hub.url}/hub/api/oauth2/authorize"
    response = visitor.get(authorize, params=params, allow_redirects=False, timeout=30)
    if response.status_code == 200:
        # JupyterHub's confirmation page for someone else's server: submit it
        # as the admin's browser would.
        fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text)
        response = visitor.post(response.url, data=fields, allow_redirects=False, timeout=30)
    assert response.status_code == 302, f"{response.status_code}: {response.text[:300]}"
    code = re.search(r"[?&]code=([^&]+)", response.headers["Location"]).group(1)
    exchange = client().post(
        f"{hub.url}/hub/api/oauth2/token",
        data={
            "client_id": client_id,
            "client_secret": sandbox.server_token(owner.uid),
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": params["redirect_uri"],
        },
        timeout=30,
    )
    assert exchange.status_code == 200, exchange.text
    return exchange.json()["access_token"]


@pytest.fixture
def admin(realm: sandbox.Realm) -> Any:
    with sandbox.provisioned_user(realm, "pkadm") as user:
        yield user


def test_an_admins_token_replayed_by_the_visited_server_gets_no_ticket(hub_factory, realm, user, admin):
    hub = broker_hub(hub_factory, **{"PAMKerberosAuthenticator.admin_users": {admin.name}})
    sandbox.login_and_spawn(hub, user)
    # The admin has a ticket and a running server of their own: the most a
    # replayed token could reach.
    admin_session = sandbox.login_and_spawn(hub, admin)
    assert realm.klist_valid(admin.default_ccache)

    stolen = visitor_oauth_token(hub, admin_session, user)
    # It is the admin's token: the hub says so.
    me = client().get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {stolen}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == admin.name

    response = fetch(hub, stolen)
    signed_in = client().post(
        f"{hub.url}/hub/api/pamkrb/ticket",
        headers={"Authorization": f"token {stolen}"},
        data=json.dumps({"password": "not-" + admin.password}),
        timeout=30,
    )

    assert response.status_code == 403, response.text
    assert not response.content.startswith(CCACHE_V4)
    assert signed_in.status_code == 403
    # The wrong password never reached PAM: nothing counts towards the
    # admin's pam_faillock.
    assert f"PAM Authentication failed ('{admin.name}" not in hub.log_text()
    assert fetch(hub, sandbox.server_token(admin.uid)).status_code == 200


def test_the_users_own_other_credentials_get_no_ticket(hub_factory, user):
    hub = broker_hub(hub_factory)
    session = sandbox.login_and_spawn(hub, user)
    credentials = {
        "a personal token": user_token(hub, session, user.name, note="pamkrb test"),
        "a narrow token": user_token(hub, session, user.name, scopes=["read:users:activity!user"]),
    }

    for what, token in credentials.items():
        response = fetch(hub, token)
        assert response.status_code == 403, f"{what}: {response.status_code} {response.text[:200]}"
    # The browser session, with the hub's XSRF token, as a script on the
    # hub's origin (any /user/<name>/ page without subdomains) would send it.
    cookie = session.get(f"{hub.url}/hub/api/pamkrb/ticket", headers={"X-XSRFToken": xsrf(session)}, timeout=30)
    assert cookie.status_code == 403, cookie.text
    assert not cookie.content.startswith(CCACHE_V4)
    assert fetch(hub, sandbox.server_token(user.uid)).status_code == 200


def test_no_token_is_served_after_the_server_stops(hub_factory, realm, user):
    """A token kept from before the stop (the server's own, or a personal
    one) neither gets a ticket nor makes the hub get or renew one."""
    hub = broker_hub(hub_factory)
    session = sandbox.login_and_spawn(hub, user)
    old_server_token = sandbox.server_token(user.uid)
    personal = user_token(hub, session, user.name, note="kept")
    stop = session.delete(
        f"{hub.url}/hub/api/users/{user.name}/server", headers={"X-XSRFToken": xsrf(session)}, timeout=60
    )
    assert stop.status_code in (202, 204), stop.text
    sandbox.wait_until(lambda: not sandbox.singleuser_pids(user.uid), timeout=30, message="the server to stop")
    sandbox.wait_until(lambda: not user.default_ccache.exists(), timeout=30, message="the cache to go")
    as_before = realm.kdc_requests("AS_REQ")

    for token in (old_server_token, personal):
        assert fetch(hub, token).status_code == 403

    assert not user.default_ccache.exists()
    assert realm.kdc_requests("AS_REQ") == as_before


def test_forwarding_headers_set_by_the_client_do_not_make_a_request_private(hub_factory, user):
    """Straight to the hub's port. X-Forwarded-For's last entry stands for a
    client on another host relayed by a local proxy; X-Real-Ip and X-Scheme,
    which Tornado's xheaders would prefer, are the client's own words."""
    hub = broker_hub(hub_factory)
    sandbox.login_and_spawn(hub, user)
    token = sandbox.server_token(user.uid)
    url = f"http://127.0.0.1:{hub.hub_port}/hub/api/pamkrb/ticket"
    spoofs = {
        "X-Real-Ip": {"X-Forwarded-For": "192.0.2.10", "X-Real-Ip": "127.0.0.1"},
        "X-Scheme": {"X-Forwarded-For": "192.0.2.10", "X-Scheme": "https"},
        "an earlier X-Forwarded-Proto": {"X-Forwarded-For": "192.0.2.10", "X-Forwarded-Proto": "https, http"},
        "an earlier X-Forwarded-For": {"X-Forwarded-For": "127.0.0.1, 192.0.2.10"},
    }

    for what, headers in spoofs.items():
        response = client().get(url, headers={"Authorization": f"token {token}", **headers}, timeout=30)
        assert response.status_code == 403, f"{what}: {response.status_code}"
        assert "clear text" in response.json()["message"], what
    # A local proxy that terminated TLS for the remote client says so last.
    relayed = {"X-Forwarded-For": "192.0.2.10", "X-Forwarded-Proto": "https"}
    ok = client().get(url, headers={"Authorization": f"token {token}", **relayed}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_the_servers_token_still_works_after_a_hub_restart(hub_factory, realm, user):
    """The hub forgets the spawner's token when it restarts; the running
    server keeps it. It is then recognised by the server's OAuth client
    secret, which JupyterHub stores hashed."""
    hub = broker_hub(hub_factory, **{"JupyterHub.cleanup_servers": False})
    sandbox.login_and_spawn(hub, user)
    token = sandbox.server_token(user.uid)
    (server,) = sandbox.singleuser_pids(user.uid)

    hub.stop()
    assert sandbox.singleuser_pids(user.uid) == [server]
    hub.start()
    response = fetch(hub, token)

    assert response.status_code == 200, response.text
    assert response.content.startswith(CCACHE_V4)
    assert fetch(hub, "0" * len(token)).status_code == 403
