"""Golden outputs: the numbers a fixed set of commands writes, recorded once, compared bit for bit.

    python tests/golden.py --write          # record tests/golden/{MACHINE}/{case}.json from the code as it is
    python tests/golden.py                  # run every case and compare with the record (exit 1 if any differs)
    python tests/golden.py --cases resume   # some of them

Recorded at 21dcabd, before issue 27 moved code out of train.py, forecast.py and data/: every
move since must give the same losses.csv, metrics.json, errors_by_step.csv and future.csv, and the
same statistics and parts in config.json, on the CPU with one thread. Times, seconds, paths and
versions are left out (they change from run to run); everything else is compared as written.
tests/test_golden.py runs each case in the test's process (each script's main(argv), one thread);
this script runs them as `python SCRIPT ...` commands, two cases at a time. Each case runs in its
own output folder; `{run}` in a command is the run directory its case's training wrote.

Bit for bit holds on one kind of CPU only: another vendor's or another vector width's kernels
round float32 sums differently (AMD EPYC against an AVX512 Intel Xeon: up to 2.2e-5 relative, in
the regressive MSE that feeds a forecast back 96 times). So there is a record per kind of machine,
tests/golden/{vendor}-{torch's CPU capability}/, each made by the code at 21dcabd on such a machine
(GenuineIntel-AVX512: a 2-core Intel Xeon, 2026-12-05; AuthenticAMD: the first record, a 2-core
AMD EPYC, 2026-12-04, whose capability was not written down). On a machine of a recorded kind the
comparison is exact; on another (AMD included), every number is compared to RTOL of a record of
the same vendor, or the first, and everything else exactly (the test says which).
"""
import argparse
import contextlib
import csv
import glob
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
RTOL = 1e-4  # another kind of CPU: 2.2e-5 seen (AMD EPYC against Intel Xeon AVX512)
FORMALDEHYDE = re.compile(r"\b(y_w|w_y|4single)\b")

CASES = {
    "quick_start": ["train.py --model vqlnpemlp --epochs 2", "forecast.py {run} --positions sliding"],
    "lstm_y_w": ["train.py --model lstm --dataset y_w --epochs 1", "forecast.py {run} --positions sliding"],
    "vqlnmlp_y_w_random": ["train.py --model vqlnmlp --dataset y_w --split random --epochs 1 --no_forecast",
                           "forecast.py {run}"],
    "att_mh_kv_cache": ["train.py --model att_mh --norm global --pe_on qk --time_steps 24 --epochs 1 --no_forecast",
                        "forecast.py {run} --kv_cache on --horizon 12",
                        "forecast.py {run} --future 10"],
    "linear_goog": ["train.py --model linear --dataset goog",
                    "forecast.py {run} --horizon 48",
                    "forecast.py {run} --future 30",
                    "forecast.py {run} --positions sliding"],
    "sweep": ["sweep.py --model vqlnmlp,naive --lr 0.003,0.007 --dataset goog --time_steps 32 --epochs 1"],
    "resume": ["train.py --model vqlnmlp --time_steps 32 --epochs 1 --no_forecast",
               "train.py --resume {run} --epochs 2",
               "forecast.py {run} --positions sliding"],
    "vqvae": ["vqvae_imagenet.py --data sample --image_size 64 --batch_size 4 --workers 0 --hidden 32 "
              "--res_channels 8 --max_steps 3"],
}
# Since the record (issue 28): a chrono run no longer writes the log's evaluation of its test part
# ({dataset}_test/) unless asked, so the cases ask for it (forecast.py --positions sliding) where one
# training is their last (the sweep's three are not asked: ALLOWED_MISSING); metrics.json gained
# diverged_epochs, and since issue 35 val_mse_last_mean_forecast (NEW_KEYS); a --split random run's name ends _random (its record's keys were
# renamed to match); future.csv writes each number to the precision float32 carries, so it is
# compared rounded to the digits written (same_to_written_precision); issue 34 added the field's
# normalised errors to a backtest's metrics.json and the test part's end to config.json's parts.
# None of these changes a number that was recorded.
ALLOWED_MISSING = {"sweep": re.compile(r"forecasts/goog_test/metrics\.json$")}
NEW_KEYS = {"diverged_epochs", "val_mse_last_mean_forecast", "mse_normalised", "mae_normalised",
            "test_end", "norm_stats"}  # issue 34's field split, issue 37's frozen statistics
OUTPUTS = ("losses.csv", "metrics.json", "errors_by_step.csv", "future.csv", "config.json")
DROP = NEW_KEYS | {"seconds", "run_dir", "folder", "source", "command", "versions", "device", "data_dir", "images_per_s",
        "run_name", "time", "date", "path", "sha256", "created", "out_dir", "wall_seconds", "load_average"}
CONFIG_KEEP = ("normalisation", "parts", "n_windows", "model_args", "time_steps", "batch_size", "lr", "epochs",
               "seed", "split", "norm", "target", "fractions")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(-\d+)?")


def needs_formaldehyde(case):
    return any(FORMALDEHYDE.search(c) for c in CASES[case])


