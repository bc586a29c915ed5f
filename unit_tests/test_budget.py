"""The request budget's rules, on windows of a fraction of a second (integration_tests/test_rate_limits.py runs them
against the simulator through the real command)."""

import json
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import sync_run
from source_mixpanel.budget import family as budget_family
from source_mixpanel.budget.family import QUIET_WINDOWS, BudgetSpent, Family, duration, refused_limit, retry_after
from source_mixpanel.budget.plan import least_time, plan_lines
from source_mixpanel.budget.request_budget import BudgetRetries, MixpanelBackoff, RequestBudget

MANIFEST = yaml.safe_load((Path(__file__).parent.parent / "manifest.yaml").read_text())
HOURLY = "Query rate limit exceeded for project_id: 1. 1/5 queries running concurrently and 61/60 queries running in the last hour."


@pytest.fixture(autouse=True)
def quiet_since(monkeypatch):
    """Each test is a run that starts now and has written no RECORD nor STATE; quiet_since(s) moves its start s back."""
    def started(seconds_ago):
        monkeypatch.setattr(sync_run.current(), "started", time.monotonic() - seconds_ago)
    monkeypatch.setattr(sync_run.current(), "last_sign_of_life", float("-inf"))
    started(0)
    return started


def refusal(text=HOURLY, retry_after=None):
    response = requests.Response()
    response.status_code = 429
    response._content = json.dumps({"request": "/api/query/funnels", "error": text}).encode()
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def answer():
    response = requests.Response()
    response.status_code = 200
    return response


def in_thread(work):
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("text, limit", [
    (HOURLY, "window"),
    ("Query rate limit exceeded for project_id: 1. 6/5 queries running concurrently and 12/60 queries running in the last hour.", "concurrent"),
    ("Export rate limit exceeded for project_id: 1. 1/100 requests running concurrently, 4/3 requests in the last second and 9/60 requests in the last hour.", "second"),
    ("Too many requests", "unknown"),
    ("", "unknown"),
])
def test_a_refusal_names_the_limit_that_is_over(text, limit):
    assert refused_limit(text) == limit


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0.25, 42, 754, 3600, 100800, 100980)] == ["0.2 s", "42 s", "12 min 34 s", "1 h", "28 h", "28 h 3 min"]


def test_never_more_than_the_window_allows_and_the_wait_is_logged(caplog):
    family = Family("query", ".", per_window=2, window=1.5)
    sent = []
    with caplog.at_level("INFO", logger="airbyte"):
        for _ in range(3):
            family.acquire("GET /api/query/funnels")
            sent.append(time.monotonic())
            family.answered(answer())
    assert sent[2] - sent[0] >= 1.5
    (line,) = [record.message for record in caplog.records if record.message.startswith("Waiting ")]
    assert ", until 20" in line and line.endswith("before the next query request (GET /api/query/funnels): 2 query requests in the last 1.5 s.")


def test_never_more_than_three_a_second():
    family = Family("export", ".", per_window=60, window=3600, per_second=3)
    sent = []
    for _ in range(4):
        family.acquire("GET /api/2.0/export")
        sent.append(time.monotonic())
        family.answered(answer())
    assert sent[3] - sent[0] >= 1


def test_never_more_in_flight_than_allowed_and_a_request_that_raised_frees_its_place():
    family = Family("query", ".", per_window=60, window=3600, in_flight=2)
    budget = RequestBudget([family])
    family.acquire("GET /a")  # the run's first request, answered: no probe holds the others back
    family.answered(answer())
    holding, finish = threading.Barrier(3), threading.Event()

    def hold(ends_with_an_exception):
        budget._local.family = family
        family.acquire("GET /a")
        holding.wait()
        finish.wait(5)
        if ends_with_an_exception:
            BudgetRetries(config={}, parameters={}, api_budget=budget).interpret_response(requests.ConnectionError())
        else:
            budget.update_from_response(requests.Request("GET", "http://x/a").prepare(), answer())

    threads = [in_thread(lambda: hold(False)), in_thread(lambda: hold(True))]
    holding.wait()
    third = threading.Event()
    in_thread(lambda: (family.acquire("GET /a"), third.set()))
    assert not third.wait(0.3)  # two in flight: the third waits
    finish.set()
    assert third.wait(5)
    for thread in threads:
        thread.join(5)
    assert len(family._holders) == 1  # only the third holds a place now


