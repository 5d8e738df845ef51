"""The ticket lifecycle: every rule the hub, the server extension, the status
API and ``pamkrb doctor`` must agree on, defined once.

- who a user is for Kerberos (:func:`resolve_user`: the password-database
  entry plus the templates);
- the settings both sides share, their defaults, and how the hub hands them
  to the user's server (:class:`TicketSettings`, ``to_env`` / ``from_env``);
- when a ticket is fresh (:func:`is_fresh`), what state it is in
  (:class:`TicketState`, :func:`ticket_state`), the fields of the status
  (:data:`STATUS_FIELDS`) and when to look again (:func:`next_check_delay`);
- how a Kerberos attempt runs (:class:`SingleFlight`): one per user at a
  time, on its own thread, with a deadline that the native call also honours,
  so an attempt its caller gave up on never installs anything.

It imports neither jupyterhub nor jupyter_server: both sides import it.
"""

from __future__ import annotations

import asyncio
import enum
import pwd
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _native, usernames
from ._native import KeytabInfo, TicketInfo
from .exceptions import KerberosError, NativePanic

T = TypeVar("T")

# -- defaults, each defined here only -----------------------------------------

DEFAULT_REFRESH_MARGIN = 3600
"""Seconds: a ticket with this much or less left is renewed."""

DEFAULT_KDC_TIMEOUT = 15.0
"""Seconds to wait for a Kerberos attempt; libkrb5 alone tries ~30 s."""

DEFAULT_REFRESH_INTERVAL = 300
"""Seconds: the longest a server goes between two looks at its ticket."""

MIN_CHECK_DELAY = 5.0
"""Seconds: the soonest the server looks again, so a ticket that cannot be
renewed (KDC down, keytab gone) is not retried in a tight loop."""

MAX_BACKOFF = 300.0
"""Seconds: the longest wait between retries after failures."""

DEFAULT_PASSWORD_RENEWABLE_LIFETIME = 7 * 24 * 3600
"""Seconds of renewable life asked for a ticket made from a password; the
KDC may grant less. After it the user signs in again."""

DEFAULT_WARN_BEFORE = 3600
"""Seconds before a password ticket's renewable life ends that the status
bar asks the user to sign in again."""

DEFAULT_PRINCIPAL_TEMPLATE = "{user}@{realm}"
DEFAULT_KEYTAB_TEMPLATE = "/home/{username}/{username}.keytab"
DEFAULT_CCACHE_TEMPLATE = "/tmp/krb5cc_{uid}"
DEFAULT_FALLBACK_CCACHE_DIR = "/run/pamkrb"


# -- who the user is ------------------------------------------------------------


@dataclass(frozen=True)
class UserPaths:
    """Who a user is for Kerberos and where their material lives (principal,
    keytab, cache), from the password database and the templates. The same
    object on the hub and in ``pamkrb doctor``."""

    username: str
    uid: int
    gid: int
    home: str
    principal: str
    keytab: str
    ccache: str


def resolve_user(
    username: str,
    *,
    principal_template: str,
    keytab_template: str,
    ccache_template: str,
    realm: str,
) -> UserPaths:
    """Fill in the templates from the user's password-database entry (never
    from what was typed into a login form). ``username`` is a JupyterHub
    username or any name NSS resolves (``adalice@adpamkrb`` for the domain
    account ``ADPAMKRB\\adalice``). Raises KeyError for an unknown user,
    InvalidUsername for a name pamkrb refuses and TemplateError for a
    template that does not expand."""
    entry = pwd.getpwnam(username)
    # The pieces by the one naming rule (pamkrb.usernames); the account
    # itself (uid, home) is NSS's entry, never the pieces.
    parts = usernames.split(entry.pw_name)
    fields: dict[str, Any] = {
        "username": parts.qualified,
        "user": parts.user,
        "domain": parts.domain,
        "uid": entry.pw_uid,
        "gid": entry.pw_gid,
        "home": entry.pw_dir,
        "realm": realm,
    }
    principal = _native.expand_template(principal_template, **fields)
    if "@" not in principal and realm:
        # What libkrb5 makes of a principal without a realm; written out so
        # that comparing it with the principal in a cache means something.
        principal = f"{principal}@{realm}"
    return UserPaths(
        username=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        home=entry.pw_dir,
        principal=principal,
        keytab=_native.expand_template(keytab_template, path=True, **fields),
        ccache=_native.expand_template(ccache_template, path=True, **fields),
    )


