"""The static check of the wheel (tools/check_wheel.py): it passes the wheel
`make wheel` built, and fails wheels that a careless build would produce."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import check_wheel  # tools/, on the path through pytest.ini

import pamkrb._native


def rewritten(wheel: Path, target: Path, replace: dict[str, bytes | None]) -> Path:
    """A copy of ``wheel`` at ``target`` with members replaced, added or (None) dropped."""
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            if item.filename in replace:
                continue
            copy.writestr(item, source.read(item))
        for name, data in replace.items():
            if data is not None:
                copy.writestr(name, data)
    return target


def test_the_built_wheel_passes(wheel: Path) -> None:
    report = check_wheel.check(wheel, "2.28")
    assert report.problems == []
    assert report.tag.startswith("cp39-abi3-manylinux_2_28_")
    assert tuple(map(int, report.highest_glibc.removeprefix("GLIBC_").split("."))) <= (2, 28)
    assert {"libpam.so.0", "libkrb5.so.3"} <= set(report.needed)


def test_a_module_linked_against_this_machines_glibc_fails(wheel: Path, tmp_path: Path) -> None:
    # The venv's module was built by `pip install .` on Debian 12: glibc 2.36.
    host_built = Path(pamkrb._native.__file__).read_bytes()
    broken = rewritten(wheel, tmp_path / wheel.name, {check_wheel.EXTENSION_MODULE: host_built})
    report = check_wheel.check(broken, "2.28")
    assert any("newer than the floor 2.28" in problem for problem in report.problems), report.problems


def test_a_module_calling_an_unreviewed_kerberos_function_fails(wheel: Path, tmp_path: Path) -> None:
    # libgssapi_krb5 calls many libkrb5 functions pamkrb does not.
    other = Path("/usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2").read_bytes()
    broken = rewritten(wheel, tmp_path / wheel.name, {check_wheel.EXTENSION_MODULE: other})
    problems = check_wheel.check(broken, "2.28").problems
    assert any(
        problem.startswith("imports functions not yet checked against MIT krb5 1.17") and "krb5_" in problem
        for problem in problems
    ), problems


def test_a_bundled_library_fails(wheel: Path, tmp_path: Path) -> None:
    copy = Path("/usr/lib/x86_64-linux-gnu/libkrb5.so.3").read_bytes()
    broken = rewritten(wheel, tmp_path / wheel.name, {"jupyterhub_pamkrb.libs/libkrb5-1a2b3c.so.3.3": copy})
    problems = check_wheel.check(broken, "2.28").problems
    assert any("shared objects in the wheel" in problem for problem in problems), problems
    assert any("bundled library directories" in problem for problem in problems), problems


def test_a_wheel_without_the_server_extension_config_fails(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as source:
        config = next(n for n in source.namelist() if n.endswith("jupyter_server_config.d/pamkrb.json"))
    broken = rewritten(wheel, tmp_path / wheel.name, {config: None})
    problems = check_wheel.check(broken, "2.28").problems
    assert problems == ["missing data/etc/jupyter/jupyter_server_config.d/pamkrb.json"]


def test_a_wheel_tagged_for_this_machines_glibc_fails(wheel: Path, tmp_path: Path) -> None:
    renamed = tmp_path / wheel.name.replace("manylinux_2_28", "manylinux_2_36")
    shutil.copyfile(wheel, renamed)
    problems = check_wheel.check(renamed, "2.28").problems
    assert problems == ["tag promises glibc 2.36, the floor is 2.28"]
