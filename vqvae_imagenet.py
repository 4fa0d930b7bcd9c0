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
training split (seed 1337), test on the official val split; AdamW lr 3e-4, 10 epochs, fp32 with
'medium' float32 matmul precision. The log's global batch was 1024: 256 per GPU on 4 GPUs
(torchrun --nproc_per_node 4) or, on one device, --accumulate 4. Where this repository did
otherwise before, that stays an option: --pixels signed, --mask_count exact, --eval_masks fixed,
--resize crop, --val_from val, --precision bf16, and the model's --decoder mirror and
--residual identity (docs/DEPARTURES.md says what each changes). The model is models/vqvae.py;
every constructor argument is an option (--n_embed, --embed_dim, ...).

A run writes runs/vqvae/{model}/{timestamp}/: config.json, model.pt (rebuilds itself), last.pt
(optimizer, epoch and random state: --resume), losses.csv, loss.png, recon_epochNNN.png
(original | masked | reconstruction) and metrics.json. It is built under a hidden name and
appears when its first epoch is saved; each later epoch is saved into it, so an interrupted run
keeps its last finished epoch and --resume continues it.
"""
import contextlib
import csv
import inspect
import math
import os
import platform
import sys
import time
import types

if __name__ == "__main__":  # a Ctrl-C while torch imports ends the command with one line, not a traceback
    import runs
    runs.quiet_ctrl_c("vqvae_imagenet.py")

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

import runs
from data.images import Images, apply_mask, from_pixels, load_splits, make_collate, to_pixels
from models.vqvae import BOTTLENECKS, Model
from runs import UsageError

PROG = "vqvae_imagenet.py"
GRID_IMAGES = 8
# The original's setting (MinVQVAE fe3d527), and the choices that name this repository's former one.
DEFAULTS = {"image_size": 256, "patch_size": 32, "mask_ratio": 0.5}
PROTOCOL = {"pixels": ("unit", "signed"), "mask_count": ("bernoulli", "exact"), "eval_masks": ("fresh", "fixed"),
            "resize": ("stretch", "crop"), "val_from": ("train", "val"), "precision": ("fp32", "bf16")}
# Runs written before these options existed did what the second choices do.
LEGACY = {"pixels": "signed", "mask_count": "exact", "eval_masks": "fixed", "resize": "crop", "val_from": "val",
          "precision": "bf16", "accumulate": 1}
LEGACY_MODEL = {"residual": "identity", "decoder": "mirror"}
RESUMABLE = ("--resume", "--epochs", "--max_steps", "--device", "--workers", "--data", "--out_dir")


# ---------------------------------------------------------------- the run: setup, loop, evaluate, save

def run(args):
    """Train a fresh model, a swapped one (--swap_ffn_with_vq) or continue a run (--resume)."""
    r = setup(args)
    threads = runs.Threads()  # $VQSEQ_THREADS=follow: as many threads as other processes leave cores free
    threads.start()
    try:
        if r.source and not r.rows:  # the swapped model before any training
            before_training(r)
        for epoch in range(r.first_epoch, r.n_epochs + 1):
            train_epoch(r, epoch)
            threads.update()
            r.rng = gather_rng_state(r.world, r.device)  # where the next epoch starts: --resume's
            save(r)  # every epoch: an interrupted run keeps its last finished epoch
            if r.max_steps is not None and r.step >= r.max_steps:
                break
        if not r.rows:  # --epochs 0: measure the untrained model
            r.rows.append(row(r, 0, float("nan"), evaluate(r, "val", 0), float("nan"), 0.0))
        test(r)
        save(r)
    except BaseException:
        if r.partial:
            runs.discard_run_dir(r.partial)  # a run directory is complete or absent
            for empty in (os.path.join(r.args.out_dir, "vqvae"), r.args.out_dir):
                with contextlib.suppress(OSError):
                    os.rmdir(empty)  # only if nothing else is there
        raise
    report(r)


def say(line):
    """Print a line of progress beside tqdm's bar, flushed: with stdout a file (> log.txt, where
    the bar is off) each epoch's line appears when the epoch ends, not when the process does."""
    tqdm.write(line)
    sys.stdout.flush()


