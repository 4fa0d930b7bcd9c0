"""One command in two checkouts, side by side: wall time of each and their ratio.

    git worktree add /tmp/before HEAD~1
    python benchmarks/ab.py --a /tmp/before --b . --repeat 3 -- train.py --model vqlnpemlp

Each round runs the command once in A and once in B (alternating which goes first, so that a
drift of the machine's speed falls on both alike), each as a fresh `python` process with its
own empty --out_dir where the command takes one (train.py, sweep.py, vqvae_imagenet.py). Prints
every wall and CPU time (user + system of the process and its children), the medians, and B's
median over A's. On a shared machine the wall time of one command can vary by 1.5x from minute to
minute; with OMP_NUM_THREADS=1 the CPU time is the steadier measure of the work done. Used for decisions of the kind "does this
speed trick save what it costs to read" (docs/BENCHMARKS.md names each).
"""
import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(repo, command, python):
    with tempfile.TemporaryDirectory() as out:
        takes_out = os.path.basename(command[0]) in ("train.py", "sweep.py", "vqvae_imagenet.py")
        argv = [python, *command] + (["--out_dir", out] if takes_out else [])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        r = subprocess.run(argv, cwd=repo, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"ab.py: error: {' '.join(command)} failed in {repo}: {r.stderr.strip().splitlines()[-1:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the first checkout (e.g. before a change)")
    parser.add_argument("--b", required=True, help="the second checkout (e.g. after it)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each runs A and B once)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("command", nargs="+", help="the script and its options, after --")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    print(f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; command: {' '.join(args.command)}")
    times = {"a": [], "b": []}
    for k in range(args.repeat):
        for side in ("a", "b") if k % 2 == 0 else ("b", "a"):
            times[side].append(timed(getattr(args, side), args.command, args.python))
            wall, cpu = times[side][-1]
            print(f"round {k + 1} {side.upper()}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    for i, what in enumerate(("wall", "CPU")):
        a, b = (statistics.median(t[i] for t in times[s]) for s in ("a", "b"))
        print(f"median {what}: A {a:.2f} s ({args.a}), B {b:.2f} s ({args.b}); B / A = {b / a:.3f}")


if __name__ == "__main__":
    main()
