"""Reproduce the research log's 2024-12-23 table (positional encodings) on y_w.

    python benchmarks/reproduce_pe.py                # the eight runs, then sliding vs absolute
    python benchmarks/reproduce_pe.py --epochs 5     # a quick look
    python benchmarks/reproduce_pe.py --positions_only --seeds 0,1,2   # sliding vs absolute, 3 seeds

The log's protocol: vocab 512, d_model 64, time_steps 96, lr 0.007, batch 32, 50 epochs, random
split (every run passes `--split random`, so the table does not move with train.py's default);
n_heads 8 for the rope and sinpe multi-head runs, 2 for the others. Prints our val loss,
regressive MSE (forecast.py's RUN/forecasts/y_w_log/) and training seconds beside the log's.
Then, for the randn, sin and rope variants, the regressive MSE with `forecast.py --positions
sliding` (the log's) and `absolute` (RUN/forecasts/y_w_log_absolute/).
A table PE cannot number positions past its block_size, so for `absolute` the randn and sin
variants are trained again with --block_size set to the series length (only positions 0..95
are ever trained; the rest of a randn table stays random, the sin table is a formula). A longer
table draws more random numbers before the codebook, so those runs are other random models
than the eight above. Regressive MSE over hundreds of fed-back steps varies by an order of
magnitude between seeds: compare it over several (--seeds).
OMP_NUM_THREADS=1 in front of the command is steadier on a machine shared with other work.
Needs the formaldehyde data (python data/download.py).
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402
from data import load_series  # noqa: E402

# (model, n_heads or None, log val loss, log regressive MSE)
LOG = [
    ("vqlnmlp", None, 0.0262299, 40395.99),
    ("vqlnpemlp", None, 0.0263118, 37311.36),
    ("vqlnmlp_sinpe", None, 0.0263636, 43374.69),
    ("vqlnmlp_rope", None, 0.0261638, 19314.00),
    ("mhvqlnmlp", 2, 0.025994, 32116.38),
    ("mhvqlnpemlp", 2, 0.0261349, 19412.36),
    ("mhvqlnmlp_sinpe", 8, 0.0266329, 37210.76),
    ("mhvqlnmlp_rope", 8, 0.0255627, 65849.39),
]
TABLE_PE = {"vqlnpemlp", "vqlnmlp_sinpe", "mhvqlnpemlp", "mhvqlnmlp_sinpe"}


def run(*args):
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:  # the script's own one-line error
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        runs.fail("reproduce_pe.py", f"python {' '.join(args)} failed: {last}", status=1)
    return r.stdout.strip().splitlines()[-1].removeprefix("-> ")


def train(out, model, heads, epochs, seed, *extra):
    """(run_dir, metrics.json, the log's forecast of y_w: RUN/forecasts/y_w_log/metrics.json)."""
    args = ["train.py", "--model", model, "--dataset", "y_w", "--split", "random", "--epochs", str(epochs),
            "--seed", str(seed), "--out_dir", out, *extra] + (["--n_heads", str(heads)] if heads else [])
    run_dir = run(*args)
    metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
    forecast = runs.read_json(os.path.join(run_dir, "forecasts", "y_w_log", "metrics.json"))
    return run_dir, metrics, forecast


def main():
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the eight runs")
    parser.add_argument("--seeds", default=None, help="seeds of the sliding/absolute table, e.g. 0,1,2 (default: --seed)")
    parser.add_argument("--positions_only", action="store_true", help="only the sliding/absolute table")
    args = parser.parse_args()
    if args.seeds and not all(s.strip().isdigit() for s in args.seeds.split(",")):
        parser.error(f"--seeds {args.seeds!r}: expected a comma list of whole numbers, e.g. 0,1,2")
    if args.epochs < 0:
        parser.error(f"--epochs must be >= 0, got {args.epochs}")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    try:
        series_length = len(load_series("y_w").values)
    except runs.UsageError as e:
        parser.error(e)
    with tempfile.TemporaryDirectory() as out:
        trained = {}
        if not args.positions_only:
            print("| model | nh | log val loss | ours | diff | log regressive MSE | ours | training s |")
            print("|---|---|---|---|---|---|---|---|")
            for model, heads, log_loss, log_mse in LOG:
                run_dir, m, f = train(out, model, heads, args.epochs, args.seed)
                trained[model] = (run_dir, f)
                print(f"| {model} | {heads or '-'} | {log_loss} | {m['val_loss']:.5f} | "
                      f"{100 * (m['val_loss'] / log_loss - 1):+.1f}% | {log_mse:.0f} | {f['mse_regressive']:.0f} | "
                      f"{m['seconds']:.1f} |", flush=True)
            print()

        print("| model | seed | regressive MSE, sliding | absolute |")
        print("|---|---|---|---|")
        for model, heads, _, _ in LOG:
            if model in ("vqlnmlp", "mhvqlnmlp"):
                continue  # no positions: both protocols are the same
            for seed in seeds:
                if model in TABLE_PE:  # a table long enough for the whole series
                    run_dir, _, sliding = train(out, model, heads, args.epochs, seed,
                                                "--block_size", str(series_length))
                elif model in trained and seed == args.seed:
                    run_dir, sliding = trained[model]
                else:
                    run_dir, _, sliding = train(out, model, heads, args.epochs, seed)
                run("forecast.py", run_dir, "--positions", "absolute")
                absolute = runs.read_json(os.path.join(run_dir, "forecasts", "y_w_log_absolute", "metrics.json"))
                print(f"| {model} | {seed} | {sliding['mse_regressive']:.0f} | {absolute['mse_regressive']:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
