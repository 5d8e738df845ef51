"""The ``pamkrb`` Jupyter server extension: keeps the user's Kerberos ticket
fresh while their server runs, and reports its state.

Enabled on install by ``etc/jupyter/jupyter_server_config.d/pamkrb.json``. The
hub's PAMKerberosAuthenticator passes principal, keytab, cache and margin in
the server's environment (``PAMKRB_*``), so there is no per-user setup; the
traits below override them. Without them the extension logs once and stays
out of the way.

Triggers (all cheap when the ticket is fresh — a stat of the cache):
- a notebook is opened: Notebook 7's page and the contents GET of a notebook,
  which is all JupyterLab sends;
- a file is saved (contents PUT, both front ends);
- a kernel starts (before it is launched, so it inherits a valid ticket);
- a periodic timer, so an idle open notebook's ticket never lapses.
"""

from __future__ import annotations

import asyncio
import os
import re

from jupyter_server.extension.application import ExtensionApp
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Float, Integer, Unicode, default

from . import metrics
from .refresher import RefresherConfig, TicketRefresher, disabled_status
from .status_handlers import StatusAPIHandler, StatusPageHandler

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
KERNEL_EVENTS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


def _env_int(name: str, fallback: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return fallback
    try:
        return int(value)
    except ValueError:
        return fallback


class KerberosTicketExtension(ExtensionApp):
    """Renews the user's Kerberos ticket from their keytab while the server runs."""

    name = "pamkrb"
    load_other_extensions = True

    principal = Unicode(
        config=True,
        help="""Kerberos principal to renew. Default: $PAMKRB_PRINCIPAL, set by
        the hub's PAMKerberosAuthenticator.""",
    )
    keytab = Unicode(
        config=True,
        help="""Keytab to renew from. Default: $PAMKRB_KEYTAB.""",
    )
    ccache = Unicode(
        config=True,
        help="""FILE credential cache to keep fresh. Default: $PAMKRB_CCACHE,
        else the path in $KRB5CCNAME when it is a FILE: cache.""",
    )
    refresh_margin = Integer(
        config=True,
        min=0,
        help="""Seconds: a ticket with less than this left is renewed.
        Default: $PAMKRB_REFRESH_MARGIN, else 3600.""",
    )
    ticket_lifetime = Integer(
        None,
        allow_none=True,
        config=True,
        help="""Requested lifetime of renewed tickets, in seconds.
        Default: $PAMKRB_TICKET_LIFETIME, else krb5.conf and the KDC decide.""",
    )
    kdc_timeout = Float(
        config=True,
        min=1.0,
        help="""Seconds a trigger waits for the KDC before recording a failure
        (the attempt finishes in the background). Default: $PAMKRB_KDC_TIMEOUT,
        else 15.""",
    )
    refresh_interval = Integer(
        config=True,
        min=0,
        help="""Seconds between periodic checks, so an idle notebook's ticket
        never lapses; 0 turns the timer off. Default: $PAMKRB_REFRESH_INTERVAL,
        else 300. Keep it below refresh_margin.""",
    )

    @default("principal")
    def _default_principal(self):
        return os.environ.get("PAMKRB_PRINCIPAL", "")

    @default("keytab")
    def _default_keytab(self):
        return os.environ.get("PAMKRB_KEYTAB", "")

    @default("ccache")
    def _default_ccache(self):
        explicit = os.environ.get("PAMKRB_CCACHE", "")
        if explicit:
            return explicit
        name = os.environ.get("KRB5CCNAME", "")
        if name.startswith("FILE:"):
            return name[len("FILE:") :]
        if name.startswith("/"):
            return name
        return ""

    @default("refresh_margin")
    def _default_refresh_margin(self):
        return _env_int("PAMKRB_REFRESH_MARGIN", 3600)

    @default("ticket_lifetime")
    def _default_ticket_lifetime(self):
        return _env_int("PAMKRB_TICKET_LIFETIME", None)

    @default("kdc_timeout")
    def _default_kdc_timeout(self):
        try:
            return float(os.environ.get("PAMKRB_KDC_TIMEOUT", "") or 15.0)
        except ValueError:
            return 15.0

    @default("refresh_interval")
    def _default_refresh_interval(self):
        return _env_int("PAMKRB_REFRESH_INTERVAL", 300)

    refresher: TicketRefresher | None = None
    disabled_reason: str | None = None

    def initialize_settings(self):
        self._tasks: set[asyncio.Future] = set()
        missing = [name for name in ("principal", "keytab", "ccache") if not getattr(self, name)]
        if missing:
            self.disabled_reason = (
                "no Kerberos configuration (" + ", ".join(missing) + " not set); ticket renewal is off"
            )
            self.log.info("pamkrb: %s", self.disabled_reason)
        else:
            self.refresher = TicketRefresher(
                RefresherConfig(
                    principal=self.principal,
                    keytab=self.keytab,
                    ccache=self.ccache,
                    refresh_margin=self.refresh_margin,
                    ticket_lifetime=self.ticket_lifetime,
                    kdc_timeout=self.kdc_timeout,
                ),
                logger=self.log,
                on_renewal=lambda trigger, result, seconds: metrics.record("renewal", trigger, result, seconds),
                on_check=metrics.count_check,
            )
        self.settings["pamkrb_status"] = self.status

    def status(self) -> dict:
        if self.refresher is None:
            return disabled_status(self.disabled_reason or "disabled")
        return self.refresher.status()

    def initialize_handlers(self):
        self.handlers.extend(
            [
                (r"/pamkrb/api/status", StatusAPIHandler),
                (r"/pamkrb/status", StatusPageHandler),
            ]
        )
        if self.refresher is None:
            return
        self._watch_contents()
        self._watch_kernels()
        self._watch_pages()
        self._start_timer()

    # -- triggers --------------------------------------------------------------

    def _fire(self, reason: str) -> None:
        """Start a trigger without waiting for it: saves and page loads never
        wait on a renewal."""
        assert self.refresher is not None
        task = asyncio.ensure_future(self.refresher.trigger(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch_contents(self):
        # jupyter_events calls listeners with these keyword names while the
        # save is still in progress: a mismatch would fail the save itself.
        async def on_contents(logger, schema_id, data):
            action, path = data.get("action"), data.get("path", "")
            if action == "save":
                await self.refresher.trigger("save")
            elif action == "get" and path.endswith(".ipynb"):
                await self.refresher.trigger("open")

        self.serverapp.event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=on_contents)

    def _watch_kernels(self):
        # The kernel-action event fires after the kernel process exists, too
        # late for it to inherit a renewed ticket, so start_kernel itself is
        # wrapped, here and only here. tests/test_serverextension.py fails if
        # jupyter_server renames it.
        manager = self.serverapp.kernel_manager
        original = getattr(manager, "start_kernel", None)
        if original is None or not asyncio.iscoroutinefunction(original):
            self.log.error(
                "pamkrb: %s has no async start_kernel; kernels start without a ticket check",
                type(manager).__name__,
            )
            return
        refresher = self.refresher

        async def start_kernel(*args, **kwargs):
            await refresher.trigger("kernel")
            return await original(*args, **kwargs)

        start_kernel.__wrapped__ = original
        start_kernel.__pamkrb__ = True
        manager.start_kernel = start_kernel

        async def on_kernel(logger, schema_id, data):
            if data.get("action") == "restart":
                await refresher.trigger("kernel")

        self.serverapp.event_logger.add_listener(schema_id=KERNEL_EVENTS, listener=on_kernel)

    def _watch_pages(self):
        # Notebook 7 requests its page before the contents; JupyterLab never
        # does. An output transform sees every request without replacing any
        # handler (a public Tornado hook).
        base = self.serverapp.base_url
        pattern = re.compile("^" + re.escape(base) + r"(notebooks|lab/tree|doc/tree)/.+\.ipynb$")
        fire = self._fire

        class NotebookPageTrigger(web.OutputTransform):
            def __init__(self, request):
                super().__init__(request)
                if request.method == "GET" and pattern.match(request.path):
                    fire("open")

        self.serverapp.web_app.add_transform(NotebookPageTrigger)

    def _start_timer(self):
        if self.refresh_interval <= 0:
            return
        self._timer = PeriodicCallback(lambda: self._fire("timer"), self.refresh_interval * 1000)
        self._timer.start()
        # One check right away: the server may start with a ticket that is
        # already inside the margin.
        self._fire("start")

    async def stop_extension(self):
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.stop()
