"""The configured catalog at read: values in their columns when they fit, exact in other_properties when not."""

import json
import logging

import pytest
import requests
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel.answers import ExactJsonDecoder
from source_mixpanel.export.lines import events
from source_mixpanel.properties import columns
from source_mixpanel.properties.columns import StreamColumns
from source_mixpanel.properties.names import OTHER_PROPERTIES, WITH_COLUMNS, PropertyNames

TIMESTAMP = {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"}
SCHEMA = {"properties": {
    "time": {"type": "string", "format": "date-time"},
    "count": {"type": ["null", "integer"]}, "price": {"type": ["null", "number"]}, "flag": {"type": ["null", "boolean"]},
    "plan": {"type": ["null", "string"]}, "ends": TIMESTAMP, "cart": {"type": ["null", "object"]},
    "tags": {"type": ["null", "array"]}, "mixed": {}, "browser": {"type": ["null", "string"], "title": "$browser"},
    "os": {"type": ["null", "string"], "title": "$os"},
    OTHER_PROPERTIES: {"type": ["null", "object"], WITH_COLUMNS: ["time", "count", "price", "flag", "plan", "ends",
                                                                  "cart", "tags", "mixed", "$browser", "$os"]},
}}
NAMES = ["time", "count", "price", "flag", "plan", "ends", "cart", "tags", "mixed", "$browser", "$os", "$new"]
FITTING = {"time": 1740794891, "count": 3, "price": 1.5, "flag": True, "plan": "pro", "ends": "2025-04-01T09:30:00",
           "cart": {"items": [1]}, "tags": ["a"], "mixed": 7, "$browser": "Chrome"}


def shaper(schema=SCHEMA, keep_new=True, names=NAMES):
    return StreamColumns("export", PropertyNames(names, first=["time"], kind="event"), schema, keep_new, computed=("time",))


def shaped(properties, shape=None, wide=False):
    record = {}
    (shape or shaper()).shape(properties, record, wide)
    return record


def test_values_of_their_columns_kind_stay_in_their_columns_on_the_fast_path(caplog):
    assert shaped({**FITTING, "count": None, "price": 2}) == {
        **{name.lstrip("$"): value for name, value in FITTING.items()}, "count": None, "price": 2}
    assert not caplog.records


@pytest.mark.parametrize("name, value, met, declared", [
    ("count", "3", "text", "an integer of 64 bits"),
    ("count", 2.5, "a number with a fraction", "an integer of 64 bits"),
    ("count", True, "true/false", "an integer of 64 bits"),  # a bool is no integer, whatever Python says
    ("count", 2 ** 64 + 7, "an integer beyond 64 bits", "an integer of 64 bits"),
    ("price", "1.5", "text", "a number"),
    ("flag", 1, "an integer", "true/false"),
    ("plan", {"tier": "pro"}, "an object", "text"),
    ("ends", "2025-04-01", "text", "a timestamp without offset"),
    ("ends", "2025-04-01T09:30:00+02:00", "text", "a timestamp without offset"),
    ("ends", 1743500000, "an integer", "a timestamp without offset"),
    ("cart", [1], "a list", "an object"),
    ("tags", "a", "text", "a list"),
])
def test_a_value_of_another_kind_goes_to_other_properties_exact_with_one_warning(caplog, name, value, met, declared):
    shape = shaper()
    for _ in range(3):
        record = shaped({**FITTING, name: value}, shape, wide=type(value) is int and value > 2 ** 63)
        column = name.lstrip("$")
        assert column not in record and record[OTHER_PROPERTIES] == {name: value}
        assert {k: v for k, v in record.items() if k != OTHER_PROPERTIES} == {
            n.lstrip("$"): v for n, v in FITTING.items() if n != name}
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (f"The event property {name!r} holds {met} where the catalog declares {declared}: such values go to "
                       f"other_properties under {name!r}, exact; the next schema refresh widens the column.")
    assert shape.misfits == {name: 3}


def test_a_long_integer_that_fits_64_bits_stays_in_its_column_and_a_number_column_takes_any():
    assert shaped({"count": 2 ** 63 - 1, "price": 2 ** 64 + 7}, wide=True) == {"count": 2 ** 63 - 1, "price": 2 ** 64 + 7}
    assert shaped({"count": -(2 ** 63) - 1}, wide=True) == {OTHER_PROPERTIES: {"count": -(2 ** 63) - 1}}


def test_deselected_properties_never_come_out_and_new_ones_go_to_other_properties(caplog):
    caplog.set_level(logging.INFO)
    schema = {"properties": {k: v for k, v in SCHEMA["properties"].items() if k not in ("browser", "plan")}}
    shape = shaper(schema)
    record = shaped({**FITTING, "$os": "iOS", "$new": 1, "$undiscovered": "x"}, shape)
    assert "browser" not in record and "plan" not in record and "os" in record
    assert record[OTHER_PROPERTIES] == {"$new": 1, "$undiscovered": "x"}  # $new: discovered since the catalog's discover
    assert shaped({**FITTING}, shape) == {n.lstrip("$"): v for n, v in FITTING.items() if n not in ("$browser", "plan")}
    assert any("2 properties deselected in the catalog are left out of its records ($browser, plan)" in r.getMessage()
               for r in caplog.records)


def test_a_catalog_from_before_the_list_counts_every_discovered_name_as_having_had_a_column():
    schema = {"properties": {k: ({"type": v.get("type")} if k == OTHER_PROPERTIES else v)
                             for k, v in SCHEMA["properties"].items() if k != "browser"}}
    record = shaped({"$browser": "Chrome", "$new": 1, "$undiscovered": 2}, shaper(schema))
    assert record == {OTHER_PROPERTIES: {"$undiscovered": 2}}


def test_without_other_properties_a_new_property_is_dropped_and_a_misfit_stops_the_read(caplog):
    caplog.set_level(logging.INFO)
    schema = {"properties": {k: v for k, v in SCHEMA["properties"].items() if k != OTHER_PROPERTIES}}
    shape = shaper(schema)
    assert shaped({"count": 1, "$undiscovered": "x"}, shape) == {"count": 1}
    assert any("Dropping event property '$undiscovered' from export records: discovery did not list it and the catalog "
               "has no other_properties." == r.getMessage() for r in caplog.records)
    with pytest.raises(AirbyteTracedException) as raised:
        shaped({"count": "1"}, shape)
    assert raised.value.failure_type == FailureType.config_error
    assert raised.value.message == (
        "Stream export: the event property 'count' holds text where the catalog declares an integer of 64 bits, and the "
        "catalog has no other_properties, where such a value goes: select other_properties (select_properties_by_default "
        "true adds it) or refresh the source schema.")


def test_a_catalog_without_properties_and_no_catalog_keep_every_value_as_it_comes():
    for schema in ({}, None):
        record = shaped({"count": "3", "$browser": 1, "$undiscovered": None}, shaper(schema))
        assert record == {"count": "3", "browser": 1, OTHER_PROPERTIES: {"$undiscovered": None}}


def test_the_configured_catalog_reaches_the_stream_and_the_summary_counts_its_misfits():
    catalog = ConfiguredAirbyteCatalogSerializer.load({"streams": [{
        "stream": {"name": "export", "json_schema": SCHEMA, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": "append"}]})
    columns.configure(catalog)
    names = PropertyNames(NAMES, first=["time"], kind="event")
    shape = columns.stream_columns("export", names, computed=("time",))
    assert shape is columns.stream_columns("export", names) and shape.typed
    for value in ("1", "2", 3):
        shape.shape({"count": value, "flag": "no"}, {})
    assert columns.misfit_summary("export") == "; 5 values of 2 properties did not fit their columns' types and went to other_properties"
    assert columns.misfit_summary("engage") == ""
    columns.configure(None)
    assert not columns.stream_columns("export", names).typed


def test_integers_beyond_64_bits_come_out_of_export_lines_and_profile_answers_exact():
    lines = [b'{"event":"e","properties":{"time":1,"a":18446744073709551623,"b":-9223372036854775809,"c":[12345678901234567890123]}}',
             b'{"event":"e","properties":{"time":1,"n":1.5}}']
    (_, first, _, wide), (_, second, _, narrow) = events(lines, exact_integers=True)
    assert first["properties"] == {"time": 1, "a": 18446744073709551623, "b": -9223372036854775809, "c": [12345678901234567890123]}
    assert wide and not narrow and second["properties"] == {"time": 1, "n": 1.5}
    response = requests.Response()
    response._content = json.dumps({"results": [{"$properties": {"id": 2 ** 70, "f": 0.1}}]}).encode()
    (answer,) = ExactJsonDecoder().decode(response)
    assert answer["results"][0]["$properties"] == {"id": 2 ** 70, "f": 0.1}
