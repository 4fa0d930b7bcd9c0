"""Images per second of every bottleneck of models/vqvae.py, training and evaluation.

    python benchmarks/vqvae_speed.py                      # 64 and 256 px on CPU (and CUDA, bf16, if present)
    python benchmarks/vqvae_speed.py --sizes 64 --seconds 2

The model alone on random images with half their 32 x 32 patches zeroed (16 x 16 at 64 px would
give only 4 patches; the mask does not change the work): a training step is forward, MSE,
backward and AdamW; evaluation is a forward pass under no_grad. Image decoding is not included
(vqvae_imagenet.py does it in DataLoader workers). On CUDA both run under bf16 autocast, as the
script trains. The load average is printed because a shared machine slows every number.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models.vqvae import BOTTLENECKS, Model  # noqa: E402
from data.images import apply_mask  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_s(step, batch, device, seconds):
    """Run step() once to warm up, then until `seconds` have passed (at least 3 times)."""
    step()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    sync(device)
    return n * batch / (time.perf_counter() - t0)


def measure(name, size, batch, device, seconds):
    torch.manual_seed(0)
    model = Model(bottleneck=name).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    patch = 32 if size >= 128 else 16
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    grid = size // patch
    mask = torch.rand(batch, grid * grid, device=device).argsort(1).argsort(1) < grid * grid // 2
    masked = apply_mask(x, mask.view(batch, grid, grid), patch)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def train_step():
        with autocast:
            loss = F.mse_loss(model(masked).float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def eval_step():
        with autocast:
            model(masked)

    model.train()
    train = images_per_s(train_step, batch, device, seconds)
    model.eval()
    return train, images_per_s(eval_step, batch, device, seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,256", help="image sides, comma-separated")
    p.add_argument("--batch_64", type=int, default=32, help="batch at 64 px (and below 128)")
    p.add_argument("--batch_256", type=int, default=8, help="batch at 256 px (and from 128)")
    p.add_argument("--seconds", type=float, default=4.0, help="minimum measuring time per cell")
    args = p.parse_args(argv)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.version.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}" +
          (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print("| device | bottleneck | px | batch | train images/s | eval images/s |")
    print("|---|---|---|---|---|---|")
    for device in devices:
        for size in map(int, args.sizes.split(",")):
            batch = args.batch_64 if size < 128 else args.batch_256
            if device.type == "cuda":
                batch *= 8  # a GPU needs larger batches to be busy
            for name in BOTTLENECKS:
                train, evaluate = measure(name, size, batch, device, args.seconds)
                label = "cpu fp32" if device.type == "cpu" else "cuda bf16"
                print(f"| {label} | {name} | {size} | {batch} | {train:.1f} | {evaluate:.1f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
