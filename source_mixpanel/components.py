"""Thin components for what manifest.yaml cannot say. Each class names, in its first line, why."""

import datetime
import io
import json
import logging
import math
import re
import tempfile
import threading
import time
import zlib
from dataclasses import InitVar, dataclass, field
from typing import IO, Any, Dict, Generator, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytz
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.schema.schema_loader import SchemaLoader
from airbyte_cdk.sources.declarative.transformations.transformation import RecordTransformation
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3.exceptions import HTTPError as Urllib3Error

from source_mixpanel.budget import BudgetSpent
from source_mixpanel import export_run
from source_mixpanel.export_lines import BrokenBody, NotAnEvent, events, gunzip, spooled_lines, split_lines, unix_time
from source_mixpanel.properties import OTHER_PROPERTIES, PropertyNames

logger = logging.getLogger("airbyte")

SPOOL_ATTRIBUTE = "_mixpanel_export_spool"
SENT_ATTRIBUTE = "_mixpanel_export_sent"  # when the request that the spooled body answers was sent (monotonic)
DEDUP_KEY = "dedup_key"  # the export's primary key (export_run.dedup_key)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---------------------------------------------------------------------------------------------- saved states

_warned_future_states: set = set()


@dataclass
class SavedStateCheck(StateMigration):
    """Checks a saved state before a cursor reads it: a cursor value that is no time is a config error, and one
    after today in the project's timezone is moved back to today, with one WARN.

    Python because the CDK's cursors fail on a value they cannot parse with "Something went wrong", and take a
    future value as it is, after which no sync reads anything again.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    stream: str = ""
    cursor_field: str = ""
    formats: List[str] = field(default_factory=list)

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        return bool(stream_state)

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        state = dict(stream_state)
        if self.cursor_field in state:
            state[self.cursor_field] = self._checked(state[self.cursor_field])
        if isinstance(state.get("state"), Mapping) and self.cursor_field in state["state"]:
            state["state"] = {**state["state"], self.cursor_field: self._checked(state["state"][self.cursor_field])}
        if "states" in state:  # per partition (funnels)
            entries = state["states"]
            if not isinstance(entries, list) or not all(isinstance(e, Mapping) and isinstance(e.get("cursor"), Mapping) for e in entries):
                raise self._error("a \"states\" list whose entries are not partitions with a cursor")
            state["states"] = [
                {**e, "cursor": {**e["cursor"], self.cursor_field: self._checked(e["cursor"][self.cursor_field])}}
                if self.cursor_field in e["cursor"] else e
                for e in entries
            ]
        return state

    def _checked(self, value: Any) -> str:
        moment = self._parse(value)
        if moment is None:
            raise self._error(f"{self.cursor_field} {json.dumps(value)[:80]}, which is not a time")
        zone = pytz.timezone(self.config.get("project_timezone") or "US/Pacific")
        today = datetime.datetime.now(zone).replace(tzinfo=None).replace(hour=0, minute=0, second=0, microsecond=0)
        if moment < today + datetime.timedelta(days=1):
            return value
        clamped = today.strftime(self.formats[0])
        if self.stream not in _warned_future_states:
            _warned_future_states.add(self.stream)
            logger.warning(f"The saved state of {self.stream} is in the future ({self.cursor_field} {value}): the sync "
                           f"resumes from {clamped}, today in the project's timezone.")
        return clamped

    def _parse(self, value: Any) -> Optional[datetime.datetime]:
        for datetime_format in self.formats if isinstance(value, str) else ():
            try:
                moment = datetime.datetime.strptime(value, datetime_format)
            except ValueError:
                continue
            return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
        return None

    def _error(self, what: str) -> AirbyteTracedException:
        message = (f"The saved state of {self.stream} holds {what}: pass the state a sync emitted, or reset the "
                   f"stream's state in Airbyte to read it again from start_date.")
        return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


# ---------------------------------------------------------------------------------------------- export


@dataclass
class ResumeAtStartOfDay(StateMigration):
    """Moves a saved export state (ours or 4.x, e.g. 2025-06-10T23:31:11Z) to the start of its day.

    Python because the manifest's only declared migration is per-partition: without this, windows would
    start at 23:31:11 and every request would straddle two days.
    """

    parameters: InitVar[Mapping[str, Any]] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        value = stream_state.get("time") if stream_state else None
        return isinstance(value, str) and not value.endswith("T00:00:00Z")

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**stream_state, "time": f"{stream_state['time'][:10]}T00:00:00Z"}


@dataclass
class ExportBodyCheck(ErrorHandler):
    """Reads each 200 export body to a spool file inside the HTTP retry loop, judging every line on the way, and
    answers RETRY when the body broke off or holds a line that is not an event (FAIL when that comes twice).

    Python because a decoder runs after the retry loop (raising there does not retry, and the records before
    the bad line are already out), and a manifest response filter that reads a streamed body consumes it.
    Non-200 answers are left (None) to the handlers declared around this one.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    # The chain's first handler (budget_retries in manifest.yaml) sets both for the whole chain.
    max_retries: Optional[int] = None
    max_time: Optional[int] = None
    _not_events: Dict[str, int] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> Optional[ErrorResolution]:
        response = response_or_exception
        if not isinstance(response, requests.Response) or response.status_code != 200:
            return None
        window = _export_range(response)
        setattr(response, SENT_ATTRIBUTE, time.monotonic() - response.elapsed.total_seconds())
        try:
            spool = tempfile.TemporaryFile()
        except OSError as error:
            raise self._disk_error(window, error, 0)
        problem = None
        try:
            replaced = 0
            for line, _, was_replaced in events(split_lines(_spooled_chunks(response, spool))):
                replaced = replaced or (line if was_replaced else 0)
            if replaced:
                _warn_once("replaced", f"The export of {window} holds bytes that are not UTF-8 (first at line {replaced}): "
                                       f"they are read as U+FFFD, and the rest of each value is kept.")
        except _SpoolFailed as failed:
            spool.close()
            raise self._disk_error(window, failed.error, failed.written)
        except NotAnEvent as not_an_event:
            spool.close()
            return self._not_an_event(window, not_an_event)
        except BrokenBody as broken:
            problem = str(broken)
        except (requests.RequestException, Urllib3Error, OSError, zlib.error) as error:
            problem = f"broke off ({type(error).__name__})"
        finally:
            response.close()
        if problem:
            spool.close()
            message = f"The export of {window} {problem}; requesting the whole range again."
            logger.info(message)  # the CDK's own retry line calls every retry a rate limit
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        if _length_unknown(response):
            _warn_once("unsized", "The export answered without a length, chunks or gzip (its body ends where the "
                                  "connection closes): such bodies are read, but their completeness cannot be checked.")
        setattr(response, SPOOL_ATTRIBUTE, spool)
        export_run.current(self.config).requested(response, _window_days(response)[0])
        return ErrorResolution(response_action=ResponseAction.SUCCESS)

    def _not_an_event(self, window: str, not_an_event: NotAnEvent) -> ErrorResolution:
        """The first time for a window, ask again (a garbled answer); the second, stop before any of its records."""
        with self._lock:
            self._not_events[window] = seen = self._not_events.get(window, 0) + 1
        if seen == 1:
            message = f"The export of {window} holds {not_an_event.what} at line {not_an_event.line}; requesting the whole range again."
            logger.info(message)
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        message = (f"The export of {window} held {not_an_event.what} at line {not_an_event.line}, again when asked a "
                   f"second time: the sync stops before any record of that window rather than skip the line.")
        raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)

    @staticmethod
    def _disk_error(window: str, error: OSError, written: int) -> AirbyteTracedException:
        folder = tempfile.gettempdir()
        message = (f"The export of {window} cannot be spooled in {folder} ({error.strerror or error}): a window needs "
                   f"at least {max(1, written >> 20)} MB of free disk there; free some, point TMPDIR elsewhere, or set "
                   f"a smaller export_window_days.")
        return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)


