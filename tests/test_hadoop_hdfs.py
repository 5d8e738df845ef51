"""Today's PySpark against a Kerberos-secured HDFS, with a user's ticket and nothing else.

The cluster is Apache Hadoop 2.7.3 (a NameNode and a DataNode on loopback,
``tools/sandbox/hadoop.py``), started once per test session. The client is the
venv's ``pyspark`` (Spark 4, Hadoop 3 client) in local mode, run as the Unix
user with ``KRB5CCNAME=FILE:<the user's cache>``, as a notebook kernel runs it:
no keytab, no delegation token, no other credential. HDFS must see the
ticket's identity: it owns what it writes, and another user's ticket is
refused in its home.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sandbox
from sandbox.hadoop import HadoopCluster

# The session's realm and cluster: hadoop_realm, hdfs.
pytest_plugins = ["hadoop_fixtures"]

# One Spark session: write a small DataFrame to the URI, read it back, print
# the outcome as JSON on the last line. Loopback only: no UI, driver on 127.0.0.1.
SPARK_JOB = """\
import json, sys
from pyspark.sql import SparkSession

uri, krb5_conf = sys.argv[1:3]
spark = (
    SparkSession.builder.master("local[1]")
    .appName("pamkrb hdfs test")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    # The JVM ignores KRB5_CONFIG.
    .config("spark.driver.extraJavaOptions", f"-Djava.security.krb5.conf={krb5_conf}")
    .getOrCreate()
)
try:
    frame = spark.createDataFrame([(i, f"row {i}") for i in range(5)], "id INT, text STRING")
    frame.write.mode("overwrite").parquet(uri)
    rows = sorted(tuple(row) for row in spark.read.parquet(uri).collect())
    print(json.dumps({"ok": True, "rows": rows}))
except Exception as error:
    print(json.dumps({"ok": False, "error": str(error)[:4000]}))
finally:
    spark.stop()
"""
EXPECTED_ROWS = [[i, f"row {i}"] for i in range(5)]


UserFactory = Callable[..., sandbox.UnixUser]


@pytest.fixture
def ticket_holder(hadoop_realm: sandbox.Realm) -> Iterator[UserFactory]:
    """Make Unix users holding a ticket of the Hadoop realm in their default cache.

    ``ticket_holder()`` gives ``<name>@REALM``; ``ticket_holder(instance=host)``
    the original site's ``<name>/<host>@REALM``. The user gets the ticket
    themself (``kinit -kt`` of their own keytab), so the cache is theirs, 0600;
    the keytab is then deleted: the ticket is the only credential left.
    """
    made: list[sandbox.UnixUser] = []

    def make(instance: str | None = None) -> sandbox.UnixUser:
        user = sandbox.UnixUser.create("pkh")
        made.append(user)
        principal = hadoop_realm.add_principal(f"{user.name}/{instance}" if instance else user.name)
        keytab = hadoop_realm.write_keytab(principal, user.home / "hadoop.keytab", user.uid, user.gid)
        kinit = user.run(
            ["kinit", "-kt", str(keytab), "-c", f"FILE:{user.default_ccache}", principal],
            env=hadoop_realm.client_env(),
        )
        assert kinit.returncode == 0, kinit.stderr
        keytab.unlink()
        assert hadoop_realm.klist(user.default_ccache).principal == principal
        return user

    try:
        yield make
    finally:
        for user in made:
            user.remove()


def spark_as(user: sandbox.UnixUser, hdfs: HadoopCluster, uri: str) -> dict[str, Any]:
    """Run ``SPARK_JOB`` as ``user`` with their cache in KRB5CCNAME; its JSON result."""
    env = {
        "PATH": f"{sandbox.VENV_BIN}:{sandbox.SYSTEM_PATH}",
        "HOME": str(user.home),
        "USER": user.name,
        "LC_ALL": "C.UTF-8",
        "KRB5CCNAME": f"FILE:{user.default_ccache}",
        "KRB5_CONFIG": str(hdfs.realm.krb5_conf),
        "HADOOP_CONF_DIR": str(hdfs.client_conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    result = user.run(
        [str(sandbox.VENV_BIN / "python"), "-c", SPARK_JOB, uri, str(hdfs.realm.krb5_conf)],
        env=env,
        timeout=180,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, f"Spark exited with {result.returncode}:\n{result.stderr[-4000:]}"
    assert lines, f"Spark printed nothing:\n{result.stderr[-4000:]}"
    return json.loads(lines[-1])


def test_spark_writes_and_reads_hdfs_as_the_tickets_owner(hdfs: HadoopCluster, ticket_holder: UserFactory) -> None:
    user = ticket_holder()
    home = hdfs.make_home(user.name)

    outcome = spark_as(user, hdfs, f"{hdfs.uri}{home}/x")

    assert outcome == {"ok": True, "rows": EXPECTED_ROWS}, outcome.get("error")
    # Asked by the superuser, not by the client that wrote it.
    assert hdfs.owner(f"{home}/x") == user.name
    assert hdfs.owner(f"{home}/x/_SUCCESS") == user.name


def test_another_users_ticket_is_refused_in_a_home(hdfs: HadoopCluster, ticket_holder: UserFactory) -> None:
    owner = ticket_holder()
    home = hdfs.make_home(owner.name)
    # The original site's principal form, user/pg-dmp-workbench2@REALM: auth_to_local makes it the user.
    intruder = ticket_holder(instance=HadoopCluster.SEED_HOST)

    outcome = spark_as(intruder, hdfs, f"{hdfs.uri}{home}/y")

    assert not outcome["ok"]
    assert f'Permission denied: user={intruder.name}, access=WRITE, inode="{home}' in outcome["error"]
    assert not hdfs.exists(f"{home}/y")


def test_web_endpoints_are_https_only_with_spnego(hdfs: HadoopCluster, ticket_holder: UserFactory) -> None:
    user = ticket_holder()

    def curl(url: str, *options: str) -> subprocess.CompletedProcess[str]:
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %header{set-cookie}"]
        args += ["--cacert", str(hdfs.certificate), *options, url]
        env = {**hdfs.realm.client_env(), "KRB5CCNAME": f"FILE:{user.default_ccache}"}
        return user.run(args, env=env, timeout=30)

    for server in ("namenode", "datanode"):
        url = f"{hdfs.web_url(server)}/jmx"
        assert curl(url).stdout.startswith("401 "), server
        negotiated = curl(url, "--negotiate", "-u", ":")
        assert negotiated.stdout.startswith("200 "), (server, negotiated.stdout, negotiated.stderr)
        # The signed cookie names the ticket's user.
        assert f"u={user.name}&p={user.name}@{hdfs.realm.name}&t=kerberos" in negotiated.stdout
        # The servers' log directory is for administrators only.
        logs = curl(f"{hdfs.web_url(server)}/logs/", "--negotiate", "-u", ":")
        assert logs.stdout.startswith("403 "), (server, logs.stdout)
        # Plain HTTP on the same port is refused by the TLS endpoint.
        plain = curl(url.replace("https://", "http://"), "--negotiate", "-u", ":")
        assert not plain.stdout.startswith("200"), (server, plain.stdout)
