"""The export state moves past a window only once it and every window before it were read whole.

Windows run in parallel, so a later one can finish first. With a P1D cursor granularity the CDK merges
such a finished one-day window with the sync's start marker and reports it done while the first window
is still being read (manifest.yaml, export_cursor); these tests pin the behaviour of the granularity we use.
"""

import pytest
from airbyte_cdk.models import (AirbyteStateBlob, AirbyteStateMessage, AirbyteStateType, AirbyteStream, AirbyteStreamState,
                                ConfiguredAirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode, StreamDescriptor,
                                SyncMode)
from airbyte_cdk.sources.types import Record

from source_mixpanel.source import SourceMixpanel

CONFIG = {
    "credentials": {"option_title": "Service Account", "username": "u", "secret": "s", "project_id": 1},
    "start_date": "2025-03-01",
    "end_date": "2025-03-03",
    "project_timezone": "UTC",
    "base_url": "http://127.0.0.1:9",
    "export_base_url": "http://127.0.0.1:9",
    "export_lookback_window": 0,  # the saved day only, so that the windows below are few
}


def export_stream(state=None):
    messages, catalog = None, None
    if state is not None:
        messages = [AirbyteStateMessage(type=AirbyteStateType.STREAM, stream=AirbyteStreamState(
            stream_descriptor=StreamDescriptor(name="export"), stream_state=AirbyteStateBlob(**state)))]
        stream = AirbyteStream(name="export", json_schema={}, supported_sync_modes=[SyncMode.incremental])
        catalog = ConfiguredAirbyteCatalog(streams=[ConfiguredAirbyteStream(
            stream=stream, sync_mode=SyncMode.incremental, destination_sync_mode=DestinationSyncMode.append)])
    source = SourceMixpanel(config=CONFIG, state=messages, catalog=catalog)
    (stream,) = [s for s in source.streams(CONFIG) if s.name == "export"]
    return stream


def finish(cursor, partition, *times):
    for moment in times:
        cursor.observe(Record(data={"time": moment}, stream_name="export", associated_slice=partition.to_slice()))
    cursor.close_partition(partition)
    return cursor.state["time"]


def test_windows_are_whole_days():
    windows = [p.to_slice() for p in export_stream().generate_partitions()]
    assert windows == [
        {"start_time": f"2025-03-0{d}T00:00:00Z", "end_time": f"2025-03-0{d}T23:59:59Z"} for d in (1, 2, 3)
    ]


def test_a_later_window_finishing_first_does_not_move_the_state():
    stream = export_stream()
    first, second, third = stream.generate_partitions()
    assert finish(stream.cursor, second, "2025-03-02T10:00:00Z") == "2025-03-01T00:00:00Z"
    assert finish(stream.cursor, third, "2025-03-03T09:00:00Z") == "2025-03-01T00:00:00Z"
    assert finish(stream.cursor, first, "2025-03-01T08:00:00Z") == "2025-03-03T09:00:00Z"


@pytest.mark.parametrize("saved", ["2025-03-02T23:31:11Z", "2025-03-02"])
def test_a_resumed_sync_restarts_at_the_start_of_the_saved_day(saved):
    stream = export_stream({"time": saved})
    windows = list(stream.generate_partitions())
    assert [w.to_slice()["start_time"] for w in windows] == ["2025-03-02T00:00:00Z", "2025-03-03T00:00:00Z"]
    # The re-read saved day is still unfinished when the next day completes: the state stays put.
    assert finish(stream.cursor, windows[1], "2025-03-03T05:00:00Z") == "2025-03-02T00:00:00Z"
