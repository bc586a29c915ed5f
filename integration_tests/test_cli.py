"""The command line's edges through the real command: dates that leave nothing to read, the --state shapes a user
holds, the log around a refused config, and what a 4.x config, state or catalog is told at run time."""

import datetime
import json
import socket

import pytest

from integration_tests.harness import configured_catalog, run_connector, service_account_config
from integration_tests.simulator import API_SECRET, SA_SECRET


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


@pytest.mark.parametrize("dates, sentence", [
    ({"start_date": day(1)}, f"start_date {day(1)} is after today ({day(0)} in the project timezone UTC)"),
    ({"start_date": day(2)}, f"start_date {day(2)} is after today ({day(0)} in the project timezone UTC)"),
    ({"start_date": day(30), "end_date": day(40)}, f"start_date {day(30)} is after today ({day(0)} in the project timezone UTC)"),
    ({"end_date": day(-400)}, f"end_date {day(-400)} is before {day(-365)}, where a config without start_date starts"),
])
def test_dates_that_leave_no_day_to_read_are_one_config_error_at_check_and_read(tmp_path, sim, discovered, dates, sentence):
    config = service_account_config(sim, **dates)
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


def connection_state(states):
    """The state as Airbyte's UI shows it on a connection's settings page: per stream, its descriptor and state."""
    latest = {s["stream"]["stream_descriptor"]["name"]: s["stream"] for s in states}
    return {"stateType": "stream", "connectionId": "0b3c6f1e-5b1a-4f7e-9a57-3c1d2e4f5a6b",
            "streamState": [{"streamDescriptor": stream["stream_descriptor"], "streamState": stream["stream_state"]}
                            for stream in latest.values()]}


STATE_SHAPES = {
    "the read's stdout": lambda run: run.stdout,
    "an array of its STATE messages": lambda run: run.of_type("STATE"),
    "an array of its state objects": lambda run: run.states,
    "each stream's last state object": lambda run: list({s["stream"]["stream_descriptor"]["name"]: s for s in run.states}.values()),
    "Airbyte's connection state": lambda run: connection_state(run.states),
}


@pytest.fixture(scope="module")
def first_read(sim, discovered, tmp_path_factory):
    """An incremental read of three days, whose output the next reads resume from; and what a second read asks."""
    config = service_account_config(sim, start_date=day(-3), export_lookback_window=0, attribution_window=0)
    catalog = configured_catalog(discovered, ["export", "funnels"], "incremental")
    tmp_path = tmp_path_factory.mktemp("first")
    first = run_connector(tmp_path, "read", config, catalog=catalog)
    assert first.returncode == 0 and first.records_of("export") and first.records_of("funnels")
    return config, catalog, first


def asked(sim):
    """The days each request asked for, by path: what tells where a read started."""
    return sorted((r["path"], r["params"].get("funnel_id", ""), r["params"].get("from_date"), r["params"].get("to_date"))
                  for r in sim.requests if "from_date" in r["params"])


@pytest.fixture(scope="module")
def resumed_as_before(sim, first_read, tmp_path_factory):
    """The days a read asks when resumed from each stream's last state object, the one shape taken before, and its records."""
    config, catalog, first = first_read
    sim.reset_log()
    from_scratch = run_connector(tmp_path_factory.mktemp("scratch"), "read", config, catalog=catalog)
    days_from_scratch = asked(sim)
    sim.reset_log()
    resumed = run_connector(tmp_path_factory.mktemp("resumed"), "read", config, catalog=catalog,
                            state=STATE_SHAPES["each stream's last state object"](first))
    # Resumed: only today is asked again (the lookbacks are 0), where a read without state asks for all four days.
    assert {start for _, _, start, _ in asked(sim)} == {day(0)} and len(asked(sim)) < len(days_from_scratch)
    assert len(resumed.records) < len(from_scratch.records)
    return asked(sim), len(resumed.records)


