"""Train one forecasting model on one series and write a run directory.

    python train.py --model vqlnpemlp                          # embedded default series (membrane)
    python train.py --model lstm --dataset y_w                 # a series of the research log
    python train.py --model vqlnmlp --dataset my.csv --column load --vocab_size 1024
    python train.py --model lstm --dataset y_w --split random  # the log's protocol, for its tables
    python train.py --resume runs/lstm_y_w_ts112_lr0.0005 --epochs 80   # continue a run
    python train.py --list                                     # every model and its size

Every constructor argument of the chosen model is an option (--vocab_size, --d_model, ...).
A comma list in any option makes a grid of runs: train.py hands it to sweep.py.

Two protocols (--split). chrono, the default: the series is cut in time into train, validation
and test parts (70/10/20); normalisation statistics come from the training part; model.pt keeps
the epoch with the lowest validation error; forecast.py then backtests on the test part, which
training never reads. random: the log's protocol, whole-series statistics, a random 80/20 split
of overlapping windows, the last epoch kept, scored over the whole series (as the log's tables).

A model that declares fit = "least_squares" (linear) is not trained by Adam: its weights are the
least-squares solution on the training windows, one solve (models/__init__.py).

A run directory runs/{run_name}/{timestamp}/ receives config.json, model.pt (the weights
forecasting uses), last.pt (the last epoch, with the optimizer: --resume), losses.csv, loss.png
and metrics.json, then forecast.py's evaluation (unless --no_forecast) in forecasts/. --resume moves
the forecasts of the weights it replaces to forecasts-before-resume-epoch{N}/ (N: the epochs run before).
Where stderr is not a terminal (python train.py ... > log.txt 2>&1) a line per epoch replaces tqdm's bar.
"""
import argparse
import copy
import csv
import ctypes
import math
import os
import platform
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import models
import outputs
import runs
from data import DATASETS, DEFAULT_FRACTIONS, FILL_MODES, SPLITS, DataError, load_series, split_series
from models.norm import CHRONO_NORM, NORMS, with_norm

TRAINING = ("time_steps", "batch_size", "lr", "epochs")
FITS = {"adam": "Adam on the MSE",  # how a model is fit: models/__init__.py, the protocol's `fit`
        "least_squares": "least squares (closed form): lr, batch_size and epochs do not apply"}