def setup(args):
    """Everything a run needs: checked options, device, data, model, optimizer, run directory."""
    resumed = load_resume(args) if args.resume else None
    source = load_image_run(args.swap_ffn_with_vq, "--swap_ffn_with_vq") if args.swap_ffn_with_vq else None
    check_args(args, resumed["config"] if resumed else None, source)
    files, data_info = load_splits(args.data, args.val_from)
    world, rank, device = start_processes(args)
    photo = data_info["source"] if args.data == "sample" else None
    r = types.SimpleNamespace(args=args, world=world, rank=rank, device=device, data_info=data_info,
                              source=source, bad=set(), metrics={}, rows=[], step=0, partial=None,
                              sets={s: images(files[s], s, args, photo) for s in ("train", "val", "test")},
                              say=say if rank == 0 else (lambda *a, **k: None))

    # The model: fresh (the seed's first draw is its weights), a swap of a trained FFN model, or resumed.
    if resumed:
        model_args, r.name = resumed["config"]["model_args"], resumed["config"]["model"]
        model = build(model_args=model_args)
        model.load_state_dict(resumed["last"]["state_dict"])
    elif source:
        r.metrics["source_run"] = source["path"]
        r.metrics["source_test_loss"] = evaluate(r, "test", 0, build(source).to(device))
        model, model_args = swap_ffn_with_vq(source, args.seed)
        r.name = f"{source['model_args']['bottleneck']}_swapvq" + ("_ln" if args.train_only == "ln" else "")
    else:
        torch.manual_seed(args.seed)
        model_args = dict(model_options(), **args.model_args, bottleneck=args.model)
        model = build(model_args=model_args)
        r.name = args.model
    r.model, r.model_args = model.to(device), model_args
    if args.train_only == "ln":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("bottleneck.ln.")
    codebook = getattr(model.bottleneck, "codebook", None)
    r.initial_codebook = (resumed["last"]["initial_codebook"] if resumed else
                          codebook.detach().float().cpu().clone() if codebook is not None else None)
    params = [p for p in model.parameters() if p.requires_grad]
    r.n_params = {"model": count(model.parameters()), "bottleneck": count(model.bottleneck.parameters()),
                  "trainable": count(params)}
    # vqvae's codebook is a parameter that gets no gradient: DDP must be told to expect that.
    r.ddp = (torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=model_args["bottleneck"] == "vqvae" and args.train_only == "all")
        if world > 1 else model)
    r.optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    torch.manual_seed(args.seed + rank)  # dropout differs between ranks

    r.sampler = DistributedSampler(r.sets["train"], num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    steps_per_epoch = math.ceil(len(r.sampler) / args.batch_size / args.accumulate)
    if resumed:
        r.max_steps, r.n_epochs = args.max_steps, args.epochs
    elif source:
        r.max_steps = args.max_steps or 0
        r.n_epochs = math.ceil(r.max_steps / steps_per_epoch)
    else:
        r.max_steps = args.max_steps
        r.n_epochs = args.epochs if r.max_steps is None else min(args.epochs, math.ceil(r.max_steps / steps_per_epoch))

    if resumed:
        r.run_dir, r.config, r.rows = args.resume, resumed["config"], resumed["rows"]
        last = resumed["last"]
        r.optimizer.load_state_dict(last["optimizer"])
        r.step, r.metrics = last["step"], last.get("metrics", {})
        set_rng_state(last["rng"], rank, world, device)
        r.config.update(epochs=r.n_epochs, max_steps=r.max_steps)
        r.config.setdefault("resumed", []).append([PROG] + sys.argv[1:])
    else:
        r.config = make_config(r, args)
        if rank == 0:
            r.partial = r.run_dir = runs.new_run_dir(os.path.join(args.out_dir, "vqvae"), r.name,
                                                     what=f"--out_dir {args.out_dir!r}")
            runs.write_json(os.path.join(r.run_dir, "config.json"), r.config)
    r.first_epoch = r.rows[-1]["epoch"] + 1 if r.rows else 1
    r.t0 = time.perf_counter() - (r.rows[-1]["seconds"] if r.rows else 0.0)
    r.seen, r.loop_seconds = 0, 0.0
    r.rng = gather_rng_state(world, device)
    n = r.n_params
    r.say(f"{r.name}: {n['model']} parameters (bottleneck {n['bottleneck']}), {n['trainable']} trainable; "
          f"{len(r.sets['train'])} training images; {world} process(es) on {device.type}"
          + (f"; resuming {r.run_dir} at epoch {r.first_epoch}" if resumed else ""))
    return r


def train_epoch(r, epoch):
    """One pass over the training images: AdamW steps on the masked-reconstruction MSE, each over
    --accumulate batches; then the validation loss and a picture."""
    args, device = r.args, r.device
    r.sets["train"].epoch = epoch
    r.sampler.set_epoch(epoch)
    loader = DataLoader(r.sets["train"], batch_size=args.batch_size, sampler=r.sampler,
                        collate_fn=make_collate(args.image_size, args.patch_size), num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    bar = tqdm(total=len(r.sampler), desc=f"{r.name} epoch {epoch}/{r.n_epochs}", unit="img",
               disable=True if r.rank else None, leave=False)
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of losses * B, images)
    n_batches, t_epoch = len(loader), time.perf_counter()
    for i, (x, mask, unreadable) in enumerate(loader):
        r.bad.update(unreadable)
        first = i - i % args.accumulate                   # the group of batches one step averages over
        group_images = min((first + args.accumulate) * args.batch_size, len(r.sampler)) - first * args.batch_size
        stepping = (i + 1) % args.accumulate == 0 or i + 1 == n_batches
        x = to_pixels(x.to(device, non_blocking=True), args.pixels)
        mask = mask.to(device, non_blocking=True)
        sync = contextlib.nullcontext() if stepping or r.world == 1 else r.ddp.no_sync()
        with sync:
            with autocast(device, args.precision):
                recon = r.ddp(apply_mask(x, mask, args.patch_size))            # (B, 3, S, S)
            # An all-unreadable batch still steps (with zero gradient), to keep DDP ranks in step.
            loss = F.mse_loss(recon.float(), x) if len(x) else recon.sum() * 0
            (loss * (len(x) / group_images)).backward()                         # the group's mean
        if stepping:
            r.optimizer.step()
            r.optimizer.zero_grad(set_to_none=True)
            r.step += 1
        totals += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64, device=device)
        bar.update(len(x))
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if stepping and r.max_steps is not None and r.step >= r.max_steps:
            break
    bar.close()
    if r.world > 1:
        dist.all_reduce(totals)
    seconds = time.perf_counter() - t_epoch
    r.seen, r.loop_seconds = r.seen + int(totals[1]), r.loop_seconds + seconds
    if totals[1] == 0:
        raise UsageError(f"no readable images in the training split of {args.data!r} "
                         f"({len(r.sets['train'])} files, all unreadable)")
    r.rows.append(row(r, epoch, (totals[0] / totals[1]).item(), evaluate(r, "val", epoch),
                      totals[1].item() / seconds, time.perf_counter() - r.t0))
    last = r.rows[-1]
    r.say(f"epoch {epoch}/{r.n_epochs}  step {r.step}  train {last['train_loss']:.5f}  val {last['val_loss']:.5f}  "
          f"{last['images_per_s']:.1f} images/s  {last['seconds']:.1f}s")
    if r.rank == 0:
        save_grid(r, os.path.join(r.run_dir, f"recon_epoch{epoch:03d}.png"))


