"""The export decoder: a checked, spooled body read back as records, shaped in the same pass."""

import datetime
import io
import logging
import math
import time
from dataclasses import InitVar, dataclass, field
from typing import IO, Any, Generator, Mapping, MutableMapping, Optional

import requests
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester

from source_mixpanel.export import history
from source_mixpanel.export.history import DEDUP_KEY
from source_mixpanel.export.lines import BrokenBody, NotAnEvent, events, spooled_lines, unix_time
from source_mixpanel.export.response import SENT_ATTRIBUTE, SPOOL_ATTRIBUTE, Window, window_of
from source_mixpanel.failures import system_error
from source_mixpanel.properties.columns import StreamColumns, stream_columns
from source_mixpanel.properties.discovery import keeps_undiscovered, property_names

logger = logging.getLogger("airbyte")


@dataclass
class ExportDecoder(Decoder):
    """Parses the spooled export body and shapes each record in the same pass: its dedup key, its true time, and
    none of the events the last run already delivered from days it read (export/history.py).

    Python because no manifest decoder rejoins records split over lines or fails loudly on a line
    that will not parse (JsonlDecoder skips it), and because shaping here with orjson is measurably
    faster per record: JsonlDecoder + DpathFlattenFields measured ~5,800 records/s against ~15,000/s
    for this approach (`make bench` measures the whole read).
    """

    config: Mapping[str, Any]
    properties_requester: HttpRequester
    parameters: InitVar[Mapping[str, Any]]
    _columns: Optional[StreamColumns] = field(init=False, default=None)

    def is_stream_response(self) -> bool:
        return True

    def decode(self, response: requests.Response) -> Generator[MutableMapping[str, Any], None, None]:
        spool: Optional[IO[bytes]] = getattr(response, SPOOL_ATTRIBUTE, None)
        if spool is None:
            raise system_error("An export response reached the decoder without passing the body check; this is a connector bug.")
        if self._columns is None:
            names = property_names("event", self.properties_requester, self.config)
            # `time` is replaced by its ISO text after shaping: its raw Unix seconds are not judged against the column.
            self._columns = stream_columns("export", names, keeps_undiscovered(self.config), computed=("time",))
        run, window = history.current(self.config), window_of(response)
        try:
            run.decide_storage(spool, str(window))
            yield from self._records(spool, response, window, run)
        finally:
            spool.close()

    def _records(self, spool: IO[bytes], response: requests.Response, window: Window,
                 run: history.ExportRun) -> Generator[MutableMapping[str, Any], None, None]:
        shape, key, iso = self._columns.shape, history.dedup_key, _IsoSeconds()
        true_time = run.true_time if run.storage == "project_timezone" else None
        # Days the last run read: only what Mixpanel received since comes out again (export/history.py).
        low, high = run.reread if run.filters(window.first, window.last) else (0.0, 0.0)
        cutoff = run.cutoff_ms or 0
        count = delivered = newest_received = 0
        try:
            for _, event, _, wide in events(spooled_lines(spool), exact_integers=True):
                properties = event["properties"]
                seconds = properties["time"]
                if type(seconds) is not int:  # a float, or a time in a string (events() checked it converts)
                    seconds = unix_time(seconds)
                received = properties.get("mp_processing_time_ms")
                if type(received) is int:
                    if received > newest_received:
                        newest_received = received
                    if low <= seconds < high and received < cutoff:
                        delivered += 1
                        continue
                # Shaped here, in one pass: properties to the top level, names through the rename map, types kept.
                record = {"event": event["event"], DEDUP_KEY: key(event, seconds)}
                shape(properties, record, wide)
                record["time"] = iso(true_time(seconds, received) if true_time else seconds)
                count += 1
                yield record
        except (NotAnEvent, BrokenBody) as problem:  # the body check read this same spool and passed it
            message = f"The export of {window} changed between its check and its reading ({problem}): this is a connector bug."
            raise system_error(message)
        if newest_received:
            run.received_until(newest_received)
        _log_window(response, window, spool, count, delivered)


class _IsoSeconds(dict):
    """Unix seconds -> `YYYY-MM-DDTHH:MM:SSZ`, each second formatted once while it recurs: events of one second
    tend to come together. A few thousand at most: a day's 86,400 would hold about 10 MB."""

    def __call__(self, seconds: float) -> str:
        second = seconds if type(seconds) is int else math.floor(seconds)
        text = self.get(second)
        if text is None:
            if len(self) >= 4096:
                self.clear()
            text = self[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return text


def _log_window(response: requests.Response, window: Window, spool: IO[bytes], records: int, delivered: int) -> None:
    """One INFO line per finished export window: its days, its records, the seconds from request to last record, and
    the temporary disk its body took."""
    try:
        first, last = datetime.date.fromisoformat(window.first), datetime.date.fromisoformat(window.last)
        days = f"{(last - first).days + 1} day{'s' if last > first else ''}"
    except ValueError:
        days = "days unknown"
    seconds = time.monotonic() - getattr(response, SENT_ATTRIBUTE, time.monotonic())
    rate = f", {records / seconds:,.0f} records/s" if seconds > 0 and records else ""
    again = (f"; {delivered:,} events of days the last sync read, received before it read them, were delivered then"
             if delivered else "")
    disk = spool.seek(0, io.SEEK_END) / 1e6
    logger.info(f"Export of {window} done ({days}): {records:,} records in {seconds:.1f} s{rate}{again}; "
                f"its body took {disk:,.1f} MB of temporary disk (gzipped).")
