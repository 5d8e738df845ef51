"""``pamkrb doctor USER``: why does this user have no ticket?

It reads the hub's configuration the way JupyterHub does, builds the
authenticator from it, and checks each link of the chain a login goes
through — the account, the PAM service, the keytab, the KDC and the cache —
and, with ``--hadoop-conf-dir``, whether Hadoop's own client accepts the
user's ticket (``doctor_hadoop.py``) — printing one ✓/✗ line per check
with a fix for each problem, and a ! line for a risk that breaks nothing yet
(another user able to lock the cache path with a FUSE mount). It only reads:
the test ticket goes into a private temporary directory that is removed
afterwards, and the user's real cache is inspected, never written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import stat
import sys
import tempfile
import time
from typing import TYPE_CHECKING, TextIO

from .. import lifecycle
from ..lifecycle import local_time
from ..pam_stack import check_service
from .errors import UsageError

if TYPE_CHECKING:
    from traitlets.config import Config

    from ..authenticator import PAMKerberosAuthenticator

EXIT_OK = 0
EXIT_PROBLEM = 1

PAMKRB_NAMES = frozenset({"pamkrb", "pamkrb.PAMKerberosAuthenticator", "pamkrb.authenticator.PAMKerberosAuthenticator"})


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check why a user does (not) get a Kerberos ticket",
        description=(
            "Check, for one user and the hub's configuration, everything a login with pamkrb needs: the account, "
            "the PAM service (no password-less path for root), the keytab (owner, mode, principal), the KDC "
            "(a test ticket is obtained into a private temporary cache and thrown away) and the user's "
            "credential cache (owner, mode, principal, expiry), and whether other users could lock the cache path "
            "with a FUSE mount; with a batchspawner class, whether its jobs get the environment they need (PATH, "
            "SLURM_CONF, KRB5_CONFIG) and, with the ticket broker, internal_ssl; "
            "with --hadoop-conf-dir, whether Hadoop accepts the user's ticket. "
            "Prints a report with a fix for each problem. "
            "Run it as root, with the KRB5_CONFIG the hub uses. Exit status: 0 all good, 1 a problem was found, "
            "2 usage error."
        ),
        epilog="example: sudo pamkrb doctor alice --config /etc/jupyterhub/jupyterhub_config.py",
    )
    parser.add_argument("user", metavar="USER", help="the user's login name")
    parser.add_argument(
        "--config",
        "-f",
        metavar="FILE",
        help="the hub's jupyterhub_config.py (default: pamkrb's built-in defaults)",
    )
    parser.add_argument(
        "--spnego",
        action="store_true",
        help="also check single sign-on: the service keytab (spnego_keytab: owner, mode, principals, enctypes), "
        "that its key version matches the KDC's, and that the KDC marks the service ok_as_delegate",
    )
    hadoop = parser.add_argument_group(
        "Hadoop",
        "with --hadoop-conf-dir, doctor also runs Hadoop's own client as the user, with the user's cache, the way "
        "their PySpark kernels do: it lists /user/USER on HDFS and, when yarn-site.xml names a ResourceManager, "
        "asks it for its nodes; a failure is explained in plain words (no ticket, expired ticket, clock skew, "
        "an enctype Java refuses, a principal auth_to_local does not map, a realm missing from krb5.conf, a "
        "KEYRING/KCM cache)",
    )
    hadoop.add_argument(
        "--hadoop-conf-dir",
        metavar="DIR",
        help="the HADOOP_CONF_DIR the kernels use (core-site.xml, hdfs-site.xml, yarn-site.xml)",
    )
    hadoop.add_argument(
        "--spark-home",
        metavar="DIR",
        help="Spark whose jars hold the Hadoop client (default: the pyspark package of this Python)",
    )
    hadoop.add_argument("--java", metavar="PATH", help="java to run (default: $JAVA_HOME/bin/java, else java on PATH)")
    parser.set_defaults(run=run, prog=parser.prog)


# -- the report ---------------------------------------------------------------

MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}
# For a terminal or log that cannot show the check marks.
ASCII_MARKS = {"ok": "OK  ", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


class Report:
    """Prints check results as they come and counts the problems."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0
        utf8 = (getattr(out, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.marks = MARKS if utf8 else ASCII_MARKS

    def _line(self, kind: str, title: str, detail: str = "", fix: str = "") -> None:
        text = f"{self.marks[kind]} {title}"
        if detail:
            text += f": {detail}"
        print(text, file=self.out)
        if fix:
            print(f"    fix: {fix}", file=self.out)
        self.out.flush()

    def ok(self, title: str, detail: str = "") -> None:
        self._line("ok", title, detail)

    def warn(self, title: str, detail: str, fix: str = "") -> None:
        self._line("warn", title, detail, fix)

    def fail(self, title: str, detail: str, fix: str = "") -> None:
        self.problems += 1
        self._line("fail", title, detail, fix)

    def skip(self, title: str, reason: str) -> None:
        self._line("skip", title, f"not checked ({reason})")

    def finish(self) -> int:
        if self.problems:
            noun = "problem" if self.problems == 1 else "problems"
            print(f"\n{self.problems} {noun} found.", file=self.out)
            return EXIT_PROBLEM
        print("\nAll checks passed.", file=self.out)
        return EXIT_OK


# -- entry point ----------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    hadoop_conf_dir = getattr(args, "hadoop_conf_dir", None)
    if hadoop_conf_dir is not None:
        hadoop_conf_dir = os.path.abspath(hadoop_conf_dir)
        if not os.path.isdir(hadoop_conf_dir):
            raise UsageError(f"--hadoop-conf-dir: {hadoop_conf_dir}: no such directory")
    report = Report(sys.stdout)
    print(f"pamkrb doctor: user {args.user!r}, config {args.config or '(none: pamkrb defaults)'}", file=sys.stdout)
    print(f"KRB5_CONFIG={os.environ.get('KRB5_CONFIG', '(unset: /etc/krb5.conf)')}\n", file=sys.stdout)
    if os.geteuid() != 0:
        report.warn("privileges", "not running as root", "run as root, like the hub, to read keytabs and caches")

    authenticator = check_authenticator(config, args.config, report)
    if authenticator is None:
        return report.finish()
    from .doctor_batch import check_batch_job_environment

    check_batch_job_environment(config, authenticator, report)
    entry = check_user(args.user, report)
    check_pam_service(authenticator.service, report)
    if getattr(args, "spnego", False):
        check_spnego(authenticator, report)
    if entry is None:
        for title in ("keytab", "KDC", "credential cache") + (("Hadoop",) if hadoop_conf_dir else ()):
            report.skip(title, "no such user")
        return report.finish()

    paths = _user_paths(authenticator, entry, report)
    if paths is None:
        return report.finish()
    source = authenticator.tickets.credential_source_of(paths)
    if source == lifecycle.SOURCE_PASSWORD:
        # The hub makes this user's tickets from their login password, which
        # doctor does not have: no keytab is needed, none is checked.
        why = f"credential_source {authenticator.credential_source!r}: tickets come from the login password"
        if authenticator.credential_source == "auto":
            why = f"no keytab at {paths.keytab}, so with {why}"
        report.skip(f"keytab {paths.keytab}", why)
        report.skip("KDC", "a ticket from the password needs the user's password; log in to test it")
    elif check_keytab(paths, report, broker=authenticator.ticket_broker):
        check_keytab_enctypes(paths, report)
        check_kdc(paths, authenticator, report)
    else:
        report.skip("KDC", "the keytab cannot be used")
    check_fuse_lockout(paths, report, authenticator.fallback_ccache_dir)
    check_cache(paths, authenticator.refresh_margin, report)
    if hadoop_conf_dir is not None:
        from .doctor_hadoop import check_hadoop

        fallback = lifecycle.fallback_ccache(authenticator.fallback_ccache_dir, paths.uid)
        check_hadoop(paths, report, hadoop_conf_dir, spark_home=args.spark_home, java=args.java, fallback=fallback)
    return report.finish()


# -- configuration ----------------------------------------------------------------


def _load_config(path: str | None) -> Config:
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if path is None:
        return Config()
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise UsageError(f"--config: {full}: no such file")
    loader = PyFileConfigLoader(os.path.basename(full), path=os.path.dirname(full))
    try:
        return loader.load_config()
    except Exception as e:  # the config is arbitrary Python; whatever it raises is the admin's to see
        raise UsageError(f"--config: {full}: cannot load: {type(e).__name__}: {e}") from None


def check_authenticator(config: Config, config_path: str | None, report: Report) -> PAMKerberosAuthenticator | None:
    """The authenticator the hub would build, or None (reported) if it cannot be built."""
    from traitlets import TraitError

    from ..authenticator import PAMKerberosAuthenticator

    cls = PAMKerberosAuthenticator
    chosen = config.JupyterHub.get("authenticator_class") if "JupyterHub" in config else None
    if config_path is not None:
        if chosen is None:
            report.fail(
                "authenticator",
                "JupyterHub.authenticator_class is not set, so the hub uses plain PAM and obtains no tickets",
                'add c.JupyterHub.authenticator_class = "pamkrb" to the config',
            )
        elif isinstance(chosen, type) and issubclass(chosen, PAMKerberosAuthenticator):
            cls = chosen
            report.ok("authenticator", f"{chosen.__module__}.{chosen.__name__}")
        elif isinstance(chosen, str) and chosen in PAMKRB_NAMES:
            report.ok("authenticator", chosen)
        else:
            shown = chosen.__name__ if isinstance(chosen, type) else str(chosen)
            report.fail(
                "authenticator",
                f"JupyterHub.authenticator_class is {shown!r}, not pamkrb; the hub obtains no tickets",
                'set c.JupyterHub.authenticator_class = "pamkrb"; checking with pamkrb\'s settings from the config',
            )
    try:
        built: PAMKerberosAuthenticator = cls(config=config)
        return built
    except TraitError as e:
        service = _configured_service(config)
        if check_service(service).reason:
            # The authenticator refuses such a service at start-up; report
            # it as the PAM check so the admin gets the PAM-specific fix.
            check_pam_service(service, report)
        else:
            report.fail("configuration", str(e), "correct the setting in the config")
        return None


def _configured_service(config: Config) -> str:
    for section in ("PAMKerberosAuthenticator", "PAMAuthenticator"):
        if section in config and "service" in config[section]:
            return str(config[section]["service"])
    return "login"


# -- account ----------------------------------------------------------------------


def check_user(name: str, report: Report) -> pwd.struct_passwd | None:
    from .. import _native
    from ..exceptions import InvalidUsername

    try:
        _native.check_username(name)
    except InvalidUsername as e:
        report.fail(f"user {name!r}", str(e), "JupyterHub user names must be valid Unix login names")
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        report.fail(
            f"user {name}",
            "not in the password database",
            "create the account (useradd), or check the name; pamkrb only serves local users",
        )
        return None
    report.ok(f"user {name}", f"uid {entry.pw_uid}, gid {entry.pw_gid}, home {entry.pw_dir}")
    return entry


# -- PAM ---------------------------------------------------------------------------


def check_pam_service(service: str, report: Report) -> None:
    title = f"PAM service {service!r}"
    login_fix = (
        "set c.PAMKerberosAuthenticator.service to a login service (e.g. 'login', or a dedicated "
        "/etc/pam.d/jupyterhub with `@include common-auth` and `@include common-account`)"
    )
    # The same check the authenticator makes at start-up, so the two cannot disagree.
    check = check_service(service)
    if check.reason:
        report.fail(title, check.reason, login_fix)
        return
    report.ok(title, f"{check.source}, {len(check.rules)} auth rules, no password-less path for root")


# -- keytab -----------------------------------------------------------------------


def _user_paths(
    authenticator: PAMKerberosAuthenticator, entry: pwd.struct_passwd, report: Report
) -> lifecycle.UserPaths | None:
    """The user's principal, keytab and cache, resolved exactly as the hub
    resolves them (HubTickets.resolve_user)."""
    from ..exceptions import TemplateError

    try:
        paths = authenticator.tickets.resolve_user(entry.pw_name)
    except TemplateError as e:
        report.fail("templates", str(e), "correct principal_template, keytab_template or ccache_template")
        return None
    report.ok("principal", paths.principal)
    return paths


def check_keytab(where: lifecycle.UserPaths, report: Report, *, broker: bool = False) -> bool:
    """Report on the keytab with the hub's own reader and rules; True when a
    kinit from it can be attempted."""
    from .. import _native, lifecycle
    from ..exceptions import KeytabError

    path = where.keytab
    title = f"keytab {path}"
    try:
        keytab = _native.inspect_keytab(path)
    except KeytabError as e:
        if not os.path.lexists(path):
            report.fail(
                title,
                "does not exist",
                f"export the key: kadmin -q 'ktadd -k {path} {where.principal}'; "
                f"chown {where.username}: {path}; chmod 600 {path}",
            )
        else:
            report.fail(title, str(e), f"put the user's keytab file at {path}, export it again with kadmin ktadd")
        return False
    problems = lifecycle.keytab_problems(keytab, where, broker=broker)
    for problem in problems:
        if problem.severity == "fail":
            report.fail(title, problem.detail, problem.fix)
        else:
            report.warn(title, problem.detail, problem.fix)
    if not problems:
        kvnos = sorted({e.kvno for e in keytab.entries if e.is_for(where.principal)})
        report.ok(
            title,
            f"owner {lifecycle.owner_name(keytab.owner_uid, with_uid=False)}, mode {keytab.mode & 0o7777:04o}, "
            f"key for {where.principal} "
            f"(kvno {', '.join(map(str, kvnos))})",
        )
    return not any(p.what == "no-key" for p in problems)


# Enctypes a KDC may still issue keys in but no site should depend on alone.
_WEAK_ENCTYPES = {23: "RC4", 24: "RC4", 16: "3DES", 1: "DES", 2: "DES", 3: "DES"}


def check_keytab_enctypes(where: lifecycle.UserPaths, report: Report) -> None:
    """The enctypes of the user's keys against what this host's libkrb5
    permits (krb5.conf ``permitted_enctypes``, read through libkrb5): a key
    only in enctypes the host refuses cannot get a ticket. Keytabs exported
    from Active Directory (``samba-tool domain exportkeytab``, ``ktpass``)
    hold aes256, aes128 and RC4 keys."""
    from .. import _native
    from ..exceptions import KerberosError, KeytabError

    title = f"keytab {where.keytab} enctypes"
    try:
        keytab = _native.inspect_keytab(where.keytab)
        permitted = set(_native.permitted_enctypes())
    except (KeytabError, KerberosError) as e:
        report.fail(title, str(e), "check KRB5_CONFIG and krb5.conf's [libdefaults]")
        return
    mine = {e.enctype: e.enctype_name for e in keytab.entries if e.is_for(where.principal)}
    usable = sorted(n for n in mine if n in permitted)
    refused = sorted(n for n in mine if n not in permitted)
    listing = ", ".join(mine[n] + ("" if n in permitted else " (not permitted here)") for n in sorted(mine))
    if not usable:
        report.fail(
            title,
            f"{listing}: none of the keys is in an enctype this host permits "
            f"({', '.join(_native.enctype_name(n) for n in sorted(permitted))})",
            "export the key again in a permitted enctype (aes256-cts-hmac-sha1-96), or add the keytab's enctype "
            "to permitted_enctypes in krb5.conf's [libdefaults]",
        )
    elif all(n in _WEAK_ENCTYPES for n in usable):
        weak = ", ".join(sorted({_WEAK_ENCTYPES[n] for n in usable}))
        report.warn(
            title,
            f"{listing}: only weak keys ({weak}) can be used",
            "export an AES key for the principal (samba-tool domain exportkeytab, or ktpass -crypto AES256-SHA1)",
        )
    elif refused:
        report.ok(title, f"{listing}; the others are used")
    else:
        report.ok(title, listing)


# -- KDC ---------------------------------------------------------------------------


def check_kdc(where: lifecycle.UserPaths, authenticator: PAMKerberosAuthenticator, report: Report) -> None:
    """A test ticket from the keytab, by the hub's own keeper, into a
    private cache; within kdc_timeout."""
    from ..exceptions import PamkrbError
    from ..keeper import KeepingRules, Target, TicketKeeper

    # A private directory of root's: the test ticket is never where the user
    # (or anyone) could read it, and the user's real cache is left alone.
    with tempfile.TemporaryDirectory(prefix="pamkrb-doctor-") as private:
        target = Target(
            where.username, where.principal, os.path.join(private, "ccache"), lifecycle.SOURCE_KEYTAB, where.keytab
        )
        rules = KeepingRules(0, authenticator.kdc_timeout, authenticator.ticket_lifetime)
        keeper = TicketKeeper(where.username, lambda: target, rules, flight=lifecycle.SingleFlight("pamkrb-doctor"))
        started = time.monotonic()
        try:
            info = asyncio.run(keeper.replace("doctor")).info
        except PamkrbError as e:
            config = os.environ.get("KRB5_CONFIG", "/etc/krb5.conf")
            report.fail(
                "KDC",
                f"no ticket for {where.principal}: {e}",
                f"check that the KDC named in {config} runs and is reachable from this host, that the clocks "
                "agree, and that the keytab's key version matches the KDC's (re-export with ktadd -norandkey)",
            )
            return
    elapsed = (time.monotonic() - started) * 1000
    report.ok(
        "KDC", f"ticket for {info.principal} obtained in {elapsed:.0f} ms, valid until {local_time(info.expires_at)}"
    )


# -- credential cache -------------------------------------------------------------


def check_cache(where: lifecycle.UserPaths, refresh_margin: int, report: Report) -> None:
    """The user's cache, read with the hub's own checks (owner, mode, links,
    principal) and judged by the hub's freshness rule."""
    from .. import _native, lifecycle
    from ..exceptions import PamkrbError

    path = where.ccache
    title = f"credential cache {path}"
    next_login = "the hub replaces it at the user's next login or server start"
    if not os.path.lexists(path):
        report.fail(title, f"does not exist, so the user's kernels have no ticket; {next_login}", "log in again")
        return
    try:
        info = _native.inspect_ticket(path, uid=where.uid)
    except PamkrbError as e:
        report.fail(title, f"{e}; the hub never trusts it", f"{next_login} (or remove it: rm {path})")
        return
    if not info.is_for(where.principal):
        report.fail(title, f"holds a ticket for {info.principal}, not {where.principal}", next_login)
        return
    now = time.time()
    if lifecycle.is_fresh(info, where.principal, refresh_margin, now):
        report.ok(
            title, f"owner {where.username}, mode 0600, {info.principal}, valid until {local_time(info.expires_at)}"
        )
    elif info.expires_at > now:
        report.ok(
            title,
            f"{info.principal}, expires {local_time(info.expires_at)} (within refresh_margin: renewed on next use)",
        )
    else:
        report.fail(
            title,
            f"expired at {local_time(info.expires_at)}",
            "pamkrb renews it at the next login, server start or hub refresh; "
            "if it stays expired, see the hub log and the KDC check above",
        )


# -- FUSE mounts on the cache path ------------------------------------------------

FUSERMOUNT_DIRS = ("/bin", "/usr/bin", "/usr/local/bin")
FUSERMOUNT_NAMES = ("fusermount", "fusermount3")
FUSE_DEVICE = "/dev/fuse"


def setuid_fusermounts() -> list[str]:
    """The fusermount programs that run as root for whoever starts them,
    each named once by its real path (fusermount is often a link to
    fusermount3, and /bin is /usr/bin on merged-/usr systems)."""
    found: set[str] = set()
    for directory in FUSERMOUNT_DIRS:
        for name in FUSERMOUNT_NAMES:
            path = os.path.join(directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and st.st_mode & stat.S_ISUID:
                found.add(os.path.realpath(path))
    return sorted(found)


def check_fuse_lockout(
    where: lifecycle.UserPaths, report: Report, fallback_dir: str = lifecycle.DEFAULT_FALLBACK_CCACHE_DIR
) -> None:
    """Whether another local user can lock the cache path away from root.

    A user who may create entries in the cache's directory makes one at the
    cache path and mounts a FUSE file system on it (with a setuid-root
    fusermount). Without ``allow_other`` the kernel refuses everyone else
    that mount, root included, with EACCES, and root cannot rename or remove
    a mount point (EBUSY): the path is lost until the mount goes.
    """
    title = "FUSE mounts on the cache path"
    directory = os.path.dirname(where.ccache)
    try:
        mode = stat.S_IMODE(os.stat(directory).st_mode)
    except OSError as e:
        report.skip(title, f"cannot stat {directory}: {e.strerror}")
        return
    if not mode & stat.S_IWOTH:
        report.ok(title, f"{directory} (mode {mode:04o}) is not writable by other users")
        return
    programs = setuid_fusermounts()
    if not programs:
        report.ok(title, f"no setuid-root fusermount in {', '.join(FUSERMOUNT_DIRS)}, so users cannot mount FUSE")
        return
    try:
        device = os.stat(FUSE_DEVICE)
    except OSError:
        report.ok(title, f"no {FUSE_DEVICE}, so nobody can mount FUSE")
        return
    device_mode = stat.S_IMODE(device.st_mode)
    if not device_mode & 0o006:
        report.ok(title, f"{FUSE_DEVICE} is mode {device_mode:04o}, not open to other users")
        return
    fallback = lifecycle.fallback_ccache(fallback_dir, where.uid)
    report.warn(
        title,
        f"{directory} is writable by every user (mode {mode:04o}), {programs[0]} is setuid root and "
        f"{FUSE_DEVICE} is mode {device_mode:04o}: another local user can mount a FUSE file system on "
        f"{where.ccache}, which root cannot look into or remove. pamkrb then puts {where.username}'s ticket at "
        f"its fallback path {fallback} (the hub sets KRB5CCNAME to it; the ticket status shows it), where "
        "tools that only look at the default cache name do not find it",
        "set c.PAMKerberosAuthenticator.ccache_template to a path in a directory only root and the user can "
        f"write; or, if users need not mount FUSE, remove the setuid bit (chmod u-s {' '.join(programs)}) "
        f"or restrict the device (chmod 0600 {FUSE_DEVICE}, made lasting with a udev rule)",
    )


# -- single sign-on -----------------------------------------------------------------

# Enctypes browsers' KDCs no longer should issue; a keytab holding only these
# works with old clients alone.
WEAK_ENCTYPES = ("des", "rc4", "arcfour", "des3")


def check_spnego(authenticator: PAMKerberosAuthenticator, report: Report) -> None:
    """The service keytab as the hub reads it (root's, 0600), its principals
    and enctypes; then, for each principal, a ticket from it (the KDC agrees
    with the key), and a service ticket for it decrypted with the keytab
    (`kvno -k`: the key versions match), with the ok_as_delegate flag."""
    from .. import _native
    from ..exceptions import KeytabError

    path = authenticator.spnego_keytab
    title = f"service keytab {path}"
    if not authenticator.spnego:
        report.warn(
            "single sign-on", "spnego is off in this configuration", "set c.PAMKerberosAuthenticator.spnego = True"
        )
    try:
        keytab = _native.inspect_keytab(path)
    except KeytabError as e:
        report.fail(
            title,
            str(e),
            f"export the hub's service key: kadmin -q 'ktadd -k {path} HTTP/<hub host>'; chmod 600 {path}",
        )
        return
    if keytab.owner_uid != 0 or keytab.mode & 0o077:
        report.fail(
            title,
            f"owner uid {keytab.owner_uid}, mode {keytab.mode & 0o7777:04o}: the hub refuses it, and whoever "
            "can read it can log in as anyone",
            f"chown root: {path}; chmod 600 {path}",
        )
        return
    principals = sorted({entry.principal for entry in keytab.entries})
    if not principals:
        report.fail(title, "holds no keys", f"kadmin -q 'ktadd -k {path} HTTP/<hub host>'")
        return
    enctypes = sorted({entry.enctype_name for entry in keytab.entries})
    strong = [name for name in enctypes if not name.startswith(WEAK_ENCTYPES)]
    mode = keytab.mode & 0o7777
    report.ok(title, f"owner root, mode {mode:04o}, {', '.join(principals)}; enctypes {', '.join(enctypes)}")
    if not strong:
        report.fail(
            f"{title} enctypes",
            f"only weak enctypes ({', '.join(enctypes)})",
            "re-export with AES keys: kadmin -q 'ktadd -k PATH -e aes256-cts-hmac-sha1-96:normal HTTP/<host>'",
        )
    others = [p for p in principals if not p.startswith("HTTP/")]
    if others:
        report.warn(
            f"{title} principals",
            f"also holds {', '.join(others)}: tickets for those services are accepted too",
            "keep only HTTP/<hub host> in the service keytab",
        )
    for principal in principals:
        kvnos = sorted({entry.kvno for entry in keytab.entries if entry.principal == principal})
        _check_service_principal(principal, path, kvnos, authenticator.kdc_timeout, report)


def _check_service_principal(principal: str, keytab: str, kvnos: list[int], timeout: float, report: Report) -> None:
    import re
    import subprocess

    from .. import _native
    from ..exceptions import PamkrbError

    title = f"KDC: {principal}"
    with tempfile.TemporaryDirectory(prefix="pamkrb-doctor-") as private:
        cache = os.path.join(private, "ccache")
        try:
            _native.obtain_ticket(principal, keytab, cache, deadline=time.monotonic() + timeout)
        except PamkrbError as e:
            report.fail(
                title,
                f"no ticket from the service keytab (kvno {', '.join(map(str, kvnos))}): {e}",
                "the KDC's key differs from the keytab's (re-export with ktadd -norandkey), or the KDC is unreachable",
            )
            return
        env = {k: v for k, v in os.environ.items() if k != "KRB5CCNAME"}
        try:
            kvno = subprocess.run(
                ["kvno", "-c", f"FILE:{cache}", "-k", keytab, principal],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            listed = subprocess.run(
                ["klist", "-f", "-c", f"FILE:{cache}"], env=env, capture_output=True, text=True, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            report.fail(title, f"kvno could not run: {e}", "install krb5-user (Debian) or krb5-workstation (RHEL)")
            return
    if kvno.returncode != 0 or "keytab entry valid" not in kvno.stdout:
        detail = (kvno.stderr or kvno.stdout).strip().splitlines()
        report.fail(
            title,
            f"a service ticket does not decrypt with the keytab (kvno {', '.join(map(str, kvnos))}): "
            f"{detail[-1] if detail else 'kvno failed'}",
            f"re-export the key: kadmin -q 'ktadd -k {keytab} -norandkey {principal}'",
        )
        return
    found = re.search(r"kvno = (\d+)", kvno.stdout)
    report.ok(title, f"kvno {found[1] if found else '?'} at the KDC matches the keytab")
    rows = listed.stdout.splitlines()
    flags = ""
    for i, line in enumerate(rows):
        if principal in line and "krbtgt/" not in line:
            for following in rows[i + 1 : i + 4]:
                match = re.search(r"Flags: (\S+)", following)
                if match:
                    flags = match[1]
                    break
    if "O" in flags:
        report.ok(f"{title} delegation", "ok_as_delegate: browsers that follow the KDC's policy delegate tickets")
    else:
        report.warn(
            f"{title} delegation",
            "not ok_as_delegate: browsers delegate only with their own allow-list, so users' servers may "
            "get no delegated ticket",
            f"kadmin -q 'modprinc +ok_as_delegate {principal}'",
        )
