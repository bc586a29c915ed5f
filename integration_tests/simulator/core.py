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
from .profiles import COHORTS, GROUP_KEYS, ProfileData
from .reports import FUNNELS, ReportData
from .server import Handler, Server


class MixpanelSimulator(EventData, ProfileData, ReportData, Faults, Limits):
    """Fake Mixpanel API; see the package docstring. Attributes may be changed while it runs."""

    _CONFIG_TYPES = {
        "seed": int,
        "events_per_day": int,
        "first_event_day": str,
        "timezone": str,
        "today": (str, type(None)),
        "n_profiles": int,
        "max_page_size": int,
        "gzip": bool,
        "plan_refuses": set,
        "retired": dict,
        "auth_error_style": str,
        "faults": set,
        "fault_attempts": int,
        "stall_seconds": (int, float),
        "fault_retry_after": (int, str, type(None)),
        "cache_bodies": bool,
        "n_funnels": int,
        "n_cohorts": int,
        "n_groups": int,
        "insights_odd_leaves": list,
        "insights_without_dates": set,
        "odd_group_ids": list,
        "odd_date_keys": dict,
        "rate_limits": bool,
        "rate_window_seconds": (int, float),
        "query_per_window": int,
        "query_concurrent": int,
        "query_latency": (int, float),
        "others_in_flight": int,
        "export_per_window": int,
        "export_per_second": int,
        "export_concurrent": int,
        "rate_retry_after": (bool, str),
        "engage_page_size_on_page_zero_only": bool,
        "expire_next_sessions": int,
        "engage_session_seconds": (int, float, type(None)),
        "legacy_times": bool,
        "imported_events": dict,
        "late_events": dict,
        "late_received_ago": (int, float),
        "date_ahead": (int, float),
        "kind_change_from": (str, type(None)),
        "property_kinds": str,
        "extra_event_properties": int,
        "lexicon_refuses": (int, type(None)),
        "strict_contract": bool,
    }

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        events_per_day: int = 30,
        first_event_day: str = "2024-01-01",
        timezone: str = "UTC",
        today: str | None = None,
        n_profiles: int = 2500,
        max_page_size: int = 1000,
        gzip: bool = True,
        plan_refuses=(),
        retired=None,
        auth_error_style: str = "401",
        faults=(),
        fault_attempts: int = 1,
        stall_seconds: float = 30,
        fault_retry_after: int | str | None = None,
        cache_bodies: bool = False,
        n_funnels: int = len(FUNNELS),
        n_cohorts: int = len(COHORTS),
        n_groups: int = GROUP_KEYS[1][1],
        insights_odd_leaves=(),
        insights_without_dates=(),
        odd_group_ids=(),
        odd_date_keys=None,
        rate_limits: bool = False,
        rate_window_seconds: float = 3600,
        query_per_window: int = 60,
        query_concurrent: int = 5,
        query_latency: float = 0,
        others_in_flight: int = 0,
        export_per_window: int = 60,
        export_per_second: int = 3,
        export_concurrent: int = 100,
        rate_retry_after: bool | str = False,
        engage_page_size_on_page_zero_only: bool = False,
        expire_next_sessions: int = 0,
        engage_session_seconds: float | None = None,
        legacy_times: bool = False,
        imported_events=None,
        late_events=None,
        late_received_ago: float = 0,
        date_ahead: float = 0,
        kind_change_from: str | None = None,
        property_kinds: str = "plain",
        extra_event_properties: int = 0,
        lexicon_refuses: int | None = None,
        strict_contract: bool = False,
    ):
        self.host = host
        self.port = port
        self.seed = seed
        self.events_per_day = events_per_day
        self.first_event_day = first_event_day
        self.timezone = timezone
        self.today = today
        self.n_profiles = n_profiles
        self.max_page_size = max_page_size
        self.gzip = gzip
        self.plan_refuses = set(plan_refuses)
        self.retired = dict(retired or {})
        self.auth_error_style = auth_error_style
        self.faults = set(faults)
        self.fault_attempts = fault_attempts
        self.stall_seconds = stall_seconds
        # Seconds sent as Retry-After on a faulty or injected export answer, so a test's retries come quickly.
        self.fault_retry_after = fault_retry_after
        self.cache_bodies = cache_bodies
        self.n_funnels = n_funnels
        self.n_cohorts = n_cohorts
        self.n_groups = n_groups
        # Odd answers of saved reports, group profiles, funnels and revenue: see insights_report(), group_profiles()
        # and the funnels and revenue endpoints.
        self.insights_odd_leaves = list(insights_odd_leaves)
        self.insights_without_dates = set(insights_without_dates)
        self.odd_group_ids = list(odd_group_ids)
        self.odd_date_keys = dict(odd_date_keys or {})
        # Mixpanel's budgets (off unless rate_limits): see limits.py.
        self.rate_limits = rate_limits
        self.rate_window_seconds = rate_window_seconds
        self.query_per_window = query_per_window
        self.query_concurrent = query_concurrent
        self.query_latency = query_latency  # seconds a query runs (and counts as in flight)
        self.others_in_flight = others_in_flight  # queries other clients of the project run right now
        self.export_per_window = export_per_window
        self.export_per_second = export_per_second
        self.export_concurrent = export_concurrent
        self.rate_retry_after = rate_retry_after
        # Hostile answers, for the adversarial tests: see answer(), inject_export_lines() and extra_profiles.
        self.engage_page_size_on_page_zero_only = engage_page_size_on_page_zero_only  # later pages omit page_size
        self.expire_next_sessions = expire_next_sessions  # this many new engage sessions expire before page 1
        self.engage_session_seconds = engage_session_seconds  # a session not asked for a page this long expires
        self.extra_profiles: list[dict] = []  # engage profiles beyond the generated ones
        # A project created before 2023: days are local days and `time` is the local wall time (true instants in
        # true_times). Late events: {day: count} events of that day that reach Mixpanel when the switch is set, or
        # late_received_ago seconds before it and are shown in the export only from then.
        self.legacy_times = legacy_times
        self.late_received_ago = late_received_ago
        # Seconds the Date header of every answer runs ahead of the clock that stamps mp_processing_time_ms.
        self.date_ahead = date_ahead
        # Imported events: {day: {"share": s, "hours": h}}: that share of the day's events reached Mixpanel h hours late.
        self.imported_events = dict(imported_events or {})
        # Property kinds (docs/columns.md): build_number turns from integer to text on kind_change_from (None: the
        # Monday of today's week); "hard" gives four properties a rare value of another kind; extra_event_properties
        # adds that many properties to every event; lexicon_refuses answers the Lexicon schemas with that status.
        self.kind_change_from = kind_change_from
        self.property_kinds = property_kinds
        self.extra_event_properties = extra_event_properties
        self.lexicon_refuses = lexicon_refuses
        # Refuse the connector's transitional departures too (contract.TRANSITIONAL: cohorts/list by GET, an export
        # Accept-Encoding other than gzip); off until the connector keeps to the reference there.
        self.strict_contract = strict_contract
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
        self.late_events = late_events or {}
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
