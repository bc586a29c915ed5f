"""The configured catalog is the contract at read: a value of its column's kind lands there, any other goes to
other_properties exact, a deselected property never comes out; compared with the simulator's truth, value by value."""

import datetime as dt
import json
import re

from integration_tests.harness import configured_catalog, run_connector, service_account_config, switched
from integration_tests.oracles import column_map, dedup_key

EXPORT_FIRST = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")


def fits(value, schema):
    """Whether a value belongs in a column of this JSON schema, written out independently of the connector."""
    declared = schema.get("type")
    if declared is None:
        return True
    declared = [declared] if isinstance(declared, str) else declared
    if value is None:
        return "null" in declared
    if isinstance(value, bool):
        return "boolean" in declared
    if isinstance(value, int):
        return "number" in declared or ("integer" in declared and -2 ** 63 <= value < 2 ** 63)
    if isinstance(value, float):
        return "number" in declared
    if isinstance(value, str):
        if schema.get("airbyte_type") == "timestamp_without_timezone":
            return bool(_TIMESTAMP.fullmatch(value))
        return "string" in declared
    return {dict: "object", list: "array"}[type(value)] in declared


def placed(properties, columns, declared, misfits, computed=()):
    """The record's columns and other_properties as the catalog `declared` (column -> schema) orders them."""
    record = {}
    for name, value in properties.items():
        column = columns.get(name)
        if column is not None and column not in declared and column not in computed:
            continue  # deselected
        if column is not None and (column in computed or fits(value, declared[column])):
            record[column] = value
        else:
            if column is not None:
                misfits[name] = misfits.get(name, 0) + 1
            record.setdefault("other_properties", {})[name] = value
    return record


