"""pamkrb's benchmark suite: `make bench`, or `python bench/run.py [--quick]` as root.

Runs nine comparisons side by side, each with its own loopback realm, users and
hubs (tools/sandbox/), and writes RESULTS.md and results.png into bench/
(with --quick: into test-artifacts/bench-quick/, so a smoke run never replaces
the committed results). It measures and reports; it never fails on a timing.
See bench/README.md for what each comparison measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPARISONS = (
    "hot_path",
    "renewal",
    "hub_login",
    "kdc_load",
    "event_loop",
    "memory",
    "broker",
    "hadoop",
    "hadoop_suite",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N everywhere (~2 minutes), for development")
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(COMPARISONS)} (the report then covers only those)",
    )
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md, results.png and results.json")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge this run's comparisons into the results.json already in the output directory, keeping the others",
    )
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="measure nothing: rewrite RESULTS.md and results.png from the results.json in the output directory",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one field of the plan (comparisons.Plan), e.g. broker_users=300 or "
        "broker_variants='as shipped,db on tmpfs' (a tuple field takes a comma-separated list)",
    )
    args = parser.parse_args()
    if args.rerender:
        import report

        output = args.output or (REPO / "test-artifacts" / "bench-quick" if args.quick else REPO / "bench")
        results = json.loads((output / "results.json").read_text())
        (output / "RESULTS.md").write_text(report.markdown(results))
        report.chart(results, output / "results.png")
        print(report.summary(results))
        return 0
    if os.geteuid() != 0:
        print("bench: must run as root (creates Unix users, runs PAM, starts a KDC and hubs)", file=sys.stderr)
        return 2
    only = COMPARISONS if not args.only else tuple(args.only.split(","))
    unknown = set(only) - set(COMPARISONS)
    if unknown:
        parser.error(f"unknown comparison(s): {', '.join(sorted(unknown))}")

    # tools/ holds the sandbox package, shared with the tests; bench/ is already on the path.
    sys.path.insert(0, str(REPO / "tools"))
    import comparisons
    import hadoop
    import harness
    import report

    plan = overridden(comparisons.QUICK if args.quick else comparisons.Plan(), args.set, parser)
    output = args.output or (REPO / "test-artifacts" / "bench-quick" if args.quick else REPO / "bench")
    output.mkdir(parents=True, exist_ok=True)

    results: dict = {
        "quick": args.quick,
        "plan": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(plan).items()},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "versions": report.versions(),
        "load_start": os.getloadavg(),
        "busy_start": harness.busy_processes(),
        "comparisons": {},
        "seconds": {},
        "load_before": {},
        "busy_before": {},
    }
    started = time.perf_counter()
    for name in only:
        print(f"bench: {name} ...", flush=True)
        results["load_before"][name] = os.getloadavg()[0]
        results["busy_before"][name] = harness.busy_processes(top=4)
        began = time.perf_counter()
        # Issue 19's PySpark-on-HDFS figures live in hadoop.py.
        results["comparisons"][name] = getattr(hadoop if name.startswith("hadoop") else comparisons, name)(plan)
        results["seconds"][name] = time.perf_counter() - began
        print(f"bench: {name} done in {results['seconds'][name]:.0f} s", flush=True)
    results["total_seconds"] = time.perf_counter() - started
    results["load_end"] = os.getloadavg()
    results["busy_end"] = harness.busy_processes()

    if args.merge and (output / "results.json").exists():
        results = merged(json.loads((output / "results.json").read_text()), results)
    (output / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (output / "RESULTS.md").write_text(report.markdown(results))
    report.chart(results, output / "results.png")
    print(report.summary(results))
    print(f"bench: wrote {output / 'RESULTS.md'} and {output / 'results.png'}")
    return 0


def overridden(plan: Any, settings: list[str], parser: argparse.ArgumentParser) -> Any:
    """``plan`` with each ``FIELD=VALUE`` of ``--set`` applied, the value converted to the field's type."""
    changes: dict[str, Any] = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        current = getattr(plan, name, None)
        if not sep or current is None:
            parser.error(f"--set {setting}: not FIELD=VALUE with a field of the plan")
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            changes[name] = tuple(kind(part.strip()) for part in value.split(","))
        elif isinstance(current, bool):
            changes[name] = value.lower() in ("1", "true", "yes")
        else:
            changes[name] = type(current)(value)
    return dataclasses.replace(plan, **changes)


def merged(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s comparisons in place of (or beside) its own; the run is noted under "merged"."""
    if old["quick"] != new["quick"]:
        raise SystemExit("bench: --merge: cannot merge a --quick run with a full one")
    for key in ("comparisons", "seconds", "load_before", "busy_before", "plan"):
        old[key].update(new[key])
    old.setdefault("merged", []).append(
        {
            "comparisons": list(new["comparisons"]),
            "date": new["date"],
            "pamkrb": new["versions"]["pamkrb"],
            "total_seconds": new["total_seconds"],
            "load_start": new["load_start"],
            "load_end": new["load_end"],
        }
    )
    return old


if __name__ == "__main__":
    sys.exit(main())
