"""The field's yardstick: every family on ETTh1 and ETTh2, 96 to 720 steps ahead, beside published numbers.

    python benchmarks/ett.py                                   # the whole table into docs/RESULTS.md
    python benchmarks/ett.py --datasets ETTh1 --models naive,linear   # a part of it
    python benchmarks/ett.py --out_dir runs/ett-A              # again: what is finished there is reused
    python benchmarks/ett.py --quick                           # naive and linear, 96 steps, into its out_dir

The univariate setting of the field's long-horizon benchmark (Zhou et al., Informer, AAAI 2021):
the oil temperature `OT` of ETTh1 and ETTh2, the field's split (hours 0-8640 train, 8640-11520
validate, 11520-14400 test; statistics from the training part), errors in units of the training
part's standard deviation (`mse_normalised`, `mae_normalised` of forecast.py's metrics.json),
averaged over every step 1..H and every origin. Each family is trained by train.py at its own
settings but 10 epochs (8304 windows an epoch at time_steps 336: about 2600 Adam steps, more than
the log's 50 epochs on its 700-value series), the best validation epoch kept, with two input
lengths: 336 (the field's linear baselines) and the family's own default (the log's 96; lstm 112);
three seeds where a model has one (naive and least squares have nothing random). The norm is the
default under --split chrono (revin), and linear runs under all three norms: global is the field's
Linear, last its NLinear. Every model forecasts one step and feeds it back (models/rollout.py).

Two estimates per cell. The field's: every origin whose H targets lie in the test part (--stride 1,
2881 - H origins), computed for the models that forecast cheaply enough (naive, linear, and the
pointwise VQ families, whose fed-back forecast needs only the window's last position:
forecast.py --kv_cache on); lstm and att_mh recompute a whole window per step, so they get the
default stride's ~100 origins only (marked in the table). Both estimates are in the JSON and the
docs say how far apart they are where both exist.

The classical forecasters (ETS, ARIMA and Theta from statsmodels: benchmarks/classical.py) score the
same origins when statsmodels is installed (pip install -r benchmarks/requirements.txt).

In parts: --out_dir keeps the trainings (reused while train.py, data/ and models/ are unchanged;
otherwise a one-line error), the backtests (scores.json, redone where forecast.py's code changed)
and the classical scores; the table is made from everything the folder holds, so a part's table
shows dashes where the rest is missing. The section between `<!-- ett:start -->` and
`<!-- ett:end -->` of docs/RESULTS.md is replaced, and docs/results_ett.png redrawn.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import forecast  # noqa: E402
import models  # noqa: E402
import runs  # noqa: E402
import sweep  # noqa: E402
from benchmarks.speed import cpu_name  # noqa: E402
from benchmarks.tables import cell, code_digest, finished_runs, reusable, table, write_section  # noqa: E402
from data import FIELD_SPLITS, load_series  # noqa: E402
from models.rollout import pointwise  # noqa: E402

FAMILIES = ["naive", "linear", "lstm", "att_mh", "vqlnmlp", "vqlnpemlp", "mhvqlnmlp_rope", "cvqlnmlp"]
DATASETS = list(FIELD_SPLITS)
HORIZONS = [96, 192, 336, 720]
INPUTS = ["336", "default"]       # time_steps: the field's linear baselines', and each family's own
LINEAR_NORMS = ["global", "last", "revin"]  # the field's Linear and NLinear, and the default
EPOCHS = 10
SEEDS = "0,1,2"
START, END = "<!-- ett:start -->", "<!-- ett:end -->"
FORECAST_CODE = ("forecast.py", "scoring.py")  # with models/ (rollout, norm): what a backtest's numbers depend on

# Published univariate results (target OT, input 336 unless said), normalised MSE and MAE by horizon.
# Zeng et al., "Are Transformers Effective for Time Series Forecasting?", AAAI 2023 (arXiv 2205.13504),
# Table 9 (appendix); Nie et al., "A Time Series is Worth 64 Words", ICLR 2023 (arXiv 2211.14730),
# Table 8 (appendix), which reprints Zeng's DLinear row. PatchTST/64 reads 512 values, /42 reads 336.
PUBLISHED = {
    "DLinear": {"ETTh1": [(0.056, 0.180), (0.071, 0.204), (0.098, 0.244), (0.189, 0.359)],
                "ETTh2": [(0.131, 0.279), (0.176, 0.329), (0.209, 0.367), (0.276, 0.426)]},
    "NLinear": {"ETTh1": [(0.053, 0.177), (0.069, 0.204), (0.081, 0.226), (0.080, 0.226)],
                "ETTh2": [(0.129, 0.278), (0.169, 0.324), (0.194, 0.355), (0.225, 0.381)]},
    "PatchTST/42": {"ETTh1": [(0.055, 0.179), (0.071, 0.205), (0.081, 0.225), (0.087, 0.232)],
                    "ETTh2": [(0.129, 0.282), (0.168, 0.328), (0.185, 0.351), (0.224, 0.383)]},
    "PatchTST/64": {"ETTh1": [(0.059, 0.189), (0.074, 0.215), (0.076, 0.220), (0.087, 0.236)],
                    "ETTh2": [(0.131, 0.284), (0.171, 0.329), (0.171, 0.336), (0.223, 0.380)]},
}
CITED = {"DLinear": "Zeng et al. 2023, Table 9", "NLinear": "Zeng et al. 2023, Table 9",
         "PatchTST/42": "Nie et al. 2023, Table 8", "PatchTST/64": "Nie et al. 2023, Table 8"}


# ---------------------------------------------------------------- trainings

def variants(families, inputs, seeds):
    """(model, norm, time_steps text, seed) of every training, in the table's order."""
    out = []
    for m in families:
        norms = LINEAR_NORMS if m == "linear" else ["revin"]
        for n in norms:
            for t in inputs[:1] if m == "naive" else inputs:  # naive reads the last value only
                if m == "linear" and n != "revin" and t != "336":
                    continue  # the field's Linear and NLinear read 336 values
                for s in (["0"] if m in ("naive", "linear") else seeds):
                    out.append((m, n, t, s))
    return out


