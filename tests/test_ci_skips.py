"""The CI=1 hook of tests/ci_skips.py: a skip fails the run and names what is
missing; an xfail, a pass and a run without CI are left as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

SAMPLE = """
import pytest

def test_needs_a_tool():
    pytest.skip("/usr/bin/frobnicate is not installed (apt-get install frobnicate)")

@pytest.fixture
def fuse():
    pytest.skip("no /dev/fuse: cannot mount")

def test_needs_a_device(fuse):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_plain():
    pass
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_module_for_pamkrb")

def test_never_collected():
    pass
"""


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-rA", "--rootdir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    return tmp_path


@pytest.mark.parametrize("ci", ["1", "true"])
def test_under_ci_a_skip_fails_and_names_what_is_missing(sample: Path, ci: str) -> None:
    result = run_pytest(sample, ci)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "skipped" not in out.splitlines()[-1], out
    assert "1 passed" in out, out
    assert "1 xfailed" in out, out
    assert "/usr/bin/frobnicate is not installed (apt-get install frobnicate)" in out
    assert "no /dev/fuse: cannot mount" in out
    assert out.count("skipped under CI=1") >= 2, out


def test_under_ci_a_module_that_skips_itself_is_a_collection_error(tmp_path: Path) -> None:
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    result = run_pytest(tmp_path, "1")
    assert result.returncode == pytest.ExitCode.INTERRUPTED, result.stdout
    assert "skipped under CI=1" in result.stdout
    assert "no_such_module_for_pamkrb" in result.stdout
    assert run_pytest(tmp_path, None).returncode == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize("ci", [None, "", "0"])
def test_without_ci_a_skip_stays_a_skip(sample: Path, ci: str | None) -> None:
    result = run_pytest(sample, ci)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "2 skipped" in out.splitlines()[-1], out
    assert "1 xfailed" in out, out
    assert "skipped under CI=1" not in out
