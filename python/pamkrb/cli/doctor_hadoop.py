"""``pamkrb doctor USER --hadoop-conf-dir DIR``: does Hadoop accept the user's ticket?

Two parts with a hard edge between them:

- :func:`explain_failure`, a pure function: from what the JVM printed and the
  facts doctor already knows (the cache name the JVM was given, the ticket
  pamkrb's native reader found in it, the realms krb5.conf names) it tells
  apart the failures users meet, in plain words with a fix.
- :func:`check_hadoop`, which runs Hadoop's own client as the user: ``java``
  with the Spark distribution's jars (Spark 4 ships the Hadoop 3 client) on the
  class path and Hadoop's ``FsShell`` as the main class, ``-ls /user/USER``.
  No shell, no ``spark-submit`` (a shell script), no compiled Java of ours.
  The child drops to the user's uid, gid and groups before ``exec``
  (``subprocess``'s ``user=``/``group=``), so HDFS sees what the user's
  kernels would send and nothing of root's.

Why a JVM and not MIT's tools: the failures this check exists for are the
JVM's own (it ignores ``KRB5_CONFIG``, reads only FILE caches, has its own
enctype policy, and Hadoop maps the principal with ``auth_to_local``).

Hadoop's client prints the same "Client cannot authenticate via:[TOKEN,
KERBEROS]" for a missing cache, an expired ticket and a KEYRING/KCM cache
(checked against the test cluster): that is why the classifier takes the
cache's facts, not only the text. ``HADOOP_JAAS_DEBUG=true`` makes Java's
login module say which it was ("null credentials from Ticket Cache",
"Credentials are no longer valid"), which the classifier also reads.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Protocol

from .._native import TicketInfo
from ..lifecycle import UserPaths, local_time

# Hadoop 2.x's Kerberos code reflects into sun.security.krb5 (KerberosUtil's
# default realm), which Java 17 closes ("Can't get Kerberos realm"). Spark 4's
# Hadoop 3.5 client listed HDFS here without them, but a site's own Hadoop
# jars may be older; Spark's launcher opens the first one too.
JAVA17_OPENS = ("java.security.jgss/sun.security.krb5", "java.security.jgss/sun.security.jgss")
FS_SHELL = "org.apache.hadoop.fs.FsShell"
NODE_CLI = "org.apache.hadoop.yarn.client.cli.NodeCLI"
# A wrong address should fail in seconds, not after Hadoop's default ten
# connection attempts; a GSS failure still gets Hadoop's own SASL retries.
GENERIC_OPTIONS = ("-D", "ipc.client.connect.max.retries=2")
# YARN's client retries an unanswering ResourceManager for 15 minutes by
# default; 3 s is enough to tell "not there" (measured: about 4 s in all).
YARN_OPTIONS = (
    "-D",
    "ipc.client.connect.max.retries=0",
    "-D",
    "yarn.resourcemanager.connect.max-wait.ms=3000",
    "-D",
    "yarn.resourcemanager.connect.retry-interval.ms=1000",
)
TIMEOUT_SECONDS = 120
# Cache types MIT krb5 knows and the JVM cannot read (it reads FILE only).
JVM_UNREADABLE_CACHE_TYPES = ("KEYRING", "KCM", "DIR", "API", "MEMORY", "MSLSA")


class Report(Protocol):
    def ok(self, title: str, detail: str = "") -> None: ...
    def fail(self, title: str, detail: str, fix: str = "") -> None: ...
    def warn(self, title: str, detail: str, fix: str = "") -> None: ...
    def skip(self, title: str, reason: str) -> None: ...


# -- the classifier (pure) ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HadoopFacts:
    """What doctor knows besides the JVM's output."""

    ccache_name: str
    """The KRB5CCNAME the JVM got, e.g. ``FILE:/tmp/krb5cc_1001``."""
    principal: str | None = None
    """The TGT's client principal, from pamkrb's reader; None when there is none."""
    expires_at: float | None = None
    cache_problem: str | None = None
    """Why pamkrb's reader found no usable ticket ("does not exist", its error)."""
    krb5_conf: str = "/etc/krb5.conf"
    """The file passed to the JVM as -Djava.security.krb5.conf."""
    realms: frozenset[str] | None = None
    """The realms that file's [realms] section names; None when unknown."""
    now: float = 0.0


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    kind: str
    """One of the KINDS below: what tests and scripts key on."""
    explanation: str
    fix: str
    evidence: str = ""
    """The line of the JVM's output the diagnosis rests on, if any."""


