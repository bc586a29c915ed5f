"""The expected values the integration tests compare with, computed from the simulator's ground truth by rules written
out independently of the connector (docs/streams.md): the dedup key, the column names, the export's records."""

import datetime as dt
import hashlib
import json
import re
import zlib

from anyascii import anyascii

def dedup_key(event):
    """docs/streams.md's formula (Duplicates), written out independently of the connector: BLAKE2b-128 (hex) of the compact JSON
    array [event, distinct_id, time in whole seconds, $insert_id]; without $insert_id, of a zero byte and the whole
    event as compact JSON with sorted keys."""
    properties = event["properties"]
    if properties.get("$insert_id") is not None:
        material = json.dumps([event["event"], properties.get("distinct_id"), int(properties["time"]),
                               properties["$insert_id"]], separators=(",", ":"), ensure_ascii=False).encode()
    else:
        material = b"\0" + json.dumps(event, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def column_map(names, first=(), reserved=()):
    """The naming rule, written out independently of the connector: `first` names, then the rest sorted; `$`
    dropped and other letters spelled in ASCII; a name whose lower-case, underscored form meets an earlier one's
    (or a reserved one's) gets `_`."""

    def key(column):
        key = re.sub(r"[^a-z0-9]", "_", column.lower())
        return "_" + key if key[:1].isdigit() else key

    columns, taken = {}, {key(name) for name in reserved}
    for raw in [n for n in first if n in names] + sorted(set(names) - set(first)):
        column = anyascii(raw[1:] if raw.startswith("$") else raw)
        if not re.search(r"[A-Za-z0-9]", column):
            column = f"property_{zlib.crc32(raw.encode()):08x}"
        while key(column) in taken:
            column = "_" + column
        taken.add(key(column))
        columns[raw] = column
    return columns


FIRST_PROPERTIES = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")


def expected_records(sim, first, last, events=None, keep_undiscovered=True):
    columns = column_map(sim.event_property_names(), first=FIRST_PROPERTIES, reserved=["event", "dedup_key"])
    records = []
    for event in sim.export_truth(first, last, events):
        record = {"event": event["event"], "dedup_key": dedup_key(event)}
        for name, value in event["properties"].items():
            if name in columns:
                record[columns[name]] = value
            elif keep_undiscovered:  # under its own name, with the others discovery did not list
                record.setdefault("other_properties", {})[name] = value
        record["time"] = dt.datetime.fromtimestamp(event["properties"]["time"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append(record)
    return records
