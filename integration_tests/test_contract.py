"""Mixpanel's documented contract (contract.py): the simulator refuses what the reference refuses, its answers have the
reference's shapes, and every request of a full sync keeps to the contract but for the named departures."""

import gzip
import json

import jsonschema
import pytest
import requests

from integration_tests import contract
from integration_tests.harness import (
    configured_catalog,
    project_secret_config,
    run_connector,
    service_account_config,
    switched,
)
from integration_tests.simulator import API_SECRET, PROJECT_ID, SA_SECRET, SA_USERNAME

SA = (SA_USERNAME, SA_SECRET)
PID = {"project_id": str(PROJECT_ID)}
DAYS = {"from_date": "2024-01-01", "to_date": "2024-01-02"}


def get(sim, path, params=None, **kwargs):
    return requests.get(sim.url + path, params={**PID, **(params or {})}, auth=SA, timeout=10, **kwargs)


def refused_as_query(answer, status, words):
    assert answer.status_code == status, answer.text
    assert answer.json() == {"error": answer.json()["error"], "status": "error"} and words in answer.json()["error"]


# ------------------------------------------------------------------ one test per kind of refusal
def test_a_path_in_no_reference_is_404(sim):
    refused_as_query(get(sim, "/api/query/nope"), 404, "/api/query/nope")
    # The query operations live under /api/query; /api/2.0 serves only the export and project-secret annotations.
    refused_as_query(get(sim, "/api/2.0/engage/properties"), 404, "/api/2.0/engage/properties")
    assert get(sim, "/api/query/engage/properties").status_code == 200


def test_a_method_the_path_lacks_is_405(sim):
    refused_as_query(get(sim, "/api/query/engage"), 405, "GET")
    refused_as_query(requests.post(sim.url + "/api/query/funnels/list", params=PID, auth=SA, timeout=10), 405, "POST")
    assert requests.post(sim.url + "/api/query/engage", params=PID, auth=SA, timeout=10).status_code == 200
    with switched(sim, strict_contract=False):  # the connector before issue 20 sent GET
        assert get(sim, "/api/query/cohorts/list").status_code == 200
    with switched(sim, strict_contract=True):
        refused_as_query(get(sim, "/api/query/cohorts/list"), 405, "GET")
        assert requests.post(sim.url + "/api/query/cohorts/list", params=PID, auth=SA, timeout=10).json() == sim.cohorts()


@pytest.mark.parametrize("path, params, missing", [
    ("/api/query/events/names", {}, "type"),
    ("/api/query/funnels", {"from_date": "2024-01-01", "to_date": "2024-01-02"}, "funnel_id"),
    ("/api/query/funnels", {"funnel_id": "7509", "from_date": "2024-01-01"}, "to_date"),
    ("/api/query/insights", {}, "bookmark_id"),
    ("/api/query/engage/revenue", {"to_date": "2024-01-02"}, "from_date"),
])
def test_a_missing_required_parameter_is_400_with_mixpanels_error_body(sim, path, params, missing):
    refused_as_query(get(sim, path, params), 400, f"Missing required parameter: {missing}")


def test_the_export_refuses_a_missing_day_in_text(sim):
    answer = get(sim, "/api/2.0/export", {"from_date": "2024-01-01"})
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == "Missing required parameter: to_date"


@pytest.mark.parametrize("path, params, name", [
    ("/api/query/events/names", {"type": "weekly"}, "type"),
    ("/api/query/funnels", {"funnel_id": "7509", **DAYS, "unit": "year"}, "unit"),
    ("/api/query/funnels", {"funnel_id": "7509", **DAYS, "length_unit": "week"}, "length_unit"),
])
def test_an_unknown_enum_value_is_400(sim, path, params, name):
    refused_as_query(get(sim, path, params), 400, f"Invalid value for parameter {name}")
    assert get(sim, "/api/query/events/names", {"type": "average"}).status_code == 200


def test_an_export_accept_encoding_other_than_gzip_is_refused_when_strict(sim):
    offered = {"Accept-Encoding": "gzip, deflate"}
    with switched(sim, strict_contract=False):  # the connector before issue 20 sent the library's default
        assert get(sim, "/api/2.0/export", DAYS, headers=offered).status_code == 200
    with switched(sim, strict_contract=True):
        for value in ("gzip, deflate", "deflate", "br", "gzip;q=1.0"):
            answer = get(sim, "/api/2.0/export", DAYS, headers={"Accept-Encoding": value})
            assert answer.status_code == 406 and answer.headers["Content-Type"].startswith("text/plain")
            assert answer.text == f"Unsupported Accept-Encoding: {value!r} is not 'gzip'; the export is served gzip-encoded or plain"
        raw = get(sim, "/api/2.0/export", DAYS, headers={"Accept-Encoding": "gzip"}, stream=True).raw
        assert raw.headers["Content-Encoding"] == "gzip"
        assert len(gzip.decompress(raw.read()).splitlines()) == len(sim.export_truth("2024-01-01", "2024-01-02", None))
        for value in ("identity", None):  # no encoding asked (None: the HTTP library sends identity): served plain
            plain = get(sim, "/api/2.0/export", DAYS, headers={"Accept-Encoding": value})
            assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
        assert get(sim, "/api/query/funnels/list", headers={"Accept-Encoding": "br"}).status_code == 200  # export only


