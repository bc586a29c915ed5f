"""Mixpanel's budgets through the real command, with the simulator enforcing them and an hour shrunk to seconds."""

import datetime as dt
import json
import os
import re
import signal
import subprocess
from collections import Counter

import pytest

from integration_tests.harness import CONNECTOR, configured_catalog, run_connector, service_account_config, switched
from integration_tests.simulator import MixpanelSimulator

WINDOW = 4  # seconds standing in for Mixpanel's hour, in the simulator and the connector alike
ALL_STREAMS = ["export", "engage", "cohorts", "cohort_members", "funnels", "revenue", "annotations"]


@pytest.fixture(scope="module")
def limited():
    """120 saved funnels and 40 cohorts behind Mixpanel's limits; queries take a moment, so they overlap."""
    with MixpanelSimulator(rate_limits=True, rate_window_seconds=WINDOW, n_funnels=120, n_cohorts=40,
                           query_latency=0.1, events_per_day=5, n_profiles=600) as simulator:
        yield simulator


def limited_config(sim, **overrides):
    return service_account_config(sim, rate_limit_window_seconds=WINDOW, **overrides)


def catalog_for(tmp_path, config, streams):
    discovered = run_connector(tmp_path, "discover", config)
    assert discovered.returncode == 0, discovered.stdout[-2000:]
    (catalog_message,) = discovered.of_type("CATALOG")
    return configured_catalog(catalog_message["catalog"], streams, "incremental")


def read(tmp_path, sim, config, streams, timeout=600):
    """Discover, then read in a fresh window (as if discover ran an hour earlier: its calls are Mixpanel's to count)."""
    catalog = catalog_for(tmp_path, config, streams)
    sim.reset_log()
    return run_connector(tmp_path, "read", config, catalog=catalog, timeout=timeout)


def days(first, last):
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def test_a_year_of_120_funnels_and_40_cohorts_lands_exactly_without_a_single_429(tmp_path, limited):
    last = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    first = (dt.date.today() - dt.timedelta(days=365)).isoformat()
    window = 10  # longer than the others: the connector must outpace 60 queries a window to show its waits
    config = service_account_config(limited, start_date=first, end_date=last, num_workers=8, rate_limit_window_seconds=window)
    with switched(limited, rate_window_seconds=window):
        run = read(tmp_path, limited, config, ALL_STREAMS)

    assert run.returncode == 0, run.stdout[-3000:]
    assert {stream: run.stream_statuses(stream)[-1] for stream in ALL_STREAMS} == dict.fromkeys(ALL_STREAMS, "COMPLETE")
    # Every record, exactly once.
    funnels = Counter((r["funnel_id"], r["date"]) for r in run.records_of("funnels"))
    assert funnels == Counter({(f["funnel_id"], day): 1 for f in limited.funnels() for day in days(first, last)})
    members = Counter((r["cohort_id"], r["distinct_id"]) for r in run.records_of("cohort_members"))
    assert members == Counter({(c["id"], p["$distinct_id"]): 1 for c in limited.cohorts()
                               for p in limited.cohort_members(c["id"])})
    events = Counter(r["insert_id"] for r in run.records_of("export"))
    assert events == Counter(e["properties"]["$insert_id"] for e in limited.export_truth(first, last))
    assert sorted(r["distinct_id"] for r in run.records_of("engage")) == sorted(p["$distinct_id"] for p in limited.profiles())
    assert sorted(r["date"] for r in run.records_of("revenue")) == days(first, last)
    assert len(run.records_of("cohorts")) == 40 and len(run.records_of("annotations")) == len(limited.annotations())

    # Funnels ask for the whole year in one request each (revenue in one); the lists are read once, the cohorts list
    # for both of its streams.
    paths = Counter(request["path"] for request in limited.requests)
    assert paths["/api/query/funnels"] == 120 and paths["/api/query/engage/revenue"] == 1
    assert paths["/api/query/cohorts/list"] == 1 and paths["/api/query/funnels/list"] == 1
    # Mixpanel's limits held: no 429 at all, never more than 60 in a window, 5 queries in flight or 3 exports a second.
    report = limited.rate_report()
    assert report["query"]["refused"] == {} and report["export"]["refused"] == {}
    assert report["query"]["most_in_window"] <= 60 and report["query"]["most_in_flight"] <= 5
    assert report["export"]["most_in_a_second"] <= 3 and report["export"]["most_in_window"] <= 60
    # ... while the work took three windows of queries and eight workers could have sent more at once.
    assert report["query"]["admitted"] == sum(n for path, n in paths.items() if path != "/api/2.0/export") > 2 * 60

    # The plan comes first, then the waits say why, how long and until when.
    (query_plan,) = [line for line in run.logs if line.startswith("Plan: ") and " query requests" in line]
    # Only a query's first page takes a place in the hour: the plan counts what Mixpanel counts.
    assert query_plan.startswith(f"Plan: {report['query']['counted']} query requests (funnels 120, cohort_members 40, ")
    assert query_plan.endswith(f"at 60 per {window} s this sync needs at least {2 * window} s.")
    (export_plan,) = [line for line in run.logs if line.startswith("Plan: ") and " export requests" in line]
    assert export_plan.startswith(f"Plan: {paths['/api/2.0/export']} export requests (export {paths['/api/2.0/export']}): at 60 per ")
    waits = [line for line in run.logs if line.startswith("Waiting ") and "before the next query request" in line]
    assert waits and all(f"60 query requests in the last {window} s" in line and ", until 20" in line for line in waits)

    # A state soon after funnels finish (those finishing within seconds share one), never one equal to the one before.
    funnel_states = [s["stream"]["stream_state"] for s in run.states if s["stream"]["stream_descriptor"]["name"] == "funnels"]
    assert 3 <= len(funnel_states) <= 120 + 2 and len(funnel_states[-1]["states"]) == 120
    assert all(before != after for before, after in zip(funnel_states, funnel_states[1:]))


