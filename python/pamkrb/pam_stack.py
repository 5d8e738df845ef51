"""Reading a PAM service's auth stack to find a way in without the password.

The hub runs as root. A service whose auth stack can succeed without the
password — ``su``'s ``auth sufficient pam_rootok.so``, a ``pam_permit`` that
ends the stack — would let anyone log in as anyone, so the authenticator
refuses such a service at start-up and ``pamkrb doctor`` reports it.

The stack is read the way Linux-PAM reads it (``libpam/pam_handlers.c``,
``pam_misc.c``, 1.5.2 as in Debian 12, and 1.7): the same file lookup, line
joining, tokens, case rules, control keywords, ``[value=action]`` lists,
``include``/``substack``/``@include`` and the same failing handlers for broken
lines. It is then run the way ``_pam_dispatch_aux`` (``pam_dispatch.c``) runs
it, with each module standing for the set of codes it could return when the
caller does not know the password; if any combination ends in PAM_SUCCESS,
the service is refused. Unknown modules are assumed to check the password:
they can return anything but success.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Linux-PAM looks for /etc/pam.d/<service>, then the vendor copy
# /usr/lib/pam.d/<service>, file by file; only when neither directory exists
# does it read /etc/pam.conf (pam_handlers.c, _pam_init_handlers).
PAM_CONFIG_DIRS: tuple[Path, ...] = (Path("/etc/pam.d"), Path("/usr/lib/pam.d"))
PAM_CONF = Path("/etc/pam.conf")
PAM_DEFAULT_SERVICE = "other"
# Services whose purpose is switching users. Their stacks are judged too, but a
# stack that looks fine today (sudo's is common-auth) still asks for the wrong
# person's password on a distribution that configures it differently.
USER_SWITCHING_SERVICES = frozenset({"su", "su-l", "sudo", "sudo-i", "runuser", "runuser-l", "pkexec", "polkit-1"})
# Linux-PAM >= 1.6 stops at 16 levels of include (PAM_SUBSTACK_MAX_LEVEL); 1.5.2
# recursed until it crashed, so a loop is refused rather than followed.
PAM_INCLUDE_DEPTH = 16

# Return codes, in the order of _pam_token_returns (pam_tokens.h); "default" is
# the extra name that sets every code not named.
PAM_RETURNS = (
    *("success", "open_err", "symbol_err", "service_err", "system_err", "buf_err", "perm_denied", "auth_err"),
    *("cred_insufficient", "authinfo_unavail", "user_unknown", "maxtries", "new_authtok_reqd", "acct_expired"),
    *("session_err", "cred_unavail", "cred_expired", "cred_err", "no_module_data", "conv_err", "authtok_err"),
    *("authtok_recover_err", "authtok_lock_busy", "authtok_disable_aging", "try_again", "ignore", "abort"),
    *("authtok_expired", "module_unknown", "bad_item", "conv_again", "incomplete"),
)
SUCCESS, PERM_DENIED, AUTH_ERR, NEW_AUTHTOK_REQD, IGNORE, MODULE_UNKNOWN, INCOMPLETE = (
    PAM_RETURNS.index(name)
    for name in ("success", "perm_denied", "auth_err", "new_authtok_reqd", "ignore", "module_unknown", "incomplete")
)
# The code of a handler PAM installs for a broken line, and its starting status.
MUST_FAIL = PERM_DENIED

# Actions as pam_private.h encodes them; a positive number is a jump.
IGNORE_ACTION, OK, DONE, BAD, DIE, RESET, UNDEF = 0, -1, -2, -3, -4, -5, -6
PAM_ACTIONS = {"ignore": IGNORE_ACTION, "ok": OK, "done": DONE, "bad": BAD, "die": DIE, "reset": RESET}
_UNDEF_ACTIONS = (UNDEF,) * len(PAM_RETURNS)

# What a module can return to a caller who does not know the password.
# INCOMPLETE is left out everywhere: it hands control back to the application.
ANY_CODE = frozenset(range(len(PAM_RETURNS))) - {INCOMPLETE}
# A module that checks a secret, or one we do not know, cannot say success
# without it (NEW_AUTHTOK_REQD also means "the password was right").
NEEDS_PASSWORD = ANY_CODE - {SUCCESS, NEW_AUTHTOK_REQD}
# Modules that can succeed without being given the password, and why. (pam_unix
# succeeds without one for an account whose password is empty and `nullok`:
# that is the account's state, not a way around a password, so it is allowed.)
PASSWORD_FREE = {
    "pam_permit": "always succeeds",
    "pam_rootok": "succeeds for root, and the hub runs as root",
    "pam_wheel": "succeeds on group membership (with `trust`, for root), not on a password",
    "pam_succeed_if": "succeeds on a condition about the account, not on a password",
    "pam_timestamp": "succeeds on a recent earlier login, not on a password",
    "pam_rhosts": "succeeds on .rhosts/hosts.equiv, not on a password",
    "pam_ftp": "lets the anonymous ftp users in with any password",
    "pam_exec": "succeeds if its command does",
    "pam_debug": "returns whatever its arguments say",
    "pam_stress": "is a test module",
}
# Gates that decide on who, where or when, never on the password: they can
# succeed for a caller who does not know it, so they must not be what ends a stack.
for _name in (
    *("pam_access", "pam_cap", "pam_faillock", "pam_listfile", "pam_localuser", "pam_nologin", "pam_securetty"),
    *("pam_sepermit", "pam_shells", "pam_tally", "pam_tally2", "pam_time", "pam_usertype"),
):
    PASSWORD_FREE[_name] = "decides on the account, host or time, not on the password"
ALWAYS_SUCCEEDS = frozenset({"pam_permit", "pam_rootok"})
# Modules whose answers we know more precisely. pam_unix never answers IGNORE,
# so a failure of `required pam_unix.so` cannot be waved through; an unknown
# module might (pam_sss or pam_krb5 do for users they do not handle).
KNOWN_ANSWERS = {"pam_deny": frozenset({AUTH_ERR}), "pam_unix": NEEDS_PASSWORD - {IGNORE}}


@dataclass(frozen=True)
class PamRule:
    """One auth handler as Linux-PAM installs it; ``level`` counts substacks."""

    file: Path
    line: int
    facility: str
    control: str
    module: str
    args: tuple[str, ...]
    actions: tuple[int, ...] = _UNDEF_ACTIONS
    level: int = 0
    substack: bool = False  # the marker PAM puts before a substack's rules; never run
    must_fail: bool = False  # a broken line: PAM installs it, and it always fails
    silent: bool = False  # "-auth": a missing module is not logged (it still fails)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def module_name(self) -> str:
        # As extract_modulename: the file name without its extension. Case matters.
        return os.path.basename(self.module).split(".", 1)[0]

    def outcomes(self) -> frozenset[int]:
        """The codes this rule can give a caller who does not know the password."""
        if self.must_fail:
            return frozenset({MUST_FAIL})
        name = self.module_name
        if name in ALWAYS_SUCCEEDS:
            codes = frozenset({SUCCESS})
        elif name in PASSWORD_FREE:
            codes = ANY_CODE
        else:
            codes = KNOWN_ANSWERS.get(name, NEEDS_PASSWORD)
        # A "-" line is there because the module may be missing; PAM then
        # returns MODULE_UNKNOWN (the "-" only keeps that out of the log).
        return codes | {MODULE_UNKNOWN} if self.silent else codes

    def __str__(self) -> str:
        return f"{self.where}: {self.facility} {self.control} {' '.join((self.module, *self.args))}".rstrip()


class PamStackError(Exception):
    """The stack cannot be read as PAM would read it; the message names file:line."""


@dataclass(frozen=True)
class ServiceCheck:
    """The verdict on one service: ``reason`` is None when it is safe to use."""

    service: str
    source: Path | None
    rules: tuple[PamRule, ...]
    reason: str | None


# -- reading -------------------------------------------------------------------


def pam_lines(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each configuration line, as _pam_assemble_line joins them.

    Blank and comment lines are skipped, even inside a continuation; ``#``
    ends the line wherever it is; a trailing backslash joins the next line.
    """
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(errors="surrogateescape").split("\n"), 1):
        text = raw.lstrip(" \t")
        if not text or text.startswith("#"):
            continue
        if not pending:
            start = number
        if "#" in text:
            pending.append(text.split("#", 1)[0])
        else:
            text = text.rstrip(" \t")
            if text.endswith("\\"):
                pending.append(text[:-1] + " ")
                continue
            pending.append(text)
        lines.append((start, "".join(pending)))
        pending = []
    if pending:
        raise PamStackError(f"{path}:{start}: the last line ends with a backslash; PAM drops it")
    return lines


