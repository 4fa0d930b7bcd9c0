"""Windows and splits: a series normalised, cut into parts, and turned into window tensors.

Two protocols (--split). chrono: the series is cut in time into train, validation and test
parts; the statistics come from the training part; the test part is never read here. random:
the research log's, whole-series statistics and a random split of overlapping windows.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from runs import DataError

SPLITS = ("chrono", "random")  # chrono: train/validation/test in time; random: the log's
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test (TSLib's convention)
SPLIT_SEED = 42  # the log's random_split generator seed


def normalise(values, mean=None, std=None):
    """Z-score. Without mean and std, the series' own statistics (the log's protocol).
    Returns (z, mean, std)."""
    if mean is None:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = float(values.mean()), float(values.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise DataError(f"the series' values are too large to normalise (the largest in magnitude is "
                        f"{np.abs(values).max():g}); rescale the column")
    if std == 0.0:
        low, high = float(values.min()), float(values.max())
        if low != high:  # the squares of differences below 1e-154 underflow to 0 in float64
            scale = -math.floor(math.log10(max(abs(low), abs(high))))
            rescale = f", e.g. multiply it by 1e{scale}" if scale > 0 else ""
            raise DataError(f"the values (of the series or its training part) range from {low:g} to {high:g}, too "
                            f"small for float64 to measure their spread (their std underflows to 0); rescale "
                            f"the column{rescale}")
        raise DataError(f"the series (or its training part) is constant at {low:g} (std 0); nothing to forecast")
    return (values - mean) / std, mean, std


def check_time_steps(n_values, time_steps, what="the series"):
    """A one-line DataError unless n_values values (of `what`) give windows of time_steps values."""
    if time_steps < 1:
        raise DataError(f"time_steps must be at least 1, got {time_steps}")
    if n_values < 3:  # the shortest window, time_steps 1, needs 3 values: two windows and their targets
        raise DataError(f"{what} has {n_values} value" + ("s" if n_values != 1 else "") + f"; time_steps "
                        f"{time_steps} needs at least {time_steps + 2}, and even time_steps 1 needs 3: give a "
                        f"series of at least 3 values")
    if n_values < time_steps + 2:
        raise DataError(f"{what} has {n_values} values; time_steps {time_steps} needs at least "
                        f"{time_steps + 2} (choose time_steps <= {n_values - 2})")


class Windows:
    """Windows of one series, read out of it per batch: memory grows with N, not N x T.

    Row i is series[s : s + length] as (length, 1), s = starts[i] + offset, or with length None the
    one value series[s] as (1,). Indexing with a slice, an integer or an integer tensor (a batch's
    order) gathers just those rows from a strided view of the series (unfold): the same numbers a
    materialised (n, length, 1) tensor would give, batch by batch; `[rows, position]` reads one
    position of each, (B, 1). `[:]` is that tensor, for what needs every window at once (least
    squares). Windows and targets share one starts tensor."""

    def __init__(self, series, starts, length, offset=0):
        self.series, self.starts, self.length, self.offset = series, starts, length, offset  # (N,) float32; (n,) int64

    def __len__(self):
        return len(self.starts)

    @property
    def shape(self):
        return (len(self), self.length, 1) if self.length else (len(self), 1)

    def __getitem__(self, key):
        one = isinstance(key, tuple) and len(key) == 2 and key[0] is not Ellipsis and isinstance(key[1], int)
        if one and self.length:                                                  # one position of each row: (B, 1)
            position = range(self.length)[key[1]]
            return self.series[self.starts[key[0]] + self.offset + position].unsqueeze(-1)
        if isinstance(key, tuple) or key is Ellipsis:  # numpy-style: of the materialised windows
            return self[:][key]
        rows = self.starts[key] + self.offset
        if self.length is None:
            return self.series[rows].unsqueeze(-1)                              # (B, 1)
        return self.series.unfold(0, self.length, 1)[rows].unsqueeze(-1)       # (B, T, 1)

    def to(self, device):
        return Windows(self.series.to(device), self.starts.to(device), self.length, self.offset)

    def cpu(self):
        return self.to("cpu")


def make_windows(z, time_steps, target, starts=None):
    """Windows of time_steps values and their targets, as Windows read out of z.

    z: (N,) normalised series; starts: which windows (default all N - T, in order: at least one; a
    validation part of one value gives one, the callers ask for two where they train). Returns x
    (n, T, 1) and y:
    - target "aligned": the next value at every position, y (n, T, 1);
    - target "last": only the value after the window, y (n, 1).
    """
    if len(z) < time_steps + 1:  # not one window
        check_time_steps(len(z), time_steps)
    z = torch.as_tensor(z, dtype=torch.float32)
    starts = torch.arange(len(z) - time_steps) if starts is None else torch.as_tensor(starts)
    x = Windows(z, starts, time_steps)                      # (n, T, 1)
    if target == "aligned":
        y = Windows(z, starts, time_steps, offset=1)        # (n, T, 1)
    elif target == "last":
        y = Windows(z, starts, None, offset=time_steps)     # (n, 1)
    else:
        raise ValueError(f"unknown target layout {target!r}")
    return x, y


def boundaries(n_values, fractions=DEFAULT_FRACTIONS):
    """(train_end, val_end): values [0, train_end) train, [train_end, val_end) validate,
    [val_end, n_values) test. fractions: (train, validation, test), summing to 1."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"fractions {','.join(map(str, fractions))}: expected three positive numbers "
                        f"(train, validation, test) that sum to 1, e.g. 0.7,0.1,0.2")
    train_end = round(n_values * fractions[0])
    val_end = round(n_values * (fractions[0] + fractions[1]))
    return train_end, val_end


