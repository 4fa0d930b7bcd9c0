"""Forecast with a trained run: one-step (batch) and many-step (regressive) predictions.

    python forecast.py runs/lstm_y_w_ts112_lr0.0005/2025-01-06-12-00-00
    python forecast.py runs/lstm_y_w_ts112_lr0.0005   # its latest run
    python forecast.py RUN_DIR --dataset 4single      # the log's cross-dataset test
    python forecast.py RUN_DIR --predict_rate 0.2     # predict only the last 20% of windows
    python forecast.py RUN_DIR [RUN_DIR ...] --dataset y_w,w_y,4single   # the 2025-01-06 matrix + one PNG

The model is rebuilt from the run directory alone. With n = predict_rate x (number of windows):
- batch: each of the last n values is predicted from the true window before it;
- regressive: from the true window before those n values, each prediction is fed back as
  input (the window slides by one) for n steps. With predict_rate 1 generation starts from
  the first window and produces the whole rest of the series, as in the log.
Each series is normalised with its own mean and std (as in the log); metrics and plots are in
the series' original units. Writes predict_batch_{dataset}.png, predict_regressive_{dataset}.png
and metrics_{dataset}.json into the run directory (with --positions absolute, the names end in
_absolute). Causal attention models (att, att_mh) predict regressively with a KV cache where it
gives the same forecasts (--kv_cache auto); metrics record "regressive_path": kv_cache or recompute.
"""
import json
import os

import numpy as np
import torch

import models
import runs
from data import DATASETS, DataError, check_time_steps, load_series, make_windows, normalise

POSITIONS = ("sliding", "absolute")
KV_CACHE = ("auto", "on", "off")


def load_run(run_dir, device="cpu", weights="model.pt"):
    """(model, config) rebuilt from RUN_DIR/config.json and its weights (model.pt: the ones
    training chose). A run directory that cannot be read is a one-line RunError."""
    config = runs.read_json(os.path.join(run_dir, "config.json"))
    checkpoint = runs.load_checkpoint(os.path.join(run_dir, weights), device)
    try:
        model = models.build(checkpoint["model"], **checkpoint["model_args"])
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise runs.RunError(f"not a readable run: {os.path.join(run_dir, weights)} does not fit its model "
                            f"({str(e).splitlines()[0][:120]})") from None
    return model.to(device).eval(), config


def next_value(model, x, start_pos=0):
    """The model's forecast of the value after each window: x (B, T, 1) -> (B,)."""
    out = model(x, start_pos=start_pos)
    return out[:, -1, 0] if model.target == "aligned" else out[:, 0]


@torch.no_grad()
def predict_batch(model, z, time_steps, n, device="cpu", positions="sliding", chunk=1024):
    """One-step forecasts of the last n values of z, each from the true window before it.

    positions "sliding" numbers every window 0..T-1 (the log's protocol); "absolute" gives each
    value its position in the series (window i starts at position i), one window at a time.
    """
    x, _ = make_windows(z, time_steps, model.target)
    first = len(x) - n                                  # index of the first predicted window
    x = x[first:].to(device)
    if positions == "absolute":
        return torch.cat([next_value(model, x[i:i + 1], start_pos=first + i).cpu()
                          for i in range(n)]).numpy()
    return torch.cat([next_value(model, x[i:i + chunk]).cpu() for i in range(0, n, chunk)]).numpy()


@torch.no_grad()
def predict_regressive(model, z, time_steps, n, device="cpu", positions="sliding"):
    """n forecasts, each fed back as input, starting from the window before the last n values."""
    start = len(z) - n
    window = torch.as_tensor(z[start - time_steps:start], dtype=torch.float32, device=device)
    window = window.view(1, time_steps, 1).clone()
    preds = torch.empty(n, device=device)
    for i in range(n):
        start_pos = start - time_steps + i if positions == "absolute" else 0
        preds[i] = next_value(model, window, start_pos)[0]
        window = torch.roll(window, -1, dims=1)  # slide by one ...
        window[0, -1, 0] = preds[i]              # ... and feed the forecast back
    return preds.cpu().numpy()


