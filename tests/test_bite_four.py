"""Tests that bite, round four (issue 35): the one-line bugs a fresh audit wrote from the code of
issues 27-29 that no test caught, each now caught by the value a user sees, worked out here by
hand: the data directory a resumed run reads, a least-squares run's name, the user's
OMP_NUM_THREADS, fractional seconds, adaptive intervals beside filled-in values, absolute positions
of windows that do not start the series; and the three caught only by the golden outputs (the
adaptive median's axis, the adaptive level's floor, the codebook read under a window norm)."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch

import models
import outputs
import runs
import scoring
from conftest import run_main, trained, write
from data import load_series
from models.norm import REVIN_EPS




SMALL = ("--model", "vqlnmlp", "--vocab_size", "8", "--d_model", "4", "--time_steps", "8")


# ---------------------------------------------------------------- config.py

def test_resume_reads_the_data_dir_it_is_given_not_the_runs_old_one(tmp_path):
    """--resume RUN --data_dir NEW: the series is read from NEW (the old folder holds another
    version of the file here, so reading it would be refused as a changed series)."""
    old, new = tmp_path / "old", tmp_path / "new"
    rows = [(f"{i / 30:.4f}", 50 + (i * 13) % 29) for i in range(120)]
    write(old / "y+w.csv", "time(h),formaldehyde(ug/m³)", rows)
    run_dir = trained(tmp_path / "runs", *SMALL, "--dataset", "y_w", "--data_dir", old, "--epochs", "1", "--no_forecast")
    shutil.copytree(old, new)
    write(old / "y+w.csv", "time(h),formaldehyde(ug/m³)", rows[:-1] + [(rows[-1][0], 99)])  # the old folder moves on
    r = run_main("train.py", "--resume", run_dir, "--epochs", "2", "--data_dir", new, "--no_forecast")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(run_dir, "losses.csv")) as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    r = run_main("train.py", "--resume", run_dir, "--epochs", "3", "--no_forecast")  # the run's own: changed
    assert r.returncode == 2 and "the series changed since the run was trained" in r.stderr


@pytest.mark.parametrize("model, named", [("linear", False), ("naive", True), ("vqlnmlp", True)])
def test_a_batch_size_is_in_the_name_only_where_it_changes_the_numbers(tmp_path, model, named):
    """A least-squares fit is the same for any --batch_size: its run is not named _bs64."""
    path = write(tmp_path / "s.csv", "t,v", [(i, (i * 7) % 11) for i in range(60)])
    extra = SMALL[2:6] if model == "vqlnmlp" else ()
    run_dir = trained(tmp_path / "runs", "--model", model, *extra, "--dataset", path, "--time_steps", "4",
                      "--batch_size", "64", "--epochs", "1", "--no_forecast")
    assert ("_bs64" in os.path.basename(os.path.dirname(run_dir))) == named


# ---------------------------------------------------------------- runs.py

def test_threads_that_follow_the_machine_leave_the_users_omp_num_threads_alone(monkeypatch):
    """VQSEQ_THREADS=follow with OMP_NUM_THREADS set: the user's count stays, whatever the load."""
    monkeypatch.setenv("VQSEQ_THREADS", "follow")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = runs.Threads(read=lambda: 1e9 * __import__("time").monotonic())  # every other core busy
        threads.cores = 4
        threads.start(wait=0.01)
        threads.update()
        assert threads.fixed and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- data/csvfile.py

@pytest.mark.parametrize("cell, micro", [("13:00:05.25", 250000), ("13:00:05.5", 500000), ("13:00:05.000007", 7)])
def test_fractional_seconds_are_read_as_written(tmp_path, cell, micro):
    """05.25 is a quarter of a second past 05, not 25 microseconds."""
    rows = [(f"2024-01-{d:02d} {cell}", d % 5) for d in range(1, 21)]
    series = load_series(str(write(tmp_path / "f.csv", "when,v", rows)))
    assert series.time[0] == np.datetime64("2024-01-01T13:00:05") + np.timedelta64(micro, "us")
    assert (np.diff(series.time) == np.timedelta64(1, "D")).all()


# ---------------------------------------------------------------- scoring.py

def test_adaptive_intervals_never_learn_from_a_filled_in_value():
    """Level 50, gamma 0.1, one step ahead, validation errors 1, 2, 3; origin 0's value was filled in
    (error 100, not scored). Origin 0: rank ceil(4 * 0.5) = 2 of (1, 2, 3): 2. Origin 1: the filled
    outcome neither moves alpha nor joins the pool: 2 again. Origin 2: origin 1's 0.5 was inside,
    alpha 0.5 + 0.1 * 0.5 = 0.55, level 45 over (0.5, 1, 2, 3): rank ceil(5 * 0.45) = 3: 2."""
    errors, scored = np.array([[100.0], [0.5], [9.0]]), np.array([[False], [True], [True]])
    halfwidth, alpha = scoring.adaptive_intervals(np.arange(3), errors, scored, [np.array([1.0, 2.0, 3.0])], 50, 0.1)
    assert alpha[:, 0] == pytest.approx([0.5, 0.5, 0.55], abs=1e-12)
    assert halfwidth[:, 0].tolist() == [2.0, 2.0, 2.0]


