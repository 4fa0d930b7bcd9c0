"""Tests that bite: values checked against an independent computation (numpy, hand arithmetic).

Each test here was written against a one-line bug that the rest of the suite let through
(issue 18); tests/mutate.py re-introduces those bugs one at a time and checks that a test
fails. The runs train through train.train in this process (no new interpreter, no forecast
after training) on a small CSV whose mean and std are far from 0 and 1, so that any mix-up
of the two shows.
"""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import config
import data
import forecast
import log_protocol
import models
import runs
import train

N_VALUES = 400  # chrono parts (0.7, 0.1, 0.2): train [0, 280), validation [280, 320), test [320, 400)
TRAIN_END, VAL_END = 280, 320


def trend_values():
    """A rising, wiggling series around 1100 with std about 60: the training part's statistics
    differ from the whole series' ones, and mean and std differ from each other."""
    t = np.arange(N_VALUES)
    rng = np.random.default_rng(1)
    return 1000 + 0.5 * t + 30 * np.sin(t / 7) + 5 * rng.standard_normal(N_VALUES)


@pytest.fixture
def trend_csv(tmp_path):
    path = tmp_path / "trend.csv"
    path.write_text("t,level\n" + "".join(f"{i},{v:.17g}\n" for i, v in enumerate(trend_values())))
    return path


def train_run(out_dir, *argv):
    """train.train as `python train.py ARGV --out_dir OUT_DIR --no_forecast` would call it."""
    cfg, _ = config.parse([*map(str, argv), "--out_dir", str(out_dir), "--no_forecast"])
    return train.train(cfg)


def read(run_dir, name):
    path = os.path.join(run_dir, name)
    return json.load(open(path)) if name.endswith(".json") else torch.load(path, weights_only=True)


def losses(run_dir):
    """losses.csv without its seconds column."""
    return [",".join(line.split(",")[:4]) for line in open(os.path.join(run_dir, "losses.csv")).read().splitlines()]


# ---------------------------------------------------------------- 1. de-normalisation

@pytest.mark.parametrize("split", ["random", "chrono"])
def test_naive_forecasts_are_the_series_shifted_by_one_in_original_units(trend_csv, tmp_path, split):
    """Persistence forecasts the previous value: its batch MSE is numpy's MSE of the series
    against itself shifted by one, its regressive forecast the last value before the forecasts.
    The log's protocol scores every value after the first window, chrono the test part (whose
    statistics come from the training part, so de-normalising matters there too).
    Catches forecasts de-normalised with `+ mean` (or `* std` alone) instead of `* std + mean`."""
    run_dir, _ = train_run(tmp_path, "--model", "naive", "--dataset", trend_csv, "--split", split)
    m = log_protocol.evaluate(forecast.load(run_dir))
    v = trend_values()
    first = 96 if split == "random" else VAL_END  # naive's time_steps; the test part's first value
    actual = v[first:]
    assert m["n_predicted"] == N_VALUES - first
    assert m["mse_batch"] == pytest.approx(np.mean((actual - v[first - 1:-1]) ** 2), rel=1e-5)
    assert m["mae_batch"] == pytest.approx(np.mean(np.abs(actual - v[first - 1:-1])), rel=1e-5)
    assert m["mse_regressive"] == pytest.approx(np.mean((actual - v[first - 1]) ** 2), rel=1e-5)


# ---------------------------------------------------------------- 2. stored statistics

@pytest.mark.parametrize("split", ["chrono", "random"])
def test_stored_normalisation_is_numpys_statistics_of_its_part(trend_csv, tmp_path, split):
    """config.json's mean and std are numpy's over the training part [0, train_end) under
    chrono and over the whole series under random. Catches mean and std swapped, and chrono
    statistics taken over the whole series."""
    run_dir, _ = train_run(tmp_path, "--model", "naive", "--dataset", trend_csv, "--split", split, "--epochs", "0")
    config = read(run_dir, "config.json")
    v = trend_values()
    part = v[:TRAIN_END] if split == "chrono" else v
    assert config["normalisation"]["mean"] == pytest.approx(np.mean(part), rel=1e-12)
    assert config["normalisation"]["std"] == pytest.approx(np.std(part), rel=1e-12)
    end = (TRAIN_END, VAL_END) if split == "chrono" else (N_VALUES, N_VALUES)
    assert config["parts"] == {"train_end": end[0], "val_end": end[1], "test_end": N_VALUES, "n_values": N_VALUES}


# ---------------------------------------------------------------- 3. the seed

@pytest.mark.parametrize("model, args", [("vqlnmlp", ["--d_model", "8", "--vocab_size", "16"]),
                                         ("mhcvqlnmlp", ["--levels", "4-8", "--heads", "2-1", "--d_model", "8"])])
