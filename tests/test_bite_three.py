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


@pytest.mark.parametrize("name", ["linear", "lstm"])  # the pointwise models (naive, VQ): tests/test_attention.py
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


# ---------------------------------------------------------------- 3. round three of the mutation check
# (tests/mutate.py's MUTATIONS_ROUND3: each test below catches a one-line bug none caught before,
# with values computed here: hand arithmetic, numpy, a directory listing)

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

import outputs  # noqa: E402
import runs  # noqa: E402
from conftest import run_main  # noqa: E402
from data import load_series  # noqa: E402


def test_boundaries_round_to_the_nearest_value():
    """train_end = round(n * train), val_end = round(n * (train + validation)): 1001 values give
    700.7 -> 701 and 800.8 -> 801 (not 700 and 800), 1004 give 702.8 -> 703 and 803.2 -> 803."""
    assert boundaries(1001) == (701, 801)
    assert boundaries(1004) == (703, 803)
    assert boundaries(1004, (0.55, 0.3, 0.15)) == (552, 853)      # 552.2 and 853.4


@pytest.mark.parametrize("fractions", [(0.6, 0.1, 0.2), (0.7, 0.2, 0.2), (0.8, 0.0, 0.2), (0.7, 0.1), (1.2, -0.1, -0.1)])
def test_boundaries_refuse_fractions_that_do_not_sum_to_one_or_hold_a_zero(fractions):
    """Fractions summing to 0.9 (a tenth of the series in no part) or 1.1, a zero or negative part,
    or two fractions: one line naming them."""
    with pytest.raises(DataError, match=r"expected three positive numbers \(train, validation, test\) that sum to 1"):
        boundaries(1000, fractions)


def test_month_first_dates_in_december_are_month_first(tmp_path):
    """12/13/2024: 13 can only be a day, so the column is month/day, and its 12 is December (a
    first field of 12 is a month, not a day: only one over 12 is a day)."""
    path = tmp_path / "us.csv"
    path.write_text("date,v\n12/13/2024,1\n12/14/2024,2\n01/02/2025,3\n")
    s = load_series(str(path))
    assert s.time.tolist() == np.array(["2024-12-13", "2024-12-14", "2025-01-02"], dtype="datetime64[D]").tolist()
    path.write_text("date,v\n13/12/2024,1\n14/12/2024,2\n02/01/2025,3\n")       # day first, December second
    s = load_series(str(path))
    assert s.time.tolist() == np.array(["2024-12-13", "2024-12-14", "2025-01-02"], dtype="datetime64[D]").tolist()


def test_an_edited_csv_given_on_purpose_is_normalised_with_its_own_training_part(tmp_path):
    """forecast.py RUN --dataset CSV where the CSV was edited after training (another sha256): the
    run's stored statistics belong to the old file, so the edited one is z-scored with its own
    training part's mean and std (numpy's); the unedited file keeps the stored ones."""
    v = trend_values(300)
    csv = write_csv(tmp_path / "s.csv", v)
    cfg, _ = config.parse(["--model", "naive", "--dataset", str(csv), "--time_steps", str(T), "--norm", "global",
                           "--out_dir", str(tmp_path / "runs"), "--no_forecast"])
    run_dir, _ = train.train(cfg)
    train_end = boundaries(300)[0]
    unedited = forecast.load(run_dir, dataset=str(csv))
    assert (unedited.mean, unedited.std) == (pytest.approx(v[:train_end].mean(), rel=1e-12),
                                             pytest.approx(v[:train_end].std(), rel=1e-12))
    edited = v.copy()
    edited[:train_end] += 50 + 0.5 * np.arange(train_end)      # the training part moved and stretched
    write_csv(csv, edited)
    run = forecast.load(run_dir, dataset=str(csv))
    assert run.mean == pytest.approx(edited[:train_end].mean(), rel=1e-12)
    assert run.std == pytest.approx(edited[:train_end].std(), rel=1e-12)
    assert abs(run.mean - unedited.mean) > 50                    # the stored statistics are far off
    np.testing.assert_allclose(run.z, (edited - run.mean) / run.std, rtol=1e-12)


