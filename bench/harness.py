"""Building blocks of the benchmarks: statistics, realms and users, hubs, a silent KDC.

Realms, users and hubs come from ``tools/sandbox/`` (the same ones the tests
use); this module only adds what measuring needs. Everything started here is
stopped in ``finally`` blocks, by PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import pwd
import secrets
import string
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sandbox

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ARTIFACTS = REPO / "test-artifacts" / "bench"
REALM_NAME = "PAMKRB.BENCH"


# --------------------------------------------------------------------------
# statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True)
class Stats:
    """Median and p99 of a list of durations, in seconds."""

    n: int
    median: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            return cls(0, math.nan, math.nan, math.nan)
        return cls(len(samples), percentile(samples, 50), percentile(samples, 99), max(samples))

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def timed(func: Any, *args: Any, **kwargs: Any) -> float:
    """Seconds one call of ``func`` takes."""
    started = time.perf_counter()
    func(*args, **kwargs)
    return time.perf_counter() - started


# --------------------------------------------------------------------------
# realms and users


@contextlib.contextmanager
def realm(*, max_life: int = 10 * 3600, start: bool = True) -> Iterator[sandbox.Realm]:
    """A throwaway realm (KDC started unless ``start`` is False), closed on exit."""
    created = sandbox.Realm(REALM_NAME, max_life=max_life)
    try:
        if start:
            created.start()
        yield created
    finally:
        created.close()


@contextlib.contextmanager
def krb5_config(used: sandbox.Realm) -> Iterator[None]:
    """Point this process (libkrb5 in-process, and every child) at ``used``."""
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("KRB5")}
    os.environ.update(used.env())
    try:
        yield
    finally:
        for key in [key for key in os.environ if key.startswith("KRB5")]:
            del os.environ[key]
        os.environ.update(saved)


def keytab_path(user: sandbox.UnixUser, suffix: str = "keytab") -> str:
    return str(user.home / f"{user.name}.{suffix}")


@contextlib.contextmanager
def unix_users(count: int) -> Iterator[list[sandbox.UnixUser]]:
    """``count`` fresh Unix users with random passwords; removed on exit."""
    users: list[sandbox.UnixUser] = []
    try:
        for _ in range(count):
            users.append(sandbox.UnixUser.create("pkb"))
        yield users
    finally:
        for user in users:
            user.remove()


def provision(used: sandbox.Realm, users: list[sandbox.UnixUser], suffix: str = "keytab") -> None:
    """Principal ``<name>@REALM`` and keytab ``~/<name>.<suffix>`` (0600, the user's) for each user."""
    for user in users:
        principal = used.add_principal(user.name)
        used.write_keytab(principal, keytab_path(user, suffix), user.uid, user.gid)


@contextlib.contextmanager
def many_unix_users(count: int, prefix: str = "pkbr") -> Iterator[list[sandbox.UnixUser]]:
    """``count`` accounts for the broker comparison: no home, no password (locked), no login.

    One ``useradd -M`` each (~20 ms; nothing is copied from /etc/skel and no
    password is hashed), marked with the sandbox's GECOS comment like every
    sandbox account, named ``<prefix><4 random letters><index>``; removed
    with ``userdel`` on exit (they own no processes and no home).
    """
    tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    created: list[str] = []
    try:
        users = []
        for i in range(count):
            name = f"{prefix}{tag}{i:04d}"
            subprocess.run(
                ["useradd", "-M", "-s", "/usr/sbin/nologin", "-c", sandbox.SANDBOX_GECOS, name],
                capture_output=True,
                text=True,
                check=True,
            )
            created.append(name)
            entry = pwd.getpwnam(name)
            users.append(sandbox.UnixUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), ""))
        yield users
    finally:
        for name in created:
            subprocess.run(["userdel", name], capture_output=True, check=False)


def provision_many(used: sandbox.Realm, users: list[sandbox.UnixUser], directory: Path) -> None:
    """Principal ``<name>@REALM`` and keytab ``directory/<name>.keytab`` for each user, the broker's layout.

    One ``kadmin.local`` process reads all the ``addprinc`` and ``ktadd``
    commands on stdin (one process per command would cost ~1,000 times its
    start-up). kadmin.local creates the keytabs root-owned, mode 0600, which
    is checked; ``directory`` should be root's alone (0700).
    """
    commands = []
    for user in users:
        principal = used.qualify(user.name)
        keytab = directory / f"{user.name}.keytab"
        commands += [f"addprinc -randkey {principal}", f"ktadd -k {keytab} -norandkey {principal}"]
    done = subprocess.run(
        ["kadmin.local", "-r", used.name],
        input="\n".join(commands) + "\n",
        env=used._admin_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    # As in Realm.kadmin: failures go to stderr with exit status 0; addprinc's
    # note about having no policy is the one harmless line.
    problems = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("No policy")]
    if done.returncode != 0 or problems:
        raise sandbox.SandboxError(f"kadmin.local exited with {done.returncode}: {' '.join(problems[:5])}")
    for user in users:
        st = (directory / f"{user.name}.keytab").lstat()
        if st.st_uid != 0 or st.st_mode & 0o077:
            raise sandbox.SandboxError(f"keytab of {user.name}: owner {st.st_uid}, mode {st.st_mode & 0o7777:04o}")


