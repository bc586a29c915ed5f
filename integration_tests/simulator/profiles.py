"""Engage's data: the generated user profiles, saved cohorts, group profiles, and engage's paging sessions."""
from __future__ import annotations

import datetime as dt
import random
import re
import time
import zlib

from .common import PROJECT_ID
from .events import BROWSERS

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

# Group keys (group analytics): data_group_id -> (the group key's property, groups under it; n_groups for the first).
GROUP_KEYS = {1: ("company_id", 350), 2: ("team_id", 40)}
ODD_IDS_GROUP_KEY = 2  # the group key odd_group_ids changes
_INDUSTRIES = ("SaaS", "Retail", "Banque & Finance", "Gesundheitswesen", "製造業", None)
_COMPANY_WORDS = ("acme", "société", "東京商事", "umbrella", "initech", "ÆON")

_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def _fmt_dt(value: dt.datetime, sep: str = "T") -> str:
    return value.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


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


def property_summary(profiles: list) -> dict:
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


def _with_id(group: dict, group_id) -> dict:
    """The group profile with another id, or with none when group_id is None."""
    return {**({} if group_id is None else {"$distinct_id": group_id}), "$properties": group["$properties"]}


class ProfileData:
    """Profiles, cohorts and groups, deterministic from the seed (a mixin of MixpanelSimulator)."""

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
            "$browser": rng.choice(BROWSERS),
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
            # An extra profile may carry an integer id, or none at all.
            return sorted(cached + self.extra_profiles, key=lambda p: str(p.get("$distinct_id", "")))
        return cached

    def engage_property_types(self) -> dict[str, str]:
        """Profile property name -> Mixpanel type, as engage/properties reports it."""
        return {name: info["type"] for name, info in self._engage_properties().items()}

    def _engage_properties(self) -> dict:
        return property_summary(self.profiles())

    # ---------------------------------------------------------------- cohorts
    def _cohort_table(self) -> tuple:
        """COHORTS, then small generated cohorts up to n_cohorts."""
        extra = tuple((5000 + i, f"Saved cohort {i}", "", "2024-02-01 00:00:00", 1, 5 + i % 20)
                      for i in range(max(0, self.n_cohorts - len(COHORTS))))
        return (COHORTS + extra)[: self.n_cohorts]

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
        if data_group_id == ODD_IDS_GROUP_KEY and self.odd_group_ids:
            return [_with_id(group, odd) for group, odd in zip(cached, self.odd_group_ids)] + cached[len(self.odd_group_ids):]
        return cached

    def group_property_types(self, data_group_id) -> dict[str, str]:
        """Group property name -> Mixpanel type, as engage/properties reports it for that group key."""
        return {name: info["type"] for name, info in property_summary(self.group_profiles(data_group_id)).items()}

    # ---------------------------------------------------------------- engage sessions
    def _new_session(self, matching: list) -> str:
        with self._lock:
            self._session_counter += 1
            sid = f"{1700000000 + self._session_counter}-SIM{self._session_counter:05X}"
            self._sessions[sid] = matching
            self._session_last_page[sid] = time.monotonic()
            if self.expire_next_sessions > 0:
                self.expire_next_sessions -= 1
                self._expiring.add(sid)
            while len(self._sessions) > 500:
                oldest = next(iter(self._sessions))
                self._sessions.pop(oldest)
                self._session_last_page.pop(oldest, None)
        return sid

    def _session_outlived(self, sid) -> bool:
        """Whether the session went without a page for longer than engage_session_seconds; if not, it is used now."""
        with self._lock:
            now, last = time.monotonic(), self._session_last_page.get(sid)
            if last is None:
                return False
            if self.engage_session_seconds is not None and now - last > self.engage_session_seconds:
                return True
            self._session_last_page[sid] = now
            return False
