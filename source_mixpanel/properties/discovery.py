"""Property discovery: Mixpanel's event, profile and group properties, asked once per run, as schemas and rename maps."""

import datetime
import io
import json
import logging
import time
from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.schema.schema_loader import SchemaLoader
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import sync_run
from source_mixpanel.budget.family import BudgetSpent
from source_mixpanel.export.history import DEDUP_KEY
from source_mixpanel.export.lines import events, spooled_lines
from source_mixpanel.export.response import SPOOL_ATTRIBUTE
from source_mixpanel.failures import failure, system_error
from source_mixpanel.properties.kinds import COLUMN_SCHEMAS, FITS, column_kind, kind_of
from source_mixpanel.properties.names import OTHER_PROPERTIES, WITH_COLUMNS, PropertyNames

logger = logging.getLogger("airbyte")


def discover(kind: str, requester: HttpRequester, config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer of a property discovery endpoint, asked once per run (the schema and the records share it). Group
    properties are asked once per group key and answered together, so that the groups stream has one rename map."""
    key, run = (kind, json.dumps(config, sort_keys=True, default=str)), sync_run.current()
    with run.discovery_lock:
        if key not in run.discovery_answers:
            if kind == "group":
                run.discovery_answers[key] = _together([_discovery_answer(kind, requester, {"data_group_id": group_key})
                                                        for group_key in config.get("group_keys") or []])
            else:
                run.discovery_answers[key] = _discovery_answer(kind, requester)
        return run.discovery_answers[key]


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

# Mixpanel's profile property types as column kinds (properties.kinds.COLUMN_SCHEMAS); "unknown" (and anything new)
# gets no type restriction. Mixpanel writes profile datetimes without an offset.
MIXPANEL_TYPES: Dict[str, str] = {"string": "string", "number": "number", "boolean": "boolean", "datetime": "datetime",
                                  "list": "array", "object": "object"}


def property_names(kind: str, requester: HttpRequester, config: Mapping[str, Any]) -> PropertyNames:
    """The one rename map of a run for events, for profiles (engage and cohort_members share it) or for groups."""
    key, run = (kind, json.dumps(config, sort_keys=True, default=str)), sync_run.current()
    answer = discover(kind, requester, config)
    with run.discovery_lock:
        if key not in run.property_names:
            run.property_names[key] = PropertyNames(
                PROPERTY_DISCOVERY[kind](answer),
                first=FIRST_PROPERTIES[kind],
                reserved=RESERVED_COLUMNS[kind],
                kind=kind,
            )
        return run.property_names[key]


def keeps_undiscovered(config: Mapping[str, Any]) -> bool:
    """Whether properties discovery did not list are kept (in OTHER_PROPERTIES) or dropped."""
    return config.get("select_properties_by_default", True) is not False


# ------------------------------------------------------------------ event property types (discover only)
def declare_types() -> None:
    """This run is a discover: event property columns get types (the Lexicon, a sample); check and read ask neither."""
    sync_run.current().types_wanted.set()


def sample_week(config: Mapping[str, Any]) -> Tuple[datetime.date, datetime.date]:
    """The last whole Monday-Sunday week that ends before the sync's last day (never after the project's today): every
    discover of one week reads the same events, so a rare value cannot make a column's type flap between them."""
    last = datetime.date.fromisoformat(config["sync_last_day"])
    sunday = last - datetime.timedelta(days=last.weekday() + 1)
    return sunday - datetime.timedelta(days=6), sunday


def lexicon_kinds(requester: HttpRequester, config: Mapping[str, Any]) -> Dict[str, str]:
    """Event property kinds from the Lexicon's schemas (service accounts only: Mixpanel refuses project secrets there);
    a property two events' schemas type differently gets none. Any failure: one WARN, and no kinds."""
    if (config.get("credentials") or {}).get("option_title") != "Service Account":
        return {}
    try:
        response = requester.send_request()
    except AirbyteTracedException as error:  # 5xx after retries, a dropped connection, the Lexicon's budget spent
        problem = (error.message or "it failed").rstrip(".")
    else:
        answer = _json_or_none(response) if response is not None and response.status_code == 200 else None
        results = answer.get("results") if isinstance(answer, dict) else None
        if isinstance(results, list) and all(isinstance(schema, dict) for schema in results):
            return _event_kinds_of(results)
        if response is None or response.status_code != 200:
            error = _json_or_none(response) if response is not None else None
            why = error.get("error") if isinstance(error, dict) else None
            problem = f"Mixpanel answered {getattr(response, 'status_code', 'nothing')}" + (f" ({why})" if why else "")
        else:
            problem = "its answer is not the list of schemas it should be"
    path = urlsplit(requester.get_url(stream_state=None, stream_slice=None, next_page_token=None)).path
    logger.warning(f"The Lexicon's schemas ({path}) could not be read: {problem}. Event property types come from the "
                   f"sample of events alone.")
    return {}


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _event_kinds_of(schemas: List[Mapping[str, Any]]) -> Dict[str, str]:
    said: Dict[str, set] = {}
    for schema in schemas:
        properties = (schema.get("schemaJson") or {}).get("properties") if schema.get("entityType") == "event" else None
        for name, declared in (properties if isinstance(properties, dict) else {}).items():
            kind = _lexicon_kind(declared)
            if kind is not None:
                said.setdefault(name, set()).add(kind)
    return {name: kinds.pop() for name, kinds in said.items() if len(kinds) == 1}


