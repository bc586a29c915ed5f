"""What an export run knows beyond its windows: the saved read, late events, how `time` is stored, the dedup key.

Which days the last run read and when (so that re-read days give only what Mixpanel received since), when this run
reads them (saved beside the cursor), how the project stores `time`, and each event's dedup key.

Python because a manifest cursor keeps one value per stream and a decoder never sees the saved state.
"""

import calendar
import datetime
import email.utils
import json
import logging
import statistics
import threading
import time
import zoneinfo
from hashlib import blake2b
from typing import IO, Any, Dict, List, Mapping, Optional, Tuple

import orjson
import requests

from source_mixpanel import sync_run
from source_mixpanel.export.lines import events, spooled_lines, unix_time
from source_mixpanel.failures import config_error

logger = logging.getLogger("airbyte")

# An event Mixpanel received up to this long before the last run read its day still counts as new: the export may
# show an event a little after Mixpanel received it. Events it re-sends are duplicates that dedup_key merges.
MARGIN_MS = 3_600_000
LOCAL_DAY_LEAD = 14 * 3600  # a legacy project's days are local: one begins up to 14 h before the UTC day (UTC+14)
READ_KEYS = ("read_at", "read_from")  # the export state's keys for the last read, beside its cursor
DEDUP_KEY = "dedup_key"  # the export's primary key: the column dedup_key() fills
DETECTION_SAMPLE = 1000  # events of the first window that tell how the project stores `time`: enough to decide
DETECTION_SCAN = 10 * DETECTION_SAMPLE  # events whose readings differ read at most, when few tell (imports)
DETECTION_MINIMUM, DETECTION_AGREEMENT = 10, 0.8  # fewer events that tell, or less agreement, is unclear evidence
# Mixpanel cannot receive an event before it happens: a reading that says so is impossible, beyond a clock difference.
CLOCK_TOLERANCE = 300
PROMPT_DELAY = 1800  # events received later than this under both readings (imports, backfills) do not tell
STORAGE_CHOICES = {"utc": "UTC (projects created since 2023)", "project_timezone": "the project's timezone (projects created before 2023)"}
DEFAULT_STORAGE = "utc"  # what 4.x assumed and the raw value Mixpanel sends; docs/streams.md, Event times, says why
STORAGE_KEY = "time_storage"  # the decision, in the export state beside its cursor: made once, kept


def dedup_key(event: Mapping[str, Any], seconds: float) -> str:
    """Mixpanel's duplicate rule as one string: event name, distinct_id, time to the second and `$insert_id`; an
    event without `$insert_id` is keyed by its whole content, so two events share a key only when Mixpanel
    would call them duplicates or they are identical in every property."""
    properties = event["properties"]
    insert_id = properties.get("$insert_id")
    if insert_id is not None:
        material = _compact([event["event"], properties.get("distinct_id"), int(seconds), insert_id], sort_keys=False)
    else:  # never starts with `[`, so it cannot meet the list above
        material = b"\0" + _compact(event, sort_keys=True)
    return blake2b(material, digest_size=16).hexdigest()


