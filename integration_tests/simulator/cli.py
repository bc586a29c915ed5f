"""The command line: every switch, the control API's paths for --help, and main()."""
from __future__ import annotations

import argparse
import json
import signal
import threading

from .core import MixpanelSimulator
from .faults import FAULTS
from .profiles import COHORTS
from .reports import FUNNELS

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
    "fault_retry_after": "seconds sent as Retry-After with faulty, injected and 5xx answers (a text is sent as it is)",
    "cache_bodies": "cache generated export bodies (faster benchmarks)",
    "n_funnels": "saved funnels",
    "n_cohorts": "saved cohorts",
    "n_groups": "group profiles under the first group key (data_group_id 1, company_id); team_id (2) has 40",
    "insights_odd_leaves": 'values served in place of the first numbers of report 61001 (["12", true, {"value": 5}])',
    "insights_without_dates": "saved reports answered without their date level, metric -> breakdown -> number ([61004])",
    "odd_group_ids": "ids served in place of those of the first group profiles of group key 2 (null: no id at all)",
    "odd_date_keys": "keys and values served in funnel 7509's data and revenue's results, beside or in place of their "
                     'days ({"total": {"count": 1}}, {"2025-03-02": null})',
    "rate_limits": "enforce Mixpanel's per-project budgets (429 with Mixpanel's body over them)",
    "rate_window_seconds": "the length of Mixpanel's hour",
    "query_per_window": "query requests a window",
    "query_concurrent": "query requests in flight",
    "query_latency": "seconds each query runs (and counts as in flight)",
    "others_in_flight": "queries other clients of the project are running",
    "export_per_window": "export requests a window",
    "export_per_second": "export requests a second",
    "export_concurrent": "export requests in flight",
    "rate_retry_after": "send Retry-After with a 429: true for the seconds until Mixpanel accepts again, a text sent as it is (\"0\", a past HTTP-date, \"1e20\", \"soon\")",
    "engage_page_size_on_page_zero_only": "engage pages after the first omit page_size",
    "expire_next_sessions": "this many new engage sessions expire before their second page",
    "engage_session_seconds": "an engage session not asked for a page for this many seconds expires (null: never)",
    "legacy_times": "a project created before 2023: days are local days of `timezone` and `time` is local wall time",
    "imported_events": "a share of a day's events that reached Mixpanel hours after their time, as /import sends "
                       'them ({"2025-04-02": {"share": 1, "hours": 10}})',
    "late_events": 'events of old days that reach Mixpanel when this is set ({"2025-04-02": 5}), for late arrivals',
    "late_received_ago": "seconds before late_events is set that its events reached Mixpanel (shown in the export from then)",
    "date_ahead": "seconds the Date header runs ahead of the clock that stamps mp_processing_time_ms",
    "kind_change_from": "YYYY-MM-DD: the first day build_number is text (\"2025.03.19-rc1\"), an integer before "
                        "(null: the Monday of today's week)",
    "property_kinds": '"plain", or "hard": one event in 101 gives score, weight, trial_ends and tags a value of '
                      "another kind",
    "extra_event_properties": "this many more properties (extra_0000, ...) in the project, of four kinds in turn; an event carries one in 35 of them",
    "lexicon_refuses": "answer the Lexicon schemas with this status (403, 402, 500; null: answer them)",
    "strict_contract": "refuse the connector's transitional departures too: GET cohorts/list (405), an export "
                       "Accept-Encoding other than gzip (406); off: accept them (docs/simulator.md)",
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
    "GET /_sim/truth/lexicon": "the Lexicon's event and profile schemas, as /api/app/projects/{id}/schemas answers",
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
    parser = argparse.ArgumentParser(prog="python -m integration_tests.simulator",
                                     description="A local fake of Mixpanel's read API (every host on one port).",
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