def test_a_run_sends_its_first_request_alone_and_the_others_after_its_answer():
    family = Family("query", ".", per_window=60, window=3600)
    family.acquire("GET /a")
    others = [threading.Event() for _ in range(3)]
    for sent in others:
        in_thread(lambda sent=sent: (family.acquire("GET /b"), sent.set()))
    assert not others[0].wait(0.3)  # nobody bursts while the first request tests the budget
    family.answered(answer())
    assert all(sent.wait(2) for sent in others)


def test_the_others_wait_for_the_runs_first_answer_only_a_moment_when_it_is_slow(monkeypatch):
    monkeypatch.setattr(budget_family, "FIRST_PROBE_WAIT", 0.5)
    family = Family("export", ".", per_window=60, window=3600)
    family.acquire("GET /export")  # a large day: Mixpanel sends no headers for minutes
    others = [threading.Event() for _ in range(3)]
    for sent in others:
        in_thread(lambda sent=sent: (family.acquire("GET /export"), sent.set()))
    assert not others[0].wait(0.2)
    assert all(sent.wait(3) for sent in others)  # the slow answer has not come: they went on without it
    family.answered(answer())


def test_a_wait_that_would_end_after_the_quiet_deadline_fails_at_once(quiet_since):
    family = Family("query", ".", per_window=1, window=2)  # the quiet deadline is 5.5 s after the run's start
    quiet_since(5)
    family.acquire("GET /a")
    family.answered(answer())
    started = time.monotonic()
    with pytest.raises(BudgetSpent) as raised:
        family.acquire("GET /b")  # the window frees a place in 2 s, after the deadline
    assert time.monotonic() - started < 1
    assert raised.value.failure_type.value == "transient_error"
    assert raised.value.message.startswith("GET /b waited for the query budget (1 query requests in the last 2.0 s) after "
                                           "the connector had written no record or state for 5.0 s: waiting on would leave")


def test_a_wait_of_unknown_length_fails_when_the_quiet_deadline_passes(quiet_since):
    family = Family("query", ".", per_window=60, window=2, in_flight=1)
    family.acquire("GET /a")
    family.answered(answer())  # no probe holds the others back
    quiet_since(5)  # the deadline, 5.5 s after the start, comes in half a second
    family.acquire("GET /a")  # in flight, and stays there
    failed = []

    def wait_in_flight():
        try:
            family.acquire("GET /b")
        except BudgetSpent as error:
            failed.append(error.message)

    waiting = in_thread(wait_in_flight)
    waiting.join(3)  # the heartbeat is 5 s: it wakes at the deadline, not at the next heartbeat
    assert not waiting.is_alive() and "(1 query requests in flight) after the connector had written no" in failed[0]


def test_places_go_to_the_earliest_window_first_whatever_the_order_of_asking():
    family = Family("export", ".", per_window=2, window=0.5)
    family.acquire("GET /export", window="2025-04-01")
    family.answered(answer())
    family.acquire("GET /export", window="2025-04-02")  # the window is full now
    family.answered(answer())
    granted, lock = [], threading.Lock()

    def ask(day):
        family.acquire("GET /export", window=day)
        with lock:
            granted.append(day)
        family.answered(answer())

    threads = []
    for day in ("2025-04-09", "2025-04-05", "2025-04-03", "2025-04-07"):  # later windows ask first
        threads.append(in_thread(lambda day=day: ask(day)))
        time.sleep(0.02)
    for thread in threads:
        thread.join(5)
    assert granted == ["2025-04-03", "2025-04-05", "2025-04-07", "2025-04-09"]


def test_a_request_sent_again_after_a_429_keeps_its_place_in_line():
    family = Family("query", ".", per_window=60, window=6)  # a probe after window / 60 = 0.1 s
    family.acquire("GET /a", window="2025-04-01")
    family.answered(answer())
    family.acquire("GET /a", window="2025-04-05")
    family.refused(refusal(), "GET /a", attempt=1)
    later = threading.Event()
    in_thread(lambda: (family.acquire("GET /b", window="2025-04-05"), later.set()))  # the same window, asked later
    family.acquire("GET /a")  # sent again: it goes first, as the probe
    assert not later.wait(0.3)
    family.answered(answer())
    assert later.wait(2)


