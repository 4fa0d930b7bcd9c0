"""Tests that bite, round three: values computed here (numpy, hand arithmetic, a loop written
out), for the statistics a run uses under every --norm, --future's calibration window, the
forecast path each model and norm gets, and seasonal naive beyond one season.

Why every --norm: under revin (chrono's default) a window is read relative to its own mean and
std, so the global mean and std cancel out of everything a model reads and returns. A run that
used the wrong statistics (the whole series instead of its training part, another series' own)
forecasts the same numbers under revin; under global the model reads the level, under last the
scale enters through its constant. So the statistics are checked under all three norms, and each
test says how far the wrong statistics would move the numbers it checks.
"""
import math

import numpy as np
import pytest
import torch

import config
import forecast
import log_protocol
import models
import scoring
import train
from data import DataError, boundaries
from models.norm import REVIN_EPS, with_norm
from models.rollout import regress, regressive_path
from test_norm import make_run, write_csv

T = 8                      # time_steps of the trained runs
N, TRAIN_END, VAL_END = 400, 280, 320   # chrono (0.7, 0.1, 0.2)


def trend_values(n=N, level=100.0, seed=1):
    """A drifting, wiggling series whose test part jumps by 25: the training part's mean and std
    (about 142 and 25) are far from the whole series' (about 165 and 42), and from 0 and 1."""
    t = np.arange(n)
    v = level + 0.3 * t + 8 * np.sin(t / 7) + 2 * np.random.default_rng(seed).standard_normal(n)
    v[round(0.8 * n):] += 25
    return v


def linear_weights(run):
    """(w (T,), b) of a run's linear model, whatever norm wraps it."""
    head = getattr(run.model, "model", run.model).head
    return head.weight.detach().double().numpy()[0], float(head.bias.detach())


def hand_step(w, b, x, norm):
    """The linear model's next value after window x (global z units) under `norm`, by numpy."""
    if norm == "global":
        return w @ x + b
    if norm == "last":
        return w @ (x - x[-1]) + b + x[-1]
    mu, sd = x.mean(), math.sqrt(x.var() + REVIN_EPS)
    return (w @ ((x - mu) / sd) + b) * sd + mu


def hand_forecasts(w, b, values, mean, std, origins, steps, norm):
    """Regressive forecasts in original units from each origin: the window z[o - T:o] with
    z = (values - mean) / std, each forecast fed back; (len(origins), steps)."""
    z = (values - mean) / std
    out = np.empty((len(origins), steps))
    for i, o in enumerate(origins):
        x = list(z[o - T:o])
        for h in range(steps):
            x.append(hand_step(w, b, np.array(x[-T:]), norm))
        out[i] = x[T:]
    return out * std + mean


def train_linear(tmp_path, csv, norm):
    cfg, _ = config.parse(["--model", "linear", "--dataset", str(csv), "--time_steps", str(T), "--norm", norm,
                           "--out_dir", str(tmp_path / "runs"), "--no_forecast"])
    return train.train(cfg)


# ---------------------------------------------------------------- 1. the statistics, under every norm

