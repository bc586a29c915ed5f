"""Mixpanel property names -> column names: one rule for events and profiles."""

import logging
import threading
from typing import Dict, Iterable, Optional

logger = logging.getLogger("airbyte")


class PropertyNames:
    """One rename map for a whole sync, so a property always lands in the same column.

    Python because the rule needs the whole discovered list: names lose their leading `$`, and discovered names
    that then collide case-insensitively (`$username`, `userName`) are told apart by a `_` prefix on the later
    one. `first` names are assigned before the sorted rest (the fields a stream promises). A name discovery did
    not list gets the same column in every sync whatever order records come in.
    """

    def __init__(self, discovered: Iterable[str], first: Iterable[str] = (), reserved: Iterable[str] = (),
                 keep_undiscovered: bool = True, what: str = "properties") -> None:
        self._columns: Dict[str, Optional[str]] = {}
        self._taken = {name.lower() for name in reserved}
        self._keep_undiscovered = keep_undiscovered
        self._what = what
        self._lock = threading.Lock()
        discovered = set(discovered)
        for raw in [name for name in first if name in discovered] + sorted(discovered - set(first)):
            column = self._free(raw)
            self._taken.add(column.lower())
            self._columns[raw] = column
        self.discovered = {raw: column for raw, column in self._columns.items() if column is not None}
        self._undiscovered_columns = set()

    def _free(self, raw: str) -> str:
        """The name without its `$`, with `_` in front until no discovered or reserved column has it."""
        column = raw[1:] if raw.startswith("$") else raw
        while column.lower() in self._taken:
            column = "_" + column
        return column

    def column(self, raw: str) -> Optional[str]:
        """The column for a name; None when it is to be dropped. Hot path: one dict lookup."""
        try:
            return self._columns[raw]
        except KeyError:
            return self._undiscovered(raw)

    def _undiscovered(self, raw: str) -> Optional[str]:
        # Kept apart from discovered names only, so that its column does not depend on which undiscovered name a
        # sync happened to meet first; names that differ in case keep their case. Only `$x` beside `x`, both
        # undiscovered, would land in one column: the second met then gets a `_`.
        with self._lock:
            if raw in self._columns:
                return self._columns[raw]
            if self._keep_undiscovered:
                column = self._free(raw)
                while column in self._undiscovered_columns:
                    column = "_" + column
                self._undiscovered_columns.add(column)
                self._columns[raw] = column
                return column
            self._columns[raw] = None
        logger.info(
            f"Dropping {self._what} {raw!r} from records: discovery did not list it and select_properties_by_default is false."
        )
        return None
