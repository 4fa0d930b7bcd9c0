"""Train the research log's image autoencoders (VQVAE vs FFN bottlenecks) on masked reconstruction.

    python vqvae_imagenet.py --model vqvae --data sample --image_size 64 --epochs 1   # smoke run, CPU
    python vqvae_imagenet.py --model llmffnae --data /path/to/imagenet --accumulate 4  # the log's setting
    torchrun --nproc_per_node 4 vqvae_imagenet.py --model vqvae --data /path/to/imagenet  # the same, 4 GPUs
    python vqvae_imagenet.py --resume runs/vqvae/vqvae --epochs 20                     # continue its latest run
    python vqvae_imagenet.py --eval runs/vqvae/vqvae                                   # its latest run
    python vqvae_imagenet.py --swap_ffn_with_vq runs/vqvae/llmffnae --train_only ln --max_steps 100
    python vqvae_imagenet.py --list                                                    # parameters per bottleneck

Research log 2024-12 "vqvae-imagenet-ffn", trained with MinVQVAE (commit fe3d527). By default
this script does what that code did: images resized to 256 x 256 (no augmentation), pixels in
[0, 1], each 32 x 32 patch zeroed with probability 0.5 afresh for every image and epoch (in
evaluation too), the loss the MSE against the whole unmasked image; validation on 20% of the
training images (seed 1337), test on the official val split (a plain folder: a fixed 1/20 of its
images); AdamW lr 3e-4, 10 epochs, fp32. The log's global batch was 1024: 256 per GPU on 4 GPUs
(torchrun --nproc_per_node 4) or, on one device, --accumulate 4. Every option is a field of
vqvae_run.ImageConfig (--help lists them with their defaults; docs/DEPARTURES.md says what the
protocol's second choices change); every constructor argument of models/vqvae.py is one too.

A run writes runs/vqvae/{model}/{timestamp}/: config.json, model.pt (rebuilds itself), last.pt
(--resume), losses.csv, loss.png, recon_epochNNN.png (original | masked | reconstruction) and
metrics.json. Its life is runs.Training's (vqvae_run.ImageRun): a hidden name until its first
epoch is saved; a Ctrl-C finishes the step and stops, keeping every finished epoch (--resume trains
the one it cut short again); torchrun's processes are distributed.py's.
"""
import contextlib
import math
import os
import sys
import time

if __name__ == "__main__":  # before torch: a quiet Ctrl-C, OpenMP's wait policy for a busy machine
    import runs
    runs.before_torch("vqvae_imagenet.py")

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

import distributed
import runs
import vqvae_run
from data.images import apply_mask, from_pixels, ignore_ctrl_c, image_sets, make_collate, to_pixels
from models.vqvae import BOTTLENECKS
from vqvae_run import PROG, build, count, say

GRID_IMAGES = 8