def regressive_path(model, positions="sliding", kv_cache="auto"):
    """How regressive prediction runs for this model: "kv_cache" or "recompute" (every window whole).

    The cache numbers positions absolutely, so it gives predict_regressive's forecasts under
    positions "absolute" always, and under "sliding" (every window from 0) when the model's
    outputs depend on positions only through their differences (relative_positions). auto uses
    the cache exactly then; on asks for it and fails where it would change the forecasts."""
    if kv_cache not in KV_CACHE:
        raise DataError(f"unknown kv_cache {kv_cache!r}; choose one of {', '.join(KV_CACHE)}")
    has_cache = hasattr(model, "new_cache") and getattr(model, "causal", False)
    same = positions == "absolute" or getattr(model, "relative_positions", False)
    if kv_cache == "off" or (kv_cache == "auto" and not (has_cache and same)):
        return "recompute"
    name = type(model).__module__.split(".")[-1]
    if not has_cache:
        raise DataError(f"kv_cache on: model {name} has no KV cache (causal attention models have one: "
                        f"att, att_mh with causal true); choose kv_cache auto or off")
    if not same:
        raise DataError(f"kv_cache on: model {name} encodes absolute positions (pe_type {model.pe_type} on "
                        f"{model.pe_on}), so the cache's absolute positions change its forecasts under "
                        f"positions sliding; choose positions absolute, or kv_cache auto or off")
    return "kv_cache"


@torch.no_grad()
def predict_regressive_cached(model, z, time_steps, n, device="cpu", positions="sliding"):
    """predict_regressive with the model's KV cache: the first window once, then one value a step.

    Positions are absolute, from 0 ("sliding") or from the window's place in the series
    ("absolute"); regressive_path says when that equals predict_regressive."""
    start = len(z) - n
    window = torch.as_tensor(z[start - time_steps:start], dtype=torch.float32, device=device)
    pos = start - time_steps if positions == "absolute" else 0   # position of window[0]
    cache = model.new_cache(time_steps)                          # each step sees time_steps values
    preds = torch.empty(n, device=device)
    preds[0] = model(window.view(1, time_steps, 1), pos, cache)[0, -1, 0]
    for i in range(1, n):  # the forecast i - 1, at position pos + time_steps + i - 1, goes in
        preds[i] = model(preds[i - 1].view(1, 1, 1), pos + time_steps + i - 1, cache)[0, -1, 0]
    return preds.cpu().numpy()


