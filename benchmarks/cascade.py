"""Does a cascade of caches give the VQ-MLP more long-term memory? cvqlnmlp (both orders) and
mhcvqlnmlp against vqlnmlp with as many codes, lstm and naive, on y_w and 4single, under the
random and the chrono split.

    python benchmarks/cascade.py                    # 1 seed, 32 runs, about 6 minutes on 2 cores
    python benchmarks/cascade.py --seeds 0,1,2      # mean and spread over three seeds
    python benchmarks/cascade.py --quick            # 1 epoch, y_w, random split: a smoke test

Every run has the model's own training defaults (50 epochs, Adam; VQ models time_steps 96,
lr 0.007, batch 32; lstm time_steps 112, lr 0.0005, batch 64) and names its split: `--split
random` is the log's protocol (forecasts over the whole series, predict_rate 1, as in the log's
tables), `--split chrono` train.py's three-way split in time (70/10/20: val_mse_last on the
validation part at the best epoch, forecasts over the test part, which training never read).
Trained in this process by sweep.run_one (train.py's own run), forecast by log_protocol.evaluate (RUN/forecasts/). Printed
per run: val_mse_last (normalised units; the number that compares across models), mse_batch and
mse_regressive (original units; only the regressive one is a long-term forecast), parameters
(trainable + fixed) and seconds of training. Needs the
formaldehyde series (python data/download.py, or $VQSEQ_DATA_DIR).
"""
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import runs  # noqa: E402
import sweep  # noqa: E402
from forecast import load  # noqa: E402
from log_protocol import evaluate  # noqa: E402

# (label, train.py options). vqlnmlp vs672 has as many codes as the cascades (32 + 128 + 512),
# vs84 as many entries as the 2+3 example (5 * 4 + 2 * 16 + 32), vs32 as many as inc's input reads.
RUNS = [
    ("naive", ["--model", "naive"]),
    ("lstm", ["--model", "lstm"]),
    ("vqlnmlp vs32", ["--model", "vqlnmlp", "--vocab_size", "32"]),
    ("vqlnmlp vs84", ["--model", "vqlnmlp", "--vocab_size", "84"]),
    ("vqlnmlp vs672", ["--model", "vqlnmlp", "--vocab_size", "672"]),
    ("cvqlnmlp inc 32-128-512", ["--model", "cvqlnmlp", "--order", "inc", "--levels", "32-128-512"]),
    ("cvqlnmlp dec 512-128-32", ["--model", "cvqlnmlp", "--order", "dec", "--levels", "512-128-32"]),
    ("mhcvqlnmlp dec 4-16-32 h5-2-1", ["--model", "mhcvqlnmlp", "--order", "dec", "--levels", "4-16-32",
                                       "--heads", "5-2-1", "--d_model", "60"]),
]
METRICS = ("val_mse_last", "mse_batch", "mse_regressive")
SPLITS = ("random", "chrono")


def one_run(options, dataset, split, seed, out_dir, epochs, data_dir):
    argv = options + ["--dataset", dataset, "--split", split, "--seed", str(seed), "--out_dir", out_dir,
                      "--no_forecast", "--device", "cpu"]
    argv += ["--epochs", str(epochs)] if epochs is not None else []
    argv += ["--data_dir", data_dir] if data_dir else []
    run_dir = sweep.run_one(argv, None)  # one training, as train.py runs it
    m = runs.read_json(os.path.join(run_dir, "metrics.json"))
    f = evaluate(load(run_dir, device="cpu"), device="cpu")
    return {"val_mse_last": m["val_mse_last"], "mse_batch": f["mse_batch"], "mse_regressive": f["mse_regressive"],
            "params": f"{m['trainable_parameters']}+{m['fixed_parameters']}", "seconds": m["seconds"]}


def cell(values, digits):
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.mean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def main():
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="y_w,4single")
    parser.add_argument("--splits", default="random,chrono")
    parser.add_argument("--seeds", default="0", help="comma list; more than one prints mean ± std")
    parser.add_argument("--epochs", type=int, default=None, help="(default: each model's, 50)")
    parser.add_argument("--quick", action="store_true", help="1 epoch, y_w, random split")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out_dir", default=None, help="keep the run directories here (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared, busy machine more threads wait on each other)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.quick:
        args.datasets, args.splits, args.epochs = "y_w", "random", 1
    bad = [s for s in args.splits.split(",") if s not in SPLITS]
    if bad:
        parser.error(f"unknown split {bad[0]!r} in --splits; choose from {', '.join(SPLITS)}")
    if not all(s.strip().isdigit() for s in args.seeds.split(",")):
        parser.error(f"--seeds {args.seeds!r}: expected a comma list of whole numbers, e.g. 0,1,2")
    seeds = [int(s) for s in args.seeds.split(",")]

    t0 = time.perf_counter()
    print("| data set | split | model | val_mse_last | mse_batch | mse_regressive | parameters | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out_dir or tmp
        for dataset in args.datasets.split(","):
            for split in args.splits.split(","):
                for label, options in RUNS:
                    try:
                        results = [one_run(options, dataset, split, s, out_dir, args.epochs, args.data_dir)
                                   for s in seeds]
                    except runs.UsageError as e:  # DataError, ModelError: one line, exit 2
                        parser.error(e)
                    cells = [cell([r[k] for r in results], 4) for k in METRICS]
                    seconds = statistics.mean(r["seconds"] for r in results)
                    print(f"| {dataset} | {split} | {label} | {' | '.join(cells)} | {results[0]['params']} "
                          f"| {seconds:.1f} |", flush=True)
    print(f"\n{len(seeds)} seed(s) {args.seeds}; total {time.perf_counter() - t0:.0f} s wall "
          f"(training, forecasts and plots) with torch using {torch.get_num_threads()} thread(s).")


if __name__ == "__main__":
    main()
