"""The pamkrb server extension inside real single-user servers spawned by a
real hub, against a realm whose tickets live 90 seconds, so expiry and
renewal really happen during the tests.

How the tests steer renewal without waiting for the clock: the refresh margin
is set above the 90-second lifetime ("every trigger finds the ticket low and
renews") or well below it ("the ticket is always fresh").
"""

from __future__ import annotations

import asyncio
from typing import Any

import sandbox
from conftest import SHORT_LIFETIME, artifact_dir, assert_user_owned_cache

LIFETIME = SHORT_LIFETIME
ALWAYS_RENEW = 120  # margin above the lifetime
NEVER_RENEW = 10  # margin far below it


class Server:
    """A logged-in user's single-user server, driven over its REST API."""

    def __init__(self, hub: sandbox.Hub, user: sandbox.UnixUser):
        self.hub, self.user = hub, user
        self.session = sandbox.login_and_spawn(hub, user)
        self.base = f"{hub.url}/user/{user.name}"
        xsrf = self.session.cookies.get("_xsrf", path=f"/user/{user.name}/")
        self.headers = {"X-XSRFToken": xsrf or ""}

    def status(self) -> dict[str, Any]:
        response = self.session.get(f"{self.base}/pamkrb/api/status", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def save(self, path: str, source: str) -> Any:
        model = {
            "type": "notebook",
            "content": {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": source,
                        "metadata": {},
                        "outputs": [],
                        "execution_count": None,
                    }
                ],
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            },
        }
        return self.session.put(f"{self.base}/api/contents/{path}", json=model, headers=self.headers, timeout=30)

    def open(self, path: str) -> Any:
        return self.session.get(
            f"{self.base}/api/contents/{path}",
            params={"type": "notebook", "content": "1"},
            timeout=30,
        )


def start_hub(hub_factory, realm, *, margin: int, interval: int = 0, extra=None):
    config = {
        "PAMKerberosAuthenticator.refresh_margin": margin,
        "PAMKerberosAuthenticator.refresh_interval": interval,
    }
    config.update(extra or {})
    return hub_factory(config, realm=realm)


def test_fresh_ticket_costs_no_kdc_request(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=NEVER_RENEW)
    server = Server(hub, short_user)
    before = short_realm.kdc_requests("AS_REQ")
    for i in range(5):
        assert server.save("fresh.ipynb", f"x = {i}").status_code in (200, 201)
        assert server.open("fresh.ipynb").status_code == 200
    status = server.status()
    assert status["state"] == "valid"
    assert status["renewals"] == 0
    assert status["triggers"]["save"] >= 5
    assert status["triggers"]["open"] >= 5
    assert short_realm.kdc_requests("AS_REQ") == before
    assert status["principal"] == f"{short_user.name}@{short_realm.name}"
    assert status["ccache"] == str(short_user.default_ccache)


def test_save_renews_a_ticket_under_the_margin(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=ALWAYS_RENEW)
    server = Server(hub, short_user)
    first = short_realm.klist(short_user.default_ccache).expires

    def renewed_later():
        assert server.save("renew.ipynb", "print(1)").status_code in (200, 201)
        return short_realm.klist(short_user.default_ccache).expires > first

    sandbox.wait_until(renewed_later, timeout=15, interval=0.5, message="a later expiry")
    status = server.status()
    assert status["renewals"] >= 1
    assert status["last_error"] is None
    assert status["last_refresh"] is not None
    assert_user_owned_cache(short_user)


def test_timer_renews_an_idle_ticket_before_it_expires(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=60, interval=2)
    server = Server(hub, short_user)
    first = server.status()
    expiry = first["expires_at"]

    def renewed():
        status = server.status()
        return status if status["renewals"] >= 1 else None

    # No saves, no opens: only the timer can renew. It must do so while the
    # first ticket is still valid (within 90 s of login).
    status = sandbox.wait_until(renewed, timeout=LIFETIME, interval=1, message="timer")
    assert status["triggers"].get("timer", 0) >= 1
    assert status["expires_at"] > expiry
    assert status["state"] == "valid"
    assert status["last_refresh"] < expiry
    assert_user_owned_cache(short_user)
    assert short_realm.klist_valid(short_user.default_ccache)


