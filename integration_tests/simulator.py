#!/usr/bin/env python3
"""A local fake Mixpanel read API for the connector's integration tests.

One ThreadingHTTPServer on 127.0.0.1 answers for every Mixpanel host (query, export and app), so
the connector is pointed at it with ``base_url`` and ``export_base_url`` both set to ``sim.url``.
Behaviour follows Mixpanel's read API as the README describes it: paths, auth, body shapes, error
bodies, the export faults seen in the wild (split records, ``terminated early``, cut and stalled
bodies) and, when ``rate_limits`` is on, Mixpanel's per-project budgets: a moving window per family
of endpoints (query 60, export 60; ``rate_window_seconds`` shortens Mixpanel's hour for tests),
queries in flight (5), exports per second (3), and a budget "spent by another client"
(``spend_budget``). Over a limit it answers 429 with Mixpanel's body, with ``Retry-After`` when
``rate_retry_after`` is on. Refused requests do not count against the window.

Everything served is deterministic from ``seed`` (and the day, profile or funnel it describes), and
the same values are available in process as ground truth (``export_truth``, ``profiles``, ...) or
over HTTP under ``/_sim/`` when the simulator runs in another process.

Standard library only; runs by hand with ``python integration_tests/simulator.py --port 8123``.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import calendar
import datetime as dt
import json
import random
import re
import signal
import math
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

SA_USERNAME = "sim-reader.1a2b3c.mp-service-account"
SA_SECRET = "sim-sa-secret-9f8e7d6c"
PROJECT_ID = 2526451
API_SECRET = "sim-project-secret-5b4a3c2d"

AUTH_ERROR = "Unable to authenticate request"
PLAN_ERROR = "Your plan does not allow API calls. Upgrade at mixpanel.com/pricing"
GZIP_MIN_BYTES = 1400
EXPORT_LIMIT_MAX = 100000
EVENT_DISTINCT_IDS = 3000  # events draw their distinct_id from this many ids (profiles use a prefix)

FAULTS = ("split_lines", "terminated_early", "cut", "stall", "5xx", "429", "gzip_unfinished", "close_delimited")
FAMILIES = ("cohorts", "engage", "funnels", "revenue", "annotations", "events", "insights", "all_query")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WHERE_RE = re.compile(
    r'^\s*properties\s*\[\s*"\$last_seen"\s*\]\s*>=\s*"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})"\s*$'
)
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _parse_day(value) -> dt.date | None:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _days(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _fmt_dt(value: dt.datetime, sep: str = "T") -> str:
    return value.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


def _most_within(times: list, span: float) -> int:
    """The most of the sorted `times` that fall within any span of `span` seconds (a moving window)."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - span:
            first += 1
        most = max(most, last - first + 1)
    return most


# --------------------------------------------------------------------------------------------
# Event templates. Every export line is a fixed prefix for the event name, four per-event core
# values, and two pre-encoded property fragments (one "common", one per event name), so
# generating a line is one f-string, not a json.dumps.
# --------------------------------------------------------------------------------------------
EVENT_NAMES = ("Page View", "Signed up", "Purchase", "Ünïcode ✓ event", "Logged in")
_NAME_SLOTS = (0,) * 10 + (1,) * 3 + (2,) * 3 + (3,) * 2 + (4,) * 2  # weights out of 20

_BROWSERS = ("Chrome", "Firefox", "Safari", "Mobile Safari", "Microsoft Edge")
_OSES = ("Mac OS X", "Windows", "iOS", "Android", "Linux")
_CITIES = ("Zürich", "東京", "São Paulo", "Berlin", "Kraków", "Reykjavík", None)
_LIBS = ("web", "iphone", "android", "python")

# Shared by all event names: the awkward values.
_FLAVORS = (
    {},
    {"$username": "zoë", "userName": "Zoë Quinn"},  # collide once the "$" is dropped
    {"$username": "bob_42"},
    {"userName": "mallory"},
    {"comment": "line one\nline two", "emoji": "🎉🚀👍🏽"},
    {"plan": {"tier": "pro", "seats": 3}, "mixed_list": ["a", 1, True]},
    {"is_trial": True, "opted_out": False, "referrer": None},
    {"big_number": 9007199254740993, "ratio": 0.125, "retries": 0, "delta": -3.5},
    {"deep": {"a": {"b": {"c": [1, {"d": None}]}}}, "empty_obj": {}, "empty_list": []},
    {"quote": 'She said "hi" & left <b>', "utm_source": "newsletter"},
)
_BY_NAME = {
    "Page View": ({"page_title": "Café – Menu"}, {"page_title": "Home"}, {}),
    "Signed up": ({"signup_method": "email"}, {"signup_method": "google", "invited": True}),
    "Purchase": (
        {"price": 19.99, "currency": "EUR", "quantity": 2},
        {"price": 5, "currency": "USD", "quantity": 1},
        {"price": 1234.5, "currency": "JPY", "quantity": 10, "coupon": None},
    ),
    "Ünïcode ✓ event": ({"ключ": "значение", "키": "값 ✓"}, {"ключ": "ещё"}),
    "Logged in": ({"method": "sso"}, {"method": "password", "attempts": 3}),
}
_CORE_PROPS = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")
RARE_PROP = "$rare_prop"
_RARE_FRAGMENT = ',"$rare_prop":"only in a few events"'


def _frag(props: dict) -> str:
    """A dict's members as a JSON fragment that starts with a comma ('' for an empty dict)."""
    text = json.dumps(props, ensure_ascii=False, separators=(",", ":"))
    return "" if text == "{}" else "," + text[1:-1]


