"""The audit trail: structured, schema-checked events through ``jupyter_events``.

The hub emits through JupyterHub's ``EventLogger`` (the app's ``eventlog``),
each server extension through jupyter_server's ``event_logger``; admins route
them with ``c.EventLogger.handlers`` like JupyterHub's own ``server-action``
events. The schemas ship in ``pamkrb/event-schemas/<name>/v<N>.yaml``:

- :data:`TICKET` (issued, renewed, delivered, refused, destroyed),
- :data:`PLANT` (something at the cache path was replaced or bypassed),
- :data:`SIGN_IN` (a sign-in again through the ticket API, ok or refused).

:meth:`Audit.emit` is the one way out. It never blocks its caller: the
event is recorded in memory (the admin page reads it there) and handed to
one thread that validates it and writes it to the handlers (files, syslog),
in order. No event carries a password, a key or a ticket's bytes: callers
pass names, times and error messages only.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_events import EventLogger

from . import lifecycle

SCHEMAS = Path(__file__).parent / "event-schemas"
TICKET = "https://schema.pamkrb.dev/events/ticket"
PLANT = "https://schema.pamkrb.dev/events/plant"
SIGN_IN = "https://schema.pamkrb.dev/events/sign-in"

# Events kept in memory for the admin page's timeline.
RECENT_EVENTS = 20_000

log = logging.getLogger(__name__)


def register_schemas(events: EventLogger) -> None:
    """Register pamkrb's schemas with an EventLogger (once)."""
    for path in sorted(SCHEMAS.glob("*/v*.yaml")):
        events.register_event_schema(path)


# Times in events are the status API's: UTC ISO 8601.
when = lifecycle.iso_time


def emitter(kind: str, name: str = "") -> dict[str, str]:
    """Who emits: the hub or a server, on which host."""
    return {"kind": kind, "host": socket.gethostname(), "name": name}


def server_emitter(host: str, name: str) -> dict[str, str]:
    """A server that reported an event to the hub: its host and base URL."""
    return {"kind": "server", "host": host, "name": name}


class Audit:
    """Emits pamkrb's events for one process (the hub, or one server).

    ``events`` returns the EventLogger to emit to (None: record only), looked
    up at each emit because JupyterHub creates its EventLogger after the
    authenticator."""

    def __init__(
        self,
        events: Callable[[], EventLogger | None],
        source: dict[str, str],
        *,
        forward: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._events = events
        self.source = source
        # Also called with each event on the writer thread (a server's
        # report to the hub, pamkrb.server_reports); it may block there.
        self._forward = forward
        self._registered: EventLogger | None = None
        self._lock = threading.Lock()
        # (monotonic-free wall time, schema id, data), newest last.
        self.recent: collections.deque[tuple[float, str, dict[str, Any]]] = collections.deque(maxlen=RECENT_EVENTS)
        # A single thread keeps the events in order and off the event loop
        # (file and syslog handlers write).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pamkrb-audit")

    def emit(self, schema_id: str, *, emitter: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        """Record one event and send it to the handlers; the event's data.
        ``emitter``: another process's, for an event it reported (a
        server's renewal, recorded by the hub); else this process's."""
        data = {k: v for k, v in fields.items() if v is not None or k in ("principal",)}
        data["user"] = str(data.get("user", ""))[:64]
        data["emitter"] = emitter or self.source
        with self._lock:
            self.recent.append((time.time(), schema_id, data))
        self._writer.submit(self._write, schema_id, data)
        return data

    def _write(self, schema_id: str, data: dict[str, Any]) -> None:
        try:
            events = self._events()
            if events is not None:
                if self._registered is not events:
                    if schema_id not in events.schemas:
                        register_schemas(events)
                    self._registered = events
                events.emit(schema_id=schema_id, data=data)
        except Exception:  # an audit failure must not stop a ticket; the hub log says why
            log.exception("pamkrb: could not emit a %s event", schema_id)
        if self._forward is not None:
            try:
                self._forward(schema_id, data)
            except Exception:  # a report that failed must not stop the next event
                log.exception("pamkrb: could not forward a %s event", schema_id)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event emitted so far has been written."""
        self._writer.submit(lambda: None).result(timeout)

    def since(self, start: float) -> list[tuple[float, str, dict[str, Any]]]:
        """The events recorded since ``start`` (epoch seconds), oldest first."""
        with self._lock:
            return [event for event in self.recent if event[0] >= start]
