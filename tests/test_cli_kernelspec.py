"""`pamkrb kernelspec install` with the real pyspark package from PyPI.

The pip-installed pyspark ships a Spark distribution (jars, bin/, python/lib
with the py4j zip), so its package directory serves as SPARK_HOME; Spark runs
in local mode on the machine's Java 17. The end-to-end test starts a kernel
from the installed spec in a user's server behind a real hub and runs a Spark
job over the kernel WebSocket.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from conftest import HubFactory

KERNEL = "pyspark-pamkrb-test"


def pyspark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None, "pyspark is not installed in the venv; run `make setup`"
    assert spec.origin is not None
    return Path(spec.origin).parent


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return sandbox.run_pamkrb(["kernelspec", "install", *args])


def assert_usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


@pytest.fixture
def shared_prefix() -> Iterator[Path]:
    """An install prefix the test users can read (pytest's tmp_path is root-only)."""
    prefix = Path(tempfile.mkdtemp(prefix="pamkrb-kernels-"))
    prefix.chmod(0o755)
    try:
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_install_writes_a_pyspark_kernelspec(tmp_path: Path) -> None:
    spark_home = pyspark_home()
    hadoop_conf = tmp_path / "hadoop-conf"
    hadoop_conf.mkdir()
    prefix = tmp_path / "prefix"

    result = install(
        "--spark-home", str(spark_home),
        "--master", "local[1]",
        "--name", "team analytics",
        "--hadoop-conf-dir", str(hadoop_conf),
        "--env", "HADOOP_CLIENT_OPTS=-Xmx1g",
        "--kernel-name", KERNEL,
        "--display-name", "PySpark (test)",
        "--prefix", str(prefix),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    spec_dir = prefix / "share" / "jupyter" / "kernels" / KERNEL
    assert str(spec_dir) in result.stdout
    spec = json.loads((spec_dir / "kernel.json").read_text())
    python = str(sandbox.VENV_BIN / "python3")  # sys.executable of the pamkrb script
    # PYTHON -c LAUNCHER pamkrb-pyspark-kernel, then the kernel it execs: no shell.
    assert spec["argv"][:2] == [python, "-c"]
    assert spec["argv"][3:] == ["pamkrb-pyspark-kernel", python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert "/bin/sh" not in spec["argv"]
    assert spec["display_name"] == "PySpark (test)"
    assert spec["language"] == "python"
    env = spec["env"]
    assert "KRB5CCNAME" not in env, "the kernel must inherit the user's cache from the server"
    (py4j,) = (spark_home / "python" / "lib").glob("py4j-*-src.zip")
    assert env == {
        "SPARK_HOME": str(spark_home),
        "PYTHONPATH": f"{spark_home / 'python'}:{py4j}",
        "PYTHONSTARTUP": str(spark_home / "python" / "pyspark" / "shell.py"),
        "PYSPARK_PYTHON": python,
        "PYSPARK_SUBMIT_ARGS": env["PYSPARK_SUBMIT_ARGS"],
        "HADOOP_CONF_DIR": str(hadoop_conf),
        "HADOOP_CLIENT_OPTS": "-Xmx1g",
    }
    # pyspark splits PYSPARK_SUBMIT_ARGS with shlex: the app name stays whole.
    assert shlex.split(env["PYSPARK_SUBMIT_ARGS"]) == [
        "--master", "local[1]", "--deploy-mode", "client", "--name", "team analytics",
        # Long sessions: delegation tokens re-fetched with the ticket in KRB5CCNAME.
        "--conf", "spark.kerberos.renewal.credentials=ccache",
        "pyspark-shell",
    ]  # fmt: skip
    assert stat.S_IMODE((spec_dir / "kernel.json").stat().st_mode) == 0o644

    # jupyter_client finds it where a server with this JUPYTER_PATH looks.
    listed = subprocess.run(
        [str(sandbox.VENV_BIN / "jupyter"), "kernelspec", "list", "--json"],
        env={**os.environ, "JUPYTER_PATH": str(prefix / "share" / "jupyter")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listed.stdout)["kernelspecs"][KERNEL]["resource_dir"] == str(spec_dir)


def launcher_environment(spec_argv: list[str], env: dict[str, str]) -> dict[str, str]:
    """The environment the kernel command line of ``spec_argv`` would start with."""
    launcher = spec_argv[: spec_argv.index("pamkrb-pyspark-kernel") + 1]
    result = subprocess.run(
        [*launcher, "/usr/bin/env", "-0"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


def spark_driver_command(env: dict[str, str]) -> list[str]:
    """The driver JVM's command line as Spark's own launcher builds it (no JVM of Spark's is started)."""
    spark_home = pyspark_home()
    result = subprocess.run(
        ["java", "-cp", f"{spark_home / 'jars'}/*", "org.apache.spark.launcher.Main",
         "org.apache.spark.deploy.SparkSubmit", "--master", "local[1]", "pyspark-shell"],
        # bin/spark-class's shell scripts would set SPARK_SCALA_VERSION; the jars are spark-*_2.13.
        env={**env, "SPARK_HOME": str(spark_home), "SPARK_SCALA_VERSION": "2.13"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [item for item in result.stdout.split("\0") if item]


def test_the_kernel_gives_krb5_config_to_the_driver_jvm(tmp_path: Path) -> None:
    """The JVM ignores KRB5_CONFIG: the kernel's launcher passes its first
    file as -Djava.security.krb5.conf, keeping the admin's SPARK_SUBMIT_OPTS."""
    result = install("--spark-home", str(pyspark_home()), "--master", "local[1]", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (spec_dir,) = (tmp_path / "share" / "jupyter" / "kernels").iterdir()
    argv = json.loads((spec_dir / "kernel.json").read_text())["argv"]
    base = {"PATH": "/usr/bin:/bin"}
    krb5_conf = tmp_path / "site conf" / "krb5.conf"

    with_config = launcher_environment(
        argv, {**base, "KRB5_CONFIG": f"{krb5_conf}:/etc/krb5.conf", "SPARK_SUBMIT_OPTS": "-Xss4m"}
    )
    without = launcher_environment(argv, base)

    assert "SPARK_SUBMIT_OPTS" not in without
    command = spark_driver_command({**base, "SPARK_SUBMIT_OPTS": with_config["SPARK_SUBMIT_OPTS"]})
    # One argument, spaces and all, ahead of the admin's own option.
    assert f"-Djava.security.krb5.conf={krb5_conf}" in command, command
    assert command.index(f"-Djava.security.krb5.conf={krb5_conf}") < command.index("-Xss4m")
    assert command[-1] == "pyspark-shell"
    # Why the kernelspec adds no --add-opens: Spark's launcher opens what
    # Hadoop's client-side Kerberos code reflects into.
    assert "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED" in command


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--spark-home", "/nonexistent/spark"),
        ("--hadoop-conf-dir", "/nonexistent/hadoop/conf"),
        ("--python", "/nonexistent/bin/python3"),
        ("--py4j", "/nonexistent/py4j-0.10.9-src.zip"),
    ],
)
def test_missing_path_is_a_usage_error_naming_option_and_path(tmp_path: Path, option: str, value: str) -> None:
    args = {"--spark-home": str(pyspark_home()), "--master": "local[1]", "--prefix": str(tmp_path)}
    args[option] = value

    result = install(*[item for pair in args.items() for item in pair])

    assert_usage_error(result, option, value)
    assert not (tmp_path / "share").exists()


def test_spark_home_without_py4j_is_refused(tmp_path: Path) -> None:
    (tmp_path / "python" / "lib").mkdir(parents=True)

    result = install("--spark-home", str(tmp_path), "--master", "local[1]", "--prefix", str(tmp_path / "p"))

    assert_usage_error(result, "--spark-home", "py4j-*-src.zip", str(tmp_path / "python" / "lib"))


def test_several_py4j_zips_are_ambiguous(tmp_path: Path) -> None:
    lib = tmp_path / "python" / "lib"
    lib.mkdir(parents=True)
    for version in ("0.10.9.7", "0.10.9.9"):
        (lib / f"py4j-{version}-src.zip").write_bytes(b"")

    result = install("--spark-home", str(tmp_path), "--master", "local[1]", "--prefix", str(tmp_path / "p"))

    assert_usage_error(result, "several py4j zips", "--py4j")


def test_yarn_needs_a_hadoop_conf_dir(tmp_path: Path) -> None:
    result = install("--spark-home", str(pyspark_home()), "--prefix", str(tmp_path))

    assert_usage_error(result, "--master yarn needs --hadoop-conf-dir")


@pytest.mark.parametrize("variable", ["KRB5CCNAME", "PAMKRB_CCACHE"])
def test_per_user_variables_cannot_be_pinned(tmp_path: Path, variable: str) -> None:
    result = install(
        "--spark-home", str(pyspark_home()), "--master", "local[1]", "--prefix", str(tmp_path),
        "--env", f"{variable}=FILE:/tmp/krb5cc_0",
    )  # fmt: skip

    assert_usage_error(result, variable, "inherit")


def test_cluster_deploy_mode_is_refused(tmp_path: Path) -> None:
    result = install(
        "--spark-home", str(pyspark_home()), "--master", "local[1]", "--deploy-mode", "cluster",
        "--prefix", str(tmp_path),
    )  # fmt: skip

    assert_usage_error(result, "client mode")


def test_pyspark_kernel_runs_spark_with_the_users_ticket(
    hub_factory: HubFactory, user: sandbox.UnixUser, shared_prefix: Path
) -> None:
    result = install(
        "--spark-home", str(pyspark_home()),
        "--master", "local[1]",
        "--name", "pamkrb e2e",
        "--kernel-name", KERNEL,
        "--prefix", str(shared_prefix),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hub = hub_factory({"Spawner.environment": {"JUPYTER_PATH": str(shared_prefix / "share" / "jupyter")}})
    session = sandbox.login_and_spawn(hub, user)
    server = f"{hub.url}/user/{user.name}"

    kernel_id = sandbox.start_kernel(session, server, KERNEL)
    ws = sandbox.kernel_websocket(session, server, kernel_id)
    try:
        # The first cell waits for Spark's JVM to start (PYTHONSTARTUP runs shell.py): tens of seconds.
        count = sandbox.kernel_execute(ws, "spark.range(10).count()", timeout=240)
        assert count["status"] == "ok", count
        assert count["result"] == "10"
        context = sandbox.kernel_execute(ws, "(spark.sparkContext.master, spark.sparkContext.appName)")
        assert context["result"] == "('local[1]', 'pamkrb e2e')"
        ccname = sandbox.kernel_execute(ws, "import os; os.environ['KRB5CCNAME']")
        assert ccname["result"] == repr(f"FILE:{user.default_ccache}")
    finally:
        ws.close()
