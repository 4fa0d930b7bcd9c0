"""Regenerate docs/RESULTS.md: the research log's tables, our numbers beside the log's.

    python benchmarks/report.py              # the full report (needs the formaldehyde data)
    python benchmarks/report.py --quick      # a tiny version that checks the pipeline (the tests run it)
    python benchmarks/report.py --floor      # a lower bound of its time from its arithmetic; trains nothing

Trains every run of the log's tables with sweep.py's run_sweep (`--jobs 2`: two trainings at
once, one thread each) into a fresh runs/report-{timestamp}/, three seeds each. Every training
names its split: `--split random` (the log's protocol) for every table of the log, so those
numbers do not move with train.py's default, and `--split chrono` again for the comparison at
the end. chrono is train.py's three-way split in time: train on the first 70% of the series,
validate on the next 10% (model.pt is the epoch with the lowest val_mse_last; normalisation from
the training part), and the last 20% is a test part training never reads. The report's *tail*
columns forecast that same last 20% with every run, whichever split it trained under. Then it
writes docs/RESULTS.md and its plots (docs/*.png, ours). Tables: noise floors and the naive and linear baselines; 2024-12-21 (lstm, vqlnmlp,
vqlnpemlp); 2024-12-22 (the log's top-5 multi-head configurations, a reduced grid with its
parameter ranking, and a heads sweep); 2024-12-23 (positional encodings: val loss and regressive
MSE); 2025-01-06 (cross-dataset); then the chrono split. Cells are mean +- sample standard
deviation over the seeds. `--quick`: one seed, one epoch, time_steps 16, a few rows per table;
without the formaldehyde data it substitutes the embedded series and says so; it writes into its
runs directory, not docs/ (unless --out says otherwise).
"""
import datetime
import os
import platform
import resource
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import config  # noqa: E402
import forecast  # noqa: E402
import log_protocol  # noqa: E402
import models  # noqa: E402
import outputs  # noqa: E402
import runs  # noqa: E402
import sweep  # noqa: E402
from benchmarks.tables import keep_sections  # noqa: E402
from benchmarks.results import load_record, log_table, markdown, rank_table  # noqa: E402
from benchmarks.speed import machine  # noqa: E402
from data import DEFAULT_FRACTIONS, DataError, boundaries, load_series, split_series  # noqa: E402
from data.download import FILES, LOG_SERIES, default_data_dir  # noqa: E402
from models import rollout  # noqa: E402

SERIES = ("y_w", "w_y", "4single")
STAND_IN = {"y_w": "goog", "w_y": "membrane", "4single": "membrane"}  # --quick without the data
# the variance around a short moving average of the log's series (donglinkang2021/simple-sequence-prediction, data/)
NOISE_FLOOR = {"y_w": "1060-1095", "w_y": "about 1900", "4single": "1060-1190"}
SPLITS = ("random", "chrono")  # every training names its split; random is the log's
TAIL = DEFAULT_FRACTIONS[2]  # forecasts of the last 20% of the series: the chrono split's test part


def exp(label, *argv, log=None, quick=False, dataset="y_w", seeds="all", chrono=True):
    """One row of a table: train.py arguments (without seed, split, data set), the log's number."""
    return dict(label=label, argv=list(argv), log=log, quick=quick, dataset=dataset, seeds=seeds, chrono=chrono)


def baselines():
    rows = []
    for i, d in enumerate(SERIES):
        rows.append(exp(f"naive {d}", "--model", "naive", dataset=d, seeds="first", quick=i == 0))
        rows.append(exp(f"linear {d}", "--model", "linear", dataset=d))
    return rows


LOG_1221 = [
    exp("lstm (lstm_linear1, ts112, lr 0.0005)", "--model", "lstm", log=0.0137326, quick=True),
    exp("vqlnmlp vs32 dm8 (the log's caption)", "--model", "vqlnmlp", "--vocab_size", "32", "--d_model", "8",
        log=0.0260275),
    exp("vqlnmlp vs512 dm64 (our defaults)", "--model", "vqlnmlp", quick=True),
    exp("vqlnpemlp vs512 dm32 lr 0.007", "--model", "vqlnpemlp", "--d_model", "32", log=0.0262058),
    exp("vqlnpemlp vs32 dm8 lr 0.03", "--model", "vqlnpemlp", "--vocab_size", "32", "--d_model", "8",
        "--lr", "0.03", log=0.026213),
    exp("vqlnpemlp vs128 dm16 lr 0.03", "--model", "vqlnpemlp", "--vocab_size", "128", "--d_model", "16",
        "--lr", "0.03", log=0.0262191),
]


def mh(model, vs, dm, nh, lr, log=None, **kw):
    return exp(f"{model} vs{vs} dm{dm} nh{nh} lr {lr}", "--model", model, "--vocab_size", str(vs),
               "--d_model", str(dm), "--n_heads", str(nh), "--lr", str(lr), log=log, **kw)


