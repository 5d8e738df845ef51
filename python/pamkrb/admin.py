"""``/hub/pamkrb/admin``: every running server's ticket at a glance, for admins.

Who may see it: holders of JupyterHub's ``admin:users`` scope (the ``admin``
role has it); everyone else gets 403. ``/hub/pamkrb/admin/data`` is the same
as JSON, which the page polls to refresh itself without a reload. The page
shows names, states, times and error messages, never a ticket's bytes or a
keytab's contents: the hub looks at each cache through the native core's
secure read (on a thread of its own per user, with a deadline) and keeps only
its times and principal.

The timeline (an SVG drawn here, no JavaScript library) counts renewals and
failures and their mean KDC latency over the last hours, from the events the
hub emitted (:mod:`pamkrb.audit`) and those the users' servers reported to it
(:mod:`pamkrb.report_api`): a server that renews its own ticket is seen too.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from typing import TYPE_CHECKING, Any

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from . import audit, lifecycle
from .hub_tickets import TICKET_ERRORS, explain
from .report_api import ServerReportHandler

if TYPE_CHECKING:
    from .authenticator import PAMKerberosAuthenticator

ADMIN_SCOPE = "admin:users"
"""The JupyterHub scope the admin page and its data ask for."""

TIMELINE_HOURS = 3
TIMELINE_BUCKETS = 36  # 5-minute buckets over 3 hours


def _authenticator(handler: BaseHandler) -> PAMKerberosAuthenticator:
    auth: PAMKerberosAuthenticator = handler.settings["authenticator"]
    return auth


async def fleet(handler: BaseHandler) -> dict[str, Any]:
    """The table's rows and the timeline: everything the page shows."""
    auth = _authenticator(handler)
    tickets = auth.tickets
    now = time.time()
    events = tickets.audit.since(now - TIMELINE_HOURS * 3600)
    # The hub's own events and those its users' servers reported
    # (pamkrb.report_api), oldest first: the last of each kind wins.
    last_error: dict[str, tuple[float, str]] = {}
    last_renewal: dict[str, tuple[float, dict[str, str]]] = {}
    for at, schema, data in events:
        if schema != audit.TICKET:
            continue
        if data["action"] == "refused":
            last_error[data["user"]] = (at, str(data.get("reason", "")))
        elif data["action"] in ("renewed", "issued"):
            last_renewal[data["user"]] = (at, data["emitter"])
            last_error.pop(data["user"], None)
    rows = []
    running = sorted(
        user.name
        for user in handler.users.values()
        if any(s.active and s.pending != "stop" for s in user.spawners.values())
    )
    # One thread per user, all at once: a cache on a hung mount costs its row, not the page.
    looks = await asyncio.gather(*(tickets.look(name) for name in running), return_exceptions=True)
    for name, look in zip(running, looks):
        error = last_error.get(name, (0.0, None))[1]
        if isinstance(look, BaseException):  # a look that timed out or failed is a row, not a page error
            rows.append({"user": name, "state": lifecycle.TicketState.ERROR.value, "last_error": str(look)[:300]})
            continue
        target, info, unreadable = look
        renewal = last_renewal.get(name)
        state = lifecycle.ticket_state(
            info,
            target.principal,
            auth.refresh_margin,
            now,
            error,
            password=target.source == lifecycle.SOURCE_PASSWORD,
        )
        rows.append(
            {
                "user": name,
                "principal": target.principal,
                "state": state.value,
                "source": target.source,
                "expires_at": lifecycle.iso_time(info.expires_at) if info else None,
                "renew_until": lifecycle.iso_time(info.renew_until) if info and info.renew_until else None,
                # Without an event (a hub restarted since), the ticket's start.
                "last_renewal": lifecycle.iso_time(renewal[0] if renewal else (info.starts_at if info else None)),
                "renewed_by": lifecycle.RENEWED_BY_HUB if auth.ticket_broker else lifecycle.RENEWED_BY_SERVER,
                # Who did the last renewal: the hub, or which server on which host.
                "last_renewal_by": renewal[1] if renewal else None,
                "last_error": (error or unreadable or None),
            }
        )
    return {"now": lifecycle.iso_time(now), "users": rows, "timeline": timeline_svg(events, now)}


