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
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from data.download import DATA_DIR_ENV, FILES, default_data_dir

EMBEDDED = ("membrane", "goog")
DATASETS = EMBEDDED + tuple(FILES)
SPLITS = ("random", "chrono")
SPLIT_SEED = 42  # the log's random_split generator seed
MEMBRANE_DECIMATION = 4


class DataError(ValueError):
    """A bad data set, column or window size; the message is one line meant for the user."""


@dataclass
class Series:
    name: str               # used in run names and output file names
    values: np.ndarray      # (N,) float64, original units
    time: np.ndarray        # (N,) x axis for plots: numbers, dates, or the sample index
    time_label: str
    value_label: str
    source: str             # where it came from (path or description)
    column: str


def resolve_data_dir(data_dir=None):
    return data_dir or default_data_dir()


def load_series(dataset="membrane", column=None, data_dir=None):
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
    return Series(name, np.array(values, dtype=np.float64), time, time_label, header[col], path, header[col])


def normalise(values):
    """Z-score with the series' own statistics, as in the log. Returns (z, mean, std)."""
    mean, std = float(values.mean()), float(values.std())
    if std == 0.0:
        raise DataError("the series is constant (std 0); nothing to forecast")
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


def split_indices(n_windows, split="random"):
    """Train and validation window indices, 80/20.

    random: the log's protocol, torch's random_split with generator seed 42. Windows overlap,
    so a validation window shares all but one value with its training neighbours.
    chrono: the first 80% of windows train, the last 20% validate.
    """
    n_train = _n_train(n_windows)
    if split == "random":
        g = torch.Generator().manual_seed(SPLIT_SEED)
        train, val = torch.utils.data.random_split(range(n_windows), [n_train, n_windows - n_train], generator=g)
        return torch.tensor(train.indices), torch.tensor(val.indices)
    if split == "chrono":
        return torch.arange(n_train), torch.arange(n_train, n_windows)
    raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _n_train(n_windows):
    """random_split's size for the fraction 0.8, but always at least one validation window."""
    lengths = [math.floor(n_windows * 0.8), math.floor(n_windows * 0.2)]
    for i in range(n_windows - sum(lengths)):  # random_split hands out the remainder round-robin
        lengths[i % 2] += 1
    return min(lengths[0], n_windows - 1)
