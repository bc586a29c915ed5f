"""One of Mixpanel's budgets (query or export): the run's requests in its moving window, the waits, and each 429 read."""

import email.utils
import itertools
import logging
import random
import re
import threading
import time
from typing import Dict, List, Optional, Set, Tuple

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import sync_run

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


def retry_after(response: requests.Response, longest: float) -> Optional[float]:
    """The seconds Mixpanel's Retry-After asks for, or None where it makes no sense to obey: not a number of seconds nor
    an HTTP-date, under a second (0 or a past date: a burst of retries), or longer than `longest` (the give-up limit)."""
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        if re.fullmatch(r"[0-9]{1,12}", value):
            seconds = float(value)
        else:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return seconds if 1 <= seconds <= longest else None


# Airbyte stops a sync whose source writes no RECORD or STATE for maxSecondsBetweenMessages (metadata.yaml: 3 h),
# whatever it logs. No wait ends later than this many windows (2 h 45 min) after the run's start or its last RECORD
# or STATE: that leaves 15 minutes for the request that follows (a query silent for 5 min, an export for 10, is retried).
QUIET_WINDOWS = 2.75
# The run's first request of a family goes alone for at most this long: a large export day can take minutes before
# Mixpanel sends its headers, and a budget spent elsewhere answers 429 at once.
FIRST_PROBE_WAIT = 5.0


def sign_of_life() -> None:
    """The run wrote a RECORD or STATE (entrypoint.RecordWriter): Airbyte sees it alive."""
    sync_run.current().last_sign_of_life = time.monotonic()


def quiet_deadline(window: float) -> float:
    """When a wait must have ended: QUIET_WINDOWS windows after the run's start or its last RECORD or STATE."""
    run = sync_run.current()
    return max(run.started, run.last_sign_of_life) + QUIET_WINDOWS * window


def quiet_for() -> float:
    """Seconds since the run's start or its last RECORD or STATE, whichever came later."""
    run = sync_run.current()
    return time.monotonic() - max(run.started, run.last_sign_of_life)


