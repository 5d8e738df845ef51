"""nginx in front of a hub: Debian's nginx with a generated site, a self-signed
test certificate, and name resolution of test host names to loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .process import SandboxError, _run, _Service, port_accepts, wait_until


def self_signed_certificate(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """An EC certificate and key in ``directory`` valid for DNS ``names``; (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    san = ",".join(f"DNS:{name}" for name in names)
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
            "-keyout", str(key), "-out", str(cert),
        ]
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


class Nginx(_Service):
    """Debian's nginx with a generated site, in the foreground with its own prefix.

    ``site`` is text for the http{} context (what ``pamkrb nginx-config``
    prints). Logs, PID file and temp paths live in a temporary directory; the
    master runs as root with ``daemon off``, so the PID we stop is the one we
    started, and workers run as ``nobody``.
    """

    def __init__(self, site: str, *, base_dir: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-nginx-", dir=base_dir))
        # Workers (nobody) need to reach their temp directories.
        self.dir.chmod(0o755)
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "error.log"
        self.pidfile = self.dir / "nginx.pid"
        temp = "\n".join(
            f"    {kind}_temp_path {self.dir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            f"""\
# Written by tools/sandbox/nginx.py
worker_processes 1;
pid {self.pidfile};
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    access_log {self.dir / "access.log"};
{temp}
    include {self.dir / "site.conf"};
}}
"""
        )
        (self.dir / "site.conf").write_text(site)
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self, *extra: str) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-e", str(self.error_log), "-c", str(self.conf), *extra]

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the configuration; the result, whatever its status."""
        return subprocess.run(self._command("-t"), capture_output=True, text=True, check=False)

    def start(self, ports: list[int], timeout: float = 15) -> None:
        self._proc = subprocess.Popen(
            self._command("-g", "daemon off;"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(f"nginx exited with {self._proc.returncode}:\n{self.log_tail()}")
            return all(port_accepts(port) for port in ports)

        wait_until(ready, timeout=timeout, message=f"nginx on {ports}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error.log)"


@contextlib.contextmanager
def resolve_to_loopback(names: set[str]) -> Iterator[None]:
    """Make ``requests`` (urllib3) connect to 127.0.0.1 for ``names``.

    Only the TCP destination changes: the URL, Host header, SNI and
    certificate check keep the name, as with ``curl --resolve``.
    """
    from urllib3.util import connection

    original = connection.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        return original(("127.0.0.1" if host in names else host, port), *args, **kwargs)

    connection.create_connection = create_connection
    try:
        yield
    finally:
        connection.create_connection = original
