"""Nothing is left behind: when a user's last server stops (stopped by the
user, culled by a service, failed to start) or the user is deleted, the cache
pamkrb installed for it is destroyed and nothing renews it; destroying never
removes another user's file. ``retain_ticket_after_stop`` keeps the old way.

A culler (jupyterhub-idle-culler) stops servers through the same REST call
with its service token; that is how "culled" is made here.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
import requests

import sandbox

CULLER_TOKEN = secrets.token_hex(16)
CULLER = {
    "name": "pamkrb-test-culler",
    "api_token": CULLER_TOKEN,
}
CULLER_ROLE = {
    "name": "pamkrb-test-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"],
    "services": ["pamkrb-test-culler"],
}


def culler_hub(hub_factory, **config: Any) -> sandbox.Hub:
    settings: dict[str, Any] = {"JupyterHub.services": [CULLER], "JupyterHub.load_roles": [CULLER_ROLE]}
    settings.update(config)
    return hub_factory(settings)


def as_culler(method: str, url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.request(method, url, headers={"Authorization": f"token {CULLER_TOKEN}"}, timeout=60)


def wait_stopped(user: sandbox.UnixUser) -> None:
    sandbox.wait_until(lambda: not sandbox.singleuser_pids(user.uid), timeout=30, message="the server to stop")


def wait_gone(path: os.PathLike[str]) -> None:
    sandbox.wait_until(lambda: not os.path.lexists(path), timeout=30, message=f"{path} to be destroyed")


def revisit(hub: sandbox.Hub, session: requests.Session) -> None:
    """A visit to the hub: JupyterHub refreshes the user (refresh_user),
    which used to renew the ticket whether or not a server ran."""
    assert session.get(f"{hub.url}/hub/home", timeout=30).status_code == 200


@pytest.mark.parametrize("broker", [False, True], ids=["server-renews", "broker"])
def test_stopping_the_server_destroys_its_ticket(hub_factory, realm, user, broker):
    hub = culler_hub(hub_factory, **{"PAMKerberosAuthenticator.ticket_broker": broker})
    session = sandbox.login_and_spawn(hub, user)
    assert realm.klist_valid(user.default_ccache)

    stop = session.delete(
        f"{hub.url}/hub/api/users/{user.name}/server",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    assert stop.status_code in (202, 204), stop.text
    wait_stopped(user)
    wait_gone(user.default_ccache)
    as_before = realm.kdc_requests("AS_REQ")

    revisit(hub, session)

    assert not os.path.lexists(user.default_ccache)
    assert realm.kdc_requests("AS_REQ") == as_before
    assert "Stopped keeping the Kerberos ticket of" in hub.log_text()


def test_a_culled_server_leaves_no_ticket(hub_factory, realm, user):
    hub = culler_hub(hub_factory)
    sandbox.login_and_spawn(hub, user)

    response = as_culler("DELETE", f"{hub.url}/hub/api/users/{user.name}/server")

    assert response.status_code in (202, 204), response.text
    wait_stopped(user)
    wait_gone(user.default_ccache)


def test_a_deleted_user_leaves_no_ticket(hub_factory, realm, user):
    hub = culler_hub(hub_factory)
    sandbox.login_and_spawn(hub, user)

    response = as_culler("DELETE", f"{hub.url}/hub/api/users/{user.name}")

    assert response.status_code == 204, response.text
    wait_gone(user.default_ccache)
    assert not sandbox.singleuser_pids(user.uid)


def test_a_server_that_fails_to_start_leaves_no_ticket(hub_factory, realm, user):
    hub = hub_factory({"Spawner.cmd": ["/bin/false"], "Spawner.start_timeout": 5, "Spawner.http_timeout": 5})

    response = hub.login(user.name, user.password)

    assert response.status_code in (200, 500), response.status_code
    assert realm.klist_valid(user.default_ccache)  # the login's ticket, before the spawn fails
    sandbox.wait_until(
        lambda: not os.path.lexists(user.default_ccache), timeout=60, message="the failed spawn's ticket to go"
    )


def test_destroying_never_removes_another_users_file(hub_factory, realm, user, attacker):
    """The victim's cache path holds the attacker's file when the server
    stops: it is the attacker's, not pamkrb's, and stays."""
    hub = culler_hub(hub_factory)
    sandbox.login_and_spawn(hub, user)
    os.unlink(user.default_ccache)
    planted = attacker.run(["/usr/bin/python3", "-c", f"open({str(user.default_ccache)!r}, 'w').write('mine')"])
    assert planted.returncode == 0, planted.stderr

    as_culler("DELETE", f"{hub.url}/hub/api/users/{user.name}/server")
    wait_stopped(user)
    sandbox.wait_until(
        lambda: "Stopped keeping the Kerberos ticket of" in hub.log_text(),
        timeout=30,
        message="the hub to handle the stop",
    )

    st = os.lstat(user.default_ccache)
    assert st.st_uid == attacker.uid
    assert user.default_ccache.read_text() == "mine"
    os.unlink(user.default_ccache)


def test_retain_ticket_after_stop_keeps_it(hub_factory, realm, user):
    hub = culler_hub(hub_factory, **{"PAMKerberosAuthenticator.retain_ticket_after_stop": True})
    sandbox.login_and_spawn(hub, user)

    as_culler("DELETE", f"{hub.url}/hub/api/users/{user.name}/server")
    wait_stopped(user)

    assert realm.klist_valid(user.default_ccache)
