"""The generated export events: their templates, each day's lines, late arrivals, imported events and legacy local times."""
from __future__ import annotations

import calendar
import datetime as dt
import json
import random
import time
import zlib

from .common import days_between

EVENT_DISTINCT_IDS = 3000  # events draw their distinct_id from this many ids (profiles use a prefix)

# Every export line is a fixed prefix for the event name, four per-event core values, and two pre-encoded
# property fragments (one "common", one per event name), so generating a line is one f-string, not a json.dumps.
EVENT_NAMES = ("Page View", "Signed up", "Purchase", "Ünïcode ✓ event", "Logged in")
_NAME_SLOTS = (0,) * 10 + (1,) * 3 + (2,) * 3 + (3,) * 2 + (4,) * 2  # weights out of 20

BROWSERS = ("Chrome", "Firefox", "Safari", "Mobile Safari", "Microsoft Edge")
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
        {"price": 1234.5, "currency": "JPY", "quantity": 10},
    ),
    "Ünïcode ✓ event": ({"ключ": "значение", "키": "값 ✓"}, {"ключ": "ещё"}),
    "Logged in": ({"method": "sso"}, {"method": "password", "attempts": 3}),
}
_CORE_PROPS = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")
_RARE_FRAGMENT = ',"$rare_prop":"only in a few events"'


def _frag(props: dict) -> str:
    """A dict's members as a JSON fragment that starts with a comma ('' for an empty dict)."""
    text = json.dumps(props, ensure_ascii=False, separators=(",", ":"))
    return "" if text == "{}" else "," + text[1:-1]


# Properties that make typing columns hard (docs/columns.md), by common slot k: one kind each, with the traps a
# sample must not fall into. build_number is an integer before the day kind_change_from and text from it; under
# property_kinds="hard" one event in HARD_EVERY carries a value of another kind in four of them.
HARD_EVERY = 101
# One event in WIDE_EVERY (each day's eighth among them) has an account_id beyond 64 bits, rare as in real projects.
WIDE_EVERY = 1000
HARD_PROPERTIES = ("score", "weight", "trial_ends", "tags")


def _typed_props(k: int, text_builds: bool, hard: bool, wide: bool = False) -> dict:
    props = {
        "score": "n/a" if hard else k * 3,
        "weight": True if hard else 1.0 if k % 5 == 0 else k + 0.5 if k % 2 else k,
        "account_id": 2**64 + k if wide else 100000 + k,
        "trial_ends": 1743500000 + k if hard else f"2025-04-{k % 28 + 1:02d}T09:30:00{'.250' if k % 4 == 2 else ''}",
        "build_number": f"2025.03.{k % 28 + 1:02d}-rc{k % 3 + 1}" if text_builds else 1000 + k,
    }
    if k % 3 == 1:
        props["cart"] = {"items": [{"sku": f"SKU-{k}", "qty": k % 4 + 1}], "total": k + 0.99, "gift": k % 2 == 0}
    if k % 3 != 1 or hard:
        props["tags"] = "promo" if hard else ["new", "promo", "vip"][: k % 3 + 1]
    return props


# The typed fragments by common slot: _TYPED[(build numbers as text, hard, wide)][k].
_TYPED = {(text, hard, wide): tuple(_frag(_typed_props(k, text, hard, wide)) for k in range(35))
          for text in (False, True) for hard in (False, True) for wide in (False, True)}
# The day's first event has a null coupon, one in ten a code: a sample meets null before text.
_COUPON_NULL, _COUPON_CODE = ',"coupon":null', ',"coupon":"SPRING25"'


def _extra_props(count: int, k: int) -> dict:
    """extra_event_properties: `count` more properties in the project, of four kinds in turn; an event of common
    slot k carries those numbered k modulo 35 (2,000 properties: 57 an event), as a wide project's events do."""
    kinds = (lambda j: j * 35 + k, lambda j: j + k / 8, lambda j: f"v{k}", lambda j: k % 2 == 0)
    return {f"extra_{j:04d}": kinds[j % 4](j) for j in range(k % 35, count, 35)}


