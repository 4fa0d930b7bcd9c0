"""Nothing quietly wrong, round four (issue 35): every answer a user gets is right or says why it is
not; every message names a fix that works when followed. Each test checks what a user sees (a
printed line, a file's content, an exit status) against a value worked out by hand."""
import argparse
import glob
import json
import os
import re

import numpy as np
import pytest
import torch

import config
import forecast
import models
import outputs
import runs
import scoring
import train
from conftest import ROOT, run_main, trained, write
from data import future_times, load_series




def folder_of(stdout):
    return stdout.strip().split("-> ")[-1].strip()


def naive_scale(values, train_end):
    return np.mean(np.abs(np.diff(values[:train_end])))


# ---------------------------------------------------------------- silent wrong results

@pytest.fixture
def macro(tmp_path):
    """A quarterly table of two series, realgdp (about 2700, growing) and unemp (about 5)."""
    rng = np.random.default_rng(0)
    gdp, unemp = 2700 + np.cumsum(rng.normal(5, 3, 120)), 5 + np.cumsum(rng.normal(0, 0.1, 120))
    rows = [(f"{1959 + i // 4}-{3 * (i % 4) + 1:02d}-01", f"{a:.1f}", f"{b:.2f}") for i, (a, b) in enumerate(zip(gdp, unemp))]
    return write(tmp_path / "macro.csv", "date,realgdp,unemp", rows), np.round(gdp, 1), np.round(unemp, 2)


