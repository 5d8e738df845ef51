"""Hadoop's renewer against pamkrb's replace (issue 19): both write one
user's FILE cache, round after round, while a Spark session works on HDFS.

Hadoop's UGI, logged in from the ticket cache, renews a renewable TGT by
running ``kinit -R`` (``hadoop.kerberos.kinit.command``) at 80% of the
ticket's life, then logs in again from the cache. pamkrb replaces the same
cache with a new file renamed over the path. What MIT krb5 1.20's
``kinit -R`` does to the file (strace): it reads the cache under OFD read
locks, writes the renewed ticket to a ``mkstemp`` file beside it
(``/tmp/krb5cc_<uid>.XXXXXX``, mode 0600, as the calling user) in one
``write``, and ``rename``s it over the cache. Both writers therefore replace
the file whole; neither truncates or appends to the file a reader has open.
The one race left is a lost update: ``kinit -R`` may rename the renewal of
the ticket it read over a newer one pamkrb installed in between. Both are
the user's, of the same principal, valid for a full ticket life.

The test drives that race on purpose, with real components only:

- a principal with 60-second tickets, renewable for 10 minutes;
- Hadoop's renewer command, ``kinit -R``, run as the user with the driver
  JVM's own environment (read from ``/proc``), as UGI's Shell.execCommand
  runs it; and pamkrb's renewals, the server's keeper (``TicketKeeper.from_keytab``
  and a TGS ``renew_ticket`` as the user) and the hub's
  (``obtain_ticket``/``renew_ticket`` as root with the user's uid/gid), all
  on one schedule, started within a few
  milliseconds of each other every :data:`PERIOD` seconds, so that pamkrb's
  rename often lands inside kinit's read-renew-rename;
- a reader in this process that reads the cache continuously through its
  own descriptor (no link followed) and parses it byte by byte, and through
  pamkrb's own reader (``inspect_ticket``): every read is a whole regular
  file of the user's, mode 0600, whose every credential parses to the last
  byte, holding an unexpired TGT of the user's principal;
- a reader in the JVM (``UserGroupInformation.getUGIFromTicketCache``, the
  JAAS login UGI itself uses), and a Spark session from the generated
  kernelspec, run as the user like a kernel, doing an HDFS write and read
  every :data:`SPARK_EVERY` seconds with delegation tokens off, so every
  call authenticates with a TGT the JVM read from this cache;
- UGI's own renewal thread, shown to fire: a test ``core-site.xml`` names a
  Python ``hadoop.kerberos.kinit.command`` that logs each call and runs
  ``kinit`` with the same arguments, and lowers
  ``hadoop.kerberos.min.seconds.before.relogin``. (Spark's ``spark.hadoop.*``
  cannot set these: UGI reads them before Spark's configuration reaches it,
  see python/pamkrb/cli/kernelspec.py.)

A control (``test_the_reader_catches_a_cache_rewritten_in_place``) shows
the reader would see it if a writer did not replace the file whole: sixty
truncate-and-write rewrites of a cache, and it reports torn reads.

It runs in ``LONG_TESTS`` (Makefile), beside the main suite: most of its
two minutes is waiting for the JVM and the schedule.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_cli_kernelspec import install, pyspark_home

import sandbox
from conftest import artifact_dir, require_root
from pamkrb import _native
from sandbox.hadoop import HadoopCluster

# The session's realm and cluster: hadoop_realm, hdfs.
pytest_plugins = ["hadoop_fixtures"]

# The user's tickets: 60 s, renewable for 10 min (longer than the test).
LIFETIME = 60
RENEWABLE = 600
# One round of every writer each PERIOD seconds, for WRITER_ROUNDS rounds.
PERIOD = 1.25
WRITER_ROUNDS = 60
# pamkrb's writers start up to JITTER seconds after kinit -R: its
# read-renew-rename takes a few milliseconds (process start, one TGS
# exchange), and this is where pamkrb's rename should land.
JITTER = 0.012
SPARK_EVERY = 3.0
KERNEL = "pyspark-renewer"

# pamkrb's side of the race, one process per caller. "server": as the user,
# what the server's TicketKeeper calls: a new ticket from the user's keytab
# (TicketKeeper.from_keytab, no renewable lifetime asked: the KDC grants
# one, as it does to kinit) and a TGS renewal (_native.renew_ticket, as
# TicketKeeper._renew calls it for a server: no uid, no fallback),
# alternately. "hub": as root, what the hub
# calls (_install_ticket / _renew_ticket): a new renewable ticket from the
# keytab and a TGS renewal, alternately, owned by uid/gid. Prints one JSON
# line per round.
WRITER = """\
import json, random, sys, time
from pamkrb import _native, lifecycle
from pamkrb.keeper import KeepingRules, TicketKeeper
from pamkrb.lifecycle import TicketSettings
from pamkrb.refresher import target_of
mode, principal, ccache, keytab = sys.argv[1:5]
uid, gid, rounds = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
t0, period, jitter = float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10])
lifetime, renewable = int(sys.argv[11]), int(sys.argv[12])
target = target_of(TicketSettings(principal=principal, keytab=keytab, ccache=ccache, source="keytab"))
keeper = TicketKeeper("renewer", lambda: target, KeepingRules(refresh_margin=30, kdc_timeout=20),
                      flight=lifecycle.SingleFlight())
