"""What vqvae_imagenet.py's runs are made of, off its reading path: the options, defined once, and the
run directory's files.

    cfg, what = parse(argv)                  # an ImageConfig from the command line (--help: every option)
    cfg, saved, checkpoint = resolve(cfg)    # every default filled, every value checked, nothing written yet
    record(cfg, ...)                         # config.json: cfg written out, with what the run found
    with ImageRun(record, out_dir, ranks, resume=RUN) as run: ...   # runs.Training's life, the image run's files

The options are the fields of one dataclass, ImageConfig: the parser and --help are made from it,
config.json writes it out and --resume reads it back. The model's options are models/vqvae.py's
constructor arguments (Model's signature, its option_help and choices). Why a top-level file: the
image script's options and run files are its own (train.py's are config.py's and runs.Training's),
and a reader of vqvae_imagenet.py meets them here in one place.
"""
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, fields, replace

import torch
from tqdm import tqdm

import models
import runs
from config import option
from distributed import rank, world_size
from models.vqvae import BOTTLENECKS, Model
from runs import UsageError

PROG = "vqvae_imagenet.py"
WORKERS = min(8, os.cpu_count() or 1)
# The original's setting (MinVQVAE fe3d527); a run, or a swap's source run, gives its own instead.
HELD = {"image_size": 256, "patch_size": 32, "mask_ratio": 0.5}
PROTOCOL = ("pixels", "mask_count", "eval_masks", "resize", "val_from", "precision")
# Runs written before these options existed did what these choices do.
LEGACY = {"pixels": "signed", "mask_count": "exact", "eval_masks": "fixed", "resize": "crop", "val_from": "val",
          "precision": "bf16", "accumulate": 1}
LEGACY_MODEL = {"residual": "identity", "decoder": "mirror"}
RESUMED = ("image_size", "patch_size", "mask_ratio", "batch_size", "accumulate", "lr", "weight_decay", "seed",
           "train_only", *PROTOCOL)  # what --resume takes from the run
RESUME_TAKES = ("epochs", "max_steps", "device", "workers", "data", "out_dir")  # what a --resume command may change
MAX_EPOCHS = 10 ** 9


def _choice(default, help, choices, group=None):
    return option(default, f"{help} (default {default})", choices=choices, group=group)


