"""The saved reports: funnels, revenue, annotations and saved Insights reports, each a function of the seed and day."""
from __future__ import annotations

import datetime as dt
import random

from .events import EVENT_NAMES

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
ODD_LEAVES_REPORT = 61001  # the report insights_odd_leaves changes
ODD_KEYS_FUNNEL = 7509
ANNOTATION_TAGS = {"release": 3101, "marketing": 3102, "q1": 3103, "pricing": 3104, "empty description": 3105}  # name -> id  # the funnel odd_date_keys changes (and revenue)


def _leaf_sum(tree: dict, key: str):
    """The sum of every number under `key` in a series subtree, its `$overall` totals left out."""
    total = 0
    for name, child in tree.items():
        if name != "$overall":
            total += child.get(key, 0) if not isinstance(next(iter(child.values()), None), dict) else _leaf_sum(child, key)
    return round(total, 2) if isinstance(total, float) else total


def _without_dates(tree: dict) -> dict:
    """A series with each innermost object (date -> number) replaced by its first number: no date level."""
    return {key: (_without_dates(child) if isinstance(next(iter(child.values()), None), dict) else next(iter(child.values())))
            for key, child in tree.items()}


class ReportData:
    """What the funnels, revenue, annotations and insights endpoints answer (a mixin of MixpanelSimulator)."""

    # ---------------------------------------------------------------- funnels, revenue, annotations
    def _funnel_table(self) -> tuple:
        """FUNNELS, then generated two-step funnels up to n_funnels."""
        extra = tuple((7600 + i, f"Saved funnel {i}", (EVENT_NAMES[i % 5], EVENT_NAMES[(i + 1) % 5]))
                      for i in range(max(0, self.n_funnels - len(FUNNELS))))
        return (FUNNELS + extra)[: self.n_funnels]

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
                        "user": {"id": user[0], "first_name": user[1], "last_name": user[2]},
                        "tags": [{"id": ANNOTATION_TAGS[name], "name": name} for name in tags]})
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
        if int(bookmark_id) == ODD_LEAVES_REPORT:
            for number, odd in zip(numbers, self.insights_odd_leaves):  # numbers come in the series' order
                number["value"] = series[number["metric"]][number["date"]] = odd
        if int(bookmark_id) in self.insights_without_dates:
            series = _without_dates(series)
            numbers = [{**number, "date": None} for number in numbers if number["date"] == keys[0]]
        last = dt.datetime.combine(days[-1], dt.time(23, 59, 59, 999000), zone).isoformat()
        with self._lock:  # computed once, then served from cache as Mixpanel does until the report changes
            computed_at = self._memo.setdefault(("insights computed_at", int(bookmark_id)), dt.datetime.now(dt.timezone.utc).isoformat())
        body = {"computed_at": computed_at,
                "date_range": {"from_date": dt.datetime.combine(days[0], dt.time(), zone).isoformat(), "to_date": last},
                "headers": list(headers), "series": series}
        return body, numbers
