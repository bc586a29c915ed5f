"""funnels, revenue and annotations through the real command, against the simulator's ground truth."""

import datetime as dt
import json
import subprocess
import threading

import jsonschema
import pytest

from integration_tests.harness import (
    CONNECTOR,
    configured_catalog,
    failed_with,
    project_secret_config,
    run_connector,
    service_account_config,
    switched,
)


def read(tmp_path, config, streams, state=None, sync_mode="incremental"):
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    catalog = configured_catalog(catalog_message["catalog"], streams, sync_mode)
    schemas = {s["stream"]["name"]: s["stream"]["json_schema"] for s in catalog["streams"]}
    return run_connector(tmp_path, "read", config, catalog=catalog, state=state), schemas


def days(first, last):
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def windows(sim, path, **params):
    calls = [c["params"] for c in sim.requests_to(path) if all(c["params"].get(k) == v for k, v in params.items())]
    return sorted((c["from_date"], c["to_date"]) for c in calls)


def test_funnels_are_funnels_times_days_with_names_in_configured_windows(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-04-15", date_window_size=20)
    run, schemas = read(tmp_path, config, ["funnels"])
    records = run.records_of("funnels")
    expected = {
        (f["funnel_id"], day): {"funnel_id": f["funnel_id"], "name": f["name"], "date": day, **sim.funnel_day(f["funnel_id"], day)}
        for f in sim.funnels() for day in days("2025-03-01", "2025-04-15")
    }
    assert len(records) == len(expected) == len(sim.funnels()) * 46
    assert {(r["funnel_id"], r["date"]): r for r in records} == expected
    assert any("custom_event" in step for r in records for step in r["steps"])  # custom-event fields as Mixpanel gives them
    for record in records:
        jsonschema.validate(record, schemas["funnels"])
    for funnel in sim.funnels():
        assert windows(sim, "/api/query/funnels", funnel_id=str(funnel["funnel_id"])) == [
            ("2025-03-01", "2025-03-20"), ("2025-03-21", "2025-04-09"), ("2025-04-10", "2025-04-15")
        ]
    assert all(c["params"]["unit"] == "day" for c in sim.requests_to("/api/query/funnels"))


@pytest.mark.parametrize("shape", ["4.x", "ours"])
def test_funnels_resume_at_the_saved_day_minus_the_attribution_window(tmp_path, sim, shape):
    first_funnel, other = sim.funnels()[0]["funnel_id"], sim.funnels()[1]["funnel_id"]
    if shape == "4.x":  # the CDK keys this funnel {"funnel_id": 7509, "parent_slice": {}}: a migration maps it
        saved = {"states": [{"partition": {"funnel_id": str(first_funnel)}, "cursor": {"date": "2025-04-10"}}]}
    else:
        saved = {"states": [{"partition": {"funnel_id": first_funnel, "parent_slice": {}}, "cursor": {"date": "2025-04-10T00:00:00Z"}}]}
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "funnels"}, "stream_state": saved}}]
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-04-15", attribution_window=3)
    run, _ = read(tmp_path, config, ["funnels"], state=state)
    assert windows(sim, "/api/query/funnels", funnel_id=str(first_funnel)) == [("2025-04-07", "2025-04-15")]
    assert windows(sim, "/api/query/funnels", funnel_id=str(other))[0][0] == "2025-03-01"  # no state: from start_date
    resumed = sorted(r["date"] for r in run.records_of("funnels") if r["funnel_id"] == first_funnel)
    assert resumed == days("2025-04-07", "2025-04-15")
    final = run.states[-1]["stream"]["stream_state"]["states"]
    assert {s["partition"]["funnel_id"]: s["cursor"]["date"] for s in final}[first_funnel] == "2025-04-15T00:00:00Z"


def test_funnel_states_grow_with_finished_funnels_not_with_windows_times_funnels(tmp_path, sim):
    # 40 funnels x 5 one-day windows: a STATE after every window, each holding every funnel, was 201 STATEs.
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-05", date_window_size=1,
                                    query_requests_per_hour=1000)
    with switched(sim, n_funnels=40):
        run, _ = read(tmp_path, config, ["funnels"])
        funnel_ids = {f["funnel_id"] for f in sim.funnels()}
    assert run.stream_statuses("funnels")[-1] == "COMPLETE" and len(run.records_of("funnels")) == 40 * 5
    states = [s["stream"]["stream_state"] for s in run.states]
    # At most one when the first window closes, one per finished funnel and the last; never one equal to the one before.
    assert len(states) <= 2 + len(funnel_ids)
    assert all(before != after for before, after in zip(states, states[1:]))
    assert {s["partition"]["funnel_id"]: s["cursor"]["date"] for s in states[-1]["states"]} == dict.fromkeys(
        funnel_ids, "2025-03-05T00:00:00Z")


