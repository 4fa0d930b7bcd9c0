"""The field's yardstick (issue 34): ETTh1/ETTh2 as named data sets, the field's split, errors in the
field's units, benchmarks/ett.py in parts, and the classical forecasters (benchmarks/classical.py)."""
import csv
import json
import os
import stat
import sys

import numpy as np
import pytest
import torch

import forecast
import models
from conftest import ROOT, needs_ett, run_main, run_script
from data import DataError, FIELD_SPLITS, Series, load_series, parts, split_series
from data.download import FIELD_SERIES, FILES, default_data_dir

H = 96


def ett_ot(name="ETTh1"):
    """The OT column of the raw file, read with the csv module (no project code)."""
    with open(os.path.join(default_data_dir(), FILES[name][0]), newline="") as f:
        rows = list(csv.reader(f))
    return np.array([float(r[rows[0].index("OT")]) for r in rows[1:]])


def naive_field_mse(y, horizon, train=8640, val_end=11520, test_end=14400):
    """The field's naive MSE by hand: z-score with the first `train` values, every origin o whose
    targets o..o+H-1 lie in [val_end, test_end), the last value before o repeated."""
    mean, std = y[:train].mean(), y[:train].std()
    z = (y - mean) / std
    errors = [np.mean((z[o:o + horizon] - z[o - 1]) ** 2) for o in range(val_end, test_end - horizon + 1)]
    return float(np.mean(errors)), len(errors)


# ---------------------------------------------------------------- the split's borders

def test_a_field_split_cuts_at_its_borders_and_leaves_the_rest_unused():
    values = np.sin(np.arange(100) / 3) + np.arange(100) / 50
    assert parts(100, None, (50, 70, 90)) == (50, 70, 90)
    assert parts(100, None, None) == (70, 80, 100)                     # no field split: 70/10/20
    assert parts(100, (0.6, 0.2, 0.2), (50, 70, 90)) == (60, 80, 100)  # fractions given: the whole series
    with pytest.raises(DataError, match="needs 90 .*--val_fraction and --test_fraction"):
        parts(80, None, (50, 70, 90))
    s = split_series(values, 5, "last", "chrono", None, field_split=(50, 70, 90))
    assert (s.train_end, s.val_end, s.test_end) == (50, 70, 90)
    assert s.mean == pytest.approx(values[:50].mean()) and s.std == pytest.approx(values[:50].std())
    assert len(s.x_train) == 50 - 5 and len(s.x_val) == 70 - 50          # targets in [5, 50) and [50, 70)
    z = (values - values[:50].mean()) / values[:50].std()
    assert torch.allclose(s.y_val[:, 0].double(), torch.as_tensor(z[50:70]), atol=1e-6)  # the first and last targets
    assert torch.allclose(s.x_val[0, :, 0].double(), torch.as_tensor(z[45:50]), atol=1e-6)  # reach back into training


def test_a_backtest_stays_in_the_test_part_and_its_normalised_errors_are_the_hand_computed_ones():
    """naive and the linear model of the last value over a series whose test part ends before its
    last value: every origin at stride 1, targets inside [val_end, test_end), errors in std units."""
    rng = np.random.default_rng(3)
    values = 10 + np.cumsum(rng.standard_normal(200))
    mean, std = values[:100].mean(), values[:100].std()
    series = Series("s", values, np.arange(200), "t", "v", "test", "v", field_split=(100, 140, 180))
    run = forecast.Run("/nonexistent", models.build("naive").eval(), {"split": "chrono", "time_steps": 4,
                       "run_name": "t"}, series, (values - mean) / std, mean, std, 100, 140, np.ones(200, bool),
                       "cpu", 180)
    r = forecast.backtest(run, 7, stride=1, level=None)
    assert list(r["origins"]) == list(range(140, 180 - 7 + 1))          # the last targets end at 179
    z = (values - mean) / std
    mse = np.mean([np.mean((z[o:o + 7] - z[o - 1]) ** 2) for o in range(140, 174)])
    mae = np.mean([np.mean(np.abs(z[o:o + 7] - z[o - 1])) for o in range(140, 174)])
    for name in ("model", "naive"):  # the naive model forecasts what naive does
        assert r["metrics"][name]["mse_normalised"] == pytest.approx(mse, rel=1e-6)
        assert r["metrics"][name]["mae_normalised"] == pytest.approx(mae, rel=1e-6)
    assert r["metrics"]["naive"]["mse_normalised"] == pytest.approx(r["metrics"]["naive"]["mse"] / std ** 2)
    with pytest.raises(DataError, match="longer than the test part \\(40 values\\)"):
        forecast.backtest(run, 41)


