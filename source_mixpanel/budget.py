"""Mixpanel's per-project request budgets, kept by every request of a run.

Python because the CDK's api_budget (HTTPAPIBudget) cannot keep Mixpanel's limits: it logs its waits only at
DEBUG, has no cap on requests in flight, and after one 429 marks its whole window as used (a wait of an hour).
The families and their limits are declared in manifest.yaml (`request_budget`); this module waits for them.

Every request of a family takes a place in its moving window before it is sent: no more than `per_window`
in any window, `per_second` in any second, `in_flight` at once. Under the budget nothing waits. A 429 is
read, waited out and sent again here, so the CDK's retry loop never sees it: a concurrency refusal makes that
request step back for seconds, an hourly one blocks the family until the run's oldest request in the window
ages out or, when another client spent the budget, probes with one request at growing intervals. Only when Mixpanel keeps refusing for longer
than `patience` (two windows; a minute in `check`) does the request fail, with a transient error.
"""

import email.utils
import logging
import random
import re
import threading
import time
from dataclasses import InitVar, dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

logger = logging.getLogger("airbyte")

# "61/60 queries running in the last hour": which of Mixpanel's limits a 429 names, and whether it is over.
_LIMIT_COUNT = re.compile(r"(\d+)\s*/\s*(\d+)\b[^,.;/]*?(concurrently|in the last second|in the last hour)")
_SCOPES = {"concurrently": "concurrent", "in the last second": "second", "in the last hour": "window"}


def refused_limit(text: str) -> str:
    """Which limit a 429 body says was exceeded: window, concurrent, second, or unknown."""
    for used, limit, scope in _LIMIT_COUNT.findall(text or ""):
        if int(used) > int(limit):
            return _SCOPES[scope]
    return "unknown"


def duration(seconds: float) -> str:
    """12 s, 4 min 10 s, 28 h 5 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds % 3600 // 60 else f"{seconds // 3600} h"


def clock_after(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def _retry_after(response: requests.Response) -> Optional[float]:
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _refusal_text(response: requests.Response) -> str:
    try:
        body = response.json()
        text = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        text = None
    return str(text or response.text or "no reason given")[:300].strip()


class BudgetSpent(AirbyteTracedException):
    """Mixpanel kept refusing a family for longer than the patience allows: every request of it fails with this."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, internal_message=message, failure_type=FailureType.transient_error)


