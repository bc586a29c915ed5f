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
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.export_lines import events, spooled_lines, unix_time

logger = logging.getLogger("airbyte")

# An event Mixpanel received up to this long before the last run read its day still counts as new: the export may
# show an event a little after Mixpanel received it. Events it re-sends are duplicates that dedup_key merges.
MARGIN_MS = 3_600_000
DEDUP_KEY = "dedup_key"  # the export's primary key: the column dedup_key() fills
DETECTION_SAMPLE = 1000  # events of the first window that decide how the project stores `time`
STORAGE_CHOICES = {"utc": "UTC (projects created since 2023)", "project_timezone": "the project's timezone (projects created before 2023)"}


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
        if configured == "detect" and self.clock.name.upper() in ("UTC", "ETC/UTC", "GMT", "ETC/GMT"):
            configured = "utc"  # both readings are the same instant: nothing to detect
        self.storage: Optional[str] = None if configured == "detect" else configured
        self._lock = threading.Lock()
        self._first_request_ms: Optional[int] = None
        self._first_day: Optional[str] = None
        state = dict(saved_state or {}) if incremental else {}
        self._saved = {key: state[key] for key in ("read_at", "read_from") if key in state}
        # Days from read_from to the saved day were read whole at read_at: only what arrived since is new there.
        read_at, saved_time = _parse_iso(state.get("read_at")), state.get("time")
        self.cutoff_ms: Optional[int] = None
        self.reread: Tuple[float, float] = (0.0, 0.0)
        if read_at is not None and isinstance(saved_time, str) and isinstance(state.get("read_from"), str):
            try:
                self.reread = (_day_start(state["read_from"]), _day_start(saved_time[:10]) + 86400)
            except ValueError:
                return
            self.cutoff_ms = int(read_at * 1000) - MARGIN_MS

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
    def requested(self, response: requests.Response, first_day: str) -> None:
        """Keeps the earliest moment, on Mixpanel's clock (its Date header), that this run asked for a window."""
        sent = time.time()
        date = response.headers.get("Date")
        if date:
            try:
                sent = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                pass
        sent_ms = int((sent - response.elapsed.total_seconds()) * 1000)
        with self._lock:
            if self._first_request_ms is None or sent_ms < self._first_request_ms:
                self._first_request_ms = sent_ms
            if self._first_day is None or first_day < self._first_day:
                self._first_day = first_day

    def state_extras(self) -> Dict[str, str]:
        """What the export state carries beside its cursor: this run's read once it has one, else the saved one."""
        with self._lock:
            if self._first_request_ms is None:
                return dict(self._saved)
            return {"read_at": _iso(self._first_request_ms // 1000), "read_from": self._first_day}

    # ------------------------------------------------------------------------------------------- time storage
    def decide_storage(self, spool: IO[bytes], window: str) -> None:
        """For `detect`: tells from the window's events how the project stores `time`, once, before any record is
        emitted. Mixpanel receives an event shortly after it happens; a project that stores local wall times shows
        that delay shifted by its UTC offset. While the offset is 0 both readings agree and nothing is decided."""
        if self.storage is not None:
            return
        with self._lock:
            if self.storage is not None:
                return
            delays, offsets, unknown = [], [], 0
            for number, (_, event, _) in enumerate(events(spooled_lines(spool))):
                properties = event["properties"]
                received, seconds = properties.get("mp_processing_time_ms"), unix_time(properties.get("time"))
                if isinstance(received, (int, float)) and not isinstance(received, bool) and seconds is not None:
                    delays.append(received / 1000 - seconds)
                    offsets.append(self.clock.offset_at_utc(seconds))
                elif seconds is not None and self.clock.offset_at_utc(seconds):
                    unknown += 1
                if len(delays) >= DETECTION_SAMPLE or number >= 10 * DETECTION_SAMPLE:
                    break
            if not delays:
                if unknown:  # the two readings differ here and nothing tells which holds: never guess
                    message = (f"The export of {window} gives no mp_processing_time_ms to tell how the project stores "
                               f"event times: set event_time_storage to utc (projects created since 2023) or "
                               f"project_timezone (before 2023).")
                    raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)
                return
            delay, offset = statistics.median(delays), statistics.median(offsets)
            if offset == 0:
                return
            self.storage = "project_timezone" if abs(delay + offset) < abs(delay) else "utc"
            as_utc, as_local = _hours(delay), _hours(delay + offset)
            logger.info(f"Event times: this project stores them in {STORAGE_CHOICES[self.storage]}. In {window}, Mixpanel "
                        f"received {len(delays):,} events a median of {as_utc if self.storage == 'utc' else as_local} "
                        f"after their time read that way, against {as_local if self.storage == 'utc' else as_utc} read the "
                        f"other way ({self.clock.name}, UTC{offset / 3600:+g}). Set event_time_storage to override.")

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


def _hours(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    minutes = int(abs(seconds) // 60)
    return f"{sign}{minutes // 60} h {minutes % 60:02d} min"


_current: List[ExportRun] = []


def begin(config: Mapping[str, Any], saved_state: Optional[Mapping[str, Any]], incremental: bool) -> ExportRun:
    """The run the export's components share; one per source (one per process for the command)."""
    _current[:] = [ExportRun(config, saved_state, incremental)]
    return _current[0]


def current(config: Mapping[str, Any]) -> ExportRun:
    """The run begun by the source; components built outside a source (unit tests) get a run of their own."""
    if not _current:
        begin(config, None, False)
    return _current[0]
