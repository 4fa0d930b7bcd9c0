"""The research log's evaluation, kept so that its tables can be compared with ours.

The log scored a model over the whole series it was trained on, training windows included, two
ways: batch, a one-step forecast of every value from the true window before it, and regressive,
forecasts fed back as inputs from one window to the series' end. That measures fit to data the
model has seen (forecast.py's backtest measures forecasts of data it never saw); forecast.py runs
it for runs trained with --split random, and on a chrono run's test part. Positions are numbered
per window (sliding, the log's) or along the series (absolute); the 2025-01-06 entry's
cross-dataset matrix evaluates every run on every series.
"""
import os

import numpy as np
import torch

import outputs
import runs
from data import make_windows
from models.rollout import next_value, regress, regressive_path
from runs import DataError

POSITIONS = ("sliding", "absolute")


@torch.no_grad()
def predict_batch(model, z, time_steps, n, device="cpu", positions="sliding", chunk=1024):
    """One-step forecasts of the last n values of z, each from the true window before it.

    positions "sliding" numbers every window 0..T-1 (the log's protocol); "absolute" gives each
    value its position in the series (window i starts at position i), one window at a time.
    """
    first = len(z) - time_steps - n                     # index of the first predicted window
    x, _ = make_windows(z, time_steps, model.target, starts=range(first, first + n))
    x = x.to(device)                                    # read per chunk
    if positions == "absolute":
        return torch.cat([next_value(model, x[i:i + 1], start_pos=first + i).cpu()
                          for i in range(n)]).numpy()
    return torch.cat([next_value(model, x[i:i + chunk]).cpu() for i in range(0, n, chunk)]).numpy()


def predict_regressive(model, z, time_steps, n, device="cpu", positions="sliding", path="recompute"):
    """n forecasts, each fed back as input, starting from the window before the last n values."""
    start = len(z) - n
    window = torch.as_tensor(z[start - time_steps:start], dtype=torch.float32, device=device).view(1, -1, 1)
    first_pos = start - time_steps if positions == "absolute" else None
    return regress(model, window, n, path, first_pos)[0].cpu().numpy()


def predict_regressive_cached(model, z, time_steps, n, device="cpu", positions="sliding"):
    """predict_regressive with the model's KV cache: the first window once, then one value a step."""
    return predict_regressive(model, z, time_steps, n, device, positions, path="kv_cache")


def evaluate(run, predict_rate=None, device="cpu", positions="sliding", kv_cache="auto"):
    """Batch and regressive forecasts with a run's model (forecast.load); returns the metrics.

    Under the log's protocol over the last predict_rate of windows (default 1: the whole series);
    under chrono over the test part (predict_rate is the log's and is refused). Writes
    predict_batch.png, predict_regressive.png and metrics.json into a new RUN/forecasts/{settings}/
    (metrics["folder"]). kv_cache (auto, on, off): regressive prediction with the model's KV cache;
    see models/rollout.py."""
    if positions not in POSITIONS:
        raise DataError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
    if run.honest and predict_rate is not None:
        raise DataError("--predict_rate belongs to the log's protocol (--split random); this run is scored "
                        "on its test part (use --horizon)")
    predict_rate = 1.0 if predict_rate is None else predict_rate
    if not 0.0 < predict_rate <= 1.0:
        raise DataError(f"--predict_rate must be in (0, 1], got {predict_rate}")
    path = regressive_path(run.model, positions, kv_cache)
    T, series = run.time_steps, run.series
    z = run.z[:run.test_end]  # a field split leaves the series' last values out of every part
    n = len(z) - run.val_end if run.honest else max(1, int(predict_rate * (len(z) - T)))
    start = len(z) - n
    actual, scored = series.values[start:len(z)], run.observed[start:len(z)]
    tag = f"{series.name}_{'test' if run.honest else 'log'}" + (f"_rate{predict_rate:g}" if predict_rate != 1 else "") \
        + ("_absolute" if positions == "absolute" else "") + (f"_kv{kv_cache}" if kv_cache != "auto" else "") \
        + outputs.stats_tag(run)
    metrics = {"run_dir": run.run_dir, "dataset": series.name, "source": series.source, "column": series.column,
               "protocol": run.config["split"], "predict_rate": None if run.honest else predict_rate,
               "n_predicted": n, "start_index": start, "positions": positions, "regressive_path": path,
               "normalisation": {"mean": run.mean, "std": run.std}, "norm": run.config.get("norm", "global")}
    predictions = {}
    for kind in ("batch", "regressive"):
        try:
            if kind == "batch":
                pred = predict_batch(run.model, z, T, n, device, positions)
            else:
                pred = predict_regressive(run.model, z, T, n, device, positions, path)
        except ValueError as e:  # e.g. absolute positions past a positional table's block_size
            raise DataError(f"{kind} prediction with positions {positions}: {e}") from None
        predictions[kind] = pred = pred.astype(np.float64) * run.std + run.mean
        metrics[f"mse_{kind}"] = float(np.mean((pred - actual)[scored] ** 2))
        metrics[f"mae_{kind}"] = float(np.mean(np.abs(pred - actual)[scored]))

    def write(folder):
        for kind, pred in predictions.items():
            title = f"{run.config['run_name']}: {kind} on {series.name}, MSE {metrics[f'mse_{kind}']:.4g}"
            outputs.plot(series, start, pred, title, os.path.join(folder, f"predict_{kind}.png"))
        runs.write_json(os.path.join(folder, "metrics.json"), metrics)
    metrics["folder"] = runs.output_folder(run.run_dir, tag, write, run.weights)
    return metrics