def before_training(r):
    """A swapped model's losses before its first step (epoch 0)."""
    r.rows.append(row(r, 0, float("nan"), evaluate(r, "val", 0), float("nan"), 0.0))
    r.metrics["test_loss_before_training"] = evaluate(r, "test", 0)
    if r.rank == 0:
        save_grid(r, os.path.join(r.run_dir, "recon_epoch000.png"))


def test(r):
    """The test loss of the final model, and metrics.json's numbers."""
    epoch = r.rows[-1]["epoch"]
    test_loss = evaluate(r, "test", test_masks_epoch(r.config, epoch))
    n_bad = report_unreadable(r.bad, r.world)
    last = r.rows[-1]
    r.metrics.update({"test_loss": test_loss, "test_split": r.data_info["test_split"],
                      "val_loss": last["val_loss"], "train_loss": last["train_loss"], "steps": r.step,
                      "epochs_run": epoch, "pixels": r.args.pixels, "parameters": r.n_params,
                      "codebook_change": codebook_change(r.model, r.initial_codebook),
                      "images_per_s": r.seen / r.loop_seconds if r.loop_seconds else None,  # this session's steps
                      "seconds": last["seconds"], "unreadable_images": n_bad})


def save(r):
    """model.pt, last.pt, config, losses, plot (and metrics.json once tested); the first save
    gives the run directory its final name."""
    if r.rank != 0:
        return
    d = r.run_dir
    epoch = r.rows[-1]["epoch"]
    weights = {"script": PROG, "model": r.name, "model_args": r.model_args, "epoch": epoch,
               "state_dict": {k: v.detach().cpu() for k, v in r.model.state_dict().items()},
               "initial_codebook": r.initial_codebook}
    runs.write_atomic(os.path.join(d, "model.pt"), lambda tmp: torch.save({**weights, "config": r.config}, tmp))
    last = {**weights, "step": r.step, "optimizer": r.optimizer.state_dict(), "rng": r.rng,
            "metrics": {k: v for k, v in r.metrics.items() if k.startswith(("source", "test_loss_before"))}}
    runs.write_atomic(os.path.join(d, "last.pt"), lambda tmp: torch.save(last, tmp))
    runs.write_json(os.path.join(d, "config.json"), r.config)
    write_losses(os.path.join(d, "losses.csv"), r.rows)
    epochs = [x["epoch"] for x in r.rows]
    trained = [x for x in r.rows if x["epoch"] > 0]
    runs.plot_curves({"train loss": ([x["epoch"] for x in trained], [x["train_loss"] for x in trained]),
                      "validation loss": (epochs, [x["val_loss"] for x in r.rows])},
                     f"{r.name} on {r.args.data}, {r.args.image_size} px", "masked-reconstruction MSE",
                     os.path.join(d, "loss.png"), log_y=False)
    if "test_loss" in r.metrics:
        runs.write_json(os.path.join(d, "metrics.json"), r.metrics)
    if r.partial:
        r.run_dir, r.partial = runs.finish_run_dir(r.partial), None


