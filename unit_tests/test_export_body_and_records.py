"""The export body check, the record rejoining and the naming rule, each on its own."""

import hashlib
import io
import json

import pytest
import requests
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

import gzip
import zlib

import urllib3

from source_mixpanel.export import history
from source_mixpanel.export.body import ExportBodyCheck
from source_mixpanel.export.decoder import ExportDecoder
from source_mixpanel.export.lines import BrokenBody, NotAnEvent, events, unix_time
from source_mixpanel.export.response import SPOOL_ATTRIBUTE
from source_mixpanel.properties.columns import StreamColumns
from source_mixpanel.properties.names import PropertyNames

GOOD = b'{"event":"a","properties":{"time":1,"$insert_id":"x"}}\n'


def read(body: bytes):
    return [event for _, event, _, _ in events(io.BytesIO(body))]


@pytest.mark.parametrize("body, count", [
    (GOOD * 3, 3),
    (b"", 0),
    (b"\xef\xbb\xbf" + GOOD * 2, 2),  # a BOM
    (GOOD + b"\n\r\n" + GOOD, 2),  # blank lines
    (GOOD + b'{"event":"a","properties":{"time":1,"note":"line one\nline two"}}\n', 2),  # split, rejoined
])
def test_the_reader_takes_what_is_unambiguous(body, count):
    assert len(read(body)) == count


@pytest.mark.parametrize("body, problem", [
    (GOOD + b"terminated early\n", BrokenBody),
    (GOOD + b"[Export Terminated Early]\n" + GOOD, BrokenBody),  # mid-body too
    (GOOD + b'{"event":"a","properties":{"t', BrokenBody),
    (GOOD + b"null\n" + GOOD, NotAnEvent),
    (GOOD + b"[]\n" + GOOD, NotAnEvent),
    (GOOD + b"\x00\x00\n" + GOOD, NotAnEvent),
    (GOOD + b'{"error": "export failed"}\n', NotAnEvent),
    (GOOD + b'{"event":"a","properties":[1, 2]}\n', NotAnEvent),
    (GOOD + b'{"event":"a","properties":{"time":true}}\n', NotAnEvent),
    (GOOD + b'{"event":"a","properties":{"time":"2025-01-01T00:00:00"}}\n', NotAnEvent),  # no offset: ambiguous
    (GOOD + b'<html>proxy error</html>\n' + GOOD, NotAnEvent),
])
def test_the_reader_says_what_is_wrong_and_where_but_never_what_the_line_held(body, problem):
    with pytest.raises(problem) as raised:
        read(body)
    assert b"proxy" not in str(raised.value).encode() and "export failed" not in str(raised.value)
    if problem is NotAnEvent:
        assert raised.value.line == 2


def test_bytes_that_are_not_utf8_are_read_as_replacement_characters():
    ((_, event, replaced, _),) = list(events([b'{"event":"a","properties":{"time":1,"city":"Z\xfcrich"}}']))
    assert event["properties"]["city"] == "Z\ufffdrich" and replaced


@pytest.mark.parametrize("value, seconds", [
    (1740794891, 1740794891.0), (1740794891.5, 1740794891.5), ("1740794891", 1740794891.0),
    ("2025-03-01T02:08:11Z", 1740794891.0), ("2025-03-01T03:08:11+01:00", 1740794891.0),
    ("2025-03-01T02:08:11", None), (True, None), (None, None), ("soon", None),
])
def test_unix_time_converts_what_is_unambiguous(value, seconds):
    assert unix_time(value) == seconds


def _response(body: bytes, status=200, headers=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {"Transfer-Encoding": "chunked"})
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=response.headers, preload_content=False)
    response.url = "https://data.mixpanel.com/api/2.0/export?from_date=2025-01-01&to_date=2025-01-02"
    return response


def test_body_check_retries_a_bad_body_and_spools_a_good_one():
    check = ExportBodyCheck(config={}, parameters={})
    bad = check.interpret_response(_response(GOOD + b"terminated early\n"))
    assert bad.response_action == ResponseAction.RETRY and "2025-01-01..2025-01-02" in bad.error_message
    good = _response(GOOD * 2)
    assert check.interpret_response(good).response_action == ResponseAction.SUCCESS
    spool = getattr(good, SPOOL_ATTRIBUTE)
    spool.seek(0)
    assert gzip.decompress(spool.read()) == GOOD * 2  # spooled gzipped
    assert check.interpret_response(_response(b"{}", status=500)) is None  # left to the handlers after it


