"""What forecast.py and train.py write and print: the files of a backtest and of a future forecast,
their plots, the loss curves, and the lines and verdict a user reads.

Every file is written whole or not at all (runs.write_atomic), each evaluation into a new folder
RUN/forecasts/{settings}/ (runs.output_folder). Plots use matplotlib's Agg backend, imported when
the first one is drawn.
"""
import math
import os
from datetime import datetime, timezone

import numpy as np

import runs
import scoring
from config import DIVERGED_MSE, DIVERGED_STDS


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen), imported on first use."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---------------------------------------------------------------- training

def train_line(metrics):
    """One line of what a training measured (train.py --help explains its terms)."""
    m = metrics
    chosen = "least squares" if m["fit"].startswith("least squares") else f"epoch {m['best_epoch']}"
    line = (f"val_loss {m['val_loss']:.6g}  val_mse_last {m['val_mse_last']:.6g}  ({chosen})  "
            f"params {m['trainable_parameters']}+{m['fixed_parameters']} fixed  {m['seconds']:.1f}s")
    for u in m.get("codebook_usage", []):
        line += f"  head{u['head']} ppl {u['perplexity']:.1f}/{u['vocab_size']} used {u['used_fraction']:.0%}"
    partial = m.get("partial_epochs")
    return line + ("  (interrupted)" if m["interrupted"] else "") + \
        (f"  partial epoch {partial[-1]}: not chosen" if partial else "")


def diverged_line(metrics):
    """A sentence where training diverged (train.py prints it after train_line), else "": the losses of
    every epoch not finite (model.pt: the untrained model), or the kept epoch's validation error
    DIVERGED_MSE times that of forecasting the training part's mean."""
    m = metrics
    if m["best_epoch"] == 0 and m.get("diverged_epochs"):
        return (f"The training diverged: the losses of epoch {m['diverged_epochs'][0]} on are not finite numbers, so "
                f"model.pt is the untrained model (epoch 0); train again with a smaller --lr.")
    reference = m.get("val_mse_last_mean_forecast")
    if reference and not m["val_mse_last"] <= DIVERGED_MSE * reference:
        return (f"The training diverged: val_mse_last {m['val_mse_last']:.3g} is {m['val_mse_last'] / reference:.2g} "
                f"times that of forecasting the training part's mean ({reference:.3g}); train again with a smaller --lr.")
    return ""


def column_note(run):
    """forecast.py's column_line of a run evaluated on another series (forecast.load's column_how), where
    that series has several numeric columns; else None."""
    if run.column_how and run.series.numeric_columns > 1:
        return column_line(run.series, None, run.column_how)
    return None


def column_line(series, asked, how=None):
    """Which column of a CSV with several numeric ones the series is, and how it was chosen (how:
    forecast.py's words for another series)."""
    default = f"the last of its {series.numeric_columns} numeric columns"
    how = "chosen with --column" if asked is not None or how == "chosen with --column" else \
        (f"{how}: {default}" if how and "not in it" in how else how or default) \
        + "; --column NAME or INDEX picks another"
    return f"{series.name}: the series is column {series.column!r} ({how})"


# ---------------------------------------------------------------- backtest

def stats_tag(run):
    """_statsorigin where fed-back forecasts hold the origin window's statistics (forecast.py --norm_stats origin)."""
    return "_statsorigin" if getattr(run.model, "frozen", False) else ""


