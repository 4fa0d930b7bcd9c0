"""Where a train.py process spends the seconds outside training (issue: fixed cost per process).

    python benchmarks/startup.py              # each part in a fresh process, median of --repeat

Each part is timed in its own fresh Python process, so imports are cold as in a real run:
importing torch, importing the project, building torch.optim.Adam (which imports torch._dynamo),
building train.py's own Adam (the same fused kernel, no torch.optim), importing matplotlib's
pyplot and drawing one loss plot; then whole `train.py` processes that train nothing
(`--epochs 0`) against the seconds they report, with and without the evaluation after training.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402

PARTS = {
    "import torch": ("", "import torch"),
    "import train, forecast (torch included)": ("", "import train, forecast"),
    "torch.optim.Adam(...) (imports torch._dynamo)":
        ("import torch; p = [torch.zeros(3, requires_grad=True)]", "torch.optim.Adam(p, lr=0.1, fused=True)"),
    "train.Adam(...)": ("import torch, train; p = [torch.zeros(3, requires_grad=True)]", "train.Adam(p, 0.1)"),
    "import matplotlib.pyplot": ("import matplotlib; matplotlib.use('Agg')", "import matplotlib.pyplot"),
    "one loss plot (runs.plot_curves)":
        ("import runs, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
         "runs.plot_curves({'a': ([1, 2], [1, 2])}, 't', 'y', PATH)"),
}


def part_seconds(setup, stmt, tmp):
    code = (f"import sys, time; sys.path.insert(0, {ROOT!r}); PATH = {os.path.join(tmp, 'x.png')!r}\n{setup}\n"
            f"t = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        runs.fail("startup.py", r.stderr.strip().splitlines()[-1])
    return float(r.stdout.split()[-1])


def process_seconds(args, tmp):
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "train.py", "--out_dir", tmp, *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        runs.fail("startup.py", r.stderr.strip().splitlines()[-1])
    return time.perf_counter() - t


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per part (median)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        runs.fail("startup.py", f"--repeat must be at least 1, got {args.repeat}")
    print(f"{os.cpu_count()} cores, {args.repeat} fresh processes per line, median (min-max) seconds")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (setup, stmt) in PARTS.items():
            t = [part_seconds(setup, stmt, tmp) for _ in range(args.repeat)]
            print(f"{name:50s} {statistics.median(t):6.2f}  ({min(t):.2f}-{max(t):.2f})")
        for label, extra in (("train.py --epochs 0 --no_forecast (whole process)", ["--no_forecast"]),
                             ("train.py --epochs 0 with the backtest (whole process)", [])):
            t = [process_seconds(["--model", "vqlnmlp", "--dataset", "goog", "--epochs", "0", *extra], tmp)
                 for _ in range(args.repeat)]
            print(f"{label:50s} {statistics.median(t):6.2f}  ({min(t):.2f}-{max(t):.2f})")


if __name__ == "__main__":
    main()
