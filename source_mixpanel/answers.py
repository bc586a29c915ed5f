"""Mixpanel's answers that are not data: its refusals (a 4xx) in its own words, and 200s that hold an error or no JSON."""

import json
import logging
from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, MutableMapping, Optional, Union
from urllib.parse import parse_qsl, urlsplit

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction

from source_mixpanel import sync_run
from source_mixpanel.export.lines import has_long_digits
from source_mixpanel.failures import config_error, transient_error

logger = logging.getLogger("airbyte")


# Bad credentials (401, 403) and a plan's refusal (402) have their sentences in the manifest's filters; a rate limit
# (429) and a timeout (408) are waited out and sent again.
ANSWERED_BY_FILTERS = frozenset({401, 402, 403, 408, 429})


@dataclass
class AnswerCheck(ErrorHandler):
    """Reads every answer before the declared filters: Mixpanel's 400s, and 200s that hold no data.

    - A 4xx ends the request at once, never retried, with Mixpanel's own words and the window asked for: older
      Mixpanel's bad credentials (400), a to_date after today in the project's timezone, a window or filter it
      refuses, a request it reads as malformed (422). On an engage continuation page a 400 means the session expired:
      the query restarts from page 0, once. The 4xx the declared filters answer pass on (ANSWERED_BY_FILTERS, and
      `left_to_filters`, where a stream says what an undocumented endpoint's 404 or 410 means).
    - A 200 whose JSON is an error object (`{"error": ...}`, `"status": "error"`) or that is not JSON is a
      failed request, retried like a 5xx. Streamed export bodies are left to ExportBodyCheck.
    - A refusal of a saved Insights report (a 400, or the 404 of a deleted one) or of a group key names that report
      or group key.

    Python because a declared filter's message cannot show a text body or the request's window, cannot tell a
    continuation page or a 200 from other answers, and the chain keeps the last FAIL, not the first.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    auth_failure_message: str = ""
    # 4xx a stream's declared filters answer besides ANSWERED_BY_FILTERS (revenue's 404 and 410: retired).
    left_to_filters: List[int] = field(default_factory=list)
    # The chain's first handler (budget_retries in manifest.yaml) sets both for the whole chain.
    max_retries: Optional[int] = None
    max_time: Optional[int] = None

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> Optional[ErrorResolution]:
        response = response_or_exception
        if not isinstance(response, requests.Response):
            return None
        status = response.status_code
        if 400 <= status < 500 and status not in ANSWERED_BY_FILTERS and status not in self.left_to_filters:
            return self._refused(response)
        if response.status_code == 200 and response._content_consumed and not _is_data(response):
            message = f"Mixpanel answered {urlsplit(response.url or '').path} with {answer_text(response)} in place of data."
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        return None

    def _refused(self, response: requests.Response) -> ErrorResolution:
        text = answer_text(response)
        asked = request_parameters(response.request)
        path = urlsplit(response.url or "").path
        status = response.status_code
        answered = f"{response.request.method if response.request else 'GET'} {response.url} answered {status}: {text}"
        if "Unable to authenticate request" in text:
            raise config_error(self.auth_failure_message, answered)
        if "to_date cannot be later than today" in text:
            raise config_error("Mixpanel says the export asked for a day after today in the project's timezone: set "
                                "project_timezone to the timezone in Mixpanel's Project Settings > Overview.", answered)
        if status == 400 and continuation_page(asked):
            query = json.dumps({k: v for k, v in asked.items() if k not in ("session_id", "page")}, sort_keys=True)
            if sync_run.current().first_time("engage restart", query):
                logger.info(f"Mixpanel refused page {asked['page']} of an engage query ({text}): its session expired; "
                            f"reading the query again from page 0 (profiles already read come again).")
                return ErrorResolution(ResponseAction.RESET_PAGINATION, FailureType.transient_error, text)
            message = f"Mixpanel's engage session expired again after the query restarted from page 0 ({text}): run the sync again."
            raise transient_error(message)
        if asked.get("bookmark_id"):
            raise config_error(f"Mixpanel refused Insights report {asked['bookmark_id']} ({status}: {text}): check that "
                                f"insights_reports lists saved Insights reports these credentials can read, by the "
                                f"number after report- in each report's URL.", answered)
        if asked.get("data_group_id"):
            raise config_error(f"Mixpanel refused the group profiles of group key {asked['data_group_id']} ({status}: "
                                f"{text}): check that group_keys lists the project's group keys by their data_group_id.",
                                answered)
        window = f" for {asked['from_date']}..{asked['to_date']}" if asked.get("from_date") else ""
        raise config_error(f"Mixpanel refused {path}{window} ({status}: {text}): check start_date, end_date and the "
                            f"export filters in the config.", answered)


class ExactJsonDecoder(JsonDecoder):
    """A JSON answer with its integers exact. Python because the manifest's JsonDecoder reads with orjson, which
    turns an integer beyond 64 bits into a float without a word (a JsonDecoder still, which paginators require)."""

    def __init__(self, parameters: Optional[Mapping[str, Any]] = None) -> None:  # the factory passes none
        super().__init__(parameters or {})

    def is_stream_response(self) -> bool:
        return False

    def decode(self, response: requests.Response) -> Iterator[MutableMapping[str, Any]]:
        content = response.content
        body = json.loads(content) if has_long_digits(content) else orjson.loads(content)
        yield from body if isinstance(body, list) else [body]


def _is_data(response: requests.Response) -> bool:
    """Whether a read body is Mixpanel's JSON data: a list, or an object that is not an error."""
    try:
        body = response.json()
    except ValueError:
        return False
    if isinstance(body, list):
        return True
    return isinstance(body, dict) and "error" not in body and body.get("status") != "error"


def continuation_page(asked: Mapping[str, str]) -> bool:
    """Whether these request parameters ask for an engage session's page after the first."""
    return bool(asked.get("session_id")) and asked.get("page") not in (None, "", "0")


def answer_text(response: requests.Response) -> str:
    """Mixpanel's words in an answer, short: its error field, or the start of the body."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            return f"the error {str(body['error'])[:300]!r}"
    except ValueError:
        pass
    text = (response.text or "").strip()
    return repr(text[:300]) if text else "an empty body"


def request_parameters(request: Optional[requests.PreparedRequest]) -> Dict[str, str]:
    """The query string and form body of a request."""
    if request is None:
        return {}
    asked = dict(parse_qsl(urlsplit(request.url or "").query))
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    if isinstance(body, str) and "=" in body and not body.lstrip().startswith("{"):
        asked.update(parse_qsl(body))
    return asked

