"""An event table that stays exact over months: the dedup key, late events without duplicates, legacy local times."""

import datetime as dt
import json
import time

import pytest

from integration_tests.harness import (
    by_insert_id,
    configured_catalog,
    export_requests,
    read_export,
    run_connector,
    service_account_config,
    switched,
)
from integration_tests.oracles import dedup_key, expected_records
from integration_tests.simulator import EVENT_NAMES


def iso(seconds):
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ids(events):
    return sorted(e["properties"]["$insert_id"] for e in events)


def test_every_event_carries_mixpanels_dedup_key_as_the_primary_key(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    original = sim.export_truth("2025-04-01", "2025-04-01")[0]
    resent = {**original, "properties": {**original["properties"], "$os": "resent with another property"}}
    bare = {"event": EVENT_NAMES[0], "properties": {"time": original["properties"]["time"], "distinct_id": "u-1"}}
    other_bare = {**bare, "properties": {**bare["properties"], "$browser": "Firefox"}}
    injected = [resent, bare, other_bare]
    sim.inject_export_lines("2025-04-01", [json.dumps(event).encode() for event in injected])
    try:
        run, _ = read_export(tmp_path, config)
    finally:
        sim.clear_hostile()
    (catalog,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    (export,) = [s for s in catalog["catalog"]["streams"] if s["name"] == "export"]
    assert export["source_defined_primary_key"] == [["dedup_key"]]
    records = run.records_of("export")
    truth = sim.export_truth("2025-04-01", "2025-04-01") + injected
    assert sorted(r["dedup_key"] for r in records) == sorted(dedup_key(e) for e in truth)
    assert all(isinstance(r["dedup_key"], str) and len(r["dedup_key"]) == 32 for r in records)
    # Mixpanel's rule: the same event, name, distinct_id, second and $insert_id, is one key whatever else differs;
    # events without $insert_id are keyed by their content, so two that differ anywhere get two keys.
    assert dedup_key(resent) == dedup_key(original)
    assert len({dedup_key(bare), dedup_key(other_bare), dedup_key(original)}) == 3
    assert len({r["dedup_key"] for r in records}) == len(records) - 1


def test_late_events_come_once_beside_the_new_days(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03")
    first, _ = read_export(tmp_path, config)
    saved = first.of_type("STATE")[-1]["state"]
    with switched(sim, late_events={"2025-04-02": 4, "2025-04-03": 3}):  # they reach Mixpanel after that sync
        late = [e for e in sim.export_truth("2025-04-01", "2025-04-03") if e["properties"]["$insert_id"].startswith("late-")]
        config["end_date"] = "2025-04-05"
        sim.reset_log()
        second, _ = read_export(tmp_path, config, state=[saved])
        assert len(late) == 7
        expected = late + sim.export_truth("2025-04-04", "2025-04-05")
        # Exactly the late events and the new days, each once: none of the re-read days' old events again.
        assert sorted(r["insert_id"] for r in second.records_of("export")) == ids(expected)
        assert sorted(export_requests(sim))[0] == ("2025-04-01", "2025-04-01")  # five days back, not before start
        assert any("were delivered then" in log for log in second.logs)


def test_a_sync_that_fails_between_two_loses_no_late_event(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03")
    first, _ = read_export(tmp_path, config)
    saved = first.of_type("STATE")[-1]["state"]
    with switched(sim, late_events={"2025-04-02": 5}):
        config["end_date"] = "2025-04-05"
        sim.inject_export_lines("2025-04-05", [b"null"])  # the last new day fails every time: the sync stops
        try:
            failed, _ = read_export(tmp_path, config, state=[saved])
        finally:
            sim.clear_hostile()
        assert failed.returncode != 0 and failed.stream_statuses("export")[-1] == "INCOMPLETE"
        resumed_from = failed.states[-1] if failed.states else saved
        third, _ = read_export(tmp_path, config, state=[resumed_from])
        assert third.stream_statuses("export")[-1] == "COMPLETE"
        late = [e for e in sim.export_truth("2025-04-02", "2025-04-02") if e["properties"]["$insert_id"].startswith("late-")]
        expected = late + sim.export_truth("2025-04-04", "2025-04-05")
    delivered = {r["insert_id"] for r in failed.records_of("export") + third.records_of("export")}
    assert delivered == set(ids(expected))  # everything new arrived, and nothing the first sync had delivered


def late_of(sim, day):
    return [e for e in sim.export_truth(day, day) if e["properties"]["$insert_id"].startswith("late-")]


def incremental_export(tmp_path, config):
    """A function that runs an incremental export read with this config's catalog, discovered once."""
    (discovered,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    catalog = configured_catalog(discovered["catalog"], ["export"], "incremental")
    return lambda config, state=None: run_connector(tmp_path, "read", config, catalog=catalog, state=state)


@pytest.mark.parametrize("refusal", [(400, {}), (500, {"Retry-After": "1"})], ids=["a 400", "500s past the retries"])
def test_a_sync_that_stops_during_its_lookback_loses_no_late_event(tmp_path, sim, refusal):
    config = service_account_config(sim, start_date="2025-04-05", end_date="2025-04-10")
    read = incremental_export(tmp_path, config)
    saved = read(config).states[-1]
    three_hours_ago = iso(time.time() - 3 * 3600)
    saved["stream"]["stream_state"]["read_at"] = three_hours_ago  # sync A ran three hours ago
    # Twenty events of 04-09 reached Mixpanel two hours ago, after A; sync B cannot read 04-09, then sync C runs.
    with switched(sim, late_received_ago=2 * 3600, late_events={"2025-04-09": 20}):
        late = late_of(sim, "2025-04-09")
        status, headers = refusal
        sim.answer("/api/2.0/export", "simulator: this window is refused (injected)", status=status,
                   content_type="text/plain", when={"from_date": "2025-04-09"}, headers=headers)
        config["end_date"] = "2025-04-11"
        try:
            stopped = read(config, [saved])
        finally:
            sim.clear_hostile()
        third = read(config, [stopped.states[-1]])
    assert stopped.returncode != 0 and stopped.stream_statuses("export")[-1] == "INCOMPLETE"
    assert ("2025-04-05", "2025-04-05") in export_requests(sim) and len(late) == 20
    assert third.stream_statuses("export")[-1] == "COMPLETE"
    assert sorted(r["insert_id"] for r in third.records_of("export")) == ids(late)
    # Each STATE of B, the last one a kill would leave included, keeps A's read: B never read 04-09 whole.
    assert [s["stream"]["stream_state"]["read_at"] for s in stopped.states] == [three_hours_ago] * len(stopped.states)


@pytest.mark.parametrize("days_ago", [None, 2], ids=["old days: Mixpanel's receipts bound it", "recent days: this machine's clock"])
def test_a_date_header_ahead_of_mixpanels_clock_loses_no_late_event(tmp_path, sim, days_ago):
    today = dt.datetime.now(dt.timezone.utc).date()
    first_day = (today - dt.timedelta(days=days_ago)).isoformat() if days_ago else "2025-04-01"
    late_day = (today - dt.timedelta(days=1)).isoformat() if days_ago else "2025-04-02"
    config = service_account_config(sim, start_date=first_day, end_date=today.isoformat() if days_ago else "2025-04-03")
    read = incremental_export(tmp_path, config)
    with switched(sim, date_ahead=2 * 3600):  # Mixpanel's Date header says two hours later than its own receipts
        first = read(config)
        with switched(sim, late_events={late_day: 20}):  # they reach Mixpanel after sync A
            late = late_of(sim, late_day)
            second = read(config, [first.states[-1]])
    assert first.stream_statuses("export")[-1] == second.stream_statuses("export")[-1] == "COMPLETE"
    assert set(ids(late)) <= {r["insert_id"] for r in second.records_of("export")} and len(late) == 20
    assert all(s["stream"]["stream_state"].get("read_at", "") <= iso(time.time()) for s in first.states)


def test_a_saved_read_in_the_future_is_not_believed(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03")
    read = incremental_export(tmp_path, config)
    saved = read(config).states[-1]
    saved["stream"]["stream_state"]["read_at"] = "2030-01-01T00:00:00Z"
    with switched(sim, late_events={"2025-04-02": 20}):
        config["end_date"] = "2025-04-04"
        second = read(config, [saved])
        third = read(config, [second.states[-1]])
        truth = sim.export_truth("2025-04-01", "2025-04-04")
    assert len(late_of(sim, "2025-04-02")) == 0 and sum(i.startswith("late-") for i in ids(truth)) == 20
    # The days it names are read whole again: every event once more, the late ones included; dedup_key merges them.
    assert sorted(r["insert_id"] for r in second.records_of("export")) == ids(truth)
    assert [log for log in second.logs if "2030-01-01T00:00:00Z" in log and "cannot be" in log]
    states = [s["stream"]["stream_state"] for s in second.states]
    assert states and all(s.get("read_at", "") <= iso(time.time()) for s in states)
    # The next sync believes second's read: only what Mixpanel received within the margin before it comes again.
    assert sorted(r["insert_id"] for r in third.records_of("export")) == [i for i in ids(truth) if i.startswith("late-")]


def test_a_legacy_project_gets_true_utc_across_the_spring_dst_change(tmp_path, sim):
    zone = "America/Los_Angeles"
    with switched(sim, timezone=zone, legacy_times=True):
        config = service_account_config(sim, start_date="2025-03-08", end_date="2025-03-10", project_timezone=zone)
        run, _ = read_export(tmp_path, config)
        truth = sim.export_truth("2025-03-08", "2025-03-10")
        true_times = dict(sim.true_times)
        saved = run.states[-1]
        sim.reset_log()
        config["end_date"] = "2025-03-11"
        second, _ = read_export(tmp_path, config, state=[saved])
    records = run.records_of("export")
    assert sorted(r["insert_id"] for r in records) == ids(truth)
    assert all(r["time"] == iso(true_times[r["insert_id"]]) for r in records)
    assert {dt.datetime.fromisoformat(r["time"][:-1]).hour for r in records} >= {7, 8}  # both offsets, -8 and -7
    assert any("stores them in the project's timezone" in log for log in run.logs)
    assert not any("after the window" in log for log in run.logs)
    # The state keeps Mixpanel's day labels (local days): the next sync resumes at the right local day.
    assert saved["stream"]["stream_state"]["time"].startswith("2025-03-10")
    assert sorted(export_requests(sim))[-1] == ("2025-03-11", "2025-03-11")
    assert {r["insert_id"] for r in second.records_of("export")} == set(ids(sim.export_truth("2025-03-11", "2025-03-11")))


def test_the_repeated_hour_of_the_autumn_change_is_resolved_by_when_mixpanel_received_the_event(tmp_path, sim):
    zone = "America/Los_Angeles"
    with switched(sim, timezone=zone, legacy_times=True, events_per_day=400):
        config = service_account_config(sim, start_date="2025-11-02", end_date="2025-11-02", project_timezone=zone,
                                        event_time_storage="project_timezone")
        run, _ = read_export(tmp_path, config)
        truth = {e["properties"]["$insert_id"]: e["properties"] for e in sim.export_truth("2025-11-02", "2025-11-02")}
        true_times = dict(sim.true_times)
    records = run.records_of("export")
    assert len(records) == len(truth) == 400
    assert not any("Event times:" in log for log in run.logs)  # configured, not detected
    wrong = [r for r in records if r["time"] != iso(true_times[r["insert_id"]])]
    for record in wrong:  # a wall time in 01:00-01:59 names two instants; Mixpanel received these over an hour late
        true = true_times[record["insert_id"]]
        assert iso(true + 3600) == record["time"] and truth[record["insert_id"]]["mp_processing_time_ms"] / 1000 >= true + 3600
    assert len(wrong) < len(records) / 100
    # Both readings of 01:00-01:59 occur (08:xx UTC is its first pass, 09:xx its second), and both come out right.
    hours = {r["time"][11:13] for r in records if r["time"][:10] == "2025-11-02" and r not in wrong}
    assert {"08", "09"} <= hours


def test_detection_keeps_a_new_project_in_utc(tmp_path, sim):
    zone = "America/Los_Angeles"
    with switched(sim, timezone=zone):
        config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02", project_timezone=zone)
        run, _ = read_export(tmp_path, config)
        expected = expected_records(sim, "2025-04-01", "2025-04-02")
    assert by_insert_id(run.records_of("export")) == by_insert_id(expected)
    assert any("stores them in UTC" in log for log in run.logs)
    assert not any("after the window" in log for log in run.logs)