KINDS = (
    "cache-type",
    "no-ticket",
    "expired",
    "clock-skew",
    "enctype",
    "unmapped-principal",
    "realm-missing",
    "wrong-krb5-conf",
    "not-kerberos",
    "unreachable",
    "no-such-path",
    "permission-denied",
    "unknown",
)

_CLOCK_SKEW = re.compile(r"Clock skew too great|KRB_AP_ERR_SKEW", re.I)
_ENCTYPE = re.compile(
    r"Encryption type .* is not supported/enabled|KDC has no support for encryption type|"
    r"No supported encryption types listed|Cannot find key of appropriate type|"
    r"KDC_ERR_ETYPE_NOSUPP|Illegal key size",
    re.I,
)
_UNMAPPED = re.compile(r"NoMatchingRule|No rules applied to|Illegal principal name", re.I)
_REALM_MISSING = re.compile(r"Cannot locate KDC|Cannot find KDC for realm|Cannot locate default realm", re.I)
# Hadoop builds the service principal with the JVM's default realm.
_WRONG_DEFAULT_REALM = re.compile(r"Server has invalid Kerberos principal: \S+@(\S+), expecting: \S+@([^\s\]]+)")
_NOT_KERBEROS = re.compile(r"SIMPLE authentication is not enabled", re.I)
_NO_CREDENTIALS = re.compile(
    r"null credentials from Ticket Cache|Failed to find any Kerberos tgt|Client cannot authenticate via", re.I
)
_EXPIRED = re.compile(r"Credentials are no longer valid|Ticket expired|TGT has expired", re.I)
_UNREACHABLE = re.compile(r"Connection refused|UnknownHostException|No route to host|connect timed out", re.I)
_NO_SUCH_PATH = re.compile(r"No such file or directory", re.I)
_PERMISSION = re.compile(r"Permission denied: user=", re.I)


def _evidence(output: str, pattern: re.Pattern[str]) -> str:
    """The first line of ``output`` that matches, shortened for a report."""
    for line in output.splitlines():
        if pattern.search(line):
            line = line.strip()
            return line if len(line) <= 300 else line[:297] + "..."
    return ""


def auth_to_local_rule(principal: str | None) -> str:
    """A hadoop.security.auth_to_local rule mapping ``principal``'s form to its
    first component (the user): user@REALM, or user/host@REALM for that host only
    (a rule for every host would also turn service principals into users)."""
    if principal is None or "@" not in principal:
        return "a rule, e.g. RULE:[1:$1@$0](.*@EXAMPLE\\.ORG)s/@.*// for user@EXAMPLE.ORG"
    name, _, realm = principal.rpartition("@")
    # Host and realm names hold letters, digits, '-' and '.', of which only
    # '.' means something in a Java regex.
    escaped = realm.replace(".", r"\.")
    if "/" in name:
        host = name.split("/", 1)[1].replace(".", r"\.")
        return f"RULE:[2:$1%$2@$0]([^%]+%{host}@{escaped})s/%.*//"
    return f"RULE:[1:$1@$0](.*@{escaped})s/@.*//"


def cache_type(ccache_name: str) -> str:
    """The type prefix of a cache name ("FILE" for a bare path)."""
    head, sep, _ = ccache_name.partition(":")
    return head.upper() if sep and "/" not in head else "FILE"


