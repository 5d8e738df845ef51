"""Processes and ports: the deadline every wait goes through, loopback ports,
subprocess runs that raise with their output, and the stop-by-PID lifecycle
shared by the KDC, hub and nginx (:class:`_Service`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SandboxError(RuntimeError):
    """A sandbox component failed to start, stop or answer in time."""


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises :class:`SandboxError` naming ``message`` when ``timeout`` seconds
    pass first. Tests use this instead of fixed sleeps.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SandboxError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a loopback port that is currently free for both TCP and UDP."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise SandboxError("no free loopback port found")


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _run(
    args: list[str], *, env: Mapping[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, raising SandboxError with its output when it fails."""
    result = subprocess.run(args, env=env, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def _terminate(proc: subprocess.Popen[Any], *, timeout: float = 15) -> None:
    """SIGTERM a process, wait for it, SIGKILL its process group as a fallback."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _kill_pidfile(path: Path) -> None:
    """SIGKILL the process named in a PID file, if it still runs."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class _Service:
    """A server process this module started (``self._proc``) and its private
    directory (``self.dir``): stopped by PID, removed on close, usable as a
    context manager. Subclasses define ``start``."""

    _proc: subprocess.Popen[Any] | None
    dir: Path

    def stop(self) -> None:
        """Stop the process (SIGTERM by PID, then wait). Safe to call twice."""
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None

    def close(self) -> None:
        """Stop the process and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
