"""The quick start on an idle machine and beside one busy process, under each thread policy.

    python benchmarks/busy.py                   # 3 rounds; each round: every policy idle, then busy
    python benchmarks/busy.py --repeat 1 --policies ours,torch

The command timed is the README's quick start, `python train.py --model vqlnpemlp` (training,
then the backtest), as a whole process. "Busy" is one other process spinning on one core
(`sh -c 'while :; do :; done'`), started here before the timed command and ended by its process
id after it. Policies:
- ours:    no setting: train.py and forecast.py follow the cores other processes leave free
           (runs.Threads);
- torch:   torch's own default, one thread per core (OMP_NUM_THREADS set to the core count, which
           also turns runs.Threads off);
- one:     OMP_NUM_THREADS=1;
- passive: torch's default threads with OMP_WAIT_POLICY=PASSIVE (threads sleep instead of
           spinning while they wait).
Rounds alternate the policies so that a drift of the machine's speed falls on all of them alike.
Prints each time, then the medians and the ratios the issue asks for: busy against idle, and
each policy's idle time against torch's.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.cpu_count() or 1
POLICIES = {"ours": {}, "torch": {"OMP_NUM_THREADS": str(CORES)}, "one": {"OMP_NUM_THREADS": "1"},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
COMMAND = ["train.py", "--model", "vqlnpemlp"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(policy, out_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    t = time.perf_counter()
    subprocess.run([sys.executable, *COMMAND, "--out_dir", out_dir], cwd=ROOT, env={**env, **POLICIES[policy]},
                   check=True, capture_output=True)
    seconds = time.perf_counter() - t
    shutil.rmtree(out_dir, ignore_errors=True)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--policies", default="ours,torch,one,passive", help="comma list of " + ", ".join(POLICIES))
    args = parser.parse_args()
    policies = args.policies.split(",")
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        parser.error(f"unknown policy {bad[0]!r}; choose from {', '.join(POLICIES)}")
    print(f"{cpu_name()}, {CORES} cores, load average {os.getloadavg()[0]:.2f} at the start; "
          f"`python {' '.join(COMMAND)}`, whole process", flush=True)
    seconds = {}
    out_dir = tempfile.mkdtemp(prefix="vqseq-busy-")
    try:
        for r in range(args.repeat):
            for busy in (False, True):
                load = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if busy else None
                try:
                    for policy in policies:
                        s = timed(policy, out_dir)
                        seconds.setdefault((policy, busy), []).append(s)
                        print(f"round {r + 1} {'busy' if busy else 'idle'} {policy:8s} {s:6.1f} s", flush=True)
                finally:
                    if load:
                        load.kill()  # ended by its process id
                        load.wait()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    base = median.get(("torch", False))
    print(f"\n| policy | idle s | beside one busy process s | busy / own idle | busy / torch idle | idle / torch idle |")
    print("|---|---|---|---|---|---|")
    for p in policies:
        idle, busy = median[(p, False)], median[(p, True)]
        vs = (lambda x: f"{x / base:.2f}") if base else (lambda x: "-")
        print(f"| {p} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} | {vs(busy)} | {vs(idle)} |")
    print(f"\nmedians of {args.repeat} rounds; load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
