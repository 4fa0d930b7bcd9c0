"""Train the research log's image autoencoders (VQVAE vs FFN bottlenecks) on masked reconstruction.

    python vqvae_imagenet.py --model vqvae --data sample --image_size 64 --epochs 1   # smoke run, CPU
    python vqvae_imagenet.py --model llmffnae --data /path/to/imagenet                # the log's setting
    torchrun --nproc_per_node 4 vqvae_imagenet.py --model vqvae --data /path/to/imagenet
    python vqvae_imagenet.py --eval runs/vqvae/vqvae                                   # its latest run
    python vqvae_imagenet.py --swap_ffn_with_vq runs/vqvae/llmffnae --max_steps 100
    python vqvae_imagenet.py --swap_ffn_with_vq runs/vqvae/llmffnae --train_only ln --max_steps 100
    python vqvae_imagenet.py --list                                                    # parameters per bottleneck

Research log 2024-12 "vqvae-imagenet-ffn". Half of the 32 x 32 patches of each image are zeroed
at the input; the loss is the MSE against the whole unmasked image (pixels in [-1, 1]). AdamW,
lr 3e-4, 10 epochs, batch 256, 256 px by default. The model is models/vqvae.py; every
constructor argument is an option (--n_embed, --embed_dim, ...).

A run writes runs/vqvae/{model}/{timestamp}/: config.json, model.pt (rebuilds itself),
losses.csv, loss.png, recon_epochNNN.png (original | masked | reconstruction) and metrics.json.
"""
import argparse
import contextlib
import csv
import inspect
import json
import math
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from runs import write_atomic
from models.vqvae import BOTTLENECKS, Model
from runs import new_run_dir

PROG = "vqvae_imagenet.py"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SAMPLE_PHOTO = "grace_hopper.jpg"  # the one photograph among matplotlib's sample data
SAMPLE_SIZES = {"train": 512, "val": 32, "test": 32}  # random crops per split
DEFAULTS = {"image_size": 256, "patch_size": 32, "mask_ratio": 0.5}  # the log's setting
GRID_IMAGES = 8


# ---------------------------------------------------------------- errors and files

class UsageError(ValueError):
    """A mistake the user can fix; one line, exit status 2."""


def fail(message):
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike; say it once
        print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2."""

    def error(self, message):
        fail(message)


def write_json(path, obj):
    def plain(o):  # NaN (a loss over no readable images) is not JSON: write null
        if isinstance(o, float) and math.isnan(o):
            return None
        return {k: plain(v) for k, v in o.items()} if isinstance(o, dict) else o

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(plain(obj), f, indent=2, default=str)
            f.write("\n")
    write_atomic(path, write)


# ---------------------------------------------------------------- data

def list_images(folder):
    """Every image file under folder (recursively, class folders or flat), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def load_splits(data):
    """{"train": files, "val": files, "test": files} (files None: the sample photograph) and a
    description of where each split came from."""
    if data == "sample":
        import matplotlib.cbook
        photo = matplotlib.cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False)
        return {s: None for s in SAMPLE_SIZES}, {"source": photo, "kind": "sample: random crops of one photograph",
                                                 "test_split": "test"}
    if not os.path.isdir(data):
        raise UsageError(f"--data {data!r}: no such folder; give an ImageNet tree (train/, val/), "
                         f"any folder of images, or 'sample'")
    exts = ", ".join(IMAGE_EXTENSIONS)
    if os.path.isdir(os.path.join(data, "train")):
        splits = {}
        for split in ("train", "val"):
            folder = os.path.join(data, split)
            if not os.path.isdir(folder):
                raise UsageError(f"--data {data!r} has train/ but no {split}/; an ImageNet tree needs both")
            splits[split] = list_images(folder)
            if not splits[split]:
                raise UsageError(f"no images ({exts}) in {folder!r}")
        test = list_images(os.path.join(data, "test")) if os.path.isdir(os.path.join(data, "test")) else []
        splits["test"] = test or splits["val"]
        return splits, {"source": data, "kind": "tree: train/ and val/ with class folders or flat",
                        "test_split": "test" if test else "val (no test/ folder)"}
    files = list_images(data)
    if len(files) < 3:
        raise UsageError(f"found {len(files)} images ({exts}) in {data!r}; need at least 3 "
                         f"(one each for train, val and test)")
    # A fixed split (not --seed's): every run of this folder tests on the same images.
    order = random.Random(0).sample(range(len(files)), len(files))
    hold = max(1, len(files) // 20)
    pick = lambda idx: [files[i] for i in sorted(idx)]
    return ({"test": pick(order[:hold]), "val": pick(order[hold:2 * hold]), "train": pick(order[2 * hold:])},
            {"source": data, "kind": "folder: fixed split, 1/20 val, 1/20 test", "test_split": "test"})


def patch_mask(rng, grid, ratio):
    """(grid, grid) bool, True on exactly round(ratio * grid^2) patches chosen by rng."""
    n = grid * grid
    mask = torch.zeros(n, dtype=torch.bool)
    mask[rng.sample(range(n), round(ratio * n))] = True
    return mask.view(grid, grid)


def apply_mask(x, mask, patch_size):
    """Zero the masked patches: x (B, C, H, W), mask (B, H/p, W/p) -> (B, C, H, W)."""
    keep = ~mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)  # (B, H, W)
    return x * keep.unsqueeze(1)