def write_backtest(run, result, tag=None):
    """metrics.json, errors_by_step.csv and error_by_horizon.png of a backtest; returns the folder."""
    H = result["horizon"]
    tag = tag or f"{run.series.name}_backtest_h{H}_stride{result['stride']}_n{len(result['origins'])}" \
        + (f"_season{result['season']}" if result["season"] else "") + f"_level{result['interval']['level']:g}" \
        + stats_tag(run)
    interval, adaptive = result["interval"], result["interval_adaptive"]
    median_halfwidth = np.median(adaptive["halfwidth"], axis=0)  # per step, over origins (inf-safe)
    header = ["step"] + [f"{name}_{k}" for name in result["by_step"] for k in ("mse", "rmse", "mae", "smape", "mase")] \
        + ["interval_halfwidth", "interval_coverage", "adaptive_median_halfwidth", "adaptive_coverage"]
    rows = [[h + 1] + [result["by_step"][name][k][h] for name in result["by_step"]
                       for k in ("mse", "rmse", "mae", "smape", "mase")]
            + [interval["halfwidth"][h], interval["coverage_by_step"][h], median_halfwidth[h],
               adaptive["coverage_by_step"][h]] for h in range(H)]
    at = sorted({1, H})
    summary = {
        "run_dir": run.run_dir, "dataset": run.series.name, "protocol": "chrono: rolling-origin backtest on the test part",
        "norm_stats": "origin" if stats_tag(run) else "step",
        "test_part": {"first_index": run.val_end, "n_values": run.test_end - run.val_end},
        "horizon": H, "stride": result["stride"], "n_origins": len(result["origins"]),
        "first_origin": int(result["origins"][0]), "last_origin": int(result["origins"][-1]),
        "season": result["season"], "mase_scale": result["mase_scale"],
        "metrics": result["metrics"],
        "by_step": {name: {k: [float(v) for v in vals] for k, vals in d.items()} for name, d in result["by_step"].items()},
        "at_step": {f"h{h}": {name: {k: float(v[h - 1]) for k, v in d.items()} for name, d in result["by_step"].items()}
                    for h in at},
        "interval": {"level": interval["level"], "coverage": interval["coverage"],
                     "halfwidth": [float(v) for v in interval["halfwidth"]],
                     "coverage_by_step": [float(v) for v in interval["coverage_by_step"]],
                     "n_calibration": [int(v) for v in interval["n_calibration"]],
                     "calibrated_on": "validation part (split conformal)"},
        "interval_adaptive": {"level": adaptive["level"], "gamma": adaptive["gamma"], "coverage": adaptive["coverage"],
                              "coverage_by_step": [float(v) for v in adaptive["coverage_by_step"]],
                              "median_halfwidth_by_step": [float(v) for v in median_halfwidth],
                              "infinite_fraction": float(np.mean(~np.isfinite(adaptive["halfwidth"]))),
                              "calibrated_on": "adaptive conformal (Gibbs and Candes 2021): the validation part's "
                                               "errors and the test errors observed before each origin"},
        "filled_values_not_scored": int((~result["observed"]).sum()),
    }

    def write(folder):
        runs.write_csv(os.path.join(folder, "errors_by_step.csv"), header, rows)
        runs.write_json(os.path.join(folder, "metrics.json"), summary)
        plot_horizon({run.config["run_name"]: result}, os.path.join(folder, "error_by_horizon.png"))
    return runs.output_folder(run.run_dir, tag, write, run.weights)


