"""Series in, normalised window tensors out.

A data set is one of
- `membrane` (default) or `goog`: real recordings shipped with matplotlib's sample data,
  so the default run needs no download;
- `y_w`, `w_y`, `4single`: the research log's formaldehyde series, and `ETTh1`, `ETTh2`: the
  field's long-horizon benchmark (value column `OT`), read from the data directory (`data/`, or
  $VQSEQ_DATA_DIR, or --data_dir); `python data/download.py` gets them;
- a path to any CSV file (data/csvfile.py: encodings, delimiters, time axes, dates, gaps).

    load_series(name or path) -> Series      the values, their times and where they came from
    split_series(values, ...) -> Split       normalised windows of the parts (data/windows.py)
    future_times(series, n)                  the times after the last (data/future.py)

Everything a user can get wrong raises DataError with a one-line message.
"""
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from runs import DataError
from data.csvfile import FILL_MODES, MissingColumn, read_csv
from data.download import DATA_DIR_ENV, FIELD_SERIES, FILES, default_data_dir
from data.future import future_times
from data.windows import (DEFAULT_FRACTIONS, SPLIT_SEED, SPLITS, Split, boundaries, check_time_steps, make_windows,
                          normalise, parts, split_indices, split_series)

EMBEDDED = ("membrane", "goog")
DATASETS = EMBEDDED + tuple(FILES)
MEMBRANE_DECIMATION = 4
# The field's split of its benchmark series (Informer's, kept by DLinear, PatchTST, Time-Series-Library):
# hours [0, 8640) train (12 months of 30 days), [8640, 11520) validate, [11520, 14400) test (4 months
# each); the file's last rows are not used. (train_end, val_end, test_end), where no fractions are given.
FIELD_SPLITS = {name: (12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24) for name in FIELD_SERIES}
DEFAULT_COLUMNS = {name: "OT" for name in FIELD_SERIES}  # oil temperature: the univariate setting's target
__all__ = ["DATASETS", "DEFAULT_FRACTIONS", "FIELD_SPLITS", "FILL_MODES", "SPLITS", "SPLIT_SEED", "DataError",
           "MissingColumn", "Series", "Split", "digest", "load_other", "run_data_dir",
           "boundaries", "check_time_steps", "future_times", "load_series", "make_windows", "normalise", "parts",
           "split_indices", "split_series"]


@dataclass
class Series:
    name: str               # used in run names and output file names
    values: np.ndarray      # (N,) float64, original units, all finite
    time: np.ndarray        # (N,) x axis for plots: numbers, datetime64 (UTC where utc_offset), or the sample index
    time_label: str
    value_label: str
    source: str             # where it came from (an absolute path, or a description)
    column: str
    sha256: str = None      # of a CSV file's bytes; None for the embedded series
    observed: np.ndarray = None  # (N,) bool, False where `fill` made the value up
    filled: int = 0         # how many values were made up
    time_format: str = None  # strftime format future times are written in ("%Y-%m", "%Y%m"); None: ISO or numbers
    utc_offset: np.ndarray = None  # (N,) timedelta64[s], each time's offset (+02:00): time is then in UTC; or None
    column_index: int = None  # the value column's position in a CSV (found again there where names repeat)
    numeric_columns: int = 1  # a CSV's number columns besides the time axis: the candidates for the series
    field_split: tuple = None  # (train_end, val_end, test_end): the field's split of a benchmark series (FIELD_SPLITS)

    def __post_init__(self):
        if self.observed is None:
            self.observed = np.ones(len(self.values), dtype=bool)


def digest(series):
    """sha256 of what was read from a series: its values, which of them were observed, and their times.
    A file saved again with other line ends, quotes or digits (24.20 for 24.2) reads the same."""
    h = hashlib.sha256()
    for part in (np.asarray(series.values, np.float64), np.asarray(series.observed, bool), np.asarray(series.time)):
        h.update(str(part.dtype).encode() + part.tobytes())
    return h.hexdigest()


