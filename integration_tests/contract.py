"""Mixpanel's documented read contract, restated in our own words: per operation its path, methods, parameters, enum
values, headers and answer shape (JSON Schema), the departures the connector makes on purpose, and `violations()`,
which says what a request logged by the simulator breaks.

Sources: Mixpanel's OpenAPI reference for the export, query, annotations and Lexicon Schemas APIs; the undocumented
operations are stated in the one form the connector sends. Standard library only: the simulator enforces these rules
from the same tables (docs/simulator.md lists the departures and why).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Query and export operations take these beside their own; project_id is required of service accounts only (the
# reference marks it required, its text says "required if using service account").
PROJECT_PARAMS = ("project_id", "workspace_id")

_DAY = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_INTEGER = {"type": "integer"}
_NUMBER = {"type": "number"}
_TEXT = {"type": "string"}


def _object(required: dict, optional: dict | None = None, **extra) -> dict:
    """A JSON object with these fields (all of `required` present); fields the reference does not name are allowed."""
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}, **extra}


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


_ANNOTATION = _object({
    "id": _INTEGER,
    "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"},
    "description": _TEXT,
    "user": _object({"id": _INTEGER, "first_name": _TEXT, "last_name": _TEXT}),
    "tags": _array(_object({"id": _INTEGER, "name": _TEXT})),
})
# The reference types avg_time and avg_time_from_start as integers, yet says step 0 has null; real answers carry
# decimals. This schema states what Mixpanel sends (ERRATA records the contradiction).
_SECONDS = {"type": ["number", "null"]}
_FUNNEL_STEP = _object(
    {"count": _INTEGER, "step_conv_ratio": _NUMBER, "overall_conv_ratio": _NUMBER, "avg_time": _SECONDS,
     "avg_time_from_start": _SECONDS, "goal": _TEXT, "event": _TEXT},
    {"step_label": _TEXT, "custom_event": {"type": "boolean"}, "custom_event_id": _INTEGER},
)
_FUNNEL_DAY = _object({"steps": _array(_FUNNEL_STEP), "analysis": _object(
    {"completion": _INTEGER, "starting_amount": _INTEGER, "steps": _INTEGER, "worst": _INTEGER})})
_INSIGHTS_SERIES = {"type": "object", "additionalProperties": {"type": ["object", "number"]}}


@dataclass(frozen=True)
class Operation:
    """One operation of Mixpanel's read API as the reference states it (or, undocumented, as the connector sends it)."""

    name: str
    path: str  # a regular expression over the whole path
    methods: tuple
    api: str  # "query" (errors as JSON), "export" (errors as text) or "app"
    required: tuple = ()
    optional: tuple = ()
    enums: dict = field(default_factory=dict)  # parameter -> the values it takes
    headers: dict = field(default_factory=dict)  # request header -> the one value the operation offers
    answer: dict = field(default_factory=dict)  # JSON Schema of a 200 answer (of each line, for the export)
    documented: bool = True

    @property
    def parameters(self) -> frozenset:
        return frozenset(self.required) | frozenset(self.optional) | (
            frozenset(PROJECT_PARAMS) if self.api != "app" else frozenset())


