"""Region -> hosts, as the manifest's config transformations derive them (docs/configuration.md, 'Regions')."""

import pytest
import yaml
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString

from source_mixpanel.manifest import manifest_path

RULES = yaml.safe_load(manifest_path().read_text())["spec"]["config_normalization_rules"]["transformations"]
HOSTS = {field["path"][0]: field["value"] for rule in RULES for field in rule.get("fields", [])
         if field["path"] in (["query_host"], ["export_host"])}


def host(name, config):
    return InterpolatedString.create(HOSTS[name], parameters={}).eval(config)


@pytest.mark.parametrize(
    "region, query, export",
    [
        ("US", "https://mixpanel.com", "https://data.mixpanel.com"),
        ("EU", "https://eu.mixpanel.com", "https://data-eu.mixpanel.com"),
        ("IN", "https://in.mixpanel.com", "https://data-in.mixpanel.com"),
        (None, "https://mixpanel.com", "https://data.mixpanel.com"),
    ],
)
def test_region_picks_hosts(region, query, export):
    config = {"region": region} if region else {}
    assert host("query_host", config) == query
    assert host("export_host", config) == export


def test_base_urls_win_over_region_and_lose_a_trailing_slash():
    config = {"region": "EU", "base_url": "http://127.0.0.1:8123/", "export_base_url": "https://proxy.example:8443"}
    assert host("query_host", config) == "http://127.0.0.1:8123"
    assert host("export_host", config) == "https://proxy.example:8443"


def test_empty_base_url_falls_back_to_region():
    assert host("query_host", {"region": "IN", "base_url": ""}) == "https://in.mixpanel.com"