# The log's two top-5 tables (2024-12-22), each configuration with every seed, random split only.
LOG_1222 = [mh("mhvqlnmlp", *c, chrono=False, quick=i == 0) for i, c in enumerate(
    [(768, 32, 16, 0.01, 0.024347), (64, 32, 16, 0.01, 0.0244761), (512, 32, 16, 0.007, 0.0245155),
     (256, 32, 16, 0.007, 0.0245313), (32, 32, 16, 0.003, 0.0246295)])] + \
    [mh("mhvqlnpemlp", *c, chrono=False) for c in
     [(768, 128, 16, 0.007, 0.0252554), (128, 64, 16, 0.01, 0.0252858), (128, 512, 16, 0.03, 0.0253004),
      (1024, 128, 16, 0.01, 0.02532), (768, 64, 16, 0.007, 0.0253341)]]
# A reduced grid around them (seed 0 only): our own top 5 and which options matter.
GRID_1222 = [mh("mhvqlnmlp", vs, 32, 16, lr, seeds="first", chrono=False)
             for vs in (32, 256, 768) for lr in (0.003, 0.007, 0.01)] + \
            [mh("mhvqlnpemlp", vs, dm, 16, lr, seeds="first", chrono=False)
             for vs in (128, 1024) for dm in (64, 128) for lr in (0.007, 0.01)]
GRID_TEXT = ("mhvqlnmlp: vocab_size 32, 256, 768 x lr 0.003, 0.007, 0.01 (d_model 32, n_heads 16); "
             "mhvqlnpemlp: vocab_size 128, 1024 x d_model 64, 128 x lr 0.007, 0.01 (n_heads 16)")
# The log's claims: more heads is better; without PE the val loss is lower but the regressive MSE higher.
HEADS = (1, 2, 4, 8, 16)
HEADS_CHRONO = (1, 4, 16)
HEADS_1222 = [mh(m, 512, 64, nh, 0.007, chrono=nh in HEADS_CHRONO) for m in ("mhvqlnmlp", "mhvqlnpemlp")
              for nh in HEADS]

# 2024-12-23: (family, pe column, model, n_heads, log val loss, log regressive MSE)
LOG_1223 = [
    ("vqlnmlp", "Original", "vqlnmlp", None, 0.0262299, 40395.99),
    ("vqlnmlp", "+RandnPE", "vqlnpemlp", None, 0.0263118, 37311.36),
    ("vqlnmlp", "+SinPE", "vqlnmlp_sinpe", None, 0.0263636, 43374.69),
    ("vqlnmlp", "+RoPE", "vqlnmlp_rope", None, 0.0261638, 19314.00),
    ("mhvqlnmlp", "Original", "mhvqlnmlp", 2, 0.025994, 32116.38),
    ("mhvqlnmlp", "+RandnPE", "mhvqlnpemlp", 2, 0.0261349, 19412.36),
    ("mhvqlnmlp", "+SinPE", "mhvqlnmlp_sinpe", 8, 0.0266329, 37210.76),
    ("mhvqlnmlp", "+RoPE", "mhvqlnmlp_rope", 8, 0.0255627, 65849.39),
]
PE_COLUMNS = ("Original", "+RandnPE", "+SinPE", "+RoPE")


def pe_exp(family, column, model, heads, log_loss, log_mse):
    argv = ["--model", model] + (["--n_heads", str(heads)] if heads else [])
    e = exp(f"{model}" + (f" nh{heads}" if heads else ""), *argv, log=log_loss,
            quick=model in ("vqlnmlp", "vqlnmlp_rope"))
    e.update(family=family, column=column, log_mse=log_mse)
    return e


PE_1223 = [pe_exp(*row) for row in LOG_1223]
CROSS = [exp("lstm trained on y_w", "--model", "lstm", quick=True),
         exp("lstm trained on 4single", "--model", "lstm", dataset="4single")]


TABLES = [("baselines", baselines()), ("2024-12-21", LOG_1221), ("2024-12-22", LOG_1222 + GRID_1222 + HEADS_1222),
          ("2024-12-23", PE_1223), ("2025-01-06", CROSS)]


# ---------------------------------------------------------------------------------------------
def canonical(argv):
    """--model first, then the options that differ from the model's defaults, sorted: two rows that
    ask for the same configuration (mhvqlnmlp --n_heads 2 and mhvqlnmlp) share their runs."""
    items = dict(zip(argv[::2], argv[1::2]))
    cls = models.get(items["--model"])
    defaults = {f"--{k}": v for k, v in {**models.options(cls), **cls.train_defaults}.items()}
    keep = []
    for option, text in items.items():
        if option in defaults:
            try:
                if config.parse_value(text, defaults[option]) == defaults[option]:
                    continue
            except ValueError:
                pass
        keep.append((option, text))
    keep.sort(key=lambda kv: (kv[0] != "--model", kv[0]))
    return tuple(t for kv in keep for t in kv)


