"""The events export endpoint: its parameters, its streamed (chunked, maybe gzipped) body, and cached bodies."""
from __future__ import annotations

import json
import socket
import zlib
from typing import TYPE_CHECKING

from .common import GZIP_MIN_BYTES, ApiError, parse_day
from .faults import TRUNCATING, active_faults, end_body, refuse, serve_close_delimited, split_lines

if TYPE_CHECKING:  # the handler is made of this module's mixin
    from .server import Handler

EXPORT_LIMIT_MAX = 100000


class _Body:
    """Writes the export body: buffers until it knows whether the body passes GZIP_MIN_BYTES, then
    sends chunked (gzip-compressed if allowed, with a sync flush per chunk of lines) or, for a small
    body, plain with a Content-Length."""

    def __init__(self, handler: Handler, entry: dict, gzip_ok: bool, retry_after: int | None = None):
        self.h, self.entry, self.gzip_ok, self.retry_after = handler, entry, gzip_ok, retry_after
        self.buffer: list[bytes] = []
        self.size = 0
        self.started = False
        self.comp = None

    def _start(self) -> None:
        self.started = True
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        if self.retry_after is not None:
            h.send_header("Retry-After", str(self.retry_after))
        if self.gzip_ok and self.size > GZIP_MIN_BYTES:
            h.send_header("Content-Encoding", "gzip")
            self.comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        h.end_headers()
        h.headers_sent = True
        data, self.buffer = b"".join(self.buffer), []
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        if data:
            self.h.write_chunk(data)

    def write(self, data: bytes) -> None:
        if self.started:
            self._emit(data)
            return
        self.buffer.append(data)
        self.size += len(data)
        if self.size > GZIP_MIN_BYTES:
            self._start()

    def commit(self) -> None:
        """Make sure headers and everything written so far are on the wire."""
        if not self.started:
            self._start()

    def finish(self, complete: bool = True) -> None:
        """End the body; `complete=False` leaves a gzip stream at its last flush point (no final block)."""
        if not self.started:
            self.h.send_bytes(200, b"".join(self.buffer), "text/plain; charset=utf-8", self.entry, gzip_ok=False)
            return
        if self.comp is not None and complete:
            tail = self.comp.flush()
            if tail:
                self.h.write_chunk(tail)
        self.h.wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """End the connection without the terminating chunk (a cut body)."""
        self.commit()
        self.h.close_connection = True
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ExportEndpoint:
    """GET /api/2.0/export (a mixin of the HTTP handler)."""

    def _ep_export(self, params: dict, entry: dict) -> None:
        sim = self.server.sim
        from_day, to_day, events, limit = self._export_params(params)
        faults = active_faults(sim, entry)
        refuse(sim, faults, entry)
        gzip_ok = sim.gzip and self._accepts_gzip()
        truncating = faults & TRUNCATING

        if "close_delimited" in faults:
            serve_close_delimited(self, sim, from_day, to_day, events, limit, entry)
            return
        if sim.cache_bodies and not faults and not sim._injections:
            self._serve_cached(sim._export_body(from_day, to_day, events, limit), gzip_ok, entry,
                               (from_day, to_day, None if events is None else tuple(events), limit))
            return

        entry["status"] = 200
        retry_after = sim.fault_retry_after if truncating or sim._injects_into(from_day, to_day) else None
        out = _Body(self, entry, gzip_ok, retry_after)
        stop_at = sim._export_count(from_day, to_day, events, limit) // 2 if truncating else None
        emitted = 0
        for day, lines in sim._export_days(from_day, to_day, events, limit):
            if stop_at is not None and emitted + len(lines) >= stop_at:
                lines = lines[: stop_at - emitted]
            if "split_lines" in faults:
                lines = split_lines(lines)
            body = "".join(lines).encode()
            out.write(sim._injected(day, body, entry["attempt"]) if sim._injections else body)
            emitted += len(lines)
            if stop_at is not None and emitted >= stop_at:
                break
        end_body(sim, out, faults)

    def _export_params(self, params: dict) -> tuple:
        """(from_day, to_day, event names or None, limit or None), or the 400 Mixpanel answers for bad ones."""
        sim = self.server.sim
        from_day, to_day = parse_day(params.get("from_date")), parse_day(params.get("to_date"))
        if from_day is None or to_day is None:
            raise ApiError(400, "from_date and to_date are required and must be YYYY-MM-DD", text=True)
        if to_day > sim.today_date():
            raise ApiError(400, "to_date cannot be later than today", text=True)
        if from_day > to_day:
            raise ApiError(400, "from_date cannot be later than to_date", text=True)
        events = params.get("event")
        if events not in (None, ""):
            try:
                events = json.loads(events) if isinstance(events, str) else events
            except ValueError:
                events = None
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise ApiError(400, "event must be a JSON array of event names", text=True)
        else:
            events = None
        limit = params.get("limit")
        if limit not in (None, ""):
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                limit = -1
            if not 0 < limit <= EXPORT_LIMIT_MAX:
                raise ApiError(400, f"limit must be an integer between 1 and {EXPORT_LIMIT_MAX}", text=True)
        else:
            limit = None
        return from_day, to_day, events, limit

    def _serve_cached(self, body: bytes, gzip_ok: bool, entry: dict, key_args) -> None:
        entry["status"] = 200
        if len(body) <= GZIP_MIN_BYTES:
            self.send_bytes(200, body, "text/plain; charset=utf-8", entry, gzip_ok=False)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        if gzip_ok:
            body = self.server.sim._export_gzip_body(key_args, body)
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.headers_sent = True
        view = memoryview(body)
        step = 1 << 20
        for start in range(0, len(body), step):
            self.write_chunk(view[start:start + step])
        self.wfile.write(b"0\r\n\r\n")
