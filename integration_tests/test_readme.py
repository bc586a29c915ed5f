"""The README's code blocks that say they run (a fence marked `tested`: ```sh tested) run as written.

They run in order in a directory laid out as the README expects (the repository's `.venv`, `sample_files` and
`integration_tests`, and `secrets/config.json` copied from `sample_files/config.json`), against the simulator the
README's own command starts, on a free port in place of the README's. The notebook snippet runs twice in a fresh
Python with neither the environment's `bin` on PATH nor PyAirbyte's offline switch set, as a notebook kernel does.
A marked block this test cannot run fails it, and so does a README without the three kinds it expects.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLE_CONFIG = json.loads((ROOT / "sample_files" / "config.json").read_text())
SIMULATOR_COMMAND = "-m integration_tests.simulator"
# Printed after the snippet has run, to see what it left behind.
SNIPPET_REPORT = '\nprint("README-RESULT", json.dumps({"processed": result.processed_records, "events": len(events), ' \
                 '"keys": int(events["dedup_key"].nunique())}))\n'


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block whose info string holds the word `tested`."""
    return [(info.split()[0], body) for info, body in re.findall(r"^```([^\n`]*)\n(.*?)^```", text, re.S | re.M)
            if "tested" in info.split()[1:]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def start_simulator(line: str, port: int, cwd: Path) -> subprocess.Popen:
    """The README's simulator line, on `port` instead of its own; returns once it listens."""
    words = shlex.split(line)
    words[words.index("--port") + 1] = str(port)
    log = cwd / "simulator.log"
    with log.open("w") as printed:
        process = subprocess.Popen(words, cwd=cwd, stdout=printed, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, f"{line}: {log.read_text()[-2000:]}"
        time.sleep(0.1)
    return process


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Runs every marked block in order and returns what each kind of block did."""
    blocks = marked_blocks(README.read_text())
    home = tmp_path_factory.mktemp("checkout")
    for name in (".venv", "sample_files", "integration_tests"):
        (home / name).symlink_to(ROOT / name)
    port = free_port()
    (home / "secrets").mkdir()
    config = {**SAMPLE_CONFIG, "base_url": f"http://127.0.0.1:{port}", "export_base_url": f"http://127.0.0.1:{port}"}
    (home / "secrets" / "config.json").write_text(json.dumps(config))
    done, servers = {"simulator": [], "cli": [], "python": [], "unknown": []}, []
    try:
        for language, body in blocks:
            if language == "python":
                done["python"] += [run_snippet(body, home) for _ in range(2)]  # the second run resumes
            elif language == "sh":
                for line in (line for line in body.splitlines() if line.strip() and not line.startswith("#")):
                    if SIMULATOR_COMMAND in line:
                        servers.append(start_simulator(line, port, home))
                        done["simulator"].append(line)
                    else:
                        ran = subprocess.run(["bash", "-c", line], cwd=home, capture_output=True, text=True, timeout=300)
                        done["cli"].append((line, ran))
            else:
                done["unknown"].append(language)
        done["truth"] = get_json(f"http://127.0.0.1:{port}/_sim/truth/export?from_date={config['start_date']}"
                                 f"&to_date={config['end_date']}") if servers else []
        done["switches"] = get_json(f"http://127.0.0.1:{port}/_sim/config") if servers else {}
        done["messages"] = (home / "messages.jsonl").read_text() if (home / "messages.jsonl").exists() else ""
        yield done
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)


def run_snippet(body: str, home: Path) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in ("AIRBYTE_OFFLINE_MODE", "DO_NOT_TRACK")}
    env["PATH"] = "/usr/bin:/bin"  # the kernel's environment is not on PATH
    ran = subprocess.run([sys.executable, "-c", body + SNIPPET_REPORT], cwd=home, env=env, capture_output=True,
                         text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.rsplit("README-RESULT", 1)[1])


def messages(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_marked_block_is_one_this_test_runs(readme_run):
    assert readme_run["unknown"] == []
    assert readme_run["simulator"] and readme_run["cli"] and readme_run["python"]


def test_the_simulator_command_serves_a_healthy_project_where_the_sample_config_points(readme_run):
    (line,) = readme_run["simulator"]
    words = shlex.split(line)
    assert int(words[words.index("--port") + 1]) == port_of(SAMPLE_CONFIG["base_url"]) == port_of(SAMPLE_CONFIG["export_base_url"])
    assert readme_run["switches"]["faults"] == []  # no fault injected: a first read never logs a broken body


def test_the_airbyte_commands_run_as_written(readme_run):
    by_command = {shlex.split(line)[1]: ran for line, ran in readme_run["cli"]}
    assert set(by_command) == {"spec", "check", "discover", "read"}
    for line, ran in readme_run["cli"]:
        assert ran.returncode == 0, (line, ran.stderr[-2000:])
    assert [m["type"] for m in messages(by_command["spec"].stdout)].count("SPEC") == 1
    (status,) = [m["connectionStatus"]["status"] for m in messages(by_command["check"].stdout) if m["type"] == "CONNECTION_STATUS"]
    assert status == "SUCCEEDED"
    (catalog,) = [m["catalog"] for m in messages(by_command["discover"].stdout) if m["type"] == "CATALOG"]
    assert "export" in {stream["name"] for stream in catalog["streams"]}
    read = messages(readme_run["messages"])
    exported = [m["record"]["data"] for m in read if m["type"] == "RECORD" and m["record"]["stream"] == "export"]
    assert len(exported) == len(readme_run["truth"]) > 0
    assert not [m for m in read if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]


def test_the_notebook_snippet_runs_offline_off_path_and_a_rerun_resumes(readme_run):
    first, second = readme_run["python"]
    events = len(readme_run["truth"])
    assert first["events"] == first["keys"] == events > 0
    assert second["events"] == second["keys"] == events  # the named cache kept the first read, each event once
    assert second["processed"] < first["processed"]  # it resumed from the cache's state instead of reading it all again
