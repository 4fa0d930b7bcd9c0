"""Studies that extend the research log: three lists of train.py runs on the log's series, and one
that backtests finished runs two ways.

    python benchmarks/studies.py att                          # the sweep that chose att and att_mh's defaults
    python benchmarks/studies.py att --stage 2 --seeds 0      # the runs around the defaults
    python benchmarks/studies.py pe                           # the log's 2024-12-23 table, then sliding vs absolute
    python benchmarks/studies.py pe --positions_only --seeds 0,1,2
    python benchmarks/studies.py cascade --seeds 0,1,2        # does a cascade of caches give more memory?
    python benchmarks/studies.py cascade --quick              # 1 epoch, y_w, random split: a smoke test
    python benchmarks/studies.py norm_stats --runs runs/honest-A runs/ett-A   # fed back: each window's statistics or the origin's

Every run is an ordinary training (sweep.run_one: `python train.py ...` in this process) with the
model's own defaults unless the study names an option, then the log's evaluation of the run's own
series (log_protocol.evaluate: batch and regressive forecasts, over the whole series under the
log's protocol, over the test part under chrono). Printed: val_mse_last (normalised units, the
number that compares across models), mse_batch and mse_regressive (original units, (ug/m^3)^2 on
the formaldehyde series; only the regressive one is a long-term forecast). Regressive MSE over
hundreds of fed-back steps varies by an order of magnitude between seeds: compare it over several.
The noise floor of y_w is about 1060-1095 (its variance around a short moving average). Needs the formaldehyde
series (python data/download.py, or $VQSEQ_DATA_DIR). What each study found: docs/MODELS.md.

- att: att_mh and att around their defaults, `--split random` (the log's protocol, named, so the
  table does not move with train.py's default), seeds 0 and 1, 50 epochs unless --epochs. Stage 1
  changed one thing at a time around lr 0.003; its best change, lr 0.001, became the default, and
  stage 2 varies around it.
- pe: the eight runs of the log's 2024-12-23 table (vocab 512, d_model 64, time_steps 96, lr 0.007,
  batch 32, 50 epochs, random split; n_heads 8 for the multi-head rope and sinpe runs, 2 for the
  others) beside the log's val loss and regressive MSE, then for the randn, sin and rope variants
  the regressive MSE with `--positions sliding` (the log's) and `absolute`. A table PE cannot
  number positions past its block_size, so for `absolute` those variants are trained again with
  --block_size the series length (only positions 0..95 are ever trained; a longer randn table draws
  more random numbers before the codebook, so those are other random models than the eight).
- cascade: cvqlnmlp (both orders) and mhcvqlnmlp against vqlnmlp with as many codes, lstm and
  naive, on y_w and 4single, under the random and the chrono split; one torch thread by default.
- norm_stats: every run under --norm revin or last in the folders given (honest.py's, ett.py's),
  backtested to --horizon with each new window's statistics (forecast.py's default) and with the
  origin window's held (--norm_stats origin, which lets att_mh's KV cache work): which forecasts
  better, and how much faster the cache is.
"""
import argparse
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
from data import load_series  # noqa: E402
from forecast import backtest as forecast_backtest, load  # noqa: E402
from log_protocol import evaluate  # noqa: E402

# ---- att: every run starts from BASE, the defaults spelled out (so the sweep does not move when
# defaults change), and overrides a few options
ATT_BASE = {"att_mh": ["--d_model", "64", "--n_heads", "4", "--kv_heads", "2", "--pe_type", "rope", "--pe_on", "input",
                       "--in_ln", "false", "--q_ln", "false", "--k_ln", "false", "--causal", "true", "--lr", "0.001"],
            "att": ["--d_model", "64", "--pe_type", "rope", "--pe_on", "input", "--in_ln", "false", "--q_ln", "false",
                    "--k_ln", "false", "--causal", "true", "--lr", "0.001"],
            "lstm": []}
