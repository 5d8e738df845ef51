"""A Spark session outlives any number of tickets (issue 19): one
SparkSession, a write and a read of HDFS every 20 s, no other activity,
through four or more lifetimes of a 90-second ticket.

The realm here issues 90-second tickets and the cluster (Apache Hadoop 2.7.3,
``tools/sandbox/hadoop.py``) is its own, with delegation tokens that expire
after 60 s (renew interval) and 120 s (max lifetime), shorter than a session.
Kernels come from ``pamkrb kernelspec install`` with the settings it writes
for long sessions (python/pamkrb/cli/kernelspec.py says why each one). The
realm lets tickets be renewed for 300 s, but only the password user's
principal may: the keytab users' principals have a maximum renewable life
of 0, so their tickets are not renewable and Hadoop's own ``kinit -R``
cannot keep them, only pamkrb's fresh cache can.

- **The ticket path** (``test_kernel_session_outlives_its_tickets``): a
  notebook kernel started through the hub; the user's server renews the
  cache from the keytab (pamkrb's default). Spark's delegation tokens are
  off, so every HDFS call authenticates with the ticket itself.
- **The delegation-token path**
  (``test_kernel_session_outlives_its_delegation_tokens``): the same with the
  kernelspec's settings as they are. Spark works with HDFS delegation tokens
  (the NameNode's audit log says ``auth:TOKEN``), which die after at most
  120 s; ``spark.kerberos.renewal.credentials=ccache`` makes Spark fetch new
  ones with the ticket in ``KRB5CCNAME``, which only pamkrb keeps valid.
- **The broker, with the server in its own mount namespace**
  (``test_broker_session_in_its_own_mount_namespace_outlives_its_tickets``):
  the ticket path again, but the server runs through
  ``sandbox.namespace.NamespacedSpawner`` (a private /tmp, the keytab
  directory hidden, the keytab root's alone): it shares no cache file with
  the hub, and the hub's broker obtains each ticket and delivers it to the
  server's own cache. The realm, the cluster's client configuration and the
  kernelspecs live under /var/tmp, which the server still sees.
- **A password user until renew-till, then signing in again**
  (``test_password_session_lasts_until_renew_till_then_signs_in_again``):
  no keytab; the login password gives a ticket renewable for 300 s, which
  the server renews by TGS (no AS request between the login and the
  sign-in). Every round until renew-till succeeds; after it every round
  fails and the server's status API says ``login_required``; the test signs
  in again through the server extension (``POST
  /user/<name>/pamkrb/api/signin``) and the same kernel, the same
  SparkSession (same process, same application id), works again.
- **The control** (``test_without_pamkrb_the_session_dies_at_the_first_expiry``):
  the same kernel settings and rounds, run as the user against a cache that
  nothing refreshes (a non-renewable ticket, no hub): the session fails
  after the first expiry, so the tests above measure pamkrb's renewal. Its
  driver warms up (the JVM's start and first HDFS write once took 150 s on
  a loaded machine) before the test puts the measured ticket in the cache.

What Hadoop does at expiry (seen in these runs): without pamkrb, every round
after the ticket's end fails with "KerberosAuthException: ... Login failure
for user": the client re-reads the cache and finds only the expired ticket.
With pamkrb, on the ticket path one round in about four takes ~4 s instead
of under 1: the JVM's ticket has expired, the connection fails, Hadoop
re-reads the cache (once a minute at most) and retries with pamkrb's
ticket. On the token path Spark fetches a new token every 45 s (75% of the
60 s renew interval) with a fresh login from the cache, and no round slows.
The broker-fed namespaced server behaves like the ticket path: the JVM
reads the server's own cache, which the server extension replaces with
each ticket the hub delivers.

What Hadoop does at renew-till (the password user): the password ticket is
renewable, so Hadoop's own renewer (``kinit -R`` at 80% of a ticket's life)
renews it too, beside pamkrb (the figures count the KDC's TGS requests for
krbtgt and pamkrb's own renewals). At renew-till its ``kinit -R`` fails
("kinit: Ticket expired while renewing credentials") and it gives up ("TGT
is destroyed. Aborting renew thread"). The rounds fail, each after ~12 s of
Hadoop's connection retries, with "SaslException: GSS initiate failed
[Caused by GSSException: No valid credentials provided (Mechanism level:
Failed to find any Kerberos tgt)]", or, when the failure made Hadoop
re-read the expired cache, "KerberosAuthException: Login failure for user:
<name>@SESSIONS.TEST javax.security.auth.login.LoginException: Unable to
obtain password from user"; the server's status says ``login_required``
with "could be renewed only until ..., which has passed; a new ticket is
needed". After the sign-in Hadoop logs "Not attempting to re-login since
the last re-login was attempted less than 60 seconds before" until that
minute is over; then the next failed connection re-reads the cache and the
round works: 6.5 to 72 s after the sign-in in five runs (the next round,
or the first one a minute after Hadoop's last attempt), with the same
kernel process and the same Spark application.

The five sessions run side by side, each in its own thread started by the
``sessions`` fixture when the first test needs it; each test waits for its
own session's figures and asserts on them. Most of a session is waiting, so
the group takes about as long as its longest session plus the cluster's
start: 7 min 40 s to 10 min 7 s in five runs (sessions ending 4 to 10
minutes after the start; the longest run beside other Hadoop tests with a
load average near 8), instead of about 16 minutes for three sessions one
after another. The JVMs start at most two at a time.
Each session's figures go to test-artifacts/<test>/figures.json, the
group's timing to test-artifacts/test_hadoop_sessions/group.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_cli_kernelspec import install, pyspark_home

import sandbox
from conftest import NAMESPACED_SPAWNER, TOOLS, artifact_dir, require_root
from sandbox.hadoop import HadoopCluster

LIFETIME = 90
LIFETIMES = 4
ROUND_EVERY = 20
# The password user's renewable life: three ticket lifetimes of TGS renewals.
RENEW_TILL = 300
# Delegation tokens: renew interval and max lifetime on the test NameNode, ms.
TOKEN_RENEW_INTERVAL = 60_000
TOKEN_MAX_LIFETIME = 120_000
# A failed connection makes Hadoop re-read the cache at most once a minute:
# after the sign-in, a round must work again within a few of those.
RECOVERY_DEADLINE = 180
# Rounds that must succeed after the sign-in, besides the first.
ROUNDS_AFTER_SIGN_IN = 2
# JVMs starting at once: five on two cores beside the main suite would take
# minutes each; the sessions themselves are mostly idle.
STARTUPS_AT_ONCE = 2
# Every test may wait for the whole group: the cluster's start, the longest
# session (the password user: ~8 minutes) and start-ups queued behind others.
GROUP_TIMEOUT = 30 * 60

# Defines `pamkrb_round(uri, k)`: write three rows to `uri`, read them back,
# print the outcome as one JSON line. The same code runs in the kernel and in
# the control's driver script.
ROUND = """\
import json as _json, time as _time

