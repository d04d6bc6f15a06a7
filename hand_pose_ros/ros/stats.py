"""Small thread-safe helpers for the nodes and the monitor (no ROS imports).

- LatestSlot: a one-slot "newest frame" buffer between a subscription callback and a
  worker thread. A new frame replaces an unprocessed one (counted as dropped), so a slow
  model drops frames instead of building a backlog and adding latency.
- RateMeter: events per second over a sliding time window.
- Window: the last N samples of a number, with mean and percentiles.
- OrderedStamps: output stamps that never go backwards.
- StepClock: wall and thread CPU time of the named steps of one frame.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any

import numpy as np


class LatestSlot:
    """One-slot buffer: `put` never blocks, `take` waits for the newest item."""

    def __init__(self):
        self._item = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0   # items replaced before anyone took them
        self.accepted = 0  # items put

    def put(self, item: Any) -> bool:
        """Store `item`, replacing any unprocessed one. Returns True when one was dropped."""
        with self._cond:
            dropped = self._full
            self.dropped += int(dropped)
            self.accepted += 1
            self._item, self._full = item, True
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None):
        """The newest item (and empty the slot), or None after `timeout` s or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout=timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting `take` (they return None) and refuse to wait again."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class RateMeter:
    """Events per second over the last `window_s` seconds (monotonic clock by default)."""

    def __init__(self, window_s: float = 2.0, clock=time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            # Intervals between the events in the window, over the window's actual span.
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()


class Window:
    """The last `size` samples of a number (thread-safe)."""

    def __init__(self, size: int = 300):
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def values(self) -> np.ndarray:
        with self._lock:
            return np.array(self._values, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._values)

    def mean(self) -> float:
        # plain floats: no array per call (diagnostics ask every window once a second)
        with self._lock:
            return math.fsum(self._values) / len(self._values) if self._values else float("nan")

    def percentile(self, q: float) -> float:
        v = self.values()
        return float(np.percentile(v, q)) if v.size else float("nan")


class OrderedStamps:
    """Stamps (integer nanoseconds) for a stream of outputs that must never go backwards.

    A stamp older than the last one given out is replaced by that one: e.g. a held command
    stamped 'now' by a timer, then a fresh command carrying its older image stamp. A stamp
    more than `clock_reset_s` older is a reset of the clock itself (a bag loop, /clock
    restarting): it is accepted and counted, since clamping would freeze every stamp until
    the clock caught up again.
    """

    def __init__(self, clock_reset_s: float = 1.0):
        self.clock_reset_ns = int(clock_reset_s * 1e9)
        self.last_ns: int | None = None
        self.clamped = 0
        self.clock_resets = 0

    def next(self, stamp_ns: int) -> int:
        stamp_ns = int(stamp_ns)
        if self.last_ns is not None and stamp_ns < self.last_ns:
            if self.last_ns - stamp_ns <= self.clock_reset_ns:
                self.clamped += 1
                return self.last_ns
            self.clock_resets += 1
        self.last_ns = stamp_ns
        return stamp_ns


class StepClock:
    """Wall time (perf_counter) and the calling thread's CPU time (thread_time) of the named
    steps of one frame, in ms; a step timed twice adds up. CPU time is what a loaded machine
    does not inflate by making the thread wait.

        clock = StepClock()
        with clock("decode"):
            ...
    """

    def __init__(self):
        self.wall_ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}
        self._open: list[tuple[str, float, float]] = []

    def __call__(self, name: str) -> "StepClock":
        self._open.append((name, time.perf_counter(), time.thread_time()))
        return self

    # a plain context manager: a third of the cost of a contextlib generator, per step per frame
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        name, wall_start, cpu_start = self._open.pop()
        self.add(name, (wall - wall_start) * 1e3, (cpu - cpu_start) * 1e3)

    def add(self, name: str, wall_ms: float, cpu_ms: float) -> None:
        self.wall_ms[name] = self.wall_ms.get(name, 0.0) + wall_ms
        self.cpu_ms[name] = self.cpu_ms.get(name, 0.0) + cpu_ms


def percentiles(values, qs=(50, 99)) -> dict[int, float]:
    """{q: percentile} of a list of numbers; NaN for an empty list (JSON writers turn it into null)."""
    v = np.asarray(list(values), dtype=np.float64)
    return {q: (float(np.percentile(v, q)) if v.size else float("nan")) for q in qs}
