"""Prometheus metrics, in the default registry: JupyterHub serves it on
/hub/metrics and jupyter_server on <base url>metrics.

Acquisitions are the tickets the hub gets at login or sign-in (from the
keytab or the password); renewals are every later ticket, by a TGS renewal,
from the keytab or from the hub's ticket broker, whether the hub gets it
(spawn, refresh, broker, delivery) or the user's server (open, save, kernel,
timer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from prometheus_client import Counter, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 10, 30)

TICKET_ACQUISITIONS = Counter(
    "pamkrb_ticket_acquisitions_total",
    "Kerberos tickets obtained at login or sign-in, from users' keytabs or passwords",
    ["result", "trigger"],
)
TICKET_ACQUISITION_DURATION = Histogram(
    "pamkrb_ticket_acquisition_duration_seconds",
    "Time to obtain and install a ticket at login",
    ["result", "trigger"],
    buckets=_BUCKETS,
)
TICKET_RENEWALS = Counter(
    "pamkrb_ticket_renewals_total",
    "Kerberos tickets renewed after login: by TGS renewal, from users' keytabs, or from the hub",
    ["result", "trigger"],
)
TICKET_RENEWAL_DURATION = Histogram(
    "pamkrb_ticket_renewal_duration_seconds",
    "Time to renew and install a ticket",
    ["result", "trigger"],
    buckets=_BUCKETS,
)
TICKET_CHECKS = Counter(
    "pamkrb_ticket_checks_total",
    "Freshness checks of a user's credential cache, by trigger",
    ["trigger"],
)

CACHE_PLANTS = Counter(
    "pamkrb_cache_plants_total",
    "Entries found at a user's cache path that were not the user's own cache "
    "(symlinks, hard links, directories, other users' files) and were replaced",
    ["kind"],
)


def count_plant(kind: str) -> None:
    """Count one replaced plant. The native layer names a wrong mode with its
    value ("file with mode 0644"); the label keeps a fixed set of kinds."""
    if kind.startswith("file with mode"):
        kind = "file with a wrong mode"
    CACHE_PLANTS.labels(kind=kind).inc()


@cache
def _checks(trigger: str) -> Counter:
    return TICKET_CHECKS.labels(trigger=trigger)


def count_check(trigger: str) -> None:
    """Count one freshness check. Runs on every open and save, so the
    labelled child is looked up once per trigger name, not on each call."""
    _checks(trigger).inc()


def record(kind: str, trigger: str, result: str, seconds: float) -> None:
    """Count one acquisition (kind "acquisition") or renewal ("renewal")."""
    if kind == "acquisition":
        counter, histogram = TICKET_ACQUISITIONS, TICKET_ACQUISITION_DURATION
    else:
        counter, histogram = TICKET_RENEWALS, TICKET_RENEWAL_DURATION
    counter.labels(result=result, trigger=trigger).inc()
    histogram.labels(result=result, trigger=trigger).observe(seconds)


@contextmanager
def timed(kind: str, trigger: str) -> Iterator[None]:
    """Record the enclosed kinit as a success, or a failure if it raises."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        record(kind, trigger, "failure", time.perf_counter() - started)
        raise
    record(kind, trigger, "success", time.perf_counter() - started)