def to_unit(x):
    """uint8 (B, C, H, W) -> float in [-1, 1]; a zeroed patch is mid-grey."""
    return x.float() / 127.5 - 1


class Images(Dataset):
    """uint8 (3, S, S) images and their (S/p, S/p) patch masks.

    Crops, flips and masks come from a random.Random keyed by (key, index), and the key holds
    the seed and the epoch for training, the split alone for evaluation: the numbers do not
    depend on the number of workers or processes, and every run is tested on the same masks.
    """

    def __init__(self, files, split, image_size, patch_size, mask_ratio, seed, photo=None):
        self.files, self.split, self.train = files, split, split == "train"
        self.size, self.patch_size, self.mask_ratio, self.seed = image_size, patch_size, mask_ratio, seed
        self.epoch = 0
        self.photo = None
        if files is None:  # the sample photograph, decoded once
            from PIL import Image
            with Image.open(photo) as im:
                self.photo = im.convert("RGB")

    def __len__(self):
        return SAMPLE_SIZES[self.split] if self.files is None else len(self.files)

    def crop_sample(self, rng):
        from PIL import Image
        w, h = self.photo.size
        side = round(rng.uniform(0.25, 1.0) * min(w, h))
        left, top = rng.randint(0, w - side), rng.randint(0, h - side)
        return self.photo.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BILINEAR)

    def load_file(self, path, rng):
        """Shorter side resized to S, then a centre crop (a random one for training)."""
        from PIL import Image
        s = self.size
        with Image.open(path) as im:
            im.draft("RGB", (s, s))  # JPEG: decode at a reduced scale when the file is large
            im = im.convert("RGB")
        w, h = im.size
        scale = s / min(w, h)
        w, h = max(s, round(w * scale)), max(s, round(h * scale))
        im = im.resize((w, h), Image.BILINEAR)
        left, top = (rng.randint(0, w - s), rng.randint(0, h - s)) if self.train else ((w - s) // 2, (h - s) // 2)
        return im.crop((left, top, left + s, top + s))

    def __getitem__(self, i):
        key = f"{self.seed}-train-{self.epoch}" if self.train else self.split
        rng = random.Random(f"{key}-{i}")
        if self.files is None:
            im = self.crop_sample(rng)
        else:
            try:
                im = self.load_file(self.files[i], rng)
            except Exception:  # Pillow raises many types; any file it cannot decode is skipped
                return None, self.files[i]
        if self.train and rng.random() < 0.5:
            im = im.transpose(0)  # PIL.Image.FLIP_LEFT_RIGHT
        x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)  # (3, S, S)
        return x, patch_mask(rng, self.size // self.patch_size, self.mask_ratio)


def make_collate(image_size, patch_size):
    grid = image_size // patch_size

    def collate(items):
        """(images (B, 3, S, S) uint8, masks (B, g, g), unreadable paths); B may be 0."""
        good = [it for it in items if it[0] is not None]
        bad = [it[1] for it in items if it[0] is None]
        if not good:  # still a batch, so that every DDP rank takes the same steps
            return (torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8),
                    torch.zeros(0, grid, grid, dtype=torch.bool), bad)
        return torch.stack([g[0] for g in good]), torch.stack([g[1] for g in good]), bad
    return collate


# ---------------------------------------------------------------- checkpoints

