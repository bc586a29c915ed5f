#!/usr/bin/env python3
"""Export throughput and memory benchmark for source-mixpanel, against the local simulator.

Run A reads a range of days (100,000 events; --quick: 20,000) with the connector's own `read`
command, exactly as a user would (stdout to a file), and compares it with a floor: one plain
Python process that fetches the same days with `requests` and does stdlib json.loads + json.dumps
per line. Run B reads one day of 1,000,000 events (--quick: 100,000) and reports the connector's
peak RSS. Run C is the next incremental sync of that day: it re-reads the day (one day of the export
lookback) from Run B's state and must emit none of it; its time is what each lookback day costs a sync. Every figure comes from the child process's own rusage (os.wait4), so the CPU time
counts every thread of the measured process and nothing of the simulator, which runs in a
separate process.

Bars: connector records/s >= 0.35 x the floor's on Run A and >= 0.4 x on Run B, and peak RSS <= 100 MB on
the 1M-event day. Runs A and B are each repeated (3 times by default), alternating connector and floor,
and their medians reported. Each connector run is also split by thread (the main thread writes messages;
the workers fetch, check and decode) and reports the temporary disk its largest window spooled. A missed
bar prints MISSED; only a correctness failure (wrong record count, missing or wrong final state, an error
trace, a failed process) exits non-zero.

    make bench                        # or: .venv/bin/python bench/bench.py
    .venv/bin/python bench/bench.py --quick
    .venv/bin/python bench/bench.py --profile     # also a profiled read, all threads
    .venv/bin/python bench/bench.py --source DIR  # the connector of another checkout (before/after figures)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from integration_tests.simulator import PROJECT_ID, SA_SECRET, SA_USERNAME  # noqa: E402

RATIO_BAR_A = 0.35
RATIO_BAR_B = 0.40
RSS_BAR_MB = 100.0
CONNECTOR_TIMEOUT_S = 1200

MODES = {
    # Run A: days x events per day; Run B: one day of this many events.
    "full": {"a_days": 4, "a_per_day": 25_000, "b_per_day": 1_000_000},
    "quick": {"a_days": 2, "a_per_day": 10_000, "b_per_day": 100_000},
}


class BenchFailure(Exception):
    """A correctness check failed: the bench exits non-zero."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------
# Processes and their rusage
# ------------------------------------------------------------------------------------------------
def _thread_cpu(pid: int, seen: dict) -> None:
    """Each live thread's CPU seconds so far (user + system), from /proc: seen[tid] keeps the latest."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def run_measured(cmd, stdout_path: Path, stderr_path: Path, timeout: float, env=None) -> dict:
    """Run cmd with stdout/stderr to files; return wall seconds, the child's own rusage, and its CPU split into the
    main thread and the others (sampled from /proc every 0.2 s: a thread's last 0.2 s may go uncounted)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=str(ROOT), env=env)
        threads: dict = {}
        deadline = start + timeout
        while True:
            _thread_cpu(proc.pid, threads)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.2)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 ourselves; tell Popen
    main_thread = threads.get(proc.pid, 0.0)
    return {
        "exit_code": proc.returncode,
        "wall_s": wall,
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "cpu_main_thread_s": main_thread,
        "cpu_other_threads_s": sum(threads.values()) - main_thread,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,  # KB on Linux
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Simulator:
    """`python -m integration_tests.simulator` in its own process (its own GIL), stopped with SIGTERM."""

    def __init__(self, events_per_day: int, first_day: dt.date, workdir: Path, name: str):
        self.events_per_day = events_per_day
        self.first_day = first_day
        self.log_path = workdir / f"simulator-{name}.stderr"
        self.proc = None
        self.url = None

    def start(self) -> "Simulator":
        for _ in range(5):
            port = free_port()
            cmd = [sys.executable, "-m", "integration_tests.simulator", "--port", str(port),
                   "--events-per-day", str(self.events_per_day), "--first-event-day", self.first_day.isoformat(),
                   "--cache-bodies"]
            self._stderr = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                         cwd=str(ROOT), text=True)
            lines: "queue.Queue[str]" = queue.Queue()
            threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                line = ""
            prefix = "simulator listening on "
            if line.startswith(prefix):
                self.url = line[len(prefix):].strip()
                return self
            self.stop()  # most likely the port was taken meanwhile: try another
        raise BenchFailure(f"the simulator did not start; see {self.log_path}: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_stderr", None):
            self._stderr.close()
        self.proc = None

    def warm(self, days) -> float:
        """Make the simulator build (and cache) each day's body, so no measured run pays for generating it."""
        import requests

        start = time.perf_counter()
        for day in days:
            # The cached body (plain and gzip) is built before the first byte is sent; close right away.
            with requests.get(f"{self.url}/api/2.0/export", stream=True, timeout=600,
                              params={"from_date": day.isoformat(), "to_date": day.isoformat(), "project_id": PROJECT_ID},
                              auth=(SA_USERNAME, SA_SECRET)) as response:
                if response.status_code != 200:
                    raise BenchFailure(f"warming {day}: HTTP {response.status_code} {response.text[:300]}")
        return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------
