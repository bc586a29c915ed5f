"""The configured catalog at read: each property's column, the kinds of value it holds, and where the rest goes.

A value lands in its column only when its JSON kind is one the column declares; any other (text in an integer
column, an integer beyond 64 bits, text that is no timestamp in a timestamp column) goes to `other_properties` under
its Mixpanel name, exact, counted, with one WARN per property. A property the user deselected never comes out; one
that is new since discover goes to `other_properties`. Python because the manifest cannot read the configured
catalog or route a value by its kind.
"""

import json
import logging
import threading
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from airbyte_cdk.models import ConfiguredAirbyteCatalog

from source_mixpanel import sync_run
from source_mixpanel.failures import config_error
from source_mixpanel.properties.kinds import INT64_MAX, INT64_MIN, is_datetime
from source_mixpanel.properties.names import OTHER_PROPERTIES, WITH_COLUMNS, PropertyNames

logger = logging.getLogger("airbyte")

_NONE = type(None)
_ANY: FrozenSet[type] = frozenset((_NONE, bool, int, float, str, dict, list))
# The Python types each JSON schema type admits; a bool is never an integer here (type() is exact).
_JSON_KINDS: Dict[str, FrozenSet[type]] = {
    "null": frozenset((_NONE,)), "integer": frozenset((int,)), "number": frozenset((int, float)),
    "boolean": frozenset((bool,)), "string": frozenset((str,)), "object": frozenset((dict,)), "array": frozenset((list,)),
}
# A property's column is left out of the record (deselected); never a str, so no column can be named so.
_DESELECTED = object()


def configure(catalog: Optional[ConfiguredAirbyteCatalog]) -> None:
    """Takes the run's configured catalog (SourceMixpanel.read), before any record is shaped: the JSON schemas by
    stream; none where the run has no catalog (check, discover) or the stream's schema lists no properties (a
    hand-written `{}`): those streams stay untyped."""
    run = sync_run.current()
    with run.catalog_lock:
        run.catalog_schemas = None if catalog is None else {
            configured.stream.name: configured.stream.json_schema or {} for configured in catalog.streams}
        run.stream_columns.clear()


def stream_columns(stream: str, names: PropertyNames, keep_new: bool = True,
                   computed: Iterable[str] = ()) -> "StreamColumns":
    """The one StreamColumns of a stream for this run. `computed` columns are replaced after shaping (the export's
    `time`), so their raw value is not judged."""
    key, run = (stream, id(names)), sync_run.current()
    with run.catalog_lock:
        columns = run.stream_columns.get(key)
        if columns is None:
            schema = (run.catalog_schemas or {}).get(stream)
            columns = run.stream_columns[key] = StreamColumns(stream, names, schema, keep_new, tuple(computed))
        return columns


