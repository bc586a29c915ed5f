"""export/history.py: the dedup key, legacy wall times and DST, the saved read, and the CDK details source.py wraps."""

import datetime
import hashlib
import gzip
import io
import json
import time as time_module

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.export import history
from source_mixpanel.export.history import ExportRun, ProjectClock, dedup_key
from unit_tests.test_export_cursor import export_stream, finish

LA = ProjectClock("America/Los_Angeles")


def test_dedup_key_follows_mixpanels_rule():
    event = {"event": "Signed up", "properties": {"time": 1740794891, "distinct_id": "u1", "$insert_id": "i1", "x": 1}}
    expected = hashlib.blake2b(json.dumps(["Signed up", "u1", 1740794891, "i1"], separators=(",", ":")).encode(),
                               digest_size=16).hexdigest()
    assert dedup_key(event, 1740794891.9) == expected  # to the second
    assert dedup_key({**event, "properties": {**event["properties"], "x": 2}}, 1740794891) == expected
    bare = {"event": "Signed up", "properties": {"time": 1740794891, "distinct_id": "u1"}}
    assert dedup_key(bare, 1740794891) != dedup_key({**bare, "properties": {**bare["properties"], "y": 0}}, 1740794891)


def test_wall_times_become_true_instants_across_dst():
    # 2025-03-09 01:30 PST is 09:30 UTC; 03:30 PDT is 10:30 UTC (02:xx does not exist that day).
    assert LA.to_utc(1741483800) == 1741483800 + 8 * 3600
    assert LA.to_utc(1741491000) == 1741491000 + 7 * 3600
    # 2025-11-02 01:30 happens twice: 08:30 UTC (PDT) and 09:30 UTC (PST). Mixpanel's receipt decides.
    wall = 1762047000
    first, second = wall + 7 * 3600, wall + 8 * 3600
    assert LA.to_utc(wall, received_ms=(first + 60) * 1000) == first
    assert LA.to_utc(wall, received_ms=(second + 60) * 1000) == second
    assert LA.to_utc(wall) == first
    assert LA.to_local(second) == wall and LA.to_local(first) == wall


def test_a_run_filters_only_the_days_the_last_run_read():
    saved = {"time": "2025-04-03T21:00:00Z", "read_at": "2025-04-04T06:00:00Z", "read_from": "2025-03-29"}
    run = ExportRun({"project_timezone": "UTC"}, saved, incremental=True)
    assert run.cutoff_ms == 1743746400000 - history.MARGIN_MS
    assert run.filters("2025-04-03", "2025-04-03") and run.filters("2025-03-25", "2025-03-29")
    assert not run.filters("2025-04-04", "2025-04-04") and not run.filters("2025-03-28", "2025-03-28")
    assert run.state_extras("2025-04-03T21:00:00Z") == {"read_at": "2025-04-04T06:00:00Z", "read_from": "2025-03-29"}
    assert ExportRun({}, saved, incremental=False).cutoff_ms is None  # a full refresh emits everything
    assert ExportRun({}, {"time": "2025-04-03T21:00:00Z"}, incremental=True).cutoff_ms is None  # a 4.x state


@pytest.mark.parametrize("read_at, time, believed", [
    ("2030-01-01T00:00:00Z", "2025-04-03T21:00:00Z", False),  # after this machine's clock
    ("2025-03-28T09:59:59Z", "2025-04-03T21:00:00Z", False),  # before 03-29 began anywhere (UTC+14: 03-28 10:00Z)
    ("2025-03-28T10:00:00Z", "2025-04-03T21:00:00Z", True),  # a UTC+14 project's 03-29 had begun
    ("2025-04-04T06:00:00Z", "2025-04-20T21:00:00Z", True),  # a lookback failed: later windows moved `time` on
])
def test_a_saved_read_is_believed_unless_it_cannot_be_true(caplog, read_at, time, believed):
    saved = {"time": time, "read_at": read_at, "read_from": "2025-03-29"}
    run = ExportRun({}, saved, incremental=True)
    assert (run.cutoff_ms is not None) == believed and run.filters("2025-04-01", "2025-04-01") == believed
    assert run.state_extras(time) == ({"read_at": read_at, "read_from": "2025-03-29"} if believed else {})
    assert any("cannot be" in record.message for record in caplog.records) != believed  # one WARN when refused


def respond(date=None, elapsed=0.0):
    response = requests.Response()
    if date:
        response.headers["Date"] = date
    response.elapsed = datetime.timedelta(seconds=elapsed)
    return response


def window(day):
    return {"start_time": f"{day}T00:00:00Z", "end_time": f"{day}T23:59:59Z"}


