"""insights (saved Insights reports) and groups (group profiles) through the real command, against the simulator's
ground truth."""

import datetime as dt
import json
from collections import Counter

import jsonschema
import pytest

from integration_tests.harness import configured_catalog, failed_with, run_connector, service_account_config, switched
from integration_tests.oracles import column_map
from integration_tests.simulator import FUNNELS_BOOKMARK, INSIGHTS_REPORTS

REPORTS = sorted(INSIGHTS_REPORTS)  # three breakdown levels, `$overall` at each, unicode values, an empty report
DELETED_REPORT = 61099


def read(tmp_path, sim, config, streams):
    """discover, then read these streams; the simulator's log holds the read's requests only."""
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    catalog = configured_catalog(catalog_message["catalog"], streams)
    schemas = {s["stream"]["name"]: s["stream"]["json_schema"] for s in catalog["streams"]}
    sim.reset_log()
    return run_connector(tmp_path, "read", config, catalog=catalog), schemas


def numbers(record):
    """A number as the tests compare it: where it sits in its report, and its value with its JSON type."""
    return (record["bookmark_id"], record["metric"], json.dumps(record["breakdown"], ensure_ascii=False), record["date"],
            json.dumps(record["value"]))


def truth(sim, bookmark_ids):
    """Every number of these reports, written out from the simulator's series (its `$overall` totals left out)."""
    return Counter(
        (bookmark_id, number["metric"], json.dumps(number["breakdown"], ensure_ascii=False), number["date"],
         json.dumps(number["value"]))
        for bookmark_id in bookmark_ids for number in sim.insights_report(bookmark_id)[1]
    )


def overall_keys(tree):
    return sum((key == "$overall") + (overall_keys(child) if isinstance(child, dict) else 0) for key, child in tree.items())


