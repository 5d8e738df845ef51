"""The native boundary: argument checks, and the mapping of every native error
to its exception class in pamkrb.exceptions."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import sandbox  # tools/sandbox/, on the path through pytest.ini's `pythonpath`
from conftest import private_realm
from pamkrb import _native
from pamkrb.exceptions import (
    AccountRevoked,
    AuthenticationDenied,
    CredentialCacheError,
    InvalidUsername,
    KerberosError,
    KerberosPasswordRejected,
    KeytabError,
    PamkrbError,
    PAMSystemError,
    PasswordExpired,
    TemplateError,
    TicketFormatError,
    TicketNotRenewable,
)

FIXTURES = Path(__file__).parent / "data" / "ccache"
KEYTAB_FIXTURES = Path(__file__).parent / "data" / "keytab"


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="pamkrb-native-") as d:
        yield Path(d)


@pytest.mark.parametrize("name", ["", "..", "../etc", "a/b", "a;id", "a\0b", "a\nb", "\u0430lice", "x" * 5000])
def test_unsafe_usernames_raise_invalid_username(name):
    with pytest.raises(InvalidUsername) as info:
        _native.check_username(name)
    assert isinstance(info.value, ValueError)
    # The message shows at most a truncated, escaped form of hostile input.
    assert len(str(info.value)) < 200
    assert "\n" not in str(info.value)


def test_template_errors_name_the_problem():
    with pytest.raises(TemplateError, match=r"\{usr\}"):
        _native.validate_template("/tmp/krb5cc_{usr}")
    with pytest.raises(TemplateError, match="unbalanced"):
        _native.validate_template("/tmp/krb5cc_{uid")
    with pytest.raises(TemplateError, match="absolute"):
        _native.expand_template("krb5cc_{uid}", username="a", uid=1, gid=1, home="/h", realm="R", path=True)


def test_expand_template_uses_only_given_fields():
    out = _native.expand_template(
        "{username}/pg-dmp-workbench2@{realm}",
        username="alice",
        uid=1001,
        gid=1001,
        home="/home/alice",
        realm="XX.COM",
    )
    assert out == "alice/pg-dmp-workbench2@XX.COM"


def _private_copy(fixture: str, workdir: Path) -> Path:
    """A fixture as a cache of ours: the checked-out file is 0644, and a cache
    others could read is refused."""
    cache = workdir / fixture
    shutil.copyfile(FIXTURES / fixture, cache)
    cache.chmod(0o600)
    return cache


def test_inspect_fixture_written_by_mit_kinit(workdir):
    cache = _private_copy("v4-two-components", workdir)
    info = _native.inspect_ticket(str(cache))
    assert info.principal.startswith("alice/pg-dmp-workbench2@")
    assert info.expires_at > info.starts_at
    assert info == _native.inspect_ticket(str(cache), uid=os.geteuid())
    assert "alice/pg-dmp-workbench2" in repr(info)


def test_ticket_info_is_for_compares_principals_not_strings(workdir):
    info = _native.inspect_ticket(str(_private_copy("v4-two-components", workdir)))
    realm = info.principal.rsplit("@", 1)[1]
    assert info.is_for(info.principal)
    # The same principal spelled with a redundant escape: equal as a
    # principal, different as a string.
    assert info.is_for(f"alice/pg-dmp\\-workbench2@{realm}")
    assert not info.is_for(f"alice@{realm}")
    assert not info.is_for(f"alice/pg-dmp-workbench2@{realm}X")
    assert not info.is_for(f"alice/pg-dmp-workbench2/x@{realm}")
    with pytest.raises(KerberosError):
        info.is_for("alice@REALM@TWICE")


def test_shared_limits_are_native_constants():
    assert _native.MAX_PASSWORD_BYTES == 8 * 1024
    assert _native.MAX_CACHE_BYTES == 1 << 20
    assert _native.MAX_SIGN_IN_BYTES == 64 * 1024
    # A password of the longest length, every byte a JSON \uXXXX escape,
    # still fits in a sign-in body.
    assert 6 * _native.MAX_PASSWORD_BYTES + len('{"password": ""}') <= _native.MAX_SIGN_IN_BYTES


def test_password_limit_is_the_one_obtain_ticket_with_password_enforces(workdir):
    too_long = bytearray(b"x" * (_native.MAX_PASSWORD_BYTES + 1))
    with pytest.raises(KerberosError) as raised:
        _native.obtain_ticket_with_password("alice@NOWHERE.TEST", too_long, str(workdir / "cc"))
    assert raised.value.code is None
    assert str(_native.MAX_PASSWORD_BYTES) in str(raised.value)
    assert too_long == bytearray(len(too_long))


def test_cache_limit_is_the_one_install_cache_enforces(workdir):
    with pytest.raises(TicketFormatError, match=str(_native.MAX_CACHE_BYTES)):
        _native.install_cache(str(workdir / "cc"), bytes(_native.MAX_CACHE_BYTES + 1), principal="alice@NOWHERE.TEST")


def test_inspect_refuses_a_cache_of_another_owner(workdir):
    # A well-formed cache at the path that belongs to someone else is never
    # taken for the user's (no chown needed: ask for another uid).
    cache = _private_copy("v4-kinit-keytab", workdir)
    other = os.geteuid() + 1
    with pytest.raises(CredentialCacheError, match=rf"owned by uid {os.geteuid()}, not {other}$"):
        _native.inspect_ticket(str(cache), uid=other)


def test_inspect_refuses_a_cache_others_can_read(workdir):
    cache = _private_copy("v4-kinit-keytab", workdir)
    cache.chmod(0o644)
    with pytest.raises(CredentialCacheError, match=r"has mode 0644$"):
        _native.inspect_ticket(str(cache))


def test_inspect_accepts_a_hard_linked_cache_that_is_the_owners_alone(workdir):
    # With fs.protected_hardlinks=0 another user can link the owner's cache
    # after every rename; refusing it would ask for a sign-in forever.
    cache = _private_copy("v4-kinit-keytab", workdir)
    os.link(cache, workdir / "other-name")
    info = _native.inspect_ticket(str(cache))
    assert info.principal.startswith("alice@")
    # Still refused when others could read it through any of its names.
    cache.chmod(0o640)
    with pytest.raises(CredentialCacheError, match=r"has mode 0640$"):
        _native.inspect_ticket(str(cache))


def test_inspect_uid_must_be_a_uid(workdir):
    with pytest.raises(OverflowError):
        _native.inspect_ticket(str(workdir / "cc"), uid=-1)


def test_inspect_missing_cache_is_a_cache_error(workdir):
    with pytest.raises(CredentialCacheError, match="No such file"):
        _native.inspect_ticket(str(workdir / "krb5cc_missing"))


def test_inspect_refuses_symlink_and_fifo(workdir):
    link = workdir / "link"
    link.symlink_to(FIXTURES / "v4-kinit-keytab")
    with pytest.raises(CredentialCacheError, match="symbolic link"):
        _native.inspect_ticket(str(link))
    fifo = workdir / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CredentialCacheError):
        _native.inspect_ticket(str(fifo))


def test_inspect_garbage_is_a_format_error(workdir):
    bad = workdir / "krb5cc_bad"
    bad.write_bytes(b"\x05\x04\x00\x00garbage")
    bad.chmod(0o600)
    with pytest.raises(TicketFormatError):
        _native.inspect_ticket(str(bad))


def test_missing_keytab_is_a_keytab_error(workdir):
    with pytest.raises(KeytabError, match="does not exist"):
        _native.obtain_ticket("a@R", str(workdir / "none.keytab"), str(workdir / "cc"))
    assert not (workdir / "cc").exists()


def test_uid_without_gid_is_refused(workdir):
    with pytest.raises(ValueError, match="together"):
        _native.obtain_ticket("a@R", "/k", str(workdir / "cc"), uid=1)


@pytest.mark.parametrize("deadline", [0.0, "past"])
def test_passed_deadline_is_a_kerberos_error_and_installs_nothing(workdir, deadline):
    if deadline == "past":
        deadline = time.monotonic() - 0.001
    # Checked before anything else: the keytab need not even exist.
    with pytest.raises(KerberosError, match=r"deadline \(kdc_timeout\).*nothing was installed") as info:
        _native.obtain_ticket("a@R", str(workdir / "none.keytab"), str(workdir / "cc"), deadline=deadline)
    assert info.value.code is None
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("deadline", [float("nan"), float("inf"), -1.0])
def test_deadline_must_be_a_monotonic_time(workdir, deadline):
    with pytest.raises(ValueError, match="deadline"):
        _native.obtain_ticket("a@R", "/k", str(workdir / "cc"), deadline=deadline)


def test_a_future_deadline_lets_the_call_proceed(workdir):
    # Gets as far as the keytab, which does not exist.
    with pytest.raises(KeytabError):
        _native.obtain_ticket("a@R", str(workdir / "none.keytab"), str(workdir / "cc"), deadline=time.monotonic() + 60)


def test_empty_password_is_denied_before_pam():
    # "other" exists everywhere; reaching PAM with an empty password could
    # let in an account with an empty password field (nullok).
    with pytest.raises(AuthenticationDenied, match=r"empty password$"):
        _native.pam_authenticate("other", "nobody", bytearray())


def test_result_types_are_exported_and_not_constructible():
    for cls in (_native.Installation, _native.ReplacedEntry, _native.TicketInfo):
        assert cls.__module__ == "pamkrb._native"
        with pytest.raises(TypeError):
            cls()


def test_every_exception_is_a_pamkrb_error():
    for cls in (
        AuthenticationDenied,
        PAMSystemError,
        KerberosError,
        KeytabError,
        CredentialCacheError,
        TicketFormatError,
        InvalidUsername,
        TemplateError,
        TicketNotRenewable,
    ):
        assert issubclass(cls, PamkrbError)
    # A broker that catches KerberosError for "no fresh ticket" catches this too.
    assert issubclass(TicketNotRenewable, KerberosError)
    # Code that only knows KerberosError still treats a wrong password as a failure.
    assert issubclass(KerberosPasswordRejected, KerberosError)
    # And an account-policy refusal (Active Directory's expired password, locked account).
    assert issubclass(PasswordExpired, KerberosError)
    assert issubclass(AccountRevoked, KerberosError)


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates Unix users and PAM service files")


def test_wrong_password_is_denied_and_buffer_wiped(pam_service, bare_user):
    secret = bytearray(b"Wrong-Marker-Password")
    with pytest.raises(AuthenticationDenied) as info:
        _native.pam_authenticate(pam_service, bare_user.name, secret)
    assert secret == bytearray(len(secret))
    assert "Marker" not in str(info.value)


def test_right_password_passes_and_returns_the_pam_user(pam_service, bare_user):
    secret = bytearray(bare_user.password.encode())
    name = _native.pam_authenticate(pam_service, bare_user.name, secret, remote_host="127.0.0.1")
    assert secret == bytearray(len(secret))
    # PAM_USER after the transaction: the name given, as no module mapped it.
    assert name == bare_user.name
    assert type(name) is str
    secret = bytearray(bare_user.password.encode())
    assert _native.pam_authenticate(pam_service, bare_user.name, secret, check_account=False) == bare_user.name


def test_broken_pam_stack_is_a_system_error(bare_user):
    _require_root()
    service = "pamkrb-test-broken"
    path = Path("/etc/pam.d") / service
    path.write_text("auth required pam_pamkrb_does_not_exist.so\n")
    try:
        with pytest.raises(PAMSystemError, match=service):
            _native.pam_authenticate(service, bare_user.name, bytearray(bare_user.password.encode()))
    finally:
        path.unlink()


def test_principal_without_a_key_is_a_keytab_error(realm, user, workdir):
    # Only entries for the requested principal reach libkrb5, so a principal
    # the keytab has no key for is refused before any KDC is asked.
    keytab = user.home / f"{user.name}.keytab"
    with pytest.raises(KeytabError) as info:
        _native.obtain_ticket(f"nobody-else@{realm.name}", str(keytab), str(workdir / "cc"))
    message = str(info.value)
    assert f"keytab {keytab} has no key for nobody-else@{realm.name}" in message
    assert f"it holds keys for {user.name}@{realm.name}" in message
    assert "MEMORY:" not in message
    assert not (workdir / "cc").exists()


def test_unknown_realm_is_a_kerberos_error_with_code(realm, user, workdir):
    # The key matches the principal, but the KDC for it cannot be found: a
    # libkrb5 failure, with its code, naming the real keytab path.
    keytab = workdir / "other-realm.keytab"
    keytab.write_bytes((KEYTAB_FIXTURES / "single.keytab").read_bytes())
    with pytest.raises(KerberosError) as info:
        _native.obtain_ticket("alice@FIXTURE.TEST", str(keytab), str(workdir / "cc"))
    assert isinstance(info.value.code, int)
    assert info.value.code != 0
    assert str(keytab) in str(info.value)
    assert "MEMORY:" not in str(info.value)
    assert not (workdir / "cc").exists()


def test_obtained_cache_is_readable_by_klist(realm, user, workdir):
    keytab = user.home / f"{user.name}.keytab"
    cache = workdir / "krb5cc_test"
    installed = _native.obtain_ticket(f"{user.name}@{realm.name}", str(keytab), str(cache), lifetime=3600)
    assert installed.replaced is None
    info = installed.ticket
    assert info.principal == f"{user.name}@{realm.name}"
    assert info.expires_at - info.starts_at <= 3600
    assert _native.inspect_ticket(str(cache)) == info
    out = subprocess.run(
        ["klist", "-c", f"FILE:{cache}"],
        env={**os.environ, **realm.env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Default principal: {user.name}@{realm.name}" in out
    assert f"krbtgt/{realm.name}@{realm.name}" in out
    assert oct(cache.stat().st_mode & 0o777) == "0o600"


def test_planted_symlink_is_replaced_and_reported(realm, user, workdir):
    keytab = user.home / f"{user.name}.keytab"
    victim = workdir / "precious"
    victim.write_bytes(b"precious")
    cache = workdir / "krb5cc_test"
    cache.symlink_to(victim)
    installed = _native.obtain_ticket(f"{user.name}@{realm.name}", str(keytab), str(cache))
    assert (installed.replaced.kind, installed.replaced.owner_uid, installed.replaced.moved_to) == (
        "symbolic link",
        os.geteuid(),
        None,
    )
    assert "symbolic link" in repr(installed)
    assert victim.read_bytes() == b"precious"
    assert not cache.is_symlink()
    assert _native.inspect_ticket(str(cache)) == installed.ticket


def test_planted_directory_is_moved_aside_and_reported(realm, user, workdir):
    keytab = user.home / f"{user.name}.keytab"
    cache = workdir / "krb5cc_test"
    cache.mkdir()
    (cache / "inside").write_bytes(b"theirs")
    installed = _native.obtain_ticket(f"{user.name}@{realm.name}", str(keytab), str(cache))
    assert installed.replaced.kind == "directory"
    aside = Path(installed.replaced.moved_to)
    assert aside.parent == workdir
    assert aside.name.startswith(".krb5cc_test.pamkrb-planted-")
    assert (aside / "inside").read_bytes() == b"theirs"
    assert _native.inspect_ticket(str(cache)) == installed.ticket


# -- inspect_keytab: the hub's own walk and parser, for doctor -----------------------

KEYTAB_TIMESTAMP = 1796162674  # when ktutil wrote the fixtures (tests/data/keytab/README.md)


def test_inspect_keytab_written_by_ktutil(workdir):
    path = workdir / "multi.keytab"
    path.write_bytes((KEYTAB_FIXTURES / "multi.keytab").read_bytes())
    path.chmod(0o640)
    info = _native.inspect_keytab(str(path))
    st = path.stat()
    assert (info.owner_uid, info.owner_gid, info.mode, info.size) == (st.st_uid, st.st_gid, 0o640, 305)
    assert isinstance(info.entries, tuple)
    assert [(e.principal, e.kvno, e.enctype, e.enctype_name) for e in info.entries] == [
        ("alice@FIXTURE.TEST", 3, 18, "aes256-cts-hmac-sha1-96"),
        ("alice@FIXTURE.TEST", 3, 17, "aes128-cts-hmac-sha1-96"),
        ("alice/pg-dmp-workbench2@FIXTURE.TEST", 300, 18, "aes256-cts-hmac-sha1-96"),
        ("bob@OTHER.TEST", 1, 20, "aes256-cts-hmac-sha384-192"),
    ]
    assert all(e.timestamp == KEYTAB_TIMESTAMP for e in info.entries)
    # No key material crosses to Python, not even in a repr.
    entry = info.entries[0]
    assert not any("key" in name for name in dir(entry) if not name.startswith("_"))
    assert "34f6922f" not in repr(entry) + repr(info)
    assert entry == _native.inspect_keytab(str(path)).entries[0]
    with pytest.raises(AttributeError):
        info.mode = 0o600


def test_keytab_has_key_for_and_entry_is_for(workdir):
    path = workdir / "multi.keytab"
    path.write_bytes((KEYTAB_FIXTURES / "multi.keytab").read_bytes())
    path.chmod(0o600)
    info = _native.inspect_keytab(str(path))
    assert info.has_key_for("alice@FIXTURE.TEST")
    assert info.has_key_for("alice/pg-dmp-workbench2@FIXTURE.TEST")
    assert info.has_key_for("bob@OTHER.TEST")
    assert info.has_key_for("b\\ob@OTHER.TEST")  # an escape that changes nothing
    assert not info.has_key_for("\\bob@OTHER.TEST")  # \b is a backspace, as for libkrb5
    assert not info.has_key_for("bob@FIXTURE.TEST")
    assert not info.has_key_for("alice/pg-dmp-workbench2/x@FIXTURE.TEST")
    assert not info.has_key_for("alice@FIXTURE.TEST.")
    assert [e.is_for("alice@FIXTURE.TEST") for e in info.entries] == [True, True, False, False]
    with pytest.raises(KerberosError):
        info.has_key_for("alice@A@B")


def test_inspect_keytab_refuses_symlinked_middle_component(workdir):
    # {home}/.k/krb5.keytab with .k -> /etc must not read /etc/krb5.keytab.
    (workdir / ".k").symlink_to("/etc")
    with pytest.raises(KeytabError, match=r"\.k is a symbolic link"):
        _native.inspect_keytab(str(workdir / ".k" / "krb5.keytab"))


def test_inspect_keytab_refuses_final_symlink_fifo_and_oversize(workdir):
    real = workdir / "real.keytab"
    real.write_bytes((KEYTAB_FIXTURES / "single.keytab").read_bytes())
    (workdir / "link.keytab").symlink_to(real)
    with pytest.raises(KeytabError, match="it is a symbolic link"):
        _native.inspect_keytab(str(workdir / "link.keytab"))
    os.mkfifo(workdir / "fifo.keytab")
    with pytest.raises(KeytabError, match="it is a fifo"):
        _native.inspect_keytab(str(workdir / "fifo.keytab"))
    big = workdir / "big.keytab"
    big.write_bytes(real.read_bytes() + b"\0" * (1 << 20))
    with pytest.raises(KeytabError, match="more than the limit of 1048576"):
        _native.inspect_keytab(str(big))


def test_inspect_keytab_format_errors(workdir):
    with pytest.raises(KeytabError, match="does not exist"):
        _native.inspect_keytab(str(workdir / "missing.keytab"))
    empty = workdir / "empty.keytab"
    empty.write_bytes(b"")
    with pytest.raises(KeytabError, match="is empty"):
        _native.inspect_keytab(str(empty))
    truncated = workdir / "truncated.keytab"
    truncated.write_bytes((KEYTAB_FIXTURES / "single.keytab").read_bytes()[:40])
    with pytest.raises(KeytabError, match="truncated"):
        _native.inspect_keytab(str(truncated))


def test_inspect_keytab_as_root_reads_a_users_0600_keytab(workdir, bare_user):
    # Root reads a keytab it does not own and that no one else may read, and
    # reports its real owner: what doctor checks.
    _require_root()
    path = workdir / "user.keytab"
    path.write_bytes((KEYTAB_FIXTURES / "single.keytab").read_bytes())
    os.chown(path, bare_user.uid, bare_user.gid)
    path.chmod(0o600)
    info = _native.inspect_keytab(str(path))
    assert (info.owner_uid, info.owner_gid, info.mode) == (bare_user.uid, bare_user.gid, 0o600)
    assert [e.principal for e in info.entries] == ["alice@FIXTURE.TEST"]


def test_a_locked_keytab_does_not_stall_obtain_ticket(realm, user, workdir):
    # libkrb5's FILE keytab takes a blocking fcntl read lock; a user holding a
    # write lock on their own keytab used to stall the hub's Kerberos threads.
    # pamkrb reads the file itself, without a lock.
    import sys
    import time

    keytab = user.home / f"{user.name}.keytab"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'r+b')\n"
            "fcntl.lockf(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(keytab),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        info = _native.obtain_ticket(f"{user.name}@{realm.name}", str(keytab), str(workdir / "cc"))
        assert time.monotonic() - started < 5
        assert info.ticket.principal == f"{user.name}@{realm.name}"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# -- the ticket broker: renewal (TGS, no keytab), raw caches between hosts -----------


def test_renew_ticket_refuses_a_ticket_not_issued_renewable(workdir):
    cache = _private_copy("v4-kinit-keytab", workdir)
    before = cache.read_bytes()
    with pytest.raises(TicketNotRenewable, match="it was not issued renewable; a new ticket is needed") as info:
        _native.renew_ticket("alice@FIXTURE.TEST", str(cache))
    assert info.value.code is None
    assert cache.read_bytes() == before
    assert _native.inspect_ticket(str(cache)).renewable is False


def test_renew_ticket_refuses_a_ticket_past_its_renewal_window(workdir):
    # The fixture was renewable until 2026-11-28.
    cache = _private_copy("v4-renewable", workdir)
    assert _native.inspect_ticket(str(cache)).renewable is True
    with pytest.raises(TicketNotRenewable, match=r"could be renewed only until 1795870431 .* which has passed"):
        _native.renew_ticket("bob@FIXTURE.TEST", str(cache))


def test_can_renew_is_the_rule_renew_ticket_applies(workdir):
    renewable = _native.inspect_ticket(str(_private_copy("v4-renewable", workdir)))
    start, end, until = renewable.starts_at, renewable.expires_at, renewable.renew_until
    assert renewable.can_renew(start)
    assert renewable.can_renew(end - 0.5)
    assert not renewable.can_renew(end)  # only a valid ticket is renewed
    assert renewable.can_renew(start, margin=until - start - 1)
    assert not renewable.can_renew(start, margin=until - start)
    assert not renewable.can_renew(time.time())  # the window closed in 2026-11
    # Not issued renewable: never, whatever the times.
    plain = _native.inspect_ticket(str(_private_copy("v4-kinit-keytab", workdir)))
    assert plain.renewable is False
    assert not plain.can_renew(plain.starts_at)
    for now in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="non-negative"):
            renewable.can_renew(now)


def test_renew_ticket_refuses_another_principals_cache(workdir):
    cache = _private_copy("v4-renewable", workdir)
    with pytest.raises(TicketFormatError, match=r"holds tickets of bob@FIXTURE\.TEST, not alice@FIXTURE\.TEST$"):
        _native.renew_ticket("alice@FIXTURE.TEST", str(cache))


def test_renew_ticket_checks_its_arguments(workdir):
    with pytest.raises(ValueError, match="together"):
        _native.renew_ticket("a@R", str(workdir / "cc"), uid=1)
    with pytest.raises(ValueError, match="deadline"):
        _native.renew_ticket("a@R", str(workdir / "cc"), deadline=float("nan"))
    with pytest.raises(KerberosError, match="before contacting the KDC") as info:
        _native.renew_ticket("a@R", str(workdir / "cc"), deadline=0.0)
    assert not isinstance(info.value, TicketNotRenewable)
    with pytest.raises(CredentialCacheError, match="No such file"):
        _native.renew_ticket("a@R", str(workdir / "cc"))


def test_read_cache_serves_only_the_owners_well_formed_cache(workdir):
    cache = _private_copy("v4-service-ticket", workdir)
    assert _native.read_cache(str(cache)) == (FIXTURES / "v4-service-ticket").read_bytes()
    with pytest.raises(CredentialCacheError, match=f"not {os.geteuid() + 1}$"):
        _native.read_cache(str(cache), uid=os.geteuid() + 1)
    bad = workdir / "bad"
    bad.write_bytes(b"\x05\x04\x00\x00garbage")
    bad.chmod(0o600)
    with pytest.raises(TicketFormatError):
        _native.read_cache(str(bad))


def test_install_cache_refuses_garbage_and_expired_caches(workdir):
    target = workdir / "cc"
    for garbage in (b"", b"\x05\x04\x00\x00garbage", (FIXTURES / "v4-kinit-keytab").read_bytes()[:300]):
        with pytest.raises(TicketFormatError):
            _native.install_cache(str(target), garbage, principal="alice@FIXTURE.TEST")
    # The committed fixtures expired in November 2026.
    with pytest.raises(TicketFormatError, match="expired at 1795733631"):
        _native.install_cache(str(target), (FIXTURES / "v4-kinit-keytab").read_bytes(), principal="alice@FIXTURE.TEST")
    with pytest.raises(TypeError):
        _native.install_cache(str(target), b"", "alice@FIXTURE.TEST")  # principal is keyword-only
    assert list(workdir.iterdir()) == []


RENEW_LIFETIME = 60
RENEWABLE_FOR = 180
ANOTHER_UID = 12345  # another local user, who plants and links things


@pytest.fixture(scope="module")
def renew_realm():
    """A KDC whose tickets live 60 s and renew for 180 s (set before the
    database exists, so krbtgt and every principal get them)."""
    with private_realm("RENEW.TEST", max_life=RENEW_LIFETIME, max_renewable_life=RENEWABLE_FOR) as realm:
        yield realm


@pytest.fixture
def renew_user(renew_realm, monkeypatch):
    """A user with principal and keytab in the renewable realm; this process's
    libkrb5 talks to that realm for the test."""
    monkeypatch.setenv("KRB5_CONFIG", str(renew_realm.krb5_conf))
    with sandbox.provisioned_user(renew_realm) as user:
        yield user


def _assert_owned_0600(path, user):
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (user.uid, user.gid, 0o600)


def _obtain(realm, user, cache, **kwargs):
    keytab = user.home / f"{user.name}.keytab"
    return _native.obtain_ticket(
        f"{user.name}@{realm.name}", str(keytab), str(cache), uid=user.uid, gid=user.gid, **kwargs
    ).ticket


def test_renew_ticket_renews_with_a_tgs_request(renew_realm, renew_user, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    cache = workdir / "krb5cc"
    first = _obtain(renew_realm, renew_user, cache, renew_lifetime=RENEWABLE_FOR)
    assert first.renewable is True
    assert first.renew_until is not None
    assert first.renew_until > first.expires_at
    # Ticket times count seconds: let one pass so the renewal ends later.
    time.sleep(1.5)
    as_before = renew_realm.kdc_requests("AS_REQ")
    tgs_before = renew_realm.kdc_requests("TGS_REQ")

    installed = _native.renew_ticket(principal, str(cache), uid=renew_user.uid, gid=renew_user.gid)

    renewed = installed.ticket
    assert installed.replaced is None
    assert renewed.principal == principal
    assert renewed.expires_at > first.expires_at
    assert renewed.renew_until == first.renew_until
    assert renewed.renewable is True
    assert renew_realm.kdc_requests("AS_REQ") == as_before
    assert renew_realm.kdc_requests("TGS_REQ") == tgs_before + 1
    _assert_owned_0600(cache, renew_user)
    assert _native.inspect_ticket(str(cache), uid=renew_user.uid) == renewed
    # MIT's own tools accept the result, and it renews again.
    assert renew_realm.klist(cache).principal == principal
    again = _native.renew_ticket(principal, str(cache), uid=renew_user.uid, gid=renew_user.gid).ticket
    assert again.expires_at >= renewed.expires_at
    assert renew_realm.kdc_requests("AS_REQ") == as_before


def test_renew_ticket_without_renewable_ticket_asks_no_kdc(renew_realm, renew_user, workdir):
    cache = workdir / "krb5cc"
    # Even obtain_ticket(renew_lifetime=0) came back renewable from this KDC
    # (its 60 s max_life is shorter than what libkrb5 asks for); the
    # principal's own limit keeps the ticket from being renewable.
    renew_realm.kadmin(f"modprinc -maxrenewlife 0 {renew_user.name}@{renew_realm.name}")
    first = _obtain(renew_realm, renew_user, cache)
    assert first.renewable is False
    before = cache.read_bytes()
    requests = renew_realm.kdc_requests()
    with pytest.raises(TicketNotRenewable, match="not issued renewable"):
        _native.renew_ticket(
            f"{renew_user.name}@{renew_realm.name}", str(cache), uid=renew_user.uid, gid=renew_user.gid
        )
    assert renew_realm.kdc_requests() == requests
    assert cache.read_bytes() == before


def test_read_cache_and_install_cache_move_a_ticket(renew_realm, renew_user, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    source = workdir / "hub-side"
    ticket = _obtain(renew_realm, renew_user, source, renew_lifetime=RENEWABLE_FOR)
    data = _native.read_cache(str(source), uid=renew_user.uid)
    assert isinstance(data, bytes)
    with pytest.raises(CredentialCacheError):
        _native.read_cache(str(source))  # root's own cache it is not

    target = workdir / "server-side"
    installed = _native.install_cache(str(target), data, principal=principal, uid=renew_user.uid, gid=renew_user.gid)
    assert installed.ticket == ticket
    assert target.read_bytes() == data
    _assert_owned_0600(target, renew_user)
    assert renew_realm.klist(target).principal == principal
    # The installed copy renews like the original.
    renewed = _native.renew_ticket(principal, str(target), uid=renew_user.uid, gid=renew_user.gid)
    assert renewed.ticket.principal == principal

    wrong = workdir / "wrong"
    with pytest.raises(TicketFormatError, match=re.escape(f"holds tickets of {principal}, not someone-else@")):
        _native.install_cache(
            str(wrong), data, principal=f"someone-else@{renew_realm.name}", uid=renew_user.uid, gid=renew_user.gid
        )
    assert not wrong.exists()


def test_a_cache_hard_linked_by_another_user_is_still_inspected_and_read(renew_realm, renew_user, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    workdir.chmod(0o1777)
    cache = workdir / "krb5cc"
    ticket = _obtain(renew_realm, renew_user, cache, renew_lifetime=RENEWABLE_FOR)
    theirs = workdir / "attacker"
    theirs.mkdir()
    os.chown(theirs, ANOTHER_UID, ANOTHER_UID)
    os.link(cache, theirs / "stolen")
    assert os.stat(cache).st_nlink == 2

    assert _native.inspect_ticket(str(cache), uid=renew_user.uid) == ticket
    data = _native.read_cache(str(cache), uid=renew_user.uid)
    assert data == cache.read_bytes()
    # Another uid's expectations still fail, and a renewal replaces the link.
    with pytest.raises(CredentialCacheError, match="owned by uid"):
        _native.inspect_ticket(str(cache), uid=ANOTHER_UID)
    renewed = _native.renew_ticket(principal, str(cache), uid=renew_user.uid, gid=renew_user.gid)
    assert (renewed.replaced.kind, renewed.replaced.owner_uid) == ("hard link", renew_user.uid)
    assert os.stat(cache).st_nlink == 1
    assert (theirs / "stolen").read_bytes() == data


# -- fallback: a cache path another user made unwritable -----------------------------

FUSE_TOOLS = (Path("/usr/bin/bindfs"), Path("/usr/bin/fusermount3"))


@pytest.fixture
def fuse_locked_cache(attacker, workdir):
    """``<workdir>/krb5cc`` (workdir sticky and world-writable, like /tmp): a
    directory of the attacker's with their ``bindfs --no-allow-other`` on it,
    which root can neither stat (EACCES) nor move (EBUSY)."""
    missing = [str(tool) for tool in FUSE_TOOLS if not tool.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run tools/setup.sh (it installs fuse3 and bindfs)")
    workdir.chmod(0o1777)
    path = workdir / "krb5cc"
    source = attacker.home / "decoy"
    for directory in (source, path):
        result = attacker.run(["mkdir", str(directory)])
        assert result.returncode == 0, result.stderr
    try:
        with contextlib.ExitStack() as mounted:
            with sandbox.fuse_device_mode(0o666):
                mounted.enter_context(sandbox.user_fuse_mount(attacker, source, path))
            with pytest.raises(PermissionError):
                os.stat(path)
            yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)


def _long_named_cache(workdir: Path) -> Path:
    """A path whose file can be read but not replaced: the name fits NAME_MAX,
    the temporary file made next to it does not (an Io error at the final
    entry, as a full /tmp or a mount there gives)."""
    return workdir / ("n" * 250)


def _assert_private_fallback(fallback: Path, user) -> None:
    _assert_owned_0600(fallback, user)
    shared = os.lstat(fallback.parent.parent)
    assert (shared.st_uid, shared.st_gid, shared.st_mode & 0o7777) == (0, 0, 0o755)
    private = os.lstat(fallback.parent)
    assert (private.st_uid, private.st_gid, private.st_mode & 0o7777) == (user.uid, user.gid, 0o700)


def test_another_users_fuse_mount_sends_the_ticket_to_the_fallback(renew_realm, renew_user, fuse_locked_cache, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    keytab = renew_user.home / f"{renew_user.name}.keytab"
    fallback = workdir / "run" / str(renew_user.uid) / "krb5cc"
    requests = renew_realm.kdc_requests("AS_REQ")

    installed = _native.obtain_ticket(
        principal, str(keytab), str(fuse_locked_cache), uid=renew_user.uid, gid=renew_user.gid, fallback=str(fallback)
    )

    assert renew_realm.kdc_requests("AS_REQ") == requests + 1
    assert installed.ccache == str(fallback)
    assert installed.replaced is None
    assert installed.fallback_reason == f"could not stat {fuse_locked_cache}: Permission denied (os error 13)"
    assert f'ccache="{fallback}"' in repr(installed)
    _assert_private_fallback(fallback, renew_user)
    assert _native.inspect_ticket(str(fallback), uid=renew_user.uid) == installed.ticket
    assert renew_realm.klist(fallback).principal == principal
    # Without a fallback the mount still refuses the login, as before.
    with pytest.raises(CredentialCacheError, match="Permission denied"):
        _native.obtain_ticket(principal, str(keytab), str(fuse_locked_cache), uid=renew_user.uid, gid=renew_user.gid)
    # The next renewal reads the fallback, now the cache in use, and writes it.
    again = _native.renew_ticket(
        principal, str(fallback), uid=renew_user.uid, gid=renew_user.gid, fallback=str(fallback)
    )
    assert (again.ccache, again.fallback_reason) == (str(fallback), None)


def test_renew_ticket_reads_the_cache_in_use_and_may_write_the_fallback(renew_realm, renew_user, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    cache = _long_named_cache(workdir)
    (workdir / "ok").mkdir()
    _obtain(renew_realm, renew_user, workdir / "ok" / "krb5cc", renew_lifetime=RENEWABLE_FOR)
    os.rename(workdir / "ok" / "krb5cc", cache)
    fallback = workdir / "run" / str(renew_user.uid) / "krb5cc"

    installed = _native.renew_ticket(
        principal, str(cache), uid=renew_user.uid, gid=renew_user.gid, fallback=str(fallback)
    )

    assert installed.ccache == str(fallback)
    assert "File name too long" in installed.fallback_reason
    _assert_private_fallback(fallback, renew_user)
    assert _native.inspect_ticket(str(fallback), uid=renew_user.uid) == installed.ticket


def test_a_misconfigured_cache_directory_does_not_fall_back(renew_realm, renew_user, workdir):
    # A directory others can write (the admin's template) is for the admin
    # to fix: refused, not quietly worked around.
    keytab = renew_user.home / f"{renew_user.name}.keytab"
    caches = workdir / "caches"
    caches.mkdir()
    caches.chmod(0o777)
    fallback = workdir / "run" / str(renew_user.uid) / "krb5cc"
    with pytest.raises(CredentialCacheError, match=r"writable by others and not sticky$"):
        _native.obtain_ticket(
            f"{renew_user.name}@{renew_realm.name}",
            str(keytab),
            str(caches / "krb5cc"),
            uid=renew_user.uid,
            gid=renew_user.gid,
            fallback=str(fallback),
        )
    assert not fallback.parent.parent.exists()


def test_install_cache_falls_back_and_both_failures_are_named(renew_realm, renew_user, workdir):
    principal = f"{renew_user.name}@{renew_realm.name}"
    source = workdir / "hub-side"
    _obtain(renew_realm, renew_user, source, renew_lifetime=RENEWABLE_FOR)
    data = _native.read_cache(str(source), uid=renew_user.uid)
    cache = _long_named_cache(workdir)
    fallback = workdir / "run" / str(renew_user.uid) / "krb5cc"
    owner = {"uid": renew_user.uid, "gid": renew_user.gid}

    installed = _native.install_cache(str(cache), data, principal=principal, fallback=str(fallback), **owner)
    assert installed.ccache == str(fallback)
    assert fallback.read_bytes() == data

    # A per-user directory of someone else's is no fallback.
    os.chown(fallback.parent, ANOTHER_UID, ANOTHER_UID)
    with pytest.raises(CredentialCacheError) as info:
        _native.install_cache(str(cache), data, principal=principal, fallback=str(fallback), **owner)
    message = str(info.value)
    assert message.startswith(f"could not create a temporary file next to {cache}: File name too long")
    assert message.endswith(
        f"; the fallback failed too: refusing to write {fallback}: directory {fallback.parent} "
        f"is owned by uid {ANOTHER_UID}, not the cache owner {renew_user.uid} or root"
    )
    # A passed deadline never falls back.
    os.chown(fallback.parent, renew_user.uid, renew_user.gid)
    fallback.unlink()
    with pytest.raises(KerberosError, match="deadline"):
        _native.install_cache(str(cache), data, principal=principal, fallback=str(fallback), deadline=0.0, **owner)
    assert not fallback.exists()


# -- destroy_cache: the cache goes when the server stops -------------------------------


def test_destroy_cache_removes_only_the_users_own_file(bare_user, workdir):
    workdir.chmod(0o1777)
    own = workdir / "krb5cc_own"
    own.write_bytes(b"ticket")
    own.chmod(0o600)
    os.chown(own, bare_user.uid, bare_user.gid)
    assert _native.destroy_cache(str(own), uid=bare_user.uid) is True
    assert not own.exists()
    assert _native.destroy_cache(str(own), uid=bare_user.uid) is False

    theirs = workdir / "krb5cc_theirs"
    theirs.write_bytes(b"another user's")
    theirs.chmod(0o600)
    os.chown(theirs, ANOTHER_UID, ANOTHER_UID)
    target = workdir / "target"
    target.write_bytes(b"the user's")
    os.chown(target, bare_user.uid, bare_user.gid)
    link = workdir / "krb5cc_link"
    link.symlink_to(target)
    os.lchown(link, bare_user.uid, bare_user.gid)
    directory = workdir / "krb5cc_dir"
    directory.mkdir()
    os.chown(directory, bare_user.uid, bare_user.gid)
    for kept in (theirs, link, directory):
        assert _native.destroy_cache(str(kept), uid=bare_user.uid) is False
        assert os.path.lexists(kept)
    assert target.read_bytes() == b"the user's"
    assert theirs.read_bytes() == b"another user's"


def test_destroy_cache_refuses_a_symlink_on_the_way(workdir):
    real = workdir / "real"
    real.mkdir()
    (real / "cc").write_bytes(b"x")
    (workdir / "via").symlink_to(real)
    with pytest.raises(CredentialCacheError, match="symbolic link"):
        _native.destroy_cache(str(workdir / "via" / "cc"), uid=os.geteuid())
    assert (real / "cc").exists()


# -- obtain_ticket_with_password: password kinit in-process ---------------------------

KDC_ERR_PREAUTH_FAILED = -1765328360
KRB5KRB_AP_ERR_BAD_INTEGRITY = -1765328353
KDC_ERR_C_PRINCIPAL_UNKNOWN = -1765328378
KDC_ERR_KEY_EXP = -1765328361


def _password_principal(realm, user):
    """``<user>@REALM`` with a random password; (principal, password)."""
    principal = f"{user.name}@{realm.name}"
    password = f"Pw-{secrets.token_urlsafe(12)}"
    realm.kadmin(f"addprinc -pw {password} {principal}")
    return principal, password


def _assert_wiped(buffer):
    assert buffer == bytearray(len(buffer))


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (b"", "empty password"),
        (b"Marker-\0-Password", "password contains a NUL byte"),
        (b"Marker" + b"x" * 8192, "password longer than 8192 bytes"),
    ],
)
def test_password_refused_before_the_kdc_is_a_kerberos_error(workdir, password, reason):
    # Not the user's wrong password: input no KDC could judge, refused first
    # (no realm needed), with no code; the buffer is zeroed all the same.
    buffer = bytearray(password)
    with pytest.raises(KerberosError, match=re.escape(f"invalid argument: {reason}")) as info:
        _native.obtain_ticket_with_password("a@NO.SUCH.REALM", buffer, str(workdir / "cc"))
    assert not isinstance(info.value, KerberosPasswordRejected)
    assert info.value.code is None
    assert "Marker" not in str(info.value)
    assert "Marker" not in repr(info.value)
    _assert_wiped(buffer)
    assert list(workdir.iterdir()) == []


def test_password_buffer_is_wiped_even_when_the_arguments_are_wrong(workdir):
    buffer = bytearray(b"Marker-Password")
    with pytest.raises(ValueError, match="together"):
        _native.obtain_ticket_with_password("a@R", buffer, str(workdir / "cc"), uid=1)
    _assert_wiped(buffer)
    buffer = bytearray(b"Marker-Password")
    with pytest.raises(KerberosError, match=r"deadline \(kdc_timeout\) before contacting the KDC") as info:
        _native.obtain_ticket_with_password("a@R", buffer, str(workdir / "cc"), deadline=0.0)
    assert info.value.code is None
    _assert_wiped(buffer)
    assert list(workdir.iterdir()) == []
    with pytest.raises(TypeError):
        _native.obtain_ticket_with_password("a@R", b"immutable bytes", str(workdir / "cc"))


def test_password_kinit_installs_the_users_cache(realm, bare_user, workdir):
    principal, password = _password_principal(realm, bare_user)
    cache = workdir / "krb5cc_pw"
    buffer = bytearray(password.encode())
    as_before = realm.kdc_requests("AS_REQ")

    installed = _native.obtain_ticket_with_password(
        principal, buffer, str(cache), uid=bare_user.uid, gid=bare_user.gid, lifetime=3600
    )

    _assert_wiped(buffer)
    assert installed.replaced is None
    info = installed.ticket
    assert info.principal == principal
    assert 0 < info.expires_at - info.starts_at <= 3600
    _assert_owned_0600(cache, bare_user)
    assert _native.inspect_ticket(str(cache), uid=bare_user.uid) == info
    klist = realm.klist(cache)
    assert klist.principal == principal
    assert f"krbtgt/{realm.name}@{realm.name}" in klist.services
    assert password.encode() not in cache.read_bytes()
    # In-process: the KDC saw AS requests (preauth takes two), no kinit ran.
    assert realm.kdc_requests("AS_REQ") > as_before


def test_password_kinit_replaces_a_planted_symlink(realm, bare_user, workdir):
    principal, password = _password_principal(realm, bare_user)
    victim = workdir / "precious"
    victim.write_bytes(b"precious")
    cache = workdir / "krb5cc_pw"
    cache.symlink_to(victim)
    installed = _native.obtain_ticket_with_password(
        principal, bytearray(password.encode()), str(cache), uid=bare_user.uid, gid=bare_user.gid
    )
    assert installed.replaced.kind == "symbolic link"
    assert victim.read_bytes() == b"precious"
    _assert_owned_0600(cache, bare_user)


def test_wrong_password_is_rejected_and_nothing_installed(realm, bare_user, workdir):
    principal, password = _password_principal(realm, bare_user)
    cache = workdir / "krb5cc_pw"
    wrong = "Wrong-Marker-" + password
    buffer = bytearray(wrong.encode())
    with pytest.raises(KerberosPasswordRejected) as info:
        _native.obtain_ticket_with_password(principal, buffer, str(cache), uid=bare_user.uid, gid=bare_user.gid)
    _assert_wiped(buffer)
    assert isinstance(info.value, KerberosError)
    assert info.value.code in (KDC_ERR_PREAUTH_FAILED, KRB5KRB_AP_ERR_BAD_INTEGRITY)
    assert str(info.value).startswith(f"the KDC rejected the password for {principal} (")
    for shown in (str(info.value), repr(info.value), repr(info.value.args)):
        assert "Marker" not in shown
        assert password not in shown
    assert list(workdir.iterdir()) == []


def test_unknown_principal_is_not_a_rejected_password(realm, workdir):
    principal = f"nobody-{secrets.token_hex(4)}@{realm.name}"
    buffer = bytearray(b"Marker-Password")
    with pytest.raises(KerberosError) as info:
        _native.obtain_ticket_with_password(principal, buffer, str(workdir / "cc"))
    assert not isinstance(info.value, KerberosPasswordRejected)
    assert info.value.code == KDC_ERR_C_PRINCIPAL_UNKNOWN
    assert f"getting a ticket for {principal} with a password" in str(info.value)
    assert "Marker" not in str(info.value)
    _assert_wiped(buffer)
    assert list(workdir.iterdir()) == []


def test_expired_password_is_not_a_rejected_password(realm, bare_user, workdir):
    # No prompter: libkrb5 reports the expiry instead of asking for a new one.
    principal, password = _password_principal(realm, bare_user)
    realm.kadmin(f'modprinc -pwexpire "2001-01-01 00:00:00" {principal}')
    buffer = bytearray(password.encode())
    with pytest.raises(PasswordExpired) as info:
        _native.obtain_ticket_with_password(principal, buffer, str(workdir / "cc"))
    assert not isinstance(info.value, KerberosPasswordRejected)
    assert info.value.code == KDC_ERR_KEY_EXP
    assert str(info.value).startswith(f"the password of {principal} has expired and must be changed")
    _assert_wiped(buffer)
    assert list(workdir.iterdir()) == []


def test_a_password_expiry_from_an_mit_kdc_comes_back_with_the_ticket(realm, bare_user, workdir):
    """MIT's KDC sends the password's expiry as the reply's key-expiration;
    libkrb5's expire callback passes it on. Without one: None."""
    principal, password = _password_principal(realm, bare_user)
    installed = _native.obtain_ticket_with_password(principal, bytearray(password.encode()), str(workdir / "cc"))
    assert installed.password_expires_at is None
    soon = int(time.time()) + 10 * 86400
    realm.kadmin(f'modprinc -pwexpire "{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(soon))}" {principal}')
    installed = _native.obtain_ticket_with_password(principal, bytearray(password.encode()), str(workdir / "cc"))
    assert installed.password_expires_at == soon
    assert installed.ticket.principal == principal
    assert f"password_expires_at={soon}" in repr(installed)


def test_password_kinit_gets_a_renewable_ticket_when_asked(renew_realm, bare_user, workdir, monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", str(renew_realm.krb5_conf))
    principal, password = _password_principal(renew_realm, bare_user)
    cache = workdir / "krb5cc_pw"
    buffer = bytearray(password.encode())
    ticket = _native.obtain_ticket_with_password(
        principal, buffer, str(cache), uid=bare_user.uid, gid=bare_user.gid, renew_lifetime=RENEWABLE_FOR
    ).ticket
    _assert_wiped(buffer)
    assert ticket.renewable is True
    assert ticket.renew_until is not None
    assert ticket.expires_at < ticket.renew_until <= ticket.starts_at + RENEWABLE_FOR
    _assert_owned_0600(cache, bare_user)
    # The cache is an ordinary one: a TGS renewal works, no password needed.
    time.sleep(1.5)
    renewed = _native.renew_ticket(principal, str(cache), uid=bare_user.uid, gid=bare_user.gid).ticket
    assert renewed.expires_at > ticket.expires_at