def test_a_model_pt_of_another_norm_is_named_as_such(tmp_path):
    """A run folder whose model.pt comes from a run read with --norm revin while its config.json
    says global: one RunError that names the two norms (not a key mismatch of the weights)."""
    csv = write_csv(tmp_path / "s.csv", trend_values(300))
    made = {}
    for norm in ("global", "revin"):
        cfg, _ = config.parse(["--model", "linear", "--dataset", str(csv), "--time_steps", str(T), "--norm", norm,
                               "--out_dir", str(tmp_path / norm), "--no_forecast"])
        made[norm], _ = train.train(cfg)
    held = torch.load(os.path.join(made["revin"], "model.pt"), weights_only=True)
    assert held["norm"] == "revin" and held["model"] == "linear"
    with open(os.path.join(made["revin"], "model.pt"), "rb") as f:
        weights = f.read()
    with open(os.path.join(made["global"], "model.pt"), "wb") as f:
        f.write(weights)
    with pytest.raises(runs.RunError) as e:
        forecast.load(made["global"])
    assert (f"{made['global']}/model.pt holds a model read with --norm revin where {made['global']}/config.json "
            f"names a model read with --norm global: the folder mixes two runs") in str(e.value)


def test_chrono_train_loss_is_the_mean_over_windows_and_the_logs_the_mean_of_batches(tmp_path):
    """naive (global, nothing to train) on 300 values, time_steps 8, batch 32: chrono's 202 training
    windows are 6 batches of 32 and one of 10, and its epoch loss is the mean over windows of each
    window's MSE; the log's protocol keeps its mean of the batch means, over its random split's
    233 windows (7 of 32, one of 9) in split order. Both by numpy; the two means differ here."""
    t = np.arange(300)
    v = 20 + (1 + t / 30) * np.sin(t / 3)                        # steps that grow along the series
    csv = write_csv(tmp_path / "grow.csv", v)

    def epoch_loss(split):
        cfg, _ = config.parse(["--model", "naive", "--dataset", str(csv), "--time_steps", str(T), "--norm", "global",
                               "--batch_size", "32", "--split", split, "--out_dir", str(tmp_path / split),
                               "--no_forecast"])
        run_dir, metrics = train.train(cfg)
        return metrics["train_loss"]

    def window_mse(z, starts):                                   # naive: the output at t is the value at t
        return np.array([np.mean((z[i + 1:i + T + 1] - z[i:i + T]) ** 2) for i in starts])

    train_end = boundaries(300)[0]
    z = (v - v[:train_end].mean()) / v[:train_end].std()
    per_window = window_mse(z.astype(np.float32).astype(np.float64), range(train_end - T))
    assert len(per_window) == 202
    chrono = epoch_loss("chrono")
    assert chrono == pytest.approx(per_window.mean(), rel=1e-5)
    batches = [per_window[i:i + 32].mean() for i in range(0, 202, 32)]
    assert abs(np.mean(batches) - per_window.mean()) > 1e-3 * per_window.mean()   # the other mean is off

    zr = ((v - v.mean()) / v.std()).astype(np.float32).astype(np.float64)
    order = torch.utils.data.random_split(range(292), [233, 59], generator=torch.Generator().manual_seed(42))[0].indices
    per_window = window_mse(zr, order)
    logs = epoch_loss("random")
    assert logs == pytest.approx(np.mean([per_window[i:i + 32].mean() for i in range(0, 233, 32)]), rel=1e-5)
    assert abs(logs - per_window.mean()) > 1e-3 * per_window.mean()


