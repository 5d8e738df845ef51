"""``pamkrb kernelspec install``: a PySpark kernel for the users' servers.

It writes what a hand-made PySpark ``kernel.json`` holds — SPARK_HOME, the
py4j zip on PYTHONPATH, PYSPARK_PYTHON, HADOOP_CONF_DIR and
PYSPARK_SUBMIT_ARGS — with every path checked before anything is installed.
It deliberately sets no KRB5CCNAME: pamkrb puts that into each user's server
environment, and every kernel inherits it, so one kernelspec serves all users.

What keeps a long Spark session authenticated while pamkrb replaces the
user's FILE cache under it (measured with Spark 4.3, its Hadoop 3.5
client and Java 17 against the sandbox's Kerberos-secured HDFS):

- ``spark.kerberos.renewal.credentials=ccache`` (:data:`SESSION_CONF`). By
  default Spark re-obtains Hadoop delegation tokens only from a keytab; with
  ``ccache`` its token manager (YARN, and local mode in Spark 4) logs in
  again from the ``KRB5CCNAME`` cache each time it fetches new tokens, so
  tokens shorter-lived than the session are replaced from the ticket pamkrb
  keeps fresh (SPARK-26595).
- Hadoop's own renewer is left as it is. UGI starts a "TGT Renewer" thread
  for a ticket-cache login, which at 80% of the ticket's life runs
  ``kinit -R`` on ``KRB5CCNAME`` and re-reads the cache. It cannot be
  switched from Spark: ``spark.hadoop.hadoop.kerberos.kinit.command`` reaches
  UGI's configuration only after the login has started the thread (measured:
  the command set there was never run; plain ``kinit -R`` renewed the cache
  twice). It does not fight pamkrb: MIT ``kinit -R`` writes a temporary file
  beside the cache as the user and renames it over the cache, as pamkrb
  does, so the cache is always whole, the user's, of the same principal,
  with whichever valid ticket was written last. What it cannot do is renew a
  ticket that is not renewable: then the thread gives up for good ("TGT is
  expired. Aborting renew thread"), the JVM re-reads the cache only after a
  failed connection, at most once a minute, and it is Spark's token
  re-fetch above (a fresh login from the cache each time) that carries the
  session.
- ``-Djava.security.krb5.conf``: the JVM ignores ``KRB5_CONFIG`` and reads
  ``/etc/krb5.conf``. The kernel starts through a few lines of Python run
  by the kernel's own interpreter (:func:`kernel_launcher`; no shell),
  which, when the server's environment has
  ``KRB5_CONFIG`` (the hub passes it through ``Spawner.env_keep``), adds its
  first file to ``SPARK_SUBMIT_OPTS``, the driver JVM's options in client
  mode; then it execs the kernel, so the kernel is still the process
  Jupyter started. A value set by ``--env SPARK_SUBMIT_OPTS`` is kept.
- No ``--add-opens``: Hadoop's client code reflects into
  ``sun.security.krb5`` (``KerberosUtil.getDefaultRealm``), which Spark's
  launcher already opens on Java 17 (Spark 3.3 and later); the other module
  Hadoop 2.7's servers need, ``sun.security.jgss``, serves only the server
  side of SPNEGO.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..lifecycle import ENV_NAMES
from .errors import UsageError

# Variables the kernelspec must not pin: they are per user and come from the
# server environment pamkrb sets up.
INHERITED_VARIABLES = ENV_NAMES

# Spark settings every kernel gets (the module docstring says why).
SESSION_CONF = (("spark.kerberos.renewal.credentials", "ccache"),)

# Run by the kernel's interpreter before the kernel: pass KRB5_CONFIG's first
# file to the driver JVM, then exec the kernel (argv after the marker), so the
# kernel is the process Jupyter started. Standard library only: the kernel's
# Python need not have pamkrb. The double quotes survive Spark's launcher,
# which splits SPARK_SUBMIT_OPTS like a shell, so a path with spaces stays whole.
LAUNCHER_MARKER = "pamkrb-pyspark-kernel"
LAUNCHER_CODE = """\
import os, sys
conf = os.environ.get("KRB5_CONFIG", "").split(":")[0]
if conf:
    opts = os.environ.get("SPARK_SUBMIT_OPTS", "")
    os.environ["SPARK_SUBMIT_OPTS"] = ('-Djava.security.krb5.conf="%s" %s' % (conf, opts)).strip()