def plot_horizon(results, path, metric="mase"):
    """Error against steps ahead: one line per run, naive (and seasonal naive) dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, result) in enumerate(results.items()):
        steps = np.arange(1, result["horizon"] + 1)
        ax.plot(steps, result["by_step"]["model"][metric], marker=".", label=name)
        if k == 0:
            for other, style in (("naive", "--"), ("seasonal_naive", ":")):
                if other in result["by_step"]:
                    ax.plot(steps, result["by_step"][other][metric], ls=style, color="black", label=other)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"{metric.upper()} on the test part")
    ax.legend(fontsize=7)
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def plural(n, word):
    """'1 step', '2 steps'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def backtest_line(result, folder, asked=None):
    """The lines a backtest prints: MASE at step 1, at the horizon and overall, beside naive (and
    seasonal naive), the coverages; then the verdict against naive (and seasonal naive) in words,
    and the folder (the output's last word, as everywhere: -> PATH). asked: the horizon asked for,
    where the test part was too short for it."""
    m, s, H = result["metrics"], result["by_step"], result["horizon"]

    def mase(name):  # at steps 1, H and overall; one number where the horizon is one step
        by = s[name]["mase"]
        return (f"{by[0]:#.3g}",) if H == 1 else (f"{by[0]:#.3g}", f"{by[-1]:#.3g}", f"{m[name]['mase']:#.3g}")
    line = f"test MASE h1 {mase('model')[0]}" + (f" h{H} {mase('model')[1]} all {mase('model')[2]}" if H > 1 else "") \
        + f"  (naive {' / '.join(mase('naive'))})"
    if "seasonal_naive" in m:
        line += f"  (seasonal naive {' / '.join(mase('seasonal_naive'))})"
    line += (f"  RMSE {m['model']['rmse']:.4g} (naive {m['naive']['rmse']:.4g})  {coverage_text(result)}"
             f"  ({plural(len(result['origins']), 'origin')})")
    if asked and asked > H:
        line += f"  (horizon {H}, not {asked}: the test part has {plural(H, 'value')})"
    sentences = [verdict(s["model"]["mase"], s["naive"]["mase"])]
    wild = ~np.isfinite(np.asarray(result.get("predictions", [[0.0]]), dtype=float))
    if wild.any():  # forecasts fed back until they overflow: the errors there are nan, not a score
        sentences.append(f"The model's forecasts leave the finite numbers at {plural(int(wild.any(1).sum()), 'origin')} "
                         f"of {len(wild)} (from step {int(wild.any(0).argmax()) + 1}): errors there are nan; its training "
                         f"diverged, or it feeds its own growth back.")
    if "seasonal_naive" in m:
        sentences.append(verdict(s["model"]["mase"], s["seasonal_naive"]["mase"],
                                 f"seasonal naive (the value {result['season']} steps back)"))
    return f"{line}\n{' '.join(sentences)}  -> {folder}"


def coverage_text(result):
    """'80% interval coverage fixed F%, adaptive A%'. An infinite interval (too few errors to calibrate
    it at that level, or errors that are not finite) covers everything, so the text says where they
    are, and where too few validation errors made them, the --level or --horizon that gives finite ones."""
    fixed, adaptive = result["interval"], result["interval_adaptive"]
    level = fixed["level"]
    finite = np.isfinite(np.asarray(fixed.get("halfwidth", [0.0]), dtype=float))
    text = f"{level:g}% interval coverage fixed " + (
        f"{fixed['coverage']:.0%}" if finite.all() else "none finite" if not finite.any() else
        f"{fixed['coverage']:.0%} (infinite at {plural(int((~finite).sum()), 'step')} of {len(finite)})")
    some = np.isfinite(np.asarray(adaptive.get("halfwidth", [0.0]), dtype=float)).any()
    text += f", adaptive {adaptive['coverage']:.0%}" if some else ", adaptive none finite"
    n = np.asarray(fixed.get("n_calibration", [math.inf]))
    if (n < scoring.min_errors(level)).any():  # too few validation errors at some steps
        if n.min() > 0:
            text += (f" ({level:g}% needs {scoring.min_errors(level)} validation errors a step, this validation part "
                     f"gives {int(n.min())}: --level {highest_level(int(n.min()))} or lower gives finite intervals)")
        else:  # steps past the validation part's reach (val_end - time_steps) have no error at all
            text += (f" (the validation part gives no errors from step {int(np.argmin(n > 0)) + 1} on"
                     + (f": --horizon {int(np.argmin(n > 0))} or less" if n[0] > 0 else "") + ")")
    return text


def highest_level(n):
    """The highest whole --level at which n errors give a finite conformal interval: ceil((n + 1) L / 100) <= n."""
    return math.floor(100 * n / (n + 1))


