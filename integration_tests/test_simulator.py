"""Tests of the fake Mixpanel server itself, over HTTP with `requests`."""
import argparse
import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from integration_tests import simulator
from integration_tests.simulator import (
    API_SECRET,
    PROJECT_ID,
    SA_SECRET,
    SA_USERNAME,
    MixpanelSimulator,
)
from integration_tests.simulator import cli
from integration_tests.simulator.switches import switch_table

TODAY = "2024-03-01"
SA = (SA_USERNAME, SA_SECRET)
PID = {"project_id": str(PROJECT_ID)}
NAMES = {**PID, "type": "general"}  # events/names requires its type


@pytest.fixture
def sim():
    with MixpanelSimulator(today=TODAY, n_profiles=250, max_page_size=100, events_per_day=40) as s:
        yield s


def basic(raw: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def export(sim, stream=False, **params):
    return requests.get(f"{sim.url}/api/2.0/export", params={**PID, **params}, auth=SA, stream=stream, timeout=10)


def parse_jsonl(text: str) -> list:
    return [json.loads(line) for line in text.split("\n") if line]


# ------------------------------------------------------------------ auth
def test_project_secret_accepted_with_and_without_colon(sim):
    for raw in (API_SECRET, API_SECRET + ":"):
        r = requests.get(f"{sim.url}/api/query/events/names", params={"type": "general"}, headers=basic(raw), timeout=5)
        assert r.status_code == 200, r.text
        assert "Ünïcode ✓ event" in r.json()
    assert [e["auth"] for e in sim.requests] == ["project_secret", "project_secret"]


def test_bad_credentials_both_styles(sim):
    url = f"{sim.url}/api/query/cohorts/list"
    r = requests.get(url, params=PID, auth=(SA_USERNAME, "wrong"), timeout=5)
    assert r.status_code == 401
    assert r.json() == {"error": "Unable to authenticate request", "status": "error"}
    assert requests.get(url, params=PID, timeout=5).status_code == 401  # no credentials at all
    assert requests.get(url, headers=basic(API_SECRET + ":x"), timeout=5).status_code == 401
    sim.auth_error_style = "400-text"
    r = requests.get(url, params=PID, auth=("someone", "else"), timeout=5)
    assert r.status_code == 400 and r.text == "Unable to authenticate request"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert [e["auth"] for e in sim.requests] == ["bad", None, "bad", "bad"]
    assert SA_SECRET not in json.dumps(sim.requests)


def test_service_account_needs_project_id(sim):
    url = f"{sim.url}/api/query/funnels/list"
    for params in ({}, {"project_id": "1"}):
        r = requests.get(url, params=params, auth=SA, timeout=5)
        assert r.status_code == 403 and "project" in r.json()["error"] and r.json()["status"] == "error"
    assert requests.get(url, params=PID, auth=SA, timeout=5).json()[0] == {"funnel_id": 7509, "name": "Signup funnel"}
    # app paths carry the project in the path and refuse a project secret
    assert requests.get(f"{sim.url}/api/app/projects/{PROJECT_ID}/annotations", auth=SA, timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/api/app/projects/99/annotations", auth=SA, timeout=5).status_code == 403
    assert requests.get(f"{sim.url}/api/app/me", headers=basic(API_SECRET), timeout=5).status_code == 401


# ------------------------------------------------------------------ export
def test_export_serves_the_truth_with_awkward_values(sim):
    r = export(sim, from_date="2024-01-01", to_date="2024-01-03", headers=None)
    assert r.status_code == 200
    assert r.text.endswith("\n") and r.text.count("\n") == 120
    served = parse_jsonl(r.text)
    assert served == sim.export_truth("2024-01-01", "2024-01-03")
    props = [e["properties"] for e in served]
    assert {e["event"] for e in served} >= {"Signed up", "Page View", "Purchase", "Ünïcode ✓ event"}
    assert any(p.get("comment") == "line one\nline two" for p in props)
    assert any("$username" in p and "userName" in p for p in props)
    assert any(p.get("plan") == {"tier": "pro", "seats": 3} for p in props)
    assert len({p["$insert_id"] for p in props}) == len(props)
    assert all(1704067200 <= p["time"] < 1704067200 + 3 * 86400 for p in props)
    assert 0 < sum("$rare_prop" in p for p in props) < 10
    top = requests.get(f"{sim.url}/api/query/events/properties/top", params={**PID, "limit": 2000}, auth=SA,
                       timeout=5).json()
    assert "$rare_prop" not in top
    assert {k for p in props for k in p} - {"$rare_prop"} <= set(top)
    assert set(top) == set(sim.event_property_names())
    # no events before first_event_day
    assert export(sim, from_date="2023-12-30", to_date="2023-12-31").text == ""


def test_export_gzip_and_plain(sim):
    r = export(sim, stream=True, from_date="2024-01-01", to_date="2024-01-01")
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Transfer-Encoding"] == "chunked"
    raw = r.raw.read(decode_content=False)
    assert raw[:2] == b"\x1f\x8b"
    assert parse_jsonl(gzip.decompress(raw).decode()) == sim.export_truth("2024-01-01", "2024-01-01")
    sim.gzip = False
    r = export(sim, from_date="2024-01-01", to_date="2024-01-01")
    assert "Content-Encoding" not in r.headers
    assert parse_jsonl(r.text) == sim.export_truth("2024-01-01", "2024-01-01")


def test_export_event_filter_and_limit(sim):
    names = ["Purchase", "Ünïcode ✓ event"]
    r = export(sim, from_date="2024-01-01", to_date="2024-01-05", event=json.dumps(names))
    served = parse_jsonl(r.text)
    assert served and {e["event"] for e in served} == set(names)
    full = sim.export_truth("2024-01-01", "2024-01-05")
    assert served == [e for e in full if e["event"] in names] == sim.export_truth("2024-01-01", "2024-01-05", names)
    assert parse_jsonl(export(sim, from_date="2024-01-01", to_date="2024-01-05", limit="7").text) == full[:7]


def test_export_bad_dates(sim):
    r = export(sim, from_date="2024-02-01", to_date="2024-03-02")
    assert r.status_code == 400 and r.text == "to_date cannot be later than today"
    assert export(sim, from_date="2024-02-01", to_date=TODAY).status_code == 200
    assert export(sim, from_date="2024-02-01").status_code == 400
    assert export(sim, from_date="01/02/2024", to_date="2024-02-02").status_code == 400


def test_export_cached_bodies_match(sim):
    sim.cache_bodies = True
    for _ in range(2):
        assert parse_jsonl(export(sim, from_date="2024-01-01", to_date="2024-01-02").text) == \
            sim.export_truth("2024-01-01", "2024-01-02")


# ------------------------------------------------------------------ export faults
def _read_body(sim, **params):
    """(complete?, decoded text) of one export request."""
    r = export(sim, stream=True, from_date="2024-01-01", to_date="2024-01-02", **params)
    chunks = []
    try:
        for chunk in r.iter_content(8192):
            chunks.append(chunk)
        return r.status_code, True, b"".join(chunks).decode()
    except requests.exceptions.RequestException:
        return r.status_code, False, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("use_gzip", [True, False])
def test_faults_on_first_attempt_then_clean(sim, use_gzip):
    sim.gzip = use_gzip
    sim.stall_seconds = 0.3
    truth = sim.export_truth("2024-01-01", "2024-01-02")
    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in truth]
    for fault in ("split_lines", "terminated_early", "cut", "stall", "5xx"):
        sim.reset_log()
        sim.faults = {fault}
        started = time.monotonic()
        status, complete, text = _read_body(sim)
        if fault == "split_lines":
            assert status == 200 and complete
            split = sum("\\n" in line for line in lines)
            assert split > 0 and text.count("\n") == len(truth) + split
            with pytest.raises(ValueError):
                parse_jsonl(text)
            assert text.replace("line one\nline two", "line one\\nline two").split("\n")[:-1] == lines
        elif fault == "terminated_early":
            assert status == 200 and complete
            body = text.split("\n")
            assert body[-2:] == ["terminated early", ""] and body[:-2] == lines[: len(truth) // 2]
        elif fault in ("cut", "stall"):
            assert status == 200 and not complete
            assert text.split("\n")[:-1] == lines[: len(truth) // 2]
            if fault == "stall":
                assert time.monotonic() - started >= 0.3
        else:
            assert status == 500 and json.loads(text)["status"] == "error"
        status, complete, text = _read_body(sim)
        assert (status, complete) == (200, True) and parse_jsonl(text) == truth, fault
        assert [e["attempt"] for e in sim.requests] == [1, 2]


def test_stall_gives_up_when_server_stops():
    s = MixpanelSimulator(today=TODAY, faults={"stall"}, stall_seconds=30).start()
    r = requests.get(f"{s.url}/api/2.0/export", params={**PID, "from_date": "2024-01-01", "to_date": "2024-01-01"},
                     auth=SA, stream=True, timeout=5)
    lines = r.iter_lines()
    assert json.loads(next(lines))["event"]
    started = time.monotonic()
    s.stop()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(lines)
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------ engage
def test_engage_paging_sessions_and_page_size(sim):
    url = f"{sim.url}/api/query/engage"
    first = requests.post(url, params=PID, data={"page_size": "1000"}, auth=SA, timeout=5).json()
    assert first["page"] == 0 and first["page_size"] == 100 and first["total"] == 250 and first["status"] == "ok"
    pages, page = [first], 0
    while len(pages[-1]["results"]) == 100:
        page += 1
        nxt = requests.post(url, params=PID, json={"page": page, "session_id": first["session_id"], "page_size": 1000},
                            auth=SA, timeout=5).json()
        assert "total" not in nxt and nxt["page"] == page and nxt["page_size"] == 100
        assert nxt["session_id"] == first["session_id"]
        pages.append(nxt)
    assert [len(p["results"]) for p in pages] == [100, 100, 50]
    assert [p for pg in pages for p in pg["results"]] == sim.profiles()
    ids = [p["$distinct_id"] for p in sim.profiles()]
    assert ids == sorted(ids)
    past = requests.post(url, params={**PID, "page": 5, "session_id": first["session_id"]}, auth=SA, timeout=5).json()
    assert past["results"] == []
    assert requests.post(url, params={**PID, "page": 1}, auth=SA, timeout=5).status_code == 400
    assert requests.post(url, params={**PID, "page": 1, "session_id": "nope"}, auth=SA, timeout=5).status_code == 400


def test_engage_where_and_types(sim):
    url = f"{sim.url}/api/query/engage"
    bound = "2024-06-01T00:00:00"
    r = requests.post(url, params={**PID, "where": f'properties["$last_seen"] >= "{bound}"'}, auth=SA, timeout=5)
    expected = [p for p in sim.profiles() if p["$properties"].get("$last_seen", "") >= bound]
    assert r.json()["total"] == len(expected) and r.json()["results"] == expected[:100]
    assert 0 < len(expected) < 250
    assert 0 < sum("$last_seen" not in p["$properties"] for p in sim.profiles()) < 30
    r = requests.post(url, params={**PID, "where": 'properties["$email"] == "x"'}, auth=SA, timeout=5)
    assert r.status_code == 400 and r.json() == {"error": "simulator: unsupported where", "status": "error"}
    types = requests.get(f"{sim.url}/api/query/engage/properties", params=PID, auth=SA, timeout=5).json()
    assert types["status"] == "ok"
    assert {v["type"] for v in types["results"].values()} == {
        "string", "number", "boolean", "datetime", "object", "list", "unknown"}
    assert types["results"]["$last_seen"]["type"] == "datetime"


def test_cohort_membership(sim):
    cohorts = requests.post(f"{sim.url}/api/query/cohorts/list", params=PID, auth=SA, timeout=5).json()
    assert isinstance(cohorts, list) and len(cohorts) == 3 and cohorts == sim.cohorts()
    for cohort in cohorts:
        r = requests.post(f"{sim.url}/api/query/engage", params=PID, json={"filter_by_cohort": {"id": cohort["id"]}},
                          auth=SA, timeout=5).json()
        assert r["total"] == cohort["count"] == len(sim.cohort_members(cohort["id"]))
        assert r["results"] == sim.cohort_members(cohort["id"])[:100]
    assert cohorts[0]["count"] != cohorts[1]["count"]
    r = requests.post(f"{sim.url}/api/query/engage", params=PID, data={"filter_by_cohort": '{"id": 1}'},
                      auth=SA, timeout=5).json()
    assert r["total"] == 0 and r["results"] == []


# ------------------------------------------------------------------ switches
def test_plan_refusal_and_retired(sim):
    q = lambda path: requests.get(f"{sim.url}{path}", params={**PID, "from_date": "2024-01-01",  # noqa: E731
                                                               "to_date": "2024-01-02"}, auth=SA, timeout=5)
    sim.plan_refuses = {"cohorts"}
    r = q("/api/query/cohorts/list")
    assert r.status_code == 402
    assert r.json() == {"error": "Your plan does not allow API calls. Upgrade at mixpanel.com/pricing",
                        "status": "error"}
    assert requests.post(f"{sim.url}/api/query/engage", params=PID, auth=SA, timeout=5).status_code == 200
    sim.plan_refuses = {"all_query"}
    assert q("/api/query/events/names").status_code == 402
    assert q("/api/query/engage/revenue").status_code == 402
    assert q("/api/2.0/export").status_code == 200
    sim.plan_refuses = set()
    rev = q("/api/query/engage/revenue").json()
    assert rev["results"]["2024-01-02"] == sim.revenue_day("2024-01-02") and "$overall" in rev["results"]
    sim.retired = {"revenue": 410}
    r = q("/api/query/engage/revenue")
    assert r.status_code == 410 and r.json()["status"] == "error"
    assert q("/api/query/nope").status_code == 404


def test_funnels_annotations_me(sim):
    r = requests.get(f"{sim.url}/api/query/funnels", params={**PID, "funnel_id": 7511, "from_date": "2024-01-01",
                                                              "to_date": "2024-01-02", "unit": "day"},
                     auth=SA, timeout=5).json()
    assert r["meta"]["dates"] == ["2024-01-01", "2024-01-02"]
    assert r["data"]["2024-01-02"] == sim.funnel_day(7511, "2024-01-02")
    assert r["data"]["2024-01-01"]["steps"][0]["custom_event_id"]
    unknown = {**PID, "funnel_id": 1, "from_date": "2024-01-01", "to_date": "2024-01-02"}
    assert requests.get(f"{sim.url}/api/query/funnels", params=unknown, auth=SA, timeout=5).status_code == 400
    legacy = requests.get(f"{sim.url}/api/2.0/annotations", params={"from_date": "2024-01-01", "to_date": "2024-01-10"},
                          headers=basic(API_SECRET), timeout=5).json()["annotations"]
    assert legacy == [a for a in sim.annotations() if a["date"] < "2024-01-11"] and 0 < len(legacy) < 5
    app = requests.get(f"{sim.url}/api/app/projects/{PROJECT_ID}/annotations", auth=SA, timeout=5).json()
    assert app == {"status": "ok", "results": sim.annotations()}
    me = requests.get(f"{sim.url}/api/app/me", auth=SA, timeout=5).json()
    assert me["results"]["projects"][str(PROJECT_ID)]["timezone"] == "UTC"


# ------------------------------------------------------------------ request log and control API
def test_request_log_counts_attempts(sim):
    for params in ({"limit": "5"}, {"limit": "5"}, {"limit": "6"}):
        requests.get(f"{sim.url}/api/query/events/names", params={**NAMES, **params}, auth=SA, timeout=5)
    requests.post(f"{sim.url}/api/query/engage", params=PID, json={"page_size": 3, "filter_by_cohort": {"id": 4410}},
                  auth=SA, timeout=5)
    log = sim.requests
    assert [e["attempt"] for e in log] == [1, 2, 1, 1]
    assert {k: v for k, v in log[0].items() if k != "time"} == {
        "method": "GET", "path": "/api/query/events/names", "params": {**NAMES, "limit": "5"},
        "auth": "service_account", "headers": {"Accept-Encoding": "gzip, deflate"}, "status": 200, "attempt": 1}
    assert log[0]["time"] <= log[1]["time"] <= log[2]["time"]  # arrival, on the monotonic clock
    assert log[3]["params"] == {**PID, "page_size": 3, "filter_by_cohort": {"id": 4410}}
    assert sim.requests_to("/engage") == [log[3]]
    sim.reset_log()
    assert sim.requests == []
    requests.get(f"{sim.url}/api/query/events/names", params={**NAMES, "limit": "5"}, auth=SA, timeout=5)
    assert sim.requests[0]["attempt"] == 1


def test_control_api(sim):
    requests.get(f"{sim.url}/api/query/events/names", params=NAMES, auth=SA, timeout=5)
    log = requests.get(f"{sim.url}/_sim/requests", timeout=5).json()
    assert [e["path"] for e in log] == ["/api/query/events/names"]
    r = requests.post(f"{sim.url}/_sim/config", json={"faults": ["cut"], "fault_attempts": 2,
                                                      "plan_refuses": ["cohorts"], "retired": {"revenue": 404}},
                      timeout=5)
    assert r.status_code == 200 and r.json()["faults"] == ["cut"]
    assert sim.faults == {"cut"} and sim.plan_refuses == {"cohorts"} and sim.fault_attempts == 2
    assert sim.retired == {"revenue": 404}
    assert requests.post(f"{sim.url}/_sim/config", json={"nonsense": 1}, timeout=5).status_code == 400
    assert requests.post(f"{sim.url}/_sim/reset-log", timeout=5).status_code == 200
    assert sim.requests == []
    truth = requests.get(f"{sim.url}/_sim/truth/export", params={"from_date": "2024-01-01", "to_date": "2024-01-02"},
                         timeout=5).json()
    assert truth == sim.export_truth("2024-01-01", "2024-01-02") and len(truth) == 80


def test_command_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.simulator", "--port", str(port),
                             "--events-per-day", "3", "--today", "2024-01-02"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"simulator listening on http://127.0.0.1:{port}"
        r = requests.get(f"http://127.0.0.1:{port}/api/2.0/export", auth=SA,
                         params={**PID, "from_date": "2024-01-01", "to_date": "2024-01-02"}, timeout=5)
        assert len(parse_jsonl(r.text)) == 6
    finally:
        proc.terminate()
        assert proc.wait(5) == 0


# ------------------------------------------------------------------ budgets (rate_limits)
def test_budgets_answer_429_with_mixpanel_bodies_and_count_only_what_they_admit(sim):
    sim.configure(rate_limits=True, rate_window_seconds=1.5, query_per_window=3, rate_retry_after=True)
    names = f"{sim.url}/api/query/events/names"
    answers = [requests.get(names, params=NAMES, auth=SA, timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {"request": "/api/query/events/names", "error": (
        f"Query rate limit exceeded for project_id: {PROJECT_ID}. 1/5 queries running concurrently and "
        "4/3 queries running in the last hour.")}
    assert answers[3].headers["Retry-After"] in ("1", "2")
    time.sleep(1.6)  # the window moves on: room again
    assert requests.get(names, params=NAMES, auth=SA, timeout=5).status_code == 200

    sim.configure(others_in_flight=5)  # other clients run five queries right now
    busy = requests.get(names, params=NAMES, auth=SA, timeout=5)
    assert busy.status_code == 429 and "6/5 queries running concurrently" in busy.json()["error"]
    sim.configure(others_in_flight=0)

    exports = [export(sim, from_date=TODAY, to_date=TODAY) for _ in range(4)]  # three a second
    assert [e.status_code for e in exports] == [200, 200, 200, 429]
    assert "4/3 requests in the last second" in exports[3].json()["error"]

    sim.spend_budget(30, families=["query"])  # another client spent the hour
    spent = requests.get(names, params=NAMES, auth=SA, timeout=5)
    assert spent.status_code == 429 and "4/3 queries running in the last hour" in spent.json()["error"]
    assert int(spent.headers["Retry-After"]) == 30
    report = sim.rate_report()
    assert report["query"]["refused"] == {"hour": 1, "concurrent": 1, "spent": 1}
    assert report["query"]["admitted"] == 4 and report["query"]["most_in_window"] == 3
    assert {k: v for k, v in report["export"].items() if k != "most_in_flight"} == {
        "admitted": 3, "counted": 3, "most_in_window": 3, "most_in_a_second": 3, "refused": {"second": 1}}


def test_engage_pages_after_the_first_count_only_in_flight_and_an_unused_session_expires(sim):
    sim.configure(rate_limits=True, rate_window_seconds=30, query_per_window=1, engage_session_seconds=0.5)
    url = f"{sim.url}/api/query/engage"
    first = requests.post(url, params=PID, data={"page_size": "100"}, auth=SA, timeout=5)
    assert first.status_code == 200  # the hour is full now
    page = {"page_size": "100", "session_id": first.json()["session_id"]}
    assert requests.post(url, params=PID, data={**page, "page": "1"}, auth=SA, timeout=5).status_code == 200
    assert requests.post(url, params=PID, data={"page_size": "100"}, auth=SA, timeout=5).status_code == 429
    time.sleep(0.4)
    assert requests.post(url, params=PID, data={**page, "page": "2"}, auth=SA, timeout=5).status_code == 200
    time.sleep(0.7)  # longer than the session lives without a page
    expired = requests.post(url, params=PID, data={**page, "page": "3"}, auth=SA, timeout=5)
    assert expired.status_code == 400 and "session expired" in expired.json()["error"]
    sim.configure(others_in_flight=5)  # the concurrency limit applies to every page
    busy = requests.post(url, params=PID, data={"page_size": "100", "session_id": page["session_id"], "page": "1"},
                         auth=SA, timeout=5)
    assert busy.status_code == 429 and "6/5 queries running concurrently" in busy.json()["error"]
    report = sim.rate_report()["query"]
    assert (report["admitted"], report["counted"], report["refused"]) == (4, 1, {"hour": 1, "concurrent": 1})


def test_every_switch_is_documented_and_settable_from_the_command_line():
    assert set(simulator.SWITCHES) == set(simulator.MixpanelSimulator._CONFIG_TYPES)
    assert simulator._switch('faults=["cut", "5xx"]') == ("faults", ["cut", "5xx"])
    assert simulator._switch("timezone=US/Pacific") == ("timezone", "US/Pacific")
    with pytest.raises(argparse.ArgumentTypeError):
        simulator._switch("no_such_switch=1")
    page = (Path(__file__).resolve().parent.parent / "docs" / "simulator.md").read_text()
    assert all(f"| `{name}` |" in page for name in simulator.SWITCHES)  # docs/simulator.md's switch table


def test_the_constructor_help_config_and_docs_read_one_declaration_of_each_switch():
    page = (Path(__file__).resolve().parent.parent / "docs" / "simulator.md").read_text()
    assert switch_table() in page  # regenerate with `python -m integration_tests.simulator.switches`
    assert MixpanelSimulator().config() == {name: sorted(s.value(s.default)) if s.kind is set else s.value(s.default)
                                            for name, s in simulator.SWITCHES.items()}
    helped = dict(line.strip().split("  ", 1) for line in cli._help_epilog().split("\n\n")[0].splitlines()[1:])
    assert {name: text.strip() for name, text in helped.items()} == {name: s.help for name, s in simulator.SWITCHES.items()}
    options = {name: s for name, s in simulator.SWITCHES.items() if s.option}
    assert {name: getattr(cli._parser().parse_args([]), name) for name in options} == {n: s.default for n, s in options.items()}
    given = cli._parser().parse_args(["--no-gzip", "--rate-limits", "--rate-window-seconds", "7.5", "--today", "2024-01-02"])
    assert (given.gzip, given.rate_limits, given.rate_window_seconds, given.today) == (False, True, 7.5, "2024-01-02")
    with pytest.raises(TypeError):
        MixpanelSimulator(no_such_switch=1)


# ------------------------------------------------------------------ saved Insights reports, group profiles
def test_insights_reports_nest_as_their_headers_say_with_overall_totals(sim):
    def ask(bookmark_id):
        return requests.get(f"{sim.url}/api/query/insights", params={**PID, "bookmark_id": bookmark_id}, auth=SA, timeout=5)

    body = ask(61002).json()
    assert body["headers"] == ["$event", "$browser", "$city", "plan"] and set(body["series"]) == {"Purchase", "Page View"}
    purchases = body["series"]["Purchase"]
    for date, total in purchases["$overall"].items():  # the total over every browser, city and plan of that date
        assert total == sum(value for path, value in _numbers(purchases) if path[-1] == date)
    assert len(sim.insights_report(61002)[1]) == len(list(_numbers(body["series"])))
    assert ask(61003).json()["series"] == {}
    assert (ask(61098).status_code, ask(61099).status_code, ask("x").status_code) == (400, 404, 400)
    assert ask(61098).json()["error"].startswith("Report 61098 is a funnels report")


def _numbers(tree, path=()):
    """(keys, number) for every number of a series, its $overall totals aside."""
    for key, child in tree.items():
        if key != "$overall":
            yield from (_numbers(child, path + (key,)) if isinstance(child, dict) else [(path + (key,), child)])


def test_group_profiles_page_like_engage_and_have_their_own_properties(sim):
    url = f"{sim.url}/api/query/engage"
    first = requests.post(url, params=PID, data={"data_group_id": 2, "page_size": 25}, auth=SA, timeout=5).json()
    second = requests.post(url, params=PID, data={"data_group_id": 2, "page": 1, "session_id": first["session_id"],
                                                  "page_size": 25}, auth=SA, timeout=5).json()
    ids = [g["$distinct_id"] for g in first["results"] + second["results"]]
    assert first["total"] == 40 and len(second["results"]) == 15 and ids == [g["$distinct_id"] for g in sim.group_profiles(2)]
    properties = requests.get(f"{url}/properties", params={**PID, "data_group_id": 1}, auth=SA, timeout=5).json()["results"]
    assert properties["年商"]["type"] == "number" and "$email" not in properties
    unknown = requests.post(url, params=PID, data={"data_group_id": 99}, auth=SA, timeout=5).json()
    assert unknown["results"] == [] and unknown["total"] == 0


def test_a_budget_spent_from_the_first_request_starts_its_spell_at_that_request(sim):
    sim.configure(rate_limits=True, rate_window_seconds=30)
    sim.spend_budget(1, from_first_request=True)
    time.sleep(1.2)  # longer than the spell: it has not begun, since no request came
    names = f"{sim.url}/api/query/events/properties/top"
    first = requests.get(names, params=NAMES, auth=SA, timeout=5)
    assert first.status_code == 429 and int(first.headers.get("Retry-After", 1)) <= 1
    assert export(sim, from_date=TODAY, to_date=TODAY).status_code == 429  # the other family's spell began with it
    time.sleep(1.1)
    assert requests.get(names, params=NAMES, auth=SA, timeout=5).status_code == 200
    sim.configure(rate_limits=False)
