"""Every config problem ends in one sentence that says what to change."""

import pytest

from source_mixpanel.config.validation import InvalidConfig, validate_config

SERVICE_ACCOUNT = {"option_title": "Service Account", "username": "reader", "secret": "s3cr3t-value", "project_id": 42}
GOOD = {"credentials": SERVICE_ACCOUNT, "start_date": "2025-01-01"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"start_date": "2025-13"}, 'start_date "2025-13" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).'),
        ({"start_date": "2025-02-30"}, 'start_date "2025-02-30" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).'),
        ({"end_date": "2025-1-5"}, 'end_date "2025-1-5" is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).'),
        ({"end_date": "2024-12-31"}, "end_date 2024-12-31 is before start_date 2025-01-01: set an end_date on or after the start_date."),
        (
            {"project_timezone": "Mars/Olympus"},
            'project_timezone "Mars/Olympus" is not a known timezone: use the IANA name shown in Mixpanel\'s Project Settings, e.g. US/Pacific or UTC.',
        ),
        ({"region": "APAC"}, 'region "APAC" is not a Mixpanel region: use US, EU or IN.'),
        ({"event_time_storage": "local"}, 'event_time_storage "local" is not a choice: use detect, utc (projects created since 2023) or project_timezone (before 2023).'),
        ({"date_window_size": 0}, "date_window_size 0 is not a valid number of days: use a whole number from 1 to 3650."),
        ({"export_window_days": -2}, "export_window_days -2 is not a valid number of days: use a whole number from 1 to 366."),
        ({"page_size": 0}, "page_size 0 is not a valid number of profiles per page: use a whole number 1 or more."),
        ({"attribution_window": -1}, "attribution_window -1 is not a valid number of days: use a whole number from 0 to 365."),
        ({"export_lookback_window": 1.5}, "export_lookback_window 1.5 is not a valid number of seconds: use a whole number from 0 to 31536000."),
        ({"num_workers": "many"}, 'num_workers "many" is not a valid number of workers: use a whole number from 1 to 25.'),
        ({"num_workers": 26}, "num_workers 26 is not a valid number of workers: use a whole number from 1 to 25."),
        ({"num_workers": True}, "num_workers true is not a valid number of workers: use a whole number from 1 to 25."),
        ({"query_requests_per_hour": 0}, "query_requests_per_hour 0 is not a valid number of query requests an hour: use a whole number from 1 to 100000."),
        ({"export_requests_per_hour": "60"}, 'export_requests_per_hour "60" is not a valid number of export requests an hour: use a whole number from 1 to 100000.'),
        ({"rate_limit_window_seconds": 0.5}, "rate_limit_window_seconds 0.5 is not a valid number of seconds: use a whole number from 1 to 86400."),
        (
            {"credentials": {**SERVICE_ACCOUNT, "project_id": "abc"}},
            "credentials.project_id \"abc\" is not a project ID: a service account needs the integer project ID from Mixpanel's Project Settings > Overview.",
        ),
        (
            {"credentials": {k: v for k, v in SERVICE_ACCOUNT.items() if k != "project_id"}},
            "credentials.project_id is missing: a service account needs the integer project ID from Mixpanel's Project Settings > Overview.",
        ),
        (
            {"credentials": {**SERVICE_ACCOUNT, "secret": ""}},
            "credentials.secret is empty: copy the service account's secret from Mixpanel's Organization Settings > Service Accounts.",
        ),
        (
            {"credentials": {"option_title": "Project Secret"}},
            "credentials.api_secret is empty: copy the project secret from Mixpanel's Project Settings > Access Keys.",
        ),
        (
            {"credentials": {"option_title": "OAuth"}},
            'credentials.option_title "OAuth" is not an authentication method: use "Service Account" or "Project Secret".',
        ),
        (
            {"credentials": None},
            "credentials are missing: set a service account (username, secret, project_id) or a project secret (api_secret).",
        ),
        (
            {"base_url": "eu.mixpanel.com"},
            'base_url "eu.mixpanel.com" is not a base URL: use a scheme, host and optional port only, e.g. https://eu.mixpanel.com.',
        ),
        (
            {"export_base_url": "https://data-eu.mixpanel.com/api/2.0"},
            'export_base_url "https://data-eu.mixpanel.com/api/2.0" is not a base URL: use a scheme, host and optional port only, e.g. https://data-eu.mixpanel.com.',
        ),
        (
            {"base_url": "http://127.0.0.1:port"},
            'base_url "http://127.0.0.1:port" is not a base URL: use a scheme, host and optional port only, e.g. https://eu.mixpanel.com.',
        ),
        # Plain http carries the Basic credentials in clear text: only to loopback, where the simulator runs.
        (
            {"base_url": "http://mixpanel.com"},
            'base_url "http://mixpanel.com" would send the Mixpanel credentials unencrypted: use https:// in place of http:// (plain http is taken only for localhost, 127.0.0.0/8 and ::1).',
        ),
        (
            {"export_base_url": "HTTP://10.0.0.7:8080/"},
            'export_base_url "HTTP://10.0.0.7:8080/" would send the Mixpanel credentials unencrypted: use https:// in place of http:// (plain http is taken only for localhost, 127.0.0.0/8 and ::1).',
        ),
        (
            {"base_url": "http://localhost.example.com"},
            'base_url "http://localhost.example.com" would send the Mixpanel credentials unencrypted: use https:// in place of http:// (plain http is taken only for localhost, 127.0.0.0/8 and ::1).',
        ),
        # What urlsplit drops or keeps silently, and requests then refuses to parse.
        ({"base_url": "https://eu.mixpanel.com\t"}, "base_url holds a space, tab, line break or other invisible character: remove it."),
        ({"export_base_url": "https://data.mixpanel.com\n"}, "export_base_url holds a space, tab, line break or other invisible character: remove it."),
        ({"base_url": " https://eu.mixpanel.com"}, "base_url holds a space, tab, line break or other invisible character: remove it."),
        ({"base_url": "https://eu.mixpanel\u200b.com"}, "base_url holds a space, tab, line break or other invisible character: remove it."),
        ({"base_url": "https://user:pw\t@proxy.example.com"}, "base_url holds a space, tab, line break or other invisible character: remove it."),
        # pytz finds a zone in any case, zoneinfo only as the tz database spells it.
        ({"project_timezone": "utc"}, 'project_timezone "utc" is not a timezone as written (names are case-sensitive): use UTC.'),
        ({"project_timezone": "us/pacific"}, 'project_timezone "us/pacific" is not a timezone as written (names are case-sensitive): use US/Pacific.'),
        ({"project_timezone": "Europe/berlin"}, 'project_timezone "Europe/berlin" is not a timezone as written (names are case-sensitive): use Europe/Berlin.'),
        (
            {"project_timezone": "UTC "},
            'project_timezone "UTC " is not a known timezone: use the IANA name shown in Mixpanel\'s Project Settings, e.g. US/Pacific or UTC.',
        ),
        # null: the spec takes none, and the CDK would say it in jsonschema's words.
        ({"event_time_storage": None}, "event_time_storage null is not a choice: use detect, utc (projects created since 2023) or project_timezone (before 2023)."),
        (
            {"project_timezone": None},
            "project_timezone null is not a known timezone: use the IANA name shown in Mixpanel's Project Settings, e.g. US/Pacific or UTC.",
        ),
        ({"num_workers": None}, "num_workers null is not a valid number of workers: use a whole number from 1 to 25."),
        ({"start_date": None}, "start_date null is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ)."),
        ({"base_url": None}, "base_url null is not a base URL: use a scheme, host and optional port only, e.g. https://eu.mixpanel.com."),
        ({"export_events": "Signed up"}, 'export_events must be a list of event names, e.g. ["Signed up", "Purchase"].'),
        ({"select_properties_by_default": "yes"}, "select_properties_by_default must be true or false."),
        # Numbers that passed and then crashed the sync: each has a bound from the spec.
        ({"attribution_window": 10**12}, "attribution_window 1000000000000 is not a valid number of days: use a whole number from 0 to 365."),
        ({"export_window_days": 10**12}, "export_window_days 1000000000000 is not a valid number of days: use a whole number from 1 to 366."),
        ({"export_lookback_window": 10**12}, "export_lookback_window 1000000000000 is not a valid number of seconds: use a whole number from 0 to 31536000."),
        ({"export_read_timeout": 10**12}, "export_read_timeout 1000000000000 is not a valid number of seconds: use a whole number from 1 to 86400."),
        ({"start_date": "0001-01-01"}, "start_date 0001-01-01 is before 1970-01-01, where Mixpanel's times begin: set a later date."),
        (
            {"credentials": {**SERVICE_ACCOUNT, "username": 5}},
            "credentials.username must be text: copy the service account's username from Mixpanel's Organization Settings > Service Accounts.",
        ),
        (
            {"base_url": "https://proxy-user:hunter2@proxy.example.com"},
            "base_url holds a user name or password (user:password@host): remove them; Mixpanel's credentials go in credentials.",
        ),
        # A password is never repeated, even where the rest of the URL does not parse.
        (
            {"base_url": "https://proxy-user:hunter2@proxy.example.com:port"},
            "base_url holds a user name or password (user:password@host): remove them; Mixpanel's credentials go in credentials.",
        ),
        (
            {"export_base_url": "http://proxy-user:hunter2@[::1"},
            "export_base_url holds a user name or password (user:password@host): remove them; Mixpanel's credentials go in credentials.",
        ),
        # Saved Insights reports and group keys: lists of Mixpanel's IDs, each once.
        (
            {"insights_reports": 12345},
            "insights_reports must be a list of report IDs (the number after report- in a saved Insights report's URL), e.g. [12345].",
        ),
        (
            {"insights_reports": [12345, "67890"]},
            'insights_reports holds "67890", which is not a report ID: list whole numbers from 1 (the number after report- in a saved Insights report\'s URL).',
        ),
        (
            {"insights_reports": [0]},
            "insights_reports holds 0, which is not a report ID: list whole numbers from 1 (the number after report- in a saved Insights report's URL).",
        ),
        (
            {"insights_reports": [12.5]},
            "insights_reports holds 12.5, which is not a report ID: list whole numbers from 1 (the number after report- in a saved Insights report's URL).",
        ),
        ({"insights_reports": [7, 8, 7]}, "insights_reports lists 7 twice: list each report ID once."),
        (
            {"group_keys": [True]},
            "group_keys holds true, which is not a group key ID: list whole numbers from 1 (Mixpanel's data_group_id of a group key).",
        ),
        (
            {"group_keys": [None]},
            "group_keys holds null, which is not a group key ID: list whole numbers from 1 (Mixpanel's data_group_id of a group key).",
        ),
        (
            {"group_keys": "1"},
            "group_keys must be a list of group key IDs (Mixpanel's data_group_id of a group key), e.g. [12345].",
        ),
        ({"group_keys": [1, 1]}, "group_keys lists 1 twice: list each group key ID once."),
        (
            {"insights_workspace_id": "main"},
            'insights_workspace_id "main" is not a workspace ID: use the whole number after /view/ in the reports\' URL, or leave it empty.',
        ),
        (
            {"insights_workspace_id": -4},
            "insights_workspace_id -4 is not a workspace ID: use the whole number after /view/ in the reports' URL, or leave it empty.",
        ),
    ],
)
def test_each_bad_config_gets_its_sentence(change, message):
    with pytest.raises(InvalidConfig) as raised:
        validate_config({**GOOD, **change})
    assert str(raised.value) == message
    assert SERVICE_ACCOUNT["secret"] not in str(raised.value)


