"""The command line: an option per switch that has one (switches.py), the control API's paths for --help, and main()."""
from __future__ import annotations

import argparse
import json
import signal
import threading

from .core import MixpanelSimulator
from .switches import SWITCHES

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
    lines += [f"  {name:<{width}}  {switch.help}" for name, switch in SWITCHES.items()]
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


def _add_option(parser: argparse.ArgumentParser, name: str, switch) -> None:
    """A switch's own option: --NAME for a switch that is off by default, --no-NAME for one that is on, else --NAME VALUE."""
    flag = name.replace("_", "-")
    if switch.kind is bool:
        parser.add_argument(f"--{'no-' if switch.default else ''}{flag}", dest=name, default=switch.default,
                            action="store_false" if switch.default else "store_true",
                            help=f"off: {switch.help}" if switch.default else switch.help)
        return
    kinds = switch.kind if isinstance(switch.kind, tuple) else (switch.kind,)
    parser.add_argument(f"--{flag}", type=float if float in kinds else kinds[0], default=switch.default, help=switch.help)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m integration_tests.simulator",
                                     description="A local fake of Mixpanel's read API (every host on one port).",
                                     epilog=_help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8123, help="the port on 127.0.0.1 (default 8123)")
    for name, switch in SWITCHES.items():
        if switch.option:
            _add_option(parser, name, switch)
    parser.add_argument("--set", type=_switch, action="append", default=[], metavar="NAME=JSON",
                        help="any switch below, e.g. --set 'faults=[\"cut\"]'")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    sim = MixpanelSimulator(port=args.port, **{name: getattr(args, name) for name, switch in SWITCHES.items()
                                                if switch.option})
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
