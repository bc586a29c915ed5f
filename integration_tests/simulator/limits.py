"""Mixpanel's per-project budgets (when rate_limits is on): who is admitted, the 429 over a limit, and the report."""
from __future__ import annotations

import math
import time

from .common import PROJECT_ID, ApiError

FAMILIES = ("query", "export", "lexicon")
LEXICON_PER_MINUTE = 5  # Mixpanel's Lexicon Schemas API: 5 requests a minute


def _most_within(times: list, span: float) -> int:
    """The most of the sorted `times` that fall within any span of `span` seconds (a moving window)."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - span:
            first += 1
        most = max(most, last - first + 1)
    return most


class Limits:
    """Mixpanel's budgets (a mixin of MixpanelSimulator): a moving window per family of endpoints (query 60, export 60;
    rate_window_seconds shortens Mixpanel's hour for tests), queries in flight (5), exports per second (3), and a
    budget "spent by another client" (spend_budget). Over a limit it answers 429 with Mixpanel's body, with
    Retry-After when rate_retry_after is on (the true seconds, or a text it holds, sent as it is). Refused requests do
    not count against the window, nor do engage's continuation pages (as Mixpanel's support says): only the
    concurrency limit applies to those."""

    def spend_budget(self, seconds: float, families=("query", "export"), from_first_request: bool = False) -> None:
        """Another client has spent these families' hourly budgets for the next `seconds`, or for `seconds` from the
        next request of any of them (a test then does not depend on how long the connector takes to start)."""
        with self._lock:
            for family in families:
                self._spent_until[family] = 0.0 if from_first_request else time.monotonic() + float(seconds)
                self._spent_from_first.pop(family, None)
                if from_first_request:
                    self._spent_from_first[family] = (tuple(families), float(seconds))

    def _limits(self, family: str) -> tuple:
        """(per window, in flight, per second or None, window seconds) for a family; the Lexicon's window is a minute
        (a sixtieth of rate_window_seconds, Mixpanel's hour)."""
        if family == "export":
            return self.export_per_window, self.export_concurrent, self.export_per_second, self.rate_window_seconds
        if family == "lexicon":
            return LEXICON_PER_MINUTE, LEXICON_PER_MINUTE, None, self.rate_window_seconds / 60
        return self.query_per_window, self.query_concurrent, None, self.rate_window_seconds

    def admit(self, family: str, entry: dict, counted: bool = True) -> None:
        """Count a request against its family's budget, or raise the 429 Mixpanel would send; one not `counted`
        against the hour (an engage continuation page) takes only a place in flight."""
        if not self.rate_limits:
            return
        now = time.monotonic()
        per_window, concurrent, per_second, span = self._limits(family)
        with self._lock:
            window = [t for t in self._admitted[family] if t > now - span]
            self._admitted[family] = window
            in_flight = self._in_flight[family] + (self.others_in_flight if family == "query" else 0)
            last_second = sum(1 for t in window if t > now - 1)
            if counted and family in self._spent_from_first:
                spent_families, seconds = self._spent_from_first[family]
                for spent in spent_families:
                    self._spent_until[spent] = now + seconds
                    self._spent_from_first.pop(spent, None)
            spent_until = self._spent_until.get(family, 0.0)
            if counted and now < spent_until:
                refused, wait = "spent", spent_until - now
            elif counted and len(window) >= per_window:
                refused, wait = "hour", min(window) + span - now
            elif in_flight >= concurrent:
                refused, wait = "concurrent", 1.0
            elif counted and per_second is not None and last_second >= per_second:
                refused, wait = "second", 1.0
            else:
                if counted:
                    window.append(now)
                self._in_flight[family] += 1
                self._most_in_flight[family] = max(self._most_in_flight[family], self._in_flight[family])
                entry.update(family=family, admitted=now, counted=counted)
                return
            entry.update(family=family, refused=refused)
        in_hour = per_window + 1 if refused in ("spent", "hour") else len(window) + 1
        if family == "lexicon":
            message = f"Lexicon rate limit exceeded for project_id: {PROJECT_ID}. {in_hour}/{per_window} requests in the last minute."
        elif family == "export":
            message = (f"Export rate limit exceeded for project_id: {PROJECT_ID}. {in_flight + 1}/{concurrent} requests "
                       f"running concurrently, {last_second + 1}/{per_second} requests in the last second and "
                       f"{in_hour}/{per_window} requests in the last hour.")
        else:
            message = (f"Query rate limit exceeded for project_id: {PROJECT_ID}. {in_flight + 1}/{concurrent} queries "
                       f"running concurrently and {in_hour}/{per_window} queries running in the last hour.")
        retry_after = self.rate_retry_after if isinstance(self.rate_retry_after, str) else str(max(1, math.ceil(wait)))
        headers = {"Retry-After": retry_after} if self.rate_retry_after is not False else {}
        raise ApiError(429, message, headers=headers, body={"request": entry["path"], "error": message})

    def release(self, entry: dict) -> None:
        """The request's answer is computed: it no longer runs (idempotent)."""
        if entry is not None and entry.pop("admitted", None) is not None:
            with self._lock:
                self._in_flight[entry["family"]] -= 1

    def rate_report(self) -> dict:
        """Per family, from the request log: the requests admitted, the most counted in any moving window and in
        any second, the most at once, and the 429s by cause ("spent" is another client's doing; any other cause
        is the client's)."""
        with self._lock:
            log = [dict(r) for r in self.requests if r.get("family")]
            most_in_flight = dict(self._most_in_flight)
        report = {}
        for family in FAMILIES:
            span = self._limits(family)[3]
            admitted = [r for r in log if r["family"] == family and not r.get("refused")]
            times = sorted(r["time"] for r in admitted if r.get("counted", True))
            refusals: dict = {}
            for r in log:
                if r["family"] == family and r.get("refused"):
                    refusals[r["refused"]] = refusals.get(r["refused"], 0) + 1
            report[family] = {
                "admitted": len(admitted),
                "counted": len(times),
                "most_in_window": _most_within(times, span),
                "most_in_a_second": _most_within(times, 1.0),
                "most_in_flight": most_in_flight[family],
                "refused": refusals,
            }
        return report
