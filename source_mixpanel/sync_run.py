"""The state of one run, kept in one place: what its components ask once, count, and have said, begun with the source.

Python because the CDK builds each component from the manifest with the config alone: nothing declared reaches the
source, so the run's shared state is one object here, replaced by every SourceMixpanel built (a process that builds
several sources, as the CDK's standard tests do, starts each run afresh). Standard library only: every layer reads it.
"""

import threading
import time
from typing import Any, Dict, List, Optional, Tuple


class SyncRun:
    """What one run shares between its components and threads; each part names the module that reads and writes it."""

    def __init__(self) -> None:
        # budget.family: the quiet clock, from the run's start or its last RECORD or STATE (Airbyte's silence limit).
        self.started = time.monotonic()
        self.last_sign_of_life = float("-inf")  # none yet
        # properties.discovery: each endpoint's answer, each kind's rename map, the event property kinds; asked once.
        self.discovery_lock = threading.Lock()
        self.discovery_answers: Dict[Tuple[str, str], Any] = {}
        self.property_names: Dict[Tuple[str, str], Any] = {}
        self.event_kinds: Dict[str, Dict[str, str]] = {}
        self.types_wanted = threading.Event()  # set by discover only
        # properties.columns: the configured catalog's schemas by stream, each stream's StreamColumns (misfit counts).
        self.catalog_lock = threading.Lock()
        self.catalog_schemas: Optional[Dict[str, Any]] = None
        self.stream_columns: Dict[Tuple[str, int], Any] = {}
        # export.history: the export's read history, begun by the source with the saved state.
        self.export: Optional[Any] = None
        self._said: set = set()
        self._said_lock = threading.Lock()

    def first_time(self, *what: Any) -> bool:
        """True once a run for each `what`: a once-only warning, the engage query restarted after an expired session."""
        with self._said_lock:
            if what in self._said:
                return False
            self._said.add(what)
            return True


_current: List[SyncRun] = []


def begin() -> SyncRun:
    """A new run, the one every component reads from now on (SourceMixpanel.__init__)."""
    _current[:] = [SyncRun()]
    return _current[0]


def current() -> SyncRun:
    """The run begun by the last source built; components used outside a source (unit tests) share one of their own."""
    if not _current:
        begin()
    return _current[0]
