"""Training speed of the VQ models: one read step in four exact formulations, then whole runs.

    python benchmarks/vq_speed.py                 # steps, then the log's runs on y_w (formaldehyde data)
    python benchmarks/vq_speed.py --steps_only    # only the per-step comparison (any machine)
    python benchmarks/vq_speed.py --threads 1     # OMP_NUM_THREADS=1: steadier on a busy machine

Step: one forward + backward of mhvqlnmlp_rope (query, codebook read, decoder) for a training batch
(B 32, T 96, 8 heads x 512 codes x head_size 8). Each formulation is checked against the plain
one: the largest difference in the output or a parameter's gradient, relative to its largest value.
- plain: autograd through decoder(concat_h softmax(q_h E_h^T / sqrt(d_model)) E_h);
- sdpa: F.scaled_dot_product_attention with keys = values = the codebooks (the issue's quick test);
- saved P: the closed-form read of vqlnmlp per head, which saves the (H, N, V) probabilities;
- ours: mhvqlnmlp_rope's own forward (its closed-form read without P, blocks of scores in cache).
Runs: fresh `python train.py --split random` processes (the log's protocol, whose numbers they are
compared with), 50 epochs on y_w, training seconds from metrics.json,
beside the log's own implementation (148 s and 20 s of training on a 2-core machine), and the
CPU seconds of the whole process (start, data, training, evaluation). Timings on a machine
shared with other work are noisy: repeat them. With --threads 1 the CPU seconds are about what
the run takes on one idle core, however busy the machine is.
"""
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runs  # noqa: E402

# (train.py arguments, the log's training seconds, the log's val loss (2024-12-23))
LOG_RUNS = [
    (["--model", "mhvqlnmlp_rope", "--n_heads", "8"], 148.0, 0.0255627),
    (["--model", "vqlnmlp"], 20.0, 0.0262299),
]


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

    def ours():
        return model(x)

    return model, {"plain": plain, "sdpa": sdpa, "saved P": saved_p, "ours": ours}


def time_steps(repeats):
    import torch

    model, forms = step_formulations()
    params = list(model.parameters())
    reference = None
    print("| formulation | ms per step (median of %d) | largest relative difference from plain |" % repeats)
    print("|---|---|---|")
    for name, f in forms.items():
        out = f()
        grads = torch.autograd.grad((out ** 2).sum(), params)
        if reference is None:
            reference = (out, grads)
        diff = max(((a - b).abs().max() / b.abs().max()).item()
                   for a, b in zip((out, *grads), (reference[0], *reference[1])))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.autograd.grad((f() ** 2).sum(), params)
            times.append(1000 * (time.perf_counter() - t0))
        print(f"| {name} | {statistics.median(times):.1f} | {diff:.1e} |", flush=True)


def timed_run(args, out_dir, env):
    """metrics.json of one train.py process, with the CPU seconds the whole process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "train.py", "--dataset", "y_w", "--split", "random", "--no_forecast",
                        "--out_dir", out_dir, *args], cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        runs.fail("vq_speed.py", f"python train.py {' '.join(args)} failed: {last}", status=1)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
    metrics["cpu_seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return metrics


def main():
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps_only", action="store_true", help="only the per-step comparison")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for everything (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per formulation")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        import torch
        torch.set_num_threads(args.threads)
    time_steps(args.repeats)
    if args.steps_only:
        return
    print("\n| run (50 epochs, y_w) | log s | ours s | speed-up | CPU s, whole process | log val loss | ours | diff |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for run_args, log_s, log_loss in LOG_RUNS:
            m = timed_run(run_args, out, env)
            print(f"| {' '.join(run_args[1:])} | {log_s:.0f} | {m['seconds']:.1f} | {log_s / m['seconds']:.1f}x | {m['cpu_seconds']:.1f} "
                  f"| {log_loss} | {m['val_loss']:.5f} | {100 * (m['val_loss'] / log_loss - 1):+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
