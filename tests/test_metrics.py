"""Prometheus metrics on /hub/metrics (the hub's acquisitions and renewals)
and on the single-user server's /metrics (its renewals and checks)."""

from __future__ import annotations

import re

import sandbox


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``, in
    Prometheus text format (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.index("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hub_and_server_metrics_count_acquisitions_and_renewals(hub_factory, realm, user):
    hub = hub_factory(
        {
            "JupyterHub.authenticate_prometheus": False,
            # Above the realm's 10-hour lifetime: every trigger renews.
            "PAMKerberosAuthenticator.refresh_margin": 11 * 3600,
        }
    )
    session = sandbox.login_and_spawn(hub, user)
    hub_metrics = session.get(f"{hub.url}/hub/metrics", timeout=10).text
    name = "pamkrb_ticket_acquisitions_total"
    assert sample(hub_metrics, name, result="success", trigger="login") == 1
    # The spawn found the fresh ticket under the (huge) margin and renewed it.
    assert sample(hub_metrics, "pamkrb_ticket_renewals_total", result="success", trigger="spawn") >= 1
    assert (
        sample(
            hub_metrics,
            "pamkrb_ticket_acquisition_duration_seconds_count",
            result="success",
            trigger="login",
        )
        == 1
    )

    base = f"{hub.url}/user/{user.name}"
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user.name}/")
    response = session.put(
        f"{base}/api/contents/m.ipynb",
        json={
            "type": "notebook",
            "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
        },
        headers={"X-XSRFToken": xsrf or ""},
        timeout=30,
    )
    assert response.status_code in (200, 201)

    def renewed_on_save():
        # A save also reads the file back, so "save" and "open" checks arrive
        # together and share one renewal, labelled with whichever came first.
        text = session.get(f"{base}/metrics", timeout=10).text
        checked = sample(text, "pamkrb_ticket_checks_total", trigger="save")
        renewals = sample(text, "pamkrb_ticket_renewals_total", result="success")
        return text if checked >= 1 and renewals >= 2 else None

    text = sandbox.wait_until(renewed_on_save, timeout=30, interval=0.5, message="metric")
    assert sample(text, "pamkrb_ticket_renewals_total", trigger="start") == 1
    assert "pamkrb_ticket_renewal_duration_seconds_bucket" in text


def test_failed_login_acquisition_is_counted(hub_factory, realm, user):
    (user.home / f"{user.name}.keytab").unlink()
    hub = hub_factory({"JupyterHub.authenticate_prometheus": False})
    response = hub.login(user.name, user.password)
    assert response.status_code == 403
    text = response.session.get(f"{hub.url}/hub/metrics", timeout=10).text
    assert sample(text, "pamkrb_ticket_acquisitions_total", result="failure", trigger="login") == 1
