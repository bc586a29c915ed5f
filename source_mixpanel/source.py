"""The declarative source, built from the manifest that ships inside this package."""

import ast
import copy
import logging
import re
import time
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional
from urllib.parse import urlsplit

import requests_cache
from airbyte_cdk.exception_handler import generate_failed_streams_error_message
from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    FailureType,
    SyncMode,
    Type,
)
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource
from airbyte_cdk.sources.declarative.incremental import ConcurrentPerPartitionCursor
from airbyte_cdk.sources.streams.concurrent.abstract_stream import AbstractStream
from airbyte_cdk.sources.streams.concurrent.cursor import ConcurrentCursor
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_as_airbyte_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import state_file, sync_run
from source_mixpanel.budget.plan import log_plan
from source_mixpanel.budget.request_budget import RequestBudget
from source_mixpanel.cursors import WindowCursorFeed, keep_export_run
from source_mixpanel.export import history
from source_mixpanel.failures import config_error
from source_mixpanel.manifest import load_manifest
from source_mixpanel.partition_states import PartitionStateCadence
from source_mixpanel.properties import columns, discovery

# Streams the manifest offers only when the config names what they read (its ConditionalStreams), and that field.
OPTIONAL_STREAMS = {"insights": "insights_reports", "groups": "group_keys"}
logger = logging.getLogger("airbyte")
RECORDS_IN_FLIGHT = 1000
_CDK_RETRY_LINE = re.compile(r"UserDefinedBackoffException: Rate limit exceeded \(HTTP (\d+)\)\. Retrying in (\S+) seconds\.")


class _RetryLineWording(logging.Filter):
    """The CDK calls every retry with a wait a rate limit ("Rate limit exceeded (HTTP 200)" after a cut export body);
    ours have already said why they retry, so the line says only what happens."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = _CDK_RETRY_LINE.fullmatch(str(record.msg))
        if match:
            record.msg, record.args = f"Sending the request again in {match[2]} seconds (its answer was HTTP {match[1]}).", ()
        return True


logger.addFilter(_RetryLineWording())

# The CDK's lines that only repeat, rawer, a sentence the user gets anyway (the failed request's status, body and
# headers before the error that words it; check's WARN and ERROR around the status that carries the reason; the
# summary of the streams that failed, after their own errors).
FAILED_STREAMS_SUMMARY = generate_failed_streams_error_message({})
_CDK_ECHOES = (re.compile(r"'[A-Z]+' request to '.*' failed with (status code|exception) .*", re.DOTALL),
               re.compile(r"Stream connection_check is not available: .*", re.DOTALL),
               re.compile(r"Check failed|Retries exhausted with backoff exception\.|Max retry limit reached .*"),
               re.compile(re.escape(FAILED_STREAMS_SUMMARY) + ".*", re.DOTALL))


class _EchoesToDebug(logging.Filter):
    """Moves the CDK's echoes of an error to DEBUG, and drops the traceback of a stream's config error (its TRACE
    message follows): a user reads one sentence at ERROR. Python because the CDK logs them with no switch to stop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        config_error = isinstance(error, AirbyteTracedException) and error.failure_type == FailureType.config_error
        if config_error or any(pattern.fullmatch(str(record.msg)) for pattern in _CDK_ECHOES):
            record.levelno, record.levelname, record.exc_info, record.exc_text = logging.DEBUG, "DEBUG", None, None
            return logger.isEnabledFor(logging.DEBUG)
        return True


