"""Login passwords between PAM and the ticket step (the password source).

JupyterHub checks who may log in (allowed and blocked users) between
``authenticate`` and ``run_post_auth_hook``; a password ticket is made only
after that, from the password PAM accepted. It waits here, by request (one
login per request), with the name PAM authenticated, and is wiped when used
or PENDING_PASSWORD_SECONDS later at the latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# No login takes this long between PAM and the ticket; after it the password
# is wiped whether or not the login went on.
PENDING_PASSWORD_SECONDS = 120


@dataclass
class PendingPassword:
    """A login's password between PAM and the ticket step."""

    username: str
    password: bytearray
    timer: asyncio.TimerHandle | None = None

    def wipe(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.password[:] = bytes(len(self.password))


class PendingPasswords:
    """The passwords of logins in progress, by request."""

    def __init__(self) -> None:
        self._pending: dict[int, PendingPassword] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def stash(self, handler: Any, username: str, password: bytearray) -> None:
        key = id(handler)
        self._drop(key)
        pending = PendingPassword(username, password)
        self._pending[key] = pending
        # A login that passes PAM but is then refused (not allowed, blocked)
        # never takes its password: it is wiped here at the latest.
        pending.timer = asyncio.get_running_loop().call_later(PENDING_PASSWORD_SECONDS, self._drop, key, pending)

    def _drop(self, key: int, only: PendingPassword | None = None) -> None:
        pending = self._pending.get(key)
        if pending is None or (only is not None and pending is not only):
            return
        del self._pending[key]
        pending.wipe()

    def take(self, handler: Any, username: str, normalize: Callable[[str], str]) -> bytearray | None:
        """The password this request's login was checked with, if the name
        that reached the ticket step is the one PAM authenticated (after
        JupyterHub's ``normalize``); wiped otherwise."""
        pending = self._pending.pop(id(handler), None)
        if pending is None:
            return None
        if pending.timer is not None:
            pending.timer.cancel()
        if normalize(pending.username) != username:
            pending.wipe()
            return None
        return pending.password
