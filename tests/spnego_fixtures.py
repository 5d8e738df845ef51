"""The single sign-on tests' fixtures (tests/test_spnego.py, tests/test_spnego_browser.py);
their helpers are in spnego_common.py.

A test module uses it with ``pytest_plugins = ["spnego_fixtures"]``, as the AD
tests use samba_fixtures.py.

- ``service_keytab``: HTTP/127.0.0.1's keys (``SERVICE``) in a root-only 0600
  keytab, ok_as_delegate set at the KDC.
- ``client_cache``: the desktop's cache, a forwardable TGT of ``user``, held by
  root for the client (curl or Chromium).
- ``sso``: those two with the session's realm, the user and ``hub_factory``,
  as one :class:`SSO`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from spnego_common import SERVICE, SSO, desktop_kinit, principal_exists

import sandbox
from conftest import HubFactory


@pytest.fixture(scope="module")
def service_keytab(realm: sandbox.Realm) -> Iterator[Path]:
    """HTTP/127.0.0.1's keys in a root-only 0600 keytab, ok_as_delegate set."""
    directory = Path(tempfile.mkdtemp(prefix="pamkrb-spnego-"))
    directory.chmod(0o700)
    try:
        principal = realm.qualify(SERVICE)
        if not principal_exists(realm, principal):
            realm.add_principal(SERVICE)
        realm.kadmin(f"modprinc +ok_as_delegate {principal}")
        yield realm.write_keytab(principal, directory / "http.keytab", 0, 0, 0o600)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client_cache(realm: sandbox.Realm, user: sandbox.UnixUser) -> Iterator[Path]:
    """The desktop's cache: a forwardable TGT of the user, held by root for the client."""
    directory = Path(tempfile.mkdtemp(prefix="pamkrb-desktop-"))
    directory.chmod(0o700)
    cache = directory / "krb5cc"
    try:
        desktop_kinit(realm, user, cache)
        yield cache
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def sso(
    hub_factory: HubFactory, realm: sandbox.Realm, service_keytab: Path, user: sandbox.UnixUser, client_cache: Path
) -> SSO:
    return SSO(hub_factory, realm, service_keytab, user, client_cache)
