"""Mixpanel property names -> column names: one rule for events and profiles."""

import re
import zlib
from typing import Dict, Iterable

from anyascii import anyascii

_NON_ALNUM = re.compile(r"[^a-z0-9]")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def readable(raw: str) -> str:
    """A name as a column before collisions: without its `$`; in ASCII letters when it had others (`ключ` becomes
    `klyuch`, `東京` `DongJing`), so that warehouses and PyAirbyte can name it; `property_<crc32>` when nothing of
    it is a letter or digit even then (`!!!`)."""
    name = raw[1:] if raw.startswith("$") else raw
    if not name.isascii():
        name = anyascii(name)
    return name if _ALNUM.search(name) else f"property_{zlib.crc32(raw.encode()):08x}"


def collision_key(column: str) -> str:
    """How destinations and PyAirbyte see a column: lower case, every other character an underscore, never a
    leading digit. Two columns with one key would land in one place downstream."""
    key = _NON_ALNUM.sub("_", column.lower())
    return "_" + key if key[:1].isdigit() else key


# Where the properties that discovery did not list go, under their Mixpanel names: a column of its own, so that
# none is lost where only declared columns are kept (PyAirbyte, warehouses) and no column depends on the order
# in which a sync meets them.
OTHER_PROPERTIES = "other_properties"
# On OTHER_PROPERTIES' schema at discover: the Mixpanel names that had a column then, so that at read a column the
# configured catalog lacks tells a deselected property (left out) from one new since (kept in OTHER_PROPERTIES).
WITH_COLUMNS = "x-properties-with-columns"


class PropertyNames:
    """One rename map for a whole sync, so a property always lands in the same column.

    Python because the rule needs the whole discovered list: names lose their leading `$` (and letters that are
    not ASCII, see readable()), and discovered names that would then meet downstream (`$username` and
    `userName`, `Page Title` and `page_title`: one collision_key) are told apart by a `_` prefix on the later
    one. `first` names (the fields a stream promises) get their columns first, discovered or not; the other
    discovered names follow, sorted. Which value goes where at read is properties.columns.StreamColumns' business.
    """

    def __init__(self, discovered: Iterable[str], first: Iterable[str] = (), reserved: Iterable[str] = (),
                 kind: str = "event") -> None:
        self.kind = kind
        taken = {collision_key(name) for name in (*reserved, OTHER_PROPERTIES)}
        self.columns: Dict[str, str] = {}
        first = list(dict.fromkeys(first))
        for raw in first + sorted(set(discovered) - set(first)):
            column = readable(raw)
            while collision_key(column) in taken:
                column = "_" + column
            taken.add(collision_key(column))
            self.columns[raw] = column
