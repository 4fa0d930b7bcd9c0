"""Series in, normalised window tensors out.

A data set is one of
- `membrane` (default) or `goog`: real recordings shipped with matplotlib's sample data,
  so the default run needs no download;
- `y_w`, `w_y`, `4single`: the research log's formaldehyde series, read from the data
  directory (`data/`, or $VQSEQ_DATA_DIR, or --data_dir); `python data/download.py` gets them;
- a path to any CSV file, with `column` naming the value column (default: the last numeric one).

Everything a user can get wrong raises DataError with a one-line message.
"""
import csv
import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from runs import UsageError
from data.download import DATA_DIR_ENV, FILES, default_data_dir

EMBEDDED = ("membrane", "goog")
DATASETS = EMBEDDED + tuple(FILES)
SPLITS = ("chrono", "random")  # chrono: train/validation/test in time; random: the log's
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test (TSLib's convention)
SPLIT_SEED = 42  # the log's random_split generator seed
MEMBRANE_DECIMATION = 4


class DataError(UsageError):
    """A bad data set, column or window size; the message is one line meant for the user."""


@dataclass
class Series:
    name: str               # used in run names and output file names
    values: np.ndarray      # (N,) float64, original units
    time: np.ndarray        # (N,) x axis for plots: numbers, dates, or the sample index
    time_label: str
    value_label: str
    source: str             # where it came from (an absolute path, or a description)
    column: str
    sha256: str = None      # of a CSV file's bytes; None for the embedded series


def resolve_data_dir(data_dir=None):
    return data_dir or default_data_dir()


def load_series(dataset="membrane", column=None, data_dir=None, fill=None, date_format=None):
    """Load a data set by name or CSV path."""
    if dataset == "membrane":
        return _membrane(column)
    if dataset == "goog":
        return _goog(column)
    if dataset in FILES:
        path = os.path.join(resolve_data_dir(data_dir), FILES[dataset][0])
        if not os.path.isfile(path):
            raise DataError(
                f"data set {dataset!r}: {path} not found; run `python data/download.py` "
                f"(or point --data_dir / ${DATA_DIR_ENV} at a folder holding {FILES[dataset][0]})")
        return _csv(path, column, name=dataset)
    if dataset.lower().endswith(".csv") or os.path.sep in dataset:
        if not os.path.isfile(dataset):
            raise DataError(f"CSV file {dataset!r} not found")
        return _csv(dataset, column, name=os.path.splitext(os.path.basename(dataset))[0])
    raise DataError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)} "
                    f"or give a path to a .csv file")


def _sample_data(filename):
    from matplotlib import cbook
    return cbook.get_sample_data(filename, asfileobj=False)


def _membrane(column):
    if column not in (None, "potential"):
        raise DataError(f"column {column!r} not found in membrane; columns: potential")
    raw = np.fromfile(_sample_data("membrane.dat"), dtype="<f4").astype(np.float64)  # 12000 samples
    # Means of blocks of MEMBRANE_DECIMATION samples: 3000 values keep every spike's shape and
    # let the default 50-epoch run of every model finish in about two minutes on two cores.
    values = raw.reshape(-1, MEMBRANE_DECIMATION).mean(1)
    return Series("membrane", values, np.arange(len(values)) * MEMBRANE_DECIMATION, "sample",
                  "membrane potential", f"matplotlib sample data membrane.dat, block means of "
                  f"{MEMBRANE_DECIMATION}", "potential")