def test_another_csv_is_forecast_at_the_runs_column_and_the_line_says_which(tmp_path, macro):
    """forecast.py RUN --dataset SAME.csv (what the changed-series message suggests) on a run trained
    with --column realgdp forecast the CSV's last column, unemp, with the realgdp model."""
    path, gdp, unemp = macro
    run_dir = trained(tmp_path / "runs", "--model", "linear", "--dataset", path, "--column", "realgdp",
                      "--time_steps", "8", "--no_forecast")
    train_end = round(120 * 0.7)
    for extra, values, how in (([], gdp, "the run's column, as its config.json records it; --column NAME or INDEX "
                                         "picks another"), (["--column", "unemp"], unemp, "chosen with --column")):
        r = run_main("forecast.py", run_dir, "--dataset", path, "--horizon", "4", *extra)
        assert r.returncode == 0, r.stderr
        column = "unemp" if extra else "realgdp"
        assert r.stdout.splitlines()[0] == f"macro: the series is column '{column}' ({how})"
        saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
        assert saved["mase_scale"] == pytest.approx(naive_scale(values, train_end), rel=1e-12)
    other = write(tmp_path / "other.csv", "date,a,b", [(f"2024-01-{d:02d}", d % 5, d % 7) for d in range(1, 31)])
    r = run_main("forecast.py", run_dir, "--dataset", other, "--horizon", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == ("other: the series is column 'b' (the run's column 'realgdp' is not in it: the "
                                        "last of its 2 numeric columns; --column NAME or INDEX picks another)")


def test_a_forecast_whose_model_pt_was_replaced_while_it_ran_is_not_written(tmp_path, sine_csv, monkeypatch):
    """forecast.py --future started before train.py --resume and finishing after it: its numbers are
    of the replaced weights, so it is not written into forecasts/ beside the new model.pt."""
    run_dir = trained(tmp_path / "runs", "--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--time_steps",
                      "16", "--epochs", "1", "--dataset", sine_csv, "--no_forecast")
    real_rollout, resumed = forecast.rollout, []

    def rollout(*args, **kwargs):  # the resume lands while the forecast computes
        if not resumed:
            resumed.append(run_main("train.py", "--resume", run_dir, "--epochs", "2", "--no_forecast"))
        return real_rollout(*args, **kwargs)
    monkeypatch.setattr(forecast, "rollout", rollout)
    r = run_main("forecast.py", run_dir, "--future", "3")
    monkeypatch.undo()
    assert resumed[0].returncode == 0, resumed[0].stderr
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{os.path.join(run_dir, 'model.pt')} changed while this evaluation ran (train.py --resume?)" in r.stderr
    assert glob.glob(os.path.join(run_dir, "forecasts*", "*future*")) == []
    assert glob.glob(os.path.join(run_dir, "forecasts*", ".*")) == []  # no hidden half-made folder either
    r = run_main("forecast.py", run_dir, "--future", "3")  # the message's advice: run it again
    assert r.returncode == 0, r.stderr
    assert os.path.dirname(folder_of(r.stdout)) == os.path.join(run_dir, "forecasts")
    # its first step is the new model.pt's, worked out from the weights by hand
    checkpoint = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert checkpoint["epoch"] == 2
    model = models.build("vqlnmlp", **checkpoint["model_args"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    values = load_series(str(sine_csv)).values
    x = torch.tensor(values[-16:], dtype=torch.float32)
    mean, std = saved["normalisation"]["mean"], saved["normalisation"]["std"]
    z = (x - mean) / std
    loc, scale = z.mean(), torch.sqrt(z.var(unbiased=False) + 1e-5)  # --norm revin
    with torch.no_grad():
        first = (model(((z - loc) / scale).view(1, 16, 1))[0, -1, 0] * scale + loc) * std + mean
    row = open(os.path.join(folder_of(r.stdout), "future.csv")).read().splitlines()[1].split(",")
    assert float(row[1]) == pytest.approx(float(first), abs=1e-4)


# ---------------------------------------------------------------- misleading

def test_runs_of_different_data_never_share_a_folder(tmp_path):
    """A CSV named goog.csv is not the embedded goog, and /a/nile.csv is not /b/other/nile.csv: each
    gets a folder of its own, and forecast.py runs/NAME takes a run of the data it names."""
    out = tmp_path / "runs"
    a = write(tmp_path / "a" / "nile.csv", "t,v", [(i, (i * 7) % 11) for i in range(60)])
    b = write(tmp_path / "b" / "other" / "nile.csv", "t,v", [(i, 100 + (i * 5) % 13) for i in range(60)])
    goog_csv = write(tmp_path / "goog.csv", "t,v", [(i, (i * 3) % 17) for i in range(60)])
    dirs = {name: trained(out, "--model", "naive", "--dataset", path, "--time_steps", "4", "--no_forecast")
            for name, path in (("a", a), ("b", b), ("a again", a), ("goog.csv", goog_csv))}
    dirs["goog"] = trained(out, "--model", "naive", "--dataset", "goog", "--time_steps", "4", "--no_forecast")
    names = {k: os.path.basename(os.path.dirname(d)) for k, d in dirs.items()}
    assert names == {"a": "naive_nile_ts4_lr0.007", "b": "naive_nile-other_ts4_lr0.007", "a again": "naive_nile_ts4_lr0.007",
                     "goog.csv": "naive_goog.csv_ts4_lr0.007", "goog": "naive_goog_ts4_lr0.007"}
    for k, path in (("a", a), ("b", b), ("goog.csv", goog_csv)):
        assert json.load(open(os.path.join(dirs[k], "config.json")))["source"] == str(path)
    from matplotlib import cbook  # the embedded goog, read without the code under test
    prices = np.load(cbook.get_sample_data("goog.npz", asfileobj=False))["price_data"]["adj_close"]
    for name, values in (("naive_goog_ts4_lr0.007", prices), ("naive_goog.csv_ts4_lr0.007", (np.arange(60) * 3) % 17),
                         ("naive_nile_ts4_lr0.007", (np.arange(60) * 7) % 11)):
        r = run_main("forecast.py", out / name, "--horizon", "2")
        assert r.returncode == 0, r.stderr
        saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
        assert saved["mase_scale"] == pytest.approx(naive_scale(values.astype(float), round(len(values) * 0.7)))


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 10, 13, 20, 31])
def test_a_short_series_first_message_names_a_setting_that_works(tmp_path, n):
    """Each hint used to name a --time_steps that the next check refused, in a circle; now the first
    message names one that works (with fractions where the defaults leave a part empty)."""
    path = write(tmp_path / "short.csv", "t,v", [(i, i * i % 7) for i in range(n)])
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--out_dir", tmp_path / "runs")
    assert r.returncode == 2 and not (tmp_path / "runs").exists(), r.stderr
    hint = re.search(r"choose time_steps <= (\d+)\)$|choose (--val_fraction \S+ --test_fraction \S+)(?: --time_steps (\d+))?",
                     r.stderr.strip())
    assert hint, r.stderr
    given = ["--time_steps", hint[1]] if hint[1] else hint[2].split() + ["--time_steps", hint[3] or "96"]
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--out_dir", tmp_path / "runs", *given)
    assert r.returncode == 0, (given, r.stderr)
    assert "test MASE h1" in r.stdout


def test_a_series_too_short_for_any_setting_says_so(tmp_path):
    for n in (3, 4):
        path = write(tmp_path / f"s{n}.csv", "t,v", [(i, i % 3) for i in range(n)])
        r = run_main("train.py", "--model", "naive", "--dataset", path, "--time_steps", "1", "--val_fraction", "0.3",
                     "--test_fraction", "0.3", "--out_dir", tmp_path / "runs")
        assert r.returncode == 2 and "so no --time_steps and no fractions work for it: give a longer series" in r.stderr


@pytest.fixture
def ten(tmp_path):
    """A naive run on 10 values, 0 1 4 2 2 4 1 0 1 4 (i * i % 7): parts 7 / 1 / 2, time_steps 5."""
    path = write(tmp_path / "ten.csv", "t,v", [(i, i * i % 7) for i in range(10)])
    return trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "5", "--no_forecast")


