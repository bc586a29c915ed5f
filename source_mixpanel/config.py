"""Config validation with one human sentence per problem.

Python because the manifest cannot say it: in airbyte-cdk 7.39 the CDK's PredicateValidator crashes, a custom
validator's ValueError surfaces as a system_error, and a bad num_workers crashes before spec validation. This
runs in the entry point before the source is built; the numbers' bounds are the spec's.
"""

import datetime
import json
import re
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import pytz

from source_mixpanel.source import load_manifest

REGIONS = ("US", "EU", "IN")
SERVICE_ACCOUNT = "Service Account"
PROJECT_SECRET = "Project Secret"

EPOCH = datetime.date(1970, 1, 1)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T(\d{2}):(\d{2}):(\d{2})Z)?$")


class InvalidConfig(ValueError):
    """A config problem, worded for the person who has to fix it."""


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


def parse_day(name: str, value: Any) -> Optional[datetime.date]:
    """A start_date/end_date as a day; None when unset."""
    if value is None or value == "":
        return None
    match = _DATE.match(value) if isinstance(value, str) else None
    try:
        if match:
            return datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        pass
    raise InvalidConfig(f'{name} "{value}" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).')


# The spec's whole numbers and their unit; their bounds are the spec's `minimum` and `maximum`.
WHOLE_NUMBERS = {
    "attribution_window": "days",
    "date_window_size": "days",
    "export_window_days": "days",
    "export_lookback_window": "seconds",
    "page_size": "profiles per page",
    "num_workers": "workers",
    "export_read_timeout": "seconds",
    "query_requests_per_hour": "query requests an hour",
    "export_requests_per_hour": "export requests an hour",
    "rate_limit_window_seconds": "seconds",
}


def _whole_number(config: Mapping[str, Any], name: str, unit: str) -> None:
    value = config.get(name)
    if value is None:
        return
    bounds = load_manifest()["spec"]["connection_specification"]["properties"][name]
    minimum, maximum = bounds["minimum"], bounds.get("maximum")
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if in_range and (maximum is None or value <= maximum):
        return
    wanted = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
    shown = f'"{value}"' if isinstance(value, str) else value
    raise InvalidConfig(f"{name} {shown} is not a valid number of {unit}: use a whole number {wanted}.")


# Lists of Mixpanel IDs: what one is called, and where a user finds it.
ID_LISTS = {
    "insights_reports": ("report ID", "the number after report- in a saved Insights report's URL"),
    "group_keys": ("group key ID", "Mixpanel's data_group_id of a group key"),
}


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else json.dumps(value)


def _id_list(config: Mapping[str, Any], name: str, what: str, where: str) -> None:
    value = config.get(name)
    if value is None:
        return
    if not isinstance(value, list):
        raise InvalidConfig(f"{name} must be a list of {what}s ({where}), e.g. [12345].")
    for place, item in enumerate(value):
        if not _is_id(item):
            raise InvalidConfig(f"{name} holds {_shown(item)}, which is not a {what}: list whole numbers from 1 ({where}).")
        if item in value[:place]:
            raise InvalidConfig(f"{name} lists {item} twice: list each {what} once.")


def _credentials(config: Mapping[str, Any]) -> None:
    credentials = config.get("credentials")
    if credentials is not None and not isinstance(credentials, Mapping):
        raise InvalidConfig("credentials must be an object: set a service account (username, secret, project_id) or a project secret (api_secret).")
    credentials = credentials or {}
    method = auth_method(config)
    if method == SERVICE_ACCOUNT:
        for field in ("username", "secret"):
            value = credentials.get(field)
            if not value or not isinstance(value, str):
                problem = "is empty" if not value else "must be text"
                raise InvalidConfig(
                    f"credentials.{field} {problem}: copy the service account's {field} from Mixpanel's Organization Settings > Service Accounts."
                )
        project_id = credentials.get("project_id", config.get("project_id"))
        is_integer = isinstance(project_id, int) and not isinstance(project_id, bool)
        if not (is_integer or (isinstance(project_id, str) and project_id.strip().isdigit())):
            shown = "is missing" if project_id in (None, "") else f'"{project_id}" is not a project ID'
            raise InvalidConfig(
                f"credentials.project_id {shown}: a service account needs the integer project ID from Mixpanel's Project Settings > Overview."
            )
    elif method == PROJECT_SECRET:
        value = credentials.get("api_secret") or config.get("api_secret")
        if not value or not isinstance(value, str):
            problem = "is empty" if not value else "must be text"
            raise InvalidConfig(f"credentials.api_secret {problem}: copy the project secret from Mixpanel's Project Settings > Access Keys.")
    elif method is None:
        raise InvalidConfig("credentials are missing: set a service account (username, secret, project_id) or a project secret (api_secret).")
    else:
        raise InvalidConfig(f'credentials.option_title "{method}" is not an authentication method: use "{SERVICE_ACCOUNT}" or "{PROJECT_SECRET}".')


