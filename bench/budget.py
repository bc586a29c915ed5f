#!/usr/bin/env python3
"""How long a sync of many saved funnels and cohorts takes under Mixpanel's budgets, against the floor they set.

The simulator enforces Mixpanel's limits with the hour shrunk to --window seconds (the connector's
rate_limit_window_seconds matches), and the real `source-mixpanel read` syncs funnels, cohorts, cohort_members,
engage, revenue and annotations over a year. It prints the query requests sent, the 429s Mixpanel answered, the
most requests seen in any window and in flight, and the wall time of the queries against the least time the
budget allows for that many requests (every window past the first).

    .venv/bin/python bench/budget.py                            # 120 funnels, whole-range requests
    .venv/bin/python bench/budget.py --date-window-size 30      # 13 requests per funnel, as 4.x made
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.harness import CONNECTOR, configured_catalog, service_account_config  # noqa: E402
from integration_tests.simulator import MixpanelSimulator  # noqa: E402

STREAMS = ["engage", "cohorts", "cohort_members", "funnels", "revenue", "annotations"]


def command(name: str, workdir: Path, **files) -> list:
    args = [CONNECTOR, name]
    for kind, content in files.items():
        path = workdir / f"{kind}.json"
        path.write_text(json.dumps(content))
        args += [f"--{kind}", str(path)]
    return args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=6, help="seconds standing in for Mixpanel's hour")
    parser.add_argument("--funnels", type=int, default=120)
    parser.add_argument("--cohorts", type=int, default=40)
    parser.add_argument("--date-window-size", type=int, default=None)
    args = parser.parse_args(argv)

    last = dt.date.today() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=364)
    with MixpanelSimulator(rate_limits=True, rate_window_seconds=args.window, n_funnels=args.funnels,
                           n_cohorts=args.cohorts, query_latency=0.05, n_profiles=600) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = service_account_config(sim, start_date=first.isoformat(), end_date=last.isoformat(),
                                         rate_limit_window_seconds=int(args.window))
        if args.date_window_size:
            config["date_window_size"] = args.date_window_size
        discovered = subprocess.run(command("discover", workdir, config=config), capture_output=True, text=True, check=True)
        catalog = next(json.loads(line)["catalog"] for line in discovered.stdout.splitlines() if '"CATALOG"' in line)
        sim.reset_log()  # discover an hour earlier: its calls are out of the window
        started = time.monotonic()
        read = subprocess.run(command("read", workdir, config=config, catalog=configured_catalog(catalog, STREAMS, "incremental")),
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        statuses = [json.loads(line)["trace"]["stream_status"] for line in read.stdout.splitlines() if '"STREAM_STATUS"' in line]
        records = sum(1 for line in read.stdout.splitlines() if line.startswith('{"type":"RECORD"'))
        report = sim.rate_report()["query"]

    queries = report["admitted"]
    floor = (queries - 1) // 60 * args.window if queries > 60 else 0.0
    complete = sorted(s["stream_descriptor"]["name"] for s in statuses if s["status"] == "COMPLETE")
    print(f"{args.funnels} funnels, {args.cohorts} cohorts, a year, date_window_size {args.date_window_size or 'unset'}, "
          f"window {args.window:g} s standing in for an hour")
    print(f"  read exit code {read.returncode}; {records:,} records; complete: {', '.join(complete)}")
    print(f"  query requests: {queries:,}; 429s: {sum(report['refused'].values())}; most in a window: "
          f"{report['most_in_window']}; most in flight: {report['most_in_flight']}")
    print(f"  wall time {wall:.1f} s = {wall / args.window:.1f} windows; the budget's floor for {queries:,} queries: "
          f"{floor:.0f} s = {floor / args.window:.0f} windows; wall / floor = {wall / floor:.2f}" if floor else
          f"  wall time {wall:.1f} s: within one window, no floor")
    return 0 if read.returncode == 0 and len(complete) == len(STREAMS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
