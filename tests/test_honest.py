"""The honest protocol: backtests on the test part, scale-free metrics, intervals, the future, resume.

Each expected number comes from an independent computation (a recurrence a sine obeys, numpy
statistics, the definition of MASE), not from the code under test.
"""
import json
import math
import os

import numpy as np
import pytest
import torch

import config
import forecast
import models
import scoring
import train
from data import Series, boundaries, split_series


def make_run(values, model, time_steps, fractions=(0.7, 0.1, 0.2), time=None):
    """A forecast.Run over `values` for a given model, normalised with the training part."""
    n = len(values)
    train_end, val_end = boundaries(n, fractions)
    mean, std = float(values[:train_end].mean()), float(values[:train_end].std())
    series = Series("synthetic", values, np.arange(n) if time is None else time, "sample", "value", "test", "v")
    config = {"split": "chrono", "time_steps": time_steps, "run_name": "test", "fractions": list(fractions)}
    return forecast.Run("/nonexistent", model.eval(), config, series, (values - mean) / std, mean, std,
                        train_end, val_end, np.ones(n, bool))


def sine_linear_run(n=600, period=25.0, T=8):
    """A pure sine and a linear model set to the recurrence every sine obeys:
    y_t - 20 = 2 cos(w) (y_{t-1} - 20) - (y_{t-2} - 20), rewritten for normalised values z:
    z_t = 2c z_{t-1} - z_{t-2} + (2 - 2c) (20 - mean) / std."""
    t = np.arange(n)
    values = 20 + 5 * np.sin(2 * np.pi * t / period)
    model = models.build("linear", block_size=T)
    run = make_run(values, model, T)
    c = math.cos(2 * math.pi / period)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[0, -1], model.head.weight[0, -2] = 2 * c, -1.0
        model.head.bias.fill_((2 - 2 * c) * (20 - run.mean) / run.std)
    return run


def test_a_model_that_is_exact_has_mase_near_zero_and_naive_does_not():
    run = sine_linear_run()
    result = forecast.backtest(run, horizon=30)
    assert result["metrics"]["model"]["mase"] < 1e-4
    assert result["metrics"]["naive"]["mase"] > 1  # persistence is far from a sine 30 steps ahead
    assert np.abs(result["predictions"] - result["actual"]).max() < 1e-3
    # every origin forecasts the 30 values that follow it, inside the test part
    assert result["origins"][0] == run.val_end and result["origins"][-1] + 30 <= len(run.z)


def test_naive_mase_on_the_training_part_is_one_by_construction():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.standard_normal(500))
    observed = np.ones(500, bool)
    scale = scoring.naive_scale(y, observed)
    assert scale == pytest.approx(np.mean(np.abs(np.diff(y))))
    naive = y[:-1, None]                                  # the one-step naive forecast of y[1:]
    overall, _ = scoring.errors(naive, y[1:, None], observed[1:, None], scale)
    assert overall["mase"] == pytest.approx(1.0, abs=1e-12)
    assert overall["mse"] == pytest.approx(np.mean(np.diff(y) ** 2))
    assert overall["smape"] == pytest.approx(np.mean(200 * np.abs(np.diff(y)) / (np.abs(y[:-1]) + np.abs(y[1:]))))


def test_backtest_naive_matches_a_hand_computation():
    run = sine_linear_run(T=8)
    result = forecast.backtest(run, horizon=5, stride=3)
    y, o = run.series.values, result["origins"]
    assert np.array_equal(o, np.arange(run.val_end, len(y) - 5 + 1, 3))
    naive_mae = np.mean([abs(y[k + h] - y[k - 1]) for k in o for h in range(5)])
    scale = np.mean(np.abs(np.diff(y[:run.train_end])))
    assert result["metrics"]["naive"]["mae"] == pytest.approx(naive_mae)
    assert result["metrics"]["naive"]["mase"] == pytest.approx(naive_mae / scale)
    season = forecast.backtest(run, horizon=5, stride=3, season=25)  # a sine of period 25: exact
    assert season["metrics"]["seasonal_naive"]["mae"] < 1e-9


def test_intervals_reach_their_nominal_coverage_on_a_noisy_series():
    rng = np.random.default_rng(0)
    values = 10 + rng.standard_normal(6000)                 # stationary: the validation errors carry over
    run = make_run(values, models.build("naive"), 4, fractions=(0.4, 0.3, 0.3))
    for level in (50, 80, 95):
        result = forecast.backtest(run, horizon=3, stride=1, level=level)
        assert abs(result["interval"]["coverage"] - level / 100) < 0.03, (level, result["interval"]["coverage"])
        # naive's error is the difference of two N(0, 1) values: half-width = z * sqrt(2)
        z = {50: 0.6745, 80: 1.2816, 95: 1.9600}[level]
        assert result["interval"]["halfwidth"] == pytest.approx(np.full(3, z * math.sqrt(2)), rel=0.1)