def plot(series, start, prediction, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    t = series.time
    ax.plot(t, series.values, color="0.75", lw=1, label="series")
    ax.plot(t[start:], series.values[start:], color="black", lw=1, label="actual")
    ax.plot(t[start:], prediction, color="tab:red", lw=1, label="prediction")
    ax.axvline(t[start], color="tab:blue", ls="--", lw=1, label="prediction starts")
    ax.set_xlabel(series.time_label)
    ax.set_ylabel(series.value_label)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def forecast(run_dir, dataset=None, column=None, predict_rate=1.0, device="cpu", data_dir=None,
             positions="sliding", kv_cache="auto"):
    """Batch and regressive forecasts of a data set with the run's model; returns the metrics.

    kv_cache (auto, on, off): regressive prediction with the model's KV cache; see regressive_path."""
    if not 0.0 < predict_rate <= 1.0:
        raise DataError(f"predict_rate must be in (0, 1], got {predict_rate}")
    if positions not in POSITIONS:
        raise DataError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
    run_dir = runs.latest_run(run_dir)
    model, config = load_run(run_dir, device)
    path = regressive_path(model, positions, kv_cache)
    if dataset is None:  # the training series: a CSV is found again by its path
        dataset = config["dataset"] if config["dataset"] in DATASETS else config["source"]
        column = column or config["column"]
    series = load_series(dataset, column, data_dir or config.get("data_dir"))
    z, mean, std = normalise(series.values)
    time_steps = config["time_steps"]
    check_time_steps(len(z), time_steps)
    n = max(1, int(predict_rate * (len(z) - time_steps)))
    start = len(z) - n
    actual = series.values[start:]
    tag = series.name if positions == "sliding" else f"{series.name}_{positions}"

    metrics = {"run_dir": run_dir, "dataset": series.name, "source": series.source, "column": series.column,
               "predict_rate": predict_rate, "n_predicted": n, "start_index": start, "positions": positions,
               "regressive_path": path, "normalisation": {"mean": mean, "std": std}}
    regressive = predict_regressive_cached if path == "kv_cache" else predict_regressive
    for kind, predict in (("batch", predict_batch), ("regressive", regressive)):
        try:
            pred = predict(model, z, time_steps, n, device, positions) * std + mean
        except ValueError as e:  # e.g. absolute positions past a positional table's block_size
            raise DataError(f"{kind} prediction with positions {positions}: {e}") from None
        metrics[f"mse_{kind}"] = float(np.mean((pred - actual) ** 2))
        metrics[f"mae_{kind}"] = float(np.mean(np.abs(pred - actual)))
        title = f"{config['run_name']}: {kind} on {series.name}, MSE {metrics[f'mse_{kind}']:.4g}"
        plot(series, start, pred, title, os.path.join(run_dir, f"predict_{kind}_{tag}.png"))
    runs.write_json(os.path.join(run_dir, f"metrics_{tag}.json"), metrics)
    return metrics


def cross_dataset(run_dirs, datasets, column=None, predict_rate=1.0, device="cpu", data_dir=None,
                  positions="sliding", kv_cache="auto"):
    """forecast() of every run on every data set: the log's 2025-01-06 matrix.

    Returns (table, png, cells): a markdown table with rows batch and regressive and one column
    per train-test pair (MSE, original units), the path of one PNG that lays the prediction plots
    out the same way (in the first run directory), and {"train-test": forecast metrics}."""
    cells = {}
    for run_dir in run_dirs:
        for dataset in datasets:
            m = forecast(run_dir, dataset, column, predict_rate, device, data_dir, positions, kv_cache)
            with open(os.path.join(m["run_dir"], "config.json")) as f:
                trained_on = json.load(f)["dataset"]
            cells[f"{trained_on}-{m['dataset']}"] = m
    rows = [("batch", "Batch (input is original value)"), ("regressive", "Regressive (add predicted value to input)")]
    table = ["| Method\\Trainset-Testset | " + " | ".join(cells) + " |", "|---" * (len(cells) + 1) + "|"]
    table += [f"| {label} | " + " | ".join(f"{m[f'mse_{kind}']:.6g}" for m in cells.values()) + " |"
              for kind, label in rows]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cells), figsize=(5 * len(cells), 4.4), squeeze=False)
    for col, (pair, m) in enumerate(cells.items()):
        tag = m["dataset"] if m["positions"] == "sliding" else f"{m['dataset']}_{m['positions']}"
        for row, (kind, label) in enumerate(rows):
            ax = axes[row, col]
            ax.imshow(plt.imread(os.path.join(m["run_dir"], f"predict_{kind}_{tag}.png")))  # forecast()'s plot
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{pair}, {kind}: MSE {m[f'mse_{kind}']:.4g}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label.split(" (")[0])
    fig.tight_layout()
    png = os.path.join(cells[next(iter(cells))]["run_dir"], f"predict_matrix_{'+'.join(cells)}.png")
    runs.write_atomic(png, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    plt.close(fig)
    return "\n".join(table), png, cells


def main(argv=None):
    parser = runs.Parser(description="Forecast with a trained run directory (batch and regressive).")
    parser.add_argument("run_dir", nargs="+", help="a directory written by train.py, or runs/{run_name} for its "
                        "latest run; several with a comma list of --dataset: the cross-dataset table")
    parser.add_argument("--dataset", default=None, help="data set to forecast (default: the training set)")
    parser.add_argument("--column", default=None, help="value column of a CSV data set")
    parser.add_argument("--data_dir", default=None, help="where y_w, w_y and 4single live")
    parser.add_argument("--predict_rate", type=float, default=1.0, help="fraction of windows to predict")
    parser.add_argument("--positions", default="sliding",
                        help="sliding: every window numbered 0..T-1 (the log's); absolute: positions in the series")
    parser.add_argument("--kv_cache", default="auto",
                        help="regressive prediction with a KV cache: auto (where it gives the same "
                             "forecasts: causal att models), on, off")
    parser.add_argument("--device", default="cpu", help=f"one of {', '.join(runs.DEVICES)}")
    args = parser.parse_args(argv)
    if len(args.run_dir) > 1 or "," in (args.dataset or ""):  # the log's 2025-01-06 matrix
        try:
            datasets = [d for d in (args.dataset or "").split(",") if d] or [None]
            table, png, _ = cross_dataset(args.run_dir, datasets, args.column, args.predict_rate,
                                          runs.pick_device(args.device), args.data_dir, args.positions, args.kv_cache)
        except runs.UsageError as e:
            runs.fail(parser.prog, e)
        print(f"{table}\n-> {png}")
        return
    args.run_dir = args.run_dir[0]
    try:
        m = forecast(args.run_dir, args.dataset, args.column, args.predict_rate,
                     runs.pick_device(args.device), args.data_dir, args.positions, args.kv_cache)
    except runs.UsageError as e:
        runs.fail(parser.prog, e)
    print(f"{m['dataset']}: mse_batch {m['mse_batch']:.6g}  mse_regressive {m['mse_regressive']:.6g}  "
          f"mae_batch {m['mae_batch']:.6g}  mae_regressive {m['mae_regressive']:.6g}  "
          f"({m['n_predicted']} steps) -> {m['run_dir']}")


if __name__ == "__main__":
    main()
