"""Fixtures: a simulator per test module, and the real `source-mixpanel` command run as a subprocess."""

import hashlib
import json
import re
import subprocess
import sys
import urllib.request
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import pytest
from anyascii import anyascii

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


def dedup_key(event):
    """docs/streams.md's formula (Duplicates), written out independently of the connector: BLAKE2b-128 (hex) of the compact JSON
    array [event, distinct_id, time in whole seconds, $insert_id]; without $insert_id, of a zero byte and the whole
    event as compact JSON with sorted keys."""
    properties = event["properties"]
    if properties.get("$insert_id") is not None:
        material = json.dumps([event["event"], properties.get("distinct_id"), int(properties["time"]),
                               properties["$insert_id"]], separators=(",", ":"), ensure_ascii=False).encode()
    else:
        material = b"\0" + json.dumps(event, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def column_map(names, first=(), reserved=()):
    """The naming rule, written out independently of the connector: `first` names, then the rest sorted; `$`
    dropped and other letters spelled in ASCII; a name whose lower-case, underscored form meets an earlier one's
    (or a reserved one's) gets `_`."""

    def key(column):
        key = re.sub(r"[^a-z0-9]", "_", column.lower())
        return "_" + key if key[:1].isdigit() else key

    columns, taken = {}, {key(name) for name in reserved}
    for raw in [n for n in first if n in names] + sorted(set(names) - set(first)):
        column = anyascii(raw[1:] if raw.startswith("$") else raw)
        if not re.search(r"[A-Za-z0-9]", column):
            column = f"property_{zlib.crc32(raw.encode()):08x}"
        while key(column) in taken:
            column = "_" + column
        taken.add(key(column))
        columns[raw] = column
    return columns


@pytest.fixture(scope="module")
def sim():
    with MixpanelSimulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh_log(request):
    """Each test reads only its own requests; switches a test flips are its own to reset."""
    for name in request.fixturenames:
        if name in ("sim", "capped", "limited", "capped_small"):
            request.getfixturevalue(name).reset_log()
            request.getfixturevalue(name).clear_hostile()
    yield
