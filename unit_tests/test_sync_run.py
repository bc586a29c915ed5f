"""Per-run state (sync_run.py): two sources built in one process share none of it."""

import logging
from unittest import mock

import pytest
import requests
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import sync_run
from source_mixpanel.answers import AnswerCheck
from source_mixpanel.budget.family import quiet_for, sign_of_life
from source_mixpanel.export import history
from source_mixpanel.properties import columns, discovery
from source_mixpanel.source import SourceMixpanel
from source_mixpanel.state_migrations import tell_4x_state

CONFIG = {"credentials": {"option_title": "Project Secret", "api_secret": "x"}, "project_timezone": "UTC",
          "start_date": "2025-04-01", "end_date": "2025-04-03"}


def expired_engage_page() -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = 400, b'{"error": "session expired"}'
    response.request = requests.Request("POST", "https://mixpanel.com/api/query/engage",
                                        data={"session_id": "s1", "page": "3"}).prepare()
    response.url = response.request.url
    return response


def discovery_answer(answer: dict) -> mock.Mock:
    response = mock.Mock(status_code=200, json=lambda: answer)
    return mock.Mock(send_request=mock.Mock(return_value=response))


def test_each_source_begins_a_run_of_its_own_that_every_component_reads():
    first = SourceMixpanel(config=CONFIG)
    assert sync_run.current() is first.run and history.current(CONFIG) is first.run.export is first.export_run
    second = SourceMixpanel(config=CONFIG)
    assert sync_run.current() is second.run is not first.run
    assert history.current(CONFIG) is second.export_run is not first.export_run


def test_a_second_source_allows_the_engage_restart_again():
    check = AnswerCheck(config=CONFIG, parameters={})
    SourceMixpanel(config=CONFIG)
    assert check.interpret_response(expired_engage_page()).response_action == ResponseAction.RESET_PAGINATION
    with pytest.raises(AirbyteTracedException, match="expired again"):
        check.interpret_response(expired_engage_page())
    SourceMixpanel(config=CONFIG)
    assert check.interpret_response(expired_engage_page()).response_action == ResponseAction.RESET_PAGINATION


def test_a_second_source_says_its_once_only_lines_again(caplog):
    caplog.set_level(logging.INFO, logger="airbyte")
    for _ in range(2):
        SourceMixpanel(config=CONFIG)
        tell_4x_state("funnels", "has 4.x's shape.")
        tell_4x_state("funnels", "has 4.x's shape.")
    assert [r.getMessage() for r in caplog.records].count("The saved state of funnels has 4.x's shape.") == 2


def test_a_second_source_asks_discovery_again_and_keeps_no_columns_or_quiet_clock():
    SourceMixpanel(config=CONFIG)
    discovery.declare_types()
    first = discovery.property_names("profile", discovery_answer({"results": {"plan": {}}}), CONFIG)
    columns.stream_columns("engage", first)
    sign_of_life()
    assert discovery.property_names("profile", discovery_answer({"results": {"tier": {}}}), CONFIG) is first

    run = SourceMixpanel(config=CONFIG).run
    assert not run.types_wanted.is_set() and not run.stream_columns and run.last_sign_of_life == float("-inf")
    second = discovery.property_names("profile", discovery_answer({"results": {"tier": {}}}), CONFIG)
    assert second is not first and "tier" in second.columns and "plan" not in second.columns
    assert quiet_for() < 60
