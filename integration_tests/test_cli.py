"""The command line's edges through the real command: dates that leave nothing to read, the --state shapes a user
holds, the log around a refused config, and what a 4.x config, state or catalog is told at run time."""

import datetime
import json

import pytest

from integration_tests.conftest import configured_catalog, run_connector, service_account_config
from integration_tests.simulator import SA_SECRET


def day(offset: int) -> str:
    """A day counted from today in UTC, the timezone of the configs here."""
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def discovered(sim, tmp_path_factory):
    run = run_connector(tmp_path_factory.mktemp("discover"), "discover", service_account_config(sim))
    return run.of_type("CATALOG")[0]["catalog"]


def problems(run):
    """Every LOG line at ERROR or above and every error TRACE: what a user reads as having gone wrong."""
    lines = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] in ("ERROR", "FATAL")]
    return lines + [error["message"] for error in run.errors]


@pytest.mark.parametrize("start", [1, 2, 30])
def test_a_start_date_after_today_is_one_config_error_at_check_and_read(tmp_path, sim, discovered, start):
    config = service_account_config(sim, start_date=day(start))
    sentence = f"start_date {day(start)} is after today ({day(0)} in the project timezone UTC)"
    check = run_connector(tmp_path, "check", config)
    (status,) = check.of_type("CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED" and status["connectionStatus"]["message"].startswith(sentence)
    read = run_connector(tmp_path, "read", config, catalog=configured_catalog(discovered, ["export", "funnels", "revenue"]))
    (error,) = read.errors
    assert error["failure_type"] == "config_error" and error["message"].startswith(sentence)
    assert problems(read) == [error["message"]] and "Traceback" not in read.stdout + read.stderr
    assert sim.requests == []


@pytest.mark.parametrize("dates", [
    {"start_date": day(0)},  # today
    {"start_date": day(0), "end_date": day(3)},  # an end after today stops at today
    {"start_date": f"{day(-1)}T00:00:00Z", "attribution_window": 0, "export_lookback_window": 0, "date_window_size": 1},
    {"start_date": "", "end_date": "", "export_window_days": 366},  # empty: the last 365 days, in one export window
])
def test_dates_at_the_edges_read_every_stream_with_time_windows(tmp_path, sim, discovered, dates):
    config = service_account_config(sim, **dates)
    read = run_connector(tmp_path, "read", config,
                         catalog=configured_catalog(discovered, ["export", "funnels", "revenue"], "incremental"))
    assert read.returncode == 0 and problems(read) == [], read.stderr[-2000:]
    assert [read.stream_statuses(s)[-1] for s in ("export", "funnels", "revenue")] == ["COMPLETE"] * 3
    assert read.records_of("export") and read.records_of("funnels") and read.records_of("revenue")
    last_days = {request["params"].get("to_date") for request in sim.requests if "to_date" in request["params"]}
    assert max(last_days) == day(0)  # never a day after today