def timeline_svg(events: list[tuple[float, str, dict[str, Any]]], now: float) -> str:
    """Renewals (green bars), failures (red bars) and the mean KDC latency
    (a line, right axis) per 5 minutes over the last TIMELINE_HOURS."""
    span = TIMELINE_HOURS * 3600
    width, height, left, right, top, bottom = 720, 200, 40, 50, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    step = span / TIMELINE_BUCKETS
    ok = [0] * TIMELINE_BUCKETS
    failed = [0] * TIMELINE_BUCKETS
    latency: list[list[float]] = [[] for _ in range(TIMELINE_BUCKETS)]
    for at, schema, data in events:
        if schema != audit.TICKET:
            continue
        index = int((at - (now - span)) // step)
        if not 0 <= index < TIMELINE_BUCKETS:
            continue
        if data["action"] in ("renewed", "issued"):
            ok[index] += 1
            if data.get("duration_ms") is not None:
                latency[index].append(float(data["duration_ms"]))
        elif data["action"] == "refused":
            failed[index] += 1
    peak = max([*ok, *failed, 1])
    means = [sum(values) / len(values) if values else None for values in latency]
    peak_ms = max([m for m in means if m is not None] + [1.0])
    bar = plot_w / TIMELINE_BUCKETS
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="pamkrb-timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="renewals, failures and KDC latency">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
    ]
    for i in range(TIMELINE_BUCKETS):
        x = left + i * bar
        for count, color, offset, kind in (
            (ok[i], "#2e7d32", 0.0, "renewals"),
            (failed[i], "#c62828", 0.5, "failures"),
        ):
            if count:
                h = plot_h * count / peak
                parts.append(
                    f'<rect class="{kind}" data-count="{count}" x="{x + offset * bar + 1:.1f}" '
                    f'y="{top + plot_h - h:.1f}" width="{bar / 2 - 1:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{count} {kind}</title></rect>"
                )
    points = [
        f"{left + (i + 0.5) * bar:.1f},{top + plot_h - plot_h * m / peak_ms:.1f}"
        for i, m in enumerate(means)
        if m is not None
    ]
    if points:
        parts.append(
            f'<polyline class="latency" points="{" ".join(points)}" fill="none" stroke="#1565c0" stroke-width="2"/>'
        )
    labels = (
        (left, height - 8, "start", f"-{TIMELINE_HOURS} h"),
        (left + plot_w, height - 8, "end", "now"),
        (left - 4, top + 10, "end", str(peak)),
        (left + plot_w + 4, top + 10, "start", f"{peak_ms:.0f} ms"),
    )
    for x, y, anchor, text in labels:
        parts.append(f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="11">{html.escape(text)}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" font-size="11">'
        '<tspan fill="#2e7d32">■ renewals</tspan> <tspan fill="#c62828">■ failures</tspan> '
        '<tspan fill="#1565c0">— mean KDC latency</tspan></text>'
    )
    parts.append("</svg>")
    return "".join(parts)


class AdminDataHandler(BaseHandler):  # type: ignore[misc]  # JupyterHub is untyped
    """``GET /hub/pamkrb/admin/data``: the page's content as JSON."""

    @web.authenticated
    @needs_scope(ADMIN_SCOPE)  # type: ignore[untyped-decorator]  # JupyterHub is untyped
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(await fleet(self)))


class AdminActionHandler(BaseHandler):  # type: ignore[misc]  # JupyterHub is untyped
    """``POST /hub/pamkrb/admin/users/<name>/renew``: a new ticket now (by TGS
    while renewable, else from the source), even a fresh one.
    ``POST .../destroy``: stop keeping the user's ticket and remove their
    caches (a server with a keytab gets a new one at its next check; block
    the user to keep them out). Each is audited: its ticket event's trigger
    (renew) or reason (destroy) names the admin. Cookie requests need the
    page's XSRF token, as every JupyterHub POST does."""

    @web.authenticated
    @needs_scope(ADMIN_SCOPE)  # type: ignore[untyped-decorator]  # JupyterHub is untyped
    async def post(self, name: str, action: str) -> None:
        auth = _authenticator(self)
        user = self.find_user(name)
        if user is None:
            raise web.HTTPError(404, "no such user")
        by = f"admin:{self.current_user.name}"
        result: dict[str, Any] = {"user": user.name, "action": action}
        if action == "renew":
            try:
                in_place = await auth.tickets.keeper(user.name).refresh(by, force=True)
            except TICKET_ERRORS as e:
                self.set_status(502)
                result["error"] = explain(e, user.name)[:300]
            else:
                result["expires_at"] = lifecycle.iso_time(in_place.info.expires_at)
        else:
            await auth.tickets.forget(user.name, f"destroyed by {by}", destroy=True)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


class AdminPageHandler(BaseHandler):  # type: ignore[misc]  # JupyterHub is untyped
    """``GET /hub/pamkrb/admin``: the table and the timeline."""

    @web.authenticated
    @needs_scope(ADMIN_SCOPE)  # type: ignore[untyped-decorator]  # JupyterHub is untyped
    async def get(self) -> None:
        data = await fleet(self)
        self.set_header("Cache-Control", "no-store")
        page = (
            PAGE.replace("__DATA__", json.dumps(data).replace("</", "<\\/"))
            .replace("__BASE_URL__", json.dumps(self.hub.base_url + "pamkrb/admin/"))
            .replace("__XSRF__", json.dumps(self.xsrf_token.decode()))
        )
        self.finish(page)