def train(cfg):
    """Train a fresh model, a swapped one (--swap_ffn_with_vq) or continue a run (--resume), as cfg
    (a vqvae_run.ImageConfig) says; returns (run_dir, metrics)."""
    cfg, saved, source = vqvae_run.resolve(cfg)  # every default filled and every value checked
    ranks = distributed.Ranks(cfg.device, cfg.precision)
    sets, data_info = image_sets(cfg.data, cfg.val_from, **cfg.images())
    bad, seen, busy = set(), 0, 0.0  # unreadable files; this command's images and seconds of training
    if source:  # the source's test loss, on the masks the swapped model is tested on
        source["test_loss"] = evaluate(build(source).to(ranks.device), sets["test"], 0, cfg, ranks, bad)
    model = make_model(cfg, source, ranks.device)  # fresh: the seed's first draw; --resume: last.pt's, below
    params = [p for p in model.parameters() if p.requires_grad]
    net = ranks.wrap(model, find_unused=cfg.model == "vqvae" and cfg.train_only == "all")  # E gets no gradient
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    torch.manual_seed(cfg.seed + ranks.rank)  # dropout differs between ranks
    sampler = ranks.sampler(sets["train"], cfg.seed)
    epochs = vqvae_run.planned_epochs(cfg, math.ceil(len(sampler) / cfg.batch_size / cfg.accumulate))
    record = vqvae_run.record(cfg, saved, source, data_info, sets, ranks, model, params, epochs)

    with vqvae_run.ImageRun(record, cfg.out_dir, ranks, resume=cfg.resume) as run:
        run.restore(model, optimizer, ranks.random_state)  # --resume: last.pt's weights, AdamW, random states
        if not run.rows and (source or epochs == 0):  # the model before its first step: epoch 0
            before_training(model, run, sets, cfg, ranks, bad, test=bool(source))
        step, limit = (run.rows[-1]["step"] if run.rows else 0), cfg.max_steps
        for epoch in run.epochs():
            sets["train"].epoch = epoch
            sampler.set_epoch(epoch)
            bar = tqdm(total=len(sampler), desc=f"epoch {epoch}/{epochs}", unit="img", leave=False,
                       disable=None if run.writes else True)
            totals = torch.zeros(2, dtype=torch.float64, device=ranks.device)  # (sum of losses * B, images)
            started = time.perf_counter()
            loader = batches(sets["train"], cfg, sampler, pin=ranks.device.type == "cuda")
            for i, (x, mask, unreadable) in enumerate(loader):
                bad.update(unreadable)
                first = i - i % cfg.accumulate  # the group of batches one step averages over
                group_images = min((first + cfg.accumulate) * cfg.batch_size, len(sampler)) - first * cfg.batch_size
                stepping = (i + 1) % cfg.accumulate == 0 or i + 1 == len(loader)
                x = to_pixels(x.to(ranks.device, non_blocking=True), cfg.pixels)
                mask = mask.to(ranks.device, non_blocking=True)
                with ranks.no_sync(net, stepping):
                    with autocast(ranks.device, cfg.precision):
                        recon = net(apply_mask(x, mask, cfg.patch_size))           # (B, C, S, S)
                    # An all-unreadable batch still steps (with zero gradient), to keep DDP ranks in step.
                    loss = F.mse_loss(recon.float(), x) if len(x) else recon.sum() * 0
                    (loss * (len(x) / group_images)).backward()                     # the group's mean
                if stepping:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                totals += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64, device=ranks.device)
                bar.update(len(x))
                bar.set_postfix(loss=f"{loss.item():.4f}")
                if stepping and (run.stopped or (limit is not None and step >= limit)):
                    break
            bar.close()
            if run.stopped:  # Ctrl-C: this epoch is cut short and not kept; the run keeps the ones before it
                raise KeyboardInterrupt
            ranks.sum(totals)
            seconds = time.perf_counter() - started
            seen, busy = seen + int(totals[1]), busy + seconds
            if totals[1] == 0:
                raise runs.UsageError(f"no readable images in the training split of {cfg.data!r} "
                                      f"({len(sets['train'])} files, all unreadable)")
            val_loss = evaluate(model, sets["val"], epoch, cfg, ranks, bad)
            save_grid(model, sets["val"], cfg, ranks.device, run.path(f"recon_epoch{epoch:03d}.png"))
            run.end_epoch(model, epoch, step, (totals[0] / totals[1]).item(), val_loss, totals[1].item() / seconds)
            if limit is not None and step >= limit:
                break
        run.save(model)
    if run.stopped:  # a first Ctrl-C after the epoch's last step: the run is saved, its test not wanted now
        raise runs.Interrupted(run.dir)
    return run.dir, test(model, run, sets, cfg, ranks, bad, seen / busy if busy else None)


def make_model(cfg, source, device):
    """The model on its device: a swap of a trained FFN model's, or built from the seed (its first
    draw is the weights); with --train_only ln only the LayerNorm is trainable."""
    if source:
        model = vqvae_run.swap_ffn_with_vq(source, cfg.seed)
    else:
        torch.manual_seed(cfg.seed)
        model = build(model_args=cfg.model_args)
    if cfg.train_only == "ln":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("bottleneck.ln.")
    return model.to(device)


def before_training(model, run, sets, cfg, ranks, bad, test):
    """Epoch 0: the untrained (swapped) model's validation loss and picture; after a swap its test
    loss too, on the masks the trained model is tested on."""
    val_loss = evaluate(model, sets["val"], 0, cfg, ranks, bad)
    if test:
        run.config["test_loss_before_training"] = evaluate(model, sets["test"], 0, cfg, ranks, bad)
    save_grid(model, sets["val"], cfg, ranks.device, run.path("recon_epoch000.png"))
    run.end_epoch(model, 0, 0, float("nan"), val_loss, float("nan"))


