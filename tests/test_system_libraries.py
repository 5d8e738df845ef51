"""What `import pamkrb` says when the host lacks a system library.

The wording is checked here against the dynamic loader's own messages; the
Debian 11 test (tests/wheel) removes real libraries and imports for real.
"""

from __future__ import annotations

import pytest

from pamkrb import _system_libraries as libraries

KRB5, K5CRYPTO, PAM, GSSAPI = libraries.LIBRARIES


def loader_error(text: str) -> ImportError:
    return ImportError(text)


@pytest.mark.parametrize("library", libraries.LIBRARIES, ids=lambda library: library.soname)
def test_a_missing_library_is_named_with_its_packages(library: libraries.SystemLibrary) -> None:
    error = loader_error(f"{library.soname}: cannot open shared object file: No such file or directory")
    message = libraries.explain(error, missing=[])
    assert message is not None
    assert f"{library.soname} ({library.what}) is not installed" in message
    assert f"apt install {library.debian}`" in message
    assert f"dnf install {library.rhel}`" in message
    assert f"zypper install {library.suse}`" in message
    assert "never bundles" in message


def test_every_missing_library_is_named_not_only_the_loaders_first() -> None:
    error = loader_error("libkrb5.so.3: cannot open shared object file: No such file or directory")
    message = libraries.explain(error, missing=[KRB5, PAM])
    assert "libkrb5.so.3 (MIT Kerberos 1.17 or newer), libpam.so.0 (Linux-PAM) are not installed" in message
    assert "apt install libkrb5-3 libpam0g`" in message
    # One package per distribution, even when it provides two libraries.
    assert "dnf install krb5-libs pam`" in message


def test_an_old_krb5_names_the_missing_function_and_the_version_needed() -> None:
    error = loader_error("/x/_native.abi3.so: undefined symbol: krb5_get_init_creds_opt_set_out_ccache")
    message = libraries.explain(error, missing=[])
    assert message.startswith("the libkrb5.so.3 on this host lacks krb5_get_init_creds_opt_set_out_ccache")
    assert "MIT Kerberos 1.17 or newer" in message


def test_a_missing_gss_function_names_libgssapi() -> None:
    error = loader_error("/x/_native.abi3.so: undefined symbol: gss_acquire_cred_from")
    message = libraries.explain(error, missing=[])
    assert message.startswith("the libgssapi_krb5.so.2 on this host lacks gss_acquire_cred_from")
    assert "apt install libgssapi-krb5-2`" in message


def test_an_old_glibc_names_the_floor() -> None:
    error = loader_error("/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by _native)")
    message = libraries.explain(error, missing=[])
    assert "this host's, which lacks GLIBC_2.34" in message
    assert "The prebuilt wheel needs glibc 2.28 or newer" in message


def test_an_error_that_is_not_the_hosts_is_left_alone() -> None:
    assert libraries.explain(loader_error("No module named 'pamkrb._native'"), missing=[]) is None
    assert libraries.explain(loader_error("undefined symbol: PyInit_x"), missing=[]) is None


def test_this_host_has_every_library() -> None:
    assert libraries.missing_libraries() == []
