"""runs.Threads: where asked ($VQSEQ_THREADS=follow), torch's thread count follows the cores other
processes leave free; by default it stays torch's own, so a busy machine changes no number.
runs.wait_policy: passive OpenMP waiting where the machine is busy, the same numbers."""
import csv
import glob
import io
import os
import time
import types

import pytest
import torch

import runs
from conftest import run_main, run_script


@pytest.fixture
def free_threads(monkeypatch):
    """Following asked for, no OMP_NUM_THREADS (the tests' workers set it), and torch's thread count
    restored after."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("VQSEQ_THREADS", "follow")
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
    monkeypatch.setenv("VQSEQ_THREADS", "follow")  # asked to follow the machine, and yet the user's count wins
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


@pytest.mark.parametrize("follow", [None, "yes", "FOLLOW"])
def test_by_default_a_busy_machine_leaves_the_thread_count_alone(free_threads, monkeypatch, follow):
    """Unless $VQSEQ_THREADS is exactly `follow`, Threads changes nothing: three of four cores busy
    elsewhere, and torch keeps its count of 4. Why: on Intel's MKL the count changes float32
    rounding, so a count that followed the load would give the same seed other numbers."""
    if follow is None:
        monkeypatch.delenv("VQSEQ_THREADS")
    else:
        monkeypatch.setenv("VQSEQ_THREADS", follow)
    Clocks(others=3, own=0).install(monkeypatch)
    torch.set_num_threads(4)
    threads = runs.Threads()
    threads.cores = 4
    threads.start(wait=1.0)
    assert threads.fixed and torch.get_num_threads() == 4
    monkeypatch.setenv("VQSEQ_THREADS", "follow")           # asked: one core left
    threads = runs.Threads()
    threads.cores = 4
    threads.start(wait=1.0)
    assert not threads.fixed and torch.get_num_threads() == 1


class Clocks:
    """A machine whose clocks move only when Threads waits: each wait lasts one second, in which
    other processes keep `others` cores busy and this process uses `own` CPU seconds (on several
    threads: up to one a core). Its /proc/stat first line counts every process, this one too, in
    clock ticks split over user, nice, system, irq, softirq and steal, beside idle and iowait."""

    def __init__(self, others=0.0, own=0.0):
        self.others, self.own = others, own
        self.monotonic_now, self.cpu, self.busy, self.idle = 1000.0, 5.0, 12345.0, 99999.0

    def sleep(self, seconds):
        self.monotonic_now += 1.0
        self.cpu += self.own
        self.busy += self.others + self.own
        self.idle += 4 - self.others - self.own

    def proc_stat(self):
        tick = os.sysconf("SC_CLK_TCK")
        busy, idle = round(self.busy * tick), round(self.idle * tick)
        user, nice, system, irq, softirq = busy // 2, busy // 10, busy // 5, busy // 20, busy // 20
        steal = busy - user - nice - system - irq - softirq
        return f"cpu  {user} {nice} {system} {idle} {idle // 7} {irq} {softirq} {steal} 0 0\ncpu0 1 2 3 4\n"

    def install(self, monkeypatch):
        """runs' view of the clocks and of /proc/stat (nothing else's)."""
        fake_time = types.SimpleNamespace(sleep=self.sleep, process_time=lambda: self.cpu,
                                          monotonic=lambda: self.monotonic_now)
        monkeypatch.setattr(runs, "time", fake_time)
        real_open = open
        monkeypatch.setattr(runs, "open", lambda path, *a, **k: io.StringIO(self.proc_stat())
                            if path == "/proc/stat" else real_open(path, *a, **k), raising=False)


def test_machine_busy_seconds_are_the_busy_columns_of_proc_stat(monkeypatch):
    """user + nice + system + irq + softirq + steal, over clock ticks a second; idle and iowait not."""
    line = "cpu  100 20 30 400000 5000 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    monkeypatch.setattr(runs, "open", lambda path, *a, **k: io.StringIO(line), raising=False)
    assert runs._cpu_seconds() == pytest.approx((100 + 20 + 30 + 6 + 7 + 8) / os.sysconf("SC_CLK_TCK"))
    monkeypatch.setattr(runs, "open", lambda path, *a, **k: io.StringIO("intr 5 6\n"), raising=False)
    assert runs._cpu_seconds() is None                        # not a cpu line: no reading, torch's own choice


@pytest.mark.parametrize("others, own, expected", [
    (0, 0, 4),       # idle machine: every core
    (0, 3.0, 4),     # this process alone, on three cores: its own time is not another's
    (1, 0, 3),       # one other busy core
    (1, 2.5, 3),     # ... while this process uses two and a half
    (0.4, 0, 4), (0.6, 0, 3),   # the nearest whole core
    (4, 0, 1),       # every core busy elsewhere: still one thread
    (6, 0, 1),       # more busy than cores (the reading's noise): one
    (3, 1.0, 1),
])
def test_threads_from_proc_stat_readings(free_threads, monkeypatch, others, own, expected):
    """Four cores; over the one-second look, /proc/stat's busy time grows by others + own and
    this process's CPU time by own: threads = cores - round(others), at least 1."""
    clocks = Clocks(others, own)
    clocks.install(monkeypatch)
    threads = runs.Threads()                                  # reads /proc/stat through runs.open
    assert not threads.fixed
    threads.cores = 4
    torch.set_num_threads(2 if expected != 2 else 3)          # a count the choice must change
    threads.start(wait=1.0)
    assert torch.get_num_threads() == expected


