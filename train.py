"""Train one forecasting model on one series and write a run directory.

    python train.py --model vqlnpemlp                          # embedded default series (membrane)
    python train.py --model lstm --dataset y_w                 # a series of the research log
    python train.py --model vqlnmlp --dataset my.csv --column load --vocab_size 1024
    python train.py --list                                     # every model and its size
    python train.py --model vqlnmlp,vqlnpemlp --lr 0.003,0.007 --seed 0,1,2 --jobs 2   # a sweep (grid)

Every constructor argument of the chosen model is an option (--vocab_size, --d_model, ...).
The run directory runs/{run_name}/{timestamp}/ receives config.json, model.pt, losses.csv,
loss.png and metrics.json, then forecast.py's plots and metrics (unless --no_forecast).
A comma list in any option makes a grid of runs (a sweep; see sweep()).
"""
import csv
import ctypes
import itertools
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import models
from data import DATASETS, SPLITS, DataError, load_series, make_windows, normalise, split_indices
from forecast import DEVICES, Parser, fail, forecast, pick_device, write_atomic, write_json

# Model arguments that appear in run names, in the log's order and spelling; the cascades'
# order, levels and heads first (cvqlnmlp_inc_l32-128-512_dm64_...). The log named no attention
# run; theirs carry every option, a dict giving each value's text (None: left out), e.g.
# att_mh_dm64_nh4_kv2_rope_qk_qln_kln_y_w_ts96_lr0.001.
NAME_PARTS = (("order", ""), ("levels", "l"), ("heads", "h"), ("vocab_size", "vs"), ("d_model", "dm"),
              ("n_heads", "nh"), ("trainable_codebooks", "tc"), ("kv_heads", "kv"),
              ("pe_type", {"none": "nope", "randn": "randn", "sinpe": "sinpe", "rope": "rope"}),
              ("pe_on", {"input": None, "qk": "qk"}), ("in_ln", "inln"), ("q_ln", "qln"), ("k_ln", "kln"),
              ("causal", {True: None, False: "bidir"}))
TRAINING = ("time_steps", "batch_size", "lr", "epochs")


def name_part(abbr, value):
    """vs512; a tuple as l32-128-512; a true flag as its abbreviation alone, a false one not at all;
    with a dict for abbr, the value's text from it."""
    if isinstance(abbr, dict):
        return abbr[value]
    if isinstance(value, bool):
        return abbr if value else None
    if isinstance(value, (tuple, list)):
        value = "-".join(map(str, value))
    return f"{abbr}{value}"


def run_name(model, model_args, dataset, time_steps, lr):
    """The log's format: {model}[_vs{vocab_size}][_dm{d_model}][_nh{n_heads}]_{dataset}_ts{T}_lr{lr},
    with [_{order}][_l{levels}][_h{heads}] before vs, [_tc] (trainable codebooks) after nh, and the
    attention options after that (see NAME_PARTS)."""
    parts = [model] + [name_part(abbr, model_args[k]) for k, abbr in NAME_PARTS if k in model_args]
    return "_".join([p for p in parts if p] + [dataset, f"ts{time_steps}", f"lr{lr}"])


def new_run_dir(out_dir, name):
    """runs/{name}/{timestamp}; an existing directory is never reused (a suffix is added)."""
    base = os.path.join(out_dir, name, time.strftime("%Y-%m-%d-%H-%M-%S"))
    path, k = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            k += 1
            path = f"{base}-{k}"


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
    return type(default)(text) if default is not None else text