def report(r):
    if r.rank != 0:
        return
    m, n = r.metrics, r.n_params
    line = f"test_loss {m['test_loss']:.6g}"
    if r.source or "source_test_loss" in m:
        line = (f"source test_loss {m['source_test_loss']:.6g}  swapped, before training "
                f"{m['test_loss_before_training']:.6g}  after {r.step} steps " + line)
    change = m["codebook_change"]
    r.say(f"{line}  parameters {n['model']} (bottleneck {n['bottleneck']}, trainable {n['trainable']})"
          + (f"  codebook change {change['l2']:.4g}" if change else "") + f"  {m['seconds']:.1f}s\n-> {r.run_dir}")


def evaluate_run(args):
    """--eval: the val and test loss of a run's model, on its own data protocol."""
    ckpt = load_image_run(args.eval, "--eval")
    check_args(args, ckpt["config"], None)
    files, data_info = load_splits(args.data, args.val_from)
    world, rank, device = start_processes(args)
    photo = data_info["source"] if args.data == "sample" else None
    r = types.SimpleNamespace(args=args, world=world, rank=rank, device=device, bad=set(),
                              sets={s: images(files[s], s, args, photo) for s in ("val", "test")},
                              model=build(ckpt).to(device))
    epoch = ckpt.get("epoch", 0)
    val, test_loss = evaluate(r, "val", epoch), evaluate(r, "test", test_masks_epoch(ckpt["config"], epoch))
    if rank == 0:
        tqdm.write(f"val_loss {val:.6g}  test_loss {test_loss:.6g}  ({len(r.sets['val'])} val, "
                   f"{len(r.sets['test'])} test images of {args.data}, {ckpt['model_args']['bottleneck']} "
                   f"from {ckpt['path']})")
    report_unreadable(r.bad, world)


def images(files, split, args, photo):
    """data.images.Images of one split, read, cropped and masked as args say."""
    return Images(files, split, args.image_size, args.patch_size, args.mask_ratio, args.seed, args.resize,
                  args.mask_count, args.eval_masks, photo=photo)


