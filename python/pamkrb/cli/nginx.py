"""``pamkrb nginx-config``: an nginx TLS front end for the hub.

The configuration it prints terminates TLS (1.2 and 1.3, AEAD ciphers with
forward secrecy, as in Mozilla's "intermediate" profile) for one or more
names, upgrades WebSockets for kernels, and forwards the client's ``Host`` and
``X-Forwarded-*`` headers while leaving ``Origin`` untouched. Jupyter's
cross-origin WebSocket check compares Origin with Host: forwarding the real
Host makes it pass for the hub's own pages, whereas blanking Origin (a common
recipe) makes Jupyter skip the check for everyone, including hostile pages.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.parse

from .errors import UsageError

# Mozilla "intermediate" (TLS 1.2 part; TLS 1.3 suites are fixed by OpenSSL):
# ECDHE key exchange and AEAD ciphers only, so no RC4, 3DES or CBC-SHA1.
CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# [address:]port, where address is IPv4, [IPv6] or a hostname.
_LISTEN = re.compile(r"^(?:(?P<addr>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>\d{1,5})$")
_BODY_SIZE = re.compile(r"^\d+[kKmMgG]?$")
# Characters that would end or alter an nginx directive if written unquoted.
_UNSAFE_IN_PATH = re.compile(r"[\s;{}\"'$\\#]")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "nginx-config",
        help="print an nginx TLS reverse-proxy configuration for the hub",
        description=(
            "Print an nginx configuration that terminates TLS for the hub on one or more names: TLS 1.2/1.3 "
            "with modern ciphers only, HSTS, WebSocket upgrade with day-long timeouts for kernels, the client's "
            "Host and X-Forwarded-* headers forwarded and Origin left intact, so Jupyter's cross-origin "
            "WebSocket check keeps working. Write the output to a file included in nginx's http {} context, "
            "e.g. /etc/nginx/conf.d/jupyterhub.conf, then run `nginx -t`."
        ),
        epilog=(
            "example: pamkrb nginx-config --server-name hub.example.org --server-name jupyter.example.org "
            "--upstream http://127.0.0.1:8000 --cert /etc/ssl/hub.pem --key /etc/ssl/private/hub.key "
            "--redirect-http > /etc/nginx/conf.d/jupyterhub.conf"
        ),
    )
    parser.add_argument(
        "--server-name",
        action="append",
        required=True,
        metavar="NAME",
        help="host name the hub is reached by (RFC 1123); repeat for several names on one certificate",
    )
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="the hub's public address as nginx reaches it, http(s)://host:port (JupyterHub.bind_url)",
    )
    parser.add_argument("--cert", required=True, metavar="PEM", help="certificate chain covering every --server-name")
    parser.add_argument("--key", required=True, metavar="PEM", help="private key of --cert")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="[ADDR:]PORT",
        help="where nginx accepts TLS, e.g. 443 or [::]:443; repeatable (default: 443)",
    )
    parser.add_argument(
        "--redirect-http",
        nargs="?",
        const="80",
        metavar="[ADDR:]PORT",
        help="also print a server that redirects plain HTTP to HTTPS, listening on PORT (default 80 when given)",
    )
    parser.add_argument(
        "--hsts-max-age",
        type=int,
        default=63072000,
        metavar="SECONDS",
        help="Strict-Transport-Security max-age; 0 disables HSTS (default: %(default)s, two years)",
    )
    parser.add_argument(
        "--client-max-body-size",
        default="1g",
        metavar="SIZE",
        help="largest request body, bounds notebook and file uploads (default: %(default)s)",
    )
    parser.set_defaults(run=run, prog=parser.prog)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(render(args))
    return 0


def render(args: argparse.Namespace) -> str:
    """The configuration text for ``args``, after validating every value."""
    names = [check_server_name(n) for n in args.server_name]
    upstream = check_upstream(args.upstream)
    cert = _existing_file(args.cert, "--cert")
    key = _existing_file(args.key, "--key")
    listens = [check_listen(v, "--listen") for v in (args.listen or ["443"])]
    redirect = check_listen(args.redirect_http, "--redirect-http") if args.redirect_http else None
    if args.hsts_max_age < 0:
        raise UsageError("--hsts-max-age: must be 0 or more")
    if not _BODY_SIZE.match(args.client_max_body_size):
        raise UsageError(f"--client-max-body-size: {args.client_max_body_size!r}: expected e.g. 512m or 1g")

    out = [
        "# JupyterHub behind nginx, written by `pamkrb nginx-config`.",
        "# Include this file in nginx's http {} context (e.g. as /etc/nginx/conf.d/jupyterhub.conf):",
        "# the `map` block below is only valid there.",
        "",
        "# WebSocket upgrade for kernels and terminals; plain requests keep Connection: close.",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    ''      close;",
        "}",
        "",
    ]
    if redirect is not None:
        https_port = listens[0].rpartition(":")[2]
        target = "https://$host" + ("" if https_port == "443" else f":{https_port}")
        out += [
            "server {",
            f"    listen {redirect};",
            f"    server_name {' '.join(names)};",
            f"    return 301 {target}$request_uri;",
            "}",
            "",
        ]
    out += ["server {"]
    out += [f"    listen {listen} ssl;" for listen in listens]
    out += [
        f"    server_name {' '.join(names)};",
        "",
        f"    ssl_certificate     {cert};",
        f"    ssl_certificate_key {key};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        f"    ssl_ciphers {CIPHERS};",
        "    # Mozilla intermediate: every allowed cipher is strong, so let clients pick (ChaCha20 on phones).",
        "    ssl_prefer_server_ciphers off;",
        "    ssl_session_timeout 1d;",
        "    ssl_session_cache shared:pamkrb_tls:10m;",
        "    ssl_session_tickets off;",
        "",
    ]
    if args.hsts_max_age:
        out += [f'    add_header Strict-Transport-Security "max-age={args.hsts_max_age}" always;', ""]
    out += [
        f"    client_max_body_size {args.client_max_body_size};",
        "    # A Negotiate token carrying an Active Directory PAC exceeds the default 8k header buffer.",
        "    large_client_header_buffers 4 64k;",
        "",
        "    location / {",
        f"        proxy_pass {upstream};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $connection_upgrade;",
        "",
        "        # Host as the browser sent it, port included: Jupyter accepts a WebSocket only when its",
        "        # Origin matches Host. Origin itself is passed on untouched; never blank it (an empty",
        "        # Origin makes Jupyter skip the cross-origin check for every page on the web).",
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-Host $http_host;",
        "        proxy_set_header X-Forwarded-Port $server_port;",
        "        # Single sign-on (spnego): the browser's Negotiate token, passed on explicitly so that no",
        "        # proxy_set_header elsewhere clears it; the hub's WWW-Authenticate answer comes back as is.",
        "        proxy_set_header Authorization $http_authorization;",
        "",
        "        # Kernels and terminals hold a WebSocket open for hours, often silent between cells.",
        "        proxy_read_timeout 1d;",
        "        proxy_send_timeout 1d;",
        "        # Stream responses (kernel output, large downloads) instead of spooling them to disk.",
        "        proxy_buffering off;",
        "    }",
        "}",
        "",
    ]
    return "\n".join(out)


def check_server_name(name: str) -> str:
    """An RFC 1123 host name, lower-cased; raises UsageError otherwise."""
    lowered = name.lower().rstrip(".")
    labels = lowered.split(".")
    if len(lowered) > 253 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise UsageError(f"--server-name: {name!r}: not a host name (RFC 1123: letters, digits, '-' and '.')")
    return lowered


def check_upstream(url: str) -> str:
    """``http(s)://host:port`` with nothing after the port; returns it without a trailing slash."""
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    host = parsed.hostname or ""
    if (
        parsed.scheme not in ("http", "https")
        or port is None
        or not host
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.fragment
        or parsed.username is not None
        or _UNSAFE_IN_PATH.search(url)
    ):
        raise UsageError(f"--upstream: {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    return url.rstrip("/")


def check_listen(value: str, option: str) -> str:
    match = _LISTEN.match(value)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise UsageError(f"{option}: {value!r}: expected PORT or ADDRESS:PORT, e.g. 443 or [::]:443")
    return value


def _existing_file(path: str, option: str) -> str:
    full = os.path.abspath(path)
    if _UNSAFE_IN_PATH.search(full):
        raise UsageError(f"{option}: {full!r}: whitespace, quotes, ';', '{{', '}}', '#', '$' or '\\' in the path")
    if not os.path.isfile(full):
        problem = "not a regular file" if os.path.exists(full) else "no such file"
        raise UsageError(f"{option}: {full}: {problem}")
    return full