def base_parser():
    p = Parser(add_help=False, description="Train one forecasting model and write a run directory.")
    p.add_argument("-h", "--help", action="store_true", help="show this help (with --model: its options)")
    p.add_argument("--model", default=None, help="model name (see --list)")
    p.add_argument("--list", action="store_true", help="list every model with its parameter counts")
    p.add_argument("--dataset", default="membrane", help=f"{', '.join(DATASETS)} or a .csv path")
    p.add_argument("--column", default=None, help="value column of a CSV (default: last numeric)")
    p.add_argument("--data_dir", default=None, help="where y_w, w_y, 4single live (default: data/ or $VQSEQ_DATA_DIR)")
    p.add_argument("--time_steps", type=int, default=None, help="window length (default: the model's)")
    p.add_argument("--batch_size", type=int, default=None, help="(default: the model's)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the model's)")
    p.add_argument("--epochs", type=int, default=None, help="(default: the model's, 50 for most)")
    p.add_argument("--split", default="random", help=f"one of {', '.join(SPLITS)} (random: the log's)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the codebooks and the shuffling")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--out_dir", default="runs", help="where run directories go")
    p.add_argument("--no_forecast", action="store_true", help="skip forecast.py after training")
    p.add_argument("--jobs", type=int, default=1, help="sweeps: trainings at once, one thread each")
    p.add_argument("--dry_run", action="store_true", help="sweeps: print one command per run, run nothing")
    return p


def parse_args(argv):
    """Common options, then the chosen model's constructor arguments as options."""
    parser = base_parser()
    args, rest = parser.parse_known_args(argv)
    if args.list or args.model is None:
        if args.help or not args.list:
            parser.print_help()
            sys.exit(0 if args.help else 2)
        return args, {}
    try:
        model_defaults = models.options(models.get(args.model))
    except models.ModelError as e:
        fail(parser.prog, e)
    group = parser.add_argument_group(f"options of model {args.model} (default)")
    for name, default in model_defaults.items():
        group.add_argument(f"--{name}", default=None, help=f"({default})")
    if args.help:
        parser.print_help()
        sys.exit(0)
    args, rest = parser.parse_known_args(argv)
    if rest:
        takes = ", ".join(f"--{k}" for k in model_defaults) or "no model options"
        fail(parser.prog, f"model {args.model} does not take {rest[0]}; it takes {takes}")
    model_args = {}
    for name, default in model_defaults.items():
        text = getattr(args, name)
        if text is not None:
            try:
                model_args[name] = parse_value(text, default)
            except ValueError:
                fail(parser.prog, f"--{name} {text!r}: expected a value like {default!r}")
    return args, model_args


def codebook_size(model):
    """(code entries, effective vocabulary) of a model's `codebook` buffer, or None.

    A (V, D) codebook holds V entries and indexes V codes; (heads, V, head_size) holds
    heads * V entries and indexes V ** heads combinations (the log's Method Two).
    Models with several codebooks (the cascades) answer for themselves: model.codebook_size().
    """
    if hasattr(model, "codebook_size"):
        return model.codebook_size()
    codebook = getattr(model, "codebook", None)
    if not isinstance(codebook, torch.Tensor):
        return None
    heads, vocab = (1, codebook.shape[0]) if codebook.dim() == 2 else codebook.shape[:2]
    return heads * vocab, vocab ** heads


def list_models():
    print(f"{'model':16s} {'target':8s} {'trainable':>9s} {'fixed':>7s} {'codes':>6s} {'vocabulary':>10s}  description")
    for name in models.names():
        torch.manual_seed(0)
        model = models.build(name)
        trainable, fixed = models.count_parameters(model)
        codes, vocab = codebook_size(model) or ("-", "-")
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