def test_every_number_of_every_report_arrives_once_with_its_breakdown(tmp_path, sim):
    run, schemas = read(tmp_path, sim, service_account_config(sim, insights_reports=REPORTS), ["insights"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stream_statuses("insights")[-1] == "COMPLETE"
    records = run.records_of("insights")
    assert Counter(map(numbers, records)) == truth(sim, REPORTS)
    assert len(records) == sum(len(sim.insights_report(b)[1]) for b in REPORTS) > 200
    for record in records:
        jsonschema.validate(record, schemas["insights"])
        headers = INSIGHTS_REPORTS[record["bookmark_id"]][0]
        assert list(record["breakdown"]) == headers[1:]  # named by the report's headers, in their order
        assert record["breakdown_key"] == json.dumps(list(record["breakdown"].values()), ensure_ascii=False, separators=(",", ":"))
        assert "$overall" not in record["breakdown"].values() and record["date"] != "$overall"
    keys = [(r["bookmark_id"], r["metric"], r["breakdown_key"], r["date"]) for r in records]
    assert len(set(keys)) == len(keys)  # the primary key holds
    deep = [r for r in records if r["bookmark_id"] == 61002]
    assert {len(r["breakdown"]) for r in deep} == {3} and any(r["breakdown"]["$city"] == "東京" for r in deep)
    assert {r["date"] for r in records if r["bookmark_id"] == 61004} == {"all"}
    assert any(isinstance(r["value"], float) for r in records) and any(isinstance(r["value"], int) for r in records)
    for bookmark_id in REPORTS[:2]:  # the answer's computed_at on each of its numbers
        computed_at = sim.insights_report(bookmark_id)[0]["computed_at"]
        assert {r["computed_at"] for r in records if r["bookmark_id"] == bookmark_id} == {computed_at}
        assert dt.datetime.fromisoformat(computed_at).tzinfo is not None
    # Each report is one query, named by its bookmark_id; the project, and no workspace unless configured.
    calls = sim.requests_to("/api/query/insights")
    assert sorted(int(c["params"]["bookmark_id"]) for c in calls) == REPORTS
    assert all(c["params"]["project_id"] for c in calls) and not any("workspace_id" in c["params"] for c in calls)
    # The totals left out are said, per report, and the empty report says it had nothing.
    for bookmark_id in REPORTS:
        body, expected = sim.insights_report(bookmark_id)
        totals = overall_keys(body["series"])
        line = f"Insights report {bookmark_id}: {len(expected):,} numbers" + (f"; {totals:,} $overall totals left out" if totals else "")
        assert line + "." in run.logs
    assert any(line.startswith("Plan: ") and f"insights {len(REPORTS)}" in line for line in run.logs)


@pytest.mark.parametrize("bad, status", [(DELETED_REPORT, 404), (FUNNELS_BOOKMARK, 400)])
def test_a_report_that_is_gone_or_no_insights_report_fails_only_its_partition(tmp_path, sim, bad, status):
    config = service_account_config(sim, insights_reports=[61001, bad, 61002], group_keys=[2])
    run, _ = read(tmp_path, sim, config, ["insights", "groups"])
    assert run.returncode != 0 and run.stream_statuses("insights")[-1] == "INCOMPLETE"
    (error,) = [e for e in run.errors if e.get("stream_descriptor", {}).get("name") == "insights"]
    assert error["failure_type"] == "config_error"
    assert error["message"].startswith(f"Mixpanel refused Insights report {bad} ({status}: ")
    assert "insights_reports" in error["message"] and "Traceback" not in error["message"]
    assert Counter(map(numbers, run.records_of("insights"))) == truth(sim, [61001, 61002])  # the others land
    assert run.stream_statuses("groups")[-1] == "COMPLETE" and len(run.records_of("groups")) == 40
    refused = [c for c in sim.requests_to("/api/query/insights") if c["params"]["bookmark_id"] == str(bad)]
    assert [c["status"] for c in refused] == [status]  # not retried


def test_the_workspace_goes_with_insights_queries_only(tmp_path, sim):
    config = service_account_config(sim, insights_reports=[61001], insights_workspace_id=3)
    run, _ = read(tmp_path, sim, config, ["insights", "cohorts"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert [c["params"].get("workspace_id") for c in sim.requests_to("/api/query/insights")] == ["3"]
    assert not any("workspace_id" in c["params"] for c in sim.requests if not c["path"].endswith("/insights"))


def expected_groups(sim, data_group_ids):
    names = {name for key in data_group_ids for name in sim.group_property_types(key)}
    columns = column_map(names, reserved=["group_id", "data_group_id", "other_properties"])
    return {
        # group_id is a key, so text: an integer id comes as its decimal text
        (key, str(group["$distinct_id"])): {"group_id": str(group["$distinct_id"]), "data_group_id": key,
                                       **{columns[name]: value for name, value in group["$properties"].items()}}
        for key in data_group_ids for group in sim.group_profiles(key)
    }


def test_group_profiles_equal_the_simulators_over_several_pages(tmp_path, sim):
    run, schemas = read(tmp_path, sim, service_account_config(sim, group_keys=[1, 2], page_size=100), ["groups"])
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records_of("groups")
    expected = expected_groups(sim, [1, 2])
    assert len(records) == len(expected) == 390
    assert {(r["data_group_id"], r["group_id"]): r for r in records} == expected
    for record in records:
        jsonschema.validate(record, schemas["groups"])
    properties = schemas["groups"]["properties"]
    assert properties["name"]["title"] == "$name" and properties["_Name"]["title"] == "Name"  # they meet downstream
    assert properties["NianShang"]["title"] == "年商" and properties["arr"]["type"] == ["null", "number"]
    assert properties["created"]["airbyte_type"] == "timestamp_without_timezone" and properties["churn_risk"] == {}
    # Paged like engage, one query per group key, with the group key and nothing else to filter by.
    calls = sim.requests_to("/api/query/engage")
    pages = {key: [c["params"].get("page") for c in calls if c["params"]["data_group_id"] == key] for key in ("1", "2")}
    assert pages == {"1": [None, "1", "2", "3"], "2": [None]}  # 350 groups in pages of 100, then 40
    assert not any("filter_by_cohort" in c["params"] or "where" in c["params"] for c in calls)
    lookups = sim.requests_to("/api/query/engage/properties")
    assert sorted(c["params"].get("data_group_id") for c in lookups) == ["1", "2"]  # one property lookup per group key
    assert any(line.startswith("Plan: ") and "groups 2," in line and "group property discovery 2" in line for line in run.logs)


def test_a_refused_group_key_fails_with_its_id_and_the_others_land(tmp_path, sim):
    sim.answer("/api/query/engage", {"error": "Invalid data_group_id", "status": "error"}, status=400, when={"data_group_id": "7"})
    run, _ = read(tmp_path, sim, service_account_config(sim, group_keys=[2, 7]), ["groups"])
    assert run.stream_statuses("groups")[-1] == "INCOMPLETE"
    (error,) = [e for e in run.errors if e.get("stream_descriptor", {}).get("name") == "groups"]
    assert error["failure_type"] == "config_error"
    assert error["message"].startswith("Mixpanel refused the group profiles of group key 7 (400: ") and "group_keys" in error["message"]
    assert {(r["data_group_id"], r["group_id"]) for r in run.records_of("groups")} == set(expected_groups(sim, [2]))


@pytest.mark.parametrize("stream, field", [("insights", "insights_reports"), ("groups", "group_keys")])
def test_unconfigured_streams_are_not_offered_and_a_catalog_selecting_one_says_what_to_set(tmp_path, sim, stream, field):
    plain = service_account_config(sim)
    (catalog_message,) = run_connector(tmp_path, "discover", {**plain, field: []}).of_type("CATALOG")
    assert stream not in {s["name"] for s in catalog_message["catalog"]["streams"]}
    (catalog_message,) = run_connector(tmp_path, "discover", {**plain, field: [61001 if stream == "insights" else 1]}).of_type("CATALOG")
    catalog = configured_catalog(catalog_message["catalog"], [stream])
    sim.reset_log()
    run = run_connector(tmp_path, "read", plain, catalog=catalog)
    (error,) = run.errors
    assert error["failure_type"] == "config_error" and run.returncode == 1 and not run.records
    assert error["message"] == f"The catalog selects {stream}, offered only when the config sets {field}: set it, or deselect the stream."
    assert not sim.requests_to("/api/query/insights") and not sim.requests_to("/api/query/engage")


def test_a_plan_without_insights_fails_that_stream_loudly(tmp_path, sim):
    with switched(sim, plan_refuses={"insights"}):
        run, _ = read(tmp_path, sim, service_account_config(sim, insights_reports=[61001, 61002]), ["insights", "annotations"])
    assert run.stream_statuses("insights")[-1] == "INCOMPLETE" and not run.records_of("insights")
    assert {e["failure_type"] for e in run.errors if "402 Payment Required" in e["message"]} == {"config_error"}
    assert run.stream_statuses("annotations")[-1] == "COMPLETE"


# ------------------------------------------------------------------ answers that do not fit the schema
FIRST_DAY = "2024-01-01T00:00:00+00:00"  # the simulator's first date key


@pytest.mark.parametrize("leaves, says", [
    (["12", [1, 2], True, "NaN", 7], f'Insights report 61001 holds "12" (text) at Logged in › {FIRST_DAY} where a number or null belongs'),
    ([{"value": 5}], f"Insights report 61001 holds a value at Logged in › {FIRST_DAY} › value, whose last key is not a date or all"),
    ([{}], f"Insights report 61001 holds {{}} (an object) at Logged in › {FIRST_DAY} where a number or null belongs"),
])
def test_a_report_holding_what_is_no_number_fails_whole_and_the_others_land(tmp_path, sim, leaves, says):
    with switched(sim, insights_odd_leaves=leaves):
        run, schemas = read(tmp_path, sim, service_account_config(sim, insights_reports=[61001, 61002]), ["insights"])
    message = failed_with(run, "insights")
    assert message.startswith(says + ":") and "insights_reports" in message and message.count(". ") == 0
    records = run.records_of("insights")
    assert Counter(map(numbers, records)) == truth(sim, [61002])  # none of 61001, all of the other report
    for record in records:
        jsonschema.validate(record, schemas["insights"])


def test_a_report_whose_numbers_have_no_date_fails_whole(tmp_path, sim):
    with switched(sim, insights_without_dates={61004}):  # metric -> currency -> number
        run, _ = read(tmp_path, sim, service_account_config(sim, insights_reports=[61004, 61002]), ["insights"])
    message = failed_with(run, "insights")
    assert message.startswith("Insights report 61004 holds a value at Purchase › EUR, whose last key is not a date or all:")
    assert Counter(map(numbers, run.records_of("insights"))) == truth(sim, [61002])


def test_a_group_profile_without_an_id_fails_its_group_key(tmp_path, sim):
    with switched(sim, odd_group_ids=[None, None]):
        run, _ = read(tmp_path, sim, service_account_config(sim, group_keys=[1, 2]), ["groups"])
    message = failed_with(run, "groups")
    assert message.startswith("Mixpanel answered a group profile of group key 2 without an id ($distinct_id):")
    assert message.count(". ") == 0
    records = run.records_of("groups")
    assert all(isinstance(r["group_id"], str) for r in records)  # never a null key
    assert {(r["data_group_id"], r["group_id"]) for r in records if r["data_group_id"] == 1} == set(expected_groups(sim, [1]))


def test_integer_group_ids_come_as_their_decimal_text(tmp_path, sim):
    with switched(sim, odd_group_ids=[4, 17]):
        run, schemas = read(tmp_path, sim, service_account_config(sim, group_keys=[2]), ["groups"])
        expected = expected_groups(sim, [2])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stream_statuses("groups")[-1] == "COMPLETE"
    records = run.records_of("groups")
    assert {(r["data_group_id"], r["group_id"]): r for r in records} == expected and len(records) == 40
    assert all(type(r["group_id"]) is str and type(r["data_group_id"]) is int for r in records)
    assert {"4", "17"} <= {r["group_id"] for r in records}
    assert schemas["groups"]["properties"]["group_id"]["type"] == "string"
    for record in records:
        jsonschema.validate(record, schemas["groups"])
