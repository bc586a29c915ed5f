"""Every stream through PyAirbyte into DuckDB, as a notebook reads them: two reads, the second incremental.

PyAirbyte runs the real `source-mixpanel` command of this environment, offline and without telemetry.
"""

import ast
import contextlib
import io
import json
import os
import re
from decimal import Decimal
from collections import Counter

import pytest

os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["COLUMNS"] = "1000"  # PyAirbyte's warnings on one line each

import airbyte  # noqa: E402 - after the environment above
from sqlalchemy import text  # noqa: E402

from integration_tests.harness import CONNECTOR, service_account_config  # noqa: E402
from integration_tests.oracles import FIRST_PROPERTIES, column_map  # noqa: E402

FIRST, LAST = "2025-04-01", "2025-04-03"
REPORTS, GROUP_KEYS = [61001, 61002, 61004], [1, 2]  # the optional streams too: saved Insights reports, group profiles


def table(cache, stream):
    """The rows of a stream's table, each a dict, and its columns with their DuckDB types."""
    name = cache.processor.get_sql_table_name(stream)
    with cache.get_sql_engine().connect() as connection:
        rows = [dict(row) for row in connection.execute(text(f'SELECT * FROM {cache.schema_name}."{name}"')).mappings()]
        types = dict(connection.execute(text(
            f"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '{cache.schema_name}' "
            f"AND table_name = '{name}'")).fetchall())
    return rows, types


@pytest.fixture(scope="module")
def loaded(sim, tmp_path_factory):
    """Two reads into one DuckDB cache: the first from start_date, the second incremental from the first's state."""
    config = service_account_config(sim, start_date=FIRST, end_date=LAST, insights_reports=REPORTS, group_keys=GROUP_KEYS)
    source = airbyte.get_source("source-mixpanel", config=config, local_executable=CONNECTOR, streams="*")
    cache = airbyte.new_local_cache(cache_name="mixpanel", cache_dir=str(tmp_path_factory.mktemp("duckdb")))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # PyAirbyte prints its type warnings (rich, wrapped at COLUMNS)
        first = {name: len(dataset) for name, dataset in source.read(cache=cache).streams.items()}
    catalog = {stream.name: stream.json_schema for stream in source.discovered_catalog.streams}
    first_tables = {stream: table(cache, stream)[0] for stream in first}
    sim.reset_log()
    second = {name: len(dataset) for name, dataset in source.read(cache=cache).streams.items()}
    second_exports = Counter(r["params"]["from_date"] for r in sim.requests_to("/api/2.0/export"))
    return cache, first, first_tables, second, second_exports, catalog, printed.getvalue()


def test_every_stream_loads_with_every_record(sim, loaded):
    cache, first, tables = loaded[:3]
    events = sim.export_truth(FIRST, LAST)
    assert first == {
        "export": len(events), "engage": len(sim.profiles()), "cohorts": len(sim.cohorts()),
        "cohort_members": sum(len(sim.cohort_members(c["id"])) for c in sim.cohorts()),
        "funnels": len(sim.funnels()) * 3, "revenue": 3, "annotations": len(sim.annotations()),
        "insights": sum(len(sim.insights_report(report)[1]) for report in REPORTS),
        "groups": sum(len(sim.group_profiles(key)) for key in GROUP_KEYS),
    }
    # Non-ASCII property names got columns PyAirbyte can name, and each value stayed with its property.
    by_id = {e["properties"]["$insert_id"]: e["properties"] for e in events}
    russian = [row for row in tables["export"] if row["klyuch"] is not None]
    assert russian and all(row["klyuch"] == by_id[row["insert_id"]]["ключ"] for row in russian)
    assert all(row["ki"] == by_id[row["insert_id"]].get("키") for row in tables["export"])
    rare = [row for row in tables["export"] if row["other_properties"] and "$rare_prop" in row["other_properties"]]
    assert len(rare) == sum("$rare_prop" in e for e in by_id.values()) > 0  # undiscovered, and not lost
    # Every number of the saved reports, unicode breakdowns included, in the row its primary key names.
    numbers = {(row["bookmark_id"], row["metric"], row["breakdown_key"], row["date"]): float(row["value"]) for row in tables["insights"]}
    assert numbers == {(report, n["metric"], json.dumps(list(n["breakdown"].values()), ensure_ascii=False, separators=(",", ":")),
                        n["date"]): float(n["value"]) for report in REPORTS for n in sim.insights_report(report)[1]}


