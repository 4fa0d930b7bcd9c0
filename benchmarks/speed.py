"""How fast vqseq trains: whole train.py processes, single steps, and the fixed cost of a process.

    python benchmarks/speed.py defaults               # every model's default run on membrane
    python benchmarks/speed.py log_runs --repeat 3    # the log's runs on y_w, against the log's own times
    python benchmarks/speed.py steps                  # one mhvqlnmlp_rope step in four exact formulations
    python benchmarks/speed.py startup                # where a process spends the seconds outside training
    python benchmarks/speed.py busy --repeat 3        # the quick start idle and beside one busy process
    python benchmarks/speed.py ab --a DIR_A --b DIR_B -- train.py --model vqlnpemlp   # one command, two checkouts

Every mode prints the machine first (CPU, cores, torch). Speed claims are ratios measured side by
side in one run: `ab` and `busy` alternate their sides round by round so that a drift of the
machine's speed falls on both alike, and print wall and CPU seconds (user + system of the process
and its children; with OMP_NUM_THREADS=1 the CPU time is the steadier measure of the work done).

- defaults: `python train.py --model X` for every model (50 epochs on membrane, then the
  backtest), wall seconds, training seconds and val loss.
- log_runs: the log's standard runs under its protocol (`--split random`, 50 epochs on y_w) as
  fresh processes, median of --repeat, beside the times and val losses the log recorded (a figure
  from another machine and day: for the honest ratio, run benchmarks/vs_log.py, which runs the
  log's own code beside ours). Needs the formaldehyde series.
- steps: one forward + backward of mhvqlnmlp_rope (B 32, T 96, 8 heads x 512 codes x head_size 8)
  written four exact ways, each checked against the plain one (the largest difference in the
  output or a gradient, relative to its largest value): plain autograd through
  decoder(concat_h softmax(q_h E_h^T / sqrt(d_model)) E_h); F.scaled_dot_product_attention with
  keys = values = the codebooks; the closed-form read that saves the (H, N, V) probabilities; the
  model's own forward (models/kernels.py: blocks of scores in cache, no P saved).
- startup: each part of a process timed in a fresh one (imports cold as in a real run): importing
  torch and the project, building torch.optim.Adam (which imports torch's compiler front end)
  against models/kernels.py's Adam, pyplot, one loss plot; then whole train.py processes that
  train nothing.
- busy: the README's quick start as a whole process, idle and beside one process spinning on one
  core (`sh -c 'while :; do :; done'`, started here and ended by its process id), under each thread
  policy: default (nothing set: runs.wait_policy waits passively where the machine is busy), spin
  (OMP_WAIT_POLICY=ACTIVE: what the default did before issue 37), ours (VQSEQ_THREADS=follow:
  runs.Threads follows the free cores), torch (OMP_NUM_THREADS = cores), one (OMP_NUM_THREADS=1),
  passive (OMP_WAIT_POLICY=PASSIVE always).
- ab: any command of this repository in two checkouts (e.g. `git worktree add /tmp/before HEAD~1`),
  each run with its own empty --out_dir where the script takes one.
"""
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402