def test_masks_epoch(config, epoch):
    """The epoch that keys the test masks: the last; after a swap 0, so that the source, the
    swapped model before training and after it are all tested on the same masks."""
    return 0 if config.get("swap_ffn_with_vq") else epoch


def row(r, epoch, train_loss, val_loss, images_per_s, seconds):
    return {"epoch": epoch, "step": r.step, "train_loss": train_loss, "val_loss": val_loss,
            "images_per_s": images_per_s, "seconds": seconds}


def make_config(r, args):
    return {"model": r.name, "model_args": r.model_args, "data": args.data, "data_info": r.data_info,
            "images": {s: len(d) for s, d in r.sets.items()}, "image_size": args.image_size,
            "patch_size": args.patch_size, "mask_ratio": args.mask_ratio,
            **{k: getattr(args, k) for k in PROTOCOL}, "epochs": r.n_epochs, "max_steps": r.max_steps,
            "batch_size": args.batch_size, "accumulate": args.accumulate, "world_size": r.world,
            "global_batch_size": args.batch_size * r.world * args.accumulate, "lr": args.lr,
            "weight_decay": args.weight_decay, "workers": args.workers, "seed": args.seed,
            "device": r.device.type, "train_only": args.train_only,
            "swap_ffn_with_vq": r.source["path"] if r.source else None, "parameters": r.n_params,
            "versions": {"python": platform.python_version(), "torch": str(torch.version.__version__)},
            "command": [PROG] + sys.argv[1:]}


