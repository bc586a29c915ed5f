"""Hostile answers: the export's faults, lines injected into export bodies, canned answers and hostile settings."""
from __future__ import annotations

import datetime as dt

from .common import PROJECT_ID, ApiError, json_bytes

FAULTS = ("split_lines", "terminated_early", "cut", "stall", "5xx", "429", "gzip_unfinished", "close_delimited")
TRUNCATING = frozenset({"terminated_early", "cut", "stall", "gzip_unfinished"})  # faults that end a body halfway


class Faults:
    """Canned answers, injected lines and hostile settings, set by tests (a mixin of MixpanelSimulator)."""

    def answer(self, path_suffix: str, body, status: int = 200, content_type: str = "application/json",
               when: dict | None = None, times: int | None = None, headers: dict | None = None) -> None:
        """Answer requests whose path ends with `path_suffix` (and whose parameters include `when`) with this
        status, body (bytes as they are, str as UTF-8, anything else as JSON) and headers, `times` times or for good."""
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else json_bytes(body)
        with self._lock:
            self._answers.append({"path": path_suffix, "when": {k: str(v) for k, v in (when or {}).items()},
                                  "status": status, "body": body, "type": content_type, "times": times,
                                  "headers": dict(headers or {})})

    def inject_export_lines(self, day: str, lines: list[bytes], where: str = "middle", attempts: int | None = None) -> None:
        """Put these raw lines (each without its line break) into that day's export body (start, middle or end),
        in its first `attempts` answers or in all of them."""
        with self._lock:
            self._injections.append((day, where, list(lines), attempts))

    def clear_hostile(self) -> None:
        """Forget canned answers, injected lines, extra profiles and expiring sessions."""
        with self._lock:
            self._answers, self._injections, self.extra_profiles = [], [], []
            self._expiring, self.expire_next_sessions = set(), 0
            self.engage_page_size_on_page_zero_only = False

    def _canned(self, path: str, params: dict):
        with self._lock:
            for canned in self._answers:
                matches = path.endswith(canned["path"]) and all(
                    str(params.get(k)) == v for k, v in canned["when"].items())
                if matches and canned["times"] != 0:
                    if canned["times"] is not None:
                        canned["times"] -= 1
                    return canned
        return None

    def _injected(self, day: dt.date, body: bytes, attempt: int) -> bytes:
        """One day's export body with the lines injected into it for this attempt."""
        lines = body.split(b"\n")[:-1]  # every line ends with a break
        for injected_day, where, extra, attempts in self._injections:
            if injected_day == day.isoformat() and (attempts is None or attempt <= attempts):
                at = {"start": 0, "middle": len(lines) // 2, "end": len(lines)}[where]
                lines[at:at] = extra
        return b"".join(line + b"\n" for line in lines)

    def _injects_into(self, from_day: dt.date, to_day: dt.date) -> bool:
        """Whether lines are injected into a day of this range (its answer then carries fault_retry_after)."""
        return any(day in (from_day.isoformat(), to_day.isoformat()) or from_day.isoformat() <= day <= to_day.isoformat()
                   for day, *_ in self._injections)


def active_faults(sim, entry: dict) -> set:
    """The faults this export attempt gets: all of them for its first fault_attempts attempts, then none."""
    return set(sim.faults) if entry["attempt"] <= sim.fault_attempts else set()


def refuse(sim, faults: set, entry: dict) -> None:
    """Raise the 500 or Mixpanel's 429 these faults answer with instead of a body."""
    if "5xx" in faults:
        retry_after = {"Retry-After": str(sim.fault_retry_after)} if sim.fault_retry_after is not None else None
        raise ApiError(500, "simulator: internal server error (injected)", headers=retry_after)
    if "429" in faults:
        message = (f"Export rate limit exceeded for project_id: {PROJECT_ID}. 1/100 requests running concurrently, "
                   f"4/3 requests in the last second and 1/60 requests in the last hour. (injected by the simulator)")
        raise ApiError(429, message, body={"request": entry["path"], "error": message})


def split_lines(lines: list[str]) -> list[str]:
    """Records whose escaped line breaks are real ones, so that a record spans lines."""
    return [line.replace("\\n", "\n") if "\\n" in line else line for line in lines]


def end_body(sim, out, faults: set) -> None:
    """End an export body as the faults say: stalled then cut, cut, `terminated early`, unfinished gzip, or well."""
    if "stall" in faults:
        out.commit()
        sim._stopping.wait(float(sim.stall_seconds))
        out.abort()
    elif "cut" in faults:
        out.abort()
    elif "terminated_early" in faults:
        out.write(b"terminated early\n")
        out.finish()
    elif "gzip_unfinished" in faults:  # ends at a flush point: no final block, no trailer
        out.finish(complete=False)
    else:
        out.finish()


def serve_close_delimited(handler, sim, from_day, to_day, events, limit, entry) -> None:
    """Half the body, plain, with neither a length nor chunks: it ends where the connection closes."""
    lines = [line for _, day_lines in sim._export_days(from_day, to_day, events, limit) for line in day_lines]
    entry["status"] = 200
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.headers_sent = True
    handler.wfile.write("".join(lines[: len(lines) // 2]).encode())
