"""Markdown tables of the runs under a directory: ranked, wide, pivoted, and which options matter.

    python benchmarks/results.py runs                           # the log's | File | Loss |, best first
    python benchmarks/results.py runs --top 5 --filter vqlnpemlp --sort mse_regressive
    python benchmarks/results.py runs --wide                    # losses, val_mse_last, forecasts, params, seconds
    python benchmarks/results.py runs --pivot family,pe         # the 2024-12-23 table: Original, +RandnPE, +SinPE, +RoPE
    python benchmarks/results.py runs --rank                    # average rank of each option=value and pair

A run is a directory holding config.json and metrics.json (train.py writes both; a run still in
progress has no metrics.json and is left out, and so are vqvae_imagenet.py's runs). Every setting
is read from config.json (model, model_args, dataset, split, seed, time_steps, lr, ...), never
parsed back out of the run name. mse_batch and mse_regressive come from forecast.py's evaluation
of the run's own series, RUN/forecasts/{dataset}_log/metrics.json (--split random: over the whole
series, as in the log) or RUN/forecasts/{dataset}_test/metrics.json (--split chrono: over the test
part); absent with --no_forecast: shown as -. Compare runs of one split (--filter split=random).
Every metric is lower-is-better. `--filter` takes a comma list; a run is kept if one term matches:
a model name, KEY=VALUE (any option, e.g. split=chrono, dataset=y_w, n_heads=16), or a glob
pattern on File (run_name/timestamp; a term without * or ? matches anywhere in it).
Runs with the same configuration and different seeds are separate rows in the ranked and wide
tables; the pivot averages them (mean +- sample standard deviation, n), and only them: runs of
a cell that differ in anything else (a split, a norm, a learning rate) are never pooled, but
shown in a table of their own, headed by what differs (split=chrono, split=random).
"""
import fnmatch
import itertools
import math
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import runs  # noqa: E402

METRICS = ("val_loss", "val_mse_last", "mse_batch", "mse_regressive")
COMMON = ("model", "dataset", "column", "fill", "split", "norm", "val_fraction", "test_fraction", "seed", "time_steps",
          "batch_size", "lr", "epochs")
PE_ORDER = ("Original", "+RandnPE", "+SinPE", "+RoPE")


def fmt(value):
    """An option value as the command line writes it: tuples with '-', floats as given."""
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return str(value)


def pe_variant(model):
    """(family, pe) from the log's names: vqlnpemlp -> (vqlnmlp, +RandnPE), mhvqlnmlp_rope -> (mhvqlnmlp, +RoPE)."""
    for suffix, pe in (("_sinpe", "+SinPE"), ("_rope", "+RoPE")):
        if model.endswith(suffix):
            return model[: -len(suffix)], pe
    if "lnpemlp" in model:
        return model.replace("lnpemlp", "lnmlp"), "+RandnPE"
    return model, "Original"


def forecast_folder(run_dir, config):
    """Where forecast.py's evaluation of the run's own series is: RUN/forecasts/{dataset}_log
    (the log's protocol) or RUN/forecasts/{dataset}_test (chrono: the test part)."""
    tag = "test" if config.get("split") == "chrono" else "log"
    return os.path.join(run_dir, "forecasts", f"{config['dataset']}_{tag}")