@pytest.mark.parametrize("norm", ["global", "last", "revin"])
def test_forecasts_in_original_units_use_the_training_parts_statistics(tmp_path, norm):
    """config.json's statistics, val_mse_last, the backtest's and --future's forecasts of a
    least-squares linear run: numpy's, from its weights and the training part's mean and std.
    Catches forecast.load (or training) using the whole series' statistics, under global and
    last; under revin the same bug moves no number by more than 1e-3 (shown below)."""
    v = trend_values()
    run_dir, metrics = train_linear(tmp_path, write_csv(tmp_path / "trend.csv", v), norm)
    mean, std = v[:TRAIN_END].mean(), v[:TRAIN_END].std()
    saved = forecast.load(run_dir).config
    assert saved["normalisation"]["mean"] == pytest.approx(mean, rel=1e-12)
    assert saved["normalisation"]["std"] == pytest.approx(std, rel=1e-12)
    run = forecast.load(run_dir)
    w, b = linear_weights(run)
    # training's validation score: one step from every window whose next value is a validation value
    one_step = hand_forecasts(w, b, v, mean, std, np.arange(TRAIN_END, VAL_END), 1, norm)[:, 0]
    assert metrics["val_mse_last"] == pytest.approx(np.mean(((one_step - v[TRAIN_END:VAL_END]) / std) ** 2), rel=1e-4)
    # the backtest: 6 steps ahead from every fifth test origin; naive is the value before the origin
    result = forecast.backtest(run, horizon=6, stride=5)
    origins = result["origins"]
    assert origins.tolist() == list(range(VAL_END, N - 6 + 1, 5))
    expected = hand_forecasts(w, b, v, mean, std, origins, 6, norm)
    assert np.abs(result["predictions"] - expected).max() < 1e-3      # float32 forecasts near 200
    assert np.array_equal(result["naive"], np.repeat(v[origins - 1, None], 6, axis=1))
    assert result["metrics"]["model"]["mae"] == pytest.approx(np.mean(np.abs(expected - v[origins[:, None] + np.arange(6)])),
                                                              abs=1e-3)
    # past the end
    ahead = forecast.future(run, 6)["forecast"]
    assert np.abs(ahead - hand_forecasts(w, b, v, mean, std, [N], 6, norm)[0]).max() < 1e-3
    # what the whole series' statistics would forecast: far off under global and last, the same under revin
    wrong = hand_forecasts(w, b, v, v.mean(), v.std(), origins, 6, norm)
    if norm == "revin":
        assert np.abs(wrong - expected).max() < 1e-3
    else:
        assert np.abs(wrong - expected).max() > 0.2


@pytest.mark.parametrize("norm", ["global", "last", "revin"])
def test_another_series_is_normalised_with_its_own_training_part(tmp_path, norm):
    """forecast.py --dataset OTHER (the cross-dataset matrix's cells): the other series is
    z-scored with its own training part's mean and std, neither the run's stored ones nor its
    whole series'. Checked on the backtest and on the log's batch and regressive forecasts of its
    test part (log_protocol.evaluate, one cell of cross_dataset), by numpy from the weights."""
    v = trend_values()
    run_dir, _ = train_linear(tmp_path, write_csv(tmp_path / "trend.csv", v), norm)
    n2 = 300
    other = 3 * trend_values(n2, level=400.0, seed=5) - 600          # level about 780, std about 60
    train_end, val_end = boundaries(n2)
    run = forecast.load(run_dir, dataset=str(write_csv(tmp_path / "other.csv", other)))
    mean, std = other[:train_end].mean(), other[:train_end].std()
    w, b = linear_weights(run)
    result = forecast.backtest(run, horizon=5, stride=4)
    origins = result["origins"]
    assert origins.tolist() == list(range(val_end, n2 - 5 + 1, 4))
    expected = hand_forecasts(w, b, other, mean, std, origins, 5, norm)
    assert np.abs(result["predictions"] - expected).max() < 5e-3     # float32 near 800
    m = log_protocol.evaluate(run)
    test = np.arange(val_end, n2)
    batch = hand_forecasts(w, b, other, mean, std, test, 1, norm)[:, 0]
    regressive = hand_forecasts(w, b, other, mean, std, [val_end], n2 - val_end, norm)[0]
    assert m["n_predicted"] == n2 - val_end
    assert m["mse_batch"] == pytest.approx(np.mean((batch - other[val_end:]) ** 2), rel=1e-4)
    assert m["mse_regressive"] == pytest.approx(np.mean((regressive - other[val_end:]) ** 2), rel=1e-4)
    # the run's own stored statistics, or the other series' whole-series ones, forecast otherwise
    # (except under revin, where they cancel)
    for wrong_mean, wrong_std in ((v[:TRAIN_END].mean(), v[:TRAIN_END].std()), (other.mean(), other.std())):
        wrong = hand_forecasts(w, b, other, wrong_mean, wrong_std, origins, 5, norm)
        if norm == "revin":
            assert np.abs(wrong - expected).max() < 5e-3
        else:
            assert np.abs(wrong - expected).max() > 0.5