def test_the_departures_are_accepted_in_their_one_form(sim):
    assert get(sim, "/api/query/events/properties/top", {"limit": "2000"}).status_code == 200  # without event
    page = requests.post(sim.url + "/api/query/engage", params=PID, data={"page_size": "7"}, auth=SA, timeout=10)
    assert len(page.json()["results"]) == 7
    assert get(sim, "/api/query/engage/revenue", {**DAYS, "unit": "day"}).status_code == 200
    legacy = requests.get(sim.url + "/api/2.0/annotations", params=DAYS, auth=(API_SECRET, ""), timeout=10)
    assert legacy.status_code == 200
    refused_as_query(get(sim, "/api/query/engage/revenue", {**DAYS, "unit": "week"}), 400, "unit")


# ------------------------------------------------------------------ the recorder
def logged(method, path, params, auth="service_account", headers=None):
    return {"method": method, "path": path, "params": params, "auth": auth, "headers": headers or {}}


def test_violations_name_each_breach_and_excuse_only_the_departures():
    assert contract.violations(logged("GET", "/api/query/funnels", {**PID, "funnel_id": "1", **DAYS, "unit": "day"})) == []
    assert contract.violations(logged("GET", "/api/query/cohorts/list", PID)) == [
        "cohorts/list: method GET (the reference has POST)"]
    assert contract.violations(logged("GET", "/api/query/cohorts/list", PID),
                               contract.DEPARTURES + contract.TRANSITIONAL) == []
    assert contract.violations(logged("POST", "/api/query/engage", {"page_size": "5"})) == ["engage: missing project_id"]
    assert contract.violations(logged("POST", "/api/query/engage", {"page_size": "5"}, auth="project_secret")) == []
    assert contract.violations(logged("GET", "/api/query/events/names", {**PID, "type": "daily", "limt": "3"})) == [
        "events/names: unknown limt", "events/names: enum type 'daily' is none of general, unique, average"]
    assert contract.violations(logged("GET", "/api/2.0/export", {**PID, "from_date": "2024-01-01"},
                                      headers={"Accept-Encoding": "gzip, deflate"})) == [
        "export: missing to_date", "export: header Accept-Encoding 'gzip, deflate' is not 'gzip'"]
    assert contract.violations(logged("GET", "/api/query/events/properties/top", {**PID, "limit": "1"})) == []
    assert contract.violations(logged("GET", "/api/query/events/properties/top", {**PID, "limit": "1"}), ()) == [
        "events/properties/top: missing event"]
    assert contract.violations(logged("GET", "/api/query/engage/revenue", {**PID, **DAYS}), ()) == [
        "engage/revenue: undocumented"]
    assert contract.violations(logged("GET", "/api/query/retention", PID)) == ["/api/query/retention: path is in no reference"]


# ------------------------------------------------------------------ the answers' shapes
def valid(operation_name, answer):
    (op,) = [op for op in contract.OPERATIONS if op.name == operation_name]
    jsonschema.validate(answer, op.answer)
    return answer


