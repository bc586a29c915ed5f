"""Airbyte's own standard tests for sources (airbyte_cdk.test.standard_tests), with acceptance-test-config.yml:
spec lint, check with good and bad credentials, discover and its catalog checks, a read of every stream whose
records must match their schemas, a read with a bad catalog, and no secret in any output.

The suite runs the source in process, so `SourceMixpanel` is built here the way the `source-mixpanel` command
builds it: with the scenario's config. The sample configs name 127.0.0.1:8123, where a user may be running a
simulator by hand; the suite's own simulator takes a free port and every scenario's config is pointed at it. Its image tests need a Docker engine; where none answers they are skipped
and `make image` builds and smoke-tests the image instead.
"""

import json
import shutil
import subprocess
from typing import Any

import pytest
from airbyte_cdk.test import standard_tests
from airbyte_cdk.test.models.scenario import ConnectorTestScenario

from integration_tests.simulator import MixpanelSimulator
from source_mixpanel.source import SourceMixpanel

def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


_DOCKER = _docker_engine_answers()


@pytest.fixture(autouse=True)
def _image_tests_need_an_engine(request):
    if request.node.get_closest_marker("image_tests") and not _DOCKER:
        pytest.skip("no Docker engine answers `docker info`; `make image` builds and smoke-tests the image")


@pytest.fixture(scope="module", autouse=True)
def simulator():
    with MixpanelSimulator() as sim, pytest.MonkeyPatch.context() as patch:
        read_config = ConnectorTestScenario.get_config_dict

        def config_at_simulator(scenario, **kwargs: Any) -> dict:
            config = read_config(scenario, **kwargs)
            return {**config, "base_url": sim.url, "export_base_url": sim.url} if "base_url" in config else config

        patch.setattr(ConnectorTestScenario, "get_config_dict", config_at_simulator)
        yield sim


class TestStandardSuite(standard_tests.SourceTestSuiteBase):
    connector_name = "source-mixpanel"

    @classmethod
    def create_connector(cls, scenario):
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True) if scenario else None
        return SourceMixpanel(config=config or None)



def test_the_suite_leaves_the_sample_port_to_a_simulator_started_by_hand(simulator):
    """sample_files/*.json name 127.0.0.1:8123, where the README starts a simulator; the suite must not need that port."""
    sample = json.loads((TestStandardSuite.get_connector_root_dir() / "sample_files" / "config.json").read_text())
    scenario = ConnectorTestScenario(config_path="sample_files/config.json")
    config = scenario.get_config_dict(connector_root=TestStandardSuite.get_connector_root_dir(), empty_if_missing=False)
    assert sample["base_url"] == "http://127.0.0.1:8123" and simulator.port != 8123
    assert (config["base_url"], config["export_base_url"]) == (simulator.url, simulator.url)
    assert {key: value for key, value in config.items() if not key.endswith("base_url")} == {
        key: value for key, value in sample.items() if not key.endswith("base_url")
    }
