"""The kind of a property value, the column type a set of kinds earns, and that type as a JSON schema.

Python because the rules read the values themselves (an integer's size, a text's shape); the read side checks
each value with the same kind_of, so discover and read judge a value alike. docs/columns.md states the rules.
"""

import re
from typing import Any, Iterable, Mapping, Optional

# Mixpanel writes datetime properties as ISO local times without an offset, to the second, maybe with a fraction.
_DATETIME = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def is_datetime(text: str) -> bool:
    """Whether text is a time as Mixpanel writes datetime properties: `YYYY-MM-DDTHH:MM:SS[.fff]`, no offset."""
    return _DATETIME.fullmatch(text) is not None


def kind_of(value: Any) -> Optional[str]:
    """A value's kind: integer (within signed 64 bits), wide_integer, number, boolean, datetime, string, object,
    array; None for null."""
    kind = type(value)
    if kind is str:
        return "datetime" if _DATETIME.fullmatch(value) else "string"
    if kind is int:
        return "integer" if INT64_MIN <= value <= INT64_MAX else "wide_integer"
    return _KINDS.get(kind)


_KINDS = {float: "number", bool: "boolean", dict: "object", list: "array"}

_NUMERIC = frozenset({"integer", "wide_integer", "number"})
_TEXT = frozenset({"datetime", "string"})


def column_kind(kinds: Iterable[Optional[str]]) -> Optional[str]:
    """The column kind the kinds seen earn: integer only when every number is a 64-bit integer, number for any other
    mix of numbers, datetime only when every text is one, string for other text, boolean, object, array; None
    (no type) for no kind at all, or for kinds of two families (a number and a text, ...). Null adds nothing."""
    seen = set(kinds) - {None}
    if not seen:
        return None
    if seen <= _NUMERIC:
        return "integer" if seen == {"integer"} else "number"
    if seen <= _TEXT:
        return "datetime" if seen == {"datetime"} else "string"
    return seen.pop() if len(seen) == 1 else None


# The kinds of values a column of each kind holds (its declared type fits them).
FITS: Mapping[str, frozenset] = {
    "integer": frozenset({"integer"}),
    "number": _NUMERIC,
    "boolean": frozenset({"boolean"}),
    "datetime": frozenset({"datetime"}),
    "string": _TEXT,
    "object": frozenset({"object"}),
    "array": frozenset({"array"}),
}

# A column kind as the JSON schema of its column; every column may be null (a property an event lacks).
COLUMN_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "integer": {"type": ["null", "integer"]},
    "number": {"type": ["null", "number"]},
    "boolean": {"type": ["null", "boolean"]},
    "string": {"type": ["null", "string"]},
    "datetime": {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
    "object": {"type": ["null", "object"]},
    "array": {"type": ["null", "array"]},
}
