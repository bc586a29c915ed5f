"""Engage profiles, a user's or a group's, flattened to one record each through their kind's rename map."""

from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, Mapping, Optional

from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.transformations.transformation import RecordTransformation

from source_mixpanel.discovery import property_names
from source_mixpanel.properties import PropertyNames


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
