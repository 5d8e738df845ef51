"""Active Directory: a Samba 4.17 AD domain controller in network and PID
namespaces of its own, reached from the host over a veth pair.

Debian 12's ``samba-ad-dc`` (its KDC is Heimdal, inside ``samba``) is
provisioned into a temporary directory (``--targetdir``) and started once with
``process model = single``. The DC owns ports 53/88/389/445 only inside its
network namespace; the host reaches it at a link-local address
(``169.254.X.Y+2``, the host end being ``+1``) and nothing of Samba listens on
the host. Users, password policy and keytabs are made with ``samba-tool``
inside the DC's namespaces. ``DomainController.krb5_conf`` is a
``krb5.conf`` for MIT clients on the host (``kinit``, libkrb5 in pamkrb);
:meth:`DomainController.write_krb5_conf` writes variants with short
client-side lifetimes.

Not re-exported by ``sandbox/__init__.py``: import ``sandbox.samba``. Only the
standard library is imported; libc's ``setns``/``unshare``/``mount`` are
reached through ctypes (Python 3.11 has no ``os.setns``), loaded at import
and called only in the pre-exec function of the processes started here.
No shell anywhere: every command is an argument list.

Every trap met on the way, and its fix (hit or checked here, except the two
marked as taken from /work/shared/ENVIRONMENT.md):

- **Provisioning reads the host's ``/etc/samba/smb.conf`` as a template.**
  Debian's default one (written by samba-common's postinst) brought in
  ``log file = /var/log/samba/log.%m``, ``obey pam restrictions``,
  ``passwd program = /usr/bin/passwd %u``, ``[homes]`` and ``[printers]``
  (with ``/var/lib/samba/printers``). Fix: ``samba-tool domain provision -s
  /dev/null`` and every directory given explicitly.
- **``dns forwarder`` is copied from the host's /etc/resolv.conf** into
  smb.conf (an address the DC cannot reach from its namespace). Fix:
  ``--option=dns forwarder=`` keeps it out. The DC's DNS answers for its own
  zone (``dc1.ad.pamkrb.test``, the ``_ldap``/``_kerberos`` SRV records),
  which is what a member's resolv.conf needs.
- **smbd and winbindd create ``/var/log/samba/log.smbd`` and ``log.winbindd``
  on the host** (empty, before they read ``--configfile``). Fix: the DC runs
  in a mount namespace with empty tmpfs over ``/etc/samba``,
  ``/var/lib/samba``, ``/var/cache/samba``, ``/var/log/samba`` and ``/run``,
  so no Samba process can write to the host's Samba directories at all.
- **``KRB5_CONFIG=/dev/null`` breaks provisioning** (ENVIRONMENT.md), and the ``krb5.conf``
  provisioning writes has ``dns_lookup_kdc = true`` and no KDC address.
  Fix: a small one of ours for provisioning and the DC
  (``dc-krb5.conf``), another for MIT clients on the host (``krb5.conf``).
- **``ntp signd socket directory`` must be mode 0750** (ENVIRONMENT.md): made so.
- **``samba-dcerpcd`` detaches with setsid** and would outlive a stopped DC.
  Fix: a PID namespace (``unshare --pid --fork --kill-child --mount-proc``):
  when ``samba`` (its PID 1) exits, the kernel kills everything left in it.
- **``unshare`` ignores SIGTERM while it waits for its child**, so stopping
  the ``Popen`` does nothing. Fix: SIGTERM goes to ``samba`` itself (the
  child of ``unshare``, found in ``/proc/<pid>/task/<pid>/children``), SIGKILL
  after a deadline; both end the namespace.
- **``samba-tool`` on the host warns "no network interfaces found"**
  (``interfaces`` names an address that exists only in the DC's namespace)
  and would look for the DC's processes by PIDs of another namespace. Fix:
  it runs inside the DC's network, mount and PID namespaces (``nsenter``).
- **Clients find winbindd only at the compiled-in ``/run/samba/winbindd``**;
  ``winbindd socket directory`` moves the listener, not the clients. The
  DC's own smbd asks its winbindd there: with the socket elsewhere, a
  member's ``net ads join`` failed with "SPNEGO login failed: An internal
  error occurred" (nothing in the DC's log at level 0). Fix: the DC's
  ``/run`` is a private tmpfs with ``/run/samba`` in it, and Samba's default
  socket paths are kept; on a member, the member's own directory is
  bind-mounted on ``/run/samba`` in its namespaces.
- **A member's winbindd starts ``samba-dcerpcd`` too** (on demand, detached):
  the member's winbindd also runs as PID 1 of a PID namespace.
- **Ticket lifetimes in smb.conf are whole hours** (``kdc:user ticket
  lifetime``): a test wanting 90-second tickets asks for them from the client
  (``kinit -l 90s``, ``lifetime=`` in pamkrb), which the DC grants.
- **The host's 169.254.169.254 is a cloud metadata address**: the link-local
  subnet is chosen among 169.254.X.0/30 with X != 169, not used on the host.

:class:`DomainMember` is the other side: this host joined to the domain
(``net ads join``) with winbind, in mount namespaces that swap in its own
smb.conf, nsswitch.conf, pam.d, krb5.conf and resolv.conf (the DC's DNS),
never the host's files.

What the DC and the member do (measured in tests/test_samba_dc.py, which
asserts it): see that module's docstring.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .process import SandboxError, _run, wait_until

REALM = "AD.PAMKRB.TEST"
DNS_DOMAIN = "ad.pamkrb.test"
NETBIOS_DOMAIN = "ADPAMKRB"
DC_HOST_NAME = "dc1"

# Directories where Debian's Samba writes by default; inside the DC's mount
# namespace each is an empty tmpfs (those that exist on the host).
HOST_SAMBA_DIRS = ("/etc/samba", "/var/lib/samba", "/var/cache/samba", "/var/log/samba", "/run")
TMPFS_SOURCE = b"pamkrb-samba"
NETNS_PREFIX = "pamkrb-ad-"
# samba (and a member's winbindd) start samba-dcerpcd, which detaches with
# setsid: as PID 1 of a namespace of their own, everything dies with them.
_PID_NAMESPACE = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")

# From <sched.h> and <sys/mount.h> (Linux; the same on x86-64 and arm64).
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000

# Loaded here, never in a forked child: dlopen takes locks another thread may
# have held at fork time.
_libc = ctypes.CDLL(None, use_errno=True)
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_mount.restype = ctypes.c_int
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int
PR_SET_PDEATHSIG = 1


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        # A pre-exec exception reaches the parent without its text; say it on fd 2.
        os.write(2, f"sandbox.samba: {what} failed: {os.strerror(errno)}\n".encode())
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _samba_private_view(
    netns_fd: int | None,
    covered: tuple[bytes, ...],
    *,
    binds: tuple[tuple[bytes, bytes], ...] = (),
    die_with_parent: bool = False,
) -> None:
    """Pre-exec: join the DC's network namespace (if given), enter a new mount
    namespace, cover each of ``covered`` with an empty tmpfs there, then
    bind-mount each ``(source, target)`` of ``binds``.

    ``die_with_parent``: SIGKILL when the process that started it dies (a
    test run killed outright), which ``unshare --kill-child`` passes on to
    samba, ending the whole PID namespace."""
    if die_with_parent:
        _check(_prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if netns_fd is not None:
        _check(_setns(netns_fd, CLONE_NEWNET), "setns(network namespace)")
    _check(_unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Without this the tmpfs mounts would propagate back to the host (/ is shared).
    _check(_mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / recursively private")
    for path in covered:
        _check(_mount(TMPFS_SOURCE, path, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755"), f"tmpfs on {path!r}")
    if b"/run" in covered:
        # Where Samba's clients (libwbclient in smbd, pam_winbind, nss_winbind)
        # look for winbindd whatever smb.conf says: /run/samba/winbindd.
        os.mkdir(b"/run/samba", 0o755)
    for source, target in binds:
        _check(_mount(source, target, None, MS_BIND, None), f"bind mount of {source!r} on {target!r}")


@dataclasses.dataclass(frozen=True)
class ADUser:
    """An account in the DC's domain (``sAMAccountName`` ``name``)."""

    name: str
    password: str
    realm: str = REALM
    dns_domain: str = DNS_DOMAIN

    @property
    def principal(self) -> str:
        """``name@REALM``: the account's principal as the KDC stores it."""
        return f"{self.name}@{self.realm}"

    @property
    def upn(self) -> str:
        """The user principal name samba-tool gives it: ``name@dns.domain``."""
        return f"{self.name}@{self.dns_domain}"