def test_threads_update_follows_the_last_look_and_waits_for_every(free_threads, monkeypatch):
    clocks = Clocks()
    clocks.install(monkeypatch)
    threads = runs.Threads(every=2.0)
    threads.cores = 4
    threads.start(wait=1.0)
    assert torch.get_num_threads() == 4
    clocks.others, clocks.own = 2, 1.5                      # another job takes two cores; we keep working
    clocks.sleep(1)                                          # one second since the last look: too soon
    threads.update()
    assert torch.get_num_threads() == 4
    clocks.sleep(1)                                          # two seconds: the mean over both is 2 cores
    threads.update()
    assert torch.get_num_threads() == 2
    clocks.others = 0                                        # it ends; the next look covers only what came since
    clocks.sleep(1)
    clocks.sleep(1)
    threads.update()
    assert torch.get_num_threads() == 4


# ---------------------------------------------------------------- OpenMP's wait policy (issue 37)

@pytest.mark.parametrize("others, expected", [(0.0, None), (0.3, None), (0.6, "PASSIVE"), (1.9, "PASSIVE")])
def test_a_busy_machine_gets_passive_waiting_and_an_idle_one_keeps_spinning(monkeypatch, others, expected):
    """others: cores other processes kept busy during the look (this process sleeps through it)."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    readings = iter([50.0, 50.0 + others * 0.1])
    assert runs.wait_policy(look=0.1, read=lambda: next(readings)) == expected
    assert os.environ.get("OMP_WAIT_POLICY") == expected


@pytest.mark.parametrize("name", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"])
def test_the_users_wait_policy_is_left_alone(monkeypatch, name):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setenv(name, "ACTIVE" if name == "OMP_WAIT_POLICY" else "100000")
    assert runs.wait_policy(look=0.01, read=lambda: pytest.fail("looked at the machine")) is None
    assert os.environ.get("OMP_WAIT_POLICY") == ("ACTIVE" if name == "OMP_WAIT_POLICY" else None)


def test_passive_waiting_trains_the_same_numbers(tmp_path):
    """Two threads, each wait policy in its own process: the losses are the same bit for bit (the
    policy changes how threads wait, not how a sum is split)."""
    found = {}
    for policy in ("ACTIVE", "PASSIVE"):
        r = run_script("train.py", "--model", "vqlnpemlp", "--epochs", "2", "--time_steps", "32", "--no_forecast",
                       "--out_dir", tmp_path / policy, env={"OMP_WAIT_POLICY": policy, "OMP_NUM_THREADS": "2"})
        assert r.returncode == 0, r.stderr
        found[policy] = open(glob.glob(str(tmp_path / policy / "*" / "*" / "losses.csv"))[0]).read()
    rows = [line.split(",") for line in found["ACTIVE"].splitlines()]
    assert len(rows) == 3 and float(rows[1][1]) != float(rows[2][1])  # two epochs that differ
    strip = lambda text: [row[:4] + row[5:] for row in csv.reader(io.StringIO(text))]  # noqa: E731  (no seconds)
    assert strip(found["ACTIVE"]) == strip(found["PASSIVE"])