@pytest.mark.parametrize("retry_after", [False, True], ids=["probing", "retry-after"])
def test_a_budget_another_client_spent_for_one_and_a_half_windows_is_waited_out(tmp_path, limited, retry_after):
    config = limited_config(limited, start_date="2026-01-01", end_date="2026-01-03")
    streams = ["export", "engage", "revenue"]
    with switched(limited, rate_retry_after=retry_after):
        limited.spend_budget(1.5 * WINDOW, from_first_request=True)
        catalog = catalog_for(tmp_path, config, streams)  # discover waits too
        limited.reset_log()
        limited.spend_budget(1.5 * WINDOW, from_first_request=True)  # however long the connector takes to start
        run = run_connector(tmp_path, "read", config, catalog=catalog)

    assert run.returncode == 0, run.stdout[-3000:]
    assert {stream: run.stream_statuses(stream)[-1] for stream in streams} == dict.fromkeys(streams, "COMPLETE")
    assert Counter(r["insert_id"] for r in run.records_of("export")) == Counter(
        e["properties"]["$insert_id"] for e in limited.export_truth("2026-01-01", "2026-01-03"))
    assert len(run.records_of("engage")) == len(limited.profiles()) and len(run.records_of("revenue")) == 3
    report = limited.rate_report()
    refused = report["query"]["refused"]
    assert set(refused) == {"spent"}  # every 429 was the other client's doing
    if retry_after:  # Mixpanel said how long: one refusal, one wait
        assert refused["spent"] == 1
    else:  # probes at growing intervals: more than one, far fewer than a request a moment
        assert 2 <= refused["spent"] <= 12
    refusals = [line for line in run.logs if line.startswith("Mixpanel refused GET /api/query/")]
    assert refusals and all("61/60 queries running in the last hour" in line and ", until 20" in line for line in refusals)


