#!/usr/bin/env python3
"""The main job end to end: every stream of a Mixpanel project read through PyAirbyte into a local DuckDB file.

    make demo                      # against the simulator, started here with a month of made-up data
    make demo CONFIG=secrets/config.json     # against a real project

PyAirbyte runs the connector from this checkout's virtual environment, so what the demo shows is what the code
here does. It runs offline (AIRBYTE_OFFLINE_MODE=1: no connector registry) and without telemetry
(DO_NOT_TRACK=1). The DuckDB file stays in demo/out/ for a look afterwards.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Google's cloud libraries, which PyAirbyte imports for caches the demo does not use, warn that they will drop this
# Python version in late 2027: nothing about the demo or the connector, and nothing to do here.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)

import airbyte  # noqa: E402 - after the environment above
import airbyte.types  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.simulator import GROUP_KEYS, INSIGHTS_REPORTS, PROJECT_ID, SA_SECRET, SA_USERNAME, MixpanelSimulator  # noqa: E402

CONNECTOR = Path(sys.executable).parent / "source-mixpanel"
OUT = ROOT / "demo" / "out"
SAMPLE_COLUMNS = 6


def simulator_config(sim: MixpanelSimulator) -> dict:
    """A service account config for the simulator, over the last 30 days, with every optional stream."""
    return {
        "credentials": {"option_title": "Service Account", "username": SA_USERNAME, "secret": SA_SECRET, "project_id": PROJECT_ID},
        "base_url": sim.url,
        "export_base_url": sim.url,
        "project_timezone": "UTC",
        "start_date": (dt.date.today() - dt.timedelta(days=30)).isoformat(),
        # The simulator's saved Insights reports and group keys, so that the optional streams come too.
        "insights_reports": sorted(INSIGHTS_REPORTS),
        "group_keys": sorted(GROUP_KEYS),
    }


def untyped_columns(source) -> list[str]:
    """stream.column for every property whose schema gives no single type (values of several kinds, or only null)."""
    untyped = []
    for stream in source.discovered_catalog.streams:
        for name, schema in stream.json_schema.get("properties", {}).items():
            kinds = schema.get("type", [])
            if len(set([kinds] if isinstance(kinds, str) else kinds) - {"null"}) != 1:
                untyped.append(f"{stream.name}.{name}")
    return untyped


def summary(cache, stream: str, console: Console) -> None:
    """One table per stream: its rows, its columns and their types, and a sample row."""
    table_name = cache.processor.get_sql_table_name(stream)
    with cache.get_sql_engine().connect() as connection:
        rows = connection.execute(text(f'SELECT COUNT(*) FROM {cache.schema_name}."{table_name}"')).scalar()
        columns = [(name, kind) for name, kind in connection.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{cache.schema_name}' AND table_name = '{table_name}' ORDER BY ordinal_position"
        )) if not name.startswith("_airbyte")]
        sample = connection.execute(text(f'SELECT * FROM {cache.schema_name}."{table_name}" LIMIT 1')).mappings().first()
    table = Table(title=f"{stream}: {rows:,} rows, {len(columns)} columns", title_justify="left")
    for name, kind in columns[:SAMPLE_COLUMNS]:
        table.add_column(f"{name}\n[dim]{kind}[/dim]", overflow="ellipsis", max_width=28)
    if len(columns) > SAMPLE_COLUMNS:
        table.add_column(f"... {len(columns) - SAMPLE_COLUMNS} more", overflow="ellipsis", max_width=24)
    if sample:
        cells = [str(sample[name])[:60] for name, _ in columns[:SAMPLE_COLUMNS]]
        table.add_row(*cells, *(["..."] if len(columns) > SAMPLE_COLUMNS else []))
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a config for a real project (the simulator otherwise)")
    args = parser.parse_args(argv)
    console = Console()
    started = time.monotonic()
    simulator = MixpanelSimulator(events_per_day=500, n_profiles=2500) if args.config is None else nullcontext()
    with simulator as sim:
        config = json.loads(args.config.read_text()) if args.config else simulator_config(sim)
        source = airbyte.get_source("source-mixpanel", config=config, local_executable=str(CONNECTOR), streams="*")
        source.check()
        cache = airbyte.new_local_cache(cache_name="mixpanel_demo", cache_dir=str(OUT))
        # PyAirbyte prints a line for each such column of each table it writes; the demo says it once, below.
        airbyte.types.print = lambda *_, **__: None
        result = source.read(cache=cache, force_full_refresh=True)
        untyped = untyped_columns(source)
        for stream in sorted(result.streams):
            summary(cache, stream, console)
    if untyped:
        console.print(f"{len(untyped)} columns hold values of several kinds (or only nulls), so discover gives them no type, "
                      f"and PyAirbyte's cache stores them as text (VARCHAR): {', '.join(untyped)}. There the number 7 "
                      "and the text \"7\" look alike; the connector's records keep each value's JSON "
                      "type, and a warehouse destination gets a JSON column (docs/columns.md).", highlight=False)
    console.print(f"All {len(result.streams)} streams in {cache.db_path} after {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
