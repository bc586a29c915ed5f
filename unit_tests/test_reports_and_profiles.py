"""The Insights flattening and the group profile shape, each on its own, on answers the simulator does not give."""

import json
import logging

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import profiles
from source_mixpanel.profiles import ProfileShape
from source_mixpanel.properties.names import PropertyNames
from source_mixpanel.reports import DateKeyedExtractor, InsightsNumbers


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


DAY = "2025-01-01T00:00:00-07:00"


@pytest.mark.parametrize("body, says", [
    ({"headers": ["$event"]}, "Mixpanel answered Insights report 5 with "),
    ({"headers": ["$event"], "series": {"A": 5}}, "Insights report 5 holds a value at A, whose last key is not a date or all: "),
    ({"headers": ["$event", "$browser"], "series": {"A": {"Chrome": 5}}},
     "Insights report 5 holds a value at A › Chrome, whose last key is not a date or all: "),
    ({"headers": ["$event"], "series": {"A": {DAY: {"value": 5}}}},
     f"Insights report 5 holds a value at A › {DAY} › value, whose last key is not a date or all: "),
    ({"headers": ["$event"], "series": {"A": {DAY: "12"}}}, f'Insights report 5 holds "12" (text) at A › {DAY} where a number or null belongs: '),
    ({"headers": ["$event"], "series": {"A": {"all": "NaN"}}}, 'Insights report 5 holds "NaN" (text) at A › all where a number or null belongs: '),
    ({"headers": ["$event"], "series": {"A": {DAY: True}}}, f"Insights report 5 holds true (a boolean) at A › {DAY} where a number"),
    ({"headers": ["$event"], "series": {"A": {DAY: [1, 2]}}}, f"Insights report 5 holds [1,2] (a list) at A › {DAY} where a number"),
    ({"headers": ["$event", "$browser"], "series": {"A": {"Chrome": {"all": {}}}}},
     "Insights report 5 holds {} (an object) at A › Chrome › all where a number or null belongs: "),
    ({"headers": ["$event"], "series": {"A": {DAY: 1, "2025-01-02": "x" * 100}}},
     f'Insights report 5 holds "{"x" * 58}… (text) at A › 2025-01-02 where a number'),
])
def test_an_answer_that_does_not_fit_fails_the_report_whole_and_says_what(body, says):
    extractor = InsightsNumbers(config={}, parameters={}).extract_records(answer(body))
    with pytest.raises(AirbyteTracedException) as raised:
        next(extractor)  # not even the numbers before the odd one
    assert raised.value.message.startswith(says) and raised.value.failure_type == FailureType.system_error


def test_a_metric_or_segment_without_numbers_gives_none_and_no_error():
    series = {"A": {"Chrome": {}, "Safari": {"$overall": {DAY: 3}, "Zürich": {DAY: 3}}, "Edge": {"$overall": {}}}, "B": {}}
    records = flattened({"headers": ["$event", "$browser", "$city"], "series": series})
    assert [(r["metric"], r["breakdown_key"], r["date"], r["value"]) for r in records] == [("A", '["Safari","Zürich"]', DAY, 3)]


@pytest.mark.parametrize("date", ["all", "2025-01-01", "2025-01-01T00:00:00", "2025-01-01T05:00:00Z", DAY, "2025-01-01 05:00:00+0900"])
def test_dates_as_mixpanel_may_write_them_are_dates(date):
    (record,) = flattened({"headers": ["$event"], "series": {"A": {date: 1}}})
    assert record["date"] == date


@pytest.mark.parametrize("body", [{}, {"data": None}, {"data": [{"date": "2025-01-01"}]}, {"meta": {}, "data": "2025-01-01"}])
def test_a_funnel_answer_without_its_days_fails_its_window(body):
    response = answer(body)
    response.request = requests.Request("GET", "https://mixpanel.com/api/query/funnels?funnel_id=7&from_date=2025-01-01&to_date=2025-01-02").prepare()
    extractor = DateKeyedExtractor(field_path=["data"], config={}, parameters={}, stream="funnels").extract_records(response)
    with pytest.raises(AirbyteTracedException) as raised:
        next(extractor)
    assert raised.value.message.startswith("Mixpanel answered funnel 7 for 2025-01-01..2025-01-02 with ")
    assert ", which holds no data by day: " in raised.value.message and raised.value.message.endswith("deselect the funnels stream.")


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


@pytest.mark.parametrize("kind, profile, partition, says", [
    ("group", {"$properties": {"$name": "Acme"}}, {"data_group_id": 2},
     "Mixpanel answered a group profile of group key 2 without an id ($distinct_id): "),
    ("group", {"$distinct_id": None, "$group_id": None, "$properties": {}}, {"data_group_id": 2}, "Mixpanel answered a group profile of group key 2 without an id"),
    ("group", {"$distinct_id": True, "$properties": {}}, {"data_group_id": 2},
     "Mixpanel answered a group profile of group key 2 whose id is true, neither text nor an integer: "),
    ("group", {"$distinct_id": 4.5, "$properties": {}}, {"data_group_id": 1}, "Mixpanel answered a group profile of group key 1 whose id is 4.5, neither"),
    ("group", {"$distinct_id": ["a"], "$properties": {}}, {"data_group_id": 1}, 'whose id is ["a"], neither text nor an integer'),
    ("profile", {"$properties": {}}, {"cohort_id": 4410}, "Mixpanel answered a member of cohort 4410 without an id ($distinct_id): "),
    ("profile", {"$distinct_id": {"id": 1}, "$properties": {}}, None, 'Mixpanel answered an engage profile whose id is {"id": 1}, neither'),
])
def test_a_profile_without_an_id_as_text_or_integer_fails_its_read(monkeypatch, kind, profile, partition, says):
    monkeypatch.setattr(profiles, "property_names", lambda kind, requester, config: PropertyNames(["$name"], reserved=[]))
    shape = ProfileShape(config={}, properties_requester=None, parameters={}, kind=kind)
    with pytest.raises(AirbyteTracedException) as raised:
        shape.transform(dict(profile), stream_slice=partition)
    assert says in raised.value.message and raised.value.failure_type == FailureType.system_error
    assert raised.value.message.count(". ") == 0 and ("group_keys" in raised.value.message) == (kind == "group")


@pytest.mark.parametrize("kind, id_column", [("group", "group_id"), ("profile", "distinct_id")])
@pytest.mark.parametrize("identifier, text", [(4, "4"), (0, "0"), (-7, "-7"), (2**64 + 7, "18446744073709551623"),
                                              ("", ""), ("4", "4"), ("04", "04")])
def test_a_profile_id_is_text_and_an_integer_id_its_decimal_text(monkeypatch, kind, id_column, identifier, text):
    monkeypatch.setattr(profiles, "property_names", lambda kind, requester, config: PropertyNames([], reserved=[]))
    record = {"$distinct_id": identifier, "$properties": {}}
    ProfileShape(config={}, properties_requester=None, parameters={}, kind=kind, id_column=id_column).transform(record)
    assert record == {id_column: text} and type(record[id_column]) is str
