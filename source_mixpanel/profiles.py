"""Engage profiles, a user's or a group's, flattened to one record each through their kind's rename map."""

import json
from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, Mapping, Optional

from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.transformations.transformation import RecordTransformation

from source_mixpanel.failures import system_error
from source_mixpanel.properties.columns import StreamColumns, stream_columns
from source_mixpanel.properties.discovery import keeps_undiscovered, property_names


@dataclass
class ProfileShape(RecordTransformation):
    """Flattens an engage profile, a user's or a group's (`kind` group), to one record: its id under `id_column`,
    and `$properties` to the top level through the rename map of its kind, each value in its column when it fits
    the column's type in the configured catalog (properties/columns.py). A profile of engage's `results`, e.g.
        {"$distinct_id": "u-17", "$properties": {"$email": "a@b.c", "$last_seen": "2025-03-01T08:00:00", "plan": "pro"}}
    becomes {"distinct_id": "u-17", "email": "a@b.c", "last_seen": "2025-03-01T08:00:00", "plan": "pro"}.

    Python because the manifest's flattening cannot keep names that collide apart (see PropertyNames).
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    parameters: InitVar[Mapping[str, Any]]
    stream: str = "engage"  # the manifest names each
    kind: str = "profile"
    id_column: str = "distinct_id"
    _columns: Optional[StreamColumns] = field(init=False, default=None)

    def transform(self, record: Dict[str, Any], config: Optional[Mapping[str, Any]] = None,
                  stream_state: Optional[Mapping[str, Any]] = None, stream_slice: Optional[Any] = None) -> None:
        if self._columns is None:
            names = property_names(self.kind, self.properties_requester, self.config)
            self._columns = stream_columns(self.stream, names, keeps_undiscovered(self.config))
        properties = record.pop("$properties", None) or {}
        identifier = record.pop("$distinct_id", None)
        # Group profiles come keyed by $distinct_id (the group's id); an answer keyed $group_id is read the same way.
        group_id = record.pop("$group_id", None) if self.kind == "group" else None
        record[self.id_column] = _checked_id(identifier if identifier is not None else group_id, self.kind, stream_slice)
        self._columns.shape(properties, record, wide=True)  # an answer's integers are exact, of any size


def _checked_id(identifier: Any, kind: str, stream_slice: Optional[Mapping[str, Any]]) -> str:
    """The profile's id as text: Mixpanel's text, or an integer id in decimal (its reference types `$distinct_id` an
    integer). The id is a key declared text, so that a warehouse key never mixes types (docs/streams.md, engage). A null
    id would merge records downstream and any other value would need coercing, so either fails the partition."""
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        return str(identifier)
    partition = stream_slice or {}
    if kind == "group":
        whose, remedy = f"a group profile of group key {partition.get('data_group_id')}", "; leave the key out of group_keys to sync the others"
    elif partition.get("cohort_id"):
        whose, remedy = f"a member of cohort {partition['cohort_id']}", ""
    else:
        whose, remedy = "an engage profile", ""
    odd = "without an id ($distinct_id)" if identifier is None else f"whose id is {json.dumps(identifier)[:60]}, neither text nor an integer"
    message = f"Mixpanel answered {whose} {odd}: a record needs its id, text or an integer, to be told apart, so this read stops here{remedy}."
    raise system_error(message)