def test_one_long_rollout_serves_every_shorter_horizon():
    """forecast.backtest with forecasts= (benchmarks/ett.py) gives what its own rollout gives: a fed-back
    forecast's first steps do not depend on how many follow."""
    rng = np.random.default_rng(4)
    values = 5 + np.sin(np.arange(300) / 5) + 0.1 * rng.standard_normal(300)
    torch.manual_seed(0)
    from test_norm import make_run
    run = make_run(values, models.build("vqlnpemlp", block_size=12), 12)
    stride = forecast.backtest_origins(run, 8)[1]
    union = forecast.backtest_origins(run, 8, stride)[0]
    long = forecast.rollout(run, union, 20)
    row = {o: i for i, o in enumerate(union)}
    for h in (8, 20):
        own = forecast.backtest(run, h, stride=stride, level=None)
        made = forecast.backtest(run, h, stride=stride, level=None, forecasts=lambda o: long[[row[i] for i in o]])
        assert np.array_equal(own["origins"], made["origins"]) and len(own["origins"]) > 3
        assert np.allclose(own["predictions"], made["predictions"], rtol=0, atol=1e-9)


# ---------------------------------------------------------------- ETTh1 and ETTh2

@needs_ett
def test_the_ett_series_are_the_published_files_with_the_fields_split():
    for name in FIELD_SERIES:
        s = load_series(name)
        assert s.column == "OT" and len(s.values) == 17420 and s.field_split == FIELD_SPLITS[name] == (8640, 11520, 14400)
        assert np.array_equal(s.values, ett_ot(name))
        assert str(s.time[0]).startswith("2016-07-01T00:00")
        assert load_series(name, column="HUFL").column == "HUFL"


@needs_ett
def test_naive_and_linear_on_etth1_at_96_steps_are_the_independent_computation(tmp_path):
    """The issue's check: train.py --model linear --dataset ETTh1 --time_steps 336 --norm global, then
    forecast.py RUN --horizon 96 --stride 1. Independent: naive by a numpy loop over the raw file;
    linear by numpy's normal equations on the training windows and a numpy rollout."""
    r = run_main("train.py", "--model", "linear", "--dataset", "ETTh1", "--time_steps", "336", "--norm", "global",
                 "--out_dir", tmp_path, "--no_forecast")
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    assert os.path.basename(os.path.dirname(run_dir)) == "linear_ETTh1_ts336_lr0.007_normglobal"  # no _val suffix
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["parts"] == {"train_end": 8640, "val_end": 11520, "test_end": 14400, "n_values": 17420}
    assert config["fractions"] is None
    r = run_main("forecast.py", run_dir, "--horizon", H, "--stride", 1)
    assert r.returncode == 0, r.stderr
    folder = r.stdout.strip().split("-> ")[-1]
    m = json.load(open(os.path.join(folder, "metrics.json")))
    y = ett_ot()
    naive, n = naive_field_mse(y, H)
    assert m["n_origins"] == n == 2881 - H and m["last_origin"] == 14400 - H
    assert m["metrics"]["naive"]["mse_normalised"] == pytest.approx(naive, rel=1e-12)

    mean, std = y[:8640].mean(), y[:8640].std()
    z = (y - mean) / std
    T = 336
    X = np.lib.stride_tricks.sliding_window_view(z[:8640 - 1], T)       # windows inside the training part
    X = np.hstack([X, np.ones((len(X), 1))])
    w = np.linalg.solve(X.T @ X, X.T @ z[T:8640])                        # the normal equations
    windows = np.stack([z[o - T:o] for o in range(11520, 14400 - H + 1)])
    pred = np.empty((len(windows), H))
    for k in range(H):
        pred[:, k] = windows @ w[:T] + w[T]
        windows = np.hstack([windows[:, 1:], pred[:, k:k + 1]])
    truth = np.stack([z[o:o + H] for o in range(11520, 14400 - H + 1)])
    assert m["metrics"]["model"]["mse_normalised"] == pytest.approx(np.mean((pred - truth) ** 2), rel=1e-3)
    assert m["metrics"]["model"]["mae_normalised"] == pytest.approx(np.mean(np.abs(pred - truth)), rel=1e-3)
    assert m["metrics"]["model"]["mse_normalised"] < naive  # least squares beats persistence here