class _SpoolFailed(Exception):
    """Writing the spool failed: the local disk, not the network."""

    def __init__(self, error: OSError, written: int) -> None:
        super().__init__(str(error))
        self.error, self.written = error, written


def _spooled_chunks(response: requests.Response, spool: IO[bytes]) -> Iterator[bytes]:
    """The body's bytes, un-gzipped here rather than by urllib3 so that a gzip stream cut at a flush point, which
    urllib3 takes as whole, is caught; spooled gzipped, a tenth of the disk: Mixpanel's gzip as it came, a plain
    body gzipped as it passes (level 1, the fastest)."""
    written = 0

    def spooled(data: bytes) -> bytes:
        nonlocal written
        try:
            spool.write(data)
        except OSError as error:
            raise _SpoolFailed(error, written) from error
        written += len(data)
        return data

    if (response.headers.get("Content-Encoding") or "").strip().lower() == "gzip":
        # Small reads: a chunk grows tenfold when un-gzipped.
        yield from gunzip(map(spooled, response.raw.stream(1 << 17, decode_content=False)))
        return
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for data in response.raw.stream(1 << 20, decode_content=True):
        spooled(compressor.compress(data))
        yield data
    spooled(compressor.flush())


def _length_unknown(response: requests.Response) -> bool:
    headers = response.headers
    gzip = (headers.get("Content-Encoding") or "").strip().lower() == "gzip"
    return not gzip and "Content-Length" not in headers and "chunked" not in (headers.get("Transfer-Encoding") or "").lower()