def verdict(model, reference, name="naive (repeating the last value)", tie=0.005):
    """One sentence from the per-step errors (MASE by step) of the model and of a reference forecast
    (naive, or seasonal naive): at which steps ahead the model beats it. Within `tie` (relative) of
    the reference's error counts as the same, a NaN error as worse. Each kind says how many steps
    and which (at most four stretches listed, then "...")."""
    model, reference = np.asarray(model, dtype=float), np.asarray(reference, dtype=float)
    kind = np.where(np.abs(model - reference) <= tie * np.abs(reference), "same",
                    np.where(model < reference, "better", "worse"))
    stretches = []  # [kind, first step, last step], steps counted from 1
    for h, k in enumerate(kind, 1):
        if stretches and stretches[-1][0] == k:
            stretches[-1][2] = h
        else:
            stretches.append([k, h, h])

    def steps(k):
        spans = [(a, b) for kk, a, b in stretches if kk == k]
        n = sum(b - a + 1 for a, b in spans)
        where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:4]) + (", ..." if len(spans) > 4 else "")
        return f"{n} of {len(kind)} steps ahead ({where})"
    lead = {"better": f"Better than {name}", "worse": f"Worse than {name}",
            "same": f"The same as {name}, within {tie:.1%},"}
    order = list(dict.fromkeys(kind))  # each kind once, in the order it first appears
    if len(order) == 1:
        return f"{lead[order[0]]} at every step ahead" + (f" (1-{len(kind)})." if len(kind) > 1 else ".")
    words = {"better": "better", "worse": "worse", "same": f"the same within {tie:.1%}"}
    return f"{lead[order[0]]} at {steps(order[0])}; " + "; ".join(f"{words[k]} at {steps(k)}" for k in order[1:]) + "."


# ---------------------------------------------------------------- future

