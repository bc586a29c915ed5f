"""cursors.WindowCursorFeed: the cursor learns each window's newest record once, at the window's close.

The first test pins the CDK detail it relies on; if a CDK upgrade breaks it, it fails here (and the sync would only
keep an older state, never skip days)."""

import logging
import threading
from queue import Queue

from airbyte_cdk.sources.streams.concurrent.partition_reader import PartitionReader
from airbyte_cdk.sources.types import Record, StreamSlice

from unit_tests.test_export_cursor import export_stream


class _Partition:
    def __init__(self, records):
        self._records = records

    def read(self):
        yield from self._records

    def to_slice(self):
        return {}

    def stream_name(self):
        return "export"


def test_the_cdk_observes_a_windows_records_then_closes_it_in_one_thread():
    calls = []

    class Cursor:
        def observe(self, record):
            calls.append(("observe", record, threading.get_ident()))

        def close_partition(self, partition):
            calls.append(("close", partition, threading.get_ident()))

    records = [object(), object(), object()]
    partition = _Partition(records)
    worker = threading.Thread(target=PartitionReader(Queue()).process_partition, args=(partition, Cursor()))
    worker.start()
    worker.join()
    assert [call[:2] for call in calls] == [("observe", r) for r in records] + [("close", partition)]
    assert {call[2] for call in calls} == {worker.ident}


def _record(moment, window):
    return Record(data={"time": moment}, stream_name="export", associated_slice=window)


def test_each_window_gives_its_newest_time_whatever_the_order_and_threads():
    stream = export_stream()
    first, second, third = stream.generate_partitions()
    cursor = stream.cursor
    done = threading.Event()

    def read_second():  # another worker, in the middle of the first window
        for moment in ("2025-03-02T12:00:00Z", "2025-03-02T20:00:00Z", "2025-03-02T01:00:00Z"):
            cursor.observe(_record(moment, second.to_slice()))
        cursor.close_partition(second)
        done.set()

    cursor.observe(_record("2025-03-01T09:00:00Z", first.to_slice()))
    threading.Thread(target=read_second).start()
    done.wait(5)
    # A page of the same window comes with its own copy of the window: it keeps the newest so far.
    window = first.to_slice()
    cursor.observe(_record("2025-03-01T23:00:00Z", StreamSlice(partition=window.partition, cursor_slice=window.cursor_slice)))
    cursor.observe(_record("2025-03-01T03:00:00Z", first.to_slice()))
    cursor.close_partition(first)
    assert cursor.state["time"] == "2025-03-02T20:00:00Z"
    cursor.observe(_record("2025-03-03T05:00:00Z", third.to_slice()))
    cursor.close_partition(third)
    assert cursor.state["time"] == "2025-03-03T05:00:00Z"


def test_a_time_after_its_window_stops_the_state_at_the_windows_end(caplog):
    stream = export_stream()
    first, *_ = stream.generate_partitions()
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        stream.cursor.observe(_record("2100-01-01T00:00:00Z", first.to_slice()))
        stream.cursor.observe(_record("2025-03-01T10:00:00Z", first.to_slice()))
        stream.cursor.close_partition(first)
    assert stream.cursor.state["time"] == "2025-03-01T23:59:59Z"
    assert [r.message for r in caplog.records if r.levelno == logging.WARNING] == [
        "A export record has time 2100-01-01T00:00:00Z, after the window it came in (which ends 2025-03-01T23:59:59Z): "
        "it is emitted as it is, and the state stops at the window's end."]


def test_a_window_that_failed_gives_the_next_one_nothing():
    stream = export_stream()
    first, second, third = stream.generate_partitions()
    stream.cursor.observe(_record("2025-03-01T22:00:00Z", first.to_slice()))  # then its read fails: no close
    stream.cursor.close_partition(third)  # a window with no records, read next by the same worker
    assert stream.cursor._most_recent_cursor_value_per_partition == {}  # the failed window's newest went nowhere
    stream.cursor.observe(_record("2025-03-02T01:00:00Z", second.to_slice()))
    stream.cursor.close_partition(second)
    assert stream.cursor.state["time"] == "2025-03-01T00:00:00Z"  # the first window is not done: the state waits
