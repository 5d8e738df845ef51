"""Hadoop: a Kerberos-secured HDFS (one NameNode, one DataNode) on loopback.

Apache Hadoop 2.7.3's own jars, as PyPI serves them inside the ``pyspark==2.4.8``
source distribution (Spark 2.4.8's "hadoop2.7" build; Maven Central is not
reachable from the build machines). :func:`hadoop_jars` fetches that sdist once
into ``/var/cache/pamkrb/hadoop`` (``tools/setup.sh`` calls it). The servers run
on Java 17 (``/usr/bin/java``) as root, with keytabs in the sandbox realm:

- ``hadoop.security.authentication=kerberos``, service authorization
  (``hadoop-policy.xml``: clients ``*``, the server protocols only ``hdfs``),
  block access tokens, SASL data-transfer protection ``authentication`` on an
  unprivileged port (no jsvc), ``dfs.http.policy=HTTPS_ONLY`` with a
  self-signed PKCS#12 keystore, SPNEGO (``HTTP/localhost``) on every web
  endpoint of both servers;
- principals ``nn/localhost``, ``dn/localhost``, ``HTTP/localhost``;
  ``auth_to_local`` maps ``nn``/``dn`` to the superuser ``hdfs``, and both
  ``user@REALM`` and the original site's ``user/pg-dmp-workbench2@REALM`` to
  ``user``;
- ``client_conf_dir``: the ``core-site.xml``/``hdfs-site.xml`` a client's
  ``HADOOP_CONF_DIR`` needs (no secrets in it).

Every trap met on the way, and its fix (each one was hit or checked here):

- **pip cannot download the sdist**: ``pip download --no-binary :all:
  pyspark==2.4.8`` runs the sdist's ``setup.py`` for metadata, which fails.
  Fix: fetch the file itself from PyPI's file host, pinned by SHA-256.
- **Java 17 closes the JDK's Kerberos internals.** Hadoop 2.7's ``KerberosUtil``
  reflects into ``sun.security.krb5.Config`` for the default realm: without
  ``--add-opens java.security.jgss/sun.security.krb5=ALL-UNNAMED`` the
  NameNode (even ``-format``) dies with "Can't get Kerberos realm". Its SPNEGO
  handler reflects into ``sun.security.jgss.GSSUtil``: without
  ``--add-opens java.security.jgss/sun.security.jgss`` the servers start, but
  every SPNEGO request gets "403 java.lang.IllegalAccessException". Those two
  are all that was needed (:data:`JAVA17_OPENS`).
- **The JVM ignores KRB5_CONFIG**: it reads ``/etc/krb5.conf`` (the Debian
  package's ATHENA.MIT.EDU) unless given ``-Djava.security.krb5.conf``. Every
  JVM here gets it; Spark's driver needs it in
  ``spark.driver.extraJavaOptions``.
- **The hadoop-hdfs jar has no ``webapps/``**: NameNode and DataNode die with
  "webapps/hdfs not found in CLASSPATH" / "webapps/datanode not found in
  CLASSPATH" (Hadoop's ``HttpServer2`` looks the folder up as a class-path
  resource). Fix: a directory on the class path holding
  ``webapps/{hdfs,datanode}/WEB-INF/web.xml`` (an empty web application) and
  an empty ``webapps/static``. No UI pages are served; JMX, fsck and the
  image/token servlets are Hadoop's own classes. A SecondaryNameNode or
  JournalNode (not run here) would need ``webapps/secondary`` or
  ``webapps/journal`` the same way.
- **WebHDFS needs Jersey 1** (``com.sun.jersey``), which Spark 2.4's jars do not
  have (they ship Jersey 2): the NameNode dies with ClassNotFoundException
  ``com.sun.jersey.spi.container.servlet.ServletContainer``. Fix:
  ``dfs.webhdfs.enabled=false``; clients use the RPC protocol anyway.
- **Hadoop 2.7 offers TLSv1 only** (``hadoop.ssl.enabled.protocols`` defaults to
  ``TLSv1``), which Java 17 disables: the DataNode's HTTPS endpoint (netty)
  drops every handshake (curl: SSL_ERROR_SYSCALL) and logs nothing. The
  NameNode's (Jetty) is not affected. Fix:
  ``hadoop.ssl.enabled.protocols=TLSv1.2,TLSv1.3``.
- Jetty 6 on Java 17 logs ``ERROR mortbay.log: EXCEPTION
  java.lang.UnsupportedOperationException ... getPeerCertificates()`` for TLS
  connections (``SSLSession.getPeerCertificateChain`` is gone). Harmless: the
  request is served.
- **A secure DataNode without jsvc** refuses to start ("Cannot start secure
  DataNode without configuring either privileged resources or SASL RPC data
  transfer protection and SSL for HTTP") unless ``dfs.data.transfer.protection``
  is set *and* ``dfs.http.policy=HTTPS_ONLY``.
- **The client must ask for SASL data transfer too.** A client without
  ``dfs.data.transfer.protection`` gets a misleading "could only be replicated
  to 0 nodes instead of minReplication (=1). There are 1 datanode(s) running
  and 1 node(s) are excluded"; only the DataNode's log says "Failed to read
  expected SASL data transfer protection handshake". ``client_conf_dir`` sets it.
- **``_HOST`` and host-name canonicalisation.** The NameNode replaces ``_HOST``
  with the reverse lookup of its bind address, the DataNode with
  ``dfs.datanode.hostname`` or the canonical name of the machine's host name,
  the client with the canonical name of the NameNode's address, and the
  NameNode checks a DataNode's principal against ``_HOST`` resolved from the
  DataNode's address. Here ``/etc/hosts`` maps 127.0.0.1 to ``localhost``
  first, so ``_HOST`` happens to work (checked), but on a machine whose
  127.0.0.1 is first named after the host, server and client would disagree.
  Fix: literal ``<service>/localhost`` principals, ``dfs.datanode.hostname=localhost``,
  ``dfs.namenode.datanode.registration.ip-hostname-check=false``. Every
  service name is ``localhost``, whose canonical name is itself, so
  ``dns_canonicalize_hostname`` did not need changing; the realm's krb5.conf
  already says ``rdns = false`` for MIT clients (curl).
- The NameNode's own SPNEGO servlets (fsck, image transfer, delegation tokens
  over HTTP) use ``dfs.namenode.kerberos.internal.spnego.principal`` with the
  NameNode's keytab, so ``nn.keytab`` holds ``HTTP/localhost`` as well.
- **Enctypes**: MIT krb5 1.20's KDC issues aes256-cts-hmac-sha1-96 tickets,
  which Java 17 accepts without ``permitted_enctypes`` or ``allow_weak_crypto``.
  Nothing to do here; a KDC that still issues rc4/des tickets would need them.
- **``KRB5CCNAME=FILE:/path``** (the ``FILE:`` prefix pamkrb writes) is read
  fine by Spark 4's Hadoop 3 client on Java 17, and by Hadoop 2.7's FsShell.
- The client's default replication is 3: with one DataNode every file would
  stay under-replicated. ``client_conf_dir`` sets ``dfs.replication=1``.
- Safe mode: ``dfs.namenode.safemode.extension=0`` and ``min.datanodes=0``, so a
  restarted NameNode with blocks does not wait the default 30 s. Readiness is
  the NameNode's "Leaving safe mode" and the DataNode's "Successfully sent
  block report": the RPC port opens before any DataNode can take a block.
- The NameNode maps users to groups with ``id``: ``hdfs`` has no Unix account,
  which it logs as a WARN; harmless.

All jars of the Spark 2.4.8 build go on the servers' class path: it is a
dependency set that was built and tested with Hadoop 2.7.3, and trimming it to
what one run happens to load would miss classes loaded lazily (error paths,
HTTPS, tokens). Hadoop 2.7 has no YARN servers in these jars (only YARN's
client side), so there is no ResourceManager/NodeManager.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from .process import SandboxError, _run, _Service, _terminate, free_port, port_accepts, wait_until
from .realm import Realm

HADOOP_VERSION = "2.7.3"
# Spark 2.4.8's "hadoop2.7" build, as PyPI serves it: the only reachable
# registry artifact with Apache Hadoop's server jars (Maven Central is not).
PYSPARK_SDIST = "pyspark-2.4.8.tar.gz"
PYSPARK_SDIST_URL = (
    "https://files.pythonhosted.org/packages/13/29/"
    "1a5d7c60609dfc8fd79c86965e95ea7e9e181385d839bc43913d277effa2/pyspark-2.4.8.tar.gz"
)
PYSPARK_SDIST_SHA256 = "3a19b71b8dc8dd91ebc943604a05e1ab01bce052456d42937035632d852d78dc"
CACHE_DIR = Path("/var/cache/pamkrb/hadoop")
JAVA = Path("/usr/bin/java")


def hadoop_jars(cache_dir: Path = CACHE_DIR) -> Path:
    """The directory of Hadoop 2.7.3's jars and their dependencies, fetched once.

    Downloads the pyspark 2.4.8 sdist from PyPI (checked against its SHA-256),
    extracts ``deps/jars/`` into ``cache_dir/hadoop-2.7.3/jars`` and drops the
    sdist. Idempotent: a completed cache (marked by ``.complete``) is reused
    without touching the network. The cache appears in one rename, marker
    included, so a concurrent or interrupted fetch never leaves a half-filled
    one behind.
    """
    home = cache_dir / f"hadoop-{HADOOP_VERSION}"
    jars = home / "jars"
    marker = home / ".complete"
    if marker.exists():
        return jars
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache_dir))
    try:
        sdist = staging / PYSPARK_SDIST
        digest = hashlib.sha256()
        with urllib.request.urlopen(PYSPARK_SDIST_URL, timeout=120) as response, sdist.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != PYSPARK_SDIST_SHA256:
            raise SandboxError(f"{PYSPARK_SDIST_URL}: SHA-256 {digest.hexdigest()}, expected {PYSPARK_SDIST_SHA256}")
        staged = staging / home.name
        (staged / "jars").mkdir(parents=True)
        prefix = "pyspark-2.4.8/deps/jars/"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name
                if not (member.isfile() and name.startswith(prefix) and name.endswith(".jar")):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    raise SandboxError(f"{PYSPARK_SDIST}: cannot read {name}")
                with source, (staged / "jars" / Path(name).name).open("wb") as out:
                    shutil.copyfileobj(source, out)
        (staged / ".complete").write_text(f"{PYSPARK_SDIST_URL}\nsha256 {PYSPARK_SDIST_SHA256}\n")
        staged.chmod(0o755)
        try:
            staged.rename(home)
        except OSError:
            # Another fetch finished first; its cache is as good as ours.
            if not marker.exists():
                raise
        return jars
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Hadoop 2.7 reflects into JDK internals that Java 17 closes by default (see
# the module docstring for what fails without each).
JAVA17_OPENS = ("java.security.jgss/sun.security.krb5", "java.security.jgss/sun.security.jgss")


def _xml(properties: Mapping[str, str]) -> str:
    body = "".join(
        f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>\n"
        for name, value in properties.items()
    )
    header = '<?xml version="1.0"?>\n<!-- Written by tools/sandbox/hadoop.py -->\n'
    return f"{header}<configuration>\n{body}</configuration>\n"


def _merge(properties: Mapping[str, str], overrides: Mapping[str, str | None]) -> dict[str, str]:
    """``properties`` updated with ``overrides``; an override of None removes the property."""
    merged = {**properties, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


_WEB_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by tools/sandbox/hadoop.py: an empty web application, which is all
     Hadoop's HttpServer2 needs to find at webapps/<name> on the classpath. -->
<web-app xmlns="http://java.sun.com/xml/ns/javaee" version="2.5"/>
"""

