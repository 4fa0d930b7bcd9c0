"""Ctrl-C keeps vqvae_imagenet.py's promise (issue 36): whatever the moment of one Ctrl-C, or of two,
after the line that says epoch 1 ended, the run directory is there under its name with epoch 1 in
losses.csv, the command exits 130 with one line naming the run and the --resume command that
continues it, and that command continues it bit for bit.

Each test runs the script as a process on a folder of 20 small images (2 steps an epoch) and sends
it SIGINT, as a terminal's Ctrl-C does, timed from the moment its `epoch 1/` line is read; the
last one sends it from inside a step, in the test's process, so that it cuts an epoch for certain.
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


def interrupt(folder, out, delays, sig=signal.SIGINT):
    """Start a long run, and send sig `delays` seconds after its `epoch 1/` line (each from that
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
        proc.send_signal(sig)
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


@pytest.mark.parametrize("delays", [[0.05], [0.3], [1.0], [3.0], [0.05, 0.15]],
                         ids=["0.05s", "0.3s", "1s", "3s", "twice-0.1s-apart"])
def test_ctrl_c_after_the_first_epoch_keeps_it_and_names_the_run(folder, tmp_path, delays):
    saved_run(tmp_path / "out", *interrupt(folder, tmp_path / "out", delays))


def test_a_killed_run_keeps_its_saved_epochs_under_its_name(folder, tmp_path):
    """The run is named when its first epoch is saved: a process killed (no Ctrl-C to tidy up)
    leaves a run --resume takes, not a hidden .partial folder."""
    code, _, _ = interrupt(folder, tmp_path / "out", [0.05], sig=signal.SIGKILL)
    assert code == -signal.SIGKILL
    (run,) = glob.glob(str(tmp_path / "out" / "vqvae" / "llmffnae" / "*"))
    assert not os.path.basename(run).startswith(".") and epochs(run)[0] == 1


@pytest.fixture
def ctrl_c_handler():
    """The test process's Ctrl-C handler as it was (the script's exit 130 leaves Ctrl-C ignored)."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_an_epoch_cut_by_ctrl_c_is_trained_again_by_resume_bit_for_bit(folder, tmp_path, monkeypatch,
                                                                      ctrl_c_handler):
    """A Ctrl-C in epoch 2's first step: the step ends, the run keeps epoch 1 only (weights, AdamW
    and random state as epoch 1 left them), exit 130; --resume trains epoch 2 whole, and the run
    ends with the weights of a run that was never interrupted."""
    class Interrupting(torch.optim.AdamW):
        steps = 0

        def step(self, *args, **kwargs):
            Interrupting.steps += 1
            if Interrupting.steps == 3:  # 2 steps an epoch: the first of epoch 2
                os.kill(os.getpid(), signal.SIGINT)
            return super().step(*args, **kwargs)
    r = run_main("vqvae_imagenet.py", *SMALL, "--data", folder, "--epochs", "2", "--out_dir", tmp_path / "once",
                 threads=1)
    assert r.returncode == 0, r.stderr
    once = torch.load(glob.glob(str(tmp_path / "once" / "vqvae" / "llmffnae" / "*" / "model.pt"))[0], weights_only=True)
    monkeypatch.setattr(torch.optim, "AdamW", Interrupting)
    r = run_main("vqvae_imagenet.py", *SMALL, "--data", folder, "--epochs", "2", "--out_dir", tmp_path / "cut",
                 threads=1)
    assert r.returncode == 130 and Interrupting.steps == 3, r.stderr
    (run,) = glob.glob(str(tmp_path / "cut" / "vqvae" / "llmffnae" / "*"))
    assert epochs(run) == [1] and torch.load(os.path.join(run, "last.pt"), weights_only=True)["step"] == 2
    monkeypatch.undo()
    r = run_main("vqvae_imagenet.py", "--resume", run, "--workers", "0", threads=1)  # to the run's 2 epochs
    assert r.returncode == 0, r.stderr
    resumed = torch.load(os.path.join(run, "model.pt"), weights_only=True)
    assert resumed["epoch"] == once["epoch"] == 2 and epochs(run) == [1, 2]
    for k, v in once["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
