"""Thin components for what manifest.yaml cannot say. Each class names, in its first line, why."""

import json
import logging
import re
import tempfile
import threading
import time
from dataclasses import InitVar, dataclass, field
from typing import IO, Any, Dict, Generator, Iterable, List, Mapping, MutableMapping, Optional, Tuple, Union

import orjson
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
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3.exceptions import HTTPError as Urllib3Error

from source_mixpanel.properties import PropertyNames

logger = logging.getLogger("airbyte")

# The longest run of lines one record may span when text values hold raw line breaks.
MAX_LINES_PER_RECORD = 64
SPOOL_ATTRIBUTE = "_mixpanel_export_spool"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_record_lines(lines: List[bytes]) -> Optional[Any]:
    """One JSON value from one line, or from lines a raw line break split; None when they do not parse."""
    if len(lines) == 1:
        try:
            return orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            return None
    try:
        # strict=False takes the raw line breaks back as the characters they were.
        return json.loads(b"\n".join(lines), strict=False)
    except ValueError:
        return None


def body_end_problem(tail: bytes) -> Optional[str]:
    """Why a body whose last bytes are `tail` is not a whole export, or None when it is."""
    text = tail.rstrip(b"\r\n")
    if not text:
        return None
    lines = text.split(b"\n")
    if b"terminated early" in lines[-1].lower():
        return "ended with 'terminated early'"
    for count in range(1, min(len(lines), MAX_LINES_PER_RECORD) + 1):
        if isinstance(parse_record_lines(lines[-count:]), dict):
            return None
    return "ended in the middle of a record"


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
    """Reads each 200 export body to a spool file inside the HTTP retry loop and answers RETRY when it broke off.

    Python because a decoder runs after the retry loop (raising there does not retry and records of
    the bad body are already out), and a manifest response filter that reads a streamed body
    consumes it. Non-200 answers are left (None) to the status filters declared after this one.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    # The chain's first handler (budget_retries in manifest.yaml) sets both for the whole chain.
    max_retries: Optional[int] = None
    max_time: Optional[int] = None

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> Optional[ErrorResolution]:
        response = response_or_exception
        if not isinstance(response, requests.Response) or response.status_code != 200:
            return None
        spool = tempfile.TemporaryFile()
        tail = b""
        try:
            for chunk in response.iter_content(chunk_size=1 << 20):
                spool.write(chunk)
                tail = (tail + chunk)[-(1 << 20):]
            problem = body_end_problem(tail)
        except (requests.RequestException, Urllib3Error, OSError) as error:
            problem = f"broke off ({type(error).__name__})"
        finally:
            response.close()
        if problem:
            spool.close()
            message = f"The export of {_export_range(response)} {problem}; requesting the whole range again."
            logger.info(message)  # the CDK's own retry line calls every retry a rate limit
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=message,
            )
        spool.seek(0)
        setattr(response, SPOOL_ATTRIBUTE, spool)
        return ErrorResolution(response_action=ResponseAction.SUCCESS)


def _export_range(response: requests.Response) -> str:
    params = requests.utils.urlparse(response.url).query if response.url else ""
    query = dict(part.split("=", 1) for part in params.split("&") if "=" in part)
    return f"{query.get('from_date', '?')}..{query.get('to_date', '?')}"


_discovery_cache: Dict[Tuple[str, str], Any] = {}
_discovery_lock = threading.Lock()


def discover(kind: str, requester: HttpRequester, config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer of a property discovery endpoint, asked once per run (the schema and the records share it)."""
    key = (kind, json.dumps(config, sort_keys=True, default=str))
    with _discovery_lock:
        if key not in _discovery_cache:
            response = requester.send_request()
            ok = response is not None and response.status_code == 200
            _discovery_cache[key] = response.json() if ok else {}
        return _discovery_cache[key]


# How each stream family reads its discovery answer: the names, and Mixpanel's type of each when it says.
PROPERTY_DISCOVERY = {
    # events/properties/top: {"$browser": {"count": 6}, ...}, names only.
    "event": lambda answer: {name: None for name in answer},
    # engage/properties: {"results": {"$browser": {"count": 124, "type": "string"}, ...}}.
    "profile": lambda answer: {name: (info or {}).get("type") for name, info in (answer.get("results") or {}).items()},
}
FIRST_PROPERTIES = {"event": ("time", "distinct_id", "$insert_id", "mp_processing_time_ms"), "profile": ()}
RESERVED_COLUMNS = {"event": ("event",), "profile": ("distinct_id", "cohort_id")}

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
    """The one rename map of a run for events or for profiles (engage and cohort_members share it)."""
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
    Mixpanel's type where it tells one, and no type restriction where it does not.
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
            column: dict(MIXPANEL_TYPES.get(types.get(raw), {})) for raw, column in names.discovered.items()
        }
        properties.update(self.fields)
        return {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": self.config.get("select_properties_by_default", True) is not False,
            "properties": properties,
        }


@dataclass
class ExportDecoder(Decoder):
    """Parses the spooled export body and shapes each record in the same pass.

    Python because no manifest decoder rejoins records split over lines or fails loudly on a line
    that will not parse (JsonlDecoder skips it), and because shaping here with orjson is measurably
    faster per record: issue 3 measured JsonlDecoder + DpathFlattenFields at ~5,800 records/s against
    ~15,000/s for this approach; `make bench` measures ~26,000/s end to end.
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
        try:
            yield from self._records(spool, response)
        finally:
            spool.close()

    def _records(self, spool: IO[bytes], response: requests.Response) -> Generator[MutableMapping[str, Any], None, None]:
        column = self._names.column
        gmtime, strftime = time.gmtime, time.strftime
        pending: List[bytes] = []
        line_number = 0
        for line_number, line in enumerate(spool, start=1):
            line = line.rstrip(b"\r\n")
            if not line and not pending:
                continue
            pending.append(line)
            event = parse_record_lines(pending)
            if not isinstance(event, dict):
                if len(pending) < MAX_LINES_PER_RECORD:
                    continue
                break
            pending = []
            # Shaped here, in one pass: properties to the top level, names through the rename map, types kept.
            record = {"event": event.get("event")}
            for name, value in (event.get("properties") or {}).items():
                target = column(name)
                if target is not None:
                    record[target] = value
            moment = record.get("time")
            if isinstance(moment, (int, float)) and not isinstance(moment, bool):
                record["time"] = strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(moment))
            yield record
        if pending:
            raise AirbyteTracedException(
                message=f"The export of {_export_range(response)} holds a line that is not JSON (line {line_number - len(pending) + 1}); the sync stops rather than skip it.",
                internal_message=f"unparseable export lines starting: {pending[0][:200]!r}",
                failure_type=FailureType.system_error,
            )


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
    """Flattens an engage profile to one record: `$properties` to the top level through the rename map.

    Python because the manifest's flattening cannot keep names that collide apart (see PropertyNames).
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    parameters: InitVar[Mapping[str, Any]]
    _names: Optional[PropertyNames] = field(init=False, default=None)

    def transform(self, record: Dict[str, Any], config: Optional[Mapping[str, Any]] = None,
                  stream_state: Optional[Mapping[str, Any]] = None, stream_slice: Optional[Any] = None) -> None:
        if self._names is None:
            self._names = property_names("profile", self.properties_requester, self.config)
        column = self._names.column
        properties = record.pop("$properties", None) or {}
        record["distinct_id"] = record.pop("$distinct_id", None)
        for name, value in properties.items():
            target = column(name)
            if target is not None:
                record[target] = value