def _goog(column):
    prices = np.load(_sample_data("goog.npz"))["price_data"]
    numeric = [n for n in prices.dtype.names if n != "date"]
    column = column or numeric[-1]
    if column not in numeric:
        raise DataError(f"column {column!r} not found in goog; columns: {', '.join(numeric)}")
    return Series("goog", prices[column].astype(np.float64), prices["date"], "date",
                  f"GOOG {column} (USD)", "matplotlib sample data goog.npz", column)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _csv(path, column, name):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"CSV file {path!r} is empty")
    has_header = not all(_is_number(cell) for cell in rows[0])
    header = [h.strip() for h in rows[0]] if has_header else [f"column{i}" for i in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"CSV file {path!r} has a header but no data rows")
    first_line = 2 if has_header else 1
    if column is None:
        numeric = [i for i in range(len(header)) if i < len(body[0]) and _is_number(body[0][i])]
        if not numeric:
            raise DataError(f"CSV file {path!r} has no numeric column; columns: {', '.join(header)}")
        col = numeric[-1]
    elif column in header:
        col = header.index(column)
    else:
        raise DataError(f"column {column!r} not found in {path}; columns: {', '.join(header)}")

    values, bad = [], []
    for k, row in enumerate(body):
        cell = row[col].strip() if col < len(row) else ""
        try:
            v = float(cell)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            bad.append((k + first_line, cell))
        values.append(v)
    if bad:
        shown = ", ".join(f"row {line} ({cell!r})" for line, cell in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(f"column {header[col]!r} of {path} has non-numeric, NaN or inf values: {shown}{more}")

    time, time_label = np.arange(len(values)), "sample"
    if col != 0 and len(header) > 1:  # the first column, if it is not the value, is the x axis
        cells = [row[0].strip() if row else "" for row in body]
        if all(_is_number(c) for c in cells):
            time, time_label = np.array([float(c) for c in cells]), header[0]
        else:
            try:
                time, time_label = np.array(cells, dtype="datetime64"), header[0]
            except ValueError:
                pass
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return Series(name, np.array(values, dtype=np.float64), time, time_label, header[col],
                  os.path.abspath(path), header[col], digest)


def normalise(values, mean=None, std=None):
    """Z-score. Without mean and std, the series' own statistics (the log's protocol).
    Returns (z, mean, std)."""
    if mean is None:
        mean, std = float(values.mean()), float(values.std())
    if std == 0.0 or not math.isfinite(std):
        raise DataError("the series (or its training part) is constant (std 0); nothing to forecast")
    return (values - mean) / std, mean, std


def check_time_steps(n_values, time_steps):
    if time_steps < 1:
        raise DataError(f"time_steps must be at least 1, got {time_steps}")
    if n_values < time_steps + 2:
        raise DataError(f"the series has {n_values} values; time_steps {time_steps} needs at least "
                        f"{time_steps + 2} (choose time_steps <= {n_values - 2})")


def make_windows(z, time_steps, target):
    """Windows of time_steps values and their targets.

    z: (N,) normalised series. Returns x (N - T, T, 1) and y:
    - target "aligned": the next value at every position, y (N - T, T, 1);
    - target "last": only the value after the window, y (N - T, 1).
    """
    check_time_steps(len(z), time_steps)
    z = torch.as_tensor(z, dtype=torch.float32)
    x = z[:-1].unfold(0, time_steps, 1).unsqueeze(-1)        # (N-T, T, 1)
    if target == "aligned":
        y = z[1:].unfold(0, time_steps, 1).unsqueeze(-1)     # (N-T, T, 1)
    elif target == "last":
        y = z[time_steps:].unsqueeze(-1)                     # (N-T, 1)
    else:
        raise ValueError(f"unknown target layout {target!r}")
    return x.contiguous(), y.contiguous()


def boundaries(n_values, fractions=DEFAULT_FRACTIONS):
    """(train_end, val_end): values [0, train_end) train, [train_end, val_end) validate,
    [val_end, n_values) test. fractions: (train, validation, test), summing to 1."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"fractions {','.join(map(str, fractions))}: expected three positive numbers "
                        f"(train, validation, test) that sum to 1, e.g. 0.7,0.1,0.2")
    train_end = round(n_values * fractions[0])
    val_end = round(n_values * (fractions[0] + fractions[1]))
    return train_end, val_end


@dataclass
class Split:
    """A series cut for training: normalised window tensors, the statistics used, the parts."""
    z: np.ndarray            # (N,) the whole series, normalised with (mean, std)
    mean: float
    std: float
    x_train: torch.Tensor    # (n_train, T, 1)
    y_train: torch.Tensor    # (n_train, T, 1) aligned, (n_train, 1) last
    x_val: torch.Tensor
    y_val: torch.Tensor
    train_end: int           # value indices: [0, train_end) train, [train_end, val_end) validation,
    val_end: int             # [val_end, N) test; under the log's protocol val_end == N (no test part)


def split_series(values, time_steps, target, split="chrono", fractions=DEFAULT_FRACTIONS):
    """Windows for training and validation under one of two protocols.

    chrono (the default): values are cut in time into train, validation and test parts
    (fractions); mean and std come from the training part alone. A training window (inputs and
    targets) lies inside the training part; a validation window's target value lies in the
    validation part and its input may look back into the training part. The test part is not
    read here at all: it is left to forecast.py's backtest.
    random (the log's protocol): whole-series statistics, every window, torch's random_split
    with generator seed 42 into int(0.8 n) training windows and the rest.
    """
    check_time_steps(len(values), time_steps)
    if split == "random":
        z, mean, std = normalise(values)
        x, y = make_windows(z, time_steps, target)
        train_idx, val_idx = split_indices(len(x), "random")
        return Split(z, mean, std, x[train_idx], y[train_idx], x[val_idx], y[val_idx], len(z), len(z))
    if split != "chrono":
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    train_end, val_end = boundaries(len(values), fractions)
    need = time_steps + 2
    if train_end < need or val_end - train_end < 1 or len(values) - val_end < 1:
        raise DataError(f"the series has {len(values)} values; with fractions {','.join(map(str, fractions))} "
                        f"its training part has {train_end}, validation {val_end - train_end}, test "
                        f"{len(values) - val_end}; time_steps {time_steps} needs a training part of at least "
                        f"{need} and one value in each other part (choose a smaller --time_steps or "
                        f"other --fractions)")
    _, mean, std = normalise(values[:train_end])
    z = (values - mean) / std
    x_train, y_train = make_windows(z[:train_end], time_steps, target)
    x_val, y_val = make_windows(z[max(0, train_end - time_steps):val_end], time_steps, target)
    return Split(z, mean, std, x_train, y_train, x_val, y_val, train_end, val_end)


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