def write_losses(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    runs.write_atomic(path, write)


# ---------------------------------------------------------------- processes, devices, random state

def start_processes(args):
    """(world size, rank, device); under torchrun, the process group."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    use_cuda = runs.pick_device(args.device) == "cuda"
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        if args.precision == "fp32":
            torch.set_float32_matmul_precision("medium")  # as the original: TF32 / bf16 inside matmuls
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return world, rank, device


def autocast(device, precision):
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gather_rng_state(world, device):
    """Every rank's torch random state (dropout, DataLoader seeds): what --resume restores."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if world == 1:
        return [state]
    gathered = [None] * world
    dist.all_gather_object(gathered, {k: v.cpu() for k, v in state.items()})
    return gathered


def set_rng_state(states, rank, world, device):
    if len(states) != world:
        raise UsageError(f"--resume: the run was trained by {len(states)} process(es); resume it with as many "
                         f"(this is {world})")
    torch.set_rng_state(states[rank]["cpu"])
    if device.type == "cuda" and "cuda" in states[rank]:
        torch.cuda.set_rng_state(states[rank]["cuda"], device)


# ---------------------------------------------------------------- run directories and checkpoints

def load_image_run(path, option):
    """The model.pt of a complete vqvae_imagenet.py run (a run directory, its model.pt, or
    runs/vqvae/MODEL: its latest run), with its config; otherwise a one-line UsageError."""
    if os.path.isfile(path) and os.path.basename(path) == "model.pt":
        path = os.path.dirname(path) or "."
    try:
        run_dir = runs.latest_run(path)
        config = runs.read_json(os.path.join(run_dir, "config.json"))
        ckpt = runs.load_checkpoint(os.path.join(run_dir, "model.pt"))
    except runs.RunError as e:
        raise UsageError(f"{option}: {e}") from None
    if ckpt.get("script") != PROG:
        held = f" (it holds model {ckpt['model']!r})" if isinstance(ckpt.get("model"), str) else ""
        raise UsageError(f"{option} {run_dir!r} is not a {PROG} run{held}; give a run of "
                         f"{', '.join(BOTTLENECKS)} from runs/vqvae/")
    return dict(ckpt, config=config, path=run_dir)


def load_resume(args):
    """--resume: the run's config, losses and last.pt; the run's settings replace the command line's."""
    try:
        run_dir = runs.latest_run(args.resume, weights="last.pt")
        config = runs.read_json(os.path.join(run_dir, "config.json"))
        last = runs.load_checkpoint(os.path.join(run_dir, "last.pt"))
        with open(os.path.join(run_dir, "losses.csv"), newline="") as f:
            rows = [{k: float(v) if v not in ("", None) else float("nan") for k, v in x.items()}
                    for x in csv.DictReader(f)]
    except (runs.RunError, OSError, ValueError) as e:
        raise UsageError(f"--resume: {e}") from None
    if last.get("script") != PROG or not rows:
        raise UsageError(f"--resume {run_dir!r} is not a {PROG} run with a saved epoch")
    for x in rows:
        x["epoch"], x["step"] = int(x["epoch"]), int(x["step"])
    args.epochs = args.epochs if args.epochs is not None else config["epochs"]
    if args.epochs <= rows[-1]["epoch"]:
        raise UsageError(f"--resume {run_dir}: it has run {rows[-1]['epoch']} epochs already; "
                         f"give --epochs larger than that")
    args.resume, args.model, args.model_args = run_dir, config["model_args"]["bottleneck"], {}
    args.data = args.data or config["data"]
    for k in ("image_size", "patch_size", "mask_ratio", "batch_size", "accumulate", "lr", "weight_decay",
              "seed", "train_only", *PROTOCOL):
        setattr(args, k, config.get(k, LEGACY.get(k)))
    return {"config": config, "last": last, "rows": rows}


def build(ckpt=None, model_args=None):
    """A Model from a checkpoint, or from arguments; constructor ValueErrors become UsageErrors."""
    try:
        model = Model(**{**LEGACY_MODEL, **ckpt["model_args"]} if ckpt else model_args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if ckpt:
        model.load_state_dict(ckpt["state_dict"])
    return model


def swap_ffn_with_vq(ckpt, seed):
    """The checkpoint's encoder and decoder around a fresh SoftQuantize (N(0, 1) codebook, new
    LayerNorm) of the same width: n_embed codes for an FFN of n_embed hidden units."""
    if ckpt["model_args"]["bottleneck"] not in ("ffnae", "llmffnae"):
        raise UsageError(f"--swap_ffn_with_vq {ckpt['path']!r} holds bottleneck "
                         f"{ckpt['model_args']['bottleneck']!r}; it needs a run of ffnae or llmffnae")
    model_args = {**LEGACY_MODEL, **ckpt["model_args"], "bottleneck": "vqvae"}
    torch.manual_seed(seed)
    model = Model(**model_args)
    kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("bottleneck.") for k in missing), (missing, unexpected)
    return model, model_args


def count(params):
    return sum(p.numel() for p in params)


def codebook_change(model, initial):
    """How far the codebook moved from its initialisation, or None without a codebook."""
    if initial is None:
        return None
    diff = model.bottleneck.codebook.detach().float().cpu() - initial
    return {"l2": float(diff.norm()), "max_abs": float(diff.abs().max()),
            "relative": float(diff.norm() / initial.norm())}


# ---------------------------------------------------------------- evaluation and pictures

@torch.no_grad()
def evaluate(r, split, epoch, model=None):
    """Mean per-image MSE over a split (each rank takes every world-th image); epoch keys the
    masks when they are drawn afresh."""
    args, device, model = r.args, r.device, model or r.model
    dataset = r.sets[split]
    dataset.epoch = epoch
    was_training = model.training
    model.eval()
    part = Subset(dataset, range(r.rank, len(dataset), r.world))
    loader = DataLoader(part, batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=make_collate(args.image_size, args.patch_size))
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of MSEs, images)
    for x, mask, unreadable in loader:
        r.bad.update(unreadable)
        if len(x) == 0:
            continue
        x, mask = to_pixels(x.to(device), args.pixels), mask.to(device)
        with autocast(device, args.precision):
            recon = model(apply_mask(x, mask, args.patch_size))
        total[0] += ((recon.float() - x) ** 2).mean((1, 2, 3)).sum().double()
        total[1] += len(x)
    if r.world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item() if total[1] > 0 else float("nan")