def test_this_runs_read_counts_once_every_window_to_the_cursors_day_is_read_whole():
    saved = {"time": "2025-04-02T21:00:00Z", "read_at": "2025-04-03T06:00:00Z", "read_from": "2025-03-29"}
    run = ExportRun({}, saved, incremental=True)
    for day in ("2025-04-01", "2025-04-02", "2025-04-03"):
        run.planned(window(day))
    sent = time_module.monotonic()
    run.requested(respond("Sat, 05 Apr 2025 06:00:10 GMT", 2), sent)
    run.requested(respond("Sat, 05 Apr 2025 06:00:05 GMT", 2), sent)
    run.received_until(1743840000000)  # 2025-04-05T08:00:00Z
    run.read_whole(window("2025-04-02"))
    run.read_whole(window("2025-04-03"))
    assert run.state_extras("2025-04-03T10:00:00Z") == {"read_at": "2025-04-03T06:00:00Z", "read_from": "2025-03-29"}
    run.read_whole(window("2025-04-01"))
    assert run.state_extras("2025-04-02T10:00:00Z") == {"read_at": "2025-04-05T06:00:03Z", "read_from": "2025-04-01"}
    assert run.state_extras("2025-04-04T00:00:00Z")["read_at"] == "2025-04-03T06:00:00Z"  # 04-04 is not read


def test_this_runs_read_is_never_later_than_this_machines_clock_nor_the_receipts_it_saw():
    ahead = ExportRun({}, None, incremental=True)
    ahead.planned(window("2025-04-01"))
    ahead.requested(respond("Fri, 01 Jan 2100 00:00:00 GMT"), time_module.monotonic() - 5)
    ahead.received_until(4102444800000)  # 2100-01-01
    ahead.read_whole(window("2025-04-01"))
    read_at = ahead.state_extras("2025-04-01T10:00:00Z")["read_at"]
    assert read_at <= history._iso(time_module.time() - 5) and read_at >= history._iso(time_module.time() - 60)
    behind = ExportRun({}, None, incremental=True)  # Mixpanel's receipts say its clock is far behind both
    behind.planned(window("2025-04-01"))
    behind.requested(respond(), time_module.monotonic())
    behind.received_until(1743500000123)  # 2025-04-01T09:33:20.123Z
    behind.read_whole(window("2025-04-01"))
    assert behind.state_extras("2025-04-01T10:00:00Z") == {"read_at": "2025-04-01T10:33:21Z", "read_from": "2025-04-01"}
    nothing = ExportRun({}, None, incremental=True)  # no event with mp_processing_time_ms: nothing to claim
    nothing.planned(window("2025-04-01"))
    nothing.requested(respond(), time_module.monotonic())
    nothing.read_whole(window("2025-04-01"))
    assert nothing.state_extras("2025-04-01T10:00:00Z") == {}


def test_the_export_state_carries_the_read_through_the_cdk_cursor():
    # Pins the CDK details source.py relies on: the partition generator plans windows through the cursor's
    # stream_slices and ends each with its close_partition, the state converter is the one wrapped, and the
    # cursor passes a saved state's other keys on (the wrapper replaces them with this run's word).
    saved = {"time": "2025-03-02T23:31:11Z", "read_at": "2025-03-04T00:00:00Z", "read_from": "2025-02-25"}
    stream = export_stream(saved)
    assert stream.cursor.state == {"time": "2025-03-02T00:00:00Z", "read_at": "2025-03-04T00:00:00Z", "read_from": "2025-02-25"}
    saved_day, new_day = stream.generate_partitions()  # no lookback in this config
    run = history.current({})
    run.requested(respond("Wed, 05 Mar 2025 10:00:00 GMT"), time_module.monotonic())
    run.received_until(1741176000000)  # 2025-03-05T12:00:00Z
    finish(stream.cursor, new_day, "2025-03-03T10:00:00Z")
    assert stream.cursor.state == {"time": "2025-03-02T00:00:00Z", "read_at": "2025-03-04T00:00:00Z", "read_from": "2025-02-25"}
    finish(stream.cursor, saved_day, "2025-03-02T10:00:00Z")
    assert stream.cursor.state == {"time": "2025-03-03T10:00:00Z", "read_at": "2025-03-05T10:00:00Z", "read_from": "2025-03-02"}


