"""``/hub/pamkrb/admin`` and its JSON: every running server's ticket, for
holders of ``admin:users`` only, through a real hub with real servers in
different states; never a ticket's bytes."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import artifact_dir, form_login
from pamkrb import audit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def users(realm: sandbox.Realm) -> Iterator[list[sandbox.UnixUser]]:
    """Four users with principals and keytabs: an admin and three with servers."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(sandbox.provisioned_user(realm)) for _ in range(4)]


@pytest.fixture
def fleet(hub_factory, users, tmp_path) -> tuple[sandbox.Hub, dict[str, Any], dict[str, sandbox.UnixUser]]:
    """A hub where ``healthy`` has a valid ticket, ``broken``'s cache was
    replaced by a root-owned file (unreadable as theirs), ``gone``'s cache was
    removed; ``admin`` has no server."""
    admin, healthy, broken, gone = users
    events = tmp_path / "events.log"
    hub = hub_factory(
        {"Authenticator.admin_users": {admin.name}},
        extra_config=f"import logging\nc.EventLogger.handlers = [logging.FileHandler({str(events)!r})]",
    )
    hub.events = events
    sessions = {}
    for user in (healthy, broken, gone):
        sessions[user.name] = sandbox.login_and_spawn(hub, user)
    broken.default_ccache.unlink()
    broken.default_ccache.write_bytes(b"not a ticket")  # owned by root: never taken for broken's
    gone.default_ccache.unlink()
    # The form only: following its redirect would spawn a server for the admin.
    sessions["admin"] = form_login(hub, admin.name, admin.password).session
    return hub, sessions, {"admin": admin, "healthy": healthy, "broken": broken, "gone": gone}


def rows_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["user"]: row for row in data["users"]}


def test_admins_see_every_running_servers_ticket_and_others_get_403(fleet, realm):
    hub, sessions, who = fleet
    healthy, broken, gone = who["healthy"], who["broken"], who["gone"]
    ticket = healthy.default_ccache.read_bytes()

    data_url = f"{hub.url}/hub/pamkrb/admin/data"
    response = sessions["admin"].get(data_url, timeout=60)
    assert response.status_code == 200, response.text
    rows = rows_of(response.json())
    assert set(rows) == {healthy.name, broken.name, gone.name}  # the admin has no server
    assert rows[healthy.name]["state"] == "valid"
    assert rows[healthy.name]["principal"] == f"{healthy.name}@{realm.name}"
    assert rows[healthy.name]["expires_at"].endswith("Z")
    assert rows[healthy.name]["renewed_by"] == "server"
    assert rows[healthy.name]["last_renewal"] is not None
    assert rows[healthy.name]["last_error"] is None
    assert rows[broken.name]["state"] == "missing"
    assert rows[broken.name]["expires_at"] is None
    assert "owned by" in rows[broken.name]["last_error"] or "owner" in rows[broken.name]["last_error"]
    assert rows[gone.name]["state"] == "missing"
    # The timeline counts the three logins' tickets.
    svg = response.json()["timeline"]
    assert svg.startswith("<svg")
    assert sum(int(n) for n in _counts(svg, "renewals")) >= 3
    assert 'class="latency"' in svg

    page = sessions["admin"].get(f"{hub.url}/hub/pamkrb/admin", timeout=60)
    assert page.status_code == 200
    assert 'id="tickets"' in page.text
    assert healthy.name in page.text
    assert "<svg" in page.text
    assert "<script src" not in page.text  # nothing from elsewhere
    for text in (response.text, page.text):
        assert ticket.hex()[:64] not in text
        assert ticket[-64:].hex() not in text
        assert healthy.password not in text

    # Not an admin, even with a server of their own; nobody at all.
    for url in (data_url, f"{hub.url}/hub/pamkrb/admin"):
        refused = sessions[healthy.name].get(url, timeout=60, allow_redirects=False)
        assert refused.status_code == 403, (url, refused.status_code)
        assert broken.name not in refused.text
        anonymous = hub.session().get(url, timeout=60, allow_redirects=False)
        assert anonymous.status_code in (302, 403), (url, anonymous.status_code)
        assert broken.name not in anonymous.text


def _counts(svg: str, kind: str) -> list[str]:
    import re

    return re.findall(rf'class="{kind}" data-count="(\d+)"', svg)