class Weight(torch.nn.Module):
    """One number, set to the epoch that wrote it, so that a state dict says which epoch it is."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def training(out_dir, epochs, split="chrono", resume=None):
    record = {"model": "weight", "model_args": {}, "split": split, "epochs": epochs, "run_name": "w", "norm": "global",
              "interrupted": False}
    return runs.Training(record, lambda model: (9.0, 9.0), str(out_dir), resume=resume)


def held(run_dir, name):
    ckpt = torch.load(os.path.join(run_dir, name), weights_only=True)
    return ckpt["epoch"], float(ckpt["state_dict"]["w"])


def losses(run_dir):
    return [(int(r["epoch"]), float(r["val_mse_last"])) for r in runs.read_losses(os.path.join(run_dir, "losses.csv"))]


# (val_loss, val_mse_last) of epochs 1 to 5: chrono keeps the lowest val_mse_last, epoch 1, though
# epoch 2 has the lowest val_loss; the epochs after the resume (4, 5) are worse than epoch 1
SCORES = {1: (5.0, 0.5), 2: (0.1, 0.9), 3: (0.2, 0.7), 4: (0.05, 0.6), 5: (0.04, 0.55)}


def run_epochs(run, model):
    seen = []
    for epoch in run.epochs():
        seen.append(epoch)
        with torch.no_grad():
            model.w.fill_(epoch)
        run.end_epoch(model, epoch, 1.0, *SCORES[epoch])
    return seen


def test_training_keeps_the_best_usable_epoch_across_a_resume(tmp_path):
    """runs.Training under chrono: model.pt is the epoch of the lowest val_mse_last (1), last.pt
    the last; --resume to 5 runs epochs 4 and 5 only, and keeps epoch 1, which neither beats
    (the best score comes back from last.pt, not from scratch)."""
    model = Weight()
    with training(tmp_path, 3) as run:
        run.restore(model, None, None)
        assert run_epochs(run, model) == [1, 2, 3]
        run.save(model)
    assert held(run.dir, "model.pt") == (1, 1.0) and held(run.dir, "last.pt") == (3, 3.0)
    resumed = Weight()
    with training(tmp_path, 5, resume=run.dir) as again:
        again.restore(resumed, None, None)
        assert float(resumed.w.detach()) == 3.0                           # last.pt's weights
        assert run_epochs(again, resumed) == [4, 5]
        again.save(resumed)
    assert again.dir == run.dir and again.best["epoch"] == 1
    assert held(run.dir, "model.pt") == (1, 1.0) and held(run.dir, "last.pt") == (5, 5.0)
    assert losses(run.dir) == [(e, SCORES[e][1]) for e in range(1, 6)]


def test_each_complete_epoch_is_on_disk_before_the_next_begins(tmp_path):
    """After end_epoch of a complete epoch, its (hidden) run directory already holds it: losses.csv
    up to it, last.pt at it, model.pt at the best so far, config.json marked interrupted until the
    end. So a second Ctrl-C, a crash or a full disk later keeps every complete epoch."""
    model = Weight()
    with training(tmp_path, 3) as run:
        run.restore(model, None, None)
        for epoch in run.epochs():
            with torch.no_grad():
                model.w.fill_(epoch)
            run.end_epoch(model, epoch, 1.0, *SCORES[epoch])
            assert os.path.basename(run.dir).startswith(".")      # not named yet
            assert losses(run.dir) == [(e, SCORES[e][1]) for e in range(1, epoch + 1)]
            assert held(run.dir, "last.pt") == (epoch, float(epoch))
            assert held(run.dir, "model.pt") == (1, 1.0)          # epoch 1's val_mse_last stays the lowest
            assert json.load(open(os.path.join(run.dir, "config.json")))["interrupted"] is True
        run.save(model)
    assert json.load(open(os.path.join(run.dir, "config.json")))["interrupted"] is False


def test_a_second_ctrl_c_before_any_epoch_is_saved_names_no_run(tmp_path):
    """Two Ctrl-C in the first epoch: nothing was saved, so Interrupted names no run directory and
    none is left (not even the hidden one, nor the output folder it made). Two in the second epoch:
    the first epoch's run, named, holding it."""
    out = tmp_path / "out"
    with pytest.raises(runs.Interrupted) as e:
        with training(out, 3) as run:
            run.restore(Weight(), None, None)
            for epoch in run.epochs():
                os.kill(os.getpid(), signal.SIGINT)               # the first: finish the step, save, stop
                os.kill(os.getpid(), signal.SIGINT)               # the second: at once
    assert e.value.run_dir is None and not out.exists()
    model = Weight()
    with pytest.raises(runs.Interrupted) as e:
        with training(out, 3) as run:
            run.restore(model, None, None)
            for epoch in run.epochs():
                if epoch == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGINT)
                run.end_epoch(model, epoch, 1.0, *SCORES[epoch])
    (name,) = os.listdir(out / "w")
    assert e.value.run_dir == str(out / "w" / name) and not name.startswith(".")
    assert losses(e.value.run_dir) == [(1, 0.5)]