def test_detection_never_guesses_when_nothing_tells():
    run = ExportRun({"project_timezone": "America/Los_Angeles"}, None, incremental=False)
    body = b"".join(json.dumps({"event": "e", "properties": {"time": 1743500000 + i}}).encode() + b"\n" for i in range(3))
    with pytest.raises(AirbyteTracedException) as raised:
        run.decide_storage(io.BytesIO(gzip.compress(body)), "2025-04-01..2025-04-01")  # spooled gzipped
    assert raised.value.failure_type == FailureType.config_error and "event_time_storage" in raised.value.message
    assert run.storage is None
    assert ExportRun({"project_timezone": "UTC"}, None, incremental=False).storage == "utc"


PACIFIC, TOKYO, BERLIN_SUMMER = -7 * 3600, 9 * 3600, 2 * 3600


@pytest.mark.parametrize("delay, offset, told", [
    (600, PACIFIC, "utc"),  # 10 min read as UTC is 6 h 50 min before the event read as local time: impossible
    (5 * 3600, PACIFIC, "utc"),  # an import 5 h late: read as local time, 2 h before it happened
    (10 * 3600, PACIFIC, None),  # 10 h late as UTC, 3 h as local time: late either way, an import tells nothing
    (200 * 86400, PACIFIC, None),
    (600 - PACIFIC, PACIFIC, "project_timezone"),  # local wall times of Los Angeles: 10 min late read that way
    (6 * 3600 - TOKYO, TOKYO, "project_timezone"),  # legacy Tokyo, 6 h late: 3 h before it happened read as UTC
    (600, TOKYO, "utc"),
    (30 * 86400 - BERLIN_SUMMER, BERLIN_SUMMER, None),  # a backfill 30 days later, of legacy Berlin
    (-200, BERLIN_SUMMER, "utc"),  # a device clock 200 s ahead is within the tolerance
    (-10 * 3600, PACIFIC, None),  # before its time under both readings: a device clock ahead tells nothing
    (600, 0, None),  # both readings are the same instant
])
def test_one_event_tells_the_storage_only_through_an_impossible_or_a_prompt_reading(delay, offset, told):
    assert history.pointed_storage(delay, offset) == told


def spooled(*groups):
    """A gzipped spool of events: (count, delay in seconds of receipt after `time`) per group."""
    lines = [json.dumps({"event": "e", "properties": {"time": 1749600000 + 60 * i, "mp_processing_time_ms": (1749600000 + 60 * i + delay) * 1000}})
             for count, delay in groups for i in range(count)]
    return io.BytesIO(gzip.compress("\n".join(lines).encode() + b"\n"))


def test_prompt_events_decide_and_imported_ones_do_not(caplog):
    # Legacy Berlin (UTC+2 in June): 60 backfilled 30 days late, 40 received 10 min after their local time.
    run = ExportRun({"project_timezone": "Europe/Berlin"}, None, incremental=True)
    with caplog.at_level("INFO", logger="airbyte"):
        run.decide_storage(spooled((60, 30 * 86400 - 7200), (40, 600 - 7200)), "2025-06-11..2025-06-11")
    assert run.storage == "project_timezone" and run.state_extras(None) == {"time_storage": "project_timezone"}
    (line,) = [r.message for r in caplog.records if r.message.startswith("Event times:")]
    assert "40 of the 40 events that tell point to it" in line and "0 h 10 min after their time read in Europe/Berlin time (UTC+2)" in line
    assert "1 h 50 min before it read as UTC" in line


@pytest.mark.parametrize("groups", [((100, 30 * 86400),), ((5, 600),), ((50, 600), (30, 600 - 7200))],
                         ids=["all-imported", "too-few", "disagree"])
def test_unclear_evidence_keeps_the_default_and_says_so(caplog, groups):
    run = ExportRun({"project_timezone": "Europe/Berlin"}, None, incremental=True)
    with caplog.at_level("INFO", logger="airbyte"):
        run.decide_storage(spooled(*groups), "2025-06-11..2025-06-11")
    assert run.storage == history.DEFAULT_STORAGE == "utc" and run.state_extras(None) == {"time_storage": "utc"}
    (warning,) = [r for r in caplog.records if r.message.startswith("Event times:")]
    assert warning.levelname == "WARNING" and "do not tell how the project stores them" in warning.message


