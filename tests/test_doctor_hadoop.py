"""`pamkrb doctor USER --hadoop-conf-dir DIR`: does Hadoop accept the user's ticket?

Two tiers:

- The classifier (``explain_failure``) is a pure function, fed the texts
  Hadoop's client really prints. Those marked *captured* were provoked against
  the test cluster (Hadoop 2.7.3 NameNode, Spark 4.3's Hadoop 3.5 client on
  Java 17, ``HADOOP_JAAS_DEBUG=true``, as doctor runs it): no ticket, expired
  ticket, KEYRING and KCM caches, a principal auth_to_local does not map, a
  realm missing from the JVM's krb5.conf, a JVM without
  -Djava.security.krb5.conf (reading /etc/krb5.conf), and clock skew (the
  client JVM run under libfaketime one hour ahead). The enctype texts are the JDK's
  documented messages (``sun.security.krb5``); nothing here makes a KDC issue
  a ticket Java 17 refuses.
- The command itself, as root, against the session's secured HDFS: a user
  with a ticket gets a ✓ listing of /user/USER; without one, an expired one,
  a core-site.xml whose auth_to_local does not map them, or a krb5.conf
  without their realm, the plain-words explanation of that cause; a
  yarn-site.xml naming a ResourceManager that does not answer, a ✗ for
  YARN, and none named, a skipped line; a krb5.conf whose default cache is a
  KEYRING, a warning; a ticket only at pamkrb's fallback path, a ✓ from there. No ResourceManager can be run here
  (no reachable artifact ships one), so a real one's answer is untested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sandbox
from pamkrb.cli.doctor_hadoop import (
    HadoopFacts,
    auth_to_local_rule,
    cache_type,
    explain_failure,
    java_krb5_conf,
    krb5_default_ccache_name,
    krb5_realms,
    resourcemanager,
)
from sandbox.hadoop import HadoopCluster
from sandbox.process import free_port

# The session's realm and cluster: hadoop_realm, hdfs.
pytest_plugins = ["hadoop_fixtures"]

NOW = 1_800_000_000.0
PRINCIPAL = "alice@HADOOP.TEST"
FILE_CACHE = "FILE:/tmp/krb5cc_1002"

# -- texts captured against the test cluster ---------------------------------------

CANNOT_AUTHENTICATE = """\
main WARN Exception encountered while connecting to the server localhost/127.0.0.1:39539
org.apache.hadoop.security.AccessControlException: Client cannot authenticate via:[TOKEN, KERBEROS]
ls: DestHost:destPort localhost:39539 , LocalHost:localPort vm/127.0.0.1:0. Failed on local exception: \
java.io.IOException: org.apache.hadoop.security.AccessControlException: Client cannot authenticate via:[TOKEN, KERBEROS]
"""

# KRB5CCNAME=FILE:<missing file>, and also exactly what KEYRING:persistent:1002 and KCM: gave.
NO_TICKET = (
    """\
Debug is  true storeKey false useTicketCache true useKeyTab false doNotPrompt true ticketCache is \
FILE:/tmp/krb5cc_nonexistent isInitiator true KeyTab is null refreshKrb5Config is true principal is null
Refreshing Kerberos configuration
Acquire TGT from Cache
Principal is null
null credentials from Ticket Cache
\t\t[Krb5LoginModule] authentication failed
Unable to obtain Principal Name for authentication
"""
    + CANNOT_AUTHENTICATE
)

# A 3-second ticket, 5 seconds later.
EXPIRED = (
    """\
