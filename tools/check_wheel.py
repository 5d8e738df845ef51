"""Static check of a built wheel: what an admin's host will need to load it.

Run by `make wheel` on what it built, and by tests/wheel on good and broken
wheels. A wheel passes when:

- its tag is ``cp39-abi3-manylinux_<floor>_<arch>``: one file for every
  CPython from 3.9 on, and the glibc floor the tag promises;
- it holds exactly one shared object, the extension module: no bundled
  libpam/libkrb5 and no ``*.libs`` directory of copies (auditwheel's repair);
- that module needs only the system libraries we name (libpam, MIT krb5,
  glibc's own), has no RPATH/RUNPATH, and references no glibc symbol
  version newer than the floor (``objdump -T``);
- every libkrb5/libk5crypto/libgssapi_krb5/libpam function it imports is one
  we checked exists in MIT krb5 1.17 (its libkrb5.exports, libk5crypto.exports
  and libgssapi_krb5.exports at krb5-1.17-final) and Linux-PAM: a new one fails until someone checks it
  too and adds it to ``REVIEWED_IMPORTS``;
- it carries the server extension's config and the prebuilt labextension.

Prints one summary line (size, tag, highest glibc symbol) and exits 1 with
every problem listed otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# glibc's own libraries plus the three the README tells admins to install.
ALLOWED_NEEDED = frozenset(
    {
        "libkrb5.so.3",
        "libk5crypto.so.3",
        "libgssapi_krb5.so.2",
        "libpam.so.0",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    }
)
REQUIRED_DATA = (
    "data/etc/jupyter/jupyter_server_config.d/pamkrb.json",
    "data/share/jupyter/labextensions/pamkrb/package.json",
    "data/share/jupyter/labextensions/pamkrb/install.json",
)
EXTENSION_MODULE = "pamkrb/_native.abi3.so"
# Checked against MIT krb5 1.17's export lists (the README's floor) and Linux-PAM.
REVIEWED_IMPORTS = frozenset(
    {
        # Single sign-on (src/gssapi.rs), all in libgssapi_krb5.exports at krb5-1.17-final.
        "gss_accept_sec_context",
        "gss_acquire_cred_from",
        "gss_delete_sec_context",
        "gss_display_name",
        "gss_display_status",
        "gss_krb5_copy_ccache",
        "gss_release_buffer",
        "gss_release_cred",
        "gss_release_name",
        "krb5_cc_destroy",
        "krb5_cc_end_seq_get",
        "krb5_cc_initialize",
        "krb5_cc_new_unique",
        "krb5_cc_next_cred",
        "krb5_cc_start_seq_get",
        "krb5_cc_store_cred",
        "krb5_enctype_to_name",
        "krb5_free_context",
        "krb5_free_cred_contents",
        "krb5_free_default_realm",
        "krb5_free_enctypes",
        "krb5_free_error_message",
        "krb5_free_principal",
        "krb5_get_default_realm",
        "krb5_get_error_message",
        "krb5_get_permitted_enctypes",
        "krb5_get_init_creds_keytab",
        "krb5_get_init_creds_opt_alloc",
        "krb5_get_init_creds_opt_free",
        "krb5_get_init_creds_opt_set_canonicalize",
        "krb5_get_init_creds_opt_set_expire_callback",
        "krb5_get_init_creds_opt_set_fast_ccache",
        "krb5_get_init_creds_opt_set_fast_flags",
        "krb5_get_init_creds_opt_set_renew_life",
        "krb5_get_init_creds_opt_set_tkt_life",
        "krb5_get_init_creds_password",
        "krb5_get_renewed_creds",
        "krb5_get_time_offsets",
        "krb5_init_context",
        "krb5_kt_add_entry",
        "krb5_kt_close",
        "krb5_kt_resolve",
        "krb5_parse_name",
        "krb5_parse_name_flags",
        "pam_acct_mgmt",
        "pam_authenticate",
        "pam_end",
        "pam_get_item",
        "pam_set_item",
        "pam_start",
        "pam_strerror",
    }
)
_TAG = re.compile(r"-cp39-abi3-manylinux_(\d+)_(\d+)_(x86_64|aarch64)\.whl$")
_GLIBC_SYMBOL = re.compile(r"\bGLIBC_(\d+)\.(\d+)(?:\.(\d+))?\b")


@dataclass
class Report:
    wheel: Path
    size: int = 0
    tag: str = ""
    highest_glibc: str = ""
    needed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.wheel.name}: {self.size / 1024:.0f} KiB, tag {self.tag}, highest glibc symbol "
            f"{self.highest_glibc or 'none'}, needs {' '.join(self.needed)}"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _elf_dynamic(path: Path) -> tuple[list[str], list[str]]:
    """(DT_NEEDED entries, RPATH/RUNPATH entries) of a shared object."""
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
    needed, paths = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "NEEDED":
            needed.append(parts[1])
        elif len(parts) == 2 and parts[0] in ("RPATH", "RUNPATH"):
            paths.append(parts[1])
    return needed, paths


def _dynamic_symbols(path: Path) -> str:
    return subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=True).stdout


def _glibc_versions(symbols: str) -> list[tuple[int, ...]]:
    return [tuple(int(g) for g in match.groups() if g is not None) for match in _GLIBC_SYMBOL.finditer(symbols)]


def _krb5_pam_imports(symbols: str) -> set[str]:
    """Undefined krb5_*/gss_*/pam_* functions: what the host's libkrb5, libgssapi_krb5 and libpam must provide."""
    names = set()
    for line in symbols.splitlines():
        fields = line.split()
        if "*UND*" in fields and fields[-1].startswith(("krb5_", "gss_", "pam_")):
            names.add(fields[-1])
    return names


