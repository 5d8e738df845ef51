"""The ``pamkrb`` Jupyter server extension: keeps the user's Kerberos ticket
fresh while their server runs, and reports its state.

Enabled on install by ``etc/jupyter/jupyter_server_config.d/pamkrb.json``. The
hub's PAMKerberosAuthenticator passes principal, keytab, cache, margin and
interval in the server's environment (``PAMKRB_*``, see
``pamkrb.lifecycle.TicketSettings``), so there is no per-user setup; the
traits below override them. Without them the extension logs once and stays
out of the way.

Triggers (all cheap when the ticket is fresh — a stat of the cache):
- a notebook is opened: Notebook 7's page and the contents GET of a notebook,
  which is all JupyterLab sends;
- a file is saved (contents PUT, both front ends);
- a kernel starts (before it is launched, so it inherits a valid ticket);
- a timer that follows the ticket (due when it enters the margin, never later
  than refresh_interval), so an idle server's ticket never lapses.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
from typing import Any

from jupyter_events import EventLogger
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from tornado import httputil, web
from tornado.ioloop import IOLoop
from traitlets import Float, Integer, Unicode

from . import _native, audit, lifecycle, server_reports
from .exceptions import PamkrbError, TicketDeliveryError
from .lifecycle import TicketSettings
from .refresher import TicketRefresher, reload_url
from .status_handlers import SignInHandler, StatusAPIHandler, StatusPageHandler

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
KERNEL_EVENTS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


class KerberosTicketExtension(ExtensionApp):
    """Keeps the user's Kerberos ticket fresh while the server runs.

    Every trait defaults to what the hub passed in the environment
    (pamkrb.lifecycle.TicketSettings.from_env); setting one here overrides it.
    """

    name = "pamkrb"
    load_other_extensions = True

    principal = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""Kerberos principal to renew. Default: ${lifecycle.ENV_PRINCIPAL}, set by
        the hub's PAMKerberosAuthenticator.""",
    )
    keytab = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""Keytab to renew from. Default: ${lifecycle.ENV_KEYTAB}.""",
    )
    ccache = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""FILE credential cache to keep fresh. Default: ${lifecycle.ENV_CCACHE},
        else the path in ${lifecycle.ENV_KRB5CCNAME} when it is a FILE: cache.""",
    )
    refresh_margin = Integer(
        None,
        allow_none=True,
        config=True,
        min=0,
        help=f"""Seconds: a ticket with this much or less left is renewed.
        Default: ${lifecycle.ENV_REFRESH_MARGIN}, else {lifecycle.DEFAULT_REFRESH_MARGIN}.""",
    )
    ticket_lifetime = Integer(
        None,
        allow_none=True,
        config=True,
        help=f"""Requested lifetime of renewed tickets, in seconds.
        Default: ${lifecycle.ENV_TICKET_LIFETIME}, else krb5.conf and the KDC decide.""",
    )
    kdc_timeout = Float(
        None,
        allow_none=True,
        config=True,
        min=1.0,
        help=f"""Seconds a trigger waits for the KDC before recording a failure
        (the attempt finishes in the background and installs nothing).
        Default: ${lifecycle.ENV_KDC_TIMEOUT}, else {lifecycle.DEFAULT_KDC_TIMEOUT:g}.""",
    )
    refresh_interval = Integer(
        None,
        allow_none=True,
        config=True,
        min=0,
        help=f"""The longest, in seconds, between two looks at the ticket while
        nothing else happens. The timer follows the ticket: the next look is
        due when it enters refresh_margin (with a little jitter), and never
        later than this, so an idle server's ticket never lapses whatever the
        settings. 0: only the ticket's expiry schedules looks.
        Default: ${lifecycle.ENV_REFRESH_INTERVAL}, else {lifecycle.DEFAULT_REFRESH_INTERVAL}.""",
    )

    refresher: TicketRefresher | None = None
    disabled_reason: str | None = None

    @property
    def _server(self) -> ServerApp:
        """The server this extension runs in (set before the handlers are)."""
        assert self.serverapp is not None
        return self.serverapp

    @property
    def _events(self) -> EventLogger:
        events = self._server.event_logger
        assert events is not None
        return events

    def initialize_settings(self) -> None:
        self._tasks: set[asyncio.Future[None]] = set()
        self._timer: object | None = None
        self._ticket_removed = False
        overrides = {
            name: getattr(self, name)
            for name in (
                "principal",
                "keytab",
                "ccache",
                "refresh_margin",
                "refresh_interval",
                "kdc_timeout",
                "ticket_lifetime",
            )
        }
        settings, missing = TicketSettings.from_env(os.environ, **overrides)
        if settings is None:
            self.disabled_reason = f"no Kerberos configuration ({', '.join(missing)} not set); ticket renewal is off"
            self.log.info("pamkrb: %s", self.disabled_reason)
        else:
            # The server's events go to jupyter_server's EventLogger.
            events = audit.Audit(
                lambda: self._server.event_logger,
                audit.emitter("server", os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")),
                # The hub's admin page sees this server's own renewals only if told.
                forward=None if settings.broker else server_reports.send,
            )
            self.refresher = TicketRefresher(settings, logger=self.log, audit=events)
            for problem in settings.problems():
                self.log.warning("pamkrb: %s", problem)
            if settings.broker and not settings.retain_after_stop:
                # A SIGINT (JupyterHub's LocalProcessSpawner stops servers
                # with it) ends a server whose stdin is not a terminal by
                # KeyboardInterrupt, without stop_extension: the exit still runs.
                atexit.register(self._remove_ticket_at_exit)
        self.settings["pamkrb_status"] = self.status
        by_reload = settings is not None and settings.sign_in_by_reload
        self.settings["pamkrb_reload_url"] = reload_url() if by_reload else None
        self.settings["pamkrb_sign_in"] = self.sign_in

    async def status(self) -> dict[str, Any]:
        if self.refresher is None:
            return lifecycle.disabled_status(self.disabled_reason or "disabled")
        return await self.refresher.status()

    async def sign_in(self, password: str) -> tuple[int, str]:
        """Relay a sign-in to the hub and install the ticket it sends back;
        (HTTP status, message) for the dialog."""
        if self.refresher is None:
            return 409, self.disabled_reason or "Kerberos is not configured for this server"
        try:
            await self.refresher.sign_in(password)
        except TicketDeliveryError as e:
            status = e.status if e.status in (400, 403, 429) else 502
            self.log.warning("pamkrb: sign-in failed: %s", e)
            return status, str(e)
        except PamkrbError as e:
            self.log.warning("pamkrb: sign-in: the ticket could not be installed: %s", e)
            return 502, str(e)
        return 200, "signed in"

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                (r"/pamkrb/api/status", StatusAPIHandler),
                (r"/pamkrb/api/signin", SignInHandler),
                (r"/pamkrb/status", StatusPageHandler),
            ]
        )
        if self.refresher is None:
            return
        self._watch_contents()
        self._watch_kernels()
        self._watch_pages()
        self._schedule_check(0)

    # -- triggers --------------------------------------------------------------

    def _fire(self, reason: str) -> None:
        """Start a trigger without waiting for it: saves and page loads never
        wait on a renewal."""
        assert self.refresher is not None
        task = asyncio.ensure_future(self._check(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, reason: str) -> None:
        assert self.refresher is not None
        await self.refresher.trigger(reason)
        # Every look reschedules the timer from the ticket it saw.
        self._schedule_check(self.refresher.next_check_delay())

    def _watch_contents(self) -> None:
        # jupyter_events calls listeners with these keyword names while the
        # save is still in progress: a mismatch would fail the save itself.
        async def on_contents(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
            action, path = data.get("action"), data.get("path", "")
            if action == "save":
                await self._check("save")
            elif action == "get" and path.endswith(".ipynb"):
                await self._check("open")

        self._events.add_listener(schema_id=CONTENTS_EVENTS, listener=on_contents)

    def _watch_kernels(self) -> None:
        # The kernel-action event fires after the kernel process exists, too
        # late for it to inherit a renewed ticket, so start_kernel itself is
        # wrapped, here and only here. tests/test_serverextension.py fails if
        # jupyter_server renames it.
        manager = self._server.kernel_manager
        original = getattr(manager, "start_kernel", None)
        if original is None or not asyncio.iscoroutinefunction(original):
            self.log.error(
                "pamkrb: %s has no async start_kernel; kernels start without a ticket check",
                type(manager).__name__,
            )
            return
        check = self._check

        async def start_kernel(*args: Any, **kwargs: Any) -> Any:
            await check("kernel")
            return await original(*args, **kwargs)

        setattr(start_kernel, "__wrapped__", original)  # noqa: B010 - marks the wrapper for tests
        setattr(start_kernel, "__pamkrb__", True)  # noqa: B010
        setattr(manager, "start_kernel", start_kernel)  # noqa: B010 - replaces a method on one instance

        async def on_kernel(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
            if data.get("action") == "restart":
                await check("kernel")

        self._events.add_listener(schema_id=KERNEL_EVENTS, listener=on_kernel)

    def _watch_pages(self) -> None:
        # Notebook 7 requests its page before the contents; JupyterLab never
        # does. An output transform sees every response without replacing any
        # handler (a public Tornado hook). It fires on the first chunk of a
        # 200 answer, which the page handler sends only after it has
        # authenticated the request: anonymous requests (redirected to the
        # login, or 403) never reach the KDC.
        base = self._server.base_url
        pattern = re.compile("^" + re.escape(base) + r"(notebooks|lab/tree|doc/tree)/.+\.ipynb$")
        fire = self._fire

        class NotebookPageTrigger(web.OutputTransform):
            def __init__(self, request: httputil.HTTPServerRequest) -> None:
                super().__init__(request)
                self._is_page = request.method == "GET" and bool(pattern.match(request.path))

            def transform_first_chunk(
                self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
            ) -> tuple[int, httputil.HTTPHeaders, bytes]:
                if self._is_page and status_code == 200:
                    fire("open")
                return status_code, headers, chunk

        self._server.web_app.add_transform(NotebookPageTrigger)

    def _schedule_check(self, delay: float) -> None:
        """(Re)arm the one timer: the ticket's own schedule, so an idle
        server's ticket never lapses, whatever refresh_interval says."""
        loop = IOLoop.current()
        if self._timer is not None:
            loop.remove_timeout(self._timer)
        self._timer = loop.call_later(delay, self._fire, "timer" if delay else "start")

    async def stop_extension(self) -> None:
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
            self._timer = None
        if self.refresher is None:
            return
        settings = self.refresher.settings
        # With the broker the server may be on another host (a batch job on
        # a node whose /tmp other jobs share): the hub removes only its own
        # copy, so the server removes the one it installed, as the user.
        # Without the broker it is the hub's file, and the hub's to remove.
        if not settings.broker or settings.retain_after_stop or self._ticket_removed:
            return
        try:
            removed = await self.refresher.keeper.destroy(lambda target: {target.ccache}, "server stopped")
        except PamkrbError as e:
            self.log.warning("pamkrb: could not remove the ticket at %s on stopping: %s", settings.ccache, e)
            return
        self._ticket_removed = True
        self.log.info("pamkrb: server stopping; removed its ticket: %s", ", ".join(removed) or "none was left")

    def _remove_ticket_at_exit(self) -> None:
        """At interpreter exit, when stop_extension did not run: the event
        loop is gone, so the removal runs here, once, as the user."""
        if self._ticket_removed or self.refresher is None:
            return
        self._ticket_removed = True
        path = self.refresher.keeper.in_use or self.refresher.settings.ccache
        try:
            removed = _native.destroy_cache(path, uid=os.geteuid())
        except PamkrbError as e:
            self.log.warning("pamkrb: could not remove the ticket at %s on exit: %s", path, e)
            return
        self.log.info("pamkrb: server exiting; removed its ticket: %s", path if removed else "none was left")
