"""What the integration tests share to run the connector: the real `source-mixpanel` command as a subprocess and what
it printed, configs and catalogs for a simulator, the simulator's switches for one block."""

import json
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from integration_tests.simulator import (
    API_SECRET,
    PROJECT_ID,
    SA_SECRET,
    SA_USERNAME,
    MixpanelSimulator,
)

CONNECTOR = str(Path(sys.executable).parent / "source-mixpanel")


@dataclass
class Run:
    """What one connector command printed, sorted by Airbyte message type."""

    returncode: int
    stdout: str
    stderr: str
    messages: List[dict] = field(default_factory=list)

    def of_type(self, kind: str) -> List[dict]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def records(self) -> List[dict]:
        return [m["record"] for m in self.of_type("RECORD")]

    def records_of(self, stream: str) -> List[dict]:
        return [r["data"] for r in self.records if r["stream"] == stream]

    @property
    def states(self) -> List[dict]:
        return [m["state"] for m in self.of_type("STATE")]

    @property
    def errors(self) -> List[dict]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    @property
    def logs(self) -> List[str]:
        return [m["log"]["message"] for m in self.of_type("LOG")]

    def stream_statuses(self, stream: str) -> List[str]:
        return [
            m["trace"]["stream_status"]["status"]
            for m in self.of_type("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS" and m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]


def run_connector(tmp_path: Path, command: str, config: Optional[dict] = None, catalog: Any = None,
                  state: Any = None, extra: Optional[List[str]] = None, cwd: Optional[Path] = None, timeout: int = 300,
                  **popen: Any) -> Run:
    """Runs the command with these files; a str value is written as it is (a file that is not JSON), others as JSON."""
    args = [CONNECTOR, command]
    for name, value in (("config", config), ("catalog", catalog), ("state", state)):
        if value is not None:
            path = tmp_path / f"{name}.json"
            path.write_text(value if isinstance(value, str) else json.dumps(value))
            args += [f"--{name}", str(path)]
    args += extra or []
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd or tmp_path, **popen)
    messages = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            messages.append(json.loads(line))
    return Run(done.returncode, done.stdout, done.stderr, messages)


def service_account_config(sim: MixpanelSimulator, **overrides: Any) -> dict:
    config = {
        "credentials": {"option_title": "Service Account", "username": SA_USERNAME, "secret": SA_SECRET, "project_id": PROJECT_ID},
        "base_url": sim.url,
        "export_base_url": sim.url,
        "project_timezone": "UTC",
    }
    config.update(overrides)
    return config


def project_secret_config(sim: MixpanelSimulator, **overrides: Any) -> dict:
    config = {
        "credentials": {"option_title": "Project Secret", "api_secret": API_SECRET},
        "base_url": sim.url,
        "export_base_url": sim.url,
        "project_timezone": "UTC",
    }
    config.update(overrides)
    return config


def forget_requests(config: dict) -> None:
    """Empties the simulator's request log (POST /_sim/reset-log), so that a test counts a read's requests, not those
    discover sent before it (the Lexicon's schemas and the sample of events that type event properties)."""
    request = urllib.request.Request(config["base_url"] + "/_sim/reset-log", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def configured_catalog(discovered: dict, streams: List[str], sync_mode: str = "full_refresh") -> dict:
    chosen = []
    for stream in discovered["streams"]:
        if stream["name"] in streams:
            mode = sync_mode if sync_mode in stream["supported_sync_modes"] else "full_refresh"
            chosen.append({"stream": stream, "sync_mode": mode, "destination_sync_mode": "append"})
    return {"streams": chosen}


@contextmanager
def switched(simulator: MixpanelSimulator, **settings: Any):
    """Flips simulator switches for one block, and puts them back however the block ends."""
    before = {name: getattr(simulator, name) for name in settings}
    simulator.configure(**settings)
    try:
        yield simulator
    finally:
        simulator.configure(**before)


def by_insert_id(records):
    """Export records in one order whatever order they came in."""
    return sorted(records, key=lambda r: (r["insert_id"], json.dumps(r, sort_keys=True)))


def export_catalog(tmp_path, config, sync_mode="incremental"):
    """The export's configured catalog from discover; the simulator's log then holds only what follows."""
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    forget_requests(config)
    return configured_catalog(catalog_message["catalog"], ["export"], sync_mode)


def read_export(tmp_path, config, state=None, sync_mode="incremental", catalog=None):
    """A read of the export stream alone (its catalog from discover unless given), and the schema it read with."""
    catalog = catalog or export_catalog(tmp_path, config, sync_mode)
    run = run_connector(tmp_path, "read", config, catalog=catalog, state=state)
    return run, catalog["streams"][0]["stream"]["json_schema"]


def export_requests(sim):
    """The windows (from_date, to_date) of every export request the simulator received, in order."""
    return [(r["params"]["from_date"], r["params"]["to_date"]) for r in sim.requests_to("/api/2.0/export")]


def failed_with(run, stream):
    """The one error of this stream, once it ended INCOMPLETE and the sync failed."""
    assert run.returncode != 0 and run.stream_statuses(stream)[-1] == "INCOMPLETE"
    (error,) = [e for e in run.errors if e.get("stream_descriptor", {}).get("name") == stream]
    assert error["failure_type"] == "system_error" and "Traceback" not in error["message"]
    return error["message"]