def test_kdc_down_saves_still_succeed_and_status_reports_it(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=ALWAYS_RENEW)
    server = Server(hub, short_user)
    short_realm.stop()
    try:
        source = "print('work that must not be lost')"
        response = server.save("kdc-down.ipynb", source)
        assert response.status_code in (200, 201)
        saved = server.open("kdc-down.ipynb").json()
        assert saved["content"]["cells"][0]["source"] == source

        def error_reported():
            status = server.status()
            return status if status["last_error"] else None

        status = sandbox.wait_until(error_reported, timeout=30, interval=0.5, message="error")
        assert status["state"] in ("error", "expiring")
        assert "KDC" in status["last_error"] or "contact" in status["last_error"]
    finally:
        short_realm.start()
    renewals = server.status()["renewals"]

    def recovered():
        assert server.save("kdc-down.ipynb", "print(2)").status_code in (200, 201)
        status = server.status()
        return status["last_error"] is None and status["renewals"] > renewals

    sandbox.wait_until(recovered, timeout=30, interval=0.5, message="recovery")
    assert_user_owned_cache(short_user)


def test_keytab_removed_server_keeps_working(hub_factory, short_realm, short_user):
    # Tickets that cannot be renewed by TGS: every renewal needs the keytab.
    # (A renewable ticket is renewed without it until its renewable life
    # ends: tests/test_keeper_kdc_requests.py.)
    short_realm.kadmin(f"modprinc -maxrenewlife 0 {short_realm.qualify(short_user.name)}")
    hub = start_hub(hub_factory, short_realm, margin=ALWAYS_RENEW)
    server = Server(hub, short_user)
    (short_user.home / f"{short_user.name}.keytab").unlink()
    response = server.save("no-keytab.ipynb", "print(3)")
    assert response.status_code in (200, 201)
    assert server.open("no-keytab.ipynb").status_code == 200

    def reported():
        status = server.status()
        return status if status["last_error"] else None

    status = sandbox.wait_until(reported, timeout=30, interval=0.5, message="error")
    assert "keytab" in status["last_error"]
    assert "does not exist" in status["last_error"]
    assert server.session.get(f"{server.base}/api/status", timeout=10).status_code == 200


def test_kernel_start_checks_the_ticket_first(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=ALWAYS_RENEW)
    server = Server(hub, short_user)
    before = server.status()
    response = server.session.post(
        f"{server.base}/api/kernels",
        json={"name": "python3"},
        headers=server.headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    status = server.status()
    assert status["triggers"].get("kernel", 0) == before["triggers"].get("kernel", 0) + 1
    # The wrapper awaits the renewal before the kernel is launched.
    assert status["renewals"] > before["renewals"]


def test_status_page_for_people(hub_factory, short_realm, short_user, request):
    hub = start_hub(hub_factory, short_realm, margin=NEVER_RENEW)
    server = Server(hub, short_user)
    page = server.session.get(f"{server.base}/pamkrb/status", timeout=10)
    assert page.status_code == 200
    assert 'data-pamkrb-state="valid"' in page.text
    assert f"{short_user.name}@{short_realm.name}" in page.text
    (artifact_dir(request.node.nodeid) / "status.html").write_text(page.text)


def test_status_needs_authentication(hub_factory, short_realm, short_user):
    hub = start_hub(hub_factory, short_realm, margin=NEVER_RENEW)
    Server(hub, short_user)
    anonymous = hub.session()
    base = f"{hub.url}/user/{short_user.name}"
    response = anonymous.get(f"{base}/pamkrb/api/status", allow_redirects=False)
    assert response.status_code in (302, 401, 403)


def test_disabled_without_kerberos_configuration(hub_factory, short_realm, short_user):
    (short_user.home / f"{short_user.name}.keytab").unlink()
    hub = start_hub(
        hub_factory,
        short_realm,
        margin=NEVER_RENEW,
        extra={"PAMKerberosAuthenticator.kinit_required": False},
    )
    server = Server(hub, short_user)
    status = server.status()
    assert status["state"] == "disabled"
    assert server.save("plain.ipynb", "1").status_code in (200, 201)


def test_wrapped_kernel_manager_method_still_exists():
    # The extension wraps start_kernel on the server's kernel manager; if
    # jupyter_server renames or de-async-ifies it, this fails loudly.
    from jupyter_server.services.kernels.kernelmanager import (
        AsyncMappingKernelManager,
    )

    assert asyncio.iscoroutinefunction(AsyncMappingKernelManager.start_kernel)


def test_contents_event_schema_is_the_one_we_listen_to():
    from jupyter_server.services.contents.manager import ContentsManager

    from pamkrb.serverextension import CONTENTS_EVENTS

    assert ContentsManager.event_schema_id == CONTENTS_EVENTS
