"""A newcomer's first hour (issue 24, part A): train.py says what it is doing and never gives a
quiet wrong answer. Progress off a terminal, a verdict against naive, help that lists each model's
options and defaults, non-finite floats refused, run names that tell configurations apart, and
Ctrl-C's partial epoch never chosen."""
import csv
import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import config
import forecast
import models
import outputs
import runs
import train
from conftest import ROOT, run_main, run_script

SMALL = ("--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--time_steps", "8")
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+)  train (\S+)  val (\S+)  val_mse_last (\S+)  (\S+)s(  \(partial.*\))?")


def only_run_dir(out_dir):
    dirs = glob.glob(os.path.join(str(out_dir), "*", "[0-9]*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_rows(run_dir):
    with open(os.path.join(run_dir, "losses.csv"), newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- 1. progress off a terminal

def test_off_a_terminal_every_epoch_prints_a_line_that_matches_losses_csv(tmp_path, sine_csv):
    r = run_script("train.py", *SMALL, "--epochs", "3", "--dataset", sine_csv, "--out_dir", tmp_path / "runs",
                   env={"VQSEQ_PROGRESS_SECONDS": "0"})     # stderr is a pipe here: no tqdm bar
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    parsed = [EPOCH_LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert len(lines) == 3                                  # --epochs 3, not the model's 50
    assert [int(m[1]) for m in parsed] == [1, 2, 3] and {m[2] for m in parsed} == {"3"}
    rows = read_rows(only_run_dir(tmp_path / "runs"))
    for m, row in zip(parsed, rows):
        assert m[3] == f"{float(row['train_loss']):.4g}"
        assert m[4] == f"{float(row['val_loss']):.4g}" and m[5] == f"{float(row['val_mse_last']):.4g}"
    seconds = [float(m[6]) for m in parsed]
    assert seconds == sorted(seconds)                       # time since the start, never going back

    # the verdict after the backtest, and after forecast.py's: one sentence from the per-step MASE
    # of model and naive in errors_by_step.csv (its wording is tested on hand-made steps below)
    run_dir = only_run_dir(tmp_path / "runs")
    again = run_main("forecast.py", run_dir, "--horizon", "5")
    assert again.returncode == 0, again.stderr
    for horizon, stdout in ((24, r.stdout), (5, again.stdout)):
        [by_step] = [rows for rows in (list(csv.DictReader(open(f))) for f in
                                       glob.glob(os.path.join(run_dir, "forecasts", "*", "errors_by_step.csv")))
                     if len(rows) == horizon]
        sentence = outputs.verdict([float(s["model_mase"]) for s in by_step], [float(s["naive_mase"]) for s in by_step])
        assert any(line.startswith(sentence + "  -> ") for line in stdout.splitlines()), stdout


def test_a_log_file_shows_progress_while_training_runs(tmp_path, sine_csv):
    """`python train.py ... > log.txt 2>&1`: the first epoch's line is in the file while the process
    still runs (flushed, not held until the end); the epoch Ctrl-C stops at is always printed."""
    log = open(tmp_path / "log.txt", "w")
    proc = subprocess.Popen([sys.executable, "train.py", *SMALL, "--epochs", "100000", "--dataset", str(sine_csv),
                             "--out_dir", str(tmp_path / "runs"), "--no_forecast"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and "epoch 1/100000" not in open(tmp_path / "log.txt").read():
        time.sleep(0.2)
    text, running = open(tmp_path / "log.txt").read(), proc.poll() is None
    proc.send_signal(signal.SIGINT)
    status = proc.wait(timeout=60)
    assert running and "epoch 1/100000" in text, text
    assert status == 130, open(tmp_path / "log.txt").read()
    text = open(tmp_path / "log.txt").read()
    run_dir = only_run_dir(tmp_path / "runs")
    last = read_rows(run_dir)[-1]
    printed = [EPOCH_LINE.fullmatch(line) for line in text.splitlines() if line.startswith("epoch ")]
    assert printed[-1][1] == last["epoch"]                  # the stopped epoch, whatever the rate limit
    assert (printed[-1][7] is not None) == (last["complete"] == "0")


def test_progress_lines_are_rate_limited_but_keep_the_first_and_last():
    class Clock:
        now = 0.0
    clock, out = Clock(), io.StringIO()
    progress = runs.Progress(stream=out, every=2.0, clock=lambda: clock.now)
    times = [0.0, 0.5, 1.9, 2.1, 2.2, 4.0, 4.05]               # epochs 1..7, 7 the last
    for epoch, t in enumerate(times, 1):
        clock.now = t
        progress.line(f"epoch {epoch}", first=epoch == 1, last=epoch == len(times))
    # by hand: 1 (first), 4 (2.1 s after 1), 6 (1.9 s after 4: no), 7 (last)
    assert out.getvalue().split("\n")[:-1] == ["epoch 1", "epoch 4", "epoch 7"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    tty = Terminal()
    runs.Progress(stream=tty, every=0).line("epoch 1", first=True)
    assert tty.getvalue() == ""                             # on a terminal tqdm's bar says it


def test_vqvae_imagenet_flushes_each_progress_line(monkeypatch):
    """vqvae_imagenet.py's epoch lines go to stdout, block-buffered in a file (> log.txt): each is
    flushed as it is written, so the file shows them while the images train."""
    import vqvae_imagenet

    class Stdout(io.StringIO):
        flushed = ""

        def flush(self):
            self.flushed = self.getvalue()
    out = Stdout()
    monkeypatch.setattr(sys, "stdout", out)
    vqvae_imagenet.say("epoch 1/2  step 3")
    assert out.flushed == "epoch 1/2  step 3\n"


# ---------------------------------------------------------------- 2. a verdict against naive

NAIVE_IS = "naive (repeating the last value)"


@pytest.mark.parametrize("model, naive, sentence", [
    ([0.5, 0.6, 0.7, 1.2, 1.3], [1.0] * 5, f"Better than {NAIVE_IS} at 3 of 5 steps ahead (1-3); worse at 2 of 5 steps ahead (4-5)."),
    ([0.5, 0.9], [1.0, 2.0], f"Better than {NAIVE_IS} at every step ahead (1-2)."),
    ([3.0, 3.0, 3.0], [1.0, 2.0, 2.9], f"Worse than {NAIVE_IS} at every step ahead (1-3)."),
    ([0.2], [0.1], f"Worse than {NAIVE_IS} at every step ahead."),
    ([1.0, 2.0], [1.0, 2.0], f"The same as {NAIVE_IS}, within 0.5%, at every step ahead (1-2)."),
    ([1.001, 0.5, 3.0, 0.5], [1.0] * 4,                      # 0.1% above naive: the same
     f"The same as {NAIVE_IS}, within 0.5%, at 1 of 4 steps ahead (1); better at 2 of 4 steps ahead (2, 4); "
     f"worse at 1 of 4 steps ahead (3)."),
    ([2.0, float("nan"), 0.1], [1.0] * 3, f"Worse than {NAIVE_IS} at 2 of 3 steps ahead (1-2); better at 1 of 3 steps ahead (3)."),
    ([0.5, 2, 0.5, 2, 0.5, 2, 0.5, 2, 0.5, 2], [1.0] * 10,  # five stretches each: four listed, then ...
     f"Better than {NAIVE_IS} at 5 of 10 steps ahead (1, 3, 5, 7, ...); worse at 5 of 10 steps ahead (2, 4, 6, 8, ...)."),
])
def test_verdict_names_the_steps_where_the_model_beats_naive(model, naive, sentence):
    assert outputs.verdict(model, naive) == sentence


def test_the_verdict_names_seasonal_naive_when_there_is_a_season():
    """With --season the backtest prints a second verdict against seasonal naive, whose per-step
    MASE is in errors_by_step.csv (a model that loses to it is not called good because it beats naive)."""
    result = {"metrics": {k: {"mase": 1.0, "rmse": 1.0} for k in ("model", "naive", "seasonal_naive")},
              "by_step": {"model": {"mase": [0.5, 0.6]}, "naive": {"mase": [1.0, 1.0]},
                          "seasonal_naive": {"mase": [0.2, 0.3]}},
              "horizon": 2, "season": 12, "origins": [5], "interval": {"level": 80, "coverage": 1.0},
              "interval_adaptive": {"coverage": 1.0}}
    text = outputs.backtest_line(result, "F", asked=24)
    assert f"Better than {NAIVE_IS} at every step ahead (1-2)." in text
    assert "Worse than seasonal naive (the value 12 steps back) at every step ahead (1-2)." in text
    assert "(1 origin)" in text and "horizon 2, not 24: the test part has 2 values" in text and "h2 0.600" in text


# ---------------------------------------------------------------- 3. and 4. help

def flat(text):
    """Help text without whitespace: argparse wraps lines (and breaks 32-128-512 at hyphens)."""
    return "".join(text.split())


def test_help_explains_the_terms_of_the_first_screen():
    out = flat(run_main("train.py", "--help").stdout)
    for term in ("val_mse_last", "(epochN)", "params A+B fixed", "ppl P/V", "used U%", "test MASE h1", "partial"):
        assert flat(term) in out, term


@pytest.mark.parametrize("name", models.names())
def test_every_model_option_has_a_description_in_its_help(name):
    cls = models.get(name)
    r = run_main("train.py", "--model", name, "--help")
    assert r.returncode == 0, r.stderr
    for option in models.options(cls):
        described = models.describe(cls, option)
        assert described.strip(), f"{name} --{option} has no description"
        assert flat(f"--{option} {models.values(cls, option)} {described}") in flat(r.stdout), option
    assert "default: the model's" not in r.stdout          # its own training defaults instead


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_the_pe_type_values_in_the_help_are_the_ones_its_constructor_accepts(name):
    printed = re.search(r"--pe_type \{([^}]*)\}", run_main("train.py", "--model", name, "--help").stdout)[1].split(",")
    accepted = []
    for value in sorted(set(printed) | {"alibi", "learned", "RoPE", ""}):
        try:
            models.build(name, pe_type=value, d_model=8)
            accepted.append(value)
        except models.ModelError:
            pass
    assert sorted(printed) == accepted and len(printed) == 4
    with pytest.raises(models.ModelError, match="pe_type 'alibi' is not one of"):
        models.build(name, pe_type="alibi")


def test_a_models_help_shows_its_own_training_defaults():
    shown = {name: flat(run_main("train.py", "--model", name, "--help").stdout) for name in ("lstm", "vqlnpemlp")}
    for name, text in shown.items():
        defaults = models.get(name).train_defaults
        for k in ("lr", "time_steps", "batch_size", "epochs"):
            assert f"({name}:{defaults[k]})" in text, (name, k)
    lstm, vq = models.get("lstm").train_defaults, models.get("vqlnpemlp").train_defaults
    assert lstm["lr"] != vq["lr"] and lstm["time_steps"] != vq["time_steps"]  # the two helps must differ


# ---------------------------------------------------------------- 5. non-finite floats

@pytest.mark.parametrize("args, bad", [
    (["--model", "naive", "--lr", "nan"], "'nan'"),
    (["--model", "naive", "--lr=inf"], "'inf'"),
    (["--model", "naive", "--val_fraction", "nan"], "'nan'"),
    (["--model", "naive", "--test_fraction=-inf"], "'-inf'"),
    (["--model", "att", "--pe_std", "nan"], "--pe_std 'nan'"),
    (["--model", "att", "--pe_std", "Infinity"], "--pe_std 'Infinity'"),
])
def test_non_finite_floats_are_refused_and_nothing_is_written(tmp_path, args, bad):
    r = run_main("train.py", *args, "--out_dir", tmp_path / "runs", "--no_forecast")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("train.py: error: ") and bad in r.stderr and "finite" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "runs")


def test_finite_floats_still_parse():
    cfg, _ = config.parse(["--model", "att", "--lr", "1e-3", "--val_fraction", "0.15", "--pe_std", "0.04"])
    assert (cfg.lr, cfg.val_fraction, cfg.model_args) == (0.001, 0.15, {"pe_std": 0.04})


# ---------------------------------------------------------------- 6. run names

def changed(value, choices=None):
    """A value other than `value` that the option takes."""
    if choices:
        return next(c for c in choices if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2
    if isinstance(value, tuple):
        return (value[0] + 1,) + value[1:]
    raise AssertionError(f"no rule to change {value!r}")


@pytest.mark.parametrize("name", models.names())
def test_every_changed_argument_gives_its_own_run_name(name):
    cls, time_steps = models.get(name), 48                  # not 96: block_size follows time_steps
    base = {**models.options(cls), **models.positions(cls, time_steps)}

    def run_name(model_args):
        return config.run_name(config.Config(model=name, time_steps=time_steps, lr=0.007, split="chrono",
                                             norm=config.CHRONO_NORM, model_args=model_args), "y_w")
    names = [run_name(base)] + [run_name({**base, k: changed(v, getattr(cls, "choices", {}).get(k))})
                                for k, v in base.items()]
    assert len(set(names)) == len(names), names
    assert "block_size" not in names[0]                     # a table as long as the window: the log's name


def test_block_size_other_than_time_steps_is_in_the_name():
    defaults = models.options(models.get("att"))
    def name(block_size):
        return config.run_name(config.Config(model="att", time_steps=96, lr=0.001, split="chrono", norm=config.CHRONO_NORM,
                                             model_args={**defaults, "block_size": block_size}), "y_w")
    assert name(10) == "att_dm64_rope_block_size10_y_w_ts96_lr0.001"
    assert name(96) == "att_dm64_rope_y_w_ts96_lr0.001"


# ---------------------------------------------------------------- 7. a partial epoch

def stop_in_epoch(monkeypatch, epoch, scores=()):
    """Send this process SIGINT (Ctrl-C) at the first training batch of `epoch`; train.evaluate
    returns `scores` (val_loss, val_mse_last) in turn, then the real values."""
    scores, state = list(scores), {"evaluations": 0, "sent": False}
    real_evaluate, real_build = train.evaluate, models.build

    def evaluate(model, x, y):
        state["evaluations"] += 1
        return scores.pop(0) if scores else real_evaluate(model, x, y)

    def hook(module, inputs):
        if module.training and state["evaluations"] == epoch - 1 and not state["sent"]:
            state["sent"] = True
            os.kill(os.getpid(), signal.SIGINT)

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.register_forward_pre_hook(hook)
        return model
    monkeypatch.setattr(train, "evaluate", evaluate)
    monkeypatch.setattr(models, "build", build)


def train_small(out_dir, csv_path, *extra):
    cfg, _ = config.parse([*SMALL, "--batch_size", "8", "--dataset", str(csv_path),
                           "--out_dir", str(out_dir), "--no_forecast", *extra])
    return train.train(cfg)


@pytest.mark.parametrize("split", ["chrono", "random"])
def test_a_partial_epoch_is_marked_and_never_chosen_even_when_best(tmp_path, sine_csv, monkeypatch, split):
    # epoch 2 is stopped after its first batch and given the lowest validation error of all
    stop_in_epoch(monkeypatch, 2, scores=[(1.0, 1.0), (0.01, 0.01)])
    run_dir, metrics = train_small(tmp_path, sine_csv, "--epochs", "5", "--split", split)
    monkeypatch.undo()
    rows = read_rows(run_dir)
    assert [(r["epoch"], r["complete"]) for r in rows] == [("1", "1"), ("2", "0")]
    assert float(rows[1]["val_mse_last"]) < float(rows[0]["val_mse_last"])
    assert metrics["best_epoch"] == 1 and metrics["partial_epochs"] == [2] and metrics["interrupted"]
    best, last = (torch.load(os.path.join(run_dir, f), weights_only=True) for f in ("model.pt", "last.pt"))
    assert best["epoch"] == 1 and last["epoch"] == 2
    assert any(not torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    assert "partial epoch 2: not chosen" in outputs.train_line(metrics)

    # resumed: continues from last.pt; epoch 2 stays partial and is still never chosen
    cfg, _ = config.parse(["--resume", run_dir, "--epochs", "4", "--no_forecast"])
    resumed, metrics = train.train(cfg)
    rows = read_rows(resumed)
    assert [(r["epoch"], r["complete"]) for r in rows] == [("1", "1"), ("2", "0"), ("3", "1"), ("4", "1")]
    complete = [r for r in rows if r["complete"] == "1"]
    expected = (min(complete, key=lambda r: float(r["val_mse_last"])) if split == "chrono" else complete[-1])["epoch"]
    assert metrics["best_epoch"] == int(expected) != 2
    assert json.load(open(os.path.join(resumed, "config.json")))["interrupted"] is False


def test_stopped_in_the_first_epoch_nothing_is_left(tmp_path, sine_csv, monkeypatch):
    """A first Ctrl-C before the first epoch ends: nothing was trained to keep, so the run directory
    (and the --out_dir this run made) is removed, and the line says so (issue 35: it left epoch 0's
    untrained model with advice to evaluate it)."""
    stop_in_epoch(monkeypatch, 1)
    out = tmp_path / "out"
    r = run_main("train.py", *SMALL, "--batch_size", "8", "--dataset", sine_csv, "--epochs", "5", "--out_dir", out)
    monkeypatch.undo()
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("train.py: error: interrupted before the first epoch ended: nothing "
                                                 "was written")
    assert not out.exists()
    (out / "mine.txt").parent.mkdir()  # an --out_dir the user made stays, with what was in it
    (out / "mine.txt").write_text("keep")
    stop_in_epoch(monkeypatch, 1)
    r = run_main("train.py", *SMALL, "--batch_size", "8", "--dataset", sine_csv, "--epochs", "5", "--out_dir", out)
    monkeypatch.undo()
    assert r.returncode == 130 and sorted(os.listdir(out)) == ["mine.txt"], r.stderr
