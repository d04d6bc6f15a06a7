"""The One Euro filter: the published algorithm, vectorised, NaN-safe."""
import math

import numpy as np
import pytest

from hand_pose_ros.filters import OneEuroFilter


class ScalarOneEuro:
    """A plain-float transcription of Casiez et al. 2012, to check the vectorised one against."""

    def __init__(self, min_cutoff, beta, d_cutoff):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def alpha(cutoff, dt):
        r = 2 * math.pi * cutoff * dt
        return r / (r + 1)

    def __call__(self, x, t):
        if self.x is None:
            self.x, self.dx, self.t = x, 0.0, t
            return x
        dt = t - self.t
        a_d = self.alpha(self.d_cutoff, dt)
        self.dx = a_d * (x - self.x) / dt + (1 - a_d) * self.dx
        a = self.alpha(self.min_cutoff + self.beta * abs(self.dx), dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x


def test_matches_the_scalar_algorithm_elementwise_for_any_shape():
    rng = np.random.default_rng(0)
    signal = np.cumsum(rng.normal(size=(200, 3, 4)), axis=0)
    times = np.cumsum(rng.uniform(0.01, 0.05, size=200))  # irregular sampling
    f = OneEuroFilter(min_cutoff=1.5, beta=0.3, d_cutoff=2.0)
    refs = [[ScalarOneEuro(1.5, 0.3, 2.0) for _ in range(4)] for _ in range(3)]
    for x, t in zip(signal, times):
        out = f(x, t)
        expected = [[refs[i][j](x[i, j], t) for j in range(4)] for i in range(3)]
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert out.shape == (3, 4)


def test_smooths_jitter_at_rest_and_follows_fast_motion_with_beta():
    rng = np.random.default_rng(1)
    t = np.arange(300) / 30.0
    noisy = 0.5 + rng.normal(scale=0.01, size=t.size)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    smooth = np.array([f(v, s) for v, s in zip(noisy, t)])
    assert smooth[30:].std() < 0.3 * noisy[30:].std()

    ramp = 2.0 * t  # 2 units/s
    lag = {}
    for beta in (0.0, 2.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.array([f(v, s) for v, s in zip(ramp, t)])
        lag[beta] = np.mean(ramp[60:] - out[60:])
    assert lag[2.0] < 0.3 * lag[0.0], lag


def test_nan_elements_stay_local_and_restart_from_the_raw_value():
    f_all, f_ref = OneEuroFilter(1.0, 0.5), OneEuroFilter(1.0, 0.5)
    for k in range(10):
        x = np.array([1.0 + 0.1 * k, 5.0 - 0.2 * k])
        t = k / 30
        if 3 <= k < 6:
            out = f_all(np.array([np.nan, x[1]]), t)
            assert np.isnan(out[0])
        elif k == 6:
            out = f_all(x, t)
            assert out[0] == x[0]  # no stale history dragged in
        else:
            out = f_all(x, t)
        # The other element is filtered exactly as if the first never existed.
        assert out[1] == pytest.approx(f_ref(x[1:], t)[0])
    out = f_all(np.array([np.inf, 1.0]), 1.0)
    assert np.isnan(out[0]) and np.isfinite(out[1])


def test_repeated_or_older_timestamps_and_reset():
    f = OneEuroFilter(1.0, 0.0)
    f(np.array([0.0]), 0.0)
    a = f(np.array([1.0]), 0.1)
    assert f(np.array([5.0]), 0.1) == pytest.approx(a)   # same time: nothing new
    assert f(np.array([5.0]), 0.05) == pytest.approx(a)  # older: ignored
    f.reset()
    assert f(np.array([5.0]), 0.2)[0] == 5.0


def test_input_is_not_modified_and_bad_settings_are_refused():
    f = OneEuroFilter()
    x = np.array([1.0, np.nan])
    f(x, 0.0)
    f(np.array([2.0, 3.0]), 0.1)
    assert x[0] == 1.0 and np.isnan(x[1])
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3), 0.2)
    with pytest.raises(ValueError, match="time"):
        f(np.zeros(2), float("nan"))
    for kwargs in ({"min_cutoff": 0.0}, {"d_cutoff": -1.0}, {"beta": -0.1}, {"min_cutoff": float("inf")}):
        with pytest.raises(ValueError):
            OneEuroFilter(**kwargs)