def load_record(run_dir):
    """One run as a flat record: file, dir, options (strings), derived fields, metrics; None if
    unfinished (no metrics.json) or not a train.py run. Settings come from config.json alone."""
    try:
        config = runs.read_json(os.path.join(run_dir, "config.json"))
        metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
    except runs.RunError:
        return None
    if "dataset" not in config or "run_name" not in config:  # not a train.py run (vqvae_imagenet.py's)
        return None
    folder = forecast_folder(run_dir, config)
    try:
        forecast = runs.read_json(os.path.join(folder, "metrics.json"))
    except runs.RunError:  # trained with --no_forecast
        forecast, folder = {}, None
    options = {k: fmt(config[k]) for k in COMMON if k in config and config[k] is not None}
    options.setdefault("norm", "global")  # runs from before --norm read the global level
    if options.get("split") != "chrono":  # the log's protocol has no fractions
        options.pop("val_fraction", None), options.pop("test_fraction", None)
    options.update({k: fmt(v) for k, v in config.get("model_args", {}).items()})
    family, pe = pe_variant(config["model"])
    record = {"file": f"{config['run_name']}/{os.path.basename(os.path.normpath(run_dir))}", "dir": run_dir,
              "options": options, "derived": {"family": family, "pe": pe}, "run_name": config["run_name"],
              "forecast_dir": folder,
              "train_loss": metrics.get("train_loss"), "val_loss": metrics.get("val_loss"),
              "val_mse_last": metrics.get("val_mse_last"), "mse_batch": forecast.get("mse_batch"),
              "mse_regressive": forecast.get("mse_regressive"),
              "params": f"{metrics.get('trainable_parameters', '?')}+{metrics.get('fixed_parameters', '?')}",
              "seconds": metrics.get("seconds")}
    return record


def load_runs(root):
    """Every finished run under root, in path order."""
    records = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath).startswith("."):  # a run still being written (.{timestamp}.partial)
            dirnames[:] = []
            continue
        if "config.json" in filenames:
            record = load_record(dirpath)
            if record:
                records.append(record)
            dirnames[:] = []  # a run directory holds no runs
    return records


def field(run, key):
    """A run's value for key: an option, a derived field (family, pe), a metric, or file."""
    if key in run["options"]:
        return run["options"][key]
    if key in run["derived"]:
        return run["derived"][key]
    return run.get(key)


def _same(a, b):
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def matches(run, term):
    if "=" in term:
        key, value = term.split("=", 1)
        return field(run, key) is not None and _same(field(run, key), value)
    if term == run["options"].get("model"):
        return True
    pattern = term if any(c in term for c in "*?[") else f"*{term}*"
    return fnmatch.fnmatchcase(run["file"], pattern)


def select(records, filters=None):
    """Runs matching any of the comma-separated filter terms (all runs without a filter).
    A bare model name keeps that model only (vqlnmlp does not match mhvqlnmlp)."""
    if not filters:
        return list(records)
    terms = [t for t in filters.split(",") if t]
    models_named = {t for t in terms if "=" not in t and any(r["options"].get("model") == t for r in records)}
    keep = []
    for run in records:
        for t in terms:
            if (run["options"].get("model") == t) if t in models_named else matches(run, t):
                keep.append(run)
                break
    return keep


def check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def ranked(records, metric="val_loss"):
    """Runs that have the metric, best (lowest) first; ties keep path order."""
    check_metric(metric)
    return sorted([r for r in records if _finite(r[metric])], key=lambda r: r[metric])


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def number(x, digits=6):
    return f"{x:.{digits}g}" if _finite(x) else "-"


def markdown(header, rows, align=None):
    """A markdown table with padded columns (reads as a table in a terminal too)."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    line = lambda r: "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":" if a == ">" else "-" * (w + 2)) for a, w in zip(align, widths)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def log_table(records, metric="val_loss", top=None):
    """The log's table: | File | Loss |, best first."""
    best = ranked(records, metric)[:top]
    return markdown(["File", "Loss" if metric == "val_loss" else metric],
                    [[r["file"], number(r[metric])] for r in best])


WIDE = ("train_loss", "val_loss", "val_mse_last", "mse_batch", "mse_regressive")


def wide_table(records, metric="val_loss", top=None):
    """Every number of each run, sorted by metric (runs without it last)."""
    order = ranked(records, metric)
    order += [r for r in records if r not in order]
    rows = [[r["file"]] + [number(r[k]) for k in WIDE] + [r["params"], number(r["seconds"], 3)]
            for r in order[:top]]
    return markdown(["File", *WIDE, "params", "seconds"], rows)


def _sort_key(value):
    if value in PE_ORDER:
        return (0, PE_ORDER.index(value), "")
    try:
        return (1, float(value), "")
    except (TypeError, ValueError):
        return (2, 0.0, str(value))