def check(wheel: Path, glibc_floor: str) -> Report:
    report = Report(wheel=wheel, size=wheel.stat().st_size)
    tag = _TAG.search(wheel.name)
    if tag is None:
        report.problems.append(f"tag of {wheel.name} is not cp39-abi3-manylinux_X_Y_<arch>")
    else:
        report.tag = wheel.name.split("-", 2)[2].removesuffix(".whl")
        if (int(tag[1]), int(tag[2])) != _version(glibc_floor):
            report.problems.append(f"tag promises glibc {tag[1]}.{tag[2]}, the floor is {glibc_floor}")

    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as scratch:
        names = archive.namelist()
        shared = [n for n in names if re.search(r"\.so(\.\d+)*$", n)]
        if shared != [EXTENSION_MODULE]:
            report.problems.append(f"shared objects in the wheel: {shared} (only {EXTENSION_MODULE} belongs there)")
        bundled_dirs = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".libs")})
        if bundled_dirs:
            report.problems.append(f"bundled library directories: {bundled_dirs}")
        for suffix in REQUIRED_DATA:
            if not any(n.endswith(".data/" + suffix) for n in names):
                report.problems.append(f"missing {suffix}")
        if EXTENSION_MODULE not in names:
            return report
        module = Path(archive.extract(EXTENSION_MODULE, scratch))
        report.needed, rpaths = _elf_dynamic(module)
        unexpected = [n for n in report.needed if n not in ALLOWED_NEEDED]
        if unexpected:
            report.problems.append(f"needs libraries that are not the system's PAM/Kerberos/glibc: {unexpected}")
        for required in ("libpam.so.0", "libkrb5.so.3", "libgssapi_krb5.so.2"):
            if required not in report.needed:
                report.problems.append(f"does not link {required}")
        if rpaths:
            report.problems.append(f"RPATH/RUNPATH set: {rpaths}")
        symbols = _dynamic_symbols(module)
        unreviewed = sorted(_krb5_pam_imports(symbols) - REVIEWED_IMPORTS)
        if unreviewed:
            report.problems.append(f"imports functions not yet checked against MIT krb5 1.17 / Linux-PAM: {unreviewed}")
        versions = _glibc_versions(symbols)
        if versions:
            highest = max(versions)
            report.highest_glibc = "GLIBC_" + ".".join(map(str, highest))
            if highest > _version(glibc_floor):
                report.problems.append(f"references {report.highest_glibc}, newer than the floor {glibc_floor}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glibc", default="2.28", help="the newest glibc symbol version allowed (default 2.28)")
    parser.add_argument("wheels", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for wheel in args.wheels:
        report = check(wheel, args.glibc)
        print(f"check-wheel: {report.summary()}")
        for problem in report.problems:
            print(f"check-wheel: FAIL {wheel.name}: {problem}", file=sys.stderr)
        failed |= bool(report.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