def _compact(value: Any, sort_keys: bool) -> bytes:
    """Compact JSON; through json where orjson refuses a value (an integer beyond 64 bits, a lone surrogate), which
    writes the same text for everything orjson takes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def _day_start(day: str) -> float:
    return float(calendar.timegm(datetime.date.fromisoformat(day).timetuple()))


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _parse_iso(text: Any) -> Optional[float]:
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def _next_day(day: str, days: int) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=days)).isoformat()


def _saved_read(state: Mapping[str, Any]) -> Tuple[Dict[str, str], Tuple[float, float], Optional[int]]:
    """The saved read, its days as Unix seconds and its cutoff in ms; none when the state has none, or one that
    cannot be true (a read_at after this machine's clock, or before the first day it read began anywhere):
    believed, it would hide events, so those days are read whole again (duplicates that dedup_key merges), with one
    WARN. `time` may be days past read_at: a sync whose lookback failed keeps the read while later windows move it."""
    read_at, read_from, saved_time = _parse_iso(state.get("read_at")), state.get("read_from"), state.get("time")
    if read_at is None or not isinstance(read_from, str) or not isinstance(saved_time, str):
        return {}, (0.0, 0.0), None
    try:
        days = (_day_start(read_from), _day_start(saved_time[:10]) + 86400)
    except ValueError:
        return {}, (0.0, 0.0), None
    if read_at > time.time() or read_at < days[0] - LOCAL_DAY_LEAD:
        logger.warning(f"The saved state of export says it read its days from {read_from} at {state['read_at']}, which "
                       f"cannot be (before {read_from} began, or after this machine's clock: {_iso(time.time())}): every "
                       f"event of its days up to {saved_time} is read again, and duplicates are merged by {DEDUP_KEY}.")
        return {}, (0.0, 0.0), None
    return {"read_at": state["read_at"], "read_from": read_from}, days, int(read_at * 1000) - MARGIN_MS


class ProjectClock:
    """A project's timezone as offsets, cached per quarter hour (every timezone changes its offset on one).

    Python because the manifest's time handling works per stream slice, not per event of a legacy project."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.zone = zoneinfo.ZoneInfo(name)
        self._from_utc: Dict[int, int] = {}
        self._from_local: Dict[int, Tuple[int, int]] = {}

    def offset_at_utc(self, seconds: float) -> int:
        bucket = int(seconds) // 900
        offset = self._from_utc.get(bucket)
        if offset is None:
            moment = datetime.datetime.fromtimestamp(bucket * 900, self.zone)
            offset = self._from_utc[bucket] = int(moment.utcoffset().total_seconds())
        return offset

    def to_utc(self, local: float, received_ms: Any = None) -> float:
        """A local wall time written as Unix seconds -> the true instant. In the repeated hour of a DST change the
        wall time names two instants: the one Mixpanel received the event after is taken, the later when both
        qualify (an event reaches Mixpanel after it happens)."""
        bucket = int(local) // 900
        offsets = self._from_local.get(bucket)
        if offsets is None:
            wall = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=bucket * 900)
            offsets = self._from_local[bucket] = tuple(  # type: ignore[assignment]
                int(wall.replace(tzinfo=self.zone, fold=fold).utcoffset().total_seconds()) for fold in (0, 1))
        first, second = local - offsets[0], local - offsets[1]
        if first == second or not isinstance(received_ms, (int, float)):
            return first
        return max(first, second) if received_ms / 1000 >= max(first, second) else min(first, second)

    def to_local(self, seconds: float) -> float:
        return seconds + self.offset_at_utc(seconds)


