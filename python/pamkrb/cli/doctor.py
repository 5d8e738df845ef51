"""``pamkrb doctor USER``: why does this user have no ticket?

It reads the hub's configuration the way JupyterHub does, builds the
authenticator from it, and checks each link of the chain a login goes
through — the account, the PAM service, the keytab, the KDC and the cache —
printing one ✓/✗ line per check with a fix for each problem. It only reads:
the test ticket goes into a private temporary directory that is removed
afterwards, and the user's real cache is inspected, never written.
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TextIO

from ..pam_stack import check_service
from .errors import UsageError

EXIT_OK = 0
EXIT_PROBLEM = 1

# A keytab holds a few keys per principal; anything this large is not a keytab.
MAX_KEYTAB_BYTES = 1 << 20

PAMKRB_NAMES = frozenset({"pamkrb", "pamkrb.PAMKerberosAuthenticator", "pamkrb.authenticator.PAMKerberosAuthenticator"})


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check why a user does (not) get a Kerberos ticket",
        description=(
            "Check, for one user and the hub's configuration, everything a login with pamkrb needs: the account, "
            "the PAM service (no password-less path for root), the keytab (owner, mode, principal), the KDC "
            "(a test ticket is obtained into a private temporary cache and thrown away) and the user's "
            "credential cache (owner, mode, principal, expiry). Prints a report with a fix for each problem. "
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
    report = Report(sys.stdout)
    print(f"pamkrb doctor: user {args.user!r}, config {args.config or '(none: pamkrb defaults)'}", file=sys.stdout)
    print(f"KRB5_CONFIG={os.environ.get('KRB5_CONFIG', '(unset: /etc/krb5.conf)')}\n", file=sys.stdout)
    if os.geteuid() != 0:
        report.warn("privileges", "not running as root", "run as root, like the hub, to read keytabs and caches")

    authenticator = check_authenticator(config, args.config, report)
    if authenticator is None:
        return report.finish()
    entry = check_user(args.user, report)
    check_pam_service(authenticator.service, report)
    if entry is None:
        for title in ("keytab", "KDC", "credential cache"):
            report.skip(title, "no such user")
        return report.finish()

    where = _user_kerberos(authenticator, entry, report)
    if where is None:
        return report.finish()
    keytab_usable = check_keytab(where, entry, report)
    if keytab_usable:
        check_kdc(where, authenticator.ticket_lifetime, report)
    else:
        report.skip("KDC", "the keytab cannot be used")
    check_cache(where, entry, authenticator.refresh_margin, report)
    return report.finish()


# -- configuration ----------------------------------------------------------------


def _load_config(path: str | None):
    from traitlets.config import Config, PyFileConfigLoader

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


def check_authenticator(config, config_path: str | None, report: Report):
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
        return cls(config=config)
    except TraitError as e:
        service = _configured_service(config)
        if check_service(service).reason:
            # The authenticator refuses such a service at start-up; report
            # it as the PAM check so the admin gets the PAM-specific fix.
            check_pam_service(service, report)
        else:
            report.fail("configuration", str(e), "correct the setting in the config")
        return None


def _configured_service(config) -> str:
    for section in ("PAMKerberosAuthenticator", "PAMAuthenticator"):
        if section in config and "service" in config[section]:
            return config[section]["service"]
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


@dataclass(frozen=True)
class UserKerberos:
    principal: str
    keytab: str
    ccache: str


def _user_kerberos(authenticator, entry: pwd.struct_passwd, report: Report) -> UserKerberos | None:
    from .. import _native
    from ..exceptions import TemplateError

    fields = {
        "username": entry.pw_name,
        "uid": entry.pw_uid,
        "gid": entry.pw_gid,
        "home": entry.pw_dir,
        "realm": authenticator.realm,
    }
    try:
        principal = _native.expand_template(authenticator.principal_template, **fields)
        keytab = _native.expand_template(authenticator.keytab_template, path=True, **fields)
        ccache = _native.expand_template(authenticator.ccache_template, path=True, **fields)
    except TemplateError as e:
        report.fail("templates", str(e), "correct principal_template, keytab_template or ccache_template")
        return None
    if "@" not in principal and authenticator.realm:
        principal = f"{principal}@{authenticator.realm}"
    report.ok("principal", principal)
    return UserKerberos(principal, keytab, ccache)


def check_keytab(where: UserKerberos, entry: pwd.struct_passwd, report: Report) -> bool:
    """Report on the keytab; True when a kinit from it can be attempted."""
    path = where.keytab
    title = f"keytab {path}"
    owner = f"{entry.pw_name}:"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        report.fail(
            title,
            "does not exist",
            f"export the key: kadmin -q 'ktadd -k {path} {where.principal}'; chown {owner} {path}; chmod 600 {path}",
        )
        return False
    except OSError as e:
        if os.path.islink(path):
            report.fail(title, "is a symbolic link; pamkrb refuses it", f"replace the link by the keytab file {path}")
        else:
            report.fail(title, f"cannot open: {e.strerror}", "")
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            report.fail(title, "is not a regular file", f"put the keytab file at {path}")
            return False
        if st.st_size > MAX_KEYTAB_BYTES:
            report.fail(title, f"is {st.st_size} bytes, too large for a keytab", "")
            return False
        data = os.read(fd, MAX_KEYTAB_BYTES)
    finally:
        os.close(fd)

    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (entry.pw_uid, 0):
        report.fail(
            title,
            f"owned by {_user_name(st.st_uid)}, not by {entry.pw_name}; whoever owns it can change whose key it holds",
            f"chown {owner} {path}",
        )
    elif mode & 0o077:
        report.fail(
            title,
            f"mode {mode:04o}: readable or writable by group/others, who could then act as {where.principal}",
            f"chmod 600 {path}",
        )
    elif st.st_uid == 0:
        report.warn(
            title,
            f"owned by root, mode {mode:04o}: the hub can use it, the user's server cannot renew from it",
            f"chown {owner} {path}",
        )
    else:
        report.ok(title, f"regular file, owner {entry.pw_name}, mode {mode:04o}")

    try:
        principals = keytab_principals(data)
    except ValueError as e:
        report.fail(title, f"not a readable keytab: {e}", "export it again with kadmin ktadd")
        return False
    if where.principal not in principals:
        held = ", ".join(sorted(principals)) or "no keys"
        report.fail(
            f"principal in {path}",
            f"{where.principal} not found (holds: {held})",
            f"export the right key (kadmin -q 'ktadd -k {path} -norandkey {where.principal}') "
            "or correct principal_template",
        )
        return False
    report.ok(f"principal in {path}", f"{where.principal} present")
    return True


def keytab_principals(data: bytes) -> set[str]:
    """Principals (``a/b@REALM``) in a version 2 keytab, MIT's and Heimdal's format."""
    if len(data) < 2 or data[0] != 0x05:
        raise ValueError("no keytab header")
    if data[1] != 0x02:
        raise ValueError(f"keytab format version {data[1]} is not supported (only 2)")
    found: set[str] = set()
    offset = 2
    while offset + 4 <= len(data):
        (size,) = struct.unpack_from(">i", data, offset)
        offset += 4
        if size == 0:
            break
        if size < 0:  # a hole left by a deleted entry
            offset += -size
            continue
        entry = data[offset : offset + size]
        if len(entry) < size:
            raise ValueError("truncated entry")
        offset += size
        (count,) = struct.unpack_from(">H", entry, 0)
        pos = 2
        strings = []
        for _ in range(count + 1):  # the realm, then the components
            (length,) = struct.unpack_from(">H", entry, pos)
            pos += 2
            strings.append(entry[pos : pos + length].decode("utf-8", "replace"))
            pos += length
        realm, components = strings[0], strings[1:]
        found.add("/".join(components) + "@" + realm)
    return found


# -- KDC ---------------------------------------------------------------------------


def check_kdc(where: UserKerberos, lifetime: int | None, report: Report) -> None:
    from .. import _native
    from ..exceptions import PamkrbError

    # A private directory of root's: the test ticket is never where the user
    # (or anyone) could read it, and the user's real cache is left alone.
    with tempfile.TemporaryDirectory(prefix="pamkrb-doctor-") as private:
        started = time.monotonic()
        try:
            info = _native.obtain_ticket(
                where.principal, where.keytab, os.path.join(private, "ccache"), lifetime=lifetime
            )
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
    report.ok("KDC", f"ticket for {info.principal} obtained in {elapsed:.0f} ms, valid until {_when(info.expires_at)}")


# -- credential cache -------------------------------------------------------------


def check_cache(where: UserKerberos, entry: pwd.struct_passwd, refresh_margin: int, report: Report) -> None:
    from .. import _native
    from ..exceptions import PamkrbError

    path = where.ccache
    title = f"credential cache {path}"
    next_login = "it is written at the user's next login or server start"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        report.fail(title, f"does not exist, so the user's kernels have no ticket; {next_login}", "log in again")
        return
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        report.fail(title, f"is {kind}; pamkrb refuses to write there", f"remove it (rm {path}), then log in again")
        return
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != entry.pw_uid:
        report.fail(
            title,
            f"owned by {_user_name(st.st_uid)}, not by {entry.pw_name}: the user cannot use or renew it, "
            "and pamkrb refuses to replace another user's file",
            f"remove it (rm {path}); {next_login}",
        )
    elif mode & 0o077:
        report.fail(title, f"mode {mode:04o}: others can read the user's tickets", f"chmod 600 {path}")
    else:
        report.ok(title, f"owner {entry.pw_name}, mode {mode:04o}")

    try:
        info = _native.inspect_ticket(path)
    except PamkrbError as e:
        report.fail(f"ticket in {path}", str(e), f"remove it (rm {path}); {next_login}")
        return
    if info.principal != where.principal:
        report.fail(
            f"ticket in {path}",
            f"for {info.principal}, not {where.principal}",
            f"remove it (rm {path}); {next_login}",
        )
        return
    left = info.expires_at - time.time()
    if left <= 0:
        report.fail(
            f"ticket in {path}",
            f"expired at {_when(info.expires_at)}",
            "pamkrb renews it at the next login, server start or hub refresh; "
            "if it stays expired, see the hub log and the KDC check above",
        )
    elif left < refresh_margin:
        report.ok(
            f"ticket in {path}",
            f"{info.principal}, expires {_when(info.expires_at)} (within refresh_margin: renewed on next use)",
        )
    else:
        report.ok(f"ticket in {path}", f"{info.principal}, valid until {_when(info.expires_at)}")


# -- small helpers ----------------------------------------------------------------


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
