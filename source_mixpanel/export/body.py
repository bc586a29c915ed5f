"""The export body check: each window's body spooled to disk, gzipped, inside the HTTP retry loop, every line judged on the way."""

import logging
import tempfile
import threading
import time
import zlib
from dataclasses import InitVar, dataclass, field
from typing import IO, Any, Dict, Iterator, Mapping, Optional, Union

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3.exceptions import HTTPError as Urllib3Error

from source_mixpanel import sync_run
from source_mixpanel.export import history
from source_mixpanel.export.lines import BrokenBody, NotAnEvent, events, gunzip, split_lines
from source_mixpanel.export.response import SENT_ATTRIBUTE, SPOOL_ATTRIBUTE, window_of
from source_mixpanel.failures import system_error

logger = logging.getLogger("airbyte")




@dataclass
class ExportBodyCheck(ErrorHandler):
    """Reads each 200 export body to a spool file inside the HTTP retry loop, judging every line on the way, and
    answers RETRY when the body broke off or holds a line that is not an event (FAIL when that comes twice).

    Python because a decoder runs after the retry loop (raising there does not retry, and the records before
    the bad line are already out), and a manifest response filter that reads a streamed body consumes it.
    Non-200 answers are left (None) to the handlers declared around this one.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    # The chain's first handler (budget_retries in manifest.yaml) sets both for the whole chain.
    max_retries: Optional[int] = None
    max_time: Optional[int] = None
    _not_events: Dict[str, int] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> Optional[ErrorResolution]:
        response = response_or_exception
        if not isinstance(response, requests.Response) or response.status_code != 200:
            return None
        window = str(window_of(response))
        setattr(response, SENT_ATTRIBUTE, time.monotonic() - response.elapsed.total_seconds())
        try:
            spool = tempfile.TemporaryFile()
        except OSError as error:
            raise self._disk_error(window, error, 0)
        problem = None
        try:
            replaced = 0
            for line, _, was_replaced, _ in events(split_lines(_spooled_chunks(response, spool))):
                replaced = replaced or (line if was_replaced else 0)
            if replaced:
                _warn_once("replaced", f"The export of {window} holds bytes that are not UTF-8 (first at line {replaced}): "
                                       f"they are read as U+FFFD, and the rest of each value is kept.")
        except _SpoolFailed as failed:
            spool.close()
            raise self._disk_error(window, failed.error, failed.written)
        except NotAnEvent as not_an_event:
            spool.close()
            return self._not_an_event(window, not_an_event)
        except BrokenBody as broken:
            problem = str(broken)
        except (requests.RequestException, Urllib3Error, OSError, zlib.error) as error:
            problem = f"broke off ({type(error).__name__})"
        finally:
            response.close()
        if problem:
            spool.close()
            message = f"The export of {window} {problem}; requesting the whole range again."
            logger.info(message)  # the CDK's own retry line calls every retry a rate limit
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        if _length_unknown(response):
            _warn_once("unsized", "The export answered without a length, chunks or gzip (its body ends where the "
                                  "connection closes): such bodies are read, but their completeness cannot be checked.")
        setattr(response, SPOOL_ATTRIBUTE, spool)
        history.current(self.config).requested(response, getattr(response, SENT_ATTRIBUTE))
        return ErrorResolution(response_action=ResponseAction.SUCCESS)

    def _not_an_event(self, window: str, not_an_event: NotAnEvent) -> ErrorResolution:
        """The first time for a window, ask again (a garbled answer); the second, stop before any of its records."""
        with self._lock:
            self._not_events[window] = seen = self._not_events.get(window, 0) + 1
        if seen == 1:
            message = f"The export of {window} holds {not_an_event.what} at line {not_an_event.line}; requesting the whole range again."
            logger.info(message)
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)
        message = (f"The export of {window} held {not_an_event.what} at line {not_an_event.line}, again when asked a "
                   f"second time: the sync stops before any record of that window rather than skip the line.")
        raise system_error(message)

    @staticmethod
    def _disk_error(window: str, error: OSError, written: int) -> AirbyteTracedException:
        folder = tempfile.gettempdir()
        message = (f"The export of {window} cannot be spooled in {folder} ({error.strerror or error}): a window needs "
                   f"at least {max(1, written >> 20)} MB of free disk there; free some, point TMPDIR elsewhere, or set "
                   f"a smaller export_window_days.")
        return system_error(message)


class _SpoolFailed(Exception):
    """Writing the spool failed: the local disk, not the network."""

    def __init__(self, error: OSError, written: int) -> None:
        super().__init__(str(error))
        self.error, self.written = error, written


def _spooled_chunks(response: requests.Response, spool: IO[bytes]) -> Iterator[bytes]:
    """The body's bytes, un-gzipped here rather than by urllib3 so that a gzip stream cut at a flush point, which
    urllib3 takes as whole, is caught; spooled gzipped, a tenth of the disk: Mixpanel's gzip as it came, a plain
    body gzipped as it passes (level 1, the fastest)."""
    written = 0

    def spooled(data: bytes) -> bytes:
        nonlocal written
        try:
            spool.write(data)
        except OSError as error:
            raise _SpoolFailed(error, written) from error
        written += len(data)
        return data

    if (response.headers.get("Content-Encoding") or "").strip().lower() == "gzip":
        # Small reads: a chunk grows tenfold when un-gzipped.
        yield from gunzip(map(spooled, response.raw.stream(1 << 17, decode_content=False)))
        return
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for data in response.raw.stream(1 << 20, decode_content=True):
        spooled(compressor.compress(data))
        yield data
    spooled(compressor.flush())


def _length_unknown(response: requests.Response) -> bool:
    headers = response.headers
    gzip = (headers.get("Content-Encoding") or "").strip().lower() == "gzip"
    return not gzip and "Content-Length" not in headers and "chunked" not in (headers.get("Transfer-Encoding") or "").lower()


def _warn_once(kind: str, message: str) -> None:
    """One WARN per sync for each kind of thing a sync cannot fix but should say."""
    if sync_run.current().first_time("export body", kind):
        logger.warning(message)