def test_a_backtest_of_infinite_intervals_says_so_and_the_level_it_names_works(ten):
    """One validation error a step (targets in [7, 8)) gives no finite 80% interval (4 needed): the line
    said 'coverage fixed 100%, adaptive 100%'. At the level it names, 50%, the half-widths are those
    errors: step 1 |y6 - y7| = 1 (origin 7), step 2 |y5 - y7| = 4 (origin 6)."""
    r = run_main("forecast.py", ten)
    assert r.returncode == 0, r.stderr
    assert ("80% interval coverage fixed none finite, adaptive none finite (80% needs 4 validation errors a step, this "
            "validation part gives 1: --level 50 or lower gives finite intervals)") in r.stdout
    assert "(horizon 2, not 24: the test part has 2 values)" in r.stdout  # forecast.py's default, as train.py's
    saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
    assert saved["interval"]["halfwidth"] == [None, None] and saved["mase_scale"] == pytest.approx(11 / 6)
    assert saved["at_step"]["h1"]["model"]["mase"] == pytest.approx(1 / (11 / 6))  # |y8 - y7| / scale
    r = run_main("forecast.py", ten, "--level", "50")
    assert r.returncode == 0 and "none finite" not in r.stdout, r.stdout
    saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
    assert saved["interval"]["halfwidth"] == pytest.approx([1.0, 4.0], abs=1e-5)  # float32 forecasts


def test_a_future_without_any_finite_interval_says_so_and_the_level_it_names_works(ten):
    """Targets in the validation and test parts [7, 10) from origins with history (>= 5) give at most
    3 one-step errors: |y7 - y6| = 1, |y8 - y7| = 1, |y9 - y8| = 3; 99.9% needs 999. At 75% (rank
    ceil(4 * 0.75) = 3) the half-width is 3 around the naive forecast y9 = 4."""
    r = run_main("forecast.py", ten, "--future", "5", "--level", "99.9")
    assert r.returncode == 0, r.stderr
    assert ("(no 99.9% interval: a step needs at least 999 forecast errors with targets in the validation and test parts, "
            "and this series gives at most 3: --level 75 or lower gives one)") in r.stdout
    assert "up to step 0" not in r.stdout
    r = run_main("forecast.py", ten, "--future", "5", "--level", "75")
    assert r.returncode == 0 and "with a 75% interval" in r.stdout, r.stdout
    rows = open(os.path.join(folder_of(r.stdout), "future.csv")).read().splitlines()
    assert rows[0] == "t,forecast,lower_75,upper_75" and rows[1].split(",")[1:] == ["4.0", "1.0", "7.0"]


