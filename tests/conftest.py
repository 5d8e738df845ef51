"""Fixtures that start real components: an MIT KDC realm, Unix users, PAM, JupyterHub.

The building blocks live in ``tools/sandbox/`` (shared with ``make demo``); this
file only ties their lifetimes to pytest scopes. Everything here needs root:
without it the fixtures skip the test with a reason, never pass it silently;
under CI=1 that skip is a failure (tests/ci_skips.py).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ci_skips import (  # noqa: F401  (hooks: under CI=1 a skip fails the test, naming what is missing)
    pytest_make_collect_report,
    pytest_runtest_makereport,
)

import sandbox  # tools/sandbox/, on the path through pytest.ini's `pythonpath`

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

REALM_NAME = "PAMKRB.TEST"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates Unix users, runs PAM for them and installs their credential caches")


def artifact_dir(nodeid: str) -> Path:
    """A per-test directory under test-artifacts/ (gitignored)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def private_realm(name: str, **settings: Any) -> Iterator[sandbox.Realm]:
    """A KDC of its own (``sandbox.Realm``'s ``max_life``, ``max_renewable_life``,
    ``base_dir``...), stopped and removed on exit. Behind a module-scoped
    fixture (even one defined here, which each module gets afresh) it is that
    module's alone: tests that change its principals' policies or count its
    KDC requests see no other module's."""
    require_root()
    realm = sandbox.Realm(name, **settings)
    try:
        realm.start()
        yield realm
    finally:
        realm.close()


@pytest.fixture(scope="session")
def realm() -> Iterator[sandbox.Realm]:
    """A KDC on loopback for the whole session; KRB5_CONFIG points at it.

    KRB5_CONFIG is set in this (test) process too, before any test loads
    libkrb5, so in-process authenticator tests talk to this realm.
    """
    require_root()
    realm = sandbox.Realm(REALM_NAME)
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)
    try:
        realm.start()
        yield realm
    finally:
        realm.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if realm.kdc_log.exists():
            shutil.copyfile(realm.kdc_log, ARTIFACTS / "kdc.log")
        realm.close()
        if saved is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = saved


@pytest.fixture(scope="session")
def wheel() -> Path:
    """The wheel `make wheel` left in dist/ (tests/wheel)."""
    wheels = sorted((REPO / "dist").glob("jupyterhub_pamkrb-*-cp39-abi3-manylinux_*.whl"))
    if not wheels:
        pytest.fail("no wheel in dist/: run `make wheel` first (`make test-wheel` does)")
    return wheels[-1]


@pytest.fixture(scope="session")
def pam_service() -> str:
    """The fast pam_unix service /etc/pam.d/pamkrb-test; its name.

    Left installed after the session: it only runs pam_unix, and removing it
    would pull it from under a concurrent run (a second pytest, `make demo`).
    """
    require_root()
    sandbox.install_pam_test_service()
    return sandbox.PAM_TEST_SERVICE


@contextlib.contextmanager
def unix_user(name_prefix: str) -> Iterator[sandbox.UnixUser]:
    """A fresh Unix user with a random password, removed on exit."""
    require_root()
    user = sandbox.UnixUser.create(name_prefix)
    try:
        yield user
    finally:
        user.remove()


@pytest.fixture
def bare_user() -> Iterator[sandbox.UnixUser]:
    """A fresh Unix user with a random password, no principal or keytab."""
    with unix_user("pkt") as user:
        yield user


@pytest.fixture
def attacker() -> Iterator[sandbox.UnixUser]:
    """Another local user, with a shell but no Kerberos principal: the one
    who plants things."""
    with unix_user("pka") as user:
        yield user


@pytest.fixture
def user(realm: sandbox.Realm, bare_user: sandbox.UnixUser) -> sandbox.UnixUser:
    """A user with principal ``<name>@REALM`` and keytab ``~/<name>.keytab`` (0600)."""
    principal = realm.add_principal(bare_user.name)
    realm.write_keytab(
        principal,
        bare_user.home / f"{bare_user.name}.keytab",
        bare_user.uid,
        bare_user.gid,
    )
    return bare_user


HubFactory = Callable[..., sandbox.Hub]


def _hub_factory(realm: sandbox.Realm, pam_service: str, nodeid: str) -> tuple[HubFactory, list[sandbox.Hub]]:
    started: list[sandbox.Hub] = []

    def start(
        config: dict[str, Any] | None = None,
        *,
        service: str | None = None,
        realm: sandbox.Realm = realm,
        **kwargs: Any,
    ) -> sandbox.Hub:
        settings = {"PAMKerberosAuthenticator.service": service or pam_service}
        settings.update(config or {})
        log = artifact_dir(nodeid) / f"jupyterhub-{len(started)}.log"
        log.unlink(missing_ok=True)
        hub = sandbox.Hub(realm, config=settings, log_path=log, **kwargs)
        started.append(hub)
        hub.start()
        return hub

    return start, started