def _lexicon_kind(declared: Any) -> Optional[str]:
    """A JSON Schema property of the Lexicon as a column kind: its one type besides null; a string in date-time
    format is a datetime."""
    kind = declared.get("type") if isinstance(declared, dict) else None
    if isinstance(kind, list):
        kinds = [one for one in kind if one != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "string" and declared.get("format") == "date-time":
        return "datetime"
    return kind if kind in FITS and kind != "datetime" else None


def sample_kinds(requester: HttpRequester, config: Mapping[str, Any]) -> Dict[str, set]:
    """The kinds each property's values have in one export of the sample week (at most 100,000 events), through the
    export's budget and body check. A body that stays cut fails discover: no types from half a sample."""
    first, last = sample_week(config)
    window = {"start_time": first.isoformat(), "end_time": last.isoformat()}
    started = time.monotonic()
    # The body check reads the body as it streams, as the export's: the factory turns streaming on only for a
    # requester whose stream has a streaming decoder, and this one has no stream.
    requester.stream_response = True
    try:
        response = requester.send_request(stream_slice=StreamSlice(partition={}, cursor_slice=window))
    except AirbyteTracedException as error:
        message = (f"Discover could not read its sample of events ({first}..{last}), which types event properties: "
                   f"{error.message or 'the export failed.'}")
        raise failure(error.failure_type or FailureType.system_error, message, error.internal_message) from error
    spool = getattr(response, SPOOL_ATTRIBUTE, None)
    if spool is None:
        message = "The sample of events reached discovery without passing the export body check; this is a connector bug."
        raise system_error(message)
    kinds: Dict[str, set] = {}
    count = raw = 0

    def measured(lines: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal raw
        for line in lines:
            raw += len(line) + 1
            yield line

    try:
        for _, event, _, _ in events(measured(spooled_lines(spool)), exact_integers=True):
            count += 1
            for name, value in event["properties"].items():
                seen = kinds.get(name)
                if seen is None:
                    seen = kinds[name] = set()
                seen.add(kind_of(value))
        gzipped = spool.seek(0, io.SEEK_END)
    finally:
        spool.close()
    logger.info(f"Event property types: a sample of {count:,} events ({first}..{last}, {raw / 1e6:,.1f} MB, "
                f"{gzipped / 1e6:,.1f} MB gzipped) read in {time.monotonic() - started:.1f} s.")
    return kinds


def event_kinds(names: List[str], lexicon: HttpRequester, sample: HttpRequester, config: Mapping[str, Any]) -> Dict[str, str]:
    """Each listed event property's column kind: the Lexicon's unless the sample holds values that do not fit it
    (then none, with a WARN naming both), else the sample's (properties.kinds.column_kind). Asked once per run."""
    key, run = json.dumps(config, sort_keys=True, default=str), sync_run.current()
    with run.discovery_lock:
        if key in run.event_kinds:
            return run.event_kinds[key]
        said, seen = lexicon_kinds(lexicon, config), sample_kinds(sample, config)
        kinds: Dict[str, str] = {}
        for name in names:
            held = seen.get(name, set()) - {None}
            if name not in said:
                kind = column_kind(held)
            elif held <= FITS[said[name]]:
                kind = said[name]
            else:
                kind = None
                logger.warning(f"The Lexicon types event property {name!r} as {said[name]}, but the sampled events hold "
                               f"{' and '.join(sorted(held))} values: its column gets no type.")
            if kind is not None:
                kinds[name] = kind
        run.event_kinds[key] = kinds
        return kinds


@dataclass
class DiscoveredSchemaLoader(SchemaLoader):
    """A schema from Mixpanel's property discovery: Python because the columns come from the rename map.

    `fields` (from the manifest) types the fields the stream itself promises; discovered profile properties get
    Mixpanel's type where it tells one; event properties, in a discover, the type event_kinds finds; the others no
    type restriction. A column named otherwise than its property carries the property's name as its title. The rest
    lands in `other_properties`.
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    kind: str
    parameters: InitVar[Mapping[str, Any]]
    fields: Mapping[str, Any] = field(default_factory=dict)
    # Events only: where discover finds their types (declare_types).
    lexicon_requester: Optional[HttpRequester] = None
    sample_requester: Optional[HttpRequester] = None

    def get_json_schema(self) -> Mapping[str, Any]:
        types = PROPERTY_DISCOVERY[self.kind](discover(self.kind, self.properties_requester, self.config))
        names = property_names(self.kind, self.properties_requester, self.config)
        kinds = {raw: MIXPANEL_TYPES.get(kind) for raw, kind in types.items() if kind}
        if self.sample_requester is not None and sync_run.current().types_wanted.is_set():
            kinds = event_kinds(list(names.columns), self.lexicon_requester, self.sample_requester, self.config)
        properties: Dict[str, Any] = {
            column: {**COLUMN_SCHEMAS.get(kinds.get(raw), {}), **({"title": raw} if column != raw else {})}
            for raw, column in names.columns.items()
        }
        properties.update(self.fields)
        if keeps_undiscovered(self.config):
            properties[OTHER_PROPERTIES] = {**OTHER_PROPERTIES_SCHEMA, WITH_COLUMNS: list(names.columns)}
        return {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": properties}


OTHER_PROPERTIES_SCHEMA = {
    "type": ["null", "object"],
    "description": "The properties without a column of their own, under their Mixpanel names: new since the schema was "
                   "discovered, or a value of another kind than its column declares.",
}