def test_a_one_step_backtest_prints_each_number_once(ten):
    r = run_main("forecast.py", ten, "--horizon", "1")
    assert r.returncode == 0, r.stderr
    mase = f"{(1 + 3) / 2 / (11 / 6):#.3g}"  # origins 8 and 9: |y8 - y7| = 1, |y9 - y8| = 3
    assert f"test MASE h1 {mase}  (naive {mase})  RMSE" in r.stdout and f"h1 {mase} h1" not in r.stdout


def test_sweep_help_runs_nothing_and_names_its_own_options(tmp_path):
    for args in (["--help"], ["--model", "naive", "--help", "--out_dir", tmp_path / "out"]):
        r = run_main("sweep.py", *args)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert "--jobs N" in r.stdout and "--dry_run" in r.stdout and "python train.py --help" in r.stdout
    assert not (tmp_path / "out").exists()
    r = run_main("train.py", "--help")
    assert "--jobs N at a time" in " ".join(r.stdout.split()) and "python sweep.py --help" in r.stdout


def test_a_sweep_prints_each_run_as_it_ends_and_counts_those_a_ctrl_c_kept_from_starting(tmp_path, monkeypatch):
    import sweep
    log, seen = tmp_path / "log.txt", []

    def run_one(argv, threads):  # what a log file holds when each run starts; the second is stopped by Ctrl-C
        seen.append(log.read_text())
        if len(seen) == 2:
            raise KeyboardInterrupt("stopped")
        return f"RUN{len(seen)}"
    monkeypatch.setattr(sweep, "run_one", run_one)
    monkeypatch.setattr(sweep, "ranked_table", lambda dirs: "TABLE")
    import contextlib
    with open(log, "w") as f, contextlib.redirect_stdout(f), pytest.raises(SystemExit) as stop:
        sweep.main(["--model", "lstm", "--lr", "0.1,0.2,0.3", "--no_forecast", "--out_dir", str(tmp_path / "o")])
    assert stop.value.code == 130
    assert "[1/3] --model lstm --lr 0.1 --no_forecast" in seen[1]  # flushed before the next run began
    text = log.read_text()
    assert "1 of 3 runs failed or were stopped by the Ctrl-C:\n  python train.py --model lstm --lr 0.2" in text
    assert "1 of 3 runs not started (the Ctrl-C came first):\n  python train.py --model lstm --lr 0.3" in text


@pytest.mark.parametrize("name", [m for m in models.names() if "n_heads" in models.options(models.get(m))])
@pytest.mark.parametrize("d_model", [64, 12])
def test_every_n_heads_a_message_suggests_builds(name, d_model):
    """--n_heads 3 suggested 1, ..., 32, 64, and --n_heads 64 then failed (head_size 1 must be even)."""
    cls, example = models.get(name), torch.zeros(1, 4, 1)
    extra = {**models.positions(cls, 4), **({"kv_heads": 1} if "kv_heads" in models.options(cls) else {}),
             **({"vocab_size": 4} if "vocab_size" in models.options(cls) else {})}
    for n_heads in (5, d_model):  # not a divisor; heads of one dimension
        try:
            models.build(name, example=example, d_model=d_model, n_heads=n_heads, **extra)
        except models.ModelError as e:
            suggested = re.search(r"choose n_heads among ([\d, ]+)", str(e))
            assert suggested, str(e)
            for h in map(int, suggested[1].split(", ")):
                models.build(name, example=example, d_model=d_model, n_heads=h, **extra)


MACHINE = re.compile(r"/work/|\.\./shared|/home/\w|/tmp/ssp|venv_orig|venv_vq")