def time_steps(model, inputs):
    return str(models.get(model).train_defaults["time_steps"]) if inputs == "default" else inputs


def command(model, dataset, norm, steps, seed, epochs, out):
    return ["--model", model, "--dataset", dataset, "--norm", norm, "--time_steps", steps, "--seed", seed,
            "--epochs", str(epochs), "--out_dir", out, "--no_forecast"]


def run_key(argv):
    """(model, dataset, norm, time_steps, seed) of a training command."""
    return tuple(argv[i] for i in (1, 3, 5, 7, 9))


def config_key(config):
    return (config["model"], config["dataset"], config["norm"], str(config["time_steps"]), str(config["seed"]))


# ---------------------------------------------------------------- backtests

def cheap(run):
    """Whether the field's every-origin estimate is affordable: no network, or one that forecasts
    from the window's last position alone."""
    return run.config["model"] in ("naive", "linear") or pointwise(run.model)


def scores_of(run_dir, horizons):
    """{"H{h}_default" or "H{h}_stride1": numbers} of one run's backtests (no intervals). Default: every
    s-th origin, s forecast.py's default stride at the smallest horizon (about 100 origins there, fewer
    at longer ones), so that one rollout of the longest horizon from each serves every horizon."""
    run = forecast.load(run_dir)
    kv = "on" if pointwise(run.model) else "auto"
    default = forecast.backtest_origins(run, min(HORIZONS[0], horizons[0]))[1]  # the same for any part of the table
    found = {}
    for stride in (default, 1) if cheap(run) else (default,):
        t0 = time.perf_counter()
        union = forecast.backtest_origins(run, horizons[0], stride)[0]
        pred = forecast.rollout(run, union, horizons[-1], kv)
        row = {o: i for i, o in enumerate(union)}
        made = lambda origins: pred[[row[o] for o in origins]]  # noqa: E731
        seconds = time.perf_counter() - t0
        for h in horizons:
            r = forecast.backtest(run, h, stride=stride, level=None, kv_cache=kv, forecasts=made)
            m = r["metrics"]
            found[f"H{h}_{'stride1' if stride == 1 else 'default'}"] = {
                "mse_normalised": m["model"]["mse_normalised"], "mae_normalised": m["model"]["mae_normalised"],
                "naive_mse_normalised": m["naive"]["mse_normalised"],
                "naive_mae_normalised": m["naive"]["mae_normalised"],
                "mase": m["model"]["mase"], "stride": r["stride"], "n_origins": len(r["origins"]),
                "rollout_seconds": seconds}
    return found