def pamkrb_round(uri, k):
    started = _time.time()
    try:
        spark.range(k, k + 3).write.mode("overwrite").parquet(uri)
        got = sorted(row[0] for row in spark.read.parquet(uri).collect())
        outcome = {"ok": got == [k, k + 1, k + 2], "got": got}
    except Exception as error:
        outcome = {"ok": False, "error": str(error)[:3000]}
    outcome["at"] = started
    outcome["seconds"] = round(_time.time() - started, 1)
    print(_json.dumps(outcome), flush=True)
"""

# Which kernel process and which SparkSession this is: the same values before
# and after a sign-in mean no restart.
IDENTITY = """\
import json as _json, os as _os
print(_json.dumps({"pid": _os.getpid(), "app": spark.sparkContext.applicationId,
                   "ccache": _os.environ.get("KRB5CCNAME")}), flush=True)
"""

# The control's driver: the kernel's SparkSession (from PYSPARK_SUBMIT_ARGS,
# as shell.py makes it) and one unscheduled round, so that the JVM's start
# and its first HDFS write (over a minute on a loaded machine) do not eat
# into the measured ticket; then it says it is ready and waits for the file
# `go`: the test has put a fresh ticket in the cache, which the JVM logs in
# with (Hadoop's own forced re-login from the cache, so that its once-a-minute
# limit dates from here). Then rounds on the same schedule, `rounds` of them.
CONTROL_DRIVER = (
    "import os, sys, time\n"
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.getOrCreate()\n"
    + ROUND
    + "uri, rounds, every, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]\n"
    "pamkrb_round(uri, 100)\n"
    "print(_json.dumps({'ready': True}), flush=True)\n"
    "while not os.path.exists(go):\n"
    "    time.sleep(0.1)\n"
    "spark._jvm.org.apache.hadoop.security.UserGroupInformation.getLoginUser().forceReloginFromTicketCache()\n"
    "start = time.monotonic()\n"
    "for k in range(rounds):\n"
    "    time.sleep(max(0.0, start + k * every - time.monotonic()))\n"
    "    pamkrb_round(uri, k)\n"
    "spark.stop()\n"
)


@pytest.fixture(scope="module")
def short_hadoop_realm(host_dir: Path) -> Iterator[sandbox.Realm]:
    """90-second tickets, renewable for RENEW_TILL seconds where the
    principal allows it: only the password user's does (``keytab_user``
    sets the keytab users' maximum renewable life to 0). Its krb5.conf is
    under /var/tmp, which a namespaced server still sees."""
    require_root()
    realm = sandbox.Realm("SESSIONS.TEST", max_life=LIFETIME, max_renewable_life=RENEW_TILL, base_dir=host_dir)
    try:
        realm.start()
        yield realm
    finally:
        realm.stop()
        if realm.kdc_log.exists():
            shutil.copyfile(realm.kdc_log, artifact_dir("test_hadoop_sessions") / "kdc.log")
        realm.close()


@pytest.fixture(scope="module")
def short_token_hdfs(short_hadoop_realm: sandbox.Realm, host_dir: Path) -> Iterator[HadoopCluster]:
    """A secured HDFS whose delegation tokens live shorter than a session;
    its client configuration under /var/tmp."""
    cluster = HadoopCluster(
        short_hadoop_realm,
        hdfs_site={
            "dfs.namenode.delegation.token.renew-interval": str(TOKEN_RENEW_INTERVAL),
            "dfs.namenode.delegation.token.max-lifetime": str(TOKEN_MAX_LIFETIME),
        },
        base_dir=host_dir,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        artifacts = artifact_dir("test_hadoop_sessions")
        for log in (cluster.namenode_log, cluster.datanode_log):
            if log.exists():
                shutil.copyfile(log, artifacts / log.name)
        cluster.close()


TICKET_KERNEL = "pyspark-sessions-ticket"
TOKENS_KERNEL = "pyspark-sessions-tokens"


@pytest.fixture(scope="module")
def kernel_prefix(short_token_hdfs: HadoopCluster, host_dir: Path) -> Iterator[Path]:
    """Kernelspecs the test users can read, made by `pamkrb kernelspec install`;
    under /var/tmp, where a namespaced server (private /tmp) still finds them."""
    prefix = Path(tempfile.mkdtemp(prefix="pamkrb-kernels-", dir=host_dir))
    prefix.chmod(0o755)
    common = [
        "--spark-home", str(pyspark_home()),
        "--master", "local[1]",
        "--hadoop-conf-dir", str(short_token_hdfs.client_conf_dir),
        "--prefix", str(prefix),
        # Loopback only.
        "--env", "SPARK_LOCAL_IP=127.0.0.1",
    ]  # fmt: skip
    try:
        # The ticket path: no delegation tokens, every call uses the ticket.
        result = install(
            *common,
            "--kernel-name", TICKET_KERNEL,
            "--env", "SPARK_SUBMIT_OPTS=-Dspark.security.credentials.hadoopfs.enabled=false -Dspark.ui.enabled=false",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # The delegation-token path: the kernelspec's settings as they are.
        result = install(*common, "--kernel-name", TOKENS_KERNEL, "--env", "SPARK_SUBMIT_OPTS=-Dspark.ui.enabled=false")
        assert result.returncode == 0, result.stderr
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def kernel_spec(prefix: Path, name: str) -> dict[str, Any]:
    return json.loads((prefix / "share" / "jupyter" / "kernels" / name / "kernel.json").read_text())


def audit_counts(hdfs: HadoopCluster, user: sandbox.UnixUser) -> dict[str, int]:
    """What the NameNode says about ``user``: how many audited calls
    authenticated with the ticket (``auth:KERBEROS``), how many with a
    delegation token (``auth:TOKEN``), and how many tokens it issued (Hadoop
    2.7 audits no getDelegationToken; its secret manager logs each token)."""
    counts = {"KERBEROS": 0, "TOKEN": 0, "tokens_issued": 0}
    for line in hdfs._log("namenode").splitlines():
        if "FSNamesystem.audit" in line and f"ugi={user.name}@" in line:
            for key in ("KERBEROS", "TOKEN"):
                counts[key] += f"(auth:{key})" in line
        elif "Creating password for identifier: HDFS_DELEGATION_TOKEN" in line and f" for {user.name}," in line:
            counts["tokens_issued"] += 1
    return counts


def ticket_expiry(realm: sandbox.Realm, cache: Path) -> float | None:
    """When the TGT in ``cache`` expires (epoch seconds), or None if unreadable."""
    try:
        return realm.klist(cache).expires.timestamp()
    except Exception:  # being replaced at this instant, or gone
        return None


def tgt_flags(realm: sandbox.Realm, cache: Path) -> str:
    """The TGT's flags as ``klist -f`` prints them (``R``: renewable)."""
    out = subprocess.run(
        ["klist", "-f", "-c", f"FILE:{cache}"],
        env=realm.client_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if "krbtgt/" in line)
    return next(line.split("Flags:", 1)[1].strip() for line in lines[row:] if "Flags:" in line)