def train(args, model_args):
    """Train one model as args say, or continue the run args.resume; returns (run_dir, metrics)."""
    resumed = load_resume(args) if args.resume else None
    if resumed:
        config, model_args = resumed["config"], resumed["config"]["model_args"]
    cls, hp, model_args = settings(args, model_args)
    runs.check_positive(batch_size=hp["batch_size"], time_steps=hp["time_steps"])
    if hp["epochs"] < 0 or hp["lr"] <= 0:
        raise DataError(f"--epochs must be >= 0 and --lr > 0, got epochs {hp['epochs']}, lr {hp['lr']}")
    fit = getattr(cls, "fit", "adam")
    closed_form = fit == "least_squares"
    if closed_form:
        hp["epochs"] = 1  # one solve, recorded as epoch 1; lr and batch_size do not apply either
    defaults = models.options(cls)
    device = runs.pick_device(args.device)
    keep_freed_memory()
    threads = runs.Threads()  # as many threads as other processes leave cores free
    threads.start()

    # Data: window tensors of the training and validation parts (split_series never reads the test part)
    series = load_series(args.dataset, args.column, args.data_dir, args.fill, args.date_format)
    fractions = (1 - args.val_fraction - args.test_fraction, args.val_fraction, args.test_fraction)
    if args.split == "chrono" and not (args.val_fraction > 0 and args.test_fraction > 0 and fractions[0] > 0):
        raise DataError(f"--val_fraction {args.val_fraction} --test_fraction {args.test_fraction}: each must be "
                        f"above 0 and together below 1 (training takes the rest), e.g. 0.1 and 0.2")
    if args.norm is None:  # the log's protocol reads the global level; chrono: what validation chose
        args.norm = "global" if args.split == "random" else CHRONO_NORM
    if args.split == "random" and args.norm != "global":
        raise DataError(f"--norm {args.norm} with --split random: the log's protocol normalises the whole series "
                        f"(--norm global); choose --norm global or --split chrono")
    data = split_series(series.values, hp["time_steps"], cls.target, args.split, fractions)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_val, y_val = data.x_val.to(device), data.y_val.to(device)

    # Model and optimizer; the model is built and tried on one window before anything is written
    torch.manual_seed(args.seed)
    model = with_norm(models.build(args.model, example=x_train[:1].cpu(), **model_args), args.norm).to(device)
    trainable, fixed = models.count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    fitted = FITS[fit] if params else "none: no trainable parameters"  # config.json and metrics.json say how
    optimizer = (Adam(params, hp["lr"]) if device in ("cpu", "cuda") else torch.optim.Adam(params, hp["lr"])) \
        if params and not closed_form else None
    honest = args.split == "chrono"
    shuffle = torch.Generator().manual_seed(args.seed) if honest else None  # the log kept one fixed order
    select = "val_mse_last" if honest else None  # chrono keeps the best validation epoch; the log the last
    rows, best = [], {"epoch": 0, "score": float("inf"), "state": None}
    progress = runs.Progress()  # a line per epoch where stderr is a log file, not a terminal

    if resumed:
        run_dir, partial = args.resume, None
        model.load_state_dict(resumed["last"]["state_dict"])
        if optimizer and resumed["last"].get("optimizer"):
            optimizer.load_state_dict(resumed["last"]["optimizer"])
        if shuffle is not None:
            shuffle.set_state(resumed["last"]["shuffle"])
        rows = resumed["rows"]
        resumed_from = rows[-1]["epoch"]
        best = {"epoch": resumed["last"]["best_epoch"], "score": resumed["last"]["best_score"],
                "state": runs.load_checkpoint(os.path.join(run_dir, "model.pt"))["state_dict"]}
        config.update(epochs=hp["epochs"], interrupted=False)
    else:
        name = runs.run_name(args.model, model_args, defaults, series.name, hp["time_steps"], hp["lr"]) \
            + (f"_norm{args.norm}" if args.norm != (CHRONO_NORM if honest else "global") else "")
        run_dir = partial = runs.new_run_dir(args.out_dir, name)
        config = {
            "run_name": name, "model": args.model, "model_args": model_args, "target": cls.target, **hp,
            "dataset": series.name, "column": series.column, "source": series.source,
            "sha256": series.sha256, "data_dir": args.data_dir, "fill": args.fill, "filled": series.filled,
            "date_format": args.date_format, "split": args.split, "norm": args.norm,
            "fractions": list(fractions) if honest else None,
            "parts": {"train_end": data.train_end, "val_end": data.val_end, "n_values": len(data.z)},
            "fit": fitted, "seed": args.seed, "device": device,
            "normalisation": {"mean": data.mean, "std": data.std},
            "normalised_on": "training part" if honest else "whole series (the log's protocol)",
            "n_windows": {"train": len(x_train), "val": len(x_val)},
            "selection": f"model.pt: the epoch with the lowest {select}" if honest else "model.pt: the last epoch",
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
            "command": [os.path.basename(sys.argv[0])] + sys.argv[1:], "interrupted": False,
        }

    stop = []  # Ctrl-C: finish the current step, then save what was trained
    def on_sigint(signum, frame):
        stop.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
    previous = signal.signal(signal.SIGINT, on_sigint)

    try:
        t0 = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
        if closed_form:  # the least-squares weights in one solve, as epoch 1 (the loop below then has none)
            (head,) = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]  # the protocol: one Linear
            x_fit, y_fit = x_train, y_train
            if hasattr(model, "normalise"):  # --norm last/revin: fit what the model reads and returns
                x_fit, loc, scale = model.normalise(x_train)                # loc, scale (N, 1, 1) or 1
                y_fit = (y_train - loc[:, 0]) / (scale[:, 0] if torch.is_tensor(scale) else scale)
            weight, bias = least_squares(x_fit, y_fit)
            with torch.no_grad():
                head.weight.copy_(weight.view_as(head.weight))
                head.bias.fill_(bias.item())
            train_loss, _ = evaluate(model, x_train, y_train)
            val_loss, val_mse_last = evaluate(model, x_val, y_val)
            rows.append({"epoch": 1, "train_loss": train_loss, "val_loss": val_loss, "val_mse_last": val_mse_last,
                         "seconds": time.perf_counter() - t0, "complete": 1})
            best = {"epoch": 1, "score": val_mse_last, "state": copy.deepcopy(model.state_dict())}
        first = rows[-1]["epoch"] + 1 if rows else 1
        initial = copy.deepcopy(model.state_dict()) if not rows else None  # model.pt if no epoch completes
        bar = tqdm(range(first, hp["epochs"] + 1), desc=config["run_name"], unit="epoch", leave=False, disable=None)
        for epoch in bar:
            n = len(x_train)
            order = torch.randperm(n, generator=shuffle).to(device) if shuffle else torch.arange(n, device=device)
            total, seen, batch_means = torch.zeros((), device=device), 0, []
            for i in range(0, n, hp["batch_size"]):
                idx = order[i:i + hp["batch_size"]]
                loss = F.mse_loss(model(x_train[idx]), y_train[idx])          # the model's objective
                if optimizer:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                total += loss.detach() * len(idx)
                seen += len(idx)
                batch_means.append(loss.detach())
                if stop:
                    break
            complete = seen == n  # Ctrl-C stops mid-epoch: a partial epoch, never chosen for model.pt
            # the log's epoch loss is the mean of its batch means; ours the mean over windows
            train_loss = (total.item() / seen if honest else torch.stack(batch_means).mean().item())
            val_loss, val_mse_last = evaluate(model, x_val, y_val)
            rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                         "val_mse_last": val_mse_last, "seconds": time.perf_counter() - t0, "complete": int(complete)})
            score = rows[-1][select] if select else -epoch                   # the log: the last epoch wins
            if complete and score < best["score"]:
                best = {"epoch": epoch, "score": score, "state": copy.deepcopy(model.state_dict())}
            bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val_loss:.4g}", val_mse_last=f"{val_mse_last:.4g}")
            progress.line(f"epoch {epoch}/{hp['epochs']}  train {train_loss:.4g}  val {val_loss:.4g}  "
                          f"val_mse_last {val_mse_last:.4g}  {rows[-1]['seconds']:.1f}s"
                          + ("" if complete else "  (partial: stopped by Ctrl-C)"),
                          first=epoch == first, last=epoch == hp["epochs"] or bool(stop))
            if stop:
                break
            threads.update()
        bar.close()
        if initial is not None and not any(r["complete"] for r in rows):
            # no epoch completed (--epochs 0, or Ctrl-C in the first): model.pt is the untrained model, epoch 0
            trained = copy.deepcopy(model.state_dict())
            model.load_state_dict(initial)
            val_loss, val_mse_last = evaluate(model, x_val, y_val)
            model.load_state_dict(trained)
            rows.insert(0, {"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_mse_last": val_mse_last,
                            "seconds": 0.0, "complete": 1})
            best = {"epoch": 0, "score": float("inf"), "state": initial}
        if best["state"] is None:
            best = {"epoch": rows[-1]["epoch"], "score": float("inf"), "state": model.state_dict()}

        # Save: the weights forecasting uses, then the last epoch with all it takes to resume
        config["interrupted"] = bool(stop)
        save_run(run_dir, config, model_args, best, model, optimizer, shuffle, rows)
        if partial:
            run_dir = runs.finish_run_dir(partial)
        elif os.path.isdir(os.path.join(run_dir, "forecasts")):  # made with the weights this resume replaced
            runs.rename_unique(os.path.join(run_dir, "forecasts"),
                               os.path.join(run_dir, f"forecasts-before-resume-epoch{resumed_from}"))
    except BaseException:
        if partial:
            runs.discard_run_dir(partial)  # a run directory is complete or absent
        raise
    finally:
        signal.signal(signal.SIGINT, previous)

    model.load_state_dict(best["state"])
    usage = codebook_usage(model, x_val)
    chosen = next(r for r in rows if r["epoch"] == best["epoch"])
    metrics = {"train_loss": chosen["train_loss"], "val_loss": chosen["val_loss"],
               "val_mse_last": chosen["val_mse_last"],
               "val_mse_last_original_units": chosen["val_mse_last"] * data.std ** 2,
               "best_epoch": best["epoch"], "epochs_run": rows[-1]["epoch"], "fit": fitted,
               "interrupted": bool(stop), "partial_epochs": [r["epoch"] for r in rows if not r["complete"]],
               "trainable_parameters": trainable, "fixed_parameters": fixed, "seconds": rows[-1]["seconds"]}
    if usage:
        metrics["codebook_usage"] = usage
    runs.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    return run_dir, metrics


