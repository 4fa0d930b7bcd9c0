"""Wall time of the log's standard 50-epoch runs on y_w, and of every model's default run.

    python benchmarks/train_speed.py             # the log's runs on y_w (needs the formaldehyde data)
    python benchmarks/train_speed.py --defaults  # `python train.py --model X` on membrane, every model

The log's own implementation, measured on a 2-core machine like the CI's, took: lstm 30 s
including forecast and plots (val loss 0.0137), vqlnpemlp vs512 dm32 18 s of training (val loss
0.0263), vqlnmlp vs512 dm64 20 s of training (val loss 0.0261). The targets are 2x faster for
lstm and 4x for the VQ runs at the same val loss within 3%, and at most 2 minutes for every
model's default run. Each run is a fresh `python train.py` process, timed from outside; the log's
runs name `--split random` (the log's protocol, whose numbers these are), the default runs take
train.py's own default (chrono: backtest on the test part after training). Shared
2-core machines vary by 20% or more from minute to minute, so each log run is repeated
(--repeat, default 3) and the median is the number compared; min and max are printed beside it.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import models  # noqa: E402
import runs  # noqa: E402

# (arguments, what the log measured, the log's seconds, the log's val loss, target speed-up)
LOG_RUNS = [
    (["--model", "lstm"], "wall, with forecast", 30.0, 0.0137326, 2),
    (["--model", "vqlnpemlp", "--d_model", "32", "--no_forecast"], "training", 18.0, 0.0262058, 4),
    (["--model", "vqlnmlp", "--no_forecast"], "training", 20.0, 0.0260275, 4),
]


def timed_run(args, out_dir):
    """(wall seconds, metrics.json) of one train.py process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "train.py", "--out_dir", out_dir, *args], cwd=ROOT,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        runs.fail("train_speed.py", f"python train.py {' '.join(args)} failed: {last}", status=1)
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    return wall, runs.read_json(os.path.join(run_dir, "metrics.json"))


def main():
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--defaults", action="store_true", help="time every model's default run on membrane")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each log run; the median is compared")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    with tempfile.TemporaryDirectory() as out:
        if args.defaults:
            print("| model | wall s (train + forecast) | training s | val loss |")
            print("|---|---|---|---|")
            for name in models.names():
                wall, m = timed_run(["--model", name], out)
                print(f"| {name} | {wall:.1f} | {m['seconds']:.1f} | {m['val_loss']:.4g} |", flush=True)
            return
        print(f"| run | log s | ours s, median of {args.repeat} (min-max) | speed-up (target) | log val loss | ours | diff |")
        print("|---|---|---|---|---|---|---|")
        for run_args, what, log_s, log_loss, target in LOG_RUNS:
            seconds = []
            for _ in range(args.repeat):  # same seed: the same val loss every time
                wall, m = timed_run(run_args + ["--dataset", "y_w", "--split", "random"], out)
                seconds.append(wall if what.startswith("wall") else m["seconds"])
            ours = statistics.median(seconds)
            print(f"| {' '.join(run_args[1:])} ({what}) | {log_s:.0f} | {ours:.1f} ({min(seconds):.1f}-{max(seconds):.1f}) "
                  f"| {log_s / ours:.1f}x ({target}x) | {log_loss} | {m['val_loss']:.4f} "
                  f"| {100 * (m['val_loss'] / log_loss - 1):+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
