"""Under ``CI=1`` (``.ci/run`` sets it) a skip is a failure.

Tests skip themselves, with a reason, when something they need is missing:
root, chromium, pam_oath, /dev/fuse, libfaketime, a PAM service file. On a
developer's machine that is the honest outcome. In CI it would let a run
pass while whole tiers of tests never ran, so there the skip fails the test
instead, and the failure names what is missing; ``tools/setup.sh`` is where
it gets installed. An expected failure (``xfail``) is not a skip and is left
alone.

tests/conftest.py imports the two hooks; ``-p ci_skips`` loads them anywhere
else (tests/test_ci_skips.py does that to test them).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

OFF_VALUES = ("", "0", "false", "no")


def ci_enabled() -> bool:
    return os.environ.get("CI", "").strip().lower() not in OFF_VALUES


def _skip_reason(longrepr: Any) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, message = longrepr
        return f"{message.removeprefix('Skipped: ')} ({path}:{line + 1 if isinstance(line, int) else line})"
    return str(longrepr)


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=1, which must not pass a skip: {_skip_reason(report.longrepr)}\n"
        "tools/setup.sh should install what is missing (or the test should not need it)."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and ci_enabled():
        _fail_the_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    # A module that skips itself whole (pytest.skip(allow_module_level=True),
    # importorskip) is reported at collection.
    report = yield
    if report.skipped and ci_enabled():
        _fail_the_skip(report)
    return report