def epoch(iso: str) -> float:
    """The status API's UTC ISO 8601 time, in epoch seconds."""
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def last_json(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"the cell printed no JSON: {text[-2000:]}"
    return json.loads(lines[-1])


# -- the sessions, side by side ----------------------------------------------------


@dataclasses.dataclass
class Group:
    """What every session shares: the realm, the cluster, the kernelspecs,
    and the locks that keep them out of each other's way."""

    realm: sandbox.Realm
    hdfs: HadoopCluster
    prefix: Path
    keytab_dir: Path
    pam_service: str
    # Set at teardown: a session still waiting between rounds gives up.
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    # useradd, kadmin.local and the superuser's FsShell, one at a time.
    admin: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # JVM start-ups (hub spawn, kernel, first Spark cell), STARTUPS_AT_ONCE at a time.
    startups: threading.Semaphore = dataclasses.field(default_factory=lambda: threading.Semaphore(STARTUPS_AT_ONCE))

    def principal(self, user: sandbox.UnixUser) -> str:
        return self.realm.qualify(user.name)

    def requests(self, kind: str, user: sandbox.UnixUser, service: str | None = None) -> int:
        """The KDC's AS_REQ/TGS_REQ count for this user alone (the sessions share the realm)."""
        return self.realm.kdc_requests(kind, client=self.principal(user), service=service)


class Stopped(Exception):
    """The group is being torn down."""


@contextlib.contextmanager
def session_user(group: Group, prefix: str, *, keytab: str | None) -> Iterator[sandbox.UnixUser]:
    """A Unix user of the realm: ``keytab="home"`` a keytab ``~/<name>.keytab``
    of theirs, ``keytab="root"`` one in ``keytab_dir`` only root reads (the
    broker's layout), None a password principal (their Unix password). A
    keytab user's tickets cannot be renewed (maximum renewable life 0).
    Each gets an HDFS home ``/user/<name>``."""
    with group.admin:
        user = sandbox.UnixUser.create(prefix)
    root_keytab = group.keytab_dir / f"{user.name}.keytab"
    try:
        with group.admin:
            realm = group.realm
            if keytab is None:
                realm.add_password_principal(user.name, user.password)
            else:
                principal = realm.add_principal(user.name)
                realm.kadmin(f"modprinc -maxrenewlife 0 {principal}")
                if keytab == "home":
                    realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
                else:
                    realm.write_keytab(principal, root_keytab, 0, 0)
            group.hdfs.make_home(user.name)
        yield user
    finally:
        with group.admin:
            user.remove()
        root_keytab.unlink(missing_ok=True)


@contextlib.contextmanager
def running_hub(
    group: Group, artifacts: Path, config: dict[str, Any], *, namespaced: bool = False
) -> Iterator[sandbox.Hub]:
    """A hub with pamkrb in the sessions' realm; the server renews (or, with
    ``ticket_broker``, is delivered) a ticket when 45 s are left, and finds
    the kernelspecs. ``namespaced``: servers run through NamespacedSpawner
    with the keytab directory hidden, as in tests/test_broker_namespaced.py."""
    settings: dict[str, Any] = {
        "PAMKerberosAuthenticator.service": group.pam_service,
        "PAMKerberosAuthenticator.refresh_margin": 45,
        "PAMKerberosAuthenticator.refresh_interval": 30,
        "Spawner.environment": {"JUPYTER_PATH": str(group.prefix / "share" / "jupyter")},
    }
    if namespaced:
        settings.update(
            {
                "JupyterHub.spawner_class": NAMESPACED_SPAWNER,
                "NamespacedSpawner.hidden_paths": [str(group.keytab_dir)],
                "PAMKerberosAuthenticator.keytab_template": f"{group.keytab_dir}/{{username}}.keytab",
            }
        )
    settings.update(config)
    log = artifacts / "jupyterhub.log"
    log.unlink(missing_ok=True)
    hub = sandbox.Hub(
        group.realm,
        config=settings,
        log_path=log,
        import_paths=[TOOLS] if namespaced else (),
    )
    try:
        hub.start()
        yield hub
    finally:
        hub.close()


@dataclasses.dataclass
class Kernel:
    """A kernel started through the hub, its SparkSession up."""

    session: Any
    server: str
    ws: Any
    identity: dict[str, Any]


@contextlib.contextmanager
def hub_kernel(group: Group, hub: sandbox.Hub, user: sandbox.UnixUser, kernel_name: str) -> Iterator[Kernel]:
    """Log ``user`` in, start ``kernel_name`` and wait for its first Spark cell."""
    with group.startups:
        session = sandbox.login_and_spawn(hub, user)
        server = f"{hub.url}/user/{user.name}"
        kernel = sandbox.start_kernel(session, server, kernel_name)
        ws = sandbox.kernel_websocket(session, server, kernel)
        try:
            # The first cell waits for the JVM (PYTHONSTARTUP makes `spark`).
            ready = sandbox.kernel_execute(ws, ROUND + "spark.range(1).count()\n" + IDENTITY, timeout=240)
            assert ready["status"] == "ok", ready
        except BaseException:
            ws.close()
            raise
    try:
        yield Kernel(session, server, ws, last_json(ready["stdout"]))
    finally:
        ws.close()


class Rounds:
    """Rounds on one kernel at fixed times from the first, every ROUND_EVERY
    seconds; between them neither the kernel nor the test does anything
    but read the cache's expiry from outside."""

    def __init__(self, configuration: str, group: Group, kernel: Kernel, uri: str, cache: Path) -> None:
        self.configuration = configuration
        self.group = group
        self.kernel = kernel
        self.uri = uri
        self.cache = cache
        self.done: list[dict[str, Any]] = []
        self.expiries: set[float] = set()
        self.started = time.monotonic()

    def next(self) -> dict[str, Any]:
        """Wait for the next round's time, run it, return its outcome."""
        k = len(self.done)
        due = self.started + k * ROUND_EVERY
        while (left := due - time.monotonic()) > 0:
            if (expiry := ticket_expiry(self.group.realm, self.cache)) is not None:
                self.expiries.add(expiry)
            if self.group.stop.wait(min(1.0, left)):
                raise Stopped
        at = time.time()
        reply = sandbox.kernel_execute(self.kernel.ws, f"pamkrb_round({self.uri!r}, {k})", timeout=150)
        # A cell that failed outside pamkrb_round's own try has no times of its own.
        if reply["status"] == "ok":
            outcome = last_json(reply["stdout"])
        else:
            outcome = {"ok": False, "at": at, "seconds": round(time.time() - at, 1), **reply}
        outcome["round"] = k
        outcome["elapsed"] = round(time.monotonic() - self.started, 1)
        self.done.append(outcome)
        return outcome

    def expect_ok(self, when: str = "") -> dict[str, Any]:
        outcome = self.next()
        assert outcome["ok"], (
            f"{self.configuration}: round {outcome['round']} at {outcome['elapsed']} s{when} failed: {outcome}"
        )
        return outcome

    def figures(self) -> dict[str, Any]:
        seconds = [r.get("seconds") for r in self.done]
        return {
            "rounds": len(self.done),
            "failed": [r for r in self.done if not r.get("ok")],
            "round_seconds": seconds,
            "max_round_seconds": max((s for s in seconds if s is not None), default=None),
            "last_round_at": self.done[-1].get("at") if self.done else None,
            "tickets_seen": len(self.expiries),
        }


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


def write_figures(artifacts: Path, figures: dict[str, Any]) -> None:
    (artifacts / "figures.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")


def keytab_session(
    group: Group, artifacts: Path, *, configuration: str, kernel_name: str, broker: bool = False
) -> dict[str, Any]:
    """A keytab user's session through LIFETIMES ticket lifetimes; fails at the
    first failed round. The server renews from the keytab, or (``broker``)
    runs in its own mount namespace and gets each ticket from the hub."""
    realm, hdfs = group.realm, group.hdfs
    figures: dict[str, Any] = {"configuration": configuration}
    with contextlib.ExitStack() as stack:
        user = stack.enter_context(session_user(group, "pkb" if broker else "pks", keytab="root" if broker else "home"))
        config = {"PAMKerberosAuthenticator.ticket_broker": True} if broker else {}
        hub = stack.enter_context(running_hub(group, artifacts, config, namespaced=broker))
        kernel = stack.enter_context(hub_kernel(group, hub, user, kernel_name))
        figures["as_before"] = group.requests("AS_REQ", user)
        figures["tgs_before"] = group.requests("TGS_REQ", user)
        if broker:
            # The server's own cache, seen from here through its mount namespace.
            (server_pid,) = sandbox.singleuser_pids(user.uid)
            cache = Path(f"/proc/{server_pid}/root/tmp/krb5cc_{user.uid}")
            figures["mount_namespaces"] = {
                "test": os.readlink("/proc/self/ns/mnt"),
                "server": os.readlink(f"/proc/{server_pid}/ns/mnt"),
                "kernel": os.readlink(f"/proc/{kernel.identity['pid']}/ns/mnt"),
            }
            figures["server_cache_is_the_hubs"] = same_file(cache, user.default_ccache)
        else:
            cache = user.default_ccache
        figures["kernel_ccache"] = kernel.identity["ccache"]
        figures["uid"] = user.uid
        rounds = Rounds(configuration, group, kernel, f"{hdfs.uri}/user/{user.name}/rounds", cache)
        try:
            figures["flags"] = tgt_flags(realm, cache)
            figures["audit_at_start"] = audit_counts(hdfs, user)
            figures["first_expiry"] = ticket_expiry(realm, cache)
            assert figures["first_expiry"] is not None, f"{configuration}: no ticket in {cache}"
            for _ in range(LIFETIMES * LIFETIME // ROUND_EVERY + 1):
                rounds.expect_ok()
            figures["wall_seconds"] = round(time.monotonic() - rounds.started, 1)
            figures["status"] = kernel.session.get(f"{kernel.server}/pamkrb/api/status", timeout=30).json()
        finally:
            figures.update(rounds.figures())
            figures["as_requests"] = group.requests("AS_REQ", user) - figures.pop("as_before")
            figures["tgs_requests"] = group.requests("TGS_REQ", user) - figures.pop("tgs_before")
            figures["audit_at_end"] = audit_counts(hdfs, user)
            write_figures(artifacts, figures)
    return figures


def sign_in(kernel: Kernel, user: sandbox.UnixUser) -> Any:
    """What the status bar's dialog sends: POST to the user's own server."""
    xsrf = kernel.session.cookies.get("_xsrf", path=f"/user/{user.name}/") or ""
    return kernel.session.post(
        f"{kernel.server}/pamkrb/api/signin",
        json={"password": user.password},
        headers={"X-XSRFToken": xsrf},
        timeout=60,
    )


def password_session(group: Group, artifacts: Path, *, configuration: str) -> dict[str, Any]:
    """A password user's session: rounds until renew-till (each must
    succeed), rounds after it (each must fail) until the status asks for a
    sign-in, the sign-in, then rounds until one succeeds again (within
    RECOVERY_DEADLINE) and ROUNDS_AFTER_SIGN_IN more that must succeed."""
    realm, hdfs = group.realm, group.hdfs
    figures: dict[str, Any] = {"configuration": configuration}
    with contextlib.ExitStack() as stack:
        user = stack.enter_context(session_user(group, "pkp", keytab=None))
        hub = stack.enter_context(
            running_hub(group, artifacts, {"PAMKerberosAuthenticator.credential_source": "password"})
        )
        figures["login_not_before"] = time.time()
        kernel = stack.enter_context(hub_kernel(group, hub, user, TICKET_KERNEL))
        figures["login_not_after"] = time.time()
        cache = user.default_ccache
        status_url = f"{kernel.server}/pamkrb/api/status"
        rounds = Rounds(configuration, group, kernel, f"{hdfs.uri}/user/{user.name}/rounds", cache)
        krbtgt = f"krbtgt/{realm.name}"
        try:
            figures["identity_at_start"] = kernel.identity
            figures["as_after_login"] = group.requests("AS_REQ", user)
            ticket = realm.klist(cache)
            assert ticket.renew_until is not None, f"{configuration}: the password ticket is not renewable"
            renew_till = ticket.renew_until.timestamp()
            figures.update(
                flags=tgt_flags(realm, cache),
                expiry_at_start=ticket.expires.timestamp(),
                renew_till=renew_till,
                status_at_start=kernel.session.get(status_url, timeout=30).json(),
            )
            # Until renew-till: pamkrb renews by TGS and every round works.
            while (outcome := rounds.next())["at"] <= renew_till:
                if outcome["at"] + outcome["seconds"] < renew_till:
                    assert outcome["ok"], (
                        f"{configuration}: round {outcome['round']} at {outcome['elapsed']} s, "
                        f"{renew_till - outcome['at']:.0f} s before renew-till, failed: {outcome}"
                    )
                    figures["last_round_before_renew_till"] = outcome["at"]
            # After it: the rounds fail, and the status asks for a sign-in.
            after = [outcome]
            status = kernel.session.get(status_url, timeout=30).json()
            while len(after) < 2 or status["state"] != "login_required":
                assert len(after) < 6, f"{configuration}: no sign-in asked for after renew-till: {status}"
                after.append(rounds.next())
                status = kernel.session.get(status_url, timeout=30).json()
            figures["status_after_renew_till"] = status
            figures["rounds_after_renew_till"] = [r["ok"] for r in after]
            figures["error_after_renew_till"] = next((r.get("error") for r in after if not r["ok"]), None)
            figures["as_before_sign_in"] = group.requests("AS_REQ", user)
            figures["krbtgt_tgs_before_sign_in"] = group.requests("TGS_REQ", user, krbtgt)
            # Sign in again through the server; the same session must work again.
            signed_in = time.time()
            response = sign_in(kernel, user)
            figures["sign_in"] = {"code": response.status_code, "body": response.json()}
            assert response.status_code == 200, f"{configuration}: the sign-in failed: {response.text}"
            figures["as_after_sign_in"] = group.requests("AS_REQ", user)
            deadline = time.monotonic() + RECOVERY_DEADLINE
            while not (outcome := rounds.next())["ok"]:
                assert time.monotonic() < deadline, (
                    f"{configuration}: round {outcome['round']} at {outcome['elapsed']} s, "
                    f"{time.time() - signed_in:.0f} s after the sign-in, still failed: {outcome}"
                )
            figures["sign_in_to_working_round_seconds"] = round(outcome["at"] + outcome["seconds"] - signed_in, 1)
            figures["rounds_after_sign_in"] = [outcome["ok"]]
            for _ in range(ROUNDS_AFTER_SIGN_IN):
                figures["rounds_after_sign_in"].append(rounds.expect_ok(" after the sign-in")["ok"])
            identity = sandbox.kernel_execute(kernel.ws, IDENTITY, timeout=60)
            figures["identity_at_end"] = last_json(identity["stdout"])
            figures["status_at_end"] = kernel.session.get(status_url, timeout=30).json()
        finally:
            figures.update(rounds.figures())
            figures["as_requests"] = group.requests("AS_REQ", user)
            figures["tgs_requests"] = group.requests("TGS_REQ", user)
            figures["krbtgt_tgs_requests"] = group.requests("TGS_REQ", user, krbtgt)
            write_figures(artifacts, figures)
    return figures


def control_session(group: Group, artifacts: Path, *, configuration: str) -> dict[str, Any]:
    """The kernel's settings and rounds as the user, on a non-renewable
    ticket nothing replaces (no hub, the keytab gone); the rounds' outcomes."""
    realm, hdfs = group.realm, group.hdfs
    figures: dict[str, Any] = {"configuration": configuration}
    with session_user(group, "pkc", keytab="home") as user:
        keytab = user.home / f"{user.name}.keytab"
        env = {
            "PATH": f"{sandbox.VENV_BIN}:{sandbox.SYSTEM_PATH}",
            "HOME": str(user.home),
            "USER": user.name,
            "LC_ALL": "C.UTF-8",
            "KRB5_CONFIG": str(realm.krb5_conf),
            "KRB5CCNAME": f"FILE:{user.default_ccache}",
        }
        spec = kernel_spec(group.prefix, TICKET_KERNEL)
        launcher = spec["argv"][: spec["argv"].index("pamkrb-pyspark-kernel") + 1]
        driver, go = user.home / "control.py", user.home / "go"
        driver.write_text(CONTROL_DRIVER)
        total = 2 * LIFETIME // ROUND_EVERY + 1
        log, printed = artifacts / "control-driver.log", artifacts / "control-rounds.jsonl"

        def printed_lines() -> list[dict[str, Any]]:
            lines = printed.read_text().splitlines(keepends=True)
            return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("\n")]

        def kinit() -> None:
            result = user.run(["kinit", "-kt", str(keytab), user.name], env=env)
            assert result.returncode == 0, result.stderr

        proc: subprocess.Popen[Any] | None = None
        with log.open("w") as stderr_file, printed.open("w") as stdout_file:
            try:
                with group.startups:
                    kinit()
                    proc = subprocess.Popen(
                        [*launcher, str(sandbox.VENV_BIN / "python"), str(driver),
                         f"{hdfs.uri}/user/{user.name}/rounds", str(total), str(ROUND_EVERY), str(go)],
                        env={**env, **spec["env"]}, user=user.uid, group=user.gid, extra_groups=[], cwd=user.home,
                        stdout=stdout_file, stderr=stderr_file,
                    )  # fmt: skip
                    until_done(group, proc, lambda: any("ready" in line for line in printed_lines()), timeout=300)
                # The measured ticket: a fresh one, and then nothing can get another.
                kinit()
                keytab.unlink()
                figures["expires"] = realm.klist(user.default_ccache).expires.timestamp()
                figures["flags"] = tgt_flags(realm, user.default_ccache)
                go.touch()
                until_done(group, proc, lambda: False, timeout=total * ROUND_EVERY + 8 * 60)
            finally:
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        stderr = log.read_text(errors="replace")
        lines = printed_lines()
        ready = next((i for i, line in enumerate(lines) if "ready" in line), len(lines))
        figures["warm_up"] = lines[:ready]
        rounds = lines[ready + 1 :]
        figures.update(
            rounds=rounds,
            round_seconds=[r["seconds"] for r in rounds],
            max_round_seconds=max((r["seconds"] for r in rounds), default=None),
            as_requests=group.requests("AS_REQ", user),
            tgs_requests=group.requests("TGS_REQ", user),
            tickets_seen=1,
            stderr_tail=stderr[-4000:],
        )
        write_figures(artifacts, figures)
    return figures


def until_done(group: Group, proc: subprocess.Popen[Any], ready: Callable[[], bool], *, timeout: float) -> None:
    """Wait until ``ready()`` or ``proc`` has exited; give up (leaving it
    running) after ``timeout`` seconds or when the group stops."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        if group.stop.wait(0.5):
            raise Stopped


# The configurations, by the test that asserts on each; longest first, as
# the JVMs start a few at a time in this order.
CONFIGURATIONS: dict[str, tuple[str, Callable[..., dict[str, Any]], dict[str, Any]]] = {
    "test_password_session_lasts_until_renew_till_then_signs_in_again": (
        "password user until renew-till, then signing in again", password_session, {},
    ),
    "test_broker_session_in_its_own_mount_namespace_outlives_its_tickets": (
        "broker, server in its own mount namespace", keytab_session, {"kernel_name": TICKET_KERNEL, "broker": True},
    ),
    "test_kernel_session_outlives_its_tickets": (
        "ticket path", keytab_session, {"kernel_name": TICKET_KERNEL},
    ),
    "test_kernel_session_outlives_its_delegation_tokens": (
        "delegation-token path", keytab_session, {"kernel_name": TOKENS_KERNEL},
    ),
    "test_without_pamkrb_the_session_dies_at_the_first_expiry": (
        "control without pamkrb", control_session, {},
    ),
}  # fmt: skip


class Sessions:
    """The running sessions, one future per selected test."""

    def __init__(self, futures: dict[str, Future[dict[str, Any]]]) -> None:
        self.futures = futures

    def result(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        """The figures of the calling test's session, once it has ended; its
        failure (naming the configuration and the round) if it failed."""
        return self.futures[request.node.name].result()


@pytest.fixture(scope="module")
def sessions(
    request: pytest.FixtureRequest,
    short_hadoop_realm: sandbox.Realm,
    short_token_hdfs: HadoopCluster,
    kernel_prefix: Path,
    keytab_dir: Path,
    pam_service: str,
) -> Iterator[Sessions]:
    """Starts, each in its own thread, the session of every configuration
    whose test is selected; teardown waits for them all and writes the
    group's timing."""
    selected = {
        item.name: item.nodeid for item in request.session.items if getattr(item, "module", None) is request.module
    }
    group = Group(short_hadoop_realm, short_token_hdfs, kernel_prefix, keytab_dir, pam_service)
    timing: dict[str, Any] = {}
    began = time.monotonic()

    def timed(test: str, run: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return run(*args, **kwargs)
        finally:
            timing[test] = round(time.monotonic() - began, 1)

    executor = ThreadPoolExecutor(max_workers=len(CONFIGURATIONS), thread_name_prefix="hadoop-session")
    futures = {}
    try:
        for test, (configuration, run, options) in CONFIGURATIONS.items():
            if test in selected:
                futures[test] = executor.submit(
                    timed, test, run, group, artifact_dir(selected[test]), configuration=configuration, **options
                )
        yield Sessions(futures)
    finally:
        group.stop.set()
        executor.shutdown(wait=True)
        (artifact_dir("test_hadoop_sessions") / "group.json").write_text(
            json.dumps({"sessions_ended_after_seconds": timing, "wall_seconds": round(time.monotonic() - began, 1)})
            + "\n"
        )


def assert_outlived_its_tickets(figures: dict[str, Any]) -> None:
    # The last round came LIFETIMES - 1 lifetimes after the ticket the
    # session started with had expired, and every round in between succeeded.
    assert figures["wall_seconds"] >= LIFETIMES * LIFETIME
    assert figures["last_round_at"] > figures["first_expiry"] + (LIFETIMES - 1) * LIFETIME
    assert figures["tickets_seen"] >= LIFETIMES, f"pamkrb replaced the cache only {figures['tickets_seen'] - 1} times"
    assert figures["as_requests"] >= LIFETIMES - 1
    # Not renewable: Hadoop's own kinit -R could not have kept them.
    assert "R" not in figures["flags"], figures["flags"]


# Each test waits for its own session, which runs beside the others.
@pytest.mark.timeout(GROUP_TIMEOUT)
def test_kernel_session_outlives_its_tickets(sessions: Sessions, request: pytest.FixtureRequest) -> None:
    figures = sessions.result(request)
    print(f"ticket path: {json.dumps(figures)}")
    assert_outlived_its_tickets(figures)
    # Delegation tokens were off: every call the NameNode saw used the ticket itself.
    audit = figures["audit_at_end"]
    assert audit["TOKEN"] == audit["tokens_issued"] == 0, audit
    assert audit["KERBEROS"] > figures["audit_at_start"]["KERBEROS"], audit


@pytest.mark.timeout(GROUP_TIMEOUT)
def test_kernel_session_outlives_its_delegation_tokens(sessions: Sessions, request: pytest.FixtureRequest) -> None:
    """Tokens that expire after 60 s unless renewed and after 120 s for good:
    Spark (spark.kerberos.renewal.credentials=ccache) fetches new ones with
    the ticket pamkrb keeps fresh in KRB5CCNAME."""
    figures = sessions.result(request)
    print(f"delegation-token path: {json.dumps(figures)}")
    assert_outlived_its_tickets(figures)
    audit = figures["audit_at_end"]
    # The session's calls used tokens, and a token lives at most
    # TOKEN_MAX_LIFETIME: covering the session took a new one at least that often.
    assert audit["TOKEN"] > 0, audit
    assert audit["tokens_issued"] >= figures["wall_seconds"] * 1000 // TOKEN_MAX_LIFETIME, audit


@pytest.mark.timeout(GROUP_TIMEOUT)
def test_broker_session_in_its_own_mount_namespace_outlives_its_tickets(
    sessions: Sessions, request: pytest.FixtureRequest
) -> None:
    """The server shares no file with the hub: every ticket the session
    lived on was obtained by the hub and delivered to the server's own cache."""
    figures = sessions.result(request)
    print(f"broker, namespaced server: {json.dumps(figures)}")
    assert_outlived_its_tickets(figures)
    # The server and the kernel (with its JVM) in a mount namespace of their
    # own, on a cache that is not a file the hub's side can see.
    spaces = figures["mount_namespaces"]
    assert spaces["server"] != spaces["test"], spaces
    assert spaces["kernel"] == spaces["server"], spaces
    assert figures["server_cache_is_the_hubs"] is False
    assert figures["kernel_ccache"] == f"FILE:/tmp/krb5cc_{figures['uid']}"
    # Renewed by the hub's broker, from a keytab the server cannot read.
    assert figures["status"]["renewed_by"] == "hub", figures["status"]
    assert figures["status"]["source"] == "keytab", figures["status"]
    audit = figures["audit_at_end"]
    assert audit["TOKEN"] == audit["tokens_issued"] == 0, audit
    assert audit["KERBEROS"] > figures["audit_at_start"]["KERBEROS"], audit


@pytest.mark.timeout(GROUP_TIMEOUT)
def test_password_session_lasts_until_renew_till_then_signs_in_again(
    sessions: Sessions, request: pytest.FixtureRequest
) -> None:
    """Renewable for RENEW_TILL seconds and no keytab: TGS renewals carry the
    session to renew-till; then a clear "sign in" and, after signing in
    through the server, the same kernel and SparkSession work again."""
    figures = sessions.result(request)
    print(f"password user: {json.dumps(figures)}")
    renew_till = figures["renew_till"]
    # The realm gave a renewable ticket, renewable until RENEW_TILL after the login.
    assert "R" in figures["flags"], figures["flags"]
    assert figures["login_not_before"] - 2 <= renew_till - RENEW_TILL <= figures["login_not_after"] + 2, figures
    # Every round before renew-till worked (asserted as they ran), the last
    # of them on the third ticket or later: the login's expired after
    # LIFETIME, its first renewal's by 2 * LIFETIME.
    assert figures["last_round_before_renew_till"] > renew_till - RENEW_TILL + 2 * LIFETIME, figures
    # pamkrb renewed, by TGS only: no AS request between the login and the sign-in.
    assert figures["as_before_sign_in"] == figures["as_after_login"], figures
    assert figures["krbtgt_tgs_before_sign_in"] >= 2, figures
    assert figures["status_after_renew_till"]["renewals"] >= 1, figures["status_after_renew_till"]
    # After renew-till: every round failed, and the status says why.
    assert figures["rounds_after_renew_till"], figures
    assert not any(figures["rounds_after_renew_till"]), figures
    assert figures["error_after_renew_till"], figures
    status = figures["status_after_renew_till"]
    assert status["state"] == "login_required", status
    assert status["source"] == "password", status
    assert abs(epoch(status["login_required_at"]) - renew_till) <= 2, status
    # The sign-in got a new ticket (an AS request) and the same session works
    # again: same kernel process, same Spark application.
    assert figures["sign_in"]["code"] == 200
    assert figures["sign_in"]["body"]["status"]["state"] == "valid", figures["sign_in"]
    assert figures["as_after_sign_in"] > figures["as_before_sign_in"], figures
    assert figures["rounds_after_sign_in"] == [True] * (1 + ROUNDS_AFTER_SIGN_IN), figures
    assert figures["identity_at_end"] == figures["identity_at_start"], figures
    assert figures["status_at_end"]["state"] in ("valid", "expiring"), figures["status_at_end"]


@pytest.mark.timeout(GROUP_TIMEOUT)
def test_without_pamkrb_the_session_dies_at_the_first_expiry(
    sessions: Sessions, request: pytest.FixtureRequest
) -> None:
    figures = sessions.result(request)
    rounds, expires = figures["rounds"], figures["expires"]
    assert rounds, f"the control driver printed no rounds:\n{figures['stderr_tail']}"
    assert "R" not in figures["flags"]
    before = [r for r in rounds if r["at"] + r["seconds"] < expires]
    after = [r for r in rounds if r["at"] > expires]
    print(
        f"control: {len(before)} rounds before the expiry, all ok: {all(r['ok'] for r in before)}; "
        f"after it: {[r['ok'] for r in after]}; first error: "
        f"{next((r['error'][:300] for r in after if not r['ok']), None)}"
    )
    assert before, rounds
    assert all(r["ok"] for r in before), before
    assert after, rounds
    assert not any(r["ok"] for r in after), after