@dataclass
class ImageConfig:
    """One image run: what vqvae_imagenet.py's options say (None: decided by resolve())."""
    model: str = option("vqvae", f"the bottleneck: {', '.join(BOTTLENECKS)} (default vqvae; --list compares them)",
                        choices=BOTTLENECKS)
    data: str = option(None, "'sample' (random crops of one photograph), an ImageNet tree (train/, val/[, test/]) or "
                       "any folder of images (default sample; with --resume, --eval or --swap_ffn_with_vq: the run's)")
    image_size: int = option(None, "side of the square images in pixels (default 256, or the run's)", type=int)
    patch_size: int = option(None, "side of the square patches the mask zeroes (default 32, or the run's)", type=int)
    mask_ratio: float = option(None, "probability of a patch being zeroed (with --mask_count exact: the fraction "
                               "of patches) (default 0.5, or the run's)", type=runs.finite)
    epochs: int = option(None, "passes over the training images (default 10; with --resume: the total to reach, "
                         "default the run's; after --swap_ffn_with_vq: default as many as --max_steps needs)", type=int)
    max_steps: int = option(None, "stop at this many optimizer steps in all, counting a resumed run's earlier ones "
                            "(default: no limit; after --swap_ffn_with_vq: the fine-tuning steps, default 0)", type=int)
    batch_size: int = option(256, "images per batch in each process (default 256, the log's per GPU)", type=int)
    accumulate: int = option(1, "batches per optimizer step (default 1; the log's global batch 1024 is "
                             "--accumulate 4 on one device)", type=int)
    lr: float = option(3e-4, "AdamW learning rate (default 3e-4)", type=runs.finite)
    weight_decay: float = option(0.01, "AdamW weight decay (default 0.01, torch's)", type=runs.finite)
    workers: int = option(WORKERS, f"DataLoader worker processes (default min(8, cores): {WORKERS} here)", type=int)
    seed: int = option(0, "seeds the weights, the codebook, the crops, the masks and the shuffling (default 0)",
                       type=runs.seed)
    device: str = option("auto", "auto (cuda where there is one, else cpu), cpu or cuda (default auto)",
                         choices=("auto", "cpu", "cuda"))
    out_dir: str = option("runs", "run directories go to OUT_DIR/vqvae/{model}/ (default runs)", run=False)
    train_only: str = _choice("all", "ln: train only the swapped-in quantizer's LayerNorm (with --swap_ffn_with_vq)",
                              ("all", "ln"))
    pixels: str = _choice("unit", "unit: pixels in [0, 1], a masked patch is black; signed: [-1, 1], mid-grey "
                          "(losses 4x the unit ones)", ("unit", "signed"), "protocol")
    mask_count: str = _choice("bernoulli", "bernoulli: each patch masked with probability --mask_ratio; exact: "
                              "exactly that fraction of the patches", ("bernoulli", "exact"), "protocol")
    eval_masks: str = _choice("fresh", "fresh: evaluation masks drawn anew each epoch (from the seed); fixed: the same "
                              "masks for every run", ("fresh", "fixed"), "protocol")
    resize: str = _choice("stretch", "stretch: each image resized to S x S, no augmentation; crop: shorter side to S, "
                          "a random crop and flip for training, the centre crop otherwise", ("stretch", "crop"),
                          "protocol")
    val_from: str = _choice("train", "train: validate on 20%% of the training images (seed 1337) and test on an "
                            "ImageNet tree's val/, or on a fixed 1/20 of a plain folder's images (at least one; "
                            "validation is then 20%% of the rest); val: validate on val/ and test on test/ (val/ "
                            "without one), or a plain folder's fixed 1/20 and another 1/20", ("train", "val"),
                            "protocol")
    precision: str = _choice("fp32", "fp32 (with 'medium' float32 matmul precision on CUDA, as the original) or "
                             "bf16 autocast on CUDA", ("fp32", "bf16"), "protocol")
    resume: str = option(None, "continue a run (or runs/vqvae/MODEL: its latest) to --epochs in total", run=False,
                         metavar="RUN", group="mode")
    eval: str = option(None, "print the val and test loss of a run (or its latest)", run=False, metavar="RUN",
                       group="mode")
    swap_ffn_with_vq: str = option(None, "an ffnae or llmffnae run, its FFN replaced by an untrained SoftQuantize "
                                   "of the same width: test loss before and after fine-tuning", metavar="RUN",
                                   group="mode")
    list: bool = option(False, "the parameters of every bottleneck", run=False, group="mode")
    model_args: dict = option(None, "models/vqvae.py's constructor arguments (--NAME VALUE)")

    def images(self):
        """data.images.Images' options: how this run reads, crops and masks its images."""
        return dict(size=self.image_size, patch_size=self.patch_size, mask_ratio=self.mask_ratio, seed=self.seed,
                    resize=self.resize, mask_count=self.mask_count, eval_masks=self.eval_masks,
                    channels=self.model_args["in_channels"])


def model_options():
    """Model's constructor arguments and their defaults, but the bottleneck (that is --model)."""
    return {k: v for k, v in models.options(Model).items() if k != "bottleneck"}


# ---------------------------------------------------------------- the command line

def parser():
    """vqvae_imagenet.py's options, from ImageConfig's fields and Model's constructor."""
    p = runs.Parser(prog=PROG, description="Train the research log's image autoencoders on masked reconstruction.")
    groups = {None: p, "protocol": p.add_argument_group("data protocol (the original's first; the second is this "
                                                        "repository's former one, docs/DEPARTURES.md)"),
              "mode": p.add_mutually_exclusive_group()}
    for f in fields(ImageConfig):
        if f.name == "model_args":
            continue
        m = f.metadata
        if f.type is bool:
            groups[m.get("group")].add_argument(f"--{f.name}", action="store_true", help=m["help"])
            continue
        kw = {k: m[k] for k in ("choices", "metavar", "type") if k in m}
        groups[m.get("group")].add_argument(f"--{f.name}", default=f.default, help=m["help"], **kw)
    group = p.add_argument_group("model options (models/vqvae.py; with --resume, --eval or a swap: the run's own)")
    for name, default in model_options().items():
        kind = runs.finite if isinstance(default, float) else type(default)
        group.add_argument(f"--{name}", type=kind, default=None, choices=Model.choices.get(name),
                           help=f"{Model.option_help[name]} (default {default})")
    return p