def parts(n_values, fractions=None, field_split=None):
    """(train_end, val_end, test_end) of a series of n_values under chrono: values [0, train_end)
    train, [train_end, val_end) validate, [val_end, test_end) test. fractions (train, validation,
    test) cut the whole series (test_end = n_values); without them, a benchmark series' field_split
    (data.FIELD_SPLITS), else DEFAULT_FRACTIONS."""
    if fractions is None and field_split is not None:
        if n_values < field_split[2]:
            raise DataError(f"the series has {n_values} values, and the field's split of it needs "
                            f"{field_split[2]} (train {field_split[0]}, validation {field_split[1] - field_split[0]}, "
                            f"test {field_split[2] - field_split[1]}); give --val_fraction and --test_fraction "
                            f"to cut it by fractions instead")
        return tuple(field_split)
    return (*boundaries(n_values, fractions or DEFAULT_FRACTIONS), n_values)


@dataclass
class Split:
    """A series cut for training: normalised window tensors, the statistics used, the parts."""
    z: np.ndarray            # (N,) the whole series, normalised with (mean, std)
    mean: float
    std: float
    x_train: "Windows"       # (n_train, T, 1), read out of the series per batch
    y_train: "Windows"       # (n_train, T, 1) aligned, (n_train, 1) last
    x_val: "Windows"
    y_val: "Windows"
    train_end: int           # value indices: [0, train_end) train, [train_end, val_end) validation,
    val_end: int             # [val_end, test_end) test; under the log's protocol val_end == N (no test part)
    test_end: int            # N, or less where the field's split leaves the last values unused