@pytest.mark.parametrize("shape", list(STATE_SHAPES))
def test_state_is_taken_in_every_shape_a_sync_printed_and_resumes(tmp_path, sim, first_read, resumed_as_before, shape):
    config, catalog, first = first_read
    sim.reset_log()
    resumed = run_connector(tmp_path, "read", config, catalog=catalog, state=STATE_SHAPES[shape](first))
    assert resumed.returncode == 0 and problems(resumed) == [], resumed.stdout[-2000:]
    assert (asked(sim), len(resumed.records)) == resumed_as_before


@pytest.mark.parametrize("state, where", [
    ({"export": {"time": "2025-01-01T00:00:00Z"}}, "the file holds an object with neither a state nor an Airbyte message type (keys: export)"),
    ('{"type": "STATE", "state": {"type": "STREAM"}}\nnot json\n', "line 2 is not JSON (Expecting value at column 1)"),
    ([1, 2], "the file holds int 1, which is no state"),
    ({"streamState": {"export": {}}}, "the file holds a streamState that is not a list of {streamDescriptor, streamState}"),
])
def test_a_state_in_no_known_shape_is_one_config_error_naming_the_shapes(tmp_path, sim, discovered, state, where):
    run = run_connector(tmp_path, "read", service_account_config(sim), catalog=configured_catalog(discovered, ["export"]),
                        state=state)
    (error,) = run.errors
    assert error["failure_type"] == "config_error" and problems(run) == [error["message"]]
    assert error["message"] == (f"The state file {tmp_path / 'state.json'} is not a state this connector reads: {where}. "
                                f"Pass the STATE lines a read printed (one JSON message per line, other messages may be "
                                f"mixed in), a JSON array of those messages or of their state objects, or the connection "
                                f"state Airbyte's UI shows ({{\"streamState\": [...]}}); or leave --state out to start "
                                f"from start_date.")
    assert run.returncode == 1 and sim.requests == [] and "Traceback" not in run.stdout + run.stderr


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


REFUSED = ("Mixpanel refused the credentials: check the service account username, secret and project ID (or the project "
           "secret), and that the region matches the project's data residency.")


def wrong_secret(config):
    config["credentials"]["secret"] = "wrong-secret-value"
    return config


@pytest.mark.parametrize("case", ["wrong secret at check", "wrong secret in property discovery",
                                  "wrong secret in a stream", "catalog typo", "unreachable host", "config not JSON"])
def test_a_bad_input_is_its_sentence_and_nothing_else_at_error(tmp_path, sim, discovered, case):
    config = service_account_config(sim, start_date=day(-1))
    catalog = configured_catalog(discovered, ["export"])
    if case == "wrong secret at check":
        run, sentence = run_connector(tmp_path, "check", wrong_secret(config)), REFUSED
    elif case == "wrong secret in property discovery":  # the export's schema is read before any stream starts
        run, sentence = run_connector(tmp_path, "read", wrong_secret(config), catalog=catalog), REFUSED
    elif case == "wrong secret in a stream":
        run = run_connector(tmp_path, "read", wrong_secret(config), catalog=configured_catalog(discovered, ["cohorts"]))
        sentence = REFUSED
    elif case == "catalog typo":
        catalog = json.loads(json.dumps(catalog))  # its streams are the module's discovered ones
        catalog["streams"][0]["stream"]["name"] = "exprot"
        run = run_connector(tmp_path, "read", config, catalog=catalog)
        sentence = ("The catalog names streams this connector does not have (exprot): run discover and select from "
                    "export, engage, cohorts, cohort_members, funnels, revenue, annotations.")
    elif case == "unreachable host":
        port = closed_port()
        config.update(base_url=f"http://127.0.0.1:{port}", export_base_url=f"http://127.0.0.1:{port}")
        run = run_connector(tmp_path, "check", config)
        sentence = (f"Could not reach 127.0.0.1:{port} (it refused the connection, after every retry): check base_url, "
                    f"export_base_url and region in the config, and that this machine can reach the host.")
    else:
        text = json.dumps(config, indent=2)[:-2] + ",\n}"  # a comma before the closing brace, on the last line
        line = len(text.splitlines())
        run = run_connector(tmp_path, "check", text)
        sentence = (f"The config file {tmp_path / 'config.json'} is not JSON (Expecting property name enclosed in double "
                    f"quotes at line {line}, column 1): pass a JSON object with --config.")
    statuses = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    if statuses:
        assert statuses == [{"status": "FAILED", "message": sentence}] and problems(run) == []
    else:
        assert problems(run) == [sentence] and run.returncode == 1
        assert [(e["failure_type"], e.get("stack_trace"), e.get("internal_message")) for e in run.errors] \
            == [("config_error", None, sentence)]
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert not any("is not available" in warning for warning in warnings)
    for noise in ("Traceback", "Response (headers)", "401", SA_SECRET):
        assert noise not in run.stdout + run.stderr, noise


