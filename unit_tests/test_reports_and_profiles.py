"""The Insights flattening and the group profile shape, each on its own, on answers the simulator does not give."""

import json
import logging

import pytest
import requests
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import profiles
from source_mixpanel.profiles import ProfileShape
from source_mixpanel.properties import PropertyNames
from source_mixpanel.reports import InsightsNumbers


def answer(body, bookmark_id=5):
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response.request = requests.Request("GET", f"https://mixpanel.com/api/query/insights?project_id=1&bookmark_id={bookmark_id}").prepare()
    return response


def flattened(body, **kwargs):
    return list(InsightsNumbers(config={}, parameters={}).extract_records(answer(body, **kwargs)))


def test_any_depth_is_named_by_the_headers_and_every_overall_is_left_out(caplog):
    series = {"$overall": {"all": 99},
              "Logged in": {"$overall": {"all": 9},
                            "Chrome": {"$overall": {"all": 4}, "Zürich": {"$overall": {"all": 4}, "pro": {"all": 3}, "free": {"all": 1}}},
                            "Firefox": {"東京": {"pro": {"all": 5}}}}}
    with caplog.at_level(logging.INFO, logger="airbyte"):
        records = flattened({"computed_at": "2025-01-01T00:00:00+00:00", "headers": ["$event", "$browser", "$city", "plan"], "series": series})
    assert [(r["breakdown"], r["breakdown_key"], r["value"]) for r in records] == [
        ({"$browser": "Chrome", "$city": "Zürich", "plan": "pro"}, '["Chrome","Zürich","pro"]', 3),
        ({"$browser": "Chrome", "$city": "Zürich", "plan": "free"}, '["Chrome","Zürich","free"]', 1),
        ({"$browser": "Firefox", "$city": "東京", "plan": "pro"}, '["Firefox","東京","pro"]', 5),
    ]
    assert all(r["bookmark_id"] == 5 and r["metric"] == "Logged in" and r["date"] == "all" for r in records)
    assert "Insights report 5: 3 numbers; 4 $overall totals left out." in caplog.messages


def test_values_keep_their_json_types_and_a_report_without_breakdowns_has_an_empty_one():
    records = flattened({"headers": ["$event"], "series": {"A": {"2025-01-01T00:00:00-07:00": 2, "2025-01-02T00:00:00-07:00": 2.5,
                                                                  "2025-01-03T00:00:00-07:00": None}}})
    assert [(r["breakdown"], r["breakdown_key"], r["date"], r["value"]) for r in records] == [
        ({}, "[]", "2025-01-01T00:00:00-07:00", 2), ({}, "[]", "2025-01-02T00:00:00-07:00", 2.5), ({}, "[]", "2025-01-03T00:00:00-07:00", None)]
    assert type(records[0]["value"]) is int and records[0]["computed_at"] is None


def test_levels_the_headers_do_not_name_are_kept_named_by_place_with_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="airbyte"):
        records = flattened({"headers": ["$event", "$os"], "series": {"A": {"iOS": {"17": {"all": 1}}}}})
    assert records[0]["breakdown"] == {"$os": "iOS", "level_2": "17"} and records[0]["breakdown_key"] == '["iOS","17"]'
    assert any("nests its numbers [4] levels deep" in message for message in caplog.messages)


def test_a_header_that_comes_twice_keeps_both_levels():
    (record,) = flattened({"headers": ["$event", "price", "price"], "series": {"A": {"10-20": {"15": {"all": 1}}}}})
    assert record["breakdown"] == {"price": "10-20", "price (level 2)": "15"}


@pytest.mark.parametrize("body, says", [
    ({"headers": ["$event"]}, "holds no series of numbers"),
    ({"headers": ["$event"], "series": {"A": 5}}, "holds a number under 'A' with no date"),
])
def test_an_answer_that_cannot_be_named_fails_loudly(body, says):
    with pytest.raises(AirbyteTracedException) as raised:
        flattened(body)
    assert says in raised.value.message and "Insights report 5" in raised.value.message


@pytest.mark.parametrize("profile, group_id", [
    ({"$distinct_id": "acme", "$properties": {"$name": "Acme"}}, "acme"),  # as Mixpanel's engage answers
    ({"$group_id": "acme", "$properties": {"$name": "Acme"}}, "acme"),  # an answer keyed the way group updates are
])
def test_a_group_profile_takes_its_id_from_where_the_answer_puts_it(monkeypatch, profile, group_id):
    names = PropertyNames(["$name"], reserved=["group_id", "data_group_id"])
    monkeypatch.setattr(profiles, "property_names", lambda kind, requester, config: names)
    shape = ProfileShape(config={}, properties_requester=None, parameters={}, kind="group", id_column="group_id")
    record = dict(profile)
    shape.transform(record)
    assert record == {"group_id": group_id, "name": "Acme"}
