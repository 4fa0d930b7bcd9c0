"""The table a reader should trust: every model family on data it never saw, beside naive and linear.

    python benchmarks/honest.py                    # 8 families x 3 norms x 4 series x 3 seeds, writes docs/RESULTS.md's section
    python benchmarks/honest.py --quick            # one seed, 2 epochs, y_w only: checks the pipeline
    python benchmarks/honest.py --norm global      # one norm only
    python benchmarks/honest.py --out_dir runs/honest-a   # again later: finished runs are reused

A long run can be done in parts: given an --out_dir that an earlier honest.py wrote, the runs
already finished there are reused (and counted) when the code that trains them (train.py, data/,
models/) is unchanged, and only the missing ones are trained; if that code changed, it is
a one-line error, so one table never mixes two versions of a model. The backtests are always
recomputed.

Each family at its default configuration (the research log's setting for it) is trained under the
default protocol (--split chrono: train/validation/test 70/10/20 in time, statistics from the
training part, the best validation epoch kept), then backtested on the test part with
forecast.backtest at horizon 96: from every origin the model sees the true history and forecasts
96 steps, feeding its forecasts back. The table gives MASE at step 1 and at step 96 (mean and
standard deviation over seeds), so "does it beat persistence" is read off directly: naive's MASE,
and 1 for the one-step naive forecast on the training part. Every family runs under each --norm
(global, last, revin); a table of validation errors (val_mse_last, global z units, the same for
every norm) is what chooses the default norm: the test part chooses nothing. Interval coverage is
given fixed (validation part) and adaptive (adaptive conformal inference). The section between the markers
`<!-- honest:start -->` and `<!-- honest:end -->` of docs/RESULTS.md is replaced (added if absent);
the rest of the file is the log's reproduction (benchmarks/report.py) and is left as it is.
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import config  # noqa: E402
import forecast  # noqa: E402
import runs  # noqa: E402
import sweep  # noqa: E402
from benchmarks.speed import cpu_name  # noqa: E402
from benchmarks.tables import cell, code_digest, place_section, reusable, table  # noqa: E402
from data.download import FILES, LOG_SERIES, default_data_dir  # noqa: E402
from models.norm import NORMS  # noqa: E402

FAMILIES = ["naive", "linear", "lstm", "att_mh", "vqlnmlp", "vqlnpemlp", "mhvqlnmlp_rope", "cvqlnmlp"]
DATASETS = ["y_w", "w_y", "4single", "membrane"]
HORIZON = 96
START, END = "<!-- honest:start -->", "<!-- honest:end -->"


def run_key(argv):
    """(model, dataset, norm, seed) of one of main()'s training commands."""
    return argv[1], argv[3], argv[7], argv[5]


def config_key(config):
    """run_key of the run a config.json describes."""
    return config["model"], config["dataset"], config.get("norm", "global"), str(config["seed"])


