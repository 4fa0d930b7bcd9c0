"""Run a grid of trainings: a comma list in any train.py option makes one run per combination.

    python sweep.py --model vqlnmlp,vqlnpemlp --lr 0.003,0.007 --seed 0,1,2 --jobs 2
    python train.py --model vqlnmlp,lstm --dataset y_w          # train.py hands comma lists here
    python sweep.py --model mhvqlnmlp --n_heads 2,4,8 --dry_run  # one train.py command per run

Tuple values use '-' inside a value (--levels 32-128-512,64-256), so a comma always separates
grid values. Combinations a model cannot take (an option it lacks, d_model not divisible by
n_heads) are skipped with a one-line reason; a failing run does not stop the others. Each run
is an ordinary train.py run with its own run directory; the ranked table at the end is read
from each run's metrics.json, ranked by its validation score (never by the test part).
"""
import itertools
import math
import multiprocessing
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

if __name__ == "__main__":  # before torch: a quiet Ctrl-C, OpenMP's wait policy for a busy machine
    import runs
    runs.before_torch(globals().get("PROG", "sweep.py"))

import config
import models
import runs
from config import SWEEP_ONLY, split_options

INTERRUPTED = "interrupted (Ctrl-C)"
NOT_STARTED = "not started (Ctrl-C came first)"
PROG = globals().get("PROG", "sweep.py")  # the name messages give; train.py hands its grids here (runs.run_script)

def expand_grid(argv):
    """One argv per combination of the comma lists, in the order given (the last option varies
    fastest); the sweep-only options are dropped."""
    items = [(k, v) for k, v in split_options(argv) if k not in SWEEP_ONLY]
    choices = [[None] if v is None else v.split(",") for _, v in items]
    grid = []
    for combo in itertools.product(*choices):
        grid.append([t for (k, _), v in zip(items, combo) for t in ((k,) if v is None else (k, v))])
    return grid


def skip_reason(argv, prog="sweep.py"):
    """Why the chosen model cannot take this combination (one line), or None if it can.
    Mistakes that no combination fixes (an unknown model, a value of the wrong type) exit 2."""
    return check_combination(argv, prog)[0]


def check_combination(argv, prog="sweep.py"):
    """(why the model cannot take this combination, None) or (None, the model it builds)."""
    args, rest = config.parser().parse_known_args(argv)
    if args.model is None:
        runs.fail(prog, "a sweep needs --model (a name or a comma list of names; see train.py --list)")
    try:
        cls = models.get(args.model)
    except models.ModelError as e:
        runs.fail(prog, e)
    defaults, model_args = models.options(cls), {}
    for option, text in split_options(rest):
        name = option.lstrip("-")
        if name not in defaults or text is None:
            return f"model {args.model} does not take {option}", None
        try:
            model_args[name] = config.parse_value(text, defaults[name])
        except ValueError:
            runs.fail(prog, f"--{name} {text!r}: expected a value like {defaults[name]!r}")
    model_args = {**models.positions(cls, args.time_steps or cls.train_defaults["time_steps"]), **model_args}
    try:
        model = models.build(args.model, **model_args)  # the constructor's own checks (d_model % n_heads, ...)
    except models.ModelError as e:
        return str(e), None
    return None, model


def plan(argv, prog="sweep.py"):
    """The grid's runs: (commands [argv], notes [one line per skipped combination and per model
    whose runs were merged]). Combinations that differ only in options that cannot change a
    model's result (models.inert_options: naive's --lr, a least-squares fit's --epochs, ...) are
    one run, the first of them."""
    commands, notes, first, merged = [], [], {}, {}
    for combo in expand_grid(argv):
        reason, model = check_combination(combo, prog)
        if reason:
            notes.append(f"skip {shlex.join(combo)}: {reason}")
            continue
        inert, why = models.inert_options(model)
        items = split_options(combo)
        key = tuple(item for item in items if item[0].lstrip("-") not in inert)
        if key in first:  # the same run as an earlier combination
            m = merged.setdefault(dict(items)["--model"], {"why": why, "dropped": 0, "options": set()})
            m["dropped"] += 1
            m["options"] |= {k for k, v in items if (k, v) not in first[key]}  # the values that differ
            continue
        first[key] = items
        commands.append(combo)
    for name, m in merged.items():
        n = sum(dict(split_options(c))["--model"] == name for c in commands)
        notes.append(f"merge: model {name} gives the same result for any {', '.join(sorted(m['options']))} "
                     f"({m['why']}): {n} run{'s' if n > 1 else ''} instead of {n + m['dropped']}")
    return commands, notes