def parse(argv):
    """(an ImageConfig, what: "list", "eval" or "train") from the command line; a mistake is one line, exit 2."""
    p = parser()
    args = p.parse_args(argv)
    if args.resume:
        given = [a.split("=")[0] for a in argv
                 if a.startswith("--") and a.split("=")[0][2:] not in ("resume", *RESUME_TAKES)]
        if given:
            p.error(f"--resume continues a run with its own settings; drop {given[0]} "
                    f"(only {', '.join('--' + k for k in RESUME_TAKES[:-1])} may be given)")
    model_args = {k: getattr(args, k) for k in model_options() if getattr(args, k) is not None}
    cfg = ImageConfig(**{f.name: getattr(args, f.name) for f in fields(ImageConfig) if f.name != "model_args"},
                      model_args=model_args)
    return cfg, "list" if cfg.list else "eval" if cfg.eval else "train"


# ---------------------------------------------------------------- every value checked, before anything is written

def resolve(cfg):
    """(cfg with every default filled and every value checked, saved, checkpoint): with --resume,
    saved is the run ({"dir", "config", "rows"}) and cfg its settings; with --swap_ffn_with_vq or
    --eval, checkpoint is the run's model.pt (with its config). A mistake is a UsageError."""
    saved = checkpoint = None
    if cfg.resume:
        saved = read_resume(cfg.resume)
        held = saved["config"]
        cfg = replace(cfg, resume=saved["dir"], epochs=cfg.epochs if cfg.epochs is not None else held["epochs"],
                      **{k: held.get(k, LEGACY.get(k)) for k in RESUMED})
    elif cfg.swap_ffn_with_vq or cfg.eval:
        checkpoint = load_image_run(cfg.eval or cfg.swap_ffn_with_vq, "--eval" if cfg.eval else "--swap_ffn_with_vq")
        held = checkpoint["config"]  # a swap fine-tunes on its source's images too
        if cfg.eval:  # the run's own protocol
            cfg = replace(cfg, eval=checkpoint["path"], seed=held.get("seed", cfg.seed),
                          **{k: held.get(k, LEGACY[k]) for k in PROTOCOL})
        else:
            cfg = replace(cfg, swap_ffn_with_vq=checkpoint["path"])
    else:
        held = None
    cfg = replace(cfg, data=cfg.data or (held or {}).get("data", "sample"),
                  **{k: getattr(cfg, k) if getattr(cfg, k) is not None else (held or {}).get(k, HELD[k]) for k in HELD})
    if held and cfg.model_args:
        raise UsageError(f"--{next(iter(cfg.model_args))}: the model's options come from the run")
    if cfg.swap_ffn_with_vq:
        model_args = {**LEGACY_MODEL, **held["model_args"], "bottleneck": "vqvae"}
    elif held:
        model_args = {**LEGACY_MODEL, **held["model_args"]}
    else:
        model_args = {**model_options(), **cfg.model_args, "bottleneck": cfg.model}
    cfg = replace(cfg, model=model_args["bottleneck"], model_args=model_args)
    check(cfg, saved)
    if cfg.swap_ffn_with_vq and checkpoint["model_args"]["bottleneck"] not in ("ffnae", "llmffnae"):
        raise UsageError(f"--swap_ffn_with_vq {checkpoint['path']!r} holds bottleneck "
                         f"{checkpoint['model_args']['bottleneck']!r}; it needs a run of ffnae or llmffnae")
    if not cfg.eval and rank() == 0:  # the rank that writes the run
        runs.check_writable(os.path.join(cfg.out_dir, "vqvae"), f"--out_dir {cfg.out_dir!r}")
    return cfg, saved, checkpoint