def least_squares(x, y):
    """(weight (T,), bias): the least-squares fit of y (N, 1) from windows x (N, T, 1), minimising
    sum_i (x_i . weight + bias - y_i) ** 2, in float64 on the CPU (the minimum-norm one where the
    windows do not determine it, to float32's precision). What models that declare fit = "least_squares" are trained by."""
    X = x.detach().flatten(1).cpu().double()                           # (N, T)
    X = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)    # (N, T + 1): the bias's column
    # x is float32: a direction whose singular value is below a millionth of the largest is rounding
    # (under --norm revin every window sums to 0, up to rounding), and is left out, not fit
    solution = torch.linalg.lstsq(X, y.detach().cpu().double().view(-1, 1), rcond=1e-6, driver="gelsd").solution
    return solution[:-1, 0], solution[-1, 0]


def inert_options(model):
    """(training options that cannot change this model's result, why) or ((), None): a model with
    nothing to learn or draw (naive), or one fit in closed form (least squares: the same windows
    give the same weights), is the same for any lr, batch_size, epochs and seed. sweep.py runs it
    once for all of them."""
    if getattr(model, "fit", None) == "least_squares":
        return ("lr", "batch_size", "epochs", "seed"), "fit by least squares in closed form"
    if sum(models.count_parameters(model)) == 0:
        return ("lr", "batch_size", "epochs", "seed"), "nothing to train"
    return (), None