def test_seed_sets_initial_weights_and_codebooks(trend_csv, tmp_path, model, args):
    """--epochs 0 saves the initial model: one seed twice gives identical weights and codebooks,
    another seed other weights and other codebooks. Catches a fixed torch.manual_seed(0)."""
    states = []
    for i, seed in enumerate((1, 1, 2)):
        run_dir, _ = train_run(tmp_path / str(i), "--model", model, "--dataset", trend_csv, "--epochs", "0",
                               "--time_steps", "16", "--seed", seed, *args)
        states.append(read(run_dir, "model.pt")["state_dict"])
    same, other = states[0], states[2]
    assert same.keys() == states[1].keys() and all(torch.equal(same[k], states[1][k]) for k in same)
    codebooks = [k for k in same if k.split(".")[-1].startswith(("codebook", "cache"))]
    weights = [k for k in same if k not in codebooks]
    assert codebooks and weights
    assert all(not torch.equal(same[k], other[k]) for k in codebooks)
    assert any(not torch.equal(same[k], other[k]) for k in weights if same[k].numel() > 1)


# ---------------------------------------------------------------- 4. chrono never reads the test part

def numpy_windows(z, t, target):
    x = np.stack([z[i:i + t] for i in range(len(z) - t)])
    y = np.stack([z[i + 1:i + t + 1] for i in range(len(z) - t)]) if target == "aligned" else z[t:, None]
    return x, y


@pytest.mark.parametrize("target", ["aligned", "last"])
def test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part(target):
    """split_series under chrono: training windows are exactly numpy's windows of the first
    train_end values (normalised with their own mean and std); validation windows predict the
    values [train_end, val_end); writing NaN or 1e12 over the test part changes nothing.
    Catches the random split under chrono, whole-series statistics, and windows that reach
    past val_end."""
    v, t = trend_values(), 16
    s = data.split_series(v, t, target, "chrono")
    assert (s.train_end, s.val_end) == (TRAIN_END, VAL_END)
    mean, std = np.mean(v[:TRAIN_END]), np.std(v[:TRAIN_END])
    assert (s.mean, s.std) == pytest.approx((mean, std), rel=1e-12)
    z = (v - mean) / std
    x, y = numpy_windows(z[:TRAIN_END], t, target)
    assert s.x_train.shape == (TRAIN_END - t, t, 1)
    np.testing.assert_allclose(s.x_train[..., 0].numpy(), x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.y_train[:].squeeze(-1).numpy() if target == "aligned" else s.y_train[:].numpy(), y,
                               rtol=0, atol=1e-6)
    x, y = numpy_windows(z[TRAIN_END - t:VAL_END], t, target)
    assert s.x_val.shape == (VAL_END - TRAIN_END, t, 1)
    np.testing.assert_allclose(s.x_val[..., 0].numpy(), x, rtol=0, atol=1e-6)
    last = s.y_val[:, -1, 0] if target == "aligned" else s.y_val[:, 0]
    np.testing.assert_allclose(last.numpy(), z[TRAIN_END:VAL_END], rtol=0, atol=1e-6)
    for poison in (math.nan, 1e12):
        w = v.copy()
        w[VAL_END:] = poison
        p = data.split_series(w, t, target, "chrono")
        assert (p.mean, p.std, p.train_end, p.val_end) == (s.mean, s.std, s.train_end, s.val_end)
        for k in ("x_train", "y_train", "x_val", "y_val"):
            assert torch.equal(getattr(p, k)[:], getattr(s, k)[:]), (poison, k)


