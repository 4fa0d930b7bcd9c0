"""What the numbers mean (issue 23): each test pins a value computed here, by hand or by numpy,
not that a file appears or that a run agrees with its own output files.

Calibration, backtest origins, errors_by_step.csv, MASE's scale, the log's one-step and
regressive forecasts, the parts' boundaries, sweep's ranking, run directories, and failures
after a run directory exists (train.py, sweep.py, vqvae_imagenet.py) leaving nothing behind.
"""
import copy
import csv
import dataclasses
import json
import math
import os
import re

import numpy as np
import pytest
import torch

import config
import forecast
import log_protocol
import models
import outputs
import runs
import scoring
import sweep
import train
from data import boundaries, split_series
from conftest import run_main
from test_honest import make_run


def noisy_naive_run(n=400, fractions=(0.5, 0.3, 0.2), T=4, seed=0):
    """naive on a random walk: every forecast of value t from origin o is y[o - 1]."""
    values = 50 + np.cumsum(np.random.default_rng(seed).standard_normal(n))
    return make_run(values, models.build("naive"), T, fractions=fractions)


def hand_halfwidths(run, horizon, level):
    """Split conformal by hand for naive: for step h, the targets t in the validation part whose
    origin t - h has time_steps true values before it; the error |y[t - h - 1] - y[t]|."""
    y, widths, counts = run.series.values, [], []
    for h in range(horizon):
        r = sorted(abs(y[t - h - 1] - y[t]) for t in range(run.train_end, run.val_end) if t - h >= run.time_steps)
        k = math.ceil((len(r) + 1) * level / 100)
        widths.append(r[k - 1] if k <= len(r) else math.inf)
        counts.append(len(r))
    return np.array(widths), np.array(counts)


@pytest.mark.parametrize("level", [60, 90])
def test_calibration_never_reads_the_test_part_and_counts_by_hand(level):
    run = noisy_naive_run()
    halfwidth, n = scoring.conformal_halfwidths(forecast.validation_errors(run, 4), level)
    expected, counts = hand_halfwidths(run, 4, level)
    assert n.tolist() == counts.tolist() == [run.val_end - run.train_end] * 4  # every validation target
    assert halfwidth == pytest.approx(expected, abs=1e-4)          # naive runs in float32
    # poison the test part: nothing calibration reports may change
    run.series.values[run.val_end:] = 1e6
    run.z[run.val_end:] = (1e6 - run.mean) / run.std
    poisoned, n2 = scoring.conformal_halfwidths(forecast.validation_errors(run, 4), level)
    assert np.array_equal(poisoned, halfwidth) and np.array_equal(n2, n)


def test_backtest_origins_reach_the_last_test_value_at_every_stride():
    run = noisy_naive_run(n=600, fractions=(0.5, 0.1, 0.4))       # 240 test values
    y, H, n = run.series.values, 5, 600
    every = forecast.backtest(run, horizon=H, stride=1)
    assert every["origins"].tolist() == list(range(run.val_end, n - H + 1))
    assert every["actual"][-1, -1] == y[-1]                          # the final value, at the longest step
    assert every["predictions"][-1, -1] == pytest.approx(y[n - H - 1])  # naive: the value before the origin
    for stride in (4, 7):
        assert forecast.backtest(run, horizon=H, stride=stride)["origins"].tolist() == \
            list(range(run.val_end, n - H + 1, stride))
    spread = forecast.backtest(run, horizon=H, stride=1, origins=7)["origins"]
    assert len(spread) == 7 and spread[0] == run.val_end and spread[-1] == n - H  # both ends kept
    # the default stride: the smallest that keeps to MAX_ORIGINS origins (236 candidates: 3)
    default = forecast.backtest(run, horizon=H)
    assert default["stride"] == 3 and default["origins"].tolist() == list(range(run.val_end, n - H + 1, 3))
    assert len(range(run.val_end, n - H + 1, 2)) > forecast.MAX_ORIGINS


