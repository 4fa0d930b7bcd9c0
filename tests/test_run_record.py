"""A run knows its data and its weights, runs that differ never share a name, and what a run writes
is what the docs say (issue 28). Values are checked against what the test computes itself: the
CSV's own cells, numpy's statistics, the settings that differ.
"""
import glob
import hashlib
import json
import os

import numpy as np
import pytest
import torch

import config
import forecast
import models
from conftest import run_main

SMALL = ["--vocab_size", "16", "--d_model", "8"]


def write(path, text):
    path.write_text(text)
    return path


def only(pattern):
    (found,) = glob.glob(str(pattern))
    return found


def train(out, *args):
    r = run_main("train.py", *args, "--out_dir", out)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1].removeprefix("-> ")


# ---------------------------------------------------------------- the column, found again by position

def test_a_repeated_column_name_is_found_again_by_its_position(tmp_path):
    """`t,value,value`: --column 2 trains on the second `value`; forecast.py (no --column) and
    --resume read that one again, not the first of that name."""
    first = np.sin(np.arange(300) / 5) + 10
    second = np.cos(np.arange(300) / 7) * 3 - 4
    path = write(tmp_path / "twice.csv", "t,value,value\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in
                                                                     enumerate(zip(first, second))))
    run = train(tmp_path / "runs", "--model", "vqlnmlp", "--vocab_size", "8", "--d_model", "4", "--epochs", "1",
                "--dataset", path, "--column", "2", "--time_steps", "8", "--no_forecast")
    assert json.load(open(os.path.join(run, "config.json")))["column_index"] == 2
    np.testing.assert_allclose(forecast.load(run).series.values, second)
    assert run_main("train.py", "--resume", run, "--epochs", "2", "--no_forecast").returncode == 0
    assert json.load(open(os.path.join(run, "config.json")))["normalisation"]["mean"] == \
        pytest.approx(second[:210].mean(), rel=1e-12)


# ---------------------------------------------------------------- the data changed since training

