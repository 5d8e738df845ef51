"""pamkrb's audit trail as tests read it back: the events a hub or a server
wrote to a file that ``c.EventLogger.handlers`` routes them to, as an admin
would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sandbox

PAMKRB_SCHEMAS = "https://schema.pamkrb.dev/"


def logging_to(path: Path) -> str:
    """Config lines (for JupyterHub's config or jupyter_server's) that route
    every event to ``path``, one JSON object a line."""
    return f"import logging\nc.EventLogger.handlers = [logging.FileHandler({str(path)!r})]\n"


def events_in(path: Path) -> list[dict[str, Any]]:
    """Every event in the file so far (none before the first is written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pamkrb_events(path: Path) -> list[dict[str, Any]]:
    """pamkrb's events in the file, not JupyterHub's or jupyter_server's own."""
    return [e for e in events_in(path) if str(e.get("__schema__", "")).startswith(PAMKRB_SCHEMAS)]


def find_event(
    path: Path, where: Callable[[dict[str, Any]], bool] | None = None, **wanted: Any
) -> dict[str, Any] | None:
    """The first of pamkrb's events with every field in ``wanted`` (and for
    which ``where`` holds, if given); None if none yet."""
    for event in pamkrb_events(path):
        if all(event.get(k) == v for k, v in wanted.items()) and (where is None or where(event)):
            return event
    return None


def wait_for_event(
    path: Path,
    message: str,
    timeout: float = 60,
    where: Callable[[dict[str, Any]], bool] | None = None,
    **wanted: Any,
) -> dict[str, Any]:
    """``find_event``, polled until it finds one or ``timeout`` runs out
    (then an error naming ``message``)."""
    return sandbox.wait_until(lambda: find_event(path, where, **wanted), timeout=timeout, interval=0.2, message=message)