def explain_failure(output: str, facts: HadoopFacts) -> Diagnosis:
    """Why Hadoop's client refused, in plain words.

    ``output`` is everything the JVM printed (stdout and stderr). Evidence
    that names a cause beats evidence of an absence: a clock-skew or enctype
    error comes from a ticket that exists, so it is looked for before the
    cache's facts; "no credentials" is the JVM's answer to several causes, so
    the cache's facts decide between them.
    """
    cache = facts.ccache_name
    kind_of_cache = cache_type(cache)
    if kind_of_cache in JVM_UNREADABLE_CACHE_TYPES:
        return Diagnosis(
            "cache-type",
            f"KRB5CCNAME is {cache}: Java (and so Hadoop and Spark) reads only FILE caches, "
            f"never {kind_of_cache}; it finds no ticket even when klist shows one",
            "point KRB5CCNAME at a FILE cache (pamkrb sets KRB5CCNAME=FILE:<its cache> in the user's server); "
            "for logins outside JupyterHub set default_ccache_name = FILE:/tmp/krb5cc_%{uid} in krb5.conf",
            _evidence(output, _NO_CREDENTIALS),
        )
    if line := _evidence(output, _CLOCK_SKEW):
        return Diagnosis(
            "clock-skew",
            "this host's clock and the KDC's differ by more than the allowed skew (5 minutes unless "
            "clockskew says otherwise), so the KDC refuses the JVM's requests",
            "synchronise the clocks of this host, the KDC and the Hadoop servers (chrony or systemd-timesyncd)",
            line,
        )
    if line := _evidence(output, _ENCTYPE):
        return Diagnosis(
            "enctype",
            "the JVM refuses the encryption type of the ticket or of the service's key "
            "(Java 17 accepts AES; DES is gone and RC4 needs allow_weak_crypto)",
            "have the KDC issue AES keys and tickets (e.g. aes256-cts-hmac-sha1-96: re-key the principals with "
            f"kadmin cpw -randkey / -e), or list the enctypes in permitted_enctypes of {facts.krb5_conf}",
            line,
        )
    if line := _evidence(output, _UNMAPPED):
        who = facts.principal or "the ticket's principal"
        return Diagnosis(
            "unmapped-principal",
            f"Hadoop's hadoop.security.auth_to_local rules (core-site.xml) turn no user name out of {who}, "
            "so Hadoop refuses the login although the ticket is good",
            f"add {auth_to_local_rule(facts.principal)} before DEFAULT, on the clients and the servers",
            line,
        )
    realm = facts.principal.rpartition("@")[2] if facts.principal else None
    realm_line = _evidence(output, _REALM_MISSING)
    unknown_realm = realm and facts.realms is not None and realm not in facts.realms
    if realm_line or (unknown_realm and _NO_CREDENTIALS.search(output)):
        named = f"realm {realm}" if realm else "the ticket's realm"
        return Diagnosis(
            "realm-missing",
            f"{facts.krb5_conf}, the krb5.conf the JVM reads, has no [realms] entry for {named}, so Java cannot "
            "find a KDC to ask for the Hadoop service's ticket",
            f"add {named} with its kdc lines to {facts.krb5_conf}; the JVM reads only the file named by "
            "-Djava.security.krb5.conf (default /etc/krb5.conf) and ignores KRB5_CONFIG",
            realm_line,
        )
    if match := _WRONG_DEFAULT_REALM.search(output):
        return Diagnosis(
            "wrong-krb5-conf",
            f"the JVM's default realm is {match.group(1)}, the cluster's is {match.group(2)}: Java read "
            f"{facts.krb5_conf} (it ignores KRB5_CONFIG), whose default_realm is another realm's",
            f"pass -Djava.security.krb5.conf=<the krb5.conf of realm {match.group(2)}> to the JVM (Spark: "
            "spark.driver.extraJavaOptions or SPARK_SUBMIT_OPTS), or set default_realm in that file",
            _evidence(output, _WRONG_DEFAULT_REALM),
        )
    if line := _evidence(output, _NOT_KERBEROS):
        return Diagnosis(
            "not-kerberos",
            "the client configuration does not ask for Kerberos (hadoop.security.authentication is not "
            "kerberos in the core-site.xml the JVM read, or the user cannot read it), so it sends no ticket",
            "set hadoop.security.authentication=kerberos in core-site.xml and make the directory readable by users",
            line,
        )
    if facts.principal is None:
        why = f" ({facts.cache_problem})" if facts.cache_problem else ""
        return Diagnosis(
            "no-ticket",
            f"there is no ticket in {cache}{why}, so Hadoop has nothing to authenticate with",
            "log in to JupyterHub again, or start the server again: pamkrb writes the cache then",
            _evidence(output, _NO_CREDENTIALS),
        )
    if facts.expires_at is not None and facts.expires_at <= facts.now:
        return Diagnosis(
            "expired",
            f"the ticket in {cache} expired at {local_time(facts.expires_at)}; Java ignores an expired ticket",
            "sign in again (the ticket status in JupyterLab, or the hub's login page); pamkrb renews a renewable "
            "ticket by itself until its renew-till",
            _evidence(output, _EXPIRED) or _evidence(output, _NO_CREDENTIALS),
        )
    if line := _evidence(output, _EXPIRED):
        return Diagnosis(
            "expired",
            f"the ticket in {cache} has expired; Java ignores an expired ticket",
            "sign in again (the ticket status in JupyterLab, or the hub's login page)",
            line,
        )
    if line := _evidence(output, _NO_CREDENTIALS):
        return Diagnosis(
            "no-ticket",
            f"the JVM found no usable ticket in {cache} although pamkrb's reader did: the cache may have been "
            "replaced while Hadoop read it, or the JVM runs with another KRB5CCNAME",
            "run doctor again; if it persists, compare the JVM's KRB5CCNAME with the cache above",
            line,
        )
    if line := _evidence(output, _UNREACHABLE):
        return Diagnosis(
            "unreachable",
            "the Hadoop service named in the configuration does not answer at that address",
            "check fs.defaultFS / the service addresses in the configuration and that the service runs",
            line,
        )
    if line := _evidence(output, _PERMISSION):
        return Diagnosis(
            "permission-denied",
            "Hadoop accepted the ticket but its permissions refuse this user here",
            "have an HDFS administrator fix the owner or mode (hdfs dfs -chown / -chmod)",
            line,
        )
    if line := _evidence(output, _NO_SUCH_PATH):
        return Diagnosis(
            "no-such-path",
            "Hadoop accepted the ticket, but the user's home directory does not exist in HDFS",
            "create it as the HDFS superuser: hdfs dfs -mkdir /user/<name>; hdfs dfs -chown <name> /user/<name>",
            line,
        )
    last = [line.strip() for line in output.splitlines() if line.strip()]
    return Diagnosis(
        "unknown",
        "Hadoop's client failed for a reason doctor does not recognise",
        "see the Java output below the report, and the README's troubleshooting table",
        (last[-1][:300] if last else ""),
    )


