"""The prebuilt wheel on other distributions than the one that built it.

Each release is installed with debootstrap from Debian's repositories into a
directory and entered with ``unshare --root`` (``sandbox.debian``). It gets
Python, its venv module, libkrb5 and ``login`` (the default PAM service) — no
compiler, no ``-dev`` package — and ``pip install``s the wheel from
``make wheel`` plus JupyterHub from PyPI into a venv. The hub runs inside, with
that release's libpam, PAM stacks and ``/etc/shadow``; the KDC runs on this
machine's loopback, and so does configurable-http-proxy (started by us, as
JupyterHub does itself; bullseye's Node 12 is too old for today's proxy).

- Debian 11 (bullseye): glibc 2.31, Python 3.9, MIT krb5 1.18 — the oldest
  Python the wheel is for, with Debian's own pip 20.3.
- Debian 13 (trixie): glibc 2.41, Python 3.13, MIT krb5 1.21 — a newer
  Python than the build machine's: one abi3 file for both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import sandbox
from conftest import ARTIFACTS, require_root
from sandbox.debian import DebianRoot


@dataclasses.dataclass(frozen=True)
class Distribution:
    name: str
    suite: str
    python: str
    glibc: str
    krb5: str  # version prefix of libkrb5-3


DISTRIBUTIONS = (
    Distribution("debian-11", "bullseye", python="3.9", glibc="2.31", krb5="1.18"),
    Distribution("debian-13", "trixie", python="3.13", glibc="2.41", krb5="1.21"),
)
# What a hub host has anyway; nothing to build with.
PACKAGES = ("python3", "python3-venv", "libkrb5-3", "libgssapi-krb5-2", "login")
VENV = "/opt/jupyterhub"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
_REPORTED = {"pip", "jupyterhub", "jupyter_server", "jupyter-server", "jupyterhub-pamkrb", "tornado"}

pytestmark = pytest.mark.timeout(900)

_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, pamkrb
names = [m.name for m in pkgutil.walk_packages(pamkrb.__path__, "pamkrb.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def _pip_settings(root: DebianRoot) -> dict[str, str]:
    """This machine's way to PyPI (its pip.conf and CA bundle), for pip inside the root."""
    settings = {}
    if Path("/etc/pip.conf").exists():
        shutil.copyfile("/etc/pip.conf", root.host_path("/etc/pip.conf"))
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copyfile(bundle, root.host_path("/etc/ssl/certs/pamkrb-host-ca.crt"))
        settings["PIP_CERT"] = "/etc/ssl/certs/pamkrb-host-ca.crt"
    return settings


@pytest.fixture(scope="module", params=DISTRIBUTIONS, ids=lambda distribution: distribution.name)
def distribution(request: pytest.FixtureRequest) -> Distribution:
    return request.param


@pytest.fixture(scope="module")
def root(wheel: Path, distribution: Distribution) -> Iterator[DebianRoot]:
    require_root()
    with DebianRoot(distribution.suite, PACKAGES) as root:
        inside = f"/tmp/{wheel.name}"
        shutil.copyfile(wheel, root.host_path(inside))
        root.run(["python3", "-m", "venv", VENV])
        # The release's own pip (20.3 on Debian 11), not a newer one: what an
        # admin has. Only wheels, so anything that needed compiling fails here.
        root.run([f"{VENV}/bin/pip", "install", "--only-binary=:all:", inside], env=_pip_settings(root))
        yield root