@needs_ett
def test_fractions_on_etth1_cut_the_whole_file_and_name_the_run(tmp_path):
    r = run_main("train.py", "--model", "naive", "--dataset", "ETTh2", "--val_fraction", "0.1", "--out_dir", tmp_path,
                 "--no_forecast")
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    assert "_val0.1_test0.2" in run_dir  # the defaults elsewhere, but not this data set's own split
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["parts"] == {"train_end": round(17420 * 0.7), "val_end": round(17420 * 0.8), "test_end": 17420,
                               "n_values": 17420}


# ---------------------------------------------------------------- download.py

@needs_ett
def test_download_fetches_the_ett_files_into_a_new_folder_from_a_mirror_without_a_slash(tmp_path):
    mirror, target = tmp_path / "mirror", tmp_path / "new" / "data"
    mirror.mkdir()
    for name in FIELD_SERIES:
        (mirror / FILES[name][0]).write_bytes(open(os.path.join(default_data_dir(), FILES[name][0]), "rb").read())
    r = run_script("data/download.py", *FIELD_SERIES, "--data_dir", target, "--base_url", mirror.as_uri())
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(target)) == ["ETTh1.csv", "ETTh2.csv"]
    umask = os.umask(0)
    os.umask(umask)
    for name in FIELD_SERIES:
        path = target / FILES[name][0]
        assert path.read_bytes() == (mirror / FILES[name][0]).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask      # as any file the user makes
    r = run_script("data/download.py", "ETTh3", "--data_dir", target)
    assert r.returncode == 2 and "'ETTh3'" in r.stderr and "ETTh1, ETTh2" in r.stderr and r.stderr.count("\n") == 1


# ---------------------------------------------------------------- benchmarks/ett.py

@needs_ett
def test_the_field_benchmark_runs_in_parts_and_its_table_holds_what_its_runs_measured(tmp_path):
    out, results = tmp_path / "runs", tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Noise floors\n\nkept\n")
    first = run_main("benchmarks/ett.py", "--quick", "--models", "naive", "--no_classical", "--out_dir", out,
                     "--results", results)
    assert first.returncode == 0, first.stderr
    assert "1 trainings: 0 reused" in first.stdout
    second = run_main("benchmarks/ett.py", "--quick", "--models", "naive,linear", "--no_classical", "--out_dir", out,
                      "--results", results)
    assert second.returncode == 0, second.stderr
    assert "4 trainings: 1 reused" in second.stdout                     # naive from the first part
    text = results.read_text()
    assert text.count("<!-- ett:start -->") == 1 and text.endswith("## Noise floors\n\nkept\n")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| model")}
    naive, _ = naive_field_mse(ett_ot(), H)
    assert float(rows["naive (the last value)"][0]) == pytest.approx(naive, rel=2e-3)  # printed to 3 digits
    scores = json.load(open(out / "scores.json"))["runs"]
    linear = next(v for k, v in scores.items() if "normglobal" in k)["H96_stride1"]
    assert float(rows["linear, T 336, global"][0]) == pytest.approx(linear["mse_normalised"], rel=2e-3)
    assert linear["n_origins"] == 2881 - H and linear["naive_mse_normalised"] == pytest.approx(naive, rel=1e-12)
    assert rows["DLinear (published: Zeng et al. 2023, Table 9)"][:2] == ["0.056", "0.180 |"]
    assert (tmp_path / "results_ett.png").stat().st_size > 10_000
    docs = open(os.path.join(ROOT, "docs", "RESULTS.md"), "rb").read()
    third = run_main("benchmarks/ett.py", "--quick", "--models", "naive", "--out_dir", out)  # a check: not into docs/
    assert third.returncode == 0, third.stderr
    own = (out / "RESULTS.md").read_text()
    assert "| naive (the last value) | " + rows["naive (the last value)"][0] in own and "statsmodels" not in own
    assert open(os.path.join(ROOT, "docs", "RESULTS.md"), "rb").read() == docs


def test_the_field_benchmark_refuses_bad_lists_in_one_line(tmp_path):
    for args, says in ((["--models", "naive,gpt"], "'naive,gpt'"), (["--datasets", "ETTh3"], "'ETTh3'"),
                       (["--horizons", "96,x"], "'96,x'")):
        r = run_main("benchmarks/ett.py", *args, "--out_dir", tmp_path / "runs")
        assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- classical forecasters

