"""Airbyte's own standard tests for sources (airbyte_cdk.test.standard_tests), with acceptance-test-config.yml:
spec lint, check with good and bad credentials, discover and its catalog checks, a read of every stream whose
records must match their schemas, a read with a bad catalog, and no secret in any output.

The suite runs the source in process, so `SourceMixpanel` is built here the way the `source-mixpanel` command
builds it: with the scenario's config. Its image tests need a Docker engine; where none answers they are skipped
and `make image` builds and smoke-tests the image instead.
"""

import shutil
import subprocess

import pytest
from airbyte_cdk.test import standard_tests

from integration_tests.simulator import MixpanelSimulator
from source_mixpanel.source import SourceMixpanel

SAMPLE_PORT = 8123  # the address sample_files/*.json name


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
    with MixpanelSimulator(port=SAMPLE_PORT) as sim:
        yield sim


class TestStandardSuite(standard_tests.SourceTestSuiteBase):
    connector_name = "source-mixpanel"

    @classmethod
    def create_connector(cls, scenario):
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True) if scenario else None
        return SourceMixpanel(config=config or None)