@pytest.mark.parametrize("nonsense", ["0", "Wed, 21 Oct 2015 07:28:00 GMT", "1e20", "999999999", "soon"])
def test_a_retry_after_that_makes_no_sense_counts_as_absent(tmp_path, limited, nonsense):
    """0 or a past date (a burst of retries), 1e20 (an overflow), 999999999 (31 years), garbage: the connector probes
    at its own growing intervals, as without the header, and never waits past its give-up limit."""
    config = limited_config(limited, start_date="2026-01-01", end_date="2026-01-03")
    streams = ["revenue", "annotations"]
    catalog = catalog_for(tmp_path, config, streams)
    limited.reset_log()
    # Mixpanel allows one query a window here: the second is refused until the first ages out of it.
    with switched(limited, rate_retry_after=nonsense, query_per_window=1):
        run = run_connector(tmp_path, "read", config, catalog=catalog, timeout=60)

    assert {stream: run.stream_statuses(stream)[-1] for stream in streams} == dict.fromkeys(streams, "COMPLETE"), (
        run.stdout[-3000:] + run.stderr[-3000:])
    assert len(run.records_of("revenue")) == 3 and "Traceback" not in run.stdout + run.stderr
    # The connector waits for its own first query to age out, as without the header: no burst, no long wait.
    assert 1 <= limited.rate_report()["query"]["refused"]["hour"] <= 15  # 9 here without a Retry-After


def test_a_5xx_retry_after_is_obeyed_only_where_it_makes_sense_and_every_wait_is_said(tmp_path, limited):
    config = service_account_config(limited, start_date="2026-01-01", end_date="2026-01-03")
    catalog = catalog_for(tmp_path, config, ["revenue"])
    limited.reset_log()
    for value in ("1e20", "2"):  # one answer each, in this order
        limited.answer("/api/query/engage/revenue", {"error": "maintenance"}, status=503, times=1,
                       headers={"Retry-After": value})
    run = run_connector(tmp_path, "read", config, catalog=catalog, timeout=60)

    assert run.stream_statuses("revenue")[-1] == "COMPLETE", run.stdout[-3000:] + run.stderr[-3000:]
    assert len(run.records_of("revenue")) == 3 and len(limited.requests_to("/api/query/engage/revenue")) == 3
    waits = [line for line in run.logs if line.startswith("Mixpanel answered GET /api/query/engage/revenue with 503")]
    # 1e20 counts as absent: the connector's own 10 s (and the CDK's extra second); then the 2 s asked for.
    assert len(waits) == 2 and ": waiting 11 s, until 20" in waits[0] and "Retry-After" not in waits[0]
    assert ": waiting 3.0 s, until 20" in waits[1] and waits[1].endswith(", as its Retry-After asks, then sending it again.")


def test_a_wait_that_would_leave_airbyte_without_a_record_too_long_fails_the_sync_at_once(tmp_path, limited):
    """Airbyte stops a source silent (no RECORD nor STATE) for 3 h; the connector's waits end by 2.75 windows
    (2 h 45 min, here 11 s) of silence, or it stops with a transient error that says why."""
    config = limited_config(limited, start_date="2026-01-01", end_date="2026-01-03")
    catalog = catalog_for(tmp_path, config, ["revenue"])
    limited.reset_log()
    limited.answer("/api/query/engage/revenue", {"error": "maintenance"}, status=503, times=3, headers={"Retry-After": "6"})
    run = run_connector(tmp_path, "read", config, catalog=catalog, timeout=60)

    assert run.returncode != 0 and run.records == [] and "COMPLETE" not in run.stream_statuses("revenue")
    (stream_error, *_) = run.errors  # then the CDK's summary of the failed streams
    assert stream_error["failure_type"] == "transient_error" and re.fullmatch(
        r"Mixpanel answered GET /api/query/engage/revenue with 503 after the connector had written no record or state "
        r"for [0-9.]+ s: waiting on would leave Airbyte without a sign of life for longer than it allows; the connector "
        r"stops here, and a sync run again later resumes from its last state\.", stream_error["message"])
    assert len(limited.requests_to("/api/query/engage/revenue")) == 2  # it did not wait a third time


