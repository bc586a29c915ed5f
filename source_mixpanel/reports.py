"""Report answers as records: funnels and revenue by day, saved Insights reports one number each."""

import json
import logging
import re
from dataclasses import InitVar, dataclass, field
from typing import Any, Iterable, Iterator, List, Mapping, MutableMapping, Tuple

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.answers import answer_text, request_parameters

logger = logging.getLogger("airbyte")


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class DateKeyedExtractor(RecordExtractor):
    """One record per day from an object keyed by date (funnels `data`, revenue `results`).

    Python because the manifest's extractors cannot turn an object's keys into a field. Keys that are not
    days, such as revenue's `$overall`, are totals rather than days and are skipped.
    """

    field_path: List[str]
    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    decoder: Decoder = field(default_factory=lambda: JsonDecoder(parameters={}))

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        for body in self.decoder.decode(response):
            by_day = body
            for key in self.field_path:
                by_day = (by_day or {}).get(key)
            for day, values in (by_day or {}).items():
                if _DAY.match(day):
                    yield {"date": day, **(values or {})}


OVERALL = "$overall"  # Mixpanel's total over the keys beside it


@dataclass
class InsightsNumbers(RecordExtractor):
    """One record per number of a saved Insights report. `series` nests metric -> one level per breakdown -> date
    (or `all`) -> number, as deep as the report's breakdowns go; `headers` names the levels (the first is the
    metric's). Each number becomes {bookmark_id, metric, breakdown: {header: value}, breakdown_key, date, value,
    computed_at}. Every `$overall` key is a total over the keys beside it, not a number of its own, and is left
    out (README, insights); the report's INFO line counts them.

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
                message = (f"Mixpanel answered Insights report {report} with {answer_text(response)}, which holds no "
                           f"series of numbers: the connector cannot read it.")
                raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
            headers = body.get("headers") if isinstance(body.get("headers"), list) else []
            names = _level_names(headers)
            numbers, totals, depths = 0, [0], set()
            for path, value in _numbers(series, (), totals):
                if len(path) < 2:
                    message = f"Insights report {report} holds a number under {path[0]!r} with no date: the connector cannot name it."
                    raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
                depths.add(len(path))
                levels = path[1:-1]
                numbers += 1
                yield {
                    "bookmark_id": int(report) if str(report).isdigit() else report,
                    "metric": path[0],
                    "breakdown": {_level_name(names, n): level for n, level in enumerate(levels)},
                    "breakdown_key": json.dumps(levels, ensure_ascii=False, separators=(",", ":")),
                    "date": path[-1],
                    "value": value,
                    "computed_at": body.get("computed_at"),
                }
            if depths - {len(headers) + 1}:
                logger.warning(f"Insights report {report} nests its numbers {sorted(depths)} levels deep where its headers "
                               f"{headers} name {len(headers) + 1}: breakdown levels without a header are named level_N.")
            logger.info(f"Insights report {report}: {numbers:,} numbers"
                        f"{f'; {totals[0]:,} $overall totals left out' if totals[0] else ''}.")


def _numbers(node: Mapping[str, Any], path: tuple, totals: List[int]) -> Iterator[Tuple[tuple, Any]]:
    """(the keys down to a number, the number) for every number under node; `$overall` keys counted in totals."""
    for key, child in node.items():
        if key == OVERALL:
            totals[0] += 1
        elif isinstance(child, Mapping):
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