def _base_url(config: Mapping[str, Any], name: str, example: str) -> None:
    value = config.get(name)
    if value in (None, ""):
        return
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
        valid = valid and not parts.query and not parts.fragment and (parts.port or 0) >= 0
        with_credentials = bool(parts.username or parts.password)
    except (ValueError, TypeError, AttributeError):  # not a string, or a port that is not a number
        valid = with_credentials = False
    if with_credentials:  # never repeat the value: it holds a password
        raise InvalidConfig(f"{name} holds a user name or password (user:password@host): remove them; Mixpanel's credentials go in credentials.")
    if not valid:
        raise InvalidConfig(f'{name} "{value}" is not a base URL: use a scheme, host and optional port only, e.g. {example}.')


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise InvalidConfig with one sentence for the first problem found."""
    _credentials(config)

    start = parse_day("start_date", config.get("start_date"))
    end = parse_day("end_date", config.get("end_date"))
    for name, day in (("start_date", start), ("end_date", end)):
        if day and day < EPOCH:
            raise InvalidConfig(f"{name} {day} is before 1970-01-01, where Mixpanel's times begin: set a later date.")
    if start and end and end < start:
        raise InvalidConfig(f"end_date {end} is before start_date {start}: set an end_date on or after the start_date.")

    timezone = config.get("project_timezone")
    if timezone is not None:
        try:
            pytz.timezone(timezone)
        except (pytz.UnknownTimeZoneError, AttributeError, TypeError):
            raise InvalidConfig(
                f'project_timezone "{timezone}" is not a known timezone: use the IANA name shown in Mixpanel\'s Project Settings, e.g. US/Pacific or UTC.'
            ) from None

    region = config.get("region")
    if region is not None and region not in REGIONS:
        raise InvalidConfig(f'region "{region}" is not a Mixpanel region: use US, EU or IN.')
    storage = config.get("event_time_storage")
    if storage is not None and storage not in ("detect", "utc", "project_timezone"):
        raise InvalidConfig(f'event_time_storage "{storage}" is not a choice: use detect, utc (projects created since '
                            f'2023) or project_timezone (before 2023).')

    for name, unit in WHOLE_NUMBERS.items():
        _whole_number(config, name, unit)

    if config.get("select_properties_by_default") is not None and not isinstance(config["select_properties_by_default"], bool):
        raise InvalidConfig("select_properties_by_default must be true or false.")

    events = config.get("export_events")
    if events is not None and not (isinstance(events, list) and all(isinstance(e, str) and e for e in events)):
        raise InvalidConfig('export_events must be a list of event names, e.g. ["Signed up", "Purchase"].')
    where = config.get("export_where")
    if where is not None and not isinstance(where, str):
        raise InvalidConfig('export_where must be a Mixpanel expression in a string, e.g. properties["$browser"] == "Chrome".')

    for name, (what, where) in ID_LISTS.items():
        _id_list(config, name, what, where)
    workspace = config.get("insights_workspace_id")
    if workspace is not None and not _is_id(workspace):
        raise InvalidConfig(f"insights_workspace_id {_shown(workspace)} is not a workspace ID: use the whole number after "
                            f"/view/ in the reports' URL, or leave it empty.")

    _base_url(config, "base_url", "https://eu.mixpanel.com")
    _base_url(config, "export_base_url", "https://data-eu.mixpanel.com")