_warned: set = set()
_warned_lock = threading.Lock()


def _warn_once(kind: str, message: str) -> None:
    """One WARN per sync for each kind of thing a sync cannot fix but should say."""
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    logger.warning(message)


_restarted_queries: set = set()
_restarted_lock = threading.Lock()


@dataclass
class AnswerCheck(ErrorHandler):
    """Reads every answer before the declared filters: Mixpanel's 400s, and 200s that hold no data.

    - A 400 ends the request at once with Mixpanel's own words and the window asked for: older Mixpanel's bad
      credentials, a to_date after today in the project's timezone, or a window or filter it refuses. On an
      engage continuation page it means the session expired: the query restarts from page 0, once.
    - A 200 whose JSON is an error object (`{"error": ...}`, `"status": "error"`) or that is not JSON is a
      failed request, retried like a 5xx. Streamed export bodies are left to ExportBodyCheck.
    - A refusal of a saved Insights report (400, and the 404 of a deleted one where `refused_codes` lists it) or of
      a group key names that report or group key.

    Python because a declared filter's message cannot show a text body or the request's window, cannot tell a
    continuation page or a 200 from other answers, and the chain keeps the last FAIL, not the first.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    auth_failure_message: str = ""
    # The statuses read as Mixpanel refusing the request itself (the insights stream adds a deleted report's 404).
    refused_codes: List[int] = field(default_factory=lambda: [400])
    # The chain's first handler (budget_retries in manifest.yaml) sets both for the whole chain.
    max_retries: Optional[int] = None
    max_time: Optional[int] = None

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> Optional[ErrorResolution]:
        response = response_or_exception
        if not isinstance(response, requests.Response):
            return None
        if response.status_code in self.refused_codes:
            return self._refused(response)
        if response.status_code == 200 and response._content_consumed and not _is_data(response):
            message = f"Mixpanel answered {urlsplit(response.url or '').path} with {_answer_text(response)} in place of data."
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        return None

    def _refused(self, response: requests.Response) -> ErrorResolution:
        text = _answer_text(response)
        asked = _request_parameters(response.request)
        path = urlsplit(response.url or "").path
        status = response.status_code
        answered = f"{response.request.method if response.request else 'GET'} {response.url} answered {status}: {text}"
        if "Unable to authenticate request" in text:
            raise _config_error(self.auth_failure_message, answered)
        if "to_date cannot be later than today" in text:
            raise _config_error("Mixpanel says the export asked for a day after today in the project's timezone: set "
                                "project_timezone to the timezone in Mixpanel's Project Settings > Overview.", answered)
        if asked.get("session_id") and asked.get("page") not in (None, "", "0"):
            query = json.dumps({k: v for k, v in asked.items() if k not in ("session_id", "page")}, sort_keys=True)
            with _restarted_lock:
                first_time = query not in _restarted_queries
                _restarted_queries.add(query)
            if first_time:
                logger.info(f"Mixpanel refused page {asked['page']} of an engage query ({text}): its session expired; "
                            f"reading the query again from page 0 (profiles already read come again).")
                return ErrorResolution(ResponseAction.RESET_PAGINATION, FailureType.transient_error, text)
            message = f"Mixpanel's engage session expired again after the query restarted from page 0 ({text}): run the sync again."
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.transient_error)
        if asked.get("bookmark_id"):
            raise _config_error(f"Mixpanel refused Insights report {asked['bookmark_id']} ({status}: {text}): check that "
                                f"insights_reports lists saved Insights reports these credentials can read, by the "
                                f"number after report- in each report's URL.", answered)
        if asked.get("data_group_id"):
            raise _config_error(f"Mixpanel refused the group profiles of group key {asked['data_group_id']} ({status}: "
                                f"{text}): check that group_keys lists the project's group keys by their data_group_id.",
                                answered)
        window = f" for {asked['from_date']}..{asked['to_date']}" if asked.get("from_date") else ""
        raise _config_error(f"Mixpanel refused {path}{window} ({status}: {text}): check start_date, end_date and the "
                            f"export filters in the config.", answered)


def _is_data(response: requests.Response) -> bool:
    """Whether a read body is Mixpanel's JSON data: a list, or an object that is not an error."""
    try:
        body = response.json()
    except ValueError:
        return False
    if isinstance(body, list):
        return True
    return isinstance(body, dict) and "error" not in body and body.get("status") != "error"


