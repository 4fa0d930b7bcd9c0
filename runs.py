"""What the scripts share: one-line errors, the device, files written whole, run directories and
their config.json, checked on reading.

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
import csv
import errno
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


class DataError(UsageError):
    """A bad data set, column or window size; the message is one line meant for the user."""


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


def finite(text):
    """argparse type of a float option: nan and inf are refused (they would train a run of NaN losses)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give e.g. 0.1") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give e.g. 0.1")
    return value


def text(value):
    """A value as it is typed on the command line: 32-128-512, true, 0.007."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "-".join(map(str, value))
    return str(value)


def check_positive(**values):
    """Raise UsageError naming the first option that is not >= 1 (sizes, counts, epochs)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")


# ---------------------------------------------------------------- progress

class Progress:
    """A flushed line per epoch where stderr is not a terminal (a log file, a pipe), where tqdm's
    bar is off and `python train.py > log.txt 2>&1` would otherwise show nothing until the end.
    At most one line every `every` seconds ($VQSEQ_PROGRESS_SECONDS, default 2; 0: every epoch),
    but always the first epoch and the last one. On a terminal it prints nothing: tqdm draws."""

    def __init__(self, stream=None, every=None, clock=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.on = not (hasattr(self.stream, "isatty") and self.stream.isatty())
        if every is None:
            seconds = os.environ.get("VQSEQ_PROGRESS_SECONDS", "2")
            try:
                every = float(seconds)
            except ValueError:
                raise UsageError(f"$VQSEQ_PROGRESS_SECONDS {seconds!r} is not a number of seconds; "
                                 f"give e.g. 2, or 0 for a line every epoch") from None
        self.every, self.clock, self.last = every, clock, None

    def line(self, text, first=False, last=False):
        now = self.clock()
        if self.on and (first or last or self.last is None or now - self.last >= self.every):
            print(text, file=self.stream, flush=True)
            self.last = now


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


# ---------------------------------------------------------------- threads on a shared machine

class Threads:
    """torch's thread count, following the cores that other processes leave free.

    torch starts one thread per core, and its OpenMP threads spin while they wait for each other.
    On an idle machine that is fastest; when another process holds a core, a thread that has lost
    its core keeps the rest spinning at every barrier: the quick start took 94 s beside one busy
    process against 28 s idle, and 34 s following the free cores (docs/BENCHMARKS.md). So: before training,
    and then at most every `every` seconds (between epochs), count the cores that other processes
    used since the last look (all busy CPU time in /proc/stat less this process's own), and use
    the cores left, at least one. The thread count changes no number a model computes (tested).
    Off Linux, or where OMP_NUM_THREADS is set, torch's own choice stays."""

    def __init__(self, every=2.0, read=None):
        self.read = read or _cpu_seconds
        self.fixed = "OMP_NUM_THREADS" in os.environ or self.read() is None
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.every, self.mark = every, None

    def start(self, wait=0.1):
        """Look at the machine for `wait` seconds (this process idle), then set the threads."""
        if self.fixed:
            return
        before = self._sample()
        time.sleep(wait)
        self._follow(before)

    def update(self):
        """Between epochs: follow what other processes used since the last look."""
        if not self.fixed and self.mark and time.monotonic() - self.mark[2] >= self.every:
            self._follow(self.mark)

    def _sample(self):
        return self.read(), time.process_time(), time.monotonic()

    def _follow(self, before):
        import torch
        self.mark = now = self._sample()
        others = ((now[0] - before[0]) - (now[1] - before[1])) / max(now[2] - before[2], 1e-9)  # cores
        threads = max(1, min(self.cores, self.cores - int(others + 0.5)))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)


def _cpu_seconds():
    """Busy CPU seconds of the whole machine so far (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in (fields[1:9] + ["0"] * 8)[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


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


def write_csv(path, header, rows):
    """A CSV file of a header and rows, written whole."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    write_atomic(path, write)


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


# ---------------------------------------------------------------- a run's config.json

def _whole(v, low):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text_or_none(v):
    return v is None or isinstance(v, str)


