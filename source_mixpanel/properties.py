"""Mixpanel property names -> column names: one rule for events and profiles."""

import logging
import threading
from typing import Dict, Iterable, Optional

logger = logging.getLogger("airbyte")


class PropertyNames:
    """One rename map for a whole sync, so a property always lands in the same column.

    Python because the rule needs the whole discovered list: names lose their leading `$`, and names
    that then collide case-insensitively (`$username`, `userName`) are told apart by a `_` prefix on
    the later one. `first` names are assigned before the sorted rest (the fields a stream promises).
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
            self._assign(raw)
        self.discovered = {raw: column for raw, column in self._columns.items() if column is not None}

    def _assign(self, raw: str) -> str:
        column = raw[1:] if raw.startswith("$") else raw
        while column.lower() in self._taken:
            column = "_" + column
        self._taken.add(column.lower())
        self._columns[raw] = column
        return column

    def column(self, raw: str) -> Optional[str]:
        """The column for a name; None when it is to be dropped. Hot path: one dict lookup."""
        try:
            return self._columns[raw]
        except KeyError:
            return self._undiscovered(raw)

    def _undiscovered(self, raw: str) -> Optional[str]:
        with self._lock:
            if raw in self._columns:
                return self._columns[raw]
            if self._keep_undiscovered:
                return self._assign(raw)
            self._columns[raw] = None
        logger.info(
            f"Dropping {self._what} {raw!r} from records: discovery did not list it and select_properties_by_default is false."
        )
        return None