def plot_losses(rows, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_loss"] for r in rows], label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in rows], label="validation loss")
    ax.plot(epochs, [r["val_mse_last"] for r in rows], label="val_mse_last", ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (normalised units)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def keep_freed_memory(limit=256 << 20):
    """Ask glibc to keep freed buffers of up to `limit` bytes for reuse instead of unmapping them.

    A training step allocates activations of a few MB (oneDNN's LSTM workspace, the VQ models'
    positions x codes scores) and frees them at its end. By default glibc hands such blocks back to
    the kernel, so the next step page-faults the same amount of fresh zeroed memory: 11,430 page
    faults and 27 ms of system time in every 42 ms lstm step (batch 64) on a 2-core machine, which
    this setting brings to 21 ms (see README, Speed). It changes no number a model computes, only
    where its memory comes from. Linux with glibc only; elsewhere it does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, limit)  # blocks below this come from the heap, not a fresh mmap
    mallopt(M_TRIM_THRESHOLD, limit)  # free heap below this stays with the process


def train(args, model_args):
    """Train one model as args say; returns (run_dir, metrics)."""
    cls = models.get(args.model)
    hp = {k: getattr(args, k) if getattr(args, k) is not None else cls.train_defaults[k] for k in TRAINING}
    defaults = models.options(cls)
    if "block_size" in defaults:
        defaults["block_size"] = hp["time_steps"]  # positions cover one window
    model_args = {**defaults, **model_args}  # the whole configuration, stored with the run
    device = pick_device(args.device)
    keep_freed_memory()
    if hp["batch_size"] < 1 or hp["epochs"] < 0 or hp["lr"] <= 0:
        raise DataError(f"batch_size >= 1, epochs >= 0 and lr > 0 are needed, got "
                        f"batch_size {hp['batch_size']}, epochs {hp['epochs']}, lr {hp['lr']}")

    series = load_series(args.dataset, args.column, args.data_dir)
    z, mean, std = normalise(series.values)
    x, y = make_windows(z, hp["time_steps"], cls.target)
    train_idx, val_idx = split_indices(len(x), args.split)
    x_train, y_train = x[train_idx].to(device), y[train_idx].to(device)
    x_val, y_val = x[val_idx].to(device), y[val_idx].to(device)

    torch.manual_seed(args.seed)
    model = models.build(args.model, **model_args).to(device)
    trainable, fixed = models.count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device in ("cpu", "cuda")  # one kernel for all parameters: the same update, fewer ops
    optimizer = torch.optim.Adam(params, lr=hp["lr"], fused=fused) if params else None
    shuffle = torch.Generator().manual_seed(args.seed)

    name = run_name(args.model, model_args, series.name, hp["time_steps"], hp["lr"])
    run_dir = new_run_dir(args.out_dir, name)
    config = {
        "run_name": name, "model": args.model, "model_args": model_args, "target": cls.target,
        **hp, "dataset": series.name, "column": series.column, "source": series.source,
        "data_dir": args.data_dir, "split": args.split, "seed": args.seed, "device": device,
        "normalisation": {"mean": mean, "std": std},
        "n_values": len(z), "n_windows": len(x), "n_train": len(train_idx), "n_val": len(val_idx),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "command": [os.path.basename(sys.argv[0])] + sys.argv[1:], "interrupted": False,
    }
    write_json(os.path.join(run_dir, "config.json"), config)

    stop = []  # Ctrl-C: finish the current step, then save what was trained
    def on_sigint(signum, frame):
        stop.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
    previous = signal.signal(signal.SIGINT, on_sigint)

    rows, n_train, t0 = [], len(x_train), time.perf_counter()
    bar = tqdm(range(1, hp["epochs"] + 1), desc=name, unit="epoch", leave=False, disable=None)
    try:
        for epoch in bar:
            perm = torch.randperm(n_train, generator=shuffle).to(device)
            total, seen = torch.zeros((), device=device), 0
            for i in range(0, n_train, hp["batch_size"]):
                idx = perm[i:i + hp["batch_size"]]
                loss = F.mse_loss(model(x_train[idx]), y_train[idx])
                if optimizer:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                total += loss.detach() * len(idx)
                seen += len(idx)
                if stop:
                    break
            val_loss, val_mse_last = evaluate(model, x_val, y_val)
            rows.append({"epoch": epoch, "train_loss": total.item() / seen, "val_loss": val_loss,
                         "val_mse_last": val_mse_last, "seconds": time.perf_counter() - t0})
            bar.set_postfix(train=f"{rows[-1]['train_loss']:.4g}", val=f"{val_loss:.4g}",
                            val_mse_last=f"{val_mse_last:.4g}")
            if stop:
                break
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - t0

    if not rows:  # epochs 0: measure the untrained model
        val_loss, val_mse_last = evaluate(model, x_val, y_val)
        rows.append({"epoch": 0, "train_loss": float("nan"), "val_loss": val_loss,
                     "val_mse_last": val_mse_last, "seconds": 0.0})
    checkpoint = {"model": args.model, "model_args": model_args,
                  "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    write_atomic(os.path.join(run_dir, "model.pt"), lambda tmp: torch.save(checkpoint, tmp))
    config["interrupted"] = bool(stop)
    write_json(os.path.join(run_dir, "config.json"), config)

    def write_losses(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    write_atomic(os.path.join(run_dir, "losses.csv"), write_losses)
    plot_losses(rows, name, os.path.join(run_dir, "loss.png"))
    last = rows[-1]
    usage = codebook_usage(model, x_val)
    metrics = {"train_loss": last["train_loss"], "val_loss": last["val_loss"],
               "val_mse_last": last["val_mse_last"], "val_mse_last_original_units": last["val_mse_last"] * std ** 2,
               "epochs_run": len([r for r in rows if r["epoch"] > 0]), "interrupted": bool(stop),
               "trainable_parameters": trainable, "fixed_parameters": fixed, "seconds": seconds}
    if usage:
        metrics["codebook_usage"] = usage
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    return run_dir, metrics


# Sweeps: a comma list in any option makes a grid of runs, as the log's multirun did. Tuple values
# use '-' inside a value (--levels 32-128-512,64-256), so a comma always separates grid values.
SWEEP_ONLY = ("--jobs", "--dry_run")


def split_options(argv):
    """argv as [(option, value)]; flags (--no_forecast, ...) and stray words have value None."""
    flags = {s for a in base_parser()._actions if a.nargs == 0 for s in a.option_strings}
    items, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token in flags or not token.startswith("-"):
            items.append((token, None))
            i += 1
        elif "=" in token:
            items.append(tuple(token.split("=", 1)))
            i += 1
        else:
            items.append((token, argv[i + 1] if i + 1 < len(argv) else None))
            i += 2
    return items


def expand_grid(argv):
    """One argv per combination of the comma lists, in the order given (the last option varies
    fastest); the sweep-only options are dropped."""
    items = [(k, v) for k, v in split_options(argv) if k not in SWEEP_ONLY]
    choices = [[None] if v is None else v.split(",") for _, v in items]
    grid = []
    for combo in itertools.product(*choices):
        grid.append([t for (k, _), v in zip(items, combo) for t in ((k,) if v is None else (k, v))])
    return grid


def skip_reason(argv):
    """Why the chosen model cannot take this combination (one line), or None if it can.
    Mistakes that no combination fixes (an unknown model, a value of the wrong type) exit 2."""
    args, rest = base_parser().parse_known_args(argv)
    if args.model is None:
        fail("train.py", "a sweep needs --model (a name or a comma list of names; see --list)")
    try:
        cls = models.get(args.model)
    except models.ModelError as e:
        fail("train.py", e)
    defaults, model_args = models.options(cls), {}
    for option, text in split_options(rest):
        name = option.lstrip("-")
        if name not in defaults or text is None:
            return f"model {args.model} does not take {option}"
        try:
            model_args[name] = parse_value(text, defaults[name])
        except ValueError:
            fail("train.py", f"--{name} {text!r}: expected a value like {defaults[name]!r}")
    if "block_size" in defaults and "block_size" not in model_args:
        model_args["block_size"] = args.time_steps or cls.train_defaults["time_steps"]
    try:
        models.build(args.model, **model_args)  # the constructor's own checks (d_model % n_heads, ...)
    except models.ModelError as e:
        return str(e)
    return None


def run_sweep(commands, jobs=1, log=print):
    """Run `python train.py ARGV` for each argv, `jobs` at a time, each in its own process (with
    one thread when jobs > 1). A failing run does not stop the others.
    Returns (done [(argv, run_dir)], failed [(argv, reason)]), in the order of commands."""
    env = dict(os.environ)
    if jobs > 1:  # N processes on N cores: one thread each, no oversubscription
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script, results, finished = os.path.abspath(__file__), [None] * len(commands), itertools.count(1)

    def one(i):
        r = subprocess.run([sys.executable, script, *commands[i]], capture_output=True, text=True, env=env)
        lines, k = r.stdout.strip().splitlines(), next(finished)  # next() is atomic: threads share it
        if r.returncode == 0 and lines and lines[-1].startswith("-> "):
            results[i] = (True, lines[-1][3:])
            summary = lines[0].split("  head0 ppl")[0] if len(lines) > 1 else ""  # codebook usage: in metrics.json
            log(f"[{k}/{len(commands)}] {summary}\n    -> {results[i][1]}")
        else:
            error = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            results[i] = (False, f"exit status {r.returncode}: {error}")
            log(f"[{k}/{len(commands)}] FAILED {shlex.join(commands[i])}: {results[i][1]}")

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in [pool.submit(one, i) for i in range(len(commands))]:
            future.result()
    except KeyboardInterrupt:  # running trainings got the Ctrl-C too: they save and stop
        log("interrupted: waiting for the running trainings to save")
        pool.shutdown(wait=True, cancel_futures=True)
    pool.shutdown(wait=True)
    done = [(c, r[1]) for c, r in zip(commands, results) if r and r[0]]
    failed = [(c, r[1] if r else "not run (interrupted)") for c, r in zip(commands, results) if not (r and r[0])]
    return done, failed


def sweep(argv):
    """Expand the grid, skip what a model cannot take, run (or print) the rest, rank them."""
    options = dict(split_options(argv))
    jobs_text = options.get("--jobs") or "1"
    if not jobs_text.isdigit() or int(jobs_text) < 1:
        fail("train.py", f"--jobs {jobs_text!r}: expected a whole number >= 1")
    runs = []
    for combo in expand_grid(argv):
        reason = skip_reason(combo)
        if reason:
            print(f"skip {shlex.join(combo)}: {reason}", file=sys.stderr)
        else:
            runs.append(combo)
    if not runs:
        fail("train.py", "no combination of the grid can run (each skip is listed above)")
    if "--dry_run" in options:
        for combo in runs:
            print(shlex.join(["python", os.path.relpath(os.path.abspath(__file__)), *combo]))
        return
    print(f"sweep: {len(runs)} runs, {jobs_text} at a time")
    done, failed = run_sweep(runs, int(jobs_text))
    from benchmarks.results import load_run, wide_table  # the ranked table of these runs
    records = [r for r in (load_run(d) for _, d in done) if r]
    if records:
        print("\n" + wide_table(records, "val_loss"))
    if failed:
        print(f"\n{len(failed)} of {len(runs)} runs failed:")
        for combo, reason in failed:
            print(f"  python train.py {shlex.join(combo)}: {reason}")
        sys.exit(1)


def is_sweep(argv):
    """Any comma list or sweep-only option (but --help and --list always mean themselves)."""
    items = split_options(argv)
    if any(k in ("-h", "--help", "--list") for k, _ in items):
        return False
    return any(k in SWEEP_ONLY or (v is not None and "," in v) for k, v in items)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if is_sweep(argv):
        sweep(argv)
        return
    args, model_args = parse_args(argv)
    if args.list:
        list_models()
        return
    try:
        run_dir, m = train(args, model_args)
        line = (f"val_loss {m['val_loss']:.6g}  val_mse_last {m['val_mse_last']:.6g}  "
                f"params {m['trainable_parameters']}+{m['fixed_parameters']} fixed  {m['seconds']:.1f}s")
        for u in m.get("codebook_usage", []):
            line += f"  head{u['head']} ppl {u['perplexity']:.1f}/{u['vocab_size']} used {u['used_fraction']:.0%}"
        if m["interrupted"]:
            line += "  (interrupted)"
        if not args.no_forecast:
            f = forecast(run_dir, device=pick_device(args.device))
            line += f"  mse_batch {f['mse_batch']:.6g}  mse_regressive {f['mse_regressive']:.6g}"
    except (DataError, models.ModelError) as e:
        fail("train.py", e)
    print(f"{line}\n-> {run_dir}")


if __name__ == "__main__":
    main()
