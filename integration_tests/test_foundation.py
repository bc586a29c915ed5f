"""spec, check and config handling through the real command, against the simulator."""

import base64
import json

import jsonschema
import pytest

from integration_tests.harness import project_secret_config, run_connector, service_account_config, switched
from integration_tests.simulator import API_SECRET, PROJECT_ID, SA_SECRET, SA_USERNAME

# Saved configs of the 4.x connector, as Airbyte stores them.
SAVED_4X_CONFIGS = [
    {
        "credentials": {"option_title": "Service Account", "username": "svc.reader", "secret": "abc", "project_id": 2526451},
        "attribution_window": 5,
        "project_timezone": "US/Pacific",
        "select_properties_by_default": True,
        "start_date": "2024-01-01T00:00:00Z",
        "region": "EU",
        "date_window_size": 30,
        "page_size": 1000,
        "export_lookback_window": 0,
        "num_workers": 3,
    },
    {"credentials": {"option_title": "Project Secret", "api_secret": "f00"}, "start_date": "2024-01-01", "end_date": ""},
    {"credentials": {"username": "svc", "secret": "x", "project_id": 7}, "region": "US"},
]


def spec_of(run):
    (spec,) = run.of_type("SPEC")
    return spec["spec"]["connectionSpecification"]


def test_spec_validates_saved_4x_configs_unchanged(tmp_path):
    run = run_connector(tmp_path, "spec")
    assert run.returncode == 0, run.stderr
    schema = spec_of(run)
    for config in SAVED_4X_CONFIGS:
        jsonschema.validate(config, schema)
    assert schema["properties"]["region"]["enum"] == ["US", "EU", "IN"]
    secrets = {"secret", "api_secret"}
    for option in schema["properties"]["credentials"]["oneOf"]:
        for name, prop in option["properties"].items():
            assert prop.get("airbyte_secret", False) == (name in secrets), name