def _link_local_subnet() -> ipaddress.IPv4Network:
    """A 169.254.X.Y/30 no interface of the host uses (X != 169, the cloud
    metadata service's 169.254.169.254)."""
    used = []
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    rng = random.SystemRandom()
    for _ in range(200):
        third = rng.choice([x for x in range(1, 255) if x != 169])
        net = ipaddress.IPv4Network(f"169.254.{third}.{rng.randrange(0, 256, 4)}/30")
        if not any(net.overlaps(other) for other in used):
            return net
    raise SandboxError("no free 169.254.X.Y/30 subnet found")


def remove_stale_networks() -> list[str]:
    """Delete network namespaces ``pamkrb-ad-*`` older than two minutes that
    no process is in (left by a test run killed outright; its DC died with it), and with them
    their veth pairs. Returns their names. A namespace in use is left alone."""
    removed = []
    for line in _run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
        try:
            age = time.time() - os.stat(f"/run/netns/{name}").st_mtime
        except OSError:
            continue
        # Young ones may belong to a DC another session is starting right now.
        if age > 120 and pids.returncode == 0 and not pids.stdout.strip():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
            removed.append(name)
    return removed


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc's children lists."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split())
    return found


class DomainController:
    """A Samba AD DC in its own network, mount and PID namespaces.

    ``dir`` (0755) holds the client ``krb5.conf`` and keytabs; ``dir/dc``
    (0700) the provisioned domain, smb.conf and logs. :meth:`start` provisions
    and starts it (once); :meth:`close` stops every process, removes the
    network namespace, the veth pair and the directory. Usable as a context
    manager.
    """

    def __init__(
        self,
        realm: str = REALM,
        *,
        dns_domain: str = DNS_DOMAIN,
        netbios_domain: str = NETBIOS_DOMAIN,
        base_dir: Path | None = None,
    ) -> None:
        self.realm = realm
        self.dns_domain = dns_domain
        self.netbios_domain = netbios_domain
        self.admin_password = "Adm1n-" + secrets.token_urlsafe(12)
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-ad-", dir=base_dir))
        self.dir.chmod(0o755)
        self.dc_dir = self.dir / "dc"
        self.dc_dir.mkdir(mode=0o700)
        self.smb_conf = self.dc_dir / "etc" / "smb.conf"
        self.dc_krb5_conf = self.dc_dir / "dc-krb5.conf"
        self.log_dir = self.dc_dir / "log"
        self.stdout_log = self.log_dir / "samba.stdout"
        self.krb5_conf = self.dir / "krb5.conf"
        token = secrets.token_hex(3)
        self.netns = f"{NETNS_PREFIX}{token}"
        self.veth_host = f"pkad{token}h"
        self.veth_dc = f"pkad{token}d"
        self.subnet: ipaddress.IPv4Network | None = None
        self.address = ""  # the DC's, set by start()
        self.host_address = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._network_made = False
        self.start_seconds: float | None = None
        self.provision_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        """Make the network, provision the domain and start the DC; return
        once its KDC (88) and LDAP (389) accept TCP from the host."""
        if self.running:
            return
        began = time.monotonic()
        remove_stale_networks()
        try:
            self._choose_addresses()
            self._write_client_config()
            self._provision()
            self.provision_seconds = time.monotonic() - began
            self._make_network()
            self._launch(timeout)
        except BaseException:
            # Nothing half-started stays behind; the logs stay in dir until close().
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _choose_addresses(self) -> None:
        self.subnet = _link_local_subnet()
        host, dc = list(self.subnet.hosts())
        self.host_address, self.address = str(host), str(dc)

    def _make_network(self) -> None:
        if self.subnet is None:
            raise SandboxError("_choose_addresses() first")
        prefix = self.subnet.prefixlen
        _run(["ip", "netns", "add", self.netns])
        self._network_made = True
        _run(["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_dc, "netns", self.netns])
        _run(["ip", "addr", "add", f"{self.host_address}/{prefix}", "dev", self.veth_host])
        _run(["ip", "link", "set", self.veth_host, "up"])
        _run(["ip", "-n", self.netns, "addr", "add", f"{self.address}/{prefix}", "dev", self.veth_dc])
        _run(["ip", "-n", self.netns, "link", "set", self.veth_dc, "up"])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])

    def _write_client_config(self) -> None:
        self.dc_krb5_conf.write_text(
            f"""\
[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false

[realms]
    {self.realm} = {{
        kdc = {self.address}
    }}
"""
        )
        self.write_krb5_conf(self.krb5_conf)

    def write_krb5_conf(
        self, path: Path, *, ticket_lifetime: int | None = None, renew_lifetime: int | None = None
    ) -> Path:
        """Write a ``krb5.conf`` (mode 0644) for MIT clients on the host: this
        realm, its KDC at the DC's address over TCP, no DNS. Lifetimes (in
        seconds) become ``ticket_lifetime``/``renew_lifetime`` in
        ``[libdefaults]``: requested by the client, as the DC's own settings
        are whole hours."""
        lifetimes = ""
        if ticket_lifetime is not None:
            lifetimes += f"    ticket_lifetime = {ticket_lifetime}s\n"
        if renew_lifetime is not None:
            lifetimes += f"    renew_lifetime = {renew_lifetime}s\n"
        path.write_text(
            f"""\
[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
{lifetimes}
[realms]
    {self.realm} = {{
        kdc = {self.address}
        admin_server = {self.address}
        kpasswd_server = {self.address}
    }}

[domain_realm]
    .{self.dns_domain} = {self.realm}
    {self.dns_domain} = {self.realm}
"""
        )
        path.chmod(0o644)
        return path

    def client_env(self) -> dict[str, str]:
        """os.environ with this realm's KRB5_CONFIG, no inherited KRB5CCNAME, LC_ALL=C."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env["KRB5_CONFIG"] = str(self.krb5_conf)
        env["LC_ALL"] = "C"
        return env

    def _dc_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env["KRB5_CONFIG"] = str(self.dc_krb5_conf)
        env["LC_ALL"] = "C"
        return env

    def _covered(self) -> tuple[bytes, ...]:
        return tuple(os.fsencode(p) for p in HOST_SAMBA_DIRS if os.path.isdir(p))

    def _provision(self) -> None:
        dc = self.dc_dir
        for sub, mode in (("run", 0o755), ("ntp_signd", 0o750)):
            (dc / sub).mkdir(mode=mode)
        self.log_dir.mkdir(mode=0o755)
        options = {
            "interfaces": self.address,
            "bind interfaces only": "yes",
            "dns forwarder": "",
            "pid directory": dc / "run",
            "log file": self.log_dir / "samba.log",
            "ntp signd socket directory": dc / "ntp_signd",
        }
        args = [
            "samba-tool",
            "domain",
            "provision",
            "-s",
            "/dev/null",
            f"--targetdir={dc}",
            f"--realm={self.realm}",
            f"--domain={self.netbios_domain}",
            "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL",
            "--use-rfc2307",
            f"--host-name={DC_HOST_NAME}",
            f"--host-ip={self.address}",
            f"--adminpass={self.admin_password}",
        ]
        args += [f"--option={key}={value}" for key, value in options.items()]
        covered = self._covered()
        result = subprocess.run(
            args,
            env=self._dc_env(),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: _samba_private_view(None, covered),
        )
        (self.log_dir / "provision.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SandboxError(f"samba-tool domain provision exited with {result.returncode}:\n{result.stderr[-3000:]}")

    def _launch(self, timeout: float) -> None:
        covered = self._covered()
        netns_fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with self.stdout_log.open("wb") as out:
                self._proc = subprocess.Popen(
                    # -i: foreground, log to stdout. --kill-child: if unshare
                    # dies, samba gets SIGKILL, ending the PID namespace.
                    [*_PID_NAMESPACE, "samba", "-i", "-M", "single", "-s", str(self.smb_conf)],
                    env=self._dc_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(netns_fd,),
                    preexec_fn=lambda: _samba_private_view(netns_fd, covered, die_with_parent=True),
                )
        finally:
            os.close(netns_fd)

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(f"samba exited with {self._proc.returncode}:\n{self._log_tail()}")
            return all(self.accepts(port) for port in (88, 389))

        wait_until(ready, timeout=timeout, interval=0.1, message=f"the Samba DC at {self.address} (ports 88, 389)")

    def accepts(self, port: int) -> bool:
        """True when the DC accepts TCP on ``port`` at its address (from the host)."""
        try:
            with socket.create_connection((self.address, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.stdout_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no samba output)"

    def samba_pid(self) -> int | None:
        """Host PID of ``samba`` (PID 1 of the DC's namespace), if it runs."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text().split()
            if children:
                return int(children[0])
        return None

    def processes(self) -> dict[int, str]:
        """Every process of the DC (host PID: command name), ``unshare`` excluded."""
        pid = self.samba_pid()
        if pid is None:
            return {}
        names = {}
        for p in _descendants(pid):
            with contextlib.suppress(OSError):
                names[p] = Path(f"/proc/{p}/comm").read_text().strip()
        return names

    def resident_memory(self) -> dict[str, int]:
        """Of all the DC's processes together: ``rss`` (sum of VmRSS, shared
        pages counted once per process) and ``pss`` (proportional set size,
        shared pages split), in bytes."""
        totals = {"rss": 0, "pss": 0}
        for pid in self.processes():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    key, _, rest = line.partition(":")
                    if key in ("Rss", "Pss"):
                        totals[key.lower()] += int(rest.split()[0]) * 1024
        return totals

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM samba (SIGKILL after ``timeout``), wait for the namespace to
        empty, delete the veth pair and the network namespace. Safe to call twice."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    for child in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(child), sig)
                    try:
                        proc.wait(timeout=timeout)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=timeout)
        finally:
            if self._network_made:
                # Deleting the namespace deletes the DC's end of the pair, and with it the host's.
                subprocess.run(["ip", "link", "delete", self.veth_host], capture_output=True, check=False)
                subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, check=False)
                self._network_made = False

    def close(self) -> None:
        """Stop the DC and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DomainController:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- administration (samba-tool inside the DC's namespaces) ----------------------

    def samba_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``samba-tool ARGS -s smb.conf`` in the DC's network, mount and
        PID namespaces; SandboxError with its output if it fails."""
        pid = self.samba_pid()
        if pid is None:
            raise SandboxError("the Samba DC is not running")
        return _run(
            [
                "nsenter",
                f"--target={pid}",
                "--net",
                "--mount",
                "--pid",
                "--",
                "samba-tool",
                *args,
                "-s",
                str(self.smb_conf),
            ],
            env=self._dc_env(),
        )

    def create_user(self, name: str, password: str, *, must_change: bool = False) -> ADUser:
        """``samba-tool user create``: an enabled account whose UPN is
        ``name@dns.domain``; ``must_change`` sets "must change at next logon"."""
        args = ["user", "create", name, password]
        if must_change:
            args.append("--must-change-at-next-login")
        self.samba_tool(*args)
        return ADUser(name, password, self.realm, self.dns_domain)

    def set_password(self, name: str, password: str, *, must_change: bool = False) -> None:
        args = ["user", "setpassword", name, f"--newpassword={password}"]
        if must_change:
            args.append("--must-change-at-next-login")
        self.samba_tool(*args)

    def set_expiry(self, name: str, *, days: int | None) -> None:
        """The account (not password) expires in ``days``; None: never."""
        self.samba_tool("user", "setexpiry", name, "--noexpiry" if days is None else f"--days={days}")

    def set_password_policy(
        self,
        *,
        lockout_threshold: int | None = None,
        lockout_minutes: int | None = None,
        max_password_age_days: int | None = None,
        complexity: bool = False,
    ) -> None:
        """``samba-tool domain passwordsettings set``: the domain's policy.
        Always: no minimum age and no history (tests reset passwords at will)."""
        args = [
            "domain",
            "passwordsettings",
            "set",
            f"--complexity={'on' if complexity else 'off'}",
            "--min-pwd-age=0",
            "--history-length=0",
        ]
        if lockout_threshold is not None:
            args.append(f"--account-lockout-threshold={lockout_threshold}")
        if lockout_minutes is not None:
            args.append(f"--account-lockout-duration={lockout_minutes}")
            args.append(f"--reset-account-lockout-after={lockout_minutes}")
        if max_password_age_days is not None:
            args.append(f"--max-pwd-age={max_password_age_days}")
        self.samba_tool(*args)

    def user_attributes(self, name: str) -> dict[str, str]:
        """``samba-tool user show``: the account's LDAP attributes (first value of each)."""
        attributes: dict[str, str] = {}
        for line in self.samba_tool("user", "show", name).stdout.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key not in attributes:
                attributes[key] = value
        return attributes

    def export_keytab(self, principal: str, path: Path | None = None) -> Path:
        """``samba-tool domain exportkeytab --principal``: the keys the DC
        holds for ``principal`` (written as the DC names them), mode 0600."""
        if path is None:
            path = self.dir / f"{principal.replace('/', '_').replace('@', '_at_')}.keytab"
        path.unlink(missing_ok=True)
        self.samba_tool("domain", "exportkeytab", str(path), f"--principal={principal}")
        path.chmod(0o600)
        return path

    @contextlib.contextmanager
    def users(self, *names: str, must_change: bool = False) -> Iterator[list[ADUser]]:
        """Accounts with random passwords, deleted afterwards."""
        made = []
        try:
            for name in names:
                made.append(self.create_user(name, "Pw-" + secrets.token_urlsafe(12), must_change=must_change))
            yield made
        finally:
            for user in made:
                with contextlib.suppress(SandboxError):
                    self.samba_tool("user", "delete", user.name)