# The hub's routes for this page, under /hub (the authenticator's get_handlers),
# and the one where servers report their own renewals, which the page shows.
HANDLERS: list[tuple[str, Any]] = [
    ("/api/pamkrb/events", ServerReportHandler),
    ("/pamkrb/admin", AdminPageHandler),
    ("/pamkrb/admin/data", AdminDataHandler),
    ("/pamkrb/admin/users/([^/]+)/(renew|destroy)", AdminActionHandler),
]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kerberos tickets - pamkrb</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; font-size: 0.9em; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
.valid { color: #2e7d32; } .expiring { color: #ef6c00; } .login_required, .error, .expired, .missing { color: #c62828; }
#updated { color: #777; font-size: 0.85em; }
td[data-key=state], td[data-key=expires_at], td[data-key=renew_until], td[data-key=last_renewal],
td:last-child { white-space: nowrap; }
</style></head><body>
<h1>Kerberos tickets</h1>
<p>Every user with a running server. <span id="updated"></span></p>
<div id="timeline"></div>
<p><label>Filter <input id="filter" type="search" placeholder="user, principal, error..."></label>
<label>State <select id="state-filter"><option value="">any</option><option>valid</option><option>expiring</option>
<option>login_required</option><option>error</option><option>missing</option><option>expired</option></select></label>
<span id="count"></span></p>
<table id="tickets"><thead><tr>
<th data-key="user">User</th><th data-key="principal">Principal</th><th data-key="state">State</th>
<th data-key="expires_at">Expires</th><th data-key="renew_until">Renew till</th>
<th data-key="last_renewal">Last renewal</th><th data-key="renewed_by">Renewed by</th>
<th data-key="last_error">Last error</th><th>Actions</th></tr></thead><tbody></tbody></table>
<p id="message" role="status"></p>
<script>
"use strict";
let data = __DATA__;
const baseUrl = __BASE_URL__;
const dataUrl = baseUrl + "data";
const xsrf = __XSRF__;
const keys = ["user", "principal", "state", "expires_at", "renew_until", "last_renewal", "renewed_by", "last_error"];
let sortKey = "user", sortDir = 1;
function render() {
  const filter = document.getElementById("filter").value.trim().toLowerCase();
  const state = document.getElementById("state-filter").value;
  const rows = data.users.filter(r => (!state || r.state === state) &&
    (!filter || keys.some(k => String(r[k] ?? "").toLowerCase().includes(filter))));
  rows.sort((a, b) => String(a[sortKey] ?? "").localeCompare(String(b[sortKey] ?? "")) * sortDir);
  const body = document.querySelector("#tickets tbody");
  body.replaceChildren(...rows.map(r => {
    const tr = document.createElement("tr");
    tr.dataset.user = r.user;
    for (const k of keys) {
      const td = document.createElement("td");
      td.textContent = r[k] ?? "";
      const by = r.last_renewal_by;
      if (k === "renewed_by" && by && by.kind === "server") td.textContent += " (" + by.host + " " + by.name + ")";
      td.dataset.key = k;
      if (k === "state") td.className = r.state;
      tr.appendChild(td);
    }
    const actions = document.createElement("td");
    for (const [action, label] of [["renew", "Renew now"], ["destroy", "Destroy ticket"]]) {
      const button = document.createElement("button");
      button.textContent = label;
      button.dataset.action = action;
      button.addEventListener("click", () => act(r.user, action));
      actions.appendChild(button);
    }
    tr.appendChild(actions);
    return tr;
  }));
  for (const th of document.querySelectorAll("th")) {
    if (th.dataset.key === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  document.getElementById("count").textContent = rows.length + " of " + data.users.length;
  document.getElementById("timeline").innerHTML = data.timeline;  // drawn by the hub: numbers and fixed labels only
  document.getElementById("updated").textContent = "Updated " + data.now;
}
for (const th of document.querySelectorAll("th")) {
  th.addEventListener("click", () => {
    sortDir = th.dataset.key === sortKey ? -sortDir : 1;
    sortKey = th.dataset.key;
    render();
  });
}
document.getElementById("filter").addEventListener("input", render);
document.getElementById("state-filter").addEventListener("change", render);
async function act(user, action) {
  if (action === "destroy" && !confirm("Destroy the Kerberos ticket of " + user + "?")) return;
  const response = await fetch(baseUrl + "users/" + encodeURIComponent(user) + "/" + action, {
    method: "POST", credentials: "same-origin", headers: {"X-XSRFToken": xsrf},
  });
  const result = await response.json().catch(() => ({}));
  document.getElementById("message").textContent =
    user + ": " + action + (response.ok ? " done" : " failed: " + (result.error || result.message || response.status));
  await refresh();
}
async function refresh() {
  try {
    const response = await fetch(dataUrl, {credentials: "same-origin"});
    if (response.ok) { data = await response.json(); render(); }
  } catch (e) { /* the next refresh tries again */ }
}
render();
setInterval(refresh, 10000);
</script></body></html>
"""