def test_train_and_forecast_never_import_statsmodels():
    r = run_script("-c", "import sys, train, forecast, sweep; print(sorted(m for m in sys.modules "
                   "if m.split('.')[0] in ('statsmodels', 'pandas', 'scipy')))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.fixture
def classical(monkeypatch):
    """benchmarks/classical.py with smaller search grids (the fits, not the grids, are under test)."""
    pytest.importorskip("statsmodels", reason="pip install -r benchmarks/requirements.txt")
    sys.path.insert(0, ROOT)
    from benchmarks import classical
    monkeypatch.setattr(classical, "ORDERS", [(1, 0), (1, 1)])
    monkeypatch.setattr(classical, "ETS_FORMS", [(True, True)])
    return classical


def seasonal_series(n=360, m=4):
    rng = np.random.default_rng(7)
    t = np.arange(n)
    return 20 + 0.02 * t + 3 * np.sin(2 * np.pi * t / m) + np.cumsum(0.3 * rng.standard_normal(n)) / 3


@pytest.mark.parametrize("method", ["ETS", "ARIMA", "Theta"])
def test_each_method_run_forward_forecasts_what_statsmodels_forecasts_from_each_origin(classical, method):
    """The filter-forward forecasts at the fit's end equal statsmodels' own forecast(H); at a later
    origin, the state-space ones equal results.apply(y[:o]).forecast(H) (the same parameters on the
    longer series), and Theta's level equals statsmodels' simple exponential smoothing at that alpha."""
    import warnings
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing
    y, fit_end, later = seasonal_series(), 240, 301
    predict, form = classical.fitted(method, y[:fit_end], 4)
    got = predict(y, np.array([fit_end, later]), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "Theta":
            res, _ = classical.fit_theta(y[:fit_end], 4)
            assert np.allclose(got[0], np.asarray(res.forecast(10)), rtol=1e-10)
            x = y[:later] / res._seasonal[np.arange(later) % 4] if res._seasonal.shape[0] else y[:later]
            level = SimpleExpSmoothing(x, initial_level=x[0], initialization_method="known").fit(
                smoothing_level=res._alpha, optimized=False).forecast(1)[0]
            drift = 0.5 * res._b0 * (np.arange(10) + 1 / res._alpha - (1 - res._alpha) ** later / res._alpha)
            want = level + drift
            if res._seasonal.shape[0]:
                want = want * res._seasonal[(later + np.arange(10)) % 4]
            assert np.allclose(got[1], want, rtol=1e-10) and "m=4" in form  # the test finds the season
        else:
            res = (classical.fit_ets(y[:fit_end], 4) if method == "ETS" else classical.fit_arima(y[:fit_end]))[0]
            assert np.allclose(got[0], np.asarray(res.forecast(10)), rtol=1e-10)
            assert np.allclose(got[1], np.asarray(res.apply(y[:later], refit=False).forecast(10)), rtol=1e-10)
    assert np.abs(got[1] - y[later:later + 10]).mean() < 3 * np.abs(np.diff(y)).mean() * 10  # a sane forecast


def test_classical_scores_are_the_backtests_numbers_on_the_same_origins(classical, tmp_path, monkeypatch):
    """scores() of a CSV: every method's normalised MSE equals numpy's over its own forecasts, on
    forecast.py's default origins; naive's MASE at step 1 is the hand-computed one."""
    y = seasonal_series(300)
    path = tmp_path / "seasonal.csv"
    path.write_text("t,value\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(y)))
    found = classical.scores(str(path), [6], {"default": None, "stride1": 1}, log=lambda s: None)
    train_end, val_end = 210, 240
    mean, std = y[:train_end].mean(), y[:train_end].std()
    scale = np.mean(np.abs(np.diff(y[:train_end])))
    for method in classical.METHODS:
        s1 = found[f"{method}|H6_stride1"]
        assert s1["n_origins"] == 300 - 240 - 6 + 1
        predict, _ = classical.fitted(method, y[:val_end], None)
        origins = np.arange(val_end, 300 - 6 + 1)
        pred = predict(y, origins, 6)
        truth = np.stack([y[o:o + 6] for o in origins])
        assert s1["mse_normalised"] == pytest.approx(np.mean((pred - truth) ** 2) / std ** 2, rel=1e-9)
        assert s1["naive_mase_h1"] == pytest.approx(np.mean(np.abs(y[origins] - y[origins - 1])) / scale, rel=1e-12)
        assert found[f"{method}|H6_default"]["n_origins"] <= s1["n_origins"]
