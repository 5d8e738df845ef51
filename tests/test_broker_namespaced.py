"""The ticket broker for a server that shares no file system with the hub.

The server runs in its own mount namespace (tools/sandbox/namespace.py): a
private /tmp, the keytab directory hidden, the keytab itself root's alone
(the layout the broker allows). It reaches the hub over loopback. With
90-second tickets it must keep a valid ticket through several lifetimes
without any activity, see it from saves and kernels, never open the keytab,
and come through a KDC outage.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import BROKER_LIFETIME

LIFETIME = BROKER_LIFETIME
MARGIN = 60

KERNEL_CHECK = """
import json, os, subprocess
cache = os.environ["KRB5CCNAME"]
klist = subprocess.run(["klist", "-s", "-c", cache.split(":", 1)[-1]]).returncode
try:
    open(os.environ["PAMKRB_TEST_KEYTAB"], "rb")
    keytab = "opened"
except OSError as e:
    keytab = type(e).__name__
print(json.dumps({"cache": cache, "klist_valid": klist == 0, "keytab": keytab,
                  "broker": os.environ.get("PAMKRB_TICKET_BROKER"), "keytab_env": os.environ.get("PAMKRB_KEYTAB")}))
"""


def server_cache(user: sandbox.UnixUser) -> Path:
    """The server's own cache, seen from the host through its mount namespace."""
    pids = sandbox.singleuser_pids(user.uid)
    assert pids, "the server is not running"
    return Path(f"/proc/{pids[0]}/root/tmp/krb5cc_{user.uid}")


def seconds_left(realm: sandbox.Realm, cache: Path) -> float | None:
    try:
        return realm.klist(cache).expires.timestamp() - time.time()
    except Exception:  # not there yet, or being replaced: no ticket at this instant
        return None


def test_a_server_without_the_hubs_files_keeps_a_valid_ticket(
    namespaced_hub_factory, broker_realm, broker_user, keytab_dir
):
    user = broker_user
    keytab = keytab_dir / f"{user.name}.keytab"
    hub = namespaced_hub_factory(
        {
            "PAMKerberosAuthenticator.ticket_broker": True,
            "PAMKerberosAuthenticator.refresh_margin": MARGIN,
            "PAMKerberosAuthenticator.renewable_lifetime": 3600,
            "Spawner.environment": {"PAMKRB_TEST_KEYTAB": str(keytab)},
        },
        realm=broker_realm,
    )
    session = sandbox.login_and_spawn(hub, user)
    cache = server_cache(user)

    # The server got its ticket over the API (its /tmp is not the hub's).
    sandbox.wait_until(lambda: (seconds_left(broker_realm, cache) or 0) > 0, timeout=30, message="a delivered ticket")

    # No activity at all for more than two lifetimes: the ticket never lapses.
    deadline = time.monotonic() + 2.2 * LIFETIME
    lowest = float("inf")
    while time.monotonic() < deadline:
        left = seconds_left(broker_realm, cache)
        if left is not None:
            lowest = min(lowest, left)
            assert left > -3, f"the server's ticket expired {-left:.0f} s ago"
        time.sleep(1)
    assert lowest < LIFETIME - 5, "the ticket was never renewed during the window"

    status = session.get(f"{hub.url}/user/{user.name}/pamkrb/api/status", timeout=30).json()
    assert status["renewed_by"] == "hub"
    assert status["source"] == "keytab"
    assert status["state"] in ("valid", "expiring"), status

    # Saves and kernels see it; the keytab is out of reach of notebook code.
    saved = session.put(
        f"{hub.url}/user/{user.name}/api/contents/x.txt",
        json={"type": "file", "format": "text", "content": "saved"},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{user.name}/") or ""},
        timeout=30,
    )
    assert saved.status_code in (200, 201), saved.text
    seen = sandbox.run_in_server(session, f"{hub.url}/user/{user.name}", KERNEL_CHECK)
    assert seen["cache"] == f"FILE:/tmp/krb5cc_{user.uid}"
    assert seen["klist_valid"] is True
    assert seen["keytab"] in ("FileNotFoundError", "PermissionError"), seen
    assert seen["broker"] == "1"
    assert seen["keytab_env"] is None