class Family:
    """One of Mixpanel's budgets (query or export): the run's requests in its moving window, and the waits for it.

    Python, with RequestBudget, because the manifest's api_budget cannot keep these limits (module docstring).
    """

    def __init__(self, name: str, paths: str, per_window: int, window: float, per_second: Optional[int] = None,
                 in_flight: Optional[int] = None) -> None:
        self.name, self.paths = name, re.compile(paths)
        self.per_window, self.window = int(per_window), float(window)
        self.per_second = int(per_second) if per_second else None
        self.in_flight = int(in_flight) if in_flight else None
        self.patience = 2 * self.window
        self.heartbeat = max(5.0, min(300.0, self.window / 12))  # Airbyte wants a sign of life every few minutes
        self._cond = threading.Condition()
        # One entry per request sent: when Mixpanel counted it at the latest (its answer, or the send while in flight).
        self._calls: List[List[float]] = []
        self._holders: Dict[int, List[float]] = {}  # thread -> its call, while the request is in flight
        self._blocked_until = 0.0
        self._blocked_why = ""
        self._probe_due = False  # after a 429, one request tests whether Mixpanel accepts again
        self._prober: Optional[int] = None
        self._refused_since: Optional[float] = None
        self._refusals = 0
        self._failure: Optional[str] = None  # why the family gave up: every later request fails with it
        self._announced_until = 0.0
        self._last_line = 0.0

    def __str__(self) -> str:
        per = "an hour" if self.window == 3600 else f"per {duration(self.window)}"
        second = f" and {self.per_second} a second" if self.per_second else ""
        return f"{self.per_window} {per}{second}"

    # ------------------------------------------------------------------------------------ before a request
    def acquire(self, what: str) -> None:
        """Wait until the budget has a place for one more request, and take it."""
        me = threading.get_ident()
        with self._cond:
            self._release(me)
            started = time.monotonic()
            while True:
                if self._failure is not None:
                    raise BudgetSpent(self._failure)
                now = time.monotonic()
                wait, why = self._wait(now, me)
                if wait == 0:
                    break
                self._announce(now, now - started, wait, why, what)
                self._cond.wait(self.heartbeat if wait is None else min(wait, self.heartbeat))
            if self._probe_due and self._prober is None:
                self._prober = me
            call = [now]
            self._calls.append(call)
            self._holders[me] = call

    def _wait(self, now: float, me: int) -> Tuple[Optional[float], str]:
        """How long before this thread may send (None: until another request ends), and why; 0 to send now."""
        self._calls = [call for call in self._calls if call[0] > now - self.window]
        if self._blocked_until > now:
            return self._blocked_until - now, self._blocked_why
        if self._prober is not None and self._prober != me:
            return None, f"the one {self.name} request that tests whether Mixpanel accepts them again"
        if len(self._calls) >= self.per_window:
            oldest = min(call[0] for call in self._calls)
            return oldest + self.window - now, f"{self.per_window} {self.name} requests in the last {duration(self.window)}"
        if self.per_second:
            recent = [call[0] for call in self._calls if call[0] > now - 1]
            if len(recent) >= self.per_second:
                return min(recent) + 1 - now, f"{self.per_second} {self.name} requests a second"
        if self.in_flight and len(self._holders) >= self.in_flight:
            return None, f"{self.in_flight} {self.name} requests in flight"
        return 0, ""

    def _announce(self, now: float, waited: float, wait: Optional[float], why: str, what: str) -> None:
        """One INFO line when a wait of a second or more begins, and one a heartbeat while a thread keeps waiting."""
        if wait is not None and wait >= 1 and now + wait > self._announced_until + 1:
            logger.info(f"Waiting {duration(wait)}, until {clock_after(wait)}, before the next {self.name} request "
                        f"({what}): {why}.")
            self._announced_until, self._last_line = now + wait, now
        elif waited >= self.heartbeat and now - self._last_line >= self.heartbeat:
            left = f"{duration(wait)} left, until {clock_after(wait)}" if wait is not None else "until one of them ends"
            logger.info(f"Still waiting for the {self.name} budget: {left} ({why}).")
            self._last_line = now

    # ------------------------------------------------------------------------------------ after a request
    def answered(self, response: Optional[requests.Response]) -> None:
        """The request ended (with this answer, or None when it raised): its place in flight is free."""
        with self._cond:
            me = threading.get_ident()
            self._release(me)
            if response is not None and response.status_code != 429:
                self._refused_since, self._refusals, self._probe_due = None, 0, False
            self._cond.notify_all()

    def refused(self, response: requests.Response, what: str, attempt: int) -> float:
        """Mixpanel answered 429 to this request's `attempt`-th try: wait as the refusal calls for, or give up.

        Returns the seconds this request alone waits before it is sent again (a concurrency refusal); a full
        window blocks the whole family instead, and the next acquire waits for it.
        """
        text = _refusal_text(response)
        limit = refused_limit(text)
        retry_after = _retry_after(response)
        with self._cond:
            now = time.monotonic()
            self._release(threading.get_ident())
            if self._refused_since is None:
                self._refused_since, self._refusals = now, 0
            self._refusals += 1
            refused_for = now - self._refused_since
            if refused_for > self.patience:
                self._failure = self._give_up(refused_for, text)
                self._cond.notify_all()
                raise BudgetSpent(self._failure)
            if limit == "concurrent":  # other clients' queries: this request steps back for seconds
                pause = retry_after if retry_after is not None else min(2.0 ** attempt, 30.0) * random.uniform(0.75, 1)
            else:
                pause = 0.0
                wait = retry_after if retry_after is not None else self._refusal_wait(limit, now)
                self._blocked_until = max(self._blocked_until, now + wait)
                self._blocked_why = f"Mixpanel refused {what}: {text}"
                self._probe_due = True
                self._announced_until, self._last_line = self._blocked_until, now
            self._cond.notify_all()
        wait = pause or max(0.0, self._blocked_until - now)
        then = "then sends it again" if pause else f"then one request tests whether it accepts {self.name} requests again"
        logger.info(f"Mixpanel refused {what} (429: {text}): waiting {duration(wait)}, until {clock_after(wait)}, {then}.")
        return pause

    def _refusal_wait(self, limit: str, now: float) -> float:
        if limit == "second":
            return 1.0
        # The window is full: probe at growing intervals up to a quarter window, and no later than the run's
        # own oldest request in the window ages out (it frees a place Mixpanel counts).
        probe = min(self.window / 60 * 2 ** (self._refusals - 1), self.window / 4)
        ages_out = [call[0] + self.window - now for call in self._calls if call[0] + self.window > now + 1]
        return min([probe] + ages_out)

    def _give_up(self, refused_for: float, text: str) -> str:
        if self.patience < self.window:  # check: tell the user now rather than wait
            return (f"Mixpanel's {self.name} budget for this project is spent right now ({text}): try again in a few "
                    f"minutes; a sync waits for it.")
        return (f"Mixpanel kept refusing {self.name} requests for {duration(refused_for)} ({text}): another client is "
                f"spending the project's budget of {self}; the connector stops here, and a sync run again later "
                f"resumes from its last state.")

    def _release(self, me: int) -> None:
        call = self._holders.pop(me, None)
        if call is not None:
            call[0] = max(call[0], time.monotonic())  # Mixpanel counted it no later than its answer came
        if self._prober == me:
            self._prober = None


