"""The audit trail (pamkrb.audit): every event type emitted in its real flow
through a real hub and a real single-user server, routed to files with
``c.EventLogger.handlers`` as an admin would, read back, checked against the
schemas shipped in the package, and scanned for the password and the ticket.

One hub, the ticket broker on, password users with 60-second tickets
renewable for 180 s and a refresh margin longer than a ticket's life, so
that every look at a ticket renews it: the hub renews by TGS at the spawn,
delivers to the server, the server installs what it gets.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from event_log import logging_to, pamkrb_events, wait_for_event
from jupyter_events.schema import EventSchema

import sandbox
from conftest import PASSWORD_LIFETIME, form_login, password_user
from pamkrb import audit

LIFETIME = PASSWORD_LIFETIME


SCHEMAS = {
    audit.TICKET: EventSchema(audit.SCHEMAS / "ticket" / "v1.yaml"),
    audit.PLANT: EventSchema(audit.SCHEMAS / "plant" / "v1.yaml"),
    audit.SIGN_IN: EventSchema(audit.SCHEMAS / "sign-in" / "v1.yaml"),
}


def assert_valid(event: dict[str, Any]) -> None:
    schema = SCHEMAS[event["__schema__"]]
    assert event["__schema_version__"] == "1"
    schema.validate({k: v for k, v in event.items() if not k.startswith("__")})


def ticket_fragments(data: bytes) -> list[str]:
    """Pieces of a credential cache as they could appear in a JSON line: hex
    and base64 (at every alignment) of each 12-byte window of the ticket."""
    pieces = []
    for i in range(0, max(0, len(data) - 12), 4):
        chunk = data[i : i + 12]
        if chunk.count(0) > 4:
            continue  # padding and lengths, not secrets
        pieces.append(chunk.hex())
        for shift in range(3):
            pieces.append(base64.b64encode(data[i + shift : i + shift + 12]).decode()[:12])
    return pieces


def server_events_config(user: sandbox.UnixUser) -> tuple[dict[str, Any], Path]:
    """A jupyter_server config, readable by the user, that writes the server's
    events to a file in their home, as an admin would route them."""
    config_dir = user.home / "jupyter-config"
    config_dir.mkdir(exist_ok=True)
    log = user.home / "server-events.log"
    (config_dir / "jupyter_server_config.py").write_text(logging_to(log))
    os.chown(config_dir, user.uid, user.gid)
    return {"JUPYTER_CONFIG_PATH": str(config_dir)}, log


def test_every_event_in_its_real_flow_validates_and_carries_no_secret(
    hub_factory, pw_realm, bare_user, attacker, tmp_path
):
    user = bare_user
    principal = password_user(pw_realm, user)
    hub_events = tmp_path / "hub-events.log"
    server_env, server_events = server_events_config(user)
    # Something planted at the user's cache path before they log in.
    bait = tmp_path / "bait"
    bait.write_text("not a ticket")
    os.symlink(bait, user.default_ccache)
    os.lchown(user.default_ccache, attacker.uid, attacker.gid)
    hub = hub_factory(
        {
            "PAMKerberosAuthenticator.credential_source": "password",
            "PAMKerberosAuthenticator.ticket_broker": True,
            "PAMKerberosAuthenticator.refresh_margin": LIFETIME + 10,
            "Spawner.environment": server_env,
        },
        realm=pw_realm,
        extra_config=logging_to(hub_events),
    )
    session = sandbox.login_and_spawn(hub, user)

    # Login: the plant replaced, a ticket issued from the password.
    plant = wait_for_event(hub_events, "the plant event", __schema__=audit.PLANT)
    assert (plant["user"], plant["kind"], plant["owner"]) == (
        user.name,
        "symbolic link",
        f"{attacker.name} (uid {attacker.uid})",
    )
    assert plant["path"] == str(user.default_ccache)
    issued = wait_for_event(hub_events, "the login's ticket", action="issued", trigger="login")
    assert (issued["user"], issued["principal"], issued["source"], issued["method"]) == (
        user.name,
        principal,
        "password",
        "password",
    )
    assert issued["expires_at"].endswith("Z")
    assert issued["renew_till"] > issued["expires_at"]
    assert issued["duration_ms"] > 0
    assert issued["emitter"]["kind"] == "hub"
    # The spawn: a TGS renewal (the margin is longer than a ticket's life).
    renewed = wait_for_event(hub_events, "the spawn's TGS renewal", action="renewed", trigger="spawn")
    assert renewed["method"] == "tgs"
    # The broker delivers to the server, which installs it and says so.
    delivered = wait_for_event(hub_events, "a delivery", action="delivered")
    assert delivered["client_address"] == "127.0.0.1"
    assert delivered["principal"] == principal
    on_server = wait_for_event(server_events, "the server's renewal from the hub", action="renewed", method="hub")
    assert on_server["emitter"]["kind"] == "server"
    assert on_server["emitter"]["name"] == f"/user/{user.name}/"
    assert on_server["user"] == user.name

    # Sign-ins through the ticket API: a wrong password, then the right one.
    token = sandbox.server_token(user.uid)
    api = hub.session()
    url = f"{hub.url}/hub/api/pamkrb/ticket"
    headers = {"Authorization": f"token {token}"}
    wrong = api.post(url, json={"password": "not-" + user.password}, headers=headers, timeout=60)
    assert wrong.status_code == 403
    refused = wait_for_event(hub_events, "the refused sign-in", __schema__=audit.SIGN_IN, outcome="refused")
    assert refused["reason"] == "the password was not accepted"
    right = api.post(url, json={"password": user.password}, headers=headers, timeout=60)
    assert right.status_code == 200, right.text
    ticket_bytes = right.content
    ok = wait_for_event(hub_events, "the sign-in", __schema__=audit.SIGN_IN, outcome="ok")
    assert ok["client_address"] == "127.0.0.1"
    assert ok["principal"] == principal
    wait_for_event(hub_events, "the sign-in's ticket", action="issued", trigger="sign-in", method="password")

    # A user whose Kerberos password differs: the KDC refuses, with its code.
    password_user(pw_realm, attacker, "kdc-" + attacker.password)
    assert form_login(hub, attacker.name, attacker.password).status_code == 403
    kdc_refusal = wait_for_event(hub_events, "the KDC's refusal", action="refused", user=attacker.name)
    assert kdc_refusal["trigger"] == "login"
    assert kdc_refusal["kdc_error_code"] is not None
    assert kdc_refusal["kdc_error_code"] != 0
    assert "password" in kdc_refusal["reason"]

    # The server stops: its ticket destroyed.
    stop = session.delete(
        f"{hub.url}/hub/api/users/{user.name}/server",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    assert stop.status_code in (202, 204), stop.text
    destroyed = wait_for_event(hub_events, "the destruction", action="destroyed", user=user.name)
    # With the broker the server removes the copy it installed as it exits;
    # here it shares the hub's /tmp, so the hub may find nothing left.
    assert destroyed["paths"] in ([], [str(user.default_ccache)])
    sandbox.wait_until(lambda: not os.path.lexists(user.default_ccache), timeout=30, message="the cache gone")
    assert destroyed["reason"] == "server stopped"
    assert not os.path.lexists(user.default_ccache)

    everything = pamkrb_events(hub_events) + pamkrb_events(server_events)
    assert {e["__schema__"] for e in everything} == set(SCHEMAS)
    assert {e.get("action") for e in everything} >= {"issued", "renewed", "delivered", "refused", "destroyed"}
    for event in everything:
        assert_valid(event)
    text = hub_events.read_text() + server_events.read_text()
    for secret in (user.password, attacker.password, "kdc-" + attacker.password):
        assert secret not in text
    assert len(ticket_bytes) > 200
    leaked = [piece for piece in ticket_fragments(ticket_bytes) if piece in text]
    assert not leaked, leaked[:5]
    assert user.password not in hub.log_text()


def test_what_a_server_reports_is_what_the_hub_accepts():
    """pamkrb.server_reports holds both sides: what a server sends for its
    own renewal parses on the hub unchanged; what the hub has anyway (the
    broker's deliveries, sign-ins, destructions) is never sent; no report
    names its user or emitter (the hub takes them from the token)."""
    from pamkrb import server_reports

    environ = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
    renewed = {
        "action": "renewed",
        "user": "alice",
        "principal": "alice@EXAMPLE.ORG",
        "source": "keytab",
        "trigger": "timer",
        "method": "tgs",
        "expires_at": "2026-12-07T10:00:00Z",
        "renew_till": "2026-12-14T00:00:00Z",
        "duration_ms": 3.5,
        "emitter": {"kind": "server", "host": "node1", "name": "/user/alice/"},
    }
    report = server_reports.report_of(audit.TICKET, renewed, environ)
    assert report is not None
    assert "user" not in report
    assert "emitter" not in report
    assert report["server"] == "/user/alice/"
    parsed = server_reports.parse_report(json.dumps(report).encode())
    assert {k: parsed[k] for k in ("action", "method", "expires_at", "duration_ms")} == {
        "action": "renewed",
        "method": "tgs",
        "expires_at": "2026-12-07T10:00:00Z",
        "duration_ms": 3.5,
    }
    refused = dict(renewed, action="refused", method=None, kdc_error_code=-1765328366, reason="x" * 900)
    report = server_reports.report_of(audit.TICKET, refused, environ)
    assert report is not None
    assert len(server_reports.parse_report(json.dumps(report).encode())["reason"]) == 500
    for skipped in (
        dict(renewed, source="hub", method="hub"),  # from the broker: the hub delivered it
        dict(renewed, action="delivered"),
        dict(renewed, action="issued", trigger="sign-in"),  # the hub issued it
        dict(renewed, action="destroyed"),
    ):
        assert server_reports.report_of(audit.TICKET, skipped, environ) is None, skipped
    assert server_reports.report_of(audit.SIGN_IN, renewed, environ) is None
