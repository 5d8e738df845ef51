"""A ticket fetch does not make JupyterHub write the server token's
last_activity (a database commit on the hub's event loop) every time;
other API requests with the same token still do. Through the real hub,
proxy, KDC and PAM; see bench/README.md, "Broker: what stalls the hub"."""

from __future__ import annotations

import datetime
import time

import requests

import sandbox


def client() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def token_last_activity(hub: sandbox.Hub, session: requests.Session, name: str) -> datetime.datetime | None:
    """The server token's last_activity as the hub's API reports it."""
    xsrf = session.cookies.get("_xsrf", path="/hub/") or ""
    response = session.get(f"{hub.url}/hub/api/users/{name}/tokens", headers={"X-XSRFToken": xsrf}, timeout=30)
    assert response.status_code == 200, response.text
    (token,) = [t for t in response.json()["api_tokens"] if (t.get("note") or "").startswith("Server at ")]
    value = token["last_activity"]
    return None if value is None else datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_ticket_fetch_does_not_write_the_tokens_activity(hub_factory, user):
    # JupyterHub would record (and commit) the token's activity on any
    # request more than 1 s after the last; the server's own activity
    # reports, which use the same token, are turned off.
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.ticket_broker": True,
            "JupyterHub.activity_resolution": 1,
            "Spawner.environment": {"JUPYTERHUB_ACTIVITY_INTERVAL": "0"},
        }
    )
    session = sandbox.login_and_spawn(hub, user)
    token = sandbox.server_token(user.uid)
    headers = {"Authorization": f"token {token}"}
    first = client().get(f"{hub.url}/hub/api/pamkrb/ticket", headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    before = sandbox.wait_until(
        lambda: token_last_activity(hub, session, user.name), timeout=30, message="the token's first recorded use"
    )
    # More than the resolution must pass for JupyterHub to record again.
    sandbox.wait_until(
        lambda: time.time() > before.timestamp() + 2, timeout=30, message="the resolution to pass", interval=0.2
    )

    fetched = client().get(f"{hub.url}/hub/api/pamkrb/ticket", headers=headers, timeout=30)
    after_fetch = token_last_activity(hub, session, user.name)
    other = client().get(f"{hub.url}/hub/api/user", headers=headers, timeout=30)
    after_other = token_last_activity(hub, session, user.name)

    assert fetched.status_code == 200, fetched.text
    assert after_fetch == before
    assert other.status_code == 200, other.text
    assert after_other is not None
    assert after_other > before