class RequestBudget(APIBudget):
    """Every HTTP request of the run passes here (the CDK hands this budget to each HttpRequester).

    Python because the CDK's HTTPAPIBudget cannot keep Mixpanel's limits (module docstring). A 429 is waited
    out and sent again in a response hook, inside the same send, so it never spends the CDK's retries.
    """

    def __init__(self, families: List[Family]) -> None:
        super().__init__(policies=[])
        self.families = families
        self._local = threading.local()

    @classmethod
    def from_manifest(cls, declared: Mapping[str, Any], config: Mapping[str, Any]) -> "RequestBudget":
        """The families of manifest.yaml's `request_budget`, with their numbers read from the config."""

        def number(value: Any) -> Optional[float]:
            value = InterpolatedString.create(str(value), parameters={}).eval(config) if isinstance(value, str) else value
            return float(value) if value not in (None, "") else None

        window = number(declared["window_seconds"])
        return cls([
            Family(family["name"], family["paths"], int(number(family["per_window"])), window,
                   per_second=number(family.get("per_second")), in_flight=number(family.get("in_flight")))
            for family in declared["families"]
        ])

    def for_check(self) -> None:
        """`check` reports a spent budget after a minute (scaled with the window) instead of waiting it out."""
        for family in self.families:
            family.patience = family.window / 60

    def family_of(self, request: requests.PreparedRequest) -> Optional[Family]:
        path = urlsplit(request.url or "").path
        return next((family for family in self.families if family.paths.search(path)), None)

    @staticmethod
    def _what(request: requests.PreparedRequest) -> str:
        return f"{request.method} {urlsplit(request.url or '').path}"

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        family = self.family_of(request)
        self._local.family = family
        if family is None:
            return
        family.acquire(self._what(request))
        if self._answered not in request.hooks["response"]:
            request.register_hook("response", self._answered)

    def update_from_response(self, request: Any, response: Any) -> None:
        family = self.family_of(request)
        if family is not None:
            family.answered(response)

    def ended_without_answer(self) -> None:
        """The current thread's request raised (a timeout, a dropped connection): free its place in flight."""
        family = getattr(self._local, "family", None)
        if family is not None:
            family.answered(None)

    def _answered(self, response: requests.Response, **send_kwargs: Any) -> requests.Response:
        """A response hook: a 429 is waited out and the request sent again, until Mixpanel accepts it."""
        family = self.family_of(response.request)
        attempt = 0
        while family is not None and response.status_code == 429:
            what = self._what(response.request)
            attempt += 1
            pause = family.refused(response, what, attempt)
            response.close()
            time.sleep(pause)
            family.acquire(what)
            response = response.connection.send(response.request, **send_kwargs)
        return response


@dataclass
class BudgetRetries(ErrorHandler):
    """First of every requester's error handlers: lets the retry loop outlast budget waits, and frees the place
    in flight of a request that ended in an exception.

    Python because the CDK's declared error handlers stop retrying after ten minutes, and budget waits (up to
    two windows) happen inside the retry loop; and because no other component sees a request that raised.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    api_budget: Optional[RequestBudget] = None
    max_retries: int = 5

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.max_retries = int(self.max_retries)

    @property
    def max_time(self) -> int:
        windows = [family.window for family in (self.api_budget.families if self.api_budget else [])]
        return int(3 * max(windows, default=3600) + 900)

    def interpret_response(self, response_or_exception: Any = None) -> None:  # type: ignore[override]
        if isinstance(response_or_exception, Exception) and self.api_budget is not None:
            self.api_budget.ended_without_answer()
        return None