@torch.no_grad()
def save_grid(r, path):
    """Rows of original | masked | reconstruction for the first few validation images."""
    from PIL import Image
    args, dataset = r.args, r.sets["val"]
    items = [dataset[i] for i in range(min(GRID_IMAGES, len(dataset)))]
    items = [it for it in items if it[0] is not None]
    if not items:
        return
    x = to_pixels(torch.stack([it[0] for it in items]).to(r.device), args.pixels)
    masked = apply_mask(x, torch.stack([it[1] for it in items]).to(r.device), args.patch_size)
    was_training = r.model.training
    r.model.eval()
    with autocast(r.device, args.precision):
        recon = r.model(masked).float()
    r.model.train(was_training)
    framed = [F.pad(from_pixels(t, args.pixels), (1, 1, 1, 1), value=255) for t in (x, masked, recon)]  # white frames
    rows = torch.cat([torch.cat(triple, dim=2) for triple in zip(*framed)], dim=1)  # (3, n*(S+2), 3*(S+2))
    pixels = rows.permute(1, 2, 0).cpu().numpy()
    runs.write_atomic(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def report_unreadable(bad, world):
    """The number of distinct unreadable files any rank met; a one-line warning when there are some."""
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, sorted(bad))
        bad = set().union(*map(set, gathered))
    if bad and int(os.environ.get("RANK", 0)) == 0:
        print(f"{PROG}: warning: skipped {len(bad)} unreadable image(s), e.g. {sorted(bad)[0]}", file=sys.stderr)
    return len(bad)


# ---------------------------------------------------------------- the parameter table

def list_bottlenecks(model_args):
    print("| model | bottleneck | parameters | encoder + decoder | bottleneck params | trainable with --train_only ln |")
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


# ---------------------------------------------------------------- options

def model_options():
    """Model's constructor arguments and defaults, except the bottleneck (that is --model)."""
    params = list(inspect.signature(Model.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params if p.name != "bottleneck"}


def parse_args(argv):
    p = runs.Parser(description="Train the log's image autoencoders on masked reconstruction.")
    p.add_argument("--model", default="vqvae", choices=BOTTLENECKS, help="the bottleneck (default vqvae)")
    p.add_argument("--data", default=None, help="'sample', an ImageNet tree (train/, val/[, test/]) or any "
                   "folder of images (default: sample; with a run or a swap's source, the data it was trained on)")
    p.add_argument("--image_size", type=int, default=None, help="side of the square images (default 256; with a run or a swap's source, its own)")
    p.add_argument("--patch_size", type=int, default=None, help="side of the masked patches (default 32, or the run's)")
    p.add_argument("--mask_ratio", type=float, default=None, help="probability (or fraction, with --mask_count "
                   "exact) of a patch being zeroed (default 0.5, or the run's)")
    p.add_argument("--epochs", type=int, default=None, help="(default 10; with --resume: the total to reach)")
    p.add_argument("--max_steps", type=int, default=None, help="stop after this many optimizer steps (after a "
                   "swap: the fine-tuning steps, default 0)")
    p.add_argument("--batch_size", type=int, default=256, help="per process (default 256, the log's per GPU)")
    p.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step; the log's global batch "
                   "1024 is --accumulate 4 on one device")
    p.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (torch's default)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0, help="weights, codebook, crops, masks and shuffling")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out_dir", default="runs", help="run directories go to OUT_DIR/vqvae/")
    g = p.add_argument_group("data protocol (the original's first; the second is this repository's former one)")
    g.add_argument("--pixels", default="unit", choices=PROTOCOL["pixels"], help="unit: [0, 1], a masked patch "
                   "is black; signed: [-1, 1], mid-grey (losses 4x the unit ones)")
    g.add_argument("--mask_count", default="bernoulli", choices=PROTOCOL["mask_count"], help="bernoulli: each "
                   "patch masked with probability --mask_ratio; exact: exactly that fraction of patches")
    g.add_argument("--eval_masks", default="fresh", choices=PROTOCOL["eval_masks"], help="fresh: evaluation "
                   "masks drawn anew each epoch (from the seed); fixed: the same masks for every run")
    g.add_argument("--resize", default="stretch", choices=PROTOCOL["resize"], help="stretch: to S x S, no "
                   "augmentation; crop: shorter side to S, random crop and flip for training, centre crop else")
    g.add_argument("--val_from", default="train", choices=PROTOCOL["val_from"], help="train: validate on 20%% "
                   "of the training images (seed 1337), test on val/; val: validate on val/, test on test/ or val/")
    g.add_argument("--precision", default="fp32", choices=PROTOCOL["precision"], help="fp32 (with 'medium' "
                   "matmul precision on CUDA) or bf16 autocast on CUDA")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--eval", metavar="RUN", help="print the val and test loss of a run (or its latest)")
    mode.add_argument("--swap_ffn_with_vq", metavar="RUN", help="an ffnae/llmffnae run with its FFN "
                      "replaced by an untrained SoftQuantize; test loss before and after --max_steps")
    mode.add_argument("--resume", metavar="RUN", help="continue a run (or its latest) to --epochs in total")
    mode.add_argument("--list", action="store_true", help="parameters of every bottleneck")
    p.add_argument("--train_only", default="all", choices=("all", "ln"),
                   help="ln: train only the quantizer's LayerNorm (after --swap_ffn_with_vq)")
    group = p.add_argument_group("model options (models/vqvae.py; with a run, its own)")
    for name, default in model_options().items():
        group.add_argument(f"--{name}", type=type(default), default=None, help=f"(default {default})")
    args = p.parse_args(argv)
    if args.resume:
        given = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in RESUMABLE]
        if given:
            p.error(f"--resume continues a run with its own settings; drop {given[0]} "
                    f"(only {', '.join(RESUMABLE[1:-1])} may be given)")
    args.model_args = {k: getattr(args, k) for k in model_options() if getattr(args, k) is not None}
    return args


