"""When the funnels' per-partition cursor sends its STATE: soon after a funnel finishes, otherwise every ten minutes."""

import time
from threading import Lock, Timer
from typing import Any, Optional

# A funnel that finishes this soon after the last STATE waits for the next, with the funnels finishing meanwhile.
FINISHED_FUNNEL_DELAY = 5.0
# Windows read of funnels still being read: the CDK's own interval.
PROGRESS_DELAY = 600.0


class PartitionStateCadence:
    """Sends a per-partition cursor's STATE within seconds of a funnel finishing, otherwise at most every ten minutes,
    from a timer when no window closes meanwhile (an hour's budget wait), and never one equal to the last.

    Python because the CDK's ConcurrentPerPartitionCursor has no setting for when its STATE goes out.

    It judges its ten-minute throttle only when a window closes, so a funnel finished before a budget wait went
    unrecorded through the wait, and with the throttle off every window's STATE held every funnel (funnels squared:
    200 funnels x 5 days, 18 MB). The CDK calls `_emit_state_message` holding the cursor's lock when a window closes,
    and without it, all windows closed, for the stream's last STATE; unit_tests/test_partition_states.py pins what
    this relies on.
    """

    def __init__(self, cursor: Any) -> None:
        self._cursor, self._send = cursor, cursor._emit_state_message
        self._lock = Lock()  # the last STATE sent and the timer
        self._sent: Optional[dict] = None
        self._sent_at = float("-inf")
        self._finished_when_sent = 0
        self._timer: Optional[Timer] = None
        self._timer_due = float("inf")
        self._done = False
        cursor._emit_state_message = self.window_closed_or_stream_done

    def window_closed_or_stream_done(self, throttle: bool = True) -> None:
        with self._lock:
            if not throttle:  # the stream's last STATE: no timer may send after it
                self._done = True
                self._send_if_changed()
            elif not self._done:
                due = self._sent_at + (FINISHED_FUNNEL_DELAY if self._finished() > self._finished_when_sent else PROGRESS_DELAY)
                if time.monotonic() >= due:
                    self._send_if_changed()
                elif due < self._timer_due:
                    self._cancel_timer()
                    self._timer_due = due
                    self._timer = Timer(due - time.monotonic(), self._on_timer)
                    self._timer.daemon = True
                    self._timer.start()

    def _on_timer(self) -> None:
        with self._cursor._lock, self._lock:
            if not self._done:
                self._send_if_changed()

    def _finished(self) -> int:
        """Funnels whose windows have all been generated and closed in this sync."""
        return self._cursor._generated_partitions_count - len(self._cursor._processing_partitions_indexes)

    def _send_if_changed(self) -> None:
        self._cancel_timer()
        self._finished_when_sent = self._finished()
        state = self._cursor.state
        if state != self._sent:
            self._send(throttle=False)
            self._sent, self._sent_at = state, time.monotonic()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_due = None, float("inf")