def ms(values, digits=4):
    """'mean ± sd' over seeds ('-' for none)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {statistics.stdev(values):.2g}"


def mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return statistics.fmean(values) if values else float("nan")


class Report:
    def __init__(self, args):
        self.args, self.quick = args, args.quick
        if not all(s.strip().isdigit() for s in args.seeds.split(",")):
            raise runs.UsageError(f"--seeds {args.seeds!r}: expected a comma list of whole numbers, e.g. 0,1,2")
        self.seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
        self.data_dir = args.data_dir or default_data_dir()
        have = all(os.path.isfile(os.path.join(self.data_dir, FILES[n][0])) for n in LOG_SERIES)
        if not have and not args.quick:
            raise DataError(f"the full report needs the formaldehyde series in {self.data_dir} "
                            f"(python data/download.py, or --data_dir / $VQSEQ_DATA_DIR); --quick runs without them")
        self.stand_in = not have
        self.extra = ["--epochs", "1", "--time_steps", "16"] if args.quick else \
            (["--epochs", str(args.epochs)] if args.epochs else [])
        self.runs_dir = args.runs_dir or os.path.join("runs", "report-" + time.strftime("%Y-%m-%d-%H-%M-%S"))
        self.results = {}      # (key, split) -> [record per seed]
        self.skipped = []      # lines: tables or rows left out because a model is missing
        self.failed = []

    def ds(self, name):
        return STAND_IN[name] if self.stand_in else name

    def use(self, e, table):
        """Whether this row runs: in --quick only the quick rows; a missing model is reported."""
        model = e["argv"][1]
        if model not in models.names():
            self.skipped.append(f"{table}: row {e['label']} skipped, model {model} is not in models/")
            return False
        return e["quick"] or not self.quick

    def key(self, e):
        return canonical(e["argv"]) + ("--dataset", self.ds(e["dataset"]))

    def command(self, e, seed, split):
        argv = list(self.key(e)) + ["--seed", str(seed), "--split", split,
                                    "--out_dir", os.path.join(self.runs_dir, split)] + self.extra
        return argv + (["--data_dir", self.args.data_dir] if self.args.data_dir else [])

    # -- running ----------------------------------------------------------------------------
    def commands(self, tables):
        """The trainings the tables need, each once: [argv], and {argv: (row key, split)}."""
        commands, owners = [], {}
        for table, rows in tables:
            for e in rows:
                if not self.use(e, table):
                    continue
                seeds = self.seeds[:1] if e["seeds"] == "first" else self.seeds
                splits = SPLITS if e["chrono"] and (not self.quick or e["argv"][1] in ("naive", "vqlnmlp")) \
                    else SPLITS[:1]
                for split in splits:
                    for seed in seeds:
                        argv = self.command(e, seed, split)
                        if tuple(argv) not in owners:
                            owners[tuple(argv)] = (self.key(e), split)
                            commands.append(argv)
        return commands, owners

    def run(self, tables):
        commands, owners = self.commands(tables)
        print(f"report: {len(commands)} trainings, {self.args.jobs} at a time, into {self.runs_dir}", flush=True)
        done, failed = sweep.run_sweep(commands, self.args.jobs, log=lambda s: print(s, flush=True))
        self.failed = failed
        for argv, run_dir in done:
            record = load_record(run_dir)
            record["tail"] = self.tail(run_dir, record)
            self.results.setdefault(owners[tuple(argv)], []).append(record)

    def tail(self, run_dir, record):
        """Batch and regressive MSE (original units) of the last TAIL of the run's own series, and the
        regressive forecast (for plots): the chrono split's test part, which no chrono run trained on.
        The series is normalised as the run was trained (forecast.load): chrono with its training
        part's statistics, random with the whole series'."""
        run = forecast.load(run_dir)
        T, z = run.time_steps, run.z
        n = len(z) - boundaries(len(z), DEFAULT_FRACTIONS)[1]
        actual, scored = run.series.values[-n:], run.observed[-n:]
        path = rollout.regressive_path(run.model)
        out = {}
        for kind in ("batch", "regressive"):
            if kind == "batch":
                pred = log_protocol.predict_batch(run.model, z, T, n)
            else:
                pred = log_protocol.predict_regressive(run.model, z, T, n, path=path)
            pred = pred.astype(np.float64) * run.std + run.mean
            out[kind] = float(np.mean(((pred - actual) ** 2)[scored]))
        out["prediction"], out["start"] = pred, len(z) - n
        return out

    def get(self, e, split="random"):
        return self.results.get((self.key(e), split), [])

    def values(self, e, metric, split="random"):
        records = self.get(e, split)
        if metric.startswith("tail_"):
            return [r["tail"][metric[5:]] for r in records]
        return [r[metric] for r in records]

    # -- plots ------------------------------------------------------------------------------
    def compose(self, grid, row_labels, path, title):
        """One PNG of forecast.py's plots laid out as the log's image tables."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cells = [(i, j, c) for i, row in enumerate(grid) for j, c in enumerate(row) if c]
        if not cells:
            return None
        n_rows, n_cols = len(grid), max(len(r) for r in grid)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 2.1 * n_rows + 0.5), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for i, j, (png, label) in cells:
            axes[i, j].imshow(plt.imread(png))
            axes[i, j].set_title(label, fontsize=8)
        for i, label in enumerate(row_labels):
            axes[i, 0].text(-0.02, 0.5, label, transform=axes[i, 0].transAxes, ha="right", va="center",
                            rotation=90, fontsize=9)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return os.path.basename(path)

    def run_png(self, e, kind, split="random"):
        records = self.get(e, split)
        if not records:
            return None
        r = records[0]  # the first seed
        if not r["forecast_dir"]:
            return None
        return os.path.join(r["forecast_dir"], f"predict_{kind}.png"), f"{r['file']}"

    def tail_png(self, e, split, tmp):
        records = self.get(e, split)
        if not records:
            return None
        r = records[0]
        series = load_series(self.ds(e["dataset"]), None, self.args.data_dir)
        path = os.path.join(tmp, f"tail_{len(os.listdir(tmp))}.png")
        outputs.plot(series, r["tail"]["start"], r["tail"]["prediction"],
             f"{e['label']}, {split}: regressive MSE {r['tail']['regressive']:.4g}", path)
        return path, f"{split} split, seed {r['options']['seed']}"