# The connector
# ------------------------------------------------------------------------------------------------
SOURCE_DIR = None  # --source: a checkout whose source_mixpanel is measured instead of the installed one


def connector_command() -> list:
    if SOURCE_DIR is not None:  # first on the path, ahead of the current directory and the installed package
        return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(SOURCE_DIR)!r}); "
                                      f"from source_mixpanel.entrypoint import run; run()"]
    exe = Path(sys.executable).parent / "source-mixpanel"
    if not exe.exists():
        raise BenchFailure(f"{exe} not found: install the connector into this environment (make install)")
    return [str(exe)]


def prepare_connector(url: str, first: dt.date, last: dt.date, workdir: Path, name: str):
    """Write the config and, from `discover`, a configured catalog of the export stream only."""
    config = {
        "credentials": {"option_title": "Service Account", "username": SA_USERNAME, "secret": SA_SECRET,
                        "project_id": PROJECT_ID},
        "base_url": url, "export_base_url": url, "project_timezone": "UTC",
        "start_date": first.isoformat(), "end_date": last.isoformat(),
    }
    config_path = workdir / f"config-{name}.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run([*connector_command(), "discover", "--config", str(config_path)], capture_output=True,
                            text=True, timeout=300, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    stream = None
    for line in result.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("type") == "CATALOG":
            stream = next((s for s in message["catalog"]["streams"] if s["name"] == "export"), None)
    if result.returncode != 0 or stream is None:
        raise BenchFailure(f"discover gave no export stream (exit {result.returncode}):\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    catalog_path = workdir / f"catalog-{name}.json"
    catalog_path.write_text(json.dumps({"streams": [
        {"stream": stream, "sync_mode": "incremental", "destination_sync_mode": "append"}]}))
    return config_path, catalog_path


def check_connector_output(path: Path) -> dict:
    """Count RECORD messages; find the last STATE, error traces and warnings. Fast path for records."""
    records = 0
    last_state = None
    errors, warnings = [], 0
    spool_mb = None  # the largest window's temporary disk, from the connector's window lines
    sample = None
    other_streams = 0
    record_prefix = b'{"type":"RECORD"'
    with open(path, "rb") as file:
        for line in file:
            if line.startswith(record_prefix):
                records += 1
                if sample is None:
                    sample = json.loads(line)
                continue
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                errors.append(f"not JSON on stdout: {line[:200]!r}")
                continue
            kind = message.get("type")
            if kind == "RECORD":  # another key order than the fast path expects
                records += 1
                sample = sample or message
            elif kind == "STATE":
                last_state = message["state"]
            elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
                errors.append("TRACE ERROR: " + json.dumps(message["trace"].get("error"))[:800])
            elif kind == "LOG" and SPOOL_LINE.search(message["log"].get("message", "")):
                spooled = float(SPOOL_LINE.search(message["log"]["message"])[1].replace(",", ""))
                spool_mb = max(spool_mb or 0.0, spooled)
            elif kind == "LOG" and message["log"].get("level") in ("WARN", "WARNING", "ERROR", "FATAL"):
                warnings += 1
                if message["log"].get("level") in ("ERROR", "FATAL"):
                    errors.append("LOG " + message["log"]["level"] + ": " + message["log"].get("message", "")[:800])
    if sample is not None and sample.get("record", {}).get("stream") != "export":
        other_streams += 1
    return {"records": records, "last_state": last_state, "errors": errors, "warnings": warnings, "sample": sample,
            "other_streams": other_streams, "spool_mb": spool_mb}


SPOOL_LINE = re.compile(r"its body took ([\d,.]+) MB of temporary disk")


def read_connector(config_path: Path, catalog_path: Path, workdir: Path, name: str, state=None) -> dict:
    out = workdir / f"connector-{name}.jsonl"
    err = workdir / f"connector-{name}.stderr"
    cmd = [*connector_command(), "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if state is not None:
        state_path = workdir / f"state-{name}.json"
        state_path.write_text(json.dumps([state]))
        cmd += ["--state", str(state_path)]
    result = run_measured(cmd, out, err, CONNECTOR_TIMEOUT_S)
    result["output"] = check_connector_output(out)
    result["spool_mb"] = result["output"]["spool_mb"]
    result["stderr_tail"] = err.read_text(errors="replace")[-2000:]
    result["output_mb"] = out.stat().st_size / 1e6
    out.unlink()  # the 1M-event output is ~1 GB: do not keep it around
    return result


# ------------------------------------------------------------------------------------------------
# The floor: requests + stdlib json in one plain process
# ------------------------------------------------------------------------------------------------
FLOOR_SCRIPT = r'''
import json, sys
import requests

url, days, out_path, user, secret, project_id = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
count = 0
max_time = None
session = requests.Session()
session.auth = (user, secret)
loads, dumps = json.loads, json.dumps
with open(out_path, "w", encoding="utf-8") as out:
    write = out.write
    for day in days:  # one request per day, as the connector makes them
        with session.get(url + "/api/2.0/export", stream=True, timeout=600,
                         params={"from_date": day, "to_date": day, "project_id": project_id}) as response:
            response.raise_for_status()
            for line in response.iter_lines(chunk_size=65536):
                if not line:
                    continue
                event = loads(line)
                t = event["properties"]["time"]
                if max_time is None or t > max_time:
                    max_time = t
                write(dumps(event))
                write("\n")
                count += 1
print(json.dumps({"records": count, "max_time": max_time}))
'''


def read_floor(url: str, days, workdir: Path, name: str) -> dict:
    script = workdir / "floor.py"
    script.write_text(FLOOR_SCRIPT)
    out = workdir / f"floor-{name}.jsonl"
    summary = workdir / f"floor-{name}.summary"
    err = workdir / f"floor-{name}.stderr"
    cmd = [sys.executable, str(script), url, ",".join(d.isoformat() for d in days), str(out), SA_USERNAME, SA_SECRET,
           str(PROJECT_ID)]
    result = run_measured(cmd, summary, err, CONNECTOR_TIMEOUT_S)
    if result["exit_code"] != 0:
        raise BenchFailure(f"the floor failed (exit {result['exit_code']}): {err.read_text()[-2000:]}")
    result.update(json.loads(summary.read_text()))
    out.unlink()
    return result


# ------------------------------------------------------------------------------------------------
# Checks and the report
# ------------------------------------------------------------------------------------------------
def verify(result: dict, expected_records: int, expected_state_time, last_day: dt.date, label: str) -> list:
    """Correctness problems of one connector read (empty when it is right)."""
    problems = []
    output = result["output"]
    if result["exit_code"] != 0:
        problems.append(f"{label}: the connector exited {result['exit_code']}; stderr: {result['stderr_tail']}")
    if output["records"] != expected_records:
        problems.append(f"{label}: {output['records']} RECORD messages, expected {expected_records}")
    if output["other_streams"]:
        problems.append(f"{label}: records of a stream other than export")
    problems += [f"{label}: {e}" for e in output["errors"]]
    state = output["last_state"]
    try:
        state_time = state["stream"]["stream_state"]["time"]
    except (TypeError, KeyError):
        state_time = None
    result["final_state_time"] = state_time
    if state_time is None:
        problems.append(f"{label}: no final STATE with stream_state.time (last STATE: {state})")
    elif expected_state_time is not None and state_time != expected_state_time:
        problems.append(f"{label}: final state time {state_time}, expected {expected_state_time} (the newest event)")
    elif not state_time.startswith(last_day.isoformat()):
        problems.append(f"{label}: final state time {state_time} is not on the last day {last_day}")
    sample = output["sample"]
    if sample is not None:
        data = sample["record"]["data"]
        if not isinstance(data.get("event"), str) or not isinstance(data.get("time"), str):
            problems.append(f"{label}: a record without string event/time: {json.dumps(data)[:300]}")
    return problems


def iso_utc(epoch_seconds) -> str | None:
    if epoch_seconds is None:
        return None
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rates(result: dict, records: int) -> dict:
    result["records_per_s"] = records / result["wall_s"] if result["wall_s"] > 0 else 0.0
    result["us_cpu_per_record"] = 1e6 * result["cpu_s"] / records if records else 0.0
    return result


def median_run(runs: list) -> dict:
    """The run with the median records/s (the lower middle one for an even count); keeps all for the JSON."""
    ordered = sorted(runs, key=lambda r: r["records_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = len(runs)
    chosen["records_per_s_all"] = [r["records_per_s"] for r in runs]
    chosen["peak_rss_mb_max"] = max(r["peak_rss_mb"] for r in runs)
    return chosen


def alternated(name: str, repeat: int, paths, url: str, days, expected: int, workdir: Path, problems: list):
    """The connector and the floor on the same days, alternated `repeat` times: (connector median, floor median,
    ratio of the medians, ratio per repeat, connector runs, floor runs); correctness problems go to `problems`."""
    conn_runs, floor_runs = [], []
    for rep in range(repeat):
        log(f"Run {name} {rep + 1}/{repeat}: connector read ...")
        conn = read_connector(*paths, workdir, f"{name}{rep}")
        log(f"Run {name} {rep + 1}/{repeat}: floor (requests + json.loads/json.dumps) ...")
        floor = read_floor(url, days, workdir, f"{name}{rep}")
        if floor["records"] != expected:
            problems.append(f"Run {name} floor: {floor['records']} lines, expected {expected}")
        problems += verify(conn, expected, iso_utc(floor["max_time"]), days[-1], f"Run {name} {rep + 1}")
        conn_runs.append(rates(conn, conn["output"]["records"]))
        floor_runs.append(rates(floor, floor["records"]))
        log(f"Run {name} {rep + 1}/{repeat}: connector {conn['records_per_s']:,.0f} records/s, "
            f"floor {floor['records_per_s']:,.0f} records/s")
    conn, floor = median_run(conn_runs), median_run(floor_runs)
    ratio = conn["records_per_s"] / floor["records_per_s"] if floor["records_per_s"] else 0.0
    return conn, floor, ratio, [c["records_per_s"] / f["records_per_s"] for c, f in zip(conn_runs, floor_runs)], \
        conn_runs, floor_runs


def row(name: str, r: dict, records: int) -> str:
    def per_record(key: str) -> str:
        return f"{1e6 * r[key] / records:.1f}" if key in r and records else "-"

    spool = f"{r['spool_mb']:.0f}" if r.get("spool_mb") is not None else "-"
    return (f"{name:<26} {records:>10,} {r['wall_s']:>8.2f} {r['records_per_s']:>11,.0f} {r['cpu_s']:>8.2f} "
            f"{r['us_cpu_per_record']:>8.1f} {per_record('cpu_main_thread_s'):>7} {per_record('cpu_other_threads_s'):>7} "
            f"{r['peak_rss_mb']:>9.1f} {spool:>8}")


HEADER = (f"{'run':<26} {'records':>10} {'wall s':>8} {'records/s':>11} {'CPU s':>8} {'us CPU/r':>8} {'main':>7} "
          f"{'workers':>7} {'peak RSS':>9} {'spool MB':>8}")


# ------------------------------------------------------------------------------------------------
# Optional profile: the connector in process, every thread under its own cProfile, merged
# ------------------------------------------------------------------------------------------------
PROFILE_SCRIPT = r'''
import cProfile, pstats, sys, threading, time
# time.thread_time: each profile counts the CPU of its own thread, so blocking waits (queue gets,
# socket reads) do not show up as cost and the merged figures add up to the process's CPU.
stats_path, text_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
profiles = []
lock = threading.Lock()
original_run = threading.Thread.run

def profiled_run(self):
    profile = cProfile.Profile(time.thread_time)
    with lock:
        profiles.append((self, profile))
    profile.enable()
    try:
        original_run(self)
    finally:
        profile.disable()

threading.Thread.run = profiled_run
main_profile = cProfile.Profile(time.thread_time)
main_profile.enable()
try:
    from source_mixpanel.entrypoint import run
    run(argv)
finally:
    main_profile.disable()
    merged = pstats.Stats(main_profile)
    alive = 0
    for thread, profile in profiles:
        if thread.is_alive():
            alive += 1
        try:
            merged.add(profile)
        except Exception as exc:  # a profile with no data, or still running
            print(f"profile of {thread.name} skipped: {exc}", file=sys.stderr)
    merged.dump_stats(stats_path)
    with open(text_path, "w") as out:
        out.write(f"threads profiled: {len(profiles)} (+ main), still alive at the end: {alive}; "
                  "times are per-thread CPU seconds (time.thread_time), merged\n")
        for key in ("tottime", "cumulative"):
            out.write(f"\n==== by {key} ====\n")
            pstats.Stats(stats_path, stream=out).sort_stats(key).print_stats(45)
'''


def profile_read(url: str, first: dt.date, last: dt.date, workdir: Path) -> Path:
    config_path, catalog_path = prepare_connector(url, first, last, workdir, "profile")
    script = workdir / "profile_driver.py"
    script.write_text(PROFILE_SCRIPT)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stats_path, text_path = OUT_DIR / "profile.pstats", OUT_DIR / "profile.txt"
    cmd = [sys.executable, str(script), str(stats_path), str(text_path),
           "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    out, err = workdir / "connector-profile.jsonl", workdir / "connector-profile.stderr"
    result = run_measured(cmd, out, err, CONNECTOR_TIMEOUT_S)
    records = check_connector_output(out)["records"]
    log(f"profiled read: exit {result['exit_code']}, {records:,} records in {result['wall_s']:.1f}s "
        f"(slowed by the profiler), {result['cpu_s']:.1f} CPU s")
    if not text_path.exists():
        log(f"the profile was not written: {err.read_text(errors='replace')[-1500:]}")
    return text_path


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (20,000 events; a 100,000-event big day)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repeats of Runs A and B, medians reported (default 3; --quick: 1)")
    parser.add_argument("--source", type=Path, default=None,
                        help="measure the source_mixpanel package of this checkout instead of the installed one")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a Run A read (all threads) into bench/out/profile.txt")
    args = parser.parse_args(argv)
    global SOURCE_DIR
    SOURCE_DIR = args.source.resolve() if args.source else None
    mode = "quick" if args.quick else "full"
    sizes = MODES[mode]
    repeat = max(1, args.repeat if args.repeat is not None else (1 if args.quick else 3))
    bench_start = time.perf_counter()

    today = dt.datetime.now(dt.timezone.utc).date()
    a_last = today - dt.timedelta(days=7)
    a_first = a_last - dt.timedelta(days=sizes["a_days"] - 1)
    a_days = [a_first + dt.timedelta(days=i) for i in range(sizes["a_days"])]
    a_expected = sizes["a_days"] * sizes["a_per_day"]
    b_day = a_last
    b_expected = sizes["b_per_day"]

    log(f"mode: {mode}, Run A x{repeat} (python {platform.python_version()}, {os.cpu_count()} CPUs, connector {' '.join(connector_command())})")
    log(f"Run A: {a_first}..{a_last}, {sizes['a_days']} days x {sizes['a_per_day']:,} = {a_expected:,} events; "
        f"Run B: {b_day}, {b_expected:,} events")

    problems: list = []
    results: dict = {"mode": mode, "date_utc": today.isoformat(), "python": platform.python_version(),
                     "cpus": os.cpu_count(), "source": str(SOURCE_DIR or ROOT),
                     "bars": {"ratio_a_min": RATIO_BAR_A, "ratio_b_min": RATIO_BAR_B, "big_day_peak_rss_mb_max": RSS_BAR_MB}}
    profile_text = None
    simulators = []
    try:
        with tempfile.TemporaryDirectory(prefix="mixpanel-bench-") as tmp:
            workdir = Path(tmp)

            # ---- Run A: connector vs floor on the same days, alternated, median of the repeats
            sim_a = Simulator(sizes["a_per_day"], a_first, workdir, "a")
            simulators.append(sim_a)
            sim_a.start()
            log(f"simulator A at {sim_a.url}; warmed {len(a_days)} day bodies in {sim_a.warm(a_days):.1f}s")
            paths_a = prepare_connector(sim_a.url, a_first, a_last, workdir, "a")
            conn_a, floor_a, ratio, ratios, conn_runs, floor_runs = alternated(
                "A", repeat, paths_a, sim_a.url, a_days, a_expected, workdir, problems)

            if args.profile:
                log("profiling a Run A read (all threads) ...")
                profile_text = profile_read(sim_a.url, a_first, a_last, workdir)
            sim_a.stop()

            # ---- Run B: one big day, connector and floor alternated, the median of the repeats
            sim_b = Simulator(b_expected, b_day, workdir, "b")
            simulators.append(sim_b)
            sim_b.start()
            log(f"simulator B at {sim_b.url}; warmed the {b_expected:,}-event day in {sim_b.warm([b_day]):.1f}s")
            paths_b = prepare_connector(sim_b.url, b_day, b_day, workdir, "b")
            conn_b, floor_b, ratio_b, ratios_b, conn_b_runs, floor_b_runs = alternated(
                "B", repeat, paths_b, sim_b.url, [b_day], b_expected, workdir, problems)
            # ---- Run C: the next incremental sync re-reads that day (one lookback day) and emits none of it
            log("Run C: connector re-read of the same day from Run B's state ...")
            conn_c = read_connector(*prepare_connector(sim_b.url, b_day, b_day, workdir, "c"), workdir, "c",
                                    state=conn_b["output"]["last_state"])
            if conn_c["output"]["records"] or conn_c["output"]["errors"]:
                problems.append(f"Run C: {conn_c['output']['records']} records re-emitted (expected 0), "
                                f"errors {conn_c['output']['errors'][:2]}")
            sim_b.stop()
    finally:
        for sim in simulators:
            sim.stop()

    total_s = time.perf_counter() - bench_start
    # ---- Report
    print()
    print(f"source-mixpanel export benchmark ({mode} mode{', source ' + str(SOURCE_DIR) if SOURCE_DIR else ''})")
    print(HEADER)
    print(row(f"A connector ({sizes['a_days']} days)", conn_a, conn_a["output"]["records"]))
    print(row("A floor (requests+json)", floor_a, floor_a["records"]))
    print(row("B connector (1 big day)", conn_b, conn_b["output"]["records"]))
    print(row("B floor (requests+json)", floor_b, floor_b["records"]))
    print(f"{'C lookback day re-read':<26} {0:>10,} {conn_c['wall_s']:>8.1f} {'':>11} {conn_c['cpu_s']:>8.1f} "
          f"{'':>8} {'':>7} {'':>7} {conn_c['peak_rss_mb']:>9.0f}")
    print(f"Run C: one lookback day of {b_expected:,} events costs {conn_c['wall_s'] / conn_b['wall_s']:.2f} of reading "
          f"it new (wall {conn_c['wall_s']:.1f} s against {conn_b['wall_s']:.1f} s)")
    print("(peak RSS in MB; CPU = user+sys of the process, all threads; wall includes process start-up; us CPU/r split "
          "into the main thread, which writes the messages, and the workers, which fetch, check and decode)")
    print(f"(rows A and B: the median of {repeat} alternated repeats by records/s; spool MB: the temporary disk of the "
          f"largest window)")
    if repeat > 1:
        for name, conns, floors, each in (("A", conn_runs, floor_runs, ratios), ("B", conn_b_runs, floor_b_runs, ratios_b)):
            print(f"Run {name} records/s per repeat: connector " + ", ".join(f"{r['records_per_s']:,.0f}" for r in conns)
                  + "; floor " + ", ".join(f"{r['records_per_s']:,.0f}" for r in floors)
                  + "; ratios " + ", ".join(f"{x:.3f}" for x in each))
    print(f"Run A ratio connector/floor records/s (medians): {ratio:.3f}; Run B ratio: {ratio_b:.3f}")
    if conn_b.get("spool_mb") is not None:
        print(f"temporary disk: {conn_b['spool_mb'] * 1_000_000 / b_expected:,.0f} MB per 1,000,000 events "
              f"(Run B's window, spooled gzipped)")
    print(f"connector output: A {conn_a['output_mb']:.0f} MB, B {conn_b['output_mb']:.0f} MB; "
          f"final states A {conn_a.get('final_state_time')}, B {conn_b.get('final_state_time')}; "
          f"warning logs A {conn_a['output']['warnings']}, B {conn_b['output']['warnings']}")
    if profile_text is not None:
        print(f"profile: {profile_text}")
    print(f"bench took {total_s:.0f}s")

    def strip(r: dict) -> dict:
        r = dict(r)
        output = r.pop("output", None)
        r.pop("stderr_tail", None)
        if output is not None:
            r["records"] = output["records"]
            r["warning_logs"] = output["warnings"]
        return r

    ratio_ok, ratio_b_ok = ratio >= RATIO_BAR_A, ratio_b >= RATIO_BAR_B
    rss_ok = conn_b["peak_rss_mb_max"] <= RSS_BAR_MB
    results.update({
        "run_a": {"first_day": a_first.isoformat(), "last_day": a_last.isoformat(), "expected_records": a_expected,
                  "connector": strip(conn_a), "floor": strip(floor_a), "ratio": ratio, "ratio_per_repeat": ratios,
                  "connector_runs": [strip(r) for r in conn_runs], "floor_runs": [strip(r) for r in floor_runs]},
        "run_b": {"day": b_day.isoformat(), "expected_records": b_expected, "connector": strip(conn_b),
                  "floor": strip(floor_b), "ratio": ratio_b, "ratio_per_repeat": ratios_b,
                  "connector_runs": [strip(r) for r in conn_b_runs], "floor_runs": [strip(r) for r in floor_b_runs]},
        "run_c_lookback_day": {"connector": strip(conn_c), "of_run_b_wall": conn_c["wall_s"] / conn_b["wall_s"]},
        "ratio": ratio, "ratio_ok": ratio_ok, "ratio_b": ratio_b, "ratio_b_ok": ratio_b_ok,
        "big_day_peak_rss_mb": conn_b["peak_rss_mb_max"], "big_day_records_per_s": conn_b["records_per_s"], "rss_ok": rss_ok,
        "correct": not problems, "problems": problems, "bench_seconds": total_s,
    })
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {OUT_DIR / 'results.json'}")

    big = "1M-day" if mode == "full" else f"{b_expected // 1000}k-day"
    print(f"bench ({mode}): Run A ratio {ratio:.2f} (>= {RATIO_BAR_A} {'ok' if ratio_ok else 'MISSED'}), "
          f"{big} ratio {ratio_b:.2f} (>= {RATIO_BAR_B} {'ok' if ratio_b_ok else 'MISSED'}), "
          f"{big} peak RSS {conn_b['peak_rss_mb_max']:.0f} MB (<= {RSS_BAR_MB:.0f} MB {'ok' if rss_ok else 'MISSED'}), "
          f"{big} {conn_b['records_per_s']:,.0f} records/s")
    if problems:
        print("CORRECTNESS FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as failure:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