def test_docs_and_scripts_name_no_path_of_the_machine_they_were_written_on():
    """A user has none of them: public repositories and neutral paths (PATH/TO/venv) instead."""
    files = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")) + \
        glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "*", "*.py"))
    found = [f"{os.path.relpath(p, ROOT)}:{i}: {line.strip()}" for p in files if "/tests/" not in p
             for i, line in enumerate(open(p), 1) if MACHINE.search(line)]
    assert found == []


def test_forecast_options_that_another_evaluation_would_ignore_are_refused_and_the_rest_work(ten):
    r = run_main("forecast.py", ten, "--future", "3", "--horizon", "2")
    assert r.returncode == 2 and "drop --horizon, or drop --future to evaluate" in r.stderr
    for args in (["--future", "3"], ["--horizon", "2"]):  # what the message says to do
        assert run_main("forecast.py", ten, *args).returncode == 0


def test_a_series_read_alike_is_the_same_series_whatever_its_bytes(tmp_path):
    """The changed-data check compared the CSV's bytes: CRLF line ends or 24.20 for 24.2 were a
    change. Now it compares what was read; a changed value is still one."""
    rows = [(i, f"{20 + (i * 7) % 11 + 0.2:.1f}") for i in range(60)]
    path = write(tmp_path / "s.csv", "t,v", rows)
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--no_forecast")
    path.write_bytes(b"t,v\r\n" + b"".join(b"%d,%s0\r\n" % (i, v.encode()) for i, v in rows))  # 24.20, CRLF
    r = run_main("forecast.py", run_dir, "--horizon", "2")
    assert r.returncode == 0, r.stderr
    values = np.array([float(v) for _, v in rows])
    saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
    assert saved["mase_scale"] == pytest.approx(naive_scale(values, 42))
    assert run_main("train.py", "--resume", run_dir, "--epochs", "2").stderr.find("nothing to continue") > 0  # naive
    path.write_text(path.read_text().replace("\n5,", "\n5,9", 1))  # a value changed: refused, as before
    r = run_main("forecast.py", run_dir, "--horizon", "2")
    assert r.returncode == 2 and "the series changed since the run was trained (the values read differ" in r.stderr


def test_lr_far_too_large_says_the_training_diverged_without_a_numpy_warning(tmp_path):
    values = 10 + 3 * np.sin(np.arange(120) / 4)
    path = write(tmp_path / "s.csv", "t,v", [(i, f"{v:.6f}") for i, v in enumerate(values)])
    args = ["--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--time_steps", "8", "--epochs", "1",
            "--dataset", path, "--out_dir", tmp_path / "runs"]
    r = run_main("train.py", *args, "--lr", "1e6")
    assert r.returncode == 0, r.stderr
    m = re.search(r"The training diverged: val_mse_last (\S+) is (\S+) times that of forecasting the training part's "
                  r"mean \((\S+)\); train again with a smaller --lr\.", r.stdout)
    assert m, r.stdout
    # the reference: the validation part's values [84, 96), in the training part's z units, squared
    y = np.round(values, 6)
    z = (y - y[:84].mean()) / y[:84].std()
    assert float(m[3]) == pytest.approx(np.mean(z[84:96] ** 2), rel=5e-3)  # printed to 3 digits
    assert "RuntimeWarning" not in r.stderr
    assert ("nan" not in r.stdout) or "The model's forecasts leave the finite numbers at" in r.stdout
    r = run_main("train.py", *args, "--no_forecast")  # the advice: the model's own --lr
    assert r.returncode == 0 and "diverged" not in r.stdout, r.stdout


def test_a_forecast_that_runs_away_is_called_diverged(tmp_path):
    """A model that multiplies the last value by 10 (in z units) on a series between 316 and 318: a
    forecast of -3.1e20 was written as a number. It is diverged from the first step more than 1e4
    standard deviations of the series from its last value; future.csv stops before it."""
    values = 317 + np.sin(np.arange(100) / 3)
    path = write(tmp_path / "s.csv", "t,v", [(i, f"{v:.6f}") for i, v in enumerate(values)])
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--norm", "global",
                      "--no_forecast")
    run = forecast.load(run_dir)

    class Grows(torch.nn.Module):
        target = "last"

        def forward(self, x, start_pos=0):
            return 10 * x[:, -1]
    run.model = Grows()
    y = load_series(str(path)).values
    z = (y[-1] - run.mean) / run.std * 10.0 ** np.arange(1, 30)
    first = int(np.argmax(np.abs(z * run.std + run.mean - y[-1]) > 1e4 * y.std())) + 1
    ahead = forecast.future(run, 20)
    assert 1 < first < 20 and ahead["diverged_at"] == first and len(ahead["forecast"]) == first - 1
    assert f"the forecast diverged at step {first} (not a finite number, or more than 10000 standard" in \
        outputs.future_line(run, ahead)


