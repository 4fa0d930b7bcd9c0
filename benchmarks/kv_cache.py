"""Fed-back forecasts without recomputing every window: att_mh's KV cache, and the VQ models' last position.

    python benchmarks/kv_cache.py                          # 2000 steps at time_steps 96, 512, 1024 (a few minutes on CPU)
    python benchmarks/kv_cache.py --steps 720 --time_steps 512 --norm revin   # the field's longest horizon, RevIN
    python benchmarks/kv_cache.py --steps 200 --time_steps 96 --device cuda

For each time_steps T, untrained models (seed 0; speed does not depend on the weights) generate
`steps` values from the first window of a noisy sine of T + steps values, with models/rollout.py:
- att_mh at its defaults but with RoPE on q and k (pe_on qk: the exact case), block_size T:
  recompute (the whole window through the model at every step) against kv_cache (the window once,
  then one value a step against the cached keys and values of the last T - 1 positions);
- vqlnpemlp (block_size T): recompute against last_position (forecast.py --kv_cache on: the model
  on the window's last value alone, all a pointwise model needs).
--norm revin reads each window by its own statistics: recompute then re-normalises every step (the
default, --norm_stats step), while the cache needs the origin's statistics held (--norm_stats
origin; last_position works either way), so the difference printed is between the fast path and
recomputing with the same statistics. Printed: steps per second of each, their ratio, and the
largest difference between the two forecasts (normalised units; the target is identical outputs
within 1e-5). Timings on a shared machine are noisy: repeat them.
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
from models.norm import with_norm  # noqa: E402
from models.rollout import regress  # noqa: E402


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
    parser.add_argument("--norm", default="global", choices=("global", "revin"),
                        help="what the models read of each window (default global)")
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
    print(f"{args.steps} steps, --norm {args.norm}, {name}, torch {torch.version.__version__}; att_mh ({shown}, "
          f"pe_on qk), vqlnpemlp")
    print("| model | time_steps | recompute steps/s | fast path | steps/s | ratio | max abs difference |")
    print("|---|---|---|---|---|---|---|")
    for T in args.time_steps:
        t = np.arange(T + args.steps)
        z = np.sin(t / 30) + 0.1 * np.random.default_rng(0).standard_normal(len(t))
        window = torch.as_tensor(z[:T], dtype=torch.float32, device=device).view(1, T, 1)
        for name, path, kwargs in (("att_mh", "kv_cache", {"pe_on": "qk"}), ("vqlnpemlp", "last_position", {})):
            torch.manual_seed(0)
            model = with_norm(models.build(name, block_size=T, **kwargs), args.norm).to(device).eval()
            warm = min(20, args.steps)
            regress(model, window, warm, "recompute")  # warm up
            slid, t_slid = timed(lambda: regress(model, window, args.steps, "recompute"), device)
            model.frozen = path == "kv_cache" and args.norm != "global"  # the cache holds the origin's statistics
            same = regress(model, window, args.steps, "recompute") if model.frozen else slid
            fast, t_fast = timed(lambda: regress(model, window, args.steps, path), device)
            diff = float((same - fast).abs().max())
            print(f"| {name} | {T} | {args.steps / t_slid:.0f} | {path} | {args.steps / t_fast:.0f} | "
                  f"{t_slid / t_fast:.1f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
