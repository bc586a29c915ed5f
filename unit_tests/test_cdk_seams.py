"""The CDK details the connector relies on beyond its public components (docs/architecture.md, "Where the CDK is relied
on beyond its API"): each test fails when an upgrade changes one. Seams other tests already pin are named in that table."""

import gc
import inspect
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, Type
from airbyte_cdk.sources.declarative.extractors.record_filter import ClientSideIncrementalRecordFilterDecorator
from airbyte_cdk.sources.declarative.requesters.error_handlers import CompositeErrorHandler
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http import rate_limiting
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.exceptions import UserDefinedBackoffException
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.answers import AnswerCheck
from source_mixpanel.budget.request_budget import BudgetRetries
from source_mixpanel.entrypoint import message_to_string
from source_mixpanel.source import SourceMixpanel
from unit_tests.test_export_cursor import CONFIG

ANSWER = b'{"ok": true}'


class _Mixpanel(BaseHTTPRequestHandler):
    """Answers every GET and POST with one small JSON object, and counts them."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.answered += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Mixpanel)
    httpd.answered = 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class _CountingBudget(APIBudget):
    """The two calls the CDK's session makes into a budget around every request it sends."""

    def __init__(self):
        super().__init__(policies=[])
        self.calls = []

    def acquire_call(self, request, block=True, timeout=None):
        self.calls.append(("acquire", request.method))

    def update_from_response(self, request, response):
        self.calls.append(("answered", response.status_code))


class _Recording(ErrorHandler):
    """An error handler that notes, for each answer, whether its body was already read, and passes it."""

    max_retries, max_time = 0, 1

    def __init__(self):
        self.read_before = []

    def interpret_response(self, response_or_exception=None):
        if isinstance(response_or_exception, requests.Response):
            self.read_before.append(response_or_exception._content_consumed)
            return ErrorResolution(ResponseAction.SUCCESS)
        return ErrorResolution(ResponseAction.RETRY, error_message=str(response_or_exception))


def built_while(build, kind):
    """The objects of this kind that `build` made (and that are still alive)."""
    before = {id(thing) for thing in gc.get_objects() if isinstance(thing, kind)}
    made = build()
    return made, [thing for thing in gc.get_objects() if isinstance(thing, kind) and id(thing) not in before]


def test_the_factory_hands_the_sources_budget_to_every_requester_and_to_budget_retries():
    # source.py sets the factory's private _api_budget after the CDK built it; the factory reads it per component.
    def build():
        source = SourceMixpanel(config=CONFIG)
        return source, source.streams(CONFIG)

    (source, _), requesters = built_while(build, HttpRequester)
    _, retries = built_while(build, BudgetRetries)
    assert requesters and all(requester.api_budget is not None for requester in requesters)
    assert {id(requester.api_budget) for requester in requesters} == {id(requesters[0].api_budget)}
    assert retries and all(handler.api_budget is not None for handler in retries)
    assert source._constructor._api_budget is source.budget


def test_every_request_takes_a_place_in_the_budget_and_a_cached_post_answer_takes_none(server, tmp_path, monkeypatch):
    # The CDK's sessions call acquire_call before and update_from_response after each send; source.py's replaced
    # HttpClient._request_session adds POST to a cached session's methods; the cache answers before the budget.
    monkeypatch.setenv("REQUEST_CACHE_PATH", str(tmp_path))
    budget = _CountingBudget()
    cached = HttpClient("seams_cached", logging.getLogger("airbyte"), api_budget=budget, use_cache=True)
    for _ in range(2):
        _, response = cached.send_request("POST", f"{server.url}/api/query/cohorts/list", request_kwargs={}, data={"a": "1"})
        assert response.content == ANSWER
    assert server.answered == 1 and budget.calls == [("acquire", "POST"), ("answered", 200)]
    plain = HttpClient("seams_plain", logging.getLogger("airbyte"), api_budget=budget)
    plain.send_request("GET", f"{server.url}/api/query/engage", request_kwargs={})
    assert server.answered == 2 and budget.calls[2:] == [("acquire", "GET"), ("answered", 200)]


def test_a_requester_reads_stream_response_at_each_send_and_only_a_streamed_body_reaches_the_error_handler_unread(server):
    # properties.discovery.sample_kinds turns stream_response on after the factory built the requester; answers.AnswerCheck
    # reads a 200 only when the CDK read it before the error handler (requests' _content_consumed).
    handler = _Recording()
    requester = HttpRequester(name="seams", url_base=server.url, path="/api/2.0/export", config={}, parameters={},
                              error_handler=handler)
    requester.send_request()
    requester.stream_response = True
    response = requester.send_request()
    assert handler.read_before == [True, False]
    assert response.content == ANSWER  # the same response goes on, its body still to read