def backtests(found, horizons, out, log):
    """{run key: scores} of the finished runs found ({key: run_dir}), from out/scores.json where the
    code a backtest runs is unchanged, else computed (and saved after each run, so an interrupted call
    keeps what it did)."""
    path, digest = os.path.join(out, "scores.json"), code_digest(FORECAST_CODE)
    saved = runs.read_json(path) if os.path.isfile(path) else {}
    if saved.get("code") != digest:
        saved = {"code": digest, "runs": {}}
    results = {}
    for k, (key, run_dir) in enumerate(sorted(found.items()), 1):
        rel = os.path.relpath(run_dir, out)
        have = saved["runs"].get(rel, {})
        missing = [h for h in horizons if f"H{h}_default" not in have]
        if missing:
            t0 = time.perf_counter()
            have.update(scores_of(run_dir, missing))
            saved["runs"][rel] = have
            runs.write_json(path, saved)
            log(f"[{k}/{len(found)}] backtests of {rel}: {time.perf_counter() - t0:.0f} s")
        results[key] = have
    return results


# ---------------------------------------------------------------- classical forecasters

def classical_scores(datasets, horizons, out, log):
    """{(method, dataset): {"H{h}_...": numbers}} from benchmarks/classical.py on the same origins, or
    None where statsmodels is not installed. Kept in out/classical.json."""
    try:
        from benchmarks import classical
    except ImportError as e:
        log(f"classical forecasters left out ({e}): pip install -r benchmarks/requirements.txt")
        return None
    path = os.path.join(out, "classical.json")
    saved = runs.read_json(path) if os.path.isfile(path) else {}
    stamp = classical.stamp()
    if saved.get("stamp") != stamp:
        saved = {"stamp": stamp, "scores": {}}
    for d in datasets:
        key = d
        have = saved["scores"].get(key, {})
        missing = [h for h in horizons if not all(f"{meth}|H{h}_stride1" in have for meth in classical.METHODS)]
        if missing:
            t0 = time.perf_counter()
            have.update(classical.field_scores(d, missing))
            saved["scores"][key] = have
            runs.write_json(path, saved)
            log(f"classical forecasters on {d}: {time.perf_counter() - t0:.0f} s")
    found = {}
    for d, have in saved["scores"].items():
        for name, value in have.items():
            meth, tag = name.split("|")
            found.setdefault((meth, d), {})[tag] = value
    return found


# ---------------------------------------------------------------- the table

def estimate(scores, h):
    """(mse, mae, field) of one run at horizon h: the every-origin estimate where it was computed."""
    s = scores.get(f"H{h}_stride1")
    if s:
        return s["mse_normalised"], s["mae_normalised"], True
    s = scores.get(f"H{h}_default")
    return (s["mse_normalised"], s["mae_normalised"], False) if s else (None, None, True)


