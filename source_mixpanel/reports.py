"""Report answers as records: funnels and revenue by day, saved Insights reports one number each."""

import json
import logging
import re
from dataclasses import InitVar, dataclass, field
from typing import Any, Iterable, Iterator, List, Mapping, MutableMapping, NoReturn, Tuple

import requests
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor

from source_mixpanel.answers import answer_text, request_parameters
from source_mixpanel.failures import system_error

logger = logging.getLogger("airbyte")


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


OVERALL = "$overall"  # Mixpanel's total over the keys beside it


@dataclass
class DateKeyedExtractor(RecordExtractor):
    """One record per day from an object keyed by date (funnels `data`, revenue `results`). `$overall`, revenue's
    total over the days beside it, is not a day and is left out; an answer holding any other key, a day whose value
    is not an object, or no such object at all fails its window whole, with what did not fit.

    Revenue answers, for example (funnels hold `{"steps": [...], "analysis": {...}}` under each day of `data`):
        {"computed_at": "2025-03-03T10:00:00+00:00", "status": "ok", "results": {
            "$overall": {"amount": 12.5, "count": 4, "paid_count": 2},
            "2025-03-01": {"amount": 12.5, "count": 4, "paid_count": 2}}}
    and becomes one record, {"date": "2025-03-01", "amount": 12.5, "count": 4, "paid_count": 2, ...}.

    Python because the manifest's extractors cannot turn an object's keys into a field.
    """

    field_path: List[str]
    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    stream: str = ""  # the stream's name, for the advice when an answer does not fit
    decoder: Decoder = field(default_factory=lambda: JsonDecoder(parameters={}))

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        asked = request_parameters(response.request)
        subject = f"funnel {asked['funnel_id']}" if asked.get("funnel_id") else self.stream
        window = f" for {asked['from_date']}..{asked['to_date']}" if asked.get("from_date") else ""
        answered = f"Mixpanel answered {subject}{window}"
        where = " › ".join(self.field_path)
        unread = (f": the connector reads none of this window rather than guess; if Mixpanel keeps answering so, "
                  f"deselect the {self.stream} stream.")
        for body in self.decoder.decode(response):
            by_day = body
            for key in self.field_path:
                by_day = by_day.get(key) if isinstance(by_day, Mapping) else None
            if not isinstance(by_day, Mapping):
                _unreadable(f"{answered} with {answer_text(response)}, which holds no {where} by day{unread}")
            records = []
            for day, values in by_day.items():
                if day == OVERALL:
                    continue
                if not _DAY.match(day):
                    _unreadable(f"{answered} with the key {json.dumps(day, ensure_ascii=False)[:60]} in {where}, which is "
                                f"neither a day (YYYY-MM-DD) nor {OVERALL}{unread}")
                if not isinstance(values, Mapping):
                    _unreadable(f"{answered} with {_shown(values)} for the day {day} in {where}, where an object "
                                f"belongs{unread}")
                records.append({"date": day, **values})
            yield from records  # only once the whole answer fits, as a saved Insights report