for k in range(rounds):
    time.sleep(max(0.0, t0 + k * period + random.uniform(0, jitter) - time.time()))
    started = time.time()
    outcome = {"k": k}
    try:
        deadline = time.monotonic() + 20
        if mode == "server" and k % 2 == 0:
            outcome["call"] = "TicketKeeper.from_keytab"
            installed = keeper.from_keytab(target, deadline)
        elif mode == "server":
            outcome["call"] = "renew_ticket (server)"
            installed = _native.renew_ticket(principal, ccache, deadline=deadline)
        elif k % 2 == 0:
            outcome["call"] = "obtain_ticket"
            installed = _native.obtain_ticket(principal, keytab, ccache, uid=uid, gid=gid, lifetime=lifetime,
                                              renew_lifetime=renewable, deadline=deadline)
        else:
            outcome["call"] = "renew_ticket"
            installed = _native.renew_ticket(principal, ccache, uid=uid, gid=gid, deadline=deadline)
        outcome.update(ok=True, expires=installed.ticket.expires_at, replaced=repr(installed.replaced))
    except Exception as error:
        outcome.update(ok=False, error=f"{type(error).__name__}: {error}"[:500])
    outcome.update(start=started, end=time.time())
    print(json.dumps(outcome), flush=True)
"""

# Hadoop's renewer command for UGI (hadoop.kerberos.kinit.command): logs the
# call, then runs kinit with UGI's arguments and environment, and passes its
# output and status back to UGI.
UGI_KINIT = """\
#!{python}
import json, os, subprocess, sys, time
started = time.time()
result = subprocess.run(["kinit", *sys.argv[1:]], capture_output=True, text=True)
with open({log!r}, "a") as log:
    log.write(json.dumps({{"start": started, "end": time.time(), "argv": sys.argv[1:], "uid": os.getuid(),
                          "krb5ccname": os.environ.get("KRB5CCNAME"), "rc": result.returncode,
                          "stderr": result.stderr[-500:]}}) + "\\n")
sys.stdout.write(result.stdout)
sys.stderr.write(result.stderr)
sys.exit(result.returncode)
"""

# The Spark driver, run as the user like a kernel of the generated spec
# (PYSPARK_SUBMIT_ARGS make the session). Prints its identity, then a JSON
# line per HDFS round, and a JVM reader's tally at the end. Stops when its
# stdin closes.
DRIVER = """\
import json, os, sys, threading, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
jvm = spark.sparkContext._jvm
UGI = jvm.org.apache.hadoop.security.UserGroupInformation
uri, ccache, every = sys.argv[1], sys.argv[2], float(sys.argv[3])
login = UGI.getLoginUser()

def tgt_end():
    # The end time of the TGT the JVM holds now (UGI's relogins replace it).
    for credential in login.getSubject().getPrivateCredentials().toArray():
        if credential.getClass().getName() == "javax.security.auth.kerberos.KerberosTicket":
            if credential.getServer().getName().startswith("krbtgt/"):
                return credential.getEndTime().getTime() // 1000
    return None