def rows_of(scored, classical, dataset, horizons, families, inputs):
    """[(label, [cell per horizon and metric], field estimate everywhere)] for one data set."""
    rows = []
    for m in families:
        for n in (LINEAR_NORMS if m == "linear" else ["revin"]):
            for t in inputs:
                steps = time_steps(m, t)
                found = [v for k, v in scored.items() if k[:4] == (m, dataset, n, steps)]
                if not found or (m == "linear" and n != "revin" and t != "336"):
                    continue
                cells, field = [], True
                for h in horizons:
                    est = [estimate(v, h) for v in found]
                    field &= all(e[2] for e in est)
                    cells += [cell([e[0] for e in est]), cell([e[1] for e in est])]
                label = m if m != "naive" else "naive (the last value)"
                label += "" if m == "naive" else f", T {steps}" + (f", {n}" if m == "linear" else "")
                rows.append((label, cells, field))
    for meth, d in sorted(classical or {}):
        if d == dataset:
            s = classical[(meth, d)]
            cells = [cell([s[f"H{h}_stride1"][k]]) if f"H{h}_stride1" in s else "-"
                     for h in horizons for k in ("mse_normalised", "mae_normalised")]
            rows.append((f"{meth} (statsmodels)", cells, True))
    for name, by_data in PUBLISHED.items():
        cells = []
        for h in horizons:
            pair = by_data[dataset][HORIZONS.index(h)] if h in HORIZONS else None
            cells += [f"{pair[0]:.3f}", f"{pair[1]:.3f}"] if pair else ["-", "-"]
        rows.append((f"{name} (published: {CITED[name]})", cells, True))
    return rows


def stride_gap(scored, dataset, horizons):
    """Per horizon, the default stride's estimate over the every-origin one (MSE), over every run that
    has both: (median ratio, smallest, largest, runs)."""
    gaps = {}
    for key, s in scored.items():
        if key[1] != dataset:
            continue
        for h in horizons:
            a, b = s.get(f"H{h}_default"), s.get(f"H{h}_stride1")
            if a and b and b["mse_normalised"] > 0:
                gaps.setdefault(h, []).append(a["mse_normalised"] / b["mse_normalised"])
    return {h: (float(np.median(v)), min(v), max(v), len(v)) for h, v in gaps.items()}


def plot(scored, classical, datasets, horizons, path):
    """Normalised MSE against H per data set: one line per family at T 336 (naive dashed), classical
    dotted, published points marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.4), squeeze=False)
    markers = {"DLinear": "x", "NLinear": "+", "PatchTST/42": "o", "PatchTST/64": "s"}
    for ax, d in zip(axes[0], datasets):
        naive = [v for k, v in scored.items() if k[:2] == ("naive", d)]
        top = 3 * max((estimate(v, h)[0] or 0 for v in naive for h in horizons), default=0) or None
        for m in FAMILIES:
            norms = ["global", "revin"] if m == "linear" else ["revin"]
            for n in norms:
                found = [v for k, v in scored.items() if k[:4] == (m, d, n, "336")]
                if not found:
                    continue
                y = [np.mean([e for e in (estimate(v, h)[0] for v in found) if e is not None] or [np.nan])
                     for h in horizons]
                dashed = m == "naive"
                above = top and np.nanmax(y) > top  # a forecast that diverged: off the scale, said in the legend
                ax.plot(horizons, y, ls="--" if dashed else "-", marker="." if not dashed else None,
                        color="black" if dashed else None,
                        label=("naive" if dashed else m + (f" ({n})" if m == "linear" else "")) + (" (above)" if above else ""))
        for (meth, dd), s in sorted((classical or {}).items()):
            if dd == d:
                ax.plot(horizons, [s.get(f"H{h}_stride1", {}).get("mse_normalised", np.nan) for h in horizons],
                        ls=":", marker=".", label=meth)
        for name, by_data in PUBLISHED.items():
            ax.scatter([h for h in horizons if h in HORIZONS],
                       [by_data[d][HORIZONS.index(h)][0] for h in horizons if h in HORIZONS],
                       marker=markers[name], color="grey", s=40, label=f"{name} (published)", zorder=3)
        ax.set_title(f"{d} (OT), test part, input 336")
        ax.set_xlabel("H: steps ahead")
        ax.set_ylabel("MSE over steps 1..H (training part's std units)")
        ax.set_yscale("log")
        if top:
            ax.set_ylim(top=top)  # three times naive's largest error
        ax.set_xticks(horizons)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def section(scored, classical, args, horizons, families, inputs, datasets, calls, png):
    head = ["model"] + [f"{h} {k}" for h in horizons for k in ("MSE", "MAE")]
    parts = []
    for d in datasets:
        rows = rows_of(scored, classical, d, horizons, families, inputs)
        parts.append(f"**{d}** (input length T; cells: mean ± sample std over seeds; † the default stride's "
                     f"~100 origins, elsewhere every origin)\n\n"
                     + table(head, [[label + ("" if field else " †")] + cells for label, cells, field in rows]))
        gap = stride_gap(scored, d, horizons)
        if gap:
            parts.append(f"{d}: the default stride's MSE over the every-origin MSE, median over the "
                         f"{max(g[3] for g in gap.values())} runs that have both (smallest, largest): "
                         + "; ".join(f"H {h}: {g[0]:.3f} ({g[1]:.3f}, {g[2]:.3f})" for h, g in sorted(gap.items())))
    seconds = sum(c["seconds"] for c in calls)
    trained = sum(c["trained"] for c in calls)
    cpu = calls[-1]["machine"] if calls else cpu_name()
    return f"""{START}