Acquire TGT from Cache
Ticket could not be renewed : This ticket is not renewable
Credentials are no longer valid
Principal is null
null credentials from Ticket Cache
\t\t[Krb5LoginModule] authentication failed
Unable to obtain Principal Name for authentication
"""
    + CANNOT_AUTHENTICATE
)

# core-site.xml whose auth_to_local has only RULE:[1:$1@$0](nobody@NOWHERE\.TEST)s/@.*//.
UNMAPPED = """\
Principal is pkdpryons@HADOOP.TEST
Commit Succeeded
ls: failure to login: using ticket cache file: FILE:/tmp/krb5cc_1002 javax.security.auth.login.LoginException: \
java.lang.IllegalArgumentException: Illegal principal name pkdpryons@HADOOP.TEST: \
org.apache.hadoop.security.authentication.util.KerberosName$NoMatchingRule: No rules applied to pkdpryons@HADOOP.TEST
"""

# -Djava.security.krb5.conf naming a file whose [realms] section is empty.
REALM_MISSING = """\
main WARN Not attempting to re-login since the last re-login was attempted less than 60 seconds before.
main WARN Couldn't setup connection for pkdpryons@HADOOP.TEST to localhost/127.0.0.1:39539
javax.security.sasl.SaslException: GSS initiate failed [Caused by GSSException: No valid credentials provided \
(Mechanism level: Cannot locate KDC)]
Caused by: GSSException: No valid credentials provided (Mechanism level: Cannot locate KDC)
Caused by: KrbException: Cannot locate KDC
ls: DestHost:destPort localhost:39539 , LocalHost:localPort vm/127.0.0.1:0. Failed on local exception: \
javax.security.sasl.SaslException: GSS initiate failed [Caused by GSSException: No valid credentials provided \
(Mechanism level: Cannot locate KDC)]
"""

# No -Djava.security.krb5.conf: the JVM read /etc/krb5.conf (Debian's default realm).
WRONG_KRB5_CONF = """\
javax.security.sasl.SaslException: Bad Kerberos server principal configuration [Caused by \
java.lang.IllegalArgumentException: Server has invalid Kerberos principal: nn/localhost@ATHENA.MIT.EDU, \
expecting: nn/localhost@HADOOP.TEST]
"""

# The client JVM under libfaketime, FAKETIME=+1h.
CLOCK_SKEW = """\
main WARN Couldn't setup connection for pkdpryons@HADOOP.TEST to localhost/127.0.0.1:39539
javax.security.sasl.SaslException: GSS initiate failed [Caused by GSSException: No valid credentials provided \
(Mechanism level: Clock skew too great (37) - PROCESS_TGS)]
Caused by: GSSException: No valid credentials provided (Mechanism level: Clock skew too great (37) - PROCESS_TGS)
Caused by: KrbException: Clock skew too great (37) - PROCESS_TGS
Caused by: KrbException: Identifier doesn't match expected value (906)
"""

# -- documented texts (the JDK's KrbException messages) --------------------------------

ENCTYPE_NOT_ENABLED = """\
javax.security.sasl.SaslException: GSS initiate failed [Caused by GSSException: Failure unspecified at GSS-API \
level (Mechanism level: Encryption type RC4 with HMAC is not supported/enabled)]
"""
ENCTYPE_KDC = """\
Caused by: GSSException: No valid credentials provided (Mechanism level: KDC has no support for encryption type (14))
"""


def facts(**overrides: object) -> HadoopFacts:
    """A user whose cache holds a valid ticket, unless told otherwise."""
    values: dict[str, object] = {
        "ccache_name": FILE_CACHE,
        "principal": PRINCIPAL,
        "expires_at": NOW + 3600,
        "krb5_conf": "/etc/krb5.conf",
        "realms": frozenset({"HADOOP.TEST"}),
        "now": NOW,
    }
    values.update(overrides)
    return HadoopFacts(**values)  # type: ignore[arg-type]


NO_CACHE = {"principal": None, "expires_at": None, "cache_problem": "/tmp/krb5cc_1002 does not exist"}


@pytest.mark.parametrize(
    ("output", "known", "kind", "words"),
    [
        (NO_TICKET, NO_CACHE, "no-ticket", "there is no ticket in FILE:/tmp/krb5cc_1002"),
        # Without the login module's debug lines, the cache's facts decide.
        (CANNOT_AUTHENTICATE, NO_CACHE, "no-ticket", "does not exist"),
        (EXPIRED, {"expires_at": NOW - 5}, "expired", "expired at"),
        (CANNOT_AUTHENTICATE, {"expires_at": NOW - 5}, "expired", "Java ignores an expired ticket"),
        # The login module's words alone, when pamkrb's reader saw a valid ticket (replaced meanwhile).
        (EXPIRED, {}, "expired", "has expired"),
        (NO_TICKET, {"ccache_name": "KEYRING:persistent:1002"}, "cache-type", "reads only FILE caches"),
        (NO_TICKET, {"ccache_name": "KCM:"}, "cache-type", "never KCM"),
        (UNMAPPED, {}, "unmapped-principal", f"turn no user name out of {PRINCIPAL}"),
        (UNMAPPED, {}, "unmapped-principal", r"add RULE:[1:$1@$0](.*@HADOOP\.TEST)s/@.*// before DEFAULT"),
        (REALM_MISSING, {}, "realm-missing", "no [realms] entry for realm HADOOP.TEST"),
        # No KDC error text, but krb5.conf does not name the ticket's realm.
        (CANNOT_AUTHENTICATE, {"realms": frozenset({"OTHER.TEST"})}, "realm-missing", "ignores KRB5_CONFIG"),
        (WRONG_KRB5_CONF, {}, "wrong-krb5-conf", "default realm is ATHENA.MIT.EDU, the cluster's is HADOOP.TEST"),
        (CLOCK_SKEW, {}, "clock-skew", "differ by more than the allowed skew"),
        (ENCTYPE_NOT_ENABLED, {}, "enctype", "refuses the encryption type"),
        (ENCTYPE_KDC, {}, "enctype", "refuses the encryption type"),
        ("ls: Call From vm/127.0.0.1 to localhost:1:8020 failed: Connection refused", {}, "unreachable", "answer"),
        # A realm krb5.conf does not name is no reason to blame it for a service that is down.
        (
            "ls: Call From vm to localhost:8020 failed: Connection refused",
            {"realms": frozenset()},
            "unreachable",
            "answer",
        ),
        ("ls: `/user/alice': No such file or directory", {}, "no-such-path", "home directory does not exist"),
        (
            'ls: Permission denied: user=bob, access=READ_EXECUTE, inode="/user/alice":alice:alice:drwx------',
            {"principal": "bob@HADOOP.TEST"},
            "permission-denied",
            "accepted the ticket",
        ),
        ("java.lang.OutOfMemoryError: Java heap space", {}, "unknown", "does not recognise"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_failure_is_explained(output: str, known: dict[str, object], kind: str, words: str) -> None:
    diagnosis = explain_failure(output, facts(**known))

    assert diagnosis.kind == kind, diagnosis
    assert words in diagnosis.explanation + diagnosis.fix, diagnosis
    assert diagnosis.fix


def test_cause_beats_absence() -> None:
    """A KDC's clock-skew answer means a ticket exists: not 'no ticket',
    even if the login module also logged an absence."""
    diagnosis = explain_failure(CLOCK_SKEW + CANNOT_AUTHENTICATE, facts())

    assert diagnosis.kind == "clock-skew"
    assert diagnosis.evidence.startswith("javax.security.sasl.SaslException: GSS initiate failed")


def test_auth_to_local_rule_for_the_principals_form() -> None:
    assert auth_to_local_rule("alice@HADOOP.TEST") == r"RULE:[1:$1@$0](.*@HADOOP\.TEST)s/@.*//"
    assert auth_to_local_rule("alice/pg-dmp-workbench2@XX.COM") == (
        r"RULE:[2:$1%$2@$0]([^%]+%pg-dmp-workbench2@XX\.COM)s/%.*//"
    )
    assert "EXAMPLE" in auth_to_local_rule(None)


def test_cache_types() -> None:
    assert cache_type("FILE:/tmp/krb5cc_1") == "FILE"
    assert cache_type("/tmp/krb5cc_1") == "FILE"
    assert cache_type("KEYRING:persistent:1") == "KEYRING"
    assert cache_type("kcm:") == "KCM"
    assert cache_type("DIR::/run/user/1/krb5cc/tkt") == "DIR"


def test_krb5_realms(tmp_path: Path) -> None:
    conf = tmp_path / "krb5.conf"
    conf.write_text(
        "[libdefaults]\n default_realm = A.TEST\n[realms]\n A.TEST = {\n  kdc = 127.0.0.1:88\n }\n"
        "# B.TEST = {\n C.TEST = {\n  kdc = x\n  auth_to_local = {\n  }\n }\n[domain_realm]\n .a = A.TEST\n"
    )
    assert krb5_realms(str(conf)) == frozenset({"A.TEST", "C.TEST"})
    conf.write_text("include /etc/krb5.d/x.conf\n[realms]\n A.TEST = {\n }\n")
    assert krb5_realms(str(conf)) is None
    assert krb5_realms(str(tmp_path / "missing")) is None
    assert java_krb5_conf({"KRB5_CONFIG": "/a/krb5.conf:/b/krb5.conf"}) == "/a/krb5.conf"
    assert java_krb5_conf({}) == "/etc/krb5.conf"


def test_krb5_default_ccache_name(tmp_path: Path) -> None:
    conf = tmp_path / "krb5.conf"
    conf.write_text("[libdefaults]\n default_ccache_name = KEYRING:persistent:%{uid}\n[realms]\n")
    assert krb5_default_ccache_name(str(conf)) == "KEYRING:persistent:%{uid}"
    conf.write_text("[libdefaults]\n default_realm = A.TEST\n[realms]\n default_ccache_name = x\n")
    assert krb5_default_ccache_name(str(conf)) is None


def test_no_resourcemanager_configured(tmp_path: Path) -> None:
    assert resourcemanager(str(tmp_path)) is None  # no yarn-site.xml
    site = tmp_path / "yarn-site.xml"
    site.write_text('<?xml version="1.0"?><configuration></configuration>\n')
    assert resourcemanager(str(tmp_path)) is None
    site.write_text(
        "<configuration><property><name>yarn.resourcemanager.hostname</name>"
        "<value>rm.example.org</value></property></configuration>"
    )
    assert resourcemanager(str(tmp_path)) == "rm.example.org:8032"


# -- the command against the session's HDFS ------------------------------------------


@pytest.fixture
def hadoop_user(hadoop_realm: sandbox.Realm, hdfs: HadoopCluster) -> Iterator[sandbox.UnixUser]:
    """A user ``<name>@HADOOP.TEST`` with a keytab at ~/<name>.keytab (the
    default keytab_template), a ticket in the default cache (theirs, 0600,
    got by themself) and an HDFS home with one file in it."""
    user = sandbox.UnixUser.create("pkdh")
    try:
        principal = hadoop_realm.add_principal(user.name)
        keytab = hadoop_realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        kinit = user.run(
            ["kinit", "-kt", str(keytab), "-c", f"FILE:{user.default_ccache}", principal],
            env=hadoop_realm.client_env(),
        )
        assert kinit.returncode == 0, kinit.stderr
        home = hdfs.make_home(user.name)
        hdfs.hdfs_admin("-touchz", f"{home}/hello")
        yield user
    finally:
        user.remove()


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A directory every user can read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="pamkrb-doctor-hadoop-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


Doctor = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def doctor(
    hadoop_realm: sandbox.Realm, hdfs: HadoopCluster, hadoop_user: sandbox.UnixUser, pam_service: str, tmp_path: Path
) -> Doctor:
    """``doctor(conf_dir=None, krb5_conf=None)``: run ``pamkrb doctor
    <hadoop_user> --hadoop-conf-dir DIR`` (the cluster's client configuration
    unless told otherwise) with a hub config naming ``pam_service``, and the
    realm's client environment (its krb5.conf unless told otherwise)."""
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c = get_config()  # noqa: F821\n"
        'c.JupyterHub.authenticator_class = "pamkrb"\n'
        f"c.PAMKerberosAuthenticator.service = {pam_service!r}\n"
    )

    def run(conf_dir: Path | None = None, krb5_conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        conf = conf_dir or hdfs.client_conf_dir
        args = ["doctor", hadoop_user.name, "--config", str(config), "--hadoop-conf-dir", str(conf)]
        env = hadoop_realm.client_env()
        if krb5_conf is not None:
            env["KRB5_CONFIG"] = str(krb5_conf)
        return sandbox.run_pamkrb(args, env=env)

    return run


@pytest.fixture
def conf_copy(hdfs: HadoopCluster, readable_dir: Path) -> Path:
    """A copy of the cluster's client configuration that a test may change."""
    conf_dir = readable_dir / "conf"
    shutil.copytree(hdfs.client_conf_dir, conf_dir)
    return conf_dir


def readable_krb5_conf(readable_dir: Path, text: str) -> Path:
    """``text`` as a krb5.conf every user (and so the user's JVM) can read."""
    krb5_conf = readable_dir / "krb5.conf"
    krb5_conf.write_text(text)
    krb5_conf.chmod(0o644)
    return krb5_conf


def hdfs_line(result: subprocess.CompletedProcess[str], user: sandbox.UnixUser) -> str:
    prefix = f"HDFS /user/{user.name}: "
    return next((line for line in result.stdout.splitlines() if prefix in line), result.stdout + result.stderr)


def test_a_user_with_a_ticket_gets_a_listing(
    hadoop_realm: sandbox.Realm, hdfs: HadoopCluster, hadoop_user: sandbox.UnixUser, doctor: Doctor
) -> None:
    started = time.monotonic()
    result = doctor()
    elapsed = time.monotonic() - started

    line = hdfs_line(result, hadoop_user)
    assert line.startswith(
        f"✓ HDFS /user/{hadoop_user.name}: listed as {hadoop_user.name} with {hadoop_user.name}@{hadoop_realm.name} "
        f"from FILE:{hadoop_user.default_ccache}: 1 entry"
    ), result.stdout + result.stderr
    assert f"- YARN ResourceManager: not checked ({hdfs.client_conf_dir}/yarn-site.xml names none)" in result.stdout
    assert result.returncode == 0, result.stdout
    assert "All checks passed." in result.stdout
    assert elapsed < 60, elapsed


def test_a_user_without_a_ticket_is_told_so(hadoop_user: sandbox.UnixUser, doctor: Doctor) -> None:
    hadoop_user.default_ccache.unlink()

    result = doctor()

    line = hdfs_line(result, hadoop_user)
    assert line.startswith(
        f"✗ HDFS /user/{hadoop_user.name}: there is no ticket in FILE:{hadoop_user.default_ccache} "
        f"({hadoop_user.default_ccache} does not exist), so Hadoop has nothing to authenticate with"
    ), result.stdout
    assert "[Java: null credentials from Ticket Cache]" in line
    assert "fix: log in to JupyterHub again" in result.stdout
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_an_expired_ticket_is_told_apart_from_none(
    hadoop_realm: sandbox.Realm, hadoop_user: sandbox.UnixUser, doctor: Doctor
) -> None:
    """Java says the same as for no ticket; the cache says it expired."""
    principal = f"{hadoop_user.name}@{hadoop_realm.name}"
    keytab = hadoop_user.home / f"{hadoop_user.name}.keytab"
    kinit = hadoop_user.run(
        ["kinit", "-l", "2s", "-kt", str(keytab), "-c", f"FILE:{hadoop_user.default_ccache}", principal],
        env=hadoop_realm.client_env(),
    )
    assert kinit.returncode == 0, kinit.stderr
    time.sleep(3)

    result = doctor()

    line = hdfs_line(result, hadoop_user)
    assert line.startswith(
        f"✗ HDFS /user/{hadoop_user.name}: the ticket in FILE:{hadoop_user.default_ccache} expired at "
    )
    assert "Java ignores an expired ticket [Java: Credentials are no longer valid]" in line
    assert "fix: sign in again" in result.stdout


def test_a_principal_auth_to_local_does_not_map(
    hadoop_realm: sandbox.Realm, hadoop_user: sandbox.UnixUser, doctor: Doctor, conf_copy: Path
) -> None:
    core = conf_copy / "core-site.xml"
    only_rule = r"RULE:[1:$1@$0](nobody@NOWHERE\.TEST)s/@.*//"
    text = re.sub(
        r"(<name>hadoop.security.auth_to_local</name><value>).*?(</value>)",
        lambda m: m.group(1) + only_rule + m.group(2),
        core.read_text(),
        flags=re.S,
    )
    core.write_text(text)
    principal = f"{hadoop_user.name}@{hadoop_realm.name}"

    result = doctor(conf_copy)

    line = hdfs_line(result, hadoop_user)
    assert line.startswith(
        f"✗ HDFS /user/{hadoop_user.name}: Hadoop's hadoop.security.auth_to_local rules (core-site.xml) "
        f"turn no user name out of {principal}"
    ), result.stdout
    assert f"Illegal principal name {principal}" in line


def test_a_realm_missing_from_the_jvms_krb5_conf(
    hadoop_realm: sandbox.Realm, hadoop_user: sandbox.UnixUser, doctor: Doctor, readable_dir: Path
) -> None:
    """The realm's [realms] entry removed: the KDC check fails too, and the
    Hadoop check names the file the JVM read."""
    krb5_conf = readable_krb5_conf(
        readable_dir, re.sub(r"\[realms\].*", "[realms]\n", hadoop_realm.krb5_conf.read_text(), flags=re.S)
    )

    result = doctor(krb5_conf=krb5_conf)

    line = hdfs_line(result, hadoop_user)
    assert line.startswith(
        f"✗ HDFS /user/{hadoop_user.name}: {krb5_conf}, the krb5.conf the JVM reads, has no [realms] entry "
        f"for realm {hadoop_realm.name}"
    ), result.stdout
    assert "Cannot locate KDC" in line
    assert "ignores KRB5_CONFIG" in result.stdout


def test_a_resourcemanager_that_does_not_answer(
    hadoop_realm: sandbox.Realm, hadoop_user: sandbox.UnixUser, doctor: Doctor, conf_copy: Path
) -> None:
    """yarn-site.xml names a ResourceManager on a port nothing listens on:
    the YARN branch runs Hadoop's NodeCLI and says so within seconds (a real
    ResourceManager's answer is untested: none can be run here)."""
    address = f"127.0.0.1:{free_port()}"
    (conf_copy / "yarn-site.xml").write_text(
        "<configuration>"
        f"<property><name>yarn.resourcemanager.address</name><value>{address}</value></property>"
        f"<property><name>yarn.resourcemanager.principal</name><value>rm/localhost@{hadoop_realm.name}</value>"
        "</property></configuration>\n"
    )

    started = time.monotonic()
    result = doctor(conf_copy)
    elapsed = time.monotonic() - started

    assert hdfs_line(result, hadoop_user).startswith("✓ HDFS"), result.stdout
    yarn = next(line for line in result.stdout.splitlines() if "YARN ResourceManager" in line)
    assert yarn.startswith(f"✗ YARN ResourceManager {address}: the Hadoop service named in the configuration"), yarn
    assert "Connection refused" in yarn
    assert elapsed < 40, elapsed


def test_a_keyring_default_cache_is_warned_about(
    hadoop_realm: sandbox.Realm, hadoop_user: sandbox.UnixUser, doctor: Doctor, readable_dir: Path
) -> None:
    """A krb5.conf whose default cache is a KEYRING: the kernels' FILE cache
    still works, and doctor warns about JVMs started without KRB5CCNAME."""
    text = hadoop_realm.krb5_conf.read_text()
    krb5_conf = readable_krb5_conf(
        readable_dir,
        text.replace("[libdefaults]\n", "[libdefaults]\n    default_ccache_name = KEYRING:persistent:%{uid}\n", 1),
    )

    result = doctor(krb5_conf=krb5_conf)

    assert hdfs_line(result, hadoop_user).startswith("✓ HDFS"), result.stdout
    warning = next(line for line in result.stdout.splitlines() if line.startswith("! default credential cache"))
    assert "default_ccache_name = KEYRING:persistent:%{uid}, which Java cannot read" in warning
    assert result.returncode == 0, result.stdout


def test_the_fallback_cache_is_the_one_checked(hadoop_user: sandbox.UnixUser, doctor: Doctor) -> None:
    """When pamkrb could only write the fallback path (/run/pamkrb/<uid>/krb5cc),
    the kernels' KRB5CCNAME points there, and so does doctor's Hadoop check."""
    fallback_dir = Path(f"/run/pamkrb/{hadoop_user.uid}")
    fallback_dir.parent.mkdir(mode=0o755, exist_ok=True)
    shutil.rmtree(fallback_dir, ignore_errors=True)  # uids are reused: a crashed run's leftovers
    fallback_dir.mkdir(mode=0o700)
    try:
        os.chown(fallback_dir, hadoop_user.uid, hadoop_user.gid)
        fallback = fallback_dir / "krb5cc"
        hadoop_user.default_ccache.rename(fallback)

        result = doctor()

        line = hdfs_line(result, hadoop_user)
        assert line.startswith(f"✓ HDFS /user/{hadoop_user.name}: listed as {hadoop_user.name}"), result.stdout
        assert f"from FILE:{fallback}:" in line
    finally:
        shutil.rmtree(fallback_dir, ignore_errors=True)
