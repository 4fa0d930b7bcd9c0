"""Images for the autoencoders of vqvae_imagenet.py: folders read, split, masked and turned into pixels.

    image_sets(data, val_from, ...) -> ({split: Images}, info)   the train, val and test images
    Images[i] -> (uint8 (C, S, S), bool (S/p, S/p) patch mask), or (None, path) for a file Pillow cannot read
    apply_mask(x, mask, p), to_pixels(x, pixels), from_pixels(x, pixels)

A data set is 'sample' (random crops of the one photograph among matplotlib's sample data), an
ImageNet tree (train/ and val/, with class folders or flat, and perhaps test/) or any other folder of
images (searched recursively). Its splits (load_splits), by --val_from:
- train (the original's): validation is 20% of the training images (torch's random_split, seed
  1337); a tree tests on val/; a plain folder first sets aside a fixed 1/20 of its images (at least
  one, the same for every run) as its test split.
- val (this repository's former protocol): a tree validates on val/ and tests on test/ (val/ where
  there is none); a plain folder gives a fixed 1/20 to validation and another 1/20 to the test.
Every mistake a user can make (no folder, no images) is a one-line DataError.
"""
import os
import random
import signal

import numpy as np
import torch
from torch.utils.data import Dataset

from runs import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SAMPLE_PHOTO = "grace_hopper.jpg"  # the one photograph among matplotlib's sample data
SAMPLE_SIZES = {"train": 512, "val": 32, "test": 32}  # random crops per split
VAL_FRACTION, VAL_SEED = 0.2, 1337  # the original's random_split of the training images
FOLDER_PART = 20  # a plain folder: 1/20 of its images is the test split (and with val_from val, 1/20 validation)
MODES = {1: "L", 3: "RGB"}  # in_channels: how Pillow reads an image (grayscale or colour)
SPLITS = ("train", "val", "test")


def image_sets(data, val_from, splits=SPLITS, **options):
    """({split: Images} of the splits asked for, a description of where each came from);
    options are Images' (size, patch_size, mask_ratio, seed, ...)."""
    files, info = load_splits(data, val_from)
    photo = info["source"] if data == "sample" else None
    return {s: Images(files[s], s, photo=photo, **options) for s in splits}, info


def list_images(folder):
    """Every image file under folder (recursively, class folders or flat), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def split_off_validation(files):
    """(train, val): the original's torch random_split of the training images, 80/20, seed 1337."""
    n_train = int(len(files) * (1 - VAL_FRACTION))
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(VAL_SEED)).tolist()
    return [files[i] for i in order[:n_train]], [files[i] for i in order[n_train:]]


def load_splits(data, val_from):
    """{"train": files, "val": files, "test": files} (files None: the sample photograph) and a
    description of where each split came from."""
    if data == "sample":
        import matplotlib.cbook
        photo = matplotlib.cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False)
        return {s: None for s in SAMPLE_SIZES}, {"source": photo, "kind": "sample: random crops of one photograph",
                                                 "test_split": "test"}
    if not os.path.isdir(data):
        what = "is a file, not a folder" if os.path.exists(data) else "no such folder"
        raise DataError(f"--data {data!r}: {what}; give an ImageNet tree (train/, val/), "
                        f"any folder of images, or 'sample'")
    exts = ", ".join(IMAGE_EXTENSIONS)
    if os.path.isdir(os.path.join(data, "train")):
        splits = {}
        for split in ("train", "val"):
            folder = os.path.join(data, split)
            if not os.path.isdir(folder):
                raise DataError(f"--data {data!r} has train/ but no {split}/; an ImageNet tree needs both")
            splits[split] = list_images(folder)
            if not splits[split]:
                raise DataError(f"no images ({exts}) in {folder!r}")
        if val_from == "train":  # the original: validate on 20% of train/, test on val/
            splits["train"], val = split_off_validation(splits["train"])
            splits["test"], splits["val"] = splits["val"], val
            return splits, {"source": data, "kind": "tree: val = 20% of train/ (seed 1337), test = val/",
                            "test_split": "val"}
        test = list_images(os.path.join(data, "test")) if os.path.isdir(os.path.join(data, "test")) else []
        splits["test"] = test or splits["val"]
        return splits, {"source": data, "kind": "tree: train/ and val/ with class folders or flat",
                        "test_split": "test" if test else "val (no test/ folder)"}
    files = list_images(data)
    if len(files) < 3:
        raise DataError(f"found {len(files)} images ({exts}) in {data!r}; need at least 3 "
                        f"(one each for train, val and test)")
    # A fixed split (not --seed's): every run of this folder tests on the same images.
    order = random.Random(0).sample(range(len(files)), len(files))
    hold = max(1, len(files) // FOLDER_PART)
    pick = lambda idx: [files[i] for i in sorted(idx)]
    if val_from == "train":
        train, val = split_off_validation(pick(order[hold:]))
        return ({"test": pick(order[:hold]), "val": val, "train": train},
                {"source": data, "kind": "folder: fixed 1/20 test, val = 20% of the rest (seed 1337)",
                 "test_split": "test"})
    return ({"test": pick(order[:hold]), "val": pick(order[hold:2 * hold]), "train": pick(order[2 * hold:])},
            {"source": data, "kind": "folder: fixed split, 1/20 val, 1/20 test", "test_split": "test"})


# ---------------------------------------------------------------- masks and pixels

def patch_mask(rng, grid, ratio, mask_count="bernoulli"):
    """(grid, grid) bool, True on masked patches: each with probability ratio (bernoulli, the
    original), or exactly round(ratio * grid^2) of them (exact)."""
    n = grid * grid
    if mask_count == "bernoulli":
        return torch.tensor([rng.random() < ratio for _ in range(n)]).view(grid, grid)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[rng.sample(range(n), round(ratio * n))] = True
    return mask.view(grid, grid)


def apply_mask(x, mask, patch_size):
    """Zero the masked patches: x (B, C, H, W), mask (B, H/p, W/p) -> (B, C, H, W)."""
    keep = ~mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)  # (B, H, W)
    return x * keep.unsqueeze(1)


