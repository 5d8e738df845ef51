"""Issue 19's figures: PySpark on the Kerberos-secured HDFS, through the hub.

Two comparisons for ``bench/run.py``:

- :func:`hadoop`: one secured HDFS (``tools/sandbox/hadoop.py``: Apache
  Hadoop 2.7.3's NameNode and DataNode on Java 17) in its own realm, one user
  signed in through a real hub (pamkrb, ticket broker on, root-only keytab),
  and the kernelspec ``pamkrb kernelspec install`` writes (local mode, the
  cluster's client configuration). For each of ``plan.hadoop_kernel_runs``
  kernels (after one warm-up kernel that writes the file the others read):
  seconds from ``POST /api/kernels`` until the first cell answers (the kernel
  process, the driver JVM and the SparkSession: the kernelspec's
  PYTHONSTARTUP makes ``spark`` before the kernel takes requests; Spark's
  delegation tokens are fetched from the NameNode then), the kernel's first
  HDFS call (``FileSystem.getFileStatus``, one NameNode RPC), then the first
  read through Spark (``spark.read.parquet(...).collect()``: a Spark job,
  block reads through the DataNode over SASL). Resident memory (VmRSS) of the NameNode and DataNode JVMs when
  idle and after the reads, and of the kernel's driver JVM after its read.
- :func:`hadoop_suite`: how much ``make test`` grows: the Hadoop test files,
  run alone with ``--junitxml`` (each file's total, and the slowest tests),
  except ``tests/test_hadoop_sessions.py``, whose four-lifetime sessions take
  about 16 minutes and run beside the main suite (Makefile ``LONG_TESTS``):
  its figure is quoted from the last full run (:data:`LAST_FULL_RUN`).

Both measure and report; neither fails on a timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import harness

import sandbox

KERNEL = "pyspark-bench"
# Loopback only and no web UI, as tests/test_hadoop_kernel.py runs it; nothing
# about Kerberos: the kernelspec itself hands the driver its krb5.conf.
KERNEL_ENV = {"SPARK_SUBMIT_OPTS": "-Dspark.ui.enabled=false", "SPARK_LOCAL_IP": "127.0.0.1"}

WRITE_CELL = 'spark.range(1000).write.mode("overwrite").parquet(%(uri)r)'
# The first HDFS call of the kernel's own: Hadoop's FileSystem API, one
# NameNode RPC; then the first read through Spark (a job, block reads).
STAT_CELL = (
    "_path = spark._jvm.org.apache.hadoop.fs.Path(%(uri)r)\n"
    "_path.getFileSystem(spark._jsc.hadoopConfiguration()).getFileStatus(_path)"
)
READ_CELL = "print(len(spark.read.parquet(%(uri)r).collect()))"

# The Hadoop test files timed by hadoop_suite, and the one that is not.
SUITE_FILES = (
    "tests/test_hadoop_hdfs.py",
    "tests/test_hadoop_kernel.py",
    "tests/test_doctor_hadoop.py",
    "tests/test_hadoop_renewer.py",
    "tests/test_cli_kernelspec.py::test_pyspark_kernel_runs_spark_with_the_users_ticket",
)
LONG_FILE = "tests/test_hadoop_sessions.py"
# The last full `make test` (CI's .ci/run) before these figures, as recorded
# by the engineer who ran it: wall-clock seconds.
LAST_FULL_RUN = {"main_suite": 27 * 60 + 13, "long_group": 16 * 60 + 20, "ci_run": 34 * 60}


def _rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes (0 if it is gone)."""
    return harness.proc_status(pid, "VmRSS") * 1024


def _driver_jvm(server_pid: int) -> int | None:
    """PID of the Spark driver JVM under the user's server (the kernel's child)."""
    javas = [pid for pid, command in sandbox.child_processes(server_pid) if command.split(" ", 1)[0].endswith("java")]
    return javas[0] if len(javas) == 1 else None