def test_columns_have_their_types(loaded):
    cache = loaded[0]
    expected = {
        "export": {"time": "TIMESTAMP", "mp_processing_time_ms": "BIGINT", "insert_id": "VARCHAR", "other_properties": "JSON"},
        "engage": {"last_seen": "TIMESTAMP", "is_paying": "BOOLEAN", "plan": "JSON", "favorite_tags": "JSON"},
        "funnels": {"funnel_id": "BIGINT", "date": "DATE", "steps": "JSON"},
        "revenue": {"date": "DATE", "count": "BIGINT"},
        "cohorts": {"id": "BIGINT", "count": "BIGINT"},
        "insights": {"bookmark_id": "BIGINT", "breakdown": "JSON", "breakdown_key": "VARCHAR", "date": "VARCHAR",
                     "value": "DECIMAL(38,9)", "computed_at": "TIMESTAMP"},
        "groups": {"data_group_id": "BIGINT", "group_id": "VARCHAR", "name": "VARCHAR", "_name": "VARCHAR", "nianshang": "DECIMAL(38,9)",
                   "created": "TIMESTAMP", "hq": "JSON"},
    }
    for stream, columns in expected.items():
        _, types = table(cache, stream)
        assert {column: types.get(column) for column in columns} == columns, stream


def test_the_second_read_is_incremental(sim, loaded):
    cache, first, _, second, exports = loaded[:5]
    # The lookback re-reads five days (here from start_date); what Mixpanel had already given comes out no more,
    # and the cache merges on the primary keys: every table still holds exactly what the simulator does.
    assert exports == {FIRST: 1, "2025-04-02": 1, LAST: 1}
    assert second == first
    rows, types = table(cache, "export")
    assert types["dedup_key"] == "VARCHAR"
    assert sorted(row["insert_id"] for row in rows) == sorted(e["properties"]["$insert_id"] for e in sim.export_truth(FIRST, LAST))
    assert len({row["dedup_key"] for row in rows}) == len(rows)


DUCKDB_TYPES = {"integer": "BIGINT", "number": "DECIMAL(38,9)", "boolean": "BOOLEAN", "string": "VARCHAR",
                "object": "JSON", "array": "JSON"}


def duckdb_type(schema):
    """The DuckDB column a property's declared schema should give; None for a schema without one type."""
    if schema.get("format") == "date-time":
        return "TIMESTAMP"
    kinds = [kind for kind in ([schema["type"]] if isinstance(schema.get("type"), str) else schema.get("type") or [])
             if kind != "null"]
    return DUCKDB_TYPES[kinds[0]] if len(kinds) == 1 else None


def test_every_property_of_one_kind_lands_in_a_typed_column(sim, loaded):
    cache, catalog, printed = loaded[0], loaded[5], loaded[6]
    export = catalog["export"]["properties"]
    kinds = {name: duckdb_type(export[column]) for name, column in column_map(
        sim.event_property_names(), first=FIRST_PROPERTIES, reserved=["event", "dedup_key"]).items() if column in export}
    # Each trap of the simulator's data typed as its values are (docs/columns.md).
    assert {name: kinds[name] for name in ("score", "weight", "price", "big_number", "account_id", "trial_ends", "cart",
                                           "tags", "coupon", "invited", "build_number", "referrer", "mixed_list")} == {
        "score": "BIGINT", "weight": "DECIMAL(38,9)", "price": "DECIMAL(38,9)", "big_number": "BIGINT",
        "account_id": "DECIMAL(38,9)", "trial_ends": "TIMESTAMP", "cart": "JSON", "tags": "JSON", "coupon": "VARCHAR",
        "invited": "BOOLEAN", "build_number": "BIGINT", "referrer": None, "mixed_list": "JSON"}
    for stream in ("export", "engage", "cohort_members", "groups"):
        _, types = table(cache, stream)
        for column, schema in catalog[stream]["properties"].items():
            assert types[column.lower()] == (duckdb_type(schema) or "VARCHAR"), (stream, column)
    # sum(price) without a cast, exact against the simulator's events.
    with cache.get_sql_engine().connect() as connection:
        total = connection.execute(text(f'SELECT sum(price) FROM {cache.schema_name}."{cache.processor.get_sql_table_name("export")}"')).scalar()
    assert total == sum(Decimal(str(e["properties"]["price"])) for e in sim.export_truth(FIRST, LAST) if "price" in e["properties"])
    # PyAirbyte's warnings only for the columns no one type describes: the ones Mixpanel's data gives two kinds or none.
    untyped = {json.dumps(schema, sort_keys=True) for stream in catalog.values() for schema in stream["properties"].values()
               if duckdb_type(schema) is None}
    warned = [ast.literal_eval(found) for found in re.findall(r"Could not determine airbyte type from JSON schema: (.*)", printed)]
    assert warned and {json.dumps(schema, sort_keys=True) for schema in warned} <= untyped