# ---------------------------------------------------------------------------------------------
TIME = "<!-- time -->"


def write_report(rep, out_dir, tmp):
    """The markdown of RESULTS.md (with TIME where the timing goes) and its plots in out_dir."""
    q = rep.quick
    L = []
    w = L.append
    n_runs = sum(len(v) for v in rep.results.values())
    w("# Results: the research log reproduced\n")
    w(f"Generated by `python benchmarks/report.py{' --quick' if q else ''}` on "
      f"{datetime.date.today().isoformat()}; every number below is from this run. "
      f"{n_runs} trainings, seeds {', '.join(map(str, rep.seeds))} (cells: mean ± sample standard deviation "
      f"over the seeds), {'1 epoch and time_steps 16 (--quick: checks the pipeline, the numbers mean nothing)' if q else 'each model at its own training defaults (50 epochs; Adam, MSE)'}. "
      f"Runs are in `{rep.runs_dir}/` (`python benchmarks/results.py {rep.runs_dir}` tables them).\n")
    w(TIME)
    if rep.stand_in:
        w("**Stand-in data.** The formaldehyde series are not in the data directory, so this --quick report "
          f"uses {', '.join(f'{v} for {k}' for k, v in STAND_IN.items())}. The log's numbers do not apply.\n")
    for line in rep.skipped:
        w(f"**Skipped.** {line}.\n")
    if rep.failed:
        w(f"**Failed runs** ({len(rep.failed)}; their cells are empty):\n")
        for argv, reason in rep.failed:
            w(f"- `python train.py {' '.join(argv)}`: {reason}")
        w("")
    w("**Reading the numbers.** *val loss* is each model's own objective on the validation windows (all "
      "positions for the VQ models, the last one for lstm and linear: not comparable across the two); "
      "*val_mse_last* is the MSE of the value after each window for every model (normalised units); "
      "*batch* and *regressive* MSE are `forecast.py`'s one-step and fed-back forecasts in original units "
      "((ug/m³)²), over the whole series as in the log (predict_rate 1), and *tail* the same on the last "
      f"{int(TAIL * 100)}% of the series only, the part the chrono split holds out.\n")

    # -- noise floors and baselines
    w("## Noise floors and baselines\n")
    w("The noise floor is the variance of each series around a short moving average (of the files in the "
      "`data/` folder of donglinkang2021/simple-sequence-prediction, the log's repository): a forecast whose MSE "
      "is near it is as good as the measurement "
      "noise allows. `naive` repeats the last value, `linear` is least squares on the window.\n")
    rows = []
    for d in SERIES:
        naive, linear = (next((e for e in baselines() if e["label"] == f"{m} {d}"), None) for m in ("naive", "linear"))
        for e in (naive, linear):
            if rep.get(e):
                rows.append([rep.ds(d), NOISE_FLOOR[d] if not rep.stand_in else "-", e["argv"][1],
                             ms(rep.values(e, "val_mse_last")), ms(rep.values(e, "mse_batch")),
                             ms(rep.values(e, "mse_regressive")), ms(rep.values(e, "tail_batch")),
                             ms(rep.values(e, "tail_regressive"))])
    w(markdown(["series", "noise floor", "baseline", "val_mse_last", "batch MSE", "regressive MSE",
                "tail batch", "tail regressive"], rows) + "\n")

    # -- 2024-12-21
    def model_rows(rows_, split="random", with_log=True, extra=()):
        out = []
        for e in list(rows_) + list(extra):
            if not rep.get(e, split):
                continue
            cells = [e["label"]] + ([f"{e['log']}" if e["log"] else "-"] if with_log else [])
            cells += [ms(rep.values(e, m, split)) for m in
                      ("val_loss", "val_mse_last", "mse_batch", "mse_regressive", "tail_batch", "tail_regressive")]
            cells.append(ms(rep.values(e, "seconds", split), 3))
            out.append(cells)
        return out

    head = ["run", "log val loss", "val loss", "val_mse_last", "batch MSE", "regressive MSE", "tail batch",
            "tail regressive", "training s"]
    y_w_base = [e for e in baselines() if e["dataset"] == "y_w"]
    w("## 2024-12-21: lstm, vqlnmlp, vqlnpemlp on y_w\n")
    w("The log's table with our numbers beside it (random split). The log's `vqlnmlp_y_w_ts96_lr0.007` "
      "does not name its vocabulary; its caption says vocab_size 32, dim 8, so we run that and our defaults.\n")
    w(markdown(head, model_rows(LOG_1221, extra=y_w_base)) + "\n")
    grid = [[rep.run_png(e, "batch"), rep.run_png(e, "regressive")] for e in (LOG_1221[0], LOG_1221[1], LOG_1221[3])]
    png = rep.compose(grid, ["lstm", "vqlnmlp", "vqlnpemlp"], os.path.join(out_dir, "results_20241221.png"),
                      "2024-12-21: one-step (batch) and regressive forecasts on y_w, seed 0")
    if png:
        w(f"![2024-12-21 forecasts]({png})\n")

    # -- 2024-12-22
    w("## 2024-12-22: multi-head VQ (Method Two)\n")
    w(f"The log's two top-5 tables, each configuration with {len(rep.seeds)} seed(s), random split:\n")
    w(markdown(head, model_rows(LOG_1222)) + "\n")
    grid_runs = list({r["dir"]: r for e in GRID_1222 + LOG_1222 for r in rep.get(e)[:1]}.values())  # seed 0
    if grid_runs:
        w(f"A reduced grid ({'--quick: none' if q else GRID_TEXT}; with the log's ten configurations above; "
          f"seed 0 only: the log's full sweep is too slow for two CPU cores). Our top 5 of each model in the "
          f"log's format, by val loss:\n")
        for m in ("mhvqlnmlp", "mhvqlnpemlp"):
            of_model = [r for r in grid_runs if r["options"]["model"] == m]
            if of_model:
                w(log_table(of_model, "val_loss", 5) + "\n")
        w("Which options matter (the parameter ranking of the same runs, by val loss; `model` separates "
          "the two families, whose val losses differ by their targets' positions):\n")
        w(rank_table(grid_runs, "val_loss", 10) + "\n")
    heads_rows = [e for e in HEADS_1222 if rep.get(e)]
    if heads_rows:
        w("The log's claims, checked with a heads sweep (vocab_size 512, d_model 64, lr 0.007): "
          "\"the more heads, the better\", and \"without PE the val loss is lower but the regressive MSE "
          "higher\". n_heads 1 is the single-head model (it equals vqlnmlp).\n")
        w(markdown(head[:1] + head[2:], model_rows(HEADS_1222, with_log=False)) + "\n")
        w(heads_statement(rep) + "\n")

    # -- 2024-12-23
    w("## 2024-12-23: positional encodings\n")
    w("Val loss and regressive MSE (y_w, random split), ours beside the log's (log / ours):\n")
    for metric, log_index, name in (("val_loss", "log", "val loss"), ("mse_regressive", "log_mse", "regressive MSE")):
        body = []
        for family in ("vqlnmlp", "mhvqlnmlp"):
            cells = []
            for col in PE_COLUMNS:
                e = next(p for p in PE_1223 if p["family"] == family and p["column"] == col)
                cells.append(f"{e[log_index]:.6g} / {ms(rep.values(e, metric))}" if rep.get(e) else "-")
            body.append([family.upper()] + cells)
        w(f"{name}:\n")
        w(markdown(["Model", *PE_COLUMNS], body) + "\n")
    grid = [[rep.run_png(e, "regressive") for e in PE_1223 if e["family"] == f] for f in ("vqlnmlp", "mhvqlnmlp")]
    grid = [[(c[0], f"{col}: {c[1]}") if c else None for c, col in zip(row, PE_COLUMNS)] for row in grid]
    png = rep.compose(grid, ["VQLNMLP", "MHVQLNMLP"], os.path.join(out_dir, "results_20241223.png"),
                      "2024-12-23: regressive forecasts on y_w, seed 0")
    if png:
        w(f"![2024-12-23 regressive forecasts]({png})\n")
    w(markdown(head, model_rows(PE_1223)) + "\n")

    # -- 2025-01-06
    w("## 2025-01-06: cross-dataset (lstm)\n")
    cross = cross_tables(rep, out_dir)
    w(cross + "\n")

    # -- chrono
    w("## The same under the chrono split\n")
    w("`--split chrono` (train.py's default) cuts the series in time: it trains on the first 70%, validates "
      "on the next 10% (model.pt is the epoch with the lowest val_mse_last there) and keeps the last 20% as "
      "a test part that training never reads; it normalises with the training part's statistics. So "
      "*val_mse_last chrono* is measured on the 70-80% stretch of the series, *val_mse_last random* on the "
      "log's random 20% of overlapping windows. Under the log's random split a validation window shares all "
      "but one value with its training neighbours, so its val loss measures interpolation between memorised "
      "windows. *tail* columns: forecasts of the last 20%, the chrono test part (the chrono models never saw "
      "it, the random-split models trained on it). `forecast.py RUN` backtests a chrono run on its test "
      "part beside the naive forecast (MASE; RUN/forecasts/).\n")
    chrono_rows = baselines() + LOG_1221 + HEADS_1222 + PE_1223
    body = {}
    for e in chrono_rows:
        if rep.get(e, "chrono") and rep.key(e) not in body:  # a run in two tables appears once
            body[rep.key(e)] = [e["label"], ms(rep.values(e, "val_mse_last")),
                                ms(rep.values(e, "val_mse_last", "chrono")), ms(rep.values(e, "tail_regressive")),
                                ms(rep.values(e, "tail_regressive", "chrono")), ms(rep.values(e, "tail_batch", "chrono"))]
    body = list(body.values())
    w(markdown(["run", "val_mse_last random", "val_mse_last chrono", "tail regressive random",
                "tail regressive chrono", "tail batch chrono"], body) + "\n")
    w(chrono_statement(rep, chrono_rows) + "\n")
    picks = [e for e in (LOG_1221[0], LOG_1221[2], PE_1223[3]) if rep.get(e, "chrono")]
    grid = [[rep.tail_png(e, s, tmp) for s in SPLITS] for e in picks]
    png = rep.compose(grid, [e["argv"][1] for e in picks], os.path.join(out_dir, "results_chrono.png"),
                      f"Regressive forecasts of the last {int(TAIL * 100)}% of y_w, trained with each split")
    if png:
        w(f"![random vs chrono]({png})\n")
    w("---\n")
    w(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
      f"torch {torch.version.__version__}.")
    return "\n".join(L) + "\n"


