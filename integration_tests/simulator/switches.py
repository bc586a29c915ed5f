"""Every switch of the simulator, declared once: its type, default and help. The constructor, `--help` (cli.py),
`/_sim/config`, `configure` and docs/simulator.md's table (`switch_table`, checked by a test) all read SWITCHES."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .faults import FAULTS
from .profiles import COHORTS, GROUP_KEYS
from .reports import FUNNELS


@dataclass(frozen=True)
class Switch:
    """A switch: the type(s) `configure` accepts, its default, one line of help, and whether it has its own option on
    the command line (every switch can be given with --set NAME=JSON)."""

    kind: Any
    default: Any
    help: str
    option: bool = False

    def value(self, given: Any) -> Any:
        """A value given to the constructor, as the simulator keeps it: a set, list or dict of its own."""
        if self.kind is set:
            return set(given or ())
        if self.kind is list:
            return list(given or ())
        if self.kind is dict:
            return dict(given or {})
        return given


# Every switch, as `--set NAME=JSON` takes it and `POST /_sim/config` (a JSON object of them) changes it while
# the simulator runs. In process, tests pass them to MixpanelSimulator(...) or configure(...).
SWITCHES = {
    "seed": Switch(int, 7, "what every generated event, profile, cohort and funnel derives from", option=True),
    "events_per_day": Switch(int, 30, "events a day in the export", option=True),
    "first_event_day": Switch(str, "2024-01-01", "the first day with events (YYYY-MM-DD)", option=True),
    "timezone": Switch(str, "UTC", "the project's timezone (as /api/app/me reports it)", option=True),
    "today": Switch((str, type(None)), None,
           "YYYY-MM-DD: the project's today; later days are refused as Mixpanel does", option=True),
    "n_profiles": Switch(int, 2500, "generated engage profiles", option=True),
    "max_page_size": Switch(int, 1000, "engage's cap on page_size", option=True),
    "gzip": Switch(bool, True, "gzip export bodies when asked to (Accept-Encoding)", option=True),
    "plan_refuses": Switch(set, (), 'endpoint families a free plan refuses with 402 (["funnels"], or ["all_query"])'),
    "retired": Switch(dict, {}, 'endpoint families answered with a status as if retired ({"revenue": 410})'),
    "auth_error_style": Switch(str, "401",
           '"401", or "400-text" (a 400 with a text body, as Mixpanel answers some bad credentials)'),
    "faults": Switch(set, (), 'export faults on each window: ' + ", ".join(f'"{fault}"' for fault in FAULTS)),
    "fault_attempts": Switch(int, 1, "how many attempts of each window get the faults (then it answers well)"),
    "stall_seconds": Switch((int, float), 30, "how long a stalled export body stops before it goes on"),
    "fault_retry_after": Switch((int, str, type(None)), None,
           "seconds sent as Retry-After with faulty, injected and 5xx answers (a text is sent as it is)"),
    "cache_bodies": Switch(bool, False, "cache generated export bodies (faster benchmarks)", option=True),
    "n_funnels": Switch(int, len(FUNNELS), "saved funnels", option=True),
    "n_cohorts": Switch(int, len(COHORTS), "saved cohorts", option=True),
    "n_groups": Switch(int, GROUP_KEYS[1][1],
           "group profiles under the first group key (data_group_id 1, company_id); team_id (2) has 40"),
    "insights_odd_leaves": Switch(list, (),
           'values served in place of the first numbers of report 61001 (["12", true, {"value": 5}])'),
    "insights_without_dates": Switch(set, (),
           "saved reports answered without their date level, metric -> breakdown -> number ([61004])"),
    "odd_group_ids": Switch(list, (),
           "ids served in place of those of the first group profiles of group key 2 (null: no id at all)"),
    "odd_date_keys": Switch(dict, {},
           "keys and values served in funnel 7509's data and revenue's results, beside or in place of their "
                         'days ({"total": {"count": 1}}, {"2025-03-02": null})'),
    "rate_limits": Switch(bool, False,
           "enforce Mixpanel's per-project budgets (429 with Mixpanel's body over them)", option=True),
    "rate_window_seconds": Switch((int, float), 3600, "the length of Mixpanel's hour", option=True),
    "query_per_window": Switch(int, 60, "query requests a window"),
    "query_concurrent": Switch(int, 5, "query requests in flight"),
    "query_latency": Switch((int, float), 0, "seconds each query runs (and counts as in flight)"),
    "others_in_flight": Switch(int, 0, "queries other clients of the project are running"),
    "export_per_window": Switch(int, 60, "export requests a window"),
    "export_per_second": Switch(int, 3, "export requests a second"),
    "export_concurrent": Switch(int, 100, "export requests in flight"),
    "rate_retry_after": Switch((bool, str), False,
           "send Retry-After with a 429: true for the seconds until Mixpanel accepts again, a text sent as it "
           "is (\"0\", a past HTTP-date, \"1e20\", \"soon\")"),
    "engage_page_size_on_page_zero_only": Switch(bool, False, "engage pages after the first omit page_size"),
    "expire_next_sessions": Switch(int, 0, "this many new engage sessions expire before their second page"),
    "engage_session_seconds": Switch((int, float, type(None)), None,
           "an engage session not asked for a page for this many seconds expires (null: never)"),
    "legacy_times": Switch(bool, False,
           "a project created before 2023: days are local days of `timezone` and `time` is local wall time"),
    "imported_events": Switch(dict, {},
           "a share of a day's events that reached Mixpanel hours after their time, as /import sends "
                           'them ({"2025-04-02": {"share": 1, "hours": 10}})'),
    "late_events": Switch(dict, {},
           'events of old days that reach Mixpanel when this is set ({"2025-04-02": 5}), for late arrivals'),
    "late_received_ago": Switch((int, float), 0,
           "seconds before late_events is set that its events reached Mixpanel (shown in the export from then)"),
    "date_ahead": Switch((int, float), 0,
           "seconds the Date header runs ahead of the clock that stamps mp_processing_time_ms"),
    "kind_change_from": Switch((str, type(None)), None,
           "YYYY-MM-DD: the first day build_number is text (\"2025.03.19-rc1\"), an integer before "
                            "(null: the Monday of today's week)"),
    "property_kinds": Switch(str, "plain",
           '"plain", or "hard": one event in 101 gives score, weight, trial_ends and tags a value of '
                          "another kind"),
    "extra_event_properties": Switch(int, 0,
           "this many more properties (extra_0000, ...) in the project, of four kinds in turn; an event "
           "carries one in 35 of them"),
    "lexicon_refuses": Switch((int, type(None)), None,
           "answer the Lexicon schemas with this status (403, 402, 500; null: answer them)"),
    "strict_contract": Switch(bool, False,
           "refuse the connector's transitional departures too: GET cohorts/list (405), an export "
                           "Accept-Encoding other than gzip (406); off: accept them (docs/simulator.md)"),
}

_KIND_WORDS = {int: "integer", float: "number", str: "text", bool: "boolean", set: "list", list: "list", dict: "object",
               type(None): "null"}


def kind_words(kind: Any) -> str:
    """A switch's type in the docs' words: "integer or null", "number", ..."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    kinds = [one for one in kinds if not (one is int and float in kinds)]  # (int, float) is a number
    words = [_KIND_WORDS[one] for one in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def switch_table() -> str:
    """docs/simulator.md's switch table."""
    rows = ["| switch | type | default | what it does |", "|---|---|---|---|"]
    for name, switch in SWITCHES.items():
        default = switch.value(switch.default)
        shown = json.dumps(sorted(default) if isinstance(default, set) else default)
        rows.append(f"| `{name}` | {kind_words(switch.kind)} | `{shown}` | {switch.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # prints the table to paste into docs/simulator.md
    print(switch_table())
