"""Fixtures: a simulator per test module, its request log and switches fresh for each test (helpers: harness.py,
expected values: oracles.py)."""

import pytest

from integration_tests.simulator import MixpanelSimulator


@pytest.fixture(scope="module")
def sim():
    with MixpanelSimulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh_log(request):
    """Each test reads only its own requests; switches a test flips are its own to reset."""
    for name in request.fixturenames:
        if name in ("sim", "capped", "limited", "capped_small"):
            request.getfixturevalue(name).reset_log()
            request.getfixturevalue(name).clear_hostile()
    yield