LR1 = ["--lr", "0.003"]
ATT_CONFIGS = [  # (stage, model, options)
    (1, "att_mh", LR1),
    (1, "att_mh", LR1 + ["--pe_on", "qk"]),              # RoPE on q and k: the cache's exact case
    (1, "att_mh", LR1 + ["--pe_type", "none"]),
    (1, "att_mh", LR1 + ["--pe_type", "sinpe"]),
    (1, "att_mh", LR1 + ["--pe_type", "randn"]),
    (1, "att_mh", LR1 + ["--in_ln", "true"]),
    (1, "att_mh", LR1 + ["--pe_on", "qk", "--in_ln", "true"]),
    (1, "att_mh", LR1 + ["--q_ln", "true", "--k_ln", "true"]),
    (1, "att_mh", ["--lr", "0.001"]),
    (1, "att_mh", ["--lr", "0.01"]),
    (1, "att_mh", LR1 + ["--kv_heads", "1"]),
    (1, "att_mh", LR1 + ["--kv_heads", "4"]),
    (1, "att_mh", LR1 + ["--n_heads", "8"]),
    (1, "att_mh", LR1 + ["--causal", "false"]),
    (1, "att", LR1),
    (1, "att", LR1 + ["--pe_on", "qk"]),
    (1, "lstm", []),
    (2, "att_mh", []),
    (2, "att_mh", ["--pe_on", "qk"]),
    (2, "att_mh", ["--pe_type", "sinpe"]),
    (2, "att_mh", ["--lr", "0.0003"]),
    (2, "att_mh", ["--kv_heads", "1"]),
    (2, "att_mh", ["--kv_heads", "4"]),
    (2, "att_mh", ["--n_heads", "8"]),
    (2, "att", []),
    (2, "att", ["--pe_on", "qk"]),
]
# ---- pe: (model, n_heads or None, the log's val loss, the log's regressive MSE), 2024-12-23
PE_LOG = [
    ("vqlnmlp", None, 0.0262299, 40395.99),
    ("vqlnpemlp", None, 0.0263118, 37311.36),
    ("vqlnmlp_sinpe", None, 0.0263636, 43374.69),
    ("vqlnmlp_rope", None, 0.0261638, 19314.00),
    ("mhvqlnmlp", 2, 0.025994, 32116.38),
    ("mhvqlnpemlp", 2, 0.0261349, 19412.36),
    ("mhvqlnmlp_sinpe", 8, 0.0266329, 37210.76),
    ("mhvqlnmlp_rope", 8, 0.0255627, 65849.39),
]
PE_TABLES = {"vqlnpemlp", "vqlnmlp_sinpe", "mhvqlnpemlp", "mhvqlnmlp_sinpe"}  # a table of block_size rows
# ---- cascade: vqlnmlp vs672 has as many codes as the cascades (32 + 128 + 512), vs84 as many
# entries as the 2+3 example (5 * 4 + 2 * 16 + 32), vs32 as many as inc's input reads
CASCADE_RUNS = [
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


THREADS = None  # torch threads of every training (--threads; None: train.py's own choice)


def train_and_evaluate(argv, positions=("sliding",)):
    """(metrics.json of one training, the log's evaluation of its series (one per positions, or
    one), seconds of both)."""
    t0 = time.perf_counter()
    run_dir = sweep.run_one(argv + ["--no_forecast", "--device", "cpu"], THREADS)  # as `python train.py ARGV`
    m = runs.read_json(os.path.join(run_dir, "metrics.json"))
    f = [evaluate(load(run_dir), positions=p) for p in positions]
    return m, f if len(f) > 1 else f[0], time.perf_counter() - t0


def mean_sd(values, digits):
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.mean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def att(args, out):
    bad = [i for i in args.configs or [] if not 0 <= i < len(ATT_CONFIGS)]
    if bad:
        runs.fail("studies.py", f"--configs {bad[0]}: expected an index from 0 to {len(ATT_CONFIGS) - 1}")
    chosen = args.configs if args.configs else [i for i, c in enumerate(ATT_CONFIGS) if args.stage in (None, c[0])]
    print(f"y_w, split random, seeds {args.seeds}, {torch.get_num_threads()} threads")
    print("| # | stage | model | options | val_mse_last | mse_batch | mse_regressive | per seed | path | s per run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i in chosen:
        stage, model, extra = ATT_CONFIGS[i]
        rows = [train_and_evaluate(["--model", model, "--dataset", "y_w", "--split", "random", "--seed", str(seed),
                                    "--out_dir", out] + ATT_BASE[model] + extra + args.extra) for seed in args.seeds]
        mean = [statistics.mean(r[0]["val_mse_last"] for r in rows)] + \
            [statistics.mean(r[1][k] for r in rows) for k in ("mse_batch", "mse_regressive")]
        seeds = " / ".join(f"{r[1]['mse_regressive']:.0f}" for r in rows)
        print(f"| {i} | {stage} | {model} | {' '.join(extra) or 'defaults'} | {mean[0]:.4f} | {mean[1]:.0f} | "
              f"{mean[2]:.0f} | {seeds} | {rows[0][1]['regressive_path']} | "
              f"{statistics.mean(r[2] for r in rows):.0f} |", flush=True)


def pe(args, out):
    series_length = len(load_series("y_w", data_dir=args.data_dir).values)

    def run(model, heads, seed, *extra, positions=("sliding",)):
        return train_and_evaluate(["--model", model, "--dataset", "y_w", "--split", "random", "--seed", str(seed),
                                   "--out_dir", out, *args.extra, *extra] + (["--n_heads", str(heads)] if heads else []),
                                  positions)
    if not args.positions_only:
        print("| model | nh | log val loss | ours | diff | log regressive MSE | ours | training s |")
        print("|---|---|---|---|---|---|---|---|")
        for model, heads, log_loss, log_mse in PE_LOG:
            m, f, _ = run(model, heads, args.seeds[0])
            print(f"| {model} | {heads or '-'} | {log_loss} | {m['val_loss']:.5f} | "
                  f"{100 * (m['val_loss'] / log_loss - 1):+.1f}% | {log_mse:.0f} | {f['mse_regressive']:.0f} | "
                  f"{m['seconds']:.1f} |", flush=True)
        print()
    print("| model | seed | regressive MSE, sliding | absolute |\n|---|---|---|---|")
    for model, heads, _, _ in PE_LOG:
        if model in ("vqlnmlp", "mhvqlnmlp"):
            continue  # no positions: both numberings are the same
        for seed in args.seeds:
            longer = ("--block_size", str(series_length)) if model in PE_TABLES else ()  # the whole series numbered
            sliding, absolute = run(model, heads, seed, *longer, positions=("sliding", "absolute"))[1]
            print(f"| {model} | {seed} | {sliding['mse_regressive']:.0f} | {absolute['mse_regressive']:.0f} |", flush=True)


def cascade(args, out):
    if args.quick:
        args.datasets, args.splits = "y_w", "random"
        args.extra = ["--epochs", "1"] + (["--data_dir", args.data_dir] if args.data_dir else [])
    t0 = time.perf_counter()
    print("| data set | split | model | val_mse_last | mse_batch | mse_regressive | parameters | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        for split in args.splits.split(","):
            for label, options in CASCADE_RUNS:
                rows = [train_and_evaluate(options + ["--dataset", dataset, "--split", split, "--seed", str(seed),
                                                      "--out_dir", out, *args.extra]) for seed in args.seeds]
                cells = [mean_sd([r[0]["val_mse_last"] for r in rows], 4)] + \
                    [mean_sd([r[1][k] for r in rows], 4) for k in ("mse_batch", "mse_regressive")]
                m = rows[0][0]
                print(f"| {dataset} | {split} | {label} | {' | '.join(cells)} | {m['trainable_parameters']}+"
                      f"{m['fixed_parameters']} | {statistics.mean(r[0]['seconds'] for r in rows):.1f} |", flush=True)
    print(f"\n{len(args.seeds)} seed(s); total {time.perf_counter() - t0:.0f} s wall (training, forecasts and plots) "
          f"with torch using {torch.get_num_threads()} thread(s).")


def norm_stats(args, out):
    """Runs that read each window by its statistics (--norm revin or last), fed back with each new
    window's statistics (step, the default) and with the origin's held (origin): test MASE over all
    steps to the horizon, mean over seeds, and the seconds of each backtest (origin lets att_mh use
    its KV cache; the VQ models take their last position both ways)."""
    from benchmarks.tables import cell, finished_runs
    from models.rollout import pointwise
    found = {}
    for folder in args.runs:
        found.update(finished_runs(folder, lambda c: (c["model"], c["dataset"], c["time_steps"], c["norm"], c["seed"])))
    rows, cells = {}, []
    for key, run_dir in sorted(found.items()):
        if key[3] == "global":
            continue
        for stats in ("step", "origin"):
            run = load(run_dir, norm_stats=stats)
            horizon = min(args.horizon, run.test_end - run.val_end)
            t0 = time.perf_counter()
            result = forecast_backtest(run, horizon, level=None, kv_cache="on" if pointwise(run.model) else "auto")
            rows.setdefault(key[:4] + (horizon,), {}).setdefault(stats, []).append(
                (result["metrics"]["model"]["mase"], time.perf_counter() - t0))
        print(f"{run_dir}: done", file=sys.stderr, flush=True)
    print("| model | data set | T | norm | H | MASE, each step's statistics | MASE, the origin's | origin / step "
          "| seconds step / origin |\n|---|---|---|---|---|---|---|---|---|")
    for (model, dataset, T, norm, H), by in rows.items():
        step, origin = ([m for m, _ in by[k]] for k in ("step", "origin"))
        ratio = statistics.mean(origin) / statistics.mean(step)
        cells.append(ratio)
        seconds = "/".join(f"{statistics.mean(s for _, s in by[k]):.1f}" for k in ("step", "origin"))
        print(f"| {model} | {dataset} | {T} | {norm} | {H} | {cell(step)} | {cell(origin)} | {ratio:.3f} "
              f"| {seconds} |", flush=True)
    if cells:
        print(f"\norigin's MASE no worse than step's in {sum(r <= 1 for r in cells)} of {len(cells)} cells; "
              f"median ratio {statistics.median(cells):.3f}")


def seeds(text):
    if not all(s.strip().isdigit() for s in text.split(",")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma list of whole numbers, e.g. 0,1,2")
    return [int(s) for s in text.split(",")]


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    studies = parser.add_subparsers(dest="study", required=True, parser_class=runs.Parser)
    a = studies.add_parser("att", help="the sweep that chose att and att_mh's defaults")
    a.add_argument("--configs", type=int, nargs="*", help="indices into ATT_CONFIGS (default: all)")
    a.add_argument("--stage", type=int, default=None, help="only the configs of this stage (1 or 2)")
    p = studies.add_parser("pe", help="the log's 2024-12-23 table, then sliding vs absolute positions")
    p.add_argument("--positions_only", action="store_true", help="only the sliding/absolute table")
    c = studies.add_parser("cascade", help="cascaded caches against single codebooks, lstm and naive")
    c.add_argument("--datasets", default="y_w,4single", help="comma list of data sets (default y_w,4single)")
    c.add_argument("--splits", default="random,chrono", help="comma list of splits (default random,chrono)")
    c.add_argument("--quick", action="store_true", help="1 epoch, y_w, random split")
    n = studies.add_parser("norm_stats", help="revin and last runs fed back with each window's statistics or the "
                           "origin's")
    n.add_argument("--runs", nargs="+", required=True, help="folders of finished runs (honest.py's, ett.py's --out_dir)")
    n.add_argument("--horizon", type=int, default=96, help="steps ahead (default 96, or the test part's length)")
    for sub, default_seeds in ((a, "0,1"), (p, "0"), (c, "0")):
        sub.add_argument("--seeds", type=seeds, default=seeds(default_seeds), help=f"comma list (default {default_seeds})")
        sub.add_argument("--epochs", type=int, default=None, help="(default: each model's, 50)")
        sub.add_argument("--threads", type=int, default=1 if sub is c else None, help="torch threads")
        sub.add_argument("--data_dir", default=None, help="where y_w, w_y, 4single live")
        sub.add_argument("--out_dir", default=None, help="keep the run directories here (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.study == "norm_stats":
        return norm_stats(args, None)
    if args.epochs is not None and args.epochs < 0:
        runs.fail("studies.py", f"--epochs must be >= 0, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        runs.fail("studies.py", f"--threads must be at least 1, got {args.threads}")
    global THREADS
    THREADS = args.threads
    args.extra = (["--epochs", str(args.epochs)] if args.epochs is not None else []) + \
        (["--data_dir", args.data_dir] if args.data_dir else [])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            {"att": att, "pe": pe, "cascade": cascade}[args.study](args, args.out_dir or tmp)
        except runs.UsageError as e:  # the data missing, a model's one-line error
            runs.fail("studies.py", e)


if __name__ == "__main__":
    main()