def test_every_answer_has_the_references_shape(sim):
    for line in get(sim, "/api/2.0/export", DAYS).text.splitlines():
        valid("export", json.loads(line))
    valid("events/properties/top", get(sim, "/api/query/events/properties/top", {"limit": "2000"}).json())
    valid("events/names", get(sim, "/api/query/events/names", {"type": "general"}).json())
    profiles = valid("engage", requests.post(sim.url + "/api/query/engage", params=PID, data={"page_size": "100"},
                                             auth=SA, timeout=10).json())
    valid("engage", requests.post(sim.url + "/api/query/engage", params=PID, auth=SA, timeout=10, data={
        "page": "1", "session_id": profiles["session_id"], "page_size": "100"}).json())
    valid("engage", requests.post(sim.url + "/api/query/engage", params=PID, data={"data_group_id": "1"},
                                  auth=SA, timeout=10).json())
    valid("engage/properties", get(sim, "/api/query/engage/properties").json())
    valid("engage/properties", get(sim, "/api/query/engage/properties", {"data_group_id": "2"}).json())
    valid("cohorts/list", requests.post(sim.url + "/api/query/cohorts/list", params=PID, auth=SA, timeout=10).json())
    funnels = valid("funnels/list", get(sim, "/api/query/funnels/list").json())
    steps = []
    for funnel in funnels:
        answer = valid("funnels", get(sim, "/api/query/funnels", {"funnel_id": funnel["funnel_id"], **DAYS, "unit": "day"}).json())
        steps += [step for day in answer["data"].values() for step in day["steps"]]
    for bookmark_id in (61001, 61002, 61003, 61004):
        valid("insights", get(sim, "/api/query/insights", {"bookmark_id": bookmark_id}).json())
    valid("engage/revenue", get(sim, "/api/query/engage/revenue", {**DAYS, "unit": "day"}).json())
    annotations = valid("annotations", get(sim, f"/api/app/projects/{PROJECT_ID}/annotations").json())["results"]
    assert any(annotation["tags"] for annotation in annotations)  # objects {id, name}, as the schema says
    valid("annotations (project secret)", requests.get(sim.url + "/api/2.0/annotations", auth=(API_SECRET, ""),
                                                      params={"from_date": "2024-01-01", "to_date": "2024-12-31"}, timeout=10).json())
    valid("lexicon schemas", get(sim, f"/api/app/projects/{PROJECT_ID}/schemas").json())
    valid("me", get(sim, "/api/app/me").json())

    # The reference's errata (contract.ERRATA): the simulator serves what Mixpanel sends, which the reference's own
    # types would refuse: text distinct ids, and funnel times null at step 0 and decimal after it.
    assert set(contract.ERRATA) == {"engage $distinct_id", "funnels avg_time, avg_time_from_start"}
    assert all(isinstance(profile["$distinct_id"], str) for profile in profiles["results"])
    assert {step["avg_time"] is None for step in steps} == {True, False}
    assert any(isinstance(step["avg_time"], float) and not step["avg_time"].is_integer() for step in steps)


def test_the_connector_loads_annotation_tags_as_objects(tmp_path, sim):
    config = service_account_config(sim, start_date="2024-01-01", end_date="2024-01-05")
    (catalog_message,) = run_connector(tmp_path, "discover", config).of_type("CATALOG")
    run = run_connector(tmp_path, "read", config, catalog=configured_catalog(catalog_message["catalog"], ["annotations"]))
    records = sorted(run.records_of("annotations"), key=lambda record: record["id"])
    assert [record["tags"] for record in records] == [annotation["tags"] for annotation in sim.annotations()]


# ------------------------------------------------------------------ every request of a full sync
# What the connector still sends against the reference besides the named departures: nothing.
STILL_DEPARTING: set = set()
# check must not hinge on discovery's departure: its requests keep to the reference without it.
CHECK_DEPARTURES = tuple(d for d in contract.DEPARTURES if d.name != "event properties without event")


def test_every_request_of_a_full_sync_keeps_to_the_contract_but_for_the_departures(tmp_path, sim):
    """check, discover, a read of every stream and a read from its state, for both credential kinds; the region is
    varied too, though base_url points every host at the simulator (the hosts by region are the manifest's)."""
    reports = {"insights_reports": [61001, 61002, 61004], "group_keys": [1, 2]}
    runs = [
        (service_account_config(sim, region="US", start_date="2024-01-01", end_date="2024-01-03", **reports), True),
        (project_secret_config(sim, region="EU", start_date="2024-01-01", end_date="2024-01-03", **reports), True),
        (service_account_config(sim, region="IN", start_date="2024-01-01", end_date="2024-01-02"), False),
    ]
    found, commands = set(), []

    def judged(command, run):
        assert run.returncode == 0 and not run.errors, (command, run.errors, run.stderr[-2000:])
        departures = CHECK_DEPARTURES if command == "check" else contract.DEPARTURES
        for request in sim.requests:
            found.update(f"{command}: {violation}" for violation in contract.violations(request, departures))
        commands.append((command, len(sim.requests)))
        sim.reset_log()
        return run

    for config, read_too in runs:
        sim.reset_log()
        judged("check", run_connector(tmp_path, "check", config))
        (catalog_message,) = judged("discover", run_connector(tmp_path, "discover", config)).of_type("CATALOG")
        if not read_too:
            continue
        streams = [stream["name"] for stream in catalog_message["catalog"]["streams"]]
        catalog = configured_catalog(catalog_message["catalog"], streams, "incremental")
        first = judged("read", run_connector(tmp_path, "read", config, catalog=catalog))
        assert {record["stream"] for record in first.records} == set(streams) - {"connection_check"}
        saved = {state["stream"]["stream_descriptor"]["name"]: state for state in first.states}  # each stream's last
        judged("read", run_connector(tmp_path, "read", config, catalog=catalog, state=list(saved.values())))

    assert all(count > 0 for _, count in commands), commands
    assert found == STILL_DEPARTING
