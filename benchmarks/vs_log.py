"""Side by side with the log's code, in one run: the same protocol, training time and val loss.

    python benchmarks/vs_log.py --orig /path/to/simple-sequence-prediction --orig_python /path/to/venv/bin/python
    python benchmarks/vs_log.py --orig ... --orig_python ... --models vqlnmlp,lstm --epochs 2 --repeat 1   # smoke

--orig is a bare mirror or a clone of the public repository donglinkang2021/simple-sequence-prediction,
in which the research log was written. The script extracts the commits it needs into a temporary
directory (git archive) and runs the original's own train.py there, with the original's own
Python: the VQ-MLP family from ac49824 (its train.py trains and saves, nothing more), lstm and att
from the head 5d0a590 (its train.py trains, then predicts the whole series batch-wise and
regressively and plots; att's configuration is the final one of a8fe9ca, unchanged at the head).
None of the original's code enters this repository; it runs only in its own process.

The original's environment (--orig_python), outside this repository:

    python -m venv --system-site-packages VENV     # over a Python that has torch (2.13 CPU here)
    VENV/bin/pip install simplepe==0.0.3 einops tabulate hydra-core omegaconf tensorboard pandas seaborn
    # measured with: hydra-core 1.3.8, omegaconf 2.3.1, tensorboard 2.21.0, pandas 3.1.1,
    # seaborn (predict.py's plots), einops 0.8.2, tabulate 0.10.0, tqdm 4.70.1, matplotlib 3.11.2, numpy 2.4.6

The protocol, the same on both sides: data set y_w (the CSV in the original's data/, or --data_dir),
the log's random 80/20 split of the windows (ours: --split random), statistics from the whole
series, and each model at the log's setting:

    lstm            hidden 64, 2 layers, ts112 bs64 lr 5e-4, last-value target, then forecast
    att             d_model 64, sinpe on the input, LayerNorm on input, q and k, causal,
                    ts112 bs64 lr 3e-3, aligned target, then forecast
    vqlnmlp         vs512 dm64, ts96 bs32 lr 7e-3, aligned target, no forecast
    vqlnpemlp       vs512 dm64, ts96 bs32 lr 7e-3, aligned target, no forecast
    mhvqlnmlp_rope  vs512 dm64 nh8, ts96 bs32 lr 7e-3, aligned target, no forecast

Every run writes into a temporary directory (the original: logger.save_dir and hydra.run.dir
pointed there), removed at the end. Both sides get the same thread count: --threads sets
OMP_NUM_THREADS and MKL_NUM_THREADS for both processes; without it neither is set (torch's default).
The repeats alternate: for each repeat, for each model, the log's run then ours, one after the other,
so a machine that slows down for a minute slows both.

What is measured, per process:
    whole s     the process from start to exit, timed from outside (imports, data, training, and
                for lstm and att the forecast: the original's predict() and our forecast.py).
    training s  the epoch loop. Ours: metrics.json "seconds", from just before the first epoch to
                the end of the last validation. The log's: its own tqdm bar over the epochs
                (created just before the first epoch, closed after the last validation and
                TensorBoard write); the benchmark sets TQDM_BAR_FORMAT so that the bar prints its
                elapsed seconds unrounded ({elapsed_s}), the last line of the "Training" bar is
                read (for lstm and att, predict()'s own bar over the forecast comes after it).
                No line of the original is changed.
    val loss    the last epoch's validation MSE (normalised units): ours metrics.json val_loss (the
                last epoch under --split random); the log's the last Loss/val scalar in its
                TensorBoard event file, read with the original's Python (the 3-digit value its
                progress bar prints if that fails).
The table gives medians over the repeats with min-max, the ratios log / ours (above 1: ours is
faster), and whether the val losses' medians agree within 3%. The original seeds nothing, so its
val loss varies from run to run; ours runs --seed 0 in the first repeat, 1 in the second, and so
on, so that both medians are over as many initialisations (att's val loss spreads by 5% over
seeds: 0.0158-0.0167 for seeds 0-4).
"""
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402