def resolve_data_dir(data_dir=None):
    return data_dir or default_data_dir()


def run_data_dir(dataset, data_dir, source):
    """Where a run finds its named data set (y_w, ...) again: data_dir where given (--data_dir, or the one
    the run was trained with); else the default data directory ($VQSEQ_DATA_DIR or data/) where it holds
    the file; else the folder of the file the run was trained on (config.json's source), where that
    file still is: a run trained with $VQSEQ_DATA_DIR is read in a shell without it."""
    if data_dir or dataset not in FILES or not source:
        return data_dir
    if os.path.isfile(os.path.join(default_data_dir(), FILES[dataset][0])) or not os.path.isfile(source):
        return None
    return os.path.dirname(source)


def load_series(dataset="membrane", column=None, data_dir=None, fill=None, date_format=None):
    """Load a data set by name or CSV path. fill: None (gaps are an error), "interpolate",
    "ffill" or "drop". date_format: a strptime format for the CSV's time column."""
    if fill is not None and fill not in FILL_MODES:
        raise DataError(f"unknown fill {fill!r}; choose one of {', '.join(FILL_MODES)}")
    dataset = os.fspath(dataset)
    if dataset == "membrane":
        return _membrane(column)
    if dataset == "goog":
        return _goog(column)
    if dataset in FILES:
        path = os.path.join(resolve_data_dir(data_dir), FILES[dataset][0])
        if not os.path.isfile(path):
            raise DataError(
                f"data set {dataset!r}: {path} not found; run `python data/download.py {dataset}` "
                f"(or point --data_dir / ${DATA_DIR_ENV} at a folder holding {FILES[dataset][0]})")
        column = DEFAULT_COLUMNS.get(dataset) if column is None else column
        return Series(dataset, **read_csv(path, column, fill, date_format), field_split=FIELD_SPLITS.get(dataset))
    if dataset.lower().endswith(".csv") or os.path.sep in dataset or os.path.isfile(dataset):
        if not os.path.isfile(dataset):
            what = "is a folder, not a file" if os.path.isdir(dataset) else "not found"
            raise DataError(f"CSV file {dataset!r} {what} (looked for {os.path.abspath(dataset)})")
        name = os.path.splitext(os.path.basename(dataset))[0]
        if name in DATASETS:  # goog.csv is not the embedded goog: its runs must not share a name with it
            name = os.path.basename(dataset)
        return Series(name, **read_csv(dataset, column, fill, date_format))
    raise DataError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)} "
                    f"or give a path to a .csv file")


def load_other(dataset, column, recorded, data_dir=None, fill=None, date_format=None):
    """(Series, how its column was chosen) of a data set a run is evaluated on that it was not trained
    on: column where given, else the run's column (recorded) where the data set has one of that
    name, else its default column."""
    if column is not None:
        return load_series(dataset, column, data_dir, fill, date_format), "chosen with --column"
    if recorded is not None:
        try:
            return load_series(dataset, recorded, data_dir, fill, date_format), \
                "the run's column, as its config.json records it"
        except MissingColumn:
            return (load_series(dataset, None, data_dir, fill, date_format),
                    f"the run's column {recorded!r} is not in it")
    return load_series(dataset, None, data_dir, fill, date_format), None


def _sample_data(filename):
    from matplotlib import cbook
    return cbook.get_sample_data(filename, asfileobj=False)


def _membrane(column):
    if column not in (None, "potential"):
        raise MissingColumn(f"column {column!r} not found in membrane; columns: potential")
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
        raise MissingColumn(f"column {column!r} not found in goog; columns: {', '.join(numeric)}")
    return Series("goog", prices[column].astype(np.float64), prices["date"], "date",
                  f"GOOG {column} (USD)", "matplotlib sample data goog.npz", column, numeric_columns=len(numeric))
