"""Throwaway Kerberos realms, Unix users and JupyterHubs on loopback.

Shared by the pytest fixtures (``tests/conftest.py``) and ``make demo``
(``tools/demo.py``). Everything here runs real components: MIT ``krb5kdc`` and
``kadmin.local`` with their own ``KRB5_CONFIG`` (``/etc/krb5.conf`` is never
read or written), ``useradd``/``chpasswd`` accounts, a PAM service file, and
``jupyterhub`` with configurable-http-proxy and LocalProcessSpawner.

Most of it needs root. Only the standard library is imported at module level;
``requests`` (present in the venv) is imported by the HTTP helpers that use it.
No shell is involved anywhere: every subprocess gets an argument list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

VENV = Path("/opt/pamkrb/venv")
VENV_BIN = VENV / "bin"
PAM_TEST_SERVICE = "pamkrb-test"
# pam_unix without the 2-3 s failure delay of the stock `login` service, so
# negative tests stay fast. No pam_rootok: root must not get in for free.
PAM_TEST_SERVICE_TEXT = """\
# Written by pamkrb's test harness (tools/sandbox.py); safe to delete.
auth     required pam_unix.so nodelay
account  required pam_unix.so
"""
# GECOS comment that marks accounts created here, so a leftover from an
# interrupted run can be recognised and removed safely.
SANDBOX_GECOS = "pamkrb sandbox user"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T = TypeVar("T")


class SandboxError(RuntimeError):
    """A sandbox component failed to start, stop or answer in time."""


# --------------------------------------------------------------------------
# small utilities


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


def npm_global_bin() -> Path | None:
    """Directory holding globally installed npm commands (configurable-http-proxy)."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    result = subprocess.run([npm, "prefix", "-g"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip()) / "bin"


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