# ---------------------------------------------------------------- 2a. --future's calibration window

def fewest_errors(level):
    """The smallest n whose conformal rank ceil((n + 1) level / 100) is at most n."""
    return next(n for n in range(1, 10_000) if math.ceil((n + 1) * level / 100) <= n)


def hand_recent(y, T, train_end, steps, level, window):
    """recent_calibration for naive, written out: for step h (0-based) the errors |y[o - 1] -
    y[o + h]| of origins o >= T (true history) whose target o + h lies in [train_end, N), in
    origin order, the latest max(window, fewest) of them; the conformal quantile where there are
    at least `fewest`, else inf. Returns (halfwidth, count)."""
    n, fewest = len(y), fewest_errors(level)
    keep = max(window, fewest)
    widths, counts = [], []
    for h in range(steps):
        errors = [abs(y[o - 1] - y[o + h]) for o in range(T, n - h) if o + h >= train_end][-keep:]
        counts.append(len(errors))
        k = math.ceil((len(errors) + 1) * level / 100)
        widths.append(sorted(errors)[k - 1] if len(errors) >= fewest else math.inf)
    return np.array(widths), np.array(counts)


def naive_noise_run(n=200, fractions=(0.6, 0.2, 0.2), T=4, seed=3):
    """naive on white noise around 10: 120 training values, 80 after them."""
    values = 10 + np.random.default_rng(seed).standard_normal(n)
    return make_run(values, models.build("naive"), T, fractions)


@pytest.mark.parametrize("level, window", [(80, config.FUTURE_WINDOW), (80, 30), (95, 30), (80, 2), (95, 10)])
def test_future_calibration_takes_the_latest_errors_of_each_step(level, window):
    """Per step: which errors (targets in [train_end, N), origins with T values of history, the
    latest ones), how many (the window, at least the fewest the level needs: 4 at 80%, 19 at
    95%), and the half-width (their conformal quantile), for all 200 steps of a 200-value series.
    window 2 and 10: below the fewest the level needs, the window grows to it (a `min` for the
    `max` leaves every interval infinite)."""
    run = naive_noise_run()
    y, steps = run.series.values, 200
    assert (run.train_end, fewest_errors(80), fewest_errors(95)) == (120, 4, 19)
    halfwidth, counts = forecast.recent_calibration(run, steps, level, window)
    expected, expected_counts = hand_recent(y, 4, 120, steps, level, window)
    fewest = fewest_errors(level)
    assert scoring.min_errors(level) == fewest
    finite = expected_counts >= fewest
    assert np.array_equal(np.isfinite(halfwidth), finite)
    assert halfwidth[finite] == pytest.approx(expected[finite], abs=1e-5)     # naive runs in float32
    assert np.array_equal(counts[finite], expected_counts[finite])
    assert np.all(counts[~finite] < fewest)
    # the counts by hand: 80 targets after the training part, the window, the origins' history
    assert expected_counts[0] == min(80, max(window, fewest))
    assert finite.sum() == 200 - 4 - fewest + 1                              # o >= 4, o + h < 200, >= fewest origins


def test_future_intervals_are_the_recent_half_widths_around_the_forecast():
    """forecast.future at the default window: forecast (the last value), lower and upper by hand,
    and interval_steps the steps with enough errors."""
    run = naive_noise_run()
    y = run.series.values
    ahead = forecast.future(run, 200, level=80)
    expected, _ = hand_recent(y, 4, 120, 200, 80, config.FUTURE_WINDOW)
    assert ahead["forecast"] == pytest.approx(np.full(200, y[-1]), abs=1e-5)
    finite = np.isfinite(expected)
    assert ahead["interval_steps"] == finite.sum() == 193 and finite[:193].all()
    assert (ahead["upper"] - ahead["forecast"])[finite] == pytest.approx(expected[finite], abs=1e-5)
    assert (ahead["forecast"] - ahead["lower"])[finite] == pytest.approx(expected[finite], abs=1e-5)
    assert not np.isfinite(ahead["upper"][~finite]).any()


