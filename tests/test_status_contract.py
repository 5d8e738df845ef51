"""The status contract is defined once, in the JSON Schema shipped as
``pamkrb/status.schema.json``. The labextension's TypeScript types are
generated from it (tools/status_contract.py, run by the build), and the status
Python serves is validated against it here."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import status_contract  # tools/, on the path through pytest.ini's `pythonpath`

from pamkrb import _native, lifecycle

REPO = Path(__file__).resolve().parents[1]
INDEX_TS = REPO / "labextension" / "src" / "index.ts"
CCACHE_FIXTURES = REPO / "tests" / "data" / "ccache"
# What the status bar leaves to the status page (index.ts's ITicketStatus omits them).
NOT_IN_THE_STATUS_BAR = {"refresh_margin", "renewals", "triggers"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    # From the installed package: the schema ships with it.
    loaded: dict[str, Any] = json.loads((resources.files("pamkrb") / "status.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


# -- TypeScript: generated from the schema -------------------------------------------


def test_the_typescript_types_are_generated_from_the_schema(schema):
    committed = (REPO / "labextension" / "src" / "status.ts").read_text()
    assert committed == status_contract.generate(schema), "run python3 tools/status_contract.py --write"
    source_tree = json.loads((REPO / "python" / "pamkrb" / "status.schema.json").read_text())
    assert source_tree == schema, "the installed schema is not the source tree's: run make build"


def test_the_extension_takes_its_status_types_from_the_generated_module():
    source = INDEX_TS.read_text()
    assert re.search(r"import \{[^}]*\bIServerStatus\b[^}]*\} from './status';", source)
    for copy in ("const SERVER_STATES", "const RENEWERS", "const SOURCES", "interface IServerStatus"):
        assert copy not in source, f"index.ts defines its own {copy}"
    omitted = re.search(r"Omit<\s*IServerStatus,\s*([^>]*)>", source)
    assert omitted is not None
    assert set(re.findall(r"'([a-z_]+)'", omitted.group(1))) == NOT_IN_THE_STATUS_BAR | {"state"}


def test_the_extension_reads_every_field_it_shows_from_the_body(schema):
    # tsc makes parseStatus return every field of ITicketStatus (the schema's,
    # less those omitted); this makes it read each one rather than fill in a
    # constant.
    source = INDEX_TS.read_text()
    begin = source.index("function parseStatus")
    parse = source[begin : source.index("\n}\n", begin)]
    shown = [field for field in schema["properties"] if field not in NOT_IN_THE_STATUS_BAR]
    unread = [field for field in shown if f"'{field}'" not in parse]
    assert not unread, f"parseStatus does not read {unread}"


# -- Python: the same values, and every status it builds valid ------------------------


def test_python_constants_are_the_schemas(schema):
    defs = schema["$defs"]
    assert [state.value for state in lifecycle.TicketState] == defs["ServerState"]["enum"]
    assert list(lifecycle.RENEWERS) == defs["Renewer"]["enum"]
    assert list(lifecycle.SOURCES) == defs["Source"]["enum"]
    assert list(lifecycle.STATUS_FIELDS) == list(schema["properties"]) == schema["required"]


def _ticket(workdir: Path, fixture: str) -> Any:
    cache = workdir / fixture
    cache.write_bytes((CCACHE_FIXTURES / fixture).read_bytes())
    cache.chmod(0o600)
    return _native.inspect_ticket(str(cache))


def python_statuses(workdir: Path) -> list[dict[str, Any]]:
    renewable = _ticket(workdir, "v4-renewable")
    plain = _ticket(workdir, "v4-kinit-keytab")
    now = float(renewable.starts_at + 60)
    return [
        lifecycle.disabled_status("no Kerberos configuration"),
        lifecycle.status(
            lifecycle.TicketState.VALID,
            info=renewable,
            ccache=str(workdir / "v4-renewable"),
            now=now,
            refresh_margin=300,
            last_refresh=now - 5,
            renewals=2,
            triggers={"timer": 3, "open": 1},
            renewed_by=lifecycle.RENEWED_BY_SERVER,
            source=lifecycle.SOURCE_PASSWORD,
            login_required_at=float(renewable.renew_until),
            warn_before=1800,
        ),
        lifecycle.status(
            lifecycle.TicketState.EXPIRING,
            info=plain,
            now=float(plain.expires_at - 10),
            refresh_margin=300,
            renewed_by=lifecycle.RENEWED_BY_HUB,
            source=lifecycle.SOURCE_KEYTAB,
        ),
        lifecycle.status(
            lifecycle.TicketState.EXPIRED,
            info=plain,
            now=float(plain.expires_at + 10),
            renewed_by=lifecycle.RENEWED_BY_SERVER,
            source=lifecycle.SOURCE_KEYTAB,
        ),
        lifecycle.status(
            lifecycle.TicketState.ERROR,
            principal="alice@EXAMPLE.ORG",
            now=now,
            last_error="KDC unreachable",
            renewed_by=lifecycle.RENEWED_BY_SERVER,
            source=lifecycle.SOURCE_KEYTAB,
        ),
        lifecycle.status(lifecycle.TicketState.MISSING, principal="alice@EXAMPLE.ORG", now=now),
        lifecycle.status(
            lifecycle.TicketState.LOGIN_REQUIRED,
            principal="alice@EXAMPLE.ORG",
            now=now,
            source=lifecycle.SOURCE_PASSWORD,
            login_required_at=now - 1,
            warn_before=600,
        ),
    ]


def test_every_python_status_is_valid_against_the_schema(validator, tmp_path):
    statuses = python_statuses(tmp_path)
    assert {s["state"] for s in statuses} == {state.value for state in lifecycle.TicketState}
    for status in statuses:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(json.loads(json.dumps(status)))]
        assert errors == [], status


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"state": "fresh"}, "an unknown state"),
        ({"source": "otp"}, "an unknown source"),
        ({"renewed_by": "broker"}, "an unknown renewer"),
        ({"seconds_left": "60"}, "a number as text"),
        ({"expires_at": "tomorrow"}, "a time that is not ISO 8601"),
        ({"surprise": 1}, "a field the contract does not have"),
    ],
)
def test_the_schema_refuses_a_drifted_status(validator, tmp_path, change, why):
    status = {**python_statuses(tmp_path)[1], **change}
    assert not validator.is_valid(status), why


def test_the_schema_refuses_a_status_without_a_field(validator, tmp_path):
    status = python_statuses(tmp_path)[1]
    del status["warn_before"]
    assert not validator.is_valid(status)


# -- the order of the fields ---------------------------------------------------------


def test_python_status_has_exactly_the_contract_fields():
    status = lifecycle.disabled_status("off")
    assert tuple(status) == lifecycle.STATUS_FIELDS
    assert status["state"] == "disabled"


def test_python_status_places_the_sign_in_fields_after_source():
    fields = lifecycle.STATUS_FIELDS
    assert fields[fields.index("source") + 1 : fields.index("source") + 3] == ("login_required_at", "warn_before")
    status = lifecycle.status(
        lifecycle.TicketState.VALID, now=0.0, source="password", login_required_at=86400.0, warn_before=1800
    )
    assert tuple(status) == fields
    assert status["login_required_at"] == "1970-01-02T00:00:00Z"
    assert status["warn_before"] == 1800
    unset = lifecycle.status(lifecycle.TicketState.VALID, now=0.0, source="keytab")
    assert unset["login_required_at"] is None
    assert unset["warn_before"] is None


@pytest.mark.parametrize("by_reload", [True, False], ids=["single-sign-on", "password"])
def test_a_sign_in_by_reload_is_worded_in_the_status(validator, tmp_path, monkeypatch, by_reload):
    """A ticket the browser delegated (PAMKRB_SIGN_IN=reload from the hub)
    that ran out: login_required, and last_error (which every status bar
    shows) says to reload the hub's login page with ?negotiate=1, back to
    this server; still valid against the contract. A password ticket's
    status says nothing of reloading."""
    import asyncio

    from pamkrb.refresher import TicketRefresher

    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/jh/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/jh/user/alice/")
    env = {
        "PAMKRB_PRINCIPAL": "alice@EXAMPLE.ORG",
        "PAMKRB_CCACHE": str(tmp_path / "gone"),
        "PAMKRB_CREDENTIAL_SOURCE": "password",
        **({"PAMKRB_SIGN_IN": "reload"} if by_reload else {}),
    }
    settings, missing = lifecycle.TicketSettings.from_env(env)
    assert missing == []
    assert settings is not None
    assert settings.sign_in_by_reload is by_reload
    status = asyncio.run(TicketRefresher(settings).status())
    assert status["state"] == "login_required"
    assert [e.message for e in validator.iter_errors(json.loads(json.dumps(status)))] == []
    wording = "sign in again by reloading /jh/hub/login?negotiate=1&next=%2Fjh%2Fuser%2Falice%2F"
    assert (wording in (status["last_error"] or "")) is by_reload, status
