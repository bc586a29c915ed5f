"""The export stream through the real command: exact records, windows, state, filters and faults."""

import datetime as dt
import json
from collections import Counter

import jsonschema
import pytest

from integration_tests.harness import (
    by_insert_id,
    configured_catalog,
    export_catalog,
    export_requests,
    read_export,
    run_connector,
    service_account_config,
    switched,
)
from integration_tests.oracles import expected_records
from integration_tests.simulator import MixpanelSimulator


def days(first, count):
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def test_twenty_days_arrive_exact_and_typed_in_twenty_requests(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-20")
    run, schema = read_export(tmp_path, config)
    assert run.returncode == 0, run.stderr
    records = run.records_of("export")
    assert by_insert_id(records) == by_insert_id(expected_records(sim, "2025-03-01", "2025-03-20"))
    assert len(records) == 20 * sim.events_per_day
    assert sorted(export_requests(sim)) == [(day, day) for day in days("2025-03-01", 20)]
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    for record in records:
        jsonschema.validate(record, schema)
    # Types are Mixpanel's: booleans, numbers, lists, objects and nulls come through as such.
    kinds = {type(value).__name__ for record in records for value in record.values()}
    assert {"bool", "int", "float", "list", "dict", "NoneType", "str"} <= kinds
    # One state per window; the last one is the newest event time.
    states = [s["stream"]["stream_state"]["time"] for s in run.states]
    assert len(states) >= 20 and states[-1] == max(r["time"] for r in records)
    # One INFO line per window and one for the stream, with their record counts.
    per_day = Counter(r["time"][:10] for r in records)
    for day in days("2025-03-01", 20):
        assert any(log.startswith(f"Export of {day}..{day} done (1 day): {per_day[day]:,} records in ")
                   and log.endswith(" MB of temporary disk (gzipped).") for log in run.logs)
    assert any(log.startswith(f"Stream export complete: {len(records):,} records in ") for log in run.logs)


def test_every_export_request_offers_gzip_alone(tmp_path, sim):
    # Mixpanel's export documents one encoding, gzip; the HTTP library on its own offers `gzip, deflate`.
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02")
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    sample = sim.requests_to("/api/2.0/export")
    assert [r["params"].get("limit") for r in sample] == ["100000"]  # discover's sample of one week
    run = run_connector(tmp_path, "read", config, catalog=configured_catalog(catalog_message["catalog"], ["export"]))
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    exports = sim.requests_to("/api/2.0/export")
    assert len(exports) == 3 and {r["headers"].get("Accept-Encoding") for r in exports} == {"gzip"}
    assert {r["headers"].get("Accept-Encoding") for r in sim.requests if r["path"] != "/api/2.0/export"} == {"gzip, deflate"}


def test_names_collide_apart_through_one_rename_map(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-03")
    run, schema = read_export(tmp_path, config)
    records = run.records_of("export")
    assert {"username", "_userName", "insert_id", "browser"} <= set(schema["properties"])
    assert not any("userName" in r or "$username" in r or "$browser" in r for r in records)
    truth = {e["properties"]["$insert_id"]: e["properties"] for e in sim.export_truth("2025-03-01", "2025-03-03")}
    both = [r for r in records if "username" in r and "_userName" in r]
    assert both, "the simulator serves events carrying both colliding names"
    for record in records:
        raw = truth[record["insert_id"]]
        assert record.get("username") == raw.get("$username") and record.get("_userName") == raw.get("userName")


def test_a_year_takes_at_most_sixty_requests(tmp_path):
    with MixpanelSimulator(events_per_day=2, first_event_day="2024-01-01") as small:
        config = service_account_config(small, start_date="2024-06-01", end_date="2025-05-31")
        run, _ = read_export(tmp_path, config)
        requests = export_requests(small)
        assert len(requests) <= 60 and len(requests) == 53  # 365 days in 7-day windows
        assert len(run.records_of("export")) == 365 * 2
        covered = sorted(requests)
        assert covered[0][0] == "2024-06-01" and covered[-1][1] == "2025-05-31"


def test_explicit_window_wins(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-10", export_window_days=4)
    read_export(tmp_path, config)
    assert sorted(export_requests(sim)) == [("2025-03-01", "2025-03-04"), ("2025-03-05", "2025-03-08"), ("2025-03-09", "2025-03-10")]


@pytest.mark.parametrize(
    "saved, lookback_seconds, first_day",
    [
        ({"time": "2025-03-10T23:31:11Z"}, 0, "2025-03-10"),  # a 4.x state
        ({"time": "2025-03-10"}, 0, "2025-03-10"),
        ({"time": "2025-03-10T23:31:11Z"}, 3600, "2025-03-09"),  # an hour rounds up to a day
        ({"time": "2025-03-10T23:31:11Z"}, 2 * 86400, "2025-03-08"),
        ({"time": "2025-03-10T23:31:11Z"}, None, "2025-03-05"),  # the default: five days
    ],
)
def test_resume_starts_at_the_saved_day_minus_the_lookback(tmp_path, sim, saved, lookback_seconds, first_day):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-14")
    if lookback_seconds is not None:
        config["export_lookback_window"] = lookback_seconds
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "export"}, "stream_state": saved}}]
    run, _ = read_export(tmp_path, config, state=state)
    requests = sorted(export_requests(sim))
    assert requests[0][0] == first_day and requests[-1][1] == "2025-03-14"
    assert [a for a, b in requests] == days(first_day, len(requests))  # day windows, none straddling two days
    assert by_insert_id(run.records_of("export")) == by_insert_id(expected_records(sim, first_day, "2025-03-14"))


