"""run.RecordWriter: records go out in batches of bytes, and never after a message that came behind them."""

import io

from source_mixpanel.run import RecordWriter


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


def test_a_batch_goes_out_once_it_is_large():
    out = io.BytesIO()
    writer = RecordWriter(out)
    record = b"x" * 1000
    for _ in range(RecordWriter.BATCH_BYTES // 1000 + 1):
        writer.write(record)
    assert out.getvalue() and out.getvalue().count(b"\n") == RecordWriter.BATCH_BYTES // 1000 + 1
