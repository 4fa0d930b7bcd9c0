"""Ctrl-C keeps its promise (issue 28): any number of Ctrl-C, at any spacing and at any moment,
never removes an epoch that was saved and never prints a traceback; the first saves and exits 130
(a script can tell), the second exits at once, and --resume continues what was saved.

Each test runs train.py as a process and sends it SIGINT, as a terminal's Ctrl-C does. What a
saved run holds is checked against values computed without train.py: its model.pt scores the
val_mse_last its losses.csv gives for that epoch on numpy's own membrane windows
(conftest.membrane_val_mse_last).
"""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, membrane_val_mse_last

SMALL = ["--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--dataset", "membrane", "--epochs", "100000"]


def start(out, *extra):
    return subprocess.Popen([sys.executable, "train.py", *SMALL, "--out_dir", str(out), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def saved_epochs(out):
    """Complete epochs in the losses.csv of the run being written (hidden) or written."""
    found = glob.glob(os.path.join(out, "*", ".*.partial", "losses.csv")) + glob.glob(os.path.join(out, "*", "*", "losses.csv"))
    if not found:
        return 0
    try:
        return sum(row["complete"] == "1" for row in csv.DictReader(open(found[0])))
    except (OSError, KeyError):
        return 0


def wait_for_epochs(out, n, proc, timeout=60):
    deadline = time.time() + timeout
    while saved_epochs(out) < n and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert saved_epochs(out) >= n, "training did not save its first epochs in time"


def only_run(out):
    (run,) = [os.path.dirname(p) for p in glob.glob(os.path.join(out, "*", "*", "config.json"))]
    assert not os.path.basename(run).startswith(".")
    return run


def rows(run):
    return list(csv.DictReader(open(os.path.join(run, "losses.csv"))))


def test_one_ctrl_c_saves_exits_130_and_says_how_to_go_on(tmp_path):
    proc = start(tmp_path)
    wait_for_epochs(tmp_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    run = only_run(tmp_path)
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith(
        "train.py: error: interrupted by Ctrl-C after epoch ")
    assert f"python train.py --resume {run} --epochs N" in stderr and stdout.strip().endswith(f"-> {run}")
    assert "(interrupted)" in stdout
    assert not os.path.exists(os.path.join(run, "forecasts"))  # the backtest is not run after a Ctrl-C
    assert json.load(open(os.path.join(run, "config.json")))["interrupted"] is True
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["interrupted"] and metrics["epochs_run"] == int(rows(run)[-1]["epoch"]) >= 2
    best = next(r for r in rows(run) if int(r["epoch"]) == metrics["best_epoch"])
    assert metrics["best_epoch"] not in metrics["partial_epochs"]  # model.pt holds a complete epoch's weights
    assert membrane_val_mse_last(run) == pytest.approx(float(best["val_mse_last"]), rel=1e-5)
    assert metrics["val_mse_last"] == pytest.approx(float(best["val_mse_last"]), rel=1e-5)


@pytest.mark.parametrize("gap", [0.0, 0.2, 1.5])
def test_a_second_ctrl_c_at_any_spacing_keeps_the_saved_epochs_and_resumes(tmp_path, gap):
    """Two Ctrl-C 0, 0.2 or 1.5 s apart (the first saves while the second arrives, or after): exit 130
    at once, one line, and the run keeps at least the epochs saved before the first; it resumes."""
    proc = start(tmp_path)
    wait_for_epochs(tmp_path, 2, proc)
    before = saved_epochs(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("train.py: error: interrupted"), stderr
    run = only_run(tmp_path)
    complete = [int(r["epoch"]) for r in rows(run) if r["complete"] == "1"]
    assert len(complete) >= before and complete == list(range(1, len(complete) + 1))
    assert json.load(open(os.path.join(run, "config.json")))["interrupted"] is True
    # model.pt is a complete epoch's, and scores what losses.csv says of that epoch (numpy's windows)
    best = torch.load(os.path.join(run, "model.pt"), weights_only=True)["epoch"]
    row = next(r for r in rows(run) if int(r["epoch"]) == best)
    assert row["complete"] == "1" and membrane_val_mse_last(run) == pytest.approx(float(row["val_mse_last"]), rel=1e-5)
    last = int(rows(run)[-1]["epoch"])
    r = subprocess.run([sys.executable, "train.py", "--resume", run, "--epochs", str(last + 1), "--no_forecast"],
                       cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert [int(x["epoch"]) for x in rows(run)][-1] == last + 1


def test_ctrl_c_while_torch_imports_is_one_line(tmp_path):
    proc = start(tmp_path)
    time.sleep(0.3)  # Python has started; torch takes a second or more to import
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    if "epoch" in stderr:
        pytest.skip("the imports finished before the Ctrl-C arrived")
    assert proc.returncode == 130 and stderr == "train.py: interrupted while starting; nothing was written\n", stderr
    assert not os.path.exists(tmp_path / "vqlnmlp_vs16_dm8_membrane_ts96_lr0.007")


def test_ctrl_c_during_the_backtest_keeps_the_run(tmp_path):
    """After training, the backtest: a Ctrl-C there leaves the complete run, and no forecast folder."""
    proc = subprocess.Popen([sys.executable, "train.py", "--model", "att_mh", "--d_model", "8", "--epochs", "1",
                             "--out_dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "*" / "*" / "metrics.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the backtest finished before the Ctrl-C arrived")
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    run = only_run(tmp_path)
    assert stderr.strip().splitlines()[-1] == \
        f"train.py: error: interrupted (Ctrl-C): the run is saved in {run}, its backtest was not written"
    assert not os.path.exists(os.path.join(run, "forecasts"))  # the evaluation's folder was discarded whole
    assert json.load(open(os.path.join(run, "config.json")))["interrupted"] is False  # training itself finished
