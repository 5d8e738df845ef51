"""A Spark session outlives any number of tickets (issue 19): one
SparkSession, a write and a read of HDFS every 20 s, no other activity,
through four or more lifetimes of a 90-second ticket.

The realm here issues 90-second tickets and the cluster (Apache Hadoop 2.7.3,
``tools/sandbox/hadoop.py``) is its own, with delegation tokens that expire
after 60 s (renew interval) and 120 s (max lifetime), shorter than a session.
Kernels come from ``pamkrb kernelspec install`` with the settings it writes
for long sessions (python/pamkrb/cli/kernelspec.py says why each one).

- **The ticket path** (``test_kernel_session_outlives_its_tickets``): a
  notebook kernel started through the hub; the user's server renews the
  cache from the keytab (pamkrb's default). Spark's delegation tokens are
  off, so every HDFS call authenticates with the ticket itself; the tickets
  are not renewable, so Hadoop's own ``kinit -R`` cannot keep them, only
  pamkrb's fresh cache can.
- **The delegation-token path**
  (``test_kernel_session_outlives_its_delegation_tokens``): the same with the
  kernelspec's settings as they are. Spark works with HDFS delegation tokens
  (the NameNode's audit log says ``auth:TOKEN``), which die after at most
  120 s; ``spark.kerberos.renewal.credentials=ccache`` makes Spark fetch new
  ones with the ticket in ``KRB5CCNAME``, which only pamkrb keeps valid.
- **The control** (``test_without_pamkrb_the_session_dies_at_the_first_expiry``):
  the same kernel settings and rounds, run as the user against a cache that
  nothing refreshes (a non-renewable ticket, no hub): the session fails
  after the first expiry, so the first test measures pamkrb's renewal.

What Hadoop does at expiry (seen in these runs): without pamkrb, every round
after the ticket's end fails with "KerberosAuthException: ... Login failure
for user": the client re-reads the cache and finds only the expired ticket.
With pamkrb, on the ticket path one round in about four takes ~4 s instead
of under 1: the JVM's ticket has expired, the connection fails, Hadoop
re-reads the cache (once a minute at most) and retries with pamkrb's
ticket. On the token path Spark fetches a new token every 45 s (75% of the
60 s renew interval) with a fresh login from the cache, and no round slows.

The tests run one after another (each holds one Spark session): about 16
minutes in all, most of it waiting.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli_kernelspec import install, pyspark_home

import sandbox
from conftest import HubFactory, artifact_dir, require_root
from sandbox.hadoop import HadoopCluster

LIFETIME = 90
LIFETIMES = 4
ROUND_EVERY = 20
# Delegation tokens: renew interval and max lifetime on the test NameNode, ms.
TOKEN_RENEW_INTERVAL = 60_000
TOKEN_MAX_LIFETIME = 120_000

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

# The control's driver: the kernel's SparkSession (from PYSPARK_SUBMIT_ARGS,
# as shell.py makes it), then rounds on the same schedule until one fails or
# `rounds` have run.
CONTROL_DRIVER = (
    "import sys, time\n"
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.getOrCreate()\n"
    + ROUND
    + "uri, rounds, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
    "start = time.monotonic()\n"
    "for k in range(rounds):\n"
    "    time.sleep(max(0.0, start + k * every - time.monotonic()))\n"
    "    pamkrb_round(uri, k)\n"
    "spark.stop()\n"
)


@pytest.fixture(scope="module")
def short_hadoop_realm() -> Iterator[sandbox.Realm]:
    """90-second tickets that cannot be renewed, for the cluster's service
    principals and the users: Hadoop's own ``kinit -R`` cannot keep them,
    so a session that lives on does so on pamkrb's fresh cache."""
    require_root()
    realm = sandbox.Realm("SESSIONS.TEST", max_life=LIFETIME, max_renewable_life=0)
    try:
        realm.start()
        yield realm
    finally:
        realm.close()


