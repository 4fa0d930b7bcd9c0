"""Costs that grow with the work: reading a long CSV, and training on it, at 10k to 10M values.

    python benchmarks/scale.py                          # reading at 10k, 100k, 1M, 10M; training at 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000,1000000 --train_sizes 10000,1000000 --repeat 3

Each CSV is `time,value`: minute timestamps from 2020-01-01 00:00 and a random walk with a daily
cycle, written once into --dir (default: a temporary folder).

- reading: data.load_series against pandas.read_csv + pandas.to_datetime on the same file, side by
  side in this process (alternating, --repeat times, median), and the ratio ours / pandas. pandas
  is the yardstick only (pip install -r benchmarks/requirements.txt); without it the ratio is left out.
- training: `python train.py --model vqlnpemlp --dataset FILE --epochs 1 --no_forecast` as a process
  of its own: its peak resident memory (the kernel's count for that process, os.wait4) and its
  epoch's seconds per training window (losses.csv over config.json's window count); then per size
  the memory beyond the smallest size's, per value, and the time per window over the smallest's.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import runs  # noqa: E402
from benchmarks.speed import machine  # noqa: E402

SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
TRAIN_SIZES = [10_000, 100_000, 1_000_000]
TRAIN = ["train.py", "--model", "vqlnpemlp", "--epochs", "1", "--no_forecast"]


def make_csv(path, n, seed=0, block=1_000_000):
    """A CSV of n rows, `time,value`: minutes from 2020-01-01 00:00, a random walk plus a daily cycle."""
    rng = np.random.default_rng(seed)
    start, level = np.datetime64("2020-01-01T00:00"), 0.0
    with open(path, "w") as f:
        f.write("time,value\n")
        for first in range(0, n, block):
            k = min(block, n - first)
            minutes = np.arange(first, first + k)
            times = np.char.replace(np.datetime_as_string(start + minutes.astype("timedelta64[m]"), unit="m"), "T", " ")
            walk = level + np.cumsum(rng.standard_normal(k) * 0.05)
            level = walk[-1]
            values = np.char.mod("%.4f", 20 + walk + 3 * np.sin(2 * np.pi * minutes / 1440))
            f.write("\n".join(np.char.add(np.char.add(times, ","), values)) + "\n")
    return path


def reading(path, repeat):
    """(ours seconds, pandas seconds or None), medians of alternating runs in this process."""
    from data import load_series
    try:
        import pandas
    except ImportError:
        pandas = None
    ours, theirs = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        series = load_series(path)
        ours.append(time.perf_counter() - t)
        if pandas is not None:
            t = time.perf_counter()
            frame = pandas.read_csv(path)
            times = pandas.to_datetime(frame["time"])
            theirs.append(time.perf_counter() - t)
            assert len(times) == len(series.values) and np.array_equal(frame["value"].to_numpy(), series.values)
    return statistics.median(ours), (statistics.median(theirs) if theirs else None)


# Started by a small Python of its own: a child's peak count (ru_maxrss) starts from its parent's
# resident size at the fork, and this process holds gigabytes once it has read 10M rows.
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, s, u = os.wait4(p.pid, 0); "
            "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(s)} {u.ru_maxrss}')")


def training(path, out):
    """(peak resident bytes, seconds per training window) of one train.py process on path."""
    env = dict(os.environ, VQSEQ_PROGRESS_SECONDS="0")
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr, \
            tempfile.NamedTemporaryFile("r") as report:
        subprocess.run([sys.executable, "-c", LAUNCHER, report.name, sys.executable, *TRAIN, "--dataset", path,
                        "--out_dir", out], cwd=ROOT, env=env, stdout=stdout, stderr=stderr, text=True)
        status, peak_kb = map(int, report.read().split())       # the kernel's count for train.py alone
        stdout.seek(0), stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if status != 0:
        sys.exit(f"scale.py: error: train.py on {path} failed: {(err_text.strip().splitlines() or ['?'])[-1]}")
    run_dir = out_text.strip().splitlines()[-1].removeprefix("-> ")
    config = runs.read_json(os.path.join(run_dir, "config.json"))
    with open(os.path.join(run_dir, "losses.csv")) as f:
        rows = f.read().splitlines()
    seconds = float(rows[1].split(",")[rows[0].split(",").index("seconds")])
    return peak_kb * 1024, seconds / config["n_windows"]["train"]       # Linux counts kilobytes


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma list of rows to read")
    parser.add_argument("--train_sizes", default=",".join(map(str, TRAIN_SIZES)),
                        help="comma list of rows to train on (empty: no training)")
    parser.add_argument("--repeat", type=int, default=3, help="readings of each file, each side (default 3)")
    parser.add_argument("--dir", default=None, help="where the CSVs are written once and kept (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(v) for v in args.sizes.split(",") if v]
        train_sizes = [int(v) for v in args.train_sizes.split(",") if v]
    except ValueError:
        runs.fail("scale.py", f"--sizes {args.sizes!r} --train_sizes {args.train_sizes!r}: expected comma lists of "
                  f"whole numbers, e.g. 10000,1000000")
    if args.repeat < 1 or min(sizes + train_sizes, default=1) < 200:
        runs.fail("scale.py", f"--repeat {args.repeat} and every size must be at least 1 and 200")
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or tmp
        os.makedirs(folder, exist_ok=True)
        paths = {}
        for n in sorted(set(sizes + train_sizes)):
            paths[n] = os.path.join(folder, f"scale_{n}.csv")
            if not os.path.isfile(paths[n]):
                make_csv(paths[n], n)
        print("\n| rows | ours s | pandas s | ours / pandas |\n|---|---|---|---|")
        for n in sizes:
            ours, theirs = reading(paths[n], args.repeat)
            ratio = f"{ours / theirs:.2f}" if theirs else "-"
            print(f"| {n:,} | {ours:.2f} | {theirs:.2f} | {ratio} |" if theirs else f"| {n:,} | {ours:.2f} | - | - |",
                  flush=True)
        if not train_sizes:
            return
        print(f"\n`python {' '.join(TRAIN)} --dataset FILE`\n\n| rows | peak resident MB | bytes per value beyond "
              f"the smallest | us per training window | over the smallest |\n|---|---|---|---|---|")
        base = None
        for n in train_sizes:
            peak, per_window = training(paths[n], os.path.join(tmp, "runs"))
            base = base or (n, peak, per_window)
            extra = (peak - base[1]) / (n - base[0]) if n > base[0] else 0.0
            print(f"| {n:,} | {peak / 2 ** 20:.0f} | {extra:.0f} | {per_window * 1e6:.1f} | "
                  f"{per_window / base[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