class StreamColumns:
    """Shapes one stream's records: each property to its column when its value fits, to OTHER_PROPERTIES
    otherwise; deselected properties out."""

    def __init__(self, stream: str, names: PropertyNames, schema: Optional[Mapping[str, Any]], keep_new: bool,
                 computed: Tuple[str, ...] = ()) -> None:
        self.stream = stream
        self.kind = names.kind
        declared = (schema or {}).get("properties") or {}
        self.typed = bool(declared)
        # Where new properties and misfits go, unless the catalog deselected it (or discover left it out).
        self.other_selected = not self.typed or OTHER_PROPERTIES in declared
        self.keep_new = keep_new and self.other_selected
        with_columns = (declared.get(OTHER_PROPERTIES) or {}).get(WITH_COLUMNS)
        # Names that had a column at discover: one the catalog lacks was deselected. A catalog from before the list
        # was written counts every name the run discovered.
        had_columns = set(names.columns) if with_columns is None else set(with_columns)
        self.columns: Dict[str, Any] = {}
        self.fits: Dict[str, FrozenSet[type]] = {}
        self.timestamps: List[str] = []  # names whose column is a timestamp without timezone: text there must be one
        self.integers: set = set()  # names whose column holds integers of 64 bits
        self.deselected: List[str] = []
        for raw, column in names.columns.items():
            if not self.typed or column in computed:
                self.columns[raw], self.fits[raw] = column, _ANY
            elif column in declared:
                self.columns[raw], self.fits[raw] = column, _kinds(declared[column])
                if _is_datetime_schema(declared[column]):
                    self.timestamps.append(raw)
                if int in self.fits[raw] and float not in self.fits[raw]:
                    self.integers.add(raw)
            elif raw in had_columns:
                self.columns[raw], self.fits[raw] = _DESELECTED, _ANY
                self.deselected.append(raw)
        self._lock = threading.Lock()
        self.misfits: Dict[str, int] = {}
        self._dropped: set = set()
        if self.deselected:
            one = len(self.deselected) == 1
            logger.info(f"Stream {stream}: {len(self.deselected):,} propert{'y' if one else 'ies'} deselected in the catalog "
                        f"{'is' if one else 'are'} left out of its records ({', '.join(sorted(self.deselected)[:10])}"
                        f"{', ...' if len(self.deselected) > 10 else ''}).")

    def shape(self, properties: Mapping[str, Any], record: Dict[str, Any], wide: bool = False) -> None:
        """Puts each property into its column, OTHER_PROPERTIES or nowhere. `wide`: the record may hold an integer
        of 19 digits or more, which may not fit a 64-bit column. Hot path: one comprehension for the common record."""
        if not (wide and self.integers):
            columns, fits = self.columns, self.fits
            try:  # with no type to judge, no filter: 0.6 us a record less (18 properties)
                placed = ({columns[name]: value for name, value in properties.items() if type(value) in fits[name]}
                          if self.typed else {columns[name]: value for name, value in properties.items()})
            except KeyError:  # a property new since discover
                pass
            else:
                if len(placed) == len(properties):
                    for name in self.timestamps:
                        value = properties.get(name)
                        if type(value) is str and not is_datetime(value):
                            break
                    else:
                        placed.pop(_DESELECTED, None)
                        record.update(placed)
                        return
        self._place(properties, record)

    def _place(self, properties: Mapping[str, Any], record: Dict[str, Any]) -> None:
        """The careful path: a property new since discover, a value that does not fit, a long integer."""
        other = None
        for name, value in properties.items():
            column = self.columns.get(name)
            if column is _DESELECTED:
                continue
            if column is not None and self._fits(name, value):
                record[column] = value
            elif column is None and not self.keep_new:
                self._drop(name)
            else:
                if column is not None:
                    self._misfit(name, value)
                if other is None:
                    other = record.setdefault(OTHER_PROPERTIES, {})
                other[name] = value

    def _fits(self, name: str, value: Any) -> bool:
        if type(value) not in self.fits[name]:
            return False
        if type(value) is int and name in self.integers:
            return INT64_MIN <= value <= INT64_MAX
        if type(value) is str and name in self.timestamps:
            return is_datetime(value)
        return True

    def _misfit(self, name: str, value: Any) -> None:
        if not self.other_selected:
            message = (f"Stream {self.stream}: the {self.kind} property {name!r} holds {kind_met(value)} where the "
                       f"catalog declares {declared_kind(self.fits[name], name in self.timestamps)}, and "
                       f"the catalog has no {OTHER_PROPERTIES}, where such a value goes: select {OTHER_PROPERTIES} "
                       f"(select_properties_by_default true adds it) or refresh the source schema.")
            raise config_error(message)
        with self._lock:
            first = name not in self.misfits
            self.misfits[name] = self.misfits.get(name, 0) + 1
        if first:
            logger.warning(f"The {self.kind} property {name!r} holds {kind_met(value)} where the catalog declares "
                           f"{declared_kind(self.fits[name], name in self.timestamps)}: such values go to "
                           f"{OTHER_PROPERTIES} under {name!r}, exact; the next schema refresh widens the column.")

    def _drop(self, name: str) -> None:
        with self._lock:
            if name in self._dropped:
                return
            self._dropped.add(name)
        why = f"the catalog has no {OTHER_PROPERTIES}" if not self.other_selected else "select_properties_by_default is false"
        logger.info(f"Dropping {self.kind} property {name!r} from {self.stream} records: discovery did not list it and {why}.")


def misfit_summary(stream: str) -> str:
    """`; N values of M properties went to other_properties ...` for the stream's completion line, or ''."""
    run = sync_run.current()
    with run.catalog_lock:
        counts = [count for (name, _), columns in run.stream_columns.items() if name == stream
                  for count in columns.misfits.values()]
    if not counts:
        return ""
    return (f"; {sum(counts):,} values of {len(counts)} propert{'y' if len(counts) == 1 else 'ies'} did not fit their "
            f"columns' types and went to {OTHER_PROPERTIES}")


def _kinds(schema: Mapping[str, Any]) -> FrozenSet[type]:
    """The Python types a column's JSON schema admits: every type when it names none (a property of two kinds)."""
    declared = schema.get("type")
    if declared is None:
        return _ANY
    kinds = {_NONE}
    for name in [declared] if isinstance(declared, str) else declared:
        kinds |= _JSON_KINDS.get(name, _ANY)
    return frozenset(kinds)


def _is_datetime_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("format") == "date-time" and schema.get("airbyte_type") == "timestamp_without_timezone"


def kind_met(value: Any) -> str:
    """A value's kind in words, never the value itself (it is personal data)."""
    if type(value) is int:
        return "an integer beyond 64 bits" if not INT64_MIN <= value <= INT64_MAX else "an integer"
    return {str: "text", bool: "true/false", float: "a number with a fraction", dict: "an object", list: "a list"}.get(type(value), "a value")


def declared_kind(kinds: FrozenSet[type], timestamp: bool) -> str:
    if timestamp:
        return "a timestamp without offset"
    named = kinds - {_NONE}
    if named == {int}:
        return "an integer of 64 bits"
    return {frozenset((int, float)): "a number", frozenset((bool,)): "true/false", frozenset((str,)): "text",
            frozenset((dict,)): "an object", frozenset((list,)): "a list"}.get(frozenset(named), json.dumps(sorted(t.__name__ for t in named)))
