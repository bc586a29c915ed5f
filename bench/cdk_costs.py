#!/usr/bin/env python3
"""What the CDK's per-record steps cost on this machine, each against what would do the same (bench/README.md).

    .venv/bin/python bench/cdk_costs.py
"""
import datetime
import subprocess
import sys
import timeit

from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.sources.utils.transform import TransformConfig, TypeTransformer

N = 200_000


def per_call(statement) -> float:
    """Microseconds a call, the best of 3 runs of N."""
    return min(timeit.repeat(statement, number=N, repeat=3)) / N * 1e6


class _CachedHash:
    """A slice whose hash was computed once, as an immutable slice could keep it."""

    def __init__(self, value: int) -> None:
        self._hash = value

    def __hash__(self) -> int:
        return self._hash


def main() -> None:
    window = StreamSlice(partition={}, cursor_slice={"start_time": "2025-03-01T00:00:00Z", "end_time": "2025-03-01T23:59:59Z"})
    cached = _CachedHash(hash(window))
    parser = DatetimeParser()
    record = {f"property_{i}": i for i in range(20)}
    no_transform = TypeTransformer(TransformConfig.NoTransform)
    rows = [
        ("StreamSlice.__hash__ (json.dumps + sha256), per observe", per_call(lambda: hash(window)),
         "a hash computed once per slice (slices are immutable)", per_call(lambda: hash(cached))),
        ("DatetimeParser.parse ISO with %Y-%m-%dT%H:%M:%SZ (strptime)",
         per_call(lambda: parser.parse("2025-03-01T10:11:12Z", "%Y-%m-%dT%H:%M:%SZ")),
         "datetime.fromisoformat for that format", per_call(lambda: datetime.datetime.fromisoformat("2025-03-01T10:11:12Z"))),
        ("RecordSelector._normalize_by_schema with NoTransform: dict copy + transform", per_call(lambda: no_transform.transform(dict(record), {"type": "object"})),
         "passing the record through when normalization is NoTransform", 0.0),
    ]
    print(f"{'CDK step':<75} {'us':>6}   {'instead':<62} {'us':>6}")
    for what, cost, instead, instead_cost in rows:
        print(f"{what:<75} {cost:>6.2f}   {instead:<62} {instead_cost:>6.2f}")
    start_up = subprocess.run([sys.executable, "-X", "importtime", "-c", "import airbyte_cdk.models"], capture_output=True, text=True)
    lines = [line for line in start_up.stderr.splitlines() if "airbyte_protocol_serializers" in line]
    if lines:
        microseconds = int(lines[-1].split("|")[1])
        print(f"importing airbyte_cdk.models.airbyte_protocol_serializers (serpyco-rs builds its serializers): {microseconds / 1e6:.2f} s")


if __name__ == "__main__":
    main()
