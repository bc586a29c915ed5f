"""What an adversarial review broke: hostile answers, odd data and bad input, each through the real command.

Every test here failed before its fix: the sync said COMPLETE on partial data, or crashed with a stack trace or a
misleading message.
"""

import datetime as dt
import json
import os
import resource
import signal
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from integration_tests.harness import (
    configured_catalog,
    forget_requests,
    project_secret_config,
    run_connector,
    service_account_config,
    switched,
)
from integration_tests.simulator import MixpanelSimulator

SECRET_VALUE = "hunter2-proxy-password"


def catalog_for(tmp_path, config, streams, sync_mode="incremental"):
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    forget_requests(config)  # the tests count the read's requests, not discover's
    return configured_catalog(catalog_message["catalog"], streams, sync_mode)


def bare_catalog(*streams):
    """A configured catalog without discover: the name is all a read needs of a stream."""
    return {"streams": [{"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                         "sync_mode": "full_refresh", "destination_sync_mode": "append"} for name in streams]}


def read(tmp_path, sim, config, streams, state=None, **popen):
    catalog = catalog_for(tmp_path, config, streams)
    sim.reset_log()
    return run_connector(tmp_path, "read", config, catalog=catalog, state=state, **popen)


def state_of(run, stream):
    states = [s["stream"]["stream_state"] for s in run.states if s["stream"]["stream_descriptor"]["name"] == stream]
    return states[-1] if states else None


def stream_state(stream, value):
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": value}}]


def event_line(time, insert_id, **properties):
    return json.dumps({"event": "Page View", "properties": {"time": time, "distinct_id": "u1", "$insert_id": insert_id,
                                                            **properties}}).encode()


def epoch(day):
    return int(dt.datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp())


def insert_ids(run):
    return Counter(r["insert_id"] for r in run.records_of("export"))


def truth_ids(sim, first, last, *extra):
    return Counter([e["properties"]["$insert_id"] for e in sim.export_truth(first, last)] + list(extra))


# ------------------------------------------------------------------ 1. a future time never moves the state past unread data
@pytest.mark.parametrize("future", ["2025-04-23", "2100-01-01"])
def test_an_event_from_the_future_is_emitted_but_the_state_stops_at_the_windows_read(tmp_path, sim, future):
    sim.inject_export_lines("2025-04-01", [event_line(epoch(future), "from-the-future")])
    run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03"), ["export"])
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    assert insert_ids(run) == truth_ids(sim, "2025-04-01", "2025-04-03", "from-the-future")
    assert state_of(run, "export")["time"] <= "2025-04-03T23:59:59Z"
    assert sum("after the window it came in" in line for line in run.logs) == 1


def test_a_profile_seen_in_2099_does_not_stop_the_next_incremental_sync(tmp_path, capped_small):
    capped_small.extra_profiles = [{"$distinct_id": "zz-time-traveller", "$properties": {"$last_seen": "2099-01-01T00:00:00"}}]
    config = service_account_config(capped_small, attribution_window=0)
    first = read(tmp_path, capped_small, config, ["engage"])
    saved = state_of(first, "engage")
    assert "zz-time-traveller" in {r["distinct_id"] for r in first.records_of("engage")}
    assert saved["last_seen"] <= dt.datetime.utcnow().isoformat()
    second = run_connector(tmp_path, "read", config, catalog=catalog_for(tmp_path, config, ["engage"]),
                           state=stream_state("engage", saved))
    assert second.stream_statuses("engage")[-1] == "COMPLETE" and second.records_of("engage")  # a request was sent


def test_an_integer_profile_id_comes_as_its_text_and_a_profile_without_one_fails_the_read(tmp_path, capped_small):
    capped_small.extra_profiles = [{"$distinct_id": 4, "$properties": {"$email": "four@example.com"}}]
    config = service_account_config(capped_small)
    catalog = catalog_for(tmp_path, config, ["engage"])
    assert catalog["streams"][0]["stream"]["json_schema"]["properties"]["distinct_id"] == {"type": "string"}
    run = run_connector(tmp_path, "read", config, catalog=catalog)
    assert run.stream_statuses("engage")[-1] == "COMPLETE"
    assert all(type(r["distinct_id"]) is str for r in run.records_of("engage"))  # a key never mixes types
    (four,) = [r for r in run.records_of("engage") if r.get("email") == "four@example.com"]
    assert four["distinct_id"] == "4" and len(run.records_of("engage")) == 451
    jsonschema.validate(four, catalog["streams"][0]["stream"]["json_schema"])
    capped_small.extra_profiles = [{"$properties": {"$email": "nobody@example.com"}}]
    run = read(tmp_path, capped_small, service_account_config(capped_small), ["engage"])
    assert run.returncode != 0 and run.stream_statuses("engage")[-1] == "INCOMPLETE"
    (error, *_) = run.errors
    assert error["message"].startswith("Mixpanel answered an engage profile without an id ($distinct_id): ")
    assert all(isinstance(r["distinct_id"], str) for r in run.records_of("engage"))  # never a null key


def test_a_saved_state_in_the_future_is_clamped_to_today_with_one_warning(tmp_path, sim):
    today = dt.date.today().isoformat()
    config = service_account_config(sim, start_date="2025-01-01", export_lookback_window=0)
    run = read(tmp_path, sim, config, ["export"], state=stream_state("export", {"time": "2100-01-01T00:00:00Z"}))
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    assert {r["params"]["from_date"] for r in sim.requests_to("/api/2.0/export")} == {today}
    assert sum("The saved state of export is in the future" in line for line in run.logs) == 1


# ------------------------------------------------------------------ 2. a 200 whose body is an error is a failed request
def test_an_error_body_on_any_engage_page_is_retried_and_then_fails_the_stream(tmp_path, capped_small):
    config = service_account_config(capped_small, page_size=100)
    capped_small.answer("/api/query/engage", {"error": "page exploded"}, when={"page": "1"}, times=1,
                        headers={"Retry-After": "1"})
    run = read(tmp_path, capped_small, config, ["engage"])
    assert run.stream_statuses("engage")[-1] == "COMPLETE" and len(run.records_of("engage")) == len(capped_small.profiles())

    capped_small.answer("/api/query/engage", {"error": "no profiles today", "status": "error"}, headers={"Retry-After": "1"})
    run = read(tmp_path, capped_small, config, ["engage"])
    assert run.stream_statuses("engage")[-1] == "INCOMPLETE" and run.records_of("engage") == []
    assert any("with the error 'no profiles today' in place of data" in e["message"] for e in run.errors)
    assert (state_of(run, "engage") or {}).get("last_seen", "") <= "1970-01-01T00:00:00"  # the state did not move


def test_error_bodies_from_lists_and_funnel_windows_never_become_rows_or_advance_a_state(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02", date_window_size=1)
    sim.answer("/api/query/cohorts/list", {"error": "cohorts are down"}, headers={"Retry-After": "1"})
    sim.answer("/api/query/funnels", {"error": "bad window"}, when={"funnel_id": "7510", "from_date": "2025-04-02"},
               headers={"Retry-After": "1"})
    run = read(tmp_path, sim, config, ["cohorts", "funnels"])
    assert run.stream_statuses("cohorts")[-1] == "INCOMPLETE" and run.records_of("cohorts") == []
    assert run.stream_statuses("funnels")[-1] == "INCOMPLETE"
    assert ("7510", "2025-04-02") not in {(str(r["funnel_id"]), r["date"]) for r in run.records_of("funnels")}
    saved = {s["partition"]["funnel_id"]: s["cursor"]["date"] for s in (state_of(run, "funnels") or {}).get("states", [])}
    assert saved.get(7510, "") < "2025-04-02"


def test_an_export_body_that_is_an_error_object_is_retried_not_emitted(tmp_path, sim):
    sim.inject_export_lines("2025-04-02", [b'{"error": "export failed", "status": "error"}'], where="start")
    run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    assert run.stream_statuses("export")[-1] == "INCOMPLETE"
    assert all(r["insert_id"] in truth_ids(sim, "2025-04-01", "2025-04-01") for r in run.records_of("export"))
    assert any("an error object where an event belongs at line 1" in e["message"] for e in run.errors)
    assert len(sim.requests_to("/api/2.0/export")) == 3  # day 1, day 2, day 2 asked once more


# ------------------------------------------------------------------ 3. engage pages capped by Mixpanel, later ones without page_size
@pytest.mark.parametrize("cap", [1000, 250])
def test_engage_reads_every_profile_when_later_pages_leave_out_their_size(tmp_path, cap):
    with MixpanelSimulator(n_profiles=5000, max_page_size=cap, engage_page_size_on_page_zero_only=True) as sim:
        run = read(tmp_path, sim, service_account_config(sim, page_size=2000), ["engage"])
        assert len({r["distinct_id"] for r in run.records_of("engage")}) == len(run.records_of("engage")) == 5000


# ------------------------------------------------------------------ 4. bodies whose end cannot be seen, or was not sent
def test_a_gzip_stream_without_its_end_is_asked_again(tmp_path, sim):
    with switched(sim, faults=["gzip_unfinished"]):
        run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    assert insert_ids(run) == truth_ids(sim, "2025-04-01", "2025-04-02")
    assert any("ended before the end of its gzip stream" in line for line in run.logs)


def test_a_body_that_ends_where_the_connection_closes_is_said_to_be_unchecked(tmp_path, sim):
    with switched(sim, faults=["close_delimited"]):
        run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert sum("completeness cannot be checked" in line for line in warnings) == 1


# ------------------------------------------------------------------ 5. columns of undiscovered names never drift
def test_undiscovered_names_land_in_the_same_place_in_every_sync(tmp_path, sim):
    def sync(order):
        sim.clear_hostile()
        for day, name in zip(("2025-04-01", "2025-04-02"), order):
            sim.inject_export_lines(day, [event_line(epoch(day), f"drift-{name}", **{name: name})])
        run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02", num_workers=1), ["export"])
        return {r["insert_id"]: {k: v for k, v in r.items() if k.lower() in ("accounttype", "other_properties")}
                for r in run.records_of("export") if r["insert_id"].startswith("drift-")}

    assert sync(["accountType", "accounttype"]) == sync(["accounttype", "accountType"]) == {
        "drift-accountType": {"other_properties": {"accountType": "accountType"}},
        "drift-accounttype": {"other_properties": {"accounttype": "accounttype"}}}


# ------------------------------------------------------------------ 6. discovery trouble degrades, and touches no other stream
@pytest.mark.parametrize("answer, status", [
    ("simulator: internal error", 500), ("<html>Bad gateway</html>", 200), ("null", 200), ("[1, 2]", 200),
    ({"error": "discovery is down", "request": "/api/query/events/properties/top"}, 200),
])
def test_discovery_that_fails_leaves_the_known_fields_with_one_warning(tmp_path, sim, answer, status):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    catalog = catalog_for(tmp_path, config, ["export", "funnels"])
    sim.answer("/api/query/events/properties/top", answer, status=status, headers={"Retry-After": "1"},
               content_type="text/html" if "html" in str(answer) else "application/json")
    run = run_connector(tmp_path, "read", config, catalog=catalog)
    assert run.stream_statuses("export")[-1] == run.stream_statuses("funnels")[-1] == "COMPLETE"
    assert len(run.records_of("export")) == sim.events_per_day and len(run.records_of("funnels")) == len(sim.funnels())
    assert not {"error", "request", "status"} & {k for r in run.records_of("export") for k in r}
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert sum("(/api/query/events/properties/top) failed" in line for line in warnings) == 1


def test_discover_with_discovery_down_gives_the_known_fields(tmp_path, sim):
    sim.answer("/api/query/events/properties/top", "simulator: internal error", status=500)
    (catalog_message,) = run_connector(tmp_path, "discover", service_account_config(sim)).of_type("CATALOG")
    schema = {s["name"]: s["json_schema"] for s in catalog_message["catalog"]["streams"]}["export"]
    assert set(schema["properties"]) == {"event", "dedup_key", "time", "distinct_id", "insert_id", "mp_processing_time_ms", "other_properties"}


# ------------------------------------------------------------------ 7-9. lines that are not events, big records, odd shapes
@pytest.mark.parametrize("line", [
    b"null", b"[]", b"\x00\x00\x00", b'{"error": "person@example.org is not allowed"}',
    b'{"event":"x","properties":["person@example.org"]}', b'{"event":"x","properties":{"time":true,"email":"person@example.org"}}',
    b'{"event":"x","properties":{"time":"2025-04-02T10:00:00","email":"person@example.org"}}',
])
def test_a_line_that_is_not_an_event_stops_its_window_before_any_record_and_never_shows_its_content(tmp_path, sim, line):
    sim.inject_export_lines("2025-04-02", [line])
    run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    assert run.stream_statuses("export")[-1] == "INCOMPLETE" and run.returncode != 0
    assert set(insert_ids(run)) <= set(truth_ids(sim, "2025-04-01", "2025-04-01"))  # nothing of the bad day
    (error,) = [e for e in run.errors if e["message"].startswith("The export of 2025-04-02..2025-04-02 held ")]
    assert "again when asked a second time" in error["message"]
    assert "person@example.org" not in run.stdout + run.stderr  # personal data stays out of logs and errors
    assert (state_of(run, "export") or {}).get("time", "") < "2025-04-02"
    assert len(sim.requests_to("/api/2.0/export")) == 3  # the bad day was asked twice


def test_terminated_early_in_the_middle_of_a_body_is_asked_for_again(tmp_path, sim):
    sim.inject_export_lines("2025-04-02", [b"terminated early"], attempts=1)
    run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    assert insert_ids(run) == truth_ids(sim, "2025-04-01", "2025-04-02")
    assert any("said 'terminated early' at line" in line for line in run.logs)


def test_a_line_that_is_not_an_event_once_is_asked_for_again_and_the_day_lands(tmp_path, sim):
    sim.inject_export_lines("2025-04-02", [b"[]"], attempts=1)
    run = read(tmp_path, sim, service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02"), ["export"])
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    assert insert_ids(run) == truth_ids(sim, "2025-04-01", "2025-04-02")


def test_what_is_unambiguous_is_taken(tmp_path, sim):
    day = "2025-04-02"
    sim.inject_export_lines(day, [b"\xef\xbb\xbf" + event_line(epoch(day), "bom")], where="start")
    sim.inject_export_lines(day, [b"", event_line(epoch(day), "latin-1").replace(b"u1", b"Z\xfcrich"),
                                  event_line(str(epoch(day)), "numeric-string"),
                                  event_line(f"{day}T12:00:00Z", "iso-with-offset"),
                                  event_line(epoch(day), "big", blob="x" * (1536 * 1024))], where="end")
    run = read(tmp_path, sim, service_account_config(sim, start_date=day, end_date=day), ["export"])
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    records = {r["insert_id"]: r for r in run.records_of("export")}
    assert set(records) == set(truth_ids(sim, day, day, "bom", "latin-1", "numeric-string", "iso-with-offset", "big"))
    assert records["latin-1"]["distinct_id"] == "Z\ufffdrich"
    assert {records[i]["time"] for i in ("bom", "numeric-string", "iso-with-offset")} == {f"{day}T12:00:00Z"}
    assert len(records["big"]["other_properties"]["blob"]) == 1536 * 1024 and len(sim.requests_to("/api/2.0/export")) == 1


def test_values_orjson_refuses_come_through_exactly(tmp_path, sim):
    day = "2025-04-04"
    big = 2 ** 70  # beyond 64 bits
    surrogate = json.loads('"\\ud800 alone"')  # a lone surrogate, as a JSON escape can write it
    without_key = json.dumps({"event": "Page View", "properties": {"time": epoch(day), "distinct_id": "u9", "big": big}}).encode()
    sim.inject_export_lines(day, [event_line(epoch(day), "big-and-lone", big=big, text=surrogate), without_key], where="end")
    run = read(tmp_path, sim, service_account_config(sim, start_date=day, end_date=day), ["export"])
    assert run.stream_statuses("export")[-1] == "COMPLETE"
    records = run.records_of("export")
    (keyed,) = [r for r in records if r.get("insert_id") == "big-and-lone"]
    assert keyed["other_properties"] == {"big": big, "text": surrogate}
    (unkeyed,) = [r for r in records if r["distinct_id"] == "u9"]
    assert unkeyed["other_properties"] == {"big": big} and len(unkeyed["dedup_key"]) == 32
    assert len(records) == len(sim.export_truth(day, day)) + 2


def test_a_full_temporary_disk_fails_at_once_and_says_how_much_room_a_window_needs(tmp_path, sim):
    def small_files():  # files stop growing at 64 KB (the window spools ~600 KB gzipped), as on a full disk; the signal would kill the process instead
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-03", export_window_days=3)
    with switched(sim, events_per_day=4000):
        run = read(tmp_path, sim, config, ["export"], preexec_fn=small_files)
    assert run.stream_statuses("export")[-1] == "INCOMPLETE" and run.records_of("export") == []
    assert any("cannot be spooled in" in e["message"] and "File too large" in e["message"] and "TMPDIR" in e["message"]
               for e in run.errors)
    assert len(sim.requests_to("/api/2.0/export")) == 1  # not asked again


# ------------------------------------------------------------------ 10. numbers that passed and then crashed the sync
@pytest.mark.parametrize("change, message", [
    ({"attribution_window": 10**12}, "attribution_window 1000000000000 is not a valid number of days"),
    ({"export_window_days": 10**12}, "export_window_days 1000000000000 is not a valid number of days"),
    ({"export_lookback_window": 10**12}, "export_lookback_window 1000000000000 is not a valid number of seconds"),
    ({"export_read_timeout": 10**12}, "export_read_timeout 1000000000000 is not a valid number of seconds"),
    ({"start_date": "0001-01-01"}, "start_date 0001-01-01 is before 1970-01-01"),
])
def test_numbers_beyond_their_sane_bounds_are_one_sentence(tmp_path, sim, change, message):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02")
    catalog = catalog_for(tmp_path, config, ["export", "engage", "funnels"])
    run = run_connector(tmp_path, "read", {**config, **change}, catalog=catalog)
    (error,) = run.errors
    assert error["failure_type"] == "config_error" and error["message"].startswith(message) and run.returncode == 1


# ------------------------------------------------------------------ 11. saved states that are no times
@pytest.mark.parametrize("stream, saved", [
    ("export", {"time": "garbage"}),
    ("engage", {"last_seen": 42}),
    ("funnels", {"states": [{"partition": {"funnel_id": 7509, "parent_slice": {}}, "cursor": {"date": "nope"}}]}),
    ("funnels", {"states": "all of them"}),
])
def test_a_saved_state_that_is_no_time_is_one_clear_config_error(tmp_path, sim, stream, saved):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02")
    run = read(tmp_path, sim, config, [stream], state=stream_state(stream, saved))
    assert run.returncode != 0 and not run.records
    assert any(e["failure_type"] == "config_error" and e["message"].startswith(f"The saved state of {stream} holds ")
               for e in run.errors)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name, content, message", [
    ("state", "{not json", "line 1 is not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ("state", 5, "is not a state this connector reads: the file holds int 5, which is no state"),
    ("catalog", "{oops", "is not JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ("catalog", {"streams": [{"sync_mode": "full_refresh"}]}, "is not a configured catalog"),
])
def test_state_and_catalog_files_that_are_not_what_they_should_be(tmp_path, sim, name, content, message):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-02")
    files = {"catalog": catalog_for(tmp_path, config, ["export"]), name: content}
    run = run_connector(tmp_path, "read", config, **files)
    (error,) = run.errors
    assert error["failure_type"] == "config_error" and message in error["message"] and run.returncode == 1
    assert "Traceback" not in run.stderr and not sim.requests_to("/api/2.0/export")


# ------------------------------------------------------------------ 12. an engage session that expires
def test_an_expired_engage_session_restarts_the_query_once(tmp_path, capped_small):
    capped_small.expire_next_sessions = 1
    run = read(tmp_path, capped_small, service_account_config(capped_small, page_size=100), ["engage"])
    assert run.stream_statuses("engage")[-1] == "COMPLETE"
    assert {r["distinct_id"] for r in run.records_of("engage")} == {p["$distinct_id"] for p in capped_small.profiles()}
    assert [c["params"].get("page") for c in capped_small.requests_to("/api/query/engage")][:3] == [None, "1", None]

    capped_small.expire_next_sessions = 2
    run = read(tmp_path, capped_small, service_account_config(capped_small, page_size=100), ["engage"])
    assert run.stream_statuses("engage")[-1] == "INCOMPLETE"
    assert any("session expired again after the query restarted from page 0" in e["message"] for e in run.errors)


# ------------------------------------------------------------------ 13. a window Mixpanel refuses
@pytest.mark.parametrize("path, answer", [
    ("/api/2.0/export", "from_date cannot be more than a year ago"),
    ("/api/query/funnels", {"error": "from_date cannot be more than a year ago"}),
])
def test_a_refused_window_is_a_config_error_at_once_in_mixpanels_words(tmp_path, sim, path, answer):
    sim.answer(path, answer, status=400, content_type="text/plain" if isinstance(answer, str) else "application/json",
               when={"from_date": "2025-04-01"})
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    run = read(tmp_path, sim, config, ["export", "funnels"])
    errors = [e for e in run.errors if e["message"].startswith(f"Mixpanel refused {path} for 2025-04-01..2025-04-01")]
    assert errors and all(e["failure_type"] == "config_error" and "from_date cannot be more than a year ago" in e["message"]
                          for e in errors)
    assert len([r for r in sim.requests_to(path) if r["status"] == 400]) == (1 if path.endswith("export") else len(sim.funnels()))


# ------------------------------------------------------------------ 14-15. secrets and small things
@pytest.mark.parametrize("base_url", [f"http://proxy-user:{SECRET_VALUE}@127.0.0.1:1",
                                      f"https://proxy-user:{SECRET_VALUE}@proxy.example:port"])  # a port that is no number
def test_credentials_in_a_base_url_are_refused_and_never_printed(tmp_path, sim, base_url):
    config = service_account_config(sim, base_url=base_url)
    for command in ("check", "discover"):
        run = run_connector(tmp_path, command, config, extra=["--debug"])
        assert SECRET_VALUE not in run.stdout + run.stderr
        assert "base_url holds a user name or password" in run.stdout


def test_a_missing_config_file_and_a_username_that_is_not_text_say_so(tmp_path, sim):
    missing = run_connector(tmp_path, "discover", extra=["--config", str(tmp_path / "nowhere.json")])
    assert "The config file" in missing.errors[0]["message"] and "does not exist" in missing.errors[0]["message"]
    config = service_account_config(sim)
    config["credentials"]["username"] = 5
    (status,) = [m["connectionStatus"] for m in run_connector(tmp_path, "check", config).of_type("CONNECTION_STATUS")]
    assert status["status"] == "FAILED" and status["message"].startswith("credentials.username must be text")


def test_a_secret_with_a_lone_surrogate_is_one_sentence_not_a_traceback(tmp_path, sim):
    config = service_account_config(sim)
    config["credentials"]["secret"] = "s3cr3t\ud800"  # written as the JSON escape \\ud800, which UTF-8 cannot encode
    run = run_connector(tmp_path, "check", config)
    (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert status["status"] == "FAILED" and status["message"].startswith("credentials.secret is not valid text")
    assert "Traceback" not in run.stderr and run.returncode == 0


def test_an_unknown_stream_in_the_catalog_is_named(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    catalog = catalog_for(tmp_path, config, ["export"])
    catalog["streams"][0]["stream"]["name"] = "exports"
    run = run_connector(tmp_path, "read", config, catalog=catalog)
    (error,) = run.errors
    assert error["failure_type"] == "config_error" and "(exports)" in error["message"] and run.returncode == 1


# ------------------------------------------------------------------ 16. credentials never travel in clear text
class _CapturingProxy(BaseHTTPRequestHandler):
    """An HTTP proxy on loopback that writes down every request the connector sends it, and refuses it (401)."""

    seen: list = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append((self.requestline, self.headers.get("Authorization")))
        self.send_response(401)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def test_plain_http_to_a_host_other_than_loopback_is_refused_before_any_request(tmp_path, sim):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _CapturingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    # Every request for a host other than loopback goes to the proxy: none may leave the machine, and none may be sent.
    address = f"http://127.0.0.1:{proxy.server_port}"
    env = {**os.environ, "HTTP_PROXY": address, "HTTPS_PROXY": address, "NO_PROXY": "", "http_proxy": address,
           "https_proxy": address, "no_proxy": ""}
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01",
                                    base_url="http://mixpanel.example", export_base_url="http://data.mixpanel.example")
    sentence = ('base_url "http://mixpanel.example" would send the Mixpanel credentials unencrypted: use https:// in '
                'place of http:// (plain http is taken only for localhost, 127.0.0.0/8 and ::1).')
    try:
        check = run_connector(tmp_path, "check", config, env=env)
        assert [m["connectionStatus"] for m in check.of_type("CONNECTION_STATUS")] == [{"status": "FAILED", "message": sentence}]
        for command in ("discover", "read"):
            run = run_connector(tmp_path, command, config, catalog=bare_catalog("export") if command == "read" else None, env=env)
            assert [(e["failure_type"], e["message"]) for e in run.errors] == [("config_error", sentence)]
            assert run.returncode == 1 and "Traceback" not in run.stderr
    finally:
        proxy.shutdown()
    assert _CapturingProxy.seen == []
    # Loopback by name, as the simulator runs: plain http is taken.
    local = service_account_config(sim, base_url=sim.url.replace("127.0.0.1", "localhost"))
    (status,) = [m["connectionStatus"] for m in run_connector(tmp_path, "check", local).of_type("CONNECTION_STATUS")]
    assert status == {"status": "SUCCEEDED"}


# ------------------------------------------------------------------ 17. values that passed validation and then crashed
@pytest.mark.parametrize("change, command, sentence", [
    # zoneinfo, which the export uses, knows a zone only as the tz database spells it (pytz knew it in any case).
    ({"project_timezone": "utc"}, "check", 'project_timezone "utc" is not a timezone as written (names are '
                                           'case-sensitive): use UTC.'),
    ({"project_timezone": "us/pacific"}, "discover", 'project_timezone "us/pacific" is not a timezone as written '
                                                     '(names are case-sensitive): use US/Pacific.'),
    ({"project_timezone": "Europe/berlin"}, "read", 'project_timezone "Europe/berlin" is not a timezone as written '
                                                    '(names are case-sensitive): use Europe/Berlin.'),
    ({"event_time_storage": None}, "read", "event_time_storage null is not a choice: use detect, utc (projects "
                                           "created since 2023) or project_timezone (before 2023)."),
    ({"base_url": "{url}\t"}, "discover", "base_url holds a space, tab, line break or other invisible character: remove it."),
    ({"export_base_url": "{url}\n"}, "read", "export_base_url holds a space, tab, line break or other invisible "
                                             "character: remove it."),
])
def test_a_value_the_connector_cannot_use_is_one_sentence_in_every_command(tmp_path, sim, change, command, sentence):
    change = {name: value.format(url=sim.url) if isinstance(value, str) else value for name, value in change.items()}
    config = {**service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01"), **change}
    run = run_connector(tmp_path, command, config, catalog=bare_catalog("export") if command == "read" else None)
    if command == "check":
        assert [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")] == [{"status": "FAILED", "message": sentence}]
    else:
        assert [(e["failure_type"], e["message"]) for e in run.errors] == [("config_error", sentence)]
    assert "Traceback" not in run.stderr and not sim.requests


def test_a_budget_spent_during_read_start_discovery_ends_every_stream_incomplete(tmp_path):
    streams = ["export", "engage"]
    with MixpanelSimulator(rate_limits=True, rate_window_seconds=1) as limited:
        limited.spend_budget(3600)  # another client has spent the hour: the connector gives up after two windows
        config = service_account_config(limited, start_date="2025-04-01", end_date="2025-04-01", rate_limit_window_seconds=1)
        run = run_connector(tmp_path, "read", config, catalog=bare_catalog(*streams))
        asked = {request["path"] for request in limited.requests}
    assert {stream: run.stream_statuses(stream) for stream in streams} == dict.fromkeys(streams, ["INCOMPLETE"])
    (error,) = run.errors
    assert error["failure_type"] == "transient_error" and "\n" not in error["message"]
    assert error["message"].startswith("Mixpanel kept refusing query requests for ")
    assert asked == {"/api/query/events/properties/top"} and not run.records  # discovery only: no window was read


@pytest.fixture(scope="module")
def sim():
    """Faulty and injected export answers carry Retry-After: 1, so that a retry comes in seconds."""
    with MixpanelSimulator(fault_retry_after=1) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def capped_small():
    """A few hundred profiles over small pages."""
    with MixpanelSimulator(n_profiles=450, max_page_size=100) as simulator:
        yield simulator


# ------------------------------------------------------------------ 18. a 4xx Mixpanel means: not retried
@pytest.mark.parametrize("path, answer, stream, window", [
    ("/api/2.0/export", "unsupported Accept-Encoding", "export", " for 2025-04-01..2025-04-01"),
    ("/api/query/cohorts/list", {"error": "request malformed", "status": "error"}, "cohorts", ""),
])
def test_a_422_fails_at_once_in_mixpanels_words_without_a_retry(tmp_path, sim, path, answer, stream, window):
    sim.answer(path, answer, status=422, content_type="text/plain" if isinstance(answer, str) else "application/json",
               when={"from_date": "2025-04-01"} if stream == "export" else None)  # not discover's sample week
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    run = read(tmp_path, sim, config, [stream])
    assert run.stream_statuses(stream)[-1] == "INCOMPLETE" and not run.records_of(stream)
    words = answer if isinstance(answer, str) else answer["error"]
    (error,) = [e for e in run.errors if e["message"].startswith(f"Mixpanel refused {path}{window} (422: ")]
    assert words in error["message"] and error["failure_type"] == "config_error"
    assert len(sim.requests_to(path)) == 1  # one request: a refusal is not transient
    assert not any("Retrying" in line or "again in" in line for line in run.logs)


def test_undocumented_endpoints_mixpanel_stops_serving_degrade_as_before(tmp_path, sim):
    # Profile property discovery (engage/properties) leaves the known fields with one WARN; the read goes on.
    sim.answer("/api/query/engage/properties", {"error": "Not found", "status": "error"}, status=404)
    config = service_account_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    run = read(tmp_path, sim, config, ["engage"])
    assert run.stream_statuses("engage")[-1] == "COMPLETE" and len(run.records_of("engage")) == sim.n_profiles
    warnings = [line for line in run.logs if "Property discovery for profiles (/api/query/engage/properties)" in line]
    assert len(warnings) == 1 and "no longer serves" in warnings[0]
    # The project-secret annotations path fails its stream alone, saying what to do.
    sim.clear_hostile()
    sim.answer("/api/2.0/annotations", "Not Found", status=410, content_type="text/plain")
    run = read(tmp_path, sim, project_secret_config(sim, start_date="2025-04-01", end_date="2025-04-01"),
               ["annotations", "cohorts"])
    assert run.stream_statuses("annotations")[-1] == "INCOMPLETE" and run.stream_statuses("cohorts")[-1] == "COMPLETE"
    (error,) = [e for e in run.errors if "no longer serves annotations" in e["message"]]
    assert "move the config to a service account" in error["message"] and error["failure_type"] == "config_error"
    assert len(sim.requests_to("/api/2.0/annotations")) == 1