def test_a_sync_killed_between_funnels_does_not_read_the_finished_ones_again(tmp_path, sim):
    """Two funnels read, then a budget wait before the third: the STATE holding both comes during the wait."""
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02", attribution_window=0,
                                    query_requests_per_hour=3, rate_limit_window_seconds=600)
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    catalog = configured_catalog(catalog_message["catalog"], ["funnels"], "incremental")
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    (tmp_path / "config.json").write_text(json.dumps(config))
    sim.reset_log()
    sync = subprocess.Popen([CONNECTOR, "read", "--config", str(tmp_path / "config.json"), "--catalog",
                             str(tmp_path / "catalog.json")], stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, sync.kill)  # a STATE that never comes fails the test, not after the whole wait
    watchdog.start()
    finished = []
    try:
        for line in sync.stdout:  # the list and two funnels spend the budget of 3; the third waits 10 minutes
            if line.startswith('{"type":"STATE"'):
                state = json.loads(line)["state"]["stream"]["stream_state"]
                finished = [s["partition"]["funnel_id"] for s in state["states"] if s["cursor"]["date"] == "2025-03-02T00:00:00Z"]
                if len(finished) == 2:
                    break
    finally:
        watchdog.cancel()
        sync.kill()
        sync.wait()
    assert len(finished) == 2, "no STATE held the two funnels read before the wait"
    (unread,) = {f["funnel_id"] for f in sim.funnels()} - set(finished)
    assert {r["params"]["funnel_id"] for r in sim.requests_to("/api/query/funnels")} == {str(f) for f in finished}

    sim.reset_log()
    saved = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "funnels"}, "stream_state": state}}]
    run = run_connector(tmp_path, "read", dict(config, query_requests_per_hour=60), catalog=catalog, state=saved)
    assert run.stream_statuses("funnels")[-1] == "COMPLETE"
    # The finished funnels ask only for their saved day, as after a sync that completed; the unread one for both days.
    asked = {r["params"]["funnel_id"]: (r["params"]["from_date"], r["params"]["to_date"]) for r in sim.requests_to("/api/query/funnels")}
    assert asked == {**{str(f): ("2025-03-02", "2025-03-02") for f in finished}, str(unread): ("2025-03-01", "2025-03-02")}
    assert sorted((r["funnel_id"], r["date"]) for r in run.records_of("funnels")) == sorted(
        [(f, "2025-03-02") for f in finished] + [(unread, "2025-03-01"), (unread, "2025-03-02")])


def test_revenue_is_one_record_per_day_and_never_the_overall_total(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-10")
    run, schemas = read(tmp_path, config, ["revenue"])
    records = run.records_of("revenue")
    assert sorted(records, key=lambda r: r["date"]) == [{"date": day, **sim.revenue_day(day)} for day in days("2025-03-01", "2025-03-10")]
    for record in records:
        jsonschema.validate(record, schemas["revenue"])


@pytest.mark.parametrize("status", [402, 404, 410])
def test_a_retired_revenue_endpoint_fails_only_revenue(tmp_path, sim, status):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-03")
    with switched(sim, retired={"revenue": status}):
        run, _ = read(tmp_path, config, ["revenue", "funnels", "annotations"])
    assert run.stream_statuses("revenue")[-1] == "INCOMPLETE" and not run.records_of("revenue")
    (error,) = [e for e in run.errors if "deselect the revenue stream" in e["message"]]
    assert error["failure_type"] == "config_error"
    assert run.stream_statuses("funnels")[-1] == "COMPLETE" and len(run.records_of("funnels")) == 3 * len(sim.funnels())
    assert run.stream_statuses("annotations")[-1] == "COMPLETE" and run.records_of("annotations")
    assert len(sim.requests_to("/api/query/engage/revenue")) == 1  # retirement is not retried


@pytest.mark.parametrize("auth", ["service_account", "project_secret"])
def test_annotations_come_from_the_right_path_for_each_auth(tmp_path, sim, auth):
    make = service_account_config if auth == "service_account" else project_secret_config
    config = make(sim, start_date="2020-01-01")
    run, schemas = read(tmp_path, config, ["annotations"], sync_mode="full_refresh")
    records = run.records_of("annotations")
    assert sorted(records, key=lambda r: r["id"]) == sorted(sim.annotations(), key=lambda r: r["id"])
    for record in records:
        jsonschema.validate(record, schemas["annotations"])
    (call,) = [c for c in sim.requests if "annotations" in c["path"]]
    if auth == "service_account":
        assert call["path"] == f"/api/app/projects/{config['credentials']['project_id']}/annotations"
    else:
        assert call["path"] == "/api/2.0/annotations" and call["params"]["from_date"] == "2020-01-01"


@pytest.mark.parametrize("stream, odd, says", [
    ("funnels", {"total": {"count": 1}}, 'Mixpanel answered funnel 7509 for 2025-03-01..2025-03-03 with the key "total" in '
                                         "data, which is neither a day (YYYY-MM-DD) nor $overall"),
    ("funnels", {"2025-03-02": None}, "Mixpanel answered funnel 7509 for 2025-03-01..2025-03-03 with null for the day "
                                      "2025-03-02 in data, where an object belongs"),
    ("revenue", {"2025-03-02": [1, 2]}, "Mixpanel answered revenue for 2025-03-01..2025-03-03 with [1,2] (a list) for the "
                                        "day 2025-03-02 in results, where an object belongs"),
])
def test_a_key_that_is_no_day_or_a_day_that_is_no_object_fails_its_window(tmp_path, sim, stream, odd, says):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-03")
    with switched(sim, odd_date_keys=odd):  # funnel 7509 and revenue
        run, _ = read(tmp_path, config, [stream])
    message = failed_with(run, stream)
    assert message.startswith(says + ":") and f"deselect the {stream} stream" in message and message.count(". ") == 0
    landed = {(r.get("funnel_id"), r["date"]) for r in run.records_of(stream)}
    others = {(f["funnel_id"], day) for f in sim.funnels() if f["funnel_id"] != 7509 for day in days("2025-03-01", "2025-03-03")}
    assert landed == (others if stream == "funnels" else set())  # none of that window, all of the other funnels