def export_truth(sim, first, last, declared, misfits):
    columns = column_map(sim.event_property_names(), first=EXPORT_FIRST, reserved=["event", "dedup_key"])
    records = []
    for event in sim.export_truth(first, last):
        record = {"event": event["event"], "dedup_key": dedup_key(event),
                  **placed(event["properties"], columns, declared, misfits, computed=("time",))}
        record["time"] = dt.datetime.fromtimestamp(event["properties"]["time"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append(record)
    return sorted(records, key=lambda r: r["insert_id"])


def discovered(sim, tmp_path, config):
    run = run_connector(tmp_path, "discover", config)
    return {"streams": [m["catalog"] for m in run.of_type("CATALOG")][0]["streams"]}


def test_export_values_land_by_their_kind_and_deselected_properties_never_come_out(sim, tmp_path):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02")
    catalog = configured_catalog(discovered(sim, tmp_path, config), ["export"])
    declared = catalog["streams"][0]["stream"]["json_schema"]["properties"]
    declared["price"] = {"type": ["null", "integer"]}  # the data holds 19.99 and 1234.5 beside 5
    del declared["browser"]  # deselected in the UI
    run = run_connector(tmp_path, "read", config, catalog)
    assert run.returncode == 0 and not run.errors
    misfits = {}
    expected = export_truth(sim, "2025-03-01", "2025-03-02", declared, misfits)
    assert sorted(run.records_of("export"), key=lambda r: r["insert_id"]) == expected
    assert misfits["price"] > 0 and all("browser" not in r and "$browser" not in r.get("other_properties", {})
                                        for r in run.records_of("export"))
    warnings = [line for line in run.logs if "where the catalog declares" in line]
    assert len(warnings) == len(misfits) and (
        "The event property 'price' holds a number with a fraction where the catalog declares an integer of 64 bits: such "
        "values go to other_properties under 'price', exact; the next schema refresh widens the column.") in warnings
    (complete,) = [line for line in run.logs if line.startswith("Stream export complete")]
    plural = "y" if len(misfits) == 1 else "ies"
    assert complete.endswith(f"; {sum(misfits.values()):,} values of {len(misfits)} propert{plural} did not fit their "
                             f"columns' types and went to other_properties.")
    assert "Stream export: 1 property deselected in the catalog is left out of its records ($browser)." in run.logs


def test_profile_values_keep_their_declared_type_or_move_to_other_properties(sim, tmp_path):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02")
    catalog = configured_catalog(discovered(sim, tmp_path, config), ["engage"])
    declared = catalog["streams"][0]["stream"]["json_schema"]["properties"]
    assert declared["orders"]["type"] == ["null", "number"]  # engage/properties says number
    declared["orders"] = {"type": ["null", "boolean"]}  # every value misfits
    del declared["email"]
    run = run_connector(tmp_path, "read", config, catalog)
    assert run.returncode == 0 and not run.errors
    columns = column_map(sim.engage_property_types(), first=["$last_seen"], reserved=["distinct_id", "cohort_id"])
    misfits = {}
    expected = sorted(({"distinct_id": p["$distinct_id"], **placed(p["$properties"], columns, declared, misfits)}
                       for p in sim.profiles()), key=lambda r: r["distinct_id"])
    assert sorted(run.records_of("engage"), key=lambda r: r["distinct_id"]) == expected
    assert misfits["orders"] == len(sim.profiles()) and all("email" not in r for r in expected)
    assert ("The profile property 'orders' holds an integer where the catalog declares true/false: such values go to "
            "other_properties under 'orders', exact; the next schema refresh widens the column.") in run.logs


def test_a_catalog_whose_schema_lists_no_properties_keeps_every_value_as_it_comes(sim, tmp_path):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-01")
    catalog = configured_catalog(discovered(sim, tmp_path, config), ["export"])
    catalog["streams"][0]["stream"]["json_schema"] = {}  # a hand-written catalog
    run = run_connector(tmp_path, "read", config, catalog)
    assert run.returncode == 0 and not run.errors
    columns = column_map(sim.event_property_names(), first=EXPORT_FIRST, reserved=["event", "dedup_key"])
    untyped = {column: {} for column in columns.values()}
    misfits = {}
    assert sorted(run.records_of("export"), key=lambda r: r["insert_id"]) == export_truth(
        sim, "2025-03-01", "2025-03-01", untyped, misfits)
    assert not misfits and not any("where the catalog declares" in line for line in run.logs)
    assert json.dumps(run.records_of("export")).count("other_properties") == sum(
        "$rare_prop" in e["properties"] for e in sim.export_truth("2025-03-01", "2025-03-01"))


def test_a_property_that_changes_kind_after_the_sample_keeps_every_value_exactly_once_across_two_syncs(sim, tmp_path):
    """build_number is an integer in the sample week and text from 2025-03-19: the first sync's catalog says integer,
    the second sync (no new discover, as Airbyte runs it) meets text. Merged on dedup_key as append + deduped does,
    every value of every event is in its column or in other_properties, once."""
    with switched(sim, today="2025-03-17", kind_change_from="2025-03-19"):
        config = service_account_config(sim, start_date="2025-03-10", end_date="2025-03-17")
        catalog = configured_catalog(discovered(sim, tmp_path, config), ["export"], sync_mode="incremental")
        declared = catalog["streams"][0]["stream"]["json_schema"]["properties"]
        assert declared["build_number"] == {"type": ["null", "integer"]}
        first = run_connector(tmp_path, "read", config, catalog)
        assert first.returncode == 0 and not first.errors
        assert not any("where the catalog declares" in line for line in first.logs)
        sim.configure(today="2025-03-20")
        second = run_connector(tmp_path, "read", {**config, "end_date": "2025-03-20"}, catalog, state=[first.states[-1]])
        assert second.returncode == 0 and not second.errors
        truth = {dedup_key(e): e for e in sim.export_truth("2025-03-10", "2025-03-20")}
    warehouse = {}
    for record in first.records_of("export") + second.records_of("export"):
        warehouse[record["dedup_key"]] = record
    assert set(warehouse) == set(truth)
    columns = column_map(sim.event_property_names(), first=EXPORT_FIRST, reserved=["event", "dedup_key"])
    moved = 0
    for key, event in truth.items():
        record = warehouse[key]
        for name, value in event["properties"].items():
            if name == "time":
                continue
            in_column = columns.get(name) in record and record[columns[name]] == value and type(record[columns[name]]) is type(value)
            in_other = name in record.get("other_properties", {}) and record["other_properties"][name] == value
            assert in_column != in_other, (key, name)  # exactly once
            moved += in_other and name == "build_number"
    texts = sum(isinstance(e["properties"].get("build_number"), str) for e in truth.values())
    assert moved == texts > 0
    assert ("The event property 'build_number' holds text where the catalog declares an integer of 64 bits: such values go "
            "to other_properties under 'build_number', exact; the next schema refresh widens the column.") in second.logs