def test_future_continues_daily_and_hourly_timestamps():
    values = 5 + np.sin(np.arange(200) / 5)
    for step, unit in ((1, "D"), (1, "h"), (15, "m")):
        time = np.datetime64("2024-01-30T00:00") + np.arange(200) * np.timedelta64(step, unit)
        run = make_run(values, models.build("naive"), 10, time=time)
        ahead = forecast.future(run, 3)
        expected = time[-1] + np.arange(1, 4) * np.timedelta64(step, unit)
        assert np.array_equal(ahead["time"], expected), (unit, ahead["time"])
        assert np.allclose(ahead["forecast"], values[-1])    # naive repeats the last value
        assert np.all(ahead["lower"] <= ahead["forecast"]) and np.all(ahead["forecast"] <= ahead["upper"])
    run = make_run(values, models.build("naive"), 10)          # no time column: the row index continues
    assert list(forecast.future(run, 2)["time"]) == [200, 201]


def test_the_test_part_never_reaches_training():
    values = np.sin(np.arange(300) / 7) + 3
    poisoned = values.copy()
    _, val_end = boundaries(300, (0.7, 0.1, 0.2))
    poisoned[val_end:] = np.nan
    a, b = split_series(values, 20, "aligned"), split_series(poisoned, 20, "aligned")
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(a, name)[:], getattr(b, name)[:]), name
    assert (a.mean, a.std) == (b.mean, b.std) == (values[:210].mean(), values[:210].std())


def train_in_process(tmp_path, *extra):
    cfg, _ = config.parse(["--model", "vqlnmlp", "--dataset", "goog", "--d_model", "8",
                           "--vocab_size", "16", "--out_dir", str(tmp_path), "--no_forecast", *extra])
    return train.train(cfg)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    """Not the defaults (lr, fractions), so that a resume that falls back to them differs."""
    settings = ("--lr", "0.02", "--val_fraction", "0.15", "--test_fraction", "0.1")
    straight, expected = train_in_process(tmp_path / "a", "--epochs", "4", *settings)
    first, _ = train_in_process(tmp_path / "b", "--epochs", "2", *settings)
    cfg, _ = config.parse(["--resume", first, "--epochs", "4", "--no_forecast"])
    resumed, metrics = train.train(cfg)
    assert resumed == first and metrics["epochs_run"] == 4
    for k in ("val_mse_last", "val_loss", "train_loss", "best_epoch"):
        assert metrics[k] == expected[k], k
    for f in ("model.pt", "last.pt"):
        a = torch.load(os.path.join(straight, f), weights_only=True)["state_dict"]
        b = torch.load(os.path.join(resumed, f), weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), f
    rows = open(os.path.join(resumed, "losses.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert json.load(open(os.path.join(resumed, "config.json")))["epochs"] == 4


def test_chrono_keeps_the_best_validation_epoch(tmp_path):
    run_dir, metrics = train_in_process(tmp_path, "--epochs", "8", "--lr", "0.5", "--norm", "global")  # overshoots
    rows = [r.split(",") for r in open(os.path.join(run_dir, "losses.csv")).read().splitlines()[1:]]
    best = min(rows, key=lambda r: float(r[3]))            # column val_mse_last
    assert int(best[0]) < 8, "the test needs a run whose best epoch is not its last"
    assert metrics["best_epoch"] == int(best[0])
    assert metrics["val_mse_last"] == pytest.approx(float(best[3]))
    assert torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["epoch"] == int(best[0])
    assert torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["epoch"] == 8


def test_filled_values_are_never_scored():
    run = sine_linear_run()
    k = run.val_end + 7                       # a test value that was filled in (say, interpolated) ...
    run.observed[k] = False
    run.series.values[k] += 1000.0            # ... badly: scoring it would dominate every error
    run.z[k] = (run.series.values[k] - run.mean) / run.std
    result = forecast.backtest(run, horizon=4, stride=1)
    targets = result["origins"][:, None] + np.arange(4)
    assert np.array_equal(~result["observed"], targets == k)   # k is never a scored target
    error = np.abs(result["predictions"] - result["actual"])
    for name, f in (("model", result["predictions"]), ("naive", result["naive"])):
        e = np.abs(f - result["actual"])
        assert result["metrics"][name]["mae"] == pytest.approx(e[targets != k].mean())
    assert error[targets == k].min() > 500    # what the exclusion keeps out