def _delete_kernel(session: Any, server: str, kernel_id: str) -> None:
    path = urllib.parse.urlsplit(server).path + "/"
    xsrf = next(c.value for c in session.cookies if c.name == "_xsrf" and path.startswith(c.path.rstrip("/") + "/"))
    session.delete(f"{server}/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf}, timeout=60)


def _execute(ws: Any, code: str) -> None:
    reply = sandbox.kernel_execute(ws, code, timeout=300)
    if reply["status"] != "ok":
        raise RuntimeError(f"cell failed: {code!r}: {reply}")


def hadoop(plan: Any) -> dict[str, Any]:
    from sandbox.hadoop import HADOOP_VERSION, HadoopCluster

    sandbox.install_pam_test_service()
    realm = sandbox.Realm("HADOOP.BENCH")
    cluster: HadoopCluster | None = None
    hub: sandbox.Hub | None = None
    user: sandbox.UnixUser | None = None
    prefix = Path(tempfile.mkdtemp(prefix="pamkrb-bench-kernels-"))
    keytabs = Path(tempfile.mkdtemp(prefix="pamkrb-bench-keytabs-"))
    result: dict[str, Any] = {"hadoop": HADOOP_VERSION, "runs": []}
    try:
        realm.start()
        cluster = HadoopCluster(realm)
        began = time.perf_counter()
        cluster.start()
        result["cluster_start_seconds"] = time.perf_counter() - began
        result["cluster_rss_idle"] = cluster.resident_memory()

        prefix.chmod(0o755)
        install = sandbox.run_pamkrb(
            [
                "kernelspec", "install",
                "--spark-home", str(_pyspark_home()),
                "--master", "local[1]",
                "--name", "pamkrb bench",
                "--hadoop-conf-dir", str(cluster.client_conf_dir),
                *(arg for name, value in KERNEL_ENV.items() for arg in ("--env", f"{name}={value}")),
                "--kernel-name", KERNEL,
                "--prefix", str(prefix),
            ]
        )  # fmt: skip
        if install.returncode != 0:
            raise RuntimeError(f"pamkrb kernelspec install failed: {install.stderr}")

        user = sandbox.UnixUser.create("pkbh")
        principal = realm.add_principal(user.name)
        realm.write_keytab(principal, keytabs / f"{user.name}.keytab", 0, 0)
        home = cluster.make_home(user.name)
        harness.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        hub = sandbox.Hub(
            realm,
            config={
                "PAMKerberosAuthenticator.service": sandbox.PAM_TEST_SERVICE,
                "PAMKerberosAuthenticator.ticket_broker": True,
                "PAMKerberosAuthenticator.keytab_template": f"{keytabs}/{{username}}.keytab",
                "Spawner.environment": {"JUPYTER_PATH": str(prefix / "share" / "jupyter")},
                "JupyterHub.log_level": "INFO",
            },
            log_path=harness.ARTIFACTS / f"hub-hadoop-{os.getpid()}.log",
        )
        hub.start(timeout=60)
        session = sandbox.login_and_spawn(hub, user)
        server = f"{hub.url}/user/{user.name}"
        (server_pid,) = sandbox.singleuser_pids(user.uid)
        uri = f"{cluster.uri}{home}/bench"

        for run in range(plan.hadoop_kernel_runs + 1):
            started = time.perf_counter()
            kernel_id = sandbox.start_kernel(session, server, KERNEL)
            ws = sandbox.kernel_websocket(session, server, kernel_id)
            try:
                _execute(ws, "1")
                ready = time.perf_counter()
                if run == 0:
                    # Warm-up: the file the timed kernels read.
                    _execute(ws, WRITE_CELL % {"uri": uri})
                    continue
                _execute(ws, STAT_CELL % {"uri": uri})
                stat = time.perf_counter()
                _execute(ws, READ_CELL % {"uri": uri})
                read = time.perf_counter()
                driver = _driver_jvm(server_pid)
                result["runs"].append(
                    {
                        "kernel_ready_seconds": ready - started,
                        "first_rpc_seconds": stat - ready,
                        "first_read_seconds": read - stat,
                        "total_seconds": read - started,
                        "driver_rss": _rss(driver) if driver else None,
                    }
                )
            finally:
                ws.close()
                _delete_kernel(session, server, kernel_id)
                sandbox.wait_until(
                    lambda: _driver_jvm(server_pid) is None, timeout=60, message="the kernel's JVM to exit"
                )
        result["cluster_rss_after"] = cluster.resident_memory()
        for key in ("kernel_ready_seconds", "first_rpc_seconds", "first_read_seconds", "total_seconds"):
            result[key] = harness.Stats.of([r[key] for r in result["runs"]]).as_dict()
        result["versions"] = _versions()
        return result
    finally:
        if hub is not None:
            hub.close()
        if user is not None:
            user.remove()
        if cluster is not None:
            cluster.stop()
            cluster.close()
        realm.close()
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(keytabs, ignore_errors=True)


def hadoop_suite(plan: Any) -> dict[str, Any]:
    """The Hadoop test files run alone; per file: seconds and test count."""
    if not plan.hadoop_suite:
        return {"skipped": True}
    junit = harness.ARTIFACTS / f"hadoop-suite-{os.getpid()}.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *SUITE_FILES],
        cwd=harness.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - began
    files: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "tests": 0})
    slowest = []
    outcomes: dict[str, int] = defaultdict(int)
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("classname", "").replace(".", "/") + ".py"
            seconds = float(case.get("time", 0))
            files[name]["seconds"] += seconds
            files[name]["tests"] += 1
            slowest.append((seconds, f"{name}::{case.get('name')}"))
            kind = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            outcomes[kind] += 1
    slowest.sort(reverse=True)
    return {
        "wall_seconds": wall,
        "returncode": completed.returncode,
        "files": dict(files),
        "outcomes": dict(outcomes),
        "slowest": slowest[:8],
        "long_file": LONG_FILE,
        "last_full_run": LAST_FULL_RUN,
        "tail": completed.stdout[-1500:] if completed.returncode else "",
    }


def _pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _versions() -> dict[str, str]:
    from importlib import metadata

    from sandbox.hadoop import HADOOP_VERSION, JAVA

    java = subprocess.run([str(JAVA), "-version"], capture_output=True, text=True, check=False).stderr
    jars = sorted(p.name for p in (_pyspark_home() / "jars").glob("hadoop-client-api-*.jar"))
    return {
        "hadoop_servers": f"Apache Hadoop {HADOOP_VERSION} (jars of PyPI's pyspark 2.4.8 sdist)",
        "pyspark": metadata.version("pyspark"),
        "hadoop_client": jars[0].removeprefix("hadoop-client-api-").removesuffix(".jar") if jars else "unknown",
        "java": " / ".join(line.strip() for line in java.splitlines()[:2]),
    }
