"""The prebuilt JupyterLab/Notebook extension: committed, consistent, and enabled once installed.

The bundle is built by tools/build-labextension.sh (Node.js) and committed under
wheel-data/, so building the wheel needs no Node. These checks are cheap: they
catch a missing or stale build and a wheel that does not install the extension;
the browser tests show that it actually loads. Staleness is judged by content:
the build records the SHA-256 of every file it read (tools/labextension_sources.py)
and the test recomputes them from labextension/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

import labextension_sources

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "labextension"
PREBUILT = REPO / "wheel-data" / "data" / "share" / "jupyter" / "labextensions" / "pamkrb"
REBUILD = "tools/build-labextension.sh"
# The environment running the tests (under `make test`, /opt/pamkrb/venv): the
# installed-package check below and the `jupyter` command must agree on it.
JUPYTER = Path(sys.prefix) / "bin" / "jupyter"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_prebuilt_extension_is_named_pamkrb_and_loadable():
    package = read_json(PREBUILT / "package.json")
    assert package["name"] == "pamkrb"
    entry = package["jupyterlab"]["_build"]["load"]
    assert (PREBUILT / entry).is_file(), f"{entry} named by package.json is missing: rerun {REBUILD}"


def test_prebuilt_extension_matches_its_source_package():
    source = read_json(SOURCE / "package.json")
    built = read_json(PREBUILT / "package.json")
    for key in ("name", "version", "dependencies"):
        assert built[key] == source[key], f"prebuilt {key} differs from labextension/: rerun {REBUILD}"
    assert (SOURCE / "package-lock.json").is_file()


def test_prebuilt_extension_was_built_from_the_current_sources():
    stamp = PREBUILT / "sources.sha256"
    assert stamp.is_file(), f"{stamp.relative_to(REPO)} is missing: run {REBUILD}"
    built = labextension_sources.parse(stamp.read_text())
    current = labextension_sources.digests(SOURCE)
    changed = sorted(path for path in built.keys() | current.keys() if built.get(path) != current.get(path))
    assert not changed, f"labextension/ changed since the committed build ({', '.join(changed)}): run {REBUILD}"


def test_source_digests_notice_an_edit_and_a_new_file(tmp_path: Path):
    # The staleness check above passes on a clean tree; this shows it would not
    # pass after an edit or an added source file.
    source = tmp_path / "labextension"
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("node_modules", "lib"))
    before = labextension_sources.digests(source)
    assert {"package.json", "package-lock.json", "tsconfig.json", "src/index.ts", "style/index.css"} <= before.keys()
    assert "README.md" not in before
    index = source / "src" / "index.ts"
    index.write_text(index.read_text() + "// edited\n")
    (source / "src" / "extra.ts").write_text("export {};\n")
    (source / "README.md").write_text("not a build input\n")
    after = labextension_sources.digests(source)
    assert {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)} == {
        "src/index.ts",
        "src/extra.ts",
    }
    assert labextension_sources.parse(labextension_sources.render(after)) == after


def test_install_json_names_the_python_package():
    assert read_json(PREBUILT / "install.json") == {
        "packageManager": "python",
        "packageName": "jupyterhub-pamkrb",
        "uninstallInstructions": "pip uninstall jupyterhub-pamkrb",
    }


def test_installed_package_enables_the_extension():
    try:
        distribution("jupyterhub-pamkrb")
    except PackageNotFoundError:
        pytest.skip(f"jupyterhub-pamkrb is not installed in {sys.prefix} (run `make build`)")
    if not JUPYTER.exists():
        pytest.skip(f"no jupyter command in {JUPYTER.parent}: jupyterlab is not installed there")
    env = dict(os.environ, NO_COLOR="1")
    result = subprocess.run(
        [str(JUPYTER), "labextension", "list"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    # The listing goes to stderr, coloured regardless of NO_COLOR in some versions.
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    line = next((x for x in listing.splitlines() if x.split()[:1] == ["pamkrb"]), None)
    assert line is not None, f"pamkrb missing from `jupyter labextension list`:\n{listing}"
    assert "enabled" in line.split()
    assert "OK" in line.split()
    assert "jupyterhub-pamkrb" in line