def _write_private(path: Path, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Write ``data`` to ``path`` without following a symlink there.

    Owner and mode are set on the open descriptor, so the file is never briefly
    readable by anyone else, and a link planted in a user-writable directory is
    refused rather than written through.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Kerberos


@dataclasses.dataclass(frozen=True)
class TicketCache:
    """What ``klist`` reports about a credential cache."""

    principal: str
    expires: datetime.datetime
    services: tuple[str, ...]


_KLIST_TIME_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S")
_KLIST_ROW = re.compile(r"^(?P<start>\S+ \S+)\s+(?P<end>\S+ \S+)\s+(?P<service>\S+@\S+)\s*$")


def _parse_klist_time(text: str) -> datetime.datetime:
    for fmt in _KLIST_TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise SandboxError(f"unrecognised klist time {text!r}")


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


class Realm(_Service):
    """A throwaway MIT Kerberos realm whose KDC listens on a loopback port.

    Everything lives in one temporary directory: ``krb5.conf`` (mode 0644, in a
    0755 directory, so test users' servers can read it) and a 0700 ``kdc/``
    subdirectory with ``kdc.conf``, the database, the stash and the logs.
    """

    def __init__(
        self,
        name: str = "PAMKRB.TEST",
        *,
        max_life: int = 10 * 3600,
        max_renewable_life: int = 7 * 24 * 3600,
        base_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.max_life = max_life
        self.max_renewable_life = max_renewable_life
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-realm-", dir=base_dir))
        self.dir.chmod(0o755)
        self.kdc_dir = self.dir / "kdc"
        self.kdc_dir.mkdir(mode=0o700)
        self.krb5_conf = self.dir / "krb5.conf"
        self.kdc_conf = self.kdc_dir / "kdc.conf"
        self.kdc_log = self.kdc_dir / "kdc.log"
        self.pidfile = self.kdc_dir / "krb5kdc.pid"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()
        _run(
            [
                "kdb5_util",
                "create",
                "-s",
                "-r",
                name,
                "-P",
                secrets.token_urlsafe(24),
            ],
            env=self._admin_env(),
        )

    # -- configuration -----------------------------------------------------

    def _write_config(self) -> None:
        kdc = self.kdc_dir
        self.kdc_conf.write_text(
            f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {self.name} = {{
        database_name = {kdc}/principal
        key_stash_file = {kdc}/stash
        acl_file = {kdc}/kadm5.acl
        max_life = {self.max_life}s
        max_renewable_life = {self.max_renewable_life}s
    }}

[logging]
    kdc = FILE:{self.kdc_log}
    admin_server = FILE:{kdc}/kadmin.log
    default = FILE:{kdc}/krb5lib.log
"""
        )
        (kdc / "kadm5.acl").write_text("")
        self.krb5_conf.write_text(
            f"""\
[libdefaults]
    default_realm = {self.name}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    udp_preference_limit = 1

[realms]
    {self.name} = {{
        kdc = 127.0.0.1:{self.port}
    }}
"""
        )
        self.krb5_conf.chmod(0o644)

    def env(self) -> dict[str, str]:
        """Environment variables a client of this realm needs."""
        return {"KRB5_CONFIG": str(self.krb5_conf)}

    def _admin_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env.update(self.env())
        env["KRB5_KDC_PROFILE"] = str(self.kdc_conf)
        env["LC_ALL"] = "C"
        return env

    def client_env(self) -> dict[str, str]:
        """os.environ with this realm's KRB5_CONFIG and no inherited KRB5CCNAME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env.update(self.env())
        env["LC_ALL"] = "C"
        return env

    # -- the KDC process -----------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15) -> None:
        """Start krb5kdc and wait until it accepts TCP on its port."""
        if self.running:
            return
        self.pidfile.unlink(missing_ok=True)
        # -n keeps krb5kdc in the foreground, so the PID we stop is the one we
        # started; its own session keeps a terminal's Ctrl-C away from it.
        self._proc = subprocess.Popen(
            ["krb5kdc", "-n", "-P", str(self.pidfile), "-r", self.name],
            env=self._admin_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(f"krb5kdc exited with {self._proc.returncode}; log:\n{self._log_tail()}")
            return self.pidfile.exists() and port_accepts(self.port)

        wait_until(ready, timeout=timeout, message=f"krb5kdc on port {self.port}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.kdc_log.read_text().splitlines()[-lines:])
        except OSError:
            return "(no kdc.log)"

    def kdc_requests(self, kind: str | None = None) -> int:
        """Number of requests the KDC logged: AS_REQ, TGS_REQ, or both if None."""
        kinds = ("AS_REQ", "TGS_REQ") if kind is None else (kind,)
        try:
            text = self.kdc_log.read_text()
        except FileNotFoundError:
            return 0
        # Lines look like "... krb5kdc[123](info): AS_REQ (8 etypes {...}) ...".
        return sum(1 for line in text.splitlines() if any(f" {k} " in line for k in kinds))

    # -- principals and keytabs ---------------------------------------------

    def kadmin(self, query: str) -> str:
        """Run one kadmin.local query against this realm's database."""
        result = _run(["kadmin.local", "-r", self.name, "-q", query], env=self._admin_env())
        # kadmin.local reports failed queries on stderr with exit status 0; the
        # only harmless stderr line is addprinc's note about having no policy.
        problems = [
            line for line in result.stderr.splitlines() if line.strip() and not line.startswith("No policy specified")
        ]
        if problems:
            raise SandboxError(f"kadmin.local -q {query!r}: {' '.join(problems)}")
        return result.stdout

    def qualify(self, principal: str) -> str:
        """``name`` → ``name@REALM``; fully qualified names pass through."""
        return principal if "@" in principal else f"{principal}@{self.name}"

    def add_principal(self, name: str) -> str:
        """Create a principal with a random key; return its qualified name."""
        principal = self.qualify(name)
        self.kadmin(f"addprinc -randkey {principal}")
        return principal

    def write_keytab(
        self,
        principal: str,
        path: str | os.PathLike[str],
        owner_uid: int,
        owner_gid: int,
        mode: int = 0o600,
    ) -> Path:
        """Export ``principal``'s keys into a keytab at ``path``.

        ``-norandkey`` keeps the key version stable, so writing a second keytab
        does not invalidate the first. The keytab is produced in the realm's
        private directory and copied to ``path`` with ``O_NOFOLLOW``, because
        ``path`` is usually inside a user's home.
        """
        principal = self.qualify(principal)
        staging = self.kdc_dir / f"staging-{secrets.token_hex(6)}.keytab"
        try:
            self.kadmin(f"ktadd -k {staging} -norandkey {principal}")
            data = staging.read_bytes()
        finally:
            staging.unlink(missing_ok=True)
        target = Path(path)
        _write_private(target, data, owner_uid, owner_gid, mode)
        return target

    # -- client side helpers --------------------------------------------------

    def kinit(self, principal: str, keytab: str | os.PathLike[str], ccache: str) -> None:
        """Obtain a TGT with the ``kinit`` CLI (for checking the sandbox itself)."""
        _run(
            ["kinit", "-k", "-t", str(keytab), "-c", ccache, self.qualify(principal)],
            env=self.client_env(),
        )

    def klist(self, ccache: str | os.PathLike[str]) -> TicketCache:
        """Read a cache with ``klist`` and return its principal and TGT expiry."""
        name = str(ccache)
        if ":" not in name:
            name = f"FILE:{name}"
        out = _run(["klist", "-c", name], env=self.client_env()).stdout
        match = re.search(r"^Default principal: (\S+)", out, re.MULTILINE)
        if match is None:
            raise SandboxError(f"no default principal in klist output:\n{out}")
        expires: datetime.datetime | None = None
        services = []
        for line in out.splitlines():
            row = _KLIST_ROW.match(line.strip())
            if row is None or row["start"].startswith("Valid"):
                continue
            services.append(row["service"])
            if row["service"].startswith("krbtgt/"):
                expires = _parse_klist_time(row["end"])
        if expires is None:
            raise SandboxError(f"no TGT in klist output:\n{out}")
        return TicketCache(match[1], expires, tuple(services))

    def klist_valid(self, ccache: str | os.PathLike[str]) -> bool:
        """``klist -s``: True when the cache exists and holds unexpired tickets."""
        name = str(ccache)
        if ":" not in name:
            name = f"FILE:{name}"
        result = subprocess.run(["klist", "-s", "-c", name], env=self.client_env(), check=False)
        return result.returncode == 0


# --------------------------------------------------------------------------
# Unix users and PAM


def _pids_of_uid(uid: int) -> list[int]:
    """Live processes owned by ``uid``; zombies (already dead, awaiting their
    parent's wait) are left out, since killing them is neither needed nor possible."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            # The state follows the parenthesised command name, which may itself
            # contain spaces and parentheses.
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state != "Z":
            pids.append(int(entry.name))
    return pids


@dataclasses.dataclass
class UnixUser:
    """A local account with a random password, created with ``useradd``."""

    name: str
    uid: int
    gid: int
    home: Path
    password: str

    @property
    def default_ccache(self) -> Path:
        """MIT's default cache path for this user (pamkrb's default target)."""
        return Path(f"/tmp/krb5cc_{self.uid}")

    @classmethod
    def create(cls, name_prefix: str = "pkt", *, name: str | None = None) -> UnixUser:
        """Create a user ``<prefix><6 random lowercase letters>`` (or ``name``)."""
        if name is None:
            suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
            name = f"{name_prefix}{suffix}"
        password = secrets.token_urlsafe(15)
        _run(["useradd", "-m", "-s", "/bin/bash", "-c", SANDBOX_GECOS, name])
        user: UnixUser | None = None
        try:
            # chpasswd reads "name:password" from stdin; never on a command line.
            _run(["chpasswd"], input=f"{name}:{password}\n")
            entry = pwd.getpwnam(name)
            user = cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), password)
        finally:
            if user is None:
                subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        return user

    @classmethod
    def existing(cls, name: str) -> UnixUser | None:
        """The sandbox-created account ``name``, or None if there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        if entry.pw_gecos != SANDBOX_GECOS:
            raise SandboxError(f"user {name} exists and was not created by the sandbox")
        return cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), "")

    def kill_processes(self, timeout: float = 10) -> None:
        """SIGKILL everything running as this user and wait until it is gone."""
        subprocess.run(["pkill", "-KILL", "-u", str(self.uid)], check=False)
        wait_until(
            lambda: not _pids_of_uid(self.uid),
            timeout=timeout,
            message=f"processes of {self.name} to exit",
        )

    def remove(self) -> None:
        """Kill the user's processes, delete account, home and cache."""
        with contextlib.suppress(SandboxError):
            self.kill_processes()
        subprocess.run(["userdel", "-r", self.name], capture_output=True, check=False)
        # unlink never follows: a planted symlink is removed, not its target.
        with contextlib.suppress(FileNotFoundError):
            self.default_ccache.unlink()

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command as this user (no shell, no su)."""
        return subprocess.run(
            args,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )


def pam_service_path(name: str = PAM_TEST_SERVICE) -> Path:
    return Path("/etc/pam.d") / name


def install_pam_test_service(name: str = PAM_TEST_SERVICE) -> Path:
    """Write the fast pam_unix test service to /etc/pam.d/<name>."""
    path = pam_service_path(name)
    if not path.exists() or path.read_text() != PAM_TEST_SERVICE_TEXT:
        path.write_text(PAM_TEST_SERVICE_TEXT)
        path.chmod(0o644)
    return path


def remove_pam_test_service(name: str = PAM_TEST_SERVICE) -> None:
    """Delete /etc/pam.d/<name> if it is the file this module writes."""
    path = pam_service_path(name)
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == PAM_TEST_SERVICE_TEXT:
            path.unlink()


def singleuser_pids(uid: int) -> list[int]:
    """PIDs of ``jupyterhub-singleuser`` processes running as ``uid``."""
    found = []
    for pid in _pids_of_uid(uid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"jupyterhub-singleuser") for arg in argv[:3]):
            found.append(pid)
    return found


def process_environ(pid: int) -> dict[str, str]:
    """The environment a process started with (needs root for other users)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


# --------------------------------------------------------------------------
# JupyterHub


class Hub(_Service):
    """A JupyterHub with configurable-http-proxy on loopback, started as root.

    ``config`` maps ``"Class.trait"`` to a Python value written with ``repr``;
    ``extra_config`` is appended verbatim. The hub's private files (database,
    cookie secret, PID files) live in a 0700 temporary directory; the log goes
    to ``log_path``.
    """

    def __init__(
        self,
        realm: Realm,
        *,
        config: Mapping[str, Any] | None = None,
        extra_config: str = "",
        authenticator_class: str = "pamkrb",
        port: int | None = None,
        log_path: Path | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.realm = realm
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
        lines = ["# Written by tools/sandbox.py", "c = get_config()  # noqa: F821"]
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
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_path)],
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


@contextlib.contextmanager
def provisioned_user(realm: Realm, name_prefix: str = "pkt", *, name: str | None = None) -> Iterator[UnixUser]:
    """A user with principal ``<name>@REALM`` and keytab ``~/<name>.keytab``."""
    user = UnixUser.create(name_prefix, name=name)
    try:
        principal = realm.add_principal(user.name)
        realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        yield user
    finally:
        user.remove()


# ==========================================================================
# Operator tools (`pamkrb` CLI): nginx, TLS test certificates, logins through
# a front end, and kernels driven over the REST API and WebSocket.
# Used by tests/test_cli_*.py. Begin of block.


def run_pamkrb(args: list[str], *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``pamkrb`` console script; never raises on its exit status."""
    return subprocess.run(
        [str(VENV_BIN / "pamkrb"), *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


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
# Written by tools/sandbox.py
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
    options: dict[str, Any] = {"cookie": cookie, "timeout": 30, "socket": sock}
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


# End of block: operator tools.
# ==========================================================================


# ==========================================================================
# Hardening tests (tests/test_hardening_*.py, tests/test_secrets.py): planted
# files, a KDC that never answers or runs on a skewed clock, many users at
# once, and latency probes. Begin of block.

# Imported here rather than at the top so this block stays self-contained.
import stat  # noqa: E402
import threading  # noqa: E402


class SilentKDC:
    """A listener on a KDC port that accepts TCP, swallows UDP and never answers.

    What a hung KDC (or a firewall that drops replies) looks like to libkrb5,
    which then keeps trying for about 30 s. ``close`` makes every waiting
    client fail at once: held connections are closed, the port refuses.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, port))
        self.tcp.listen(128)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.held: list[socket.socket] = []
        self.closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-kdc", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.held.append(self.tcp.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._thread.join()
        self.tcp.close()
        self.udp.close()
        for conn in self.held:
            conn.close()