def infos(run, words):
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "INFO" and words in m["log"]["message"]]


def test_a_4x_state_is_told_in_one_info_line_and_ours_in_none(tmp_path, sim, discovered, first_read):
    config, catalog, first = first_read
    saved_4x = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "export"},
                                              "stream_state": {"time": f"{day(-1)}T23:31:11Z"}}},
                {"type": "STREAM", "stream": {"stream_descriptor": {"name": "funnels"}, "stream_state": {"states": [
                    {"partition": {"funnel_id": str(funnel["funnel_id"])}, "cursor": {"date": f"{day(-1)}T00:00:00Z"}}
                    for funnel in sim.funnels()]}}}]
    run = run_connector(tmp_path, "read", config, catalog=catalog, state=saved_4x)
    assert run.returncode == 0 and problems(run) == []
    assert infos(run, "as 4.x saved it") == [
        f"The saved state of export holds only a day ({day(-1)}T23:31:11Z), as 4.x saved it: the sync resumes at "
        f"{day(-1)} less export_lookback_window, and emits those days whole once (their duplicates merge on dedup_key).",
        f"The saved state of funnels keys its {len(sim.funnels())} funnels by text IDs, as 4.x saved it: each resumes "
        f"where 4.x left it, less attribution_window.",
    ]
    ours = run_connector(tmp_path, "read", config, catalog=catalog, state=first.stdout)
    assert ours.returncode == 0 and infos(ours, "4.x") == []


def test_a_4x_catalog_reading_cohorts_incrementally_is_told_in_one_info_line(tmp_path, sim, discovered):
    config = service_account_config(sim, start_date=day(-1))
    catalog = configured_catalog(discovered, ["cohorts", "cohort_members", "export"], "incremental")
    for configured in catalog["streams"]:
        configured["sync_mode"] = "incremental"  # as 4.x offered cohorts and cohort_members
    run = run_connector(tmp_path, "read", config, catalog=catalog)
    assert run.returncode == 0 and problems(run) == [] and run.records_of("cohort_members")
    assert infos(run, "incrementally") == [
        "The catalog asks for cohort_members and cohorts incrementally, as 4.x read cohorts and cohort_members; they "
        "are full refresh only now (counts and membership change without a new cursor value): read whole, any saved "
        "state set aside. Set them to full refresh | overwrite."]
    full_refresh = run_connector(tmp_path, "read", config, catalog=configured_catalog(discovered, ["cohorts"]))
    assert full_refresh.returncode == 0 and infos(full_refresh, "incrementally") == []


@pytest.mark.parametrize("indent", [2, "\t"])
def test_check_migrates_a_pre_4x_config_file_keeping_its_other_keys_their_order_and_layout(tmp_path, sim, indent):
    config = {"note": "mine, café", "api_secret": API_SECRET, "base_url": sim.url, "project_timezone": "UTC", "zzz": [1, 2]}
    run = run_connector(tmp_path, "check", json.dumps(config, indent=indent, ensure_ascii=False) + "\n")
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    (control,) = run.of_type("CONTROL")
    migrated = control["control"]["connectorConfig"]["config"]
    assert migrated["credentials"] == {"api_secret": API_SECRET}  # the secret itself: docs/cli.md says so
    assert list(migrated) == ["note", "base_url", "project_timezone", "zzz", "credentials"]
    assert (tmp_path / "config.json").read_text() == json.dumps(migrated, indent=indent, ensure_ascii=False) + "\n"