def test_quarterly_labels_are_times_and_the_future_is_written_alike(tmp_path):
    rows = [(f"{1959 + i // 4}Q{i % 4 + 1}", 2700 + i) for i in range(40)]
    path = write(tmp_path / "q.csv", ",realgdp", rows)  # pandas writes a PeriodIndex without a name
    series = load_series(str(path))
    months = [np.datetime64(f"{1959 + i // 4}-{3 * (i % 4) + 1:02d}-01") for i in range(40)]
    assert list(series.time) == months and series.values[0] == 2700
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", path, "--time_steps", "4", "--no_forecast")
    r = run_main("forecast.py", run_dir, "--future", "5")
    assert r.returncode == 0 and "5 steps past 1968Q4, quarterly, on day 1" in r.stdout, r.stdout
    rows = open(os.path.join(folder_of(r.stdout), "future.csv")).read().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1969Q1", "1969Q2", "1969Q3", "1969Q4", "1970Q1"]


@pytest.mark.parametrize("cells, after", [
    (["2024-03-30 21:00", "2024-03-30 22:00", "2024-03-30 23:00"], ["2024-03-31 00:00", "2024-03-31 01:00"]),
    (["01.11.1949", "01.12.1949", "01.01.1950"], ["01.02.1950", "01.03.1950"]),               # day.month.year, monthly
    (["2024-03-30T22:00:00Z", "2024-03-30T23:00:00Z"], ["2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z"]),
    (["2024-03-30T22:00+02:00", "2024-03-30T23:00+02:00"], ["2024-03-31T00:00+02:00", "2024-03-31T01:00+02:00"]),
    (["29/01/2024", "30/01/2024", "31/01/2024"], ["01/02/2024", "02/02/2024"]),               # day first
    (["01/29/2024", "01/30/2024", "01/31/2024"], ["02/01/2024", "02/02/2024"]),               # month first
    (["2023Q3", "2023Q4", "2024Q1"], ["2024Q2", "2024Q3"]),
])
def test_future_csv_writes_the_times_as_the_csv_did(tmp_path, cells, after):
    """'2024-03-30 23:00' came back as '2024-03-31T00:00:00', '01.01.1950' as ISO, Z as +00:00."""
    path = write(tmp_path / "t.csv", "when,v", [(c, 5 + i % 3) for i, c in enumerate(cells)])
    series = load_series(str(path))
    times, _ = future_times(series, 2)
    assert outputs.time_text(series, times) == after
    assert outputs.time_text(series, series.time) == cells  # the CSV's own times, written back alike


@pytest.mark.parametrize("text, delimiter, want", [
    ('"2,710,349"', ",", 2710349.0), ('"1,234.5"', ",", 1234.5), ('"1,234"', ",", 1234.0),
    ("2.710.349", ";", 2710349.0), ("1.234,5", ";", 1234.5), ("1,5", ";", 1.5), ("2,710,349", "\t", 2710349.0)])
def test_thousands_separators_are_read(tmp_path, text, delimiter, want):
    path = tmp_path / "t.csv"
    path.write_text(f"t{delimiter}v\n" + "".join(f"{i}{delimiter}{text if i == 3 else i}\n" for i in range(10)))
    assert load_series(str(path)).values[3] == want


