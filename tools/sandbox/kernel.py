"""Kernels on a single-user server, driven the way a front end does: started
over the REST API and run over the channels WebSocket."""

from __future__ import annotations

import datetime
import re
import secrets
import socket
import time
from typing import Any

from .process import SandboxError


def start_kernel(session: Any, server_url: str, kernel_name: str) -> str:
    """POST /api/kernels on a single-user server; the new kernel's id."""
    import urllib.parse

    path = urllib.parse.urlsplit(server_url).path.rstrip("/") + "/"
    xsrf = next(c.value for c in session.cookies if c.name == "_xsrf" and path.startswith(c.path.rstrip("/") + "/"))
    response = session.post(
        f"{server_url}/api/kernels", json={"name": kernel_name}, headers={"X-XSRFToken": xsrf}, timeout=120
    )
    if response.status_code != 201:
        raise SandboxError(f"starting kernel {kernel_name}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()["id"]


def kernel_websocket(
    session: Any,
    server_url: str,
    kernel_id: str,
    *,
    origin: str | None = None,
    sock: socket.socket | None = None,
) -> Any:
    """Connect to a kernel's channels WebSocket with the session's cookies.

    Without ``origin`` no Origin header is sent at all (as from a script);
    with it, that exact value. ``sock`` is an already connected (TLS) socket,
    for names that do not resolve.
    """
    import websocket

    ws_url = re.sub(r"^http", "ws", server_url) + f"/api/kernels/{kernel_id}/channels"
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    # The server completes the upgrade only once the kernel is ready: a
    # PySpark kernel starting its JVM on a loaded 2-core machine once took
    # over 30 s, so allow what start_kernel allows.
    options: dict[str, Any] = {"cookie": cookie, "timeout": 120, "socket": sock}
    if origin is None:
        options["suppress_origin"] = True
    else:
        options["origin"] = origin
    return websocket.create_connection(ws_url, **options)


def kernel_execute(ws: Any, code: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``code`` over a kernel WebSocket until the kernel is idle again.

    Returns {"status": ..., "result": text/plain of execute_result or None,
    "stdout": ..., "error": "ename: evalue" or None}.
    """
    import json

    import websocket

    msg_id = secrets.token_hex(16)
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "session": secrets.token_hex(8),
                    "username": "sandbox",
                    "version": "5.3",
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
                "buffers": [],
            }
        )
    )
    outcome: dict[str, Any] = {"status": None, "result": None, "stdout": "", "error": None}
    idle = False
    deadline = time.monotonic() + timeout
    while not (idle and outcome["status"] is not None):
        if time.monotonic() > deadline:
            raise SandboxError(f"no reply to {code!r} within {timeout:g} s: {outcome}")
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "execute_reply":
            outcome["status"] = content["status"]
        elif kind == "execute_result":
            outcome["result"] = content["data"].get("text/plain")
        elif kind == "stream" and content.get("name") == "stdout":
            outcome["stdout"] += content["text"]
        elif kind == "error":
            outcome["error"] = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return outcome


def run_in_server(session: Any, server_url: str, code: str) -> Any:
    """Start a python3 kernel on a server, run ``code`` (which prints one
    JSON document) and return what it printed, parsed."""
    import json

    kernel = start_kernel(session, server_url, "python3")
    ws = kernel_websocket(session, server_url, kernel)
    try:
        outcome = kernel_execute(ws, code)
    finally:
        ws.close()
    if outcome["status"] != "ok":
        raise SandboxError(f"kernel code failed: {outcome}")
    return json.loads(outcome["stdout"])