def test_spec_ignores_a_manifest_in_the_current_directory(tmp_path):
    (tmp_path / "manifest.yaml").write_text("version: 0.1.0\nspec: {}\nstreams: []\n")
    run = run_connector(tmp_path, "spec", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "credentials" in spec_of(run)["properties"]


def test_check_succeeds_with_a_service_account_in_one_request(tmp_path, sim):
    run = run_connector(tmp_path, "check", service_account_config(sim))
    (status,) = run.of_type("CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED"
    # A documented request (events/names needs its type), one query of the hour.
    assert [(r["method"], r["path"], r["params"], r["auth"]) for r in sim.requests] == [
        ("GET", "/api/query/events/names", {"project_id": str(PROJECT_ID), "type": "general", "limit": "1"}, "service_account")
    ]


def test_check_succeeds_with_a_project_secret_and_sends_no_project_id(tmp_path, sim):
    run = run_connector(tmp_path, "check", project_secret_config(sim))
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert len(sunset_warnings(run)) == 1
    ((request),) = sim.requests
    assert request["auth"] == "project_secret" and request["params"] == {"type": "general", "limit": "1"}


@pytest.mark.parametrize("style", ["401", "400-text"])
def test_check_fails_clearly_on_wrong_credentials(tmp_path, sim, style):
    config = service_account_config(sim)
    config["credentials"]["secret"] = "wrong-secret-value"
    with switched(sim, auth_error_style=style):
        run = run_connector(tmp_path, "check", config)
    (status,) = run.of_type("CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED"
    message = status["connectionStatus"]["message"]
    assert message.startswith("Mixpanel refused the credentials") and "region" in message  # the reason, bare
    assert len(sim.requests) == 1  # an auth failure is not retried


def test_check_succeeds_on_a_plan_that_refuses_queries_and_names_the_plan(tmp_path, sim):
    with switched(sim, plan_refuses={"all_query"}):
        run = run_connector(tmp_path, "check", service_account_config(sim))
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert any("plan limits API access (402 Payment Required)" in log for log in run.logs)


def test_no_secret_in_debug_output(tmp_path, sim):
    forms = [SA_SECRET, base64.b64encode(f"{SA_USERNAME}:{SA_SECRET}".encode()).decode()]
    run = run_connector(tmp_path, "check", service_account_config(sim), extra=["--debug"])
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert "Authorization" in run.stdout + run.stderr  # the headers were logged, masked
    for form in forms:
        assert form not in run.stdout and form not in run.stderr

    forms = [API_SECRET, base64.b64encode(f"{API_SECRET}:".encode()).decode()]
    run = run_connector(tmp_path, "check", project_secret_config(sim), extra=["--debug"])
    for form in forms:
        assert form not in run.stdout and form not in run.stderr


def test_pre_4x_config_is_migrated_with_a_control_message(tmp_path, sim):
    config = {"api_secret": API_SECRET, "base_url": sim.url, "project_timezone": "UTC"}
    run = run_connector(tmp_path, "check", config)
    (control,) = run.of_type("CONTROL")
    migrated = control["control"]["connectorConfig"]["config"]
    assert migrated["credentials"] == {"api_secret": API_SECRET} and "api_secret" not in migrated
    assert json.loads((tmp_path / "config.json").read_text()) == migrated
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"


def test_top_level_project_id_moves_into_credentials(tmp_path, sim):
    config = service_account_config(sim)
    config["project_id"] = str(config["credentials"].pop("project_id"))  # a numeric string, too
    del config["credentials"]["option_title"]
    run = run_connector(tmp_path, "check", config)
    migrated = run.of_type("CONTROL")[0]["control"]["connectorConfig"]["config"]
    assert migrated["credentials"]["project_id"] == PROJECT_ID and "project_id" not in migrated
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert sim.requests[0]["params"]["project_id"] == str(PROJECT_ID)


BAD_CONFIGS = [
    ({"start_date": "2025-13"}, 'start_date "2025-13" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).'),
    ({"start_date": "2025-02-01", "end_date": "2025-01-01"}, "end_date 2025-01-01 is before start_date 2025-02-01"),
    ({"project_timezone": "Moon/Base"}, 'project_timezone "Moon/Base" is not a known timezone'),
    ({"date_window_size": 0}, "date_window_size 0 is not a valid number of days"),
    ({"page_size": -1}, "page_size -1 is not a valid number of profiles per page"),
    ({"num_workers": "three"}, 'num_workers "three" is not a valid number of workers'),
    ({"region": "APAC"}, 'region "APAC" is not a Mixpanel region: use US, EU or IN.'),
    ({"credentials": {"option_title": "Service Account", "username": SA_USERNAME, "secret": SA_SECRET, "project_id": "p-1"}},
     'credentials.project_id "p-1" is not a project ID'),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_bad_config_is_one_config_error_everywhere(tmp_path, sim, change, message):
    config = service_account_config(sim, **change)
    catalog = {"streams": []}
    for command in ("read", "discover"):
        run = run_connector(tmp_path, command, config, catalog=catalog if command == "read" else None)
        (error,) = run.errors
        assert error["failure_type"] == "config_error"
        assert error["message"].startswith(message) and "Traceback" not in error["message"]
        assert not run.records and run.returncode == 1
        assert SA_SECRET not in run.stdout + run.stderr
    run = run_connector(tmp_path, "check", config)
    (status,) = run.of_type("CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED" and status["connectionStatus"]["message"].startswith(message)
    assert sim.requests == []  # validation happens before any request


@pytest.mark.parametrize("optional", [{}, {"insights_reports": [61001], "group_keys": [1, 2]}])
def test_discover_works_on_a_plan_that_refuses_property_discovery(tmp_path, sim, optional):
    with switched(sim, plan_refuses={"all_query"}):
        run = run_connector(tmp_path, "discover", service_account_config(sim, **optional))
    (catalog,) = run.of_type("CATALOG")
    schemas = {s["name"]: s["json_schema"] for s in catalog["catalog"]["streams"]}
    # insights and groups are offered only when the config names the reports and group keys they read
    assert sorted(schemas) == sorted(["annotations", "cohort_members", "cohorts", "engage", "export", "funnels", "revenue"]
                                     + (["groups", "insights"] if optional else []))
    assert set(schemas["export"]["properties"]) == {"event", "dedup_key", "time", "distinct_id", "insert_id", "mp_processing_time_ms", "other_properties"}
    assert set(schemas["engage"]["properties"]) == {"distinct_id", "last_seen", "other_properties"}
    if optional:
        assert set(schemas["groups"]["properties"]) == {"data_group_id", "group_id", "other_properties"}
        assert len(sim.requests_to("/api/query/engage/properties")) == 3  # profiles once, then once per group key


def sunset_warnings(run):
    return [m["log"]["message"] for m in run.of_type("LOG")
            if m["log"]["level"] == "WARN" and "stops accepting project secrets on 2027-03-03" in m["log"]["message"]]


def test_a_project_secret_gets_one_warning_at_check_and_at_read_with_the_way_to_a_service_account(tmp_path, sim):
    config = project_secret_config(sim, start_date="2025-04-01", end_date="2025-04-01")
    catalog = {"streams": [{"stream": {"name": "cohorts", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}
    read = run_connector(tmp_path, "read", config, catalog=catalog)
    assert read.returncode == 0 and read.records_of("cohorts")
    (warning,) = sunset_warnings(read)
    assert "Organization Settings > Service Accounts" in warning and "project_id" in warning
    # A service account hears nothing of it.
    for command in ("check", "read"):
        run = run_connector(tmp_path, command, service_account_config(sim), catalog=catalog if command == "read" else None)
        assert run.returncode == 0 and sunset_warnings(run) == []
