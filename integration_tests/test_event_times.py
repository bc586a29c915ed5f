"""How the project stores `time`: decided once from events that arrived promptly, never from imported ones, and kept."""

import datetime as dt

import pytest

from integration_tests.harness import read_export, service_account_config, switched


def iso(seconds):
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def off_records(records, true_seconds):
    """The records whose `time` is not the true instant of their event."""
    return [r for r in records if r["time"] != iso(true_seconds[r["insert_id"]])]


def logged(run, level, text):
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == level and text in m["log"]["message"]]


def read_days(tmp_path, sim, first, last, zone, state=None):
    """One export read of these days; the true instant of each event the simulator holds for them."""
    config = service_account_config(sim, start_date=first, end_date=last, project_timezone=zone)
    run, _ = read_export(tmp_path, config, state=state)
    truth = {e["properties"]["$insert_id"]: e["properties"]["time"] for e in sim.export_truth(first, last)}
    truth.update(sim.true_times)
    return run, truth


@pytest.mark.parametrize("hours", [5, 10, 200 * 24])
def test_events_imported_late_leave_a_utc_project_in_utc(tmp_path, sim, hours):
    # A project created since 2023 keeps Mixpanel's default timezone, US/Pacific (UTC-7 in April); every event
    # reached it hours late. Read as local time, 5 h late is 2 h before it happened: impossible. 10 h and 200 days
    # late are possible either way: such events do not tell, and the default, UTC, is kept and said at WARN.
    days = {"2025-04-01": {"share": 1, "hours": hours}, "2025-04-02": {"share": 1, "hours": hours}}
    with switched(sim, timezone="US/Pacific", events_per_day=250, imported_events=days):
        run, truth = read_days(tmp_path, sim, "2025-04-01", "2025-04-02", "US/Pacific")
    records = run.records_of("export")
    assert len(records) == 500 and off_records(records, truth) == []
    assert run.states[-1]["stream"]["stream_state"]["time_storage"] == "utc"
    if hours == 5:
        assert logged(run, "INFO", "stores them in UTC") and not logged(run, "WARN", "Event times")
    else:
        (warning,) = logged(run, "WARN", "do not tell how the project stores them")
        assert "takes UTC (projects created since 2023), the default" in warning and "event_time_storage" in warning


@pytest.mark.parametrize("zone, day, share, hours", [
    # Tokyo is UTC+9: read as UTC, events received 6 h late would have reached Mixpanel 3 h before they happened.
    ("Asia/Tokyo", "2025-04-01", 1, 6),
    # Berlin in June is UTC+2; 3 in 5 events were backfilled 30 days later. Those are 30 days late either way
    # (read as UTC, 2 h less) and do not tell; the other 2 in 5 can only be local times.
    ("Europe/Berlin", "2025-06-10", 0.6, 30 * 24),
], ids=["tokyo-6-hours-late", "berlin-backfilled-30-days-later"])
def test_a_legacy_project_with_imported_events_gets_true_utc(tmp_path, sim, zone, day, share, hours):
    next_day = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    imports = {day: {"share": share, "hours": hours}, next_day: {"share": share, "hours": hours}}
    with switched(sim, timezone=zone, legacy_times=True, events_per_day=250, imported_events=imports):
        run, truth = read_days(tmp_path, sim, day, next_day, zone)
    records = run.records_of("export")
    assert len(records) == 500 and off_records(records, truth) == []
    assert logged(run, "INFO", "stores them in the project's timezone")
    assert run.states[-1]["stream"]["stream_state"]["time_storage"] == "project_timezone"


@pytest.mark.parametrize("saved_decision", [True, False], ids=["state-keeps-the-decision", "state-of-before"])
def test_a_sync_whose_lookback_days_were_imported_keeps_the_first_decision(tmp_path, sim, saved_decision):
    zone = "US/Pacific"
    with switched(sim, timezone=zone):
        first, _ = read_days(tmp_path, sim, "2025-04-01", "2025-04-03", zone)
        saved = first.states[-1]
        kept = saved["stream"]["stream_state"].get("time_storage")
        if not saved_decision:  # a state written before the decision was kept: detected again, from prompt events
            saved["stream"]["stream_state"].pop("time_storage", None)
        # A batch import reaches Mixpanel now: 100 events for each day, months after their time, beside 30 prompt ones.
        imported = {day: 100 for day in ("2025-04-01", "2025-04-02", "2025-04-03", "2025-04-04", "2025-04-05")}
        with switched(sim, late_events=imported):
            second, truth = read_days(tmp_path, sim, "2025-04-01", "2025-04-05", zone, state=[saved])
    records = second.records_of("export")
    assert len(records) == 3 * 100 + 2 * 130 and off_records(records, truth) == []
    assert kept == "utc" and logged(first, "INFO", "stores them in UTC")
    assert all(s["stream"]["stream_state"]["time_storage"] == "utc" for s in second.states)
    assert bool(logged(second, "INFO", "Event times")) is not saved_decision  # a kept decision is not made again


def test_a_saved_decision_that_is_no_choice_is_refused_with_one_sentence(tmp_path, sim):
    with switched(sim, timezone="US/Pacific"):
        state = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "export"},
                                              "stream_state": {"time": "2025-04-01T00:00:00Z", "time_storage": "local"}}}
        run, _ = read_days(tmp_path, sim, "2025-04-01", "2025-04-02", "US/Pacific", state=[state])
    sentence = ('The saved state of export holds time_storage "local", which is neither utc nor project_timezone: '
                "pass the state a sync emitted, or set event_time_storage.")
    assert run.records_of("export") == [] and run.returncode != 0
    assert [(e["failure_type"], e["message"]) for e in run.errors] == [("config_error", sentence)]  # once, not per window
    assert sim.requests_to("/api/2.0/export") == []  # refused before any request
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02", project_timezone="US/Pacific",
                                    event_time_storage="utc")
    overridden, _ = read_export(tmp_path, config, state=[state])  # a set event_time_storage does not read the saved one
    assert overridden.returncode == 0 and overridden.states[-1]["stream"]["stream_state"]["time_storage"] == "utc"