def test_resumed_takes_the_global_norm_of_a_run_from_before_norm(tmp_path):
    """A run written before --norm existed has no norm in config.json and read the global level:
    --resume continues it as global (its last.pt holds the bare model's weights)."""
    csv = write_csv(tmp_path / "s.csv", trend_values(300))
    cfg, _ = config.parse(["--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--dataset", str(csv),
                           "--time_steps", str(T), "--norm", "global", "--epochs", "1", "--out_dir",
                           str(tmp_path / "runs"), "--no_forecast"])
    run_dir, _ = train.train(cfg)
    path = os.path.join(run_dir, "config.json")
    saved = json.load(open(path))
    del saved["norm"]
    json.dump(saved, open(path, "w"))
    again, _ = config.parse(["--resume", run_dir, "--epochs", "2", "--no_forecast"])
    assert config.resume(again)[0].norm == "global"
    resumed, metrics = train.train(again)
    assert resumed == run_dir and metrics["epochs_run"] == 2
    assert not any(k.startswith("model.") for k in torch.load(os.path.join(run_dir, "last.pt"),
                                                              weights_only=True)["state_dict"])


def test_adaptive_intervals_by_hand_with_an_error_on_the_edge():
    """Level 50 (alpha 0.5), gamma 0.1, one step ahead, validation errors 1, 2, 3. Origin 0: the
    conformal rank ceil(4 * 0.5) = 2 of (1, 2, 3) is 2. Its error 2 lies on the interval's edge,
    inside (|e| <= halfwidth, as the coverage counts), so alpha goes up: 0.5 + 0.1 (0.5 - 0) = 0.55.
    Origin 1: level 45 over (1, 2, 2, 3), rank ceil(5 * 0.45) = 3: 2; error 0.5, inside: 0.6.
    Origin 2: level 40 over (0.5, 1, 2, 2, 3), rank ceil(6 * 0.4) = 3: 2."""
    errors, scored = np.array([[2.0], [0.5], [9.0]]), np.ones((3, 1), bool)
    halfwidth, alpha = scoring.adaptive_intervals(np.arange(3), errors, scored, [np.array([1.0, 2.0, 3.0])], 50, 0.1)
    assert alpha[:, 0] == pytest.approx([0.5, 0.55, 0.6], abs=1e-12)
    assert halfwidth[:, 0].tolist() == [2.0, 2.0, 2.0]


def backtest_result(H):
    steps = [1.0] * H
    return {"metrics": {k: {"mase": 1.0, "rmse": 1.0} for k in ("model", "naive")},
            "by_step": {"model": {"mase": steps}, "naive": {"mase": steps}}, "horizon": H, "season": None,
            "origins": [5], "interval": {"level": 80, "coverage": 1.0}, "interval_adaptive": {"coverage": 1.0}}


def test_the_horizon_note_appears_only_when_the_horizon_was_cut():
    """train.py's evaluation asks for 24 steps: a test part of exactly 24 values gives them all
    (no note); one of 20 gives 20 and says so."""
    assert "(horizon" not in outputs.backtest_line(backtest_result(24), "F", asked=24)
    assert "(horizon" not in outputs.backtest_line(backtest_result(24), "F")
    assert "(horizon 20, not 24: the test part has 20 values)" in outputs.backtest_line(backtest_result(20), "F", asked=24)


