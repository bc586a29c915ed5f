"""What every part of the simulator shares: the project's credentials, the API error, and day helpers."""
from __future__ import annotations

import datetime as dt
import json
import re

SA_USERNAME = "sim-reader.1a2b3c.mp-service-account"
SA_SECRET = "sim-sa-secret-9f8e7d6c"
PROJECT_ID = 2526451
API_SECRET = "sim-project-secret-5b4a3c2d"

GZIP_MIN_BYTES = 1400

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str, text: bool = False, headers=None, body=None):
        super().__init__(message)
        self.status, self.message, self.text = status, message, text
        self.headers, self.body = headers or {}, body


def json_bytes(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_day(value) -> dt.date | None:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def days_between(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)