# --------------------------------------------------------------------------
# the KDC's log


def kdc_request_times(used: sandbox.Realm, kinds: tuple[str, ...] = ("AS_REQ", "TGS_REQ")) -> list[tuple[float, str]]:
    """(epoch second, kind) of every request line in the realm's KDC log.

    Lines start with a local time to the second and no year ("Dec 01 22:42:45
    host krb5kdc[123](info): AS_REQ ..."); the current year is assumed.
    """
    try:
        text = used.kdc_log.read_text(errors="replace")
    except FileNotFoundError:
        return []
    year = datetime.datetime.now().year
    out = []
    for line in text.splitlines():
        kind = next((k for k in kinds if f" {k} " in line), None)
        if kind is None:
            continue
        stamp = datetime.datetime.strptime(f"{year} {line[:15]}", "%Y %b %d %H:%M:%S")
        out.append((time.mktime(stamp.timetuple()), kind))
    return out


# --------------------------------------------------------------------------
# hubs


class BenchHub(sandbox.Hub):
    """A sandbox hub whose Python path includes ``bench/`` (for the recipe authenticator)."""

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["PYTHONPATH"] = str(BENCH_DIR)
        return env


# What every benchmark hub shares: the fast pam_unix service for all three
# authenticators, no spawning, and INFO logs (DEBUG would add log I/O per request).
HUB_CONFIG: dict[str, Any] = {
    "PAMAuthenticator.service": sandbox.PAM_TEST_SERVICE,
    "JupyterHub.implicit_spawn_seconds": 0,
    "JupyterHub.log_level": "INFO",
}

AUTHENTICATORS = {
    "stock PAM": "pam",
    "pamkrb": "pamkrb",
    "recipe": "recipe_authenticator.RecipeAuthenticator",
}


def start_hub(
    used: sandbox.Realm, label: str, config: dict[str, Any] | None = None, extra_config: str = ""
) -> BenchHub:
    """Start a hub with the authenticator called ``label`` in AUTHENTICATORS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"hub-{label.replace(' ', '-')}-{os.getpid()}-{time.monotonic_ns()}.log"
    hub = BenchHub(
        used,
        config={**HUB_CONFIG, **(config or {})},
        authenticator_class=AUTHENTICATORS[label],
        log_path=log,
        extra_config=extra_config,
    )
    hub.start(timeout=60)
    return hub


def http_session() -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not reach loopback
    return session


def post_login(session: Any, base_url: str, user: sandbox.UnixUser, timeout: float = 120) -> tuple[float, int]:
    """GET the login form (untimed), then time POST /hub/login until the hub answers.

    The redirect (302 on success) is not followed, so no server is spawned.
    Returns (seconds, HTTP status).
    """
    session.cookies.clear()
    session.get(f"{base_url}/hub/login", timeout=30).raise_for_status()
    form = {"username": user.name, "password": user.password, "_xsrf": session.cookies.get("_xsrf")}
    started = time.perf_counter()
    response = session.post(f"{base_url}/hub/login", data=form, allow_redirects=False, timeout=timeout)
    return time.perf_counter() - started, response.status_code


# --------------------------------------------------------------------------
# a KDC that never answers: the same listener the hardening tests use

SilentKDC = sandbox.SilentKDC


# --------------------------------------------------------------------------
# machine activity


def process_cpu(pid: int) -> float:
    """CPU seconds used by ``pid`` and its children it has waited for (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of /proc/PID/stat (1-based).
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def hub_pids(hub: sandbox.Hub) -> dict[str, int]:
    """PIDs of a running hub and its proxy."""
    pids = {"hub": hub._proc.pid} if hub._proc is not None else {}
    with contextlib.suppress(OSError, ValueError):
        pids["proxy"] = int((hub.dir / "proxy.pid").read_text().strip())
    return pids


def proc_status(pid: int, field: str) -> int:
    """An integer field of /proc/<pid>/status, e.g. VmRSS (KiB) or Threads; 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of /proc/PID/stat (1-based).
        ticks[int(entry.name)] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


def busy_processes(interval: float = 1.0, top: int = 6) -> list[tuple[str, float]]:
    """The ``top`` process names by CPU use over ``interval`` seconds (percent of one core)."""
    hz = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    time.sleep(interval)
    after = _cpu_ticks()
    by_name: dict[str, float] = {}
    for pid, (comm, total) in after.items():
        if pid == os.getpid() or pid not in before:
            continue
        used = (total - before[pid][1]) / hz / interval * 100
        if used > 0:
            by_name[comm] = by_name.get(comm, 0.0) + used
    return sorted(by_name.items(), key=lambda item: -item[1])[:top]