def test_our_own_state_resumes_at_its_day(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-05")
    first, _ = read_export(tmp_path, config)
    saved = first.of_type("STATE")[-1]["state"]
    sim.reset_log()
    config["end_date"] = "2025-03-07"
    run, _ = read_export(tmp_path, config, state=[saved])
    # The default lookback re-reads five days before the saved one (not before start_date); from the days the
    # first sync read, only what Mixpanel received since comes out: here nothing.
    assert sorted(export_requests(sim)) == [(d, d) for d in days("2025-03-01", 7)]
    assert by_insert_id(run.records_of("export")) == by_insert_id(expected_records(sim, "2025-03-06", "2025-03-07"))
    assert set(run.states[-1]["stream"]["stream_state"]) == {"time", "read_at", "read_from"}


def test_filters_reach_the_request(tmp_path, sim):
    where = 'properties["$browser"] == "Chrome"'
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02", export_events=["Signed up", "Purchase"], export_where=where)
    run, _ = read_export(tmp_path, config)
    for request in sim.requests_to("/api/2.0/export"):
        assert json.loads(request["params"]["event"]) == ["Signed up", "Purchase"]
        assert request["params"]["where"] == where
    records = run.records_of("export")
    assert records and {r["event"] for r in records} <= {"Signed up", "Purchase"}
    assert by_insert_id(records) == by_insert_id(expected_records(sim, "2025-03-01", "2025-03-02", ["Signed up", "Purchase"]))


def test_undiscovered_properties_are_dropped_when_not_selected_by_default(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-10", select_properties_by_default=False)
    run, schema = read_export(tmp_path, config)
    records = run.records_of("export")
    assert "other_properties" not in schema["properties"]
    assert any("$rare_prop" in e["properties"] for e in sim.export_truth("2025-03-01", "2025-03-10"))
    assert by_insert_id(records) == by_insert_id(expected_records(sim, "2025-03-01", "2025-03-10", keep_undiscovered=False))
    for record in records:
        jsonschema.validate(record, schema)
    assert sum("'$rare_prop'" in log for log in run.logs) == 1


def test_undiscovered_properties_are_kept_by_default(tmp_path, sim):
    run, schema = read_export(tmp_path, service_account_config(sim, start_date="2025-03-01", end_date="2025-03-10"))
    assert schema["properties"]["other_properties"]["type"] == ["null", "object"] and "rare_prop" not in schema["properties"]
    assert sum("$rare_prop" in r.get("other_properties", {}) for r in run.records_of("export")) == sum(
        "$rare_prop" in e["properties"] for e in sim.export_truth("2025-03-01", "2025-03-10")
    ) > 0
    for record in run.records_of("export"):
        jsonschema.validate(record, schema)


@pytest.mark.parametrize("fault", ["split_lines", "terminated_early", "cut", "5xx", "429", "stall"])
def test_each_fault_still_delivers_every_record_exactly_once(tmp_path, sim, fault):
    with switched(sim, faults=[fault], stall_seconds=8, fault_retry_after=1):
        config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03", export_read_timeout=2)
        run, _ = read_export(tmp_path, config)
    assert run.stream_statuses("export")[-1] == "COMPLETE", run.stdout[-2000:]
    records = run.records_of("export")
    expected = expected_records(sim, "2025-04-01", "2025-04-03")
    assert by_insert_id(records) == by_insert_id(expected)
    assert max(Counter(r["insert_id"] for r in records).values()) == 1
    attempts = Counter((r["params"]["from_date"], r["attempt"]) for r in sim.requests_to("/api/2.0/export"))
    retried = fault != "split_lines"  # a split record is rejoined, not re-requested
    for day in days("2025-04-01", 3):
        assert attempts[(day, 1)] == 1 and attempts[(day, 2)] == (1 if retried else 0)
    if retried:  # the wait is logged at INFO; a 429 is waited out by the request budget, and says which limit
        waited = "Mixpanel refused GET /api/2.0/export (429: " if fault == "429" else "Sending the request again in"
        assert any(waited in log for log in run.logs)
        assert not any("Rate limit exceeded" in log for log in run.logs)  # the CDK's word for any retry
    if fault in ("terminated_early", "cut", "stall"):
        assert any("requesting the whole range again" in log for log in run.logs)  # and why


def test_a_timezone_ahead_of_the_project_ends_in_a_config_error(tmp_path, sim):
    today = dt.date.today()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    with switched(sim, today=yesterday):  # the project's "today" is behind the config's
        run, _ = read_export(tmp_path, service_account_config(sim, start_date=yesterday))
    assert run.stream_statuses("export")[-1] == "INCOMPLETE" and run.returncode != 0
    (error,) = [e for e in run.errors if "project_timezone" in e["message"]]
    assert error["failure_type"] == "config_error"
    assert len([r for r in sim.requests_to("/api/2.0/export") if r["status"] == 400]) == 1  # not retried


def test_retries_run_out_loudly_and_nothing_from_a_bad_body_is_emitted(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02")
    catalog = export_catalog(tmp_path, config)  # discover's own sample would meet the faults too
    with switched(sim, faults=["terminated_early"], fault_attempts=99, fault_retry_after=1):
        run, _ = read_export(tmp_path, config, catalog=catalog)
    assert run.returncode != 0 and run.stream_statuses("export")[-1] == "INCOMPLETE"
    assert run.records_of("export") == []  # half of each day was sent every time, and none of it came out
    assert all(s["stream"]["stream_state"].get("time", "2025-04-01T00:00:00Z") <= "2025-04-01T00:00:00Z" for s in run.states)
    assert any("terminated early" in e["message"] or "terminated early" in (e.get("internal_message") or "") for e in run.errors)
    attempts = Counter(r["params"]["from_date"] for r in sim.requests_to("/api/2.0/export"))
    assert attempts == {"2025-04-01": 6, "2025-04-02": 6}  # the first try and 5 retries
