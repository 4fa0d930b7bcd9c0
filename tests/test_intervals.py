"""Intervals that keep their promise: adaptive conformal in backtests, recent errors for --future.

Expected numbers come from outside the code under test: the nominal level, the normal
distribution of naive's error on white noise, where a step runs out of errors by counting.
"""
import json
import math
import os

import numpy as np
import pytest

import config
import forecast
import models
import scoring
from conftest import run_main
from data import boundaries
from test_norm import make_run, train_run, write_csv


def noise_doubling_run(n=3000, fractions=(0.4, 0.3, 0.3), seed=0):
    """Naive on white noise of std 1 whose test part has std 2."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n)
    _, val_end = boundaries(n, fractions)
    values[val_end:] *= 2
    return make_run(10 + values, models.build("naive"), 4, fractions)


def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("level", [80, 60])
def test_adaptive_coverage_holds_when_the_noise_doubles(level):
    run = noise_doubling_run()
    result = forecast.backtest(run, horizon=3, stride=1, level=level)
    fixed, adaptive = result["interval"], result["interval_adaptive"]
    # fixed: calibrated where naive's error is N(0, 2), it covers |N(0, 8)| only to z_level / 2
    z = {80: 1.2816, 60: 0.8416}[level]
    expected_fixed = 2 * normal_cdf(z / 2) - 1
    assert fixed["coverage"] == pytest.approx(expected_fixed, abs=0.05)
    assert fixed["coverage"] < level / 100 - 0.15
    assert abs(adaptive["coverage"] - level / 100) <= 0.05, adaptive["coverage"]
    assert np.all(np.abs(adaptive["coverage_by_step"] - level / 100) <= 0.05)
    # the first origin knows no test error yet: the adaptive interval starts as the fixed one
    assert np.array_equal(adaptive["halfwidth"][0], fixed["halfwidth"])
    # and later ones are wider: the level rose to meet the larger errors
    assert np.median(adaptive["halfwidth"][-100:]) > 1.5 * fixed["halfwidth"].max()


def test_the_level_moves_by_gamma_times_the_observed_misses():
    run = noise_doubling_run(n=1500)
    result = forecast.backtest(run, horizon=4, stride=3, level=80)
    a = result["interval_adaptive"]
    o, gamma, alpha = result["origins"], a["gamma"], 0.2
    miss = np.abs(result["predictions"] - result["actual"]) > a["halfwidth"]
    checked = 0
    for h in (0, 3):
        for k in (5, 20, len(o) - 1):
            known = (o + h) < o[k]                   # outcomes observed before origin k
            path = alpha + gamma * np.cumsum(alpha - miss[known, h])    # G&C's update, one outcome at a time
            if len(path) and np.all((path > -gamma) & (path < 1 + gamma)):  # never clipped on the way
                assert a["alpha"][k, h] == pytest.approx(path[-1], abs=1e-9)
                checked += 1
    assert checked >= 3


def test_no_interval_uses_an_error_whose_target_lies_after_its_origin():
    run = noise_doubling_run(n=1500)
    before = forecast.backtest(run, horizon=5, stride=3)
    cut = int(before["origins"][len(before["origins"]) // 2])
    values = run.series.values.copy()
    values[cut:] += 1000 * np.arange(1, len(values) - cut + 1)      # poison the future of origin `cut`
    poisoned = make_run(values, run.model, 4, (0.4, 0.3, 0.3))
    after = forecast.backtest(poisoned, horizon=5, stride=3)
    early = before["origins"] <= cut
    for key in ("halfwidth", "alpha"):
        assert np.array_equal(before["interval_adaptive"][key][early], after["interval_adaptive"][key][early]), key
        assert not np.array_equal(before["interval_adaptive"][key][~early], after["interval_adaptive"][key][~early])
    assert np.array_equal(before["interval"]["halfwidth"], after["interval"]["halfwidth"])  # validation part only


def test_future_intervals_follow_the_latest_errors_not_the_training_part():
    rng = np.random.default_rng(2)
    values = 10 + rng.standard_normal(1000)
    fractions = (0.5, 0.2, 0.3)
    train_end, val_end = boundaries(1000, fractions)
    base = forecast.future(make_run(values, models.build("naive"), 8, fractions), 5)
    # three times the noise in the test part: three times naive's error, three times the interval
    louder = values.copy()
    louder[val_end:] = 10 + 3 * (values[val_end:] - 10)
    wider = forecast.future(make_run(louder, models.build("naive"), 8, fractions), 5)
    width, wider_width = base["upper"] - base["forecast"], wider["upper"] - wider["forecast"]
    assert wider_width == pytest.approx(3 * width, rel=1e-5)
    # another training part (other level, other noise) alone: the same latest errors, the same interval
    other = values.copy()
    other[:train_end] = 3 + 5 * rng.standard_normal(train_end)
    same = forecast.future(make_run(other, models.build("naive"), 8, fractions), 5)
    assert np.allclose(same["upper"] - same["forecast"], width, rtol=1e-5, atol=1e-5)  # float32 forecasts
    assert base["interval_steps"] == 5


def test_a_long_future_says_from_which_step_it_has_no_interval(tmp_path):
    values = 3 + np.sin(np.arange(200) / 5) + 0.1 * np.random.default_rng(0).standard_normal(200)
    run_dir = train_run(tmp_path, write_csv(tmp_path / "s.csv", values), "naive", "global")
    # step h (0-based) has an error for every origin o >= 8 (history) with o + h in [140, 200): at
    # least 4 of them (the fewest that give a finite 80% conformal quantile) up to h = 200 - 8 - 4
    assert scoring.min_errors(80) == 4 and scoring.min_errors(95) == 19
    last = 200 - 8 - 4 + 1
    ahead = forecast.future(forecast.load(run_dir), 300)
    assert ahead["interval_steps"] == last
    assert np.all(np.isfinite(ahead["upper"][:last])) and not np.any(np.isfinite(ahead["upper"][last:]))
    out = run_main("forecast.py", run_dir, "--future", "300")
    assert out.returncode == 0, out.stderr
    assert f"up to step {last} (none after" in out.stdout
    rows = open(os.path.join(out.stdout.split("-> ")[-1].strip(), "future.csv")).read().splitlines()[1:]
    assert rows[last - 1].split(",")[3] != "" and rows[last].split(",")[3] == ""


def test_backtest_reports_both_coverages(tmp_path):
    rng = np.random.default_rng(4)
    values = 5 + np.cumsum(rng.standard_normal(400))
    run_dir = train_run(tmp_path, write_csv(tmp_path / "w.csv", values), "naive", "global")
    out = run_main("forecast.py", run_dir, "--horizon", "4", "--stride", "1", "--level", "60")
    assert out.returncode == 0, out.stderr
    result = forecast.backtest(forecast.load(run_dir), horizon=4, stride=1, level=60)
    fixed, adaptive = result["interval"]["coverage"], result["interval_adaptive"]["coverage"]
    assert f"60% interval coverage fixed {fixed:.0%}, adaptive {adaptive:.0%}" in out.stdout
    # coverage counted by hand from the adaptive half-widths
    inside = np.abs(result["predictions"] - result["actual"]) <= result["interval_adaptive"]["halfwidth"]
    assert adaptive == pytest.approx(inside.mean())
    m = json.load(open(os.path.join(out.stdout.split("-> ")[-1].strip(), "metrics.json")))
    assert m["interval_adaptive"]["coverage"] == pytest.approx(adaptive)
    assert m["interval_adaptive"]["gamma"] == config.ACI_GAMMA