def test_engage_continuation_pages_wait_for_a_place_in_flight_only():
    family = Family("query", ".", per_window=1, window=3600, in_flight=2)
    family.acquire("POST /api/query/engage")
    family.answered(answer())  # the window is full for an hour
    family.acquire("POST /api/query/engage", counted=False)  # page 1 goes at once
    second, third, done = threading.Event(), threading.Event(), threading.Event()

    def page(sent):
        family.acquire("POST /api/query/engage", counted=False)
        sent.set()
        done.wait(5)  # the thread lives on, holding its place (a thread that ended may lend its id to the next)

    in_thread(lambda: page(second))
    assert second.wait(2)  # page 1 of another session: two in flight
    in_thread(lambda: page(third))
    assert not third.wait(0.3)  # a third waits for a place in flight, not for the hour
    family.answered(answer())
    assert third.wait(2)
    done.set()


def test_a_page_accepted_while_the_hour_refuses_does_not_end_the_refusal():
    family = Family("query", ".", per_window=60, window=6)  # a probe after window / 60 = 0.1 s
    family.acquire("POST /api/query/engage")
    family.answered(answer())
    family.acquire("GET /a")
    family.refused(refusal(), "GET /a", attempt=1)
    family.acquire("POST /api/query/engage", counted=False)
    family.answered(answer())  # a continuation page: Mixpanel does not count it, so it says nothing of the hour
    family.acquire("GET /a")  # the probe
    others = threading.Event()
    in_thread(lambda: (family.acquire("GET /b"), others.set()))
    assert not others.wait(0.3)  # still one request at a time until a counted one is accepted
    family.answered(answer())
    assert others.wait(2)


def test_a_full_window_at_mixpanel_blocks_the_family_and_one_request_probes():
    family = Family("query", ".", per_window=60, window=6)  # a probe after window / 60 = 0.1 s
    family.acquire("GET /a")
    assert family.refused(refusal(), "GET /a", attempt=1) == 0  # the family waits, not just this request
    probing, answered, others = threading.Event(), threading.Event(), threading.Event()

    def probe():
        family.acquire("GET /a")
        probing.set()
        answered.wait(5)
        family.answered(answer())

    in_thread(probe)
    assert probing.wait(2)
    in_thread(lambda: (family.acquire("GET /b"), others.set()))
    assert not others.wait(0.4)  # nobody else goes before the probe is answered
    answered.set()
    assert others.wait(2)


