"""`pamkrb nginx-config` against Debian's nginx, a real hub and a real kernel.

nginx terminates TLS on a loopback port for two names on one self-signed
certificate; clients connect to 127.0.0.1 with each name as Host and SNI
and verify the certificate. Through both names a login, a spawn and a kernel
WebSocket round trip must work, and a WebSocket from a foreign Origin must be
refused by Jupyter's origin check (which the configuration keeps intact).
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from conftest import require_root

NAMES = ["jh-a.test", "jh-b.test"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return sandbox.self_signed_certificate(tmp_path_factory.mktemp("tls"), NAMES)


def nginx_config(*args: str) -> subprocess.CompletedProcess[str]:
    return sandbox.run_pamkrb(["nginx-config", *args])


def generate(cert: Path, key: Path, upstream: str, *extra: str) -> str:
    args = [arg for name in NAMES for arg in ("--server-name", name)]
    result = nginx_config(*args, "--upstream", upstream, "--cert", str(cert), "--key", str(key), *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def directives(config: str, name: str) -> list[str]:
    """Values of every `name ...;` directive in the text (comments ignored)."""
    found = []
    for line in config.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(f"{name} "):
            found.append(line[len(name) :].strip().rstrip(";").strip())
    return found


def tls_socket(name: str, port: int, cert: Path, context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    """TLS to 127.0.0.1:port with SNI ``name``, verified against the test certificate."""
    context = context or ssl.create_default_context(cafile=str(cert))
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        return context.wrap_socket(raw, server_hostname=name)
    except Exception:
        raw.close()
        raise


# -- the generated text -----------------------------------------------------------


def test_config_keeps_origin_and_forwards_host(certificate: tuple[Path, Path]) -> None:
    config = generate(*certificate, "http://127.0.0.1:8000", "--redirect-http")

    header = config.split("\n\n", 1)[0]
    assert "http {} context" in header, "the header says where the file belongs"
    assert "map $http_upgrade $connection_upgrade" in config
    assert not re.search(r"proxy_set_header\s+Origin", config), "Origin must reach Jupyter untouched"
    headers = dict(value.split(None, 1) for value in directives(config, "proxy_set_header"))
    assert headers == {
        "Upgrade": "$http_upgrade",
        "Connection": "$connection_upgrade",
        "Host": "$http_host",
        "X-Real-IP": "$remote_addr",
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Forwarded-Proto": "$scheme",
        "X-Forwarded-Host": "$http_host",
        "X-Forwarded-Port": "$server_port",
        "Authorization": "$http_authorization",  # single sign-on's Negotiate token
    }
    assert directives(config, "proxy_pass") == ["http://127.0.0.1:8000"]
    assert directives(config, "server_name") == [" ".join(NAMES)] * 2
    assert directives(config, "return") == ["301 https://$host$request_uri"]
    assert directives(config, "proxy_read_timeout") == ["1d"]
    assert directives(config, "proxy_buffering") == ["off"]
    assert directives(config, "add_header") == ['Strict-Transport-Security "max-age=63072000" always']


def test_config_allows_only_modern_tls(certificate: tuple[Path, Path]) -> None:
    config = generate(*certificate, "http://127.0.0.1:8000")

    assert directives(config, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert directives(config, "ssl_prefer_server_ciphers") == ["off"]
    (ciphers,) = directives(config, "ssl_ciphers")
    for cipher in ciphers.split(":"):
        assert cipher.startswith("ECDHE-"), cipher
        assert "GCM" in cipher or "CHACHA20-POLY1305" in cipher, cipher
        assert not re.search(r"RC4|3DES|DES-CBC|-SHA$|MD5|NULL|EXPORT", cipher), cipher


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--server-name", "-bad.test"], "--server-name"),
        (["--server-name", "a..b"], "--server-name"),
        (["--server-name", "hub.test;return 200"], "--server-name"),
        (["--server-name", "x" * 64 + ".test"], "--server-name"),
        (["--upstream", "127.0.0.1:8000"], "--upstream"),
        (["--upstream", "http://127.0.0.1"], "--upstream"),
        (["--upstream", "ftp://127.0.0.1:21"], "--upstream"),
        (["--upstream", "http://127.0.0.1:8000/hub/"], "--upstream"),
        (["--cert", "/nonexistent/cert.pem"], "/nonexistent/cert.pem"),
        (["--key", "/nonexistent/key.pem"], "/nonexistent/key.pem"),
        (["--listen", "443;"], "--listen"),
        (["--listen", "70000"], "--listen"),
    ],
)
def test_bad_values_are_usage_errors(certificate: tuple[Path, Path], args: list[str], expected: str) -> None:
    cert, key = certificate
    options = {"--server-name": "jh-a.test", "--upstream": "http://127.0.0.1:8000", "--cert": str(cert)}
    options["--key"] = str(key)
    options[args[0]] = args[1]

    result = nginx_config(*[item for pair in options.items() for item in pair])

    assert result.returncode == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- with nginx -------------------------------------------------------------------


@pytest.fixture
def nginx_factory() -> Iterator:
    require_root()
    started: list[sandbox.Nginx] = []

    def make(site: str) -> sandbox.Nginx:
        server = sandbox.Nginx(site)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.close()


def test_nginx_accepts_the_config(certificate: tuple[Path, Path], nginx_factory) -> None:
    port, http_port = sandbox.free_port(), sandbox.free_port()
    site = generate(
        *certificate,
        "http://127.0.0.1:8000",
        "--listen",
        f"127.0.0.1:{port}",
        "--redirect-http",
        f"127.0.0.1:{http_port}",
    )

    check = nginx_factory(site).check()

    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


def test_login_spawn_and_kernel_through_both_names(
    hub: sandbox.Hub, user: sandbox.UnixUser, certificate: tuple[Path, Path], nginx_factory
) -> None:
    import websocket

    cert, _ = certificate
    port = sandbox.free_port()
    nginx = nginx_factory(generate(*certificate, hub.url, "--listen", f"127.0.0.1:{port}"))
    nginx.start([port])

    for name in NAMES:
        base = f"https://{name}:{port}"
        session = hub.session()
        session.verify = str(cert)
        with sandbox.resolve_to_loopback(set(NAMES)):
            sandbox.login_and_spawn_at(base, user, session)
            status = session.get(f"{base}/hub/api/", timeout=10)
            server = f"{base}/user/{user.name}"
            kernel_id = sandbox.start_kernel(session, server, "python3")
        assert status.headers["Strict-Transport-Security"] == "max-age=63072000"

        ws = sandbox.kernel_websocket(
            session, f"wss://{name}:{port}/user/{user.name}", kernel_id, origin=base, sock=tls_socket(name, port, cert)
        )
        try:
            reply = sandbox.kernel_execute(ws, "1+1", timeout=60)
        finally:
            ws.close()
        assert reply["status"] == "ok", reply
        assert reply["result"] == "2"

        # A page elsewhere on the web opening the user's kernel (cross-site WebSocket hijacking).
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            sandbox.kernel_websocket(
                session,
                f"wss://{name}:{port}/user/{user.name}",
                kernel_id,
                origin="https://evil.example",
                sock=tls_socket(name, port, cert),
            )
        assert refused.value.status_code == 403


def test_weak_tls_is_refused(hub: sandbox.Hub, certificate: tuple[Path, Path], nginx_factory) -> None:
    cert, _ = certificate
    port = sandbox.free_port()
    nginx = nginx_factory(generate(*certificate, hub.url, "--listen", f"127.0.0.1:{port}"))
    nginx.start([port])
    tls_socket(NAMES[0], port, cert).close()  # a modern client gets in

    # CBC with SHA-1 MACs and no forward secrecy, as the original setup offered. This client does
    # connect to a server that allows them (openssl s_server -cipher ALL:@SECLEVEL=0).
    weak = ssl.create_default_context(cafile=str(cert))
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA:DES-CBC3-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls_socket(NAMES[0], port, cert, context=weak)