_LOG4J = """\
# Written by tools/sandbox/hadoop.py: everything to stderr, which goes to the log file.
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
"""


class HadoopCluster(_Service):
    """A NameNode and a DataNode of Apache Hadoop 2.7.3, secured with Kerberos
    in ``realm``, on 127.0.0.1.

    Everything lives in one temporary directory: ``conf/`` (the servers'
    ``*-site.xml``, 0700), ``client-conf/`` (what a client's
    ``HADOOP_CONF_DIR`` needs, 0755, no secrets), ``private/`` (keytabs,
    keystore, 0700), ``name/`` and ``data/`` (the file system), and ``logs/``
    (``format.log``, ``namenode.log``, ``datanode.log``). Both JVMs run as
    root, stopped by PID (DataNode first); the HDFS
    superuser is ``hdfs`` (the NameNode's principal, mapped by
    ``auth_to_local``). :meth:`hdfs_admin` runs ``hdfs dfs`` commands as it.
    """

    SUPERUSER = "hdfs"
    SEED_HOST = "pg-dmp-workbench2"

    def __init__(
        self,
        realm: Realm,
        *,
        core_site: Mapping[str, str | None] | None = None,
        hdfs_site: Mapping[str, str | None] | None = None,
        base_dir: Path | None = None,
        jars: Path | None = None,
    ) -> None:
        self.realm = realm
        self.core_site_overrides = dict(core_site or {})
        self.hdfs_site_overrides = dict(hdfs_site or {})
        self.jars = jars or hadoop_jars()
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-hadoop-", dir=base_dir))
        self.dir.chmod(0o755)
        self.conf_dir = self.dir / "conf"
        self.client_conf_dir = self.dir / "client-conf"
        self.private = self.dir / "private"
        self.webapps_root = self.dir / "webapps-root"
        for path in (self.conf_dir, self.client_conf_dir, self.webapps_root):
            path.mkdir(mode=0o755)
        self.private.mkdir(mode=0o700)
        # Also Hadoop's hadoop.log.dir, which both servers publish at /logs/
        # (to administrators only): nothing else may live there.
        self.log_dir = self.dir / "logs"
        self.log_dir.mkdir(mode=0o755)
        self.namenode_log = self.log_dir / "namenode.log"
        self.datanode_log = self.log_dir / "datanode.log"
        self.format_log = self.log_dir / "format.log"
        self._log_offsets = {"namenode": 0, "datanode": 0}
        self.host = "127.0.0.1"
        self.ports = {
            name: free_port()
            for name in ("namenode_rpc", "namenode_https", "datanode", "datanode_ipc", "datanode_https")
        }
        self.namenode: subprocess.Popen[bytes] | None = None
        self.datanode: subprocess.Popen[bytes] | None = None
        self._proc = None
        self._admin_ccache = self.private / "hdfs.ccache"
        self._principals()
        self._keystore()
        self._webapps()
        self._write_config()

    @property
    def uri(self) -> str:
        """``hdfs://127.0.0.1:<port>``: the file system's URI."""
        return f"hdfs://{self.host}:{self.ports['namenode_rpc']}"

    def web_url(self, server: str) -> str:
        """``https://localhost:<port>`` of ``namenode`` or ``datanode`` (SPNEGO;
        the certificate is :attr:`certificate`)."""
        return f"https://localhost:{self.ports[server + '_https']}"

    def principal(self, service: str) -> str:
        return f"{service}/localhost@{self.realm.name}"

    # -- setup ---------------------------------------------------------------

    def _principals(self) -> None:
        for service in ("nn", "dn", "HTTP"):
            # A second cluster in the realm shares the principals: ktadd
            # -norandkey leaves the first cluster's keytabs valid.
            try:
                self.realm.add_principal(self.principal(service))
            except SandboxError as error:
                if "already exists" not in str(error):
                    raise
        # The NameNode's own SPNEGO endpoints (fsck, image transfer, delegation
        # tokens over HTTP) read HTTP/'s key from the NameNode's keytab.
        for keytab, services in (("nn.keytab", ("nn", "HTTP")), ("dn.keytab", ("dn",)), ("http.keytab", ("HTTP",))):
            names = " ".join(self.principal(s) for s in services)
            self.realm.kadmin(f"ktadd -k {self.private / keytab} -norandkey {names}")
        (self.private / "http-signature-secret").write_text(secrets.token_urlsafe(32))

    def _keystore(self) -> None:
        self.keystore = self.private / "keystore.p12"
        self.keystore_password = secrets.token_urlsafe(16)
        _run(
            [
                "keytool", "-genkeypair", "-alias", "localhost", "-keyalg", "RSA", "-keysize", "2048",
                "-validity", "2", "-dname", "CN=localhost", "-ext", "SAN=dns:localhost,ip:127.0.0.1",
                "-storetype", "pkcs12", "-keystore", str(self.keystore),
                "-storepass", self.keystore_password, "-keypass", self.keystore_password,
            ]
        )  # fmt: skip
        self.certificate = self.dir / "ca.pem"
        self._export_certificate()

    def _export_certificate(self) -> None:
        _run(
            [
                "keytool", "-exportcert", "-rfc", "-alias", "localhost", "-keystore", str(self.keystore),
                "-storetype", "pkcs12", "-storepass", self.keystore_password, "-file", str(self.certificate),
            ]
        )  # fmt: skip
        self.certificate.chmod(0o644)

    def _webapps(self) -> None:
        for app in ("hdfs", "datanode"):
            web_inf = self.webapps_root / "webapps" / app / "WEB-INF"
            web_inf.mkdir(parents=True)
            (web_inf / "web.xml").write_text(_WEB_XML)
        (self.webapps_root / "webapps" / "static").mkdir()

    def auth_to_local(self) -> str:
        realm = self.realm.name.replace(".", r"\.")
        return "\n".join(
            [
                # The servers' own principals are the superuser.
                rf"RULE:[2:$1@$0](nn@{realm})s/.*/{self.SUPERUSER}/",
                rf"RULE:[2:$1@$0](dn@{realm})s/.*/{self.SUPERUSER}/",
                # The original site's form: user/pg-dmp-workbench2@REALM -> user.
                rf"RULE:[2:$1%$2@$0]([^%]+%{self.SEED_HOST}@{realm})s/%.*//",
                # user@REALM -> user.
                rf"RULE:[1:$1@$0](.*@{realm})s/@.*//",
                "DEFAULT",
            ]
        )

    def _client_properties(self) -> tuple[dict[str, str], dict[str, str]]:
        core = {
            "fs.defaultFS": self.uri,
            "hadoop.security.authentication": "kerberos",
            "hadoop.rpc.protection": "authentication",
            "hadoop.security.auth_to_local": self.auth_to_local(),
        }
        hdfs = {
            "dfs.namenode.kerberos.principal": self.principal("nn"),
            "dfs.data.transfer.protection": "authentication",
            # One DataNode: files written with the client's default of 3 would
            # stay under-replicated.
            "dfs.replication": "1",
        }
        return core, hdfs

    def _write_config(self) -> None:
        core, hdfs = self._client_properties()
        (self.client_conf_dir / "core-site.xml").write_text(_xml(core))
        (self.client_conf_dir / "hdfs-site.xml").write_text(_xml(hdfs))
        # For Hadoop 2.7's FsShell (hdfs_dfs); Spark 4 uses log4j2 and ignores it.
        (self.client_conf_dir / "log4j.properties").write_text(_LOG4J.replace("=INFO,", "=WARN,"))
        for path in self.client_conf_dir.iterdir():
            path.chmod(0o644)

        private = self.private
        loopback = self.host
        core_server = {
            **core,
            "hadoop.security.authorization": "true",
            "hadoop.tmp.dir": str(self.dir / "tmp"),
            # SPNEGO on every web endpoint of both servers.
            "hadoop.http.filter.initializers": "org.apache.hadoop.security.AuthenticationFilterInitializer",
            "hadoop.http.authentication.type": "kerberos",
            "hadoop.http.authentication.simple.anonymous.allowed": "false",
            "hadoop.http.authentication.kerberos.principal": self.principal("HTTP"),
            "hadoop.http.authentication.kerberos.keytab": str(private / "http.keytab"),
            "hadoop.http.authentication.signature.secret.file": str(private / "http-signature-secret"),
            "hadoop.ssl.enabled.protocols": "TLSv1.2,TLSv1.3",
        }
        hdfs_server = {
            **hdfs,
            "dfs.namenode.name.dir": f"file://{self.dir / 'name'}",
            "dfs.datanode.data.dir": f"file://{self.dir / 'data'}",
            "dfs.namenode.rpc-address": f"{loopback}:{self.ports['namenode_rpc']}",
            "dfs.namenode.https-address": f"{loopback}:{self.ports['namenode_https']}",
            "dfs.namenode.http-address": f"{loopback}:0",
            "dfs.datanode.address": f"{loopback}:{self.ports['datanode']}",
            "dfs.datanode.ipc.address": f"{loopback}:{self.ports['datanode_ipc']}",
            "dfs.datanode.https.address": f"{loopback}:{self.ports['datanode_https']}",
            "dfs.datanode.http.address": f"{loopback}:0",
            "dfs.datanode.hostname": "localhost",
            "dfs.http.policy": "HTTPS_ONLY",
            "dfs.block.access.token.enable": "true",
            "dfs.namenode.keytab.file": str(private / "nn.keytab"),
            "dfs.namenode.kerberos.internal.spnego.principal": self.principal("HTTP"),
            "dfs.datanode.kerberos.principal": self.principal("dn"),
            "dfs.datanode.keytab.file": str(private / "dn.keytab"),
            "dfs.web.authentication.kerberos.principal": self.principal("HTTP"),
            "dfs.web.authentication.kerberos.keytab": str(private / "http.keytab"),
            "dfs.webhdfs.enabled": "false",
            "dfs.namenode.safemode.extension": "0",
            "dfs.namenode.safemode.min.datanodes": "0",
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.permissions.superusergroup": self.SUPERUSER,
        }
        ssl_server = {
            "ssl.server.keystore.location": str(self.keystore),
            "ssl.server.keystore.type": "pkcs12",
            "ssl.server.keystore.password": self.keystore_password,
            "ssl.server.keystore.keypassword": self.keystore_password,
        }
        superuser = self.SUPERUSER
        policy = {
            "security.client.protocol.acl": "*",
            "security.client.datanode.protocol.acl": "*",
            "security.datanode.protocol.acl": superuser,
            "security.inter.datanode.protocol.acl": superuser,
            "security.namenode.protocol.acl": superuser,
            "security.admin.operations.protocol.acl": superuser,
            "security.refresh.user.mappings.protocol.acl": superuser,
            "security.refresh.policy.protocol.acl": superuser,
        }
        for name, properties in (
            ("core-site.xml", _merge(core_server, self.core_site_overrides)),
            ("hdfs-site.xml", _merge(hdfs_server, self.hdfs_site_overrides)),
            ("ssl-server.xml", ssl_server),
            ("hadoop-policy.xml", policy),
        ):
            (self.conf_dir / name).write_text(_xml(properties))
        (self.conf_dir / "log4j.properties").write_text(_LOG4J)
        # The servers' configuration names the keystore password and keytabs.
        self.conf_dir.chmod(0o700)

    # -- the JVMs ----------------------------------------------------------------

    def java_command(self, main: str, *args: str, conf_dir: Path | None = None, heap: str = "256m") -> list[str]:
        """A ``java`` command line running ``main`` from the Hadoop 2.7 jars."""
        classpath = [str(conf_dir or self.conf_dir), str(self.webapps_root), f"{self.jars}/*"]
        return [
            str(JAVA),
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            *(f"--add-opens={module}=ALL-UNNAMED" for module in JAVA17_OPENS),
            f"-Djava.security.krb5.conf={self.realm.krb5_conf}",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dhadoop.log.dir={self.log_dir}",
            "-cp",
            ":".join(classpath),
            main,
            *args,
        ]

    def _env(self, **extra: str) -> dict[str, str]:
        env = self.realm.client_env()
        env.update(extra)
        return env

    def _spawn(self, main: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                self.java_command(main),
                env=self._env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.namenode, self.datanode))

    def start(self, timeout: float = 120) -> None:
        """Format the name directory, start both servers, wait until the
        DataNode has reported to a NameNode out of safe mode, create ``/user``."""
        if self.running:
            return
        deadline = time.monotonic() + timeout
        if not (self.dir / "name").exists():
            with self.format_log.open("ab") as out:
                result = subprocess.run(
                    self.java_command("org.apache.hadoop.hdfs.server.namenode.NameNode", "-format", "-nonInteractive"),
                    env=self._env(),
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.monotonic(), 1),
                    check=False,
                )
            if result.returncode != 0:
                raise SandboxError(f"NameNode -format exited with {result.returncode}:\n{self.log_tail('format')}")
        # A restart appends to the logs: readiness counts only what follows.
        self._log_offsets = {name: len(self._log(name)) for name in self._log_offsets}
        self.namenode = self._spawn("org.apache.hadoop.hdfs.server.namenode.NameNode", self.namenode_log)
        self.datanode = self._spawn("org.apache.hadoop.hdfs.server.datanode.DataNode", self.datanode_log)

        def ready() -> bool:
            for name, proc in (("namenode", self.namenode), ("datanode", self.datanode)):
                if proc is not None and proc.poll() is not None:
                    raise SandboxError(f"{name} exited with {proc.returncode}; log:\n{self.log_tail(name)}")
            return (
                port_accepts(self.ports["namenode_rpc"])
                and "Leaving safe mode" in self._log("namenode")[self._log_offsets["namenode"] :]
                and "Successfully sent block report" in self._log("datanode")[self._log_offsets["datanode"] :]
            )

        try:
            wait_until(ready, timeout=max(deadline - time.monotonic(), 1), interval=0.2, message="HDFS to come up")
            self.hdfs_admin("-mkdir", "-p", "/user", "/tmp")
            self.hdfs_admin("-chmod", "1777", "/tmp")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the DataNode, then the NameNode (SIGTERM by PID). Safe twice."""
        for attr in ("datanode", "namenode"):
            proc = getattr(self, attr)
            if proc is not None:
                _terminate(proc)
                setattr(self, attr, None)

    def _log(self, name: str) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of ``<name>.log`` (namenode, datanode, format), without the
        start-up banner's classpath line."""
        kept = [line for line in self._log(name).splitlines() if "STARTUP_MSG:   classpath" not in line]
        return "\n".join(kept[-lines:])

    def resident_memory(self) -> dict[str, int]:
        """VmRSS in bytes of each running JVM: ``{"namenode": …, "datanode": …}``."""
        sizes = {}
        for name in ("namenode", "datanode"):
            proc = getattr(self, name)
            if proc is None:
                continue
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[name] = int(line.split()[1]) * 1024
        return sizes

    # -- clients -------------------------------------------------------------------

    def hdfs_dfs(self, *args: str, ccache: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``hdfs dfs ARGS`` (Hadoop 2.7's FsShell) with the ticket in ``ccache``;
        the result, whatever its status."""
        return subprocess.run(
            self.java_command("org.apache.hadoop.fs.FsShell", *args, conf_dir=self.client_conf_dir, heap="128m"),
            env=self._env(KRB5CCNAME=ccache),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _superuser_ccache(self) -> str:
        """A fresh ticket of the NameNode's principal (the superuser ``hdfs``)."""
        self.realm.kinit(self.principal("nn"), self.private / "nn.keytab", str(self._admin_ccache))
        return str(self._admin_ccache)

    def hdfs_admin(self, *args: str) -> str:
        """``hdfs dfs ARGS`` as the superuser; its stdout. Raises on failure."""
        result = self.hdfs_dfs(*args, ccache=self._superuser_ccache())
        if result.returncode != 0:
            raise SandboxError(f"hdfs dfs {' '.join(args)} exited with {result.returncode}:\n{result.stderr}")
        return result.stdout

    def make_home(self, name: str) -> str:
        """``/user/<name>``, owned by ``name``, mode 0755; its path."""
        path = f"/user/{name}"
        self.hdfs_admin("-mkdir", "-p", path)
        self.hdfs_admin("-chown", f"{name}:{name}", path)
        return path

    def owner(self, path: str) -> str:
        """The owner HDFS reports for ``path`` (asked as the superuser)."""
        return self.hdfs_admin("-stat", "%u", path).strip()

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in HDFS (asked as the superuser)."""
        result = self.hdfs_dfs("-test", "-e", path, ccache=self._superuser_ccache())
        if result.returncode not in (0, 1):
            raise SandboxError(f"hdfs dfs -test -e {path} exited with {result.returncode}:\n{result.stderr}")
        return result.returncode == 0