def test_errors_by_step_rows_are_steps_one_to_h_with_hand_computed_errors(tmp_path):
    run = dataclasses.replace(noisy_naive_run(), run_dir=str(tmp_path))
    result = forecast.backtest(run, horizon=3, stride=2)
    folder = outputs.write_backtest(run, result)
    y, o = run.series.values, result["origins"]
    with open(os.path.join(folder, "errors_by_step.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for r in rows:
        h = int(r["step"])                                 # h steps ahead: value o + h - 1 from y[o - 1]
        mae = np.mean(np.abs(y[o + h - 1] - y[o - 1]))
        assert float(r["naive_mae"]) == pytest.approx(mae) and float(r["model_mae"]) == pytest.approx(mae, rel=1e-5)
    summary = json.load(open(os.path.join(folder, "metrics.json")))
    assert summary["at_step"]["h3"]["naive"]["mae"] == pytest.approx(np.mean(np.abs(y[o + 2] - y[o - 1])))
    assert (summary["first_origin"], summary["last_origin"]) == (o[0], o[-1])


def test_seasonal_mase_scale_and_gaps_by_hand():
    y = np.sin(np.arange(300) / 3.0) + np.arange(300) / 50
    observed = np.ones(300, bool)
    observed[40] = False                                   # a filled value: pairs touching it are not scored
    y_filled = y.copy()
    y_filled[40] = 99.0
    pairs = [(t - 7, t) for t in range(7, 300) if observed[t] and observed[t - 7]]
    expected = np.mean([abs(y[t] - y[s]) for s, t in pairs])
    assert scoring.naive_scale(y_filled, observed, 7) == pytest.approx(expected, rel=1e-12)
    run = make_run(y, models.build("naive"), 4)
    result = forecast.backtest(run, horizon=4, season=7)
    train_y = y[:run.train_end]
    assert result["mase_scale"] == pytest.approx(np.mean(np.abs(train_y[7:] - train_y[:-7])), rel=1e-12)


def test_log_protocol_forecasts_of_naive_are_the_previous_values():
    z = np.random.default_rng(1).standard_normal(50)
    naive = models.build("naive").eval()
    assert log_protocol.predict_batch(naive, z, 6, 10) == pytest.approx(z[39:49], abs=1e-6)
    assert log_protocol.predict_regressive(naive, z, 6, 10) == pytest.approx(np.full(10, z[39]), abs=1e-6)
    # a linear model that forecasts the oldest value of its window: value t from z[t - T]
    linear = models.build("linear", block_size=6).eval()
    with torch.no_grad():
        linear.head.weight.zero_()
        linear.head.weight[0, 0] = 1.0
        linear.head.bias.zero_()
    assert log_protocol.predict_batch(linear, z, 6, 10) == pytest.approx(z[34:44], abs=1e-6)
    assert log_protocol.predict_regressive(linear, z, 6, 5) == pytest.approx(z[39:44], abs=1e-6)  # true values only


def test_future_steps_by_the_typical_gap_not_the_first():
    """Two-day data whose first gap is five days and one gap a week: the step is two days."""
    gaps = [5] + [2] * 60 + [7] + [2] * 37
    time = np.datetime64("2024-03-01") + np.concatenate([[0], np.cumsum(gaps)]).astype("timedelta64[D]")
    values = 3 + np.sin(np.arange(100) / 4)
    run = make_run(values, models.build("naive"), 6, time=time)
    ahead = forecast.future(run, 3)
    assert np.array_equal(ahead["time"], time[-1] + np.array([2, 4, 6]).astype("timedelta64[D]"))
    assert ahead["forecast"] == pytest.approx(np.full(3, values[-1]))


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_kv_cache_sees_time_steps_values_when_block_size_is_longer(name):
    """A block_size other than time_steps: each cached step must still see time_steps values,
    as recomputing every window of time_steps values does."""
    torch.manual_seed(0)
    model = models.build(name, d_model=16, block_size=48, pe_type="rope", pe_on="qk", bias=True).eval()
    z = np.sin(np.arange(150) / 6.0) + 0.1 * np.random.default_rng(0).standard_normal(150)
    slid = log_protocol.predict_regressive(model, z, 24, 60)
    cached = log_protocol.predict_regressive_cached(model, z, 24, 60)
    assert np.abs(slid).max() > 0.05 and np.abs(cached - slid).max() < 1e-5


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_cache_fed_in_chunks_of_any_size_equals_the_full_forward(name):
    """Chunks of 10, 3, 1, 7, ... values, before and after the cache fills: the banded mask's
    positions follow what the cache holds."""
    torch.manual_seed(0)
    model = models.build(name, d_model=16, block_size=16).eval()
    x = torch.randn(2, 60, 1)
    full = model(x, start_pos=0)
    cache, outs, t = model.new_cache(), [], 0
    for size in (10, 3, 1, 7, 2, 20, 5, 12):
        outs.append(model(x[:, t:t + size], t, cache))
        t += size
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_boundaries_by_hand_on_non_default_fractions():
    assert boundaries(1000, (0.6, 0.25, 0.15)) == (600, 850)
    assert boundaries(1000) == (700, 800)
    s = split_series(np.sin(np.arange(200) / 5.0), 8, "last", "chrono", (0.55, 0.3, 0.15))
    assert (s.train_end, s.val_end) == (110, 170)
    assert len(s.x_train) == 110 - 8 and len(s.x_val) == 170 - 110


# ---------------------------------------------------------------- sweep's ranking

def fake_run(root, name, split, val_loss, val_mse_last):
    path = os.path.join(root, name)
    os.makedirs(path)
    runs.write_json(os.path.join(path, "config.json"), {"split": split, "run_name": name, "seed": 0})
    runs.write_json(os.path.join(path, "metrics.json"), {"val_loss": val_loss, "val_mse_last": val_mse_last})
    return path


def test_ranked_table_orders_by_the_protocols_score(tmp_path):
    """chrono ranks by val_mse_last, the log's protocol by val_loss; the two disagree here."""
    for split, ascending in (("chrono", ["b", "c", "a"]), ("random", ["a", "c", "b"])):
        dirs = [fake_run(tmp_path / split, "a", split, 0.1, 0.9), fake_run(tmp_path / split, "b", split, 0.9, 0.1),
                fake_run(tmp_path / split, "c", split, 0.5, 0.5)]
        table = sweep.ranked_table(dirs).splitlines()[2:]
        assert [line.split("|")[5].strip() for line in table] == ascending, table
        assert [line.split("|")[1].strip() for line in table] == ["1", "2", "3"]


# ---------------------------------------------------------------- run directories

def test_run_directories_latest_and_hidden_partials(tmp_path):
    partial = runs.new_run_dir(tmp_path, "m")
    name = os.path.basename(partial)
    assert name.startswith(".") and name.endswith(".partial")
    for f in ("config.json", "model.pt"):
        open(os.path.join(partial, f), "w").close()
    assert not runs.is_run_dir(partial)
    with pytest.raises(runs.RunError, match="holds no complete run"):
        runs.latest_run(tmp_path / "m")                    # a run being built is not a run
    done = runs.finish_run_dir(partial)
    assert re.fullmatch(r"\d{4}(-\d\d){5}", os.path.basename(done)) and os.path.dirname(done) == str(tmp_path / "m")
    older = tmp_path / "m" / "2000-01-01-00-00-00"
    older.mkdir()
    for f in ("config.json", "model.pt"):
        (older / f).touch()
    assert runs.latest_run(tmp_path / "m") == done         # the newer of two complete runs
    gone = runs.new_run_dir(tmp_path, "other")
    runs.discard_run_dir(gone)
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------- failures after the run directory exists

def everything_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_training_that_fails_after_its_run_directory_exists_leaves_nothing(tmp_path, monkeypatch):
    """The weights are written, then the disk fills: no run, not even a hidden partial one; the
    same training inside a sweep is listed as failed and leaves nothing either."""
    def weights_written_then_fail(curves, title, ylabel, path):  # the last file before the run gets its name
        assert os.path.isfile(os.path.join(os.path.dirname(path), "model.pt"))  # the run directory holds files
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(runs, "plot_curves", weights_written_then_fail)
    argv = ["--model", "naive", "--dataset", "goog", "--epochs", "1", "--no_forecast", "--out_dir"]
    cfg, _ = config.parse(argv + [str(tmp_path / "train")])
    with pytest.raises(OSError, match="No space left"):
        train.train(cfg)
    assert everything_under(tmp_path / "train") == []
    done, failed = sweep.run_sweep([argv + [str(tmp_path / "sweep")]], log=lambda line: None)
    assert done == [] and len(failed) == 1 and "No space left" in failed[0][1]
    assert not (tmp_path / "sweep").exists() or everything_under(tmp_path / "sweep") == []


# ---------------------------------------------------------------- the image objective

VQVAE_QUICK = ["--data", "sample", "--image_size", "32", "--patch_size", "8", "--batch_size", "4", "--workers", "0",
               "--hidden", "32", "--res_channels", "8", "--max_steps", "1"]


def first_batch(model_args, seed=0, ratio=0.25, mask_count="exact"):
    """What vqvae_imagenet.py's first step reads and starts from, rebuilt here without it: the seed's
    model, and the first 4 training images of epoch 1 (DistributedSampler's order of the 512 sample
    crops, seeded by the seed) with their patch masks."""
    from torch.utils.data import DistributedSampler
    from data.images import Images, load_splits
    from models.vqvae import Model
    torch.manual_seed(seed)
    model = Model(**model_args)
    crops = Images(None, "train", 32, 8, ratio, seed=seed, mask_count=mask_count,
                   photo=load_splits("sample", "train")[1]["source"])
    crops.epoch = 1
    order = DistributedSampler(crops, num_replicas=1, rank=0, shuffle=True, seed=seed)
    order.set_epoch(1)
    items = [crops[i] for i in list(order)[:4]]
    x = torch.stack([img for img, _ in items]).float() / 255       # (4, 3, 32, 32) in [0, 1]
    return model, x, torch.stack([m for _, m in items])            # masks (4, 4, 4) patches


def test_vqvae_training_loss_is_the_mse_against_the_unmasked_image(tmp_path):
    """On the only batch of a one-step run, the logged training loss is the MSE of the model's
    output on the masked images against the whole (unmasked) images; masks at --mask_ratio 0.25, seed 3."""
    r = run_main("vqvae_imagenet.py", *VQVAE_QUICK, "--model", "ffnae", "--mask_ratio", "0.25", "--mask_count",
                 "exact", "--seed", "3", "--out_dir", tmp_path, threads=1)
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    (row,) = runs.read_losses(os.path.join(run_dir, "losses.csv"))
    model_args = json.load(open(os.path.join(run_dir, "config.json")))["model_args"]
    model, x, mask = first_batch(model_args, seed=3)
    assert mask.sum((1, 2)).tolist() == [4, 4, 4, 4]               # 0.25 of 16 patches each
    keep = 1.0 - torch.kron(mask.float(), torch.ones(8, 8))        # (4, 32, 32): 0 on masked pixels
    with torch.no_grad():
        recon = model(x * keep[:, None])
    expected = ((recon - x) ** 2).mean().item()
    against_masked = ((recon - x * keep[:, None]) ** 2).mean().item()
    assert abs(expected - against_masked) > 1e-4                   # the two objectives differ here
    assert row["step"] == 1 and row["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_a_vqvae_run_that_fails_after_its_run_directory_exists_leaves_nothing(tmp_path, monkeypatch):
    import vqvae_imagenet
    import vqvae_run

    def fail(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(vqvae_imagenet, "evaluate", fail)          # after the first step, in the run directory
    cfg, _ = vqvae_run.parse([*VQVAE_QUICK, "--model", "ffnae", "--out_dir", str(tmp_path / "out")])
    with pytest.raises(OSError, match="No space left"):
        vqvae_imagenet.train(cfg)
    assert not (tmp_path / "out").exists() or everything_under(tmp_path / "out") == []
