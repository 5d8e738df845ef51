"""The system libraries the native core links, and what to say when one is missing.

The wheel never bundles libpam or libkrb5: PAM modules are loaded by the
host's libpam and Kerberos plugins by the host's libkrb5, so copies inside the
wheel would load the wrong modules or none. The dynamic loader therefore finds
them when ``pamkrb._native`` is imported; if it cannot, Python gets an
``ImportError`` carrying the loader's terse message, and this module turns it
into one that names the library and the package that provides it.
"""

from __future__ import annotations

import ctypes
import re
from typing import NamedTuple


class SystemLibrary(NamedTuple):
    soname: str
    what: str
    debian: str
    rhel: str
    suse: str


# Every DT_NEEDED entry of the extension module that is not glibc's own.
LIBRARIES = (
    SystemLibrary("libkrb5.so.3", "MIT Kerberos 1.17 or newer", "libkrb5-3", "krb5-libs", "krb5"),
    SystemLibrary("libk5crypto.so.3", "MIT Kerberos 1.17 or newer", "libk5crypto3", "krb5-libs", "krb5"),
    SystemLibrary("libpam.so.0", "Linux-PAM", "libpam0g", "pam", "pam"),
    # Single sign-on (src/gssapi.rs); the loader lists it first, it is added last.
    SystemLibrary(
        "libgssapi_krb5.so.2", "MIT Kerberos 1.17 or newer (GSS-API)", "libgssapi-krb5-2", "krb5-libs", "krb5"
    ),
)

GLIBC_FLOOR = "2.28"

_UNDEFINED_SYMBOL = re.compile(r"undefined symbol: (\S+)")
_GLIBC_VERSION = re.compile(r"version `(GLIBC_[0-9.]+)' not found")


def _by_soname(soname: str) -> SystemLibrary:
    return next(library for library in LIBRARIES if library.soname == soname)


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries() -> list[SystemLibrary]:
    """The libraries the dynamic loader cannot find on this host."""
    return [library for library in LIBRARIES if not _loadable(library.soname)]


def _install_hint(libraries: list[SystemLibrary]) -> str:
    def names(field: str) -> str:
        return " ".join(dict.fromkeys(getattr(library, field) for library in libraries))

    return (
        f"Install it from the distribution: Debian/Ubuntu `apt install {names('debian')}`, "
        f"RHEL/Rocky/Alma/Fedora `dnf install {names('rhel')}`, SUSE `zypper install {names('suse')}`."
    )


def explain(error: ImportError, missing: list[SystemLibrary] | None = None) -> str | None:
    """A message for an ``ImportError`` of ``pamkrb._native``, or None if it is not the host's fault.

    ``missing`` defaults to probing the host; tests pass it to check the wording.
    """
    text = str(error)
    if "cannot open shared object file" in text:
        named = [library for library in LIBRARIES if library.soname in text]
        probed = missing_libraries() if missing is None else missing
        # The loader names only the first library it could not open.
        absent = list(dict.fromkeys([*named, *probed]))
        if not absent:
            return None
        listed = ", ".join(f"{library.soname} ({library.what})" for library in absent)
        verb = "is" if len(absent) == 1 else "are"
        return (
            f"pamkrb cannot load its native core: {listed} {verb} not installed on this host. "
            f"pamkrb uses the system's PAM and Kerberos libraries and never bundles them. "
            f"{_install_hint(absent)} (loader said: {text})"
        )
    glibc = _GLIBC_VERSION.search(text)
    if glibc:
        return (
            f"pamkrb's native core was built for a newer C library than this host's, which lacks "
            f"{glibc.group(1)}. The prebuilt wheel needs glibc {GLIBC_FLOOR} or newer (RHEL 8, Debian 10, "
            f"Ubuntu 20.04 and later); elsewhere build from source on the host (README, Install). "
            f"(loader said: {text})"
        )
    symbol = _UNDEFINED_SYMBOL.search(text)
    if symbol and symbol.group(1).startswith(("krb5_", "gss_", "pam_")):
        prefix = symbol.group(1).split("_", 1)[0]
        soname = {"pam": "libpam.so.0", "gss": "libgssapi_krb5.so.2"}.get(prefix, "libkrb5.so.3")
        library = _by_soname(soname)
        return (
            f"the {library.soname} on this host lacks {symbol.group(1)}: pamkrb needs {library.what}. "
            f"{_install_hint([library])} (loader said: {text})"
        )
    return None
