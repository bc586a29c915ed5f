"""sample_files/: the configs and catalogs a CLI user copies run as they are and set the sync modes the docs recommend."""

import json
from pathlib import Path

import pytest

from integration_tests.harness import run_connector

SAMPLES = Path(__file__).resolve().parents[1] / "sample_files"
PAIRS = [("config.json", "configured_catalog.json"),
         ("config_with_insights_and_groups.json", "configured_catalog_with_insights_and_groups.json")]


def recommended(stream: dict) -> dict:
    """Incremental, deduped on the source's key, where the stream can; otherwise full refresh, overwrite."""
    key = {"primary_key": stream["source_defined_primary_key"]}
    if "incremental" in stream["supported_sync_modes"]:
        return {"sync_mode": "incremental", "destination_sync_mode": "append_dedup",
                "cursor_field": stream["default_cursor_field"], **key}
    return {"sync_mode": "full_refresh", "destination_sync_mode": "overwrite", **key}


def sample_config(name: str, sim) -> dict:
    return {**json.loads((SAMPLES / name).read_text()), "base_url": sim.url, "export_base_url": sim.url}


@pytest.mark.parametrize("config_name, catalog_name", PAIRS)
def test_every_sample_stream_uses_the_recommended_mode_and_the_discovered_key(tmp_path, sim, config_name, catalog_name):
    (catalog,) = run_connector(tmp_path, "discover", sample_config(config_name, sim)).of_type("CATALOG")
    discovered = {stream["name"]: stream for stream in catalog["catalog"]["streams"]}
    sample = json.loads((SAMPLES / catalog_name).read_text())["streams"]

    assert {chosen["stream"]["name"] for chosen in sample} == set(discovered)
    for chosen in sample:
        stream = discovered[chosen["stream"]["name"]]
        assert {key: value for key, value in chosen.items() if key != "stream"} == recommended(stream), stream["name"]
        assert chosen["stream"].get("source_defined_primary_key") == stream["source_defined_primary_key"], stream["name"]


@pytest.mark.parametrize("config_name, catalog_name", PAIRS)
def test_each_sample_pair_reads_every_stream_of_its_catalog(tmp_path, sim, config_name, catalog_name):
    catalog = json.loads((SAMPLES / catalog_name).read_text())
    names = [chosen["stream"]["name"] for chosen in catalog["streams"]]
    run = run_connector(tmp_path, "read", sample_config(config_name, sim), catalog)
    assert run.returncode == 0 and not run.errors
    assert [run.stream_statuses(name)[-1] for name in names] == ["COMPLETE"] * len(names)
    assert {record["stream"] for record in run.records} == set(names)
    events = run.records_of("export")
    assert len({event["dedup_key"] for event in events}) == len(events) > 0
