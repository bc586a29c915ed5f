"""The query and app endpoints: engage, events metadata, cohorts, funnels, revenue, insights, annotations, me."""
from __future__ import annotations

import datetime as dt
import json
import re

from .common import PROJECT_ID, ApiError, days_between, parse_day
from .events import EVENT_NAMES
from .lexicon import LEXICON_REFUSALS, LEXICON_SCHEMAS
from .profiles import property_summary
from .reports import FUNNELS_BOOKMARK, INSIGHTS_REPORTS, ODD_KEYS_FUNNEL

_WHERE_RE = re.compile(
    r'^\s*properties\s*\[\s*"\$last_seen"\s*\]\s*>=\s*"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})"\s*$'
)


class QueryEndpoints:
    """One `_ep_<endpoint>` method per route (a mixin of the HTTP handler)."""

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
                raise ApiError(400, f"simulator: {name} must be an integer")

        page = integer("page", 0)
        page_size = min(integer("page_size", 1000), int(sim.max_page_size))
        if page < 0 or page_size < 1:
            raise ApiError(400, "simulator: page must be >= 0 and page_size >= 1")
        output = params.get("output_properties")
        if isinstance(output, str) and output:
            try:
                output = json.loads(output)
            except ValueError:
                raise ApiError(400, "simulator: output_properties must be a JSON array")
        if output in (None, ""):
            output = None
        elif not isinstance(output, list):
            raise ApiError(400, "simulator: output_properties must be a JSON array")

        if page == 0:
            matching = self._engage_matching(params)
            session_id = sim._new_session(matching)
        else:
            session_id = params.get("session_id")
            with sim._lock:
                if session_id in sim._expiring or sim._session_outlived(session_id):
                    sim._expiring.discard(session_id)
                    sim._sessions.pop(session_id, None)
                    raise ApiError(400, "simulator: the session expired: query again from page 0")
                matching = sim._sessions.get(session_id) if isinstance(session_id, str) else None
            if matching is None:
                raise ApiError(400, "simulator: page > 0 needs the session_id returned by page 0")
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
                raise ApiError(400, 'simulator: filter_by_cohort must be {"id": N}')
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
            raise ApiError(400, "simulator: unsupported where")
        bound = match.group(1)
        return [p for p in profiles if p["$properties"].get("$last_seen", "") >= bound
                and "$last_seen" in p["$properties"]]

    def _ep_engage_properties(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        group = params.get("data_group_id")
        summary = property_summary(sim.group_profiles(group)) if group not in (None, "") else sim._engage_properties()
        self.send_json(200, {"results": summary, "status": "ok"}, entry)

    # ---------------------------------------------------------------- saved Insights reports
    def _ep_insights(self, params: dict, entry: dict) -> None:
        raw = params.get("bookmark_id")
        try:
            bookmark_id = int(raw)
        except (TypeError, ValueError):
            raise ApiError(400, f"simulator: bookmark_id must be an integer, got {raw!r}")
        if bookmark_id == FUNNELS_BOOKMARK:
            raise ApiError(400, f"Report {bookmark_id} is a funnels report: this endpoint only queries Insights reports")
        if bookmark_id not in INSIGHTS_REPORTS:
            raise ApiError(404, f"Report {bookmark_id} not found")
        self.send_json(200, self.server.sim.insights_report(bookmark_id)[0], entry)

    # ---------------------------------------------------------------- events metadata
    def _ep_event_properties(self, params: dict, entry: dict) -> None:
        limit = params.get("limit") or 10  # Mixpanel's default is 10: clients must ask for more
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise ApiError(400, "simulator: limit must be an integer")
        names = self.server.sim.event_property_names(params.get("event") or None)
        counts = {name: max(1, 5000 - 97 * n) for n, name in enumerate(names)}
        self.send_json(200, {name: {"count": counts[name]} for name in names[:limit]}, entry)

    def _ep_event_names(self, params: dict, entry: dict) -> None:
        try:  # every type (general, unique, average) names the same events
            limit = int(params.get("limit") or 255)
        except (TypeError, ValueError):
            raise ApiError(400, "simulator: limit must be an integer")
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
        from_day, to_day = parse_day(raw_from), parse_day(raw_to)
        if from_day is None or to_day is None:
            raise ApiError(400, f"simulator: {from_key} and {to_key} must be YYYY-MM-DD")
        if from_day > to_day:
            raise ApiError(400, f"simulator: {from_key} is after {to_key}")
        return from_day, to_day

    def _ep_funnels(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        try:
            funnel_id = int(params.get("funnel_id"))
        except (TypeError, ValueError):
            funnel_id = None
        if funnel_id not in {f[0] for f in sim._funnel_table()}:
            raise ApiError(400, "simulator: unknown funnel_id")
        if (params.get("unit") or "day") != "day":
            raise ApiError(400, "simulator: only unit=day is simulated")
        from_day, to_day = self._date_range(params)
        dates = [d.isoformat() for d in days_between(from_day, to_day)]
        data = {d: sim.funnel_day(funnel_id, d) for d in dates}
        odd = sim.odd_date_keys if funnel_id == ODD_KEYS_FUNNEL else {}
        self.send_json(200, {"meta": {"dates": dates}, "data": {**data, **odd}}, entry)

    def _ep_revenue(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        from_day, to_day = self._date_range(params)
        days = {d.isoformat(): sim.revenue_day(d.isoformat()) for d in days_between(from_day, to_day)}
        overall = {"amount": round(sum(v["amount"] for v in days.values()), 2),
                   "count": sum(v["count"] for v in days.values()),
                   "paid_count": sum(v["paid_count"] for v in days.values())}
        computed_at = dt.datetime.now(dt.timezone.utc).isoformat()
        self.send_json(200, {"computed_at": computed_at, "results": {"$overall": overall, **days, **sim.odd_date_keys},
                             "status": "ok"}, entry)

    # ---------------------------------------------------------------- annotations, me
    def _annotations_between(self, from_day, to_day) -> list:
        rows = self.server.sim.annotations()
        if from_day is None:
            return rows
        return [a for a in rows if from_day.isoformat() <= a["date"][:10] <= to_day.isoformat()]

    def _ep_app_annotations(self, params: dict, entry: dict) -> None:
        from_day, to_day = self._date_range(params, "fromDate", "toDate", required=False)
        self.send_json(200, {"status": "ok", "results": self._annotations_between(from_day, to_day)}, entry)

    def _ep_app_schemas(self, params: dict, entry: dict) -> None:
        refused = self.server.sim.lexicon_refuses
        if refused:
            raise ApiError(refused, LEXICON_REFUSALS.get(refused, "simulator: the Lexicon failed"))
        self.send_json(200, {"status": "ok", "results": LEXICON_SCHEMAS}, entry)

    def _ep_legacy_annotations(self, params: dict, entry: dict) -> None:
        from_day, to_day = self._date_range(params, required=False)
        self.send_json(200, {"annotations": self._annotations_between(from_day, to_day)}, entry)

    def _ep_me(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        self.send_json(200, {"status": "ok", "results": {
            "projects": {str(PROJECT_ID): {"name": "Simulated project", "timezone": sim.timezone}}}}, entry)
