"""config/spec.py: config/validation.py takes every type, bound, choice, pattern and unique list from the spec: none is
restated in Python."""

import copy

import pytest

from source_mixpanel.config import validation as config_module
from source_mixpanel.config.spec import SENTENCES, spec_properties
from source_mixpanel.config.validation import InvalidConfig, parse_day, validate_config

GOOD = {"credentials": {"option_title": "Service Account", "username": "reader", "secret": "s3cr3t", "project_id": 42}}


def bad_values(schema):
    """A value breaking each rule the property's schema states."""
    kind = schema.get("type")
    yield {"integer": "7", "string": 7, "boolean": "yes", "array": "x"}[kind]
    if "minimum" in schema:
        yield schema["minimum"] - 1
    if "maximum" in schema:
        yield schema["maximum"] + 1
    if "enum" in schema:
        yield "none-of-these"
    if "pattern" in schema:
        yield "someday"
    if kind == "array":
        yield [{"integer": "7", "string": 7}[schema["items"]["type"]]]
        if schema.get("uniqueItems"):
            yield [1, 1]


FIELDS = [name for name in spec_properties() if name != "credentials"]


def test_every_field_of_the_spec_has_its_sentence():
    assert set(SENTENCES) == set(FIELDS)


@pytest.mark.parametrize("name", FIELDS)
def test_each_broken_spec_rule_gets_a_sentence_in_words(name):
    for value in bad_values(spec_properties()[name]):
        with pytest.raises(InvalidConfig) as raised:
            validate_config({**GOOD, name: value})
        message = str(raised.value)
        assert message.startswith(f"{name} ") and message.endswith(".") and "\n" not in message
        assert "is not of type" not in message and "Failed validating" not in message  # never jsonschema's words


@pytest.mark.parametrize("name", FIELDS)
def test_null_in_any_field_gets_its_sentence_with_null_written_as_json_writes_it(name):
    with pytest.raises(InvalidConfig) as raised:
        validate_config({**GOOD, name: None})
    message = str(raised.value)
    assert message.startswith(f"{name} ") and message.endswith(".") and "None" not in message


def test_a_bound_changed_in_the_spec_changes_the_check_and_its_sentence(monkeypatch):
    spec = copy.deepcopy(spec_properties())
    spec["num_workers"]["maximum"] = 10
    spec["region"]["enum"] = ["US", "EU"]
    monkeypatch.setattr(config_module, "spec_properties", lambda: spec)
    validate_config({**GOOD, "num_workers": 10})
    with pytest.raises(InvalidConfig, match=r"^num_workers 11 is not a valid number of workers: use a whole number from 1 to 10\.$"):
        validate_config({**GOOD, "num_workers": 11})
    with pytest.raises(InvalidConfig, match=r'^region "IN" is not a Mixpanel region: use US or EU\.$'):
        validate_config({**GOOD, "region": "IN"})


@pytest.mark.parametrize("field, value, message", [
    ("username", "", "credentials.username is empty"),
    ("secret", ["s"], "credentials.secret must be text"),
    ("option_title", ["x"], 'credentials.option_title "\\[\'x\'\\]" is not an authentication method'),
    ("option_title", {"a": 1}, 'credentials.option_title "{\'a\': 1}" is not an authentication method'),
])
def test_credentials_follow_the_spec_of_their_method(field, value, message):
    with pytest.raises(InvalidConfig, match=f"^{message}: "):
        validate_config({"credentials": {**GOOD["credentials"], field: value}})


def test_several_problems_report_the_first_in_the_spec_order():
    with pytest.raises(InvalidConfig, match=r"^start_date \"2025-02-30\" is not a date"):
        validate_config({**GOOD, "num_workers": 0, "start_date": "2025-02-30"})  # start_date comes first in the spec


@pytest.mark.parametrize("config, message", [
    # The manifest's migration puts a top-level api_secret over the one in credentials: that is the one checked.
    ({"credentials": {"option_title": "Project Secret", "api_secret": "ok"}, "api_secret": ""}, "credentials.api_secret is empty"),
    ({"credentials": {**GOOD["credentials"], "project_id": "\u00b2"}}, 'credentials.project_id "\u00b2" is not a project ID'),
    ({"credentials": {**GOOD["credentials"], "username": "reader\ud800"}}, "credentials.username is not valid text"),
])
def test_credentials_are_checked_as_the_connector_will_use_them(config, message):
    with pytest.raises(InvalidConfig) as raised:
        validate_config(config)
    assert str(raised.value).startswith(message)


def test_a_top_level_secret_before_4x_passes_over_an_empty_one_in_credentials():
    validate_config({"credentials": {"option_title": "Project Secret", "api_secret": ""}, "api_secret": "abc"})


@pytest.mark.parametrize("value", ["soon", "2025-02-30", 20250101])
def test_a_day_that_is_not_one_is_refused_even_where_the_spec_pattern_let_it_by(value):
    with pytest.raises(InvalidConfig, match=r"^start_date .* is not a date"):
        parse_day("start_date", value)