PROG = "vs_log.py"
HEAD, VQ_COMMIT = "5d0a590", "ac49824"
DATA_FILE = "y+w.csv"
AGREE = 0.03
MARK = "VSLOG"
VQ_TRAIN = ["train.is_align_target=True", "train.time_steps=96", "train.batch_size=32", "train.learning_rate=7e-3"]
VQ_OURS = ["--time_steps", "96", "--batch_size", "32", "--lr", "7e-3", "--no_forecast"]
# model -> (commit, the original's hydra overrides, our train.py arguments)
MODELS = {
    "lstm": (HEAD, ["model=lstm", "model.hidden_dim=64", "train.time_steps=112", "train.batch_size=64",
                    "train.learning_rate=5e-4"],
             ["--model", "lstm", "--hidden_size", "64", "--time_steps", "112", "--batch_size", "64", "--lr", "5e-4"]),
    "att": (HEAD, ["model=att", "train.is_align_target=True", "train.time_steps=112", "train.batch_size=64",
                   "train.learning_rate=3e-3"],
            ["--model", "att", "--d_model", "64", "--block_size", "512", "--pe_type", "sinpe", "--pe_on", "input",
             "--in_ln", "true", "--q_ln", "true", "--k_ln", "true", "--causal", "true",
             "--time_steps", "112", "--batch_size", "64", "--lr", "3e-3"]),
    "vqlnmlp": (VQ_COMMIT, ["model=vqlnmlp", "++model.vocab_size=512", "++model.d_model=64", *VQ_TRAIN],
                ["--model", "vqlnmlp", "--vocab_size", "512", "--d_model", "64", *VQ_OURS]),
    "vqlnpemlp": (VQ_COMMIT, ["model=vqlnpemlp", "++model.vocab_size=512", "++model.d_model=64", *VQ_TRAIN],
                  ["--model", "vqlnpemlp", "--vocab_size", "512", "--d_model", "64", *VQ_OURS]),
    "mhvqlnmlp_rope": (VQ_COMMIT, ["model=mhvqlnmlp_rope", "++model.vocab_size=512", "++model.d_model=64",
                                   "model.n_head=8", *VQ_TRAIN],
                       ["--model", "mhvqlnmlp_rope", "--vocab_size", "512", "--d_model", "64", "--n_heads", "8",
                        *VQ_OURS]),
}
HOW = ("training s: ours metrics.json seconds (epoch loop); the log's its tqdm epoch bar's elapsed_s "
       "(TQDM_BAR_FORMAT); whole s: process start to exit, timed from outside")


# ---------------------------------------------------------------- the table

def spread(values, digits=1):
    """'median (min-max)' of a list, '-' for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratio(log, ours):
    """Median of the log's over median of ours (above 1: ours is faster); None without both."""
    if not log or not ours or statistics.median(ours) <= 0:
        return None
    return statistics.median(log) / statistics.median(ours)


def agree(log, ours, tolerance=AGREE):
    """Whether the medians of two val-loss lists are within tolerance of the log's; None without both."""
    if not log or not ours:
        return None
    a, b = statistics.median(log), statistics.median(ours)
    return abs(b - a) <= tolerance * abs(a)


HEADER = ["model", "log training s", "ours training s", "ratio training", "log whole s", "ours whole s",
          "ratio whole", "log val loss", "ours val loss", f"agree {AGREE:.0%}"]


def table_rows(results):
    """results: model -> {'log'|'ours': {'train': [...], 'whole': [...], 'val': [...]}} -> rows of strings."""
    rows = []
    for model, sides in results.items():
        log, ours = sides["log"], sides["ours"]
        r_train, r_whole = ratio(log["train"], ours["train"]), ratio(log["whole"], ours["whole"])
        ok = agree(log["val"], ours["val"])
        rows.append([model, spread(log["train"]), spread(ours["train"]),
                     "-" if r_train is None else f"{r_train:.2f}x",
                     spread(log["whole"]), spread(ours["whole"]),
                     "-" if r_whole is None else f"{r_whole:.2f}x",
                     spread(log["val"], 4), spread(ours["val"], 4),
                     "-" if ok is None else ("yes" if ok else "no")])
    return rows