# ---------------------------------------------------------------- 2b. the forecast path of each model and norm

NO_CACHE, ABSOLUTE_POSITIONS, WINDOW_NORM = "has no KV cache", "encodes absolute positions", "cannot be reused"

# (model, constructor arguments, relative positions by the model's maths: its q . k depends on
# positions only through their differences: no encoding, or RoPE on q and k with no LayerNorm after it)
ATTENTION = [
    ("att", dict(pe_type="none"), True),
    ("att", dict(pe_type="rope", pe_on="qk"), True),
    ("att", dict(pe_type="rope", pe_on="qk", q_ln=True), False),                       # LayerNorm after RoPE
    ("att", dict(pe_type="rope", pe_on="qk", k_ln=True, rope_before_ln=False), True),  # RoPE after LayerNorm
    ("att", dict(pe_type="randn"), False),
    ("att", dict(pe_type="sinpe"), False),
    ("att", dict(pe_type="rope", pe_on="input"), False),
    ("att_mh", dict(pe_type="none"), True),
    ("att_mh", dict(pe_type="rope", pe_on="qk"), True),
    ("att_mh", dict(pe_type="rope", pe_on="qk", q_ln=True, k_ln=True), False),
    ("att_mh", dict(pe_type="sinpe"), False),
]


def build(name, **kwargs):
    torch.manual_seed(0)
    if name in ("att", "att_mh"):
        kwargs = dict(d_model=8, block_size=64, bias=True, **kwargs)  # randn: a table past the forecasts
        if name == "att_mh":
            kwargs.update(n_heads=2, kv_heads=1)
    elif name == "linear":
        kwargs = dict(block_size=T)
    elif name.startswith("vq"):
        kwargs = dict(vocab_size=16, d_model=8)
    return models.build(name, **kwargs).eval()


def case_id(case):
    name, kwargs, _ = case
    return "-".join([name] + [f"{k}={v}" for k, v in kwargs.items()])


CASES = ATTENTION + [("att", dict(pe_type="none", causal=False), True)]


@pytest.mark.parametrize("name, kwargs, relative", CASES, ids=[case_id(c) for c in CASES])
def test_the_kv_cache_is_chosen_exactly_for_causal_relative_attention_under_global(name, kwargs, relative):
    causal = kwargs.get("causal", True)
    model = build(name, **kwargs)
    cached = causal and relative
    assert regressive_path(model, "sliding", "auto") == ("kv_cache" if cached else "recompute")
    assert regressive_path(model, "sliding", "off") == "recompute"
    assert regressive_path(model, "absolute", "auto") == ("kv_cache" if causal else "recompute")
    windows = torch.as_tensor(np.sin(np.arange(40) / 3.0), dtype=torch.float32).unfold(0, T, 5).unsqueeze(-1)
    recomputed = regress(model, windows, 12, "recompute")
    if cached:
        assert regressive_path(model, "sliding", "on") == "kv_cache"
        assert torch.allclose(regress(model, windows, 12, "kv_cache"), recomputed, atol=1e-5)
    else:
        with pytest.raises(DataError) as e:
            regressive_path(model, "sliding", "on")
        reason = NO_CACHE if not causal else ABSOLUTE_POSITIONS
        assert reason in str(e.value) and f"kv_cache on: model {name} " in str(e.value)
        if causal:  # why it is refused: the cache numbers positions along the series, so its forecasts differ
            assert f"(pe_type {kwargs['pe_type']} on {kwargs.get('pe_on', 'input')})" in str(e.value)
            assert (regress(model, windows, 12, "kv_cache") - recomputed).abs().max() > 1e-4
    # under a per-window norm: never the cache, and the reason given is the norm, whatever the model
    for norm in ("revin", "last"):
        wrapped = with_norm(model, norm)
        assert regressive_path(wrapped, "sliding", "auto") == regressive_path(wrapped, "absolute", "auto") == "recompute"
        with pytest.raises(DataError) as e:
            regressive_path(wrapped, "sliding", "on")
        assert f"--norm {norm}" in str(e.value) and WINDOW_NORM in str(e.value)
        assert NO_CACHE not in str(e.value) and ABSOLUTE_POSITIONS not in str(e.value)