def _answer_text(response: requests.Response) -> str:
    """Mixpanel's words in an answer, short: its error field, or the start of the body."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            return f"the error {str(body['error'])[:300]!r}"
    except ValueError:
        pass
    text = (response.text or "").strip()
    return repr(text[:300]) if text else "an empty body"


def _request_parameters(request: Optional[requests.PreparedRequest]) -> Dict[str, str]:
    """The query string and form body of a request."""
    if request is None:
        return {}
    asked = dict(parse_qsl(urlsplit(request.url or "").query))
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    if isinstance(body, str) and "=" in body and not body.lstrip().startswith("{"):
        asked.update(parse_qsl(body))
    return asked


def _config_error(message: str, internal_message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=internal_message, failure_type=FailureType.config_error)


def _export_range(response: requests.Response) -> str:
    params = requests.utils.urlparse(response.url).query if response.url else ""
    query = dict(part.split("=", 1) for part in params.split("&") if "=" in part)
    return f"{query.get('from_date', '?')}..{query.get('to_date', '?')}"


_discovery_cache: Dict[Tuple[str, str], Any] = {}
_discovery_lock = threading.Lock()


def discover(kind: str, requester: HttpRequester, config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer of a property discovery endpoint, asked once per run (the schema and the records share it). Group
    properties are asked once per group key and answered together, so that the groups stream has one rename map."""
    key = (kind, json.dumps(config, sort_keys=True, default=str))
    with _discovery_lock:
        if key not in _discovery_cache:
            if kind == "group":
                _discovery_cache[key] = _together([_discovery_answer(kind, requester, {"data_group_id": group_key})
                                                   for group_key in config.get("group_keys") or []])
            else:
                _discovery_cache[key] = _discovery_answer(kind, requester)
        return _discovery_cache[key]