def test_body_check_asks_once_more_for_a_line_that_is_not_an_event_then_stops():
    check = ExportBodyCheck(config={}, parameters={})
    assert check.interpret_response(_response(GOOD + b"[]\n")).response_action == ResponseAction.RETRY
    with pytest.raises(AirbyteTracedException) as raised:
        check.interpret_response(_response(GOOD + b"[]\n"))
    assert "a JSON list where an event belongs at line 2" in raised.value.message


def test_body_check_catches_a_gzip_stream_without_its_end():
    whole = gzip.compress(GOOD * 50)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    flushed = compressor.compress(GOOD * 50) + compressor.flush(zlib.Z_SYNC_FLUSH)  # no final block, no trailer
    check = ExportBodyCheck(config={}, parameters={})
    headers = {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}
    assert check.interpret_response(_response(whole, headers=headers)).response_action == ResponseAction.SUCCESS
    cut = check.interpret_response(_response(flushed, headers=headers))
    assert cut.response_action == ResponseAction.RETRY and "gzip" in cut.error_message


def test_a_full_disk_fails_at_once_and_says_where(monkeypatch):
    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("tempfile.TemporaryFile", lambda: FullDisk())
    with pytest.raises(AirbyteTracedException) as raised:
        ExportBodyCheck(config={}, parameters={}).interpret_response(_response(GOOD * 2))
    assert "No space left on device" in raised.value.message and "TMPDIR" in raised.value.message


class _NoRequests:
    def send_request(self):
        raise AssertionError("names are given")


def _decoder(keep=True):
    config = {"select_properties_by_default": keep, "project_timezone": "UTC"}
    history.begin(config, None, incremental=False)  # the run the decoder shares with the source
    decoder = ExportDecoder(config=config, properties_requester=_NoRequests(), parameters={})
    names = PropertyNames(["time", "$insert_id", "$username", "userName"], first=["time", "$insert_id"], reserved=["event"])
    decoder._columns = StreamColumns("export", names, None, keep_new=keep)
    return decoder


def _decode(decoder, body: bytes):
    response = _response(b"")
    setattr(response, SPOOL_ATTRIBUTE, io.BytesIO(gzip.compress(body)))  # as ExportBodyCheck spools it
    return list(decoder.decode(response))


def test_decoder_shapes_and_keeps_types():
    line = json.dumps({"event": "e", "properties": {"time": 1740794891, "$insert_id": "i", "$username": "z", "userName": "Z",
                                                    "flag": False, "n": None, "obj": {"a": [1, True]}}}).encode()
    (record,) = _decode(_decoder(), line + b"\n")
    key = hashlib.blake2b(b'["e",null,1740794891,"i"]', digest_size=16).hexdigest()  # docs/streams.md, Duplicates
    assert record == {"event": "e", "dedup_key": key, "time": "2025-03-01T02:08:11Z", "insert_id": "i", "username": "z", "_userName": "Z",
                      "other_properties": {"flag": False, "n": None, "obj": {"a": [1, True]}}}
    (dropped,) = _decode(_decoder(keep=False), line + b"\n")
    assert "other_properties" not in dropped and dropped["username"] == "z"


def test_decoder_writes_every_unambiguous_time_the_same_way():
    line = json.dumps({"event": "e", "properties": {"time": "2025-03-01T03:08:11+01:00", "$insert_id": "i"}}).encode()
    (record,) = _decode(_decoder(), line + b"\n")
    assert record["time"] == "2025-03-01T02:08:11Z"


def test_naming_rule():
    names = PropertyNames(["userName", "$username", "time", "$event", "Event", "$browser", "Page Title", "page_title",
                           "ключ", "키", "🎉", "!!!", "1st", "other_properties"], first=["time", "distinct_id"], reserved=["event"])
    assert names.columns == {
        "time": "time", "distinct_id": "distinct_id",  # the stream's own fields, discovered or not
        "!!!": "property_0638f078", "$browser": "browser", "$event": "_event", "$username": "username", "1st": "1st",
        "Event": "__Event", "Page Title": "Page Title", "other_properties": "_other_properties", "page_title": "_page_title",
        "userName": "_userName", "ключ": "klyuch", "키": "Ki", "🎉": ":tada:"}
    record = {}
    StreamColumns("export", names, None, keep_new=True).shape({"$browser": "Chrome", "$Browser": "Edge", "accountType": 1, "accounttype": 2}, record)
    assert record == {"browser": "Chrome", "other_properties": {"$Browser": "Edge", "accountType": 1, "accounttype": 2}}