def heads_statement(rep):
    lines = []
    for m in ("mhvqlnmlp", "mhvqlnpemlp"):
        rows = [(nh, mean(rep.values(e, "val_loss"))) for e, nh in zip(HEADS_1222[:len(HEADS)] if m == "mhvqlnmlp"
                else HEADS_1222[len(HEADS):], HEADS) if rep.get(e)]
        if len(rows) > 1:
            best = min(rows, key=lambda r: r[1])[0]
            falls = all(b[1] < a[1] for a, b in zip(rows, rows[1:]))
            lines.append(f"- {m}: mean val loss by n_heads " + ", ".join(f"{nh}: {v:.5g}" for nh, v in rows) +
                         f"; lowest at n_heads {best}; {'falls' if falls else 'does not fall'} with every "
                         f"doubling of heads.")
    pairs = [(HEADS_1222[i], HEADS_1222[i + len(HEADS)], HEADS[i]) for i in range(len(HEADS))]
    pairs = [(a, b, nh) for a, b, nh in pairs if rep.get(a) and rep.get(b)]
    if pairs:
        lower = sum(mean(rep.values(a, "val_loss")) < mean(rep.values(b, "val_loss")) for a, b, _ in pairs)
        better = sum(mean(rep.values(b, "mse_regressive")) < mean(rep.values(a, "mse_regressive")) for a, b, _ in pairs)
        lines.append(f"- Without PE the val loss is lower at {lower} of {len(pairs)} head counts; with PE the "
                     f"regressive MSE is lower at {better} of {len(pairs)} (means over seeds).")
    return "\n".join(lines)


