"""pam_stack: is there a way through a service's auth stack without the password?

Every stack is written to a temporary pam.d/vendor/pam.conf layout; the real
/etc/pam.d is only read (and only where it exists). The last test runs random
stacks through the real libpam (pam_start_confdir) and checks that the model
agrees with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from pamkrb import pam_stack
from pamkrb.pam_stack import (
    BAD,
    DONE,
    IGNORE_ACTION,
    PAM_RETURNS,
    SUCCESS,
    auth_rules,
    check_service,
    parse_control,
    password_free_success,
)

# Debian 12's stock files, as shipped (comments dropped).
DEBIAN = {
    "common-auth": (
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
        "auth\trequisite\t\t\tpam_deny.so\n"
        "auth\trequired\t\t\tpam_permit.so\n"
        "auth\toptional\t\t\tpam_cap.so\n"
    ),
    "common-account": (
        "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n"
        "account\trequisite\t\t\tpam_deny.so\naccount\trequired\t\t\tpam_permit.so\n"
    ),
    "common-session": "session\trequired\tpam_unix.so\n",
    "common-password": "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n",
    "login": (
        "auth       optional   pam_faildelay.so  delay=3000000\n"
        "auth       requisite  pam_nologin.so\n"
        "session [success=ok ignore=ignore module_unknown=ignore default=bad] pam_selinux.so close\n"
        "session    required     pam_loginuid.so\n"
        "@include common-auth\n"
        "auth       optional   pam_group.so\n"
        "session    required   pam_limits.so\n"
        "@include common-account\n@include common-session\n@include common-password\n"
    ),
    "sshd": (
        "@include common-auth\naccount    required     pam_nologin.so\n@include common-account\n"
        "session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close\n"
        "session    required     pam_loginuid.so\n@include common-session\n@include common-password\n"
    ),
    "other": "@include common-auth\n@include common-account\n@include common-password\n@include common-session\n",
    "su": (
        "auth       sufficient pam_rootok.so\n"
        "# auth       required   pam_wheel.so\n"
        "session       required   pam_env.so readenv=1\n"
        "@include common-auth\n@include common-account\n@include common-session\n"
    ),
    "su-l": "auth\t\tinclude\t\tsu\naccount\t\tinclude\t\tsu\nsession\t\tinclude\t\tsu\n",
    "runuser": "auth\t\tsufficient\tpam_rootok.so\nsession\t\trequired\tpam_unix.so\n",
    "runuser-l": "auth\t\tinclude\t\trunuser\n-session\toptional\tpam_systemd.so\nsession\t\tinclude\t\trunuser\n",
    "sudo": "session    required   pam_limits.so\n@include common-auth\n@include common-account\n",
}
# Fedora's system-auth (authselect "local" profile with sssd), a stack of jumps.
FEDORA_SYSTEM_AUTH = (
    "auth        required                                     pam_env.so\n"
    "auth        required                                     pam_faildelay.so delay=2000000\n"
    "auth        [default=1 ignore=ignore success=ok]         pam_usertype.so isregular\n"
    "auth        [default=1 ignore=ignore success=ok]         pam_localuser.so\n"
    "auth        sufficient                                   pam_unix.so nullok\n"
    "auth        [default=1 ignore=ignore success=ok]         pam_usertype.so isregular\n"
    "auth        sufficient                                   pam_sss.so forward_pass\n"
    "auth        required                                     pam_deny.so\n"
)


@dataclass
class PamLayout:
    """/etc/pam.d, /usr/lib/pam.d and /etc/pam.conf under a temporary directory."""

    etc: Path
    vendor: Path
    pam_conf: Path

    def write(self, name: str, text: str, *, vendor: bool = False) -> Path:
        path = (self.vendor if vendor else self.etc) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def reason(self, service: str) -> str | None:
        return check_service(service, dirs=(self.etc, self.vendor), pam_conf=self.pam_conf).reason


@pytest.fixture
def pam(tmp_path: Path) -> PamLayout:
    layout = PamLayout(tmp_path / "etc" / "pam.d", tmp_path / "usr" / "lib" / "pam.d", tmp_path / "etc" / "pam.conf")
    layout.etc.mkdir(parents=True)
    for name, text in DEBIAN.items():
        layout.write(name, text)
    return layout


def assert_refused(reason: str | None, *parts: str) -> None:
    assert reason is not None, "the service was accepted"
    for part in parts:
        assert part in reason, reason


# -- ways in without the password, each missed by the first pam_stack ---------------


@pytest.mark.parametrize("service", ["SU", "Su-L", "RUNUSER", "runuser-L"])
def test_service_names_are_lower_cased_like_pam_start(pam: PamLayout, service: str) -> None:
    assert_refused(pam.reason(service), repr(service.lower()))


def test_lower_casing_applies_to_the_file_looked_up(pam: PamLayout) -> None:
    pam.write("hubauth", "auth sufficient pam_rootok.so\nauth required pam_unix.so\n")

    assert_refused(pam.reason("HubAuth"), "pam_rootok", "hubauth:1")


BYPASSES = {
    # PAM compares control keywords without case.
    "upper-case include": "auth INCLUDE su\n",
    "upper-case substack": "Auth SubStack runuser\n",
    "upper-case sufficient": "auth SUFFICIENT pam_permit.so\nauth required pam_unix.so\n",
    # Bracketed controls.
    "permit success=done": "auth [success=done default=ignore] pam_permit.so\nauth required pam_unix.so\n",
    "permit success=ok, the rest ignored": "auth [success=ok default=bad] pam_permit.so\nauth optional pam_unix.so\n",
    "required permit, optional password": "auth required pam_permit.so\nauth optional pam_unix.so\n",
    "required permit, failure ignored": "auth required pam_permit.so\nauth [default=ignore] pam_unix.so\n",
    "jump over the deny": (
        "auth [success=1 default=ignore] pam_permit.so\nauth requisite pam_deny.so\nauth required pam_permit.so\n"
    ),
    "reset after a failure": (
        "auth required pam_deny.so\nauth [success=reset default=bad] pam_permit.so\nauth required pam_permit.so\n"
    ),
    "jump over a whole substack": (
        "auth [success=1 default=ignore] pam_permit.so\nauth substack common-auth\n"
        "auth [success=done default=die] pam_permit.so\n"
    ),
    "account condition, not password": (
        "auth [success=done new_authtok_reqd=done default=ignore] pam_succeed_if.so user ingroup staff\n"
        "auth required pam_unix.so\n"
    ),
    "missing module jumps": (
        "-auth [success=ok module_unknown=1 default=die] pam_u2f.so\nauth requisite pam_deny.so\n"
        "auth required pam_permit.so\n"
    ),
    # Line syntax.
    "continued line": "auth \\\n  [success=done \\\n   default=ignore] \\\n  pam_permit.so\nauth required pam_unix.so",
}
# Refused by the first pam_stack too, if sometimes for the wrong reason ("malformed rule").
ALSO_REFUSED = {
    "upper-case type": "AUTH sufficient pam_rootok.so\n@include common-auth\n",
    "upper-case @include": "@Include su\n",
    "wheel trust": "auth sufficient pam_wheel.so trust use_uid\n@include common-auth\n",
    "rootok behind a jump": (
        "auth [success=1 default=ignore] pam_rootok.so\nauth requisite pam_deny.so\nauth required pam_permit.so\n"
    ),
    "comment inside a continuation": "auth [success=done] \\\n# why\n pam_permit.so\nauth required pam_x.so",
}


@pytest.mark.parametrize("text", [*BYPASSES.values(), *ALSO_REFUSED.values()], ids=[*BYPASSES, *ALSO_REFUSED])
def test_password_free_path_is_refused(pam: PamLayout, text: str) -> None:
    pam.write("hubauth", text)

    assert_refused(pam.reason("hubauth"), "can succeed without the password")


def test_substack_in_the_vendor_directory_is_followed(pam: PamLayout) -> None:
    pam.write("hubauth", "auth substack base\nauth required pam_permit.so\n")
    pam.write("base", "auth sufficient pam_rootok.so\n", vendor=True)

    assert_refused(pam.reason("hubauth"), f"{pam.vendor / 'base'}:1", "pam_rootok")


def test_service_only_in_the_vendor_directory_is_judged(pam: PamLayout) -> None:
    pam.write("hubauth", "auth sufficient pam_rootok.so\n", vendor=True)

    assert_refused(pam.reason("hubauth"), str(pam.vendor / "hubauth"))


def test_pam_conf_is_read_when_there_is_no_pam_d(tmp_path: Path) -> None:
    conf = tmp_path / "pam.conf"
    conf.write_text("# pam.conf\nHubAuth  Auth  sufficient pam_rootok.so\nlogin auth required pam_unix.so\n")
    dirs = (tmp_path / "pam.d", tmp_path / "vendor")

    reason = check_service("hubauth", dirs=dirs, pam_conf=conf).reason

    assert_refused(reason, f"{conf}:2", "pam_rootok")
    assert check_service("login", dirs=dirs, pam_conf=conf).reason is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth include nothere\n", "includes 'nothere', but there is no"),
        ("@include nothere\n", "hubauth:1"),
        ("auth substack\n", "substack without a file name"),
        ("auth include hubauth\n", "a loop?"),
        ("auth required pam_unix.so \\\n", "ends with a backslash"),
    ],
)
def test_unreadable_stack_is_refused_with_the_reason(pam: PamLayout, text: str, expected: str) -> None:
    pam.write("hubauth", text)

    assert_refused(pam.reason("hubauth"), "cannot be read", expected)


def test_missing_service_is_refused_not_left_to_other(pam: PamLayout) -> None:
    assert_refused(
        pam.reason("jupyterhub"),
        "PAM service 'jupyterhub' does not exist",
        f"no {pam.etc / 'jupyterhub'} or {pam.vendor / 'jupyterhub'}",
        f"fall back to 'other' ({pam.etc / 'other'})",
    )


def test_service_without_auth_rules_is_refused(pam: PamLayout) -> None:
    pam.write("hubauth", "account required pam_unix.so\n")

    assert_refused(pam.reason("hubauth"), "no auth rules", "those of 'other'")


# -- stacks that need the password ------------------------------------------------


@pytest.mark.parametrize("service", ["login", "sshd", "other", "common-auth"])
def test_debian_stacks_are_accepted(pam: PamLayout, service: str) -> None:
    assert pam.reason(service) is None


@pytest.mark.parametrize("service", ["su", "su-l", "runuser", "runuser-l"])
def test_debian_user_switching_stacks_fail_on_their_content(pam: PamLayout, service: str) -> None:
    # Not only on their names: the same files under another name are refused too.
    pam.write(f"hub-{service}", (pam.etc / service).read_text().replace("include\t\t", "include\t\t"))

    run = password_free_success(auth_rules(pam.etc / service, service, dirs=(pam.etc, pam.vendor)))

    assert run is not None
    assert any(rule.module == "pam_rootok.so" and code == SUCCESS for rule, code in run)


def test_sudo_is_refused_by_name_though_its_stack_is_common_auth(pam: PamLayout) -> None:
    assert_refused(pam.reason("sudo"), "switching users")
    assert password_free_success(auth_rules(pam.etc / "sudo", "sudo", dirs=(pam.etc,))) is None


SAFE = {
    "fedora system-auth": FEDORA_SYSTEM_AUTH,
    "substack done ends only the substack": "auth substack hub-sub\nauth required pam_unix.so\n",
    "permit then a required password": "auth required pam_permit.so\nauth required pam_unix.so\n",
    "rootok success=die": "auth [success=die default=ignore] pam_rootok.so\n@include common-auth\n",
    "upper-case control values are a syntax error, so bad": "auth [SUCCESS=done default=ignore] pam_permit.so\n",
    "jump past the end fails": "auth [success=9 default=ignore] pam_permit.so\nauth required pam_permit.so\n",
    "commented out": "# auth sufficient pam_rootok.so\n@include common-auth\n",
    "hash ends the line": "auth required pam_unix.so # \\\nauth sufficient pam_deny.so\n",
    "wheel as a gate": "auth required pam_wheel.so use_uid\n@include common-auth\n",
}


@pytest.mark.parametrize("text", SAFE.values(), ids=SAFE.keys())
def test_stack_that_needs_the_password_is_accepted(pam: PamLayout, text: str) -> None:
    pam.write("hub-sub", "auth sufficient pam_permit.so\n")
    pam.write("hubauth", text)

    assert pam.reason("hubauth") is None


# -- the parts ------------------------------------------------------------------------


def test_control_keywords_match_pam() -> None:
    sufficient = auth_rules_of("auth sufficient pam_permit.so")[0].actions
    assert sufficient == parse_control("success=done new_authtok_reqd=done default=ignore")
    assert parse_control("success=1 default=ignore")[SUCCESS] == 1
    assert parse_control("success=ok")[PAM_RETURNS.index("auth_err")] == BAD
    assert parse_control("  ignore = ignore default=done ")[PAM_RETURNS.index("ignore")] == IGNORE_ACTION
    assert parse_control("default=done")[SUCCESS] == DONE
    for broken in ("success=0", "SUCCESS=done", "success", "success=", "succes=done", "success=later"):
        assert parse_control(broken) == (BAD,) * len(PAM_RETURNS), broken


def auth_rules_of(text: str, tmp: Path | None = None) -> list[pam_stack.PamRule]:
    path = (tmp or Path(os.environ.get("TMPDIR", "/tmp"))) / f"pamkrb-test-{os.getpid()}"
    path.write_text(text + "\n")
    try:
        return auth_rules(path, "x", dirs=())
    finally:
        path.unlink()


def test_tokens_follow_pam_tokenize() -> None:
    assert pam_stack.pam_tokens("auth\t[success=1  default=ignore]pam_unix.so  nullok") == [
        "auth",
        "success=1  default=ignore",
        "pam_unix.so",
        "nullok",
    ]
    assert pam_stack.pam_tokens(r"auth required pam_x.so [a\]b c]") == ["auth", "required", "pam_x.so", "a]b c"]


def test_broken_lines_become_failing_rules(tmp_path: Path) -> None:
    rules = auth_rules_of("auht sufficient pam_permit.so\nauth required\n-auth optional pam_x.so", tmp_path)

    assert [(r.line, r.must_fail, r.silent) for r in rules] == [(1, True, False), (2, True, False), (3, False, True)]


# -- the real system, read only ---------------------------------------------------


@pytest.mark.parametrize(("service", "safe"), [("login", True), ("common-auth", True), ("su", False)])
def test_this_machines_stacks(service: str, safe: bool) -> None:
    path = Path("/etc/pam.d") / service
    if not path.is_file():
        pytest.skip(f"{path} is not installed here")

    run = password_free_success(auth_rules(path, service))

    assert (run is None) == safe, run


# -- against the real libpam --------------------------------------------------------


def test_model_agrees_with_libpam_on_random_stacks(tmp_path: Path) -> None:
    """pam_permit/pam_rootok (succeed for root) and pam_deny in random controls and substacks.

    No "-auth": the model lets such a module also be missing, which libpam here never sees.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: pam_rootok succeeds only for root, which is what the model assumes")
    libpam = LibPam.load()
    rng = random.Random(20261)
    modules = ["pam_permit.so", "pam_deny.so", "pam_rootok.so"]
    controls = ["required", "requisite", "sufficient", "optional", "Required", "SUFFICIENT"]
    actions = ["ok", "done", "bad", "die", "ignore", "reset", "1", "2", "3"]

    def line(n: int, depth: int) -> str:
        if depth < 2 and rng.random() < 0.15:
            sub = tmp_path / f"sub{n}-{depth}"
            sub.write_text("\n".join(line(n * 10 + i, depth + 1) for i in range(rng.randint(1, 3))) + "\n")
            return f"auth {rng.choice(['substack', 'include'])} {sub}"
        if rng.random() < 0.5:
            control = rng.choice(controls)
        else:
            pairs = [f"{code}={rng.choice(actions)}" for code in rng.sample(["success", "auth_err", "default"], 2)]
            control = "[" + " ".join(pairs) + "]"
        return f"{rng.choice(['auth', 'AUTH', 'Auth'])} {control} {rng.choice(modules)}"

    disagreements = []
    for n in range(500):
        text = "\n".join(line(n * 100 + i, 0) for i in range(rng.randint(1, 5))) + "\n"
        (tmp_path / "svc").write_text(text)
        model = password_free_success(auth_rules(tmp_path / "svc", "svc", dirs=(tmp_path,))) is not None
        real = libpam.authenticate(tmp_path, "svc") == SUCCESS
        if model != real:
            disagreements.append((text, model, real))

    assert disagreements == []