def to_pixels(x, pixels="unit"):
    """uint8 (B, C, H, W) -> float in [0, 1] (unit: a zeroed patch is black, as the original's
    ToTensor) or [-1, 1] (signed: a zeroed patch is mid-grey)."""
    return x.float() / 255 if pixels == "unit" else x.float() / 127.5 - 1


def from_pixels(x, pixels="unit"):
    return (x.clamp(0, 1) * 255 if pixels == "unit" else (x.clamp(-1, 1) + 1) * 127.5).round().byte()


# ---------------------------------------------------------------- the data set

class Images(Dataset):
    """uint8 (C, S, S) images and their (S/p, S/p) patch masks; C is `channels` (1: grayscale, 3: RGB).

    Crops, flips and masks come from a random.Random keyed by (key, index); the key holds the seed
    and the epoch for training, and for evaluation the split with the seed and epoch (fresh masks,
    as the original draws them) or the split alone (fixed masks). The numbers do not depend on the
    number of workers or processes.
    """

    def __init__(self, files, split, size, patch_size, mask_ratio, seed=0, resize="stretch", mask_count="bernoulli",
                 eval_masks="fresh", channels=3, photo=None):
        self.files, self.split, self.train = files, split, split == "train"
        self.size, self.patch_size, self.mask_ratio, self.seed = size, patch_size, mask_ratio, seed
        self.resize, self.mask_count, self.eval_masks, self.mode = resize, mask_count, eval_masks, MODES[channels]
        self.epoch = 0
        self.photo = None
        if files is None:  # the sample photograph, decoded once
            from PIL import Image
            with Image.open(photo) as im:
                self.photo = im.convert(self.mode)

    def __len__(self):
        return SAMPLE_SIZES[self.split] if self.files is None else len(self.files)

    def crop_sample(self, rng):
        from PIL import Image
        w, h = self.photo.size
        side = round(rng.uniform(0.25, 1.0) * min(w, h))
        left, top = rng.randint(0, w - side), rng.randint(0, h - side)
        return self.photo.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BILINEAR)

    def load_file(self, path, rng):
        """stretch: resized to S x S (the original); crop: shorter side to S, then a centre crop
        (a random one for training)."""
        from PIL import Image
        s = self.size
        with Image.open(path) as im:
            im.draft(self.mode, (s, s))  # JPEG: decode at a reduced scale when the file is large
            im = im.convert(self.mode)
        if self.resize == "stretch":
            return im.resize((s, s), Image.BILINEAR)
        w, h = im.size
        scale = s / min(w, h)
        w, h = max(s, round(w * scale)), max(s, round(h * scale))
        im = im.resize((w, h), Image.BILINEAR)
        left, top = (rng.randint(0, w - s), rng.randint(0, h - s)) if self.train else ((w - s) // 2, (h - s) // 2)
        return im.crop((left, top, left + s, top + s))

    def __getitem__(self, i):
        if self.train:
            key = f"{self.seed}-train-{self.epoch}"
        else:
            key = f"{self.seed}-{self.split}-{self.epoch}" if self.eval_masks == "fresh" else self.split
        rng = random.Random(f"{key}-{i}")
        if self.files is None:
            im = self.crop_sample(rng)
        else:
            try:
                im = self.load_file(self.files[i], rng)
            except Exception:  # Pillow raises many types; any file it cannot decode is skipped
                return None, self.files[i]
        if self.train and self.resize == "crop" and rng.random() < 0.5:
            im = im.transpose(0)  # PIL.Image.FLIP_LEFT_RIGHT
        pixels = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())  # (S, S, 3) or, grayscale, (S, S)
        x = pixels.permute(2, 0, 1) if pixels.ndim == 3 else pixels[None]  # (C, S, S)
        return x, patch_mask(rng, self.size // self.patch_size, self.mask_ratio, self.mask_count)


def make_collate(image_size, patch_size, channels=3):
    grid = image_size // patch_size

    def collate(items):
        """(images (B, C, S, S) uint8, masks (B, g, g), unreadable paths); B may be 0."""
        good = [it for it in items if it[0] is not None]
        bad = [it[1] for it in items if it[0] is None]
        if not good:  # still a batch, so that every DDP rank takes the same steps
            return (torch.zeros(0, channels, image_size, image_size, dtype=torch.uint8),
                    torch.zeros(0, grid, grid, dtype=torch.bool), bad)
        return torch.stack([g[0] for g in good]), torch.stack([g[1] for g in good]), bad
    return collate


def ignore_ctrl_c(worker_id=None):
    """DataLoader's worker_init_fn: a worker leaves Ctrl-C to the main process, which finishes its
    step and saves (a worker that quit on it would end the step in 'worker exited unexpectedly')."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
