"""Nothing a user made is replaced: every evaluation writes a new folder (the same settings again:
{settings}-2), whole or not at all, and train.py --resume moves the forecasts of the weights it
replaces to forecasts-before-resume-epoch{N}/."""
import os

import numpy as np
import pytest

import config
import forecast
import runs
import train
from conftest import run_main


def write_hourly(path, n, shift=0.0):
    t = np.arange(n)
    values = 20 + 5 * np.sin(2 * np.pi * t / 24) + shift * (t >= n - 10)
    stamps = np.datetime64("2024-03-01T00:00") + t * np.timedelta64(1, "h")
    path.write_text("time,load\n" + "".join(f"{s},{v:.4f}\n" for s, v in zip(stamps.astype(str), values)))
    return str(path)


def snapshot(folder):
    """{path relative to folder: bytes} of every file below it."""
    return {os.path.relpath(os.path.join(r, f), folder): open(os.path.join(r, f), "rb").read()
            for r, _, files in os.walk(folder) for f in files}


def folder_of(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split("-> ")[-1]


def test_a_repeated_forecast_writes_a_new_folder_and_keeps_the_first(tmp_path):
    csv_path = write_hourly(tmp_path / "load.csv", 150)
    cfg, _ = config.parse(["--model", "naive", "--dataset", csv_path, "--time_steps", "4",
                           "--out_dir", str(tmp_path / "runs"), "--no_forecast"])
    run_dir, _ = train.train(cfg)
    future_1 = folder_of(run_main("forecast.py", run_dir, "--future", "6"))
    backtest_1 = folder_of(run_main("forecast.py", run_dir, "--horizon", "3"))
    before = {f: snapshot(f) for f in (future_1, backtest_1)}
    write_hourly(tmp_path / "load.csv", 150, shift=50.0)   # the series was updated: the same command, new numbers
    changed = run_main("forecast.py", run_dir, "--future", "6")  # refused unless asked for on purpose (issue 28)
    assert changed.returncode == 2 and "the series changed since the run was trained" in changed.stderr
    future_2 = folder_of(run_main("forecast.py", run_dir, "--future", "6", "--dataset", csv_path))
    backtest_2 = folder_of(run_main("forecast.py", run_dir, "--horizon", "3", "--dataset", csv_path))
    assert (future_2, backtest_2) == (future_1 + "-2", backtest_1 + "-2")
    assert {f: snapshot(f) for f in (future_1, backtest_1)} == before       # the first ones, byte for byte
    # naive repeats the last value: the first forecast from the old series, the second from the new
    first, second = (np.genfromtxt(os.path.join(f, "future.csv"), delimiter=",", names=True)["forecast"]
                     for f in (future_1, future_2))
    assert np.allclose(first, 20 + 5 * np.sin(2 * np.pi * 149 / 24), atol=1e-3)
    assert np.allclose(second, 70 + 5 * np.sin(2 * np.pi * 149 / 24), atol=1e-3)
    assert sorted(os.listdir(os.path.join(run_dir, "forecasts"))) == sorted(
        os.path.basename(f) for f in (future_1, future_2, backtest_1, backtest_2))   # no hidden leftovers


def test_a_failed_evaluation_leaves_no_folder(tmp_path):
    def fail_halfway(folder):
        open(os.path.join(folder, "metrics.json"), "w").write("{")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        runs.output_folder(str(tmp_path), "goog_test", fail_halfway)
    assert os.listdir(tmp_path) == []                  # not even an empty forecasts/
    kept = runs.output_folder(str(tmp_path), "goog_test", lambda f: open(os.path.join(f, "a"), "w").write("1"))
    with pytest.raises(RuntimeError):
        runs.output_folder(str(tmp_path), "goog_test", fail_halfway)
    assert os.listdir(os.path.join(tmp_path, "forecasts")) == ["goog_test"] and snapshot(kept) == {"a": b"1"}


def test_resume_moves_the_earlier_forecasts_aside(tmp_path):
    csv_path = write_hourly(tmp_path / "load.csv", 150)
    out = tmp_path / "runs"
    r = run_main("train.py", "--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--dataset", csv_path,
                 "--time_steps", "8", "--epochs", "1", "--out_dir", out)
    run_dir = folder_of(r)
    folder_of(run_main("forecast.py", run_dir, "--future", "5"))
    first = snapshot(os.path.join(run_dir, "forecasts"))
    evaluations = {name.split(os.sep)[0] for name in first}   # the backtest and the future
    assert len(evaluations) == 2

    folder_of(run_main("train.py", "--resume", run_dir, "--epochs", "2"))
    assert snapshot(os.path.join(run_dir, "forecasts-before-resume-epoch1")) == first   # kept whole, moved
    after_first_resume = snapshot(os.path.join(run_dir, "forecasts"))
    # the new weights' evaluation in forecasts/, under the training's own names (no -2), no future yet
    assert {name.split(os.sep)[0] for name in after_first_resume} == {e for e in evaluations if "_future_" not in e}

    folder_of(run_main("train.py", "--resume", run_dir, "--epochs", "3", "--no_forecast"))
    assert snapshot(os.path.join(run_dir, "forecasts-before-resume-epoch2")) == after_first_resume
    assert snapshot(os.path.join(run_dir, "forecasts-before-resume-epoch1")) == first
    assert not os.path.exists(os.path.join(run_dir, "forecasts"))   # nothing evaluated the epoch-3 weights yet
