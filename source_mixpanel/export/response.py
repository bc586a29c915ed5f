"""What an export response carries from the body check to the decoder: its window as asked, its spool, when it was sent.

Python because the CDK hands the decoder only the response: the body check leaves the spooled body and the sending
time on it, and both read the window from the request's query string with this one parser.
"""

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import requests

SPOOL_ATTRIBUTE = "_mixpanel_export_spool"
SENT_ATTRIBUTE = "_mixpanel_export_sent"  # when the request that the spooled body answers was sent (monotonic)


@dataclass(frozen=True)
class Window:
    """A window's first and last day as its request asked for them (YYYY-MM-DD each, "" where not asked)."""

    first: str
    last: str

    def __str__(self) -> str:
        """The days as from..to, for messages."""
        return f"{self.first or '?'}..{self.last or '?'}"


def window_of(response: requests.Response) -> Window:
    """The window an export request asked for."""
    query = dict(parse_qsl(urlsplit(response.url or "").query))
    return Window(query.get("from_date", ""), query.get("to_date", ""))
