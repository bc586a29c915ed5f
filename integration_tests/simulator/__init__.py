"""A local fake Mixpanel read API for the connector's integration tests.

One ThreadingHTTPServer on 127.0.0.1 answers for every Mixpanel host (query, export and app), so the connector is
pointed at it with ``base_url`` and ``export_base_url`` both set to ``sim.url``. It follows Mixpanel's read API as
docs/streams.md describes it: paths, auth, body shapes, error bodies, the export faults seen in the wild and, when
``rate_limits`` is on, Mixpanel's per-project budgets (a 429 with Mixpanel's body over them).

Everything served is deterministic from ``seed`` (and the day, profile or funnel it describes), and the same values
are available in process as ground truth (``export_truth``, ``profiles``, ...) or over HTTP under ``/_sim/`` when the
simulator runs in another process (``python -m integration_tests.simulator --port 8123``). Standard library only.
"""
from .cli import _switch
from .switches import SWITCHES
from .common import API_SECRET, PROJECT_ID, SA_SECRET, SA_USERNAME
from .core import MixpanelSimulator
from .events import EVENT_NAMES
from .profiles import GROUP_KEYS
from .reports import FUNNELS_BOOKMARK, INSIGHTS_REPORTS

__all__ = ["API_SECRET", "EVENT_NAMES", "FUNNELS_BOOKMARK", "GROUP_KEYS", "INSIGHTS_REPORTS", "PROJECT_ID", "SA_SECRET",
           "SA_USERNAME", "SWITCHES", "MixpanelSimulator", "_switch"]