@pytest.mark.parametrize("name", ["naive", "linear", "lstm", "vqlnmlp"])
@pytest.mark.parametrize("norm", ["global", "revin", "last"])
def test_models_without_a_cache_recompute_and_refuse_it_with_their_reason(name, norm):
    model = with_norm(build(name), norm)
    for positions in ("sliding", "absolute"):
        assert regressive_path(model, positions, "auto") == regressive_path(model, positions, "off") == "recompute"
    with pytest.raises(DataError) as e:
        regressive_path(model, "sliding", "on")
    if norm == "global":
        assert f"kv_cache on: model {name} {NO_CACHE}" in str(e.value)
    else:
        assert f"--norm {norm}" in str(e.value) and WINDOW_NORM in str(e.value) and NO_CACHE not in str(e.value)


def test_a_backtest_with_the_cache_forecasts_what_recomputing_does():
    """forecast.backtest of an att_mh run (RoPE on q and k, global) with kv_cache on and off."""
    values = 5 + np.sin(np.arange(200) / 6) + 0.05 * np.random.default_rng(0).standard_normal(200)
    run = make_run(values, build("att_mh", pe_type="rope", pe_on="qk"), T)
    on, off = (forecast.backtest(run, horizon=10, stride=7, kv_cache=kv)["predictions"] for kv in ("on", "off"))
    assert np.abs(on - off).max() < 1e-4 and np.abs(on - on.mean()).max() > 1e-3
    assert np.array_equal(forecast.backtest(run, horizon=10, stride=7)["predictions"], on)   # auto: the cache


# ---------------------------------------------------------------- 2c. seasonal naive past one season

@pytest.mark.parametrize("season, horizon", [(5, 5), (5, 10), (5, 13), (3, 11), (1, 4)])
def test_seasonal_naive_repeats_the_last_full_season(season, horizon):
    """Value t forecast from origin o by the latest value before o at the same phase: t - m, t - 2m,
    ... until it lies before o (a loop, not the product's ceil). Per-step MAE and MSE on white
    noise, where any other index gives other numbers."""
    y = 10 + np.random.default_rng(7).standard_normal(300)
    run = make_run(y, models.build("naive"), 4)
    result = forecast.backtest(run, horizon=horizon, stride=1, season=season)
    origins = result["origins"]
    hand = np.empty((len(origins), horizon))
    for i, o in enumerate(origins):
        for j in range(horizon):
            s = o + j
            while s >= o:
                s -= season
            hand[i, j] = y[s]
    error = hand - y[origins[:, None] + np.arange(horizon)]
    by_step = result["by_step"]["seasonal_naive"]
    assert by_step["mae"] == pytest.approx(np.abs(error).mean(0), rel=1e-12)
    assert by_step["mse"] == pytest.approx((error ** 2).mean(0), rel=1e-12)
    assert result["metrics"]["seasonal_naive"]["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-12)
    train = y[:run.train_end]
    assert result["mase_scale"] == pytest.approx(np.abs(train[season:] - train[:-season]).mean(), rel=1e-12)
    if season == 1:  # seasonal naive of period 1 is naive
        assert by_step["mae"] == pytest.approx(result["by_step"]["naive"]["mae"], rel=1e-12)