# -- configuration ----------------------------------------------------------------


def java_krb5_conf(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The krb5.conf to hand the JVM: KRB5_CONFIG's first file, as MIT reads
    it (the JVM itself ignores KRB5_CONFIG), else /etc/krb5.conf."""
    first = (environ.get("KRB5_CONFIG") or "").split(":")[0]
    return first or "/etc/krb5.conf"


def krb5_realms(path: str) -> frozenset[str] | None:
    """The realm names in ``path``'s [realms] section; None when the file
    cannot be read or includes others (then nobody knows without parsing them)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    realms: set[str] = set()
    section = ""
    depth = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("include ", "includedir ")):
            return None
        if line.startswith("[") and line.endswith("]"):
            section, depth = line[1:-1].strip(), 0
            continue
        if section == "realms":
            if depth == 0 and line.endswith("{") and "=" in line:
                realms.add(line.split("=", 1)[0].strip())
            depth += line.count("{") - line.count("}")
    return frozenset(realms)


def krb5_default_ccache_name(path: str) -> str | None:
    """``default_ccache_name`` from ``path``'s [libdefaults], as written
    (``%{uid}`` unexpanded); None when unset or unreadable."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    section = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == "libdefaults" and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if key == "default_ccache_name" and value:
                return value
    return None


def hadoop_properties(conf_dir: str, name: str) -> dict[str, str]:
    """The properties of ``conf_dir/name`` (a Hadoop *-site.xml); {} when absent."""
    try:
        root = ET.parse(os.path.join(conf_dir, name)).getroot()
    except (OSError, ET.ParseError):
        return {}
    found = {}
    for prop in root.iter("property"):
        key, value = prop.findtext("name"), prop.findtext("value")
        if key:
            found[key.strip()] = (value or "").strip()
    return found


def resourcemanager(conf_dir: str) -> str | None:
    """The ResourceManager ``yarn-site.xml`` names (address, host name or HA
    ids), or None when it names none."""
    yarn = hadoop_properties(conf_dir, "yarn-site.xml")
    if "yarn.resourcemanager.address" in yarn:
        return yarn["yarn.resourcemanager.address"]
    if "yarn.resourcemanager.hostname" in yarn:
        return f"{yarn['yarn.resourcemanager.hostname']}:8032"
    if "yarn.resourcemanager.ha.rm-ids" in yarn:
        return f"HA ids {yarn['yarn.resourcemanager.ha.rm-ids']}"
    return None


def spark_jars(spark_home: str | None) -> str | None:
    """The jars directory of SPARK_HOME, or of the installed pyspark package."""
    if spark_home is None:
        spec = importlib.util.find_spec("pyspark")
        if spec is None or not spec.submodule_search_locations:
            return None
        spark_home = next(iter(spec.submodule_search_locations))
    jars = os.path.join(spark_home, "jars")
    return jars if os.path.isdir(jars) else None


def find_java(java: str | None) -> str | None:
    if java:
        return java
    home = os.environ.get("JAVA_HOME")
    if home and os.path.isfile(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


# -- running Hadoop's client as the user ----------------------------------------------


def java_command(java: str, jars: str, conf_dir: str, krb5_conf: str, main: str, *args: str) -> list[str]:
    return [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        *(f"--add-opens={module}=ALL-UNNAMED" for module in JAVA17_OPENS),
        # The JVM ignores KRB5_CONFIG.
        f"-Djava.security.krb5.conf={krb5_conf}",
        # Hadoop's client logs through log4j2, silent below ERROR by default;
        # its WARN lines carry the GSSException that says why.
        "-Dorg.apache.logging.log4j.level=WARN",
        "-cp",
        f"{conf_dir}:{jars}/*",
        main,
        *args,
    ]


def run_as_user(entry: pwd.struct_passwd, argv: list[str], env: dict[str, str]) -> tuple[int | None, str, str]:
    """``argv`` as the user (uid, gid, their groups; no shell), with a
    deadline; (exit status or None on timeout, stdout, stderr)."""
    # Root drops to the user in the child, between fork and exec; the user
    # themself (check_hadoop refuses anyone else) runs it as they are.
    root = os.geteuid() == 0
    try:
        result = subprocess.run(
            argv,
            user=entry.pw_uid if root else None,
            group=entry.pw_gid if root else None,
            extra_groups=os.getgrouplist(entry.pw_name, entry.pw_gid) if root else None,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except OSError as e:
        # java missing or not executable for the user, or no privilege to switch.
        return 127, "", f"cannot run {argv[0]} as {entry.pw_name}: {e}"
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, out, err
    return result.returncode, result.stdout, result.stderr


def user_environment(entry: pwd.struct_passwd, ccache: str, conf_dir: str) -> dict[str, str]:
    """What a kernel of the user's has that matters here, and nothing of root's."""
    return {
        "HOME": entry.pw_dir,
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "KRB5CCNAME": ccache,
        "HADOOP_CONF_DIR": conf_dir,
        # Java's login module then says which cache it read and why it
        # found no ticket there.
        "HADOOP_JAAS_DEBUG": "true",
    }


def read_ticket(where: UserPaths, path: str) -> tuple[TicketInfo | None, str | None]:
    """(TicketInfo, None) for the user's cache at ``path``, read by pamkrb's
    own reader (as root, with the hub's checks), or (None, why not)."""
    from .. import _native
    from ..exceptions import PamkrbError

    if not os.path.lexists(path):
        return None, f"{path} does not exist"
    try:
        return _native.inspect_ticket(path, uid=where.uid), None
    except PamkrbError as e:
        return None, str(e)


def cache_facts(where: UserPaths, path: str, krb5_conf: str) -> HadoopFacts:
    """What doctor knows besides the JVM's output, for the classifier."""
    info, problem = read_ticket(where, path)
    return HadoopFacts(
        ccache_name=f"FILE:{path}",
        principal=info.principal if info else None,
        expires_at=info.expires_at if info else None,
        cache_problem=problem,
        krb5_conf=krb5_conf,
        realms=krb5_realms(krb5_conf),
        now=time.time(),
    )


def kernels_cache(where: UserPaths, fallback: str | None) -> str:
    """The cache the user's kernels use: the templated path, or pamkrb's
    fallback path when the ticket is only there (the templated path could
    not be written, e.g. another user's FUSE mount on it; the hub then sets
    KRB5CCNAME to the fallback)."""
    if fallback is None or read_ticket(where, where.ccache)[0] is not None:
        return where.ccache
    return fallback if read_ticket(where, fallback)[0] is not None else where.ccache


def _explain(report: Report, title: str, output: str, facts: HadoopFacts, timed_out: bool) -> None:
    if timed_out:
        report.fail(title, f"Hadoop's client did not finish within {TIMEOUT_SECONDS} s", "check that the service runs")
        return
    diagnosis = explain_failure(output, facts)
    detail = diagnosis.explanation
    if diagnosis.evidence:
        detail += f" [Java: {diagnosis.evidence}]"
    report.fail(title, detail, diagnosis.fix)


def check_hadoop(
    where: UserPaths,
    report: Report,
    conf_dir: str,
    *,
    spark_home: str | None = None,
    java: str | None = None,
    fallback: str | None = None,
) -> None:
    """List ``/user/USER`` on HDFS as the user, with the user's cache (at
    ``fallback`` when pamkrb had to put it there); ask the ResourceManager for
    its nodes when ``yarn-site.xml`` names one."""
    title = f"HDFS /user/{where.username}"
    java_path = find_java(java)
    jars = spark_jars(spark_home)
    if java_path is None:
        report.fail(title, "no java found", "install Java 17, or pass --java / set JAVA_HOME")
        return
    if jars is None:
        report.fail(
            title,
            f"no Spark jars ({spark_home + '/jars' if spark_home else 'no pyspark package in this Python'})",
            "pass --spark-home with the Spark (or pip-installed pyspark) directory the kernels use",
        )
        return
    if os.geteuid() not in (0, where.uid):
        report.skip(title, f"running as {where.username} needs root")
        return
    core = hadoop_properties(conf_dir, "core-site.xml")
    if core.get("hadoop.security.authentication", "simple").lower() != "kerberos":
        report.fail(
            title,
            f"{conf_dir}/core-site.xml does not set hadoop.security.authentication=kerberos",
            "use the cluster's client configuration (HADOOP_CONF_DIR)",
        )
        return
    entry = pwd.getpwnam(where.username)
    ccache = kernels_cache(where, fallback)
    ccache_name = f"FILE:{ccache}"
    krb5_conf = java_krb5_conf()
    env = user_environment(entry, ccache_name, conf_dir)
    path = f"/user/{where.username}"
    started = time.monotonic()
    status, out, err = run_as_user(
        entry, java_command(java_path, jars, conf_dir, krb5_conf, FS_SHELL, *GENERIC_OPTIONS, "-ls", path), env
    )
    elapsed = time.monotonic() - started
    facts = cache_facts(where, ccache, krb5_conf)
    if status == 0:
        found = re.search(r"^Found (\d+) items?$", out, re.M)
        count = int(found.group(1)) if found else 0
        report.ok(
            title,
            f"listed as {where.username} with {facts.principal or 'the ticket'} from {ccache_name}: "
            f"{count} {'entry' if count == 1 else 'entries'} ({elapsed:.1f} s, Hadoop client from {jars})",
        )
    else:
        _explain(report, title, out + "\n" + err, facts, status is None)

    default_name = krb5_default_ccache_name(krb5_conf)
    if default_name and cache_type(default_name) in JVM_UNREADABLE_CACHE_TYPES:
        report.warn(
            "default credential cache",
            f"{krb5_conf} sets default_ccache_name = {default_name}, which Java cannot read: a JVM started "
            f"without KRB5CCNAME (a terminal, cron, ssh) finds no ticket although klist shows one; "
            "kernels started by the hub are not affected (pamkrb sets KRB5CCNAME=FILE:...)",
            "set default_ccache_name = FILE:/tmp/krb5cc_%{uid} (pamkrb's default cache path) in krb5.conf",
        )

    rm = resourcemanager(conf_dir)
    if rm is None:
        report.skip("YARN ResourceManager", f"{conf_dir}/yarn-site.xml names none")
        return
    # A real ResourceManager's answer is untested: none can be run on the
    # test machines (no reachable artifact ships one), see the README. One
    # that does not answer is tested.
    status, out, err = run_as_user(
        entry, java_command(java_path, jars, conf_dir, krb5_conf, NODE_CLI, *YARN_OPTIONS, "-list"), env
    )
    if status == 0:
        nodes = re.search(r"Total Nodes:\s*(\d+)", out)
        report.ok("YARN ResourceManager", f"{rm} answered: {nodes.group(1) if nodes else '?'} running node(s)")
    else:
        _explain(report, f"YARN ResourceManager {rm}", out + "\n" + err, facts, status is None)
