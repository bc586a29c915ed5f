"""The spec's config rules, checked by jsonschema, and each field's problem put into one sentence."""

import json
from typing import Any, Callable, Dict, Mapping, Optional

import jsonschema

from source_mixpanel.manifest import load_manifest


def spec_properties() -> Mapping[str, Any]:
    """The spec's fields: manifest.yaml's connection_specification, the one place their rules live."""
    return load_manifest()["spec"]["connection_specification"]["properties"]


# jsonschema's integer takes 2.0; the spec's whole numbers are Python ints, never floats or booleans.
_SPEC_TYPES = jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
_SpecValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=_SPEC_TYPES)


def broken_rule(schema: Mapping[str, Any], value: Any) -> Optional[jsonschema.ValidationError]:
    """The first of a spec property's rules that a value breaks, in the order of the list's items; None if none."""
    errors = list(_SpecValidator(schema).iter_errors(value))
    return min(errors, key=lambda error: _place(error, value), default=None)


def _place(error: jsonschema.ValidationError, value: Any) -> int:
    """Where in a list a problem is: the item's own rules, or a repeat; -1 for the value as a whole."""
    if error.path:
        return error.path[0]
    return _first_repeat(value)[0] if error.validator == "uniqueItems" else -1


def _first_repeat(items: list) -> tuple:
    """The place and value of the first item that an earlier one already listed."""
    return next(((place, item) for place, item in enumerate(items) if item in items[:place]), (len(items), None))


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else json.dumps(value)


Sentence = Callable[[str, Any, Mapping[str, Any], jsonschema.ValidationError], str]


def _said(text: str) -> Sentence:
    """The same sentence whatever rule broke; {name}, {shown} (the value as JSON writes it) and {example} (the spec's
    first) fill in."""
    return lambda name, value, schema, error: text.format(
        name=name, shown=_shown(value), example=(schema.get("examples") or [""])[0])


def _whole_number(unit: str) -> Sentence:
    """A count of `unit`: any broken rule gets the spec's bounds."""

    def sentence(name: str, value: Any, schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
        minimum, maximum = schema["minimum"], schema.get("maximum")
        wanted = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        return f"{name} {_shown(value)} is not a valid number of {unit}: use a whole number {wanted}."

    return sentence


def _choice(noun: str, notes: Optional[Mapping[str, str]] = None) -> Sentence:
    """One of the spec's enum, with a note on the choices that need one."""

    def sentence(name: str, value: Any, schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
        choices = [f"{choice} ({notes[choice]})" if choice in (notes or {}) else str(choice) for choice in schema["enum"]]
        return f'{name} {_shown(value)} is not {noun}: use {", ".join(choices[:-1])} or {choices[-1]}.'

    return sentence


def _ids(what: str, where: str) -> Sentence:
    """A list of Mixpanel IDs: the list itself, each item, and each item once."""

    def sentence(name: str, value: Any, schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
        if error.validator == "uniqueItems":
            return f"{name} lists {_first_repeat(value)[1]} twice: list each {what} once."
        if error.path:
            return (f"{name} holds {_shown(value[error.path[0]])}, which is not a {what}: list whole numbers from "
                    f"{schema['items']['minimum']} ({where}).")
        return f"{name} must be a list of {what}s ({where}), e.g. [12345]."

    return sentence


NOT_A_DATE = _said('{name} {shown} is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).')
NOT_A_TIMEZONE = _said('{name} {shown} is not a known timezone: use the IANA name shown in Mixpanel\'s Project '
                       'Settings, e.g. US/Pacific or UTC.')
NOT_A_BASE_URL = _said('{name} {shown} is not a base URL: use a scheme, host and optional port only, e.g. {example}.')
TRUE_OR_FALSE = _said("{name} must be true or false.")

# Every field of the spec but credentials (below), each with the words for a value that breaks its rules.
SENTENCES: Dict[str, Sentence] = {
    "attribution_window": _whole_number("days"),
    "project_timezone": NOT_A_TIMEZONE,
    "select_properties_by_default": TRUE_OR_FALSE,
    "start_date": NOT_A_DATE,
    "end_date": NOT_A_DATE,
    "region": _choice("a Mixpanel region"),
    "date_window_size": _whole_number("days"),
    "page_size": _whole_number("profiles per page"),
    "export_lookback_window": _whole_number("seconds"),
    "num_workers": _whole_number("workers"),
    "export_window_days": _whole_number("days"),
    "export_events": _said('{name} must be a list of event names, e.g. ["Signed up", "Purchase"].'),
    "export_where": _said('{name} must be a Mixpanel expression in a string, e.g. properties["$browser"] == "Chrome".'),
    "export_read_timeout": _whole_number("seconds"),
    "query_requests_per_hour": _whole_number("query requests an hour"),
    "export_requests_per_hour": _whole_number("export requests an hour"),
    "event_time_storage": _choice("a choice", {"utc": "projects created since 2023", "project_timezone": "before 2023"}),
    "insights_reports": _ids("report ID", "the number after report- in a saved Insights report's URL"),
    "insights_workspace_id": _said("{name} {shown} is not a workspace ID: use the whole number after /view/ in the "
                                   "reports' URL, or leave it empty."),
    "group_keys": _ids("group key ID", "Mixpanel's data_group_id of a group key"),
    "rate_limit_window_seconds": _whole_number("seconds"),
    "base_url": NOT_A_BASE_URL,
    "export_base_url": NOT_A_BASE_URL,
    "connection_check": TRUE_OR_FALSE,
}