def line(m):
    """The line forecast.py prints of evaluate()'s metrics m."""
    return (f"{m['dataset']}: mse_batch {m['mse_batch']:.6g}  mse_regressive {m['mse_regressive']:.6g}  "
            f"mae_batch {m['mae_batch']:.6g}  mae_regressive {m['mae_regressive']:.6g}  "
            f"({m['n_predicted']} steps) -> {m['folder']}")


def cross_dataset(loaded, predict_rate=None, device="cpu", positions="sliding", kv_cache="auto"):
    """evaluate() of every run on every data set: the log's 2025-01-06 matrix. loaded: runs from
    forecast.load, each run with each data set in turn.

    Returns (table, png, cells): a markdown table with rows batch and regressive and one column
    per train-test pair (MSE, original units), the path of one PNG that lays the prediction plots
    out the same way (in the first run's forecasts/), and {"train-test": evaluate's metrics}."""
    cells = {}
    for run in loaded:
        m = evaluate(run, predict_rate, device, positions, kv_cache)
        cells[f"{run.config['dataset']}-{m['dataset']}"] = m
    rows = [("batch", "Batch (input is original value)"), ("regressive", "Regressive (add predicted value to input)")]
    table = ["| Method\\Trainset-Testset | " + " | ".join(cells) + " |", "|---" * (len(cells) + 1) + "|"]
    table += [f"| {label} | " + " | ".join(f"{m[f'mse_{kind}']:.6g}" for m in cells.values()) + " |"
              for kind, label in rows]

    plt = outputs.pyplot()
    fig, axes = plt.subplots(2, len(cells), figsize=(5 * len(cells), 4.4), squeeze=False)
    for col, (pair, m) in enumerate(cells.items()):
        for row, (kind, label) in enumerate(rows):
            ax = axes[row, col]
            ax.imshow(plt.imread(os.path.join(m["folder"], f"predict_{kind}.png")))  # evaluate()'s plot
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{pair}, {kind}: MSE {m[f'mse_{kind}']:.4g}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label.split(" (")[0])
    fig.tight_layout()
    folder = runs.output_folder(loaded[0].run_dir, f"matrix_{'+'.join(cells)}",
                                lambda folder: fig.savefig(os.path.join(folder, "predict_matrix.png"), dpi=150, format="png"),
                                loaded[0].weights)
    plt.close(fig)
    return "\n".join(table), os.path.join(folder, "predict_matrix.png"), cells