def test(model, run, sets, cfg, ranks, bad, images_per_s):
    """The test loss of the final model; metrics.json (rank 0 writes it). A Ctrl-C here leaves the
    run as it is, without metrics.json (runs.Interrupted)."""
    last = run.rows[-1]
    try:
        test_loss = evaluate(model, sets["test"], test_masks_epoch(run.config, last["epoch"]), cfg, ranks, bad)
    except KeyboardInterrupt:
        raise runs.Interrupted(run.dir) from None
    swap = {}
    if run.config["swap_ffn_with_vq"]:  # the source run, its test loss and the swapped model's before training
        swap = {"source_run": run.config["swap_ffn_with_vq"], "source_test_loss": run.config["source_test_loss"],
                "test_loss_before_training": run.config["test_loss_before_training"]}
    metrics = {**swap, "test_loss": test_loss, "test_split": run.config["data_info"]["test_split"],
               "val_loss": last["val_loss"], "train_loss": last["train_loss"], "steps": last["step"],
               "epochs_run": last["epoch"], "pixels": cfg.pixels, "parameters": run.config["parameters"],
               "codebook_change": vqvae_run.codebook_change(model, run.initial_codebook),
               "images_per_s": images_per_s, "seconds": last["seconds"], "unreadable_images": unreadable(bad, ranks)}
    if run.writes:
        runs.write_json(os.path.join(run.dir, "metrics.json"), metrics)
    return metrics


def unreadable(bad, ranks):
    """How many distinct files no rank could read; a one-line warning where there are some."""
    bad = ranks.union(bad)
    if bad and ranks.rank == 0:
        print(f"{PROG}: warning: skipped {len(bad)} unreadable image(s), e.g. {sorted(bad)[0]}", file=sys.stderr)
    return len(bad)


def test_masks_epoch(config, epoch):
    """The epoch that keys the test masks: the last; after a swap 0, so that the source, the
    swapped model before training and after it are all tested on the same masks."""
    return 0 if config.get("swap_ffn_with_vq") else epoch


def batches(images, cfg, sampler=None, pin=False):
    """(images (B, C, S, S) uint8, masks (B, S/p, S/p), unreadable paths) in batches of --batch_size."""
    return DataLoader(images, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                      collate_fn=make_collate(cfg.image_size, cfg.patch_size, cfg.model_args["in_channels"]),
                      pin_memory=pin, worker_init_fn=ignore_ctrl_c)


