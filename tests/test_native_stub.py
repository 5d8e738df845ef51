"""`_native.pyi` describes the built `pamkrb._native`, and nothing else.

mypy checks the Python layer against the stub, so a stub that drifts from
`src/python.rs` makes the type check lie. This compares the two both ways:
every function, class, method, property and constant, each parameter's name,
kind (positional, keyword-only, ...) and default. Types are not compared:
pyo3 exports no annotations, only the text signature.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import pamkrb
from pamkrb import _native

STUB = Path(pamkrb.__file__).with_name("_native.pyi")

_NO_DEFAULT = "<no default>"
Param = tuple[str, str, str]  # (name, kind, repr of the default)


def _stub_params(node: ast.FunctionDef, *, method: bool) -> list[Param]:
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params: list[Param] = []
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        params.append((arg.arg, kind, _literal(default)))
    if a.vararg:
        params.append((a.vararg.arg, "VAR_POSITIONAL", _NO_DEFAULT))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append((arg.arg, "KEYWORD_ONLY", _literal(default)))
    if a.kwarg:
        params.append((a.kwarg.arg, "VAR_KEYWORD", _NO_DEFAULT))
    return params[1:] if method else params


def _literal(node: ast.expr | None) -> str:
    if node is None:
        return _NO_DEFAULT
    try:
        return repr(ast.literal_eval(node))
    except ValueError:
        return f"<not a literal: {ast.unparse(node)}>"


def _native_params(obj: Any, *, method: bool) -> list[Param]:
    params = [
        (p.name, p.kind.name, _NO_DEFAULT if p.default is inspect.Parameter.empty else repr(p.default))
        for p in inspect.signature(obj).parameters.values()
    ]
    return params[1:] if method else params


def _is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def describe_stub(source: str) -> dict[str, Any]:
    """Every public name of a stub: functions and methods with their
    parameters, properties, and constants with their annotation."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = ("function", _stub_params(node, method=False))
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("__"):
                    qualified = f"{node.name}.{member.name}"
                    if _is_property(member):
                        out[qualified] = ("property", None)
                    else:
                        out[qualified] = ("method", _stub_params(member, method=True))
            out[node.name] = ("class", None)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = ("constant", ast.unparse(node.annotation))
    return out


def describe_module(module: ModuleType) -> dict[str, Any]:
    """The same description, of what the built module exports."""
    out: dict[str, Any] = {}
    for name, obj in vars(module).items():
        if name.startswith("__"):
            continue
        if isinstance(obj, type):
            out[name] = ("class", None)
            for member, attr in vars(obj).items():
                if member.startswith("__"):
                    continue
                if inspect.isgetsetdescriptor(attr) or inspect.ismemberdescriptor(attr):
                    out[f"{name}.{member}"] = ("property", None)
                else:
                    out[f"{name}.{member}"] = ("method", _native_params(attr, method=True))
        elif callable(obj):
            out[name] = ("function", _native_params(obj, method=False))
        else:
            out[name] = ("constant", f"Final[{type(obj).__name__}]")
    return out


def stub_drift(source: str, module: ModuleType) -> list[str]:
    """What differs between the stub `source` and `module`, one line each."""
    stub, built = describe_stub(source), describe_module(module)
    drift = [f"{name}: exported by the module, missing from the stub" for name in sorted(built.keys() - stub.keys())]
    drift += [f"{name}: in the stub, not exported by the module" for name in sorted(stub.keys() - built.keys())]
    for name in sorted(stub.keys() & built.keys()):
        if stub[name] != built[name]:
            drift.append(f"{name}: the stub says {stub[name]}, the module has {built[name]}")
    return drift


def test_the_stub_matches_the_built_module():
    assert stub_drift(STUB.read_text(), _native) == []


def test_the_comparison_sees_the_whole_module():
    # Guards the guard: a description that saw nothing would match anything.
    built = describe_module(_native)
    assert built["obtain_ticket"][1][3] == ("uid", "KEYWORD_ONLY", "None")
    assert built["TicketInfo.can_renew"] == (
        "method",
        [("now", "POSITIONAL_OR_KEYWORD", _NO_DEFAULT), ("margin", "POSITIONAL_OR_KEYWORD", "0.0")],
    )
    assert built["KeytabInfo.entries"] == ("property", None)
    assert built["MAX_CACHE_BYTES"] == ("constant", "Final[int]")
    assert len([kind for kind, _ in built.values() if kind == "function"]) >= 13


def _mutate(old: str, new: str) -> str:
    source = STUB.read_text()
    assert source.count(old) == 1, old
    return source.replace(old, new)


# Each synthetic stub differs from the real one in one way the module notices.
OBTAIN_TICKET_KEYWORDS = (
    "    ccache: str,\n    *,\n    uid: int | None = None,\n    gid: int | None = None,\n    lifetime"
)
DRIFTS = [
    pytest.param(
        ("def obtain_ticket(\n    principal: str,\n    keytab: str,\n" + OBTAIN_TICKET_KEYWORDS, None),
        "obtain_ticket: the stub says",
        id="keyword-only marker dropped",
    ),
    pytest.param(
        ('    def is_for(self, principal: str) -> bool:\n        """Whether the ticket', None),
        "TicketInfo.is_for: the stub says",
        id="parameter renamed",
    ),
    pytest.param(
        ("    check_account: bool = True,", "    check_account: bool = False,"),
        "pam_authenticate: the stub says",
        id="default changed",
    ),
    pytest.param(
        ("def default_realm() -> str: ...\n", ""),
        "default_realm: exported by the module, missing from the stub",
        id="function missing",
    ),
    pytest.param(
        ("def check_username(username: str) -> None: ...\n", None),
        "ghost: in the stub, not exported by the module",
        id="function that does not exist",
    ),
    pytest.param(
        ("    @property\n    def enctype_name(self) -> str: ...\n", ""),
        "KeytabEntry.enctype_name: exported by the module, missing from the stub",
        id="property missing",
    ),
    pytest.param(
        ("MAX_CACHE_BYTES: Final[int]", "MAX_CACHE_BYTES: Final[str]"),
        "MAX_CACHE_BYTES: the stub says",
        id="constant of another type",
    ),
]


def _edited(old: str, new: str | None) -> str:
    if new is None:  # the edits too long to spell out twice
        new = (
            old.replace("    *,\n", "")
            .replace("is_for(self, principal", "is_for(self, name")
            .replace("-> None: ...\n", "-> None: ...\ndef ghost() -> None: ...\n")
        )
    assert new != old
    return _mutate(old, new)


@pytest.mark.parametrize(("edit", "expected"), DRIFTS)
def test_a_drifted_stub_is_caught(edit, expected):
    drift = stub_drift(_edited(*edit), _native)
    assert len(drift) == 1, drift
    assert drift[0].startswith(expected), drift


def test_a_synthetic_stub_is_compared_name_by_name():
    drift = stub_drift("def default_realm(realm: str = 'X') -> str: ...\nclass Ghost: ...\n", _native)
    assert (
        "default_realm: the stub says ('function', [('realm', 'POSITIONAL_OR_KEYWORD', \"'X'\")]), "
        + ("the module has ('function', [])")
        in drift
    )
    assert "Ghost: in the stub, not exported by the module" in drift
    assert "obtain_ticket: exported by the module, missing from the stub" in drift
