"""``/hub/pamkrb/admin`` and its JSON: every running server's ticket, for
holders of ``admin:users`` only, through a real hub with real servers in
different states; never a ticket's bytes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import browser_cookies, chromium, require_chromium
from event_log import events_in, find_event, logging_to, wait_for_event
from jupyter_events.schema import EventSchema

import sandbox
from conftest import artifact_dir, form_login, logged_in, password_user, unix_user
from pamkrb import audit, server_reports


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
        extra_config=logging_to(events),
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


# -- 20 users in mixed states, in Chromium -------------------------------------------

# A server as cheap as a server can be: it answers the hub's "is it up?" and
# nothing else. What the page reads is real all the same: the caches the hub
# installed at the logins and spawns, the hub's keeper and its events.
TINY_SERVER = """
import http.server, os, urllib.parse
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
class Up(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer((url.hostname, url.port), Up).serve_forever()
"""

# KRB5KDC_ERR_CLIENT_REVOKED as libkrb5 reports it (com_err table base + 18).
CLIENT_REVOKED = -1765328384 + 18

# How many users the test puts in each state (20 in all).
MIX = {"valid": 8, "expiring": 3, "login_required": 3, "error": 3, "missing": 3}


@contextlib.contextmanager
def password_users(realm: sandbox.Realm, count: int) -> Iterator[list[sandbox.UnixUser]]:
    """Users whose Kerberos password is their login password, with no keytab."""
    with contextlib.ExitStack() as stack:
        users = []
        for _ in range(count):
            user = stack.enter_context(unix_user("pkp"))
            password_user(realm, user)
            users.append(user)
        yield users


def start_server(hub: sandbox.Hub, session: Any, name: str) -> None:
    response = session.post(
        f"{hub.url}/hub/api/users/{name}/server",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    assert response.status_code in (201, 202), (name, response.status_code, response.text)


def test_twenty_users_in_mixed_states_in_chromium(hub_factory, realm, tmp_path):
    """8 valid, 3 expiring (30-minute tickets, inside the hour's margin), 3
    login required (password users, 20-second tickets that are not
    renewable), 3 in error (20-second keytab tickets, then the principal
    disabled in the KDC or the keytab overwritten, and the hub's renewal
    refused), 3 missing (the cache removed, or replaced by a root-owned
    file): the table, its filters and sorting, and the plot's renewals and
    failures, in Chromium."""
    require_chromium()
    keytab_count = MIX["valid"] + MIX["expiring"] + MIX["error"] + MIX["missing"] + 1
    with (
        sandbox.provisioned_users(realm, keytab_count, "pkf") as keytab_users,
        password_users(realm, MIX["login_required"]) as login_required,
    ):
        admin, *rest = keytab_users
        valid, rest = rest[: MIX["valid"]], rest[MIX["valid"] :]
        expiring, rest = rest[: MIX["expiring"]], rest[MIX["expiring"] :]
        error, missing = rest[: MIX["error"]], rest[MIX["error"] :]
        groups = {
            "valid": valid,
            "expiring": expiring,
            "login_required": login_required,
            "error": error,
            "missing": missing,
        }
        expected = {u.name: state for state, users in groups.items() for u in users}
        assert len(expected) == 20
        for user in expiring:
            realm.kadmin(f"modprinc -maxlife 30m {realm.qualify(user.name)}")
        for user in (*login_required, *error):
            realm.kadmin(f"modprinc -maxlife 20s -maxrenewlife 0 {realm.qualify(user.name)}")

        events = tmp_path / "events.log"
        hub = hub_factory(
            {
                "Authenticator.admin_users": {admin.name},
                "PAMKerberosAuthenticator.credential_source": "auto",  # no keytab: the password
                "Spawner.cmd": [str(sandbox.VENV_BIN / "python3"), "-c", TINY_SERVER],
                # Every request of a user with a server asks the hub to renew their ticket.
                "Authenticator.auth_refresh_age": 1,
            },
            extra_config=logging_to(events),
        )
        sessions = {}
        for user in (*valid, *expiring, *login_required, *error, *missing):
            login = form_login(hub, user.name, user.password)
            assert logged_in(login), (user.name, login.status_code)
            sessions[user.name] = login.session
            start_server(hub, login.session, user.name)
        admin_login = form_login(hub, admin.name, admin.password)
        assert logged_in(admin_login)
        admin_session = admin_login.session
        data_url = f"{hub.url}/hub/pamkrb/admin/data"

        def fleet_data() -> dict[str, Any]:
            response = admin_session.get(data_url, timeout=60)
            assert response.status_code == 200, response.text
            return response.json()

        sandbox.wait_until(
            lambda: len(fleet_data()["users"]) == 20, timeout=120, interval=0.5, message="20 running servers"
        )

        # Error: the KDC refuses the principal (disabled), or the keytab is
        # not one (its bytes overwritten; it still exists, so it is still the source).
        for user in error[:2]:
            realm.kadmin(f"modprinc -allow_tix {realm.qualify(user.name)}")
        (error[2].home / f"{error[2].name}.keytab").write_bytes(b"not a keytab")
        for user in error:
            # The user's next request to the hub renews (auth_refresh_age): refused.
            def refused(user: sandbox.UnixUser = user) -> dict[str, Any] | None:
                sessions[user.name].get(f"{hub.url}/hub/api/user", timeout=60)
                return find_ticket_event(events, action="refused", user=user.name)

            event = sandbox.wait_until(refused, timeout=60, interval=0.5, message=f"{user.name}'s refusal")
            assert event["emitter"]["kind"] == "hub"
        codes = [find_ticket_event(events, action="refused", user=u.name).get("kdc_error_code") for u in error]
        assert codes == [CLIENT_REVOKED, CLIENT_REVOKED, None]  # no keys: the KDC was never asked
        # Missing: the cache removed, or replaced by a file of root's.
        for user in missing:
            user.default_ccache.unlink()
        missing[0].default_ccache.write_bytes(b"not a ticket")

        # Login required: the 20-second password tickets run out.
        def states() -> dict[str, str]:
            return {row["user"]: row["state"] for row in fleet_data()["users"]}

        seen = sandbox.wait_until(
            lambda: (lambda now: now if now == expected else None)(states()),
            timeout=90,
            interval=1,
            message=f"the states {expected}",
        )
        assert seen == expected
        data = fleet_data()
        rows = rows_of(data)
        for user in error[:2]:
            assert "revoked" in rows[user.name]["last_error"], rows[user.name]
        assert "keytab" in rows[error[2].name]["last_error"]
        for user in login_required:
            assert rows[user.name]["source"] == "password"
            assert rows[user.name]["expires_at"] <= data["now"]  # ran out; only a sign-in helps

        # The plot counts what the event log holds (once the log has caught
        # up): every login's ticket and renewal, and the refusals (one per
        # user in error, or more if a request came before its event was written).
        def plot_and_log() -> tuple[int, int] | None:
            logged = [e for e in events_in(events) if e["__schema__"] == audit.TICKET]
            counts = (
                sum(1 for e in logged if e["action"] in ("issued", "renewed")),
                sum(1 for e in logged if e["action"] == "refused"),
            )
            svg = fleet_data()["timeline"]
            drawn = (sum(map(int, _counts(svg, "renewals"))), sum(map(int, _counts(svg, "failures"))))
            return counts if drawn == counts else None

        ok_events, failed_events = sandbox.wait_until(
            plot_and_log, timeout=30, interval=0.5, message="the plot's counts to match the event log's"
        )
        assert failed_events >= MIX["error"]
        assert ok_events >= 21  # 21 logins, and the spawns' renewals

        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1500, "height": 900})
            context.add_cookies(browser_cookies(admin_session))
            page = context.new_page()
            page.goto(f"{hub.url}/hub/pamkrb/admin")
            page.wait_for_selector("#tickets tbody tr", timeout=30_000)

            def shown() -> list[tuple[str, str]]:
                return [
                    (row.get_attribute("data-user"), row.query_selector('td[data-key="state"]').inner_text())
                    for row in page.query_selector_all("#tickets tbody tr")
                ]

            assert dict(shown()) == expected
            assert page.inner_text("#count") == "20 of 20"
            # The plot in the page: green bars for the renewals, red for the failures.
            drawn = {
                kind: sum(int(r.get_attribute("data-count")) for r in page.query_selector_all(f"rect.{kind}"))
                for kind in ("renewals", "failures")
            }
            assert drawn == {"renewals": ok_events, "failures": failed_events}
            assert page.query_selector("#pamkrb-timeline polyline.latency") is not None
            # Each state's filter shows exactly the users put in it.
            for state, count in MIX.items():
                page.select_option("#state-filter", state)
                users = {name for name, shown_state in shown() if shown_state == state}
                assert len(shown()) == count
                assert users == {n for n, s in expected.items() if s == state}
                assert page.inner_text("#count") == f"{count} of 20"
            page.select_option("#state-filter", "")
            # The text filter: one user's name.
            page.fill("#filter", error[0].name)
            assert shown() == [(error[0].name, "error")]
            page.fill("#filter", "")
            # Sorting by state, both ways; by user.
            page.click('th[data-key="state"]')
            order = [state for _, state in shown()]
            assert order == sorted(order)
            assert len(order) == 20
            page.click('th[data-key="state"]')
            assert [state for _, state in shown()] == sorted(order, reverse=True)
            assert page.get_attribute('th[data-key="state"]', "aria-sort") == "descending"
            page.click('th[data-key="user"]')
            assert [name for name, _ in shown()] == sorted(expected)
            out = artifact_dir("admin-page")
            page.screenshot(path=str(out / "admin-page.png"), full_page=True)
        hub.stop()  # before the users go: their servers stop with it


def find_ticket_event(path: Path, **wanted: Any) -> dict[str, Any] | None:
    return find_event(path, __schema__=audit.TICKET, **wanted)


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
    return wait_for_event(path, f"a ticket event {wanted}", timeout=30, __schema__=audit.TICKET, **wanted)


# -- a server's own renewals, reported to the hub -------------------------------------


def test_a_servers_own_renewals_and_failures_reach_the_page(hub_factory, realm, tmp_path):
    """A real single-user server renews its own ticket by TGS (its ticket
    lives 30 minutes, inside the hour's margin, so it renews at every look),
    reports each renewal to POST /hub/api/pamkrb/events with its own token,
    and the hub records it with that server as the emitter: the row's last
    renewal and who did it, and the timeline. Then the principal is disabled
    and the cache removed: the server's keytab request is refused by the KDC,
    and the row shows the error."""
    with sandbox.provisioned_users(realm, 2, "pkr") as (admin, owner):
        principal = realm.qualify(owner.name)
        realm.kadmin(f"modprinc -maxlife 30m {principal}")
        events = tmp_path / "events.log"
        hub = hub_factory(
            {"Authenticator.admin_users": {admin.name}},
            extra_config=logging_to(events),
        )
        session = sandbox.login_and_spawn(hub, owner)
        admin_session = form_login(hub, admin.name, admin.password).session
        prefix = f"/user/{owner.name}/"

        renewed = sandbox.wait_until(
            lambda: find_server_event(events, action="renewed", user=owner.name),
            timeout=60,
            interval=0.5,
            message="a renewal the server reported",
        )
        assert renewed["method"] == "tgs"
        assert renewed["emitter"] == {"kind": "server", "host": socket.gethostname(), "name": prefix}
        assert renewed["principal"] == principal
        assert renewed["source"] == "keytab"
        assert renewed["client_address"] == "127.0.0.1"
        assert renewed["trigger"] in ("start", "timer")
        assert renewed["duration_ms"] > 0
        assert renewed["expires_at"].endswith("Z")
        assert realm.kdc_requests("TGS_REQ", client=principal) >= 1
        EventSchema(audit.SCHEMAS / "ticket" / "v1.yaml").validate(
            {k: v for k, v in renewed.items() if not k.startswith("__")}
        )
        data = admin_session.get(f"{hub.url}/hub/pamkrb/admin/data", timeout=60).json()
        row = rows_of(data)[owner.name]
        assert row["last_renewal_by"] == renewed["emitter"]
        assert row["last_renewal"] >= renewed["__timestamp__"][:19] + "Z"
        assert row["renewed_by"] == "server"
        tickets = [e for e in events_in(events) if e["__schema__"] == audit.TICKET]
        by_server = sum(1 for e in tickets if e["action"] == "renewed" and e["emitter"]["kind"] == "server")
        by_hub = sum(1 for e in tickets if e["action"] in ("issued", "renewed") and e["emitter"]["kind"] == "hub")
        assert by_server >= 1
        assert sum(map(int, _counts(data["timeline"], "renewals"))) >= by_server + by_hub
        # In the page: who renewed it, which server on which host.
        assert renewed_by_in_chromium(hub, admin_session, owner.name) == f"server ({socket.gethostname()} {prefix})"

        # The KDC stops issuing tickets to the principal; the cache goes: the
        # server's next look asks the KDC with its keytab, and is refused.
        realm.kadmin(f"modprinc -allow_tix {principal}")
        owner.default_ccache.unlink()
        refused = sandbox.wait_until(
            lambda: find_server_event(events, action="refused", user=owner.name),
            timeout=60,
            interval=0.5,
            message="a failure the server reported",
        )
        assert refused["kdc_error_code"] == CLIENT_REVOKED
        assert "revoked" in refused["reason"]
        assert refused["emitter"]["name"] == prefix

        def errored() -> dict[str, Any] | None:
            data = admin_session.get(f"{hub.url}/hub/pamkrb/admin/data", timeout=60).json()
            row = rows_of(data)[owner.name]
            return data if row["state"] == "error" else None

        data = sandbox.wait_until(errored, timeout=30, interval=0.5, message="the row in error")
        assert "revoked" in rows_of(data)[owner.name]["last_error"]
        assert sum(map(int, _counts(data["timeline"], "failures"))) >= 1

        check_report_endpoint(hub, owner, admin, session, admin_session, events)


def renewed_by_in_chromium(hub: sandbox.Hub, admin_session: Any, name: str) -> str:
    """The text of the user's "Renewed by" cell as Chromium renders the page."""
    with chromium() as browser:
        context = browser.new_context()
        context.add_cookies(browser_cookies(admin_session))
        page = context.new_page()
        page.goto(f"{hub.url}/hub/pamkrb/admin")
        cell = page.wait_for_selector(f'tr[data-user="{name}"] td[data-key="renewed_by"]', timeout=30_000)
        page.screenshot(path=str(artifact_dir("admin-page") / "server-reports.png"), full_page=True)
        text: str = cell.inner_text()
        return text


def find_server_event(path: Path, **wanted: Any) -> dict[str, Any] | None:
    return find_event(path, lambda e: e["emitter"]["kind"] == "server", __schema__=audit.TICKET, **wanted)


def check_report_endpoint(hub, owner, admin, session, admin_session, events) -> None:
    """Who may report, what is refused with which status, and the limits."""
    url = f"{hub.url}/hub/api/pamkrb/events"
    token = sandbox.server_token(owner.uid)
    good = {
        "action": "refused",
        "principal": realm_principal(owner, hub),
        "source": "keytab",
        "trigger": "timer",
        "method": None,
        "reason": "a report the test made",
        "host": "node1.example",
        "server": f"/user/{owner.name}/",
    }

    def post(body: Any, *, auth: str | None = token, raw: bytes | None = None, via: Any = None) -> Any:
        headers = {"Authorization": f"token {auth}"} if auth else {}
        data = raw if raw is not None else json.dumps(body).encode()
        return (via or hub.session()).post(url, data=data, headers=headers, timeout=60)

    assert post(good).status_code == 204
    recorded = sandbox.wait_until(
        lambda: find_server_event(events, reason="a report the test made"), timeout=30, message="the report"
    )
    assert (recorded["user"], recorded["emitter"]["host"]) == (owner.name, "node1.example")

    refusals = {
        "another user's principal": (dict(good, principal=realm_principal(admin, hub)), 400, "principal"),
        "another user's server": (dict(good, server=f"/user/{admin.name}/"), 400, "server"),
        "a user named in the body": (dict(good, user=admin.name), 400, "unknown fields: user"),
        "an emitter": (dict(good, emitter={"kind": "hub"}), 400, "unknown fields: emitter"),
        "an action a server does not report": (dict(good, action="issued"), 400, "action"),
        "a renewal without its method": (dict(good, action="renewed"), 400, "method"),
        "markup as a trigger": (dict(good, trigger="<script>"), 400, "trigger"),
        "a time that is not one": (dict(good, expires_at="tomorrow"), 400, "expires_at"),
        "a negative duration": (dict(good, duration_ms=-1), 400, "duration_ms"),
        "a code that is not an integer": (dict(good, kdc_error_code=1.5), 400, "kdc_error_code"),
        "a list": ([good], 400, "JSON object"),
    }
    for what, (body, status, message) in refusals.items():
        response = post(body)
        assert response.status_code == status, (what, response.status_code, response.text)
        assert message in response.json()["message"], (what, response.text)
    assert post(None, raw=b"{not json").status_code == 400
    assert post(None, raw=b"{" + b" " * 5000 + b"}").status_code == 413
    # Not the server's token: none, the user's cookie, the user's own API
    # token, the admin's cookie.
    personal = session.post(
        f"{hub.url}/hub/api/users/{owner.name}/tokens",
        json={},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    assert personal.status_code == 201, personal.text
    for what, response in {
        "no credential": post(good, auth=None),
        "the user's cookie": post(good, auth=None, via=session),
        "the user's own API token": post(good, auth=personal.json()["token"]),
        "the admin's cookie": post(good, auth=None, via=admin_session),
    }.items():
        assert response.status_code == 403, (what, response.status_code, response.text)
    assert hub.session().get(url, headers={"Authorization": f"token {token}"}, timeout=60).status_code == 405
    # The rate limit: a burst beyond it is refused, with when to try again.
    statuses = []
    for _ in range(server_reports.REPORTS_PER_MINUTE + 10):
        response = post(good)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {204}, statuses
    assert " 500 " not in hub.log_text()
    assert "Traceback" not in hub.log_text()


def realm_principal(user: sandbox.UnixUser, hub: sandbox.Hub) -> str:
    return hub.realm.qualify(user.name)