def test_the_wheel_installs_with_no_build_tools(root: DebianRoot, distribution: Distribution) -> None:
    python = root.run(
        [f"{VENV}/bin/python", "-c", "import platform, sys; print(sys.version_info[:2], platform.libc_ver())"]
    )
    major, minor = distribution.python.split(".")
    assert python.stdout.strip() == f"({major}, {minor}) ('glibc', '{distribution.glibc}')"
    krb5 = root.run(["dpkg-query", "-W", "-f=${Version}", "libkrb5-3"]).stdout
    assert krb5.startswith(distribution.krb5), krb5

    for tool in ("cc", "gcc", "clang", "ld", "rustc", "cargo", "pkg-config"):
        assert root.run(["which", tool], check=False).returncode != 0, f"{tool} is in the root"
    installed = root.run(["dpkg-query", "-W", "-f=${Package}\n"]).stdout.split()
    assert [package for package in installed if package.endswith("-dev")] == []

    # What was tested, for the README's table and the closing notes.
    versions = root.run(
        [f"{VENV}/bin/python", "-m", "pip", "list", "--format=freeze"],
        env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    ).stdout
    picked = [line for line in versions.splitlines() if line.split("==")[0].lower() in _REPORTED]
    log_dir = ARTIFACTS / f"wheel-{distribution.name}"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "versions.txt").write_text(f"{python.stdout.strip()} libkrb5-3 {krb5}\n" + "\n".join(picked) + "\n")

    native = root.run([f"{VENV}/bin/python", "-c", "import pamkrb._native as n; print(n.__file__)"])
    assert native.stdout.strip().endswith("site-packages/pamkrb/_native.abi3.so")
    # Every module imports on this Python, not only those a login touches.
    every_module = root.run([f"{VENV}/bin/python", "-c", _IMPORT_EVERY_MODULE])
    assert int(every_module.stdout) >= 15, every_module

    extensions = root.run([f"{VENV}/bin/jupyter", "server", "extension", "list"], env={"NO_COLOR": "1"})
    listing = extensions.stdout + extensions.stderr
    plain = _plain(listing)
    assert any(line.split()[:2] == ["pamkrb", "enabled"] for line in plain.splitlines()), listing
    assert re.search(r"^\s*pamkrb \S+ OK$", plain, re.MULTILINE), listing
    labextension = root.host_path(f"{VENV}/share/jupyter/labextensions/pamkrb/package.json")
    assert json.loads(labextension.read_text())["name"]


def _plain(text: str) -> str:
    """``text`` without ANSI colour codes (jupyter colours "enabled" even when piped)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _start_proxy(port: int, api_port: int, hub_port: int, token: str, log: Path) -> subprocess.Popen:
    chp_dir = sandbox.npm_global_bin()
    chp = shutil.which("configurable-http-proxy", path=str(chp_dir) if chp_dir else None)
    assert chp, "configurable-http-proxy is not installed (tools/setup.sh installs it)"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [
                chp,
                "--ip=127.0.0.1",
                f"--port={port}",
                "--api-ip=127.0.0.1",
                f"--api-port={api_port}",
                f"--default-target=http://127.0.0.1:{hub_port}",
                f"--error-target=http://127.0.0.1:{hub_port}/hub/error",
            ],
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": token},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sandbox.wait_until(lambda: sandbox.port_accepts(api_port), timeout=30, message="configurable-http-proxy")
    return proc


def test_a_user_logs_in_and_gets_a_cache_of_their_own(
    root: DebianRoot, distribution: Distribution, realm: sandbox.Realm
) -> None:
    log_dir = ARTIFACTS / f"wheel-{distribution.name}"
    log_dir.mkdir(parents=True, exist_ok=True)
    name, password = "bob" + secrets.token_hex(2), "pw-" + secrets.token_urlsafe(12)
    user = root.add_user(name, password)
    principal = realm.add_principal(name)
    keytab = f"/home/{name}/{name}.keytab"
    realm.write_keytab(principal, root.host_path(keytab), user.pw_uid, user.pw_gid)
    shutil.copyfile(realm.krb5_conf, root.host_path("/etc/krb5.conf"))

    port, api_port, hub_port = sandbox.free_port(), sandbox.free_port(), sandbox.free_port()
    token = secrets.token_hex(32)
    hub_dir = root.host_path("/srv/hub")
    hub_dir.mkdir(mode=0o700, parents=True)
    (hub_dir / "jupyterhub_config.py").write_text(
        f"""\
