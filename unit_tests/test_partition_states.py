"""partition_states.PartitionStateCadence: the funnels' STATE soon after a funnel finishes, else every ten minutes.

The first test pins the CDK details it relies on; if a CDK upgrade breaks them, it fails here."""

import threading

import pytest
from airbyte_cdk.sources.declarative.incremental import ConcurrentPerPartitionCursor
from airbyte_cdk.sources.types import Record, StreamSlice

from source_mixpanel import partition_states
from source_mixpanel.source import SourceMixpanel
from unit_tests.test_export_cursor import CONFIG

FUNNELS = (7, 8, 9)
DAY_1, DAY_2 = "2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z"


class _Partition:
    def __init__(self, window):
        self._window = window

    def to_slice(self):
        return self._window

    def stream_name(self):
        return "funnels"


class _Clock:
    now = 1000.0

    def monotonic(self):
        return self.now


class _Timers:
    """Timers that fire when the test says."""

    def __init__(self):
        self.armed = []

    def __call__(self, delay, function):
        timers = self

        class Timer:
            daemon = False

            def start(self):
                timers.armed.append(self)

            def cancel(self):  # as threading.Timer's: nothing once it has fired
                if self in timers.armed:
                    timers.armed.remove(self)

            def fire(self):
                timers.armed.remove(self)
                function()

        return Timer()


def funnels_cursor(days=2, funnels=FUNNELS):
    """The funnels stream's cursor over these funnels, one-day windows from 2025-03-01, sending its STATEs into a list."""
    config = {**CONFIG, "start_date": "2025-03-01", "end_date": f"2025-03-0{days}", "date_window_size": 1,
              "attribution_window": 0}
    (stream,) = [s for s in SourceMixpanel(config=config).streams(config) if s.name == "funnels"]
    cursor = stream.cursor
    cursor._partition_router.stream_slices = lambda: iter(
        StreamSlice(partition={"funnel_id": funnel, "parent_slice": {}}, cursor_slice={}) for funnel in funnels)
    sent = []
    cursor._message_repository = type("Repository", (), {"emit_message": lambda self, message: sent.append(message)})()
    windows = [_Partition(window) for window in cursor.stream_slices()]
    return cursor, windows, sent


def read(cursor, window):
    """One funnel window read: a record of its day, then its close."""
    day = window.to_slice()["start_time"][:10]
    cursor.observe(Record(data={"date": day}, stream_name="funnels", associated_slice=window.to_slice()))
    cursor.close_partition(window)


def saved(message):
    state = message.state.stream.stream_state.__dict__
    return {s["partition"]["funnel_id"]: s["cursor"]["date"] for s in state["states"]}


@pytest.fixture
def clock(monkeypatch):
    clock, timers = _Clock(), _Timers()
    monkeypatch.setattr(partition_states, "time", clock)
    monkeypatch.setattr(partition_states, "Timer", timers)
    clock.timers = timers
    return clock


def test_the_cdk_emits_through_emit_state_message_holding_its_lock_and_counts_finished_partitions(monkeypatch):
    cursor, windows, _ = funnels_cursor(days=3, funnels=FUNNELS[:2])
    assert isinstance(cursor, ConcurrentPerPartitionCursor)
    assert isinstance(cursor._emit_state_message.__self__, partition_states.PartitionStateCadence)
    calls = []
    monkeypatch.setattr(cursor, "_emit_state_message", lambda throttle=True: calls.append((throttle, cursor._lock.locked(),
        cursor._generated_partitions_count - len(cursor._processing_partitions_indexes))))
    assert len(windows) == 6  # three windows a funnel
    for window in windows:
        cursor.close_partition(window)
    cursor.ensure_at_least_one_state_emitted()
    # A window closed: throttled, under the lock; the third window of each funnel finishes it; the last, unlocked.
    assert calls == [(True, True, 0), (True, True, 0), (True, True, 1), (True, True, 1), (True, True, 1),
                     (True, True, 2), (False, False, 2)]


def test_a_state_when_the_first_window_closes_then_soon_after_each_funnel_finishes(clock):
    cursor, windows, sent = funnels_cursor()
    a1, a2, b1, b2, c1, c2 = windows
    read(cursor, a1)  # the first STATE: every funnel at its start (a day's record saves the day's start)
    assert [saved(m) for m in sent] == [dict.fromkeys(FUNNELS, DAY_1)]
    clock.now += 60
    read(cursor, b2)  # B not finished: only progress, within ten minutes
    assert len(sent) == 1 and clock.timers.armed
    read(cursor, a2)  # A finished
    assert saved(sent[-1]) == {7: DAY_2, 8: DAY_1, 9: DAY_1} and not clock.timers.armed
    clock.now += 1
    read(cursor, b1)  # B finished a second later: it waits for the timer, with what finishes meanwhile
    read(cursor, c1)
    (timer,) = clock.timers.armed
    assert len(sent) == 2
    clock.now += partition_states.FINISHED_FUNNEL_DELAY
    timer.fire()
    assert len(sent) == 3 and saved(sent[-1]) == {7: DAY_2, 8: DAY_2, 9: DAY_1}
    clock.now += partition_states.FINISHED_FUNNEL_DELAY
    read(cursor, c2)  # C finished a while after the last STATE: sent at once
    assert len(sent) == 4 and saved(sent[-1]) == dict.fromkeys(FUNNELS, DAY_2)
    cursor.ensure_at_least_one_state_emitted()  # the stream's last, with the CDK's global cursor added
    assert len(sent) == 5 and not clock.timers.armed


def test_progress_within_a_funnel_is_sent_after_ten_minutes_when_no_window_closes_and_never_the_same_twice(clock):
    cursor, windows, sent = funnels_cursor(days=3)
    a1, a2, a3, b1 = windows[:4]
    read(cursor, a1)
    read(cursor, a2)
    (timer,) = clock.timers.armed  # a budget wait: no window closes meanwhile
    clock.now += partition_states.PROGRESS_DELAY
    timer.fire()
    assert len(sent) == 2 and saved(sent[-1]) == {7: DAY_2, 8: DAY_1, 9: DAY_1}
    read(cursor, b1)  # a window whose record changes nothing seen in the state
    (timer,) = clock.timers.armed
    clock.now += partition_states.PROGRESS_DELAY
    timer.fire()
    assert len(sent) == 2
    read(cursor, a3)
    assert len(sent) == 3 and saved(sent[-1])[7] == "2025-03-03T00:00:00Z"


def test_no_timer_sends_after_the_streams_last_state(clock):
    cursor, windows, sent = funnels_cursor()
    for window in windows:
        read(cursor, window)
    assert len(clock.timers.armed) == 1
    cursor.ensure_at_least_one_state_emitted()
    assert not clock.timers.armed
    cursor._emit_state_message.__self__._on_timer()  # a callback already running when the timer was cancelled
    assert len(sent) == 2 and saved(sent[-1]) == dict.fromkeys(FUNNELS, DAY_2)


def test_the_timer_waits_for_a_window_being_closed(clock):
    cursor, windows, sent = funnels_cursor(days=3)
    read(cursor, windows[0])
    read(cursor, windows[1])
    (timer,) = clock.timers.armed
    with cursor._lock:
        firing = threading.Thread(target=timer.fire)
        firing.start()
        firing.join(0.2)
        assert firing.is_alive() and len(sent) == 1
    firing.join(5)
    assert len(sent) == 2
