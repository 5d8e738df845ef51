"""Child process of the broker comparison: N simulated single-user servers
that get their tickets from the hub's ticket broker.

Run by ``bench/run.py``; reads one JSON object from stdin and prints one
JSON object. The hub has started the users' servers (``token_spawner``);
each simulated server reads the API token its spawn wrote into a root-only
directory (a token never appears on a command line). Each
simulated server is what the pamkrb server extension runs with
``ticket_broker`` on, minus jupyter_server: a :class:`TicketRefresher` whose
source is :func:`pamkrb.delivery.fetch_from_hub` (GET
``<hub>/hub/api/pamkrb/ticket`` with the server's token, then
``install_cache`` into the server's own cache), and one timer that follows
the ticket (``trigger``, then sleep ``next_check_delay()``), exactly as
``serverextension._check`` reschedules it. The servers start one after
another, spread evenly over one renewal period, as servers started at random
times would be. The hub is reached at its own port (``hub_bind_url``), as
``JUPYTERHUB_API_URL`` points servers there.

Every fetch is recorded as (wall time, HTTP status or error, seconds); the
timer's lateness (how long after its due time a server's timer ran) shows
whether this process kept up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pamkrb.delivery import fetch_from_hub
from pamkrb.exceptions import TicketDeliveryError
from pamkrb.keeper import Target
from pamkrb.lifecycle import TicketSettings
from pamkrb.refresher import TicketRefresher


def recording_source(environ: dict[str, str], events: list[tuple[float, Any, float]]) -> Any:
    """fetch_from_hub for one server, recording each fetch."""

    def source(target: Target, deadline: float) -> Any:
        at, started = time.time(), time.perf_counter()
        try:
            installed = fetch_from_hub(target.principal, target.ccache, deadline, environ)
        except TicketDeliveryError as e:
            events.append((at, e.status or "unreachable", time.perf_counter() - started))
            raise
        except Exception as e:  # what the hub sent did not install: recorded, then the refresher's to report
            events.append((at, type(e).__name__, time.perf_counter() - started))
            raise
        events.append((at, 200, time.perf_counter() - started))
        return installed

    return source


async def token_of(path: str, deadline: float) -> str:
    """The server's API token, once its spawn has written it (``TokenOnlySpawner``)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await asyncio.to_thread(Path(path).read_text)
        except FileNotFoundError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def serve(job: dict[str, Any]) -> dict[str, Any]:
    users = job["users"]
    count = len(users)
    events: list[tuple[float, Any, float]] = []  # list.append is atomic: the attempt threads append
    lateness: list[float] = []
    token_waits: list[float] = []
    refreshers: list[TicketRefresher] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop_at = job["stop_at"]

    async def server(index: int, name: str, principal: str) -> None:
        due = start + job["spread"] * index / count
        await asyncio.sleep(max(0.0, due - loop.time()))
        # The token the hub issued to this user's server (started before).
        token = await token_of(os.path.join(job["token_dir"], name), due + 300)
        token_waits.append(loop.time() - due)
        settings = TicketSettings(
            principal=principal,
            keytab="",
            ccache=os.path.join(job["ccache_dir"], f"krb5cc_{name}"),
            refresh_margin=job["margin"],
            refresh_interval=job["interval"],
            kdc_timeout=job["kdc_timeout"],
            broker=True,
        )
        environ = {"JUPYTERHUB_API_URL": job["api_url"], "JUPYTERHUB_API_TOKEN": token}
        refresher = TicketRefresher(settings, source=recording_source(environ, events))
        refreshers.append(refresher)
        due, reason = loop.time(), "start"
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            lateness.append(loop.time() - due)
            await refresher.trigger(reason)
            delay = refresher.next_check_delay()
            if time.time() + delay >= stop_at:
                return
            due, reason = loop.time() + delay, "timer"

    await asyncio.gather(*(server(i, name, principal) for i, (name, principal) in enumerate(users)))
    lateness.sort()
    token_waits.sort()
    return {
        "events": events,
        "triggers": sum(sum(r.triggers.values()) for r in refreshers),
        "renewals": sum(r.renewals for r in refreshers),
        "failing_at_end": sum(1 for r in refreshers if r.failures),
        "timer_lateness_p99": lateness[int(0.99 * (len(lateness) - 1))] if lateness else 0.0,
        "timer_lateness_max": lateness[-1] if lateness else 0.0,
        "spawn_wait_p50": token_waits[len(token_waits) // 2] if token_waits else 0.0,
        "spawn_wait_max": token_waits[-1] if token_waits else 0.0,
    }


def main() -> None:
    job = json.load(sys.stdin)
    # The refreshers log failed fetches as warnings; the parent keeps stderr's tail.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(message)s")
    result = asyncio.run(serve(job))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