def mean_sd(values):
    """'mean +- sd (n)' of the values; sd is the sample standard deviation, shown when n > 1."""
    m = statistics.fmean(values)
    if len(values) == 1:
        return m, f"{number(m, 4)}"
    return m, f"{number(m, 4)} +- {number(statistics.stdev(values), 2)} ({len(values)})"


def pivot_table(records, rows, cols, metric="val_loss"):
    """Rows by one field, columns by another, each cell the mean +- sd of the metric over its runs,
    which differ in their seed only: where the runs of a cell differ in another option (a split, a
    norm, a learning rate), one table per value of those options, each headed by them; the best
    cell of each row in bold, as the log marks it."""
    check_metric(metric)
    records = [r for r in records if _finite(r[metric]) and field(r, rows) is not None and field(r, cols) is not None]
    cells = {}
    for r in records:
        cells.setdefault((field(r, rows), field(r, cols)), []).append(r)
    keys = sorted({k for r in records for k in r["options"]} - {"seed", rows, cols})
    apart = [k for k in keys if any(len({r["options"].get(k) for r in cell}) > 1 for cell in cells.values())]
    if not apart:
        return _pivot(records, rows, cols, metric)
    groups = {}
    for r in records:
        groups.setdefault(tuple(r["options"].get(k) for k in apart), []).append(r)
    tables = []
    for values, group in sorted(groups.items(), key=lambda kv: [_sort_key(v) for v in kv[0]]):
        heading = ", ".join(f"{k}={'-' if v is None else v}" for k, v in zip(apart, values))
        tables.append(f"{heading} ({len(group)} run{'s' if len(group) > 1 else ''}):\n\n{_pivot(group, rows, cols, metric)}")
    return "\n\n".join(tables)


def _pivot(records, rows, cols, metric):
    """pivot_table's one table of records whose cells differ in their seed only."""
    row_values = sorted({field(r, rows) for r in records}, key=_sort_key)
    col_values = sorted({field(r, cols) for r in records}, key=_sort_key)
    body = []
    for rv in row_values:
        cells = {}
        for cv in col_values:
            values = [r[metric] for r in records if field(r, rows) == rv and field(r, cols) == cv]
            if values:
                cells[cv] = mean_sd(values)
        best = min(cells, key=lambda c: cells[c][0]) if len(cells) > 1 else None
        body.append([rv] + [("-" if cv not in cells else
                             f"**{cells[cv][1]}**" if cv == best else cells[cv][1]) for cv in col_values])
    return markdown([f"{rows} \\ {cols}", *col_values], body)


