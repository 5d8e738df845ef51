"""The broker comparison's spawner: a "server" that is only its API token.

The ticket API answers only the token JupyterHub issued to one of the user's
*running* servers (``ticket_api.is_running_servers_token``), so the
simulated servers need real spawns: the hub creates each server's token, its
OAuth client and its proxy route, and runs pamkrb's ``pre_spawn_start`` (the
spawn's ticket, brokering starts), exactly as for a real server. Nothing is
started: ``start`` hands the token to the benchmark through a file in a
root-only directory (the simulated servers read it; a token never appears on
a command line) and returns the hub's own address, which answers JupyterHub's
"is the server up" request like any HTTP server. ``poll`` reports the server
running until ``stop``.
"""

from __future__ import annotations

import os

from jupyterhub.spawner import Spawner
from traitlets import Unicode


class TokenOnlySpawner(Spawner):  # type: ignore[misc]  # JupyterHub is untyped
    token_directory = Unicode(
        "",
        config=True,
        help="Directory (root's, 0700) where start() writes <username> holding the server's API token.",
    )

    _running = False

    async def start(self) -> tuple[str, int]:
        path = os.path.join(self.token_directory, self.user.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.api_token)
        self._running = True
        return (self.hub.ip or "127.0.0.1", self.hub.port)

    async def poll(self) -> int | None:
        return None if self._running else 0

    async def stop(self, now: bool = False) -> None:
        self._running = False
