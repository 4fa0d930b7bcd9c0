"""runs.Threads: torch's thread count follows the cores other processes leave free, and the
thread count changes no number a training computes."""
import csv
import os
import time

import pytest
import torch

import runs
from conftest import run_main


@pytest.fixture
def free_threads(monkeypatch):
    """No OMP_NUM_THREADS (the tests' workers set it), and torch's thread count restored after."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class Machine:
    """A fake /proc/stat: other processes keep `others` cores busy; this process adds its own."""

    def __init__(self, others):
        self.others, self.busy, self.last = others, 0.0, time.monotonic()

    def __call__(self):
        now = time.monotonic()
        self.busy += self.others * (now - self.last)  # others' busy seconds so far
        self.last = now
        return self.busy + time.process_time()


@pytest.mark.parametrize("cores, others, expected", [(2, 0, 2), (2, 1, 1), (2, 2, 1), (4, 1, 3), (4, 2.6, 1)])
def test_threads_are_the_cores_others_leave_free(free_threads, cores, others, expected):
    threads = runs.Threads(read=Machine(others))
    threads.cores = cores
    threads.start(wait=0.05)
    assert torch.get_num_threads() == expected


def test_threads_follow_a_load_that_starts_and_stops_during_training(free_threads):
    machine = Machine(0)
    threads = runs.Threads(every=0.05, read=machine)
    threads.cores = 4
    threads.start(wait=0.05)
    assert torch.get_num_threads() == 4
    machine()
    machine.others = 2  # another job starts: from now on two cores are taken
    threads.update()    # too soon after the last look: nothing changes
    assert torch.get_num_threads() == 4
    time.sleep(0.06)
    threads.update()
    assert torch.get_num_threads() == 2
    machine()
    machine.others = 0  # it ends
    time.sleep(0.06)
    threads.update()
    assert torch.get_num_threads() == 4


def test_omp_num_threads_is_left_to_the_user(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    threads = runs.Threads(read=Machine(5))
    threads.start(wait=0.01)
    assert threads.fixed and torch.get_num_threads() == before


@pytest.mark.skipif(not os.path.isfile("/proc/stat"), reason="Linux only")
def test_machine_busy_seconds_include_this_processs_own_work():
    before, own = runs._cpu_seconds(), time.process_time()
    x = 0
    while time.process_time() - own < 0.3:  # 0.3 s of this process's CPU
        x += 1
    # /proc/stat counts in ticks of 1/100 s: all busy time of the machine includes ours
    assert runs._cpu_seconds() - before >= (time.process_time() - own) - 0.05


def losses(out):
    path = next(os.path.join(r, "losses.csv") for r, _, files in os.walk(out) if "losses.csv" in files)
    with open(path) as f:
        return [(row["train_loss"], row["val_loss"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("model", ["vqlnpemlp", "att_mh"])
def test_the_thread_count_changes_no_number(tmp_path, monkeypatch, sine_csv, model):
    """Why following the free cores is safe: one and two threads train to the same bits."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Threads leaves the count set below alone
    before = torch.get_num_threads()
    seen = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            r = run_main("train.py", "--model", model, "--dataset", sine_csv, "--epochs", "2", "--time_steps", "24",
                         "--d_model", "16", "--no_forecast", "--out_dir", tmp_path / str(n))
            assert r.returncode == 0, r.stderr
            assert torch.get_num_threads() == n
            seen[n] = losses(tmp_path / str(n))
    finally:
        torch.set_num_threads(before)
    assert seen[1] == seen[2] and len(seen[1]) == 2