def _together(answers: List[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Profile property answers as one: every name, with its type where all answers that list it agree."""
    results: Dict[str, Any] = {}
    for answer in answers:
        for name, info in (answer.get("results") or {}).items():
            kind = (info or {}).get("type")
            results[name] = {"type": kind if results.get(name, {"type": kind})["type"] == kind else "unknown"}
    return {"results": results} if any(answers) else {}


def _discovery_answer(kind: str, requester: HttpRequester, partition: Optional[Mapping[str, Any]] = None) -> Mapping[str, Any]:
    """Discovery that fails, or answers anything but its JSON object, leaves the known fields only, with one WARN:
    records still carry every property, and the streams that do not need discovery never notice."""
    try:
        response = requester.send_request(stream_slice=StreamSlice(partition=partition, cursor_slice={}) if partition else None)
    except BudgetSpent:  # Mixpanel refuses every query now: the sync stops, it does not go on half-described
        raise
    except AirbyteTracedException as error:
        if error.failure_type == FailureType.config_error:  # bad credentials fail everything anyway, and say so
            raise
        problem = (error.message or "it failed").rstrip(".")
    else:
        if response is None or response.status_code != 200:  # a plan that refuses it (402), logged as it was ignored
            return {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if DISCOVERY_ANSWERS[kind](answer):
            return answer
        problem = "its answer is not the JSON object it should be"
    path = urlsplit(requester.get_url(stream_state=None, stream_slice=None, next_page_token=None)).path
    of = "".join(f" {name} {value}" for name, value in (partition or {}).items())
    logger.warning(f"Property discovery for {kind}s ({path}{of}) failed: {problem}. The {kind} schema holds only the "
                   f"fields the stream promises; records keep every property.")
    return {}


# What a discovery answer looks like, to tell it from an error or a proxy's page.
DISCOVERY_ANSWERS = {
    "event": lambda answer: isinstance(answer, dict) and all(isinstance(info, dict) for info in answer.values()),
    "profile": lambda answer: isinstance(answer, dict) and isinstance(answer.get("results"), dict),
}
DISCOVERY_ANSWERS["group"] = DISCOVERY_ANSWERS["profile"]  # engage/properties for one group key


# How each stream family reads its discovery answer: the names, and Mixpanel's type of each when it says.
PROPERTY_DISCOVERY = {
    # events/properties/top: {"$browser": {"count": 6}, ...}, names only.
    "event": lambda answer: {name: None for name in answer},
    # engage/properties: {"results": {"$browser": {"count": 124, "type": "string"}, ...}}.
    "profile": lambda answer: {name: (info or {}).get("type") for name, info in (answer.get("results") or {}).items()},
}
PROPERTY_DISCOVERY["group"] = PROPERTY_DISCOVERY["profile"]
# Columns whatever discovery says: the fields a stream promises, the cursors among them.
FIRST_PROPERTIES = {"event": ("time", "distinct_id", "$insert_id", "mp_processing_time_ms"), "profile": ("$last_seen",),
                    "group": ()}
RESERVED_COLUMNS = {"event": ("event", DEDUP_KEY), "profile": ("distinct_id", "cohort_id"),
                    "group": ("group_id", "data_group_id")}

# Mixpanel's profile property types as JSON schema; "unknown" (and anything new) gets no type restriction.
MIXPANEL_TYPES: Dict[str, dict] = {
    "string": {"type": ["null", "string"]},
    "number": {"type": ["null", "number"]},
    "boolean": {"type": ["null", "boolean"]},
    # Mixpanel writes profile datetimes without an offset.
    "datetime": {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
    "list": {"type": ["null", "array"]},
    "object": {"type": ["null", "object"]},
}


_names_cache: Dict[Tuple[str, str], PropertyNames] = {}


def property_names(kind: str, requester: HttpRequester, config: Mapping[str, Any]) -> PropertyNames:
    """The one rename map of a run for events, for profiles (engage and cohort_members share it) or for groups."""
    key = (kind, json.dumps(config, sort_keys=True, default=str))
    answer = discover(kind, requester, config)
    with _discovery_lock:
        if key not in _names_cache:
            _names_cache[key] = PropertyNames(
                PROPERTY_DISCOVERY[kind](answer),
                first=FIRST_PROPERTIES[kind],
                reserved=RESERVED_COLUMNS[kind],
                keep_undiscovered=config.get("select_properties_by_default", True) is not False,
                what=f"{kind} property",
            )
        return _names_cache[key]


@dataclass
class DiscoveredSchemaLoader(SchemaLoader):
    """A schema from Mixpanel's property discovery: Python because the columns come from the rename map.

    `fields` (from the manifest) types the fields the stream itself promises; discovered properties get
    Mixpanel's type where it tells one, and no type restriction where it does not; a column named otherwise
    than its property carries the property's name as its title. The rest lands in `other_properties`.
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    kind: str
    parameters: InitVar[Mapping[str, Any]]
    fields: Mapping[str, Any] = field(default_factory=dict)

    def get_json_schema(self) -> Mapping[str, Any]:
        types = PROPERTY_DISCOVERY[self.kind](discover(self.kind, self.properties_requester, self.config))
        names = property_names(self.kind, self.properties_requester, self.config)
        properties: Dict[str, Any] = {
            column: {**MIXPANEL_TYPES.get(types.get(raw), {}), **({"title": raw} if column != raw else {})}
            for raw, column in names.columns.items()
        }
        properties.update(self.fields)
        if self.config.get("select_properties_by_default", True) is not False:
            properties[OTHER_PROPERTIES] = OTHER_PROPERTIES_SCHEMA
        return {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": properties}


OTHER_PROPERTIES_SCHEMA = {
    "type": ["null", "object"],
    "description": "The properties that Mixpanel's property discovery did not list, under their Mixpanel names.",
}


@dataclass
class ExportDecoder(Decoder):
    """Parses the spooled export body and shapes each record in the same pass: its dedup key, its true time, and
    none of the events the last run already delivered from days it read (export_run.py).

    Python because no manifest decoder rejoins records split over lines or fails loudly on a line
    that will not parse (JsonlDecoder skips it), and because shaping here with orjson is measurably
    faster per record: JsonlDecoder + DpathFlattenFields measured ~5,800 records/s against ~15,000/s
    for this approach; `make bench` measures ~26,000/s end to end.
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    parameters: InitVar[Mapping[str, Any]]
    _names: Optional[PropertyNames] = field(init=False, default=None)

    def is_stream_response(self) -> bool:
        return True

    def decode(self, response: requests.Response) -> Generator[MutableMapping[str, Any], None, None]:
        spool: Optional[IO[bytes]] = getattr(response, SPOOL_ATTRIBUTE, None)
        if spool is None:
            raise AirbyteTracedException(
                message="An export response reached the decoder without passing the body check; this is a connector bug.",
                failure_type=FailureType.system_error,
            )
        if self._names is None:
            self._names = property_names("event", self.properties_requester, self.config)
        run = export_run.current(self.config)
        try:
            run.decide_storage(spool, _export_range(response))
            yield from self._records(spool, response, run)
        finally:
            spool.close()

    def _records(self, spool: IO[bytes], response: requests.Response, run: export_run.ExportRun) -> Generator[MutableMapping[str, Any], None, None]:
        shape, key, iso = self._names.shape, export_run.dedup_key, _IsoSeconds()
        true_time = run.true_time if run.storage == "project_timezone" else None
        # Days the last run read: only what Mixpanel received since comes out again (export_run.py).
        low, high = run.reread if run.filters(*_window_days(response)) else (0.0, 0.0)
        cutoff = run.cutoff_ms or 0
        count = delivered = 0
        try:
            for _, event, _ in events(spooled_lines(spool)):
                properties = event["properties"]
                seconds = properties["time"]
                if type(seconds) is not int:  # a float, or a time in a string (events() checked it converts)
                    seconds = unix_time(seconds)
                if low <= seconds < high:
                    received = properties.get("mp_processing_time_ms")
                    if type(received) is int and received < cutoff:
                        delivered += 1
                        continue
                # Shaped here, in one pass: properties to the top level, names through the rename map, types kept.
                record = {"event": event["event"], DEDUP_KEY: key(event, seconds)}
                shape(properties, record)
                record["time"] = iso(true_time(seconds, properties.get("mp_processing_time_ms")) if true_time else seconds)
                count += 1
                yield record
        except (NotAnEvent, BrokenBody) as problem:  # the body check read this same spool and passed it
            message = f"The export of {_export_range(response)} changed between its check and its reading ({problem}): this is a connector bug."
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
        _log_window(response, spool, count, delivered)


class _IsoSeconds(dict):
    """Unix seconds -> `YYYY-MM-DDTHH:MM:SSZ`, each second formatted once while it recurs: events of one second
    tend to come together. A few thousand at most: a day's 86,400 would hold about 10 MB."""

    def __call__(self, seconds: float) -> str:
        second = seconds if type(seconds) is int else math.floor(seconds)
        text = self.get(second)
        if text is None:
            if len(self) >= 4096:
                self.clear()
            text = self[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return text


def _window_days(response: requests.Response) -> Tuple[str, str]:
    query = dict(parse_qsl(urlsplit(response.url or "").query))
    return query.get("from_date", ""), query.get("to_date", "")


def _log_window(response: requests.Response, spool: IO[bytes], records: int, delivered: int) -> None:
    """One INFO line per finished export window: its days, its records, the seconds from request to last record, and
    the temporary disk its body took."""
    try:
        first, last = (datetime.date.fromisoformat(day) for day in _window_days(response))
        days = f"{(last - first).days + 1} day{'s' if last > first else ''}"
    except ValueError:
        days = "days unknown"
    seconds = time.monotonic() - getattr(response, SENT_ATTRIBUTE, time.monotonic())
    rate = f", {records / seconds:,.0f} records/s" if seconds > 0 and records else ""
    again = (f"; {delivered:,} events of days the last sync read, received before it read them, were delivered then"
             if delivered else "")
    disk = spool.seek(0, io.SEEK_END) / 1e6
    logger.info(f"Export of {_export_range(response)} done ({days}): {records:,} records in {seconds:.1f} s{rate}{again}; "
                f"its body took {disk:,.1f} MB of temporary disk (gzipped).")


# ---------------------------------------------------------------------------------------------- reports


@dataclass
class DateKeyedExtractor(RecordExtractor):
    """One record per day from an object keyed by date (funnels `data`, revenue `results`).

    Python because the manifest's extractors cannot turn an object's keys into a field. Keys that are not
    days, such as revenue's `$overall`, are totals rather than days and are skipped.
    """

    field_path: List[str]
    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    decoder: Decoder = field(default_factory=lambda: JsonDecoder(parameters={}))

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        for body in self.decoder.decode(response):
            by_day = body
            for key in self.field_path:
                by_day = (by_day or {}).get(key)
            for day, values in (by_day or {}).items():
                if _DAY.match(day):
                    yield {"date": day, **(values or {})}


OVERALL = "$overall"  # Mixpanel's total over the keys beside it


@dataclass
class InsightsNumbers(RecordExtractor):
    """One record per number of a saved Insights report. `series` nests metric -> one level per breakdown -> date
    (or `all`) -> number, as deep as the report's breakdowns go; `headers` names the levels (the first is the
    metric's). Each number becomes {bookmark_id, metric, breakdown: {header: value}, breakdown_key, date, value,
    computed_at}. Every `$overall` key is a total over the keys beside it, not a number of its own, and is left
    out (README, insights); the report's INFO line counts them.

    Python because the manifest's extractors cannot walk a nesting of any depth or name its levels from the
    answer's own headers.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    decoder: Decoder = field(default_factory=lambda: JsonDecoder(parameters={}))

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        report = _request_parameters(response.request).get("bookmark_id", "?")
        for body in self.decoder.decode(response):
            series = body.get("series") if isinstance(body, dict) else None
            if not isinstance(series, dict):
                message = (f"Mixpanel answered Insights report {report} with {_answer_text(response)}, which holds no "
                           f"series of numbers: the connector cannot read it.")
                raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
            headers = body.get("headers") if isinstance(body.get("headers"), list) else []
            names = _level_names(headers)
            numbers, totals, depths = 0, [0], set()
            for path, value in _numbers(series, (), totals):
                if len(path) < 2:
                    message = f"Insights report {report} holds a number under {path[0]!r} with no date: the connector cannot name it."
                    raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
                depths.add(len(path))
                levels = path[1:-1]
                numbers += 1
                yield {
                    "bookmark_id": int(report) if str(report).isdigit() else report,
                    "metric": path[0],
                    "breakdown": {_level_name(names, n): level for n, level in enumerate(levels)},
                    "breakdown_key": json.dumps(levels, ensure_ascii=False, separators=(",", ":")),
                    "date": path[-1],
                    "value": value,
                    "computed_at": body.get("computed_at"),
                }
            if depths - {len(headers) + 1}:
                logger.warning(f"Insights report {report} nests its numbers {sorted(depths)} levels deep where its headers "
                               f"{headers} name {len(headers) + 1}: breakdown levels without a header are named level_N.")
            logger.info(f"Insights report {report}: {numbers:,} numbers"
                        f"{f'; {totals[0]:,} $overall totals left out' if totals[0] else ''}.")


def _numbers(node: Mapping[str, Any], path: tuple, totals: List[int]) -> Iterator[Tuple[tuple, Any]]:
    """(the keys down to a number, the number) for every number under node; `$overall` keys counted in totals."""
    for key, child in node.items():
        if key == OVERALL:
            totals[0] += 1
        elif isinstance(child, Mapping):
            yield from _numbers(child, path + (key,), totals)
        else:
            yield path + (key,), child


def _level_names(headers: List[Any]) -> List[str]:
    """The breakdown levels' names (headers after the metric's), a name that comes twice told apart by its place."""
    names: List[str] = []
    for place, header in enumerate(headers[1:], start=1):
        name = str(header)
        names.append(name if name not in names else f"{name} (level {place})")
    return names


def _level_name(names: List[str], level: int) -> str:
    return names[level] if level < len(names) else f"level_{level + 1}"


@dataclass
class FunnelStatePartitions(StateMigration):
    """Keys a 4.x funnels state the way the CDK keys funnel partitions, so each funnel resumes where it was.

    Python because the manifest's only state migration (LegacyToPerPartitionStateMigration) does not
    convert the 4.x string ids ({"funnel_id": "7"}) into the CDK's ({"funnel_id": 7, "parent_slice": {}}).
    """

    parameters: InitVar[Mapping[str, Any]] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        return any(self._key(entry.get("partition") or {}) != entry.get("partition") for entry in stream_state.get("states") or [])

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        states = [{**entry, "partition": self._key(entry.get("partition") or {})} for entry in stream_state["states"]]
        return {**stream_state, "states": states}

    @staticmethod
    def _key(partition: Mapping[str, Any]) -> Mapping[str, Any]:
        funnel_id = partition.get("funnel_id")
        if isinstance(funnel_id, str) and funnel_id.isdigit():
            funnel_id = int(funnel_id)
        return {"funnel_id": funnel_id, "parent_slice": partition.get("parent_slice") or {}}


# --------------------------------------------------------------------------------------------- profiles


@dataclass
class ProfileShape(RecordTransformation):
    """Flattens an engage profile, a user's or a group's (`kind` group), to one record: its id under `id_column`,
    and `$properties` to the top level through the rename map of its kind.

    Python because the manifest's flattening cannot keep names that collide apart (see PropertyNames).
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    parameters: InitVar[Mapping[str, Any]]
    kind: str = "profile"
    id_column: str = "distinct_id"
    _names: Optional[PropertyNames] = field(init=False, default=None)

    def transform(self, record: Dict[str, Any], config: Optional[Mapping[str, Any]] = None,
                  stream_state: Optional[Mapping[str, Any]] = None, stream_slice: Optional[Any] = None) -> None:
        if self._names is None:
            self._names = property_names(self.kind, self.properties_requester, self.config)
        properties = record.pop("$properties", None) or {}
        identifier = record.pop("$distinct_id", None)
        # Group profiles come keyed by $distinct_id (the group's id); an answer keyed $group_id is read the same way.
        group_id = record.pop("$group_id", None) if self.kind == "group" else None
        record[self.id_column] = identifier if identifier is not None else group_id
        self._names.shape(properties, record)
