"""The PySpark kernel that ``pamkrb kernelspec install`` writes, against the
Kerberos-secured HDFS, through the real hub.

A user signs in with the login form; pamkrb gets their ticket from a keytab
only root can read (ticket broker on) and points their server's KRB5CCNAME at
it. A notebook kernel from the generated kernelspec (today's ``pyspark``,
local mode, ``--hadoop-conf-dir`` the cluster's client configuration) writes a
DataFrame to ``hdfs:///user/<name>/…`` and reads it back, and HDFS, asked by
its superuser, names the user as the owner. Another user's kernel is refused
in that home. Once with principals ``<name>@REALM`` and once with the
original site's ``<name>/pg-dmp-workbench2@REALM``, which the cluster's
``auth_to_local`` maps to ``<name>`` too.

The kernelspec itself must hand the driver JVM the realm's krb5.conf (the
JVM ignores KRB5_CONFIG): the test passes none, and checks the JVM's
``java.security.krb5.conf``. Only test settings go through ``--env``
(:data:`KERNEL_ENV`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import HubFactory
from sandbox.hadoop import HadoopCluster

# The session's realm and cluster: hadoop_realm, hdfs.
pytest_plugins = ["hadoop_fixtures"]

KERNEL = "pyspark-hdfs-test"
SEED_PRINCIPAL = "{username}/" + HadoopCluster.SEED_HOST + "@{realm}"

# Extra kernel environment for `pamkrb kernelspec install --env`: loopback
# only, and no web UI (the tests do not need it). Spark reads spark.* system
# properties, and SPARK_SUBMIT_OPTS reaches the driver JVM (client mode)
# without replacing the PYSPARK_SUBMIT_ARGS the kernelspec writes. Nothing
# about Kerberos: without -Djava.security.krb5.conf (written by the kernelspec
# from the server's KRB5_CONFIG) the driver reads /etc/krb5.conf, another
# realm, and the first HDFS call fails; Spark 4's launcher adds the
# --add-opens (java.security.jgss/sun.security.krb5) Hadoop's client needs.
KERNEL_ENV = {
    "SPARK_SUBMIT_OPTS": "-Dspark.ui.enabled=false",
    "SPARK_LOCAL_IP": "127.0.0.1",
}

# Variables through which a process could find a credential other than the
# ticket cache.
CREDENTIAL_VARIABLES = ("KRB5_KTNAME", "KRB5_CLIENT_KTNAME", "HADOOP_TOKEN_FILE_LOCATION", "PAMKRB_TEST_KEYTAB")

# What the kernel knows about itself: its environment, and who Hadoop's
# UserGroupInformation (logged in from the ticket cache) says it is.
IDENTITY_CELL = """\
import json, os
_jvm = spark.sparkContext._jvm
_ugi = _jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser()
print(json.dumps({
    "env": dict(os.environ),
    "ugi": _ugi.toString(),
    "short_name": _ugi.getShortUserName(),
    "krb5_conf": _jvm.java.lang.System.getProperty("java.security.krb5.conf"),
    "default_fs": spark.sparkContext._jsc.hadoopConfiguration().get("fs.defaultFS"),
    "keytab_readable": os.access(%(keytab)r, os.R_OK),
}))
"""

# Write a DataFrame, read it back; the outcome as JSON. An error keeps its
# "Permission denied" lines whole, wherever they are in the Java trace.
WRITE_CELL = """\
import json
_uri = %(uri)r
try:
    _frame = spark.createDataFrame([(i, f"row {i}") for i in range(5)], "id INT, text STRING")
    _frame.write.mode("overwrite").parquet(_uri)
    _rows = sorted(tuple(row) for row in spark.read.parquet(_uri).collect())
    print(json.dumps({"ok": True, "rows": _rows}))
except Exception as _error:
    _text = str(_error)
    _denied = [line for line in _text.splitlines() if "Permission denied" in line]
    print(json.dumps({"ok": False, "denied": _denied[:3], "error": _text[:2000]}))