# What train.py --resume and forecast.py read of a forecasting run's config.json: the key, its
# test, and what a reader is told was expected. A key with a dot is one inside a dict.
CONFIG_KEYS = (
    ("run_name", lambda v: isinstance(v, str), "a text"),
    ("model", lambda v: isinstance(v, str), "a model name"),
    ("model_args", lambda v: isinstance(v, dict), "a dict of constructor arguments"),
    ("dataset", lambda v: isinstance(v, str), "a data set name"),
    ("source", lambda v: isinstance(v, str), "a path or a description"),
    ("column", lambda v: v is None or (isinstance(v, (str, int)) and not isinstance(v, bool)),
     "a name, an index or null"),
    ("split", lambda v: v in ("chrono", "random"), "chrono or random"),
    ("time_steps", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("batch_size", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("epochs", lambda v: _whole(v, 0), "a whole number >= 0"),
    ("lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    ("normalisation", lambda v: isinstance(v, dict), "a dict with mean and std"),
    ("normalisation.mean", _number, "a finite number"),
    ("normalisation.std", lambda v: _number(v) and v > 0, "a number > 0"),
)
OPTIONAL_KEYS = (  # runs written before these keys existed lack them
    ("sha256", _text_or_none, "a text or null"),
    ("data_dir", _text_or_none, "a path or null"),
    ("fill", _text_or_none, "a fill mode or null"),
    ("date_format", _text_or_none, "a date format or null"),
)
FRACTIONS = "a list of three fractions (train, validation, test), e.g. [0.7, 0.1, 0.2]"


def read_config(run_dir):
    """RUN_DIR/config.json of a forecasting run, checked: a missing key or one of the wrong type
    is a one-line RunError naming the key and what was expected (instead of a traceback later)."""
    path = os.path.join(run_dir, "config.json")
    config = read_json(path)

    def bad(key, value, expected):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return RunError(f"not a readable run: {path}: {key} is {shown}, expected {expected}")
    for keys, required in ((CONFIG_KEYS, True), (OPTIONAL_KEYS, False)):
        for key, test, expected in keys:
            holder, name = (config, key) if "." not in key else (config[key.split(".")[0]], key.split(".")[1])
            if name not in holder:
                if required:
                    raise RunError(f"not a readable run: {path} has no {key} (expected {expected})")
                continue
            if not test(holder[name]):
                raise bad(key, holder[name], expected)
    fractions = config.get("fractions")
    if config["split"] == "chrono" and not (isinstance(fractions, list) and len(fractions) == 3
                                            and all(_number(f) and 0 < f < 1 for f in fractions)):
        raise bad("fractions", fractions, FRACTIONS)
    return config


# ---------------------------------------------------------------- run names

# Constructor arguments that appear in run names, in the log's order and spelling: the log's
# {model}[_vs{vocab_size}][_dm{d_model}][_nh{n_heads}]_{dataset}_ts{T}_lr{lr}, the cascades'
# order, levels and heads first, then the attention options. A value spells itself with its
# abbreviation (vs512); a tuple as l32-128-512; a true flag as the abbreviation alone, a false
# one not at all; a dict gives each value's text (None: left out). Any other argument appears
# as name+value only where it differs from the model's default (lstm_hidden_size128_...), so two
# runs that differ in an option never share a name. block_size's default is time_steps (ts): it
# appears only where it differs from it (vqlnpemlp_..._block_size200_y_w_ts96_...).
NAME_PARTS = (("order", ""), ("levels", "l"), ("heads", "h"), ("vocab_size", "vs"), ("d_model", "dm"),
              ("n_heads", "nh"), ("trainable_codebooks", "tc"), ("kv_heads", "kv"),
              ("pe_type", {"none": "nope", "randn": "randn", "sinpe": "sinpe", "rope": "rope"}),
              ("pe_on", {"input": None, "qk": "qk"}), ("in_ln", "inln"), ("q_ln", "qln"), ("k_ln", "kln"),
              ("causal", {True: None, False: "bidir"}))


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
    constructor's own; block_size's is time_steps), e.g. vqlnmlp_vs512_dm64_y_w_ts96_lr0.007."""
    parts = [model] + [_part(abbr, model_args[k]) for k, abbr in NAME_PARTS if k in model_args]
    named = {k for k, _ in NAME_PARTS}
    defaults = {**defaults, "block_size": time_steps}  # a positional table as long as the window
    for k, value in model_args.items():
        if k not in named and value != defaults.get(k):
            parts.append(_part(k, value) if not isinstance(value, bool) else f"{k}{str(value).lower()}")
    return "_".join([p for p in parts if p] + [dataset, f"ts{time_steps}", f"lr{lr}"])


# ---------------------------------------------------------------- run directories

def make_folder(path, what, hint="give a folder you can write to"):
    """os.makedirs(path), or a one-line UsageError `{what}: cannot make folder PATH (why); {hint}`.
    What it made before failing is removed again: nothing is left behind. Returns the folders it
    made, outermost first (a caller that fails later removes them with remove_folders)."""
    missing, head = [], os.path.abspath(path)
    while not os.path.lexists(head):
        missing.append(head)
        head = os.path.dirname(head)
    made = []
    try:
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
                made.append(folder)
            except FileExistsError:  # another run (sweep --jobs) made it meanwhile
                if not os.path.isdir(folder):
                    raise
        if not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "a file is in its place")
    except OSError as e:
        remove_folders(made)
        why = f"{head} is not a folder" if not os.path.isdir(head) else e.strerror or type(e).__name__
        raise UsageError(f"{what}: cannot make folder {path} ({why}); {hint}") from None
    return made


def remove_folders(made):
    """Remove the (empty) folders make_folder made, innermost first."""
    for folder in reversed(made):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def check_writable(path, what):
    """A one-line UsageError unless a run directory can be made under path; leaves nothing behind."""
    made = make_folder(path, what)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=path))
    except OSError as e:
        raise UsageError(f"{what}: cannot write into {path} ({e.strerror}); give a folder you can write to") from None
    finally:
        remove_folders(made)


def new_run_dir(out_dir, name, what=None):
    """A hidden temporary directory for a new run of `name`: out_dir/name/.{timestamp}-XXXX.partial.
    finish_run_dir() gives it its final name; discard_run_dir() removes it. A folder that cannot
    be made or written is a one-line UsageError naming `what` (default: --out_dir OUT_DIR)."""
    return new_folder(os.path.join(out_dir, name), time.strftime("%Y-%m-%d-%H-%M-%S"),
                      what or f"--out_dir {out_dir!r}")


def finish_run_dir(partial):
    """Rename a temporary run directory to runs/{name}/{timestamp} (its start time), adding -2,
    -3, ... if that exists: an existing run is never reused or overwritten. Returns the path."""
    return finish_folder(partial)


def new_folder(parent, name, what, hint="give a folder you can write to"):
    """A hidden temporary folder parent/.{name}-XXXX.partial for files that must appear together
    (a run, one evaluation); finish_folder() names it, discard_run_dir() removes it. A parent that
    cannot be made or written is a one-line UsageError naming `what` (make_folder)."""
    made = make_folder(parent, what, hint)
    try:
        return tempfile.mkdtemp(prefix=f".{name}-", suffix=".partial", dir=parent)
    except OSError as e:
        remove_folders(made)
        raise UsageError(f"{what}: cannot write into {parent} ({e.strerror}); {hint}") from None


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


def output_folder(run_dir, tag, write):
    """Call write(folder) on a new hidden folder in RUN/forecasts/, then name it {tag}, or {tag}-2,
    {tag}-3, ... where an earlier evaluation has that name: no evaluation replaces another's files
    (a repeat may read another version of a CSV), and a folder is whole or absent. Returns it."""
    partial = new_folder(os.path.join(run_dir, "forecasts"), tag, f"run {run_dir}",
                         hint="move what is in its place away, or copy the run to a folder you can write to")
    try:
        write(partial)
    except BaseException:
        discard_run_dir(partial)
        raise
    return finish_folder(partial)


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
