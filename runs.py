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
import contextlib
import copy
import csv
import ctypes
import errno
import glob
import json
import math
import numbers
import os
import shutil
import signal
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
    if status == 130:  # Ctrl-C: what was saved stays; one more Ctrl-C while Python shuts down
        with contextlib.suppress(ValueError):  # would kill it by the signal (not 130): ignore it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def seed(text):
    """argparse type of --seed: a whole number torch.manual_seed takes, -2**63 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give e.g. 0") from None
    if not -2 ** 63 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the seeds torch takes (-2**63 to 2**64 - 1); give e.g. 0")
    return value


def text(value):
    """A value as it is typed on the command line: 32-128-512, true, 0.007."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "-".join(map(str, value))
    return str(value)


def first_line(error, limit=120):
    """An exception's first line, for a one-line message (its class name where it has no text: EOFError);
    a longer one is cut after its last whole sentence within limit characters, or failing that after
    its last whole word, with '...'."""
    line = (str(error).splitlines() or [type(error).__name__])[0] or type(error).__name__
    if len(line) <= limit:
        return line
    sentence = line[:limit].rfind(". ")
    if sentence > limit // 2:
        return line[:sentence + 1]
    cut = line[:limit - 2].rsplit(" ", 1)[0].rstrip(" ,;:")  # limit - 2: room for the space a word ends at
    return (cut if cut else line[:limit - 3]) + "..."


def short(value, limit=60):
    """repr(value), cut to limit characters for a one-line message."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_positive(**values):
    """Raise UsageError naming the first option that is not a whole number >= 1 (sizes, counts, epochs);
    None is no value. From Python too: forecast.backtest(run, horizon="24") is one line, not a TypeError."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise UsageError(f"--{name} {short(repr(value))}: expected a whole number >= 1, e.g. 24")
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")


def before_torch(prog):
    """What a script does before it imports torch: a quiet Ctrl-C (quiet_ctrl_c), and OpenMP's wait
    policy chosen for the machine as it is (wait_policy)."""
    quiet_ctrl_c(prog)
    wait_policy()


def wait_policy(look=0.1, read=None):
    """OMP_WAIT_POLICY=PASSIVE where other processes keep at least half a core busy, set before torch
    starts its OpenMP threads (which read it once); else (and where the user set either variable)
    as it is. torch's threads spin while they wait for each other: fastest on an idle machine, but
    beside a busy process a thread that lost its core keeps the others spinning at every barrier
    (the quick start took 4.6x its idle time beside one spinning process). Passive waiting gives
    that back without changing the thread count, so the numbers stay bit for bit; on an idle
    machine it would cost about 17%, so it is chosen only when the look (`look` seconds of
    /proc/stat, this process asleep) finds the machine busy. Returns the policy set, or None."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return None
    read = read or _cpu_seconds
    before = read()
    if before is None:
        return None
    time.sleep(look)
    others = (read() - before) / look  # cores busy with other processes (this one slept)
    if others < 0.5:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


def check_level(level):
    """Raise UsageError unless level is a percentage between 0 and 100 (an interval's)."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 100:
        raise UsageError(f"--level {short(repr(level))}: expected a percentage between 0 and 100, e.g. 80")


def quiet_ctrl_c(prog):
    """Until the script's main() says otherwise, a Ctrl-C (while torch imports, say) ends it with one
    line and status 130 instead of a traceback."""
    def stop(signum, frame):
        print(f"{prog}: interrupted while starting; nothing was written", file=sys.stderr)
        raise SystemExit(130)
    signal.signal(signal.SIGINT, stop)


def ctrl_c_interrupts():
    """From here on a Ctrl-C raises KeyboardInterrupt, which the script's main() turns into one line."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_script(script, argv, prog):
    """Run SCRIPT, a script of this repository, as `python SCRIPT ARGV...` would, in this process:
    one program handing its command line to another (train.py's grids go to sweep.py), not a
    module importing another. The script's messages name prog, the program the user ran."""
    import runpy
    sys.argv = [script, *argv]
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), script), {"PROG": prog}, "__main__")


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
        """Print text if it is due (or first, or last); remember it otherwise, for finish()."""
        now = self.clock()
        self.pending = text
        if self.on and (first or last or self.last is None or now - self.last >= self.every):
            print(text, file=self.stream, flush=True)
            self.last, self.pending = now, None

    def finish(self):
        """The last line, if the rate limit held it back (a run stopped between two lines)."""
        if getattr(self, "pending", None):
            self.line(self.pending, last=True)


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
    """torch's thread count, following the cores that other processes leave free, where asked
    ($VQSEQ_THREADS=follow).

    torch starts one thread per core, and its OpenMP threads spin while they wait for each other.
    On an idle machine that is fastest; when another process holds a core, a thread that has lost
    its core keeps the rest spinning at every barrier: the quick start took 94 s beside one busy
    process against 28 s idle, and 34 s following the free cores (docs/BENCHMARKS.md). So: before training,
    and then at most every `every` seconds (between epochs), count the cores that other processes
    used since the last look (all busy CPU time in /proc/stat less this process's own), and use
    the cores left, at least one. Not by default: on Intel CPUs torch's BLAS (MKL) splits a sum
    between threads, so the thread count changes float32 rounding, and a choice that follows the
    load would give the same seed other numbers on a busier day (seen on a 2-core Xeon: vqlnpemlp,
    lstm, mhvqlnmlp_rope). Off Linux, where OMP_NUM_THREADS is set, or unless asked, torch's own
    choice stays."""

    def __init__(self, every=2.0, read=None):
        self.read = read or _cpu_seconds
        self.fixed = (os.environ.get("VQSEQ_THREADS") != "follow" or "OMP_NUM_THREADS" in os.environ
                      or self.read() is None)
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