def test_a_kdc_outage_is_reported_and_survived(namespaced_hub_factory, broker_realm, broker_user):
    user = broker_user
    hub = namespaced_hub_factory(
        {
            "PAMKerberosAuthenticator.ticket_broker": True,
            "PAMKerberosAuthenticator.refresh_margin": MARGIN,
            "PAMKerberosAuthenticator.renewable_lifetime": 3600,
            "PAMKerberosAuthenticator.kdc_timeout": 3,
        },
        realm=broker_realm,
    )
    session = sandbox.login_and_spawn(hub, user)
    cache = server_cache(user)
    status_url = f"{hub.url}/user/{user.name}/pamkrb/api/status"
    sandbox.wait_until(lambda: (seconds_left(broker_realm, cache) or 0) > 0, timeout=30, message="a delivered ticket")

    broker_realm.stop()
    try:
        # Long enough that the server's ticket comes due while the KDC is gone.
        failing = sandbox.wait_until(
            lambda: (s := session.get(status_url, timeout=30).json())["last_error"] and s,
            timeout=LIFETIME,
            interval=1,
            message="the outage reported in the status",
        )
        assert failing["renewed_by"] == "hub"
        # The server kept running: it still answers, and saves still work.
        assert session.get(f"{hub.url}/user/{user.name}/api/status", timeout=30).status_code == 200
    finally:
        broker_realm.start()
    back = time.time()

    def fresh_again() -> dict[str, Any] | None:
        left = seconds_left(broker_realm, cache)
        status = session.get(status_url, timeout=30).json()
        if left is not None and left > 0 and status["last_error"] is None:
            expires = broker_realm.klist(cache).expires.timestamp()
            return status if expires > back else None
        return None

    # Backoff after failures is at most a few doublings of 5 s here.
    status = sandbox.wait_until(fresh_again, timeout=3 * LIFETIME, interval=1, message="recovery after the outage")
    assert status["state"] in ("valid", "expiring"), json.dumps(status)


@pytest.mark.parametrize("retain", [False, True], ids=["removed", "retained"])
def test_a_stopped_server_removes_the_ticket_it_was_delivered(
    namespaced_hub_factory, broker_realm, broker_user, retain
):
    """The hub removes only its own copy; a server on another host (a batch
    job on a node whose /tmp other jobs share) removes the one it installed
    when it stops, unless the admin retains tickets after stop."""
    user = broker_user
    hub = namespaced_hub_factory(
        {
            "PAMKerberosAuthenticator.ticket_broker": True,
            "PAMKerberosAuthenticator.retain_ticket_after_stop": retain,
        },
        realm=broker_realm,
    )
    session = sandbox.login_and_spawn(hub, user)
    cache = server_cache(user)
    sandbox.wait_until(lambda: (seconds_left(broker_realm, cache) or 0) > 0, timeout=30, message="a delivered ticket")
    # The server's /tmp, held open: its tmpfs outlives the server's mount
    # namespace for as long as this descriptor does, so what the server left
    # in it can be looked at after the server is gone.
    tmp = os.open(cache.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.stat(cache.name, dir_fd=tmp, follow_symlinks=False)
        stop = session.delete(
            f"{hub.url}/hub/api/users/{user.name}/server",
            headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
            timeout=60,
        )
        assert stop.status_code in (202, 204), stop.text
        sandbox.wait_until(lambda: not sandbox.singleuser_pids(user.uid), timeout=60, message="the server stopped")
        left = os.listdir(tmp)
    finally:
        os.close(tmp)
    if retain:
        assert cache.name in left
    else:
        assert cache.name not in left, f"the server left its ticket behind: {left}"