def resolve_checkpoint(path):
    """A model.pt, its run directory, or runs/vqvae/{model}: then its latest run."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "model.pt")):
            return os.path.join(path, "model.pt")
        runs = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, "model.pt")))
        if runs:
            return os.path.join(path, runs[-1], "model.pt")
    return path


def load_checkpoint(path, option):
    """The checkpoint dict of a vqvae_imagenet.py run, or a UsageError naming what it is."""
    path = resolve_checkpoint(path)
    if not os.path.isfile(path):
        raise UsageError(f"{option} {path!r}: no checkpoint there; give a model.pt, its run directory, "
                         f"or runs/vqvae/MODEL (its latest run)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"{option} {path!r}: not a readable torch checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != PROG:
        held = ckpt.get("model") if isinstance(ckpt, dict) else None
        held = f" (it holds model {held!r})" if held else ""
        raise UsageError(f"{option} {path!r} is not a {PROG} checkpoint{held}; give a run of "
                         f"{', '.join(BOTTLENECKS)} from runs/vqvae/")
    ckpt["path"] = path
    return ckpt


def build(ckpt=None, **model_args):
    """A Model from a checkpoint, or from arguments; constructor ValueErrors become UsageErrors."""
    try:
        model = Model(**(ckpt["model_args"] if ckpt else model_args))
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
    model_args = dict(ckpt["model_args"], bottleneck="vqvae")
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

def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model, dataset, args, device, rank=0, world=1, bad=None):
    """Mean per-image MSE over the whole dataset (each rank takes every world-th image)."""
    was_training = model.training
    model.eval()
    part = Subset(dataset, range(rank, len(dataset), world))
    loader = DataLoader(part, batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=make_collate(args.image_size, args.patch_size))
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of MSEs, images)
    for x, mask, unreadable in loader:
        if bad is not None:
            bad.update(unreadable)
        if len(x) == 0:
            continue
        x, mask = to_unit(x.to(device)), mask.to(device)
        with autocast(device):
            recon = model(apply_mask(x, mask, args.patch_size))
        total[0] += ((recon.float() - x) ** 2).mean((1, 2, 3)).sum().double()
        total[1] += len(x)
    if world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item() if total[1] > 0 else float("nan")


@torch.no_grad()
def save_grid(model, dataset, args, device, path):
    """Rows of original | masked | reconstruction for the first few validation images."""
    from PIL import Image
    items = [dataset[i] for i in range(min(GRID_IMAGES, len(dataset)))]
    items = [it for it in items if it[0] is not None]
    if not items:
        return
    x = to_unit(torch.stack([it[0] for it in items]).to(device))
    masked = apply_mask(x, torch.stack([it[1] for it in items]).to(device), args.patch_size)
    was_training = model.training
    model.eval()
    with autocast(device):
        recon = model(masked).float()
    model.train(was_training)
    framed = [F.pad(t, (1, 1, 1, 1), value=1.0) for t in (x, masked, recon.clamp(-1, 1))]  # white frames
    rows = torch.cat([torch.cat(triple, dim=2) for triple in zip(*framed)], dim=1)  # (3, n*(S+2), 3*(S+2))
    pixels = ((rows + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    write_atomic(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def plot_losses(rows, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [r for r in rows if r["epoch"] > 0]
    ax.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], "o-", label="train loss")
    ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], "o-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked-reconstruction MSE")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


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
        model = build(**dict(model_args, bottleneck=name))
        total, inner = count(model.parameters()), count(model.bottleneck.parameters())
        ln = count(model.bottleneck.ln.parameters()) if hasattr(model.bottleneck, "ln") else "-"
        print(f"| {name} | {what[name]} | {total} | {total - inner} | {inner} | {ln} |")


# ---------------------------------------------------------------- options

def model_options():
    """Model's constructor arguments and defaults, except the bottleneck (that is --model)."""
    params = list(inspect.signature(Model.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params if p.name != "bottleneck"}


def parse_args(argv):
    p = Parser(description="Train the log's image autoencoders on masked reconstruction.")
    p.add_argument("--model", default="vqvae", choices=BOTTLENECKS, help="the bottleneck (default vqvae)")
    p.add_argument("--data", default=None, help="'sample', an ImageNet tree (train/, val/[, test/]) or any "
                   "folder of images (default: sample; with a checkpoint, the data it was trained on)")
    p.add_argument("--image_size", type=int, default=None, help="side of the square crops (default 256)")
    p.add_argument("--patch_size", type=int, default=None, help="side of the masked patches (default 32)")
    p.add_argument("--mask_ratio", type=float, default=None, help="fraction of patches zeroed (default 0.5)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max_steps", type=int, default=None, help="stop after this many steps (after a swap: "
                   "the fine-tuning steps, default 0)")
    p.add_argument("--batch_size", type=int, default=256, help="per process")
    p.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (torch's default)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0, help="weights, codebook, crops, masks and shuffling")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out_dir", default="runs", help="run directories go to OUT_DIR/vqvae/")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--eval", metavar="CKPT", help="print the val and test loss of a checkpoint")
    mode.add_argument("--swap_ffn_with_vq", metavar="CKPT", help="an ffnae/llmffnae run with its FFN "
                      "replaced by an untrained SoftQuantize; test loss before and after --max_steps")
    mode.add_argument("--list", action="store_true", help="parameters of every bottleneck")
    p.add_argument("--train_only", default="all", choices=("all", "ln"),
                   help="ln: train only the quantizer's LayerNorm (after --swap_ffn_with_vq)")
    group = p.add_argument_group("model options (models/vqvae.py; with a checkpoint, its own)")
    for name, default in model_options().items():
        group.add_argument(f"--{name}", type=type(default), default=None, help=f"(default {default})")
    args = p.parse_args(argv)
    args.model_args = {k: getattr(args, k) for k in model_options() if getattr(args, k) is not None}
    return args


def check_args(args, ckpt):
    """Fill the defaults (a checkpoint's own where it has them) and refuse what cannot run."""
    for k, default in DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, ckpt["config"][k] if ckpt else default)
    if args.data is None:
        args.data = ckpt["config"]["data"] if ckpt else "sample"
    if ckpt and args.model_args:
        raise UsageError(f"--{next(iter(args.model_args))}: the model's options come from the checkpoint "
                         f"{ckpt['path']!r}")
    model_args = ckpt["model_args"] if ckpt else dict(model_options(), **args.model_args)
    down = 2 ** (model_args["scale_factor"] + 1)
    if args.patch_size < 1 or args.patch_size % down:
        raise UsageError(f"--patch_size {args.patch_size}: must be a multiple of {down}, the model's "
                         f"downsampling (e.g. 16, 32)")
    if args.image_size < args.patch_size or args.image_size % args.patch_size:
        raise UsageError(f"--image_size {args.image_size} is not a multiple of --patch_size {args.patch_size}; "
                         f"choose one of {args.patch_size}, {2 * args.patch_size}, ..., {8 * args.patch_size}, ...")
    if not 0 <= args.mask_ratio <= 1:
        raise UsageError(f"--mask_ratio {args.mask_ratio}: must be between 0 and 1")
    for name, low in (("batch_size", 1), ("epochs", 0), ("workers", 0), ("max_steps", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"--{name} {value}: must be >= {low}")
    if args.lr <= 0:
        raise UsageError(f"--lr {args.lr}: must be > 0")
    if args.train_only == "ln" and not args.swap_ffn_with_vq:
        raise UsageError("--train_only ln fine-tunes the LayerNorm of a swapped-in quantizer; "
                         "add --swap_ffn_with_vq CKPT")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here; choose auto or cpu")


# ---------------------------------------------------------------- the run

def run(args):
    ckpt_path = args.eval or args.swap_ffn_with_vq
    ckpt = load_checkpoint(ckpt_path, "--eval" if args.eval else "--swap_ffn_with_vq") if ckpt_path else None
    check_args(args, ckpt)
    files, data_info = load_splits(args.data)

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    photo = data_info["source"] if args.data == "sample" else None
    sets = {s: Images(files[s], s, args.image_size, args.patch_size, args.mask_ratio, args.seed, photo)
            for s in ("train", "val", "test")}
    bad = set()  # unreadable files seen by this rank
    say = tqdm.write if rank == 0 else (lambda *a, **k: None)

    if args.eval:
        model = build(ckpt).to(device)
        val, test = (evaluate(model, sets[s], args, device, rank, world, bad) for s in ("val", "test"))
        say(f"val_loss {val:.6g}  test_loss {test:.6g}  ({len(sets['val'])} val, {len(sets['test'])} test "
            f"images of {args.data}, {ckpt['model_args']['bottleneck']} from {ckpt['path']})")
        return report_unreadable(bad, world)

    # The model: fresh (the seed's first draw is its weights), or a swap of a trained FFN model.
    metrics = {}
    if ckpt:
        source = build(ckpt).to(device)
        metrics["source_checkpoint"] = ckpt["path"]
        metrics["source_test_loss"] = evaluate(source, sets["test"], args, device, rank, world, bad)
        model, model_args = swap_ffn_with_vq(ckpt, args.seed)
        name = f"{ckpt['model_args']['bottleneck']}_swapvq" + ("_ln" if args.train_only == "ln" else "")
        max_steps = args.max_steps or 0
    else:
        torch.manual_seed(args.seed)
        model_args = dict(model_options(), **args.model_args, bottleneck=args.model)
        model = build(**model_args)
        name, max_steps = args.model, args.max_steps
    model.to(device)
    torch.manual_seed(args.seed + rank)  # dropout differs between ranks
    if args.train_only == "ln":
        for pname, p in model.named_parameters():
            p.requires_grad = pname.startswith("bottleneck.ln.")
    codebook = getattr(model.bottleneck, "codebook", None)
    initial_codebook = codebook.detach().float().cpu().clone() if codebook is not None else None
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = {"model": count(model.parameters()), "bottleneck": count(model.bottleneck.parameters()),
                "trainable": count(params)}
    # vqvae's codebook is a parameter that gets no gradient: DDP must be told to expect that.
    ddp = (torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if use_cuda else None,
        find_unused_parameters=model_args["bottleneck"] == "vqvae" and args.train_only == "all")
        if world > 1 else model)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)

    sampler = DistributedSampler(sets["train"], num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    n_epochs = args.epochs if not ckpt else math.ceil(max_steps / steps_per_epoch)
    if max_steps is not None and not ckpt:
        n_epochs = min(n_epochs, math.ceil(max_steps / steps_per_epoch))

    run_dir = new_run_dir(os.path.join(args.out_dir, "vqvae"), name) if rank == 0 else None
    config = {"model": name, "model_args": model_args, "data": args.data, "data_info": data_info,
              "images": {s: len(d) for s, d in sets.items()}, "image_size": args.image_size,
              "patch_size": args.patch_size, "mask_ratio": args.mask_ratio, "epochs": n_epochs,
              "max_steps": max_steps, "batch_size": args.batch_size, "world_size": world,
              "global_batch_size": args.batch_size * world, "lr": args.lr, "weight_decay": args.weight_decay,
              "workers": args.workers, "seed": args.seed, "device": device.type,
              "precision": "bf16 autocast" if use_cuda else "fp32", "train_only": args.train_only,
              "swap_ffn_with_vq": ckpt["path"] if ckpt else None, "parameters": n_params,
              "versions": {"python": platform.python_version(), "torch": str(torch.__version__)},
              "command": [PROG] + sys.argv[1:]}
    if rank == 0:
        write_json(os.path.join(run_dir, "config.json"), config)
        say(f"{name}: {n_params['model']} parameters (bottleneck {n_params['bottleneck']}), "
            f"{n_params['trainable']} trainable; {len(sets['train'])} training images; {world} process(es) "
            f"on {device.type}")

    rows, step, t0, seen_total, loop_seconds = [], 0, time.perf_counter(), 0, 0.0
    if ckpt:  # the swapped model before any training
        rows.append({"epoch": 0, "step": 0, "train_loss": float("nan"),
                     "val_loss": evaluate(model, sets["val"], args, device, rank, world, bad),
                     "images_per_s": float("nan"), "seconds": 0.0})
        metrics["test_loss_before_training"] = evaluate(model, sets["test"], args, device, rank, world, bad)
        if rank == 0:
            save_grid(model, sets["val"], args, device, os.path.join(run_dir, "recon_epoch000.png"))
    collate = make_collate(args.image_size, args.patch_size)
    for epoch in range(1, n_epochs + 1):
        sets["train"].epoch = epoch
        sampler.set_epoch(epoch)
        loader = DataLoader(sets["train"], batch_size=args.batch_size, sampler=sampler, collate_fn=collate,
                            num_workers=args.workers, pin_memory=use_cuda)
        bar = tqdm(total=len(sampler), desc=f"{name} epoch {epoch}/{n_epochs}", unit="img",
                   disable=True if rank else None, leave=False)
        totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of losses * B, images)
        t_epoch = time.perf_counter()
        for x, mask, unreadable in loader:
            bad.update(unreadable)
            x, mask = to_unit(x.to(device, non_blocking=True)), mask.to(device, non_blocking=True)
            with autocast(device):
                recon = ddp(apply_mask(x, mask, args.patch_size))           # (B, 3, S, S)
            # An all-unreadable batch still steps (with zero gradient), to keep DDP ranks in step.
            loss = F.mse_loss(recon.float(), x) if len(x) else recon.sum() * 0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            totals += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64, device=device)
            bar.update(len(x))
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if max_steps is not None and step >= max_steps:
                break
        bar.close()
        if world > 1:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - t_epoch
        seen_total += int(totals[1])
        loop_seconds += seconds
        if totals[1] == 0:
            raise UsageError(f"no readable images in the training split of {args.data!r} "
                             f"({len(sets['train'])} files, all unreadable)")
        val_loss = evaluate(model, sets["val"], args, device, rank, world, bad)
        rows.append({"epoch": epoch, "step": step, "train_loss": (totals[0] / totals[1]).item(),
                     "val_loss": val_loss, "images_per_s": totals[1].item() / seconds,
                     "seconds": time.perf_counter() - t0})
        say(f"epoch {epoch}/{n_epochs}  step {step}  train {rows[-1]['train_loss']:.5f}  val {val_loss:.5f}  "
            f"{rows[-1]['images_per_s']:.1f} images/s  {rows[-1]['seconds']:.1f}s")
        if rank == 0:
            save_grid(model, sets["val"], args, device, os.path.join(run_dir, f"recon_epoch{epoch:03d}.png"))
    train_seconds = time.perf_counter() - t0
    if not rows:  # --epochs 0: measure the untrained model
        rows.append({"epoch": 0, "step": 0, "train_loss": float("nan"),
                     "val_loss": evaluate(model, sets["val"], args, device, rank, world, bad),
                     "images_per_s": float("nan"), "seconds": 0.0})
    test_loss = evaluate(model, sets["test"], args, device, rank, world, bad)
    n_bad = report_unreadable(bad, world)
    if rank == 0:
        metrics.update({"test_loss": test_loss, "test_split": data_info["test_split"],
                        "val_loss": rows[-1]["val_loss"], "train_loss": rows[-1]["train_loss"],
                        "steps": step, "epochs_run": len([r for r in rows if r["epoch"] > 0]),
                        "parameters": n_params, "codebook_change": codebook_change(model, initial_codebook),
                        "images_per_s": seen_total / loop_seconds if step else None,  # training steps only
                        "seconds": train_seconds, "unreadable_images": n_bad})
        checkpoint = {"script": PROG, "model_args": model_args,
                      "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                      "initial_codebook": initial_codebook, "config": config}
        write_atomic(os.path.join(run_dir, "model.pt"), lambda tmp: torch.save(checkpoint, tmp))

        def write_losses(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["epoch", "step", "train_loss", "val_loss",
                                                       "images_per_s", "seconds"])
                writer.writeheader()
                writer.writerows(rows)
        write_atomic(os.path.join(run_dir, "losses.csv"), write_losses)
        plot_losses(rows, f"{name} on {args.data}, {args.image_size} px", os.path.join(run_dir, "loss.png"))
        write_json(os.path.join(run_dir, "metrics.json"), metrics)
        line = f"test_loss {test_loss:.6g}"
        if ckpt:
            line = (f"source {ckpt['model_args']['bottleneck']} test_loss {metrics['source_test_loss']:.6g}  "
                    f"swapped, before training {metrics['test_loss_before_training']:.6g}  after {step} steps "
                    + line)
        change = metrics["codebook_change"]
        say(f"{line}  parameters {n_params['model']} (bottleneck {n_params['bottleneck']}, trainable "
            f"{n_params['trainable']})" + (f"  codebook change {change['l2']:.4g}" if change else "") +
            f"  {train_seconds:.1f}s\n-> {run_dir}")


def report_unreadable(bad, world):
    """The number of distinct unreadable files any rank met; a one-line warning when there are some."""
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, sorted(bad))
        bad = set().union(*map(set, gathered))
    if bad and int(os.environ.get("RANK", 0)) == 0:
        print(f"{PROG}: warning: skipped {len(bad)} unreadable image(s), e.g. {sorted(bad)[0]}", file=sys.stderr)
    return len(bad)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.list:
            list_bottlenecks(dict(model_options(), **args.model_args))
            return
        run(args)
    except UsageError as e:
        fail(e)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
