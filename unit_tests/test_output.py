"""entrypoint.RecordWriter: records go out in batches of bytes, and never after a message that came behind them."""

import inspect
import io
import math
import sys
from queue import Queue

from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource

from source_mixpanel import sync_run
from source_mixpanel.entrypoint import PRINT_BUFFER, RecordWriter
from source_mixpanel.source import RECORDS_IN_FLIGHT, SourceMixpanel
from unit_tests.test_export_cursor import CONFIG


def test_a_message_never_overtakes_the_records_before_it(monkeypatch):
    out = io.BytesIO()
    # Other messages go through print (the CDK's print buffer in a run); here into the same stream, to see the order.
    monkeypatch.setattr("builtins.print", lambda text, end="\n": out.write(f"{text}{end}".encode()))
    writer = RecordWriter(out)
    writer.write(b'{"type":"RECORD","n":1}')
    writer.write(b'{"type":"RECORD","n":2}')
    assert out.getvalue() == b""  # batched
    writer.write('{"type":"STATE"}')
    writer.write(b'{"type":"RECORD","n":3}')
    writer.flush()
    assert out.getvalue() == b'{"type":"RECORD","n":1}\n{"type":"RECORD","n":2}\n{"type":"STATE"}\n{"type":"RECORD","n":3}\n'


def test_a_state_goes_out_at_once_while_other_messages_wait_in_the_print_buffer(monkeypatch):
    # The CDK's print buffer writes only when a later message comes: a STATE before a long wait would wait with it.
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", out)
    monkeypatch.setattr(sys, "stdout", PRINT_BUFFER)
    monkeypatch.setattr(PRINT_BUFFER, "last_flush_time", math.inf)  # as if it had just written
    writer = RecordWriter(io.BytesIO())
    writer.write('{"type":"LOG"}')
    assert out.getvalue() == ""
    writer.write('{"type":"STATE","state":{}}')
    assert out.getvalue() == '{"type":"LOG"}\n{"type":"STATE","state":{}}\n'


def test_a_batch_goes_out_once_it_is_large():
    out = io.BytesIO()
    writer = RecordWriter(out)
    record = b"x" * 1000
    for _ in range(RecordWriter.BATCH_BYTES // 1000 + 1):
        writer.write(record)
    assert out.getvalue() and out.getvalue().count(b"\n") == RecordWriter.BATCH_BYTES // 1000 + 1


def test_records_and_states_written_are_signs_of_life_and_log_lines_are_not(monkeypatch):
    monkeypatch.setattr("builtins.print", lambda text, end="\n": None)
    monkeypatch.setattr(sync_run.current(), "last_sign_of_life", float("-inf"))
    writer = RecordWriter(io.BytesIO())
    writer.write('{"type":"LOG","log":{"level":"INFO","message":"Waiting"}}')
    writer.write(b'{"type":"RECORD","n":1}')  # still in the batch: Airbyte has not seen it
    assert sync_run.current().last_sign_of_life == float("-inf")
    writer.write('{"type":"STATE","state":{}}')
    assert sync_run.current().last_sign_of_life > 0


def test_the_queue_between_threads_is_the_shorter_one():
    # Pins the CDK detail source.py relies on: the concurrent source reads records from its `_queue`.
    queue = SourceMixpanel(config=CONFIG)._concurrent_source._queue
    assert isinstance(queue, Queue) and queue.maxsize == RECORDS_IN_FLIGHT
    assert "self._queue" in inspect.getsource(ConcurrentSource.read)