def faketime_library() -> Path | None:
    """libfaketime's multi-threaded preload library (apt: faketime), if installed."""
    for base in ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"):
        path = Path(base) / "libfaketimeMT.so.1"
        if path.exists():
            return path
    return None


class SkewedRealm(Realm):
    """A realm whose KDC (and kadmin.local) run on a clock ``offset`` away from
    the machine's, through libfaketime. ``offset`` is faketime syntax: "+1h"."""

    def __init__(self, name: str, offset: str, **kwargs: Any) -> None:
        library = faketime_library()
        if library is None:
            raise SandboxError("libfaketime is not installed (apt-get install faketime)")
        self.offset = offset
        self.library = library
        super().__init__(name, **kwargs)

    def _admin_env(self) -> dict[str, str]:
        env = super()._admin_env()
        env["LD_PRELOAD"] = str(self.library)
        env["FAKETIME"] = self.offset
        env["FAKETIME_DONT_RESET"] = "1"
        return env

    def set_client_option(self, line: str) -> None:
        """Add a line to [libdefaults] of this realm's krb5.conf (e.g. ``kdc_timesync = false``)."""
        text = self.krb5_conf.read_text()
        self.krb5_conf.write_text(text.replace("[libdefaults]\n", f"[libdefaults]\n    {line}\n", 1))


