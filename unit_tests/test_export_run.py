"""export_run.py: the dedup key, legacy wall times and DST, the saved read, and the CDK details source.py wraps."""

import datetime
import hashlib
import gzip
import io
import json

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import export_run
from source_mixpanel.export_run import ExportRun, ProjectClock, dedup_key
from unit_tests.test_export_cursor import export_stream

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
    assert run.cutoff_ms == 1743746400000 - export_run.MARGIN_MS
    assert run.filters("2025-04-03", "2025-04-03") and run.filters("2025-03-25", "2025-03-29")
    assert not run.filters("2025-04-04", "2025-04-04") and not run.filters("2025-03-28", "2025-03-28")
    assert run.state_extras() == {"read_at": "2025-04-04T06:00:00Z", "read_from": "2025-03-29"}  # until this run reads
    assert ExportRun({}, saved, incremental=False).cutoff_ms is None  # a full refresh emits everything
    assert ExportRun({}, {"time": "2025-04-03T21:00:00Z"}, incremental=True).cutoff_ms is None  # a 4.x state


def test_this_runs_read_is_its_earliest_request_on_mixpanels_clock():
    run = ExportRun({}, None, incremental=True)
    for date, day in (("Sat, 05 Apr 2025 06:00:10 GMT", "2025-04-02"), ("Sat, 05 Apr 2025 06:00:05 GMT", "2025-04-01")):
        response = requests.Response()
        response.headers["Date"] = date
        response.elapsed = datetime.timedelta(seconds=2)
        run.requested(response, day)
    assert run.state_extras() == {"read_at": "2025-04-05T06:00:03Z", "read_from": "2025-04-01"}


def test_the_export_state_carries_the_read_through_the_cdk_cursor():
    # Pins the CDK details source.py relies on: the cursor keeps a saved state's other keys (so the saved read
    # stays until this run reads), and its state converter is the one wrapped to add this run's read.
    saved = {"time": "2025-03-02T23:31:11Z", "read_at": "2025-03-04T00:00:00Z", "read_from": "2025-02-25"}
    stream = export_stream(saved)
    assert stream.cursor.state == {"time": "2025-03-02T00:00:00Z", "read_at": "2025-03-04T00:00:00Z", "read_from": "2025-02-25"}
    response = requests.Response()
    response.headers["Date"] = "Wed, 05 Mar 2025 10:00:00 GMT"
    response.elapsed = datetime.timedelta(0)
    export_run.current({}).requested(response, "2025-03-02")
    assert stream.cursor.state == {"time": "2025-03-02T00:00:00Z", "read_at": "2025-03-05T10:00:00Z", "read_from": "2025-03-02"}


def test_detection_never_guesses_when_nothing_tells():
    run = ExportRun({"project_timezone": "America/Los_Angeles"}, None, incremental=False)
    body = b"".join(json.dumps({"event": "e", "properties": {"time": 1743500000 + i}}).encode() + b"\n" for i in range(3))
    with pytest.raises(AirbyteTracedException) as raised:
        run.decide_storage(io.BytesIO(gzip.compress(body)), "2025-04-01..2025-04-01")  # spooled gzipped
    assert raised.value.failure_type == FailureType.config_error and "event_time_storage" in raised.value.message
    assert run.storage is None
    assert ExportRun({"project_timezone": "UTC"}, None, incremental=False).storage == "utc"