CORES = os.cpu_count() or 1
OUT_DIR_SCRIPTS = ("train.py", "sweep.py", "vqvae_imagenet.py")
# The log's runs (2024-12-21, -23): (train.py arguments, what the log timed, its seconds, its val loss)
LOG_RUNS = [
    (["--model", "lstm"], "wall, with forecast", 30.0, 0.0137326),
    (["--model", "vqlnpemlp", "--d_model", "32", "--no_forecast"], "training", 18.0, 0.0262058),
    (["--model", "vqlnmlp", "--no_forecast"], "training", 20.0, 0.0260275),
    (["--model", "mhvqlnmlp_rope", "--n_heads", "8", "--no_forecast"], "training", 148.0, 0.0255627),
]
POLICIES = {"default": {}, "spin": {"OMP_WAIT_POLICY": "ACTIVE"},
            "ours": {"VQSEQ_THREADS": "follow"}, "torch": {"OMP_NUM_THREADS": str(CORES)}, "one": {"OMP_NUM_THREADS": "1"},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
QUICK_START = ["train.py", "--model", "vqlnpemlp"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine():
    import torch
    return (f"{cpu_name()}, {CORES} cores, load average {os.getloadavg()[0]:.2f}; torch {torch.version.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}")


def spread(values, digits=1):
    """median (min-max)"""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def process(argv, cwd=ROOT, env=None):
    """(wall seconds, CPU seconds, the run directory or None) of `python ARGV...`, with its own
    empty --out_dir where the script takes one; a failure ends the benchmark with its last line."""
    with tempfile.TemporaryDirectory() as out:
        takes_out = os.path.basename(argv[0]) in OUT_DIR_SCRIPTS
        full = [sys.executable, *argv] + (["--out_dir", out] if takes_out else [])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            sys.exit(f"speed.py: error: python {' '.join(argv)} failed in {cwd}: {last}")
        metrics = None
        lines = r.stdout.strip().splitlines()
        if takes_out and lines and lines[-1].startswith("-> "):
            with open(os.path.join(lines[-1][3:], "metrics.json")) as f:
                import json
                metrics = json.load(f)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), metrics


# ---------------------------------------------------------------- whole runs

def defaults(args):
    import models
    print("| model | wall s (train + backtest) | training s | val loss |\n|---|---|---|---|")
    for name in models.names():
        wall, _, m = process(["train.py", "--model", name, *args.extra])
        print(f"| {name} | {wall:.1f} | {m['seconds']:.1f} | {m['val_loss']:.4g} |", flush=True)


def log_runs(args):
    print(f"| run (50 epochs, y_w, --split random) | the log's s | ours s, median (min-max) of {args.repeat} "
          f"| the log's val loss | ours | diff |\n|---|---|---|---|---|---|")
    for run_args, what, log_s, log_loss in LOG_RUNS:
        seconds = []
        for _ in range(args.repeat):  # same seed: the same val loss every time
            wall, _, m = process(["train.py", *run_args, "--dataset", "y_w", "--split", "random", *args.extra])
            seconds.append(wall if what.startswith("wall") else m["seconds"])
        print(f"| {' '.join(run_args[1:])} ({what}) | {log_s:.0f} | {spread(seconds)} | {log_loss} "
              f"| {m['val_loss']:.5f} | {100 * (m['val_loss'] / log_loss - 1):+.1f}% |", flush=True)


def busy(args):
    policies = args.policies.split(",")
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        sys.exit(f"speed.py: error: unknown policy {bad[0]!r}; choose from {', '.join(POLICIES)}")
    command = QUICK_START + args.extra
    print(f"`python {' '.join(command)}`, whole process", flush=True)
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "VQSEQ_THREADS")}
    seconds = {}
    for r in range(args.repeat):
        for loaded in (False, True):
            load = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if loaded else None
            try:
                for policy in policies if r % 2 == 0 else policies[::-1]:
                    wall, _, _ = process(command, env={**base_env, **POLICIES[policy]})
                    seconds.setdefault((policy, loaded), []).append(wall)
                    print(f"round {r + 1} {'busy' if loaded else 'idle'} {policy:8s} {wall:6.1f} s", flush=True)
            finally:
                if load:
                    load.kill()  # ended by its process id
                    load.wait()
    median = {k: statistics.median(v) for k, v in seconds.items()}
    base = median.get(("torch", False))
    vs = (lambda x: f"{x / base:.2f}") if base else (lambda x: "-")
    print("\n| policy | idle s | beside one busy process s | busy / own idle | busy / torch idle | idle / torch idle |"
          "\n|---|---|---|---|---|---|")
    for p in policies:
        idle, loaded = median[(p, False)], median[(p, True)]
        print(f"| {p} | {idle:.1f} | {loaded:.1f} | {loaded / idle:.2f} | {vs(loaded)} | {vs(idle)} |")
    print(f"\nmedians of {args.repeat} rounds; load average {os.getloadavg()[0]:.2f} at the end")