def keep_freed_memory(limit=256 << 20):
    """Ask glibc to keep freed buffers of up to `limit` bytes for reuse instead of unmapping them.

    A training step allocates activations of a few MB (oneDNN's LSTM workspace, the VQ models'
    positions x codes scores) and frees them at its end. By default glibc hands such blocks back to
    the kernel, so the next step page-faults the same amount of fresh zeroed memory: 11,430 page
    faults and 27 ms of system time in every 42 ms lstm step (batch 64) on a 2-core machine, which
    this setting brings to 21 ms (see docs/BENCHMARKS.md). It changes no number a model computes,
    only where its memory comes from. Linux with glibc only; elsewhere it does nothing.
    """
    global _kept
    if _mallopt(limit):
        _kept = limit


def give_back_freed_memory():
    """Return the memory this process has freed to the system (glibc's malloc_trim): after reading a
    long CSV, whose two million cell strings for a million rows would otherwise stay resident in
    the heap, about 100 MB, under everything training allocates next (docs/BENCHMARKS.md, Scale).
    It takes milliseconds and changes no value. Elsewhere it does nothing; returns whether it ran."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def _glibc(name):
    """The C library's function `name` where the process runs on glibc, else None."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):  # macOS and musl lack it; Windows has no CDLL(None)
        return None


def _mallopt(limit):
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, limit)  # blocks below this come from the heap, not a fresh mmap
    mallopt(M_TRIM_THRESHOLD, limit)  # free heap below this stays with the process
    return True


_kept = None  # the limit keep_freed_memory set in this process, if it did


@contextlib.contextmanager
def big_blocks_returned(limit=32 << 20):
    """Within it, blocks over `limit` bytes are mapped afresh and unmapped when freed, as glibc does
    by default, where keep_freed_memory() has them kept; after it, kept again. For evaluation and
    codebook usage, which read a long series in chunks whose scores are far larger than a training
    step's (1024 windows x 96 positions x 512 codes: 192 MiB; usage: 48 MiB): kept, one stayed
    resident for the rest of the run, and where the heap had been cut up a second was made beside
    it, so a run's peak memory varied by up to 350 MB from run to run (issue 37). A chunk's fresh
    pages cost a few ms against its hundreds of ms of work."""
    if _kept is None or _kept <= limit:
        yield
        return
    _mallopt(limit)
    try:
        yield
    finally:
        _mallopt(_kept)


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
        raise RunError(f"not a readable run: {path} is not valid JSON ({first_line(e)})") from None
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