def quiet_cdk_echoes() -> None:
    """Filters every handler the CDK's logging set up: the echoes come from its child loggers too, which a filter on
    the airbyte logger does not see."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_EchoesToDebug())


_cdk_request_session = HttpClient._request_session


def _session_caching_posts(client: HttpClient) -> Any:
    """The CDK's session for a requester, with POST answers cached where it caches GET ones (parent streams).

    Python because the CDK caches GET only, no manifest field says otherwise and parents are built by factories of
    their own; and the cohorts list, a parent read by the plan, cohorts and cohort_members, is a POST (the only method
    Mixpanel documents for it): uncached, it would cost three of the hour's 60 queries in place of one.
    """
    session = _cdk_request_session(client)
    if isinstance(session, requests_cache.CacheMixin):
        session.settings.allowable_methods = (*session.settings.allowable_methods, "POST")
    return session


HttpClient._request_session = _session_caching_posts  # every requester's client, whichever factory builds it

_cdk_send_with_retry = HttpClient._send_with_retry
# What urllib3 says when a host cannot be reached, and the words for it.
_UNREACHABLE = (("NameResolutionError", "its name does not resolve"), ("Connection refused", "it refused the connection"),
                ("ConnectTimeout", "the connection timed out"), ("SSLError", "the TLS handshake failed"),
                ("ConnectionError", "the connection failed"))


def _send_naming_unreachable_hosts(client: HttpClient, request: Any, *args: Any, **kwargs: Any) -> Any:
    """The CDK's send with retries, where a host that could not be reached is one sentence naming it and why.

    Python because the CDK words it "Exhausted available request attempts ... NameResolutionError(...)" in place of
    the reason, and no manifest field words a connection failure (error handlers see responses).
    """
    try:
        return _cdk_send_with_retry(client, request, *args, **kwargs)
    except AirbyteTracedException as error:
        cause = str(error.__context__ or "")  # the CDK raises it while handling the last attempt's BaseBackoffException
        if not error.message.startswith("Exhausted available request attempts") or "Response Code:" in cause:
            raise
        why = next((words for needle, words in _UNREACHABLE if needle in cause), None)
        if why is None:
            raise
        host = urlsplit(request.url).netloc
        error.message = (f"Could not reach {host} ({why}, after every retry): check base_url, export_base_url and "
                         f"region in the config, and that this machine can reach the host.")
        raise


HttpClient._send_with_retry = _send_naming_unreachable_hosts


class SourceMixpanel(ConcurrentDeclarativeSource):
    """The manifest, loaded by absolute path, with Mixpanel's request budgets kept for the whole run.

    Python for the export timeout because the manifest schema takes only a number for read_timeout_in_seconds;
    for the budget because the manifest's api_budget is the CDK's HTTPAPIBudget, which cannot keep Mixpanel's
    limits (budget/request_budget.py), so the factory is handed ours; for the plan that a read logs first
    (budget/plan.py); for a STATE soon after every finished funnel (partition_states.py); and for a shorter queue of
    records between threads and a cursor fed once per window (speed and memory, docs/operations.md, Performance).
    """

    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        config_path: Optional[str] = None,
    ) -> None:
        self.run = sync_run.begin()  # this run's shared state (sync_run.py); a source built earlier kept its own
        manifest = copy.deepcopy(load_manifest())
        timeout = (config or {}).get("export_read_timeout")
        if timeout:
            manifest["definitions"]["export_requester"]["read_timeout_in_seconds"] = timeout
        super().__init__(catalog=catalog, config=config, state=state, source_config=manifest, config_path=config_path)
        # Records waiting for the main thread: 1,000 keep it busy as well as the CDK's 10,000, which held ~13 MB more
        # of a big day in memory (docs/operations.md, Performance). unit_tests/test_output.py pins where the CDK keeps it.
        self._concurrent_source._queue.maxsize = RECORDS_IN_FLIGHT
        self.budget = RequestBudget.from_manifest(manifest["definitions"]["request_budget"], self._config)
        # Every HttpRequester (and BudgetRetries) the factory builds from here on gets this one budget; the factory
        # has no public setter for a budget that is already built, and the manifest declares no api_budget.
        self._constructor._api_budget = self.budget
        incremental = any(configured.stream.name == "export" and configured.sync_mode == SyncMode.incremental
                          for configured in (catalog.streams if catalog else []))
        self.export_run = history.begin(self._config, self._connector_state_manager.get_stream_state("export", None),
                                           incremental)

    def read_state(self, state_path: str) -> List[AirbyteStateMessage]:  # type: ignore[override]
        """--state in any shape state_file takes: the CDK's reader takes only a list (entrypoint.py words a bad one first)."""
        return state_file.parse(Path(state_path).read_text(encoding="utf-8")) if state_path else []

    def streams(self, config: Mapping[str, Any]) -> List[AbstractStream]:  # type: ignore[override]
        streams = super().streams(config)
        for stream in streams:
            cursor = getattr(stream, "cursor", None)
            if isinstance(cursor, (ConcurrentCursor, ConcurrentPerPartitionCursor)):
                key = cursor.cursor_field.cursor_field_key
                # The export cursor keeps Mixpanel's day labels: local wall times in a project that stores them.
                cursor_value = self.export_run.cursor_time if stream.name == "export" else (lambda value: value)
                WindowCursorFeed(cursor, key, stream.name, cursor_value)
            if stream.name == "export" and isinstance(cursor, ConcurrentCursor):
                keep_export_run(cursor, self.export_run)
            if isinstance(cursor, ConcurrentPerPartitionCursor):
                # Under the budget a funnel may finish an hour before the next: its state must not wait for the
                # CDK's ten-minute throttle, or a sync stopped in between reads it again.
                PartitionStateCadence(cursor)
        return streams

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        discovery.declare_types()  # only discover asks the Lexicon and reads a sample of events (docs/columns.md)
        return super().discover(logger, config)

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        warn_of_project_secret_sunset(self._config)
        self.budget.for_check()
        status = super().check(logger, config)
        if status.message:  # the CDK hands back `repr("Stream connection_check is not available: <why>")`
            message = status.message
            if len(message) > 1 and message[0] == message[-1] and message[0] in "'\"":
                message = ast.literal_eval(message)
            status.message = message.removeprefix("Stream connection_check is not available: ")
        return status

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        warn_of_project_secret_sunset(self._config)
        selected = {configured.stream.name for configured in catalog.streams}
        # Streams of their own: planning reads the funnel and cohort lists, which the read's streams then take
        # from the CDK's request cache (parents are cached), so the plan costs no request.
        streams = self.streams(config=self._config)
        unknown = selected - {stream.name for stream in streams}
        if unknown:  # the CDK would skip them and report nothing
            unset = {name: OPTIONAL_STREAMS[name] for name in sorted(unknown) if name in OPTIONAL_STREAMS}
            if unset:
                message = (f"The catalog selects {' and '.join(unset)}, offered only when the config sets "
                           f"{' and '.join(unset.values())}: set {'them' if len(unset) > 1 else 'it'}, or deselect "
                           f"{'those streams' if len(unset) > 1 else 'the stream'}.")
            else:
                message = (f"The catalog names streams this connector does not have ({', '.join(sorted(unknown))}): run "
                           f"discover and select from {', '.join(stream.name for stream in streams)}.")
            raise config_error(message)
        planned = [stream for stream in streams if stream.name in selected]
        log_full_refresh_only(catalog, planned)
        columns.configure(catalog)
        log_plan(planned, self.budget, logger)
        try:  # property discovery now: where the CDK starts a stream, a failure escapes its loop with no stream status
            for stream in planned:
                stream.get_json_schema()
        except Exception:
            for configured in catalog.streams:
                yield stream_status_as_airbyte_message(configured.stream, AirbyteStreamStatus.INCOMPLETE)
            raise
        yield from _with_stream_summaries(super().read(logger, config, catalog, state))