def fallback_ccache(directory: str, uid: int) -> str:
    """Where a user's cache goes when the templated path cannot be replaced
    (a plant such as another user's FUSE mount): ``<directory>/<uid>/krb5cc``,
    in a directory of the user's own inside a root-owned one."""
    return f"{directory.rstrip('/')}/{uid}/krb5cc"


def owner_name(uid: int, *, with_uid: bool = True) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
    return f"{name} (uid {uid})" if with_uid else name


@dataclass(frozen=True)
class Problem:
    """One finding about a user's keytab or cache: ``fail`` makes the
    hub's ticket unsafe or impossible, ``warn`` is worth an admin's look."""

    what: str  # "owner", "mode", "root-owned", "user-readable" or "no-key"
    severity: str  # "fail" or "warn"
    detail: str
    fix: str = ""


def keytab_problems(keytab: KeytabInfo, user: UserPaths, *, broker: bool = False) -> list[Problem]:
    """What is wrong with a keytab (a native KeytabInfo) for this user: the
    rules the hub logs and ``pamkrb doctor`` reports. With the ticket broker
    the keytab should be root's alone; without it the user's server needs
    to read it."""
    found = []
    mode = keytab.mode & 0o7777
    if keytab.owner_uid not in (user.uid, 0):
        found.append(
            Problem(
                "owner",
                "fail",
                f"owned by {owner_name(keytab.owner_uid)}, not by {user.username} or root: "
                "whoever owns it can change whose key it holds",
                f"chown {user.username}: {user.keytab}",
            )
        )
    if mode & 0o077:
        found.append(
            Problem(
                "mode",
                "fail",
                f"mode {mode:04o}: group or others can read or change it, and act as {user.principal}",
                f"chmod 600 {user.keytab}",
            )
        )
    elif broker and keytab.owner_uid == user.uid:
        found.append(
            Problem(
                "user-readable",
                "warn",
                f"readable by {user.username} while ticket_broker is on: any code the user runs (a pip "
                "package, a shared notebook) can read this long-term key, and the servers do not need it",
                f"chown root: {user.keytab}; chmod 600 {user.keytab} (or move it, e.g. to "
                f"/etc/security/keytabs/{user.username}.keytab, and set keytab_template)",
            )
        )
    elif keytab.owner_uid == 0 and user.uid != 0 and not broker:
        found.append(
            Problem(
                "root-owned",
                "warn",
                f"owned by root, mode {mode:04o}: the hub can use it, the user's server cannot renew from it",
                f"chown {user.username}: {user.keytab}",
            )
        )
    if not keytab.has_key_for(user.principal):
        principals = sorted({entry.principal for entry in keytab.entries})
        found.append(
            Problem(
                "no-key",
                "fail",
                f"has no key for {user.principal} (holds: {', '.join(principals) or 'no keys'})",
                f"export the right key (kadmin -q 'ktadd -k {user.keytab} -norandkey {user.principal}') "
                "or correct principal_template",
            )
        )
    return found


# -- the settings both sides share, and the environment that carries them ------------


ENV_PRINCIPAL = "PAMKRB_PRINCIPAL"
ENV_KEYTAB = "PAMKRB_KEYTAB"
ENV_CCACHE = "PAMKRB_CCACHE"
ENV_REFRESH_MARGIN = "PAMKRB_REFRESH_MARGIN"
ENV_REFRESH_INTERVAL = "PAMKRB_REFRESH_INTERVAL"
ENV_KDC_TIMEOUT = "PAMKRB_KDC_TIMEOUT"
ENV_TICKET_LIFETIME = "PAMKRB_TICKET_LIFETIME"
ENV_RENEWABLE_LIFETIME = "PAMKRB_RENEWABLE_LIFETIME"
ENV_TICKET_BROKER = "PAMKRB_TICKET_BROKER"
ENV_CREDENTIAL_SOURCE = "PAMKRB_CREDENTIAL_SOURCE"
ENV_WARN_BEFORE = "PAMKRB_WARN_BEFORE"
ENV_RETAIN_AFTER_STOP = "PAMKRB_RETAIN_TICKET_AFTER_STOP"
ENV_PASSWORD_EXPIRES_AT = "PAMKRB_PASSWORD_EXPIRES_AT"
ENV_SIGN_IN = "PAMKRB_SIGN_IN"
ENV_KRB5CCNAME = "KRB5CCNAME"
# ENV_SIGN_IN's one value: a fresh ticket comes by reloading the hub's
# login page (single sign-on), the sign-in dialog being the fallback.
SIGN_IN_RELOAD = "reload"
ENV_NAMES = frozenset(
    {
        ENV_KRB5CCNAME,
        ENV_PRINCIPAL,
        ENV_KEYTAB,
        ENV_CCACHE,
        ENV_REFRESH_MARGIN,
        ENV_REFRESH_INTERVAL,
        ENV_KDC_TIMEOUT,
        ENV_TICKET_LIFETIME,
        ENV_RENEWABLE_LIFETIME,
        ENV_TICKET_BROKER,
        ENV_CREDENTIAL_SOURCE,
        ENV_WARN_BEFORE,
        ENV_RETAIN_AFTER_STOP,
        ENV_PASSWORD_EXPIRES_AT,
        ENV_SIGN_IN,
    }
)
"""Everything the hub puts in a server's environment for pamkrb: per user,
so a kernelspec must never pin any of them."""