def test_the_python_api_answers_bad_arguments_in_one_line_and_takes_a_path(ten):
    run = forecast.load(ten)
    for call, words in ((lambda: forecast.backtest(run, horizon="24"), "--horizon '24': expected a whole number >= 1"),
                        (lambda: forecast.future(run, steps=2.5), "--future 2.5: expected a whole number >= 1"),
                        (lambda: forecast.backtest(run, horizon=2, level="80"), "--level '80': expected a percentage"),
                        (lambda: forecast.backtest(run, horizon=True), "--horizon True: expected a whole number >= 1"),
                        (lambda: forecast.backtest("nowhere/at/all"), "run directory 'nowhere/at/all' not found"),
                        (lambda: forecast.backtest(42), "expected the path of a run directory, got 42")):
        with pytest.raises(runs.UsageError) as e:
            call()
        assert words in str(e.value) and "\n" not in str(e.value)
    result = forecast.backtest(ten, horizon=2)  # a path will do
    values = np.array([i * i % 7 for i in range(10)], float)
    assert result["predictions"] == pytest.approx(np.array([[values[7], values[7]]]), abs=1e-6)  # naive: y7


def test_a_run_trained_with_the_data_dir_variable_is_read_without_it(tmp_path, monkeypatch):
    """config.json records where y+w.csv was read: a shell without $VQSEQ_DATA_DIR reads it there."""
    data = tmp_path / "data"
    write(data / "y+w.csv", "time(h),formaldehyde(ug/m³)", [(f"{i / 30:.4f}", 50 + (i * 13) % 29) for i in range(120)])
    monkeypatch.setenv("VQSEQ_DATA_DIR", str(data))
    run_dir = trained(tmp_path / "runs", "--model", "naive", "--dataset", "y_w", "--time_steps", "4", "--no_forecast")
    monkeypatch.setenv("VQSEQ_DATA_DIR", str(tmp_path / "empty"))
    r = run_main("forecast.py", run_dir, "--horizon", "2")
    assert r.returncode == 0, r.stderr
    saved = json.load(open(os.path.join(folder_of(r.stdout), "metrics.json")))
    assert saved["mase_scale"] == pytest.approx(naive_scale(50 + (np.arange(120) * 13) % 29.0, 84))


def test_help_shows_every_default(capsys):
    """--seed, --device, --out_dir, the fractions, --origins and --level had no default in --help."""
    for parser in (config.parser(), config.parser("att"), config.forecast_parser()):
        for action in parser._actions:
            if action.option_strings and action.default not in (None, argparse.SUPPRESS) and \
                    not isinstance(action.default, bool):  # a flag's False is no default to show
                assert "default" in (action.help or ""), action.option_strings
    text = " ".join(config.forecast_parser().format_help().split())
    assert "(default: at most about 100, evenly spread" in text and "percent (default 80)" in text
    att = " ".join(config.parser("att").format_help().split())
    assert "--d_model N width of the encoded values, the queries, keys and values" in att


def test_a_truncated_model_pt_is_one_line_that_ends_on_a_whole_sentence(ten):
    """It was cut mid-word: '... This is an internal miniz error. If yo)'."""
    with open(os.path.join(ten, "model.pt"), "r+b") as f:
        f.truncate(100)
    r = run_main("forecast.py", ten)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.rstrip().endswith("is not a vqseq checkpoint (PytorchStreamReader failed reading zip archive: "
                                      "failed finding central directory. This is an internal miniz error.)"), r.stderr


def test_a_cut_message_ends_on_a_whole_word():
    text = "PytorchStreamReader failed reading zip archive: failed finding central directory " * 3
    short = runs.first_line(RuntimeError(text))
    assert short.endswith("...") and len(short) <= 120 and text.startswith(short[:-3])
    assert text[len(short) - 3] == " "  # cut before a space: whole words only


def test_every_option_of_the_benchmark_scripts_has_help():
    """vqvae_imagenet.py is left to its rewrite (issue 35 gives it to another change)."""
    import ast
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))) + [os.path.join(ROOT, f) for f in
                                                                                ("train.py", "forecast.py", "sweep.py")]:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" \
                    and not any(k.arg == "help" for k in node.keywords):
                missing.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert missing == []
