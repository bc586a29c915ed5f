"""Saved states made readable before a cursor reads them: checked, resumed at the start of a day, keyed as the CDK keys funnels."""

import datetime
import json
import logging
from dataclasses import InitVar, dataclass, field
from typing import Any, List, Mapping, Optional

import pytz
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import sync_run
from source_mixpanel.export.history import STORAGE_CHOICES, STORAGE_KEY
from source_mixpanel.failures import config_error

logger = logging.getLogger("airbyte")




def tell_4x_state(stream: str, sentence: str) -> None:
    """One INFO line per stream whose saved state has 4.x's shape, saying how it resumes (the streams are built twice
    a read, for the plan and then the read: one line each)."""
    if sync_run.current().first_time("4.x state", stream):
        logger.info(f"The saved state of {stream} {sentence}")


@dataclass
class SavedStateCheck(StateMigration):
    """Checks a saved state before a cursor reads it: a cursor value that is no time is a config error, and one
    after today in the project's timezone is moved back to today, with one WARN. An export state's saved decision
    on event times that is none of the choices is a config error too, once, before any request.

    Python because the CDK's cursors fail on a value they cannot parse with "Something went wrong", and take a
    future value as it is, after which no sync reads anything again.
    """

    config: Mapping[str, Any]
    parameters: InitVar[Mapping[str, Any]]
    stream: str = ""
    cursor_field: str = ""
    formats: List[str] = field(default_factory=list)

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        return bool(stream_state)

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        state = dict(stream_state)
        self._check_storage(state)
        if self.cursor_field in state:
            state[self.cursor_field] = self._checked(state[self.cursor_field])
        if isinstance(state.get("state"), Mapping) and self.cursor_field in state["state"]:
            state["state"] = {**state["state"], self.cursor_field: self._checked(state["state"][self.cursor_field])}
        if "states" in state:  # per partition (funnels)
            entries = state["states"]
            if not isinstance(entries, list) or not all(isinstance(e, Mapping) and isinstance(e.get("cursor"), Mapping) for e in entries):
                raise self._error("a \"states\" list whose entries are not partitions with a cursor")
            state["states"] = [
                {**e, "cursor": {**e["cursor"], self.cursor_field: self._checked(e["cursor"][self.cursor_field])}}
                if self.cursor_field in e["cursor"] else e
                for e in entries
            ]
        return state

    def _check_storage(self, state: Mapping[str, Any]) -> None:
        """A saved `time_storage` is read only while event_time_storage detects (export.history.ExportRun): then it must be a choice."""
        saved = state.get(STORAGE_KEY)
        if saved is None or (self.config.get("event_time_storage") or "detect") != "detect":
            return
        if not (isinstance(saved, str) and saved in STORAGE_CHOICES):
            message = (f"The saved state of {self.stream} holds {STORAGE_KEY} {json.dumps(saved)[:40]}, which is neither "
                       f"utc nor project_timezone: pass the state a sync emitted, or set event_time_storage.")
            raise config_error(message)

    def _checked(self, value: Any) -> str:
        moment = self._parse(value)
        if moment is None:
            raise self._error(f"{self.cursor_field} {json.dumps(value)[:80]}, which is not a time")
        zone = pytz.timezone(self.config.get("project_timezone") or "US/Pacific")
        today = datetime.datetime.now(zone).replace(tzinfo=None).replace(hour=0, minute=0, second=0, microsecond=0)
        if moment < today + datetime.timedelta(days=1):
            return value
        clamped = today.strftime(self.formats[0])
        if sync_run.current().first_time("future state", self.stream):
            logger.warning(f"The saved state of {self.stream} is in the future ({self.cursor_field} {value}): the sync "
                           f"resumes from {clamped}, today in the project's timezone.")
        return clamped

    def _parse(self, value: Any) -> Optional[datetime.datetime]:
        for datetime_format in self.formats if isinstance(value, str) else ():
            try:
                moment = datetime.datetime.strptime(value, datetime_format)
            except ValueError:
                continue
            return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
        return None

    def _error(self, what: str) -> AirbyteTracedException:
        message = (f"The saved state of {self.stream} holds {what}: pass the state a sync emitted, or reset the "
                   f"stream's state in Airbyte to read it again from start_date.")
        return config_error(message)


@dataclass
class ResumeAtStartOfDay(StateMigration):
    """Moves a saved export state (ours or 4.x, e.g. 2025-06-10T23:31:11Z) to the start of its day.

    Python because the manifest's only declared migration is per-partition: without this, windows would
    start at 23:31:11 and every request would straddle two days.
    """

    parameters: InitVar[Mapping[str, Any]] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        value = stream_state.get("time") if stream_state else None
        return isinstance(value, str) and (not value.endswith("T00:00:00Z") or "read_at" not in stream_state)

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        day = stream_state["time"][:10]
        if "read_at" not in stream_state:  # ours always say when they were read
            tell_4x_state("export", f"holds only a day ({stream_state['time']}), as 4.x saved it: the sync resumes at "
                                    f"{day} less export_lookback_window, and emits those days whole once (their "
                                    f"duplicates merge on dedup_key).")
        return {**stream_state, "time": f"{day}T00:00:00Z"}


@dataclass
class FunnelStatePartitions(StateMigration):
    """Keys a 4.x funnels state the way the CDK keys funnel partitions, so each funnel resumes where it was.

    Python because the manifest's only state migration (LegacyToPerPartitionStateMigration) does not
    convert the 4.x string ids ({"funnel_id": "7"}) into the CDK's ({"funnel_id": 7, "parent_slice": {}}).
    """

    parameters: InitVar[Mapping[str, Any]] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        return any(self._key(entry.get("partition") or {}) != entry.get("partition") for entry in stream_state.get("states") or [])

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        states = [{**entry, "partition": self._key(entry.get("partition") or {})} for entry in stream_state["states"]]
        tell_4x_state("funnels", f"keys its {len(states)} funnels by text IDs, as 4.x saved it: each resumes where "
                                 f"4.x left it, less attribution_window.")
        return {**stream_state, "states": states}

    @staticmethod
    def _key(partition: Mapping[str, Any]) -> Mapping[str, Any]:
        funnel_id = partition.get("funnel_id")
        if isinstance(funnel_id, str) and funnel_id.isdigit():
            funnel_id = int(funnel_id)
        return {"funnel_id": funnel_id, "parent_slice": partition.get("parent_slice") or {}}
