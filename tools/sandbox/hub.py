"""JupyterHub: a hub with configurable-http-proxy on loopback, logins through
its form (directly or through a front end), and the ``pamkrb`` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .process import SandboxError, _kill_pidfile, _Service, _terminate, free_port, port_accepts, wait_until
from .realm import Realm
from .users import UnixUser

# PAMKRB_VENV as in the Makefile: a second environment for a second work tree.
VENV = Path(os.environ.get("PAMKRB_VENV", "/opt/pamkrb/venv"))
VENV_BIN = VENV / "bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def npm_global_bin() -> Path | None:
    """Directory holding globally installed npm commands (configurable-http-proxy)."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    result = subprocess.run([npm, "prefix", "-g"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip()) / "bin"


class Hub(_Service):
    """A JupyterHub with configurable-http-proxy on loopback, started as root.

    ``config`` maps ``"Class.trait"`` to a Python value written with ``repr``;
    ``extra_config`` is appended verbatim. ``import_paths`` are put first on
    the hub's ``sys.path`` (its ``PYTHONPATH`` is cleared), for config that
    names classes outside the venv, such as ``sandbox.namespace``. The hub's
    private files (database, cookie secret, PID files) live in a 0700
    temporary directory; the log goes to ``log_path``.
    """

    def __init__(
        self,
        realm: Realm | Any,
        *,
        config: Mapping[str, Any] | None = None,
        extra_config: str = "",
        authenticator_class: str = "pamkrb",
        port: int | None = None,
        log_path: Path | None = None,
        base_dir: Path | None = None,
        import_paths: Sequence[Path] = (),
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.realm = realm
        # What the hub is started through: e.g. DomainMember.enter(), so that
        # it sees the member's NSS, PAM and krb5.conf.
        self.command_prefix = tuple(command_prefix)
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-hub-", dir=base_dir))
        self.dir.chmod(0o700)
        self.port = port if port is not None else free_port()
        self.hub_port = free_port()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path if log_path is not None else self.dir / "jupyterhub.log"
        self.config_path = self.dir / "jupyterhub_config.py"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        settings: dict[str, Any] = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{self.hub_port}",
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.api_port}",
            "ConfigurableHTTPProxy.pid_file": str(self.dir / "proxy.pid"),
            "JupyterHub.pid_file": str(self.dir / "jupyterhub.pid"),
            "JupyterHub.db_url": f"sqlite:///{self.dir / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.dir / "cookie_secret"),
            "JupyterHub.authenticator_class": authenticator_class,
            "JupyterHub.log_level": "DEBUG",
            "Authenticator.allow_all": True,
            "Spawner.cmd": [str(VENV_BIN / "jupyterhub-singleuser")],
            "Spawner.default_url": "/tree",
            "Spawner.ip": "127.0.0.1",
            "Spawner.start_timeout": 60,
            "Spawner.http_timeout": 60,
            # The single-user server does not read this file: JupyterLab's
            # settings reach it as command-line arguments.
            "Spawner.args": [
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.news_url=None",
            ],
        }
        settings.update(config or {})
        lines = ["# Written by tools/sandbox/hub.py", "c = get_config()  # noqa: F821"]
        if import_paths:
            lines.append("import sys")
            lines += [f"sys.path.insert(0, {str(path)!r})" for path in reversed(import_paths)]
        lines += [f"c.{key} = {value!r}" for key, value in settings.items()]
        # env_keep is extended, not replaced, so JupyterHub's defaults survive.
        lines.append('c.Spawner.env_keep.append("KRB5_CONFIG")')
        if extra_config:
            lines.append(extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env.update(self.realm.env())
        # A fixed PATH: the user servers inherit it, and nothing under /root
        # (pyenv shims, cargo) is usable by them anyway.
        path = [str(VENV_BIN)]
        npm_bin = npm_global_bin()
        if npm_bin is not None:
            path.append(str(npm_bin))
        path.append(SYSTEM_PATH)
        env["PATH"] = os.pathsep.join(path)
        env["VIRTUAL_ENV"] = str(VENV)
        env.pop("PYTHONPATH", None)
        return env

    def start(self, timeout: float = 30) -> None:
        """Start jupyterhub and wait until /hub/health answers through the proxy."""
        if self.running:
            return
        for port in (self.port, self.hub_port, self.api_port):
            if port_accepts(port):
                raise SandboxError(f"port {port} on 127.0.0.1 is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [*self.command_prefix, str(VENV_BIN / "jupyterhub"), "-f", str(self.config_path)],
            cwd=self.dir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def healthy() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(
                    f"jupyterhub exited with {self._proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/hub/health", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        try:
            wait_until(healthy, timeout=timeout, interval=0.1, message="hub health")
        except SandboxError:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the hub (it stops the proxy and user servers), then wait."""
        if self._proc is not None:
            _terminate(self._proc, timeout=20)
            self._proc = None
            # After a SIGKILL fallback the proxy may outlive the hub.
            _kill_pidfile(self.dir / "proxy.pid")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- HTTP ------------------------------------------------------------------

    def session(self) -> Any:
        """A requests.Session that ignores proxy/CA settings from the environment."""
        import requests  # imported here so the module needs only the stdlib

        session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxy variables must not reach loopback tests.
        session.trust_env = False
        return session

    def login(self, username: str, password: str, session: Any = None) -> Any:
        """Submit the login form; return the final response (redirects followed).

        On success that is the spawn-pending page or the user's server; on
        failure the login page (403) or an error page.
        """
        session = session if session is not None else self.session()
        session.get(f"{self.url}/hub/login", timeout=10).raise_for_status()
        xsrf = session.cookies.get("_xsrf")
        response = session.post(
            f"{self.url}/hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            timeout=60,
        )
        response.session = session
        return response

    def wait_for_server(self, session: Any, username: str, timeout: float = 60) -> Any:
        """Wait until the user's server answers /api/status; return that response.

        Loading the server's page completes the OAuth handshake that gives the
        session a cookie for the single-user server.
        """
        base = f"{self.url}/user/{username}"

        def ready() -> Any:
            page = session.get(f"{base}/tree", timeout=10)
            if page.status_code != 200 or not page.url.startswith(f"{base}/"):
                return None
            status = session.get(f"{base}/api/status", timeout=10)
            return status if status.status_code == 200 else None

        return wait_until(ready, timeout=timeout, interval=0.25, message=f"server of {username}")


def login_and_spawn(hub: Hub, user: UnixUser, timeout: float = 60) -> Any:
    """Log ``user`` in through the form and wait for their server; return session."""
    response = hub.login(user.name, user.password)
    if response.status_code != 200 or "/hub/login" in response.url:
        raise SandboxError(
            f"login of {user.name} failed: HTTP {response.status_code} at {response.url}\nhub log:\n{hub.log_tail()}"
        )
    hub.wait_for_server(response.session, user.name, timeout=timeout)
    return response.session


def login_and_spawn_at(base_url: str, user: UnixUser, session: Any, timeout: float = 60) -> Any:
    """Log ``user`` in at ``base_url`` (a hub or a proxy in front of it) and wait for their server."""
    session.get(f"{base_url}/hub/login", timeout=10).raise_for_status()
    response = session.post(
        f"{base_url}/hub/login",
        data={"username": user.name, "password": user.password, "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
        timeout=60,
    )
    if response.status_code != 200 or "/hub/login" in response.url:
        raise SandboxError(f"login of {user.name} at {base_url} failed: HTTP {response.status_code} at {response.url}")
    server = f"{base_url}/user/{user.name}"

    def ready() -> Any:
        page = session.get(f"{server}/tree", timeout=10)
        if page.status_code != 200 or not page.url.startswith(f"{server}/"):
            return None
        return session.get(f"{server}/api/status", timeout=10).status_code == 200

    wait_until(ready, timeout=timeout, interval=0.25, message=f"server of {user.name} at {base_url}")
    return session


def run_pamkrb(args: list[str], *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``pamkrb`` console script; never raises on its exit status."""
    return subprocess.run(
        [str(VENV_BIN / "pamkrb"), *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )
