"""Baselines that are what they claim, and the last tracebacks (issue 24, part C).

linear is least squares in closed form (checked against numpy.linalg.lstsq and a known AR(2));
a sweep runs a model once per configuration that can change its result; a config.json with a
wrong type, an output folder that cannot be made, and --season with --future are one line, exit 2.
"""
import hashlib
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

import config
import forecast
import models
import sweep
import train
from conftest import run_main

N_VALUES, T = 300, 8
TRAIN_END = round(0.7 * N_VALUES)  # the default fractions 0.7 / 0.1 / 0.2 (README)


def noisy_sine(n=N_VALUES, seed=0):
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(np.arange(n) / 4) + 0.3 * rng.standard_normal(n)


def write_csv(path, values):
    path.write_text("t,v\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values)))
    return path


def train_run(out_dir, *argv):
    cfg, _ = config.parse([*map(str, argv), "--out_dir", str(out_dir), "--no_forecast"])
    return train.train(cfg)


def snapshot(folder):
    """{path: sha256} of every file and folder below folder."""
    found = {}
    for r, dirs, files in os.walk(folder):
        found.update({os.path.join(r, d): "dir" for d in dirs})
        found.update({os.path.join(r, f): hashlib.sha256(open(os.path.join(r, f), "rb").read()).hexdigest()
                      for f in files})
    return found


def one_line_exit_2(r, script, *words):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"{script}: error: "), r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    """A naive run (chrono) on a 300-value noisy sine: config.json, model.pt, last.pt to corrupt."""
    root = tmp_path_factory.mktemp("naive")
    path = write_csv(root / "sine.csv", noisy_sine())
    run_dir, _ = train_run(root / "runs", "--model", "naive", "--dataset", path, "--time_steps", T)
    return run_dir


def copy_run(run_dir, dest):
    shutil.copytree(run_dir, dest)
    return str(dest)


# ------------------------------------------------------------------ 1. linear: least squares

def lstsq_with_bias(X, y):
    """numpy's least squares of y from [X, 1]: (weights, bias)."""
    solution = np.linalg.lstsq(np.hstack([X, np.ones((len(X), 1))]), y, rcond=None)[0]
    return solution[:-1], solution[-1]


@pytest.mark.parametrize("n, t", [(200, 8), (5, 8)])  # more windows than unknowns, and fewer (min-norm)
def test_least_squares_equals_numpy_lstsq(n, t):
    rng = np.random.default_rng(n)
    X, y = rng.standard_normal((n, t)), rng.standard_normal(n)
    model = models.build("linear", block_size=t).double()   # float64 weights: the solve's own precision
    model.solve(torch.from_numpy(X).unsqueeze(-1), torch.from_numpy(y).view(-1, 1))
    expected_w, expected_b = lstsq_with_bias(X, y)
    np.testing.assert_allclose(model.head.weight[0].detach().numpy(), expected_w, rtol=1e-8, atol=1e-10)
    assert model.head.bias.item() == pytest.approx(expected_b, rel=1e-8, abs=1e-10)


def test_linear_run_holds_the_least_squares_weights_of_its_training_windows(tmp_path):
    values = noisy_sine()
    path = write_csv(tmp_path / "sine.csv", values)
    # lr and epochs far from the defaults: a closed-form fit must not depend on them
    run_dir, metrics = train_run(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", T,
                                 "--epochs", 7, "--lr", 0.5, "--norm", "global")  # windows in global z units
    # the training windows, made here: normalised with the training part's mean and std, float32 as the data
    train_part = values[:TRAIN_END]
    z = ((values - train_part.mean()) / train_part.std()).astype(np.float32).astype(np.float64)
    X = np.stack([z[i:i + T] for i in range(TRAIN_END - T)])
    y = z[T:TRAIN_END]
    expected_w, expected_b = lstsq_with_bias(X, y)
    state = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    (weight,) = [v for k, v in state.items() if k.endswith("weight")]
    (bias,) = [v for k, v in state.items() if k.endswith("bias")]
    scale = np.abs(expected_w).max()
    np.testing.assert_allclose(weight.double().numpy().ravel(), expected_w, rtol=1e-5, atol=1e-6 * scale)
    assert bias.item() == pytest.approx(expected_b, rel=1e-5, abs=1e-6 * scale)
    # its training loss is the mean squared residual of that solution
    residual = X @ expected_w + expected_b - y
    assert metrics["train_loss"] == pytest.approx(np.mean(residual ** 2), rel=1e-4)
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["fit"].startswith("least squares") and config["epochs"] == 1
    assert metrics["fit"] == config["fit"] and metrics["best_epoch"] == metrics["epochs_run"] == 1
    rows = open(os.path.join(run_dir, "losses.csv")).read().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")
    assert torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["optimizer"] is None
    assert os.path.getsize(os.path.join(run_dir, "loss.png")) > 1000
    assert os.path.basename(os.path.dirname(run_dir)) == "linear_sine_ts8_lr0.5_normglobal"  # keeps lr


def test_linear_under_revin_fits_no_rounding_direction(tmp_path):
    """Under --norm revin every window sums to 0 (up to float32 rounding), so the all-ones direction
    of the weights is not determined: the fit must leave it out (the minimum-norm solution), not
    blow it up to fit rounding noise (weights in the thousands, before the fix)."""
    rng = np.random.default_rng(4)
    values = 100 + np.cumsum(rng.standard_normal(N_VALUES))
    path = write_csv(tmp_path / "walk.csv", values)
    t = 48
    run_dir, metrics = train_run(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", t,
                                 "--norm", "revin")
    state = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    (weight,) = [v.double().numpy().ravel() for k, v in state.items() if k.endswith("weight")]
    (bias,) = [v.item() for k, v in state.items() if k.endswith("bias")]
    # the same fit by hand: revin windows in float64, and numpy's least squares with the ones
    # direction projected out of the weights (it carries nothing when every window sums to 0)
    train_part = values[:TRAIN_END]
    z = (values - train_part.mean()) / train_part.std()
    windows = np.stack([z[i:i + t] for i in range(TRAIN_END - t)])
    mean, scale = windows.mean(1, keepdims=True), np.sqrt(windows.var(1, keepdims=True) + 1e-5)
    X, y = (windows - mean) / scale, (z[t:TRAIN_END] - mean[:, 0]) / scale[:, 0]
    expected_w, expected_b = lstsq_with_bias(X, y)
    expected_w -= expected_w.mean()                   # X @ ones == 0: the minimum-norm weights
    assert abs(weight.sum()) < 1e-3 * np.abs(weight).sum()
    np.testing.assert_allclose(weight, expected_w, atol=2e-3 * np.abs(expected_w).max())
    assert bias == pytest.approx(expected_b, abs=1e-3)


def test_linear_recovers_the_coefficients_of_an_ar2_series(tmp_path):
    a1, a2, n = 0.6, -0.3, 3000
    rng = np.random.default_rng(2)
    x = np.zeros(n)
    for t in range(2, n):
        x[t] = a1 * x[t - 1] + a2 * x[t - 2] + rng.standard_normal()
    path = write_csv(tmp_path / "ar2.csv", 50 + x)
    run_dir, _ = train_run(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", 4,
                           "--norm", "global")  # the AR coefficients act on the level
    state = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    (weight,) = [v for k, v in state.items() if k.endswith("weight")]
    # oldest value first: the window's last value is x[t-1]; normalising scales x and its lags alike
    np.testing.assert_allclose(weight.double().numpy().ravel(), [0, 0, a2, a1], atol=0.08)


def test_linear_under_the_logs_random_split_solves_a_sine_exactly(tmp_path):
    """A pure sine obeys z[t] = 2 cos(w) z[t-1] - z[t-2] (plus a constant after normalising), so any
    subset of its windows, the log's random one too, gives those two weights."""
    w = 2 * np.pi / 25
    path = write_csv(tmp_path / "pure.csv", 5 + 2 * np.sin(w * np.arange(400)))
    run_dir, _ = train_run(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", 2,
                           "--split", "random")
    state = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    (weight,) = [v for k, v in state.items() if k.endswith("weight")]
    np.testing.assert_allclose(weight.double().numpy().ravel(), [-1, 2 * math.cos(w)], atol=1e-3)
    r = run_main("forecast.py", run_dir)  # the log's scoring of such a run
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split("mse_batch ")[1].split()[0]) < 1e-6 * 2 ** 2  # against the sine's variance 2


def test_resume_of_a_least_squares_run_is_one_line(tmp_path):
    path = write_csv(tmp_path / "sine.csv", noisy_sine())
    run_dir, _ = train_run(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", T)
    before = snapshot(tmp_path)
    one_line_exit_2(run_main("train.py", "--resume", run_dir, "--epochs", "5"), "train.py",
                    "least squares", "nothing to continue")
    assert snapshot(tmp_path) == before


def test_linear_is_no_longer_grossly_worse_than_naive_on_goog(tmp_path):
    """Adam for 50 epochs gave test MASE 4.2 at step 1 against naive's 2.17; least squares on the
    same windows is close to persistence on a random walk."""
    run_dir, _ = train_run(tmp_path / "runs", "--model", "linear", "--dataset", "goog")
    result = forecast.backtest(forecast.load(run_dir), horizon=1)
    linear, naive = result["by_step"]["model"]["mase"][0], result["by_step"]["naive"]["mase"][0]
    assert linear < 1.25 * naive, (linear, naive)


# ------------------------------------------------------------------ 2. sweeps: one run per effective configuration

def dry_run(*argv):
    r = run_main("sweep.py", *argv, "--dry_run")
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines() if line.startswith("python train.py")], r.stderr


def model_of(command):
    return command[command.index("--model") + 1]


def test_a_sweep_runs_naive_once_for_any_learning_rate():
    lrs = ["0.003", "0.007"]
    commands, notes = dry_run("--model", "vqlnmlp,naive", "--lr", ",".join(lrs))
    counts = {m: sum(model_of(c) == m for c in commands) for m in ("vqlnmlp", "naive")}
    assert counts == {"vqlnmlp": len(lrs), "naive": 1}
    naive = next(c for c in commands if model_of(c) == "naive")
    assert naive[naive.index("--lr") + 1] == lrs[0]  # the first of the merged combinations
    merge = [line for line in notes.splitlines() if line.startswith("merge:")]
    assert len(merge) == 1 and "naive" in merge[0] and "--lr" in merge[0], notes
    assert f"1 run instead of {len(lrs)}" in merge[0]


def test_options_that_change_a_baseline_still_multiply_its_runs():
    seeds, epochs, steps = ["0", "1"], ["1", "2"], ["8", "16"]
    commands, notes = dry_run("--model", "linear,naive,vqlnmlp", "--seed", ",".join(seeds),
                              "--epochs", ",".join(epochs), "--time_steps", ",".join(steps))
    counts = {m: sum(model_of(c) == m for c in commands) for m in ("linear", "naive", "vqlnmlp")}
    # vqlnmlp: every combination; least-squares linear and naive: one per time_steps (it changes the windows)
    assert counts == {"vqlnmlp": len(seeds) * len(epochs) * len(steps), "linear": len(steps), "naive": len(steps)}
    for c in commands:
        if model_of(c) != "vqlnmlp":
            assert c[c.index("--seed") + 1] == seeds[0] and c[c.index("--epochs") + 1] == epochs[0]
    merge = sorted(line for line in notes.splitlines() if line.startswith("merge:"))
    assert len(merge) == 2 and "least squares" in merge[0] and "nothing to train" in merge[1], notes
    assert all("--epochs, --seed" in line and "--time_steps" not in line for line in merge)
    total = len(seeds) * len(epochs) * len(steps)
    assert all(f"{len(steps)} runs instead of {total}" in line for line in merge)


def test_inert_options_are_none_for_a_trained_model():
    assert models.inert_options(models.build("vqlnmlp", vocab_size=16, d_model=8)) == ((), None)
    assert "lr" in models.inert_options(models.build("naive"))[0]
    assert "seed" in models.inert_options(models.build("linear", block_size=8))[0]


# ------------------------------------------------------------------ 3. a config.json of the wrong type

CORRUPT = [  # (key, bad value, what the line says was expected); "-" deletes the key
    ("time_steps", "8", "a whole number >= 1"),
    ("time_steps", "-", "has no time_steps"),
    ("normalisation.mean", "0.5", "a finite number"),
    ("normalisation.std", 0, "a number > 0"),
    ("normalisation", [0.0, 1.0], "a dict with mean and std"),
    ("model_args", [], "a dict of constructor arguments"),
    ("split", "shuffle", "chrono or random"),
    ("fractions", "0.7,0.1,0.2", "three fractions"),
    ("lr", "fast", "a number > 0"),
    ("epochs", 1.5, "a whole number >= 0"),
    ("seed", None, "a whole number"),
    ("dataset", 3, "a data set name"),
]


def corrupt(config_path, key, value):
    config = json.load(open(config_path))
    holder, name = (config, key) if "." not in key else (config[key.split(".")[0]], key.split(".")[1])
    if value == "-":
        del holder[name]
    else:
        holder[name] = value
    json.dump(config, open(config_path, "w"))


@pytest.mark.parametrize("script", ["forecast.py", "train.py"])
@pytest.mark.parametrize("key, value, expected", CORRUPT, ids=[f"{k}={v!r}" for k, v, _ in CORRUPT])
def test_a_config_of_the_wrong_type_is_one_line(naive_run, tmp_path, script, key, value, expected):
    run_dir = copy_run(naive_run, tmp_path / "run")
    corrupt(os.path.join(run_dir, "config.json"), key, value)
    before = snapshot(tmp_path)
    argv = [run_dir] if script == "forecast.py" else ["--resume", run_dir, "--epochs", "2", "--no_forecast"]
    r = run_main(script, *argv)
    one_line_exit_2(r, script, "not a readable run", "config.json", key, expected)
    assert snapshot(tmp_path) == before