def run_case(case, out, run_command=None):
    """Run a case's commands in out/ with one thread; returns {key: normalised content}. Each command
    is a `python SCRIPT ...` process, or run_command(argv) -> (exit status, stderr) where given
    (tests/test_golden.py: each script's main(argv) in the test's process)."""
    run = None
    for command in CASES[case]:
        argv = shlex.split(command.format(run=run))
        if argv[0] != "forecast.py" and "--resume" not in argv:
            argv += ["--out_dir", out]
        code, err = (run_command or run_there)(argv)
        if code != 0:
            raise RuntimeError(f"{case}: {' '.join(argv)} failed ({code}):\n{err[-3000:]}")
        found = sorted(glob.glob(os.path.join(out, "**", "config.json"), recursive=True))
        found = [os.path.dirname(f) for f in found if "forecasts" not in os.path.relpath(f, out).split(os.sep)]
        run = found[-1] if found else None
    return collect(out)


def run_there(argv):
    env = dict(os.environ, OMP_NUM_THREADS="1", VQSEQ_PROGRESS_SECONDS="0")
    r = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return r.returncode, r.stderr


def collect(out):
    files = {}
    for path in sorted(glob.glob(os.path.join(out, "**", "*"), recursive=True)):
        if os.path.basename(path) not in OUTPUTS or "/." in path:
            continue
        key = TIMESTAMP.sub("T", os.path.relpath(path, out))
        files[key] = normalise(path)
    return files


def normalise(path):
    name = os.path.basename(path)
    if name.endswith(".json"):
        obj = json.load(open(path))
        if name == "config.json":
            obj = {k: obj[k] for k in CONFIG_KEEP if k in obj}
        return strip(obj)
    rows = list(csv.reader(io.StringIO(open(path).read())))
    keep = [i for i, h in enumerate(rows[0]) if not any(d in h for d in ("seconds", "images_per_s"))]
    return [[r[i] for i in keep if i < len(r)] for r in rows]


def strip(obj):
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in DROP}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def same_to_written_precision(want, got):
    """future.csv: each number as recorded, rounded to the decimals it is written with now (issue 28
    writes forecasts to the precision float32 carries: 2.9, not 2.9000009197)."""
    if want == got:
        return True
    if not (isinstance(want, list) and isinstance(got, list) and len(want) == len(got)):
        return False
    for a, b in zip(want, got):
        if isinstance(a, list):
            if not same_to_written_precision(a, b):
                return False
        elif a != b:
            try:
                decimals = len(b.split(".")[1]) if "." in b else 0
                if round(float(a), decimals) != float(b):
                    return False
            except ValueError:
                return False
    return True


def machine():
    """This machine's kind: (CPU vendor, torch's CPU capability), e.g. ("GenuineIntel", "AVX512")."""
    import torch
    vendor = "unknown"
    with contextlib.suppress(OSError):
        vendor = next((line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("vendor_id")),
                      vendor)
    return vendor, torch.backends.cpu.get_cpu_capability()


def record():
    """(folder, exact): the record of this machine's kind ({vendor}-{capability}), exact; else one of
    the same vendor, else the first, to RTOL."""
    folders, kind = sorted(os.listdir(GOLDEN)), "-".join(machine())
    if kind in folders:
        return os.path.join(GOLDEN, kind), True
    vendor = [f for f in folders if f.split("-")[0] == kind.split("-")[0]]
    return os.path.join(GOLDEN, (vendor or folders)[0]), False


def close(want, got):
    """The same, except that numbers (as JSON numbers or CSV text) may differ by RTOL relative, and
    by half a unit of the last decimal a number is written with now (future.csv rounds)."""
    if isinstance(want, (list, dict)) or isinstance(got, (list, dict)):
        if type(want) is not type(got) or len(want) != len(got):
            return False
        if isinstance(want, dict):
            return want.keys() == got.keys() and all(close(want[k], got[k]) for k in want)
        return all(close(a, b) for a, b in zip(want, got))
    if want == got:
        return True
    try:
        a, b = float(want), float(got)
    except (TypeError, ValueError):
        return False
    written = 0.5 * 10.0 ** -len(got.split(".")[1]) if isinstance(got, str) and "." in got and "e" not in got else 0
    return not isinstance(want, bool) and abs(a - b) <= RTOL * max(abs(a), abs(b)) + written


def differences(case, got, where=None):
    """Lines that say where got differs from the record of case ([] where it is the same); where is
    (folder, exact), by default record()'s."""
    folder, exact = where or record()
    want = json.load(open(os.path.join(folder, f"{case}.json")))
    allowed = ALLOWED_MISSING.get(case)
    lines = [f"missing {k}" for k in sorted(set(want) - set(got)) if not (allowed and allowed.search(k))]
    lines += [f"unexpected {k}" for k in sorted(set(got) - set(want))]
    for key in sorted(set(want) & set(got)):
        same = (same_to_written_precision if key.endswith("future.csv") else (lambda a, b: a == b)) if exact else close
        if not same(want[key], got[key]):
            lines.append(f"differs {key}: {first_difference(want[key], got[key])}")
    return lines


def first_difference(a, b, where=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return first_difference(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return f"{where or '.'}: recorded {str(a)[:200]}, now {str(b)[:200]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the outputs instead of comparing")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        outputs = dict(zip(args.cases, pool.map(lambda c: run_case(c, os.path.join(tmp, c)), args.cases)))
    failed = False
    for case, got in outputs.items():
        if args.write:
            folder = os.path.join(GOLDEN, "-".join(machine()))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{case}.json"), "w") as f:
                json.dump(got, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"{case}: {len(got)} files recorded")
            continue
        diff = differences(case, got)
        failed |= bool(diff)
        print(f"{case}: " + ("the same" if not diff else "\n  ".join(["DIFFERS"] + diff)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
