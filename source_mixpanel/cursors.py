"""How the CDK's cursors are fed: once per window with its newest record, within the window, and with the export run's state."""

import copy
import logging
import threading
from typing import Any, Callable, Optional

from airbyte_cdk.sources.streams.concurrent.cursor import ConcurrentCursor
from airbyte_cdk.sources.types import Record

from source_mixpanel.export import history

logger = logging.getLogger("airbyte")


class _Window(threading.local):
    """The window a worker thread reads, and its newest record so far."""

    slice: Any = False
    newest: Optional[str] = None
    record: Optional[Record] = None


class WindowCursorFeed:
    """Feeds a cursor once per window, at its close, with the window's newest record, instead of once per record, and
    keeps that value within the window: a record stamped after its window (a clock far ahead, a typo in an import)
    goes out as it is, but the state never passes the windows read, which would make the next sync skip days.

    Python because the CDK's cursor parses every record's time with strptime and hashes its window on each observe
    (about 7 us a record, docs/operations.md, Performance), and has no bound on a value. It relies on the CDK observing a
    window's records and then closing it in one thread (PartitionReader.process_partition), which
    unit_tests/test_cursor_feed.py pins; were that to change, the state would lag behind, never run ahead.
    Cursor values are compared as text: the cursor's own format sorts as time does.
    """

    def __init__(self, cursor: Any, cursor_field: str, stream: str,
                 cursor_value: Callable[[str], str] = lambda value: value) -> None:
        self._observe, self._close_partition = cursor.observe, cursor.close_partition
        self._field, self._stream, self._cursor_value = cursor_field, stream, cursor_value
        self._window = _Window()
        self._warned = False
        cursor.observe, cursor.close_partition = self.observe, self.close_partition

    def observe(self, record: Record) -> None:
        window, this_slice = self._window, record.associated_slice
        if this_slice is not window.slice:
            if this_slice != window.slice:  # a new window; a page's own copy of the same window keeps its newest
                window.newest = window.record = None
            window.slice = this_slice
        value = record.data.get(self._field)
        if value is None:  # a profile never seen: nothing to move the state by, and the CDK would only warn
            return
        if type(value) is not str:  # not the cursor's format: the CDK judges it as it comes
            self._observe(record)
            return
        value = self._cursor_value(value)
        if window.newest is None or value > window.newest:
            window.newest, window.record = value, record

    def close_partition(self, partition: Any) -> None:
        window = self._window
        record, newest, read = window.record, window.newest, window.slice
        window.slice, window.newest, window.record = False, None, None
        if record is not None and read == partition.to_slice():  # not the newest of a window that failed earlier
            end = (record.associated_slice or {}).get("end_time")
            if end and newest > end:
                self._warn(newest, end)
                newest = end
            self._observe(Record(data={**record.data, self._field: newest}, stream_name=record.stream_name,
                                 associated_slice=record.associated_slice))
        self._close_partition(partition)

    def _warn(self, value: str, end: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(f"A {self._stream} record has {self._field} {value}, after the window it came in (which ends "
                           f"{end}): it is emitted as it is, and the state stops at the window's end.")


def keep_export_run(cursor: ConcurrentCursor, run: history.ExportRun) -> None:
    """The export cursor's state carries which days this run read whole and when (export/history.py). The CDK's cursor
    has no hook for it: its window plan, its window close (before the state it emits) and its state converter (its
    own copy) are wrapped."""
    plan, close = cursor.stream_slices, cursor.close_partition

    def planned() -> Any:
        for window in plan():
            run.planned(window)
            yield window

    def closed(partition: Any) -> None:
        run.read_whole(partition.to_slice())
        close(partition)

    cursor.stream_slices, cursor.close_partition = planned, closed
    converter = copy.copy(cursor._connector_state_converter)
    to_state = converter.convert_to_state_message

    def with_read(field: Any, state: Any) -> Any:  # the CDK passes the saved read on: this run's word replaces it
        message = {key: value for key, value in to_state(field, state).items() if key not in history.READ_KEYS}
        return {**message, **run.state_extras(message.get(field.cursor_field_key))}

    converter.convert_to_state_message = with_read
    cursor._connector_state_converter = converter