def autocast(device, precision):
    """--precision bf16: autocast on CUDA; fp32 (and any CPU run): nothing."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model, images, epoch, cfg, ranks, bad):
    """Mean per-image MSE over a split (each rank takes every world-th image); epoch keys the masks
    when they are drawn afresh; unreadable files go into bad."""
    images.epoch = epoch
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=ranks.device)  # (sum of MSEs, images)
    for x, mask, unreadable in batches(ranks.share(images), cfg):
        bad.update(unreadable)
        if len(x) == 0:
            continue
        x, mask = to_pixels(x.to(ranks.device), cfg.pixels), mask.to(ranks.device)
        with autocast(ranks.device, cfg.precision):
            recon = model(apply_mask(x, mask, cfg.patch_size))
        total[0] += ((recon.float() - x) ** 2).mean((1, 2, 3)).sum().double()
        total[1] += len(x)
    ranks.sum(total)
    model.train(was_training)
    return (total[0] / total[1]).item() if total[1] > 0 else float("nan")


@torch.no_grad()
def save_grid(model, images, cfg, device, path):
    """Rows of original | masked | reconstruction for the first few validation images (path None: not this rank's)."""
    from PIL import Image
    items = [images[i] for i in range(min(GRID_IMAGES, len(images)))] if path else []
    items = [it for it in items if it[0] is not None]
    if not items:
        return
    x = to_pixels(torch.stack([it[0] for it in items]).to(device), cfg.pixels)
    masked = apply_mask(x, torch.stack([it[1] for it in items]).to(device), cfg.patch_size)
    was_training = model.training
    model.eval()
    with autocast(device, cfg.precision):
        recon = model(masked).float()
    model.train(was_training)
    framed = [F.pad(from_pixels(t, cfg.pixels), (1, 1, 1, 1), value=255) for t in (x, masked, recon)]  # white frames
    rows = torch.cat([torch.cat(triple, dim=2) for triple in zip(*framed)], dim=1)  # (C, n*(S+2), 3*(S+2))
    pixels = rows.permute(1, 2, 0).cpu().numpy()                                    # (H, W, C); grayscale: (H, W)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    runs.write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def evaluate_run(cfg):
    """--eval: the val and test loss of a run's model, on its own data protocol."""
    cfg, _, ckpt = vqvae_run.resolve(cfg)
    ranks = distributed.Ranks(cfg.device, cfg.precision)
    sets, _ = image_sets(cfg.data, cfg.val_from, splits=("val", "test"), **cfg.images())
    model, bad, epoch = build(ckpt).to(ranks.device), set(), ckpt.get("epoch", 0)
    val = evaluate(model, sets["val"], epoch, cfg, ranks, bad)
    test_loss = evaluate(model, sets["test"], test_masks_epoch(ckpt["config"], epoch), cfg, ranks, bad)
    if ranks.rank == 0:
        say(f"val_loss {val:.6g}  test_loss {test_loss:.6g}  ({len(sets['val'])} val, {len(sets['test'])} test "
            f"images of {cfg.data}, {ckpt['model_args']['bottleneck']} from {ckpt['path']})")
    unreadable(bad, ranks)


def list_bottlenecks(model_args):
    """--list: the parameters of every bottleneck around the same encoder and decoder."""
    vqvae_run.check_model(model_args)
    print("| model | bottleneck | parameters | encoder + decoder | bottleneck params "
          "| trainable with --train_only ln |")
    print("|---|---|---|---|---|---|")
    what = {"vqvae": "LayerNorm + softmax read of an N(0, 1) codebook, straight-through (codebook never trained)",
            "amvqvae": "LayerNorm + argmax code, half straight-through (codebook trained)",
            "smvqvae": "LayerNorm + softmax read, no straight-through (codebook trained)",
            "ffnae": "Linear -> GELU -> Linear",
            "llmffnae": "Linear -> GELU -> Linear -> Dropout"}
    for name in BOTTLENECKS:
        model = build(model_args=dict(model_args, bottleneck=name))
        total, inner = count(model.parameters()), count(model.bottleneck.parameters())
        ln = count(model.bottleneck.ln.parameters()) if hasattr(model.bottleneck, "ln") else "-"
        print(f"| {name} | {what[name]} | {total} | {total - inner} | {inner} | {ln} |")


def report(run_dir, metrics):
    """The line a finished run ends with."""
    line = f"test_loss {metrics['test_loss']:.6g}"
    if "source_test_loss" in metrics:
        line = (f"source test_loss {metrics['source_test_loss']:.6g}  swapped, before training "
                f"{metrics['test_loss_before_training']:.6g}  after {metrics['steps']} steps " + line)
    n, change = metrics["parameters"], metrics["codebook_change"]
    say(f"{line}  parameters {n['model']} (bottleneck {n['bottleneck']}, trainable {n['trainable']})"
        + (f"  codebook change {change['l2']:.4g}" if change else "") + f"  {metrics['seconds']:.1f}s\n-> {run_dir}")


def main(argv=None):
    runs.ctrl_c_interrupts()
    cfg, what = vqvae_run.parse(sys.argv[1:] if argv is None else argv)
    done, rank0 = False, int(os.environ.get("RANK", 0)) == 0
    try:
        if what == "list":
            list_bottlenecks({**vqvae_run.model_options(), **cfg.model_args})
        elif what == "eval":
            evaluate_run(cfg)
        else:
            run_dir, metrics = train(cfg)
            if rank0:
                report(run_dir, metrics)
        done = True
    except runs.UsageError as e:
        runs.fail(PROG, e)
    except KeyboardInterrupt as e:  # runs.Interrupted names the run where an epoch was saved
        run_dir = getattr(e, "run_dir", None)
        if run_dir and rank0:
            print(f"-> {run_dir}")
        runs.fail(PROG, f"interrupted by Ctrl-C: the run keeps every epoch it finished, in {run_dir}; continue it "
                  f"with python {PROG} --resume {run_dir} (and --epochs N to go further)" if run_dir else
                  "interrupted by Ctrl-C before the first epoch was saved: nothing was written", status=130)
    finally:
        distributed.finish(done)


if __name__ == "__main__":
    main()