def split_series(values, time_steps, target, split="chrono", fractions=DEFAULT_FRACTIONS, field_split=None):
    """Windows for training and validation under one of two protocols.

    chrono (the default): values are cut in time into train, validation and test parts
    (fractions, or a benchmark series' field_split where fractions is None: parts()); mean and std
    come from the training part alone. A training window (inputs and
    targets) lies inside the training part; a validation window's target value lies in the
    validation part and its input may look back into the training part. The test part is not
    read here at all: it is left to forecast.py's backtest.
    random (the log's protocol): whole-series statistics, every window, torch's random_split
    with generator seed 42 into int(0.8 n) training windows and the rest.
    """
    if split == "chrono":  # the limits are the parts'
        check_parts(len(values), time_steps, fractions, field_split)
    check_time_steps(len(values), time_steps)
    if split == "random":
        z, mean, std = normalise(values)
        train_idx, val_idx = split_indices(len(z) - time_steps, "random")
        return Split(z, mean, std, *make_windows(z, time_steps, target, train_idx),
                     *make_windows(z, time_steps, target, val_idx), len(z), len(z), len(z))
    if split != "chrono":
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    train_end, val_end, test_end = parts(len(values), fractions, field_split)
    _, mean, std = normalise(values[:train_end])
    z = (values - mean) / std
    x_train, y_train = make_windows(z[:train_end], time_steps, target)
    x_val, y_val = make_windows(z[max(0, train_end - time_steps):val_end], time_steps, target)
    return Split(z, mean, std, x_train, y_train, x_val, y_val, train_end, val_end, test_end)


def check_parts(n_values, time_steps, fractions, field_split=None):
    """A one-line DataError unless n_values cut into parts (parts(): by fractions, train, validation,
    test, or a benchmark series' field split) give windows of time_steps values: a training part of
    time_steps + 2 values (two windows), one value to validate and one to test. The message names a
    setting that works (--time_steps and, where the fractions leave a part empty, --val_fraction and
    --test_fraction), or says that none does."""
    def sizes(f, field=None):
        train_end, val_end, test_end = parts(n_values, f, field)
        return train_end, val_end - train_end, test_end - val_end
    train, val, test = sizes(fractions, field_split)
    if train >= time_steps + 2 and val >= 1 and test >= 1:
        return
    if train >= 3 and val >= 1 and test >= 1:  # only the window is too long
        raise DataError(f"the training part has {train} values; time_steps {time_steps} needs at least "
                        f"{time_steps + 2} (choose time_steps <= {train - 2})")
    fractions = fractions or DEFAULT_FRACTIONS
    shape = (f"the series has {n_values} values, cut by the fractions {fractions[0]:g}/{fractions[1]:g}/"
             f"{fractions[2]:g} into {train} to train on, {val} to validate and {test} to test")
    for step in (5, 1):  # round fractions first (0.2, not 0.21)
        working = [(v / 100, t / 100) for v in range(step, 50, step) for t in range(step, 50, step)
                   if min(sizes((1 - v / 100 - t / 100, v / 100, t / 100)) - np.array([3, 1, 1])) >= 0]
        if working:
            break
    if not working:
        raise DataError(f"{shape}; --split chrono needs at least 3, 1 and 1 (5 values), so no --time_steps and no "
                        f"fractions work for it: give a longer series")
    # the fractions that leave the most to train on, then those nearest the ones given
    v, t = max(working, key=lambda f: (sizes((1 - f[0] - f[1], *f))[0],
                                       -abs(f[0] - fractions[1]) - abs(f[1] - fractions[2])))
    longest = sizes((1 - v - t, v, t))[0] - 2
    window = f" --time_steps {longest}" + (" (or less)" if longest > 1 else "") if time_steps > longest else ""
    raise DataError(f"{shape}; it needs time_steps + 2 values to train on (two windows) and one in each other part: "
                    f"choose --val_fraction {v:g} --test_fraction {t:g}{window}")


def split_indices(n_windows, split="random"):
    """The log's random split of window indices: torch's random_split with generator seed 42
    into int(0.8 n) training windows (as the log's code computes it) and the rest. Windows
    overlap, so a validation window shares all but one value with its training neighbours."""
    if split != "random":
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    n_train = min(int(n_windows * 0.8), n_windows - 1)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    train, val = torch.utils.data.random_split(range(n_windows), [n_train, n_windows - n_train], generator=g)
    return torch.tensor(train.indices), torch.tensor(val.indices)