"""
EXPECTED_ROWS = [[i, f"row {i}"] for i in range(5)]


def pyspark_home() -> Path:
    """Today's pyspark package directory in the venv: a Spark distribution."""
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None, "pyspark is not installed in the venv; run `make setup`"
    assert spec.origin is not None
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def jupyter_path(hdfs: HadoopCluster) -> Iterator[Path]:
    """The kernelspec, installed with ``--prefix`` into a directory the users
    can read; the ``share/jupyter`` directory for the servers' JUPYTER_PATH."""
    prefix = Path(tempfile.mkdtemp(prefix="pamkrb-hadoop-kernels-"))
    prefix.chmod(0o755)
    try:
        env_args = [arg for name, value in KERNEL_ENV.items() for arg in ("--env", f"{name}={value}")]
        result = sandbox.run_pamkrb(
            [
                "kernelspec", "install",
                "--spark-home", str(pyspark_home()),
                "--master", "local[1]",
                "--name", "pamkrb hdfs",
                "--hadoop-conf-dir", str(hdfs.client_conf_dir),
                *env_args,
                "--kernel-name", KERNEL,
                "--prefix", str(prefix),
            ]
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield prefix / "share" / "jupyter"
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture
def root_keytabs() -> Iterator[Path]:
    """A root-only (0700) directory of the users' keytabs: the hub reads them,
    the users' servers and kernels cannot."""
    path = Path(tempfile.mkdtemp(prefix="pamkrb-root-keytabs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


UserFactory = Callable[..., sandbox.UnixUser]


@pytest.fixture
def hadoop_user(hadoop_realm: sandbox.Realm, root_keytabs: Path) -> Iterator[UserFactory]:
    """Make Unix users with a principal in the Hadoop realm and a root-only keytab.

    ``hadoop_user()`` gives ``<name>@REALM``; ``hadoop_user(instance=host)``
    the original site's ``<name>/<host>@REALM``.
    """
    made: list[sandbox.UnixUser] = []

    def make(instance: str | None = None) -> sandbox.UnixUser:
        user = sandbox.UnixUser.create("pkh")
        made.append(user)
        principal = hadoop_realm.add_principal(f"{user.name}/{instance}" if instance else user.name)
        hadoop_realm.write_keytab(principal, root_keytabs / f"{user.name}.keytab", 0, 0)
        return user

    try:
        yield make
    finally:
        for user in made:
            user.remove()


def start_hub(
    hub_factory: HubFactory, realm: sandbox.Realm, jupyter_path: Path, keytabs: Path, **authenticator: Any
) -> sandbox.Hub:
    config = {
        "Spawner.environment": {"JUPYTER_PATH": str(jupyter_path)},
        "PAMKerberosAuthenticator.ticket_broker": True,
        "PAMKerberosAuthenticator.keytab_template": f"{keytabs}/{{username}}.keytab",
    }
    config.update({f"PAMKerberosAuthenticator.{name}": value for name, value in authenticator.items()})
    return hub_factory(config, realm=realm)


Cell = Callable[[str], dict[str, Any]]


@contextlib.contextmanager
def pyspark_kernel(hub: sandbox.Hub, session: Any, user: sandbox.UnixUser) -> Iterator[Cell]:
    """A kernel of the generated spec on the user's server; yields a function
    that runs a cell and returns the JSON it printed. The kernel is shut down
    on exit, so only one Spark driver runs at a time."""
    server = f"{hub.url}/user/{user.name}"
    kernel_id = sandbox.start_kernel(session, server, KERNEL)
    ws = sandbox.kernel_websocket(session, server, kernel_id)

    def run(code: str) -> dict[str, Any]:
        # The first cell also waits for shell.py to start Spark's JVM.
        outcome = sandbox.kernel_execute(ws, code, timeout=240)
        assert outcome["status"] == "ok", outcome
        lines = outcome["stdout"].strip().splitlines()
        assert lines, outcome
        return json.loads(lines[-1])

    try:
        yield run
    finally:
        ws.close()
        path = urllib.parse.urlsplit(server).path + "/"
        xsrf = next(c.value for c in session.cookies if c.name == "_xsrf" and path.startswith(c.path.rstrip("/") + "/"))
        session.delete(f"{server}/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf}, timeout=60)


def assert_only_the_users_ticket(
    identity: dict[str, Any], user: sandbox.UnixUser, principal: str, hdfs: HadoopCluster, keytabs: Path
) -> None:
    """The kernel holds the user's pamkrb cache and nothing else that authenticates."""
    env = identity["env"]
    assert env["KRB5CCNAME"] == f"FILE:{user.default_ccache}"
    assert hdfs.realm.klist(user.default_ccache).principal == principal
    assert not [name for name in CREDENTIAL_VARIABLES if name in env]
    # No path of a keytab either (PAMKRB_CREDENTIAL_SOURCE=keytab only names the source the hub uses).
    assert not {name: value for name, value in env.items() if ".keytab" in value or str(keytabs) in value}
    assert identity["keytab_readable"] is False
    assert identity["ugi"] == f"{principal} (auth:KERBEROS)"
    assert identity["short_name"] == user.name
    assert identity["krb5_conf"] == str(hdfs.realm.krb5_conf)
    assert identity["default_fs"] == hdfs.uri


def test_kernel_writes_hdfs_as_the_user_and_another_users_kernel_is_refused(
    hub_factory: HubFactory,
    hadoop_realm: sandbox.Realm,
    hdfs: HadoopCluster,
    jupyter_path: Path,
    root_keytabs: Path,
    hadoop_user: UserFactory,
) -> None:
    owner, intruder = hadoop_user(), hadoop_user()
    home = hdfs.make_home(owner.name)
    hub = start_hub(hub_factory, hadoop_realm, jupyter_path, root_keytabs)

    session = sandbox.login_and_spawn(hub, owner)
    with pyspark_kernel(hub, session, owner) as run:
        identity = run(IDENTITY_CELL % {"keytab": str(root_keytabs / f"{owner.name}.keytab")})
        assert_only_the_users_ticket(identity, owner, f"{owner.name}@{hadoop_realm.name}", hdfs, root_keytabs)
        written = run(WRITE_CELL % {"uri": f"hdfs://{home}/frame"})
    assert written == {"ok": True, "rows": EXPECTED_ROWS}, written
    # Asked by the superuser, not by the kernel that wrote it.
    assert hdfs.owner(f"{home}/frame") == owner.name
    assert hdfs.owner(f"{home}/frame/_SUCCESS") == owner.name

    session = sandbox.login_and_spawn(hub, intruder)
    with pyspark_kernel(hub, session, intruder) as run:
        refused = run(WRITE_CELL % {"uri": f"hdfs://{home}/intruder"})
    assert not refused["ok"]
    denied = f'Permission denied: user={intruder.name}, access=WRITE, inode="{home}'
    assert any(denied in line for line in refused["denied"]), refused
    assert not hdfs.exists(f"{home}/intruder")


def test_seed_principal_form_writes_as_the_user_and_is_refused_elsewhere(
    hub_factory: HubFactory,
    hadoop_realm: sandbox.Realm,
    hdfs: HadoopCluster,
    jupyter_path: Path,
    root_keytabs: Path,
    hadoop_user: UserFactory,
) -> None:
    user = hadoop_user(instance=HadoopCluster.SEED_HOST)
    principal = f"{user.name}/{HadoopCluster.SEED_HOST}@{hadoop_realm.name}"
    # Another user's home: made by the superuser for an account that never signs in.
    other = sandbox.UnixUser.create("pkh")
    try:
        home, other_home = hdfs.make_home(user.name), hdfs.make_home(other.name)
        hub = start_hub(hub_factory, hadoop_realm, jupyter_path, root_keytabs, principal_template=SEED_PRINCIPAL)

        session = sandbox.login_and_spawn(hub, user)
        with pyspark_kernel(hub, session, user) as run:
            identity = run(IDENTITY_CELL % {"keytab": str(root_keytabs / f"{user.name}.keytab")})
            assert_only_the_users_ticket(identity, user, principal, hdfs, root_keytabs)
            written = run(WRITE_CELL % {"uri": f"hdfs://{home}/frame"})
            refused = run(WRITE_CELL % {"uri": f"hdfs://{other_home}/intruder"})
    finally:
        other.remove()
    assert written == {"ok": True, "rows": EXPECTED_ROWS}, written
    # auth_to_local maps <name>/pg-dmp-workbench2@REALM to <name>.
    assert hdfs.owner(f"{home}/frame") == user.name
    assert not refused["ok"]
    denied = f'Permission denied: user={user.name}, access=WRITE, inode="{other_home}'
    assert any(denied in line for line in refused["denied"]), refused
    assert not hdfs.exists(f"{other_home}/intruder")