def ranks(values):
    """1-based ranks, lowest value first; ties share their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def option_ranks(records, metric="val_loss"):
    """Which options matter. Ranks every run by the metric (1 = best), then for each option that
    varies across the runs and each of its values, the average rank of the runs that have it.

    Returns (singles, pairs): singles {option: {value: (average rank, count)}}, pairs
    {(option_a, option_b): {(value_a, value_b): (average rank, count)}}. A run without an option
    (lstm has no vocab_size) does not count for it."""
    records = ranked(records, metric)
    rank = ranks([r[metric] for r in records])
    keys = sorted({k for r in records for k in r["options"]})
    varying = [k for k in keys if len({r["options"][k] for r in records if k in r["options"]}) > 1]

    def average(groups):
        return {v: (statistics.fmean(rs), len(rs)) for v, rs in sorted(groups.items(), key=lambda kv: str(kv[0]))}

    singles, pairs = {}, {}
    for k in varying:
        groups = {}
        for r, rk in zip(records, rank):
            if k in r["options"]:
                groups.setdefault(r["options"][k], []).append(rk)
        singles[k] = average(groups)
    for a, b in itertools.combinations(varying, 2):
        groups = {}
        for r, rk in zip(records, rank):
            if a in r["options"] and b in r["options"]:
                groups.setdefault((r["options"][a], r["options"][b]), []).append(rk)
        pairs[(a, b)] = average(groups)
    return singles, pairs


def rank_table(records, metric="val_loss", top=10):
    """Markdown: options by how much their values' average ranks differ, each option=value,
    and the best option pairs."""
    n = len(ranked(records, metric))
    singles, pairs = option_ranks(records, metric)
    if not singles:
        return f"{n} runs ranked by {metric}; no option varies across them."
    spread = {k: max(a for a, _ in v.values()) - min(a for a, _ in v.values()) for k, v in singles.items()}
    by_spread = sorted(singles, key=lambda k: -spread[k])
    out = [f"{n} runs ranked by {metric} (1 = best). Options by spread (the difference between the "
           f"average ranks of their best and worst value; large = the option matters):", ""]
    rows = []
    for k in by_spread:
        v = singles[k]
        best, worst = min(v, key=lambda x: v[x][0]), max(v, key=lambda x: v[x][0])
        rows.append([k, f"{spread[k]:.1f}", len(v), f"{best} ({v[best][0]:.1f})", f"{worst} ({v[worst][0]:.1f})"])
    out += [markdown(["option", "spread", "values", "best value (avg rank)", "worst value (avg rank)"], rows), ""]
    out += ["Average rank of the runs with each option=value:", ""]
    rows = [[f"{k}={value}", count, f"{avg:.2f}"] for k in by_spread
            for value, (avg, count) in sorted(singles[k].items(), key=lambda kv: kv[1][0])]
    out += [markdown(["option=value", "runs", "average rank"], rows), ""]
    flat = [(avg, count, f"{a}={va}, {b}={vb}") for (a, b), groups in pairs.items()
            for (va, vb), (avg, count) in groups.items()]
    flat.sort(key=lambda t: (t[0], -t[1]))
    if flat:
        out += [f"The {min(top, len(flat))} best pairs of option values (of {len(flat)}):", ""]
        out += [markdown(["pair", "runs", "average rank"], [[p, c, f"{a:.2f}"] for a, c, p in flat[:top]])]
    return "\n".join(out)


def main(argv=None):
    parser = runs.Parser(description="Markdown tables of the runs under a directory.")
    parser.add_argument("root", nargs="?", default="runs", help="a directory of runs (default: runs)")
    parser.add_argument("--sort", default="val_loss", help=f"one of {', '.join(METRICS)} (lower is better)")
    parser.add_argument("--top", type=int, default=None, help="only the K best runs (pairs with --rank: default 10)")
    parser.add_argument("--filter", default=None, help="comma list of model names, KEY=VALUE or File patterns")
    parser.add_argument("--wide", action="store_true", help="losses, val_mse_last, forecasts, params and seconds")
    parser.add_argument("--pivot", default=None, help="ROWS,COLS: two fields (e.g. family,pe or vocab_size,lr)")
    parser.add_argument("--rank", action="store_true", help="average rank of each option=value and pair")
    args = parser.parse_args(argv)
    if args.sort not in METRICS:
        parser.error(f"unknown --sort {args.sort!r}; choose one of {', '.join(METRICS)}")
    if args.top is not None and args.top < 1:
        parser.error(f"--top must be at least 1, got {args.top}")
    if not os.path.isdir(args.root):
        parser.error(f"{args.root!r} is not a directory")
    records = select(load_runs(args.root), args.filter)
    if not records:
        parser.error(f"no finished runs under {args.root!r}" + (f" match --filter {args.filter}" if args.filter else ""))
    if args.pivot:
        axes = args.pivot.split(",")
        if len(axes) != 2:
            parser.error(f"--pivot takes ROWS,COLS (two fields), got {args.pivot!r}")
        known = set(COMMON) | {"family", "pe"} | {k for r in records for k in r["options"]}
        for axis in axes:
            if axis not in known:
                parser.error(f"--pivot field {axis!r} is not an option of these runs; choose from "
                             f"{', '.join(sorted(known))}")
        print(pivot_table(records, *axes, metric=args.sort))
    elif args.rank:
        print(rank_table(records, args.sort, args.top or 10))
    elif args.wide:
        print(wide_table(records, args.sort, args.top))
    else:
        print(log_table(records, args.sort, args.top))


if __name__ == "__main__":
    main()