@dataclass(frozen=True)
class TicketSettings:
    """What renewing one user's ticket needs, on whichever side does it."""

    principal: str
    keytab: str
    ccache: str
    refresh_margin: int = DEFAULT_REFRESH_MARGIN
    refresh_interval: int = DEFAULT_REFRESH_INTERVAL
    kdc_timeout: float = DEFAULT_KDC_TIMEOUT
    ticket_lifetime: int | None = None
    # Asked for with every new ticket, so that the next renewals can be TGS
    # requests (None: krb5.conf and the KDC decide).
    renewable_lifetime: int | None = None
    # True: the hub renews and the server fetches its ticket from the hub's
    # API (the ticket broker); False: the server renews from the keytab.
    broker: bool = False
    # Where new tickets come from: SOURCE_KEYTAB, or SOURCE_PASSWORD (then
    # only TGS renewals until renew_until, and the user signs in again).
    source: str = "keytab"
    warn_before: int = DEFAULT_WARN_BEFORE
    # False: a server fed by the broker removes its cache when it stops (the
    # hub cannot reach that copy on another host); True keeps it, as the
    # hub's retain_ticket_after_stop does for the hub's own copy.
    retain_after_stop: bool = False
    # When the user's password expires (seconds since the epoch), as the KDC
    # reported it at their last password login; None: not reported.
    password_expires_at: int | None = None
    # True: the ticket came from single sign-on (a delegated TGT), and a
    # reload of the hub's login page with ?negotiate=1 brings a fresh one;
    # the status says so when a sign-in is needed.
    sign_in_by_reload: bool = False

    @property
    def renewed_by(self) -> str:
        return RENEWED_BY_HUB if self.broker else RENEWED_BY_SERVER

    def to_env(self) -> dict[str, str]:
        """The server's environment: KRB5CCNAME for every Kerberos client in
        the server and its kernels, PAMKRB_* for the server extension. With
        the broker the keytab's path is not passed: the server never needs it."""
        env = {
            ENV_KRB5CCNAME: f"FILE:{self.ccache}",
            ENV_PRINCIPAL: self.principal,
            ENV_CCACHE: self.ccache,
            ENV_REFRESH_MARGIN: str(self.refresh_margin),
            ENV_REFRESH_INTERVAL: str(self.refresh_interval),
            ENV_KDC_TIMEOUT: f"{self.kdc_timeout:g}",
        }
        if self.ticket_lifetime is not None:
            env[ENV_TICKET_LIFETIME] = str(self.ticket_lifetime)
        if self.renewable_lifetime is not None:
            env[ENV_RENEWABLE_LIFETIME] = str(self.renewable_lifetime)
        env[ENV_CREDENTIAL_SOURCE] = self.source
        env[ENV_WARN_BEFORE] = str(self.warn_before)
        if self.password_expires_at is not None:
            env[ENV_PASSWORD_EXPIRES_AT] = str(self.password_expires_at)
        if self.sign_in_by_reload:
            env[ENV_SIGN_IN] = SIGN_IN_RELOAD
        if self.broker:
            env[ENV_TICKET_BROKER] = "1"
            if self.retain_after_stop:
                env[ENV_RETAIN_AFTER_STOP] = "1"
        elif self.source == SOURCE_KEYTAB:
            env[ENV_KEYTAB] = self.keytab
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> tuple[TicketSettings | None, list[str]]:
        """The settings the hub handed over, with ``overrides`` (the server
        extension's own traits, None meaning "not set") on top. Returns
        ``(settings, [])``, or ``(None, missing)`` naming what is missing.
        A malformed number falls back to the default: a typo in one variable
        must not stop the server."""
        given = {k: v for k, v in overrides.items() if v not in (None, "")}
        values: dict[str, Any] = {
            "principal": environ.get(ENV_PRINCIPAL, ""),
            "keytab": environ.get(ENV_KEYTAB, ""),
            "ccache": environ.get(ENV_CCACHE, "") or _file_ccache(environ.get(ENV_KRB5CCNAME, "")),
            "refresh_margin": _number(environ.get(ENV_REFRESH_MARGIN), int, DEFAULT_REFRESH_MARGIN),
            "refresh_interval": _number(environ.get(ENV_REFRESH_INTERVAL), int, DEFAULT_REFRESH_INTERVAL),
            "kdc_timeout": _number(environ.get(ENV_KDC_TIMEOUT), float, DEFAULT_KDC_TIMEOUT),
            "ticket_lifetime": _number(environ.get(ENV_TICKET_LIFETIME), int, None),
            "renewable_lifetime": _number(environ.get(ENV_RENEWABLE_LIFETIME), int, None),
            "broker": environ.get(ENV_TICKET_BROKER, "") == "1",
            "source": environ.get(ENV_CREDENTIAL_SOURCE, "") or SOURCE_KEYTAB,
            "warn_before": _number(environ.get(ENV_WARN_BEFORE), int, DEFAULT_WARN_BEFORE),
            "retain_after_stop": environ.get(ENV_RETAIN_AFTER_STOP, "") == "1",
            "password_expires_at": _number(environ.get(ENV_PASSWORD_EXPIRES_AT), int, None),
            "sign_in_by_reload": environ.get(ENV_SIGN_IN, "") == SIGN_IN_RELOAD,
        }
        values.update(given)
        if values["source"] not in SOURCES:
            values["source"] = SOURCE_KEYTAB
        keytab_needed = not values["broker"] and values["source"] == SOURCE_KEYTAB
        needed = ("principal", "keytab", "ccache") if keytab_needed else ("principal", "ccache")
        missing = [name for name in needed if not values[name]]
        if missing:
            return None, missing
        return cls(**values), []

    def problems(self, lifetime: float | None = None) -> list[str]:
        """See :func:`settings_problems`; ``lifetime`` is the granted one
        when known, else the requested one."""
        lifetime = lifetime if lifetime is not None else self.ticket_lifetime
        return settings_problems(self.refresh_margin, self.refresh_interval, lifetime)