def check(cfg, saved):
    """A UsageError naming the first option whose value cannot run, with the values that can."""
    model_args = cfg.model_args
    check_model(model_args, given=not (saved or cfg.eval or cfg.swap_ffn_with_vq))
    down = 2 ** (model_args["scale_factor"] + 1)
    if cfg.patch_size < 1 or cfg.patch_size % down:
        raise UsageError(f"--patch_size {cfg.patch_size}: must be a positive multiple of {down}, the model's "
                         f"downsampling (e.g. {4 * down}, {8 * down})")
    sizes = f"{cfg.patch_size}, {2 * cfg.patch_size}, ..., {8 * cfg.patch_size}, ..."
    if cfg.image_size < 1:
        raise UsageError(f"--image_size {cfg.image_size}: must be positive, a multiple of --patch_size "
                         f"{cfg.patch_size}; choose one of {sizes}")
    if cfg.image_size < cfg.patch_size or cfg.image_size % cfg.patch_size:
        raise UsageError(f"--image_size {cfg.image_size} is not a multiple of --patch_size {cfg.patch_size}; "
                         f"choose one of {sizes}")
    if not 0 <= cfg.mask_ratio <= 1:
        raise UsageError(f"--mask_ratio {cfg.mask_ratio}: must be between 0 and 1")
    for name, low in (("batch_size", 1), ("accumulate", 1), ("epochs", 0), ("workers", 0), ("max_steps", 0)):
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise UsageError(f"--{name} {value}: must be >= {low}")
    if (cfg.epochs or 0) > MAX_EPOCHS:
        raise UsageError(f"--epochs {cfg.epochs}: at most {MAX_EPOCHS:,} (Ctrl-C stops a run at any epoch, "
                         f"and --resume continues it)")
    if cfg.lr <= 0:
        raise UsageError(f"--lr {cfg.lr}: must be > 0")
    if cfg.weight_decay < 0:
        raise UsageError(f"--weight_decay {cfg.weight_decay}: must be >= 0")
    if cfg.train_only == "ln" and not (cfg.swap_ffn_with_vq or cfg.resume):
        raise UsageError("--train_only ln fine-tunes the LayerNorm of a swapped-in quantizer; "
                         "add --swap_ffn_with_vq RUN")
    if saved:
        check_resume(cfg, saved)
    runs.pick_device(cfg.device)


def check_model(model_args, given=True):
    """The model's options as the constructor can take them (given: typed by the user, else a run's)."""
    limits = {"in_channels": None, "hidden": 1, "res_channels": 1, "n_res_blocks": 0, "embed_dim": 1, "n_embed": 1,
              "scale_factor": 0}
    for name, low in limits.items():
        value = model_args[name]
        if name == "in_channels" and value not in (1, 3):
            raise UsageError(f"--in_channels {value}: choose 1 (the images read as grayscale) or 3 (RGB)")
        if low is not None and value < low:
            raise UsageError(f"--{name} {value}: must be a whole number >= {low}")
    if not 0 <= model_args["dropout"] < 1:
        raise UsageError(f"--dropout {model_args['dropout']}: must be at least 0 and below 1")
    hidden, scale = model_args["hidden"], model_args["scale_factor"]
    if scale > 16 or hidden % 2 ** scale:
        ok = [2 ** scale * k for k in (1, 2, 4)] if scale <= 16 else []
        raise UsageError(f"--hidden {hidden} --scale_factor {scale}: hidden must be a multiple of 2 ** scale_factor"
                         + (f", e.g. {', '.join(map(str, ok))}" if ok else "; choose a scale_factor of at most 16"))
    if given:
        build(model_args=model_args)  # anything else the constructor refuses, now


def check_resume(cfg, saved):
    """--resume: more epochs (and steps) than the run has, on as many processes as trained it."""
    done = saved["rows"][-1]
    if cfg.epochs <= done["epoch"]:
        raise UsageError(f"--resume {saved['dir']}: it has run {done['epoch']} epochs already; "
                         f"give --epochs larger than that")
    if cfg.max_steps is not None and cfg.max_steps <= done["step"]:
        raise UsageError(f"--resume {saved['dir']}: it has run {done['step']} steps already; give --max_steps "
                         f"larger than that (the total to reach), or leave it out")
    trained = saved["config"].get("world_size", 1)
    if trained != world_size():
        raise UsageError(f"--resume {saved['dir']}: the run was trained by {trained} process(es); resume it with "
                         f"as many (this is {world_size()})")


def planned_epochs(cfg, steps_per_epoch):
    """The epochs a run is to reach: --epochs (with --resume, the total), no more than --max_steps
    needs; after a swap, as many as --max_steps needs where --epochs is not given (none without it)."""
    if cfg.resume:
        return cfg.epochs
    needed = math.ceil(cfg.max_steps / steps_per_epoch) if cfg.max_steps is not None else None
    if cfg.swap_ffn_with_vq and cfg.epochs is None:
        return needed or 0
    epochs = cfg.epochs if cfg.epochs is not None else 10
    return epochs if needed is None else min(epochs, needed)


# ---------------------------------------------------------------- runs read back

