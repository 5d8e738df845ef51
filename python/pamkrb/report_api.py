"""``POST /hub/api/pamkrb/events``: a server reports its own renewal or
failure (:mod:`pamkrb.server_reports`), and the hub records it as a ticket
event whose emitter is that server, where the admin page reads it.

Who may report: the same credential as for the ticket API, and checked by the
same code (:meth:`TicketAPIHandler._owner`): only the token JupyterHub issued
to one of the user's own running servers. A report can only be about that
user: the user is the token's, the principal must be the one the hub
resolves for them, and the server named must be one of theirs that runs.
Bad input is a 400 naming the field; bodies over
:data:`~pamkrb.server_reports.MAX_REPORT_BYTES` a 413; more than
:data:`~pamkrb.server_reports.REPORTS_PER_MINUTE` a minute per user a 429.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import audit
from .hub_tickets import TICKET_ERRORS
from .server_reports import MAX_REPORT_BYTES, REPORTS_PER_MINUTE, ReportError, parse_report
from .ticket_api import TicketAPIHandler


class ServerReportHandler(TicketAPIHandler):
    """Records one report of the calling server's own renewal."""

    SUPPORTED_METHODS = ("POST",)  # the ticket API's GET is not served here

    async def post(self) -> None:
        auth = self.authenticator
        user = self._owner()
        if len(self.request.body) > MAX_REPORT_BYTES:
            self._refuse(413, f"a report is at most {MAX_REPORT_BYTES} bytes")
        self._rate_limit(self._limit("server_reports", REPORTS_PER_MINUTE), user.name, "reports")
        try:
            report = parse_report(self.request.body)
        except ReportError as e:
            self._refuse(400, str(e))
        if report["server"] not in running_prefixes(user):
            self._refuse(400, "server: not the URL prefix of one of this user's running servers")
        try:
            paths = await asyncio.to_thread(auth.tickets.resolve_user, user.name)
        except TICKET_ERRORS:
            self._refuse(409, "the hub cannot resolve this user's principal; see the hub log")
        if report["principal"] != paths.principal:
            self._refuse(400, f"principal: not the principal of {user.name[:32]}")
        auth.tickets.audit.emit(
            audit.TICKET,
            emitter=audit.server_emitter(report["host"], report["server"]),
            user=user.name,
            client_address=self.request.remote_ip,
            **{key: report[key] for key in report if key not in ("host", "server")},
        )
        self.set_status(204)
        self.finish()


def running_prefixes(user: Any) -> set[str]:
    """The URL prefixes (JUPYTERHUB_SERVICE_PREFIX) of the user's running servers."""
    return {
        spawner.server.base_url
        for spawner in user.spawners.values()
        if spawner.active and spawner.pending != "stop" and spawner.server is not None
    }
