"""Property discovery: Mixpanel's event, profile and group properties, asked once per run, as schemas and rename maps."""

import json
import logging
import threading
from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.schema.schema_loader import SchemaLoader
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.budget_family import BudgetSpent
from source_mixpanel.export_run import DEDUP_KEY
from source_mixpanel.properties import OTHER_PROPERTIES, PropertyNames
from source_mixpanel.property_types import COLUMN_SCHEMAS

logger = logging.getLogger("airbyte")


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

# Mixpanel's profile property types as column kinds (property_types.COLUMN_SCHEMAS); "unknown" (and anything new)
# gets no type restriction. Mixpanel writes profile datetimes without an offset.
MIXPANEL_TYPES: Dict[str, str] = {"string": "string", "number": "number", "boolean": "boolean", "datetime": "datetime",
                                  "list": "array", "object": "object"}


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
            column: {**COLUMN_SCHEMAS.get(MIXPANEL_TYPES.get(types.get(raw)), {}), **({"title": raw} if column != raw else {})}
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
