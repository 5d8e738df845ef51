"""The seven comparisons of ``bench/run.py``; each sets up and tears down its own realm, users and hubs.

Every function takes a :class:`Plan` (the sizes) and returns a JSON-able dict
of results. Durations are seconds. Where two variants are compared on the same
machine they run interleaved in rounds, so a burst of load from something else
on the machine hits both rather than one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import (
    BENCH_DIR,
    SilentKDC,
    Stats,
    http_session,
    hub_pids,
    kdc_request_times,
    keytab_path,
    krb5_config,
    many_unix_users,
    post_login,
    proc_status,
    process_cpu,
    provision,
    provision_many,
    realm,
    start_hub,
    timed,
    unix_users,
)
from recipe_authenticator import recipe_kinit

import sandbox
from pamkrb import _native
from pamkrb.lifecycle import TicketSettings
from pamkrb.refresher import TicketRefresher


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    rounds: int = 10  # interleaving rounds for the per-call comparisons
    hot_fast_n: int = 5000  # pamkrb trigger and inspect_ticket calls
    hot_subprocess_n: int = 300  # recipe per-save work and klist -s calls
    renewal_n: int = 300
    login_users: int = 12
    login_sequential_n: int = 100
    login_concurrent_n: int = 200
    login_clients: int = 8
    kdc_users: int = 20
    kdc_time_scale: int = 60  # a simulated hour lasts 3600 / scale seconds
    storm_logins: int = 20
    storm_kdc_timeout: float = 15.0
    storm_window: float = 20.0  # seconds of /hub/health probing after the logins start
    storm_idle: float = 3.0  # seconds of probing before they start
    health_interval: float = 0.05
    memory_kinit_checkpoints: tuple[int, ...] = (1000, 5000, 10000, 20000)
    memory_pam_checkpoints: tuple[int, ...] = (200, 1000, 2000)
    memory_pam_threads: int = 2
    broker_users: int = 1000
    broker_lifetime: int = 120  # realm max_life: 10 h scaled down 300x
    broker_margin: int = 60
    broker_renewable: int = 300  # the hub's renewable_lifetime: a keytab kinit every ~4 renewals
    broker_idle: float = 10.0  # seconds of /hub/health probing with no user tracked
    broker_warmup: float = 120.0  # from the first server's start to the window (servers start over one period)
    broker_window: float = 600.0
    broker_rss_interval: float = 5.0  # seconds between samples of the hub's VmRSS
    # one run each, in this order, same users and realm (BROKER_VARIANTS); repeat names to interleave A and B
    broker_variants: tuple[str, ...] = ("as shipped",)
    hadoop_kernel_runs: int = 3  # timed PySpark kernels (bench/hadoop.py), after one warm-up
    hadoop_suite: bool = True  # run the Hadoop test files for their durations (about 6 minutes)


QUICK = Plan(
    rounds=4,
    hot_fast_n=2000,
    hot_subprocess_n=40,
    renewal_n=40,
    login_users=4,
    login_sequential_n=20,
    login_concurrent_n=40,
    kdc_users=6,
    kdc_time_scale=360,
    storm_kdc_timeout=5.0,
    storm_window=8.0,
    storm_idle=1.0,
    memory_kinit_checkpoints=(200, 1000),
    memory_pam_checkpoints=(20, 100),
    broker_users=50,
    broker_idle=5.0,
    broker_warmup=75.0,
    broker_window=120.0,
    hadoop_kernel_runs=1,
    hadoop_suite=False,
)


def _chunks(total: int, rounds: int) -> list[int]:
    """Split ``total`` into ``rounds`` near-equal positive parts."""
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds) if base or i < extra]


# --------------------------------------------------------------------------
# 1. hot path


async def _time_triggers(refresher: TicketRefresher, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await refresher.trigger("save")
        samples.append(time.perf_counter() - started)
    return samples


def hot_path(plan: Plan) -> dict[str, Any]:
    """Per notebook open/save with a fresh ticket: pamkrb trigger vs the recipe vs klist -s."""
    samples: dict[str, list[float]] = {"trigger": [], "inspect": [], "klist": [], "recipe": []}
    klist_failures = 0
    with realm() as used, krb5_config(used), unix_users(1) as (user,):
        provision(used, [user])
        principal, keytab = used.qualify(user.name), keytab_path(user)
        # The user's cache as pamkrb installs it at login; the recipe rewrites
        # its own /tmp/krb5cc_<uid> on every save, so pamkrb gets another path
        # (same directory) and its stat key stays put, as it would in real use.
        ccache = f"/tmp/krb5cc_{user.uid}_pamkrb"
        try:
            _native.obtain_ticket(principal, keytab, ccache, uid=user.uid, gid=user.gid)
            refresher = TicketRefresher(TicketSettings(principal, keytab, ccache, refresh_margin=60))
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(_time_triggers(refresher, 20))  # first look parses the cache
                for fast, slow in zip(
                    _chunks(plan.hot_fast_n, plan.rounds), _chunks(plan.hot_subprocess_n, plan.rounds)
                ):
                    samples["trigger"] += loop.run_until_complete(_time_triggers(refresher, fast))
                    samples["inspect"] += [timed(_native.inspect_ticket, ccache) for _ in range(fast)]
                    for _ in range(slow):
                        samples["recipe"].append(timed(recipe_kinit, user.name, keytab, principal))
                        started = time.perf_counter()
                        done = subprocess.run(["klist", "-s", "-c", f"FILE:{ccache}"], check=False)
                        samples["klist"].append(time.perf_counter() - started)
                        klist_failures += done.returncode != 0
            finally:
                loop.close()
            renewals = refresher.renewals
        finally:
            Path(ccache).unlink(missing_ok=True)
    return {
        **{name: Stats.of(values).as_dict() for name, values in samples.items()},
        "pamkrb_renewals": renewals,  # 0: every trigger found the ticket fresh
        "klist_failures": klist_failures,
        "kdc_as_req": None,
    }


# --------------------------------------------------------------------------
# 2. renewal


def renewal(plan: Plan) -> dict[str, Any]:
    """In-process kinit + atomic install vs kinit -kt as a subprocess + chown/chmod by path."""
    pamkrb: list[float] = []
    kinit: list[float] = []
    tmpfs: list[float] = []
    with realm() as used, krb5_config(used), unix_users(1) as (user,):
        provision(used, [user])
        principal, keytab, ccache = used.qualify(user.name), keytab_path(user), str(user.default_ccache)
        # Diagnostic: the same call with the cache on tmpfs; the difference is
        # what creating, writing and renaming the file costs on /tmp's file system.
        tmpfs_ccache = f"/dev/shm/krb5cc_{user.uid}_bench" if _is_tmpfs("/dev/shm") else None

        def subprocess_kinit() -> None:
            subprocess.run(["kinit", "-kt", keytab, "-c", ccache, principal], check=True)
            os.chown(ccache, user.uid, user.gid)
            os.chmod(ccache, 0o600)

        def native_kinit() -> None:
            _native.obtain_ticket(principal, keytab, ccache, uid=user.uid, gid=user.gid)

        def native_kinit_tmpfs() -> None:
            _native.obtain_ticket(principal, keytab, tmpfs_ccache, uid=user.uid, gid=user.gid)

        try:
            native_kinit()
            subprocess_kinit()
            for count in _chunks(plan.renewal_n, plan.rounds):
                pamkrb += [timed(native_kinit) for _ in range(count)]
                kinit += [timed(subprocess_kinit) for _ in range(count)]
                if tmpfs_ccache:
                    tmpfs += [timed(native_kinit_tmpfs) for _ in range(count)]
            one_native = (
                "import sys; from pamkrb import _native; "
                "_native.obtain_ticket(*sys.argv[1:4], uid=int(sys.argv[4]), gid=int(sys.argv[5]))"
            )
            syscalls = {
                "pamkrb": _file_syscalls(
                    [sys.executable, "-c", one_native, principal, keytab, ccache, str(user.uid), str(user.gid)]
                ),
                "kinit": _file_syscalls(["kinit", "-kt", keytab, "-c", ccache, principal]),
            }
        finally:
            if tmpfs_ccache:
                Path(tmpfs_ccache).unlink(missing_ok=True)
    return {
        "pamkrb": Stats.of(pamkrb).as_dict(),
        "kinit": Stats.of(kinit).as_dict(),
        "pamkrb_tmpfs": Stats.of(tmpfs).as_dict(),
        "ccache_filesystem": _filesystem("/tmp"),
        "syscalls": syscalls,
    }


def _file_syscalls(args: list[str]) -> dict[str, int] | None:
    """How often one run of ``args`` calls fsync/fdatasync/rename*, by strace; None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.NamedTemporaryFile(prefix="pamkrb-bench-strace-") as trace:
        subprocess.run(
            [strace, "-f", "-qq", "-o", trace.name, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", *args],
            capture_output=True,
            check=False,
        )
        lines = Path(trace.name).read_text().splitlines()
    counts: Counter[str] = Counter()
    for line in lines:
        # With -f every line starts with the PID: "1234 renameat2(...) = 0".
        match = re.match(r"^(?:\d+\s+)?(\w+)\(", line)
        if match:
            call = match[1]
            counts["rename" if call.startswith("rename") else "fsync" if "sync" in call else call] += 1
    return {"fsync": counts["fsync"], "rename": counts["rename"]}


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, longest mount point first."""
    rows = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted(((point, kind) for point, kind in rows), key=lambda row: -len(row[0]))


def _filesystem(path: str) -> str:
    for point, kind in _mounts():
        if path == point or path.startswith(point.rstrip("/") + "/"):
            return kind
    return "?"


def _is_tmpfs(path: str) -> bool:
    return _filesystem(path) == "tmpfs"


# --------------------------------------------------------------------------
# 3. login through a real hub


def _concurrent_logins(base_url: str, users: list[sandbox.UnixUser], count: int, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    tickets = itertools.count()

    def client() -> None:
        session = http_session()
        while (i := next(tickets)) < count:
            seconds, status = post_login(session, base_url, users[i % len(users)])
            with lock:
                latencies.append(seconds)
                statuses[status] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall": time.perf_counter() - started, "latencies": latencies, "statuses": statuses}


def hub_login(plan: Plan) -> dict[str, Any]:
    """POST /hub/login until the 302: stock PAMAuthenticator vs pamkrb vs the recipe."""
    labels = ["stock PAM", "pamkrb", "recipe"]
    hubs: dict[str, Any] = {}
    sequential: dict[str, list[float]] = {label: [] for label in labels}
    concurrent: dict[str, list[float]] = {label: [] for label in labels}
    walls: dict[str, float] = dict.fromkeys(labels, 0.0)
    statuses: dict[str, Counter[int]] = {label: Counter() for label in labels}
    # CPU seconds spent during the concurrent phase by the hub (with the
    # subprocesses it reaped), its proxy, the KDC and this process (the clients).
    cpu: dict[str, Counter[str]] = {label: Counter() for label in labels}
    with realm() as used, unix_users(plan.login_users) as users:
        provision(used, users)
        sandbox.install_pam_test_service()
        try:
            # All three run for the whole comparison and take turns, so drifting
            # background load is shared out evenly.
            for label in labels:
                hubs[label] = start_hub(used, label)
            session = http_session()
            for label in labels:  # first logins create the users in the hub database
                for user in users:
                    _, status = post_login(session, hubs[label].url, user)
                    if status != 302:
                        raise sandbox.SandboxError(
                            f"warm-up login on the {label} hub: HTTP {status}\n{hubs[label].log_tail()}"
                        )
            rounds = max(2, plan.rounds // 2)
            for i, count in enumerate(_chunks(plan.login_sequential_n, rounds)):
                for label in labels[i % 3 :] + labels[: i % 3]:
                    for j in range(count):
                        seconds, status = post_login(session, hubs[label].url, users[j % len(users)])
                        sequential[label].append(seconds)
                        statuses[label][status] += 1
            kdc_pid = used._proc.pid if used._proc is not None else 0
            for i, count in enumerate(_chunks(plan.login_concurrent_n, 2)):
                for label in labels[i % 3 :] + labels[: i % 3]:
                    pids = {**hub_pids(hubs[label]), "kdc": kdc_pid}
                    before = {name: process_cpu(pid) for name, pid in pids.items()}
                    client_before = time.process_time()
                    done = _concurrent_logins(hubs[label].url, users, count, plan.login_clients)
                    cpu[label]["client"] += time.process_time() - client_before
                    for name, pid in pids.items():
                        cpu[label][name] += process_cpu(pid) - before[name]
                    concurrent[label] += done["latencies"]
                    walls[label] += done["wall"]
                    statuses[label].update(done["statuses"])
            as_req = used.kdc_requests("AS_REQ")
        finally:
            for hub in hubs.values():
                hub.close()
    results: dict[str, Any] = {
        "users": plan.login_users,
        "clients": plan.login_clients,
        "kdc_as_req_total": as_req,
    }
    for label in labels:
        results[label] = {
            "sequential": Stats.of(sequential[label]).as_dict(),
            "concurrent": Stats.of(concurrent[label]).as_dict(),
            "throughput": len(concurrent[label]) / walls[label] if walls[label] else 0.0,
            "statuses": {str(code): n for code, n in sorted(statuses[label].items())},
            "cpu_ms_per_login": {
                name: seconds * 1000 / max(1, len(concurrent[label])) for name, seconds in cpu[label].items()
            },
        }
    return results


# --------------------------------------------------------------------------
# 4. KDC load over a simulated hour


async def _autosave_pamkrb(refreshers: list[TicketRefresher], interval: float, duration: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = len(refreshers)

    async def notebook(index: int, refresher: TicketRefresher) -> None:
        for k in itertools.count():
            at = start + interval * (index / count + k)
            if at >= start + duration:
                return
            await asyncio.sleep(max(0.0, at - loop.time()))
            await refresher.trigger("save")

    await asyncio.gather(*(notebook(i, r) for i, r in enumerate(refreshers)))


def _autosave_recipe(
    users: list[sandbox.UnixUser], used: sandbox.Realm, interval: float, duration: float, out: dict[str, Any]
) -> None:
    count = len(users)
    # The same moments as the pamkrb side: user i saves at (i/count + k) intervals.
    schedule = []
    for i in range(count):
        k = 0
        while (at := interval * (i / count + k)) < duration:
            schedule.append((at, i))
            k += 1
    schedule.sort()
    env = used.client_env()
    start = time.perf_counter()
    late = 0.0
    failures = 0
    for at, i in schedule:
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            late = max(late, -delay)
        user = users[i]
        try:
            recipe_kinit(user.name, keytab_path(user), used.qualify(user.name), env=env)
        except (OSError, subprocess.CalledProcessError):
            failures += 1
    out.update(saves=len(schedule), max_lateness=late, failures=failures)


def kdc_load(plan: Plan) -> dict[str, Any]:
    """AS_REQs for N users autosaving every 120 s over a simulated hour, time scaled down."""
    scale = plan.kdc_time_scale
    interval = 120 / scale
    duration = 3600 / scale
    max_life = 10 * 3600 // scale
    margin = 3600 // scale
    n = plan.kdc_users
    with (
        realm(max_life=max_life) as pamkrb_realm,
        realm(max_life=max_life) as recipe_realm,
        krb5_config(pamkrb_realm),
        unix_users(n) as users,
        tempfile.TemporaryDirectory(prefix="pamkrb-bench-") as caches,
    ):
        provision(pamkrb_realm, users, "pamkrb.keytab")
        provision(recipe_realm, users, "keytab")
        # Steady state: tickets were obtained at random earlier moments, so
        # their remaining lifetimes are spread evenly between the refresh margin
        # and the maximum (right after a renewal a ticket has max_life left; it
        # is renewed when margin is left).
        refreshers = []
        for i, user in enumerate(users):
            principal = pamkrb_realm.qualify(user.name)
            config = TicketSettings(
                principal, keytab_path(user, "pamkrb.keytab"), f"{caches}/krb5cc_{user.name}", refresh_margin=margin
            )
            remaining = margin + (max_life - margin) * (i + 0.5) / n
            _native.obtain_ticket(config.principal, config.keytab, config.ccache, lifetime=int(remaining))
            refreshers.append(TicketRefresher(config))
        time.sleep(0.5)
        pamkrb_before = pamkrb_realm.kdc_requests("AS_REQ")
        recipe_before = recipe_realm.kdc_requests("AS_REQ")
        recipe_out: dict[str, Any] = {}
        recipe_thread = threading.Thread(
            target=_autosave_recipe, args=(users, recipe_realm, interval, duration, recipe_out), daemon=True
        )
        started = time.perf_counter()
        recipe_thread.start()
        asyncio.run(_autosave_pamkrb(refreshers, interval, duration))
        recipe_thread.join()
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # let the KDCs finish writing their logs
        pamkrb_as_req = pamkrb_realm.kdc_requests("AS_REQ") - pamkrb_before
        recipe_as_req = recipe_realm.kdc_requests("AS_REQ") - recipe_before
    return {
        "users": n,
        "scale": scale,
        "interval": interval,
        "duration": duration,
        "elapsed": elapsed,
        "max_life": max_life,
        "margin": margin,
        "pamkrb": {
            "autosaves": sum(sum(r.triggers.values()) for r in refreshers),
            "renewals": sum(r.renewals for r in refreshers),
            "as_req": pamkrb_as_req,
        },
        "recipe": {**recipe_out, "as_req": recipe_as_req},
    }


# --------------------------------------------------------------------------
# 5. the event loop while the KDC hangs


def _probe_health(url: str, interval: float, until: float, out: list[tuple[float, float]]) -> None:
    session = http_session()
    next_at = time.perf_counter()
    while next_at < until:
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        started = time.perf_counter()
        try:
            session.get(url, timeout=30).raise_for_status()
            out.append((started, time.perf_counter() - started))
        except Exception:  # a failed probe counts as one very slow answer
            out.append((started, float("inf")))
        next_at += interval


def _storm(plan: Plan, label: str) -> dict[str, Any]:
    with realm(start=False) as used, unix_users(plan.storm_logins) as users:
        provision(used, users)
        sandbox.install_pam_test_service()
        silent = SilentKDC(used.port)
        hub = None
        logins: list[tuple[float, int | str]] = []
        try:
            config = {"PAMKerberosAuthenticator.kdc_timeout": plan.storm_kdc_timeout} if label == "pamkrb" else {}
            hub = start_hub(used, label, config)
            health_url = f"http://127.0.0.1:{hub.hub_port}/hub/health"
            probes: list[tuple[float, float]] = []
            storm_at = time.perf_counter() + plan.storm_idle
            until = storm_at + plan.storm_window
            prober = threading.Thread(
                target=_probe_health, args=(health_url, plan.health_interval, until, probes), daemon=True
            )
            prober.start()
            lock = threading.Lock()

            def log_in(user: sandbox.UnixUser) -> None:
                try:
                    seconds, status = post_login(http_session(), hub.url, user, timeout=plan.storm_window + 120)
                    result: tuple[float, int | str] = (seconds, status)
                except Exception as e:
                    result = (time.perf_counter() - storm_at, type(e).__name__)
                with lock:
                    logins.append(result)

            time.sleep(max(0.0, storm_at - time.perf_counter()))
            clients = [threading.Thread(target=log_in, args=(user,), daemon=True) for user in users]
            for client in clients:
                client.start()
            prober.join()
            with lock:
                answered_in_window = [r for r in logins if isinstance(r[1], int)]
            # Make every kinit still waiting fail now instead of after libkrb5's ~30 s.
            silent.close()
            for client in clients:
                client.join(timeout=plan.storm_window + 150)
            kdc_connections = len(silent.held)
        finally:
            silent.close()
            if hub is not None:
                hub.close()
    idle = [seconds for at, seconds in probes if at < storm_at]
    storm = [seconds for at, seconds in probes if at >= storm_at]
    return {
        "idle": Stats.of(idle).as_dict(),
        "storm": Stats.of(storm).as_dict(),
        "over_50ms": sum(1 for s in storm if s > 0.05),
        "answered_in_window": len(answered_in_window),
        "answer_times_in_window": sorted(s for s, _ in answered_in_window),
        "statuses_in_window": dict(Counter(str(status) for _, status in answered_in_window)),
        "statuses_after": dict(Counter(str(status) for _, status in logins)),
        "kdc_connections": kdc_connections,
    }


def event_loop(plan: Plan) -> dict[str, Any]:
    """/hub/health latency while N logins wait on a KDC that never answers."""
    return {
        "logins": plan.storm_logins,
        "window": plan.storm_window,
        "kdc_timeout": plan.storm_kdc_timeout,
        "interval": plan.health_interval,
        "pamkrb": _storm(plan, "pamkrb"),
        "recipe": _storm(plan, "recipe"),
    }


# --------------------------------------------------------------------------
# 6. memory


def memory(plan: Plan) -> dict[str, Any]:
    """RSS of one process after few vs many kinit+inspect and PAM cycles."""
    with realm() as used, unix_users(1) as (user,):
        provision(used, [user])
        sandbox.install_pam_test_service()
        job = {
            "principal": used.qualify(user.name),
            "keytab": keytab_path(user),
            "ccache": str(user.default_ccache),
            "uid": user.uid,
            "gid": user.gid,
            "service": sandbox.PAM_TEST_SERVICE,
            "username": user.name,
            "password": user.password,
            "kinit_checkpoints": list(plan.memory_kinit_checkpoints),
            "pam_checkpoints": list(plan.memory_pam_checkpoints),
            "pam_threads": plan.memory_pam_threads,
        }
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / "memory_probe.py")],
            input=json.dumps(job),
            env=used.client_env(),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0:
            raise sandbox.SandboxError(f"memory probe exited with {done.returncode}:\n{done.stderr}")
        samples = json.loads(done.stdout)["samples"]
    results: dict[str, Any] = {"samples": samples}
    for phase in ("kinit+inspect", "pam"):
        points = [s for s in samples if s["phase"] == phase]
        first, last = points[0], points[-1]
        growth = (last["rss_kib"] - first["rss_kib"]) / ((last["cycles"] - first["cycles"]) / 1000)
        results[phase] = {
            "first_cycles": first["cycles"],
            "first_rss_kib": first["rss_kib"],
            "last_cycles": last["cycles"],
            "last_rss_kib": last["rss_kib"],
            "growth_kib_per_1000": growth,
        }
    return results


# --------------------------------------------------------------------------
# 7. the ticket broker keeping N users' tickets


BROKER_SERVICE = "pamkrb-bench"
STALL = re.compile(r"Event loop was unresponsive for at least ([\d.]+)s")
_METRIC_LINE = re.compile(r"^(pamkrb_ticket_(?:renewals|acquisitions|checks)_total)\{([^}]*)\} (\S+)$")


def _pamkrb_counters(hub_api: str) -> Counter[str]:
    """pamkrb's ticket counters on the hub's /hub/metrics, keyed "name{labels}"."""
    text = http_session().get(f"{hub_api.removesuffix('/api')}/metrics", timeout=30).text
    counters: Counter[str] = Counter()
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            counters[f"{match[1].removeprefix('pamkrb_ticket_')}{{{match[2]}}}"] += float(match[3])
    return counters


def _hub_servers(hub_api: str, service_token: str, names: list[str], spread: float) -> None:
    """Start one server for each user (``TokenOnlySpawner``) as the admin service, one after
    another over ``spread`` seconds (or longer, as fast as the hub spawns), and wait until the
    hub says each is ready."""
    local = threading.local()
    started = time.monotonic()

    def spawn(index: int, name: str) -> None:
        # Spread over one renewal period at least: each spawn gets the user's first ticket, and
        # tickets all issued within seconds would come due together, every period.
        time.sleep(max(0.0, started + spread * index / len(names) - time.monotonic()))
        if not hasattr(local, "session"):
            local.session = http_session()
            local.session.headers["Authorization"] = f"token {service_token}"
        response = local.session.post(f"{hub_api}/users/{name}/server", timeout=120)
        if response.status_code not in (201, 202):
            raise sandbox.SandboxError(f"spawn of {name}: HTTP {response.status_code}: {response.text[:300]}")
        deadline = time.monotonic() + 300
        while not local.session.get(f"{hub_api}/users/{name}", timeout=60).json()["servers"].get("", {}).get("ready"):
            if time.monotonic() > deadline:
                raise sandbox.SandboxError(f"the server of {name} did not become ready")
            time.sleep(0.5)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(spawn, range(len(names)), names))


# What the broker's runs compare (``Plan.broker_variants``): hub settings a
# site could change without pamkrb (given a private directory on tmpfs), and
# the hub config lines that put back what pamkrb changed, for an A/B on one
# build.
BROKER_VARIANTS: dict[str, Any] = {
    "as shipped": lambda shm: ({}, ""),
    "db on tmpfs": lambda shm: ({"JupyterHub.db_url": f"sqlite:///{shm / 'jupyterhub.sqlite'}"}, ""),
    "activity_resolution 600 s": lambda shm: ({"JupyterHub.activity_resolution": 600}, ""),
    # Before issue 22: every ticket fetch wrote the server token's
    # last_activity (JupyterHub's own resolution, 30 s) and committed.
    "fetch records token activity": lambda shm: (
        {},
        "from jupyterhub.apihandlers.base import APIHandler\n"
        "from pamkrb.ticket_api import TicketAPIHandler\n"
        "TicketAPIHandler._record_activity = APIHandler._record_activity\n",
    ),
}


def _run_summary(r: dict[str, Any]) -> dict[str, Any]:
    """One broker run's headline figures, for the log and the A/B table."""
    loop = r.get("loop", {})
    return {
        "variant": r["variant"],
        "load_before": [round(x, 2) for x in r["load_before"]],
        "load_after": [round(x, 2) for x in r["load_after"]],
        "window": r["window"],
        "health_p50_ms": round(r["health"]["window"]["median"] * 1000, 2),
        "health_p99_ms": round(r["health"]["window"]["p99"] * 1000, 2),
        "health_max_ms": round(r["health"]["window"]["max"] * 1000, 2),
        "over_50ms": r["health"]["over_50ms"],
        "kdc_per_user_hour": round(r["kdc"]["per_user_hour"]["total"], 2),
        "kdc_burst_max": r["kdc"]["per_second"]["max"],
        "kdc_burst_mean": round(r["kdc"]["per_second"]["mean"], 2),
        "fetches": r["servers"]["fetches"],
        "statuses": r["servers"]["statuses"],
        "hub_cpu_percent": round(r["hub"]["cpu_percent"], 1),
        "stalls": r["hub"]["loop_stalls_logged"],
        "loop_per_minute": {k: round(v, 3) for k, v in loop.get("per_minute", {}).items()},
        "slow_seconds_by_name": loop.get("slow_seconds_by_name", {}),
        "commits_by_caller": loop.get("commits_by_caller", {}),
        "rss_kib": r["rss_kib"],
        "rss_slope_kib_per_hour": r["rss_slope_kib_per_hour"],
    }


def _variant(name: str, shm: Path) -> tuple[dict[str, Any], str]:
    """Hub config and config lines of a run named "a + b + ...@window" (BROKER_VARIANTS' names)."""
    config: dict[str, Any] = {}
    lines = ""
    for part in name.split("@")[0].split("+"):
        more, extra = BROKER_VARIANTS[part.strip()](shm)
        config.update(more)
        lines += extra
    return config, lines


def _variant_window(name: str, default: float) -> float:
    """A run's window: "...@1200" makes it 1,200 s (a long run for the RSS slope)."""
    return float(name.split("@")[1]) if "@" in name else default


def _slope_per_hour(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, in KiB per hour."""
    if len(samples) < 2:
        return math.nan
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mk = sum(k for _, k in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (k - mk) for t, k in samples) / var * 3600 if var else math.nan


def _loop_probe(path: Path) -> dict[str, Any]:
    try:
        probe: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return probe


def _loop_difference(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What the hub's loop did between two loop_probe snapshots, per minute where it is a count."""
    if not before or not after:
        return {}
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, (int, float)) and key != "at":
            out[key] = value - before.get(key, 0)
    for key in ("slow_by_name", "slow_seconds_by_name", "commits_by_caller"):
        out[key] = {
            name: round(value - before.get(key, {}).get(name, 0), 3)
            for name, value in after.get(key, {}).items()
            if value - before.get(key, {}).get(name, 0) > 0
        }
    minutes = seconds / 60
    out["per_minute"] = {
        "callbacks": out["callbacks"] / minutes,
        "commits_on_loop": out["commits_on_loop"] / minutes,
        "commits_elsewhere": out["commits_elsewhere"] / minutes,
        "callback_seconds": out["callback_seconds"] / minutes,
        "commit_seconds_on_loop": out["commit_seconds_on_loop"] / minutes,
        "slow_callbacks": out["slow_callbacks"] / minutes,
        "slow_callback_seconds": out["slow_callback_seconds"] / minutes,
    }
    return out


def _per_second(times: list[float], start: float, end: float) -> dict[str, Any]:
    """Largest and mean count per whole second in [start, end) (the KDC logs to the second)."""
    first, last = math.ceil(start), math.floor(end)
    seconds = max(1, last - first)
    buckets = Counter(int(t) for t in times if first <= t < last)
    ordered = sorted([buckets.get(s, 0) for s in range(first, last)] or [0])
    peak_at = max(buckets, key=buckets.__getitem__) if buckets else first
    return {
        "seconds": seconds,
        "requests": sum(buckets.values()),
        "mean": sum(buckets.values()) / seconds,
        "max": ordered[-1],
        "p99": ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)],
        "max_at_offset": peak_at - first,
    }


