"""Regressive generation with and without att_mh's KV cache: steps per second and the ratio.

    python benchmarks/kv_cache.py                          # 2000 steps at time_steps 96, 512, 1024 (a few minutes on CPU)
    python benchmarks/kv_cache.py --steps 200 --time_steps 96 --device cuda

For each time_steps T: att_mh at its defaults but with RoPE on q and k (pe_on qk: the exact
case), block_size T, untrained (seed 0; speed does not depend on the weights), generates `steps` values
from the first window of a noisy sine of T + steps values, twice with log_protocol.py's functions:
- recompute: predict_regressive, the whole window of T values through the model at every step;
- kv_cache: predict_regressive_cached, the window once, then one value a step against the cached
  keys and values of the last T - 1 positions.
Printed: steps per second of each, their ratio, and the largest difference between the two
forecasts (normalised units; the target is identical outputs within 1e-5). Timings on a shared
machine are noisy: repeat them.
"""
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import models  # noqa: E402
import runs  # noqa: E402
from log_protocol import predict_regressive, predict_regressive_cached  # noqa: E402


def timed(f, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = f()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="values generated from the first window (default 2000)")
    parser.add_argument("--time_steps", type=int, nargs="+", default=[96, 512, 1024],
                        help="window lengths T to time, each with block_size T (default 96 512 1024)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1 or min(args.time_steps) < 1:
        parser.error(f"--steps and --time_steps must be at least 1, got {args.steps} and {min(args.time_steps)}")
    try:
        device = runs.pick_device(args.device)
    except runs.UsageError as e:
        parser.error(e)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    defaults = models.options(models.get("att_mh"))
    shown = ", ".join(f"{k} {defaults[k]}" for k in ("d_model", "n_heads", "kv_heads", "pe_type"))
    print(f"att_mh ({shown}, pe_on qk), {args.steps} steps, {name}, torch {torch.version.__version__}")
    print("| time_steps | recompute steps/s | kv_cache steps/s | ratio | max abs difference |")
    print("|---|---|---|---|---|")
    for T in args.time_steps:
        torch.manual_seed(0)
        model = models.build("att_mh", block_size=T, pe_on="qk").to(device).eval()
        t = np.arange(T + args.steps)
        z = np.sin(t / 30) + 0.1 * np.random.default_rng(0).standard_normal(len(t))
        warm = min(20, args.steps)
        predict_regressive_cached(model, z[:T + warm], T, warm, device)  # warm up both paths
        predict_regressive(model, z[:T + warm], T, warm, device)
        slid, t_slid = timed(lambda: predict_regressive(model, z, T, args.steps, device), device)
        cached, t_cached = timed(lambda: predict_regressive_cached(model, z, T, args.steps, device), device)
        diff = float(np.abs(slid - cached).max())
        print(f"| {T} | {args.steps / t_slid:.0f} | {args.steps / t_cached:.0f} | {t_slid / t_cached:.1f}x | "
              f"{diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