def test_retry_after_is_honoured():
    family = Family("query", ".", per_window=60, window=3600)
    family.acquire("GET /a")
    family.refused(refusal(retry_after=1), "GET /a", attempt=1)
    started = time.monotonic()
    family.acquire("GET /a")
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("value, seconds", [
    ("30", 30.0), ("0", None), ("-5", None), ("0.5", None), ("soon", None), ("1e20", None), ("²", None), ("", None),
    ("999999999", None), ("7201", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("Wed, 21 Oct 99999 07:28:00 GMT", None),
])
def test_a_retry_after_counts_only_where_it_makes_sense(value, seconds):
    assert retry_after(refusal(retry_after=value), longest=7200) == seconds


def test_a_retry_after_as_an_http_date_is_the_seconds_until_then():
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 58 <= retry_after(refusal(retry_after=soon), longest=7200) <= 60


def test_no_refusal_wait_runs_past_the_give_up_limit():
    family = Family("query", ".", per_window=60, window=3600)
    family.acquire("GET /a")
    family.refused(refusal(retry_after=7000), "GET /a", attempt=1)  # asked for within the limit: obeyed
    assert 6990 < family._blocked_until - time.monotonic() <= 7000
    family = Family("query", ".", per_window=60, window=3600)
    family._refused_since = time.monotonic() - 7100  # refused for most of the two windows already
    family.refused(refusal(retry_after=7000), "GET /a", attempt=2)
    assert family._blocked_until - time.monotonic() <= 100  # it ends when the patience does
    concurrent = "Query rate limit exceeded for project_id: 1. 6/5 queries running concurrently and 2/60 queries running in the last hour."
    assert family.refused(refusal(concurrent, retry_after=7000), "GET /a", attempt=1) <= 100


def test_a_step_back_says_every_heartbeat_how_long_it_has_left(caplog):
    family = Family("query", ".", per_window=60, window=3600)
    family.heartbeat = 0.4
    started = time.monotonic()
    family.step_back(1.5, "GET /a")
    assert time.monotonic() - started >= 1.5
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Still waiting before GET /a is sent again: ")]
    assert len(lines) == 3 and all("left, until 20" in line for line in lines)


def test_a_refusal_after_too_long_without_a_record_or_state_ends_the_run_with_a_transient_error(quiet_since):
    family = Family("query", ".", per_window=60, window=3600)
    quiet_since(QUIET_WINDOWS * 3600)  # no RECORD nor STATE since the run began, 2 h 45 min ago
    family.acquire("GET /a")
    with pytest.raises(AirbyteTracedException) as raised:
        family.refused(refusal(), "GET /a", attempt=1)
    assert raised.value.failure_type.value == "transient_error"
    assert raised.value.message.startswith("Mixpanel refused query requests (Query rate limit exceeded for project_id: 1.")
    assert "after the connector had written no record or state for 2 h 45 min: waiting on would leave" in raised.value.message


def failure(status, retry_after=None):
    response = refusal(retry_after=retry_after)
    response.status_code = status
    response.request = requests.Request("GET", "https://mixpanel.com/api/query/funnels?x=1").prepare()
    return response


def test_the_wait_before_a_retry_obeys_retry_after_within_bounds_and_says_it(caplog):
    backoff = MixpanelBackoff(config={}, parameters={}, factor=5, window_seconds="{{ config.get('w') or 3600 }}")
    assert backoff.backoff_time(failure(503, 90), attempt_count=1) == 90
    assert backoff.backoff_time(failure(503, 7200), attempt_count=1) == 299  # 5 min between two lines at most
    for nonsense in ("0", "1e20", "999999999", "soon"):  # the connector's own backoff
        assert backoff.backoff_time(failure(503, nonsense), attempt_count=2) == 20
    assert backoff.backoff_time(requests.ConnectionError("reset"), attempt_count=3) == 40
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Mixpanel answered GET /api/query/funnels with 503: waiting 1 min 31 s, until 20")
    assert lines[0].endswith(", as its Retry-After asks, then sending it again.")
    assert "(its Retry-After asks for 2 h; the connector tries again sooner)" in lines[1]
    assert lines[-1].startswith("a request failed (ConnectionError): waiting 41 s, until 20")


def test_the_wait_before_a_retry_never_outlasts_the_quiet_deadline(quiet_since):
    backoff = MixpanelBackoff(config={"w": 4}, parameters={}, factor=5, window_seconds="{{ config.get('w') or 3600 }}")
    assert backoff.backoff_time(failure(503, 8), attempt_count=1) == 8  # ends within 2.75 windows (11 s) of the start
    quiet_since(5)  # the run began 5 s ago and wrote no RECORD nor STATE
    with pytest.raises(AirbyteTracedException) as raised:
        backoff.backoff_time(failure(503, 8), attempt_count=1)
    assert raised.value.failure_type.value == "transient_error" and "no record or state" in raised.value.message


def test_no_wait_leaves_airbyte_without_a_record_or_state_as_long_as_the_metadata_allows():
    allowed = yaml.safe_load((Path(__file__).parent.parent / "metadata.yaml").read_text())["data"]["maxSecondsBetweenMessages"]
    longest_wait = QUIET_WINDOWS * 3600  # every wait, whatever its source, ends by then
    longest_silent_request = max(MANIFEST["definitions"]["query_requester"]["read_timeout_in_seconds"],
                                 MANIFEST["definitions"]["export_requester"]["read_timeout_in_seconds"])
    assert longest_wait + longest_silent_request < allowed  # a failed request then meets the deadline: it stops


def test_a_concurrency_refusal_sets_back_only_that_request():
    family = Family("query", ".", per_window=60, window=3600)
    family.acquire("GET /a")
    concurrent = "Query rate limit exceeded for project_id: 1. 6/5 queries running concurrently and 2/60 queries running in the last hour."
    pause = family.refused(refusal(concurrent), "GET /a", attempt=1)
    assert 1 <= pause <= 2
    started = time.monotonic()
    family.acquire("GET /b")  # other requests are not held back
    assert time.monotonic() - started < 0.5


def test_refusals_for_longer_than_two_windows_end_in_a_transient_error_for_every_request():
    family = Family("query", ".", per_window=60, window=0.3)
    with pytest.raises(AirbyteTracedException) as raised:
        for attempt in range(1, 100):
            family.acquire("GET /a")
            family.refused(refusal(), "GET /a", attempt)
    assert raised.value.failure_type.value == "transient_error"
    assert raised.value.message.startswith("Mixpanel kept refusing query requests for ")
    assert "61/60 queries running in the last hour" in raised.value.message
    assert "budget of 60 per 0.3 s" in raised.value.message
    with pytest.raises(AirbyteTracedException):
        family.acquire("GET /b")


def test_check_says_the_budget_is_spent_after_a_minute_not_two_windows():
    budget = RequestBudget([Family("query", ".", per_window=60, window=6)])
    budget.for_check()
    family = budget.families[0]
    assert family.patience == 0.1
    with pytest.raises(AirbyteTracedException) as raised:
        for attempt in range(1, 100):
            family.acquire("GET /a")
            family.refused(refusal(), "GET /a", attempt)
    assert "query budget for this project is spent right now" in raised.value.message


def test_the_manifest_declares_the_families_and_the_config_sets_their_numbers():
    config = {"query_requests_per_hour": 30, "export_requests_per_hour": 40, "rate_limit_window_seconds": 120}
    budget = RequestBudget.from_manifest(MANIFEST["definitions"]["request_budget"], config)
    lexicon, query, export = budget.families
    assert (lexicon.per_window, lexicon.window, lexicon.in_flight, lexicon.per_second) == (5, 2, 1, None)
    assert (query.per_window, query.window, query.in_flight, query.per_second) == (30, 120, 5, None)
    assert (export.per_window, export.window, export.in_flight, export.per_second) == (40, 120, 100, 3)
    defaults = RequestBudget.from_manifest(MANIFEST["definitions"]["request_budget"], {})
    assert [(f.per_window, f.window) for f in defaults.families] == [(5, 60), (60, 3600), (60, 3600)]
    families = {
        "/api/query/engage": "query", "/api/2.0/engage": "query", "/api/query/funnels/list": "query",
        "/api/2.0/annotations": "query", "/api/app/projects/1/annotations": "query", "/api/2.0/export": "export",
        "/api/app/projects/1/schemas": "lexicon",
    }
    for path, name in families.items():
        assert budget.family_of(requests.Request("GET", f"https://mixpanel.com{path}").prepare()).name == name
    assert BudgetRetries(config={}, parameters={}, api_budget=budget).max_time == 2.75 * 120  # the quiet deadline


def test_the_plan_counts_requests_per_family_and_the_least_time_the_budget_allows():
    budget = RequestBudget.from_manifest(MANIFEST["definitions"]["request_budget"], {})
    _, query, export = budget.families
    assert least_time(60, query) == 0 and least_time(61, query) == 3600 and least_time(1680, query) == 27 * 3600
    assert least_time(53, export) == 52 / 3
    cohorts = [StreamSlice(partition={"cohort_id": i}, cursor_slice={}) for i in range(40)]
    slices = {"funnels": [{}] * 1560, "cohort_members": cohorts, "engage": [{}], "export": [{}] * 53, "revenue": None}
    assert plan_lines(slices, budget) == [
        "Plan: 1,605 query requests or more (funnels 1,560, cohort_members 40, engage 1, funnel list 1, cohorts list 1, "
        "event property discovery 1, profile property discovery 1, revenue ?): at 60 an hour this sync needs at least 26 h.",
        "Plan: 53 export requests (export 53): at 60 an hour and 3 a second this sync needs at least 17 s.",
    ]


def test_the_plan_counts_a_query_per_saved_report_and_a_lookup_and_a_first_page_per_group_key():
    budget = RequestBudget.from_manifest(MANIFEST["definitions"]["request_budget"], {})
    slices = {"insights": [{"bookmark_id": b} for b in (1, 2, 3)], "groups": [{"data_group_id": 1}, {"data_group_id": 2}]}
    assert plan_lines(slices, budget) == [
        "Plan: 7 query requests (insights 3, groups 2, group property discovery 2): within the budget of 60 an hour, no "
        "wait unless other clients spend it.",
    ]