@dataclasses.dataclass(frozen=True)
class FileState:
    """Everything about a file that a write through it would change."""

    kind: int
    uid: int
    gid: int
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    content: bytes | None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileState:
        st = os.lstat(path)
        content = None
        if stat.S_ISREG(st.st_mode):
            content = Path(path).read_bytes()
        return cls(
            stat.S_IFMT(st.st_mode),
            st.st_uid,
            st.st_gid,
            stat.S_IMODE(st.st_mode),
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            content,
        )


# What pamkrb puts between a cache's name and the random suffix of its temporary file.
TEMP_MARKER_PAMKRB = ".pamkrb-"


def credential_entries(directory: str | os.PathLike[str] = "/tmp") -> set[str]:
    """Names in ``directory`` that look like credential caches or pamkrb temp files."""
    return {
        name for name in os.listdir(directory) if name.startswith(("krb5cc_", ".krb5cc_")) or TEMP_MARKER_PAMKRB in name
    }


def pamkrb_temp_files(directory: str | os.PathLike[str] = "/tmp", uids: set[int] | None = None) -> list[str]:
    """pamkrb temporary cache files (``.<name>.pamkrb-<hex>``) in ``directory``,
    optionally only those of caches named ``krb5cc_<uid>`` for ``uids``."""
    found = []
    for name in os.listdir(directory):
        if TEMP_MARKER_PAMKRB not in name:
            continue
        if uids is not None and not any(name.startswith(f".krb5cc_{uid}{TEMP_MARKER_PAMKRB}") for uid in uids):
            continue
        found.append(name)
    return found


