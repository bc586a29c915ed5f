"""engage, cohorts and cohort_members through the real command, against the simulator's ground truth."""

import jsonschema
import pytest

from integration_tests.harness import configured_catalog, run_connector, service_account_config, switched
from integration_tests.oracles import column_map
from integration_tests.simulator import MixpanelSimulator


def expected_profiles(sim, profiles, cohort_id=None):
    columns = column_map(sim.engage_property_types(), reserved=["distinct_id", "cohort_id"])
    out = {}
    for profile in profiles:
        record = {"distinct_id": profile["$distinct_id"]}
        record.update({columns[k]: v for k, v in profile["$properties"].items()})
        if cohort_id is not None:
            record["cohort_id"] = cohort_id
        out[(cohort_id, profile["$distinct_id"])] = record
    return out


def read(tmp_path, config, streams, state=None, sync_mode="incremental"):
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    catalog = configured_catalog(catalog_message["catalog"], streams, sync_mode)
    schemas = {s["stream"]["name"]: s["stream"]["json_schema"] for s in catalog["streams"]}
    return run_connector(tmp_path, "read", config, catalog=catalog, state=state), schemas


@pytest.fixture(scope="module")
def capped():
    """A few thousand profiles, and a server that caps pages below the configured size."""
    with MixpanelSimulator(n_profiles=2500, max_page_size=400) as simulator:
        yield simulator


def engage_calls(sim):
    return sim.requests_to("/api/query/engage")


def test_every_profile_exactly_once_with_its_types_over_capped_pages(tmp_path, capped):
    run, schemas = read(tmp_path, service_account_config(capped, page_size=1000), ["engage"])
    records = run.records_of("engage")
    assert len(records) == len({r["distinct_id"] for r in records}) == 2500
    assert {r["distinct_id"]: r for r in records} == {k[1]: v for k, v in expected_profiles(capped, capped.profiles()).items()}
    for record in records:
        jsonschema.validate(record, schemas["engage"])
    calls = engage_calls(capped)
    assert [c["params"].get("page") for c in calls] == [None, "1", "2", "3", "4", "5", "6"]  # 6 full pages of 400, one short
    session = calls[0]["params"].get("session_id")
    assert session is None and len({c["params"]["session_id"] for c in calls[1:]}) == 1
    assert all("where" not in c["params"] for c in calls)  # the first sync reads every profile
    assert any("last_seen" not in r for r in records)  # profiles never seen are included
    properties = schemas["engage"]["properties"]
    assert properties["last_seen"]["airbyte_type"] == "timestamp_without_timezone"
    assert properties["lifetime_value"]["type"] == ["null", "number"] and properties["is_paying"]["type"] == ["null", "boolean"]
    assert properties["favorite_tags"]["type"] == ["null", "array"] and properties["plan"]["type"] == ["null", "object"]
    assert properties["mixed_value"] == {}  # Mixpanel says "unknown"
    assert {"username", "_userName"} <= set(properties)


@pytest.mark.parametrize(
    "saved, bound",
    [
        ({"last_seen": "2026-08-23T23:47:00"}, "2026-08-18T23:47:00"),  # a 4.x state, minus the 5-day attribution window
        ({"last_seen": "2024-12-01T10:00:00"}, "2024-11-26T10:00:00"),
    ],
)
def test_incremental_sends_the_where_bound_from_state(tmp_path, capped, saved, bound):
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "engage"}, "stream_state": saved}}]
    run, _ = read(tmp_path, service_account_config(capped), ["engage"], state=state)
    calls = engage_calls(capped)
    assert calls and all(c["params"]["where"] == f'properties["$last_seen"] >= "{bound}"' for c in calls)
    wanted = [p for p in capped.profiles() if p["$properties"].get("$last_seen", "") >= bound]
    assert sorted(r["distinct_id"] for r in run.records_of("engage")) == sorted(p["$distinct_id"] for p in wanted)


def test_our_own_state_resumes_with_a_bound(tmp_path, capped):
    first, _ = read(tmp_path, service_account_config(capped, attribution_window=0), ["engage"])
    saved = first.of_type("STATE")[-1]["state"]
    newest = max(r["last_seen"] for r in first.records_of("engage") if "last_seen" in r)
    assert saved["stream"]["stream_state"] == {"last_seen": newest}
    capped.reset_log()
    read(tmp_path, service_account_config(capped, attribution_window=0), ["engage"], state=[saved])
    assert {c["params"]["where"] for c in engage_calls(capped)} == {f'properties["$last_seen"] >= "{newest}"'}


def test_cohorts_and_members_match_the_simulator(tmp_path, sim):
    state = [  # a 4.x per-partition state is accepted and ignored
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "cohort_members"},
                                      "stream_state": {"states": [{"partition": {"id": 1, "parent_slice": {}}, "cursor": {"last_seen": "2026-01-01T00:00:00"}}]}}},
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "cohorts"}, "stream_state": {"created": "2026-01-01 00:00:00"}}},
    ]
    run, schemas = read(tmp_path, service_account_config(sim), ["cohorts", "cohort_members"], state=state, sync_mode="full_refresh")
    assert run.returncode == 0, run.stderr[-2000:]
    cohorts = run.records_of("cohorts")
    assert sorted(cohorts, key=lambda c: c["id"]) == sorted(
        sim.cohorts(), key=lambda c: c["id"]
    )
    expected = {}
    for cohort in sim.cohorts():
        expected.update(expected_profiles(sim, sim.cohort_members(cohort["id"]), cohort_id=cohort["id"]))
    members = run.records_of("cohort_members")
    assert len(members) == len(expected) and {(m["cohort_id"], m["distinct_id"]): m for m in members} == expected
    for member in members:
        jsonschema.validate(member, schemas["cohort_members"])
    filters = {c["params"]["filter_by_cohort"] for c in sim.requests_to("/api/query/engage")}
    assert filters == {f'{{"id": {c["id"]}}}' for c in sim.cohorts()}
    # The cohorts list as Mixpanel documents it (POST), asked once: the plan, cohorts and cohort_members share it.
    assert [c["method"] for c in sim.requests_to("/api/query/cohorts/list")] == ["POST"]


def test_a_plan_without_cohorts_fails_those_streams_loudly_and_lands_the_rest(tmp_path, sim):
    config = service_account_config(sim, start_date="2025-03-01", end_date="2025-03-02")
    with switched(sim, plan_refuses={"cohorts"}):
        run, _ = read(tmp_path, config, ["cohorts", "cohort_members", "engage", "export"], sync_mode="full_refresh")
    assert run.returncode != 0
    for stream in ("cohorts", "cohort_members"):
        assert run.stream_statuses(stream)[-1] == "INCOMPLETE"
        assert not run.records_of(stream)
    for stream in ("engage", "export"):
        assert run.stream_statuses(stream)[-1] == "COMPLETE"
    assert len(run.records_of("engage")) == sim.n_profiles
    assert len(run.records_of("export")) == 2 * sim.events_per_day
    plan_errors = [e for e in run.errors if "402 Payment Required" in e["message"]]
    assert plan_errors and all(e["failure_type"] == "config_error" for e in plan_errors)
    assert "deselect" in plan_errors[0]["message"]
