"""The status contract is defined once (pamkrb.lifecycle); the labextension's
TypeScript copy of its states and fields must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pamkrb import lifecycle

INDEX_TS = Path(__file__).resolve().parents[1] / "labextension" / "src" / "index.ts"


def test_typescript_server_states_match_python():
    source = INDEX_TS.read_text()
    block = source[source.index("const SERVER_STATES") : source.index("]);", source.index("const SERVER_STATES"))]
    ts_states = set(re.findall(r"'([a-z_]+)'", block))
    assert ts_states == {state.value for state in lifecycle.TicketState}


def test_typescript_state_type_is_server_states_plus_unavailable():
    source = INDEX_TS.read_text()
    block = source[source.index("type TicketState") : source.index(";", source.index("type TicketState"))]
    assert set(re.findall(r"'([a-z_]+)'", block)) == {s.value for s in lifecycle.TicketState} | {"unavailable"}


def typescript_block(source: str, start: str, end: str) -> str:
    begin = source.index(start)
    return source[begin : source.index(end, begin)]


def test_typescript_status_fields_are_python_fields():
    block = typescript_block(INDEX_TS.read_text(), "interface ITicketStatus", "}")
    ts_fields = re.findall(r"^\s*([a-z_]+)\??:", block, re.M)
    assert set(ts_fields) <= set(lifecycle.STATUS_FIELDS), set(ts_fields) - set(lifecycle.STATUS_FIELDS)
    # What the status bar shows must be served.
    assert {
        "state",
        "expires_at",
        "seconds_left",
        "renewed_by",
        "source",
        "login_required_at",
        "warn_before",
        "last_error",
    } <= set(ts_fields)


def test_typescript_reads_every_required_field_from_the_body():
    # tsc makes parseStatus return every required field of ITicketStatus; this
    # makes it read each one from the response rather than fill in a constant.
    source = INDEX_TS.read_text()
    required = re.findall(r"^\s*([a-z_]+):", typescript_block(source, "interface ITicketStatus", "}"), re.M)
    assert {"renewed_by", "source", "login_required_at", "warn_before"} <= set(required)
    parse = typescript_block(source, "function parseStatus", "\n}\n")
    unread = [field for field in required if f"'{field}'" not in parse and f"raw.{field}" not in parse]
    assert not unread, f"parseStatus does not read {unread}"


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


@pytest.mark.parametrize(("name", "values"), [("RENEWERS", lifecycle.RENEWERS), ("SOURCES", lifecycle.SOURCES)])
def test_typescript_value_lists_match_python(name, values):
    source = INDEX_TS.read_text()
    begin = source.index(f"const {name}")
    block = source[begin : source.index(";", begin)]
    assert tuple(re.findall(r"'([a-z_]+)'", block)) == values
