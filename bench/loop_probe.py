"""What the broker comparison's hub spends its event loop on; imported by the hub's config.

Counts that do not depend on how busy the shared machine is, next to the
latencies that do:

- every callback the hub's event loop runs is timed (``asyncio.Handle._run``
  wrapped; ~1 µs each): how many, the total time, and the time in callbacks
  slower than ``SLOW`` (the ones a ``/hub/health`` probe would wait behind),
  with the slowest callbacks' names, like asyncio's debug mode
  (``loop.slow_callback_duration``) without the rest of its overhead;
- every SQLAlchemy commit and flush (``Session.commit``, timed) by the thread
  that made it, so commits on the loop are told apart from any elsewhere,
  and which handler class was running (the request that caused it).

A daemon thread writes the totals as JSON to a file every second (atomic
replace), so the benchmark reads them at the window's start and end while
the hub runs. The hub's config calls :func:`start`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from typing import Any

SLOW = 0.05  # seconds: a callback this long delays a probe past the goal

_lock = threading.Lock()
_totals: dict[str, Any] = {
    "callbacks": 0,
    "callback_seconds": 0.0,
    "slow_callbacks": 0,
    "slow_callback_seconds": 0.0,
    "commits_on_loop": 0,
    "commit_seconds_on_loop": 0.0,
    "commits_elsewhere": 0,
    "commit_seconds_elsewhere": 0.0,
}
_slow_by_name: Counter[str] = Counter()
_slow_seconds_by_name: Counter[str] = Counter()
_commits_by_caller: Counter[str] = Counter()
_loop_thread: int | None = None
_current: list[str] = [""]  # the name of the callback running on the loop


def _name(handle: Any) -> str:
    callback = getattr(handle, "_callback", None)
    target = getattr(callback, "__self__", None)
    coro = getattr(target, "get_coro", lambda: None)() if target is not None else None
    if coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None:
            return f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
    return getattr(callback, "__qualname__", repr(callback))[:120]


def _install() -> None:
    original_run = asyncio.events.Handle._run

    def timed_run(self: Any) -> None:
        global _loop_thread
        if _loop_thread is None:
            _loop_thread = threading.get_ident()
        started = time.perf_counter()
        try:
            original_run(self)
        finally:
            spent = time.perf_counter() - started
            with _lock:
                _totals["callbacks"] += 1
                _totals["callback_seconds"] += spent
                if spent >= SLOW:
                    name = _name(self)
                    _totals["slow_callbacks"] += 1
                    _totals["slow_callback_seconds"] += spent
                    _slow_by_name[name] += 1
                    _slow_seconds_by_name[name] += spent

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]

    from sqlalchemy.orm import Session

    original_commit = Session.commit

    def timed_commit(self: Any) -> None:
        started = time.perf_counter()
        try:
            original_commit(self)
        finally:
            spent = time.perf_counter() - started
            where = "on_loop" if threading.get_ident() == _loop_thread else "elsewhere"
            caller = _caller()
            with _lock:
                _totals[f"commits_{where}"] += 1
                _totals[f"commit_seconds_{where}"] += spent
                _commits_by_caller[caller] += 1

    Session.commit = timed_commit  # type: ignore[method-assign]


def _caller() -> str:
    """The first frame outside SQLAlchemy and this file: who committed."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if "sqlalchemy" not in filename and not filename.endswith("loop_probe.py"):
            return f"{frame.f_code.co_qualname} ({os.path.basename(filename)}:{frame.f_lineno})"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def snapshot() -> dict[str, Any]:
    with _lock:
        return {
            **_totals,
            "slow_by_name": dict(_slow_by_name.most_common(15)),
            "slow_seconds_by_name": {k: round(v, 3) for k, v in _slow_seconds_by_name.most_common(15)},
            "commits_by_caller": dict(_commits_by_caller.most_common(15)),
            "at": time.time(),
        }


def _writer(path: str) -> None:
    while True:
        time.sleep(1.0)
        temp = f"{path}.tmp"
        with open(temp, "w") as f:
            json.dump(snapshot(), f)
        os.replace(temp, path)


def start(path: str) -> None:
    """Time the loop's callbacks and the commits from now on; totals to ``path`` every second."""
    _install()
    threading.Thread(target=_writer, args=(path,), daemon=True, name="loop-probe").start()