def broker(plan: Plan) -> dict[str, Any]:
    """The hub's ticket broker keeping N users' tickets fresh while N simulated servers fetch them.

    Each name in ``plan.broker_variants`` (see BROKER_VARIANTS) is one run
    with a fresh hub, the same users and realm, in the order given (list a
    name twice to interleave A and B). The first run's figures are the
    comparison's; every run is under "runs", with the load average.
    """
    n = plan.broker_users
    setup: dict[str, float] = {}
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="pamkrb-bench-broker-") as base,
        realm(max_life=plan.broker_lifetime) as used,
        many_unix_users(n) as users,
    ):
        setup["unix_users"] = time.perf_counter() - began
        keytabs = Path(base) / "keytabs"
        keytabs.mkdir(mode=0o700)
        began = time.perf_counter()
        provision_many(used, users, keytabs)
        setup["principals_and_keytabs"] = time.perf_counter() - began
        sandbox.install_pam_test_service()
        runs = []
        for index, variant in enumerate(plan.broker_variants):
            print(f"bench: broker run {index + 1}/{len(plan.broker_variants)}: {variant}", flush=True)
            run_dir = Path(base) / f"run{index}"
            run_dir.mkdir(mode=0o700)
            with tempfile.TemporaryDirectory(prefix="pamkrb-bench-broker-", dir="/dev/shm") as shm:
                result = _broker_run(plan, used, users, keytabs, run_dir, Path(shm), variant)
            # Each run's figures as they come: a run that fails later loses nothing measured.
            print(f"bench: broker run {index + 1} result: {json.dumps(_run_summary(result))}", flush=True)
            result["setup_seconds"] = {**setup, **result["setup_seconds"]}
            runs.append(result)
    first = dict(runs[0])
    first["runs"] = runs
    return first


