"""How fast could benchmarks/report.py be? A lower bound from the arithmetic its trainings must do.

    python benchmarks/report_floor.py          # needs the formaldehyde data (as the full report)

The report's 192 trainings are dominated by two kinds of work that no overhead removal shortens:

1. The codebook reads of the VQ models whose output depends on the position (positional
   encodings): every forward computes one score per (window, position, head, code) and takes its
   softmax. This script counts those scores for every training of the report (training and
   validation windows, every epoch; the backward and the forecasts are left out, and so are the
   models without positions, which read once per distinct value), then measures on this machine,
   on one thread, how long torch.softmax takes per score on a block of scores in cache, and how
   long the whole blocked read of models/kernels.py (scores, softmax, read) takes. The first is a
   floor for any read written with torch's CPU kernels: each score needs its exponential.
2. The lstm runs: all but a few percent of an lstm step is nn.LSTM's forward and backward, the
   oneDNN kernel the log's code calls too (docs/BENCHMARKS.md). The script times that call alone
   for one batch and multiplies by the report's lstm batches.

It prints each part in CPU-minutes and the wall minutes they need on all of this machine's cores
(CPU time / cores; --jobs 2 runs one training per core). It trains nothing.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import config  # noqa: E402
import models  # noqa: E402
import runs  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.vs_log import machine  # noqa: E402
from data import DEFAULT_FRACTIONS, load_series, split_series  # noqa: E402


def position_free(model, T):
    """Whether the output at t depends on x[t] alone: then the model reads once per distinct value."""
    x = torch.full((1, T, 1), 0.3)
    with torch.no_grad():
        out = model(x)
    return out.shape[1] == T and bool((out == out[:, :1]).all())


def median_seconds(f, repeat=7):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def softmax_ns(H=16, V=1024, hs=8):
    """ns per score, one thread: torch.softmax alone, and the blocked read of kernels.py (forward)."""
    rows = max(1, models.kernels.BLOCK // (H * V))
    q, codes = torch.randn(H, rows * 8, hs), torch.randn(H, V, hs)
    block = torch.randn(H, rows, V)
    soft = median_seconds(lambda: [torch.softmax(block, dim=-1, out=block) for _ in range(8)])
    decoder = torch.nn.Linear(H * hs, 1)
    with torch.no_grad():
        read = median_seconds(lambda: models.kernels.codebook_read(q.transpose(0, 1).unsqueeze(0), codes,
                                                                     decoder, 0.1))
    n = H * rows * 8 * V
    return soft / n * 1e9, read / n * 1e9


def lstm_ms(model, batch_size, T):
    """ms of nn.LSTM forward + backward alone for one training batch, one thread."""
    x = torch.randn(batch_size, T, 1)

    def step():
        out, _ = model.lstm(x)
        out[:, -1].sum().backward()
    return median_seconds(step) * 1e3


def main(argv=None):
    p = runs.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=None, help="where y_w, w_y, 4single live")
    p.add_argument("--seeds", default="0,1,2", help="comma list (as report.py)")
    args = p.parse_args(argv)
    try:
        rep = report.Report(argparse.Namespace(quick=False, seeds=args.seeds, data_dir=args.data_dir, epochs=None,
                                               runs_dir="floor", jobs=2))
    except runs.UsageError as e:
        runs.fail("report_floor.py", e)
    torch.set_num_threads(1)
    runs.keep_freed_memory()  # as train.py: steps reuse their freed memory (docs/BENCHMARKS.md)
    commands, _ = rep.commands(report.TABLES)
    series, scores, counted, lstm_batches, lstm_s, lstm_ms_at = {}, 0, 0, 0, 0.0, {}
    for argv in commands:
        run = config.resolve(config.parse(argv)[0])
        cls, hp, model_args = models.get(run.model), vars(run), run.model_args
        if run.dataset not in series:
            series[run.dataset] = load_series(run.dataset, None, args.data_dir).values
        data = split_series(series[run.dataset], hp["time_steps"], cls.target, run.split, DEFAULT_FRACTIONS)
        torch.manual_seed(0)
        model = models.build(run.model, **model_args)
        if run.model == "lstm":
            key = (hp["batch_size"], hp["time_steps"])
            if key not in lstm_ms_at:
                lstm_ms_at[key] = lstm_ms(model, *key)
            batches = hp["epochs"] * (len(data.x_train) // hp["batch_size"])  # full batches only: a floor
            lstm_batches += batches
            lstm_s += batches * lstm_ms_at[key] / 1e3
            continue
        size = models.codebook_size(model)
        if size is None or position_free(model, hp["time_steps"]):
            continue
        counted += 1
        scores += hp["epochs"] * (len(data.x_train) + len(data.x_val)) * hp["time_steps"] * size[0]
    soft, read = softmax_ns()
    cores = os.cpu_count()
    print("\n".join(machine(1)))
    print(f"benchmarks/report.py: {len(commands)} trainings")
    print(f"VQ reads with positions: {counted} trainings, {scores / 1e12:.3f} x 10^12 scores (forward, "
          f"training + validation windows, every epoch)")
    for what, ns in (("torch.softmax alone", soft), ("kernels.codebook_read forward", read)):
        cpu = scores * ns / 1e9
        print(f"  at {ns:.2f} ns per score ({what}): {cpu / 60:6.1f} CPU-min, {cpu / cores / 60:5.1f} min on "
              f"{cores} cores")
    print(f"lstm: {lstm_batches} training batches x nn.LSTM forward + backward alone "
          f"({', '.join(f'{v:.1f} ms at batch {k[0]}, T {k[1]}' for k, v in lstm_ms_at.items())}): "
          f"{lstm_s / 60:.1f} CPU-min, {lstm_s / cores / 60:.1f} min on {cores} cores")
    floor = scores * soft / 1e9 + lstm_s
    print(f"floor (softmax alone + lstm kernel): {floor / 60:.1f} CPU-min, {floor / cores / 60:.1f} min on "
          f"{cores} cores; the report's target is 10 min")


if __name__ == "__main__":
    main()