def load_image_run(path, option):
    """The model.pt of a complete vqvae_imagenet.py run (a run directory, its model.pt, or
    runs/vqvae/MODEL: its latest run), with its config and path; otherwise a one-line UsageError."""
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


def read_resume(path):
    """--resume: the run directory, its config and its losses (last.pt is runs.Training's to read)."""
    try:
        run_dir = runs.latest_run(path, weights="last.pt")
        config = runs.read_json(os.path.join(run_dir, "config.json"))
        rows = runs.read_losses(os.path.join(run_dir, "losses.csv"))
    except runs.RunError as e:
        raise UsageError(f"--resume: {e}") from None
    if "image_size" not in config or "step" not in rows[0]:
        raise UsageError(f"--resume {run_dir!r} is not a {PROG} run; give a run from runs/vqvae/")
    if "run_name" not in config:
        raise UsageError(f"--resume {run_dir!r}: written by an older {PROG}, whose last.pt lacks what --resume "
                         f"reads now; evaluate it with --eval, or train a new run")
    for row in rows:
        row["step"] = int(row["step"])
    return {"dir": run_dir, "config": config, "rows": rows}


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
    model_args = {**LEGACY_MODEL, **ckpt["model_args"], "bottleneck": "vqvae"}
    torch.manual_seed(seed)
    model = Model(**model_args)
    kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("bottleneck.") for k in missing), (missing, unexpected)
    return model


def count(params):
    return sum(p.numel() for p in params)


def codebook_change(model, initial):
    """How far the codebook moved from its initialisation, or None without a codebook."""
    if initial is None:
        return None
    diff = model.bottleneck.codebook.detach().float().cpu() - initial
    return {"l2": float(diff.norm()), "max_abs": float(diff.abs().max()),
            "relative": float(diff.norm() / initial.norm())}


# ---------------------------------------------------------------- the run directory

def record(cfg, saved, source, data_info, sets, ranks, model, params, epochs):
    """config.json: the run's options (ImageConfig's fields, resolved) and what the run found; with
    --resume, the run's own, with the epochs (and steps) to reach and the command added."""
    if saved:
        resumed = saved["config"].get("resumed", []) + [[PROG] + sys.argv[1:]]
        return dict(saved["config"], epochs=epochs, max_steps=cfg.max_steps, resumed=resumed)
    options = {f.name: getattr(cfg, f.name) for f in fields(ImageConfig) if f.metadata["run"]}
    parameters = {"model": count(model.parameters()), "bottleneck": count(model.bottleneck.parameters()),
                  "trainable": count(params)}
    swap = {"source_test_loss": source["test_loss"]} if source else {}
    return {**options, "run_name": run_name(cfg, source), "epochs": epochs, **swap, "data_info": data_info,
            "images": {s: len(d) for s, d in sets.items()}, "world_size": ranks.world,
            "global_batch_size": cfg.batch_size * ranks.world * cfg.accumulate, "device": ranks.device.type,
            "parameters": parameters, "versions": {"python": platform.python_version(),
                                                   "torch": str(torch.version.__version__)},
            "command": [PROG] + sys.argv[1:]}


def run_name(cfg, source=None):
    """The run's folder under OUT_DIR/vqvae/: the bottleneck, or after a swap {source's}_swapvq[_ln]."""
    if source is None:
        return cfg.model
    return f"{source['model_args']['bottleneck']}_swapvq" + ("_ln" if cfg.train_only == "ln" else "")


def say(line):
    """Print a line of progress beside tqdm's bar, flushed: with stdout a file (> log.txt, where
    the bar is off) each epoch's line appears when the epoch ends, not when the process does."""
    tqdm.write(line)
    sys.stdout.flush()


