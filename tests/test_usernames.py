"""The one naming rule (pamkrb.usernames, src/template.rs split_username):
from the name PAM settled on to JupyterHub's username and the template
placeholders, with hostile names refused before they reach PAM or a path.

The password database is a fake here (the rule takes it as an argument): a
winbind member without a default domain, one with it, and an SSSD host with
fully qualified names, as measured on the Samba AD member
(tests/test_samba_dc.py, tests/test_ad_logins.py). The authenticator's
normalize_username (with username_map) is checked in-process.
"""

from __future__ import annotations

import pwd

import pytest

from pamkrb import PAMKerberosAuthenticator, _native, lifecycle, login, usernames
from pamkrb.exceptions import InvalidUsername, TemplateError


def entry(name: str, uid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "*", uid, uid, "", f"/home/{uid}", "/bin/bash"))


ALICE_UID = 4001104


def winbind(*, default_domain: bool = False) -> usernames.Lookup:
    """winbind (separator '\\'): every form of ADPAMKRB\\adalice resolves to
    that name, case-insensitively; the bare name only with a default domain.
    The local account "bob" (uid 1001) also exists, and so does the local
    "carol" (1002) next to a domain account ADPAMKRB\\carol."""
    domain_users = {"adalice": ALICE_UID, "carol": 4001200}

    def lookup(name: str) -> pwd.struct_passwd | None:
        local = {"bob": 1001, "carol": 1002}
        if name in local:
            return entry(name, local[name])
        lowered = name.lower()
        for user, uid in domain_users.items():
            forms = {f"adpamkrb\\{user}", f"{user}@adpamkrb", f"{user}@ad.pamkrb.test"}
            if default_domain:
                forms.add(user)
            if lowered in forms:
                return entry(f"ADPAMKRB\\{user}", uid)
        return None

    return lookup


def sssd_fully_qualified(name: str) -> pwd.struct_passwd | None:
    """SSSD with use_fully_qualified_names: "adalice@ad.example" only."""
    return entry("adalice@ad.example", ALICE_UID) if name.lower() == "adalice@ad.example" else None


# -- the check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "alice",
        "ADPAMKRB\\adalice",
        "ADPAMKRB\\ADALICE",
        "adalice@ad.pamkrb.test",
        "ADALICE@AD.PAMKRB.TEST",
        "svc_x-1.y@corp-1.example",
        "HOST$",
        "DOM\\host$",
        "a@" + ".".join(["l" * 63] * 3),
    ],
)
def test_host_forms_pass_the_check(name: str) -> None:
    _native.check_username(name)
    login.check_name(name)


HOSTILE = [
    "",
    "..",
    "../root",
    "a/b",
    "DOM/x\\alice",
    "DOM\\a/b",
    "alice@ad/../etc",
    "..\\alice",
    "DOM\\..",
    "alice@..",
    "alice@ad..example",
    "alice@.ad",
    "alice@ad.",
    "alice@-ad",
    "alice@ad-",
    "alice@",
    "@ad.example",
    "\\alice",
    "DOM\\",
    "a@b@c",
    "A\\B\\c",
    "DOM\\a@b",
    "alice@b\\c",
    "alice@ad example",
    "alice@ad\nexample",
    "alice\n@ad",
    "alice@ad\0",
    "DOM\\-rf",
    "DOM\\$(id)",
    "alice@`id`",
    "alice@\u0430d.example",  # Cyrillic a in the domain
    "\u0430lice@ad.example",  # and in the user
    "alice@ad.example\u200b",
    "alice@" + "l" * 64 + ".example",  # a label longer than DNS allows
    "a@" + ".".join(["l" * 63] * 5),  # longer than 256 bytes
    "x" * 257,
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_refused_everywhere(name: str) -> None:
    with pytest.raises(InvalidUsername):
        _native.check_username(name)
    with pytest.raises(login.Refused):
        login.check_name(name)
    with pytest.raises(InvalidUsername):
        usernames.split(name)
    with pytest.raises(InvalidUsername):
        usernames.hub_name(name, lookup=winbind())


def test_a_lone_surrogate_is_refused_not_a_crash() -> None:
    with pytest.raises(InvalidUsername):
        usernames.split("alice@ad\udc80")


def test_refusals_show_the_name_escaped_and_truncated() -> None:
    with pytest.raises(InvalidUsername) as raised:
        _native.check_username("DOM\\a\nb" + "x" * 100)
    message = str(raised.value)
    assert "\n" not in message
    assert "chars)" in message


# -- the split ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "user", "domain", "qualified"),
    [
        ("ADPAMKRB\\adalice", "adalice", "adpamkrb", "adalice@adpamkrb"),
        ("ADPAMKRB\\ADAlice", "adalice", "adpamkrb", "adalice@adpamkrb"),
        ("AdAlice@AD.Example", "adalice", "ad.example", "adalice@ad.example"),
        # A local account keeps its name: Unix names are case-sensitive.
        ("Bob", "Bob", "", "Bob"),
        ("bob", "bob", "", "bob"),
    ],
)
def test_split_lower_cases_domain_accounts_only(name: str, user: str, domain: str, qualified: str) -> None:
    parts = usernames.split(name)
    assert (parts.account, parts.user, parts.domain, parts.qualified) == (name, user, domain, qualified)