@pytest.fixture(scope="module")
def short_token_hdfs(short_hadoop_realm: sandbox.Realm) -> Iterator[HadoopCluster]:
    """A secured HDFS whose delegation tokens live shorter than a session."""
    cluster = HadoopCluster(
        short_hadoop_realm,
        hdfs_site={
            "dfs.namenode.delegation.token.renew-interval": str(TOKEN_RENEW_INTERVAL),
            "dfs.namenode.delegation.token.max-lifetime": str(TOKEN_MAX_LIFETIME),
        },
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
def kernel_prefix(short_token_hdfs: HadoopCluster) -> Iterator[Path]:
    """Kernelspecs the test users can read, made by `pamkrb kernelspec install`."""
    prefix = Path(tempfile.mkdtemp(prefix="pamkrb-kernels-"))
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


def ticket_expiry(realm: sandbox.Realm, user: sandbox.UnixUser) -> float | None:
    """When the TGT in the user's cache expires (epoch seconds), or None if unreadable."""
    try:
        return realm.klist(user.default_ccache).expires.timestamp()
    except Exception:  # being replaced at this instant, or gone
        return None


def tgt_flags(realm: sandbox.Realm, user: sandbox.UnixUser) -> str:
    """The TGT's flags as ``klist -f`` prints them (``R``: renewable)."""
    out = subprocess.run(
        ["klist", "-f", "-c", f"FILE:{user.default_ccache}"],
        env=realm.client_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if "krbtgt/" in line)
    return next(line.split("Flags:", 1)[1].strip() for line in lines[row:] if "Flags:" in line)


def round_outcome(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"the round printed no outcome: {text[-2000:]}"
    return json.loads(lines[-1])


def kernel_session(
    hub_factory: HubFactory,
    realm: sandbox.Realm,
    hdfs: HadoopCluster,
    prefix: Path,
    kernel_name: str,
    user: sandbox.UnixUser,
    artifacts: Path,
) -> dict[str, Any]:
    """Log ``user`` in through a hub whose server renews from the keytab,
    start ``kernel_name``, and run a round every ROUND_EVERY seconds through
    LIFETIMES ticket lifetimes. Fails at the first failed round; returns the
    figures (also written to ``artifacts``/figures.json)."""
    home = hdfs.make_home(user.name)
    hub = hub_factory(
        {
            # The server renews when 45 s are left; the realm's tickets are not
            # renewable, so each refresh is a new one from the keytab.
            "PAMKerberosAuthenticator.refresh_margin": 45,
            "PAMKerberosAuthenticator.refresh_interval": 30,
            "Spawner.environment": {"JUPYTER_PATH": str(prefix / "share" / "jupyter")},
        },
        realm=realm,
    )
    session = sandbox.login_and_spawn(hub, user)
    server = f"{hub.url}/user/{user.name}"
    kernel = sandbox.start_kernel(session, server, kernel_name)
    ws = sandbox.kernel_websocket(session, server, kernel)
    rounds: list[dict[str, Any]] = []
    expiries: set[float] = set()
    figures: dict[str, Any] = {"as_before": realm.kdc_requests("AS_REQ")}
    try:
        # The first cell waits for the JVM (PYTHONSTARTUP makes `spark`).
        ready = sandbox.kernel_execute(ws, ROUND + "spark.range(1).count()", timeout=240)
        assert ready["status"] == "ok", ready
        figures["flags"] = tgt_flags(realm, user)
        figures["audit_at_start"] = audit_counts(hdfs, user)
        figures["first_expiry"] = ticket_expiry(realm, user)
        assert figures["first_expiry"] is not None
        uri = f"{hdfs.uri}{home}/rounds"
        started = time.monotonic()
        # Rounds at fixed times from the start, through LIFETIMES ticket
        # lifetimes; between them the kernel and the test do nothing but
        # read the cache's expiry from outside.
        for k in range(LIFETIMES * LIFETIME // ROUND_EVERY + 1):
            due = started + k * ROUND_EVERY
            while time.monotonic() < due:
                if (expiry := ticket_expiry(realm, user)) is not None:
                    expiries.add(expiry)
                time.sleep(min(1.0, max(0.0, due - time.monotonic())))
            reply = sandbox.kernel_execute(ws, f"pamkrb_round({uri!r}, {k})", timeout=150)
            outcome = round_outcome(reply["stdout"]) if reply["status"] == "ok" else {"ok": False, **reply}
            outcome["elapsed"] = round(time.monotonic() - started, 1)
            rounds.append(outcome)
            assert outcome["ok"], f"round {k} at {outcome['elapsed']} s failed: {outcome}"
        figures["wall_seconds"] = round(time.monotonic() - started, 1)
    finally:
        ws.close()
        figures.update(
            rounds=len(rounds),
            failed=[r for r in rounds if not r.get("ok")],
            round_seconds=[r.get("seconds") for r in rounds],
            last_round_at=rounds[-1]["at"] if rounds else None,
            tickets_seen=len(expiries),
            as_requests=realm.kdc_requests("AS_REQ") - figures.pop("as_before"),
            audit_at_end=audit_counts(hdfs, user),
        )
        (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def assert_outlived_its_tickets(figures: dict[str, Any]) -> None:
    # The last round came LIFETIMES - 1 lifetimes after the ticket the
    # session started with had expired, and every round in between succeeded.
    assert figures["wall_seconds"] >= LIFETIMES * LIFETIME
    assert figures["last_round_at"] > figures["first_expiry"] + (LIFETIMES - 1) * LIFETIME
    assert figures["tickets_seen"] >= LIFETIMES, f"pamkrb replaced the cache only {figures['tickets_seen'] - 1} times"
    assert figures["as_requests"] >= LIFETIMES - 1
    # Not renewable: Hadoop's own kinit -R could not have kept them.
    assert "R" not in figures["flags"], figures["flags"]


# Four ticket lifetimes of rounds, plus the cluster, the hub and the JVM.
@pytest.mark.timeout(LIFETIMES * LIFETIME + 300)
def test_kernel_session_outlives_its_tickets(
    hub_factory: HubFactory,
    short_hadoop_realm: sandbox.Realm,
    short_token_hdfs: HadoopCluster,
    kernel_prefix: Path,
    request: pytest.FixtureRequest,
) -> None:
    with sandbox.provisioned_user(short_hadoop_realm, "pks") as user:
        figures = kernel_session(
            hub_factory, short_hadoop_realm, short_token_hdfs, kernel_prefix, TICKET_KERNEL, user,
            artifact_dir(request.node.nodeid),
        )  # fmt: skip
    print(f"ticket path: {json.dumps(figures)}")
    assert_outlived_its_tickets(figures)
    # Delegation tokens were off: every call the NameNode saw used the ticket itself.
    audit = figures["audit_at_end"]
    assert audit["TOKEN"] == audit["tokens_issued"] == 0, audit
    assert audit["KERBEROS"] > figures["audit_at_start"]["KERBEROS"], audit


@pytest.mark.timeout(LIFETIMES * LIFETIME + 300)
def test_kernel_session_outlives_its_delegation_tokens(
    hub_factory: HubFactory,
    short_hadoop_realm: sandbox.Realm,
    short_token_hdfs: HadoopCluster,
    kernel_prefix: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Tokens that expire after 60 s unless renewed and after 120 s for good:
    Spark (spark.kerberos.renewal.credentials=ccache) fetches new ones with
    the ticket pamkrb keeps fresh in KRB5CCNAME."""
    with sandbox.provisioned_user(short_hadoop_realm, "pkd") as user:
        figures = kernel_session(
            hub_factory, short_hadoop_realm, short_token_hdfs, kernel_prefix, TOKENS_KERNEL, user,
            artifact_dir(request.node.nodeid),
        )  # fmt: skip
    print(f"delegation-token path: {json.dumps(figures)}")
    assert_outlived_its_tickets(figures)
    audit = figures["audit_at_end"]
    # The session's calls used tokens, and a token lives at most
    # TOKEN_MAX_LIFETIME: covering the session took a new one at least that often.
    assert audit["TOKEN"] > 0, audit
    assert audit["tokens_issued"] >= figures["wall_seconds"] * 1000 // TOKEN_MAX_LIFETIME, audit


@pytest.mark.timeout(2 * LIFETIME + 300)
def test_without_pamkrb_the_session_dies_at_the_first_expiry(
    short_hadoop_realm: sandbox.Realm, short_token_hdfs: HadoopCluster, kernel_prefix: Path
) -> None:
    realm, hdfs = short_hadoop_realm, short_token_hdfs
    with sandbox.provisioned_user(realm, "pkc") as user:
        home = hdfs.make_home(user.name)
        keytab = user.home / f"{user.name}.keytab"
        env = {
            "PATH": f"{sandbox.VENV_BIN}:{sandbox.SYSTEM_PATH}",
            "HOME": str(user.home),
            "USER": user.name,
            "LC_ALL": "C.UTF-8",
            "KRB5_CONFIG": str(realm.krb5_conf),
            "KRB5CCNAME": f"FILE:{user.default_ccache}",
        }
        kinit = user.run(["kinit", "-kt", str(keytab), user.name], env=env)
        assert kinit.returncode == 0, kinit.stderr
        keytab.unlink()  # nothing can get a new ticket now
        ticket = realm.klist(user.default_ccache)
        assert "R" not in tgt_flags(realm, user)
        spec = kernel_spec(kernel_prefix, TICKET_KERNEL)
        launcher = spec["argv"][: spec["argv"].index("pamkrb-pyspark-kernel") + 1]
        driver = user.home / "control.py"
        driver.write_text(CONTROL_DRIVER)
        total = 2 * LIFETIME // ROUND_EVERY + 1
        proc = subprocess.Popen(
            [*launcher, str(sandbox.VENV_BIN / "python"), str(driver), f"{hdfs.uri}{home}/rounds", str(total),
             str(ROUND_EVERY)],
            env={**env, **spec["env"]}, user=user.uid, group=user.gid, extra_groups=[], cwd=user.home,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            stdout, stderr = proc.communicate(timeout=total * ROUND_EVERY + 8 * 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        rounds = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert rounds, f"the control driver printed no rounds:\n{stderr[-4000:]}"
        expires = ticket.expires.timestamp()
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