def settings_problems(refresh_margin: float, refresh_interval: float, lifetime: float | None) -> list[str]:
    """Settings under which a ticket would be renewed on every look, or
    looked at less often than the margin. The timer follows the ticket
    either way, so these are worth one log line, not a refusal."""
    found = []
    if lifetime is not None and refresh_margin >= lifetime:
        found.append(
            f"refresh_margin ({refresh_margin} s) is not below the ticket lifetime ({lifetime:g} s): "
            "every check renews the ticket"
        )
    if refresh_interval > refresh_margin:
        found.append(
            f"refresh_interval ({refresh_interval} s) exceeds refresh_margin ({refresh_margin} s): "
            "checks are scheduled from the ticket's expiry instead"
        )
    return found


def _file_ccache(name: str) -> str:
    if name.startswith("FILE:"):
        return name[len("FILE:") :]
    return name if name.startswith("/") else ""


def _number(text: str | None, kind: type, fallback: Any) -> Any:
    if text is None or not text.strip():
        return fallback
    try:
        return kind(text)
    except ValueError:
        return fallback


# -- freshness and state ---------------------------------------------------------


class TicketState(str, enum.Enum):
    """What the status API, the status page and the status bar report."""

    VALID = "valid"
    EXPIRING = "expiring"  # inside the margin, not yet renewed
    EXPIRED = "expired"
    MISSING = "missing"  # no cache, or one we refuse (wrong owner, mode, principal)
    ERROR = "error"  # the last renewal failed and the ticket needs one
    DISABLED = "disabled"  # the server has no Kerberos configuration
    # expired or past renew_until, and no keytab can renew it: the user must sign in again
    LOGIN_REQUIRED = "login_required"


RENEWED_BY_SERVER, RENEWED_BY_HUB = "server", "hub"
RENEWERS = (RENEWED_BY_SERVER, RENEWED_BY_HUB)
"""Values of the status field ``renewed_by``: who keeps the ticket fresh."""