# The member's PAM service: pam_winbind alone, as a site's hub service would use it.
MEMBER_PAM_SERVICE = "pamkrb-ad"
MEMBER_PAM_SERVICE_TEXT = """\
# Written by pamkrb's test harness (tools/sandbox/samba.py), inside a mount namespace only.
auth     required pam_winbind.so
account  required pam_winbind.so
"""
# idmap: the domain's users get 4000000 + RID (the rid backend), others 3000000+.
MEMBER_IDMAP_BASE = 4000000


class DomainMember:
    """This host joined to the DC's domain with winbind, seen only from mount
    namespaces of its own.

    Every member process (``net ads join``, winbindd, and whatever
    :meth:`run` runs) sees, over the host's files, bind mounts of the
    member's own: ``/etc/samba`` (its smb.conf), ``/etc/nsswitch.conf``
    (``passwd``/``group``: ``files winbind``), ``/etc/pam.d`` (the host's
    services plus :data:`MEMBER_PAM_SERVICE`), ``/etc/krb5.conf`` (the DC's
    realm), ``/etc/resolv.conf`` (the DC's DNS), and ``/var/lib/samba``,
    ``/var/cache/samba``, ``/var/log/samba`` and ``/run/samba`` (where
    clients find winbindd's socket whatever smb.conf says). The host's own
    PAM and NSS never mention winbind. winbindd runs in a PID namespace: it
    starts ``samba-dcerpcd`` on demand, which detaches.
    """

    def __init__(self, dc: DomainController, *, netbios_name: str | None = None, default_domain: bool = False) -> None:
        self.dc = dc
        self.netbios_name = netbios_name or f"PKM{secrets.token_hex(4).upper()}"
        self.default_domain = default_domain
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-admember-"))
        self.dir.chmod(0o755)
        self.samba_dir = self.dir / "etc-samba"
        self.smb_conf = self.samba_dir / "smb.conf"
        self.krb5_conf = self.dir / "krb5.conf"
        # The member's machine keytab (host/ and NAME$ keys, written by the
        # join; krb5.conf's default keytab in the member's namespace). Named
        # by KRB5_KTNAME in every member process: net and winbindd run
        # libkrb5 with a krb5.conf Samba generates, so default_keytab_name
        # alone is ignored, and every join added its keys to the host's
        # /etc/krb5.keytab.
        self.keytab = self.dir / "krb5.keytab"
        self.log_dir = self.dir / "log"
        # Domain users' home directories (winbind's template homedir); each
        # made only when a test needs it (make_home).
        self.home_root = self.dir / "home"
        self._proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None

    def _binds(self) -> tuple[tuple[bytes, bytes], ...]:
        pairs = [
            (self.dir / "run", "/run/samba"),
            (self.samba_dir, "/etc/samba"),
            (self.dir / "lib", "/var/lib/samba"),
            (self.dir / "cache", "/var/cache/samba"),
            (self.log_dir, "/var/log/samba"),
            (self.dir / "nsswitch.conf", "/etc/nsswitch.conf"),
            (self.dir / "resolv.conf", "/etc/resolv.conf"),
            (self.dir / "pam.d", "/etc/pam.d"),
            (self.krb5_conf, "/etc/krb5.conf"),
        ]
        for _, target in pairs:
            if target != "/run/samba" and not os.path.exists(target):
                raise SandboxError(f"{target} does not exist on this host (install samba: tools/setup.sh)")
        return tuple((os.fsencode(source), os.fsencode(target)) for source, target in pairs)

    def _write_files(self) -> None:
        for sub in ("run", "lib", "lib/private", "cache", "log", "etc-samba", "pam.d", "home"):
            (self.dir / sub).mkdir(mode=0o755)
        domain = self.dc.netbios_domain
        self.smb_conf.write_text(
            f"""\
[global]
    workgroup = {domain}
    realm = {self.dc.realm}
    security = ads
    netbios name = {self.netbios_name}
    disable netbios = yes
    kerberos method = secrets and keytab
    winbind use default domain = {"yes" if self.default_domain else "no"}
    winbind offline logon = no
    template shell = /bin/bash
    template homedir = {self.home_root}/%U
    idmap config * : backend = tdb
    idmap config * : range = 3000000-3999999
    idmap config {domain} : backend = rid
    idmap config {domain} : range = {MEMBER_IDMAP_BASE}-{MEMBER_IDMAP_BASE + 999999}
    log file = /var/log/samba/log.%m
"""
        )
        (self.dir / "resolv.conf").write_text(f"nameserver {self.dc.address}\n")
        host_nss = Path("/etc/nsswitch.conf").read_text()
        member_nss = []
        for line in host_nss.splitlines():
            key = line.split(":", 1)[0].strip()
            member_nss.append(f"{key}: files winbind" if key in ("passwd", "group") else line)
        (self.dir / "nsswitch.conf").write_text("\n".join(member_nss) + "\n")
        self.krb5_conf.write_text(
            f"""\
[libdefaults]
    default_realm = {self.dc.realm}
    default_keytab_name = FILE:{self.keytab}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false

[realms]
    {self.dc.realm} = {{
        kdc = {self.dc.address}
    }}
"""
        )
        pam_dir = self.dir / "pam.d"
        for entry in Path("/etc/pam.d").iterdir():
            if entry.is_file() and not entry.name.startswith("pamkrb-"):
                shutil.copy2(entry, pam_dir / entry.name)
        (pam_dir / MEMBER_PAM_SERVICE).write_text(MEMBER_PAM_SERVICE_TEXT)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env["KRB5_CONFIG"] = "/etc/krb5.conf"  # the member's, inside its namespace
        env["KRB5_KTNAME"] = f"FILE:{self.keytab}"
        env["LC_ALL"] = "C"
        return env

    def start(self, timeout: float = 30) -> None:
        """Join the domain (``net ads join`` as Administrator, no DNS update)
        and start winbindd; return once ``wbinfo`` reaches it and the trust
        with the DC checks out."""
        if self._proc is not None:
            return
        began = time.monotonic()
        try:
            self._write_files()
            binds = self._binds()
            # A DC that has just started answers "failed to lookup DC info
            # ... over rpc: An internal error occurred" for a few seconds
            # (its RPC services still starting): asked again until the deadline.
            attempts: list[subprocess.CompletedProcess[str]] = []

            def joined_or_final() -> bool:
                attempts.append(self._join(binds, timeout))
                last = attempts[-1]
                return last.returncode == 0 or "failed to lookup DC info" not in last.stdout + last.stderr

            with contextlib.suppress(SandboxError):
                wait_until(joined_or_final, timeout=timeout, interval=1, message="net ads join")
            joined = attempts[-1]
            (self.log_dir / "join.log").write_text(joined.stdout + joined.stderr)
            if joined.returncode != 0:
                raise SandboxError(f"net ads join exited with {joined.returncode}:\n{joined.stdout}{joined.stderr}")
            with (self.log_dir / "winbindd.stdout").open("wb") as out:
                self._proc = subprocess.Popen(
                    [*_PID_NAMESPACE, "winbindd", "--foreground", "--debug-stdout"],
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=lambda: _samba_private_view(None, (b"/run",), binds=binds, die_with_parent=True),
                )

            def ready() -> bool:
                if self._proc is not None and self._proc.poll() is not None:
                    raise SandboxError(f"winbindd exited with {self._proc.returncode}")
                if self.winbindd_pid() is None:
                    return False
                return self.run(["wbinfo", "--ping-dc"], check=False).returncode == 0

            wait_until(ready, timeout=timeout, interval=0.1, message="winbindd of the domain member")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _join(self, binds: tuple[tuple[bytes, bytes], ...], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *_PID_NAMESPACE,
                "net",
                "ads",
                "join",
                "--no-dns-updates",
                "-U",
                f"Administrator%{self.dc.admin_password}",
            ],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=lambda: _samba_private_view(None, (b"/run",), binds=binds),
        )

    def winbindd_pid(self) -> int | None:
        """Host PID of winbindd (PID 1 of the member's PID namespace)."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        with contextlib.suppress(OSError, IndexError):
            return int(Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text().split()[0])
        return None

    def run(
        self, args: list[str], *, input: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` on the member: in winbindd's mount and PID namespaces
        (the member's files; anything it starts dies with winbindd)."""
        pid = self.winbindd_pid()
        if pid is None:
            raise SandboxError("the domain member's winbindd is not running")
        result = subprocess.run(
            ["nsenter", f"--target={pid}", "--mount", "--pid", "--", *args],
            env=self._env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def enter(self) -> list[str]:
        """A command prefix that runs a program in the member's mount
        namespace (its nsswitch.conf, pam.d, krb5.conf, winbindd's socket)
        but the host's PID namespace, so it outlives nothing it should not:
        ``nsenter`` execs the program itself (e.g. a hub, see
        sandbox.hub.Hub's ``command_prefix``)."""
        pid = self.winbindd_pid()
        if pid is None:
            raise SandboxError("the domain member's winbindd is not running")
        return ["nsenter", f"--target={pid}", "--mount", "--"]

    def account(self, name: str) -> tuple[str, int, int, str]:
        """``getent passwd name`` on the member: (name, uid, gid, home)."""
        fields = self.run(["getent", "passwd", name]).stdout.strip().split(":")
        return fields[0], int(fields[2]), int(fields[3]), fields[5]

    def make_home(self, name: str) -> Path:
        """The domain user's home directory (winbind's template homedir,
        under :attr:`home_root`), created 0700 and owned by them, as a
        site's pam_mkhomedir or provisioning would."""
        _, uid, gid, home = self.account(name)
        path = Path(home)
        if path.parent != self.home_root:
            raise SandboxError(f"{name}'s home {home} is not under {self.home_root}")
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, uid, gid)
        return path

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM winbindd (SIGKILL after ``timeout``); its PID namespace ends with it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), sig)
            try:
                proc.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)

    def close(self) -> None:
        """Stop winbindd and delete the member's directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