def _broker_run(
    plan: Plan,
    used: sandbox.Realm,
    users: list[sandbox.UnixUser],
    keytabs: Path,
    base: Path,
    shm: Path,
    variant: str,
) -> dict[str, Any]:
    n = len(users)
    life, margin, renewable = plan.broker_lifetime, plan.broker_margin, plan.broker_renewable
    period = life - margin  # a ticket is due one period after it was renewed
    setup: dict[str, float] = {}
    load_before = os.getloadavg()
    hub_caches, server_caches, token_dir = (base / d for d in ("hub-caches", "server-caches", "tokens"))
    for d in (hub_caches, server_caches, token_dir):
        d.mkdir(mode=0o700)
    probe_file = base / "loop-probe.json"
    variant_config, variant_lines = _variant(variant, shm)
    window = _variant_window(variant, plan.broker_window)
    service_token = secrets.token_hex(32)
    config = {
        "PAMKerberosAuthenticator.ticket_broker": True,
        "PAMKerberosAuthenticator.refresh_margin": margin,
        "PAMKerberosAuthenticator.renewable_lifetime": renewable,
        "PAMKerberosAuthenticator.keytab_template": f"{keytabs}/{{username}}.keytab",
        "PAMKerberosAuthenticator.ccache_template": f"{hub_caches}/krb5cc_{{uid}}",
        "JupyterHub.services": [{"name": BROKER_SERVICE, "api_token": service_token}],
        "JupyterHub.load_roles": [
            {
                "name": "pamkrb-bench-admin",
                "scopes": ["admin:users", "servers", "tokens"],
                "services": [BROKER_SERVICE],
            }
        ],
        "JupyterHub.authenticate_prometheus": False,
        "JupyterHub.spawner_class": "token_spawner.TokenOnlySpawner",
        "TokenOnlySpawner.token_directory": str(token_dir),
        **variant_config,
    }
    hub = None
    client = None
    try:
        began = time.perf_counter()
        hub = start_hub(
            used,
            "pamkrb",
            config,
            extra_config=f"import loop_probe\nloop_probe.start({str(probe_file)!r})\n{variant_lines}",
        )
        setup["hub_start"] = time.perf_counter() - began
        hub_pid, kdc_pid = hub._proc.pid, used._proc.pid
        hub_api = f"http://127.0.0.1:{hub.hub_port}/hub/api"
        rss = {"hub started": proc_status(hub_pid, "VmRSS")}
        session = http_session()
        session.headers["Authorization"] = f"token {service_token}"
        for i in range(0, n, 200):
            chunk = [u.name for u in users[i : i + 200]]
            response = session.post(f"{hub_api}/users", json={"usernames": chunk}, timeout=300)
            if response.status_code != 201:
                raise sandbox.SandboxError(f"POST /hub/api/users: HTTP {response.status_code}")
        time.sleep(2)
        rss["users in the database, 0 tracked"] = proc_status(hub_pid, "VmRSS")
        # Every server is started before the timeline, over one period at least: with 1,000 users
        # JupyterHub's own spawn (several SQLite commits each) takes minutes on this machine.
        began = time.perf_counter()
        _hub_servers(hub_api, service_token, [u.name for u in users], float(period))
        setup["servers_started"] = time.perf_counter() - began
        rss["servers started, before any fetch"] = proc_status(hub_pid, "VmRSS")

        # One timeline: idle probing, the servers start (spread over one
        # period), warm-up, then the measured window.
        p0, t0 = time.perf_counter(), time.time()
        idle_end = p0 + plan.broker_idle
        window_start = idle_end + plan.broker_warmup
        window_end = window_start + window

        def wall(p: float) -> float:
            return t0 + (p - p0)

        probes: list[tuple[float, float]] = []
        prober = threading.Thread(
            target=_probe_health,
            args=(f"http://127.0.0.1:{hub.hub_port}/hub/health", plan.health_interval, window_end, probes),
            daemon=True,
        )
        prober.start()
        time.sleep(max(0.0, idle_end - time.perf_counter()))
        job = {
            "api_url": hub_api,
            "users": [[u.name, used.qualify(u.name)] for u in users],
            "token_dir": str(token_dir),
            "margin": margin,
            "interval": 300,
            "kdc_timeout": 15.0,
            "ccache_dir": str(server_caches),
            "spread": float(period),
            # A little past the window, so the servers' process is still there to be measured at its end.
            "stop_at": wall(window_end) + 5,
        }
        client = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "broker_servers.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=used.client_env(),
            text=True,
        )
        # A thread feeds stdin and collects stdout/stderr, so no pipe fills up.
        output: dict[str, str] = {}
        talker = threading.Thread(
            target=lambda: output.update(zip(("out", "err"), client.communicate(json.dumps(job)))), daemon=True
        )
        talker.start()
        rss_samples: list[tuple[float, int]] = []

        def sample_until(until: float) -> None:
            while (now := time.perf_counter()) < until:
                rss_samples.append((now - idle_end, proc_status(hub_pid, "VmRSS")))
                time.sleep(min(plan.broker_rss_interval, max(0.0, until - now)))

        sample_until(window_start)
        before = {
            "as": used.kdc_requests("AS_REQ"),
            "tgs": used.kdc_requests("TGS_REQ"),
            "hub_cpu": process_cpu(hub_pid),
            "kdc_cpu": process_cpu(kdc_pid),
            "client_cpu": process_cpu(client.pid),
            "counters": _pamkrb_counters(hub_api),
            "loop": _loop_probe(probe_file),
        }
        rss["window start"] = proc_status(hub_pid, "VmRSS")
        sample_until(window_end)
        rss["window end"] = proc_status(hub_pid, "VmRSS")
        after = {
            "hub_cpu": process_cpu(hub_pid),
            "kdc_cpu": process_cpu(kdc_pid),
            "client_cpu": process_cpu(client.pid),
            "counters": _pamkrb_counters(hub_api),
            "loop": _loop_probe(probe_file),
        }
        threads = proc_status(hub_pid, "Threads")
        time.sleep(1)  # the KDC's last log lines
        after["as"], after["tgs"] = used.kdc_requests("AS_REQ"), used.kdc_requests("TGS_REQ")
        request_times = kdc_request_times(used)
        prober.join()
        talker.join(timeout=window + 120)
        if client.returncode != 0 or "out" not in output:
            raise sandbox.SandboxError(
                f"simulated servers exited with {client.returncode}:\n{output.get('err', '')[-3000:]}"
            )
        served = json.loads(output["out"])
        hub_log = hub.log_text()
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait(timeout=30)
        if hub is not None:
            hub.close()
    user_hours = n * window / 3600
    as_req, tgs_req = after["as"] - before["as"], after["tgs"] - before["tgs"]
    ws, we = wall(window_start), wall(window_end)
    in_window = [e for e in served["events"] if ws <= e[0] < we]
    fetched = [e[2] for e in in_window if e[1] == 200]
    counters = after["counters"] - before["counters"]

    # (seconds into the window, seconds) of each probe in it, to match the slowest with the hub log
    window_probes = [(at - window_start, s) for at, s in probes if at >= window_start]

    def health(lo: float, hi: float) -> dict[str, Any]:
        return Stats.of([s for at, s in probes if lo <= at < hi]).as_dict()

    window_rss = [(t, kib) for t, kib in rss_samples if t >= plan.broker_warmup]
    return {
        "variant": variant,
        "rss_interval": plan.broker_rss_interval,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "loop": _loop_difference(before["loop"], after["loop"], window),
        "rss_slope_kib_per_hour": {
            "window": _slope_per_hour(window_rss),
            "second_half": _slope_per_hour(window_rss[len(window_rss) // 2 :]),
        },
        "users": n,
        "lifetime": life,
        "margin": margin,
        "renewable_lifetime": renewable,
        "idle": plan.broker_idle,
        "warmup": plan.broker_warmup,
        "window": window,
        "setup_seconds": setup,
        "minimum_per_user_hour": math.ceil(3600 / period),
        "kdc": {
            "as_req": as_req,
            "tgs_req": tgs_req,
            "per_user_hour": {
                "as_req": as_req / user_hours,
                "tgs_req": tgs_req / user_hours,
                "total": (as_req + tgs_req) / user_hours,
            },
            "per_second": _per_second([t for t, _ in request_times], ws, we),
            "warmup_per_second": _per_second([t for t, _ in request_times], wall(idle_end), ws),
            "cpu_percent": (after["kdc_cpu"] - before["kdc_cpu"]) / window * 100,
        },
        "health": {
            "idle": health(p0, idle_end),
            "warmup": health(idle_end, window_start),
            "window": health(window_start, window_end),
            "over_50ms": sum(1 for at, s in probes if at >= window_start and s > 0.05),
            # (seconds into the window, seconds) of the slowest probes, to match with the hub log
            "slowest": sorted(window_probes, key=lambda probe: -probe[1])[:5],
        },
        "rss_kib": rss,
        "rss_per_1000_users_kib": (rss["window end"] - rss["users in the database, 0 tracked"]) * 1000 / n,
        "rss_samples": [(round(t, 1), kib) for t, kib in rss_samples],
        "hub": {
            "cpu_percent": (after["hub_cpu"] - before["hub_cpu"]) / window * 100,
            "threads_at_end": threads,
            "broker_failures_logged": hub_log.count("Ticket broker: no fresh ticket"),
            "tgs_fallbacks_logged": len(re.findall(r"Renewing the ticket of .* failed", hub_log)),
            "tracebacks_logged": hub_log.count("Traceback"),
            # JupyterHub's own event-loop lag monitor, over the whole run
            "loop_stalls_logged": [float(x) for x in STALL.findall(hub_log)],
            "counters": {key: value for key, value in sorted(counters.items())},
        },
        "servers": {
            "fetches": len(in_window),
            "fetches_per_user_hour": len(in_window) / user_hours,
            "statuses": dict(Counter(str(e[1]) for e in in_window)),
            "fetch": Stats.of(fetched).as_dict(),
            "all_fetches": len(served["events"]),
            "failing_at_end": served["failing_at_end"],
            "timer_lateness_p99": served["timer_lateness_p99"],
            "timer_lateness_max": served["timer_lateness_max"],
            "cpu_percent": (after["client_cpu"] - before["client_cpu"]) / window * 100,
        },
    }
