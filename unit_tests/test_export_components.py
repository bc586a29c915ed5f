"""The export body check, the record rejoining and the naming rule, each on its own."""

import io
import json

import pytest
import requests
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.components import SPOOL_ATTRIBUTE, ExportBodyCheck, ExportDecoder, body_end_problem, parse_record_lines
from source_mixpanel.properties import PropertyNames

GOOD = b'{"event":"a","properties":{"time":1,"$insert_id":"x"}}\n'


@pytest.mark.parametrize(
    "tail, problem",
    [
        (GOOD * 3, None),
        (b"", None),
        (GOOD + b"terminated early\n", "ended with 'terminated early'"),
        (GOOD + b"[Export Terminated Early]", "ended with 'terminated early'"),
        (GOOD + b'{"event":"a","properties":{"t', "ended in the middle of a record"),
        (GOOD + b'{"event":"a","properties":{"note":"line one\nline two"}}\n', None),  # split, but whole
    ],
)
def test_body_end_problem(tail, problem):
    assert body_end_problem(tail) == problem


def test_split_lines_rejoin_to_the_original_text():
    assert parse_record_lines([b'{"note":"one', b'two\r', b'three"}']) == {"note": "one\ntwo\r\nthree"}
    assert parse_record_lines([b'{"note":"one']) is None


def _response(body: bytes, status=200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = io.BytesIO(body)
    response.url = "https://data.mixpanel.com/api/2.0/export?from_date=2025-01-01&to_date=2025-01-02"
    return response


def test_body_check_retries_a_bad_body_and_spools_a_good_one():
    check = ExportBodyCheck(config={}, parameters={})
    bad = check.interpret_response(_response(GOOD + b"terminated early\n"))
    assert bad.response_action == ResponseAction.RETRY and "2025-01-01..2025-01-02" in bad.error_message
    good = _response(GOOD * 2)
    assert check.interpret_response(good).response_action == ResponseAction.SUCCESS
    assert getattr(good, SPOOL_ATTRIBUTE).read() == GOOD * 2
    assert check.interpret_response(_response(b"{}", status=500)) is None  # left to the status filters


class _NoRequests:
    def send_request(self):
        raise AssertionError("names are given")


def _decoder(keep=True):
    decoder = ExportDecoder(config={"select_properties_by_default": keep}, properties_requester=_NoRequests(), parameters={})
    decoder._names = PropertyNames(["time", "$insert_id", "$username", "userName"], first=["time", "$insert_id"], reserved=["event"], keep_undiscovered=keep)
    return decoder


def _decode(decoder, body: bytes):
    response = _response(b"")
    setattr(response, SPOOL_ATTRIBUTE, io.BytesIO(body))
    return list(decoder.decode(response))


def test_decoder_shapes_and_keeps_types():
    line = json.dumps({"event": "e", "properties": {"time": 1740794891, "$insert_id": "i", "$username": "z", "userName": "Z",
                                                    "flag": False, "n": None, "obj": {"a": [1, True]}}}).encode()
    (record,) = _decode(_decoder(), line + b"\n")
    assert record == {"event": "e", "time": "2025-03-01T02:08:11Z", "insert_id": "i", "username": "z", "_userName": "Z",
                      "flag": False, "n": None, "obj": {"a": [1, True]}}
    (dropped,) = _decode(_decoder(keep=False), line + b"\n")
    assert "flag" not in dropped and "obj" not in dropped and dropped["username"] == "z"


def test_decoder_fails_loudly_on_a_line_that_is_not_json():
    with pytest.raises(AirbyteTracedException) as raised:
        _decode(_decoder(), GOOD + b"<html>proxy error</html>\n" + GOOD)
    assert "line 2" in raised.value.message


def test_naming_rule():
    names = PropertyNames(["userName", "$username", "time", "$event", "Event", "$browser"], first=["time"], reserved=["event"])
    assert names.discovered == {"time": "time", "$browser": "browser", "$event": "_event", "$username": "username",
                                "Event": "__Event", "userName": "_userName"}
    assert names.column("$Browser") == "_Browser"  # undiscovered, kept apart from browser
    assert names.column("$Browser") == "_Browser"