def test_chrono_training_never_reads_the_test_part(trend_csv, tmp_path, monkeypatch):
    """The same training with the test part replaced by NaN: the same normalisation, windows,
    losses, chosen epoch and weights. Catches train.py training chrono runs on another split."""
    argv = ["--model", "vqlnmlp", "--d_model", "8", "--vocab_size", "16", "--time_steps", "16", "--epochs", "3",
            "--dataset", trend_csv]
    clean_dir, clean = train_run(tmp_path / "clean", *argv)
    series = data.load_series(str(trend_csv))
    poisoned = series.values.copy()
    poisoned[VAL_END:] = math.nan
    monkeypatch.setattr(train, "load_series", lambda *a, **k: dataclasses.replace(series, values=poisoned))
    poisoned_dir, dirty = train_run(tmp_path / "poisoned", *argv)
    a, b = read(clean_dir, "config.json"), read(poisoned_dir, "config.json")
    for k in ("normalisation", "parts", "n_windows"):
        assert a[k] == b[k], k
    assert a["n_windows"] == {"train": TRAIN_END - 16, "val": VAL_END - TRAIN_END}
    assert losses(clean_dir) == losses(poisoned_dir)
    assert all(math.isfinite(float(x)) for row in losses(clean_dir)[1:] for x in row.split(",")[1:])
    assert clean["best_epoch"] == dirty["best_epoch"]
    sa, sb = read(clean_dir, "model.pt")["state_dict"], read(poisoned_dir, "model.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- 5. fixed codebooks

CODEBOOK_MODELS = [n for n in models.names() if "vq" in n]  # every model with a fixed codebook


@pytest.mark.parametrize("model", CODEBOOK_MODELS)
def test_codebooks_stay_fixed_buffers_through_training(trend_csv, tmp_path, monkeypatch, model):
    """After two epochs every codebook tensor (codebook*, the cascades' cache*) is bit-identical
    to the one the model was built with, is a buffer, and is not among model.parameters(); the
    other weights did train. Catches a codebook turned into an nn.Parameter."""
    built, initial = models.build, {}

    def recording_build(*args, **kwargs):
        m = built(*args, **kwargs)
        initial.update({k: v.detach().clone() for k, v in m.state_dict().items()})
        return m
    monkeypatch.setattr(models, "build", recording_build)
    run_dir, _ = train_run(tmp_path, "--model", model, "--dataset", trend_csv, "--time_steps", "16", "--epochs", "2")
    monkeypatch.undo()
    codebooks = [k for k in initial if k.split(".")[-1].startswith(("codebook", "cache"))]
    assert codebooks, f"{model} has no codebook tensor"
    for weights in ("model.pt", "last.pt"):
        # under a window norm (chrono's default revin) the model sits inside models.norm.WindowNorm as .model
        state = {k.removeprefix("model."): v for k, v in read(run_dir, weights)["state_dict"].items()}
        for k in codebooks:
            assert torch.equal(state[k], initial[k]), (weights, k)
        assert any(not torch.equal(state[k], initial[k]) for k in initial if k not in codebooks)
    rebuilt, _ = forecast.load_run(run_dir)
    parameters = {id(p) for p in rebuilt.parameters()}
    buffers = {k.removeprefix("model."): v for k, v in rebuilt.named_buffers()}
    for k in codebooks:
        assert k in buffers and id(buffers[k]) not in parameters, k


# ---------------------------------------------------------------- 8. run directories, metrics

def test_a_second_and_third_run_in_the_same_second_get_suffixes(tmp_path):
    """finish_run_dir: runs/{name}/{timestamp}, then -2, -3; the first run is left as it was."""
    partials = []
    for k in range(3):
        partial = tmp_path / "name" / f".2025-01-06-12-00-00-abc{k}.partial"
        partial.mkdir(parents=True)
        (partial / "model.pt").write_text(str(k))
        partials.append(str(partial))
    finished = [runs.finish_run_dir(p) for p in partials]
    base = str(tmp_path / "name" / "2025-01-06-12-00-00")
    assert finished == [base, base + "-2", base + "-3"]
    assert [open(os.path.join(d, "model.pt")).read() for d in finished] == ["0", "1", "2"]
    assert sorted(os.listdir(tmp_path / "name")) == ["2025-01-06-12-00-00", "2025-01-06-12-00-00-2",
                                                     "2025-01-06-12-00-00-3"]


def test_naive_validation_error_in_original_units(trend_csv, tmp_path):
    """naive's val_mse_last is persistence's error on the validation values [train_end, val_end):
    numpy's mean of squared differences, over std**2 in normalised units."""
    _, metrics = train_run(tmp_path, "--model", "naive", "--dataset", trend_csv, "--epochs", "1")
    v = trend_values()
    expected = np.mean((v[TRAIN_END:VAL_END] - v[TRAIN_END - 1:VAL_END - 1]) ** 2)
    assert metrics["val_mse_last_original_units"] == pytest.approx(expected, rel=1e-5)
    assert metrics["val_mse_last"] == pytest.approx(expected / np.std(v[:TRAIN_END]) ** 2, rel=1e-5)


class HandMadeCodes(nn.Module):
    """code_probs of input k is row k of a fixed table: (B, T=1, heads=2, V=4)."""
    table = torch.tensor([
        [[1.0, 0.0, 0.0, 0.0], [0.25] * 4],
        [[1.0, 0.0, 0.0, 0.0], [0.25] * 4],
        [[0.0, 0.0, 1.0, 0.0], [0.25] * 4],
        [[0.0, 0.4, 0.6, 0.0], [0.0, 0.0, 0.0, 1.0]],
    ])

    def code_probs(self, x):
        return self.table[x[:, 0, 0].long()].unsqueeze(1)


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_codebook_usage_on_a_hand_made_case(chunk):
    """Head 0: mean distribution (0.5, 0.1, 0.4, 0); codes 0 and 2 are someone's argmax. Head 1:
    (3/16, 3/16, 3/16, 7/16); codes 0 (the first of a tie) and 3. In any chunking."""
    usage = models.codebook_usage(HandMadeCodes(), torch.arange(4.0).view(4, 1, 1), chunk=chunk)
    p0, p1 = [0.5, 0.1, 0.4], [3 / 16] * 3 + [7 / 16]
    assert [u["head"] for u in usage] == [0, 1] and [u["vocab_size"] for u in usage] == [4, 4]
    assert usage[0]["perplexity"] == pytest.approx(math.exp(-sum(p * math.log(p) for p in p0)), rel=1e-6)
    assert usage[1]["perplexity"] == pytest.approx(math.exp(-sum(p * math.log(p) for p in p1)), rel=1e-6)
    assert usage[0]["used_fraction"] == 0.5 and usage[1]["used_fraction"] == 0.5
