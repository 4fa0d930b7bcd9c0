"""Train one forecasting model on one series and write a run directory.

    python train.py --model vqlnpemlp                          # embedded default series (membrane)
    python train.py --model lstm --dataset y_w                 # a series of the research log
    python train.py --model vqlnmlp --dataset my.csv --column load --vocab_size 1024
    python train.py --model lstm --dataset y_w --split random  # the log's protocol, for its tables
    python train.py --resume runs/lstm_y_w_ts112_lr0.0005 --epochs 80   # continue a run
    python train.py --list                                     # every model and its size

Every option is a field of config.Config (`--help` lists them); every constructor argument of the
chosen model is an option too (--vocab_size, --d_model, ...). A comma list in any option makes a
grid of runs: train.py hands it to sweep.py.

Two protocols (--split). chrono, the default: the series is cut in time into train, validation
and test parts (70/10/20); normalisation statistics come from the training part; model.pt keeps
the epoch with the lowest validation error; forecast.py then backtests on the test part, which
training never reads. random: the log's protocol, whole-series statistics, a random 80/20 split
of overlapping windows, the last epoch kept, scored over the whole series (as the log's tables).

A run directory runs/{run_name}/{timestamp}/ receives config.json (the Config written out, with
the data's parts and statistics), model.pt (the weights forecasting uses), last.pt (the last
epoch, with the optimizer: --resume), losses.csv, loss.png and metrics.json, then forecast.py's
evaluation in forecasts/ (unless --no_forecast). Its life (a hidden name until the weights are
saved, Ctrl-C, resume) is runs.Training's.
"""
import hashlib
import os
import platform
import sys

if __name__ == "__main__":  # before torch: a quiet Ctrl-C, OpenMP's wait policy for a busy machine
    import runs
    runs.before_torch("train.py")

import numpy as np
import torch
import torch.nn.functional as F

import config
import models
import outputs
import runs
import scoring
from data import DATASETS, digest, load_series, split_series
from models.kernels import Adam
from models.norm import with_norm

FITS = {"adam": "Adam on the MSE", "solve": "least squares (closed form): lr, batch_size and epochs do not apply",
        "none": "none: no trainable parameters"}


