"""What the scripts share: one-line errors, the device, files written whole, run directories.

Why a top-level file: train.py, forecast.py, sweep.py and vqvae_imagenet.py are flat scripts
that a reader opens one at a time. Each needs the same plumbing: argument errors that are one
line with exit status 2, a device, files that are written whole or not at all, and run
directories that are named, created, finished and found again. Defined here once, no script
has to import another script for it.

A run directory is runs/{run_name}/{timestamp}. It is built under a hidden temporary name
beside its final one (.{timestamp}-XXXX.partial) and renamed when its weights are saved, so a
run directory is complete or absent: a failed start leaves nothing that looks like a run.
forecast.py builds each evaluation's folder, RUN/forecasts/{settings}, the same way; neither
ever takes an existing name (a second gets -2, a third -3).
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

DEVICES = ("auto", "cpu", "cuda", "mps")


class UsageError(ValueError):
    """A mistake the user can fix (a bad option, data set or run directory): one line, exit 2.
    data.DataError and models.ModelError are kinds of it; the scripts catch this class alone."""


class RunError(UsageError):
    """A run directory that cannot be read."""


# ---------------------------------------------------------------- errors

def fail(prog, message, status=2):
    """Print `prog: error: message` on one line and exit (status 2: the user's mistake)."""
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike: say it once
        print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2."""

    def error(self, message):
        fail(self.prog, message)


def check_positive(**values):
    """Raise UsageError naming the first option that is not >= 1 (sizes, counts, epochs)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")


# ---------------------------------------------------------------- device

def pick_device(name):
    """auto: cuda, else mps, else cpu. A device that is not here is a UsageError."""
    if name not in DEVICES:
        raise UsageError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    import torch
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' is not available here; choose auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device 'mps' is not available here; choose auto or cpu")
    return name


# ---------------------------------------------------------------- files written whole

def write_atomic(path, write):
    """Call write(tmp_path), then move the result to path: a file is whole or absent."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def strict(obj):
    """obj with every non-finite float replaced by None: strict JSON has no NaN or Infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def write_json(path, obj):
    """Strict JSON (NaN and inf as null), indented, written whole."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(strict(obj), f, indent=2, default=str, allow_nan=False)
            f.write("\n")
    write_atomic(path, write)


def read_json(path):
    """A JSON file of a run; a missing, truncated or foreign file is a one-line RunError."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise RunError(f"not a readable run: {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"not a readable run: {path} is not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict):
        raise RunError(f"not a readable run: {path} holds no JSON object")
    return obj


def plot_curves(curves, title, ylabel, path, log_y=True):
    """One PNG of curves {label: (x, y)} (a dashed line where the label starts with '~')."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label.lstrip("~"), ls="--" if label.startswith("~") else "-")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


# ---------------------------------------------------------------- run names

# Constructor arguments that appear in run names, in the log's order and spelling: the log's
# {model}[_vs{vocab_size}][_dm{d_model}][_nh{n_heads}]_{dataset}_ts{T}_lr{lr}, the cascades'
# order, levels and heads first, then the attention options. A value spells itself with its
# abbreviation (vs512); a tuple as l32-128-512; a true flag as the abbreviation alone, a false
# one not at all; a dict gives each value's text (None: left out). Any other argument appears
# as name+value only where it differs from the model's default (lstm_hidden_size128_...), so two
# runs that differ in an option never share a name. block_size follows time_steps (ts).
NAME_PARTS = (("order", ""), ("levels", "l"), ("heads", "h"), ("vocab_size", "vs"), ("d_model", "dm"),
              ("n_heads", "nh"), ("trainable_codebooks", "tc"), ("kv_heads", "kv"),
              ("pe_type", {"none": "nope", "randn": "randn", "sinpe": "sinpe", "rope": "rope"}),
              ("pe_on", {"input": None, "qk": "qk"}), ("in_ln", "inln"), ("q_ln", "qln"), ("k_ln", "kln"),
              ("causal", {True: None, False: "bidir"}))
NOT_NAMED = ("block_size",)


def _part(abbr, value):
    if isinstance(abbr, dict):
        return abbr.get(value, str(value))
    if isinstance(value, bool):
        return abbr if value else None
    if isinstance(value, (tuple, list)):
        value = "-".join(map(str, value))
    return f"{abbr}{value}"


def run_name(model, model_args, defaults, dataset, time_steps, lr):
    """The log's run name of a model with constructor arguments model_args (defaults: the
    constructor's own), e.g. vqlnmlp_vs512_dm64_y_w_ts96_lr0.007."""
    parts = [model] + [_part(abbr, model_args[k]) for k, abbr in NAME_PARTS if k in model_args]
    named = {k for k, _ in NAME_PARTS} | set(NOT_NAMED)
    for k, value in model_args.items():
        if k not in named and value != defaults.get(k):
            parts.append(_part(k, value) if not isinstance(value, bool) else f"{k}{str(value).lower()}")
    return "_".join([p for p in parts if p] + [dataset, f"ts{time_steps}", f"lr{lr}"])


# ---------------------------------------------------------------- run directories

def new_run_dir(out_dir, name):
    """A hidden temporary directory for a new run of `name`: out_dir/name/.{timestamp}-XXXX.partial.
    finish_run_dir() gives it its final name; discard_run_dir() removes it."""
    return new_folder(os.path.join(out_dir, name), time.strftime("%Y-%m-%d-%H-%M-%S"))


def finish_run_dir(partial):
    """Rename a temporary run directory to runs/{name}/{timestamp} (its start time), adding -2,
    -3, ... if that exists: an existing run is never reused or overwritten. Returns the path."""
    return finish_folder(partial)


def new_folder(parent, name):
    """A hidden temporary folder parent/.{name}-XXXX.partial for files that must appear together
    (a run, one evaluation); finish_folder() names it, discard_run_dir() removes it."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{name}-", suffix=".partial", dir=parent)


def finish_folder(partial):
    """Rename a temporary folder from new_folder() to its name, or name-2, name-3, ... where that
    exists: an existing folder is never reused or overwritten. Returns the path."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o777 & ~umask)  # mkdtemp's 0700 would hide results from other users
    parent, hidden = os.path.split(partial)
    name = hidden[1:-len(".partial")].rsplit("-", 1)[0]  # .{name}-XXXX.partial (XXXX holds no '-')
    return rename_unique(partial, os.path.join(parent, name))


def rename_unique(path, target):
    """Rename path to target, or target-2, target-3, ... where that exists; returns the new path."""
    new, k = target, 1
    while True:
        if not os.path.exists(new):
            try:
                os.rename(path, new)  # fails if another process took the name meanwhile
                return new
            except OSError:
                if not os.path.exists(path):
                    raise
        k += 1
        new = f"{target}-{k}"


def discard_run_dir(partial):
    """Remove a temporary folder (a run that failed before its weights were saved, a failed evaluation)."""
    shutil.rmtree(partial, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(partial))  # runs/{name} (or RUN/forecasts) too, if nothing else is in it
    except OSError:
        pass


def is_run_dir(path, weights="model.pt"):
    """A complete run directory: config.json and its weights, not a hidden temporary one."""
    return (not os.path.basename(os.path.normpath(path)).startswith(".")
            and os.path.isfile(os.path.join(path, "config.json"))
            and os.path.isfile(os.path.join(path, weights)))


def latest_run(path, weights="model.pt"):
    """A run directory as given, or runs/{run_name}: then its latest complete run (timestamps
    sort in time order). A path that is neither is a RunError naming it."""
    if is_run_dir(path, weights):
        return path
    if os.path.isdir(path):
        runs = sorted(d for d in os.listdir(path) if is_run_dir(os.path.join(path, d), weights))
        if runs:
            return os.path.join(path, runs[-1])
        raise RunError(f"{path!r} is not a run directory and holds no complete run "
                       f"(a run has config.json and {weights})")
    raise RunError(f"run directory {path!r} not found")


def load_checkpoint(path, device="cpu"):
    """torch.load of a run's weights; a truncated or foreign file is a one-line RunError."""
    import torch
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise RunError(f"not a readable run: {path} is missing") from None
    except Exception as e:  # a foreign file can make the unpickler fail in any way (IndexError, KeyError, ...)
        raise RunError(f"not a readable run: {path} is not a vqseq checkpoint "
                       f"({str(e).splitlines()[0][:120]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise RunError(f"not a readable run: {path} is not a vqseq checkpoint (no state_dict)")
    return checkpoint
