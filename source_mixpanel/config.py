"""Config validation with one human sentence per problem: the spec's own rules put into words, then the rules it cannot state.

Python because the manifest cannot say it: in airbyte-cdk 7.39 the CDK's PredicateValidator crashes, a custom validator's
ValueError surfaces as a system_error, and a bad num_workers crashes before spec validation. It runs in the entry point.
Types, bounds, choices, patterns and unique lists are the spec's (manifest.yaml), checked by jsonschema; SENTENCES words
them. Python adds real calendar dates, an end on or after the start, a known timezone, a base URL's shape, and the three
shapes credentials have had.
"""

import datetime
import json
import re
from typing import Any, Callable, Dict, Mapping, Optional
from urllib.parse import urlsplit

import jsonschema
import pytz

from source_mixpanel.source import load_manifest

SERVICE_ACCOUNT = "Service Account"
PROJECT_SECRET = "Project Secret"
EPOCH = datetime.date(1970, 1, 1)
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")  # the numbers of a value that matched the spec's date pattern


class InvalidConfig(ValueError):
    """A config problem, worded for the person who has to fix it."""


def spec_properties() -> Mapping[str, Any]:
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


# ------------------------------------------------------------------------- how each field's problem is worded
Sentence = Callable[[str, Any, Mapping[str, Any], jsonschema.ValidationError], str]


def _said(text: str) -> Sentence:
    """The same sentence whatever rule broke; {name}, {value}, {shown} and {example} (the spec's first) fill in."""
    return lambda name, value, schema, error: text.format(
        name=name, value=value, shown=_shown(value), example=(schema.get("examples") or [""])[0])


