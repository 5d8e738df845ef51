"""Observations for the hardening tests: the full state of a file, credential
caches and pamkrb temp files in a directory, a process's descendants, the
hub's latency under load and its Prometheus metrics."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .hub import Hub
from .process import SandboxError


@dataclasses.dataclass(frozen=True)
class FileState:
    """Everything about a file that a write through it would change."""

    kind: int
    uid: int
    gid: int
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    content: bytes | None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileState:
        st = os.lstat(path)
        content = None
        if stat.S_ISREG(st.st_mode):
            content = Path(path).read_bytes()
        return cls(
            stat.S_IFMT(st.st_mode),
            st.st_uid,
            st.st_gid,
            stat.S_IMODE(st.st_mode),
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            content,
        )


# What pamkrb puts between a cache's name and the random suffix of its temporary file.
TEMP_MARKER_PAMKRB = ".pamkrb-"


def credential_entries(directory: str | os.PathLike[str] = "/tmp") -> set[str]:
    """Names in ``directory`` that look like credential caches or pamkrb temp files."""
    return {
        name for name in os.listdir(directory) if name.startswith(("krb5cc_", ".krb5cc_")) or TEMP_MARKER_PAMKRB in name
    }


def pamkrb_temp_files(directory: str | os.PathLike[str] = "/tmp", uids: set[int] | None = None) -> list[str]:
    """pamkrb temporary cache files (``.<name>.pamkrb-<hex>``) in ``directory``,
    optionally only those of caches named ``krb5cc_<uid>`` for ``uids``."""
    found = []
    for name in os.listdir(directory):
        if TEMP_MARKER_PAMKRB not in name:
            continue
        if uids is not None and not any(name.startswith(f".krb5cc_{uid}{TEMP_MARKER_PAMKRB}") for uid in uids):
            continue
        found.append(name)
    return found


def child_processes(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every descendant of ``pid``."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append((child, commands.get(child, "")))
                frontier.append(child)
    return found


class LatencyProbe:
    """GETs ``url`` every ``interval`` seconds on a thread; records latency and status.

    A request that fails or times out counts as its full duration with status 0,
    so a hub that stops answering shows up as a high percentile, not a gap.
    """

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 10) -> None:
        import requests

        self.url, self.interval, self.timeout = url, interval, timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status = self.session.get(self.url, timeout=self.timeout).status_code
            except Exception:  # any failure is a sample: the hub did not answer
                status = 0
            elapsed = time.perf_counter() - started
            self.samples.append((elapsed, status))
            self._stop.wait(max(0.0, self.interval - elapsed))

    def __enter__(self) -> LatencyProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.session.close()

    def percentile(self, fraction: float) -> float:
        """Latency in seconds below which ``fraction`` of the samples lie."""
        ordered = sorted(elapsed for elapsed, _ in self.samples)
        if not ordered:
            raise SandboxError(f"no samples of {self.url}")
        # Conservative: with 100 samples, p99 is the largest one.
        index = min(len(ordered) - 1, int(fraction * len(ordered)))
        return ordered[index]


def hub_metric(hub: Hub, name: str, labels: Mapping[str, str]) -> float:
    """Value of one Prometheus sample on the hub's /hub/metrics (0 if absent).

    Needs ``JupyterHub.authenticate_prometheus = False`` in the hub's config.
    """
    text = hub.session().get(f"{hub.url}/hub/metrics", timeout=10).text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        inside = line[len(name) + 1 : line.index("}")]
        if wanted <= set(inside.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total