def test_an_adaptive_level_may_fall_below_zero_and_climbs_back_from_there():
    """Gibbs and Candes clip alpha to [-gamma, 1 + gamma], not [0, 1]: level 90 (alpha 0.1), gamma 0.5,
    39 validation errors 1..39. Origin 0: rank ceil(40 * 0.9) = 36: 36; its error 1000 misses:
    alpha 0.1 + 0.5 (0.1 - 1) = -0.35, an infinite interval. Every later error 0 is inside: +0.05 a
    step, so alpha is -0.30, ..., 0.0 (origin 8: still infinite) and 0.05 at origin 9 (level 95 of
    1..39 and eight 0s: rank ceil(49 * 0.95) = 47, the 39th of 1..39 after the zeros: 39)."""
    K = 10
    errors = np.array([[1000.0]] + [[0.0]] * (K - 1))
    halfwidth, alpha = scoring.adaptive_intervals(np.arange(K), errors, np.ones((K, 1), bool),
                                                  [np.arange(1.0, 40.0)], 90, 0.5)
    assert alpha[:, 0] == pytest.approx([0.1, -0.35, -0.30, -0.25, -0.20, -0.15, -0.10, -0.05, 0.0, 0.05], abs=1e-9)
    assert halfwidth[0, 0] == 36 and np.isinf(halfwidth[1:9, 0]).all() and halfwidth[9, 0] == 39


def test_the_adaptive_median_is_over_the_origins_of_each_step(tmp_path):
    """errors_by_step.csv and metrics.json hold, per step, the median of the adaptive half-widths
    over the origins (3 origins, 2 steps: a median over the steps would give 3 numbers)."""
    halfwidth = np.array([[1.0, 10.0], [2.0, np.inf], [7.0, 30.0]])
    steps = {k: np.ones(2) for k in ("mse", "rmse", "mae", "smape", "mase")}
    result = {"horizon": 2, "stride": 1, "origins": np.array([5, 6, 7]), "season": None, "mase_scale": 1.0,
              "metrics": {"model": {k: 1.0 for k in steps}, "naive": {k: 1.0 for k in steps}},
              "by_step": {"model": steps, "naive": steps}, "observed": np.ones((3, 2), bool),
              "interval": {"level": 80, "coverage": 1.0, "halfwidth": np.ones(2), "coverage_by_step": np.ones(2),
                           "n_calibration": np.array([9, 9])},
              "interval_adaptive": {"level": 80, "gamma": 0.05, "coverage": 1.0, "halfwidth": halfwidth,
                                    "alpha": np.zeros((3, 2)), "coverage_by_step": np.ones(2)}}

    class Run:
        run_dir, z, val_end, test_end, weights, model = str(tmp_path), np.zeros(10), 5, 10, None, None
        series = type("S", (), {"name": "s"})
        config = {"run_name": "r"}
    folder = outputs.write_backtest(Run, result)
    rows = list(csv.DictReader(open(os.path.join(folder, "errors_by_step.csv"))))
    assert [float(r["adaptive_median_halfwidth"]) for r in rows] == [2.0, 30.0]
    saved = json.load(open(os.path.join(folder, "metrics.json")))
    assert saved["interval_adaptive"]["median_halfwidth_by_step"] == [2.0, 30.0]
    assert saved["interval_adaptive"]["infinite_fraction"] == pytest.approx(1 / 6)


# ---------------------------------------------------------------- log_protocol.py