def check_args(args, config, source):
    """Fill the defaults (a run's own where it has them) and refuse what cannot run."""
    held = config or (source and source["config"])  # a swap fine-tunes on its source's images too
    for k, default in DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, held.get(k, default) if held else default)
    if args.data is None:
        args.data = held.get("data", "sample") if held else "sample"
    if args.epochs is None:
        args.epochs = 10
    if args.eval:  # the run's own protocol
        for k in PROTOCOL:
            setattr(args, k, config.get(k, LEGACY[k]))
        args.seed = config.get("seed", args.seed)
    if held and args.model_args:
        raise UsageError(f"--{next(iter(args.model_args))}: the model's options come from the run")
    model_args = ({**LEGACY_MODEL, **held["model_args"]} if held else dict(model_options(), **args.model_args))
    down = 2 ** (model_args["scale_factor"] + 1)
    if args.patch_size < 1 or args.patch_size % down:
        raise UsageError(f"--patch_size {args.patch_size}: must be a positive multiple of {down}, the model's "
                         f"downsampling (e.g. 16, 32)")
    sizes = f"{args.patch_size}, {2 * args.patch_size}, ..., {8 * args.patch_size}, ..."
    if args.image_size < 1:
        raise UsageError(f"--image_size {args.image_size}: must be positive, a multiple of --patch_size "
                         f"{args.patch_size}; choose one of {sizes}")
    if args.image_size < args.patch_size or args.image_size % args.patch_size:
        raise UsageError(f"--image_size {args.image_size} is not a multiple of --patch_size {args.patch_size}; "
                         f"choose one of {sizes}")
    if not 0 <= args.mask_ratio <= 1:
        raise UsageError(f"--mask_ratio {args.mask_ratio}: must be between 0 and 1")
    for name, low in (("batch_size", 1), ("accumulate", 1), ("epochs", 0), ("workers", 0), ("max_steps", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"--{name} {value}: must be >= {low}")
    if args.lr <= 0:
        raise UsageError(f"--lr {args.lr}: must be > 0")
    if args.train_only == "ln" and not (args.swap_ffn_with_vq or args.resume):
        raise UsageError("--train_only ln fine-tunes the LayerNorm of a swapped-in quantizer; "
                         "add --swap_ffn_with_vq RUN")
    if not args.eval and not config:
        build(model_args=dict(model_args, bottleneck=args.model))  # a bad --residual or --decoder, now
    runs.pick_device(args.device)


def main(argv=None):
    runs.ctrl_c_interrupts()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.list:
            list_bottlenecks(dict(model_options(), **args.model_args))
        elif args.eval:
            evaluate_run(args)
        else:
            run(args)
        if dist.is_initialized():
            dist.barrier()  # rank 0 may still be saving; a rank that leaves alone can abort inside gloo
    except UsageError as e:
        runs.fail(PROG, e)
    except KeyboardInterrupt:
        runs.fail(PROG, "interrupted; a run keeps its last finished epoch (continue it with --resume RUN)",
                  status=130)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