def ab(args):
    if not (args.a and args.b and args.extra):
        sys.exit("speed.py: error: ab needs --a DIR --b DIR -- SCRIPT [OPTIONS]")
    print(f"command: {' '.join(args.extra)}")
    times = {"a": [], "b": []}
    for k in range(args.repeat):
        for side in ("a", "b") if k % 2 == 0 else ("b", "a"):
            wall, cpu, _ = process(args.extra, cwd=getattr(args, side))
            times[side].append((wall, cpu))
            print(f"round {k + 1} {side.upper()}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    for i, what in enumerate(("wall", "CPU")):
        a, b = (statistics.median(t[i] for t in times[s]) for s in ("a", "b"))
        print(f"median {what}: A {a:.2f} s ({args.a}), B {b:.2f} s ({args.b}); B / A = {b / a:.3f}")


# ---------------------------------------------------------------- parts of a process, and one step

STARTUP = {
    "import torch": ("", "import torch"),
    "import train, forecast (torch included)": ("", "import train, forecast"),
    "torch.optim.Adam(...) (imports the compiler front end)":
        ("import torch; p = [torch.zeros(3, requires_grad=True)]", "torch.optim.Adam(p, lr=0.1, fused=True)"),
    "models.kernels.Adam(...)":
        ("import torch; from models.kernels import Adam; p = [torch.zeros(3, requires_grad=True)]", "Adam(p, 0.1)"),
    "import matplotlib.pyplot": ("import matplotlib; matplotlib.use('Agg')", "import matplotlib.pyplot"),
    "one loss plot (runs.plot_curves)":
        ("import runs, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
         "runs.plot_curves({'a': ([1, 2], [1, 2])}, 't', 'y', PATH)"),
}


def startup(args):
    print(f"{args.repeat} fresh processes per line, median (min-max) seconds")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (setup, stmt) in STARTUP.items():
            code = (f"import sys, time; sys.path.insert(0, {ROOT!r}); PATH = {os.path.join(tmp, 'x.png')!r}\n"
                    f"{setup}\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)")
            t = []
            for _ in range(args.repeat):
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
                t.append(float(r.stdout.split()[-1]))
            print(f"{name:55s} {spread(t, 2)}", flush=True)
    for label, extra in (("train.py --epochs 0 --no_forecast (whole process)", ["--no_forecast"]),
                         ("train.py --epochs 0 with the backtest (whole process)", [])):
        t = [process(["train.py", "--model", "vqlnmlp", "--dataset", "goog", "--epochs", "0", *extra])[0]
             for _ in range(args.repeat)]
        print(f"{label:55s} {spread(t, 2)}", flush=True)


def step_formulations():
    import torch
    import torch.nn.functional as F

    import models

    class SavedP(torch.autograd.Function):
        """vqlnmlp's closed-form read per head: saves P, backward makes three passes over it."""

        @staticmethod
        def forward(ctx, q, codes, values, scale):               # values (H, V, 1)
            p = torch.softmax((q * scale) @ codes.mT, dim=-1)       # (H, N, V)
            out = p @ values
            ctx.save_for_backward(p, codes, values, out)
            ctx.scale = scale
            return out

        @staticmethod
        def backward(ctx, g):
            p, codes, values, out = ctx.saved_tensors
            grad_values = p.mT @ g
            grad_scores = p.mul_(values.mT - out).mul_(g)
            return grad_scores @ codes * ctx.scale, None, grad_values, None

    torch.manual_seed(0)
    model = models.build("mhvqlnmlp_rope")
    x = torch.randn(32, 96, 1)
    H, D = model.n_heads, model.decoder.in_features
    E, scale = model.codebook, 1 / math.sqrt(D)

    def plain():
        q = model.query(x).transpose(1, 2)                          # (B, H, T, hs)
        p = torch.softmax(q @ E.unsqueeze(0).mT * scale, dim=-1)    # (B, H, T, V)
        return model.decoder((p @ E).transpose(1, 2).flatten(2))    # (B, T, 1)

    def sdpa():
        q = model.query(x).transpose(1, 2)
        read = F.scaled_dot_product_attention(q, E.unsqueeze(0), E.unsqueeze(0), scale=scale)
        return model.decoder(read.transpose(1, 2).flatten(2))

    def saved_p():
        q = model.query(x).flatten(0, 1).transpose(0, 1)            # (H, B*T, hs)
        values = E @ model.decoder.weight.view(H, -1, 1)
        out = SavedP.apply(q, E, values, scale).sum(0) + model.decoder.bias
        return out.view(x.shape)

    return model, {"plain": plain, "sdpa": sdpa, "saved P": saved_p, "ours": lambda: model(x)}


def steps(args):
    import torch
    model, forms = step_formulations()
    params, reference = list(model.parameters()), None
    print(f"| formulation | ms per step, median of {args.repeat} | largest relative difference from plain |\n|---|---|---|")
    for name, f in forms.items():
        out = f()
        grads = torch.autograd.grad((out ** 2).sum(), params)
        reference = reference or (out, grads)
        diff = max(((a - b).abs().max() / b.abs().max()).item()
                   for a, b in zip((out, *grads), (reference[0], *reference[1])))
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            torch.autograd.grad((f() ** 2).sum(), params)
            times.append(1000 * (time.perf_counter() - t0))
        print(f"| {name} | {statistics.median(times):.1f} | {diff:.1e} |", flush=True)


MODES = {"defaults": defaults, "log_runs": log_runs, "steps": steps, "startup": startup, "busy": busy, "ab": ab}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = runs.Parser(description=__doc__.splitlines()[0],
                         epilog="options after -- go to the command timed (train.py's, or ab's whole command)")
    parser.add_argument("mode", choices=MODES, help="what to time (the module docstring says what each measures)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, runs or steps of each (the median is compared)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="busy: comma list of " + ", ".join(POLICIES))
    parser.add_argument("--a", help="ab: the first checkout (e.g. before a change)")
    parser.add_argument("--b", help="ab: the second checkout (e.g. after it)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    args.extra = extra
    print(machine(), flush=True)
    MODES[args.mode](args)


if __name__ == "__main__":
    main()