def run_one(argv, threads):
    """One training (and its evaluation), as `python train.py ARGV` would run it; returns the
    run directory, or raises UsageError with train.py's one-line message."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    import torch
    import train
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # a worker process's own: train.py keeps it
        torch.set_num_threads(threads)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            train.main(argv)
    except SystemExit as e:
        message = (err.getvalue().strip().splitlines() or [f"exit status {e.code}"])[-1]
        if e.code == 130:  # Ctrl-C: the training saved what it had; the sweep stops too
            raise KeyboardInterrupt(message.removeprefix("train.py: error: ")) from None
        raise runs.UsageError(message.removeprefix("train.py: error: ")) from None
    return out.getvalue().strip().splitlines()[-1].removeprefix("-> ")  # train.py's last line


def say(line):
    """A line of the sweep's progress, flushed: a log file shows each finished run when it ends."""
    print(line, flush=True)


def run_sweep(commands, jobs=1, log=say):
    """Train each argv, `jobs` at a time in worker processes (one thread each when jobs > 1), with a
    line as each one ends. A failing run does not stop the others. Returns (done [(argv, run_dir)],
    failed [(argv, reason)]); after a Ctrl-C, the runs it stopped have the reason INTERRUPTED and
    those it kept from starting NOT_STARTED."""
    results = [None] * len(commands)

    def finished(i, outcome):
        results[i] = outcome
        k = sum(r is not None for r in results)
        log(f"[{k}/{len(commands)}] {shlex.join(commands[i])}\n    -> {outcome[1]}" if outcome[0] else
            f"[{k}/{len(commands)}] FAILED {shlex.join(commands[i])}: {outcome[1]}")

    def outcome(call):
        try:
            return True, call()
        except Exception as e:  # a failed run is listed, the others go on
            return False, str(e).splitlines()[0] if str(e) else type(e).__name__
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) if jobs > 1 else None
    futures = {pool.submit(run_one, c, 1): i for i, c in enumerate(commands)} if pool else {}
    try:
        if pool:
            for future in as_completed(futures):
                finished(futures[future], outcome(future.result))
        else:
            for i, argv in enumerate(commands):
                results[i] = (False, INTERRUPTED)  # until it ends
                finished(i, outcome(lambda: run_one(argv, None)))
    except KeyboardInterrupt:  # running trainings got the Ctrl-C too: they save and stop
        log("interrupted: waiting for the running trainings to save")
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
            for future, i in futures.items():
                if results[i] is None and not future.cancelled():  # it ran: finished, or stopped by the Ctrl-C
                    results[i] = (False, INTERRUPTED) if isinstance(future.exception(), KeyboardInterrupt) \
                        else outcome(future.result)
    if pool:
        pool.shutdown(wait=True)
    done = [(c, r[1]) for c, r in zip(commands, results) if r and r[0]]
    failed = [(c, r[1] if r else NOT_STARTED) for c, r in zip(commands, results) if not (r and r[0])]
    return done, failed


def ranked_table(run_dirs):
    """Markdown table of runs ranked by validation score, read from their metrics.json and config.json."""
    rows = []
    for run_dir in run_dirs:
        config = runs.read_json(os.path.join(run_dir, "config.json"))
        metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
        score = metrics["val_mse_last"] if config["split"] == "chrono" else metrics["val_loss"]
        rows.append((score, config, metrics, run_dir))
    known = [r for r in rows if finite(r[0])]  # a run that diverged (null in metrics.json) comes last
    rows = sorted(known, key=lambda r: r[0]) + [r for r in rows if not finite(r[0])]
    lines = ["| rank | validation | val_loss | val_mse_last | run | seed | dir |", "|---|---|---|---|---|---|---|"]
    for k, (score, config, metrics, run_dir) in enumerate(rows, 1):
        what = "val_mse_last" if config["split"] == "chrono" else "val_loss"
        lines.append(f"| {k} | {what} {number(score)} | {number(metrics['val_loss'])} | "
                     f"{number(metrics['val_mse_last'])} | {config['run_name']} | {config['seed']} | {run_dir} |")
    return "\n".join(lines)


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def number(value):
    """A metric for the table: 6 significant digits, or "-" where it is missing or not finite."""
    return f"{value:.6g}" if finite(value) else "-"


