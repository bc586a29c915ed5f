"""Mixpanel's export body, line by line, read the same way by the body check and by the decoder.

The body check reads every line before any record goes out; the decoder reads the records; one reader means
both judge a line the same way.

Python because no manifest decoder rejoins records split over lines, tells a body that broke off from one that
ended, or fails on a line that is not an event (JsonlDecoder logs and skips it).
"""

import datetime
import json
import zlib
from typing import IO, Any, Iterable, Iterator, List, Optional, Tuple

import orjson

# The longest run of lines one record may span when text values hold raw line breaks.
MAX_LINES_PER_RECORD = 64
BOM = b"\xef\xbb\xbf"
_UNPARSED = object()
# orjson reads an integer beyond 64 bits as a float, silently: a line with a run of 19 digits or more (every such
# integer has one) is read by the standard library, whose integers are exact. One translate finds the runs.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
LONG_DIGITS = b"0" * 19


class BrokenBody(Exception):
    """The body broke off: `terminated early`, or it ended in the middle of a record. Asking again may help."""


class NotAnEvent(Exception):
    """A line that is JSON but not an event, or not JSON at all. Its content is never repeated: it is personal data."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"line {line}: {what}")
        self.line, self.what = line, what


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of a gzip stream of one or more members; BrokenBody when it stops before its last member ends
    (a stream cut at a flush point, which urllib3 takes as whole)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for raw in chunks:
        while raw:
            if decompressor.eof:  # another member follows
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = decompressor.decompress(raw)
            raw = decompressor.unused_data if decompressor.eof else b""
            if data:
                yield data
    if not decompressor.eof:
        raise BrokenBody("ended before the end of its gzip stream")


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a body given in chunks, without their line breaks."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def spooled_lines(spool: IO[bytes]) -> Iterator[bytes]:
    """The lines of a body spooled gzipped (export.body.ExportBodyCheck), from its start."""
    spool.seek(0)
    yield from split_lines(gunzip(iter(lambda: spool.read(1 << 15), b"")))


def unix_time(value: Any) -> Optional[float]:
    """Mixpanel's `time` as Unix seconds: a number, a number in a string, or an ISO time with its offset; None
    for anything ambiguous (an ISO time without an offset) or that is no time at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


def event_problem(value: Any) -> Optional[str]:
    """Why a parsed line is not an event, in words that hold none of its content; None when it is one."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__.replace('NoneType', 'null').replace('dict', 'object')} where an event belongs"
    if "event" not in value:
        return "an error object where an event belongs" if "error" in value else "an object without an event name"
    properties = value.get("properties")
    if not isinstance(properties, dict):
        return "properties that are not an object"
    if unix_time(properties.get("time")) is None:
        return "a time that is missing or not a Unix time"
    return None


def has_long_digits(data: bytes) -> bool:
    """Whether the bytes hold a run of 19 digits or more: an integer there may be beyond 64 bits."""
    return LONG_DIGITS in data.translate(_DIGITS_AS_ZEROS)


def _parse(lines: List[bytes], exact_integers: bool = False) -> Tuple[Any, bool, bool]:
    """One JSON value from a line or a run of lines (a record a raw line break split), whether bytes that are not
    UTF-8 were read as U+FFFD, and whether it may hold an integer beyond 64 bits (read exactly when asked);
    _UNPARSED when they do not parse."""
    data = lines[0] if len(lines) == 1 else b"\n".join(lines)
    wide = exact_integers and has_long_digits(data)
    if not wide:
        try:
            return orjson.loads(data), False, False
        except orjson.JSONDecodeError:
            pass
    try:
        text, replaced = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, replaced = data.decode("utf-8", "replace"), True
    try:
        # strict=False takes raw line breaks and control characters in text values as they are.
        return json.loads(text, strict=False), replaced, wide
    except ValueError:
        return _UNPARSED, False, False


def events(lines: Iterable[bytes], exact_integers: bool = False) -> Iterator[Tuple[int, dict, bool, bool]]:
    """(line number, event, whether it held bytes read as U+FFFD, whether it may hold an integer beyond 64 bits)
    for every event in the body's lines; `exact_integers` reads such integers exactly (the decoder; the body check
    needs no values).

    A BOM and blank lines are skipped, records split over lines rejoined. Raises NotAnEvent for a line that is
    not an event, BrokenBody when the body says it was cut (`terminated early`) or ends inside a record.
    """
    pending: List[bytes] = []
    start = 0
    loads, JSONDecodeError, digits_as_zeros = orjson.loads, orjson.JSONDecodeError, _DIGITS_AS_ZEROS
    for number, line in enumerate(lines, start=1):
        # The common case, kept short: one whole event on its line, no integer that orjson would read inexactly.
        if not pending and number > 1 and not (exact_integers and LONG_DIGITS in line.translate(digits_as_zeros)):
            try:
                value = loads(line)
            except JSONDecodeError:
                value = None
            if type(value) is dict and "event" in value:
                properties = value.get("properties")
                if type(properties) is dict and type(properties.get("time")) in (int, float):
                    yield number, value, False, False
                    continue
        line = line.rstrip(b"\r\n")
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        if not pending:
            if not line.strip():
                continue
            start = number
        pending.append(line)
        value, replaced, wide = _parse(pending, exact_integers)
        if value is _UNPARSED:
            if len(pending) == 1 and b"terminated early" in line.lower():
                raise BrokenBody(f"said 'terminated early' at line {number}")
            alone = _parse([line])[0] if len(pending) > 1 else _UNPARSED
            if len(pending) >= MAX_LINES_PER_RECORD or (isinstance(alone, dict) and "event" in alone):
                raise NotAnEvent(start, "a line that is not JSON")
            continue
        problem = event_problem(value)
        if problem:
            raise NotAnEvent(start, problem)
        pending = []
        yield start, value, replaced, wide
    if pending:
        raise BrokenBody(f"ended in the middle of a record (line {start})")