def output_folder(run_dir, tag, write, weights=None):
    """Call write(folder) on a new hidden folder in RUN/forecasts/, then name it {tag}, or {tag}-2,
    {tag}-3, ... where an earlier evaluation has that name: no evaluation replaces another's files
    (a repeat may read another version of a CSV), and a folder is whole or absent. Returns it.
    weights: stamp() of RUN/model.pt when the evaluation read it; where model.pt was replaced since
    (a train.py --resume), the evaluation is of weights the run no longer holds and nothing is written
    (a RunError), so forecasts/ holds evaluations of the current model.pt only."""
    def unchanged():
        if weights is not None and stamp(os.path.join(run_dir, "model.pt")) != weights:
            raise RunError(f"{os.path.join(run_dir, 'model.pt')} changed while this evaluation ran (train.py --resume?): "
                           f"its numbers are of the weights it replaced, so nothing was written; run it again to "
                           f"evaluate the new model.pt")
    unchanged()
    partial = new_folder(os.path.join(run_dir, "forecasts"), tag, f"run {run_dir}",
                         hint="move what is in its place away, or copy the run to a folder you can write to")
    try:
        write(partial)
        unchanged()
    except BaseException as e:
        discard_run_dir(partial)
        if isinstance(e, OSError) and not os.path.isdir(partial):  # --resume moved forecasts/ aside meanwhile
            for moved in glob.glob(os.path.join(glob.escape(run_dir), "forecasts-before-resume-epoch*",
                                                os.path.basename(partial))):
                shutil.rmtree(moved, ignore_errors=True)
            unchanged()
        raise
    return finish_folder(partial)


def stamp(path):
    """What tells a file from another written in its place: (inode, size, mtime in ns); None if absent."""
    try:
        s = os.stat(path)
    except OSError:
        return None
    return s.st_ino, s.st_size, s.st_mtime_ns


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


def holds_other_source(folder, source):
    """Whether runs/{name} (folder) holds a complete run trained on another file than source."""
    if not os.path.isdir(folder):
        return False
    for d in os.listdir(folder):
        if is_run_dir(os.path.join(folder, d)):
            try:
                if read_json(os.path.join(folder, d, "config.json")).get("source") != source:
                    return True
            except RunError:
                continue
    return False


def latest_run(path, weights="model.pt"):
    """A run directory as given, or runs/{run_name}: then its latest complete run (timestamps
    sort in time order; where it holds several, a line on stderr says which was taken). A path that
    is neither is a RunError naming it and what it is instead."""
    if not isinstance(path, (str, os.PathLike)):  # from Python: forecast.load(42)
        raise RunError(f"expected the path of a run directory, got {short(repr(path))}")
    name = os.path.basename(os.path.normpath(path))
    if name.startswith(".") and name.endswith(".partial"):
        raise RunError(f"{path!r} is a run still being written (a hidden .partial folder, named when its weights "
                       f"are saved); wait until it finishes, or give a finished run")
    if is_run_dir(path, weights):
        return path
    if os.path.isfile(path):
        raise RunError(f"{path!r} is a file, not a run directory (a run directory holds config.json and {weights}; "
                       f"to evaluate a run on a CSV, give the CSV with --dataset)")
    if os.path.isdir(path):
        found = sorted(d for d in os.listdir(path) if is_run_dir(os.path.join(path, d), weights))
        if len(found) > 1:
            print(f"{path} holds {len(found)} runs; taking the latest, {found[-1]} (give a run's folder to take "
                  f"another)", file=sys.stderr)
        if found:
            return os.path.join(path, found[-1])
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
                       f"({first_line(e)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise RunError(f"not a readable run: {path} is not a vqseq checkpoint (no state_dict)")
    return checkpoint


