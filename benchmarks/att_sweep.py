"""The small sweep that chose att and att_mh's defaults: regressive MSE on y_w.

    python benchmarks/att_sweep.py                    # both stages, seeds 0 and 1 (about 25 min on 1 core)
    python benchmarks/att_sweep.py --stage 2          # the runs around the defaults
    python benchmarks/att_sweep.py --configs 17 18 --seeds 0 --epochs 5   # a quick look

Each config is one `python train.py --model ... --dataset y_w --split random` run (the log's
protocol, named explicitly so the table does not move with train.py's default; 50 epochs unless
--epochs), then forecast.py's batch and regressive forecasts over the whole series (predict_rate
1, RUN/forecasts/y_w_log/). Printed: val_mse_last (normalised), mse_batch and mse_regressive in
(ug/m^3)^2, averaged over the seeds, and the regressive MSE of each seed. The noise floor of y_w
is about 1060-1095 (../shared/data/README.md); the log's attention runs reached about 1100-1170
regressive MSE and its lstm about 1500. Needs the formaldehyde series in the data directory.
"""
import os
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402
import sweep  # noqa: E402
from forecast import load  # noqa: E402
from log_protocol import evaluate  # noqa: E402

# Every run starts from BASE, the models' defaults (spelled out, so the sweep does not move when
# defaults change), and overrides a few options. Stage 1 changed one thing at a time around
# lr 0.003; its best change was lr 0.001, which became the default, and stage 2 varies around it.
BASE = {"att_mh": ["--d_model", "64", "--n_heads", "4", "--kv_heads", "2", "--pe_type", "rope", "--pe_on", "input",
                   "--in_ln", "false", "--q_ln", "false", "--k_ln", "false", "--causal", "true", "--lr", "0.001"],
        "att": ["--d_model", "64", "--pe_type", "rope", "--pe_on", "input", "--in_ln", "false", "--q_ln", "false",
                "--k_ln", "false", "--causal", "true", "--lr", "0.001"],
        "lstm": []}
LR1 = ["--lr", "0.003"]
CONFIGS = [  # (stage, model, options)
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


def run(model, extra, seed, epochs, out_dir):
    argv = ["--model", model, "--dataset", "y_w", "--split", "random", "--seed", str(seed),
            "--out_dir", out_dir] + BASE[model] + extra + (["--epochs", str(epochs)] if epochs else [])
    t0 = time.perf_counter()
    run_dir = sweep.run_one(argv + ["--no_forecast"], None)  # one training, as train.py runs it
    m = runs.read_json(os.path.join(run_dir, "metrics.json"))
    f = evaluate(load(run_dir))
    return m["val_mse_last"], f["mse_batch"], f["mse_regressive"], f["regressive_path"], time.perf_counter() - t0


def main():
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, nargs="*", help="indices into CONFIGS (default: all)")
    parser.add_argument("--stage", type=int, default=None, help="only the configs of this stage (1 or 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="(default: the model's, 50)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bad = [i for i in args.configs or [] if not 0 <= i < len(CONFIGS)]
    if bad:
        parser.error(f"--configs {bad[0]}: expected an index from 0 to {len(CONFIGS) - 1}")
    chosen = args.configs if args.configs else [i for i, c in enumerate(CONFIGS) if args.stage in (None, c[0])]
    print(f"y_w, split random, seeds {args.seeds}, {torch.get_num_threads()} threads")
    print("| # | stage | model | options | val_mse_last | mse_batch | mse_regressive | per seed | path | s per run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for i in chosen:
            stage, model, extra = CONFIGS[i]
            rows = [run(model, extra, s, args.epochs, out) for s in args.seeds]
            mean = [sum(r[k] for r in rows) / len(rows) for k in range(3)]
            seeds = " / ".join(f"{r[2]:.0f}" for r in rows)
            secs = sum(r[4] for r in rows) / len(rows)
            print(f"| {i} | {stage} | {model} | {' '.join(extra) or 'defaults'} | {mean[0]:.4f} | {mean[1]:.0f} | "
                  f"{mean[2]:.0f} | {seeds} | {rows[0][3]} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