def pam_tokens(line: str) -> list[str]:
    """The line split as _pam_tokenize does: "[...]" is one token, up to the first "]"."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t\n":
            i += 1
        if i >= n:
            return tokens
        if line[i] == "[":
            token, i = [], i + 1
            while i < n and line[i] != "]":
                if line[i] == "\\" and line[i + 1 : i + 2] == "]":
                    i += 1
                token.append(line[i])
                i += 1
            tokens.append("".join(token))
            i += 1  # the "]" (or the end)
        else:
            end = i
            while end < n and line[end] not in " \t\n":
                end += 1
            tokens.append(line[i:end])
            i = end + 1


def parse_control(control: str) -> tuple[int, ...]:
    """The action for each return code of a "[value=action ...]" control (_pam_parse_control).

    Names are case-sensitive and matched by prefix, as in libpam; any syntax
    error makes every action "bad". Codes not named get "bad" too.
    """
    actions = list(_UNDEF_ACTIONS)
    names = (*PAM_RETURNS, "default")
    rest = control
    while rest.strip():
        rest = rest.lstrip()
        code = next((i for i, name in enumerate(names) if rest.startswith(name)), None)
        if code is None:
            return (BAD,) * len(PAM_RETURNS)
        rest = rest[len(names[code]) :].lstrip()
        if not rest.startswith("="):
            return (BAD,) * len(PAM_RETURNS)
        rest = rest[1:].lstrip()
        word = next((word for word in PAM_ACTIONS if rest.startswith(word)), None)
        if word is not None:
            action, rest = PAM_ACTIONS[word], rest[len(word) :]
        else:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            if not digits or int(rest[:digits]) == 0:
                return (BAD,) * len(PAM_RETURNS)
            action, rest = int(rest[:digits]), rest[digits:]
        if code == len(PAM_RETURNS):
            actions = [action if a == UNDEF else a for a in actions]
        else:
            actions[code] = action
    return tuple(BAD if a == UNDEF else a for a in actions)


def _keyword_actions(keyword: str) -> tuple[int, ...] | None:
    """The actions of a simple control keyword (compared without case, as strcasecmp)."""
    ok_on_success = {SUCCESS: OK, NEW_AUTHTOK_REQD: OK}
    table = {
        "required": ({**ok_on_success, IGNORE: IGNORE_ACTION}, BAD),
        "requisite": ({**ok_on_success, IGNORE: IGNORE_ACTION}, DIE),
        "optional": (ok_on_success, IGNORE_ACTION),
        "sufficient": ({SUCCESS: DONE, NEW_AUTHTOK_REQD: DONE}, IGNORE_ACTION),
    }.get(keyword.lower())
    if table is None:
        return None
    named, default = table
    return tuple(named.get(code, default) for code in range(len(PAM_RETURNS)))


def find_config(name: str, dirs: tuple[Path, ...]) -> Path | None:
    """The file PAM opens for a service or an include: an absolute path as is, else the first dir that has it."""
    candidates = [Path(name)] if name.startswith("/") else [d / name for d in dirs]
    return next((path for path in candidates if path.exists()), None)


def auth_rules(
    path: Path,
    service: str,
    *,
    pam_conf: bool = False,
    dirs: tuple[Path, ...] = PAM_CONFIG_DIRS,
    depth: int = 0,
    level: int = 0,
) -> list[PamRule]:
    """The auth handlers ``service`` gets from one file, includes expanded.

    With ``pam_conf`` the file is /etc/pam.conf, whose first column names the
    service (compared without case, as strcasecmp).
    """
    target: list[PamRule] = []
    for number, line in pam_lines(path):
        tokens = pam_tokens(line)
        where = f"{path}:{number}"
        if pam_conf:
            if tokens[0].lower() != service:
                continue
            tokens = tokens[1:]
        elif tokens[0].lower() == "@include":
            # Debian's @include (case-insensitive on Debian 12's libpam): every
            # line of the file, for each type, at this substack level.
            if len(tokens) < 2:
                raise PamStackError(f"{where}: @include without a file name")
            target += _included(tokens[1], where, service, dirs, depth, level)
            continue
        if not tokens:
            # A pam.conf line with only a service name: PAM installs a failing auth handler.
            target.append(PamRule(path, number, "auth", "", "", (), (BAD,) * len(PAM_RETURNS), level, must_fail=True))
            continue
        facility, silent = tokens[0], tokens[0].startswith("-")
        facility = facility[1:] if silent else facility
        known = facility.lower() in ("auth", "account", "session", "password")
        if known and facility.lower() != "auth":
            continue
        # An unknown type ("auht") becomes a failing handler in every stack PAM
        # reads the file for, the auth stack included.
        must_fail = not known
        control = tokens[1] if len(tokens) > 1 else ""
        module, args = (tokens[2] if len(tokens) > 2 else ""), tuple(tokens[3:])
        if control.lower() in ("include", "substack"):
            if not module:
                raise PamStackError(f"{where}: {control} without a file name")
            substack = control.lower() == "substack"
            if substack:
                target.append(PamRule(path, number, "auth", control, module, args, level=level, substack=True))
            target += _included(module, where, service, dirs, depth, level + substack)
            continue
        actions = _keyword_actions(control) if control else (BAD,) * len(PAM_RETURNS)
        if actions is None:
            actions = parse_control(control)
        must_fail = must_fail or not module
        rule = PamRule(path, number, "auth", control, module, args, actions, level, must_fail=must_fail, silent=silent)
        target.append(rule)
    return target


def _included(name: str, where: str, service: str, dirs: tuple[Path, ...], depth: int, level: int) -> list[PamRule]:
    if depth + 1 >= PAM_INCLUDE_DEPTH:
        raise PamStackError(f"{where}: includes nested {PAM_INCLUDE_DEPTH} deep (a loop?); PAM would fail")
    path = find_config(name, dirs)
    if path is None:
        tried = name if name.startswith("/") else " or ".join(str(d / name) for d in dirs)
        raise PamStackError(f"{where}: includes {name!r}, but there is no {tried}")
    return auth_rules(path, service, dirs=dirs, depth=depth + 1, level=level)


# -- judging -------------------------------------------------------------------


def password_free_success(rules: tuple[PamRule, ...] | list[PamRule]) -> list[tuple[PamRule, int]] | None:
    """A run of the stack that ends in PAM_SUCCESS without the password, or None.

    The run is the (rule, returned code) pairs, as _pam_dispatch_aux would walk
    them for pam_authenticate; every module may return any code in its
    ``outcomes()``. The search is over (position, impression, status, saved
    substack states), which is finite, so it always ends.
    """
    rules = list(rules)
    undef, positive, negative = 0, 1, -1
    # (impression, status) saved on entering each substack level.
    Saved = tuple[tuple[int, int], ...]
    seen: set[tuple[int, int, int, int, Saved]] = set()

    def skip(i: int, level: int, count: int) -> tuple[int, int]:
        # Past `count` rules of this level (a substack counts as one); returns
        # the last rule skipped and how many could not be skipped.
        while i + 1 < len(rules) and rules[i + 1].level >= level and count > 0:
            i += 1
            while i + 1 < len(rules) and rules[i + 1].level > level:
                i += 1
            count -= 1
        return i, count

    def walk(i: int, prev: int, impression: int, status: int, saved: Saved) -> list[tuple[PamRule, int]] | None:
        if i >= len(rules):
            return [] if status == SUCCESS and impression == positive else None
        key = (i, prev, impression, status, saved)
        if key in seen:
            return None
        seen.add(key)
        rule = rules[i]
        if prev < rule.level:
            saved = (*saved[: rule.level], (impression, status))
        if rule.substack:
            return walk(i + 1, rule.level, impression, status, saved)
        for code in sorted(rule.outcomes()):
            action, imp, st, j = rule.actions[code], impression, status, i
            if action == RESET:
                imp, st = saved[rule.level] if rule.level < len(saved) else (undef, MUST_FAIL)
            elif action in (OK, DONE):
                if imp == undef or (imp == positive and st == SUCCESS):
                    imp, st = positive, code
                if imp == positive and action == DONE:
                    j, _ = skip(i, rule.level, len(rules))
            elif action in (BAD, DIE):
                if imp != negative:
                    imp, st = negative, (MUST_FAIL if code == IGNORE else code)
                if action == DIE:
                    j, _ = skip(i, rule.level, len(rules))
            elif action > 0:
                # In pam_authenticate a jump only moves; it grants nothing.
                j, left = skip(i, rule.level, action)
                if left:
                    imp, st = negative, MUST_FAIL
            run = walk(j + 1, rule.level, imp, st, saved)
            if run is not None:
                return [(rule, code), *run]
        return None

    return walk(0, 0, undef, MUST_FAIL, ((undef, MUST_FAIL),))


def service_name(service: str) -> str:
    """The name PAM looks up: pam_start lower-cases it (and keeps only what follows a "/")."""
    return service.rsplit("/", 1)[-1].lower()


def check_service(service: str, *, dirs: tuple[Path, ...] = PAM_CONFIG_DIRS, pam_conf: Path = PAM_CONF) -> ServiceCheck:
    """Read ``service``'s auth stack as Linux-PAM would and say whether root may use it to check passwords."""
    name = service_name(service)

    def refuse(reason: str, source: Path | None = None, rules: tuple[PamRule, ...] = ()) -> ServiceCheck:
        return ServiceCheck(name, source, rules, reason)

    if "/" in service or name in ("", ".", ".."):
        return refuse(f"{service!r} is not a PAM service name (PAM would look up {name!r})")
    if name in USER_SWITCHING_SERVICES:
        shown = repr(name) if name == service else f"{service!r} (PAM reads it as {name!r})"
        return refuse(f"PAM service {shown} is for switching users: it lets root (the hub) in without a password")
    try:
        if any(d.is_dir() for d in dirs):
            source = find_config(name, dirs)
            if source is None:
                tried = " or ".join(str(d / name) for d in dirs)
                fallback = find_config(PAM_DEFAULT_SERVICE, dirs) or dirs[0] / PAM_DEFAULT_SERVICE
                return refuse(
                    f"PAM service {name!r} does not exist: no {tried}; PAM would fall back to "
                    f"{PAM_DEFAULT_SERVICE!r} ({fallback})"
                )
            rules = tuple(auth_rules(source, name, dirs=dirs))
        else:
            source = pam_conf
            rules = tuple(auth_rules(pam_conf, name, pam_conf=True, dirs=dirs))
    except PamStackError as e:
        return refuse(f"the auth stack of PAM service {name!r} cannot be read as PAM would: {e}")
    except (OSError, ValueError) as e:
        return refuse(f"the auth stack of PAM service {name!r} cannot be read: {e}")
    if not any(not rule.substack for rule in rules):
        return refuse(
            f"PAM service {name!r} has no auth rules in {source}; PAM would use those of {PAM_DEFAULT_SERVICE!r}",
            source,
            rules,
        )
    try:
        run = password_free_success(rules)
    except RecursionError:  # one Python frame per rule: thousands of rules
        return refuse(f"PAM service {name!r} has too many auth rules ({len(rules)}) to judge", source, rules)
    if run is not None:
        return refuse(_explain(name, run), source, rules)
    return ServiceCheck(name, source, rules, None)


def _explain(name: str, run: list[tuple[PamRule, int]]) -> str:
    granted = [rule for rule, code in run if code == SUCCESS]
    reasons = "; ".join(f"{rule} — {rule.module_name} {PASSWORD_FREE.get(rule.module_name, '')}" for rule in granted)
    return f"PAM service {name!r}: its auth stack can succeed without the password: {reasons}"


def unsafe_service_reason(
    service: str, *, dirs: tuple[Path, ...] = PAM_CONFIG_DIRS, pam_conf: Path = PAM_CONF
) -> str | None:
    """Why ``service`` must not be used to check passwords as root, or None.

    A service that does not exist is refused too: PAM would quietly use
    ``other`` instead, which is not what the administrator configured.
    """
    return check_service(service, dirs=dirs, pam_conf=pam_conf).reason