SOURCE_KEYTAB, SOURCE_PASSWORD = "keytab", "password"
SOURCES = (SOURCE_KEYTAB, SOURCE_PASSWORD)
"""Values of the status field ``source``: where a new ticket comes from."""

STATUS_FIELDS = (
    "state",
    "principal",
    "ccache",
    "expires_at",
    "seconds_left",
    "renew_until",
    "renewed_by",
    "source",
    "login_required_at",  # when a sign-in becomes necessary (renew_until); null while a keytab renews
    "warn_before",  # seconds before login_required_at to warn the user; null for no warning
    "password_expires_at",  # when the user's password expires, as the KDC reported it; null if not
    "last_refresh",
    "last_error",
    "refresh_margin",
    "renewals",
    "triggers",
)
"""The keys of every status the server reports, in order. The labextension
reads them; tests/test_status_contract.py fails when its copy drifts."""


def is_fresh(info: TicketInfo | None, principal: str, margin: float, now: float) -> bool:
    """The one freshness rule: a ticket for the expected principal (compared
    by the native core, TicketInfo.is_for) with more than ``margin`` seconds
    left."""
    return info is not None and info.is_for(principal) and info.expires_at - now > margin


def ticket_state(
    info: TicketInfo | None,
    principal: str,
    margin: float,
    now: float,
    last_error: str | None,
    *,
    password: bool = False,
) -> TicketState:
    """``password``: a ticket nothing but the user can replace (no keytab):
    gone or expired, it needs a sign-in, not a retry."""
    if password and (info is None or not info.is_for(principal) or info.expires_at <= now):
        return TicketState.LOGIN_REQUIRED
    if info is None or not info.is_for(principal):
        return TicketState.ERROR if last_error else TicketState.MISSING
    if is_fresh(info, principal, margin, now):
        return TicketState.VALID
    if last_error:
        return TicketState.ERROR
    if info.expires_at <= now:
        return TicketState.EXPIRED
    return TicketState.EXPIRING


def next_check_delay(
    info: TicketInfo | None, margin: float, interval: float, now: float, rng: random.Random | None = None
) -> float:
    """Seconds until the ticket is next looked at: when it enters the margin
    (a little early, so many servers do not renew at the same instant), and
    never later than ``interval`` nor sooner than MIN_CHECK_DELAY."""
    limit = max(float(interval), MIN_CHECK_DELAY) if interval > 0 else float("inf")
    if info is None:
        return max(min(limit, 60.0), MIN_CHECK_DELAY)
    due = info.expires_at - margin - now
    jitter = min(30.0, max(0.0, due) * 0.05) * (rng or random).random()
    return max(MIN_CHECK_DELAY, min(limit, due - jitter))