## The field's yardstick: ETTh1 and ETTh2, 96 to 720 steps ahead

Generated by `python benchmarks/ett.py` ({'; '.join(f"{c['date']}: {c['trained']} trainings, {c['seconds'] / 60:.0f} min"
                                             for c in calls)}; {trained} trainings and their backtests in
{seconds / 60:.0f} minutes of wall time in all, `--jobs {args.jobs}`, on {cpu}). The univariate setting
(target `OT`), the field's split (8640 hours train, 2880 validate, 2880 test; statistics from the
training part), errors in units of the training part's standard deviation averaged over every step
1..H and every origin: the numbers the field's tables print. Each family at its own settings but
{args.epochs} epochs (best validation epoch kept), --norm revin (linear: all three; global is the
field's Linear, last its NLinear); seeds {args.seeds} where a model has one. Every model here
forecasts one step and feeds it back; the published models forecast all H steps at once.

{chr(10).join(chr(10) + p for p in parts)}

![normalised MSE against H](results_ett.png)
{END}"""


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}")
    parser.add_argument("--models", default=None, help=f"comma list of {', '.join(FAMILIES)} (default: all; "
                        f"--quick: naive,linear)")
    parser.add_argument("--inputs", default=",".join(INPUTS),
                        help="comma list of input lengths: 336 and/or default (each family's own)")
    parser.add_argument("--horizons", default=",".join(map(str, HORIZONS)), help="comma list of steps ahead")
    parser.add_argument("--seeds", default=SEEDS, help=f"comma list of seeds (default {SEEDS})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of each training (default {EPOCHS})")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one thread each (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="ETTh1, input 336, 96 steps, seed 0, 1 epoch (naive and linear unless --models), no "
                             "classical forecasters, the table into OUT_DIR/RESULTS.md: checks the pipeline in a minute")
    parser.add_argument("--no_classical", action="store_true", help="leave out ETS, ARIMA and Theta")
    parser.add_argument("--out_dir", default=None, help="where the runs go (default: runs/ett-{timestamp})")
    parser.add_argument("--results", default=None,
                        help="the markdown file whose ett section is replaced (default docs/RESULTS.md; --quick: "
                             "OUT_DIR/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.inputs, args.horizons, args.seeds, args.epochs = "ETTh1", "336", "96", "0", 1
        args.models, args.no_classical = args.models or "naive,linear", True
    args.models = args.models or ",".join(FAMILIES)
    lists = {}
    for name, valid in (("datasets", DATASETS), ("models", FAMILIES), ("inputs", INPUTS)):
        lists[name] = getattr(args, name).split(",")
        bad = [v for v in lists[name] if v not in valid]
        if bad or not lists[name]:
            runs.fail("ett.py", f"--{name} {getattr(args, name)!r}: expected a comma list of {', '.join(valid)}")
    if not all(h.strip().isdigit() and int(h) > 0 for h in args.horizons.split(",")):
        runs.fail("ett.py", f"--horizons {args.horizons!r}: expected a comma list of whole numbers, e.g. 96,192")
    if not all(s.strip().lstrip("-").isdigit() for s in args.seeds.split(",")):
        runs.fail("ett.py", f"--seeds {args.seeds!r}: expected a comma list of whole numbers, e.g. 0,1,2")
    if args.jobs < 1 or args.epochs < 1:
        runs.fail("ett.py", f"--jobs {args.jobs} --epochs {args.epochs}: each must be at least 1")
    horizons = sorted({int(h) for h in args.horizons.split(",")})
    datasets, families, inputs = lists["datasets"], lists["models"], lists["inputs"]
    seeds = args.seeds.split(",")
    try:
        for d in datasets:  # the data are there before anything is trained
            load_series(d)
    except runs.UsageError as e:
        runs.fail("ett.py", e)

    out = args.out_dir or os.path.join(ROOT, "runs", time.strftime("ett-%Y-%m-%d-%H-%M-%S"))
    args.results = args.results or (os.path.join(out, "RESULTS.md") if args.quick else
                                    os.path.join(ROOT, "docs", "RESULTS.md"))  # a check never writes into docs/
    t0 = time.perf_counter()
    before = reusable(out, {"code": code_digest(), "epochs": args.epochs}, config_key, "ett.py")
    commands = [command(m, d, n, time_steps(m, t), s, args.epochs, out)
                for d in datasets for m, n, t, s in variants(families, inputs, seeds)]
    reused = [(c, before[run_key(c)]) for c in commands if run_key(c) in before]
    todo = [c for c in commands if run_key(c) not in before]
    log = lambda line: print(line, flush=True)  # noqa: E731
    log(f"{len(commands)} trainings: {len(reused)} reused from {out}, {len(todo)} to train")
    done, failed = sweep.run_sweep(todo, args.jobs, log=log)
    if failed:
        runs.fail("ett.py", f"{len(failed)} trainings failed, the first: {failed[0][1]} (the finished ones are "
                  f"reused when you run it again with --out_dir {out})", status=1)
    everything = finished_runs(out, config_key)  # this call's and earlier parts': the table shows them all
    scored = backtests(everything, horizons, out, log)
    classical = None if args.no_classical else classical_scores(datasets, horizons, out, log)

    calls_path = os.path.join(out, "calls.json")
    calls = runs.read_json(calls_path)["calls"] if os.path.isfile(calls_path) else []
    calls.append({"date": time.strftime("%Y-%m-%d"), "trained": len(done), "seconds": time.perf_counter() - t0,
                  "machine": f"a {os.cpu_count()}-core {cpu_name()}"})
    runs.write_json(calls_path, {"calls": calls})
    all_data = [d for d in DATASETS if any(k[1] == d for k in scored)]
    png = os.path.join(os.path.dirname(os.path.abspath(args.results)), "results_ett.png")
    plot(scored, classical, all_data, horizons, png)
    text = section(scored, classical, args, horizons, FAMILIES, INPUTS, all_data, calls, png)
    write_section(args.results, text, START, END, before="\n## Noise floors")
    print(text.replace(START, "").replace(END, "").strip())
    log(f"\n{len(everything)} runs ({len(reused)} reused), {(time.perf_counter() - t0) / 60:.1f} min -> "
        f"{args.results}, {png}")


if __name__ == "__main__":
    main()