OPERATIONS = (
    Operation("export", r"/api/2\.0/export", ("GET",), "export", required=("from_date", "to_date"),
              optional=("event", "where", "limit", "time_in_ms"), headers={"Accept-Encoding": "gzip"},
              answer=_object({"event": _TEXT, "properties": _object({"time": _INTEGER, "distinct_id": _TEXT})})),
    Operation("events/properties/top", r"/api/query/events/properties/top", ("GET",), "query", required=("event",),
              optional=("limit",), answer={"type": "object", "additionalProperties": _object({"count": _INTEGER})}),
    Operation("events/names", r"/api/query/events/names", ("GET",), "query", required=("type",), optional=("limit",),
              enums={"type": ("general", "unique", "average")}, answer=_array(_TEXT)),
    # A form body; page_size is not in the reference (a departure).
    Operation("engage", r"/api/query/engage", ("POST",), "query",
              optional=("where", "output_properties", "session_id", "page", "distinct_id", "distinct_ids",
                        "data_group_id", "filter_by_cohort", "include_all_users", "behaviors", "as_of_timestamp"),
              # The reference types $distinct_id as an integer; projects send text (ERRATA).
              answer=_object({"page": _INTEGER, "session_id": _TEXT, "status": _TEXT,
                              "results": _array(_object({"$distinct_id": _TEXT, "$properties": {"type": "object"}}))},
                             {"page_size": _INTEGER, "total": _INTEGER})),
    Operation("engage/properties", r"/api/query/engage/properties", ("GET",), "query", optional=("data_group_id",),
              documented=False, answer=_object({"status": _TEXT, "results": {
                  "type": "object", "additionalProperties": _object({"count": _INTEGER, "type": _TEXT})}})),
    Operation("cohorts/list", r"/api/query/cohorts/list", ("POST",), "query", answer=_array(_object(
        {"id": _INTEGER, "name": _TEXT, "description": _TEXT, "count": _INTEGER, "created": _TEXT,
         "project_id": _INTEGER, "is_visible": {"type": ["boolean", "integer"]}}))),
    Operation("funnels/list", r"/api/query/funnels/list", ("GET",), "query",
              answer=_array(_object({"funnel_id": _INTEGER, "name": _TEXT}))),
    Operation("funnels", r"/api/query/funnels", ("GET",), "query", required=("funnel_id", "from_date", "to_date"),
              optional=("length", "length_unit", "interval", "unit", "on", "where", "limit"),
              enums={"length_unit": ("day", "hour", "minute", "second"), "unit": ("day", "week", "month")},
              answer=_object({"meta": _object({"dates": _array(_DAY)}),
                              "data": {"type": "object", "additionalProperties": _FUNNEL_DAY}})),
    Operation("insights", r"/api/query/insights", ("GET",), "query", required=("bookmark_id",),
              answer=_object({"computed_at": _TEXT, "date_range": _object({"from_date": _TEXT, "to_date": _TEXT}),
                              "headers": _array(_TEXT), "series": _INSIGHTS_SERIES})),
    Operation("engage/revenue", r"/api/query/engage/revenue", ("GET",), "query",
              required=("from_date", "to_date"), optional=("unit",), enums={"unit": ("day",)}, documented=False,
              answer=_object({"computed_at": _TEXT, "status": _TEXT, "results": {"type": "object", "additionalProperties":
                              _object({"amount": _NUMBER, "count": _INTEGER, "paid_count": _INTEGER})}})),
    # fromDate and toDate are optional (an older revision required from_date and to_date).
    Operation("annotations", r"/api/app/projects/\d+/annotations", ("GET",), "app", optional=("fromDate", "toDate"),
              answer=_object({"status": _TEXT, "results": _array(_ANNOTATION)})),
    # The project-secret path, under no documented server: stated in the form the connector sends.
    Operation("annotations (project secret)", r"/api/2\.0/annotations", ("GET",), "query",
              optional=("from_date", "to_date"), documented=False,
              answer=_object({"annotations": _array(_ANNOTATION)})),
    # Documented in the Lexicon Schemas API, not in the query reference.
    Operation("lexicon schemas", r"/api/app/projects/\d+/schemas", ("GET",), "app",
              answer=_object({"status": _TEXT, "results": _array(_object(
                  {"entityType": _TEXT, "name": _TEXT, "schemaJson": {"type": "object"}}))})),
    Operation("me", r"/api/app/me", ("GET",), "app", documented=False,
              answer=_object({"status": _TEXT, "results": _object({"projects": {"type": "object"}})})),
)
_BY_PATH = [(re.compile(op.path + r"\Z"), op) for op in OPERATIONS]


def operation_for(path: str) -> Operation | None:
    """The operation a request path names, or None where Mixpanel has no such path."""
    return next((op for pattern, op in _BY_PATH if pattern.match(path)), None)