def chrono_statement(rep, rows):
    """What the random split hid, in numbers computed from the tables above."""
    naive = next(e for e in rows if e["label"] == "naive y_w")
    trained = [e for e in rows if e["dataset"] == "y_w" and e["argv"][1] != "naive"
               and rep.get(e) and rep.get(e, "chrono")]
    trained = list({rep.key(e): e for e in trained}.values())
    if not trained or not rep.get(naive) or not rep.get(naive, "chrono"):
        return "(Too few runs under both splits for a comparison.)"
    nv = {s: mean(rep.values(naive, "val_mse_last", s)) for s in SPLITS}
    nt = {s: mean(rep.values(naive, "tail_regressive", s)) for s in SPLITS}
    beat = {s: [e for e in trained if mean(rep.values(e, "val_mse_last", s)) < nv[s]] for s in SPLITS}
    ratio = [mean(rep.values(e, "val_mse_last", "chrono")) / mean(rep.values(e, "val_mse_last")) for e in trained]
    tail = [mean(rep.values(e, "tail_regressive", "chrono")) / mean(rep.values(e, "tail_regressive")) for e in trained]
    best = {s: min(trained, key=lambda e: mean(rep.values(e, "val_mse_last", s))) for s in SPLITS}
    lines = [
        f"- val_mse_last rose from the random to the chrono split by a factor of {np.median(ratio):.3g} (median "
        f"over the {len(trained)} trained models above; range {min(ratio):.3g} to {max(ratio):.3g}); naive's by "
        f"{nv['chrono'] / nv['random']:.3g}, since the chrono validation part (70-80% of y_w) is one stretch "
        f"of the series, not windows from all of it.",
        f"- Models that beat the naive forecast on val_mse_last: {len(beat['random'])} of {len(trained)} under "
        f"the random split, {len(beat['chrono'])} of {len(trained)} under chrono.",
        f"- Best val_mse_last: {best['random']['label']} under random, {best['chrono']['label']} under chrono.",
        f"- Regressive forecasts of the held-out tail: the chrono model's MSE divided by the random-split "
        f"model's is {np.median(tail):.3g} (median; range {min(tail):.3g} to {max(tail):.3g}); naive's tail "
        f"regressive MSE is {nt['random']:.4g} (it has nothing to learn).",
    ]
    return "\n".join(lines)


