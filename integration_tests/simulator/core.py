"""MixpanelSimulator: its settings, lifecycle, request log and the project's calendar; the rest comes from mixins."""
from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time

from .common import API_SECRET, SA_SECRET, parse_day
from .events import EventData
from .faults import Faults
from .limits import FAMILIES, Limits
from .profiles import ProfileData
from .reports import ReportData
from .server import Handler, Server
from .switches import SWITCHES


class MixpanelSimulator(EventData, ProfileData, ReportData, Faults, Limits):
    """Fake Mixpanel API; see the package docstring. Attributes may be changed while it runs."""

    _CONFIG_TYPES = {name: switch.kind for name, switch in SWITCHES.items()}  # what configure() accepts

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **switches) -> None:
        """Any switch of switches.SWITCHES by name; the others keep their defaults."""
        unknown = sorted(set(switches) - set(SWITCHES))
        if unknown:
            raise TypeError(f"MixpanelSimulator() got an unexpected keyword argument {unknown[0]!r}")
        self.host = host
        self.port = port
        self.extra_profiles: list[dict] = []  # engage profiles beyond the generated ones (faults.py)
        self.true_times: dict[str, int] = {}
        self._late_received: dict[str, tuple[int, int]] = {}
        self._answers: list[dict] = []
        self._injections: list[tuple] = []
        self._expiring: set = set()

        self.requests: list[dict] = []
        self._admitted: dict[str, list[float]] = {family: [] for family in FAMILIES}
        self._in_flight: dict[str, int] = {family: 0 for family in FAMILIES}
        self._most_in_flight: dict[str, int] = {family: 0 for family in FAMILIES}
        self._spent_until: dict[str, float] = {}
        self._spent_from_first: dict[str, tuple] = {}  # spend_budget(from_first_request=True), until that request
        self._attempts: dict[str, int] = {}
        self._lock = threading.RLock()
        self._sessions: dict[str, list] = {}
        self._session_counter = 0
        self._session_last_page: dict[str, float] = {}
        self._memo: dict = {}
        self._body_cache: dict = {}
        self._body_cache_bytes = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set = set()
        self.url: str | None = None
        # The switches last, and those the mixins keep behind a property (late_events) after the others they read.
        for name in sorted(SWITCHES, key=lambda name: isinstance(getattr(type(self), name, None), property)):
            switch = SWITCHES[name]
            setattr(self, name, switch.value(switches.get(name, switch.default)))

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "MixpanelSimulator":
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server = Server((self.host, self.port), Handler)
        server.sim = self
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="mixpanel-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "MixpanelSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- request log
    def reset_log(self) -> None:
        """Forget logged requests, attempt counts (so faults apply again) and the budgets' windows."""
        with self._lock:
            self.requests.clear()
            self._attempts.clear()
            self._admitted = {family: [] for family in FAMILIES}
            self._most_in_flight = {family: 0 for family in FAMILIES}
            self._spent_until, self._spent_from_first = {}, {}

    def requests_to(self, path_suffix: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith(path_suffix)]

    def _log_arrival(self, method: str, path: str, params: dict, auth, headers: dict) -> dict:
        params = {k: ("<redacted>" if v in (SA_SECRET, API_SECRET) else v) for k, v in params.items()}
        key = json.dumps([method, path, params], sort_keys=True, default=str)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            entry = {"method": method, "path": path, "params": params, "auth": auth, "headers": headers, "status": None,
                     "attempt": attempt, "time": time.monotonic()}
            self.requests.append(entry)
        return entry

    # ---------------------------------------------------------------- config
    def config(self) -> dict:
        out = {}
        for name in self._CONFIG_TYPES:
            value = getattr(self, name)
            out[name] = sorted(value) if isinstance(value, set) else value
        return out

    def configure(self, **changes) -> None:
        """Set attributes by name, with the type checks the control API uses."""
        for name, value in changes.items():
            if name not in self._CONFIG_TYPES:
                raise ValueError(f"unknown setting {name!r}")
            kind = self._CONFIG_TYPES[name]
            if kind is set:
                if not isinstance(value, (list, tuple, set)):
                    raise ValueError(f"{name} must be a list")
                value = set(value)
            elif name == "imported_events":
                try:
                    value = {str(day): {"share": float(v["share"]), "hours": float(v["hours"])} for day, v in value.items()}
                except (AttributeError, KeyError, TypeError, ValueError):
                    raise ValueError(f'{name} must be an object of {{"share": S, "hours": H}} by day') from None
            elif kind is dict:
                if not isinstance(value, dict):
                    raise ValueError(f"{name} must be an object")
                value = {str(k): v if name == "odd_date_keys" else int(v) for k, v in value.items()}
            elif (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
                raise ValueError(f"{name} has the wrong type")
            if name == "property_kinds" and value not in ("plain", "hard"):
                raise ValueError('property_kinds must be "plain" or "hard"')
            if name in ("first_event_day", "today", "kind_change_from") and value is not None and parse_day(value) is None:
                raise ValueError(f"{name} must be YYYY-MM-DD")
            setattr(self, name, value)

    # ---------------------------------------------------------------- time
    def today_date(self) -> dt.date:
        if self.today:
            return dt.date.fromisoformat(self.today)
        tz: dt.tzinfo = dt.timezone.utc
        if self.timezone and self.timezone.upper() != "UTC":
            try:
                from zoneinfo import ZoneInfo

                tz = ZoneInfo(self.timezone)
            except Exception:  # no tz database: fall back to UTC
                tz = dt.timezone.utc
        return dt.datetime.now(tz).date()

    def _first_day(self) -> dt.date:
        return dt.date.fromisoformat(self.first_event_day)

    def _clock(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone) if self.timezone and self.timezone.upper() != "UTC" else dt.timezone.utc