def test_a_budget_spent_beyond_two_windows_ends_in_a_transient_error_and_nothing_complete(tmp_path, limited):
    config = limited_config(limited, start_date="2026-01-01", end_date="2026-01-03")
    catalog = catalog_for(tmp_path, config, ["export", "engage", "funnels"])
    limited.reset_log()
    # Six windows: the connector gives up after two of refusals, however long a loaded machine takes to start it.
    limited.spend_budget(6 * WINDOW)
    try:
        run = run_connector(tmp_path, "read", config, catalog=catalog)
    finally:
        limited.spend_budget(0)  # the other client is gone: the module's next tests start with a free budget

    assert run.returncode != 0 and run.records == []
    assert "COMPLETE" not in {status for stream in ("export", "engage", "funnels") for status in run.stream_statuses(stream)}
    assert run.errors and all(error["failure_type"] == "transient_error" for error in run.errors)
    assert any(error["message"].startswith("Mixpanel kept refusing query requests for ") and "61/60" in error["message"]
               for error in run.errors)
    assert set(limited.rate_report()["query"]["refused"]) == {"spent"}

    limited.spend_budget(6 * WINDOW)
    try:
        discovered = run_connector(tmp_path, "discover", config)
    finally:
        limited.spend_budget(0)
    assert discovered.returncode != 0 and not discovered.of_type("CATALOG")
    assert [error["failure_type"] for error in discovered.errors] == ["transient_error"]