@pytest.fixture
def hub_factory(realm: sandbox.Realm, pam_service: str, request: pytest.FixtureRequest) -> Iterator[HubFactory]:
    """Start hubs with pamkrb and extra config: ``hub_factory({"Class.trait": v})``.

    Every hub started is stopped (with its proxy and user servers) at teardown;
    logs go to test-artifacts/<test>/.
    """
    start, started = _hub_factory(realm, pam_service, request.node.nodeid)
    try:
        yield start
    finally:
        for hub in started:
            hub.close()


@pytest.fixture(scope="module")
def hub(realm: sandbox.Realm, pam_service: str, request: pytest.FixtureRequest) -> Iterator[sandbox.Hub]:
    """One hub with pamkrb's default configuration, shared by a module."""
    start, started = _hub_factory(realm, pam_service, request.node.nodeid)
    try:
        yield start()
    finally:
        for each in started:
            each.close()


# -- servers "on another host": a private mount namespace ---------------------

TOOLS = REPO / "tools"
NAMESPACED_SPAWNER = "sandbox.namespace.NamespacedSpawner"


@pytest.fixture(scope="session")
def host_dir() -> Iterator[Path]:
    """A root-owned 0755 directory outside /tmp, which a namespaced server
    (fresh /tmp) still sees: for its krb5.conf and the keytab directory."""
    require_root()
    # /var/tmp, not /tmp: the namespace replaces only /tmp.
    path = Path(tempfile.mkdtemp(prefix="pamkrb-host-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def namespaced_realm(host_dir: Path) -> Iterator[sandbox.Realm]:
    """A KDC like ``realm``, but with its krb5.conf outside /tmp.

    The session ``realm`` lives in a ``mkdtemp`` directory under /tmp, which a
    namespaced server cannot see, so its libkrb5 would find no KRB5_CONFIG.
    A realm elsewhere needs no hole in the namespace, and a server on another
    host would have its own krb5.conf anyway. Not exported to this process's
    KRB5_CONFIG: tests use ``namespaced_realm.client_env()``.
    """
    with private_realm("NS.TEST", base_dir=host_dir) as realm:
        yield realm


@pytest.fixture(scope="session")
def keytab_dir(host_dir: Path) -> Path:
    """Where ``namespaced_user`` keytabs live: root-owned, 0755, so each user
    can read their own 0600 keytab on the host; hidden in namespaced servers.

    A directory of its own rather than ``~/<name>.keytab``: hiding the home
    would take the server's working directory and runtime files with it, and
    hiding single files needs a bind mount per user and a file that already
    exists at spawn time. An empty tmpfs over one directory hides every
    keytab, including ones written after the server started.
    """
    path = host_dir / "keytabs"
    path.mkdir(mode=0o755)
    return path


@pytest.fixture
def namespaced_user(
    namespaced_realm: sandbox.Realm, keytab_dir: Path, bare_user: sandbox.UnixUser
) -> Iterator[sandbox.UnixUser]:
    """A user of ``namespaced_realm`` with keytab ``<keytab_dir>/<name>.keytab`` (theirs, 0600)."""
    principal = namespaced_realm.add_principal(bare_user.name)
    keytab = keytab_dir / f"{bare_user.name}.keytab"
    namespaced_realm.write_keytab(principal, keytab, bare_user.uid, bare_user.gid)
    try:
        yield bare_user
    finally:
        keytab.unlink(missing_ok=True)


BROKER_LIFETIME = 90


@pytest.fixture(scope="session")
def broker_realm(host_dir: Path) -> Iterator[sandbox.Realm]:
    """90-second, renewable tickets; krb5.conf outside /tmp."""
    with private_realm("BROKER.TEST", max_life=BROKER_LIFETIME, base_dir=host_dir) as realm:
        yield realm


@pytest.fixture
def broker_user(broker_realm: sandbox.Realm, keytab_dir: Path, bare_user: sandbox.UnixUser) -> Iterator[Any]:
    """A user whose keytab only root can read: /…/keytabs/<name>.keytab, root, 0600."""
    principal = broker_realm.add_principal(bare_user.name)
    keytab = keytab_dir / f"{bare_user.name}.keytab"
    broker_realm.write_keytab(principal, keytab, 0, 0)
    try:
        yield bare_user
    finally:
        keytab.unlink(missing_ok=True)


@pytest.fixture
def namespaced_hub_factory(
    namespaced_realm: sandbox.Realm, keytab_dir: Path, pam_service: str, request: pytest.FixtureRequest
) -> Iterator[HubFactory]:
    """Like ``hub_factory``, but every server runs "on another host":
    ``NamespacedSpawner`` (tools/sandbox/namespace.py) with a fresh /tmp and
    ``keytab_dir`` hidden, against ``namespaced_realm``, with keytabs read
    from ``keytab_dir``. ``hidden_paths=[...]`` hides more directories.
    """
    start, started = _hub_factory(namespaced_realm, pam_service, request.node.nodeid)

    def start_namespaced(
        config: dict[str, Any] | None = None,
        *,
        hidden_paths: list[str | Path] | tuple[str | Path, ...] = (),
        **kwargs: Any,
    ) -> sandbox.Hub:
        realm = kwargs.get("realm", namespaced_realm)
        if Path("/tmp") in realm.krb5_conf.parents:
            raise ValueError(
                f"{realm.krb5_conf} is under /tmp, which namespaced servers cannot see: "
                "create the realm with base_dir outside /tmp (see namespaced_realm)"
            )
        settings = {
            "JupyterHub.spawner_class": NAMESPACED_SPAWNER,
            "NamespacedSpawner.hidden_paths": [str(keytab_dir), *map(str, hidden_paths)],
            "PAMKerberosAuthenticator.keytab_template": f"{keytab_dir}/{{username}}.keytab",
        }
        settings.update(config or {})
        return start(settings, import_paths=[TOOLS], **kwargs)

    try:
        yield start_namespaced
    finally:
        for hub in started:
            hub.close()


# -- shared assertions --------------------------------------------------------


def assert_user_owned_cache(user: sandbox.UnixUser) -> None:
    """The cache is a regular file (not a link) of the user's, mode 0600."""
    path = user.default_ccache
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid)
    assert stat.S_IMODE(st.st_mode) == 0o600


def assert_user_cache(realm: sandbox.Realm, user: sandbox.UnixUser, principal: str | None = None) -> None:
    """The cache is the user's, 0600, and klist shows a live TGT of ``principal``."""
    assert_user_owned_cache(user)
    info = realm.klist(user.default_ccache)
    assert info.principal == (principal or f"{user.name}@{realm.name}")
    assert info.expires > datetime.datetime.now()


def assert_no_cache(user: sandbox.UnixUser) -> None:
    assert not os.path.lexists(user.default_ccache)


# -- a realm whose tickets live 90 seconds ----------------------------------------

SHORT_LIFETIME = 90


@pytest.fixture(scope="module")
def short_realm() -> Iterator[sandbox.Realm]:
    """A second KDC whose tickets live 90 s, so expiry and renewal really
    happen during a test."""
    with private_realm("SHORT.TEST", max_life=SHORT_LIFETIME) as realm:
        yield realm


@pytest.fixture
def short_user(short_realm: sandbox.Realm) -> Iterator[sandbox.UnixUser]:
    """A user with principal and keytab in the short-lived realm."""
    with sandbox.provisioned_user(short_realm) as user:
        yield user


PASSWORD_LIFETIME = 60
PASSWORD_RENEWABLE = 180


@pytest.fixture(scope="module")
def pw_realm() -> Iterator[sandbox.Realm]:
    """60-second tickets renewable for 180 s, as ENVIRONMENT.md describes, for
    password principals (``password_user``). Module-scoped: each module that
    uses it gets a KDC of its own, so one module's ``modprinc`` never reaches
    another's tests."""
    with private_realm("PASSWORD.TEST", max_life=PASSWORD_LIFETIME, max_renewable_life=PASSWORD_RENEWABLE) as realm:
        yield realm


def password_user(realm: sandbox.Realm, user: sandbox.UnixUser, kerberos_password: str | None = None) -> str:
    """Give ``user`` a password principal (their PAM password unless told
    otherwise), and no keytab; the principal's name."""
    return realm.add_password_principal(user.name, kerberos_password or user.password)


# -- the login form, as a browser submits it --------------------------------------


def form_login(hub: sandbox.Hub, username: str, password: str, *, timeout: float = 60) -> Any:
    """POST the hub's login form once, not following the redirect.

    Unlike ``Hub.login`` this does not go on to /hub/spawn, so nothing is
    spawned and the answer arrives as soon as the login itself is decided.
    Returns the response; ``response.session`` holds the cookies. A login that
    got in is a 302 away from /hub/login with the hub's login cookie set.
    """
    session = hub.session()
    session.get(f"{hub.url}/hub/login", timeout=10).raise_for_status()
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=timeout,
    )
    response.session = session
    return response


def logged_in(response: Any) -> bool:
    """Whether a ``form_login`` response let the user in."""
    location = response.headers.get("Location", "")
    has_cookie = any(c.name.endswith("jupyterhub-hub-login") for c in response.session.cookies)
    return response.status_code == 302 and "/hub/login" not in location and has_cookie
