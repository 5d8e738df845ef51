"""``pamkrb/api/status`` (JSON) and ``pamkrb/status`` (a page for people)."""

from __future__ import annotations

import html
import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from .lifecycle import TicketState
from .sign_in_body import sign_in_password

AUTH_RESOURCE = "pamkrb"

_LABELS = {
    TicketState.VALID: ("Valid", "#1a7f37"),
    TicketState.EXPIRING: ("Expiring soon", "#9a6700"),
    TicketState.EXPIRED: ("Expired", "#cf222e"),
    TicketState.MISSING: ("No ticket", "#cf222e"),
    TicketState.ERROR: ("Renewal failed", "#cf222e"),
    TicketState.DISABLED: ("Not configured", "#57606a"),
    TicketState.LOGIN_REQUIRED: ("Expired — sign in again", "#cf222e"),
}


class StatusAPIHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(await self.settings["pamkrb_status"]()))


class SignInHandler(APIHandler):
    """``POST pamkrb/api/signin`` ``{"password": ...}``: sign in to Kerberos
    again through the hub, from the status bar's dialog, and install the new
    ticket here. jupyter_server checks the login and the XSRF token; the
    password goes to the hub with this server's token and is never logged."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def post(self) -> None:
        status, message = await self.settings["pamkrb_sign_in"](sign_in_password(self.request.body))
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"message": message, "status": await self.settings["pamkrb_status"]()}))


class StatusPageHandler(JupyterHandler):
    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        status = await self.settings["pamkrb_status"]()
        label, colour = _LABELS[TicketState(status["state"])]
        reload = self.settings.get("pamkrb_reload_url")
        if status["state"] == TicketState.LOGIN_REQUIRED.value and reload:
            # A single sign-on ticket: reloading the hub's login page brings
            # a fresh one, no password needed.
            label = "Expired — sign in again by reloading"
        rows = [
            ("Principal", status["principal"]),
            ("Credential cache", status["ccache"]),
            ("Valid until", _local_time_script(status["expires_at"])),
            ("Seconds left", status["seconds_left"]),
            ("Renewable until", _local_time_script(status["renew_until"])),
            ("Renewed by", {"hub": "the hub (ticket broker)", "server": "this server"}.get(status["renewed_by"])),
            ("Source", status["source"]),
            ("Sign-in needed by", _local_time_script(status["login_required_at"])),
            ("Last renewal", _local_time_script(status["last_refresh"])),
            ("Renewals by this server", status["renewals"]),
            ("Last error", status["last_error"]),
        ]
        if reload:
            link = html.escape(reload, quote=True)
            anchor = f'<a id="pamkrb-reload" href="{link}">reload (single sign-on)</a>'
            rows.insert(0, ("Sign in again", _Markup(anchor)))
        body = "\n".join(f"<tr><th>{html.escape(name)}</th><td>{_cell(value)}</td></tr>" for name, value in rows)
        self.set_header("Cache-Control", "no-store")
        self.finish(
            _PAGE.format(
                state=html.escape(status["state"]),
                label=html.escape(label),
                colour=colour,
                rows=body,
            )
        )


class _Markup(str):
    """Already-escaped HTML."""


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, _Markup):
        return value
    return html.escape(str(value))


def _local_time_script(iso: str | None) -> _Markup | None:
    if iso is None:
        return None
    safe = html.escape(iso)
    return _Markup(f'<time datetime="{safe}">{safe}</time>')


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<title>Kerberos ticket status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
.badge {{ display: inline-block; padding: .3rem .8rem; border-radius: 1rem;
  color: white; background: {colour}; font-weight: 600; }}
table {{ border-collapse: collapse; margin-top: 1.5rem; }}
th, td {{ text-align: left; padding: .35rem 1rem .35rem 0; vertical-align: top; }}
th {{ color: #57606a; font-weight: 500; }}
</style></head>
<body data-pamkrb-state="{state}">
<h1>Kerberos ticket</h1>
<p><span class="badge" id="pamkrb-state">{label}</span></p>
<table>
{rows}
</table>
<script>
for (const el of document.querySelectorAll("time[datetime]")) {{
  el.textContent = new Date(el.getAttribute("datetime")).toLocaleString();
}}
</script>
</body></html>
"""