@pytest.mark.parametrize("scale, last", [(1e-4, 0.0012345678), (700.0, 12345.6)])
def test_future_csv_keeps_five_digits_of_the_series_std(tmp_path, scale, last):
    """future.csv rounds to the digits at 1e-5 of the series' (training part's) std: a series of
    std about 1e-4 keeps naive's forecast 0.0012345678 to within 1e-9 (not cut to 0.00123), one of
    std about 700 writes 12345.6 (not float32's 12345.60012)."""
    values = 10 * scale + scale * np.sin(np.arange(200) / 3)
    values[-1] = last
    csv = tmp_path / "p.csv"
    csv.write_text("v\n" + "".join(f"{float(v)!r}\n" for v in values))
    cfg, _ = config.parse(["--model", "naive", "--dataset", str(csv), "--time_steps", "4", "--out_dir",
                           str(tmp_path / "runs"), "--no_forecast"])
    run_dir, _ = train.train(cfg)
    std = values[:boundaries(200)[0]].std()
    assert run_main("forecast.py", run_dir, "--future", "2").returncode == 0
    (folder,) = os.listdir(os.path.join(run_dir, "forecasts"))
    rows = open(os.path.join(run_dir, "forecasts", folder, "future.csv")).read().splitlines()[1:]
    written = [row.split(",")[1] for row in rows]
    assert all(abs(float(w) - last) <= 1e-5 * std for w in written), (written, std)
    if scale > 1:
        assert written == ["12345.6", "12345.6"]


def test_vqvae_folder_splits_by_hand(tmp_path):
    """A flat folder of images: a fixed 1/20 is the test split, at least one image; validation is
    20% of the rest (seed 1337). 7 images: 1 test, int(0.8 * 6) = 4 train, 2 val; 45: 2 test,
    34 train, 9 val. Every image in exactly one split."""
    from data.images import load_splits
    for n, (n_test, n_train, n_val) in ((7, (1, 4, 2)), (45, (2, 34, 9))):
        folder = tmp_path / f"f{n}"
        folder.mkdir()
        for i in range(n):
            (folder / f"{i:02d}.png").write_bytes(b"")
        splits, info = load_splits(str(folder), "train")
        assert (len(splits["test"]), len(splits["train"]), len(splits["val"])) == (n_test, n_train, n_val)
        assert sorted(splits["test"] + splits["train"] + splits["val"]) == sorted(str(p) for p in folder.iterdir())
        assert info["test_split"] == "test"