def foreign_sandbox_uids() -> set[int]:
    """uids of sandbox accounts that exist right now (other tests, concurrent runs)."""
    return {entry.pw_uid for entry in pwd.getpwall() if entry.pw_gecos == SANDBOX_GECOS}


def child_processes(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every descendant of ``pid``."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append((child, commands.get(child, "")))
                frontier.append(child)
    return found


@contextlib.contextmanager
def provisioned_users(realm: Realm, count: int, name_prefix: str = "pkh") -> Iterator[list[UnixUser]]:
    """``count`` users, each with a principal and a 0600 keytab ``~/<name>.keytab``."""
    users: list[UnixUser] = []
    try:
        for _ in range(count):
            user = UnixUser.create(name_prefix)
            users.append(user)
            principal = realm.add_principal(user.name)
            realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        yield users
    finally:
        for user in users:
            user.remove()


class LatencyProbe:
    """GETs ``url`` every ``interval`` seconds on a thread; records latency and status.

    A request that fails or times out counts as its full duration with status 0,
    so a hub that stops answering shows up as a high percentile, not a gap.
    """

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 10) -> None:
        import requests

        self.url, self.interval, self.timeout = url, interval, timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status = self.session.get(self.url, timeout=self.timeout).status_code
            except Exception:  # any failure is a sample: the hub did not answer
                status = 0
            elapsed = time.perf_counter() - started
            self.samples.append((elapsed, status))
            self._stop.wait(max(0.0, self.interval - elapsed))

    def __enter__(self) -> LatencyProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.session.close()

    def percentile(self, fraction: float) -> float:
        """Latency in seconds below which ``fraction`` of the samples lie."""
        ordered = sorted(elapsed for elapsed, _ in self.samples)
        if not ordered:
            raise SandboxError(f"no samples of {self.url}")
        # Conservative: with 100 samples, p99 is the largest one.
        index = min(len(ordered) - 1, int(fraction * len(ordered)))
        return ordered[index]


def hub_metric(hub: Hub, name: str, labels: Mapping[str, str]) -> float:
    """Value of one Prometheus sample on the hub's /hub/metrics (0 if absent).

    Needs ``JupyterHub.authenticate_prometheus = False`` in the hub's config.
    """
    text = hub.session().get(f"{hub.url}/hub/metrics", timeout=10).text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        inside = line[len(name) + 1 : line.index("}")]
        if wanted <= set(inside.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total


# End of block: hardening tests.
# ==========================================================================