class LibPam:
    """pam_start_confdir + pam_authenticate through ctypes, answering every prompt wrongly."""

    def __init__(self, lib: ctypes.CDLL, libc: ctypes.CDLL) -> None:
        self.lib, self.libc = lib, libc

    @classmethod
    def load(cls) -> LibPam:
        try:
            lib = ctypes.CDLL("libpam.so.0")
            lib.pam_start_confdir  # noqa: B018 (Linux-PAM >= 1.4)
        except (OSError, AttributeError) as e:
            pytest.skip(f"libpam with pam_start_confdir is not available: {e}")
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.calloc.restype = ctypes.c_void_p
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        lib.pam_start_confdir.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(_PamConv),
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_void_p),
        ]
        lib.pam_authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
        return cls(lib, libc)

    def authenticate(self, confdir: Path, service: str) -> int:
        libc = self.libc

        @_CONV
        def conv(count, _messages, responses, _data):  # type: ignore[no-untyped-def]
            replies = ctypes.cast(libc.calloc(count, ctypes.sizeof(_PamResponse)), ctypes.POINTER(_PamResponse))
            for i in range(count):
                replies[i].resp = libc.strdup(b"not-the-password")
            responses[0] = replies
            return 0

        handle = ctypes.c_void_p()
        conversation = _PamConv(conv, None)
        rc = self.lib.pam_start_confdir(
            service.encode(), b"root", ctypes.byref(conversation), str(confdir).encode(), ctypes.byref(handle)
        )
        if rc != 0:
            return rc
        rc = self.lib.pam_authenticate(handle, 0)
        self.lib.pam_end(handle, rc)
        return rc


class _PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_CONV = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_PamResponse)), ctypes.c_void_p
)


class _PamConv(ctypes.Structure):
    _fields_ = [("conv", _CONV), ("appdata_ptr", ctypes.c_void_p)]