def test_a_saved_decision_is_kept_and_never_made_again():
    saved = {"time": "2025-06-10T00:00:00Z", "time_storage": "project_timezone"}
    run = ExportRun({"project_timezone": "Europe/Berlin"}, saved, incremental=True)
    run.decide_storage(spooled((100, 600)), "2025-06-11..2025-06-11")  # would say UTC if it were read
    assert run.storage == "project_timezone" and run.state_extras(None) == {"time_storage": "project_timezone"}
    assert ExportRun({"project_timezone": "Europe/Berlin"}, saved, incremental=False).storage is None  # full refresh
    configured = ExportRun({"project_timezone": "Europe/Berlin", "event_time_storage": "utc"}, saved, incremental=True)
    assert configured.storage == "utc" and configured.state_extras(None) == {"time_storage": "utc"}  # the setting wins
    undecided = ExportRun({"project_timezone": "Europe/Berlin"}, {"time": "2025-06-10T00:00:00Z"}, incremental=True)
    assert undecided.storage is None and undecided.state_extras(None) == {}  # a state of before: detected as before
    assert ExportRun({"project_timezone": "UTC"}, saved, incremental=True).state_extras(None) == {"time_storage": "project_timezone"}
    assert ExportRun({"project_timezone": "UTC"}, None, incremental=True).state_extras(None) == {}  # nothing to decide


def test_on_a_spring_dst_day_prompt_events_of_a_legacy_project_all_point_to_its_timezone(caplog):
    # Los Angeles, 2025-03-09: wall times after 03:00 are UTC-7, though the same numbers read as UTC fall before the
    # change (UTC-8); every event here was received 1 to 59 min after it happened.
    clock, lines = ProjectClock("America/Los_Angeles"), []
    for minute in range(0, 24 * 60, 20):
        wall = 1741478400 + 60 * minute  # 2025-03-09T00:00 + minute, as Mixpanel writes a legacy project's `time`
        instant = clock.to_utc(wall)
        received = instant + 60 + minute % 1500
        lines.append(json.dumps({"event": "e", "properties": {"time": wall, "mp_processing_time_ms": received * 1000}}))
    run = ExportRun({"project_timezone": "America/Los_Angeles"}, None, incremental=True)
    with caplog.at_level("INFO", logger="airbyte"):
        run.decide_storage(io.BytesIO(gzip.compress("\n".join(lines).encode())), "2025-03-09..2025-03-09")
    assert run.storage == "project_timezone"
    assert any(f"{len(lines)} of the {len(lines)} events that tell point to it" in r.message for r in caplog.records)


def london_winter(count):
    """A gzipped spool of a legacy London project's January events (UTC+0), each received a minute after its time."""
    lines = [json.dumps({"event": "e", "properties": {"time": 1736467200 + i, "mp_processing_time_ms": (1736467260 + i) * 1000}})
             for i in range(count)]
    return io.BytesIO(gzip.compress("\n".join(lines).encode() + b"\n"))


def test_a_window_at_offset_zero_is_not_read_for_detection():
    # London in winter is UTC+0 without being named UTC: no event of 2025-01-10..12 can tell, so none is read.
    run = ExportRun({"project_timezone": "Europe/London"}, None, incremental=True)
    spool = london_winter(500)
    run.decide_storage(spool, "2025-01-10..2025-01-12")
    assert spool.tell() == 0 and run.storage is None and run.state_extras(None) == {}
    # A window that reaches into summer time (from 2025-03-30 01:00 UTC) is read: its summer events tell.
    summer = ExportRun({"project_timezone": "Europe/London"}, None, incremental=True)
    summer.decide_storage(spooled((100, 600 - 3600)), "2025-03-29..2025-06-11")
    assert summer.storage == "project_timezone"


def counting_events(monkeypatch, during=None):
    """Counts the events detection reads, calling `during` before the first."""
    scanned, events = [], history.events

    def counted(lines):
        for item in events(lines):
            if during and not scanned:
                during()
            scanned.append(item)
            yield item

    monkeypatch.setattr(history, "events", counted)
    return scanned


def test_detection_reads_a_bounded_number_of_events_when_few_tell(monkeypatch):
    scanned = counting_events(monkeypatch)
    monkeypatch.setattr(history, "DETECTION_SCAN", 100, raising=False)
    run = ExportRun({"project_timezone": "Europe/Berlin"}, None, incremental=True)
    run.decide_storage(spooled((500, 30 * 86400)), "2025-06-11..2025-06-11")  # all imported: none tells
    assert len(scanned) == 100 and run.storage == "utc"


def test_detection_reads_outside_the_lock_and_keeps_a_decision_made_meanwhile(monkeypatch):
    run = ExportRun({"project_timezone": "Europe/Berlin"}, None, incremental=True)
    free = []

    def another_window_decides():
        free.append(run._lock.acquire(blocking=False))  # the other threads' reads are noted meanwhile
        if free[0]:
            run.storage = run._kept = "project_timezone"
            run._lock.release()

    counting_events(monkeypatch, another_window_decides)
    run.decide_storage(spooled((100, 600)), "2025-06-11..2025-06-11")  # these alone would say UTC
    assert free == [True] and run.storage == "project_timezone"
    assert run.state_extras(None) == {"time_storage": "project_timezone"}
