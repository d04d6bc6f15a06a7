"""One Euro filter (Casiez, Roussel and Vogel, CHI 2012): an adaptive low-pass filter.

At low speed it smooths strongly (cutoff `min_cutoff` Hz) to remove jitter; as the signal
speeds up the cutoff rises by `beta` * |speed| so fast motion is not delayed. Used by the
pose node on keypoints and by the retargeting pipeline on keypoints or joint angles (never
both at full strength: two strong low-pass filters in a row only add lag).

Vectorised over any array shape (every element filtered independently) and NaN-safe: a
non-finite input element gives NaN for that element and clears only that element's state,
so a missing keypoint neither poisons its neighbours nor drags stale history in when it
comes back.
"""
from __future__ import annotations

import math

import numpy as np


def _smoothing_factor(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential smoothing weight of a first-order low-pass with this cutoff over dt."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filter a stream of arrays sampled at times `t` (seconds, increasing).

    min_cutoff: cutoff (Hz) at zero speed; lower = smoother and laggier.
    beta: how fast the cutoff rises with speed (per unit of the signal per second).
    d_cutoff: cutoff (Hz) of the low-pass on the speed estimate itself.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"OneEuroFilter: {name} must be a positive number of Hz, got {value!r}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"OneEuroFilter: beta must be >= 0, got {beta!r}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget all history: the next sample passes through unchanged."""
        self._value: np.ndarray | None = None  # last filtered value, NaN where no history
        self._speed: np.ndarray | None = None  # last filtered derivative
        self._t: float | None = None
        self._complete = False  # the history is finite everywhere (no element to restart)

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.array(x, dtype=np.float64)  # a copy: the caller's array is never touched
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"OneEuroFilter: time must be finite, got {t!r}")
        finite = np.isfinite(x)
        complete = bool(finite.all())  # the usual case: no element to mask or restart
        if not complete:
            x[~finite] = np.nan

        if self._value is None:
            return self._start(x, t)
        if x.shape != self._value.shape:
            raise ValueError(f"OneEuroFilter: input shape {x.shape} differs from the previous "
                             f"{self._value.shape}; call reset() before changing shape")
        dt = t - self._t
        if dt <= 0:
            # Same or older timestamp: nothing new to learn; answer what we had, updated
            # only where an element had no history yet.
            fresh = finite & np.isnan(self._value)
            self._value[fresh] = x[fresh]
            self._speed[fresh] = 0.0
            self._value[~finite] = np.nan
            self._speed[~finite] = np.nan
            self._complete = not np.isnan(self._value).any()
            return self._value.copy()

        with np.errstate(invalid="ignore"):
            speed = (x - self._value) / dt
            speed_hat = self._speed + _smoothing_factor(self.d_cutoff, dt) * (speed - self._speed)
            cutoff = self.min_cutoff + self.beta * np.abs(speed_hat)
            value_hat = self._value + _smoothing_factor(cutoff, dt) * (x - self._value)

        if complete and self._complete:
            # every element finite, now and before: the masking below would change nothing
            self._value, self._speed, self._t = value_hat, speed_hat, t
            return value_hat.copy()
        # Elements with no history (new, or back after a gap) restart from the raw sample.
        restart = finite & np.isnan(self._value)
        value_hat = np.where(restart, x, value_hat)
        speed_hat = np.where(restart, 0.0, speed_hat)
        # Elements missing now lose their history (NaN) so they restart when they return.
        value_hat = np.where(finite, value_hat, np.nan)
        speed_hat = np.where(finite, speed_hat, np.nan)

        self._value, self._speed, self._t = value_hat, speed_hat, t
        self._complete = complete  # NaN (no history) exactly where this input was not finite
        return value_hat.copy()

    def _start(self, x: np.ndarray, t: float) -> np.ndarray:
        self._value = x.copy()
        self._speed = np.where(np.isnan(x), np.nan, 0.0)
        self._t = t
        self._complete = not np.isnan(x).any()
        return x