def failure_backoff(failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before trying again after ``failures`` failures in a
    row: doubling from MIN_CHECK_DELAY up to MAX_BACKOFF, with jitter, so a
    broken keytab or a KDC outage is not hammered (KDC lockout policies)."""
    if failures <= 0:
        return 0.0
    base = MIN_CHECK_DELAY * 2.0 ** min(failures - 1, 16)
    return min(MAX_BACKOFF, base * (0.8 + 0.4 * (rng or random).random()))


def iso_time(epoch: float | None) -> str | None:
    """UTC ISO 8601, the one time format of the status API."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def local_time(epoch: float) -> str:
    """Local time for people: log lines and doctor's report."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def status(
    state: TicketState,
    *,
    info: TicketInfo | None = None,
    principal: str | None = None,
    ccache: str | None = None,
    now: float,
    refresh_margin: int | None = None,
    last_refresh: float | None = None,
    last_error: str | None = None,
    renewals: int = 0,
    triggers: Mapping[str, int] | None = None,
    renewed_by: str | None = None,
    source: str | None = None,
    login_required_at: float | None = None,
    warn_before: int | None = None,
    password_expires_at: float | None = None,
) -> dict[str, Any]:
    """A status in the shape of STATUS_FIELDS."""
    result = {
        "state": state.value,
        "principal": info.principal if info is not None else principal,
        "ccache": ccache,
        "expires_at": iso_time(info.expires_at) if info is not None else None,
        "seconds_left": max(0, int(info.expires_at - now)) if info is not None else None,
        "renew_until": iso_time(info.renew_until) if info is not None and info.renew_until else None,
        "renewed_by": renewed_by,
        "source": source,
        "login_required_at": iso_time(login_required_at),
        "warn_before": warn_before,
        "password_expires_at": iso_time(password_expires_at),
        "last_refresh": iso_time(last_refresh),
        "last_error": last_error,
        "refresh_margin": refresh_margin,
        "renewals": renewals,
        "triggers": dict(triggers or {}),
    }
    assert tuple(result) == STATUS_FIELDS
    return result


def disabled_status(reason: str) -> dict[str, Any]:
    return status(TicketState.DISABLED, now=time.time(), last_error=reason)


# -- running a Kerberos attempt ------------------------------------------------------


def contain_panic(error: BaseException) -> BaseException:
    """What a native call raised, fit to hand to asyncio callers: a Rust
    panic (pyo3's PanicException, a BaseException) becomes NativePanic, an
    ordinary error every ``except`` of ticket errors handles. Left as it is,
    it would end a renewal loop silently, or escape a task and stop the
    event loop."""
    if isinstance(error, (Exception, asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
        return error
    return NativePanic(f"internal error in pamkrb's native code ({type(error).__name__}): {error}")


def call_native(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, with a panic raised as NativePanic; for
    native calls made on an executor rather than through SingleFlight."""
    try:
        return function(*args, **kwargs)
    except BaseException as e:
        contained = contain_panic(e)
        if contained is e:
            raise
        raise contained from None


class AttemptTimedOut(KerberosError):
    """The attempt outlived its deadline; it installs nothing when it ends."""


class SingleFlight:
    """At most one Kerberos attempt per key (user) at a time.

    Every caller for a key that has an attempt running shares it, including
    a caller that arrives after an earlier one gave up waiting: a silent KDC
    costs one stuck thread per user, never one per login or save. Each
    attempt runs on a thread of its own, so one user's hung attempt (a keytab
    on a dead mount, a KDC that never answers) never holds a slot another
    user needs. The attempt gets the absolute deadline (``time.monotonic()``
    clock) of its first caller and passes it to the native call, which
    installs nothing once it has passed: no caller is told "failed" while a
    cache still appears later.
    """

    def __init__(self, name: str = "pamkrb-kerberos"):
        self._name = name
        self._running: dict[str, asyncio.Future[Any]] = {}

    def running(self, key: str) -> bool:
        return key in self._running

    def _current(self, key: str) -> asyncio.Future[Any] | None:
        future = self._running.get(key)
        if future is not None and future.get_loop() is not asyncio.get_running_loop():
            # Started under an event loop that is gone (a CLI or a test that
            # ran asyncio.run before); its thread will end on its own.
            return None
        return future

    async def run(
        self,
        key: str,
        attempt: Callable[[float], T],
        timeout: float,
        what: str = "a ticket",
        *,
        exclusive: bool = False,
    ) -> T:
        """``attempt(deadline)`` on its own thread, or the one already running
        for ``key``; waits at most ``timeout`` seconds in all.

        ``exclusive``: never share a running attempt; wait for it to end
        (whatever its outcome), then run this one, which later callers share.
        For attempts that carry something the running one lacks (a password)
        or that must not overlap one (destroying the cache)."""
        deadline = time.monotonic() + timeout
        future = self._current(key)
        while exclusive and future is not None:
            try:
                await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise self._timed_out(timeout, what) from None
            except Exception:  # the earlier attempt's failure is its callers' business
                pass
            future = self._current(key)
        if future is None:
            future = self._start(key, attempt, deadline)
        try:
            # shield: a caller that gives up (or is cancelled) must not cancel
            # the attempt others share.
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise self._timed_out(timeout, what) from None

    @staticmethod
    def _timed_out(timeout: float, what: str) -> AttemptTimedOut:
        return AttemptTimedOut(
            f"no {what} within {timeout:g} s (kdc_timeout): the KDC did not answer; is it running and reachable?"
        )

    def _start(self, key: str, attempt: Callable[[float], T], deadline: float) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._running[key] = future

        def settle(result: Any, error: BaseException | None) -> None:
            if self._running.get(key) is future:
                del self._running[key]
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def body() -> None:
            try:
                result, error = attempt(deadline), None
            except BaseException as e:  # handed to the awaiting callers
                result, error = None, contain_panic(e)
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                # The loop closed while the KDC was silent: nobody waits.
                if self._running.get(key) is future:
                    del self._running[key]

        # Nobody awaits a future whose callers all timed out; mark its
        # exception retrieved so asyncio does not log it at exit.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        threading.Thread(target=body, name=f"{self._name}-{key[:32]}", daemon=True).start()
        return future