os.execv(sys.argv[2], sys.argv[2:])
"""


def kernel_launcher(python: str) -> list[str]:
    """The argv prefix that starts the command after it as described above."""
    return [python, "-c", LAUNCHER_CODE, LAUNCHER_MARKER]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "kernelspec",
        help="install a PySpark kernelspec",
        description="Manage Jupyter kernelspecs for PySpark.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        help="write a PySpark kernelspec and install it like `jupyter kernelspec install`",
        description=(
            "Write a PySpark kernelspec and install it with jupyter_client (like `jupyter kernelspec install`). "
            "Kernels started from it run the driver in the kernel process (client mode) and inherit KRB5CCNAME "
            "from the user's server, which pamkrb points at the user's ticket cache; the spec itself holds no "
            "per-user setting. So that a session outlives its tickets, every kernel also gets "
            "spark.kerberos.renewal.credentials=ccache (Spark fetches new Hadoop delegation tokens with the "
            "ticket in KRB5CCNAME, which pamkrb keeps fresh) and, when the server has KRB5_CONFIG, "
            "-Djava.security.krb5.conf with its first file in SPARK_SUBMIT_OPTS (the JVM ignores KRB5_CONFIG)."
        ),
        epilog=(
            "example: pamkrb kernelspec install --spark-home /opt/spark --hadoop-conf-dir /etc/hadoop/conf "
            "--name workbench --sys-prefix"
        ),
    )
    install.add_argument(
        "--spark-home",
        required=True,
        metavar="DIR",
        help="Spark installation (SPARK_HOME); must contain python/lib/py4j-*-src.zip",
    )
    install.add_argument(
        "--master",
        default="yarn",
        help="Spark master URL passed to spark-submit, e.g. yarn or local[2] (default: %(default)s)",
    )
    install.add_argument(
        "--deploy-mode",
        default="client",
        choices=("client", "cluster"),
        help="spark-submit --deploy-mode (default: %(default)s); an interactive kernel needs client",
    )
    install.add_argument(
        "--name",
        default="Jupyter PySpark",
        help="Spark application name shown in YARN and the Spark UI (default: %(default)s)",
    )
    install.add_argument(
        "--hadoop-conf-dir",
        metavar="DIR",
        help="HADOOP_CONF_DIR for the kernel (core-site.xml, yarn-site.xml); required with --master yarn",
    )
    install.add_argument(
        "--python",
        default=sys.executable,
        metavar="PATH",
        help=(
            "Python that runs the kernel (it needs ipykernel) and Spark's Python workers (PYSPARK_PYTHON); "
            "the same interpreter for both, since Spark refuses mismatched driver and worker versions "
            "(default: %(default)s)"
        ),
    )
    install.add_argument(
        "--py4j",
        metavar="ZIP",
        help="py4j source zip to put on PYTHONPATH (default: the one py4j-*-src.zip under SPARK_HOME/python/lib)",
    )
    install.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "extra environment variable for the kernel, e.g. HADOOP_CLIENT_OPTS=-Xmx2g; repeatable. "
            "KRB5CCNAME is refused: kernels must inherit each user's own cache"
        ),
    )
    install.add_argument(
        "--kernel-name",
        default="pyspark",
        metavar="NAME",
        help="directory name of the kernelspec, what notebooks record (default: %(default)s)",
    )
    install.add_argument(
        "--display-name",
        metavar="TEXT",
        help="name shown in the launcher and kernel picker (default: 'PySpark (<master>)')",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument(
        "--user",
        action="store_true",
        help="install for the current user only (~/.local/share/jupyter/kernels)",
    )
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help=f"install into this Python's prefix, {sys.prefix}/share/jupyter/kernels",
    )
    where.add_argument(
        "--prefix",
        metavar="DIR",
        help="install into DIR/share/jupyter/kernels (DIR/share/jupyter must then be on the servers' JUPYTER_PATH)",
    )
    install.set_defaults(run=run_install, prog=install.prog)


def build_kernel_json(args: argparse.Namespace) -> dict[str, Any]:
    """The kernel.json for ``args``, after checking every path it names."""
    spark_home = _existing_dir(args.spark_home, "--spark-home")
    python = _absolute(args.python)
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise UsageError(f"--python: {python}: not an executable file")
    py4j = _existing_file(args.py4j, "--py4j") if args.py4j else find_py4j(spark_home)
    if args.deploy_mode == "cluster":
        raise UsageError("--deploy-mode cluster: Spark runs interactive shells (and so kernels) only in client mode")
    if not args.master.strip() or not args.name.strip():
        raise UsageError("--master and --name must not be empty")
    extra = _parse_env(args.env)

    env = {
        "SPARK_HOME": spark_home,
        "PYTHONPATH": os.pathsep.join([os.path.join(spark_home, "python"), py4j]),
        # IPython runs PYTHONSTARTUP when the kernel starts: Spark's own shell
        # start-up file creates `spark` and `sc` from PYSPARK_SUBMIT_ARGS.
        "PYTHONSTARTUP": _existing_file(os.path.join(spark_home, "python", "pyspark", "shell.py"), "--spark-home"),
        "PYSPARK_PYTHON": python,
        # pyspark splits this with shlex, so quoting keeps a name with spaces whole.
        "PYSPARK_SUBMIT_ARGS": shlex.join(
            [
                "--master",
                args.master,
                "--deploy-mode",
                args.deploy_mode,
                "--name",
                args.name,
                *(item for name, value in SESSION_CONF for item in ("--conf", f"{name}={value}")),
                "pyspark-shell",
            ]
        ),
    }
    if args.hadoop_conf_dir:
        env["HADOOP_CONF_DIR"] = _existing_dir(args.hadoop_conf_dir, "--hadoop-conf-dir")
    elif args.master == "yarn" and "HADOOP_CONF_DIR" not in extra and "YARN_CONF_DIR" not in extra:
        raise UsageError("--master yarn needs --hadoop-conf-dir (the directory holding yarn-site.xml)")
    env.update(extra)
    return {
        "argv": [*kernel_launcher(python), python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": args.display_name or f"PySpark ({args.master})",
        "language": "python",
        "env": env,
        "metadata": {"debugger": False, "generated_by": "pamkrb kernelspec install"},
    }


def find_py4j(spark_home: str) -> str:
    """The single ``py4j-*-src.zip`` under SPARK_HOME/python/lib."""
    lib = Path(spark_home, "python", "lib")
    found = sorted(str(p) for p in lib.glob("py4j-*-src.zip"))
    if not found:
        raise UsageError(f"--spark-home: {spark_home}: no py4j-*-src.zip in {lib}; is this a Spark installation?")
    if len(found) > 1:
        raise UsageError(
            f"--spark-home: {spark_home}: several py4j zips in {lib} ({', '.join(found)}); choose with --py4j"
        )
    return found[0]


def run_install(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = build_kernel_json(args)
    prefix = None
    if args.sys_prefix:
        prefix = sys.prefix
    elif args.prefix:
        prefix = _absolute(args.prefix)
    with tempfile.TemporaryDirectory(prefix="pamkrb-kernelspec-") as staging:
        with open(os.path.join(staging, "kernel.json"), "w") as f:
            json.dump(spec, f, indent=2, sort_keys=True)
            f.write("\n")
        try:
            installed = KernelSpecManager().install_kernel_spec(
                staging, kernel_name=args.kernel_name, user=args.user, prefix=prefix
            )
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot install kernelspec {args.kernel_name!r}: {e}") from None
    # jupyter_client copies with the staging directory's 0700 mode; the
    # servers run as the users, who must be able to read the spec.
    if not args.user:
        os.chmod(installed, 0o755)
        os.chmod(os.path.join(installed, "kernel.json"), 0o644)
    print(f"Installed kernelspec {args.kernel_name} in {installed}")
    return 0


def _parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--env {item}: expected NAME=VALUE")
        if name in INHERITED_VARIABLES:
            raise UsageError(
                f"--env {name}: kernels inherit {name} from the user's server (set by pamkrb); pinning it in the "
                "kernelspec would point every user at the same value"
            )
        env[name] = value
    return env


def _absolute(path: str) -> str:
    # abspath, not realpath: a venv's bin/python is a symlink, and resolving
    # it would lose the venv.
    return os.path.abspath(os.path.expanduser(path))


def _existing_dir(path: str, option: str) -> str:
    full = _absolute(path)
    if not os.path.isdir(full):
        problem = "not a directory" if os.path.exists(full) else "no such directory"
        raise UsageError(f"{option}: {full}: {problem}")
    return full


def _existing_file(path: str, option: str) -> str:
    full = _absolute(path)
    if not os.path.isfile(full):
        problem = "not a regular file" if os.path.exists(full) else "no such file"
        raise UsageError(f"{option}: {full}: {problem}")
    return full