def _common_props(k: int) -> dict:
    props = {
        "$browser": BROWSERS[k % 5],
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
    for k in range(35):
        names.extend(_typed_props(k, False, False))
    names.append("coupon")
    for name in EVENT_NAMES if event is None else [event]:
        for specific in _BY_NAME.get(name, ()):
            names.extend(specific)
    return list(dict.fromkeys(names))


class EventData:
    """The events export serves, deterministic from the seed and the day (a mixin of MixpanelSimulator)."""

    @property
    def late_events(self) -> dict:
        return {day: count for day, (count, _) in self._late_received.items()}

    @late_events.setter
    def late_events(self, days: dict) -> None:
        """Events that reach Mixpanel now for old days (an offline flush, an import): received now, or
        late_received_ago seconds before (shown in the export only from now), once per change."""
        now_ms = int((time.time() - self.late_received_ago) * 1000)
        with self._lock:
            self._late_received = {day: (count, self._late_received[day][1] if self._late_received.get(day, (None,))[0] == count
                                             else now_ms) for day, count in days.items() if count}

    def _true_instant(self, wall: int, zone, fold: int) -> tuple[int, int]:
        """A local wall time written as Unix seconds -> (the wall time Mixpanel writes, the true instant); a wall time
        that a DST change skips is written as the one after the gap, as a clock that jumps would show it."""
        local = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=wall)
        true = int(local.replace(tzinfo=zone, fold=fold).timestamp())
        shown = true + int(dt.datetime.fromtimestamp(true, zone).utcoffset().total_seconds())
        return shown, true

    def kind_change_day(self) -> dt.date:
        """The first day build_number is text: kind_change_from, by default the Monday of today's week (a sample
        of the last whole week never sees it)."""
        if self.kind_change_from:
            return dt.date.fromisoformat(self.kind_change_from)
        today = self.today_date()
        return today - dt.timedelta(days=today.weekday())

    def _extra_fragments(self) -> tuple:
        """extra_event_properties' fragments by common slot ('' each without them)."""
        count = self.extra_event_properties
        with self._lock:
            fragments = self._memo.get(("extra", count))
            if fragments is None:
                fragments = self._memo[("extra", count)] = tuple(_frag(_extra_props(count, k)) for k in range(35))
            return fragments

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
        return list(days_between(first, last))

    def _day_batches(self, day: dt.date, count: int, wanted, batch: int = 8192):
        """Yield lists of JSON lines for one UTC day (deterministic from seed and date).

        The random stream is consumed identically whatever the filter, so a filtered export is
        exactly a subset of the unfiltered one."""
        bits = random.Random(f"{self.seed}:events:{day.isoformat()}").getrandbits
        t0 = calendar.timegm(day.timetuple())
        zone = self._clock() if self.legacy_times else None
        imported = self.imported_events.get(day.isoformat())
        share, import_delay = (imported["share"], round(imported["hours"] * 3600)) if imported else (0, 0)
        ymd = day.strftime("%Y%m%d")
        dids = self._event_ids_json()
        n_ids, n_commons = len(dids), len(_COMMONS)
        prefixes, commons, extras, slots = _PREFIXES, _COMMONS, _EXTRAS, _NAME_SLOTS
        n_extras = tuple(len(e) for e in extras)
        typed = _TYPED[(day >= self.kind_change_day(), False, False)]
        wide = _TYPED[(day >= self.kind_change_day(), False, True)]
        rare = _TYPED[(day >= self.kind_change_day(), True, False)] if self.property_kinds == "hard" else typed
        more = self._extra_fragments()
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
            received = true + 60 + (b >> 22) % 3600
            if share and int((i + 1) * share) > int(i * share):  # spread evenly, exactly share x count of the day's events
                received += import_delay
            append(
                f'{prefixes[ni]}{t},"distinct_id":{dids[b % n_ids]},'
                f'"$insert_id":"{insert_id}",'
                f'"mp_processing_time_ms":{received * 1000 + (a >> 22) % 1000}'
                f'{commons[(b >> 12) % n_commons]}{extras[ni][(b >> 18) % n_extras[ni]]}'
                f'{_RARE_FRAGMENT if i % 50 == 7 else ""}'
                f'{(rare if i % HARD_EVERY == 17 else wide if i % WIDE_EVERY == 7 else typed)[(b >> 12) % n_commons]}'
                f'{_COUPON_NULL if i == 0 else _COUPON_CODE if i % 10 == 3 else ""}{more[(b >> 12) % n_commons]}}}}}\n'
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
        key = (self.seed, self.events_per_day, self.first_event_day, self.today_date(), self.kind_change_day(),
               self.property_kinds, self.extra_event_properties, from_day, to_day,
               None if events is None else tuple(events), limit, self.legacy_times, self.timezone,
               tuple(sorted(self._late_received.items())), json.dumps(self.imported_events, sort_keys=True))
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
        key = ("gz", self.seed, self.events_per_day, self.first_event_day, self.today_date(), self.kind_change_day(),
               self.property_kinds, self.extra_event_properties) + body_key_args
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
        extras = [name for k in range(35) for name in _extra_props(self.extra_event_properties, k)]
        return _event_property_names(event) + sorted(extras)