def cross_tables(rep, out_dir):
    """The 2025-01-06 matrix: batch and regressive MSE per train-test pair, mean ± sd over seeds, each split;
    the first seed's plots laid out as the log's table (log_protocol.cross_dataset)."""
    tests = list(dict.fromkeys(rep.ds(d) for d in SERIES))
    text = []
    for split in SPLITS:
        seeds_of = [rep.get(e, split) for e in CROSS]
        firsts = [r[0]["dir"] for r in seeds_of if r]
        if not firsts:
            continue
        _, png, first = log_protocol.cross_dataset([forecast.load(f, dataset=d) for f in firsts for d in tests])
        cells = {pair: [m] for pair, m in first.items()}
        for r in (r for rs in seeds_of for r in rs[1:]):  # the other seeds
            for d in tests:
                m = log_protocol.evaluate(forecast.load(r["dir"], dataset=d))
                cells[f"{r['options']['dataset']}-{m['dataset']}"].append(m)
        body = [[label] + [ms([m[f"mse_{kind}"] for m in cells[p]]) for p in cells]
                for kind, label in (("batch", "Batch (input is original value)"),
                                    ("regressive", "Regressive (add predicted value to input)"))]
        naive = {rep.ds(b["dataset"]): b for b in baselines() if b["argv"][1] == "naive"}
        body.append([f"naive on the test series, batch ({split} split)"] +
                    [ms(rep.values(naive[cells[p][0]["dataset"]], "mse_batch", split)) if cells[p][0]["dataset"]
                     in naive else "-" for p in cells])
        name = "results_20250106.png" if split == "random" else f"results_20250106_{split}.png"
        shutil.copyfile(png, os.path.join(out_dir, name))
        where = "the whole test series, as in the log" if split == "random" else \
            "the test part of each test series (its last 20%), normalised with that series' training part"
        text.append(f"Trained with the {split} split (MSE in original units over {where}; "
                    f"{len(rep.seeds)} seed(s)):\n")
        text.append(markdown(["Method\\Trainset-Testset", *cells], body) + "\n")
        text.append(f"![2025-01-06 matrix, {split} split]({name})\n")
    return "\n".join(text) if text else "(no runs)"


# ---------------------------------------------------------------- --floor

def position_free(model, T):
    """Whether the output at t depends on x[t] alone: then the model reads once per distinct value."""
    x = torch.full((1, T, 1), 0.3)
    with torch.no_grad():
        out = model(x)
    return out.shape[1] == T and bool((out == out[:, :1]).all())