def settings(args, model_args):
    """(model class, training settings, constructor arguments) that args and model_args ask for:
    the model's own defaults where they name none (time_steps, batch_size, lr, epochs; every
    constructor argument, block_size following time_steps)."""
    cls = models.get(args.model)
    hp = {k: getattr(args, k) if getattr(args, k) is not None else cls.train_defaults[k] for k in TRAINING}
    return cls, hp, {**models.options(cls), **models.positions(cls, hp["time_steps"]), **model_args}


def save_run(run_dir, config, model_args, best, model, optimizer, shuffle, rows):
    """model.pt (rebuilds the model alone), last.pt (resumes training), config, losses, plot."""
    def cpu(state):
        return {k: v.detach().cpu() for k, v in state.items()}
    weights = {"model": config["model"], "model_args": model_args, "epoch": best["epoch"]}
    runs.write_atomic(os.path.join(run_dir, "model.pt"),
                      lambda tmp: torch.save({**weights, "state_dict": cpu(best["state"])}, tmp))
    last = {**weights, "epoch": rows[-1]["epoch"], "state_dict": cpu(model.state_dict()),
            "optimizer": optimizer.state_dict() if optimizer else None,
            "shuffle": shuffle.get_state() if shuffle is not None else None,
            "best_epoch": best["epoch"], "best_score": best["score"]}
    runs.write_atomic(os.path.join(run_dir, "last.pt"), lambda tmp: torch.save(last, tmp))
    runs.write_json(os.path.join(run_dir, "config.json"), config)

    def write_losses(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    runs.write_atomic(os.path.join(run_dir, "losses.csv"), write_losses)
    epochs = [r["epoch"] for r in rows]
    curves = {"train loss": (epochs, [r["train_loss"] for r in rows]),
              "validation loss": (epochs, [r["val_loss"] for r in rows]),
              "~val_mse_last": (epochs, [r["val_mse_last"] for r in rows])}
    outputs.plot_curves(curves, config["run_name"], "MSE (normalised units)", os.path.join(run_dir, "loss.png"))


class Adam:
    """Adam (betas 0.9, 0.999, eps 1e-8) with torch's fused kernel: the update that
    torch.optim.Adam(fused=True) makes, bit for bit (tests/test_train.py), without torch.optim.
    Constructing any torch.optim optimizer imports torch._dynamo, which takes as long as importing
    torch itself: about a second of every train.py process on a 2-core machine, where a small
    model trains in two (docs/BENCHMARKS.md). CPU and CUDA; train.py uses torch.optim elsewhere."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # as torch.optim: skip unused
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                           [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [], steps,
                           amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           maximize=False, grad_scale=None, found_inf=None)

    def state_dict(self):
        return {"lr": self.lr, "steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state):
        for name in ("steps", "exp_avg", "exp_avg_sq"):
            for mine, saved in zip(getattr(self, name), state[name]):
                mine.copy_(saved)


def load_resume(args):
    """What --resume needs: the run's config, its losses and last.pt; the run's own settings
    replace the command line's (only --epochs, --device, --no_forecast, --data_dir may be given)."""
    run_dir = runs.latest_run(args.resume, weights="last.pt")
    config = runs.read_config(run_dir)
    if getattr(models.get(config["model"]), "fit", None) == "least_squares":
        raise DataError(f"--resume {run_dir}: model {config['model']} is fit by least squares in one solve, "
                        f"so there is nothing to continue; its model.pt is final")
    last = runs.load_checkpoint(os.path.join(run_dir, "last.pt"))
    with open(os.path.join(run_dir, "losses.csv"), newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:
        r["epoch"] = int(r["epoch"])
        r["complete"] = int(r.get("complete") if r.get("complete") is not None else 1)  # older runs: all complete
    epochs = args.epochs if args.epochs is not None else config["epochs"]
    if epochs <= rows[-1]["epoch"]:
        raise DataError(f"--resume {run_dir}: it has run {rows[-1]['epoch']} epochs already; "
                        f"give --epochs larger than that")
    args.resume, args.model, args.dataset, args.column = run_dir, config["model"], config["dataset"], config["column"]
    if config["dataset"] not in DATASETS:
        args.dataset = config["source"]
    args.data_dir = args.data_dir or config.get("data_dir")
    args.fill, args.date_format = config.get("fill"), config.get("date_format")
    args.split, args.seed, args.epochs = config["split"], config["seed"], epochs
    args.norm = config.get("norm", "global")  # runs from before --norm read the global level
    for k in ("time_steps", "batch_size", "lr"):
        setattr(args, k, config[k])
    if config.get("fractions"):
        args.val_fraction, args.test_fraction = config["fractions"][1], config["fractions"][2]
    return {"config": config, "last": last, "rows": rows}


@torch.no_grad()
def evaluate(model, x, y, chunk=2048):
    """(loss, mse_last): the model's own objective and the MSE of the value after each window."""
    model.eval()
    loss = last = 0.0
    for i in range(0, len(x), chunk):
        out = model(x[i:i + chunk])
        yb = y[i:i + chunk]
        loss += F.mse_loss(out, yb, reduction="sum").item() / yb[0].numel()
        last += F.mse_loss(out[:, -1], yb[:, -1], reduction="sum").item()
    model.train()
    return loss / len(x), last / len(x)


@torch.no_grad()
def codebook_usage(model, x, chunk=256):
    """Per head: perplexity of the mean code distribution and the fraction of codes that are
    the argmax of at least one input, over inputs x (B, T, 1)."""
    if not hasattr(model, "code_probs"):
        return None
    model.eval()
    total, hits = 0.0, None
    for i in range(0, len(x), chunk):
        p = model.code_probs(x[i:i + chunk]).flatten(0, 1)      # (N, heads, V)
        total = total + p.sum(0)
        chosen = F.one_hot(p.argmax(-1), p.shape[-1]).amax(0)  # (heads, V): 1 where some input chose it
        hits = chosen if hits is None else torch.maximum(hits, chosen)
    model.train()
    mean = total / total.sum(-1, keepdim=True)                  # (heads, V)
    entropy = -(mean * mean.clamp_min(1e-30).log()).sum(-1)
    return [{"head": h, "perplexity": float(entropy[h].exp()), "used_fraction": float(hits[h].float().mean()),
             "vocab_size": int(mean.shape[-1])} for h in range(mean.shape[0])]


def keep_freed_memory(limit=256 << 20):
    """Ask glibc to keep freed buffers of up to `limit` bytes for reuse instead of unmapping them.

    A training step allocates activations of a few MB (oneDNN's LSTM workspace, the VQ models'
    positions x codes scores) and frees them at its end. By default glibc hands such blocks back to
    the kernel, so the next step page-faults the same amount of fresh zeroed memory: 11,430 page
    faults and 27 ms of system time in every 42 ms lstm step (batch 64) on a 2-core machine, which
    this setting brings to 21 ms (see docs/BENCHMARKS.md). It changes no number a model computes,
    only where its memory comes from. Linux with glibc only; elsewhere it does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, limit)  # blocks below this come from the heap, not a fresh mmap
    mallopt(M_TRIM_THRESHOLD, limit)  # free heap below this stays with the process


def list_models():
    print(f"{'model':16s} {'target':8s} {'trainable':>9s} {'fixed':>7s} {'codes':>6s} {'vocabulary':>10s}  description")
    for name in models.names():
        torch.manual_seed(0)
        model = models.build(name)
        trainable, fixed = models.count_parameters(model)
        codes, vocab = models.codebook_size(model) or ("-", "-")
        if vocab != "-" and vocab >= 10 ** 9:  # 512 ** 8 reads better as a power
            vocab = f"{model.codebook.shape[1]}^{model.codebook.shape[0]}"
        print(f"{name:16s} {model.target:8s} {trainable:9d} {fixed:7d} {codes:>6} {vocab:>10}  "
              f"{models.description(name)}")
    print("\ncodes: codebook entries stored; vocabulary: combinations they index, vocab_size ** n_heads.")
    print("Method Two (log 2024-12-21): n_heads codebooks of vocab_size codes against one codebook "
          "of vocab_size ** n_heads codes")
    print(f"{'heads x codes':>14s} {'combinations':>12s} {'entries':>8s} {'of one codebook':>15s}")
    for heads, vocab in ((2, 32), (3, 8), (2, 512)):  # the log's two examples, then nh2 vs512
        print(f"{heads:>6d} x {vocab:<5d} {vocab ** heads:>12d} {heads * vocab:>8d} "
              f"{100 * heads * vocab / vocab ** heads:>14.3g}%")
    from models.mhcvqlnmlp import memory_table  # the cascades' arithmetic (Method Three, Two + Three)
    print("\n" + "\n".join(memory_table()))


def parse_value(text, default):
    """Parse a command-line string as the type of a constructor default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if isinstance(default, (tuple, list)):  # e.g. --levels 32-128-512
        return tuple(type(default[0])(v) for v in text.split("-"))
    if isinstance(default, float) and not math.isfinite(float(text)):  # a run of NaN losses
        raise ValueError(f"{text!r} is not a finite number")
    return type(default)(text) if default is not None else text


# What the lines train.py prints mean: the epilog of --help (README "What a run writes" too).
TERMS = """\
what the lines train.py prints mean:
  epoch E/N  train A  val B  val_mse_last C  Ts
                 a line per epoch where stderr is not a terminal (a log file): at most one
                 every 2 s ($VQSEQ_PROGRESS_SECONDS; 0: every epoch), the first and last always
  val_loss       validation MSE of every output the model is trained on (its objective), in
                 normalised units (the series minus its training mean, over its std)
  val_mse_last   validation MSE of the value after each window alone: what a forecast needs;
                 chrono keeps the epoch where it is lowest
  (epoch N)      the epoch model.pt holds: chrono the lowest val_mse_last, random the last;
                 never a partial epoch (stopped by Ctrl-C: complete 0 in losses.csv)
  params A+B fixed
                 A trained parameters; B fixed numbers, never trained (codebooks, positions)
  headH ppl P/V  perplexity of head H's mean code probabilities on the validation windows:
                 about P of its V codes (vocab_size) carry the reads
  used U%        codes that are the most probable code for at least one validation value
  test MASE h1 A hH B all C  (naive a / b / c)
                 test-part mean absolute error over the naive one-step error on the training
                 part: 1 step ahead, H steps ahead, all steps; naive (the last value repeated)
                 beside it; then a sentence: at which steps it beats naive
  80% interval coverage
                 the share of test values inside the 80% prediction interval
"""


def base_parser(model=None):
    """The options every model shares; given a model's name, its training defaults in the help."""
    def default(k):
        return f"{model}: {models.get(model).train_defaults[k]}" if model else \
            "default: the model's, see --model NAME --help"
    p = runs.Parser(add_help=False, description="Train one forecasting model and write a run directory.",
                    epilog=TERMS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action="store_true", help="show this help (with --model: its options)")
    p.add_argument("--model", default=None, help="model name (see --list)")
    p.add_argument("--list", action="store_true", help="list every model with its parameter counts")
    p.add_argument("--dataset", default="membrane", help=f"{', '.join(DATASETS)} or a .csv path")
    p.add_argument("--column", default=None, help="value column of a CSV: a name or a 0-based index "
                   "(default: the last numeric column)")
    p.add_argument("--data_dir", default=None, help="where y_w, w_y, 4single live (default: data/ or $VQSEQ_DATA_DIR)")
    p.add_argument("--fill", default=None, help=f"gaps in a CSV: {', '.join(FILL_MODES)} (default: gaps are an error)")
    p.add_argument("--date_format", default=None, help="strptime format of a CSV's dates where day and month "
                   "are ambiguous, e.g. %%d/%%m/%%Y")
    p.add_argument("--time_steps", type=int, default=None, help=f"window length ({default('time_steps')})")
    p.add_argument("--batch_size", type=int, default=None, help=f"windows per Adam step ({default('batch_size')})")
    p.add_argument("--lr", type=runs.finite, default=None, help=f"Adam learning rate ({default('lr')})")
    p.add_argument("--epochs", type=int, default=None, help=f"passes over the training windows "
                   f"({default('epochs')}); with --resume: the total to reach")
    p.add_argument("--split", default="chrono", choices=SPLITS, help="chrono: train/validation/test in time "
                   "(default); random: the log's protocol")
    p.add_argument("--norm", default=None, choices=NORMS, help="what the model reads of each window: global "
                   "(z-score with the training part's statistics), last (changes from the window's last value: "
                   f"NLinear), revin (the window's own mean and std: RevIN); default: {CHRONO_NORM} under --split "
                   "chrono (chosen by validation error, docs/RESULTS.md), global under --split random")
    p.add_argument("--val_fraction", type=runs.finite, default=DEFAULT_FRACTIONS[1], help="chrono: validation part")
    p.add_argument("--test_fraction", type=runs.finite, default=DEFAULT_FRACTIONS[2], help="chrono: test part")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the codebooks and the shuffling")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(runs.DEVICES)}")
    p.add_argument("--out_dir", default="runs", help="where run directories go")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run (to --epochs in total)")
    p.add_argument("--no_forecast", action="store_true", help="skip forecast.py's evaluation after training")
    return p


def parse_args(argv):
    """Common options, then the chosen model's constructor arguments as options."""
    parser = base_parser()
    args, rest = parser.parse_known_args(argv)
    if args.resume:
        given = [a for a in argv if a.startswith("--") and a.split("=")[0] not in
                 ("--resume", "--epochs", "--device", "--no_forecast", "--data_dir")]
        if given or rest:
            runs.fail(parser.prog, f"--resume continues a run with its own settings; drop {(given + rest)[0]} "
                      f"(only --epochs, --device, --no_forecast and --data_dir may be given)")
        return args, {}
    if args.list or args.model is None:
        if args.help or not args.list:
            parser.print_help()
            sys.exit(0 if args.help else 2)
        return args, {}
    try:
        cls = models.get(args.model)
    except models.ModelError as e:
        runs.fail(parser.prog, e)
    parser, model_defaults = base_parser(args.model), models.options(cls)
    group = parser.add_argument_group(f"options of model {args.model} (its constructor's arguments)")
    for name, default in model_defaults.items():
        shown = "time_steps" if name == "block_size" else runs.text(default)  # train.py's block_size
        group.add_argument(f"--{name}", default=None, metavar=models.values(cls, name),
                           help=f"{models.describe(cls, name)} (default {shown})")
    if args.help:
        parser.print_help()
        sys.exit(0)
    args, rest = parser.parse_known_args(argv)
    if rest:
        takes = ", ".join(f"--{k}" for k in model_defaults) or "no model options"
        runs.fail(parser.prog, f"model {args.model} does not take {rest[0]}; it takes {takes}")
    model_args = {}
    for name, default in model_defaults.items():
        text = getattr(args, name)
        if text is not None:
            try:
                model_args[name] = parse_value(text, default)
            except ValueError:
                kind = "a finite number" if isinstance(default, float) else "a value"
                runs.fail(parser.prog, f"--{name} {text!r}: expected {kind} like {runs.text(default)}")
    return args, model_args


def summary(metrics):
    """One line of what a training measured."""
    m = metrics
    chosen = "least squares" if m.get("fit") == FITS["least_squares"] else f"epoch {m['best_epoch']}"
    line = (f"val_loss {m['val_loss']:.6g}  val_mse_last {m['val_mse_last']:.6g}  ({chosen})  "
            f"params {m['trainable_parameters']}+{m['fixed_parameters']} fixed  {m['seconds']:.1f}s")
    for u in m.get("codebook_usage", []):
        line += f"  head{u['head']} ppl {u['perplexity']:.1f}/{u['vocab_size']} used {u['used_fraction']:.0%}"
    partial = m.get("partial_epochs")
    return line + ("  (interrupted)" if m["interrupted"] else "") + \
        (f"  partial epoch {partial[-1]}: not chosen" if partial else "")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    import sweep
    if sweep.is_sweep(argv):  # comma lists: a grid of runs
        sweep.main(argv, prog="train.py")
        return
    args, model_args = parse_args(argv)
    if args.list:
        list_models()
        return
    try:
        run_dir, metrics = train(args, model_args)
        print(summary(metrics))
        if not args.no_forecast:
            import forecast
            print(forecast.evaluate(run_dir, device=runs.pick_device(args.device)))
    except runs.UsageError as e:  # DataError, ModelError, RunError: the user's to fix
        runs.fail("train.py", e)
    except KeyboardInterrupt:
        runs.fail("train.py", "interrupted (a second Ctrl-C); what was saved before stays", status=130)
    print(f"-> {run_dir}")


if __name__ == "__main__":
    main()