def check_options(argv, prog):
    """One line, once, for an option that no model and not train.py takes (--fractions), or that is forecast.py's."""
    known = {o.lstrip("-") for o in config.parser()._option_string_actions} | {o.lstrip("-") for o in SWEEP_ONLY}
    known |= {k for m in models.names() for k in models.options(models.get(m))}
    for option, _ in split_options(argv):
        if option.startswith("-") and option.lstrip("-") not in known:
            runs.fail(prog, config.unknown_option(option, None))


def parser(prog):
    """sweep.py's own options; every other option is train.py's, with a comma list of values."""
    p = runs.Parser(prog=prog, usage=f"{prog} --model A[,B,...] [train.py's options, each a value or a comma list] "
                    "[--jobs N] [--dry_run]",
                    description="Run a grid of trainings: a comma list in any option of train.py makes one run per "
                    "combination (the last option varies fastest), each an ordinary train.py run with its own run "
                    "directory, then a table of them ranked by validation error.",
                    epilog="Every other option is train.py's: python train.py --help lists them, python train.py "
                    "--model NAME --help a model's.")
    p.add_argument("--jobs", metavar="N", default="1", help="trainings at once, each in its own process with one "
                   "thread (default 1); a failing run does not stop the others")
    p.add_argument("--dry_run", action="store_true", help="print one `python train.py ...` command per run and run "
                   "nothing (for a cluster scheduler)")
    return p


def main(argv=None, prog=None):
    """Expand the grid, skip what a model cannot take, run (or print) the rest, rank them."""
    argv = sys.argv[1:] if argv is None else argv
    prog = prog or PROG
    runs.ctrl_c_interrupts()
    if any(k in ("-h", "--help") for k, _ in split_options(argv)):
        parser(prog).print_help()
        return
    options = dict(split_options(argv))
    jobs_text = options.get("--jobs") or "1"
    if not jobs_text.isdigit() or int(jobs_text) < 1:
        runs.fail(prog, f"--jobs {jobs_text!r}: expected a whole number >= 1")
    check_options(argv, prog)
    grid, notes = plan(argv, prog)
    if "--dry_run" not in options:
        for out_dir in dict.fromkeys(config.parser().parse_known_args(c)[0].out_dir for c in grid):
            try:  # before any run starts: one line, not one failure per run
                runs.check_writable(out_dir, f"--out_dir {out_dir!r}")
            except runs.UsageError as e:
                runs.fail(prog, e)
    for note in notes:
        print(note, file=sys.stderr)
    if not grid:
        runs.fail(prog, "no combination of the grid can run (each skip is listed above)")
    if "--dry_run" in options:
        for combo in grid:
            print(shlex.join(["python", "train.py", *combo]))
        return
    print(f"sweep: {len(grid)} runs, {jobs_text} at a time", flush=True)
    done, failed = run_sweep(grid, int(jobs_text))
    if done:
        print("\n" + ranked_table([d for _, d in done]))
    not_started = [combo for combo, reason in failed if reason == NOT_STARTED]
    failed = [(combo, reason) for combo, reason in failed if reason != NOT_STARTED]
    if failed:
        stopped = any(reason == INTERRUPTED for _, reason in failed)
        print(f"\n{len(failed)} of {len(grid)} runs failed" + (" or were stopped by the Ctrl-C" if stopped else "") + ":")
        for combo, reason in failed:
            print(f"  python train.py {shlex.join(combo)}: {reason}")
    if not_started:
        print(f"\n{len(not_started)} of {len(grid)} runs not started (the Ctrl-C came first):")
        for combo in not_started:
            print(f"  python train.py {shlex.join(combo)}")
    if not_started or any(reason == INTERRUPTED for _, reason in failed):
        runs.fail(prog, f"interrupted (Ctrl-C): {len(done)} of {len(grid)} runs finished before it (listed above); a "
                  f"run it stopped keeps its saved epochs (train.py --resume RUN continues it)", status=130)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