@dataclass(frozen=True)
class Breach:
    """One way a request differs from the reference: kind is path, method, missing, unknown, enum, header or
    undocumented; subject the method, parameter or header concerned."""

    operation: str
    kind: str
    subject: str = ""
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.operation}: " + " ".join(part for part in (self.kind, self.subject, self.detail) if part)


@dataclass(frozen=True)
class Departure:
    """A breach the connector makes on purpose, accepted in this one form, with its reason."""

    name: str
    operation: str
    kind: str
    subject: str
    reason: str

    def excuses(self, breach: Breach) -> bool:
        return (self.operation, self.kind, self.subject) == (breach.operation, breach.kind, breach.subject)


DEPARTURES = (
    Departure("event properties without event", "events/properties/top", "missing", "event",
              "discovery lists every event's properties in one request; Mixpanel serves it, and the official connector "
              "has asked it this way for years"),
    Departure("engage page_size", "engage", "unknown", "page_size",
              "smaller profile pages; Mixpanel honours it (capped) and echoes it in the answer"),
    Departure("engage/properties", "engage/properties", "undocumented", "",
              "profile property names and types for discovery; no documented operation gives them"),
    Departure("engage/revenue", "engage/revenue", "undocumented", "",
              "the revenue stream; Mixpanel stopped documenting it, and a retired answer degrades the stream alone"),
    Departure("project-secret annotations", "annotations (project secret)", "undocumented", "",
              "annotations for project-secret configs, which the app API refuses"),
    Departure("app me", "me", "undocumented", "",
              "served by the simulator for tools that ask the project's timezone; the connector does not ask it"),
)
# Departures of the connector as it stands on main, fixed on the connector's side of issue 20; the simulator accepts
# them while its strict_contract switch is off.
TRANSITIONAL = (
    Departure("cohorts/list by GET", "cohorts/list", "method", "GET",
              "the HTTP library's default method; the reference documents POST only"),
    Departure("export Accept-Encoding gzip, deflate", "export", "header", "Accept-Encoding",
              "the HTTP library's default; the export offers gzip alone"),
)


def breaches(request: dict) -> list[Breach]:
    """Every way a request logged by the simulator (method, path, params, auth, headers) differs from the reference."""
    op = operation_for(request["path"])
    if op is None:
        return [Breach(request["path"], "path", detail="is in no reference")]
    found = [] if op.documented else [Breach(op.name, "undocumented")]
    if request["method"] not in op.methods:
        found.append(Breach(op.name, "method", request["method"], f"(the reference has {', '.join(op.methods)})"))
    params = request["params"]
    required = op.required + (("project_id",) if request.get("auth") == "service_account" and op.api != "app" else ())
    found += [Breach(op.name, "missing", name) for name in required if params.get(name) in (None, "")]
    found += [Breach(op.name, "unknown", name) for name in sorted(params) if name not in op.parameters]
    found += [Breach(op.name, "enum", name, f"{params[name]!r} is none of {', '.join(values)}")
              for name, values in op.enums.items() if params.get(name) not in (None, "", *values)]
    headers = request.get("headers") or {}
    # Without the header, or asking for identity, a client takes the body plain: HTTP makes that always acceptable.
    found += [Breach(op.name, "header", name, f"{headers[name]!r} is not {value!r}")
              for name, value in op.headers.items() if headers.get(name, "identity") not in (value, "identity")]
    return found


def departure_of(breach: Breach, departures=DEPARTURES + TRANSITIONAL) -> Departure | None:
    return next((d for d in departures if d.excuses(breach)), None)


def violations(request: dict, departures=DEPARTURES) -> list[str]:
    """What a logged request breaks, the named departures excepted: an empty list for a request that keeps to it."""
    return [str(breach) for breach in breaches(request) if departure_of(breach, departures) is None]


# Where the reference contradicts itself or what Mixpanel sends; the simulator serves what Mixpanel sends.
ERRATA = {
    "engage $distinct_id": "typed integer (example 4), while projects send text",
    "funnels avg_time, avg_time_from_start": "typed integer, yet null at step 0 by the reference's own text, and "
                                             "decimal in real answers",
}