def train(cfg):
    """Train one model as cfg (a config.Config) says, or continue the run cfg.resume;
    returns (run_dir, metrics)."""
    saved = None
    if cfg.resume:  # the run's own settings, with --epochs as the total to reach
        cfg, saved = config.resume(cfg)
    cfg = config.resolve(cfg)
    device = runs.pick_device(cfg.device)

    # Data: window tensors of the training and validation parts (the test part is never read here)
    series = load_series(cfg.dataset, cfg.column, cfg.data_dir, cfg.fill, cfg.date_format)
    if saved:
        config.check_series(saved, series, "train a new run on it: this run's statistics and windows came from the old")
    if series.numeric_columns > 1:  # which of several columns is the series
        print(outputs.column_line(series, cfg.column), flush=True)
    cls = models.get(cfg.model)
    data = split_series(series.values, cfg.time_steps, cls.target, cfg.split, cfg.fractions, series.field_split)
    if cfg.split == "chrono" and not cfg.no_forecast:  # the backtest's MASE needs a scale: say so before training
        scoring.naive_scale(series.values[:data.train_end], series.observed[:data.train_end])
    x_train, y_train, x_val, y_val = (t.to(device) for t in (data.x_train, data.y_train, data.x_val, data.y_val))

    # Model and optimizer; the model is built and tried on one window before anything is written
    torch.manual_seed(cfg.seed)
    model = with_norm(models.build(cfg.model, example=x_train[:1].cpu(), **cfg.model_args), cfg.norm).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    fit = "solve" if hasattr(model, "solve") else "adam" if params else "none"
    optimizer = None
    if fit == "adam":  # kernels.Adam: torch.optim.Adam(fused=True)'s update, bit for bit, started faster
        optimizer = Adam(params, cfg.lr) if device in ("cpu", "cuda") else torch.optim.Adam(params, cfg.lr)
    honest = cfg.split == "chrono"
    shuffle = torch.Generator().manual_seed(cfg.seed) if honest else None  # the log kept one fixed order
    record = saved or describe(cfg, series, data, device, FITS[fit])
    record.update(epochs=cfg.epochs, interrupted=False)

    with runs.Training(record, lambda m: evaluate(m, x_val, y_val), cfg.out_dir, resume=cfg.resume) as run:
        run.restore(model, optimizer, shuffle)
        if fit == "solve":  # a closed-form fit (least squares), recorded as epoch 1
            model.solve(x_train[:], y_train[:])  # every training window at once
            run.end_epoch(model, 1, evaluate(model, x_train, y_train)[0], *evaluate(model, x_val, y_val))
        n = len(x_train)
        for epoch in run.epochs():
            order = torch.randperm(n, generator=shuffle).to(device) if shuffle else torch.arange(n, device=device)
            total, seen, batch_means = torch.zeros((), device=device), 0, []
            for i in range(0, n, cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                loss = F.mse_loss(model(x_train[idx]), y_train[idx])  # (B, T, 1) or (B, 1): the model's objective
                if optimizer:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                total += loss.detach() * len(idx)
                seen += len(idx)
                if not honest:  # the log's epoch loss; a list of one tensor per step would pin memory
                    batch_means.append(loss.detach())
                if run.stopped:  # Ctrl-C: finish this step, then save what was trained
                    break
            # the log's epoch loss is the mean of its batch means; ours the mean over windows
            train_loss = total.item() / seen if honest else torch.stack(batch_means).mean().item()
            run.end_epoch(model, epoch, train_loss, *evaluate(model, x_val, y_val), complete=seen == n)
        run.save(model)

    model.load_state_dict(run.best["state"])
    chosen = next(r for r in run.rows if r["epoch"] == run.best["epoch"])
    trainable, fixed = models.count_parameters(model)
    metrics = {**{k: chosen[k] for k in ("train_loss", "val_loss", "val_mse_last")},
               "val_mse_last_original_units": chosen["val_mse_last"] * data.std ** 2,
               "val_mse_last_mean_forecast": float((y_val[:, -1].double() ** 2).mean()),  # the training mean's error
               "best_epoch": run.best["epoch"], "epochs_run": run.rows[-1]["epoch"], "fit": record["fit"],
               "interrupted": run.stopped, "partial_epochs": [r["epoch"] for r in run.rows if not r["complete"]],
               "diverged_epochs": [r["epoch"] for r in run.rows if r["complete"] and not runs.usable(r)],
               "trainable_parameters": trainable, "fixed_parameters": fixed, "seconds": run.rows[-1]["seconds"]}
    with runs.big_blocks_returned():  # its chunks' scores are not kept for training's reuse
        usage = models.codebook_usage(model, x_val)
    if usage:
        metrics["codebook_usage"] = usage
    runs.write_json(os.path.join(run.dir, "metrics.json"), metrics)
    return run.dir, metrics


@torch.no_grad()
def evaluate(model, x, y, values=1024 * 96):
    """(loss, mse_last): the model's own objective and the MSE of the value after each window,
    `values` window values at a time (1024 windows of 96), so memory does not grow with the series."""
    chunk = max(1, values // x.shape[1])
    model.eval()
    loss = last = 0.0
    with runs.big_blocks_returned():  # a chunk's scores, larger than a step's: not kept for reuse
        for i in range(0, len(x), chunk):
            out = model(x[i:i + chunk])
            yb = y[i:i + chunk]
            loss += F.mse_loss(out, yb, reduction="sum").item() / yb[0].numel()
            last += F.mse_loss(out[:, -1], yb[:, -1], reduction="sum").item()
            del out, yb                                              # before the next chunk's forward
    model.train()
    return loss / len(x), last / len(x)


def describe(cfg, series, data, device, fit):
    """config.json: the resolved Config, with what training found in the data and how it ran."""
    honest = cfg.split == "chrono"
    return {
        **config.record(cfg, dataset=series.name, column=series.column, device=device),
        "column_index": getattr(series, "column_index", None),  # found again by position where names repeat
        "run_name": run_name(cfg, series), "target": models.get(cfg.model).target,
        "source": series.source, "sha256": series.sha256, "values_sha256": digest(series), "filled": series.filled,
        "fractions": list(cfg.fractions) if honest and cfg.fractions else None,  # None: the field's split
        "parts": {"train_end": data.train_end, "val_end": data.val_end, "test_end": data.test_end, "n_values": len(data.z)},
        "fit": fit, "normalisation": {"mean": data.mean, "std": data.std},
        "normalised_on": "training part" if honest else "whole series (the log's protocol)",
        "n_windows": {"train": len(data.x_train), "val": len(data.x_val)},
        "selection": "model.pt: the epoch with the lowest val_mse_last" if honest else "model.pt: the last epoch",
        "versions": {"python": platform.python_version(), "torch": torch.version.__version__, "numpy": np.__version__},
        "command": [os.path.basename(sys.argv[0])] + sys.argv[1:],
    }


def run_name(cfg, series):
    """config.run_name of the run; a CSV whose name is taken in --out_dir by runs of another file of
    that name (/a/nile.csv, then /b/other/nile.csv) adds its folder's name (nile-other), or failing
    that a hash of its path: runs/{name} never mixes two series."""
    column = chosen_column(cfg, series)
    name = config.run_name(cfg, series.name, column)
    if series.name in DATASETS:
        return name
    folder = os.path.basename(os.path.dirname(series.source))
    for other in (f"{series.name}-{folder}", f"{series.name}-{hashlib.sha256(series.source.encode()).hexdigest()[:8]}"):
        if not runs.holds_other_source(os.path.join(cfg.out_dir, name), series.source):
            return name
        name = config.run_name(cfg, other, column)
    return name


def chosen_column(cfg, series):
    """The column --column chose, where it is not the one the series is read from by default (None)."""
    if cfg.column is None:
        return None
    try:
        default = load_series(cfg.dataset, None, cfg.data_dir, cfg.fill, cfg.date_format).column
    except runs.UsageError:  # no default: several candidates
        default = None
    return series.column if series.column != default else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    runs.ctrl_c_interrupts()
    if config.is_sweep(argv):  # comma lists: a grid of runs, which sweep.py runs
        return runs.run_script("sweep.py", argv, prog="train.py")
    cfg, what = config.parse(argv)
    if what == "list":
        print("\n".join(models.table()))
        return
    run_dir = None
    try:
        run_dir, metrics = train(cfg)
        print(outputs.train_line(metrics))
        if outputs.diverged_line(metrics):
            print(outputs.diverged_line(metrics))
        if metrics["interrupted"]:  # the first Ctrl-C: the run is saved; its backtest is not wanted now
            print(f"-> {run_dir}")
            runs.fail("train.py", f"interrupted by Ctrl-C after epoch {metrics['epochs_run']}: the run is saved; "
                      f"continue it with python train.py --resume {run_dir} --epochs N, or evaluate it with python "
                      f"forecast.py {run_dir}", status=130)
        if not cfg.no_forecast:
            import forecast
            print(forecast.evaluate(run_dir, device=runs.pick_device(cfg.device)))
    except runs.UsageError as e:  # DataError, ModelError, RunError: the user's to fix
        runs.fail("train.py", e)
    except runs.Interrupted as e:  # a second Ctrl-C during training
        if e.run_dir:
            print(f"-> {e.run_dir}")
        runs.fail("train.py", f"interrupted (a second Ctrl-C): the epochs saved before it are in {e.run_dir}; "
                  f"continue with --resume" if e.run_dir else "interrupted before the first epoch ended: "
                  "nothing was written", status=130)
    except KeyboardInterrupt:
        where = f"the run is saved in {run_dir}, its backtest was not written" if run_dir else "nothing was written"
        runs.fail("train.py", f"interrupted (Ctrl-C): {where}", status=130)
    print(f"-> {run_dir}")


if __name__ == "__main__":
    main()
