"""Reading a PAM service's stack to spot a password-less way in.

The hub runs as root. A service whose auth stack contains ``pam_rootok``
(``su``, ``runuser``, …) accepts any password from root, so every login
would succeed. The authenticator refuses such a service at start-up and
``pamkrb doctor`` reports it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PAM_DIR = Path("/etc/pam.d")
# Services whose purpose is switching users: they let root in without a
# password (pam_rootok) or trust group membership instead of a password.
USER_SWITCHING_SERVICES = frozenset({"su", "su-l", "sudo", "sudo-i", "runuser", "runuser-l", "pkexec", "polkit-1"})
# How deep @include/include/substack chains are followed; real stacks use one level.
PAM_INCLUDE_DEPTH = 4
_PAM_TOKEN = re.compile(r"\[[^\]]*\]|[^\s\[]+")


@dataclass(frozen=True)
class PamRule:
    file: Path
    line: int
    facility: str
    control: str
    module: str
    args: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class PamStackError(Exception):
    pass


def password_free_path(rule: PamRule) -> str | None:
    """Why this auth rule lets someone in without a password, or None."""
    module = os.path.basename(rule.module)
    if module == "pam_rootok.so":
        return "pam_rootok lets root (the hub) in without a password"
    if module == "pam_wheel.so" and "trust" in rule.args:
        return "pam_wheel trust lets wheel members in without a password"
    if module == "pam_permit.so" and rule.control == "sufficient":
        return "pam_permit as sufficient accepts any password"
    return None


def pam_stack(service: str, facility: str, depth: int = 0) -> list[PamRule]:
    """The ``facility`` rules of /etc/pam.d/<service>, includes expanded."""
    if depth > PAM_INCLUDE_DEPTH:
        raise PamStackError(f"includes nested deeper than {PAM_INCLUDE_DEPTH} levels at {service}")
    if "/" in service:
        raise PamStackError(f"include of a path ({service}) is not supported")
    path = PAM_DIR / service
    rules: list[PamRule] = []
    for number, tokens in _pam_lines(path):
        if tokens[0] == "@include":
            if len(tokens) != 2:
                raise PamStackError(f"{path}:{number}: malformed @include")
            rules += pam_stack(tokens[1], facility, depth + 1)
            continue
        if len(tokens) < 3:
            raise PamStackError(f"{path}:{number}: malformed rule")
        rule_facility = tokens[0].lstrip("-").lower()
        if rule_facility != facility:
            continue
        control, module, args = tokens[1], tokens[2], tuple(tokens[3:])
        if control in ("include", "substack"):
            rules += pam_stack(module, facility, depth + 1)
        else:
            rules.append(PamRule(path, number, rule_facility, control, module, args))
    return rules


def _pam_lines(path: Path):
    """(line number, tokens) of each rule; comments, continuations and [..] controls handled."""
    text = path.read_text(errors="replace")
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        tokens = _pam_tokens(line)
        if tokens:
            yield start, tokens


def _pam_tokens(line: str) -> list[str]:
    # A control may be a bracketed list with spaces: [success=1 default=ignore].
    return _PAM_TOKEN.findall(line)


def unsafe_service_reason(service: str) -> str | None:
    """Why ``service`` must not be used to check passwords as root, or None.

    A missing service file is not judged here: PAM then falls back to
    /etc/pam.d/other, and the first login reports the problem.
    """
    if service in USER_SWITCHING_SERVICES:
        return f"PAM service {service!r} is for switching users: it lets root (the hub) in without a password"
    if "/" in service or service in ("", ".", ".."):
        return f"{service!r} is not a PAM service name"
    if not (PAM_DIR / service).is_file():
        return None
    try:
        rules = pam_stack(service, "auth")
    except (OSError, PamStackError) as e:
        return f"the auth stack of PAM service {service!r} cannot be read: {e}"
    for rule in rules:
        why = password_free_path(rule)
        if why:
            return f"PAM service {service!r}: {why} ({rule.where}: {rule.control} {rule.module})"
    return None
