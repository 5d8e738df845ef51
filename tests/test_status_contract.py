"""The status contract is defined once (pamkrb.lifecycle); the labextension's
TypeScript copy of its states and fields must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_typescript_status_fields_are_python_fields():
    source = INDEX_TS.read_text()
    begin = source.index("interface ITicketStatus")
    block = source[begin : source.index("}", begin)]
    ts_fields = re.findall(r"^\s*([a-z_]+)\??:", block, re.M)
    assert set(ts_fields) <= set(lifecycle.STATUS_FIELDS), set(ts_fields) - set(lifecycle.STATUS_FIELDS)
    # What the status bar shows must be served.
    assert {"state", "expires_at", "seconds_left", "last_error"} <= set(ts_fields)


def test_python_status_has_exactly_the_contract_fields():
    status = lifecycle.disabled_status("off")
    assert tuple(status) == lifecycle.STATUS_FIELDS
    assert status["state"] == "disabled"