def log_full_refresh_only(catalog: ConfiguredAirbyteCatalog, streams: List[AbstractStream]) -> None:
    """One INFO line when the catalog asks for an incremental read of streams that have no cursor (a 4.x catalog's
    cohorts and cohort_members): the CDK reads them whole without a word."""
    without_cursor = {stream.name for stream in streams if not stream.cursor_field}
    named = sorted(c.stream.name for c in catalog.streams if c.sync_mode == SyncMode.incremental and c.stream.name in without_cursor)
    if named:
        logger.info(f"The catalog asks for {' and '.join(named)} incrementally, as 4.x read cohorts and cohort_members; "
                    f"{'they are' if len(named) > 1 else 'it is'} full refresh only now (counts and membership change "
                    f"without a new cursor value): read whole, any saved state set aside. Set {'them' if len(named) > 1 else 'it'} "
                    f"to full refresh | overwrite.")


PROJECT_SECRET_SUNSET = (
    "This config authenticates with a project secret, and Mixpanel stops accepting project secrets on 2027-03-03. "
    "To move to a service account: in Mixpanel, open Organization Settings > Service Accounts, create one with access "
    "to this project, then set credentials to Service Account with its username and secret and the project's "
    "project_id (Project Settings > Overview)."
)


def warn_of_project_secret_sunset(config: Mapping[str, Any]) -> None:
    """One WARN, at check and at read, while a config still uses a project secret."""
    if (config.get("credentials") or {}).get("option_title") == "Project Secret":
        logger.warning(PROJECT_SECRET_SUNSET)


def _with_stream_summaries(messages: Iterator[AirbyteMessage]) -> Iterator[AirbyteMessage]:
    """The messages as they are, plus one INFO line when a stream completes: its records, seconds and rate."""
    started: dict = {}
    records: dict = {}
    for message in messages:
        if message.type == Type.RECORD:
            stream = message.record.stream
            records[stream] = records.get(stream, 0) + 1
        elif message.type == Type.TRACE and message.trace.stream_status:
            stream, status = message.trace.stream_status.stream_descriptor.name, message.trace.stream_status.status
            if status == AirbyteStreamStatus.STARTED:
                started[stream] = time.monotonic()
            elif status == AirbyteStreamStatus.COMPLETE and stream in started:
                seconds, count = time.monotonic() - started[stream], records.get(stream, 0)
                rate = f", {count / seconds:,.0f} records/s" if seconds > 0 and count else ""
                logger.info(f"Stream {stream} complete: {count:,} records in {seconds:.1f} s{rate}{columns.misfit_summary(stream)}.")
        yield message