def time_text(series, times):
    """times (of series.time's kind) as the series' CSV writes them: in its last time's UTC offset
    (2024-04-11T13:00:00+02:00), in its time_format (2025-01, 202501, 2009Q4, 31.01.1950,
    2024-03-31 00:00, ...Z), integers as integers (2011); ISO where the format cannot write a date
    (years past 9999)."""
    if times.dtype.kind != "M":
        return [str(t) for t in times]
    offset = None if series.utc_offset is None else series.utc_offset[-1]  # the last time's
    local = times if offset is None else times + offset
    out = []
    for t in local:
        moment = t.astype("datetime64[us]").item()  # a datetime, or an int past year 9999
        if series.time_format and isinstance(moment, datetime):
            zone = None if offset is None else timezone(offset.item())  # for a %z in a --date_format
            shape = series.time_format.replace("%q", str((moment.month - 1) // 3 + 1))  # the quarter: 2009Q4
            shape = shape.replace("%:z", "" if offset is None else utc_offset_text(offset))  # +02:00
            out.append(moment.replace(tzinfo=zone).strftime(shape))
        elif offset is None:
            out.append(str(t))
        else:  # at least seconds: 2024-04-11T00:00:00+02:00, not 2024-04-11+02:00
            out.append(str(t.astype(np.promote_types(t.dtype, "datetime64[s]"))) + utc_offset_text(offset))
    return out


def utc_offset_text(offset):
    """'+02:00', '-05:00', '+05:30', '+00:00' for a timedelta64 east of UTC."""
    return timezone(offset.item()).tzname(None).removeprefix("UTC") or "+00:00"


def plot_time(series, times, steps):
    """(x, label) to plot `times` of the series against: the times in its last UTC offset, or `steps`
    (step numbers) where matplotlib cannot draw them: it draws dates in the years 1-9999 only, and
    its axis adds a margin of 5% of the span either side."""
    label = series.time_label
    if times.dtype.kind != "M":
        return times, label
    if series.utc_offset is not None:
        times = times + series.utc_offset[-1]
        label += f" (UTC{utc_offset_text(series.utc_offset[-1])})"
    days = times.astype("datetime64[D]").astype(np.int64)
    margin = 0.1 * (days.max() - days.min()) + 1
    first, last = np.array(["0001-01-01", "9999-12-31"], dtype="datetime64[D]").astype(np.int64)
    if days.min() - margin < first or days.max() + margin > last:
        return steps, f"step ({label} outside the years 1-9999 a plot can draw)"
    return times, label


def write_future(run, ahead):
    """future.csv and future.png in a new RUN/forecasts/{dataset}_future_{steps}_level{level}/; returns it."""
    steps = len(ahead["forecast"])
    level = ahead["level"]
    lower = ahead["lower"] if ahead["lower"] is not None else [None] * steps
    upper = ahead["upper"] if ahead["upper"] is not None else [None] * steps
    time_name = run.series.time_label if run.series.time_label != "sample" else "step"
    header = [time_name, "forecast", f"lower_{level:g}" if level else "lower", f"upper_{level:g}" if level else "upper"]
    # float32 models: digits below 1e-5 of the series' std are rounding, not forecast (naive's 2.9, not 2.9000009)
    decimals = max(0, math.ceil(-math.log10(run.std * 1e-5)))

    def cell(v):
        return "" if v is None or not np.isfinite(v) else round(float(v), decimals)
    rows = [[t, cell(f), cell(lo), cell(up)]
            for t, f, lo, up in zip(time_text(run.series, ahead["time"]), ahead["forecast"], lower, upper)]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    y = run.series.values
    recent = max(0, len(y) - 4 * steps)
    x, time_label = plot_time(run.series, np.concatenate([run.series.time[recent:], ahead["time"]]),
                              np.arange(recent, len(y) + steps))
    x, x_ahead = x[:len(y) - recent], x[len(y) - recent:]
    ax.plot(x, y[recent:], color="black", lw=1, label="series")
    ax.plot(x_ahead, ahead["forecast"], color="tab:red", lw=1.2, label="forecast")
    if ahead["lower"] is not None:
        finite = np.isfinite(ahead["lower"]) & np.isfinite(ahead["upper"])
        ax.fill_between(x_ahead[finite], ahead["lower"][finite], ahead["upper"][finite], color="tab:red",
                        alpha=0.2, label=f"{level}% interval")
    ax.set_xlabel(time_label)
    ax.set_ylabel(run.series.value_label)
    ax.set_title(f"{run.config['run_name']}: {steps} steps past the end", fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()

    def write(folder):
        runs.write_csv(os.path.join(folder, "future.csv"), header, rows)
        fig.savefig(os.path.join(folder, "future.png"), dpi=100, format="png")
    folder = runs.output_folder(run.run_dir, f"{run.series.name}_future_{steps}_level{f'{level:g}' if level else 'none'}"
                                f"{stats_tag(run)}",
                                write, run.weights)
    plt.close(fig)
    return folder


def article(number):
    """'a' or 'an' before a number read aloud: an 80% interval, an 11% one, a 95% one."""
    text = f"{number:g}"
    return "an" if text.startswith("8") or text.split(".")[0] in ("11", "18") else "a"


def future_line(run, ahead):
    """The line forecast.py --future prints: how far, how the times continue, the interval, the folder."""
    steps, level = len(ahead["forecast"]), ahead["level"]
    band = f" with {article(level)} {level:g}% interval" if level else \
        " (no interval: the log's protocol keeps no held-out part to calibrate it)"
    if level and ahead["interval_steps"] == 0:
        most = ahead["most_errors"]
        band = (f" (no {level:g}% interval: a step needs at least {ahead['min_errors']} forecast errors with targets in "
                f"the validation and test parts, and this series gives at most {most}"
                + (f": --level {highest_level(most)} or lower gives one)" if most else ")"))
    elif level and ahead["interval_steps"] < steps:
        band += (f" up to step {ahead['interval_steps']} (none after: a step needs at least "
                 f"{ahead['min_errors']} forecast errors with targets in the validation and test "
                 f"parts, and the series is too short to give step {ahead['interval_steps'] + 1} that many)")
    if ahead.get("diverged_at"):
        band += (f"; the forecast diverged at step {ahead['diverged_at']} (not a finite number, or more than "
                 f"{DIVERGED_STDS:g} standard deviations of the series from its last value): written up to "
                 f"step {steps}")
    last = time_text(run.series, run.series.time[-1:])[0]  # as the series writes its times
    return f"{plural(steps, 'step')} past {last}, {ahead['spacing']}{band} -> {write_future(run, ahead)}"


# ---------------------------------------------------------------- plots of series and losses

def plot(series, start, prediction, title, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    t, time_label = plot_time(series, series.time, np.arange(len(series.values)))
    ax.plot(t, series.values, color="0.75", lw=1, label="series")
    ax.plot(t[start:], series.values[start:], color="black", lw=1, label="actual")
    ax.plot(t[start:], prediction, color="tab:red", lw=1, label="prediction")
    ax.axvline(t[start], color="tab:blue", ls="--", lw=1, label="prediction starts")
    ax.set_xlabel(time_label)
    ax.set_ylabel(series.value_label)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
