"""Kerberos: a throwaway MIT realm with its KDC on loopback, what ``klist``
says about a cache, a KDC that never answers, and a realm on a skewed clock."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import secrets
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from .process import SandboxError, _run, _Service, free_port, port_accepts, wait_until


@dataclasses.dataclass(frozen=True)
class TicketCache:
    """What ``klist`` reports about a credential cache."""

    principal: str
    expires: datetime.datetime
    services: tuple[str, ...]
    # The TGT's "renew until"; None when it is not renewable.
    renew_until: datetime.datetime | None = None


_KLIST_TIME_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S")
_KLIST_ROW = re.compile(r"^(?P<start>\S+ \S+)\s+(?P<end>\S+ \S+)\s+(?P<service>\S+@\S+)\s*$")


def _parse_klist_time(text: str) -> datetime.datetime:
    for fmt in _KLIST_TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise SandboxError(f"unrecognised klist time {text!r}")


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

    def kdc_requests(self, kind: str | None = None, *, client: str | None = None, service: str | None = None) -> int:
        """Number of requests the KDC logged: AS_REQ, TGS_REQ, or both if None;
        only those of principal ``client`` and for principal ``service`` when
        given (for tests that share a realm with others running beside them)."""
        kinds = ("AS_REQ", "TGS_REQ") if kind is None else (kind,)
        try:
            text = self.kdc_log.read_text()
        except FileNotFoundError:
            return 0
        # Lines look like "... krb5kdc[123](info): AS_REQ (8 etypes {...})
        # 127.0.0.1: ISSUE: authtime ..., etypes {...}, client@REALM for service@REALM",
        # failures "... 127.0.0.1: NEEDED_PREAUTH: client@REALM for service@REALM, reason".
        lines = [line for line in text.splitlines() if any(f" {k} " in line for k in kinds)]
        if client is None and service is None:
            return len(lines)
        who = re.escape(self.qualify(client)) if client else r"[^ ]+"
        what = re.escape(self.qualify(service)) if service else r"[^ ,]+"
        pair = re.compile(rf" {who} for {what}(,|$)")
        return sum(1 for line in lines if pair.search(line))

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

    def add_password_principal(self, name: str, password: str) -> str:
        """Create a principal whose key is derived from ``password``; return
        its qualified name. kadmin.local reads the password from stdin, so it
        is never on a command line, and errors do not repeat it."""
        principal = self.qualify(name)
        result = _run(
            ["kadmin.local", "-r", self.name, "-q", f"addprinc {principal}"],
            env=self._admin_env(),
            input=f"{password}\n{password}\n",
        )
        # Like kadmin(): a failed query still exits with 0.
        if f'Principal "{principal}" created.' not in result.stdout:
            raise SandboxError(f"kadmin.local addprinc {principal}: {result.stderr.strip()}")
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
        """Read a cache with ``klist`` and return its principal, the TGT's
        expiry and, if it is renewable, its "renew until"."""
        name = str(ccache)
        if ":" not in name:
            name = f"FILE:{name}"
        out = _run(["klist", "-c", name], env=self.client_env()).stdout
        match = re.search(r"^Default principal: (\S+)", out, re.MULTILINE)
        if match is None:
            raise SandboxError(f"no default principal in klist output:\n{out}")
        expires: datetime.datetime | None = None
        renew_until: datetime.datetime | None = None
        services = []
        for line in out.splitlines():
            # A renewable ticket's row is followed by "\trenew until <time>".
            if line.strip().startswith("renew until ") and services and services[-1].startswith("krbtgt/"):
                renew_until = _parse_klist_time(line.strip().removeprefix("renew until ").split(",")[0])
                continue
            row = _KLIST_ROW.match(line.strip())
            if row is None or row["start"].startswith("Valid"):
                continue
            services.append(row["service"])
            if row["service"].startswith("krbtgt/"):
                expires = _parse_klist_time(row["end"])
        if expires is None:
            raise SandboxError(f"no TGT in klist output:\n{out}")
        return TicketCache(match[1], expires, tuple(services), renew_until)

    def klist_valid(self, ccache: str | os.PathLike[str]) -> bool:
        """``klist -s``: True when the cache exists and holds unexpired tickets."""
        name = str(ccache)
        if ":" not in name:
            name = f"FILE:{name}"
        result = subprocess.run(["klist", "-s", "-c", name], env=self.client_env(), check=False)
        return result.returncode == 0


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
