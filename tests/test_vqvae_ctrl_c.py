"""Ctrl-C keeps vqvae_imagenet.py's promise (issue 36): whatever the moment of one Ctrl-C, or of two,
after the line that says epoch 1 ended, the run directory is there under its name with epoch 1 in
losses.csv, the command exits 130 with one line naming the run and the --resume command that
continues it, and that command continues it bit for bit.

Each test runs the script as a process on a folder of 20 small images (2 steps an epoch) and sends
it SIGINT, as a terminal's Ctrl-C does, timed from the moment its `epoch 1/` line is read.
"""
import csv
import glob
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, run_main

SMALL = ["--model", "llmffnae", "--image_size", "32", "--patch_size", "8", "--batch_size", "8", "--workers", "0",
         "--hidden", "16", "--res_channels", "4", "--seed", "4"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """20 random 40 x 48 images: a fixed test image, then 15 to train on (2 steps an epoch), 4 to validate."""
    from PIL import Image
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    return root


def interrupt(folder, out, delays):
    """Start a long run, and send SIGINT `delays` seconds after its `epoch 1/` line (each from that
    line); returns (exit status, stdout, stderr)."""
    err = open(out.parent / f"{out.name}.stderr", "w+")
    proc = subprocess.Popen([sys.executable, "vqvae_imagenet.py", *SMALL, "--data", str(folder), "--epochs", "100000",
                             "--out_dir", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines, first = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("epoch 1/"):
                first.set()
    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(120), "".join(lines)
    start = time.monotonic()
    for delay in delays:
        time.sleep(max(0.0, start + delay - time.monotonic()))
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join()
    err.seek(0)
    return proc.returncode, "".join(lines), err.read()


def epochs(run):
    return [int(row["epoch"]) for row in csv.DictReader(open(os.path.join(run, "losses.csv")))]


def saved_run(out, code, stdout, stderr):
    """The one run under out, checked: exit 130, named, epochs 1.. in losses.csv, model.pt and last.pt
    at its last epoch, one line naming the run and the command that continues it."""
    assert code == 130, stderr
    (run,) = glob.glob(str(out / "vqvae" / "llmffnae" / "*"))  # named, and nothing hidden beside it
    saved = epochs(run)
    assert saved[0] == 1 and saved == list(range(1, len(saved) + 1))
    for name in ("model.pt", "last.pt"):  # the weights of the last epoch losses.csv holds
        assert torch.load(os.path.join(run, name), weights_only=True)["epoch"] == saved[-1]
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("vqvae_imagenet.py: error: interrupted by Ctrl-C: the run keeps every epoch it finished, "
                             f"in {run}; continue it with python vqvae_imagenet.py --resume {run} "), stderr
    assert stdout.strip().splitlines()[-1] == f"-> {run}"
    return run


@pytest.mark.parametrize("delays", [[0.05], [0.3], [3.0], [0.05, 0.15]],
                         ids=["0.05s", "0.3s", "3s", "twice-0.1s-apart"])
def test_ctrl_c_after_the_first_epoch_keeps_it_and_names_the_run(folder, tmp_path, delays):
    saved_run(tmp_path / "out", *interrupt(folder, tmp_path / "out", delays))


def test_resume_after_a_ctrl_c_is_bit_for_bit_one_straight_run(folder, tmp_path):
    """Ctrl-C 1 s after epoch 1 (the test above, at another moment). An epoch a Ctrl-C cut short is
    not kept: --resume trains it again from the state the last finished epoch left (weights, AdamW,
    random state), so the run ends with the weights of a run that was never interrupted."""
    run = saved_run(tmp_path / "out", *interrupt(folder, tmp_path / "out", [1.0]))
    target = str(epochs(run)[-1] + 1)
    r = run_main("vqvae_imagenet.py", "--resume", run, "--epochs", target, "--workers", "0", threads=1)
    assert r.returncode == 0, r.stderr
    r = run_main("vqvae_imagenet.py", *SMALL, "--data", folder, "--epochs", target, "--out_dir", tmp_path / "straight",
                 threads=1)
    assert r.returncode == 0, r.stderr
    straight = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    resumed, once = (torch.load(os.path.join(d, "model.pt"), weights_only=True) for d in (run, straight))
    assert resumed["epoch"] == once["epoch"] == int(target)
    for k, v in once["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    assert epochs(run) == list(range(1, int(target) + 1))
