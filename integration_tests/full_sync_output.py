"""A full sync's output against the simulator, normalised, for a byte-for-byte comparison before and after a refactor.

Runs the installed `source-mixpanel` command: spec, check, discover, a read of every stream of the sample catalog with
insights and groups, then a read from that read's last state. Only what varies run to run is normalised: emitted_at, a
STATE's sourceStats, the simulator's port, a saved report's computed_at (the simulator's clock), and durations, rates
and clock times in log lines. Each command's lines are sorted, because concurrent streams interleave in a different
order each run, and of its STATE messages only each stream's last is kept (concurrent windows close in a different
order each run, so the states between them differ).

    .venv/bin/python -m integration_tests.full_sync_output OUT_FILE
    diff BEFORE_FILE OUT_FILE
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from integration_tests.simulator import MixpanelSimulator

SAMPLES = Path(__file__).resolve().parents[1] / "sample_files"
CONNECTOR = str(Path(sys.executable).parent / "source-mixpanel")
# a number of seconds or milliseconds, or a clock time: what a log line says about how long or when
_TIMINGS = re.compile(r"[\d,]+(\.\d+)?( ?(ms|s|seconds?|minutes?|min|records/s)\b)|\b\d{2}:\d{2}:\d{2}(\.\d+)?\b")
# when the simulator computed a saved report: its clock at the read
_COMPUTED_AT = re.compile(r'"computed_at": ?"[^"]*"')


def normalised(line: str, port: int) -> str:
    """The line with its emitted_at dropped, the port named, and timings in LOG and TRACE messages blanked."""
    line = _COMPUTED_AT.sub('"computed_at": "NOW"', line.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT"))
    if not line.startswith("{"):
        return _TIMINGS.sub("T", line)
    message = json.loads(line)
    for kind in ("record", "trace", "control"):
        if kind in message:
            message[kind].pop("emitted_at", None)
    if message.get("type") == "STATE":
        message["state"].pop("sourceStats", None)  # the records since the state before, which interleaving decides
    if message.get("type") in ("LOG", "TRACE"):
        return _TIMINGS.sub("T", json.dumps(message, sort_keys=True))
    return json.dumps(message, sort_keys=True)


def command(workdir: Path, port: int, *args: str) -> tuple:
    """The command's exit code and sorted normalised lines, and its STATE messages in the order it printed them."""
    done = subprocess.run([CONNECTOR, *args], capture_output=True, text=True, timeout=600, cwd=workdir)
    lines = done.stdout.splitlines()
    states = [json.loads(line)["state"] for line in lines if line.startswith('{"type":"STATE"')]
    last_states = {json.dumps(state["stream"]["stream_descriptor"]): line for state, line in
                   zip(states, (line for line in lines if line.startswith('{"type":"STATE"')))}
    kept = [line for line in lines if not line.startswith('{"type":"STATE"')] + list(last_states.values())
    return [f"exit {done.returncode}"] + sorted(normalised(line, port) for line in kept), states


def full_sync() -> list:
    with MixpanelSimulator() as sim, tempfile.TemporaryDirectory() as tmp:
        workdir, port = Path(tmp), int(sim.url.rsplit(":", 1)[1])
        config = {**json.loads((SAMPLES / "config_with_insights_and_groups.json").read_text()),
                  "base_url": sim.url, "export_base_url": sim.url}
        (workdir / "config.json").write_text(json.dumps(config))
        catalog = str(SAMPLES / "configured_catalog_with_insights_and_groups.json")
        files = ["--config", "config.json"]
        out = []
        for args in (["spec"], ["check", *files], ["discover", *files]):
            out += [f"== {args[0]}", *command(workdir, port, *args)[0]]
        read, states = command(workdir, port, "read", *files, "--catalog", catalog)
        (workdir / "state.json").write_text(json.dumps(states))
        again, _ = command(workdir, port, "read", *files, "--catalog", catalog, "--state", "state.json")
        return out + ["== read", *read, "== read from the last state", *again]


if __name__ == "__main__":
    Path(sys.argv[1]).write_text("\n".join(full_sync()) + "\n")