c = get_config()  # noqa
c.JupyterHub.authenticator_class = "pamkrb"
c.Authenticator.allowed_users = {{{name!r}}}
c.PAMKerberosAuthenticator.keytab_template = "/home/{{username}}/{{username}}.keytab"
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.auth_token = {token!r}
c.Spawner.cmd = ["{VENV}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/pamkrb/status"
"""
    )
    proxy = _start_proxy(port, api_port, hub_port, token, log_dir / "proxy.log")
    hub_log = log_dir / "hub.log"
    with hub_log.open("wb") as output:
        hub = root.popen(
            [f"{VENV}/bin/jupyterhub", "-f", "/srv/hub/jupyterhub_config.py"],
            cwd="/srv/hub",
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.trust_env = False  # no proxy or CA settings from the environment on loopback

        def healthy() -> bool:
            if hub.poll() is not None:
                raise sandbox.SandboxError(f"the hub exited with {hub.returncode}:\n{hub_log.read_text()[-3000:]}")
            try:
                return session.get(f"{base}/hub/health", timeout=5).status_code == 200
            except OSError:
                return False

        sandbox.wait_until(healthy, timeout=60, interval=0.2, message=f"the hub in {distribution.name}")

        session.get(f"{base}/hub/login", timeout=10).raise_for_status()
        response = session.post(
            f"{base}/hub/login",
            data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
            timeout=60,
        )
        assert response.status_code == 200, hub_log.read_text()[-3000:]
        assert "/hub/login" not in response.url, hub_log.read_text()[-3000:]

        cache = root.host_path(f"/tmp/krb5cc_{user.pw_uid}")
        info = os.lstat(cache)
        assert stat.S_ISREG(info.st_mode)
        assert (info.st_uid, info.st_gid) == (user.pw_uid, user.pw_gid)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert realm.klist(cache).principal == principal

        # The operator's diagnosis finds nothing wrong there either (it also
        # gets a test ticket from the keytab into a private cache).
        doctor = root.run(
            [f"{VENV}/bin/pamkrb", "doctor", name, "--config", "/srv/hub/jupyterhub_config.py"], check=False
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr

        # The server extension runs in the user's server there too.
        server = f"{base}/user/{name}"

        def status() -> dict | None:
            page = session.get(f"{server}/pamkrb/status", timeout=10)
            if page.status_code != 200 or not page.url.startswith(server):
                return None
            return session.get(f"{server}/pamkrb/api/status", timeout=10).json()

        reported = sandbox.wait_until(
            status, timeout=90, interval=0.5, message=f"{name}'s server in {distribution.name}"
        )
        assert reported["state"] == "valid", reported
        assert reported["principal"] == principal
        assert reported["ccache"].endswith(f"/tmp/krb5cc_{user.pw_uid}"), reported
    finally:
        hub.terminate()
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
        proxy.terminate()
        proxy.wait(timeout=30)


@pytest.mark.parametrize(
    ("soname", "packages"),
    [("libkrb5.so.3", ("libkrb5-3", "krb5-libs")), ("libpam.so.0", ("libpam0g", "pam"))],
)
def test_without_a_system_library_import_names_it_and_its_package(
    root: DebianRoot, soname: str, packages: tuple[str, str]
) -> None:
    library = root.host_path(f"{LIBDIR}/{soname}")
    hidden = library.with_name(f".{soname}.hidden")
    library.rename(hidden)
    try:
        result = root.run([f"{VENV}/bin/python", "-c", "import pamkrb"], check=False)
    finally:
        hidden.rename(library)
    # 1 is an uncaught exception; a crash in the loader would be a signal (< 0).
    assert result.returncode == 1, result
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: pamkrb cannot load its native core:"), result.stderr
    assert soname in last_line
    assert "not installed on this host" in last_line
    for package in packages:
        assert package in last_line
    others = {"libkrb5.so.3", "libpam.so.0"} - {soname}
    assert not any(other in last_line.split("(loader said")[0] for other in others), last_line
