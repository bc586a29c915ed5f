"""The kind rules of properties/kinds.py, one test each, and the schema each column kind declares."""

import pytest

from source_mixpanel.properties.kinds import COLUMN_SCHEMAS, FITS, column_kind, is_datetime, kind_of


@pytest.mark.parametrize("value, kind", [
    (0, "integer"), (-3, "integer"), (2**63 - 1, "integer"), (-(2**63), "integer"),
    (2**63, "wide_integer"), (2**64 + 7, "wide_integer"), (-(2**63) - 1, "wide_integer"),
    (1.0, "number"), (0.125, "number"), (-3.5, "number"),
    (True, "boolean"), (False, "boolean"),
    ("2025-04-01T09:30:00", "datetime"), ("2025-04-01T09:30:00.250", "datetime"),
    ("2025.03.19-rc1", "string"), ("", "string"), ("12", "string"),
    ({"a": [1]}, "object"), ({}, "object"), (["a"], "array"), ([], "array"),
    (None, None),
])
def test_kind_of(value, kind):
    assert kind_of(value) == kind


@pytest.mark.parametrize("text", [
    "2025-04-01T09:30:00", "2025-12-31T23:59:59", "2024-02-29T00:00:00.123456", "2025-01-01T00:00:00.5",
])
def test_is_datetime_takes_mixpanels_iso_times_without_offset(text):
    assert is_datetime(text)


@pytest.mark.parametrize("text", [
    "2025-04-01T09:30:00Z", "2025-04-01T09:30:00+02:00", "2025-04-01 09:30:00", "2025-04-01",
    "2025-13-01T09:30:00", "2025-00-01T09:30:00", "2025-04-32T09:30:00", "2025-04-00T09:30:00",
    "2025-04-01T24:00:00", "2025-04-01T09:60:00", "2025-04-01T09:30:60", "2025-04-01T09:30:00.",
    "2025-04-01T09:30", " 2025-04-01T09:30:00", "2025-04-01T09:30:00\n", "soon",
])
def test_is_datetime_refuses_anything_else(text):
    assert not is_datetime(text)


def test_only_integers_are_integer():
    assert column_kind({"integer"}) == "integer"


@pytest.mark.parametrize("kinds", [{"integer", "number"}, {"number"}, {"wide_integer"}, {"integer", "wide_integer"},
                                   {"number", "wide_integer", "integer"}])
def test_numbers_mixed_or_beyond_64_bits_are_number(kinds):
    assert column_kind(kinds) == "number"


def test_booleans_are_boolean():
    assert column_kind({"boolean"}) == "boolean"


def test_only_datetimes_are_datetime():
    assert column_kind({"datetime"}) == "datetime"


@pytest.mark.parametrize("kinds", [{"string"}, {"datetime", "string"}])
def test_text_is_string(kinds):
    assert column_kind(kinds) == "string"


def test_objects_are_object_and_lists_array():
    assert column_kind({"object"}) == "object"
    assert column_kind({"array"}) == "array"


def test_null_adds_nothing():
    assert column_kind({None, "integer"}) == "integer"
    assert column_kind({None}) is None


@pytest.mark.parametrize("kinds", [set(), {"integer", "string"}, {"number", "datetime"}, {"boolean", "integer"},
                                   {"object", "array"}, {"string", "object"}, {"wide_integer", "boolean"}])
def test_no_kind_or_two_kinds_get_no_type(kinds):
    assert column_kind(kinds) is None


def test_every_column_kind_fits_its_own_values_and_has_a_nullable_schema():
    assert set(FITS) == set(COLUMN_SCHEMAS)
    for kind, fits in FITS.items():
        assert column_kind(fits) == kind
        assert "null" in COLUMN_SCHEMAS[kind]["type"]
    assert COLUMN_SCHEMAS["integer"] == {"type": ["null", "integer"]}
    assert COLUMN_SCHEMAS["number"] == {"type": ["null", "number"]}
    assert COLUMN_SCHEMAS["boolean"] == {"type": ["null", "boolean"]}
    assert COLUMN_SCHEMAS["string"] == {"type": ["null", "string"]}
    assert COLUMN_SCHEMAS["datetime"] == {"type": ["null", "string"], "format": "date-time",
                                          "airbyte_type": "timestamp_without_timezone"}
    assert COLUMN_SCHEMAS["object"] == {"type": ["null", "object"]}
    assert COLUMN_SCHEMAS["array"] == {"type": ["null", "array"]}