def read_losses(path):
    """The rows of a run's losses.csv (epoch and complete as integers, empty cells as None)."""
    try:
        with open(path, newline="") as f:
            rows = [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise RunError(f"not a readable run: {path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
        raise RunError(f"not a readable run: {path} is not a losses table ({first_line(e)})") from None
    if not rows or any(r.get("epoch") is None for r in rows):
        raise RunError(f"not a readable run: {path} holds no epochs")
    for r in rows:
        r["epoch"] = int(r["epoch"])
        r["complete"] = int(r.get("complete") if r.get("complete") is not None else 1)  # older runs: all complete
    return rows


# ---------------------------------------------------------------- a training run

class Interrupted(KeyboardInterrupt):
    """A training stopped by Ctrl-C; run_dir: where the epochs saved before it are (None: none was)."""

    def __init__(self, run_dir=None):
        super().__init__(run_dir)
        self.run_dir = run_dir


class Training:
    """The life of a run directory while a model trains, off train.py's loop:

        with runs.Training(config, validate, out_dir) as run:   # or resume=RUN_DIR
            run.restore(model, optimizer, shuffle)               # --resume: last.pt's states
            for epoch in run.epochs():                           # a tqdm bar, or a line per epoch in a log
                ... the steps, each ending `if run.stopped: break` (Ctrl-C) ...
                run.end_epoch(model, epoch, train_loss, val_loss, val_mse_last, complete)
            run.save(model)
        run.dir, run.rows, run.best                              # the finished run directory, losses, epoch kept

    A new run is built under a hidden temporary name (new_run_dir) and gets its name when training
    ends, so an error leaves nothing: a run directory is complete or absent. model.pt holds the best
    usable epoch (complete, with finite losses; chrono: the lowest val_mse_last; the log's protocol:
    the last), last.pt the last one with the optimizer and the shuffling state (--resume continues
    from it); with no usable epoch, model.pt is the untrained model, epoch 0 (validate(model) gives
    its losses). Both are written after every complete epoch, with losses.csv and config.json, so:
      - a first Ctrl-C sets `stopped`: the loop finishes its step, what was trained is saved (an
        epoch it cut short is marked complete 0 and never kept), and the run is marked interrupted;
        in a new run's first epoch there is nothing to keep: the run directory is removed;
      - a second Ctrl-C stops at once (one arriving while files are written, right after them): the
        run keeps the epochs saved before it and gets its name, and Interrupted says where it is.
    --resume moves the earlier weights' forecasts aside, to forecasts-before-resume-epoch{N}/. Threads
    follow the cores other processes leave free (Threads); freed memory is kept for reuse.
    """

    def __init__(self, config, validate, out_dir="runs", resume=None, writes=True):
        self.config, self.validate, self.out_dir, self.writes = config, validate, out_dir, writes
        self.select = "val_mse_last" if config.get("split") == "chrono" else None  # the log kept the last epoch
        self.dir, self.partial, self.made, self.initial, self.resumed_from = resume, None, [], None, None
        self.rows, self.best = [], {"epoch": 0, "score": float("inf"), "state": None}
        self.progress, self.threads = Progress(), Threads()
        self._stop, self._saving, self._abort, self.saved, self.written_best = [], False, False, False, None

    @property
    def stopped(self):
        return bool(self._stop)

    def __enter__(self):
        keep_freed_memory()
        self.threads.start()  # as many threads as other processes leave cores free
        if self.dir:
            self.last = load_checkpoint(os.path.join(self.dir, "last.pt"))
            best = load_checkpoint(os.path.join(self.dir, "model.pt"))
            for name, held in (("last.pt", self.last), ("model.pt", best)):
                if held.get("model") != self.config["model"]:
                    raise RunError(f"not a readable run: {self.dir}/{name} holds a {short(held.get('model'))} model "
                                   f"where config.json names {self.config['model']}: the folder mixes two runs")
                if held.get("seed", self.config.get("seed")) != self.config.get("seed"):  # older runs: no seed
                    raise RunError(f"not a readable run: {self.dir}/{name} holds a model trained with --seed "
                                   f"{short(held['seed'])} where config.json names --seed {self.config.get('seed')}: "
                                   f"the folder mixes two runs")
            self.rows = read_losses(os.path.join(self.dir, "losses.csv"))
            self.resumed_from = self.rows[-1]["epoch"]
            if self.config["epochs"] <= self.resumed_from:
                raise DataError(f"--resume {self.dir}: it has run {self.resumed_from} epochs already; "
                                f"give --epochs larger than that")
            self.best = {"epoch": self.last["best_epoch"], "score": self.last["best_score"], "state": best["state_dict"]}
            self.written_best = self.best["epoch"]
        elif self.writes:  # (writes=False: a torchrun rank other than 0 follows the run, writes nothing)
            self.made = [f for f in make_folder(self.out_dir, f"--out_dir {self.out_dir!r}")]
            self.dir = self.partial = new_run_dir(self.out_dir, self.config["run_name"])

        def on_sigint(signum, frame):
            if not self._stop:
                self._stop.append(True)  # the first: finish this step, save, stop
            elif self._saving:
                self._abort = True       # a later one while files are written: right after them
            else:
                raise KeyboardInterrupt  # a later one: at once; what was saved stays
        self.previous = signal.signal(signal.SIGINT, on_sigint)
        self.t0 = time.perf_counter() - (self.rows[-1]["seconds"] if self.rows else 0.0)
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is not None and issubclass(kind, KeyboardInterrupt):
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # naming the run takes a moment: no Ctrl-C splits it
                if self.partial and self.saved:
                    self.dir, self.partial = finish_run_dir(self.partial), None
                elif self.partial:
                    self.discard()
                raise Interrupted(self.dir if self.saved else None) from None
            if kind is not None and self.partial:
                self.discard()  # a run directory is complete or absent
        finally:
            signal.signal(signal.SIGINT, self.previous)
        return False

    def discard(self):
        discard_run_dir(self.partial)  # a run directory is complete or absent
        remove_folders(self.made)      # and --out_dir, where this run made it

    def restore(self, model, optimizer, shuffle):
        """--resume: the model, optimizer and shuffling as last.pt left them; a new run: note the
        untrained weights (model.pt if no epoch completes). Either way, what save() writes."""
        self.model, self.optimizer, self.shuffle = model, optimizer, shuffle
        if self.resumed_from is None:
            self.initial = copy.deepcopy(model.state_dict())
            return
        path = os.path.join(self.dir, "last.pt")
        try:
            model.load_state_dict(self.last["state_dict"])
            if optimizer and self.last.get("optimizer"):
                optimizer.load_state_dict(self.last["optimizer"])
            if shuffle is not None:
                shuffle.set_state(self.last["shuffle"])
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise RunError(f"not a readable run: {path} does not fit its model ({first_line(e)})") from None

    def epochs(self):
        """The epochs still to run, first to config["epochs"], behind a progress bar; between two,
        the thread count follows the machine."""
        from tqdm import tqdm
        self.first = self.rows[-1]["epoch"] + 1 if self.rows else 1
        self.bar = tqdm(range(self.first, self.config["epochs"] + 1), desc=self.config["run_name"], unit="epoch",
                        leave=False, disable=None if self.writes else True)
        try:
            for epoch in self.bar:
                yield epoch
                if self.stopped:
                    break
                self.threads.update()
        finally:
            self.bar.close()

    def end_epoch(self, model, epoch, train_loss, val_loss, val_mse_last, complete=True):
        """Record an epoch's losses; keep its weights if it is usable (complete, finite losses) and
        the best so far; then write the run as it stands (a complete epoch is never lost to Ctrl-C)."""
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_mse_last": val_mse_last,
               "seconds": time.perf_counter() - self.t0, "complete": int(complete)}
        self.rows.append(row)
        score = row[self.select] if self.select else -epoch
        if usable(row) and score < self.best["score"]:
            self.best = {"epoch": epoch, "score": score, "state": copy.deepcopy(model.state_dict())}
        if getattr(self, "bar", None) is not None:
            self.bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val_loss:.4g}", val_mse_last=f"{val_mse_last:.4g}")
        self.progress.line(f"epoch {epoch}/{self.config['epochs']}  train {train_loss:.4g}  val {val_loss:.4g}  "
                           f"val_mse_last {val_mse_last:.4g}  {row['seconds']:.1f}s"
                           + ("" if complete else "  (partial: stopped by Ctrl-C)"),
                           first=epoch == getattr(self, "first", epoch), last=epoch == self.config["epochs"] or self.stopped)
        if complete and not self.stopped:
            self.write(model, interrupted=True)  # "interrupted" until save() says how it ended

    def save(self, model):
        """The run as training left it (epoch 0, the untrained model, where no epoch is usable), with
        its loss plot; then the run directory gets its name. A new run stopped by Ctrl-C before its
        first epoch ended has nothing to keep: it is removed (Interrupted, with no run_dir)."""
        if self.stopped and self.partial and not self.saved:
            raise KeyboardInterrupt  # __exit__ discards the run directory
        if self.initial is not None and not any(usable(r) for r in self.rows):
            # no usable epoch (--epochs 0, Ctrl-C in the first, losses that diverged): model.pt is the untrained model
            trained = copy.deepcopy(model.state_dict())
            model.load_state_dict(self.initial)
            val_loss, val_mse_last = self.validate(model)
            model.load_state_dict(trained)
            self.rows.insert(0, {"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_mse_last": val_mse_last,
                                 "seconds": 0.0, "complete": 1})
            self.best = {"epoch": 0, "score": float("inf"), "state": self.initial}
        if self.best["state"] is None:
            self.best = {"epoch": self.rows[-1]["epoch"], "score": float("inf"), "state": model.state_dict()}
        self.progress.finish()
        self.write(model, interrupted=self.stopped, plot=True)
        with self.writing():
            if self.partial:
                self.dir, self.partial = finish_run_dir(self.partial), None

    @contextlib.contextmanager
    def writing(self):
        """A stretch of writes that a second Ctrl-C does not split: it takes effect right after."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False
        if self._abort:
            raise KeyboardInterrupt

    def write(self, model, interrupted, plot=False):
        """model.pt (rebuilds the model alone; rewritten when the best epoch changed), last.pt
        (resumes training), losses.csv, config.json, and with plot loss.png; each file whole."""
        import torch

        def cpu(state):
            return {k: v.detach().cpu() for k, v in state.items()}
        with self.writing():
            if self.resumed_from is not None and os.path.isdir(os.path.join(self.dir, "forecasts")):
                rename_unique(os.path.join(self.dir, "forecasts"),  # made with the weights this resume replaces
                              os.path.join(self.dir, f"forecasts-before-resume-epoch{self.resumed_from}"))
            best = self.best if self.best["state"] is not None else {"epoch": 0, "state": self.initial}  # none usable yet
            weights = {"model": self.config["model"], "model_args": self.config["model_args"],
                       "norm": self.config.get("norm", "global"), "seed": self.config.get("seed"), "epoch": best["epoch"]}
            if self.written_best != best["epoch"] or plot:
                write_atomic(os.path.join(self.dir, "model.pt"),
                             lambda tmp: torch.save({**weights, "state_dict": cpu(best["state"])}, tmp))
                self.written_best = best["epoch"]
            last = {**weights, "epoch": self.rows[-1]["epoch"], "state_dict": cpu(model.state_dict()),
                    "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                    "shuffle": self.shuffle.get_state() if self.shuffle is not None else None,
                    "best_epoch": self.best["epoch"], "best_score": self.best["score"]}
            write_atomic(os.path.join(self.dir, "last.pt"), lambda tmp: torch.save(last, tmp))
            write_csv(os.path.join(self.dir, "losses.csv"), list(self.rows[0]), [list(r.values()) for r in self.rows])
            write_json(os.path.join(self.dir, "config.json"), {**self.config, "interrupted": interrupted})
            if plot:
                epochs = [r["epoch"] for r in self.rows]
                curves = {"train loss": (epochs, [r["train_loss"] for r in self.rows]),
                          "validation loss": (epochs, [r["val_loss"] for r in self.rows]),
                          "~val_mse_last": (epochs, [r["val_mse_last"] for r in self.rows])}
                plot_curves(curves, self.config["run_name"], "MSE (normalised units)", os.path.join(self.dir, "loss.png"))
            self.saved = True


def usable(row):
    """An epoch model.pt may hold: complete, with finite validation losses."""
    return bool(row["complete"]) and all(row[k] is not None and math.isfinite(row[k]) for k in ("val_loss", "val_mse_last"))