def test_the_page_in_chromium_sorts_filters_and_shows_the_states(fleet):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    hub, sessions, who = fleet
    cookies = [
        {"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"}
        for c in sessions["admin"].cookies
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            context.add_cookies(cookies)
            page = context.new_page()
            page.goto(f"{hub.url}/hub/pamkrb/admin")
            page.wait_for_selector("#tickets tbody tr", timeout=30_000)
            states = {
                row.get_attribute("data-user"): row.query_selector('td[data-key="state"]').inner_text()
                for row in page.query_selector_all("#tickets tbody tr")
            }
            assert states == {who["healthy"].name: "valid", who["broken"].name: "missing", who["gone"].name: "missing"}
            assert page.query_selector("#pamkrb-timeline rect.renewals") is not None
            out = artifact_dir("admin-page")
            Path(out).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(out) / "admin-page.png"), full_page=True)
            # Filter: only the healthy user's row is left.
            page.fill("#filter", "valid")
            assert [r.get_attribute("data-user") for r in page.query_selector_all("#tickets tbody tr")] == [
                who["healthy"].name
            ]
            page.fill("#filter", "")
            # Sort by state, descending: the valid row first.
            page.click('th[data-key="state"]')
            page.click('th[data-key="state"]')
            first = page.query_selector("#tickets tbody tr").get_attribute("data-user")
            assert first == who["healthy"].name
        finally:
            browser.close()


def test_renew_now_and_destroy_are_for_admins_with_xsrf_and_audited(fleet, realm):
    hub, sessions, who = fleet
    admin, healthy = who["admin"], who["healthy"]
    base = f"{hub.url}/hub/pamkrb/admin/users/{healthy.name}"
    admin_session = sessions["admin"]
    xsrf = {"X-XSRFToken": admin_session.cookies.get("_xsrf", path="/hub/") or ""}
    cache = healthy.default_ccache
    before = sandbox.FileState.of(cache)
    tgs_before = realm.kdc_requests("TGS_REQ", client=realm.qualify(healthy.name))

    # Refused: a non-admin (with their XSRF token), an admin without one.
    own = sessions[healthy.name]
    mine = {"X-XSRFToken": own.cookies.get("_xsrf", path="/hub/") or ""}
    assert own.post(f"{base}/renew", headers=mine, timeout=60).status_code == 403
    assert own.post(f"{base}/destroy", headers=mine, timeout=60).status_code == 403
    assert admin_session.post(f"{base}/destroy", timeout=60).status_code == 403
    assert sandbox.FileState.of(cache) == before

    # Renew now: a fresh ticket renewed anyway, by TGS, in the trail.
    renewed = admin_session.post(f"{base}/renew", headers=xsrf, timeout=60)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["expires_at"].endswith("Z")
    assert sandbox.FileState.of(cache) != before
    assert realm.kdc_requests("TGS_REQ", client=realm.qualify(healthy.name)) == tgs_before + 1
    assert realm.klist_valid(cache)
    event = wait_for_ticket_event(hub.events, action="renewed", trigger=f"admin:{admin.name}")
    assert (event["user"], event["method"]) == (healthy.name, "tgs")

    # Destroy: the cache is gone, and the trail says who did it.
    destroyed = admin_session.post(f"{base}/destroy", headers=xsrf, timeout=60)
    assert destroyed.status_code == 200, destroyed.text
    assert not os.path.lexists(cache)
    event = wait_for_ticket_event(hub.events, action="destroyed", user=healthy.name)
    assert event["reason"] == f"destroyed by admin:{admin.name}"
    assert event["paths"] == [str(cache)]
    missing = admin_session.post(f"{hub.url}/hub/pamkrb/admin/users/nobody-here/renew", headers=xsrf, timeout=60)
    assert missing.status_code == 404

    # A renewal that fails (the keytab is gone) is a 502 naming why, a refusal
    # in the trail, and the row's state and last error.
    gone = who["gone"]
    (gone.home / f"{gone.name}.keytab").unlink()
    failed = admin_session.post(f"{hub.url}/hub/pamkrb/admin/users/{gone.name}/renew", headers=xsrf, timeout=60)
    assert failed.status_code == 502, failed.text
    assert "keytab" in failed.json()["error"]
    event = wait_for_ticket_event(hub.events, action="refused", user=gone.name)
    assert event["trigger"] == f"admin:{admin.name}"
    row = rows_of(admin_session.get(f"{hub.url}/hub/pamkrb/admin/data", timeout=60).json())[gone.name]
    assert row["state"] == "error"
    assert "keytab" in row["last_error"]


def wait_for_ticket_event(path: Path, **wanted: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("__schema__") == audit.TICKET and all(event.get(k) == v for k, v in wanted.items()):
                return event
        return None

    return sandbox.wait_until(found, timeout=30, interval=0.2, message=f"a ticket event {wanted}")