# -- JupyterHub's username ----------------------------------------------------------

WINBIND_FORMS = ["ADPAMKRB\\adalice", "ADPAMKRB\\ADALICE", "adalice@ad.pamkrb.test", "ADALICE@AD.PAMKRB.TEST"]


def test_every_winbind_form_is_one_hub_user_that_nss_resolves() -> None:
    lookup = winbind()
    names = {usernames.hub_name(form, lookup=lookup) for form in WINBIND_FORMS}
    # The UPN's DNS domain became winbind's own name for the account.
    assert names == {"adalice@adpamkrb"}
    # ... which the host resolves to the account (spawners look users up by
    # JupyterHub name) and maps back to the name PAM is given at sign-in.
    found = lookup("adalice@adpamkrb")
    assert found is not None
    assert found.pw_uid == ALICE_UID
    assert usernames.account_name("adalice@adpamkrb", lookup) == "ADPAMKRB\\adalice"


def test_with_a_default_domain_the_domain_is_dropped() -> None:
    lookup = winbind(default_domain=True)
    assert {usernames.hub_name(form, lookup=lookup) for form in [*WINBIND_FORMS, "adalice"]} == {"adalice"}
    assert usernames.hub_name("ADPAMKRB\\adalice", keep_domain=True, lookup=lookup) == "adalice@adpamkrb"
    assert usernames.account_name("adalice", lookup) == "ADPAMKRB\\adalice"


def test_a_domain_account_never_takes_a_local_accounts_hub_user() -> None:
    # "carol" is a local account (1002) and ADPAMKRB\carol another (4001200):
    # even with a default domain, the domain one keeps its domain.
    lookup = winbind(default_domain=True)
    assert usernames.hub_name("carol", lookup=lookup) == "carol"
    assert usernames.hub_name("ADPAMKRB\\carol", lookup=lookup) == "carol@adpamkrb"


def test_sssd_fully_qualified_names() -> None:
    assert usernames.hub_name("adalice@ad.example", lookup=sssd_fully_qualified) == "adalice@ad.example"
    assert usernames.hub_name("ADALICE@AD.EXAMPLE", lookup=sssd_fully_qualified) == "adalice@ad.example"


def test_unknown_names_keep_their_own_parts() -> None:
    assert usernames.hub_name("NOSUCH\\Zed", lookup=winbind()) == "zed@nosuch"
    assert usernames.hub_name("Zed", lookup=winbind()) == "zed"
    assert usernames.account_name("zed@nosuch", winbind()) == "zed@nosuch"


def test_an_nss_answer_that_fails_the_check_is_not_used() -> None:
    def hostile(name: str) -> pwd.struct_passwd | None:
        return entry("../../etc\\x", 5) if "@" in name else None

    assert usernames.hub_name("adalice@ad.example", lookup=hostile) == "adalice@ad.example"