def test_the_intact_copy_forecasts_and_resumes(naive_run, tmp_path):
    """The control for the test above: the same copy, not corrupted, runs in both scripts (--resume
    reads it whole, and then says that naive has nothing to continue)."""
    run_dir = copy_run(naive_run, tmp_path / "run")
    assert run_main("forecast.py", run_dir, "--horizon", "2").returncode == 0
    r = run_main("train.py", "--resume", run_dir, "--epochs", "2", "--no_forecast")
    assert r.returncode == 2 and "naive has nothing more to learn" in r.stderr and "not a readable" not in r.stderr


# ------------------------------------------------------------------ 4. output folders that cannot be made

def bad_places(tmp_path):
    """--out_dir values that cannot hold a run: a file in its place, under a file, under /proc,
    and a name too long for the file system below a folder that must be made first (and removed)."""
    (tmp_path / "taken").write_text("a file, not a folder\n")
    return {"a file in its place": (str(tmp_path / "taken"), "is not a folder"),
            "under a file": (str(tmp_path / "taken" / "runs"), "is not a folder"),
            "under /proc": ("/proc/vqseq-test-runs", "/proc/vqseq-test-runs"),
            "a name too long": (str(tmp_path / "fresh" / ("x" * 300)), "cannot make folder")}


PLACES = ["a file in its place", "under a file", "under /proc", "a name too long"]


@pytest.mark.parametrize("place", PLACES)
def test_train_out_dir_that_cannot_be_made(tmp_path, place):
    path = write_csv(tmp_path / "sine.csv", noisy_sine())
    out_dir, words = bad_places(tmp_path)[place]
    before = snapshot(tmp_path)
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--time_steps", T, "--out_dir", out_dir,
                 "--no_forecast")
    one_line_exit_2(r, "train.py", f"--out_dir {out_dir!r}", words, "give a folder you can write to")
    assert snapshot(tmp_path) == before and not os.path.exists("/proc/vqseq-test-runs")


@pytest.mark.parametrize("place", PLACES)
def test_sweep_out_dir_that_cannot_be_made(tmp_path, place):
    path = write_csv(tmp_path / "sine.csv", noisy_sine())
    out_dir, words = bad_places(tmp_path)[place]
    before = snapshot(tmp_path)
    r = run_main("sweep.py", "--model", "naive,linear", "--lr", "0.1,0.2", "--dataset", path, "--time_steps", T,
                 "--out_dir", out_dir, "--no_forecast")  # the merge line waits: the error is the one line
    one_line_exit_2(r, "sweep.py", f"--out_dir {out_dir!r}", words)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("place", ["a file in its place", "under /proc"])
def test_vqvae_out_dir_that_cannot_be_made(tmp_path, place):
    out_dir, words = bad_places(tmp_path)[place]
    before = snapshot(tmp_path)
    r = run_main("vqvae_imagenet.py", "--data", "sample", "--image_size", "64", "--batch_size", "4", "--workers", "0",
                 "--hidden", "32", "--res_channels", "8", "--max_steps", "1", "--out_dir", out_dir)
    one_line_exit_2(r, "vqvae_imagenet.py", f"--out_dir {out_dir!r}", words)
    assert snapshot(tmp_path) == before


def test_a_folder_another_run_made_meanwhile_is_no_error(tmp_path, monkeypatch):
    """sweep --jobs 2: two trainings may make runs/{name} at once; the second must take it as made."""
    import errno
    import runs
    mkdir = os.mkdir

    def made_by_another_process_first(path, *args):
        mkdir(path)
        raise FileExistsError(errno.EEXIST, "File exists", path)
    monkeypatch.setattr(os, "mkdir", made_by_another_process_first)
    assert runs.make_folder(str(tmp_path / "runs" / "name"), "--out_dir runs") == []
    assert os.path.isdir(tmp_path / "runs" / "name")


@pytest.mark.parametrize("extra", [[], ["--future", "5"]], ids=["backtest", "future"])
def test_forecast_into_a_run_whose_forecasts_folder_is_a_file(naive_run, tmp_path, extra):
    run_dir = copy_run(naive_run, tmp_path / "run")
    shutil.rmtree(os.path.join(run_dir, "forecasts"), ignore_errors=True)
    open(os.path.join(run_dir, "forecasts"), "w").write("a file, not a folder\n")
    before = snapshot(tmp_path)
    r = run_main("forecast.py", run_dir, *extra)
    one_line_exit_2(r, "forecast.py", f"run {run_dir}", os.path.join(run_dir, "forecasts"), "is not a folder")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ 5. --season with --future

def test_season_with_future_is_one_line(naive_run, tmp_path):
    run_dir = copy_run(naive_run, tmp_path / "run")
    before = snapshot(tmp_path)
    one_line_exit_2(run_main("forecast.py", run_dir, "--season", "24", "--future", "5"), "forecast.py",
                    "--season 24", "--future 5")
    assert snapshot(tmp_path) == before
    assert run_main("forecast.py", run_dir, "--future", "5").returncode == 0  # the same without --season runs