def _whole_number(unit: str) -> Sentence:
    """A count of `unit`: any broken rule gets the spec's bounds."""

    def sentence(name: str, value: Any, schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
        minimum, maximum = schema["minimum"], schema.get("maximum")
        wanted = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        shown = f'"{value}"' if isinstance(value, str) else value
        return f"{name} {shown} is not a valid number of {unit}: use a whole number {wanted}."

    return sentence


def _choice(noun: str, notes: Optional[Mapping[str, str]] = None) -> Sentence:
    """One of the spec's enum, with a note on the choices that need one."""

    def sentence(name: str, value: Any, schema: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
        choices = [f"{choice} ({notes[choice]})" if choice in (notes or {}) else str(choice) for choice in schema["enum"]]
        return f'{name} "{value}" is not {noun}: use {", ".join(choices[:-1])} or {choices[-1]}.'

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


NOT_A_DATE = _said('{name} "{value}" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).')
NOT_A_TIMEZONE = _said('{name} "{value}" is not a known timezone: use the IANA name shown in Mixpanel\'s Project '
                       'Settings, e.g. US/Pacific or UTC.')
NOT_A_BASE_URL = _said('{name} "{value}" is not a base URL: use a scheme, host and optional port only, e.g. {example}.')
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

# Where a user finds each credential; the manifest's config migration moves the pre-4.x top-level ones in.
CREDENTIAL_SOURCES = {
    "username": "copy the service account's username from Mixpanel's Organization Settings > Service Accounts",
    "secret": "copy the service account's secret from Mixpanel's Organization Settings > Service Accounts",
    "api_secret": "copy the project secret from Mixpanel's Project Settings > Access Keys",
}
TOP_LEVEL_BEFORE_4X = ("api_secret", "project_id")
BOTH_METHODS = "set a service account (username, secret, project_id) or a project secret (api_secret)"


def auth_method(config: Mapping[str, Any]) -> Optional[str]:
    """Which credentials a config holds, reading the pre-4.x top-level shape too."""
    credentials = config.get("credentials") or {}
    if not isinstance(credentials, Mapping):
        return None
    title = credentials.get("option_title")
    if title:
        return title
    if credentials.get("username") or credentials.get("secret"):
        return SERVICE_ACCOUNT
    if credentials.get("api_secret") or config.get("api_secret"):
        return PROJECT_SECRET
    return None


def _credentials(config: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """The spec's rules of the chosen method, read in every shape a saved config may have."""
    credentials = config.get("credentials")
    if credentials is not None and not isinstance(credentials, Mapping):
        raise InvalidConfig(f"credentials must be an object: {BOTH_METHODS}.")
    credentials = credentials or {}
    method = auth_method(config)
    if method is None:
        raise InvalidConfig(f"credentials are missing: {BOTH_METHODS}.")
    methods = {option["properties"]["option_title"]["const"]: option for option in spec["credentials"]["oneOf"]}
    if not isinstance(method, str) or method not in methods:
        choices = " or ".join(f'"{title}"' for title in methods)
        raise InvalidConfig(f'credentials.option_title "{method}" is not an authentication method: use {choices}.')
    for name in methods[method]["required"]:
        schema = methods[method]["properties"][name]
        value = credentials.get(name)
        if value is None and name in TOP_LEVEL_BEFORE_4X:
            value = config.get(name)
        if name == "project_id":  # 4.x configs may hold it as text; the manifest makes it the integer the spec says
            if broken_rule(schema, value) and not (isinstance(value, str) and value.strip().isdigit()):
                shown = "is missing" if value in (None, "") else f'"{value}" is not a project ID'
                raise InvalidConfig(f"credentials.project_id {shown}: a service account needs the integer project ID "
                                    f"from Mixpanel's Project Settings > Overview.")
        elif value is None or broken_rule(schema, value):
            raise InvalidConfig(f"credentials.{name} {'is empty' if not value else 'must be text'}: {CREDENTIAL_SOURCES[name]}.")


def parse_day(name: str, value: Any) -> Optional[datetime.date]:
    """A start_date/end_date that matched the spec's pattern, as a day; None when unset."""
    if not value:
        return None
    year, month, day = (int(part) for part in _DAY.match(value).groups())
    try:
        return datetime.date(year, month, day)
    except ValueError:  # 2025-02-30: the pattern's shape, but no day of the calendar
        raise InvalidConfig(NOT_A_DATE(name, value, {}, None)) from None


def _dates(config: Mapping[str, Any]) -> None:
    start, end = parse_day("start_date", config.get("start_date")), parse_day("end_date", config.get("end_date"))
    for name, day in (("start_date", start), ("end_date", end)):
        if day and day < EPOCH:
            raise InvalidConfig(f"{name} {day} is before 1970-01-01, where Mixpanel's times begin: set a later date.")
    if start and end and end < start:
        raise InvalidConfig(f"end_date {end} is before start_date {start}: set an end_date on or after the start_date.")


def _timezone(config: Mapping[str, Any]) -> None:
    timezone = config.get("project_timezone")
    try:
        if timezone is not None:
            pytz.timezone(timezone)
    except pytz.UnknownTimeZoneError:
        raise InvalidConfig(NOT_A_TIMEZONE("project_timezone", timezone, {}, None)) from None


def _base_url(config: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> None:
    value = config.get(name)
    if value in (None, ""):
        return
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
        valid = valid and not parts.query and not parts.fragment and (parts.port or 0) >= 0
        with_credentials = bool(parts.username or parts.password)
    except ValueError:  # a port that is not a number
        valid = with_credentials = False
    if with_credentials:  # never repeat the value: it holds a password
        raise InvalidConfig(f"{name} holds a user name or password (user:password@host): remove them; Mixpanel's "
                            f"credentials go in credentials.")
    if not valid:
        raise InvalidConfig(NOT_A_BASE_URL(name, value, spec[name], None))


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise InvalidConfig with one sentence for the first problem found."""
    spec = spec_properties()
    _credentials(config, spec)
    for name, schema in spec.items():
        if name != "credentials" and config.get(name) is not None:
            error = broken_rule(schema, config[name])
            if error is not None:
                raise InvalidConfig(SENTENCES[name](name, config[name], schema, error))
    _dates(config)
    _timezone(config)
    for name in ("base_url", "export_base_url"):
        _base_url(config, name, spec)