def test_hub_names_are_idempotent_and_never_hold_a_backslash() -> None:
    for lookup in (winbind(), winbind(default_domain=True), sssd_fully_qualified):
        for form in [*WINBIND_FORMS, "adalice@ad.example", "bob"]:
            once = usernames.hub_name(form, lookup=lookup)
            assert "\\" not in once
            assert "/" not in once
            assert usernames.hub_name(once, lookup=lookup) == once


# -- the authenticator: normalize_username with username_map ------------------------


def test_normalize_username_applies_the_rule_then_username_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usernames, "nss_lookup", winbind())
    auth = PAMKerberosAuthenticator(username_map={"adalice@adpamkrb": "alice"})
    assert auth.normalize_username("ADPAMKRB\\ADALICE") == "alice"
    assert auth.normalize_username("adalice@ad.pamkrb.test") == "alice"
    assert auth.normalize_username("Bob") == "bob"
    # A name the rule refuses: JupyterHub's own lower-casing, no error (such
    # a name never passes a pamkrb login).
    assert auth.normalize_username("A B") == "a b"
    # JupyterHub's pam_normalize_username: the uid's name first, then the rule.
    root_alias = PAMKerberosAuthenticator(pam_normalize_username=True)
    monkeypatch.setattr(usernames, "nss_lookup", lambda name: entry("root", 0) if name == "toor" else None)
    assert root_alias.normalize_username("toor") == "root"
    kept = PAMKerberosAuthenticator(keep_username_domain=True)
    monkeypatch.setattr(usernames, "nss_lookup", winbind(default_domain=True))
    assert kept.normalize_username("adalice") == "adalice"
    assert kept.normalize_username("ADPAMKRB\\adalice") == "adalice@adpamkrb"


# -- templates ----------------------------------------------------------------------


def test_user_and_domain_placeholders_are_validated_at_start_up() -> None:
    _native.validate_template("/srv/keytabs/{domain}/{user}.keytab")
    with pytest.raises(TemplateError):
        _native.validate_template("/srv/{usr}")


def test_resolve_user_fills_the_pieces_and_keeps_the_nss_account(monkeypatch: pytest.MonkeyPatch) -> None:
    def getpwnam(name: str) -> pwd.struct_passwd:
        found = winbind()(name)
        if found is None:
            raise KeyError(name)
        return found

    monkeypatch.setattr(lifecycle.pwd, "getpwnam", getpwnam)
    paths = lifecycle.resolve_user(
        "adalice@adpamkrb",
        principal_template=lifecycle.DEFAULT_PRINCIPAL_TEMPLATE,
        keytab_template="/srv/keytabs/{domain}/{user}.keytab",
        ccache_template="/tmp/krb5cc_{uid}_{username}",
        realm="AD.PAMKRB.TEST",
    )
    assert paths.principal == "adalice@AD.PAMKRB.TEST"
    assert paths.keytab == "/srv/keytabs/adpamkrb/adalice.keytab"
    assert paths.ccache == f"/tmp/krb5cc_{ALICE_UID}_adalice@adpamkrb"
    assert (paths.username, paths.uid) == ("ADPAMKRB\\adalice", ALICE_UID)


@pytest.mark.parametrize("field", ["username", "user", "domain"])
@pytest.mark.parametrize("value", ["../x", "a/b", "a\nb", "..", "a\\b@c"])
def test_expand_refuses_unsafe_pieces(field: str, value: str) -> None:
    identity = {"username": "alice", "uid": 1, "gid": 1, "home": "/home/a", "realm": "R", "user": "alice", "domain": ""}
    identity[field] = value
    with pytest.raises((TemplateError, InvalidUsername)):
        _native.expand_template("/tmp/{username}{user}{domain}", path=True, **identity)


# -- policy messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (12, login.PASSWORD_MUST_CHANGE),
        (27, login.PASSWORD_MUST_CHANGE),
        (13, login.ACCOUNT_EXPIRED),
        (11, login.ACCOUNT_LOCKED),
        (6, login.ACCOUNT_LOCKED),
        (7, None),
        (10, None),
        (None, None),
    ],
)
def test_policy_messages_by_pam_code(code: int | None, expected: str | None) -> None:
    assert login.policy_message(code) == expected
