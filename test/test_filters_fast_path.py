"""The One Euro filter skips its NaN bookkeeping while every element is finite (the pose
node's case). Checked against a plain per-element transcription of the filter with its NaN
rules (a missing element forgets its history and restarts from its next value; a repeated or
older stamp changes nothing but fills elements without history), through gaps and resets."""
import math

import numpy as np

from hand_pose_ros.filters import OneEuroFilter


class ElementFilters:
    """One plain-float One Euro filter per element, with the vectorised filter's NaN rules."""

    def __init__(self, shape, min_cutoff, beta, d_cutoff):
        self.shape, self.min_cutoff, self.beta, self.d_cutoff = shape, min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self):
        self.value = [None] * math.prod(self.shape)  # (x, dx) or None: no history
        self.t = None

    @staticmethod
    def alpha(cutoff, dt):
        r = 2 * math.pi * cutoff * dt
        return r / (r + 1)

    def __call__(self, x, t):
        x = np.asarray(x, dtype=np.float64).ravel()
        out = np.full(x.size, np.nan)
        first, dt = self.t is None, None if self.t is None else t - self.t
        for i, xi in enumerate(x.tolist()):
            if not math.isfinite(xi):
                self.value[i] = None
            elif first or self.value[i] is None:
                self.value[i] = (xi, 0.0)
            elif dt > 0:
                prev, dx = self.value[i]
                a_d = self.alpha(self.d_cutoff, dt)
                dx = a_d * (xi - prev) / dt + (1 - a_d) * dx
                a = self.alpha(self.min_cutoff + self.beta * abs(dx), dt)
                self.value[i] = (a * xi + (1 - a) * prev, dx)
            if self.value[i] is not None:
                out[i] = self.value[i][0]
        if first or dt > 0:
            self.t = t
        return out.reshape(self.shape)


def test_matches_the_per_element_filter_with_gaps_stamps_and_resets():
    rng = np.random.default_rng(0)
    for trial in range(30):
        vectorised, reference = OneEuroFilter(1.0, 0.02, 1.0), ElementFilters((21, 3), 1.0, 0.02, 1.0)
        t = 0.0
        for k in range(40):
            x = rng.normal(500.0, 50.0, (21, 3))
            r = rng.uniform()
            if r < 0.1:
                x[rng.integers(0, 21), rng.integers(0, 3)] = np.nan
            elif r < 0.13:
                x[rng.integers(0, 21)] = np.inf
            t += 0.033 if rng.uniform() > 0.15 else float(rng.choice([0.0, -0.01, 0.2]))
            if rng.uniform() < 0.03:
                vectorised.reset()
                reference.reset()
            got, expected = vectorised(x, t), reference(x, t)
            assert np.array_equal(np.isnan(got), np.isnan(expected)), (trial, k)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9, err_msg=f"{trial}/{k}")