class ExportRun:
    """One run of the export stream: the saved read (days and when), this run's read, and how times are stored.

    Python because a manifest cursor keeps one value per stream and a decoder never sees the saved state."""

    def __init__(self, config: Mapping[str, Any], saved_state: Optional[Mapping[str, Any]], incremental: bool) -> None:
        self.clock = ProjectClock(config.get("project_timezone") or "US/Pacific")
        configured = config.get("event_time_storage") or "detect"
        saved = (saved_state or {}).get(STORAGE_KEY) if incremental and configured == "detect" else None
        if isinstance(saved, str) and saved in STORAGE_CHOICES:  # any other saved value: SavedStateCheck refused it
            configured = saved  # an earlier sync decided: never detected again
        self._kept = None if configured == "detect" else configured  # what the state carries: set or decided
        if configured == "detect" and self.clock.name.upper() in ("UTC", "ETC/UTC", "GMT", "ETC/GMT"):
            configured = "utc"  # both readings are the same instant: nothing to detect
        self.storage: Optional[str] = None if configured == "detect" else configured
        self._lock = threading.Lock()
        self._first_request_ms: Optional[int] = None
        self._newest_received_ms: Optional[int] = None
        self._first_day: Optional[str] = None  # of this run's first window
        self._read_days: set = set()  # days of this run's windows read whole
        self._read_through: Optional[str] = None  # the last day up to which every day from _first_day is read whole
        # Days from read_from to the saved day were read whole at read_at: only what arrived since is new there.
        self._saved, self.reread, self.cutoff_ms = _saved_read(dict(saved_state or {}) if incremental else {})

    # ------------------------------------------------------------------------------------------- filter
    def filters(self, first_day: str, last_day: str) -> bool:
        """Whether a window of these days reaches back into days the last run read."""
        if self.cutoff_ms is None:
            return False
        try:
            return _day_start(first_day) < self.reread[1] and _day_start(last_day) + 86400 > self.reread[0]
        except ValueError:  # a window without its days cannot be placed: everything in it comes out
            return False

    # ------------------------------------------------------------------------------------------- this run's read
    def requested(self, response: requests.Response, sent_monotonic: float) -> None:
        """Keeps the earliest moment this run asked for a window, on Mixpanel's clock (its Date header) or this
        machine's, whichever is earlier: a clock that runs ahead would count events as read before they were."""
        sent = time.time() - (time.monotonic() - sent_monotonic)
        date = response.headers.get("Date")
        if date:
            try:
                sent = min(sent, email.utils.parsedate_to_datetime(date).timestamp() - response.elapsed.total_seconds())
            except (TypeError, ValueError):
                pass
        sent_ms = int(sent * 1000)
        with self._lock:
            if self._first_request_ms is None or sent_ms < self._first_request_ms:
                self._first_request_ms = sent_ms

    def received_until(self, newest_ms: int) -> None:
        """Keeps the newest mp_processing_time_ms of a window read: Mixpanel's own clock had passed it."""
        with self._lock:
            if self._newest_received_ms is None or newest_ms > self._newest_received_ms:
                self._newest_received_ms = newest_ms

    def planned(self, window: Mapping[str, Any]) -> None:
        """Notes a window of this run (the cursor plans them in order, earliest first)."""
        with self._lock:
            if self._first_day is None or window["start_time"][:10] < self._first_day:
                self._first_day = window["start_time"][:10]
                self._read_through = _next_day(self._first_day, -1)
                self._advance()

    def read_whole(self, window: Mapping[str, Any]) -> None:
        """Notes a window whose every record was handed to the platform."""
        day, last = window["start_time"][:10], window["end_time"][:10]
        with self._lock:
            while day <= last:
                self._read_days.add(day)
                day = _next_day(day, 1)
            self._advance()

    def _advance(self) -> None:
        while self._read_through is not None and _next_day(self._read_through, 1) in self._read_days:
            self._read_through = _next_day(self._read_through, 1)

    def state_extras(self, cursor_value: Any) -> Dict[str, str]:
        """What the export state carries beside its cursor value: this run's read once every window from its first to
        the cursor's day is read whole, else the saved read (a day counts as read at read_at only once a window
        that covers it, asked at read_at or later, is read whole). read_at is also at most the margin after the
        newest event this run saw Mixpanel receive (to the next second): whatever the clocks say, an event Mixpanel
        receives after a run is never taken for one it delivered. A run that saw no such event claims nothing.
        Beside the read: how the project stores `time` once that is set or decided."""
        with self._lock:
            kept = {STORAGE_KEY: self._kept} if self._kept else {}
            finished = (self._first_request_ms is not None and self._read_through is not None
                        and isinstance(cursor_value, str) and cursor_value[:10] <= self._read_through)
            if not finished:
                return {**self._saved, **kept}
            if self._newest_received_ms is None:
                return kept
            read_at = min(self._first_request_ms, self._newest_received_ms + MARGIN_MS + 1000)
            return {"read_at": _iso(read_at // 1000), "read_from": self._first_day, **kept}

    # ------------------------------------------------------------------------------------------- time storage
    def decide_storage(self, spool: IO[bytes], window: str) -> None:
        """For `detect`: tells from the window's events how the project stores `time`, once, before any record is
        emitted; the state keeps the decision (`pointed_storage` says how one event tells). While the offset is 0
        both readings agree, and while no event is out nothing depends on the decision: it waits for a later window."""
        if self.storage is not None or self._offset_is_zero_throughout(window):
            return
        # Read outside the lock: the other windows' threads note their reads meanwhile.
        told, differing, unknown = self._tally(spool)
        with self._lock:
            if self.storage is not None:  # another window decided meanwhile: the decision is made once
                return
            if not differing:
                if unknown:  # the two readings differ here and nothing tells which holds: never guess
                    message = (f"The export of {window} gives no mp_processing_time_ms to tell how the project stores "
                               f"event times: set event_time_storage to utc (projects created since 2023) or "
                               f"project_timezone (before 2023).")
                    raise config_error(message)
                return
            self._decide(told, differing, window)

    def _offset_is_zero_throughout(self, window: str) -> bool:
        """Whether the project's UTC offset is 0 at every day boundary of the window (`from..to`), so no event of it
        can tell: a zone changes its offset at most once a day."""
        first, _, last = window.partition("..")
        try:
            boundary, end = _day_start(first), _day_start(last) + 86400
        except ValueError:  # days that cannot be placed: the events are read
            return False
        while boundary <= end:
            if self.clock.offset_at_utc(boundary):
                return False
            boundary += 86400
        return True

    def _tally(self, spool: IO[bytes]) -> Tuple[Dict[str, List[Tuple[float, int]]], int, int]:
        """The window's events that tell, by reading, with their delays and offsets; how many events the readings
        differ for; how many of those have no mp_processing_time_ms. Reads up to DETECTION_SAMPLE events that tell
        or DETECTION_SCAN events the readings differ for, whichever comes first."""
        told: Dict[str, List[Tuple[float, int]]] = {choice: [] for choice in STORAGE_CHOICES}
        differing = unknown = voters = 0
        for _, event, _, _ in events(spooled_lines(spool)):
            properties = event["properties"]
            received, seconds = properties.get("mp_processing_time_ms"), unix_time(properties.get("time"))
            # The wall time read in the project's timezone: on a DST day its offset is not the one at the same
            # numbers read as UTC, which made prompt events look received before their time.
            offset = 0 if seconds is None else round(seconds - self.clock.to_utc(seconds, received))
            if not offset:
                continue
            if not isinstance(received, (int, float)) or isinstance(received, bool):
                unknown += 1
            else:
                differing += 1
                delay = received / 1000 - seconds
                choice = pointed_storage(delay, offset)
                if choice is not None:
                    told[choice].append((delay, offset))
                    voters += 1
            if voters >= DETECTION_SAMPLE or differing + unknown >= DETECTION_SCAN:
                break
        return told, differing, unknown

    def _decide(self, told: Mapping[str, List[Tuple[float, int]]], differing: int, window: str) -> None:
        """The decision from the events that tell, logged with its evidence: the default when they are too few or
        disagree, at WARN."""
        choice = max(told, key=lambda name: len(told[name]))
        agree, voters = len(told[choice]), sum(map(len, told.values()))
        if voters < DETECTION_MINIMUM or agree < DETECTION_AGREEMENT * voters:
            self.storage = self._kept = DEFAULT_STORAGE
            logger.warning(
                f"Event times: the events of {window} do not tell how the project stores them: {voters:,} of "
                f"{differing:,} tell ({len(told['utc']):,} point to UTC, {len(told['project_timezone']):,} to "
                f"{self.clock.name} time) where {DETECTION_MINIMUM} are needed, {DETECTION_AGREEMENT:.0%} of them "
                f"agreeing; events received over {PROMPT_DELAY // 60} min after their time either way, as imported ones "
                f"are, do not tell. The connector takes {STORAGE_CHOICES[DEFAULT_STORAGE]}, the default, and the state "
                f"keeps it for later syncs: if the project was created before 2023, set event_time_storage to "
                f"project_timezone and reset the export stream.")
            return
        self.storage = self._kept = choice
        delay = statistics.median(delay for delay, _ in told[choice])
        offset = statistics.median(offset for _, offset in told[choice])
        delays = {"utc": delay, "project_timezone": delay + offset}
        read = {"utc": "read as UTC", "project_timezone": f"read in {self.clock.name} time (UTC{offset / 3600:+g})"}
        other = "project_timezone" if choice == "utc" else "utc"
        logger.info(f"Event times: this project stores them in {STORAGE_CHOICES[choice]}, and the state keeps that for "
                    f"later syncs. In {window}, {agree:,} of the {voters:,} events that tell point to it: Mixpanel "
                    f"received them a median of {_after(delays[choice])} their time {read[choice]}, against "
                    f"{_after(delays[other])} it {read[other]}. Events received over {PROMPT_DELAY // 60} min after "
                    f"their time either way (imports) do not tell; set event_time_storage to override.")

    def true_time(self, seconds: float, received_ms: Any) -> float:
        """An event's `time` as the true instant."""
        return self.clock.to_utc(seconds, received_ms) if self.storage == "project_timezone" else seconds

    def cursor_time(self, text: str) -> str:
        """A record's true `time` -> the value the cursor keeps: Mixpanel's own day labels, which are local wall
        times for a project that stores them (its windows are local days)."""
        if self.storage != "project_timezone":
            return text
        seconds = _parse_iso(text)
        return text if seconds is None else _iso(self.clock.to_local(seconds))


def pointed_storage(delay: float, offset: int) -> Optional[str]:
    """How one event tells the storage, from Mixpanel's delay in receiving it with `time` read as UTC and the
    project's UTC offset then (read as local time, the delay is `delay + offset`): a reading under which Mixpanel
    received it before it happened is impossible; of two possible readings, the one under which it came within
    PROMPT_DELAY is taken (the other makes it the offset late); an event late either way (an import) tells nothing."""
    if not offset:
        return None
    smaller, larger = ("utc", "project_timezone") if offset > 0 else ("project_timezone", "utc")
    earliest = min(delay, delay + offset)
    if earliest + abs(offset) < -CLOCK_TOLERANCE:  # before its time either way: a device clock ahead
        return None
    if earliest < -CLOCK_TOLERANCE:
        return larger
    return smaller if earliest <= PROMPT_DELAY else None


def _after(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min {'before' if seconds < 0 else 'after'}"


def begin(config: Mapping[str, Any], saved_state: Optional[Mapping[str, Any]], incremental: bool) -> ExportRun:
    """The export run its components share, kept in the sync run (one per source)."""
    sync_run.current().export = ExportRun(config, saved_state, incremental)
    return sync_run.current().export


def current(config: Mapping[str, Any]) -> ExportRun:
    """The export run begun by the source; components built outside a source (unit tests) get one of their own."""
    return sync_run.current().export or begin(config, None, False)