class ImageRun(runs.Training):
    """runs.Training's life (a hidden name, Ctrl-C, --resume, threads) with an image run's files:
    losses.csv (epoch, step, train_loss, val_loss, images_per_s, seconds), model.pt (the last epoch,
    as the log kept; it rebuilds itself), last.pt (with AdamW's state, every rank's random state and
    the step), config.json and loss.png. Two things differ from train.py's runs: the directory gets
    its name when its first epoch is saved (an ImageNet epoch takes hours: a killed process keeps the
    epochs it finished), and end_epoch is only called for a whole epoch (a Ctrl-C stops the loop
    before the epoch it cut short ends, so --resume trains that epoch again, bit for bit). Under
    torchrun every rank follows the run and rank 0 alone writes it."""

    def __init__(self, record, out_dir, ranks, resume=None):
        super().__init__(record, None, os.path.join(out_dir, "vqvae"), resume=resume, writes=ranks.rank == 0)
        self.ranks = ranks

    @property
    def stopped(self):
        return self.ranks.any(bool(self._stop))  # the ranks agree: a Ctrl-C reaches them at different steps

    def __enter__(self):
        super().__enter__()
        for row in self.rows:  # losses.csv read back: whole steps, and no `complete` column (every epoch is)
            row.pop("complete", None)
            row["step"] = int(row["step"])
        n, c = self.config["parameters"], self.config
        if self.writes:
            say(f"{c['run_name']}: {n['model']} parameters (bottleneck {n['bottleneck']}), {n['trainable']} trainable; "
                f"{c['images']['train']} training images; {c['world_size']} process(es) on {c['device']}"
                + (f"; resuming {self.dir} at epoch {self.resumed_from + 1}" if self.rows else ""))
        return self

    def restore(self, model, optimizer, random_state):
        """--resume: last.pt's weights, optimizer and every rank's random state; either way, the
        codebook the model started with (codebook_change)."""
        super().restore(model, optimizer, random_state)
        codebook = getattr(model.bottleneck, "codebook", None)
        self.initial_codebook = (self.last["initial_codebook"] if self.resumed_from is not None else
                                 codebook.detach().float().cpu().clone() if codebook is not None else None)
        self.initial = None  # model.pt is the last epoch, never the untrained model in its place

    def path(self, name):
        """Where a file of this run goes; None on a rank that does not write."""
        return os.path.join(self.dir, name) if self.writes else None

    def end_epoch(self, model, epoch, step, train_loss, val_loss, images_per_s):
        """Record a whole epoch, write the run as it stands (named, from the first), then say so."""
        row = {"epoch": epoch, "step": step, "train_loss": train_loss, "val_loss": val_loss,
               "images_per_s": images_per_s, "seconds": time.perf_counter() - self.t0}
        self.rows.append(row)
        self.best = {"epoch": epoch, "score": -epoch, "state": None}  # the log kept the last epoch
        self.random_states = self.shuffle.get_state()  # every rank's, where the next epoch starts
        self.write(model, interrupted=True)  # "interrupted" until save() says how it ended
        if self.writes and epoch > 0:
            say(f"epoch {epoch}/{self.config['epochs']}  step {step}  train {train_loss:.5f}  val {val_loss:.5f}  "
                f"{images_per_s:.1f} images/s  {row['seconds']:.1f}s")

    def write(self, model, interrupted, plot=True):
        """model.pt, last.pt, losses.csv, config.json and loss.png, each whole; the run is named."""
        if not self.writes:
            return
        epoch, name, d = self.rows[-1]["epoch"], self.config["run_name"], self.dir
        weights = {"script": PROG, "model": self.config["model"], "model_args": self.config["model_args"],
                   "epoch": epoch, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "initial_codebook": self.initial_codebook}
        last = {**weights, "step": self.rows[-1]["step"], "optimizer": self.optimizer.state_dict(),
                "shuffle": self.random_states, "best_epoch": epoch, "best_score": -epoch}
        config = {**self.config, "interrupted": interrupted}
        with self.writing():
            runs.write_atomic(os.path.join(d, "model.pt"), lambda tmp: torch.save({**weights, "config": config}, tmp))
            runs.write_atomic(os.path.join(d, "last.pt"), lambda tmp: torch.save(last, tmp))
            runs.write_json(os.path.join(d, "config.json"), config)
            runs.write_csv(os.path.join(d, "losses.csv"), list(self.rows[0]), [list(r.values()) for r in self.rows])
            trained = [r for r in self.rows if r["epoch"] > 0]
            runs.plot_curves({"train loss": ([r["epoch"] for r in trained], [r["train_loss"] for r in trained]),
                              "validation loss": ([r["epoch"] for r in self.rows], [r["val_loss"] for r in self.rows])},
                             f"{name} on {self.config['data']}, {self.config['image_size']} px",
                             "masked-reconstruction MSE", os.path.join(d, "loss.png"), log_y=False)
            self.saved = True
            if self.partial:
                self.dir, self.partial = runs.finish_run_dir(self.partial), None
