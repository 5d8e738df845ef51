"""A server's own renewals, reported to the hub, so that the admin page sees them.

A server that renews its own ticket (no ticket broker: by TGS, else from the
keytab) talks to the KDC, not to the hub. After each attempt it POSTs the
outcome to ``/hub/api/pamkrb/events`` with its ``JUPYTERHUB_API_TOKEN``:
times, principal, trigger, method, duration, KDC error code and message;
nothing secret (no ticket, no key, no password). The hub records it as a
ticket event whose emitter is that server (:mod:`pamkrb.report_api`).

This module holds both sides of the contract and no JupyterHub import: what a
server sends (:func:`report_of`, :func:`send`) and what the hub accepts
(:func:`parse_report`). Reports are best effort: one try, a short timeout, on
the audit writer's thread (never the event loop); a hub that cannot be
reached costs a log line, never a renewal.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from . import audit
from .delivery import _ssl_context

REPORT_PATH = "/pamkrb/events"
"""Below the hub's API URL: ``<hub>/hub/api/pamkrb/events``."""

MAX_REPORT_BYTES = 4096
"""The largest report body the hub reads; a report is a few hundred bytes."""

REPORTS_PER_MINUTE = 60
"""Reports per user per minute the hub records (a server looks at most every
5 s, lifecycle.MIN_CHECK_DELAY, and backs off after failures); beyond: 429."""

SEND_TIMEOUT = 5.0
"""Seconds a server waits for the hub to take a report."""

ACTIONS = ("renewed", "refused")
"""What a server reports: its own renewals and its failures. A ticket it got
from the hub (the broker) or at a sign-in is already in the hub's trail."""

METHODS = ("tgs", "keytab", "password", None)
SOURCES = ("keytab", "password")

# The fields a report may carry, each with its check. ``user`` and the
# emitter's kind are never taken from the report: the hub knows them.
_TRIGGER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")  # underscores: container host names have them
_SERVER = re.compile(r"/[A-Za-z0-9/_.~%@+-]{0,511}")
FIELDS = (
    "action",
    "principal",
    "source",
    "trigger",
    "method",
    "expires_at",
    "renew_till",
    "duration_ms",
    "kdc_error_code",
    "reason",
    "host",
    "server",
)

log = logging.getLogger(__name__)


class ReportError(ValueError):
    """A report the hub does not record; the message says which field and why."""


# -- the server's side ---------------------------------------------------------------


def report_of(
    schema_id: str, data: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> dict[str, Any] | None:
    """What the server sends for one of its events; None for events the hub
    has anyway (deliveries from the broker, sign-ins, destructions)."""
    if schema_id != audit.TICKET or data.get("action") not in ACTIONS or data.get("source") not in SOURCES:
        return None
    report = {key: data.get(key) for key in FIELDS if key not in ("host", "server")}
    reason = report.get("reason")
    if isinstance(reason, str):
        report["reason"] = reason[:500]
    report["host"] = socket.gethostname()
    report["server"] = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    return report


def report_url(environ: Mapping[str, str] = os.environ) -> str | None:
    api = environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    return api + REPORT_PATH if api else None


def send(schema_id: str, data: dict[str, Any], environ: Mapping[str, str] = os.environ) -> None:
    """Report one of the server's events to the hub (Audit's ``forward``).
    Blocks for at most SEND_TIMEOUT; never raises for the hub's answer."""
    report = report_of(schema_id, data, environ)
    url = report_url(environ)
    token = environ.get("JUPYTERHUB_API_TOKEN", "")
    if report is None or url is None or not token:
        return
    request = urllib.request.Request(
        url,
        data=json.dumps(report).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # the hub is reached directly, as for tickets
    context = _ssl_context(environ)
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    started = time.monotonic()
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=SEND_TIMEOUT) as response:
            response.read(4096)
    except urllib.error.HTTPError as e:
        log.warning("pamkrb: the hub did not record the %s report (%s): %s", report["action"], e.code, e.reason)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        log.warning(
            "pamkrb: could not report a %s ticket to the hub at %s after %.1f s: %s",
            report["action"],
            url,
            time.monotonic() - started,
            getattr(e, "reason", e),
        )


# -- the hub's side -------------------------------------------------------------------


def parse_report(body: bytes) -> dict[str, Any]:
    """A server's report, checked field by field; raises ReportError naming
    the first field that is wrong. Returns the report's fields."""
    if len(body) > MAX_REPORT_BYTES:
        raise ReportError(f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        report = json.loads(body or b"null")
    except ValueError:
        raise ReportError("send a JSON object") from None
    if not isinstance(report, dict):
        raise ReportError("send a JSON object")
    unknown = sorted(str(key)[:32] for key in report if key not in FIELDS)
    if unknown:
        raise ReportError(f"unknown fields: {', '.join(unknown)}")
    _one_of(report, "action", ACTIONS)
    _one_of(report, "source", SOURCES)
    _one_of(report, "method", METHODS)
    _matching(report, "trigger", _TRIGGER)
    _text(report, "principal", 256)
    _matching(report, "expires_at", _TIME, optional=True)
    _matching(report, "renew_till", _TIME, optional=True)
    _matching(report, "host", _HOST)
    _matching(report, "server", _SERVER)
    _text(report, "reason", 500, optional=True)
    duration = report.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or not 0 <= duration <= 3_600_000
    ):
        raise ReportError("duration_ms: a number of milliseconds between 0 and 3600000, or null")
    code = report.get("kdc_error_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not -(2**31) <= code < 2**31):
        raise ReportError("kdc_error_code: an integer (a Kerberos error code), or null")
    if report["action"] == "renewed" and report.get("method") is None:
        raise ReportError("method: a renewal says how (tgs, keytab or password)")
    return {key: report.get(key) for key in FIELDS}


def _one_of(report: dict[str, Any], key: str, allowed: tuple[Any, ...]) -> None:
    if report.get(key) not in allowed:
        shown = ", ".join("null" if value is None else str(value) for value in allowed)
        raise ReportError(f"{key}: one of {shown}")


def _text(report: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> None:
    value = report.get(key)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ReportError(f"{key}: a string of 1 to {limit} characters" + (", or null" if optional else ""))


def _matching(report: dict[str, Any], key: str, pattern: re.Pattern[str], *, optional: bool = False) -> None:
    value = report.get(key)
    if value is None and optional:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ReportError(f"{key}: must match {pattern.pattern}" + (", or be null" if optional else ""))