def too_quiet(cause: str) -> str:
    """The transient error of a wait that would end after the quiet deadline; `cause` says what it waits for."""
    return (f"{cause} after the connector had written no record or state for {duration(quiet_for())}: waiting on "
            f"would leave Airbyte without a sign of life for longer than it allows; the connector stops here, and a "
            f"sync run again later resumes from its last state.")


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

    Python, with request_budget.RequestBudget, because the manifest's api_budget cannot keep these limits
    (budget/request_budget.py says why).
    """

    def __init__(self, name: str, paths: str, per_window: int, window: float, per_second: Optional[int] = None,
                 in_flight: Optional[int] = None) -> None:
        self.name, self.paths = name, re.compile(paths)
        self.per_window, self.window = int(per_window), float(window)
        self.per_second = int(per_second) if per_second else None
        self.in_flight = int(in_flight) if in_flight else None
        self.patience = 2 * self.window
        self.heartbeat = max(5.0, min(300.0, self.window / 12))  # a log line every few minutes says what it waits for
        self._cond = threading.Condition()
        # One entry per request sent: when Mixpanel counted it at the latest (its answer, or the send while in flight).
        self._calls: List[List[float]] = []
        self._holders: Dict[int, List[float]] = {}  # thread -> its call, while the request is in flight
        # Places go to waiting requests in the order the state advances: the earliest window first, then by arrival.
        self._arrivals = itertools.count()
        self._tickets: Dict[int, Tuple[str, int]] = {}  # thread -> its request's place in line, kept until answered
        self._waiting: Dict[int, Tuple[str, int]] = {}  # thread -> its place in line, while it waits to be sent
        self._uncounted: Set[int] = set()  # threads whose request in flight Mixpanel does not count (engage pages)
        self._blocked_until = 0.0
        self._blocked_why = ""
        # The run's first request, and the first after a refusal for the hour, goes alone: it tests whether Mixpanel
        # accepts them, so a run that starts on a budget spent elsewhere sends one request into the refusal, not a burst.
        self._probe_due = True
        self._prober: Optional[int] = None
        self._probe_until = float("inf")  # when the others stop waiting for the probe's answer
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
    def acquire(self, what: str, window: Optional[str] = None, counted: bool = True) -> None:
        """Wait until the budget has a place for one more request, and take it.

        A new request's `window` (its from_date, or "") puts it before requests of later windows; None is the thread's
        request sent again after a 429, which keeps its place in line. A request Mixpanel does not count against the
        window (`counted` False: an engage continuation page) waits only for a place in flight.
        """
        me = threading.get_ident()
        with self._cond:
            self._release(me)
            started = time.monotonic()
            if window is not None or me not in self._tickets:
                self._tickets[me] = (window or "", next(self._arrivals))
            if counted:
                self._waiting[me] = self._tickets[me]
            try:
                while True:
                    if self._failure is not None:
                        raise BudgetSpent(self._failure)
                    now = time.monotonic()
                    wait, why = self._wait(now, me) if counted else self._wait_in_flight()
                    if wait == 0:
                        break
                    deadline = quiet_deadline(self.window)
                    # A wait that would end after the quiet deadline fails now; one of unknown length, once it is reached.
                    if (now >= deadline) if wait is None else (now + wait > deadline):
                        raise BudgetSpent(too_quiet(f"{what} waited for the {self.name} budget ({why})"))
                    self._announce(now, now - started, wait, why, what)
                    # A wait of unknown length wakes at the heartbeat, or when the run's first probe stops holding it.
                    unknown = self._probe_until - now if now < self._probe_until else self.heartbeat
                    self._cond.wait(min(self.heartbeat, deadline - now, unknown if wait is None else wait))
            finally:
                if self._waiting.pop(me, None) is not None:
                    self._cond.notify_all()  # the next in line may go
            call = [now]
            self._holders[me] = call
            if counted:
                if self._probe_due and self._prober is None:
                    self._prober = me
                    # After a refusal the others wait for the probe's answer; at the run's start only for a moment.
                    self._probe_until = now + FIRST_PROBE_WAIT if self._refused_since is None else float("inf")
                self._calls.append(call)
                self._uncounted.discard(me)
            else:
                self._uncounted.add(me)

    def _wait(self, now: float, me: int) -> Tuple[Optional[float], str]:
        """How long before this thread may send (None: until another request ends), and why; 0 to send now."""
        self._calls = [call for call in self._calls if call[0] > now - self.window]
        if self._blocked_until > now:
            return self._blocked_until - now, self._blocked_why
        if self._prober is not None and self._prober != me and now < self._probe_until:
            return None, f"the one {self.name} request that tests whether Mixpanel accepts them"
        if len(self._calls) >= self.per_window:
            oldest = min(call[0] for call in self._calls)
            return oldest + self.window - now, f"{self.per_window} {self.name} requests in the last {duration(self.window)}"
        if self.per_second:
            recent = [call[0] for call in self._calls if call[0] > now - 1]
            if len(recent) >= self.per_second:
                return min(recent) + 1 - now, f"{self.per_second} {self.name} requests a second"
        wait_in_flight = self._wait_in_flight()
        if wait_in_flight[0] != 0:
            return wait_in_flight
        if any(ticket < self._waiting[me] for ticket in self._waiting.values()):
            return None, f"{self.name} requests of earlier windows, which go first"
        return 0, ""

    def _wait_in_flight(self) -> Tuple[Optional[float], str]:
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
            self._tickets.pop(me, None)
            uncounted = me in self._uncounted
            self._uncounted.discard(me)
            # An uncounted page accepted says nothing of the hour: refusals of counted requests go on as they were.
            if response is not None and response.status_code != 429 and not uncounted:
                self._refused_since, self._refusals, self._probe_due = None, 0, False
            self._cond.notify_all()

    def refused(self, response: requests.Response, what: str, attempt: int) -> float:
        """Mixpanel answered 429 to this request's `attempt`-th try: wait as the refusal calls for, or give up.

        Returns the seconds this request alone waits before it is sent again (a concurrency refusal); a full
        window blocks the whole family instead, and the next acquire waits for it.
        """
        text = _refusal_text(response)
        limit = refused_limit(text)
        asked = retry_after(response, self.patience)
        with self._cond:
            now = time.monotonic()
            self._release(threading.get_ident())
            if self._refused_since is None:
                self._refused_since, self._refusals = now, 0
            self._refusals += 1
            refused_for = now - self._refused_since
            # Every wait ends by the give-up limit, and before Airbyte would think the run dead.
            deadline = min(self._refused_since + self.patience, quiet_deadline(self.window))
            if now >= deadline:
                self._failure = self._give_up(refused_for, text)
                self._cond.notify_all()
                raise BudgetSpent(self._failure)
            if limit == "concurrent":  # other clients' queries: this request steps back for seconds
                pause = asked if asked is not None else min(2.0 ** attempt, 30.0) * random.uniform(0.75, 1)
                pause = min(pause, deadline - now)
            else:
                pause = 0.0
                wait = asked if asked is not None else self._refusal_wait(limit, now)
                self._blocked_until = max(self._blocked_until, min(now + wait, deadline))
                self._blocked_why = f"Mixpanel refused {what}: {text}"
                self._probe_due = True
                self._announced_until, self._last_line = self._blocked_until, now
            self._cond.notify_all()
        wait = pause or max(0.0, self._blocked_until - now)
        then = "then sends it again" if pause else f"then one request tests whether it accepts {self.name} requests again"
        logger.info(f"Mixpanel refused {what} (429: {text}): waiting {duration(wait)}, until {clock_after(wait)}, {then}.")
        return pause

    def step_back(self, pause: float, what: str) -> None:
        """Sleeps the pause `refused` returned (its first line said it), with a line every heartbeat while it lasts."""
        until = time.monotonic() + pause
        time.sleep(min(pause, self.heartbeat))
        while (left := until - time.monotonic()) > 0:
            logger.info(f"Still waiting before {what} is sent again: {duration(left)} left, until {clock_after(left)} "
                        f"(other clients' {self.name} requests are running).")
            time.sleep(min(left, self.heartbeat))

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
        if refused_for < self.patience:  # the quiet deadline came first
            return too_quiet(f"Mixpanel refused {self.name} requests ({text})")
        return (f"Mixpanel kept refusing {self.name} requests for {duration(refused_for)} ({text}): another client is "
                f"spending the project's budget of {self}; the connector stops here, and a sync run again later "
                f"resumes from its last state.")

    def _release(self, me: int) -> None:
        call = self._holders.pop(me, None)
        if call is not None:
            call[0] = max(call[0], time.monotonic())  # Mixpanel counted it no later than its answer came
        if self._prober == me:
            self._prober = None