def format_text(rows):
    widths = [max(len(str(r[i])) for r in [HEADER] + rows) for i in range(len(HEADER))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(HEADER)] + [line(r) for r in rows])


def format_markdown(rows):
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def machine(threads):
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    shown = threads if threads else f"torch default ({torch.get_num_threads()})"
    return [f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            f"torch {torch.version.__version__}, python {platform.python_version()}, threads {shown}"]


# ---------------------------------------------------------------- the two sides

def extract(repo, commit, into):
    """git archive repo's commit into the directory `into`."""
    os.makedirs(into)
    archive = subprocess.run(["git", "-C", repo, "archive", commit], capture_output=True)
    if archive.returncode != 0:
        runs.fail(PROG, f"--orig {repo}: cannot extract commit {commit}: "
                        f"{archive.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def last_line(text, status):
    return (text.strip().splitlines() or [f"exit status {status}"])[-1]


def run_log(python, tree, overrides, out, env):
    """One run of the original's train.py: (whole s, training s, val loss)."""
    save = tempfile.mkdtemp(dir=out, prefix="log-")
    command = [python, "train.py", *overrides, "dataset=y_w", f"logger.save_dir={save}",
               f"hydra.run.dir={save}/hydra"]
    env = dict(env, HYDRA_FULL_ERROR="1", TQDM_BAR_FORMAT=MARK + " {desc} {n}/{total} elapsed_s={elapsed_s:.6f} {postfix}")
    t0 = time.perf_counter()
    r = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    whole = time.perf_counter() - t0
    if r.returncode != 0:
        runs.fail(PROG, f"the log's train.py {' '.join(overrides)} failed: {last_line(r.stderr, r.returncode)}",
                  status=1)
    training, bar_val = training_bar(r.stderr)
    val = read_events(python, save)
    return whole, training, bar_val if val is None else val


def training_bar(stderr):
    """(elapsed seconds, val_loss) of the last state of the log's epoch bar in its stderr: the bar
    named "Training", not predict()'s bar over the forecast steps that follows it."""
    bars = [b for b in re.split(r"[\r\n]", stderr) if b.startswith(MARK + " Training")]
    if not bars:
        runs.fail(PROG, "the log's train.py printed no progress bar; is its tqdm 4.66 or newer "
                        "(TQDM_BAR_FORMAT)?", status=1)
    val = re.search(r"val_loss=([0-9.e+-]+)", bars[-1])
    return float(re.search(r"elapsed_s=([0-9.]+)", bars[-1]).group(1)), float(val.group(1)) if val else None


READ_EVENTS = """
import glob, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
files = [f for f in glob.glob(sys.argv[1] + '/**/events.out.tfevents.*', recursive=True) if '/hparams/' not in f]
acc = EventAccumulator(files[0]); acc.Reload()
print(repr(acc.Scalars('Loss/val')[-1].value))
"""


def read_events(python, save):
    """The last Loss/val scalar of the original's TensorBoard log, None if it cannot be read."""
    r = subprocess.run([python, "-c", READ_EVENTS, save], capture_output=True, text=True)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None


def run_ours(args, data_dir, out, env, seed=0):
    """One run of our train.py: (whole s, training s, val loss)."""
    command = [sys.executable, "train.py", *args, "--dataset", "y_w", "--data_dir", data_dir, "--split", "random",
               "--seed", str(seed), "--device", "cpu", "--out_dir", out]
    t0 = time.perf_counter()
    r = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    whole = time.perf_counter() - t0
    if r.returncode != 0:
        runs.fail(PROG, f"python train.py {' '.join(args)} failed: {last_line(r.stderr, r.returncode)}", status=1)
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    m = runs.read_json(os.path.join(run_dir, "metrics.json"))
    return whole, m["seconds"], m["val_loss"]


# ---------------------------------------------------------------- main

def parse_args(argv):
    parser = runs.Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--orig", required=True, help="a bare mirror or clone of simple-sequence-prediction")
    parser.add_argument("--orig_python", default="python", help="the Python of the original's venv (default: python)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; medians are compared")
    parser.add_argument("--epochs", type=int, default=50, help="both sides (the log's: 50)")
    parser.add_argument("--threads", type=int, default=None, help="OMP/MKL threads for both (default: torch's)")
    parser.add_argument("--data_dir", default=None, help=f"where {DATA_FILE} is (default: the original's data/)")
    parser.add_argument("--out", default=None, help="also write the table as markdown to this file")
    args = parser.parse_args(argv)
    for name in ("repeat", "epochs", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        parser.error(f"unknown model {(unknown or [args.models])[0]!r}; choose from {', '.join(MODELS)}")
    if not os.path.isdir(args.orig):
        parser.error(f"--orig {args.orig!r} is not a directory")
    probe = subprocess.run(["git", "-C", args.orig, "cat-file", "-e", f"{VQ_COMMIT}^{{commit}}"], capture_output=True)
    probe_head = subprocess.run(["git", "-C", args.orig, "cat-file", "-e", f"{HEAD}:train.py"], capture_output=True)
    if probe.returncode or probe_head.returncode:
        parser.error(f"--orig {args.orig!r} is not the simple-sequence-prediction repository "
                     f"(needs commits {HEAD} and {VQ_COMMIT})")
    python = shutil.which(args.orig_python)
    if python is None:
        parser.error(f"--orig_python {args.orig_python!r} not found")
    args.orig_python = python
    if args.data_dir is not None and not os.path.isfile(os.path.join(args.data_dir, DATA_FILE)):
        parser.error(f"--data_dir {args.data_dir!r} has no {DATA_FILE}")
    return args


def main(argv=None):
    args = parse_args(argv)
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
        if args.threads:
            env[name] = str(args.threads)
    env.pop("PYTHONPATH", None)  # neither side sees the other's modules
    lines = machine(args.threads) + [f"orig: {os.path.abspath(args.orig)} ({HEAD}, {VQ_COMMIT}), python {args.orig_python}",
                                     f"y_w, --split random, {args.epochs} epochs, {args.repeat} repeats; {HOW}"]
    print("\n".join(lines), flush=True)
    results = {m: {"log": {"train": [], "whole": [], "val": []}, "ours": {"train": [], "whole": [], "val": []}}
               for m in args.models}
    with tempfile.TemporaryDirectory(prefix="vs_log-") as tmp:
        trees = {}
        for commit in sorted({MODELS[m][0] for m in args.models}):
            trees[commit] = extract(args.orig, commit, os.path.join(tmp, commit))
            if args.data_dir is not None:  # the original reads data/y+w.csv relative to its tree
                shutil.copyfile(os.path.join(args.data_dir, DATA_FILE), os.path.join(trees[commit], "data", DATA_FILE))
        data_dir = args.data_dir or os.path.join(trees[HEAD if HEAD in trees else VQ_COMMIT], "data")
        epochs = [f"train.num_epochs={args.epochs}"]
        for r in range(args.repeat):
            for m in args.models:
                commit, overrides, ours = MODELS[m]
                for side in ("log", "ours"):
                    out = tempfile.mkdtemp(dir=tmp, prefix=f"{side}-")
                    if side == "log":
                        whole, training, val = run_log(args.orig_python, trees[commit], overrides + epochs, out, env)
                    else:
                        whole, training, val = run_ours(ours + ["--epochs", str(args.epochs)], data_dir, out, env, seed=r)
                    shutil.rmtree(out, ignore_errors=True)
                    for key, value in (("train", training), ("whole", whole), ("val", val)):
                        results[m][side][key].append(value)
                    print(f"  repeat {r + 1} {m:<15} {side:<4} training {training:7.2f} s  whole {whole:7.2f} s  "
                          f"val loss {val:.6g}", flush=True)
    rows = table_rows(results)
    print(format_text(rows))
    if args.out:
        text = "\n".join(lines) + "\n\n" + format_markdown(rows) + "\n"
        def write(path):
            with open(path, "w") as f:
                f.write(text)
        runs.write_atomic(args.out, write)


if __name__ == "__main__":
    main()