def test_an_edited_csv_is_refused_unless_given_on_purpose(tmp_path):
    values = 5 + np.sin(np.arange(300) / 4)
    path = write(tmp_path / "s.csv", "t,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    run = train(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "8", "--no_forecast")
    recorded = json.load(open(os.path.join(run, "config.json")))  # the file's checksum, and what was read's
    assert recorded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()  # values (float64), observed (bool), times (the row index here), each after its dtype
    for part in (np.asarray([float(f"{v}") for v in values]), np.ones(300, bool), np.arange(300)):
        h.update(str(part.dtype).encode() + part.tobytes())
    assert recorded["values_sha256"] == h.hexdigest()
    path.write_text("t,v\n" + "".join(f"{i},{v + (i == 3)}\n" for i, v in enumerate(values)))  # one cell edited
    r = run_main("forecast.py", run, "--future", "2")
    assert r.returncode == 2 and "the series changed since the run was trained (the values read differ" in r.stderr
    assert f"give it with --dataset {path}" in r.stderr
    again = run_main("forecast.py", run, "--future", "2", "--dataset", path)  # on purpose: evaluated, own statistics
    assert again.returncode == 0, again.stderr
    rows = np.loadtxt(only(tmp_path / "runs" / "*" / "*" / "forecasts" / "*future*" / "future.csv"), delimiter=",",
                      skiprows=1, usecols=1)
    np.testing.assert_allclose(rows, values[-1], rtol=1e-5)  # naive: the last value, in the series' units


# ---------------------------------------------------------------- run names

def name(**changes):
    base = dict(model="vqlnmlp", time_steps=96, lr=0.007, batch_size=32, split="chrono", norm=config.CHRONO_NORM,
                model_args={**models.options(models.get("vqlnmlp")), "vocab_size": 512})
    column = changes.pop("column", None)
    return config.run_name(config.Config(**{**base, **changes}), "y_w", column)


@pytest.mark.parametrize("changes, part", [
    (dict(split="random", norm="global"), "_random"), (dict(norm="global"), "_normglobal"),
    (dict(batch_size=64), "_bs64"), (dict(val_fraction=0.15), "_val0.15_test0.2"), (dict(seed=3), "_seed3"),
    (dict(column="level (m/s)"), "_collevel-m-s"), (dict(fill="ffill"), "_fillffill"),
])
def test_every_setting_that_changes_the_numbers_is_in_the_name(changes, part):
    plain = name()
    assert plain == "vqlnmlp_vs512_dm64_y_w_ts96_lr0.007"  # the log's name, as the log wrote it
    assert name(**changes) == plain + part


def test_a_very_long_name_is_cut_with_a_hash_and_stays_apart():
    long_a, long_b = name(column="a" * 300), name(column="a" * 299 + "b")
    assert len(long_a) == config.MAX_NAME == len(long_b) and long_a != long_b


def test_split_and_column_give_runs_their_own_folders(tmp_path):
    """The two cases a user met: --split random beside the default, --column lrm beside the default
    column: four runs, four names, so forecast.py runs/NAME finds each one."""
    path = write(tmp_path / "m.csv", "t,lrm,lry\n" + "".join(f"{i},{np.sin(i / 3)},{np.cos(i / 5)}\n" for i in range(300)))
    said = []
    for extra in ([], ["--split", "random"], ["--column", "lrm"], ["--column", "lry"]):
        r = run_main("train.py", "--model", "naive", "--dataset", path, "--time_steps", "8", "--no_forecast", *extra,
                     "--out_dir", tmp_path / "runs")
        assert r.returncode == 0, r.stderr
        said.append(r.stdout.splitlines()[0])
    assert said[0] == "m: the series is column 'lry' (the last of its 2 numeric columns; --column NAME or INDEX " \
                      "picks another)" and said[2] == "m: the series is column 'lrm' (chosen with --column)"
    names = sorted(os.listdir(tmp_path / "runs"))
    assert names == ["naive_m_ts8_lr0.007", "naive_m_ts8_lr0.007_collrm", "naive_m_ts8_lr0.007_random"]
    # --column lry is the default column (the last numeric one): the same run as no --column
    assert len(os.listdir(tmp_path / "runs" / "naive_m_ts8_lr0.007")) == 2


# ---------------------------------------------------------------- what a run writes

def test_the_default_run_writes_the_backtest_and_the_logs_protocol_its_whole_series(tmp_path, sine_csv):
    chrono = train(tmp_path / "a", "--model", "naive", "--dataset", sine_csv, "--time_steps", "8")
    assert [f.split("_")[1] for f in os.listdir(os.path.join(chrono, "forecasts"))] == ["backtest"]
    random = train(tmp_path / "b", "--model", "naive", "--dataset", sine_csv, "--time_steps", "8", "--split", "random")
    assert os.listdir(os.path.join(random, "forecasts")) == ["sine_log"]
    asked = run_main("forecast.py", chrono, "--positions", "sliding")  # the log's evaluation, asked for
    assert asked.returncode == 0 and os.path.isdir(os.path.join(chrono, "forecasts", "sine_test"))


def test_a_horizon_cut_to_a_short_test_part_is_said(tmp_path):
    values = np.sin(np.arange(60) / 3)
    path = write(tmp_path / "short.csv", "v\n" + "".join(f"{v}\n" for v in values))
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--time_steps", "4", "--out_dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(horizon 12, not 24: the test part has 12 values)" in r.stdout  # 60 values: a test part of 60 - 48


def test_kv_cache_alone_means_on(tmp_path, sine_csv):
    run = train(tmp_path, "--model", "att_mh", "--d_model", "8", "--pe_on", "qk", "--norm", "global", "--dataset",
                sine_csv, "--time_steps", "8", "--epochs", "1", "--no_forecast")
    r = run_main("forecast.py", run, "--kv_cache", "--positions", "sliding")  # the log's evaluation: it names its path
    assert r.returncode == 0, r.stderr
    m = json.load(open(only(os.path.join(run, "forecasts", "*_kvon", "metrics.json"))))
    assert m["regressive_path"] == "kv_cache"


# ---------------------------------------------------------------- training that diverges, forecasts that leave the numbers

def test_a_training_that_diverges_keeps_the_untrained_model(tmp_path, sine_csv):
    """--lr 1e30: every epoch's losses are not finite numbers, so none is kept: model.pt is epoch 0,
    the seeded untrained model, and the run forecasts (its weights are finite)."""
    run = train(tmp_path, "--model", "vqlnmlp", *SMALL, "--dataset", sine_csv, "--time_steps", "8", "--epochs", "2",
                "--lr", "1e30", "--no_forecast")
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["best_epoch"] == 0 and metrics["diverged_epochs"] == [1, 2]
    torch.manual_seed(0)
    untrained = models.build("vqlnmlp", vocab_size=16, d_model=8)
    held = torch.load(os.path.join(run, "model.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(held["model." + k], v) for k, v in untrained.state_dict().items())
    assert run_main("forecast.py", run, "--future", "3").returncode == 0


def test_a_forecast_that_diverges_stops_before_it_and_says_where(tmp_path):
    """A series that grows by 10% a step: least squares on it forecasts 1.1 x the last value, fed
    back, until it is more than config.DIVERGED_STDS standard deviations of the series from its last
    value (issue 35: until then, float32's overflow at 3.4e38 was the only limit); future.csv holds
    the forecasts up to the step before, and the line says which."""
    values = 1.1 ** np.arange(120)
    path = write(tmp_path / "g.csv", "v\n" + "".join(f"{float(v)!r}\n" for v in values))
    run = train(tmp_path / "runs", "--model", "linear", "--dataset", path, "--time_steps", "4", "--norm", "global",
                "--no_forecast")
    r = run_main("forecast.py", run, "--future", "2000")
    assert r.returncode == 0, r.stderr
    stopped = int(r.stdout.split("diverged at step ")[1].split()[0])
    rows = np.loadtxt(only(os.path.join(run, "forecasts", "*future*", "future.csv")), delimiter=",", skiprows=1,
                      usecols=1)
    assert len(rows) == stopped - 1 and np.isfinite(rows).all() and 10 < stopped < 2000
    bound = 1e4 * np.std(values)  # from the last value, 1.1 ** 119
    assert np.abs(rows - values[-1]).max() <= bound < 1.1 * rows[-1] - values[-1]  # the next one, 1.1 x, is past it


# ---------------------------------------------------------------- how numbers and folders are written

def test_future_csv_writes_the_digits_a_forecast_has(tmp_path):
    """Persistence of a series ending in 2.9 forecasts 2.9: written so, not 2.9000009197 (float32's
    rounding of the z-scored value); the folder of --level 95 is level95, as level80's is."""
    values = [1.5, 2.25, 3.0, 2.75] * 20 + [2.9]
    path = write(tmp_path / "p.csv", "v\n" + "".join(f"{v}\n" for v in values))
    run = train(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--no_forecast")
    assert run_main("forecast.py", run, "--future", "3", "--level", "95").returncode == 0
    future = only(os.path.join(run, "forecasts", "p_future_3_level95", "future.csv"))
    assert [line.split(",")[1] for line in open(future).read().splitlines()[1:]] == ["2.9"] * 3


def test_a_csv_with_a_very_long_name_trains(tmp_path):
    path = write(tmp_path / ("x" * 200 + ".csv"), "v\n" + "".join(f"{np.sin(i / 3)}\n" for i in range(100)))
    run = train(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--no_forecast")
    assert len(os.path.basename(os.path.dirname(run))) == config.MAX_NAME


def test_the_sweep_table_ranks_a_run_without_a_score_last(tmp_path):
    import sweep
    made = []
    for name, score in (("a", None), ("b", 0.5), ("c", 0.25)):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"split": "chrono", "run_name": name, "seed": 0}))
        (d / "metrics.json").write_text(json.dumps({"val_mse_last": score, "val_loss": score}))
        made.append(str(d))
    table = sweep.ranked_table(made).splitlines()[2:]
    assert [line.split("|")[5].strip() for line in table] == ["c", "b", "a"]
    assert "| 3 | val_mse_last - | - | - | a |" in table[2]
