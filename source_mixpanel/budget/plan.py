"""The requests a read will send, per budget family, with the least time the budget allows for them.

Python because only the built streams know their partitions (a funnel's windows after its state, one partition
per cohort from the cohorts list); counting them is what the first lines of a read tell the user.
"""

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from airbyte_cdk.sources.streams.concurrent.abstract_stream import AbstractStream

from source_mixpanel.budget.family import Family, duration
from source_mixpanel.budget.request_budget import RequestBudget

# The family each stream's requests go to (the query family otherwise). Engage, cohort members and groups page, and
# only a query's first page takes a place in the hour (Mixpanel does not count the pages after it): one a partition.
# Insights is one request per saved report.
STREAM_FAMILIES = {"export": "export"}
# Asked once per run by the streams that shape their records with it.
DISCOVERY = {"event property discovery": ("export",), "profile property discovery": ("engage", "cohort_members")}


def partitions_of(stream: AbstractStream) -> Optional[List[Mapping[str, Any]]]:
    """The slices a stream will read, or None when they cannot be had (the read will report why)."""
    try:
        return [partition.to_slice() or {} for partition in stream.generate_partitions()]
    except Exception:  # noqa: BLE001 - the stream's own read fails with the real error and message
        return None


def requests_per_stream(slices: Mapping[str, Optional[List[Mapping[str, Any]]]]) -> Dict[str, Tuple[Optional[int], bool]]:
    """stream or purpose -> (requests the budget counts, whether that is only a lower bound); None when unknown."""
    counts: Dict[str, Tuple[Optional[int], bool]] = {}
    for name, stream_slices in slices.items():
        if stream_slices is None:
            counts[name] = (None, True)
        else:
            counts[name] = (len(stream_slices), False)
    if "funnels" in slices:
        counts["funnel list"] = (1, False)
    if "cohort_members" in slices and "cohorts" not in slices:
        counts["cohorts list"] = (1, False)
    for purpose, readers in DISCOVERY.items():
        if any(reader in slices for reader in readers):
            counts[purpose] = (1, False)
    if "groups" in slices:  # one property lookup per group key, a partition each
        counts["group property discovery"] = (None, True) if slices["groups"] is None else (len(slices["groups"]), False)
    return counts


def least_time(requests: int, family: Family) -> float:
    """Seconds the budget needs for this many requests at the least: each window past the first, and the per-second pace."""
    windows = (requests - 1) // family.per_window * family.window if requests > family.per_window else 0.0
    seconds = (requests - 1) / family.per_second if family.per_second and requests > family.per_second else 0.0
    return max(windows, seconds)


def plan_lines(slices: Mapping[str, Optional[List[Mapping[str, Any]]]], budget: RequestBudget) -> List[str]:
    """One line per family that the read will use."""
    by_family: Dict[str, List[Tuple[str, Optional[int], bool]]] = {}
    for name, (count, at_least) in requests_per_stream(slices).items():
        family = STREAM_FAMILIES.get(name, "query")
        by_family.setdefault(family, []).append((name, count, at_least))
    lines = []
    for family in budget.families:
        parts = by_family.get(family.name)
        if not parts:
            continue
        parts.sort(key=lambda part: -(part[1] or 0))
        known = sum(count or 0 for _, count, _ in parts)
        more = any(at_least for _, _, at_least in parts)
        shown = ", ".join(f"{name} {'?' if count is None else ('≥' if at_least else '') + f'{count:,}'}" for name, count, at_least in parts)
        total = f"{known:,} {family.name} requests{' or more' if more else ''}"
        least = least_time(known, family)
        if least:
            lines.append(f"Plan: {total} ({shown}): at {family} this sync needs at least {duration(least)}.")
        else:
            lines.append(f"Plan: {total} ({shown}): within the budget of {family}, no wait unless other clients spend it.")
    return lines


def log_plan(streams: Iterable[AbstractStream], budget: RequestBudget, logger: Any) -> None:
    slices = {stream.name: partitions_of(stream) for stream in streams}
    for line in plan_lines(slices, budget):
        logger.info(line)