@dataclass
class InsightsNumbers(RecordExtractor):
    """One record per number of a saved Insights report. `series` nests metric -> one level per breakdown -> date
    (or `all`) -> number, as deep as the report's breakdowns go; `headers` names the levels (the first is the
    metric's). Each number becomes {bookmark_id, metric, breakdown: {header: value}, breakdown_key, date, value,
    computed_at}. Every `$overall` key is a total over the keys beside it, not a number of its own, and is left
    out (docs/streams.md, insights); the report's INFO line counts them. A report holding anything else (a value that is
    not a number or null, a number whose last key is not a date or `all`) fails whole, with what did not fit.

    A report broken down by browser answers, for example:
        {"computed_at": "...", "date_range": {...}, "headers": ["$event", "$browser"], "series": {
            "Signed up": {"$overall": {"all": 9}, "Chrome": {"2025-03-01T00:00:00+00:00": 7}, "Safari": {...}}}}
    and the 7 becomes {"metric": "Signed up", "breakdown": {"$browser": "Chrome"}, "date": "2025-03-01...", "value": 7, ...}.

    Python because the manifest's extractors cannot walk a nesting of any depth or name its levels from the
    answer's own headers.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    decoder: Decoder = field(default_factory=lambda: JsonDecoder(parameters={}))

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        report = request_parameters(response.request).get("bookmark_id", "?")
        for body in self.decoder.decode(response):
            series = body.get("series") if isinstance(body, dict) else None
            if not isinstance(series, dict):
                _unreadable(f"Mixpanel answered Insights report {report} with {answer_text(response)}, which holds no "
                            f"series of numbers: the connector cannot read it.")
            headers = body.get("headers") if isinstance(body.get("headers"), list) else []
            names = _level_names(headers)
            records, totals, depths = [], [0], set()
            for path, value in _numbers(series, (), totals):
                _check_number(report, path, value)
                depths.add(len(path))
                levels = path[1:-1]
                records.append({
                    "bookmark_id": int(report) if str(report).isdigit() else report,
                    "metric": path[0],
                    "breakdown": {_level_name(names, n): level for n, level in enumerate(levels)},
                    "breakdown_key": json.dumps(levels, ensure_ascii=False, separators=(",", ":")),
                    "date": path[-1],
                    "value": value,
                    "computed_at": body.get("computed_at"),
                })
            if depths - {len(headers) + 1}:
                logger.warning(f"Insights report {report} nests its numbers {sorted(depths)} levels deep where its headers "
                               f"{headers} name {len(headers) + 1}: breakdown levels without a header are named level_N.")
            logger.info(f"Insights report {report}: {len(records):,} numbers"
                        f"{f'; {totals[0]:,} $overall totals left out' if totals[0] else ''}.")
            yield from records  # only once the whole report fits: a report is read whole or not at all


_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_JSON_KINDS = ((bool, "a boolean"), (str, "text"), (list, "a list"), (dict, "an object"), ((int, float), "a number"))
_UNREAD = (": the connector reads none of the report rather than guess a date or change a value; check the report in "
           "Mixpanel, or leave it out of insights_reports.")


def _check_number(report: str, path: tuple, value: Any) -> None:
    """Fails the report unless this is a number (or null) under a date or `all`: the only shape the schema holds."""
    where = " › ".join(path)
    if not _number_place(path):
        _unreadable(f"Insights report {report} holds a value at {where}, whose last key is not a date or all{_UNREAD}")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        _unreadable(f"Insights report {report} holds {_shown(value)} at {where} where a number or null belongs{_UNREAD}")


def _shown(value: Any) -> str:
    """A JSON value as an error shows it, cut at 60 characters, and its kind: `"12" (text)`, `[1,2] (a list)`, `null`."""
    shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    return shown if value is None else f"{shown} ({next(name for kind, name in _JSON_KINDS if isinstance(value, kind))})"


def _number_place(path: tuple) -> bool:
    """Whether the keys down to a value end where a number belongs: at a date or `all`, below a metric."""
    return len(path) >= 2 and (path[-1] == "all" or bool(_DATE_KEY.match(path[-1])))


def _unreadable(message: str) -> NoReturn:
    raise system_error(message)


def _numbers(node: Mapping[str, Any], path: tuple, totals: List[int]) -> Iterator[Tuple[tuple, Any]]:
    """(the keys down to a number, the number) for every number under node; `$overall` keys counted in totals."""
    for key, child in node.items():
        if key == OVERALL:
            totals[0] += 1
        elif isinstance(child, Mapping) and (child or not _number_place(path + (key,))):
            # {} under a metric or breakdown value is a segment without numbers, as a report matching nothing has an
            # empty series: nothing to emit; {} under a date stands where a number belongs and fails the report.
            yield from _numbers(child, path + (key,), totals)
        else:
            yield path + (key,), child


def _level_names(headers: List[Any]) -> List[str]:
    """The breakdown levels' names (headers after the metric's), a name that comes twice told apart by its place."""
    names: List[str] = []
    for place, header in enumerate(headers[1:], start=1):
        name = str(header)
        names.append(name if name not in names else f"{name} (level {place})")
    return names


def _level_name(names: List[str], level: int) -> str:
    return names[level] if level < len(names) else f"level_{level + 1}"