def test_a_host_that_cannot_be_reached_is_named_in_one_sentence():
    # source.py's replaced HttpClient._send_with_retry reads the CDK's "Exhausted available request attempts" error
    # and the connection error it was raised while handling.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = HttpClient("seams_unreachable", logging.getLogger("airbyte"), error_handler=_Recording())
    with pytest.raises(AirbyteTracedException) as raised:
        client.send_request("GET", f"http://127.0.0.1:{port}/api/2.0/export", request_kwargs={})
    assert raised.value.message.startswith(f"Could not reach 127.0.0.1:{port} (it refused the connection, after every retry)")


def test_the_chain_of_error_handlers_takes_its_retries_from_the_first_and_the_longest_time():
    # BudgetRetries, first of every chain, sets the retry loop's limits; the other handlers leave both unset.
    budget = SourceMixpanel(config=CONFIG).budget
    first = BudgetRetries(config=CONFIG, parameters={}, api_budget=budget, max_retries=7)
    chain = CompositeErrorHandler(error_handlers=[first, AnswerCheck(config=CONFIG, parameters={})], parameters={})
    assert chain.max_retries == 7
    assert chain.max_time == first.max_time > 3600


def test_the_cdks_retry_line_is_reworded_and_its_wait_is_the_backoff_plus_a_second(monkeypatch, caplog):
    # source._RetryLineWording matches the CDK's line word for word; budget.request_budget.MixpanelBackoff counts the extra second.
    slept = []
    monkeypatch.setattr(rate_limiting.time, "sleep", slept.append)
    answer = requests.Response()
    answer.status_code = 200
    attempts = []

    def send():
        attempts.append(1)
        if len(attempts) == 1:
            raise UserDefinedBackoffException(backoff=4, request=requests.PreparedRequest(), response=answer)
        return "answered"

    with caplog.at_level(logging.INFO, logger="airbyte"):
        assert rate_limiting.user_defined_backoff_handler(max_tries=2)(send)() == "answered"
    assert slept[0] == 5
    assert "Sending the request again in 5 seconds (its answer was HTTP 200)." in [r.getMessage() for r in caplog.records]


def test_the_entrypoint_writes_every_message_through_the_class_attribute_and_reads_state_through_the_source(monkeypatch):
    # entrypoint.py installs message_to_string over AirbyteEntrypoint.airbyte_message_to_string, which the CDK calls by the
    # class's name for check, discover and read, and through self for the rest; SourceMixpanel.read_state replaces
    # the CDK's reader, which the entrypoint calls on the source.
    run_source = inspect.getsource(AirbyteEntrypoint.run)
    assert run_source.count("map(\n                            AirbyteEntrypoint.airbyte_message_to_string,") == 3
    assert "self.source.read_state(parsed_args.state)" in run_source
    monkeypatch.setattr(AirbyteEntrypoint, "airbyte_message_to_string", staticmethod(lambda message: b"ours"))
    spec = AirbyteEntrypoint(SourceMixpanel()).run(AirbyteEntrypoint.parse_args(["spec"]))
    assert list(spec)[-1] == b"ours"


def test_the_cdks_serializer_drops_a_null_at_the_top_of_a_record_and_ours_keeps_it():
    # Why message_to_string writes records itself (were the CDK to keep nulls, records could go its way again).
    message = AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream="export", data={"a": None}, emitted_at=1))
    assert json.loads(AirbyteEntrypoint.airbyte_message_to_string(message))["record"]["data"] == {}
    assert json.loads(message_to_string(message))["record"]["data"] == {"a": None}
    assert message.record.meta is None and message.record.file_reference is None  # the fields that send a record the CDK's way


def test_no_stream_filters_its_records_by_cursor_so_no_record_meets_should_be_synced():
    # In this CDK only a client-side incremental filter calls a cursor's should_be_synced, and no stream has one; a CDK
    # that adds one to every stream would drop or warn on records by cursor value, which the windows already bound.
    _, filters = built_while(lambda: SourceMixpanel(config=CONFIG).streams(CONFIG), ClientSideIncrementalRecordFilterDecorator)
    assert filters == []