@pytest.mark.parametrize(
    "config",
    [
        GOOD,
        {"credentials": {**SERVICE_ACCOUNT, "project_id": "42"}},
        {"credentials": {"username": "reader", "secret": "x", "project_id": 42}},  # option_title inferred
        {"credentials": {"option_title": "Project Secret", "api_secret": "abc"}},
        {"api_secret": "abc"},  # pre-4.x shape, migrated by the manifest
        {"credentials": {"username": "reader", "secret": "x"}, "project_id": 42},  # 4.x before project_id moved
        {**GOOD, "start_date": "2025-01-01T00:00:00Z", "end_date": "", "region": "IN", "project_timezone": "Europe/Berlin"},
        {**GOOD, "base_url": "http://127.0.0.1:8123", "export_base_url": "https://data-eu.mixpanel.com/", "num_workers": 25},
        {**GOOD, "base_url": "http://localhost:8123", "export_base_url": "http://[::1]:8123"},
        {**GOOD, "base_url": "HTTP://127.0.0.2", "export_base_url": "https://münchen.example"},
        {**GOOD, "project_timezone": "America/Argentina/Buenos_Aires"},
        {**GOOD, "export_events": ["Signed up"], "export_where": 'properties["$browser"] == "Chrome"', "attribution_window": 0},
        {**GOOD, "insights_reports": [61001, 61002], "insights_workspace_id": 3, "group_keys": [1, 2]},
        {**GOOD, "insights_reports": [], "group_keys": []},  # empty: the streams are not offered
    ],
)
def test_good_configs_pass(config):
    validate_config(config)