print(json.dumps({"identity": login.toString(), "pid": os.getpid(), "tgt_end": tgt_end(),
                  "from_keytab": login.isFromKeytab()}), flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
jvm_reads = {"ok": 0, "failed": []}

def jvm_reader():
    # A fresh JAAS login from the cache: the JVM's own parser, as UGI's relogin reads it.
    while not stop.is_set():
        try:
            name = UGI.getUGIFromTicketCache(ccache, None).getUserName()
            if name == login.getUserName():
                jvm_reads["ok"] += 1
            else:
                jvm_reads["failed"].append({"at": time.time(), "name": name})
        except Exception as error:
            jvm_reads["failed"].append({"at": time.time(), "error": str(error)[:500]})
        stop.wait(0.2)

reader = threading.Thread(target=jvm_reader)
reader.start()
k = 0
while not stop.is_set():
    started = time.time()
    try:
        spark.range(k, k + 3).write.mode("overwrite").parquet(uri)
        got = sorted(row[0] for row in spark.read.parquet(uri).collect())
        outcome = {"ok": got == [k, k + 1, k + 2], "got": got}
    except Exception as error:
        outcome = {"ok": False, "error": str(error)[:3000]}
    outcome.update(round=k, start=started, end=time.time(), tgt_end=tgt_end())
    print(json.dumps(outcome), flush=True)
    k += 1
    stop.wait(max(0.0, started + every - time.time()))
reader.join()
print(json.dumps({"jvm_reads": jvm_reads}), flush=True)
spark.stop()
"""


@dataclass
class CacheReads:
    """What the reader saw: every read's problems, and which files it saw."""

    reads: int = 0
    bad: list[str] = field(default_factory=list)
    # (inode, ctime): inode numbers alone are reused as soon as a replaced file is freed.
    files: set[tuple[int, int]] = field(default_factory=set)
    tickets: set[int] = field(default_factory=set)


class CacheFormatError(ValueError):
    pass


def parse_ccache(data: bytes) -> tuple[str, list[tuple[str, str, int]]]:
    """Parse a version 4 FILE cache to its last byte: the default principal
    and ``(client, server, endtime)`` of every credential. Raises
    CacheFormatError on anything short, long or malformed (a torn file)."""
    offset = 0

    def take(n: int) -> bytes:
        nonlocal offset
        if offset + n > len(data):
            raise CacheFormatError(f"short read at byte {offset} of {len(data)}")
        chunk = data[offset : offset + n]
        offset += n
        return chunk

    def u16() -> int:
        return struct.unpack(">H", take(2))[0]

    def u32() -> int:
        return struct.unpack(">I", take(4))[0]

    def counted() -> bytes:
        return take(u32())

    def principal() -> str:
        u32()  # name type
        count = u32()
        realm = counted().decode()
        return "/".join(counted().decode() for _ in range(count)) + "@" + realm

    if u16() != 0x0504:
        raise CacheFormatError("not a version 4 FILE cache")
    take(u16())  # header tags
    default = principal()
    credentials = []
    while offset < len(data):
        client, server = principal(), principal()
        u16(), counted()  # key: enctype, value
        _auth, _start, end, _renew_till = (u32() for _ in range(4))
        take(1)  # is_skey
        u32()  # flags
        for _ in range(u32()):  # addresses
            u16(), counted()
        for _ in range(u32()):  # authorization data
            u16(), counted()
        counted(), counted()  # ticket, second ticket
        credentials.append((client, server, end))
    return default, credentials


def check_cache(path: Path, uid: int, principal: str, seen: CacheReads) -> None:
    """One read of the cache as a client sees it: through one descriptor,
    never following a link."""
    seen.reads += 1
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        seen.bad.append(f"open: {error}")
        return
    try:
        st = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    problems = []
    if not stat.S_ISREG(st.st_mode):
        problems.append(f"not a regular file: {stat.filemode(st.st_mode)}")
    if st.st_uid != uid:
        problems.append(f"owned by uid {st.st_uid}")
    if stat.S_IMODE(st.st_mode) != 0o600:
        problems.append(f"mode {stat.S_IMODE(st.st_mode):o}")
    if not data or len(data) != st.st_size:
        problems.append(f"{len(data)} bytes read of {st.st_size}")
    try:
        default, credentials = parse_ccache(data)
        realm = principal.partition("@")[2]
        tgts = [end for client, server, end in credentials if server == f"krbtgt/{realm}@{realm}"]
        if default != principal or any(client != principal for client, _, _ in credentials):
            problems.append(f"principal {default}, clients {[c for c, _, _ in credentials]}")
        if not tgts or max(tgts) <= time.time():
            problems.append(f"no unexpired TGT: {tgts}")
        seen.tickets.update(tgts)
    except (CacheFormatError, UnicodeDecodeError) as error:
        problems.append(f"torn: {error}")
    # pamkrb's own reader, as the server extension reads the cache.
    try:
        info = _native.inspect_ticket(str(path), uid=uid)
        if info.principal != principal:
            problems.append(f"inspect_ticket: principal {info.principal}")
    except Exception as error:
        problems.append(f"inspect_ticket: {type(error).__name__}: {error}")
    seen.files.add((st.st_ino, st.st_ctime_ns))
    if problems:
        seen.bad.append(f"{time.time():.3f} inode {st.st_ino}: {'; '.join(problems)}")


def overlaps(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> int:
    """How many of ``first``'s rounds ran at the same time as a round of ``second``."""
    return sum(any(a["start"] < b["end"] and b["start"] < a["end"] for b in second) for a in first)


def jvm_environment(driver_pid: int) -> dict[str, str]:
    """The environment of the driver's JVM: what UGI runs its kinit command with."""
    javas = [pid for pid, command in sandbox.child_processes(driver_pid) if command.split(" ", 1)[0].endswith("java")]
    assert len(javas) == 1, sandbox.child_processes(driver_pid)
    return sandbox.process_environ(javas[0])


@pytest.fixture(scope="module")
def workspace(hdfs: HadoopCluster) -> Iterator[Path]:
    """A root-owned directory the users can read: the kernelspec, the test's
    HADOOP_CONF_DIR (the cluster's client configuration plus UGI's renewer
    settings), the scripts; and a root-only one for the hub's keytab."""
    root = Path(tempfile.mkdtemp(prefix="pamkrb-renewer-"))
    root.chmod(0o755)
    try:
        (root / "private").mkdir(mode=0o700)
        conf = root / "hadoop-conf"
        shutil.copytree(hdfs.client_conf_dir, conf)
        conf.chmod(0o755)
        tree = ET.parse(conf / "core-site.xml")
        for name, value in (
            ("hadoop.kerberos.kinit.command", str(root / "ugi-kinit")),
            # UGI's renewer waits at least this long between two logins (default 60).
            ("hadoop.kerberos.min.seconds.before.relogin", "5"),
        ):
            prop = ET.SubElement(tree.getroot(), "property")
            ET.SubElement(prop, "name").text = name
            ET.SubElement(prop, "value").text = value
        tree.write(conf / "core-site.xml")
        (conf / "core-site.xml").chmod(0o644)
        result = install(
            "--spark-home", str(pyspark_home()),
            "--master", "local[1]",
            "--hadoop-conf-dir", str(conf),
            "--prefix", str(root),
            "--kernel-name", KERNEL,
            "--env", "SPARK_LOCAL_IP=127.0.0.1",
            # The ticket path: no delegation tokens, every HDFS call uses the TGT.
            "--env", "SPARK_SUBMIT_OPTS=-Dspark.security.credentials.hadoopfs.enabled=false -Dspark.ui.enabled=false",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_writer(mode: str, user: sandbox.UnixUser, principal: str, keytab: Path, env: dict[str, str], *args: Any):
    """Start WRITER as the user ("server", with the user's own keytab) or as
    root ("hub", with ``keytab``, root's)."""
    if mode == "server":
        keytab = user.home / f"{user.name}.keytab"
    argv = [str(sandbox.VENV_BIN / "python"), "-c", WRITER, mode, principal, str(user.default_ccache), str(keytab),
            str(user.uid), str(user.gid), *(str(a) for a in args)]  # fmt: skip
    if mode == "server":
        how: dict[str, Any] = {"env": env, "user": user.uid, "group": user.gid, "extra_groups": [], "cwd": user.home}
    else:
        how = {"env": {name: value for name, value in env.items() if name not in ("HOME", "USER")}}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **how)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.timeout(240)
def test_hadoop_kinit_renewer_and_pamkrb_replace_share_one_cache(
    hadoop_realm: sandbox.Realm, hdfs: HadoopCluster, workspace: Path, request: pytest.FixtureRequest
) -> None:
    require_root()
    artifacts = artifact_dir(request.node.nodeid)
    realm = hadoop_realm
    user = sandbox.UnixUser.create("pkr")
    driver: subprocess.Popen[str] | None = None
    writers: list[subprocess.Popen[str]] = []
    pumps: list[threading.Thread] = []
    done = threading.Event()
    try:
        principal = realm.add_principal(user.name)
        realm.kadmin(f"modprinc -maxlife {LIFETIME}s -maxrenewlife {RENEWABLE}s {principal}")
        keytab = realm.write_keytab(principal, workspace / "private" / f"{user.name}.keytab", 0, 0)
        realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        home = hdfs.make_home(user.name)
        cache = user.default_ccache
        # The ugi-kinit log lives in a directory of the user's inside ours.
        logs = workspace / user.name
        logs.mkdir(mode=0o700)
        os.chown(logs, user.uid, user.gid)
        ugi_log = logs / "ugi-kinit.jsonl"
        script = workspace / "ugi-kinit"
        script.write_text(UGI_KINIT.format(python=sandbox.VENV_BIN / "python", log=str(ugi_log)))
        script.chmod(0o755)
        (workspace / "driver.py").write_text(DRIVER)
        (workspace / "driver.py").chmod(0o644)

        env = {
            "PATH": f"{sandbox.VENV_BIN}:{sandbox.SYSTEM_PATH}",
            "HOME": str(user.home),
            "USER": user.name,
            "LC_ALL": "C.UTF-8",
            "KRB5_CONFIG": str(realm.krb5_conf),
            "KRB5CCNAME": f"FILE:{cache}",
        }
        # The user's first ticket, as the hub installs it at login.
        first = run_writer("hub", user, principal, keytab, env, 1, time.time(), PERIOD, 0, LIFETIME, RENEWABLE)
        out, err = first.communicate(timeout=60)
        assert [line["ok"] for line in json_lines(out)] == [True], (out, err)
        info = _native.inspect_ticket(str(cache), uid=user.uid)
        assert info.renewable, info
        assert info.expires_at - info.starts_at <= LIFETIME, info

        spec = json.loads((workspace / "share/jupyter/kernels" / KERNEL / "kernel.json").read_text())
        launcher = spec["argv"][: spec["argv"].index("pamkrb-pyspark-kernel") + 1]
        driver = subprocess.Popen(
            [*launcher, str(sandbox.VENV_BIN / "python"), str(workspace / "driver.py"), f"{hdfs.uri}{home}/rounds",
             str(cache), str(SPARK_EVERY)],
            env={**env, **spec["env"]}, user=user.uid, group=user.gid, extra_groups=[], cwd=user.home,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert driver.stdin is not None
        assert driver.stdout is not None
        assert driver.stderr is not None
        driver_lines: list[dict[str, Any]] = []
        stderr_tail: list[str] = []

        def pump_stdout() -> None:
            assert driver is not None
            assert driver.stdout is not None
            for line in driver.stdout:
                if line.startswith("{"):
                    driver_lines.append(json.loads(line))

        def pump_stderr() -> None:
            assert driver is not None
            assert driver.stderr is not None
            for line in driver.stderr:
                stderr_tail.append(line)
                del stderr_tail[:-400]

        pumps += [threading.Thread(target=pump_stdout), threading.Thread(target=pump_stderr)]
        for pump in pumps:
            pump.start()
        # The session is up once its first HDFS round has come back.
        sandbox.wait_until(
            lambda: any("round" in line for line in driver_lines) or driver.poll() is not None,
            timeout=150, interval=0.2, message="the Spark driver's first HDFS round",
        )  # fmt: skip
        assert driver.poll() is None, "".join(stderr_tail[-80:])
        identity = driver_lines[0]
        assert identity["identity"] == f"{principal} (auth:KERBEROS)", identity
        assert identity["from_keytab"] is False
        jvm_env = jvm_environment(identity["pid"])
        assert jvm_env["KRB5CCNAME"] == f"FILE:{cache}"

        # The race: all writers on one schedule, the reader throughout.
        seen = CacheReads()

        def reader() -> None:
            while not done.is_set():
                check_cache(cache, user.uid, principal, seen)
                done.wait(0.001)

        kinit_rounds: list[dict[str, Any]] = []

        def hadoop_renewer(t0: float) -> None:
            # As UGI's Shell.execCommand runs it: the command and "-R", the
            # JVM's environment and working directory, as the user.
            for k in range(WRITER_ROUNDS):
                time.sleep(max(0.0, t0 + k * PERIOD - time.time()))
                started = time.time()
                result = subprocess.run(
                    ["kinit", "-R"], env=jvm_env, user=user.uid, group=user.gid, extra_groups=[], cwd=user.home,
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                kinit_rounds.append(
                    {"k": k, "start": started, "end": time.time(), "rc": result.returncode, "stderr": result.stderr}
                )

        t0 = time.time() + 1.0
        schedule = (WRITER_ROUNDS, t0, PERIOD, JITTER, LIFETIME, RENEWABLE)
        writers = [
            run_writer("server", user, principal, keytab, env, *schedule),
            run_writer("hub", user, principal, keytab, env, *schedule),
        ]
        threads = [
            threading.Thread(target=reader, daemon=True),
            threading.Thread(target=hadoop_renewer, args=(t0,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        outputs = [writer.communicate(timeout=WRITER_ROUNDS * PERIOD + 60) for writer in writers]
        threads[1].join(timeout=60)
        done.set()
        threads[0].join(timeout=10)
        wall = time.monotonic() - began
        # One more HDFS round, begun after every writer's last one, then stop.
        writers_end = max(r["end"] for r in [*kinit_rounds, *json_lines(outputs[0][0]), *json_lines(outputs[1][0])])
        sandbox.wait_until(
            lambda: any(line.get("start", 0) > writers_end for line in driver_lines if "round" in line)
            or driver.poll() is not None,
            timeout=60, interval=0.2, message="a Spark round after the writers' last",
        )  # fmt: skip
        driver.stdin.close()
        driver.wait(timeout=120)
        for pump in pumps:
            pump.join(timeout=10)
        server_rounds, hub_rounds = (json_lines(out) for out, _ in outputs)
        spark_rounds = [line for line in driver_lines if "round" in line]
        jvm_reads = next((line["jvm_reads"] for line in driver_lines if "jvm_reads" in line), None)
        ugi_calls = json_lines(ugi_log.read_text()) if ugi_log.exists() else []
        leftovers = sorted(name for name in os.listdir("/tmp") if name.startswith(f"{cache.name}.")) + (
            sandbox.pamkrb_temp_files(uids={user.uid})
        )
        pamkrb_rounds = server_rounds + hub_rounds
        figures = {
            "wall_seconds": round(wall, 1),
            "kinit_rounds": len(kinit_rounds),
            "kinit_failed": [r for r in kinit_rounds if r["rc"] != 0],
            "server_rounds": len(server_rounds),
            "hub_rounds": len(hub_rounds),
            "pamkrb_failed": [r for r in pamkrb_rounds if not r["ok"]],
            "kinit_rounds_overlapping_pamkrb": overlaps(kinit_rounds, pamkrb_rounds),
            "cache_reads": seen.reads,
            "cache_files_seen": len(seen.files),
            "tickets_seen": len(seen.tickets),
            "bad_reads": seen.bad[:20],
            "jvm_reads": jvm_reads,
            "spark_rounds": len(spark_rounds),
            "spark_failed": [r for r in spark_rounds if not r["ok"]],
            "spark_span": [spark_rounds[0]["start"], spark_rounds[-1]["end"]] if spark_rounds else None,
            "first_tgt_end": identity["tgt_end"],
            "jvm_tgt_ends": sorted({r["tgt_end"] for r in spark_rounds}),
            "ugi_kinit_calls": ugi_calls,
            "leftover_temp_files": leftovers,
            "writer_stderr": [err[-2000:] for _, err in outputs if err.strip()],
        }
        (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        (artifacts / "driver.stderr").write_text("".join(stderr_tail))
        print(f"renewer against replace: {json.dumps({k: v for k, v in figures.items() if k != 'ugi_kinit_calls'})}")
    finally:
        done.set()
        processes = [proc for proc in (driver, *writers) if proc is not None]
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for pump in pumps:
            pump.join(timeout=10)
        for proc in processes:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        user.remove()

    # Both writers ran their rounds, and not one failed.
    assert min(figures["kinit_rounds"], figures["server_rounds"], figures["hub_rounds"]) >= 50, figures
    assert not figures["kinit_failed"], figures["kinit_failed"][:5]
    assert not figures["pamkrb_failed"], figures["pamkrb_failed"][:5]
    # They really raced: kinit's read-renew-rename and a pamkrb replace in flight together.
    assert figures["kinit_rounds_overlapping_pamkrb"] >= 10, figures
    # Every read, through the whole race, was a whole cache of the user's:
    # owned by them, 0600, parsed to its last byte, an unexpired TGT of their
    # principal, also to pamkrb's own reader.
    assert not seen.bad, seen.bad[:20]
    assert seen.reads >= 1000, figures
    assert len(seen.files) >= 50, figures
    # The JVM read it as often, and always found the user.
    assert jvm_reads is not None, figures
    assert not jvm_reads["failed"], jvm_reads["failed"][:5]
    assert jvm_reads["ok"] >= 100, jvm_reads
    # The session worked throughout the race, and on the way the JVM
    # replaced its TGT with tickets it read from this cache: each one the
    # reader saw there, written by one writer or the other.
    assert not figures["spark_failed"], figures["spark_failed"][:3]
    assert len(spark_rounds) >= 20, figures
    assert spark_rounds[0]["start"] < t0, figures
    assert spark_rounds[-1]["start"] > writers_end, figures
    jvm_tickets = {r["tgt_end"] for r in spark_rounds} - {identity["tgt_end"]}
    assert jvm_tickets, figures
    assert jvm_tickets <= seen.tickets, (jvm_tickets, sorted(seen.tickets))
    # UGI's own renewal thread ran its kinit command against this cache, as
    # the user, and the renewal worked.
    renewals = [c for c in ugi_calls if c["argv"] == ["-R"]]
    assert renewals, figures
    assert all(c["rc"] == 0 and c["uid"] == user.uid and c["krb5ccname"] == f"FILE:{cache}" for c in renewals), renewals
    # Nobody left a temporary file behind.
    assert not leftovers, leftovers


def test_the_reader_catches_a_cache_rewritten_in_place(hadoop_realm: sandbox.Realm) -> None:
    """The control for the reader above: a writer that rewrites the cache in
    place (truncate, then write, as FILE caches were written before MIT
    krb5 1.x's temporary file and rename) is caught within a few dozen
    rewrites, so a clean run of the race means something."""
    require_root()
    directory = Path(tempfile.mkdtemp(prefix="pamkrb-torn-"))
    try:
        principal = hadoop_realm.add_principal(f"pkr-torn-{os.getpid()}-{time.monotonic_ns()}")
        keytab = hadoop_realm.write_keytab(principal, directory / "keytab", 0, 0)
        cache = directory / "cache"
        hadoop_realm.kinit(principal, keytab, f"FILE:{cache}")
        cache.chmod(0o600)
        data = cache.read_bytes()
        seen = CacheReads()
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                check_cache(cache, 0, principal, seen)
                done.wait(0.001)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            for _ in range(60):
                fd = os.open(cache, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                done.wait(0.05)
        finally:
            done.set()
            thread.join(timeout=10)
        assert seen.reads >= 100, seen.reads
        assert seen.bad, "60 in-place rewrites and the reader saw nothing torn"
        assert any("torn" in problem for problem in seen.bad), seen.bad[:3]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