def test_check_says_at_once_that_the_budget_is_spent_right_now(tmp_path, limited):
    limited.spend_budget(3 * WINDOW)
    run = run_connector(tmp_path, "check", limited_config(limited))
    (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert status["status"] == "FAILED" and "query budget for this project is spent right now" in status["message"]
    assert len(limited.requests) <= 3  # it did not wait the budget out


@pytest.mark.parametrize("retry_after", [False, "999999999"], ids=["no-retry-after", "absurd-retry-after"])
def test_other_clients_running_queries_are_waited_for_in_seconds(tmp_path, limited, retry_after):
    config = limited_config(limited, start_date="2026-01-01", end_date="2026-01-03", num_workers=6)
    # Other clients keep 3 of Mixpanel's 5 places busy; a Retry-After of 31 years counts as absent.
    with switched(limited, others_in_flight=3, rate_retry_after=retry_after):
        run = read(tmp_path, limited, config, ["cohort_members"], timeout=120)
    assert run.stream_statuses("cohort_members")[-1] == "COMPLETE", run.stdout[-3000:]
    assert len(run.records_of("cohort_members")) == sum(len(limited.cohort_members(c["id"])) for c in limited.cohorts())
    assert set(limited.rate_report()["query"]["refused"]) == {"concurrent"}
    assert any("6/5 queries running concurrently" in line for line in run.logs if line.startswith("Mixpanel refused"))


def test_a_daily_sync_under_the_budget_never_waits(tmp_path, limited):
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    # A real hour and the default three funnels and cohorts: everything fits in one window.
    with switched(limited, rate_window_seconds=3600, n_funnels=3, n_cohorts=3):
        config = service_account_config(limited, start_date=yesterday)
        run = read(tmp_path, limited, config, ALL_STREAMS)
    assert {stream: run.stream_statuses(stream)[-1] for stream in ALL_STREAMS} == dict.fromkeys(ALL_STREAMS, "COMPLETE")
    assert not [line for line in run.logs if line.startswith(("Waiting ", "Still waiting", "Mixpanel refused"))]
    assert limited.rate_report()["query"]["refused"] == {} and limited.rate_report()["export"]["refused"] == {}
    plans = [line for line in run.logs if line.startswith("Plan: ")]
    assert len(plans) == 2 and all("within the budget of 60 an hour" in line for line in plans)


def test_a_long_engage_read_under_a_spent_budget_pages_through_without_a_pause(tmp_path, limited):
    """76 pages in one session that expires after 1 s without a page, shorter than any budget pause: only page 0
    takes a place in Mixpanel's hour, so the pages after it never wait for the budget, however spent it is."""
    window = 20  # longer than the read of 76 pages takes, so that counting them would fill it
    config = service_account_config(limited, page_size=8, rate_limit_window_seconds=window)
    catalog = catalog_for(tmp_path, config, ["engage"])
    limited.reset_log()
    with switched(limited, engage_session_seconds=1, rate_window_seconds=window, rate_retry_after=True):
        limited.spend_budget(12)  # another client, past the connector's start: the first page waits for the budget
        run = run_connector(tmp_path, "read", config, catalog=catalog)

    assert run.stream_statuses("engage")[-1] == "COMPLETE", run.stdout[-3000:]
    assert Counter(r["distinct_id"] for r in run.records_of("engage")) == Counter(p["$distinct_id"] for p in limited.profiles())
    pages = [c["params"].get("page") for c in limited.requests_to("/api/query/engage") if c.get("status") == 200]
    assert pages == [None] + [str(page) for page in range(1, 76)]  # one session, never restarted
    assert not [line for line in run.logs if "session expired" in line or line.startswith("Waiting ")]
    report = limited.rate_report()["query"]
    assert report["refused"] == {"spent": 1} and report["counted"] == report["admitted"] - 75


def read_killed(tmp_path, sim, config, catalog, state, kill_after_records, spend_seconds):
    """A read that another client's spending meets as it starts (the budget is spent when its plan is logged),
    SIGKILLed once it has emitted this many records (None: read to the end): its records and its last STATE."""
    files = {"config": config, "catalog": catalog, "state": state}
    args = [CONNECTOR, "read"]
    for name, value in files.items():
        if value is not None:
            (tmp_path / f"{name}.json").write_text(json.dumps(value))
            args += [f"--{name}", str(tmp_path / f"{name}.json")]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    records, last_state = [], None
    for line in process.stdout:
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("type") == "LOG" and message["log"]["message"].startswith("Plan: "):
            sim.spend_budget(spend_seconds, families=["export"])
        elif message.get("type") == "STATE":
            last_state = message["state"]
        elif message.get("type") == "RECORD":
            records.append(message["record"]["data"]["insert_id"])
            if len(records) == kill_after_records:
                process.send_signal(signal.SIGKILL)
                break
    process.stdout.close()
    process.wait(60)
    return records, last_state


def test_restarts_on_a_spent_budget_send_one_request_into_the_refusal_and_resume_where_they_stopped(tmp_path, limited):
    """Killed twice after 30 records, each start meeting a budget another client spent: one export request is refused
    per start, not a burst, and places go to the earliest days first, so the state keeps up with what was read."""
    first, last = "2026-01-01", "2026-01-24"
    config = limited_config(limited, start_date=first, end_date=last, export_requests_per_hour=6, export_window_days=1,
                            num_workers=10)
    catalog = catalog_for(tmp_path, config, ["export"])
    read, refusals, state = [], [], None
    with switched(limited, export_per_window=6, rate_retry_after=True):
        for kill_after in (30, 30, None):
            limited.reset_log()
            records, last_state = read_killed(tmp_path, limited, config, catalog, state, kill_after, spend_seconds=2)
            read += records
            refusals.append(limited.rate_report()["export"]["refused"])
            state = [last_state] if last_state else state

    assert refusals == [{"spent": 1}] * 3  # 3 each before: as many as a second allows went out blind
    truth = Counter(e["properties"]["$insert_id"] for e in limited.export_truth(first, last))
    assert set(read) == set(truth)  # nothing lost across the kills
    read_again = len(read) - len(set(read))
    assert read_again <= 30, read_again  # of the 60 read before the kills: 15 measured here, 50-60 before