def _common_props(k: int) -> dict:
    props = {
        "$browser": _BROWSERS[k % 5],
        "$os": _OSES[(k // 5) % 5],
        "$city": _CITIES[k % 7],
        "mp_lib": _LIBS[k % 4],
        "$current_url": f"https://shop.example.com/p/{k}?ref=caf%C3%A9",
    }
    if k % 3 == 0:
        props["$screen_width"] = 1440
    if k % 4 == 1:
        props["$lib_version"] = "2.47.0"
    return props


_COMMONS = tuple(_frag(_common_props(k)) for k in range(35))
_PREFIXES = tuple(
    '{"event":%s,"properties":{"time":' % json.dumps(name, ensure_ascii=False) for name in EVENT_NAMES
)
_EXTRAS = tuple(
    tuple(_frag(specific) + _frag(flavor) for specific in _BY_NAME[name] for flavor in _FLAVORS)
    for name in EVENT_NAMES
)


def _event_property_names(event: str | None = None) -> list[str]:
    names = list(_CORE_PROPS)
    for k in range(35):
        names.extend(_common_props(k))
    for flavor in _FLAVORS:
        names.extend(flavor)
    for name in EVENT_NAMES if event is None else [event]:
        for specific in _BY_NAME.get(name, ()):
            names.extend(specific)
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------------------------
# Profiles, cohorts, funnels, annotations
# --------------------------------------------------------------------------------------------
_FIRST_NAMES = ("Zoë", "José", "Ann", "李", "Ólafur", "Mary-Jane", "Søren", "Aïcha")
_LAST_NAMES = ("Núñez", "O'Neil", "雷", "Ångström", "Smith", "Müller")
_PROFILE_CITIES = ("Zürich", "東京", "São Paulo", "Berlin", "Kraków", "Reykjavík", "New York")
_TAGS = ("vip", "beta", "émigré", "🚀", "b2b")

COHORTS = (
    # id, name, description, created, is_visible, members per mille
    (4410, "Power users", "Active on 3+ days a week", "2023-03-19 23:49:51", 1, 500),
    (4411, "Churn risk ⚠️", "", "2023-06-02 08:00:00", 1, 100),
    (4412, "Beta testers", "Hand-picked; tiny", "2024-01-05 12:30:00", 0, 8),
)

FUNNELS = (
    (7509, "Signup funnel", ("Page View", "Signed up")),
    (7510, "Purchase funnel", ("Page View", "Signed up", "Purchase")),
    (7511, "Custom events funnel ✓", ("Logged in", "Purchase")),  # steps carry custom_event fields
)
_CUSTOM_FUNNEL = 7511

# Saved Insights reports: bookmark_id -> (headers, metrics, the values of each breakdown level, date keys). The first
# header names the metric level; each further one a breakdown level, which also holds an `$overall` total.
INSIGHTS_REPORTS = {
    61001: (["$event"], ("Logged in", "Signed up"), (), "day"),
    61002: (["$event", "$browser", "$city", "plan"], ("Purchase", "Page View"),
            (("Chrome", "Safari", "Mobile Safari"), ("東京", "Zürich", "São Paulo", "Kraków"), ("pro", "free")), "day"),
    61003: (["$event"], (), (), "day"),  # a report whose filters match nothing: an empty series
    61004: (["$event", "currency"], ("Purchase", "Ünïcode ✓ event"), (("EUR", "USD", "JPY", "¥ – other"),), "all"),
}
INSIGHTS_DAYS = 7  # the days a saved report shows, from first_event_day
FUNNELS_BOOKMARK = 61098  # a saved funnels report: the Insights query refuses it (every other unknown id is "deleted")

# Group keys (group analytics): data_group_id -> (the group key's property, groups under it; n_groups for the first).
GROUP_KEYS = {1: ("company_id", 350), 2: ("team_id", 40)}
_INDUSTRIES = ("SaaS", "Retail", "Banque & Finance", "Gesundheitswesen", "製造業", None)
_COMPANY_WORDS = ("acme", "société", "東京商事", "umbrella", "initech", "ÆON")


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "datetime" if _DATETIME_RE.match(value) else "string"
    return "null"


def _property_summary(profiles: list) -> dict:
    """What engage/properties answers for these profiles: each property's count and type ("unknown" when it varies)."""
    seen: dict[str, set] = {}
    counts: dict[str, int] = {}
    for profile in profiles:
        for name, value in profile["$properties"].items():
            counts[name] = counts.get(name, 0) + 1
            kind = _type_name(value)
            if kind != "null":
                seen.setdefault(name, set()).add(kind)
    out = {}
    for name in sorted(counts):
        kinds = seen.get(name, set())
        out[name] = {"count": counts[name], "type": kinds.pop() if len(kinds) == 1 else "unknown"}
    return out


def _leaf_sum(tree: dict, key: str):
    """The sum of every number under `key` in a series subtree, its `$overall` totals left out."""
    total = 0
    for name, child in tree.items():
        if name != "$overall":
            total += child.get(key, 0) if not isinstance(next(iter(child.values()), None), dict) else _leaf_sum(child, key)
    return round(total, 2) if isinstance(total, float) else total


class MixpanelSimulator:
    """Fake Mixpanel API; see the module docstring. Attributes may be changed while it runs."""

    _SET_ATTRS = ("plan_refuses", "faults")
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
        "fault_retry_after": (int, type(None)),
        "cache_bodies": bool,
        "n_funnels": int,
        "n_cohorts": int,
        "n_groups": int,
        "rate_limits": bool,
        "rate_window_seconds": (int, float),
        "query_per_window": int,
        "query_concurrent": int,
        "query_latency": (int, float),
        "others_in_flight": int,
        "export_per_window": int,
        "export_per_second": int,
        "export_concurrent": int,
        "rate_retry_after": bool,
        "engage_page_size_on_page_zero_only": bool,
        "expire_next_sessions": int,
        "legacy_times": bool,
        "late_events": dict,
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
        fault_retry_after: int | None = None,
        cache_bodies: bool = False,
        n_funnels: int = len(FUNNELS),
        n_cohorts: int = len(COHORTS),
        n_groups: int = GROUP_KEYS[1][1],
        rate_limits: bool = False,
        rate_window_seconds: float = 3600,
        query_per_window: int = 60,
        query_concurrent: int = 5,
        query_latency: float = 0,
        others_in_flight: int = 0,
        export_per_window: int = 60,
        export_per_second: int = 3,
        export_concurrent: int = 100,
        rate_retry_after: bool = False,
        engage_page_size_on_page_zero_only: bool = False,
        expire_next_sessions: int = 0,
        legacy_times: bool = False,
        late_events=None,
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
        # Mixpanel's budgets (off unless rate_limits): see the module docstring.
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
        self.extra_profiles: list[dict] = []  # engage profiles beyond the generated ones
        # A project created before 2023: days are local days and `time` is the local wall time (true instants in
        # true_times). Late events: {day: count} events of that day that reach Mixpanel when the switch is set.
        self.legacy_times = legacy_times
        self.true_times: dict[str, int] = {}
        self._late_received: dict[str, tuple[int, int]] = {}
        self._answers: list[dict] = []
        self._injections: list[tuple] = []
        self._expiring: set = set()

        self.requests: list[dict] = []
        self._admitted: dict[str, list[float]] = {"query": [], "export": []}
        self._in_flight: dict[str, int] = {"query": 0, "export": 0}
        self._most_in_flight: dict[str, int] = {"query": 0, "export": 0}
        self._spent_until: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._lock = threading.RLock()
        self.late_events = late_events or {}
        self._sessions: dict[str, list] = {}
        self._session_counter = 0
        self._memo: dict = {}
        self._body_cache: dict = {}
        self._body_cache_bytes = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set = set()
        self.url: str | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "MixpanelSimulator":
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server = _Server((self.host, self.port), _Handler)
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
            self._admitted = {"query": [], "export": []}
            self._most_in_flight = {"query": 0, "export": 0}
            self._spent_until = {}

    def requests_to(self, path_suffix: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith(path_suffix)]

    def _log_arrival(self, method: str, path: str, params: dict, auth) -> dict:
        params = {k: ("<redacted>" if v in (SA_SECRET, API_SECRET) else v) for k, v in params.items()}
        key = json.dumps([method, path, params], sort_keys=True, default=str)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            entry = {"method": method, "path": path, "params": params, "auth": auth, "status": None,
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
            elif kind is dict:
                if not isinstance(value, dict):
                    raise ValueError(f"{name} must be an object")
                value = {str(k): int(v) for k, v in value.items()}
            elif (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
                raise ValueError(f"{name} has the wrong type")
            if name in ("first_event_day", "today") and value is not None and _parse_day(value) is None:
                raise ValueError(f"{name} must be YYYY-MM-DD")
            setattr(self, name, value)

    # ---------------------------------------------------------------- hostile answers
    def answer(self, path_suffix: str, body, status: int = 200, content_type: str = "application/json",
               when: dict | None = None, times: int | None = None, headers: dict | None = None) -> None:
        """Answer requests whose path ends with `path_suffix` (and whose parameters include `when`) with this
        status, body (bytes as they are, str as UTF-8, anything else as JSON) and headers, `times` times or for good."""
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else _json_bytes(body)
        with self._lock:
            self._answers.append({"path": path_suffix, "when": {k: str(v) for k, v in (when or {}).items()},
                                  "status": status, "body": body, "type": content_type, "times": times,
                                  "headers": dict(headers or {})})

    def inject_export_lines(self, day: str, lines: list[bytes], where: str = "middle", attempts: int | None = None) -> None:
        """Put these raw lines (each without its line break) into that day's export body (start, middle or end),
        in its first `attempts` answers or in all of them."""
        with self._lock:
            self._injections.append((day, where, list(lines), attempts))

    @property
    def late_events(self) -> dict:
        return {day: count for day, (count, _) in self._late_received.items()}

    @late_events.setter
    def late_events(self, days: dict) -> None:
        """Events that reach Mixpanel now for old days (an offline flush, an import): received now, once per change."""
        now_ms = int(time.time() * 1000)
        with self._lock:
            self._late_received = {day: (count, self._late_received[day][1] if self._late_received.get(day, (None,))[0] == count
                                             else now_ms) for day, count in days.items() if count}

    def _clock(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone) if self.timezone and self.timezone.upper() != "UTC" else dt.timezone.utc

    def _true_instant(self, wall: int, zone, fold: int) -> tuple[int, int]:
        """A local wall time written as Unix seconds -> (the wall time Mixpanel writes, the true instant); a wall time
        that a DST change skips is written as the one after the gap, as a clock that jumps would show it."""
        local = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=wall)
        true = int(local.replace(tzinfo=zone, fold=fold).timestamp())
        shown = true + int(dt.datetime.fromtimestamp(true, zone).utcoffset().total_seconds())
        return shown, true

    def clear_hostile(self) -> None:
        """Forget canned answers, injected lines, extra profiles and expiring sessions."""
        with self._lock:
            self._answers, self._injections, self.extra_profiles = [], [], []
            self._expiring, self.expire_next_sessions = set(), 0
            self.engage_page_size_on_page_zero_only = False

    def _canned(self, path: str, params: dict):
        with self._lock:
            for canned in self._answers:
                matches = path.endswith(canned["path"]) and all(
                    str(params.get(k)) == v for k, v in canned["when"].items())
                if matches and canned["times"] != 0:
                    if canned["times"] is not None:
                        canned["times"] -= 1
                    return canned
        return None

    def _injected(self, day: dt.date, body: bytes, attempt: int) -> bytes:
        """One day's export body with the lines injected into it for this attempt."""
        lines = body.split(b"\n")[:-1]  # every line ends with a break
        for injected_day, where, extra, attempts in self._injections:
            if injected_day == day.isoformat() and (attempts is None or attempt <= attempts):
                at = {"start": 0, "middle": len(lines) // 2, "end": len(lines)}[where]
                lines[at:at] = extra
        return b"".join(line + b"\n" for line in lines)

    # ---------------------------------------------------------------- budgets (rate_limits)
    def spend_budget(self, seconds: float, families=("query", "export")) -> None:
        """Another client has spent these families' hourly budgets for the next `seconds`."""
        with self._lock:
            for family in families:
                self._spent_until[family] = time.monotonic() + float(seconds)

    def _limits(self, family: str) -> tuple:
        """(per window, in flight, per second or None) for a family."""
        if family == "export":
            return self.export_per_window, self.export_concurrent, self.export_per_second
        return self.query_per_window, self.query_concurrent, None

    def admit(self, family: str, entry: dict) -> None:
        """Count a request against its family's budget, or raise the 429 Mixpanel would send."""
        if not self.rate_limits:
            return
        now = time.monotonic()
        per_window, concurrent, per_second = self._limits(family)
        with self._lock:
            window = [t for t in self._admitted[family] if t > now - self.rate_window_seconds]
            self._admitted[family] = window
            in_flight = self._in_flight[family] + (self.others_in_flight if family == "query" else 0)
            last_second = sum(1 for t in window if t > now - 1)
            spent_until = self._spent_until.get(family, 0.0)
            if now < spent_until:
                refused, wait = "spent", spent_until - now
            elif len(window) >= per_window:
                refused, wait = "hour", min(window) + self.rate_window_seconds - now
            elif in_flight >= concurrent:
                refused, wait = "concurrent", 1.0
            elif per_second is not None and last_second >= per_second:
                refused, wait = "second", 1.0
            else:
                window.append(now)
                self._in_flight[family] += 1
                self._most_in_flight[family] = max(self._most_in_flight[family], self._in_flight[family])
                entry.update(family=family, admitted=now)
                return
            entry.update(family=family, refused=refused)
        in_hour = per_window + 1 if refused in ("spent", "hour") else len(window) + 1
        if family == "export":
            message = (f"Export rate limit exceeded for project_id: {PROJECT_ID}. {in_flight + 1}/{concurrent} requests "
                       f"running concurrently, {last_second + 1}/{per_second} requests in the last second and "
                       f"{in_hour}/{per_window} requests in the last hour.")
        else:
            message = (f"Query rate limit exceeded for project_id: {PROJECT_ID}. {in_flight + 1}/{concurrent} queries "
                       f"running concurrently and {in_hour}/{per_window} queries running in the last hour.")
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.rate_retry_after else {}
        raise _ApiError(429, message, headers=headers, body={"request": entry["path"], "error": message})

    def release(self, entry: dict) -> None:
        """The request's answer is computed: it no longer runs (idempotent)."""
        if entry is not None and entry.pop("admitted", None) is not None:
            with self._lock:
                self._in_flight[entry["family"]] -= 1

    def rate_report(self) -> dict:
        """Per family, from the request log: the most admitted in any moving window, in any second, and at
        once, and the 429s by cause ("spent" is another client's doing; any other cause is the client's)."""
        with self._lock:
            log = [dict(r) for r in self.requests if r.get("family")]
            most_in_flight = dict(self._most_in_flight)
        report = {}
        for family in ("query", "export"):
            times = sorted(r["time"] for r in log if r["family"] == family and not r.get("refused"))
            refusals: dict = {}
            for r in log:
                if r["family"] == family and r.get("refused"):
                    refusals[r["refused"]] = refusals.get(r["refused"], 0) + 1
            report[family] = {
                "admitted": len(times),
                "most_in_window": _most_within(times, self.rate_window_seconds),
                "most_in_a_second": _most_within(times, 1.0),
                "most_in_flight": most_in_flight[family],
                "refused": refusals,
            }
        return report

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

    # ---------------------------------------------------------------- events
    def _id_pool(self, n: int) -> list[str]:
        """Distinct ids, deterministic from the seed; a longer pool extends a shorter one."""
        with self._lock:
            key = ("ids", self.seed)
            pool = self._memo.get(key)
            if pool is None or len(pool) < n:
                rng = random.Random(f"{self.seed}:ids")
                pool, seen = [], set()
                while len(pool) < max(n, EVENT_DISTINCT_IDS):
                    i = len(pool)
                    h = rng.getrandbits(64)
                    if i % 10 == 0:
                        did = f"$device:{h:016x}"
                    elif i % 10 == 5:
                        did = f"user.{h % 100000}@example.com"
                    else:
                        did = f"{h >> 16:012x}"
                    if did not in seen:
                        seen.add(did)
                        pool.append(did)
                self._memo[key] = pool
            return pool[:n]

    def _event_ids_json(self) -> list[str]:
        with self._lock:
            key = ("event-ids", self.seed)
            ids = self._memo.get(key)
            if ids is None:
                ids = [json.dumps(d) for d in self._id_pool(EVENT_DISTINCT_IDS)]
                self._memo[key] = ids
            return ids

    def _served_days(self, from_day: dt.date, to_day: dt.date) -> list[dt.date]:
        first = max(from_day, self._first_day())
        last = min(to_day, self.today_date())
        return list(_days(first, last))

    def _day_batches(self, day: dt.date, count: int, wanted, batch: int = 8192):
        """Yield lists of JSON lines for one UTC day (deterministic from seed and date).

        The random stream is consumed identically whatever the filter, so a filtered export is
        exactly a subset of the unfiltered one."""
        bits = random.Random(f"{self.seed}:events:{day.isoformat()}").getrandbits
        t0 = calendar.timegm(day.timetuple())
        zone = self._clock() if self.legacy_times else None
        ymd = day.strftime("%Y%m%d")
        dids = self._event_ids_json()
        n_ids, n_commons = len(dids), len(_COMMONS)
        prefixes, commons, extras, slots = _PREFIXES, _COMMONS, _EXTRAS, _NAME_SLOTS
        n_extras = tuple(len(e) for e in extras)
        out: list[str] = []
        append = out.append
        for i in range(count):
            r = bits(64)
            a, b = r & 0xFFFFFFFF, r >> 32
            ni = slots[a % 20]
            if wanted is not None and ni not in wanted:
                continue
            t = true = t0 + (a >> 5) % 86400  # legacy: the local wall time; true is then the instant
            insert_id = f"{ymd}-{i:x}-{(a ^ b) & 0xFFFFFF:06x}"
            if zone is not None:
                t, true = self._true_instant(t, zone, b & 1)
                self.true_times[insert_id] = true
            append(
                f'{prefixes[ni]}{t},"distinct_id":{dids[b % n_ids]},'
                f'"$insert_id":"{insert_id}",'
                f'"mp_processing_time_ms":{(true + 60 + (b >> 22) % 3600) * 1000 + (a >> 22) % 1000}'
                f'{commons[(b >> 12) % n_commons]}{extras[ni][(b >> 18) % n_extras[ni]]}'
                f'{_RARE_FRAGMENT if i % 50 == 7 else ""}}}}}\n'
            )
            if len(out) >= batch:
                yield out
                out = []
                append = out.append
        out.extend(self._late_lines(day, wanted, zone))
        if out:
            yield out

    def _late_lines(self, day: dt.date, wanted, zone) -> list[str]:
        count, received_ms = self._late_received.get(day.isoformat(), (0, 0))
        if not count or (wanted is not None and 0 not in wanted):
            return []
        dids, lines = self._event_ids_json(), []
        for k in range(count):
            t = true = calendar.timegm(day.timetuple()) + (k * 7919) % 86400
            insert_id = f"late-{day:%Y%m%d}-{k}"
            if zone is not None:
                t, true = self._true_instant(t, zone, 0)
                self.true_times[insert_id] = true
            lines.append(f'{{"event":"{EVENT_NAMES[0]}","properties":{{"time":{t},"distinct_id":{dids[k % len(dids)]},'
                         f'"$insert_id":"{insert_id}","mp_processing_time_ms":{received_ms}}}}}\n')
        return lines

    @staticmethod
    def _wanted(events) -> set | None:
        if events is None:
            return None
        return {EVENT_NAMES.index(e) for e in events if e in EVENT_NAMES}

    def _export_batches(self, from_day: dt.date, to_day: dt.date, events=None, limit=None):
        wanted = self._wanted(events)
        left = limit
        for day in self._served_days(from_day, to_day):
            for lines in self._day_batches(day, self.events_per_day, wanted):
                if left is not None:
                    if len(lines) >= left:
                        yield lines[:left]
                        return
                    left -= len(lines)
                yield lines

    def _export_days(self, from_day: dt.date, to_day: dt.date, events=None, limit=None):
        """(day, lines) in batches, with the filter and limit applied; a whole day per batch while lines are
        injected (they go by position in the day)."""
        wanted = self._wanted(events)
        left = limit
        for day in self._served_days(from_day, to_day):
            batches = self._day_batches(day, self.events_per_day, wanted)
            if self._injections:
                batches = [[line for batch in batches for line in batch]]
            for lines in batches:
                if left is not None:
                    lines, left = lines[:left], left - min(left, len(lines))
                yield day, lines
                if left == 0:
                    return

    def _export_count(self, from_day: dt.date, to_day: dt.date, events=None, limit=None) -> int:
        days = self._served_days(from_day, to_day)
        wanted = self._wanted(events)
        late = sum(self._late_received.get(day.isoformat(), (0, 0))[0] for day in days)
        if wanted is None:
            total = len(days) * self.events_per_day + late
        else:
            total = 0
            for day in days:
                bits = random.Random(f"{self.seed}:events:{day.isoformat()}").getrandbits
                total += sum(1 for _ in range(self.events_per_day)
                             if _NAME_SLOTS[(bits(64) & 0xFFFFFFFF) % 20] in wanted)
        return total if limit is None else min(total, limit)

    def export_truth(self, from_date: str, to_date: str, events=None) -> list[dict]:
        """The events export serves for the inclusive UTC day range (optionally by name)."""
        from_day, to_day = dt.date.fromisoformat(from_date), dt.date.fromisoformat(to_date)
        return [json.loads(line) for lines in self._export_batches(from_day, to_day, events) for line in lines]

    def _export_body(self, from_day, to_day, events, limit) -> bytes:
        key = (self.seed, self.events_per_day, self.first_event_day, self.today_date(), from_day, to_day,
               None if events is None else tuple(events), limit, self.legacy_times, self.timezone,
               tuple(sorted(self._late_received.items())))
        with self._lock:
            cached = self._body_cache.get(key)
        if cached is not None:
            return cached
        body = b"".join("".join(lines).encode() for lines in self._export_batches(from_day, to_day, events, limit))
        with self._lock:
            self._body_cache[key] = body
            self._body_cache_bytes += len(body)
            while self._body_cache_bytes > 2_000_000_000 and len(self._body_cache) > 1:
                old = next(iter(self._body_cache))
                self._body_cache_bytes -= len(self._body_cache.pop(old))
                self._body_cache.pop(("gz",) + old, None)
        return body

    def _export_gzip_body(self, body_key_args, body: bytes) -> bytes:
        key = ("gz", self.seed, self.events_per_day, self.first_event_day, self.today_date()) + body_key_args
        with self._lock:
            cached = self._body_cache.get(key)
        if cached is None:
            comp = zlib.compressobj(1, zlib.DEFLATED, 31)
            cached = comp.compress(body) + comp.flush()
            with self._lock:
                self._body_cache[key] = cached
        return cached

    def event_property_names(self, event: str | None = None) -> list[str]:
        """What events/properties/top lists (everything but $rare_prop)."""
        if event is not None and event not in EVENT_NAMES:
            return []
        return _event_property_names(event)

    # ---------------------------------------------------------------- profiles
    def _make_profile(self, i: int, did: str, first: dt.date) -> dict:
        rng = random.Random(f"{self.seed}:profile:{i}")
        first_name, last_name = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        start = dt.datetime.combine(first, dt.time())
        created = start - dt.timedelta(days=rng.randrange(1, 400), seconds=rng.randrange(86400))
        props: dict = {
            "$email": f"person{i}@example.com",
            "$name": f"{first_name} {last_name}",
            "$city": rng.choice(_PROFILE_CITIES),
            "$created": _fmt_dt(created),
            "$browser": rng.choice(_BROWSERS),
            "lifetime_value": round(rng.uniform(0, 5000), 2),
            "orders": rng.randrange(50),
            "is_paying": rng.random() < 0.3,
            "favorite_tags": rng.sample(_TAGS, rng.randrange(0, 4)),
            "plan": {"tier": rng.choice(("free", "pro", "enterprise")), "seats": rng.randrange(1, 20)},
            "nickname": None if i % 3 == 0 else f"nick-{i}",
            "mixed_value": f"v{i}" if i % 2 else i,  # varies in type: engage/properties says unknown
        }
        if i % 4 in (0, 1):
            props["$username"] = f"{first_name.lower()}{i}"
        if i % 4 in (0, 2):
            props["userName"] = f"{first_name} {i}"
        if i % 20 != 7:  # ~5% of profiles have never been seen
            seen = start + dt.timedelta(days=rng.randrange(366), seconds=rng.randrange(86400))
            props["$last_seen"] = _fmt_dt(seen)
        return {"$distinct_id": did, "$properties": props}

    def profiles(self) -> list[dict]:
        """All engage profiles, sorted by distinct_id (the order engage pages them in)."""
        key = ("profiles", self.seed, self.n_profiles, self.first_event_day)
        with self._lock:
            cached = self._memo.get(key)
        if cached is None:
            first = self._first_day()
            ids = self._id_pool(self.n_profiles)
            cached = sorted((self._make_profile(i, did, first) for i, did in enumerate(ids)),
                            key=lambda p: p["$distinct_id"])
            with self._lock:
                self._memo = {k: v for k, v in self._memo.items() if k[0] != "profiles"}
                self._memo[key] = cached
        if self.extra_profiles:
            return sorted(cached + self.extra_profiles, key=lambda p: p["$distinct_id"])
        return cached

    def engage_property_types(self) -> dict[str, str]:
        """Profile property name -> Mixpanel type, as engage/properties reports it."""
        return {name: info["type"] for name, info in self._engage_properties().items()}

    def _engage_properties(self) -> dict:
        return _property_summary(self.profiles())

    def _cohort_table(self) -> tuple:
        """COHORTS, then small generated cohorts up to n_cohorts."""
        extra = tuple((5000 + i, f"Saved cohort {i}", "", "2024-02-01 00:00:00", 1, 5 + i % 20)
                      for i in range(max(0, self.n_cohorts - len(COHORTS))))
        return (COHORTS + extra)[: self.n_cohorts]

    def _funnel_table(self) -> tuple:
        """FUNNELS, then generated two-step funnels up to n_funnels."""
        extra = tuple((7600 + i, f"Saved funnel {i}", (EVENT_NAMES[i % 5], EVENT_NAMES[(i + 1) % 5]))
                      for i in range(max(0, self.n_funnels - len(FUNNELS))))
        return (FUNNELS + extra)[: self.n_funnels]

    def cohorts(self) -> list[dict]:
        out = []
        for cid, name, description, created, visible, _ in self._cohort_table():
            out.append({"count": len(self.cohort_members(cid)), "is_visible": visible, "description": description,
                        "created": created, "project_id": PROJECT_ID, "id": cid, "name": name,
                        "data_group_id": None})
        return out

    def cohort_members(self, cohort_id) -> list[dict]:
        try:
            cohort_id = int(cohort_id)
        except (TypeError, ValueError):
            return []
        per_mille = {c[0]: c[5] for c in self._cohort_table()}.get(cohort_id)
        if per_mille is None:
            return []
        return [p for p in self.profiles()
                if zlib.crc32(f"{self.seed}:{cohort_id}:{p['$distinct_id']}".encode()) % 1000 < per_mille]

    # ---------------------------------------------------------------- funnels, revenue, annotations
    def funnels(self) -> list[dict]:
        return [{"funnel_id": fid, "name": name} for fid, name, _ in self._funnel_table()]

    def funnel_day(self, funnel_id, date: str) -> dict:
        funnel = {f[0]: f for f in self._funnel_table()}[int(funnel_id)]
        rng = random.Random(f"{self.seed}:funnel:{funnel[0]}:{date}")
        live = dt.date.fromisoformat(date) >= self._first_day()
        count = rng.randrange(200, 40000) if live else 0
        start, steps, total_time = count, [], 0.0
        for n, event in enumerate(funnel[2]):
            prev = steps[-1]["count"] if steps else count
            if n:
                count = int(prev * rng.uniform(0.2, 0.9))
            avg = None if n == 0 or count == 0 else round(rng.uniform(5, 7200), 3)
            total_time += avg or 0.0
            step = {
                "count": count,
                "avg_time": avg,
                "avg_time_from_start": None if avg is None else round(total_time, 3),
                "step_conv_ratio": 1 if n == 0 else (count / prev if prev else 0),
                "goal": event,
                "overall_conv_ratio": 1 if n == 0 else (count / start if start else 0),
                "event": event,
            }
            if funnel[0] == _CUSTOM_FUNNEL:
                step.update({"custom_event": True, "custom_event_id": 90000 + n,
                             "step_label": f"Step {n + 1}: {event}"})
            steps.append(step)
        ratios = [s["step_conv_ratio"] for s in steps[1:]]
        worst = 1 + ratios.index(min(ratios)) if ratios else 1
        return {"steps": steps, "analysis": {"completion": steps[-1]["count"], "starting_amount": start,
                                             "steps": len(steps), "worst": worst}}

    def revenue_day(self, date: str) -> dict:
        if dt.date.fromisoformat(date) < self._first_day():
            return {"amount": 0.0, "count": 0, "paid_count": 0}
        rng = random.Random(f"{self.seed}:revenue:{date}")
        count = rng.randrange(50, 500)
        paid = rng.randrange(0, count // 3)
        return {"amount": round(paid * rng.uniform(5, 80), 2), "count": count, "paid_count": paid}

    def annotations(self) -> list[dict]:
        first = self._first_day()
        rows = (
            (0, "09:00:00", "Launch of the new checkout", ["release"], (11, "Jürgen", "Schmidt")),
            (3, "12:00:00", "Marketing push – “Spring” 🎉", ["marketing", "q1"], (12, "Ann", "O'Neil")),
            (17, "00:00:00", "Tracking outage\n(mobile only)", [], (11, "Jürgen", "Schmidt")),
            (40, "23:59:59", "Pricing change", ["pricing"], (13, "李", "雷")),
            (95, "06:30:00", "", ["empty description"], (12, "Ann", "O'Neil")),
        )
        out = []
        for n, (offset, clock, description, tags, user) in enumerate(rows):
            day = first + dt.timedelta(days=offset)
            out.append({"id": 501 + n, "date": f"{day.isoformat()} {clock}", "description": description,
                        "user": {"id": user[0], "first_name": user[1], "last_name": user[2]}, "tags": tags})
        return out

    # ---------------------------------------------------------------- saved Insights reports
    def insights_report(self, bookmark_id) -> tuple[dict, list[dict]]:
        """A saved report's answer and the numbers in it (its `$overall` totals left out): (body, numbers), each
        number {"metric", "breakdown" (header -> value), "date", "value"}. KeyError for a report that is not one."""
        headers, metrics, levels, unit = INSIGHTS_REPORTS[int(bookmark_id)]
        zone = self._clock()
        days = [self._first_day() + dt.timedelta(days=i) for i in range(INSIGHTS_DAYS)]
        keys = ["all"] if unit == "all" else [dt.datetime.combine(day, dt.time(), zone).isoformat() for day in days]
        numbers: list[dict] = []

        def level(metric: str, path: list, rng: random.Random):
            depth = len(path)
            if depth == len(levels):
                leaf = {key: (round(rng.uniform(0.5, 900), 2) if unit == "all" else rng.randrange(0, 5000)) for key in keys}
                numbers.extend({"metric": metric, "breakdown": dict(zip(headers[1:], path)), "date": key, "value": value}
                               for key, value in leaf.items())
                return leaf
            # Not every combination occurs (a ragged tree); the first value of each level always does.
            children = {value: level(metric, path + [value], rng) for n, value in enumerate(levels[depth])
                        if n == 0 or rng.random() < 0.8}
            return {"$overall": {key: _leaf_sum(children, key) for key in keys}, **children}

        series = {metric: level(metric, [], random.Random(f"{self.seed}:insights:{bookmark_id}:{metric}")) for metric in metrics}
        last = dt.datetime.combine(days[-1], dt.time(23, 59, 59, 999000), zone).isoformat()
        with self._lock:  # computed once, then served from cache as Mixpanel does until the report changes
            computed_at = self._memo.setdefault(("insights computed_at", int(bookmark_id)), dt.datetime.now(dt.timezone.utc).isoformat())
        body = {"computed_at": computed_at,
                "date_range": {"from_date": dt.datetime.combine(days[0], dt.time(), zone).isoformat(), "to_date": last},
                "headers": list(headers), "series": series}
        return body, numbers

    # ---------------------------------------------------------------- group profiles
    def _group_table(self) -> dict:
        return {gid: (key, self.n_groups if gid == 1 else count) for gid, (key, count) in GROUP_KEYS.items()}

    def _make_group(self, data_group_id: int, i: int) -> dict:
        rng = random.Random(f"{self.seed}:group:{data_group_id}:{i}")
        if data_group_id == 1:
            word = _COMPANY_WORDS[i % len(_COMPANY_WORDS)]
            group_id, name = f"{word}-{i:04d}", f"{word.capitalize()} {rng.choice(('GmbH', 'S.A.', 'Inc.', '株式会社'))} {i}"
        else:
            group_id, name = f"team {i}", f"Team {rng.choice(('Zürich', 'Kraków', 'Osaka'))} #{i}"
        props: dict = {
            "$name": name,
            "industry": rng.choice(_INDUSTRIES),
            "arr": round(rng.uniform(0, 250000), 2),
            "seats": rng.randrange(1, 500),
            "is_customer": rng.random() < 0.6,
            "$created": _fmt_dt(dt.datetime(2023, 1, 1) + dt.timedelta(days=rng.randrange(700), seconds=rng.randrange(86400))),
            "tags": rng.sample(_TAGS, rng.randrange(0, 3)),
            "hq": {"city": rng.choice(_PROFILE_CITIES), "remote": rng.random() < 0.3},
            "年商": rng.randrange(10**6, 10**9),
        }
        if i % 3 == 0:
            props["Name"] = name.upper()  # meets `$name` once the "$" is dropped
        if i % 5 == 0:
            props["churn_risk"] = None
        return {"$distinct_id": group_id, "$properties": props}

    def group_profiles(self, data_group_id) -> list[dict]:
        """The group profiles of a group key, sorted by id (the order engage pages them in); [] for an unknown key."""
        try:
            data_group_id = int(data_group_id)
        except (TypeError, ValueError):
            return []
        table = self._group_table()
        if data_group_id not in table:
            return []
        key = ("groups", self.seed, data_group_id, table[data_group_id][1])
        with self._lock:
            cached = self._memo.get(key)
        if cached is None:
            cached = sorted((self._make_group(data_group_id, i) for i in range(table[data_group_id][1])),
                            key=lambda g: g["$distinct_id"])
            with self._lock:
                self._memo[key] = cached
        return cached

    def group_property_types(self, data_group_id) -> dict[str, str]:
        """Group property name -> Mixpanel type, as engage/properties reports it for that group key."""
        return {name: info["type"] for name, info in _property_summary(self.group_profiles(data_group_id)).items()}

    # ---------------------------------------------------------------- engage sessions
    def _new_session(self, matching: list) -> str:
        with self._lock:
            self._session_counter += 1
            sid = f"{1700000000 + self._session_counter}-SIM{self._session_counter:05X}"
            self._sessions[sid] = matching
            if self.expire_next_sessions > 0:
                self.expire_next_sessions -= 1
                self._expiring.add(sid)
            while len(self._sessions) > 500:
                self._sessions.pop(next(iter(self._sessions)))
        return sid


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    sim: MixpanelSimulator


class _ApiError(Exception):
    def __init__(self, status: int, message: str, text: bool = False, headers=None, body=None):
        super().__init__(message)
        self.status, self.message, self.text = status, message, text
        self.headers, self.body = headers or {}, body


# name -> (endpoint method, families, http methods)
_QUERY_ROUTES = {
    "engage": ("engage", "engage", ("GET", "POST")),
    "engage/properties": ("engage_properties", "engage", ("GET", "POST")),
    "engage/revenue": ("revenue", "revenue", ("GET", "POST")),
    "events/properties/top": ("event_properties", "events", ("GET", "POST")),
    "events/names": ("event_names", "events", ("GET", "POST")),
    "cohorts/list": ("cohorts", "cohorts", ("GET", "POST")),
    "funnels/list": ("funnels_list", "funnels", ("GET", "POST")),
    "funnels": ("funnels", "funnels", ("GET", "POST")),
    "insights": ("insights", "insights", ("GET",)),
    "annotations": ("legacy_annotations", "annotations", ("GET",)),
}
_APP_ANNOTATIONS_RE = re.compile(r"^/api/app/projects/([^/]+)/annotations$")


def _route(path: str):
    """-> (kind, endpoint, family, methods, path project id) or None."""
    if path == "/api/2.0/export":
        return ("export", "export", "export", ("GET",), None)
    for prefix in ("/api/query/", "/api/2.0/"):
        if path.startswith(prefix) and path[len(prefix):] in _QUERY_ROUTES:
            endpoint, family, methods = _QUERY_ROUTES[path[len(prefix):]]
            return ("query", endpoint, family, methods, None)
    if path == "/api/app/me":
        return ("app", "me", "app", ("GET",), None)
    match = _APP_ANNOTATIONS_RE.match(path)
    if match:
        return ("app", "app_annotations", "annotations", ("GET",), match.group(1))
    return None


class _Body:
    """Writes the export body: buffers until it knows whether the body passes GZIP_MIN_BYTES, then
    sends chunked (gzip-compressed if allowed, with a sync flush per chunk of lines) or, for a small
    body, plain with a Content-Length."""

    def __init__(self, handler: "_Handler", entry: dict, gzip_ok: bool, retry_after: int | None = None):
        self.h, self.entry, self.gzip_ok, self.retry_after = handler, entry, gzip_ok, retry_after
        self.buffer: list[bytes] = []
        self.size = 0
        self.started = False
        self.comp = None

    def _start(self) -> None:
        self.started = True
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        if self.retry_after is not None:
            h.send_header("Retry-After", str(self.retry_after))
        if self.gzip_ok and self.size > GZIP_MIN_BYTES:
            h.send_header("Content-Encoding", "gzip")
            self.comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        h.end_headers()
        h.headers_sent = True
        data, self.buffer = b"".join(self.buffer), []
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        if data:
            self.h.write_chunk(data)

    def write(self, data: bytes) -> None:
        if self.started:
            self._emit(data)
            return
        self.buffer.append(data)
        self.size += len(data)
        if self.size > GZIP_MIN_BYTES:
            self._start()

    def commit(self) -> None:
        """Make sure headers and everything written so far are on the wire."""
        if not self.started:
            self._start()

    def finish(self, complete: bool = True) -> None:
        """End the body; `complete=False` leaves a gzip stream at its last flush point (no final block)."""
        if not self.started:
            self.h.send_bytes(200, b"".join(self.buffer), "text/plain; charset=utf-8", self.entry, gzip_ok=False)
            return
        if self.comp is not None and complete:
            tail = self.comp.flush()
            if tail:
                self.h.write_chunk(tail)
        self.h.wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """End the connection without the terminating chunk (a cut body)."""
        self.commit()
        self.h.close_connection = True
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # idle keep-alive connections are dropped after this
    server: _Server

    def version_string(self) -> str:
        return "MixpanelSimulator/1.0"

    # ---------------------------------------------------------------- plumbing
    def setup(self) -> None:
        super().setup()
        with self.server.sim._lock:
            self.server.sim._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sim._lock:
                self.server.sim._conns.discard(self.connection)

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def write_chunk(self, data) -> None:
        self.wfile.write(b"%x\r\n" % len(data))
        self.wfile.write(data)
        self.wfile.write(b"\r\n")

    def _accepts_gzip(self) -> bool:
        for part in (self.headers.get("Accept-Encoding") or "").split(","):
            token, _, q = part.strip().partition(";")
            if token.strip().lower() in ("gzip", "*"):
                q = q.strip()
                return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
        return False

    def send_bytes(self, status: int, body: bytes, content_type: str, entry: dict | None, gzip_ok=True,
                   headers=None) -> None:
        # The answer is computed: the query stops running before its bytes reach the client.
        self.server.sim.release(self._entry)
        if entry is not None:
            entry["status"] = status
        encoding = None
        if gzip_ok and self.server.sim.gzip and len(body) > GZIP_MIN_BYTES and self._accepts_gzip():
            comp = zlib.compressobj(5, zlib.DEFLATED, 31)
            body = comp.compress(body) + comp.flush()
            encoding = "gzip"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.headers_sent = True
        self.wfile.write(body)

    def send_json(self, status: int, obj, entry: dict | None, headers=None) -> None:
        self.send_bytes(status, _json_bytes(obj), "application/json", entry, headers=headers)

    def send_error_json(self, status: int, message: str, entry: dict | None) -> None:
        self.send_json(status, {"error": message, "status": "error"}, entry)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > 50_000_000:
            raise _ApiError(413, "simulator: body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _params(self, query: str, body: bytes) -> dict:
        params: dict = dict(parse_qsl(query, keep_blank_values=True))
        if not body:
            return params
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        text = body.decode("utf-8", errors="replace")
        if ctype == "application/json" or (not ctype and text.lstrip().startswith("{")):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise _ApiError(400, "simulator: request body is not valid JSON")
            if not isinstance(parsed, dict):
                raise _ApiError(400, "simulator: JSON request body must be an object")
            params.update(parsed)
        else:
            params.update(parse_qsl(text, keep_blank_values=True))
        return params

    def _auth(self):
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "bad"
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return "bad"
        user, _, password = decoded.partition(":")
        if user == SA_USERNAME and password == SA_SECRET:
            return "service_account"
        if user == API_SECRET and password == "":
            return "project_secret"
        return "bad"

    # ---------------------------------------------------------------- dispatch
    def _dispatch(self, method: str) -> None:
        self.headers_sent = False
        self._entry = entry = None
        try:
            split = urlsplit(self.path)
            path = split.path.rstrip("/") or "/"
            body = self._read_body()
            if path.startswith("/_sim/"):
                self._control(method, path, split.query, body)
                return
            params = self._params(split.query, body)
            entry = self.server.sim._log_arrival(method, path, params, self._auth())
            self._entry = entry
            self._api(method, path, params, entry)
        except _ApiError as err:
            if err.text:
                self.send_bytes(err.status, err.message.encode(), "text/plain; charset=utf-8", entry, headers=err.headers)
            elif err.body is not None:
                self.send_bytes(err.status, _json_bytes(err.body), "application/json", entry, headers=err.headers)
            else:
                self.send_json(err.status, {"error": err.message, "status": "error"}, entry, headers=err.headers)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a simulator bug: say so rather than hang the client
            self.close_connection = True
            if not self.headers_sent:
                try:
                    self.send_error_json(500, f"simulator bug: {type(exc).__name__}: {exc}", entry)
                except OSError:
                    pass
        finally:
            self.server.sim.release(entry)

    def _api(self, method: str, path: str, params: dict, entry: dict) -> None:
        sim = self.server.sim
        route = _route(path)
        if route is None:
            raise _ApiError(404, f"simulator: unknown path {path}")
        kind, endpoint, family, methods, path_project = route
        if method not in methods:
            raise _ApiError(405, f"simulator: {method} not allowed on {path}")

        auth = entry["auth"]
        if auth not in ("service_account", "project_secret") or (kind == "app" and auth != "service_account"):
            if sim.auth_error_style == "400-text":
                raise _ApiError(400, AUTH_ERROR, text=True)
            raise _ApiError(401, AUTH_ERROR)
        if kind == "app":
            if path_project is not None and path_project != str(PROJECT_ID):
                raise _ApiError(403, f"simulator: no access to project {path_project}")
        elif auth == "service_account" or "project_id" in params:
            if str(params.get("project_id", "")) != str(PROJECT_ID):
                raise _ApiError(403, "simulator: project_id is missing or not a project this account can read")

        retired = sim.retired.get(family)
        if retired:
            raise _ApiError(int(retired), f"simulator: the {family} endpoint is retired")
        if kind != "export" and (family in sim.plan_refuses or (kind == "query" and "all_query" in sim.plan_refuses)):
            raise _ApiError(402, PLAN_ERROR)
        canned = sim._canned(path, params)
        if canned is not None:
            self.send_bytes(canned["status"], canned["body"], canned["type"], entry, gzip_ok=False,
                            headers=canned["headers"])
            return
        sim.admit("export" if kind == "export" else "query", entry)
        if kind != "export" and sim.query_latency:
            sim._stopping.wait(float(sim.query_latency))
        getattr(self, "_ep_" + endpoint)(params, entry)

    # ---------------------------------------------------------------- control API
    def _control(self, method: str, path: str, query: str, body: bytes) -> None:
        sim = self.server.sim
        if path == "/_sim/requests" and method == "GET":
            with sim._lock:
                log = [dict(r) for r in sim.requests]
            self.send_json(200, log, None)
        elif path == "/_sim/reset-log" and method == "POST":
            sim.reset_log()
            self.send_json(200, {"status": "ok"}, None)
        elif path == "/_sim/config" and method == "GET":
            self.send_json(200, sim.config(), None)
        elif path == "/_sim/config" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                sim.configure(**changes)
            except (ValueError, TypeError) as err:
                raise _ApiError(400, f"simulator: {err}")
            self.send_json(200, sim.config(), None)
        elif path == "/_sim/spend-budget" and method == "POST":
            try:
                spend = json.loads(body or b"{}")
                sim.spend_budget(float(spend["seconds"]), tuple(spend.get("families") or ("query", "export")))
            except (ValueError, TypeError, KeyError) as err:
                raise _ApiError(400, f"simulator: spend-budget needs {{\"seconds\": N}}: {err}")
            self.send_json(200, {"status": "ok"}, None)
        elif path == "/_sim/rate-report" and method == "GET":
            self.send_json(200, sim.rate_report(), None)
        elif path == "/_sim/truth/insights" and method == "GET":
            try:
                body, numbers = sim.insights_report(dict(parse_qsl(query)).get("bookmark_id"))
            except (KeyError, TypeError, ValueError):
                raise _ApiError(404, f"simulator: no saved Insights report {query}")
            self.send_json(200, {"body": body, "numbers": numbers}, None)
        elif path == "/_sim/truth/groups" and method == "GET":
            self.send_json(200, sim.group_profiles(dict(parse_qsl(query)).get("data_group_id")), None)
        elif path == "/_sim/truth/export" and method == "GET":
            params = dict(parse_qsl(query))
            from_day, to_day = _parse_day(params.get("from_date")), _parse_day(params.get("to_date"))
            if from_day is None or to_day is None:
                raise _ApiError(400, "simulator: from_date and to_date (YYYY-MM-DD) are required")
            events = json.loads(params["event"]) if params.get("event") else None
            self.send_json(200, sim.export_truth(from_day.isoformat(), to_day.isoformat(), events), None)
        else:
            raise _ApiError(404, f"simulator: unknown control path {method} {path}")

    # ---------------------------------------------------------------- export
    def _ep_export(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        from_day, to_day = _parse_day(params.get("from_date")), _parse_day(params.get("to_date"))
        if from_day is None or to_day is None:
            raise _ApiError(400, "from_date and to_date are required and must be YYYY-MM-DD", text=True)
        if to_day > sim.today_date():
            raise _ApiError(400, "to_date cannot be later than today", text=True)
        if from_day > to_day:
            raise _ApiError(400, "from_date cannot be later than to_date", text=True)
        events = params.get("event")
        if events not in (None, ""):
            try:
                events = json.loads(events) if isinstance(events, str) else events
            except ValueError:
                events = None
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise _ApiError(400, "event must be a JSON array of event names", text=True)
        else:
            events = None
        limit = params.get("limit")
        if limit not in (None, ""):
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                limit = -1
            if not 0 < limit <= EXPORT_LIMIT_MAX:
                raise _ApiError(400, f"limit must be an integer between 1 and {EXPORT_LIMIT_MAX}", text=True)
        else:
            limit = None

        faults = set(sim.faults) if entry["attempt"] <= sim.fault_attempts else set()
        if "5xx" in faults:
            retry_after = {"Retry-After": str(sim.fault_retry_after)} if sim.fault_retry_after is not None else None
            raise _ApiError(500, "simulator: internal server error (injected)", headers=retry_after)
        if "429" in faults:
            message = (f"Export rate limit exceeded for project_id: {PROJECT_ID}. 1/100 requests running concurrently, "
                       f"4/3 requests in the last second and 1/60 requests in the last hour. (injected by the simulator)")
            raise _ApiError(429, message, body={"request": entry["path"], "error": message})
        gzip_ok = sim.gzip and self._accepts_gzip()
        truncating = faults & {"terminated_early", "cut", "stall", "gzip_unfinished"}

        if "close_delimited" in faults:
            self._serve_close_delimited(sim, from_day, to_day, events, limit, entry)
            return
        if sim.cache_bodies and not faults and not sim._injections:
            self._serve_cached(sim._export_body(from_day, to_day, events, limit), gzip_ok, entry,
                               (from_day, to_day, None if events is None else tuple(events), limit))
            return

        entry["status"] = 200
        injected = any(day in (from_day.isoformat(), to_day.isoformat()) or from_day.isoformat() <= day <= to_day.isoformat()
                       for day, *_ in sim._injections)
        out = _Body(self, entry, gzip_ok, sim.fault_retry_after if truncating or injected else None)
        stop_at = sim._export_count(from_day, to_day, events, limit) // 2 if truncating else None
        emitted = 0
        split_lines = "split_lines" in faults
        for day, lines in sim._export_days(from_day, to_day, events, limit):
            if stop_at is not None and emitted + len(lines) >= stop_at:
                lines = lines[: stop_at - emitted]
            if split_lines:
                lines = [line.replace("\\n", "\n") if "\\n" in line else line for line in lines]
            body = "".join(lines).encode()
            out.write(sim._injected(day, body, entry["attempt"]) if sim._injections else body)
            emitted += len(lines)
            if stop_at is not None and emitted >= stop_at:
                break
        if "stall" in faults:
            out.commit()
            sim._stopping.wait(float(sim.stall_seconds))
            out.abort()
        elif "cut" in faults:
            out.abort()
        elif "terminated_early" in faults:
            out.write(b"terminated early\n")
            out.finish()
        elif "gzip_unfinished" in faults:  # ends at a flush point: no final block, no trailer
            out.finish(complete=False)
        else:
            out.finish()

    def _serve_close_delimited(self, sim, from_day, to_day, events, limit, entry) -> None:
        """Half the body, plain, with neither a length nor chunks: it ends where the connection closes."""
        lines = [line for _, day_lines in sim._export_days(from_day, to_day, events, limit) for line in day_lines]
        entry["status"] = 200
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.headers_sent = True
        self.wfile.write("".join(lines[: len(lines) // 2]).encode())

    def _serve_cached(self, body: bytes, gzip_ok: bool, entry: dict, key_args) -> None:
        entry["status"] = 200
        if len(body) <= GZIP_MIN_BYTES:
            self.send_bytes(200, body, "text/plain; charset=utf-8", entry, gzip_ok=False)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        if gzip_ok:
            body = self.server.sim._export_gzip_body(key_args, body)
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.headers_sent = True
        view = memoryview(body)
        step = 1 << 20
        for start in range(0, len(body), step):
            self.write_chunk(view[start:start + step])
        self.wfile.write(b"0\r\n\r\n")

    # ---------------------------------------------------------------- engage
    def _ep_engage(self, params: dict, entry: dict) -> None:
        sim = self.server.sim

        def integer(name, default):
            value = params.get(name, default)
            if value in (None, ""):
                return default
            try:
                return int(value)
            except (TypeError, ValueError):
                raise _ApiError(400, f"simulator: {name} must be an integer")

        page = integer("page", 0)
        page_size = min(integer("page_size", 1000), int(sim.max_page_size))
        if page < 0 or page_size < 1:
            raise _ApiError(400, "simulator: page must be >= 0 and page_size >= 1")
        output = params.get("output_properties")
        if isinstance(output, str) and output:
            try:
                output = json.loads(output)
            except ValueError:
                raise _ApiError(400, "simulator: output_properties must be a JSON array")
        if output in (None, ""):
            output = None
        elif not isinstance(output, list):
            raise _ApiError(400, "simulator: output_properties must be a JSON array")

        if page == 0:
            matching = self._engage_matching(params)
            session_id = sim._new_session(matching)
        else:
            session_id = params.get("session_id")
            with sim._lock:
                if session_id in sim._expiring:
                    sim._expiring.discard(session_id)
                    sim._sessions.pop(session_id, None)
                    raise _ApiError(400, "simulator: the session expired: query again from page 0")
                matching = sim._sessions.get(session_id) if isinstance(session_id, str) else None
            if matching is None:
                raise _ApiError(400, "simulator: page > 0 needs the session_id returned by page 0")
        results = matching[page * page_size:(page + 1) * page_size]
        if output is not None:
            keep = set(output)
            results = [{"$distinct_id": p["$distinct_id"],
                        "$properties": {k: v for k, v in p["$properties"].items() if k in keep}} for p in results]
        response = {"page": page, "page_size": page_size, "results": results, "session_id": session_id,
                    "status": "ok"}
        if page > 0 and sim.engage_page_size_on_page_zero_only:
            del response["page_size"]
        if page == 0:
            response["total"] = len(matching)
        self.send_json(200, response, entry)

    def _engage_matching(self, params: dict) -> list:
        sim = self.server.sim
        cohort = params.get("filter_by_cohort")
        if cohort not in (None, ""):
            if isinstance(cohort, str):
                try:
                    cohort = json.loads(cohort)
                except ValueError:
                    cohort = None
            if not isinstance(cohort, dict) or "id" not in cohort:
                raise _ApiError(400, 'simulator: filter_by_cohort must be {"id": N}')
            profiles = sim.cohort_members(cohort["id"])
        elif params.get("data_group_id") not in (None, ""):
            profiles = sim.group_profiles(params["data_group_id"])
        else:
            profiles = sim.profiles()
        where = params.get("where")
        if where in (None, ""):
            return list(profiles)
        match = _WHERE_RE.match(where) if isinstance(where, str) else None
        if match is None:
            raise _ApiError(400, "simulator: unsupported where")
        bound = match.group(1)
        return [p for p in profiles if p["$properties"].get("$last_seen", "") >= bound
                and "$last_seen" in p["$properties"]]

    def _ep_engage_properties(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        group = params.get("data_group_id")
        summary = _property_summary(sim.group_profiles(group)) if group not in (None, "") else sim._engage_properties()
        self.send_json(200, {"results": summary, "status": "ok"}, entry)

    # ---------------------------------------------------------------- saved Insights reports
    def _ep_insights(self, params: dict, entry: dict) -> None:
        raw = params.get("bookmark_id")
        try:
            bookmark_id = int(raw)
        except (TypeError, ValueError):
            raise _ApiError(400, f"simulator: bookmark_id must be an integer, got {raw!r}")
        if bookmark_id == FUNNELS_BOOKMARK:
            raise _ApiError(400, f"Report {bookmark_id} is a funnels report: this endpoint only queries Insights reports")
        if bookmark_id not in INSIGHTS_REPORTS:
            raise _ApiError(404, f"Report {bookmark_id} not found")
        self.send_json(200, self.server.sim.insights_report(bookmark_id)[0], entry)

    # ---------------------------------------------------------------- events metadata
    def _ep_event_properties(self, params: dict, entry: dict) -> None:
        limit = params.get("limit") or 10  # Mixpanel's default is 10: clients must ask for more
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise _ApiError(400, "simulator: limit must be an integer")
        names = self.server.sim.event_property_names(params.get("event") or None)
        counts = {name: max(1, 5000 - 97 * n) for n, name in enumerate(names)}
        self.send_json(200, {name: {"count": counts[name]} for name in names[:limit]}, entry)

    def _ep_event_names(self, params: dict, entry: dict) -> None:
        kind = params.get("type") or "general"
        if kind not in ("general", "unique", "average"):
            raise _ApiError(400, "simulator: type must be general, unique or average")
        try:
            limit = int(params.get("limit") or 255)
        except (TypeError, ValueError):
            raise _ApiError(400, "simulator: limit must be an integer")
        self.send_json(200, list(EVENT_NAMES)[:limit], entry)

    # ---------------------------------------------------------------- cohorts, funnels, revenue
    def _ep_cohorts(self, params: dict, entry: dict) -> None:
        self.send_json(200, self.server.sim.cohorts(), entry)

    def _ep_funnels_list(self, params: dict, entry: dict) -> None:
        self.send_json(200, self.server.sim.funnels(), entry)

    def _date_range(self, params: dict, from_key="from_date", to_key="to_date", required=True):
        raw_from, raw_to = params.get(from_key), params.get(to_key)
        if not required and raw_from in (None, "") and raw_to in (None, ""):
            return None, None
        from_day, to_day = _parse_day(raw_from), _parse_day(raw_to)
        if from_day is None or to_day is None:
            raise _ApiError(400, f"simulator: {from_key} and {to_key} must be YYYY-MM-DD")
        if from_day > to_day:
            raise _ApiError(400, f"simulator: {from_key} is after {to_key}")
        return from_day, to_day

    def _ep_funnels(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        try:
            funnel_id = int(params.get("funnel_id"))
        except (TypeError, ValueError):
            funnel_id = None
        if funnel_id not in {f[0] for f in sim._funnel_table()}:
            raise _ApiError(400, "simulator: unknown funnel_id")
        if (params.get("unit") or "day") != "day":
            raise _ApiError(400, "simulator: only unit=day is simulated")
        from_day, to_day = self._date_range(params)
        dates = [d.isoformat() for d in _days(from_day, to_day)]
        self.send_json(200, {"meta": {"dates": dates}, "data": {d: sim.funnel_day(funnel_id, d) for d in dates}}, entry)

    def _ep_revenue(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        if (params.get("unit") or "day") != "day":
            raise _ApiError(400, "simulator: only unit=day is simulated")
        from_day, to_day = self._date_range(params)
        days = {d.isoformat(): sim.revenue_day(d.isoformat()) for d in _days(from_day, to_day)}
        overall = {"amount": round(sum(v["amount"] for v in days.values()), 2),
                   "count": sum(v["count"] for v in days.values()),
                   "paid_count": sum(v["paid_count"] for v in days.values())}
        computed_at = dt.datetime.now(dt.timezone.utc).isoformat()
        self.send_json(200, {"computed_at": computed_at, "results": {"$overall": overall, **days}, "status": "ok"},
                       entry)

    # ---------------------------------------------------------------- annotations, me
    def _annotations_between(self, from_day, to_day) -> list:
        rows = self.server.sim.annotations()
        if from_day is None:
            return rows
        return [a for a in rows if from_day.isoformat() <= a["date"][:10] <= to_day.isoformat()]

    def _ep_app_annotations(self, params: dict, entry: dict) -> None:
        from_day, to_day = self._date_range(params, "fromDate", "toDate", required=False)
        self.send_json(200, {"status": "ok", "results": self._annotations_between(from_day, to_day)}, entry)

    def _ep_legacy_annotations(self, params: dict, entry: dict) -> None:
        from_day, to_day = self._date_range(params, required=False)
        self.send_json(200, {"annotations": self._annotations_between(from_day, to_day)}, entry)

    def _ep_me(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        self.send_json(200, {"status": "ok", "results": {
            "projects": {str(PROJECT_ID): {"name": "Simulated project", "timezone": sim.timezone}}}}, entry)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
# Every switch, as `--set NAME=JSON` takes it and `POST /_sim/config` (a JSON object of them) changes it while
# the simulator runs. In process, tests pass them to MixpanelSimulator(...) or configure(...).
SWITCHES = {
    "seed": "what every generated event, profile, cohort and funnel derives from",
    "events_per_day": "events a day in the export",
    "first_event_day": "the first day with events (YYYY-MM-DD)",
    "timezone": "the project's timezone (as /api/app/me reports it)",
    "today": "YYYY-MM-DD: the project's today; later days are refused as Mixpanel does",
    "n_profiles": "generated engage profiles",
    "max_page_size": "engage's cap on page_size",
    "gzip": "gzip export bodies when asked to (Accept-Encoding)",
    "plan_refuses": 'endpoint families a free plan refuses with 402 (["funnels"], or ["all_query"])',
    "retired": 'endpoint families answered with a status as if retired ({"revenue": 410})',
    "auth_error_style": '"401", or "400-text" (a 400 with a text body, as Mixpanel answers some bad credentials)',
    "faults": 'export faults on each window: ' + ", ".join(f'"{fault}"' for fault in FAULTS),
    "fault_attempts": "how many attempts of each window get the faults (then it answers well)",
    "stall_seconds": "how long a stalled export body stops before it goes on",
    "fault_retry_after": "seconds sent as Retry-After with faulty, injected and 5xx answers",
    "cache_bodies": "cache generated export bodies (faster benchmarks)",
    "n_funnels": "saved funnels",
    "n_cohorts": "saved cohorts",
    "n_groups": "group profiles under the first group key (data_group_id 1, company_id); team_id (2) has 40",
    "rate_limits": "enforce Mixpanel's per-project budgets (429 with Mixpanel's body over them)",
    "rate_window_seconds": "the length of Mixpanel's hour",
    "query_per_window": "query requests a window",
    "query_concurrent": "query requests in flight",
    "query_latency": "seconds each query runs (and counts as in flight)",
    "others_in_flight": "queries other clients of the project are running",
    "export_per_window": "export requests a window",
    "export_per_second": "export requests a second",
    "export_concurrent": "export requests in flight",
    "rate_retry_after": "send Retry-After with a 429",
    "engage_page_size_on_page_zero_only": "engage pages after the first omit page_size",
    "expire_next_sessions": "this many new engage sessions expire before their second page",
    "legacy_times": "a project created before 2023: days are local days of `timezone` and `time` is local wall time",
    "late_events": 'events of old days that reach Mixpanel when this is set ({"2025-04-02": 5}), for late arrivals',
}
CONTROL_PATHS = {
    "GET /_sim/config": "every switch and its value",
    "POST /_sim/config": "change switches: a JSON object of them",
    "POST /_sim/spend-budget": 'another client spends the budget: {"seconds": N, "families": ["query", "export"]}',
    "GET /_sim/rate-report": "what the budgets saw: requests a window, 429s, most in flight",
    "GET /_sim/requests": "every request received, with its status and attempt",
    "POST /_sim/reset-log": "forget the requests received",
    "GET /_sim/truth/export?from_date=&to_date=": "the events the export holds for those days",
    "GET /_sim/truth/insights?bookmark_id=": "a saved Insights report's answer and its numbers ($overall totals left out)",
    "GET /_sim/truth/groups?data_group_id=": "the group profiles of a group key",
}


def _help_epilog() -> str:
    width = max(map(len, SWITCHES))
    lines = ["switches (--set NAME=JSON, repeatable; or POST /_sim/config while running):"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SWITCHES.items()]
    lines += ["", "control API:"]
    lines += [f"  {path}  {text}" for path, text in CONTROL_PATHS.items()]
    lines += ["", "In process only: answer() (a canned answer for any path), inject_export_lines(), extra_profiles."]
    return "\n".join(lines)


def _switch(text: str) -> tuple:
    name, _, value = text.partition("=")
    if name not in SWITCHES or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON with NAME one of the switches below, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # a bare string: --set timezone=US/Pacific


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A local fake of Mixpanel's read API (every host on one port).",
                                     epilog=_help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8123, help="the port on 127.0.0.1 (default 8123)")
    parser.add_argument("--seed", type=int, default=7, help=SWITCHES["seed"])
    parser.add_argument("--events-per-day", type=int, default=30, help=SWITCHES["events_per_day"])
    parser.add_argument("--first-event-day", default="2024-01-01", help=SWITCHES["first_event_day"])
    parser.add_argument("--n-profiles", type=int, default=2500, help=SWITCHES["n_profiles"])
    parser.add_argument("--max-page-size", type=int, default=1000, help=SWITCHES["max_page_size"])
    parser.add_argument("--today", default=None, help=SWITCHES["today"])
    parser.add_argument("--timezone", default="UTC", help=SWITCHES["timezone"])
    parser.add_argument("--cache-bodies", action="store_true", help=SWITCHES["cache_bodies"])
    parser.add_argument("--no-gzip", action="store_true", help="never gzip export bodies")
    parser.add_argument("--n-funnels", type=int, default=len(FUNNELS), help=SWITCHES["n_funnels"])
    parser.add_argument("--n-cohorts", type=int, default=len(COHORTS), help=SWITCHES["n_cohorts"])
    parser.add_argument("--rate-limits", action="store_true", help=SWITCHES["rate_limits"])
    parser.add_argument("--rate-window-seconds", type=float, default=3600, help=SWITCHES["rate_window_seconds"])
    parser.add_argument("--set", type=_switch, action="append", default=[], metavar="NAME=JSON",
                        help="any switch below, e.g. --set 'faults=[\"cut\"]'")
    args = parser.parse_args(argv)

    sim = MixpanelSimulator(port=args.port, seed=args.seed, events_per_day=args.events_per_day,
                            first_event_day=args.first_event_day, n_profiles=args.n_profiles,
                            max_page_size=args.max_page_size, today=args.today, timezone=args.timezone,
                            cache_bodies=args.cache_bodies, gzip=not args.no_gzip, n_funnels=args.n_funnels,
                            n_cohorts=args.n_cohorts, rate_limits=args.rate_limits,
                            rate_window_seconds=args.rate_window_seconds)
    try:
        sim.configure(**dict(args.set))
    except ValueError as error:
        parser.error(str(error))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sim.start()
    print(f"simulator listening on {sim.url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