def mean_ranks(val, norms, families, datasets):
    """Per norm, its mean rank (1 best) by validation error over every (family, series); norms
    with equal errors share the mean of their ranks (naive's errors are the same under every norm)."""
    ranks = {n: [] for n in norms}
    for m in families:
        for d in datasets:
            error = {n: statistics.mean(val[(m, n, d)]) for n in norms}
            for n in norms:
                below = sum(error[o] < error[n] for o in norms)
                equal = sum(error[o] == error[n] for o in norms)
                ranks[n].append(below + (equal + 1) / 2)
    return {n: statistics.mean(r) for n, r in ranks.items()}


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 2 epochs, y_w only")
    parser.add_argument("--seeds", default="0,1,2", help="comma list")
    parser.add_argument("--norm", default=",".join(NORMS), help=f"comma list of {', '.join(NORMS)}")
    parser.add_argument("--models", default=",".join(FAMILIES), help="comma list of model families")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one thread each")
    parser.add_argument("--out_dir", default=None, help="where the runs go (default: runs/honest-{timestamp})")
    parser.add_argument("--results", default=os.path.join(ROOT, "docs", "RESULTS.md"),
                        help="the markdown file whose honest section is replaced")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        runs.fail("honest.py", f"--jobs must be at least 1, got {args.jobs}")
    if not all(s.strip().isdigit() for s in args.seeds.split(",")):
        runs.fail("honest.py", f"--seeds {args.seeds!r}: expected a comma list of whole numbers, e.g. 0,1,2")
    norms = args.norm.split(",")
    if not norms or not set(norms) <= set(NORMS):
        runs.fail("honest.py", f"--norm {args.norm!r}: expected a comma list of {', '.join(NORMS)}")
    families = args.models.split(",")
    unknown = [m for m in families if m not in FAMILIES]
    if unknown:
        runs.fail("honest.py", f"--models {args.models!r}: expected a comma list of {', '.join(FAMILIES)}")
    seeds = ["0"] if args.quick else args.seeds.split(",")
    have = all(os.path.isfile(os.path.join(default_data_dir(), FILES[n][0])) for n in LOG_SERIES)
    datasets = (["y_w"] if args.quick else DATASETS) if have else ["membrane"]
    out = args.out_dir or os.path.join(ROOT, "runs", time.strftime("honest-%Y-%m-%d-%H-%M-%S"))
    commands = [["--model", m, "--dataset", d, "--seed", s, "--norm", n, "--out_dir", out, "--no_forecast"]
                + (["--epochs", "2"] if args.quick else []) for d in datasets for n in norms for m in families
                for s in seeds]
    t0 = time.perf_counter()
    before = reusable(out, {"code": code_digest(), "quick": args.quick}, config_key, "honest.py")
    reused = [(c, before[run_key(c)]) for c in commands if run_key(c) in before]
    todo = [c for c in commands if run_key(c) not in before]
    print(f"{len(commands)} trainings: {len(reused)} reused from {out}, {len(todo)} to train", flush=True)
    done, failed = sweep.run_sweep(todo, args.jobs, log=lambda s: print(s, flush=True))
    done = reused + done
    if failed:
        runs.fail("honest.py", f"{len(failed)} trainings failed, the first: {failed[0][1]} (the finished ones are "
                  f"reused when you run it again with --out_dir {out})", status=1)
    scores, curves, val, trained_seconds = {}, {}, {}, 0.0
    for argv, run_dir in done:
        key = (argv[1], argv[7], argv[3])                            # model, norm, dataset
        run = forecast.load(run_dir)
        horizon = min(HORIZON, len(run.z) - run.val_end)
        result = forecast.backtest(run, horizon)
        mase = result["by_step"]["model"]["mase"]
        scores.setdefault(key, []).append((mase[0], mase[-1], result["interval"]["coverage"],
                                           result["interval_adaptive"]["coverage"]))
        curves.setdefault(key, []).append(mase)
        metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
        val.setdefault(key, []).append(metrics["val_mse_last"])
        trained_seconds += metrics["seconds"]
    minutes = (time.perf_counter() - t0) / 60
    parts = (f"{minutes:.1f} minutes" if not reused else
             f"{minutes:.1f} minutes for the {len(todo)} trained by this call and the backtests, the other "
             f"{len(reused)} reused from earlier calls in the same folder")

    rows = [(m, n) for m in families for n in norms]
    lines = table(["model", "norm"] + [f"{d} MASE {h}" for d in datasets for h in ("h1", f"h{HORIZON}")],
                  [[m, n] + [cell([x[i] for x in scores[(m, n, d)]]) for d in datasets for i in (0, 1)]
                   for m, n in rows]).splitlines()
    cover = table(["model", "norm"] + [f"{d} {kind}" for d in datasets for kind in ("fixed", "adaptive")],
                  [[m, n] + [f"{statistics.mean(x[i] for x in scores[(m, n, d)]):.0%}" for d in datasets
                             for i in (2, 3)] for m, n in rows])
    validation = table(["model", "norm"] + [f"{d} val_mse_last" for d in datasets],
                       [[m, n] + [cell(val[(m, n, d)]) for d in datasets] for m, n in rows])
    ranks = mean_ranks(val, norms, families, datasets)
    chosen = min(norms, key=lambda n: ranks[n])
    rank_line = ", ".join(f"{n} {ranks[n]:.2f}" for n in norms)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(norms), len(datasets), figsize=(4.5 * len(datasets), 3.6 * len(norms)),
                             squeeze=False)
    for row, n in zip(axes, norms):
        for ax, d in zip(row, datasets):
            for m in families:
                mean = np.mean(curves[(m, n, d)], axis=0)
                ax.plot(np.arange(1, len(mean) + 1), mean, label=m, ls="--" if m == "naive" else "-",
                        color="black" if m == "naive" else None)
            ax.set_title(f"{d}, --norm {n}")
            ax.set_xlabel("steps ahead")
            ax.set_ylabel("test MASE (mean over seeds)")
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    png_dir = os.path.dirname(os.path.abspath(args.results))
    png = os.path.join(png_dir, "results_honest_horizon.png")
    runs.write_atomic(png, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)

    cpu = cpu_name()
    section = f"""{START}
## On data the models never saw (the default protocol): trust this table

Generated by `python benchmarks/honest.py` on {time.strftime('%Y-%m-%d')}: {len(done)} trainings
({', '.join(families)} at their default configuration, which is the log's setting for each, under
--norm {', '.join(norms)}; seeds {', '.join(seeds)}{'; --quick: 2 epochs' if args.quick else ''}), {parts}, with `--jobs
{args.jobs}` on a {os.cpu_count()}-core {cpu} machine (the trainings' own times add up to
{trained_seconds / 60:.0f} minutes). Each series is cut in time into train,
validation and test (70/10/20); statistics come from the training part, validation chooses the
epoch, and the test part is only read here: a rolling-origin backtest that forecasts {HORIZON}
steps from every origin (fewer where the test part is shorter), feeding forecasts back. MASE is
the mean absolute error over the mean absolute error of the one-step naive forecast on the
training part: below naive's number the model beats persistence at that horizon. Cells: mean ±
sample standard deviation over seeds.

{chr(10).join(lines)}

Error against steps ahead, every family, one row per norm, mean over seeds (naive dashed):
![test MASE against horizon](results_honest_horizon.png)

80% conformal interval coverage on the test part, mean over seeds: fixed (calibrated on the
validation part) and adaptive (adaptive conformal inference, gamma {config.ACI_GAMMA}: the level moves with
the errors observed before each origin). Step h of an origin is observed h values later, so on a
test part only a little longer than the horizon the far steps see few outcomes and stay near the
fixed interval: adaptive cannot learn what the test part has not yet shown.

{cover}

Validation error (val_mse_last of the chosen epoch, global z units, the same for every norm) that
chooses the default norm under --split chrono; the test part chooses nothing. Mean rank of each
norm over every family and series (1 best): {rank_line}; validation chooses `{chosen}`.

{validation}

Unlike the tables below, which follow the log's protocol (random split of overlapping windows,
scored over the whole series), these numbers are forecasts of data no model saw in training or
selection. This is the table to trust.
{END}"""
    text = open(args.results).read() if os.path.isfile(args.results) else "# Results\n"
    text = place_section(text, section, START, END)
    runs.write_atomic(args.results, lambda tmp: open(tmp, "w").write(text))
    print("\n".join(lines))
    print(f"\n{cover}\n\n{validation}\nmean validation rank: {rank_line}; validation chooses {chosen}")
    print(f"\n{len(done)} trainings ({len(reused)} reused), {minutes:.1f} min -> {args.results}, {png}")


if __name__ == "__main__":
    main()
