"""Mixpanel's per-project request budgets, kept by every request of a run.

Python because the CDK's api_budget (HTTPAPIBudget) cannot keep Mixpanel's limits: it logs its waits only at
DEBUG, has no cap on requests in flight, and after one 429 marks its whole window as used (a wait of an hour).
The families and their limits are declared in manifest.yaml (`request_budget`); this module waits for them.

Every request of a family takes a place in its moving window before it is sent (budget.family.Family): no more
than `per_window` in any window, `per_second` in any second, `in_flight` at once. Under the budget nothing waits.
Waiting requests get places earliest window first, the order the state advances in; a run's first request of a
family goes alone. An engage session's later pages, which Mixpanel does not count, take only a place in flight.
A 429 is waited out and sent again in RequestBudget's response hook, as Family.refused decides, so the CDK's retry
loop never sees it: a concurrency refusal makes that request step back for seconds, an hourly one blocks the family
until the run's oldest request in the window ages out or, when another client spent the budget, probes with one
request at growing intervals. Only when Mixpanel keeps refusing for longer than `patience` (two windows; a minute
in `check`) does the request fail, with a transient error (BudgetSpent).

Every wait, here or before a retry (MixpanelBackoff), is said at INFO, obeys Retry-After only where it makes sense
(budget.family.retry_after), and ends by the run's quiet deadline: Airbyte stops a source that writes no RECORD or
STATE for `maxSecondsBetweenMessages` (3 h), so a wait that would outlast it fails the sync with a transient error.
"""

import logging
import threading
import time
from dataclasses import InitVar, dataclass
from typing import Any, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import requests
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler

from source_mixpanel.answers import continuation_page, request_parameters
from source_mixpanel.budget.family import QUIET_WINDOWS, Family, clock_after, duration, quiet_deadline, retry_after, too_quiet
from source_mixpanel.failures import transient_error

logger = logging.getLogger("airbyte")


def _number(value: Any, config: Mapping[str, Any]) -> Optional[float]:
    """A number of the manifest, interpolated from the config when it is text."""
    value = InterpolatedString.create(str(value), parameters={}).eval(config) if isinstance(value, str) else value
    return float(value) if value not in (None, "") else None


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
        """The families of manifest.yaml's `request_budget`, with their numbers read from the config; a family's own
        `window_seconds` replaces the shared one (the Lexicon counts by the minute)."""
        return cls([
            Family(family["name"], family["paths"], int(_number(family["per_window"], config)),
                   _number(family.get("window_seconds", declared["window_seconds"]), config),
                   per_second=_number(family.get("per_second"), config),
                   in_flight=_number(family.get("in_flight"), config))
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
        asked = request_parameters(request)
        # Mixpanel does not count an engage session's later pages against the hour, so none waits for the window
        # and its session cannot expire in a budget pause; a 429 on one is sent again as a counted request.
        family.acquire(self._what(request), window=asked.get("from_date") or asked.get("fromDate") or "",
                       counted=not continuation_page(asked))
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
            family.step_back(pause, what)
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
        """No wait outlasts the quiet deadline (budget.family.QUIET_WINDOWS), so the retry loop need not either."""
        windows = [family.window for family in (self.api_budget.families if self.api_budget else [])]
        return int(QUIET_WINDOWS * max(windows, default=3600))

    def interpret_response(self, response_or_exception: Any = None) -> None:  # type: ignore[override]
        if isinstance(response_or_exception, Exception) and self.api_budget is not None:
            self.api_budget.ended_without_answer()
        return None


@dataclass
class MixpanelBackoff(BackoffStrategy):
    """The wait before every retry the CDK makes (a 5xx, a timeout, a body that failed its check): the Retry-After
    Mixpanel asks for where it makes sense, else `factor` seconds doubled each attempt; at most 5 minutes, said at
    INFO (what, how long, until when), and never past the run's quiet deadline.

    Python because the CDK's backoff strategies neither bound Retry-After nor say what they wait for or until when.

    WaitTimeFromHeader takes any number (1e20 crashes, 0 bursts, 999999999 waits 31 years); ExponentialBackoffStrategy
    logs nothing.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    factor: Union[float, str] = 5
    window_seconds: Union[float, str] = 3600

    LONGEST = 299  # the CDK sleeps a second more: a wait never outlasts the 5 minutes between two lines

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.factor = float(self.factor)
        self.window = _number(self.window_seconds, self.config) or 3600

    def backoff_time(self, response_or_exception: Any, attempt_count: int) -> Optional[float]:
        request = getattr(response_or_exception, "request", None)
        what = RequestBudget._what(request) if request is not None else "a request"
        if isinstance(response_or_exception, requests.Response):
            failed = f"Mixpanel answered {what} with {response_or_exception.status_code}"
            asked = retry_after(response_or_exception, 2 * self.window)  # a run's give-up limit
        else:
            failed, asked = f"{what} failed ({type(response_or_exception).__name__})", None
        wait = min(asked if asked is not None else self.factor * 2 ** attempt_count, self.LONGEST)
        slept = wait + 1  # the CDK's extra second
        if time.monotonic() + slept > quiet_deadline(self.window):
            message = too_quiet(failed)
            raise transient_error(message)
        why = "" if asked is None else ", as its Retry-After asks" if asked <= self.LONGEST else (
            f" (its Retry-After asks for {duration(asked)}; the connector tries again sooner)")
        logger.info(f"{failed}: waiting {duration(slept)}, until {clock_after(slept)}{why}, then sending it again.")
        return wait