def test_vqvae_accumulated_step_is_the_mean_over_the_groups_images(tmp_path, monkeypatch):
    """--accumulate 2 with batches of 2 over 7 training images: steps over images 4 + 3, the last
    group short. Each step's gradient is the gradient of the mean per-image MSE over its group's
    images (the unmasked image against the model's output on the masked one), recomputed here in
    one pass per group, from the seed's model, the sampler's order and the images' own masks."""
    from torch.utils.data import DistributedSampler
    from data import images
    from models.vqvae import Model
    monkeypatch.setattr(images, "SAMPLE_SIZES", {"train": 7, "val": 2, "test": 2})
    steps = []

    class Recorder:                                              # AdamW's place: keeps each step's gradients
        def __init__(self, params, **settings):
            self.params = list(params)

        def step(self):
            steps.append([p.grad.clone() for p in self.params])

        def zero_grad(self, set_to_none=True):
            for p in self.params:
                p.grad = None

        def state_dict(self):
            return {}
    monkeypatch.setattr(torch.optim, "AdamW", Recorder)          # moves nothing: every step sees the seed's model
    r = run_main("vqvae_imagenet.py", "--model", "ffnae", "--data", "sample", "--image_size", "32", "--patch_size", "8",
                 "--batch_size", "2", "--accumulate", "2", "--workers", "0", "--hidden", "32", "--res_channels", "8",
                 "--epochs", "1", "--seed", "5", "--out_dir", tmp_path, threads=1)
    assert r.returncode == 0, r.stderr
    torch.manual_seed(5)
    model = Model(bottleneck="ffnae", hidden=32, res_channels=8)  # ffnae: no dropout either way
    params = list(model.parameters())
    crops = images.Images(None, "train", 32, 8, 0.5, seed=5, photo=images.load_splits("sample", "train")[1]["source"])
    crops.epoch = 1
    sampler = DistributedSampler(crops, num_replicas=1, rank=0, shuffle=True, seed=5)
    sampler.set_epoch(1)
    order = list(sampler)
    groups = [order[:4], order[4:]]
    assert len(steps) == 2 and len(order) == 7
    for group, grads in zip(groups, steps):
        items = [crops[i] for i in group]
        x = torch.stack([img for img, _ in items]).float() / 255
        keep = 1.0 - torch.kron(torch.stack([m for _, m in items]).float(), torch.ones(8, 8))
        loss = ((model(x * keep[:, None]) - x) ** 2).mean()
        for got, expected in zip(grads, torch.autograd.grad(loss, params)):    # atol: float32 rounding of each
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_vqvae_test_masks_after_a_swap_are_the_sources(tmp_path):
    """After --swap_ffn_with_vq, the source, the swapped model before training and after it are
    tested on the same masks (epoch 0's): a fine-tune at lr 1e-12, which moves no weight visibly,
    leaves the test loss where it was before training (fresh masks of epoch 1 would change it)."""
    quick = ["--batch_size", "16", "--workers", "0", "--out_dir", str(tmp_path)]
    r = run_main("vqvae_imagenet.py", "--model", "ffnae", "--data", "sample", "--image_size", "32", "--patch_size", "8",
                 "--hidden", "32", "--res_channels", "8", "--max_steps", "1", *quick)
    assert r.returncode == 0, r.stderr
    source = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    r = run_main("vqvae_imagenet.py", "--swap_ffn_with_vq", source, "--max_steps", "1", "--lr", "1e-12", *quick)
    assert r.returncode == 0, r.stderr
    metrics = json.load(open(os.path.join(r.stdout.strip().splitlines()[-1].removeprefix("-> "), "metrics.json")))
    assert metrics["epochs_run"] == 1 and metrics["steps"] == 1
    assert metrics["test_loss"] == pytest.approx(metrics["test_loss_before_training"], rel=1e-6)


# ---------------------------------------------------------------- choices that change no number (2026-12-05 audit)
@pytest.mark.parametrize("seed, part", [(0, None), (-1, "_seed-1"), (1, "_seed1"), (2**64 - 1, f"_seed{2**64 - 1}")])
def test_every_seed_but_zero_names_its_run(seed, part):
    """A run of seed -1 and one of seed 0 must not share a folder (forecast.py RUN takes the latest)."""
    cfg, _ = config.parse(["--model", "naive", "--dataset", "goog", f"--seed={seed}"])
    name = config.run_name(cfg, "goog")
    assert (part in name) if part else ("_seed" not in name), name


def test_a_sweep_on_several_workers_gives_each_training_one_thread(monkeypatch):
    """--jobs N > 1: N worker processes, each training with one thread (N x the cores' threads would
    fight over the cores); --jobs 1 trains here with the thread count as it is."""
    import concurrent.futures
    import sweep
    submitted = []

    class Pool:  # records what a worker would be asked to run; runs nothing
        def __init__(self, jobs, mp_context=None):
            self.jobs = jobs

        def submit(self, fn, *args):
            submitted.append((self.jobs, fn, args))
            future = concurrent.futures.Future()
            future.set_result(f"run{len(submitted)}")
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(sweep, "ProcessPoolExecutor", Pool)
    commands = [["--model", "naive"], ["--model", "linear"], ["--model", "lstm"]]
    done, failed = sweep.run_sweep(commands, jobs=2, log=lambda line: None)
    assert failed == [] and [r for _, r in done] == ["run1", "run2", "run3"]
    assert [(jobs, fn, args) for jobs, fn, args in submitted] == [(2, sweep.run_one, (c, 1)) for c in commands]
    here = []
    monkeypatch.setattr(sweep, "run_one", lambda argv, threads: here.append(threads) or "run")
    sweep.run_sweep(commands[:1], jobs=1, log=lambda line: None)
    assert here == [None] and len(submitted) == 3  # no pool: this process, its threads untouched