def median_seconds(f, repeat=7):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def softmax_ns(H=16, V=1024, hs=8):
    """ns per score, one thread: torch.softmax alone, and the blocked read of kernels.py (forward)."""
    rows = max(1, models.kernels.BLOCK // (H * V))
    q, codes = torch.randn(H, rows * 8, hs), torch.randn(H, V, hs)
    block = torch.randn(H, rows, V)
    soft = median_seconds(lambda: [torch.softmax(block, dim=-1, out=block) for _ in range(8)])
    decoder = torch.nn.Linear(H * hs, 1)
    with torch.no_grad():
        read = median_seconds(lambda: models.kernels.codebook_read(q.transpose(0, 1).unsqueeze(0), codes,
                                                                     decoder, 0.1))
    n = H * rows * 8 * V
    return soft / n * 1e9, read / n * 1e9


def lstm_ms(model, batch_size, T):
    """ms of nn.LSTM forward + backward alone for one training batch, one thread."""
    x = torch.randn(batch_size, T, 1)

    def step():
        out, _ = model.lstm(x)
        out[:, -1].sum().backward()
    return median_seconds(step) * 1e3


def floor(rep, data_dir):
    """How fast could the report be? A lower bound from the arithmetic its trainings must do, printed.

    Two kinds of work dominate and no overhead removal shortens them. 1. The codebook reads of the
    VQ models whose output depends on the position: every forward computes one score per (window,
    position, head, code) and takes its softmax. The scores of every training are counted
    (training and validation windows, every epoch; the backward, the forecasts and the models
    without positions, which read once per distinct value, are left out) and priced at what
    torch.softmax takes per score on a block in cache, on one thread (a floor for any read written
    with torch's CPU kernels: each score needs its exponential), and at what the whole blocked read
    of models/kernels.py takes. 2. The lstm runs: all but a few percent of a step is nn.LSTM's
    forward and backward, the oneDNN kernel the log's code calls too; it is timed alone for one
    batch and multiplied by the report's lstm batches. Each part in CPU-minutes and in wall
    minutes on all of this machine's cores (--jobs 2 runs one training per core). Trains nothing."""
    torch.set_num_threads(1)
    runs.keep_freed_memory()  # as train.py: steps reuse their freed memory (docs/BENCHMARKS.md)
    commands, _ = rep.commands(TABLES)
    series, scores, counted, lstm_batches, lstm_s, lstm_ms_at = {}, 0, 0, 0, 0.0, {}
    for argv in commands:
        run = config.resolve(config.parse(argv)[0])
        cls, hp, model_args = models.get(run.model), vars(run), run.model_args
        if run.dataset not in series:
            series[run.dataset] = load_series(run.dataset, None, data_dir).values
        data = split_series(series[run.dataset], hp["time_steps"], cls.target, run.split, DEFAULT_FRACTIONS)
        torch.manual_seed(0)
        model = models.build(run.model, **model_args)
        if run.model == "lstm":
            key = (hp["batch_size"], hp["time_steps"])
            if key not in lstm_ms_at:
                lstm_ms_at[key] = lstm_ms(model, *key)
            batches = hp["epochs"] * (len(data.x_train) // hp["batch_size"])  # full batches only: a floor
            lstm_batches += batches
            lstm_s += batches * lstm_ms_at[key] / 1e3
            continue
        size = models.codebook_size(model)
        if size is None or position_free(model, hp["time_steps"]):
            continue
        counted += 1
        scores += hp["epochs"] * (len(data.x_train) + len(data.x_val)) * hp["time_steps"] * size[0]
    soft, read = softmax_ns()
    cores = os.cpu_count()
    print(machine())
    print(f"benchmarks/report.py: {len(commands)} trainings")
    print(f"VQ reads with positions: {counted} trainings, {scores / 1e12:.3f} x 10^12 scores (forward, "
          f"training + validation windows, every epoch)")
    for what, ns in (("torch.softmax alone", soft), ("kernels.codebook_read forward", read)):
        cpu = scores * ns / 1e9
        print(f"  at {ns:.2f} ns per score ({what}): {cpu / 60:6.1f} CPU-min, {cpu / cores / 60:5.1f} min on "
              f"{cores} cores")
    print(f"lstm: {lstm_batches} training batches x nn.LSTM forward + backward alone "
          f"({', '.join(f'{v:.1f} ms at batch {k[0]}, T {k[1]}' for k, v in lstm_ms_at.items())}): "
          f"{lstm_s / 60:.1f} CPU-min, {lstm_s / cores / 60:.1f} min on {cores} cores")
    floor = scores * soft / 1e9 + lstm_s
    print(f"floor (softmax alone + lstm kernel): {floor / 60:.1f} CPU-min, {floor / cores / 60:.1f} min on "
          f"{cores} cores; the report's target is 10 min")



def about(seconds):
    """A rough duration in words: '40 seconds' under a minute and a half, else '12 minutes'."""
    return f"{seconds:.0f} seconds" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, one epoch, a few rows: checks the pipeline")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one thread each")
    parser.add_argument("--seeds", default="0,1,2", help="comma list")
    parser.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    parser.add_argument("--out", default=None, help="where RESULTS.md and the plots go (default: docs/; "
                        "with --quick, the quick run's own runs directory, so docs/ is never overwritten by it)")
    parser.add_argument("--runs_dir", default=None, help="where the runs go (default: runs/report-{timestamp})")
    parser.add_argument("--data_dir", default=None, help="where y_w, w_y, 4single live")
    parser.add_argument("--floor", action="store_true", help="print a lower bound of the report's time from the "
                        "arithmetic of its trainings, and train nothing")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        runs.fail("report.py", f"--jobs must be at least 1, got {args.jobs}")
    try:
        rep = Report(args)
    except runs.UsageError as e:  # bad --seeds, or the data missing
        runs.fail("report.py", e)
    if args.floor:
        return floor(rep, args.data_dir)
    if args.out is None:
        args.out = os.path.join(rep.runs_dir, "docs") if args.quick else os.path.join(ROOT, "docs")
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    rep.run(TABLES)
    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(rep.runs_dir, "report-plots")
    os.makedirs(tmp, exist_ok=True)
    text = write_report(rep, args.out, tmp)
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    if torch.cuda.is_available():  # train.py --device auto trained on the GPU; the CPU time means little
        where = (f"the trainings ran on one {torch.cuda.get_device_name()} (`train.py --device auto`), "
                 f"the forecasts on the CPU")
    else:
        where = (f"{cpu / 60:.1f} CPU-minutes in all (trainings, forecasts, plots); with `--jobs {args.jobs}` "
                 f"(one thread per training) an idle 2-core machine needs about {about(cpu / 2)} (CPU time / 2)")
    busy = ": other work shared the CPU" if max(load0, load1) > os.cpu_count() else ""
    text = text.replace(TIME, (
        f"**Time.** {wall / 60:.1f} minutes wall with `--jobs {args.jobs}` on a machine with {os.cpu_count()} "
        f"cores (load average {load0:.1f} at the start and {load1:.1f} at the end{busy}); {where}.\n"))
    path = os.path.join(args.out, "RESULTS.md")
    if os.path.isfile(path):  # honest.py's and ett.py's sections stay (made by their own, longer runs)
        text = keep_sections(open(path).read(), text)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    runs.write_atomic(path, write)
    print(f"{len(rep.failed)} failed runs; {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min -> {path}")


if __name__ == "__main__":
    main()