def test_absolute_positions_number_each_window_by_its_place_in_the_series(tmp_path):
    """forecast.py --positions absolute on a chrono run's test part: the window before value t
    starts at position t - T, not at 0 (the first test window is not the series' first). The batch
    MSE by hand: each test value's one-step forecast from forward(window, start_pos=t - T)."""
    values = 10 + np.sin(np.arange(120) / 4) + 0.1 * np.cos(np.arange(120) * 1.7)
    path = write(tmp_path / "s.csv", "t,v", [(i, f"{v:.6f}") for i, v in enumerate(values)])
    run_dir = trained(tmp_path / "runs", "--model", "vqlnpemlp", "--vocab_size", "8", "--d_model", "4", "--time_steps",
                      "8", "--block_size", "120", "--norm", "global", "--epochs", "1", "--dataset", path, "--no_forecast")
    r = run_main("forecast.py", run_dir, "--positions", "absolute")
    assert r.returncode == 0, r.stderr
    saved = json.load(open(os.path.join(r.stdout.strip().split("-> ")[-1], "metrics.json")))
    checkpoint = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)
    model = models.build("vqlnpemlp", **checkpoint["model_args"])
    model.load_state_dict(checkpoint["state_dict"])
    config = json.load(open(os.path.join(run_dir, "config.json")))
    mean, std = config["normalisation"]["mean"], config["normalisation"]["std"]
    z = torch.tensor((values - mean) / std, dtype=torch.float32)
    with torch.no_grad():
        pred = [float(model(z[t - 8:t].view(1, 8, 1), start_pos=t - 8)[0, -1, 0]) * std + mean for t in range(96, 120)]
    assert saved["start_index"] == 96 and saved["positions"] == "absolute"
    assert saved["mse_batch"] == pytest.approx(np.mean((np.array(pred) - values[96:]) ** 2), rel=1e-5)
    window, fed = z[88:96].clone(), []  # regressive: from the window before value 96, positions 88.. on
    with torch.no_grad():
        for i in range(24):
            fed.append(float(model(window.view(1, 8, 1), start_pos=88 + i)[0, -1, 0]))
            window = torch.cat([window[1:], torch.tensor([fed[-1]])])
    assert saved["mse_regressive"] == pytest.approx(np.mean((np.array(fed) * std + mean - values[96:]) ** 2), rel=1e-5)


def test_the_logs_errors_skip_filled_in_values(tmp_path):
    """The log's evaluation of a naive run (--split random, over the whole series): each one-step
    forecast is the value before; filled-in values (rows 20 and 41, interpolated) are inputs, never
    scored. By hand over t in [4, 60) with row t observed."""
    values = [(i * 7) % 11 + 0.5 * (i % 3) for i in range(60)]
    rows = [(i, "" if i in (20, 41) else v) for i, v in enumerate(values)]
    path = write(tmp_path / "g.csv", "t,v", rows)
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--split", "random",
                      "--fill", "interpolate", "--no_forecast")
    r = run_main("forecast.py", run_dir)
    assert r.returncode == 0, r.stderr
    saved = json.load(open(os.path.join(r.stdout.strip().split("-> ")[-1], "metrics.json")))
    y = np.array(values, float)
    y[20], y[41] = (y[19] + y[21]) / 2, (y[40] + y[42]) / 2                            # interpolated
    scored = [t for t in range(4, 60) if t not in (20, 41)]
    assert saved["mae_batch"] == pytest.approx(np.mean([abs(y[t] - y[t - 1]) for t in scored]), rel=1e-5)
    assert saved["mse_batch"] == pytest.approx(np.mean([(y[t] - y[t - 1]) ** 2 for t in scored]), rel=1e-5)


def test_mase_scale_skips_differences_with_a_filled_in_value(tmp_path):
    """MASE's scale: the mean |y_t - y_{t-1}| over the training part [0, 42), pairs where both values
    were observed (row 10 was filled in: the differences 9-10 and 10-11 are left out)."""
    values = [(i * 7) % 11 for i in range(60)]
    path = write(tmp_path / "g.csv", "t,v", [(i, "" if i == 10 else v) for i, v in enumerate(values)])
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4",
                      "--fill", "ffill", "--no_forecast")
    r = run_main("forecast.py", run_dir, "--horizon", "2")
    assert r.returncode == 0, r.stderr
    saved = json.load(open(os.path.join(r.stdout.strip().split("-> ")[-1], "metrics.json")))
    pairs = [abs(values[t] - values[t - 1]) for t in range(1, 42) if t not in (10, 11)]
    assert saved["mase_scale"] == pytest.approx(np.mean(pairs), rel=1e-12)


# ---------------------------------------------------------------- models/norm.py

def test_codebook_usage_under_a_window_norm_is_of_what_the_model_reads(tmp_path):
    """Under --norm revin the codebook reads each window relative to its own mean and std: the usage
    metrics.json reports is the inner model's on the validation windows normalised by hand."""
    values = 10 + np.sin(np.arange(200) / 4) * (1 + np.arange(200) / 50)
    path = write(tmp_path / "s.csv", "t,v", [(i, f"{v:.6f}") for i, v in enumerate(values)])
    run_dir = trained(tmp_path / "runs", *SMALL, "--norm", "revin", "--epochs", "1", "--dataset", path, "--no_forecast")
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    checkpoint = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)
    model = models.build("vqlnmlp", **checkpoint["model_args"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    train_end, val_end = 140, 160
    z = (values - values[:train_end].mean()) / values[:train_end].std()
    x = np.stack([z[t - 8:t] for t in range(train_end, val_end)])                       # the validation windows
    x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + REVIN_EPS)   # revin, by hand
    usage = models.codebook_usage(model, torch.tensor(x[..., None], dtype=torch.float32))
    assert metrics["codebook_usage"][0]["perplexity"] == pytest.approx(usage[0]["perplexity"], rel=1e-5)
    assert metrics["codebook_usage"][0]["used_fraction"] == usage[0]["used_fraction"]
