"""Config validation with one human sentence per problem: the spec's own rules put into words, then the rules it cannot state.

Python because the manifest cannot say it: in airbyte-cdk 7.39 the CDK's PredicateValidator crashes, a custom validator's
ValueError surfaces as a system_error, and a bad num_workers crashes before spec validation. It runs in the entry point.
Types, bounds, choices, patterns and unique lists are the spec's (manifest.yaml), checked and worded in config/spec.py.
This module adds what a JSON schema cannot state, field by field in the spec's order (OWN_RULES): real calendar dates
from 1970, an end on or after the start, a timezone spelled as zoneinfo spells it, a base URL's shape (https but to
loopback), and the shapes credentials have had.
"""

import datetime
import ipaddress
import re
import zoneinfo
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import pytz

from source_mixpanel.config.spec import NOT_A_BASE_URL, NOT_A_DATE, NOT_A_TIMEZONE, SENTENCES, broken_rule, spec_properties

SERVICE_ACCOUNT = "Service Account"
PROJECT_SECRET = "Project Secret"
EPOCH = datetime.date(1970, 1, 1)
DEFAULT_TIMEZONE = "US/Pacific"  # the spec's default for project_timezone
DEFAULT_START_DAYS = 365  # how far back a config without start_date starts (the manifest's sync_first_day)
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")  # the numbers of a value that matched the spec's date pattern


class InvalidConfig(ValueError):
    """A config problem, worded for the person who has to fix it."""


# Where a user finds each credential.
CREDENTIAL_SOURCES = {
    "username": "copy the service account's username from Mixpanel's Organization Settings > Service Accounts",
    "secret": "copy the service account's secret from Mixpanel's Organization Settings > Service Accounts",
    "api_secret": "copy the project secret from Mixpanel's Project Settings > Access Keys",
}
# The manifest's config migration puts these pre-4.x top-level values into credentials, over what is there.
MOVED_IN_FROM_TOP_LEVEL = ("api_secret", "project_id")
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
        value = config[name] if name in MOVED_IN_FROM_TOP_LEVEL and config.get(name) is not None else credentials.get(name)
        if name == "project_id":  # 4.x configs may hold it as text; the manifest makes it the integer the spec says
            if broken_rule(schema, value) and not (isinstance(value, str) and value.strip().isdecimal()):
                shown = "is missing" if value in (None, "") else f'"{value}" is not a project ID'
                raise InvalidConfig(f"credentials.project_id {shown}: a service account needs the integer project ID "
                                    f"from Mixpanel's Project Settings > Overview.")
        elif value is None or broken_rule(schema, value):
            raise InvalidConfig(f"credentials.{name} {'is empty' if not value else 'must be text'}: {CREDENTIAL_SOURCES[name]}.")
        elif not _is_unicode(value):
            raise InvalidConfig(f"credentials.{name} is not valid text (it holds an unpaired surrogate such as \\ud800): "
                                f"{CREDENTIAL_SOURCES[name]}.")


def _is_unicode(text: str) -> bool:
    """Whether text can be sent: JSON's \\ud800 escapes make strings that UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_day(name: str, value: Any) -> Optional[datetime.date]:
    """A start_date/end_date as a day; None when unset."""
    if not value:
        return None
    match = _DAY.match(value) if isinstance(value, str) else None
    try:
        if match:
            return datetime.date(*(int(part) for part in match.groups()))
    except ValueError:  # 2025-02-30: the pattern's shape, but no day of the calendar
        pass
    raise InvalidConfig(NOT_A_DATE(name, value, {}, None))


def _calendar_day(name: str, value: Any, schema: Mapping[str, Any]) -> None:
    day = parse_day(name, value)
    if day and day < EPOCH:
        raise InvalidConfig(f"{name} {day} is before 1970-01-01, where Mixpanel's times begin: set a later date.")


def _known_timezone(name: str, value: Any, schema: Mapping[str, Any]) -> None:
    try:
        canonical = pytz.timezone(value).zone  # pytz finds "us/pacific" too; zoneinfo, used for the export, does not
        zoneinfo.ZoneInfo(canonical)
    except (pytz.UnknownTimeZoneError, zoneinfo.ZoneInfoNotFoundError):
        raise InvalidConfig(NOT_A_TIMEZONE(name, value, schema, None)) from None
    if canonical != value:
        raise InvalidConfig(f'{name} "{value}" is not a timezone as written (names are case-sensitive): use {canonical}.')


def _is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only hosts plain http may carry credentials to."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost
        return False


def _base_url(name: str, value: Any, schema: Mapping[str, Any]) -> None:
    if value == "":
        return
    if any(character.isspace() or not character.isprintable() for character in value):
        raise InvalidConfig(f"{name} holds a space, tab, line break or other invisible character: remove it.")
    if "@" in value:  # user:password@host, the only place a base URL may hold one: never repeat it, parsed or not
        raise InvalidConfig(f"{name} holds a user name or password (user:password@host): remove them; Mixpanel's "
                            f"credentials go in credentials.")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
        valid = valid and not parts.query and not parts.fragment and (parts.port or 0) >= 0
    except ValueError:  # a port that is not a number, an IPv6 bracket left open
        valid = False
    if not valid:
        raise InvalidConfig(NOT_A_BASE_URL(name, value, schema, None))
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InvalidConfig(f'{name} "{value}" would send the Mixpanel credentials unencrypted: use https:// in place of '
                            f"http:// (plain http is taken only for localhost, 127.0.0.0/8 and ::1).")


# The rules a field keeps beyond its spec, checked once its spec rules pass.
OWN_RULES = {"start_date": _calendar_day, "end_date": _calendar_day, "project_timezone": _known_timezone,
             "base_url": _base_url, "export_base_url": _base_url}


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise InvalidConfig with one sentence for the first problem found, field by field in the spec's order."""
    spec = spec_properties()
    _credentials(config, spec)
    for name, schema in spec.items():
        if name == "credentials" or name not in config:
            continue
        value = config[name]  # null too: the spec takes no null, and the CDK's words for it are jsonschema's
        error = broken_rule(schema, value)
        if error is not None:
            raise InvalidConfig(SENTENCES[name](name, value, schema, error))
        if name in OWN_RULES:
            OWN_RULES[name](name, value, schema)
    start, end = parse_day("start_date", config.get("start_date")), parse_day("end_date", config.get("end_date"))
    if start and end and end < start:
        raise InvalidConfig(f"end_date {end} is before start_date {start}: set an end_date on or after the start_date.")
    default_start = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=DEFAULT_START_DAYS)
    if end and not start and end < default_start:  # the manifest's first day is then 365 days ago, after the last
        raise InvalidConfig(f"end_date {end} is before {default_start}, where a config without start_date starts (365 "
                            f"days ago): set a start_date on or before the end_date.")
    timezone = config.get("project_timezone") or DEFAULT_TIMEZONE
    today = datetime.datetime.now(zoneinfo.ZoneInfo(timezone)).date()
    if start and start > today:  # the manifest's last day is today: a later first day leaves no day to read
        raise InvalidConfig(f"start_date {start} is after today ({today} in the project timezone {timezone}): nothing "
                            f"can be read from a day that has not begun; set a start_date on or before today.")
