"""Typed event columns at discover: the real command against the simulator, whose Lexicon and events are the truth."""

import pytest

from integration_tests.harness import project_secret_config, run_connector, service_account_config, switched
from integration_tests.simulator import MixpanelSimulator

LEXICON, EXPORT = "/schemas", "/api/2.0/export"
TODAY = "2025-03-12"  # a Wednesday: the sample is the week of 2025-03-03..09
NULLABLE = {kind: {"type": ["null", kind]} for kind in ("integer", "number", "boolean", "string", "object", "array")}
DATETIME = {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"}
# The default project's export columns, by Mixpanel name: the type each earns (None: no type).
EXPECTED = {
    "$browser": "string", "$city": "string", "$current_url": "string", "$lib_version": "string", "$os": "string",
    "$screen_width": "integer", "$username": "string", "account_id": "number", "attempts": "integer",
    "big_number": "integer", "build_number": "integer", "cart": "object", "comment": "string", "coupon": "string",
    "currency": "string", "deep": "object", "delta": "number", "emoji": "string", "empty_list": "array",
    "empty_obj": "object", "invited": "boolean", "is_trial": "boolean", "method": "string", "mixed_list": "array",
    "mp_lib": "string", "opted_out": "boolean", "page_title": "string", "plan": "object", "price": "number",
    "quantity": None, "quote": "string", "ratio": "number", "referrer": None, "retries": "integer", "score": "integer",
    "signup_method": "string", "tags": "array", "trial_ends": "datetime", "userName": "string", "utm_source": "string",
    "weight": "number", "ключ": "string", "키": "string",
}
FIELDS = {"time", "distinct_id", "insert_id", "mp_processing_time_ms", "event", "dedup_key", "other_properties"}


@pytest.fixture(scope="module")
def sim():
    with MixpanelSimulator(today=TODAY, first_event_day="2025-02-01") as simulator:
        yield simulator


def until(sim, day, make=service_account_config):
    """A config that syncs up to `day` (the simulator's today in these tests)."""
    return make(sim, start_date="2025-02-01", end_date=day)


def discover(sim, tmp_path, config=None, **switches):
    """The export stream's discovered types by Mixpanel name (None: no type), the run, and the requests it sent."""
    with switched(sim, **switches):
        sim.reset_log()
        run = run_connector(tmp_path, "discover", config or until(sim, sim.today))
        sent = [request["path"] for request in sim.requests]
    assert run.returncode == 0, run.stderr[-2000:]
    (catalog,) = run.of_type("CATALOG")
    export = next(stream for stream in catalog["catalog"]["streams"] if stream["name"] == "export")
    types = {}
    for column, schema in export["json_schema"]["properties"].items():
        if column in FIELDS:
            continue
        schema = dict(schema)
        name = schema.pop("title", column)
        kind = next((kind for kind, typed in {**NULLABLE, "datetime": DATETIME}.items() if typed == schema), None)
        assert kind is not None or schema == {}, f"{name}: {schema}"
        types[name] = kind
    return types, run, sent


def warnings(run):
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]


def test_discover_types_every_export_column_of_the_default_project(sim, tmp_path):
    types, run, sent = discover(sim, tmp_path)
    assert types == EXPECTED
    assert sent.count("/api/app/projects/2526451/schemas") == 1 and sent.count(EXPORT) == 1
    (sample,) = [request for request in sim.requests_to(EXPORT)]
    assert {k: sample["params"][k] for k in ("from_date", "to_date", "limit")} == {
        "from_date": "2025-03-03", "to_date": "2025-03-09", "limit": "100000"}
    # The Lexicon says quantity is text; the data holds integers: no type, and one WARN that says so.
    assert warnings(run) == ["The Lexicon types event property 'quantity' as string, but the sampled events hold "
                             "integer values: its column gets no type."]


def test_a_project_secret_never_asks_the_lexicon(sim, tmp_path):
    types, run, sent = discover(sim, tmp_path, until(sim, TODAY, project_secret_config))
    assert not [path for path in sent if path.endswith(LEXICON)] and sent.count(EXPORT) == 1
    assert types == {**EXPECTED, "quantity": "integer"}  # the sample alone: quantity holds integers
    assert warnings(run) == []


@pytest.mark.parametrize("status", [403, 402, 500])
def test_a_refused_lexicon_is_one_warning_and_the_sample_types_alone(sim, tmp_path, status):
    types, run, sent = discover(sim, tmp_path, lexicon_refuses=status)
    assert types == {**EXPECTED, "quantity": "integer"}
    (warning,) = warnings(run)
    assert warning.startswith("The Lexicon's schemas (/api/app/projects/2526451/schemas) could not be read: ")
    assert warning.endswith("Event property types come from the sample of events alone.")
    assert sent.count(EXPORT) == 1


def test_check_and_read_send_neither_the_lexicon_nor_the_sample(sim, tmp_path):
    config = service_account_config(sim, start_date="2025-03-11", end_date=TODAY)
    sim.reset_log()
    assert run_connector(tmp_path, "check", config).returncode == 0
    catalog = {"streams": [{"stream": {"name": "export", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                            "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}
    read = run_connector(tmp_path, "read", config, catalog)
    assert read.returncode == 0, read.stderr[-2000:]
    assert not sim.requests_to(LEXICON)
    assert sorted(request["params"]["from_date"] for request in sim.requests_to(EXPORT)) == ["2025-03-11", "2025-03-12"]
    assert all("limit" not in request["params"] for request in sim.requests_to(EXPORT))


def test_types_stay_the_same_from_one_week_to_the_next_until_the_data_changes_kind(sim, tmp_path):
    # build_number turns into text on 2025-03-25, a day no sample below reads.
    seen = {}
    for today in ("2025-03-12", "2025-03-13", "2025-03-23", "2025-03-24"):
        types, _, _ = discover(sim, tmp_path, today=today, kind_change_from="2025-03-25",
                               config=until(sim, today))
        seen[today] = types
    assert all(types == EXPECTED for types in seen.values())
    assert {request["params"]["from_date"] for request in sim.requests_to(EXPORT)} == {"2025-03-17"}
    # The week that holds the change: build_number has integers and text, and no type.
    types, _, _ = discover(sim, tmp_path, today="2025-03-31", kind_change_from="2025-03-25",
                           config=until(sim, "2025-03-31"))
    assert types == {**EXPECTED, "build_number": None}


def test_a_rare_value_of_another_kind_in_the_sample_leaves_its_column_untyped(sim, tmp_path):
    types, _, _ = discover(sim, tmp_path, property_kinds="hard")
    untyped = {name for name, kind in types.items() if kind is None}
    assert untyped == {"score", "weight", "trial_ends", "tags", "quantity", "referrer"}
    # score's Lexicon type (integer) loses to the text the sample met; the rest keep theirs.
    assert {name: kind for name, kind in types.items() if name not in untyped} == {
        name: kind for name, kind in EXPECTED.items() if name not in untyped}
