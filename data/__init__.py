"""Series in, normalised window tensors out.

A data set is one of
- `membrane` (default) or `goog`: real recordings shipped with matplotlib's sample data,
  so the default run needs no download;
- `y_w`, `w_y`, `4single`: the research log's formaldehyde series, read from the data
  directory (`data/`, or $VQSEQ_DATA_DIR, or --data_dir); `python data/download.py` gets them;
- a path to any CSV file, read the way a careful user would read it:
  - encoding: UTF-8, with or without a byte-order mark, or UTF-16 with one (Excel's "Unicode
    text"). Anything else is an error that names the first bad byte and its line: we do not
    guess a legacy code page, because a wrong guess silently changes the column names;
  - delimiter: comma, semicolon or tab, whichever splits the first lines into the same number
    of cells (ties: tab, then semicolon, then comma). With a semicolon or tab, a decimal comma
    ("1,5") reads as 1.5;
  - header: the first row, unless every cell in it is a number or a date;
  - time axis: the first column, when its cells are dates, or it is named like a time (t, ds,
    year, time..., date...), or it is a strictly increasing number column and another numeric
    column exists (then the other one is the series). Dates are ISO (2024-01-02,
    2024-01-02T13:00:00Z, stored in UTC) or 2024/01/02, 01/02/2024, 02.01.2024, with an
    optional 13:00 or 13:00:05. Dots mean day.month.year; with slashes or dashes the whole column
    decides the order (a first field over 12 is a day, a second over 12 is a day) and where no
    cell decides it, `date_format` (a strptime format such as "%d/%m/%Y") must. Without a time
    axis the time is the row index. Series.time holds datetime64 values for dates;
  - value column: `column` (a name, or a 0-based index such as "2"), else the last column, other
    than the time axis, whose non-empty cells are all numbers. A column that counts (the same
    step on every row, like an id) is as likely an index as a value, so when it is the last of
    several candidates the choice is left to the user (--column);
  - gaps: empty cells, NA, N/A, null, none, NaN and inf in the value column are missing values.
    By default they are an error naming their rows; `fill` "interpolate" (linear in the row
    index; a gap at either end takes the nearest observed value), "ffill" (the previous observed
    value; a gap at the start takes the first observed one) or "drop" (the rows go) fills them.
    Series.observed is False where a value was filled, so metrics never score one. Text in the
    value column is never filled: it is an error naming its rows. The time column must be
    complete and increase row by row: rows out of time order (sort them) and repeated times
    (aggregate them) are errors naming their rows, never read as a series.

A model may then read each window normalised by itself (--norm last or revin): WindowNorm, the
one place that does it, for training and every forecast.

Everything a user can get wrong raises DataError with a one-line message.
"""
import csv
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch

from runs import UsageError
from data.download import DATA_DIR_ENV, FILES, default_data_dir

EMBEDDED = ("membrane", "goog")
DATASETS = EMBEDDED + tuple(FILES)
SPLITS = ("chrono", "random")  # chrono: train/validation/test in time; random: the log's
NORMS = ("global", "last", "revin")  # what a model reads: the series' level, or each window's changes
CHRONO_NORM = "revin"  # the default under --split chrono, chosen by validation error (docs/RESULTS.md, first section)
REVIN_EPS = 1e-5  # added to a window's variance, so a constant window divides by 0.003, not 0
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test (TSLib's convention)
SPLIT_SEED = 42  # the log's random_split generator seed
MEMBRANE_DECIMATION = 4
FILL_MODES = ("interpolate", "ffill", "drop")
DELIMITERS = ("\t", ";", ",")  # in order of preference when two split the file equally well
MISSING = {"", "na", "n/a", "nan", "null", "none"}  # float() reads nan and inf itself
SHOWN = 5  # bad cells named in one error message


class DataError(UsageError):
    """A bad data set, column or window size; the message is one line meant for the user."""


@dataclass
class Series:
    name: str               # used in run names and output file names
    values: np.ndarray      # (N,) float64, original units, all finite
    time: np.ndarray        # (N,) x axis for plots: numbers, datetime64, or the sample index
    time_label: str
    value_label: str
    source: str             # where it came from (an absolute path, or a description)
    column: str
    sha256: str = None      # of a CSV file's bytes; None for the embedded series
    observed: np.ndarray = None  # (N,) bool, False where `fill` made the value up
    filled: int = 0         # how many values were made up

    def __post_init__(self):
        if self.observed is None:
            self.observed = np.ones(len(self.values), dtype=bool)


def resolve_data_dir(data_dir=None):
    return data_dir or default_data_dir()


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
                f"data set {dataset!r}: {path} not found; run `python data/download.py` "
                f"(or point --data_dir / ${DATA_DIR_ENV} at a folder holding {FILES[dataset][0]})")
        return _csv(path, column, dataset, fill, date_format)
    if dataset.lower().endswith(".csv") or os.path.sep in dataset or os.path.isfile(dataset):
        if not os.path.isfile(dataset):
            what = "is a folder, not a file" if os.path.isdir(dataset) else "not found"
            raise DataError(f"CSV file {dataset!r} {what} (looked for {os.path.abspath(dataset)})")
        name = os.path.splitext(os.path.basename(dataset))[0]
        return _csv(dataset, column, name, fill, date_format)
    raise DataError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)} "
                    f"or give a path to a .csv file")


def future_times(series, n):
    """(times, how): the n times after the series' last, and how they continue it, one phrase for
    the user. forecast.py's --future dates its forecasts with them.

    - dates all on one day of the month, or on that day cut to the month's end (31 Jan, 29 Feb,
      31 Mar: month ends), at one time of day, continue in calendar months: the median gap in
      months (1 monthly, 3 quarterly, 12 yearly);
    - dates on weekdays only that skip weekends (a Friday, then a Monday) continue on business
      days, Monday to Friday (holidays are not known);
    - any other time axis (dates, a number column, the sample index) continues its median
      spacing; where its gaps differ the phrase says so, because those times are a guess.
    """
    t = series.time
    if len(t) < 2:
        raise DataError(f"series {series.name!r} has {len(t)} time value(s); continuing its time needs two")
    ahead = np.arange(1, n + 1)
    if t.dtype.kind == "M":
        day = t.astype("datetime64[D]")
        clock = t - day                                   # time of day, in t's unit
        if (clock == clock[0]).all():
            month = day.astype("datetime64[M]")
            dom = (day - month.astype("datetime64[D]")).astype(np.int64) + 1      # day of the month
            anchor = dom.max()
            if (dom == np.minimum(anchor, _month_length(month))).all():
                gaps = np.diff(month.astype(np.int64))
                step = max(1, int(np.median(gaps)))
                months = month[-1] + step * ahead
                days = months.astype("datetime64[D]") + np.minimum(anchor, _month_length(months)) - 1
                freq = {1: "monthly", 3: "quarterly", 12: "yearly"}.get(step, f"every {step} months")
                on = "month ends" if anchor == 31 else f"day {anchor}" + (
                    ", or the month's last day" if (dom < anchor).any() else "")
                how = f"{freq}, on {on}" + _varies((gaps == step).all(), gaps.min(), gaps.max(), " months")
                return (days + clock[-1]).astype(t.dtype), how
            business = np.busday_count(day[:-1], day[1:])   # weekdays from one date to the next
            weekend = (business == 1) & (np.diff(day).astype(np.int64) > 1)  # a Friday, then a Monday
            if np.is_busday(day).all() and np.median(business) == 1 and weekend.any():
                how = "on business days, Monday to Friday (holidays are not known)"
                return (np.busday_offset(day[-1], ahead) + clock[-1]).astype(t.dtype), how
    gaps = np.diff(t)
    if t.dtype.kind == "M":
        step = np.timedelta64(int(np.median(gaps.astype(np.int64))), np.datetime_data(gaps.dtype)[0])
        words, low, high = _duration(step), _duration(gaps.min()), _duration(gaps.max())
        regular = (gaps == step).all()
    else:
        step = float(np.median(gaps))
        step = int(step) if t.dtype.kind in "iu" and step.is_integer() else step
        words, low, high = f"{step:g}", f"{gaps.min():g}", f"{gaps.max():g}"
        regular = np.allclose(gaps, step, rtol=1e-6, atol=0)
    if not step > step * 0:
        raise DataError(f"series {series.name!r}: its time does not increase (median step {words}); "
                        f"sort it by time")
    return t[-1] + step * ahead, f"every {words}" + _varies(regular, low, high)


def _varies(regular, low, high, unit=""):
    """'' for a regular axis, else the phrase that says its step is the median gap."""
    if regular:
        return ""
    return f" (the median gap; gaps vary from {low}{unit} to {high}{unit}, so these times are a guess)"


def _month_length(months):
    """Days in each month of a datetime64[M] array."""
    return ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)


def _duration(delta):
    """'1 day', '15 minutes', '2.5 seconds' for a numpy timedelta64."""
    seconds = delta / np.timedelta64(1, "s")
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds / size
            return f"{count:g} {unit}" + ("s" if count != 1 else "")
    return f"{seconds:g} second" + ("s" if seconds != 1 else "")


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


# ---------------------------------------------------------------- CSV files

def _csv(path, column, name, fill, date_format):
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read CSV file {path}: {e.strerror}") from None
    header, body, lines = _table(path, _decode(path, raw))
    cols = [[row[i] if i < len(row) else "" for row in body] for i in range(len(header))]
    numbers = [[_number(c) for c in col] for col in cols]  # None where a cell is not a number

    col = None if column is None else _column_index(column, header, path)
    axis = _time_axis(header, cols, numbers, col, date_format)
    col = _value_column(header, cols, numbers, axis, path) if col is None else col
    if axis and col == 0:
        axis = None  # the user asked for the first column: it is the series, not its time

    values, observed = _values(header[col], cols[col], numbers[col], lines, path)
    if axis == "date":
        time = _dates(header[0], cols[0], lines, path, date_format)
    elif axis == "number":
        time = np.array(numbers[0], dtype=np.float64)
        if not np.isfinite(time).all():
            raise DataError(f"time column {header[0]!r} of {path} has empty, NaN or inf cells: "
                            f"{_rows(cols[0], lines, ~np.isfinite(time))}; fill them in or remove those rows")
    else:
        time = np.arange(len(values))
    if axis:
        _check_time_order(header[0], cols[0], lines, path, time)
    filled = 0
    if not observed.all():
        if fill is None:
            raise DataError(f"column {header[col]!r} of {path} has missing values (empty, NaN or inf): "
                            f"{_rows(cols[col], lines, ~observed)}; fill them with --fill {'|'.join(FILL_MODES)}")
        if fill == "drop":
            values, time = values[observed], time[observed]
            observed = observed[observed]
        else:
            values, filled = _fill(values, observed, fill), int((~observed).sum())
    return Series(name, values, time, header[0] if axis else "sample", header[col], path, header[col],
                  hashlib.sha256(raw).hexdigest(), observed, filled)


def _decode(path, raw):
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark: Excel's "Unicode text"
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"CSV file {path} starts like UTF-16 but does not decode as it; save it as UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"CSV file {path} is not UTF-8: byte 0x{raw[e.start]:02x} at line {line}; "
                        f"save it as UTF-8") from None


def _delimiter(text):
    """The delimiter that splits the first lines into the most rows of one width (>= 2 cells)."""
    sample = [line for line in text.splitlines()[:50] if line.strip()]
    best, best_score = ",", None
    for rank, d in enumerate(reversed(DELIMITERS)):
        widths = [len(r) for r in csv.reader(sample, delimiter=d)]
        if widths and widths[0] >= 2:
            score = (sum(w == widths[0] for w in widths), rank)
            if best_score is None or score > best_score:
                best, best_score = d, score
    return best


def _table(path, text):
    """(header, body rows, file line of each body row); cells stripped, blank rows skipped."""
    delimiter = _delimiter(text)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows, lines = [], []
        for r in reader:
            if any(cell.strip() for cell in r):
                rows.append([_decimal(cell.strip(), delimiter) for cell in r])
                lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"CSV file {path} cannot be read as CSV: {e}") from None
    if not rows:
        raise DataError(f"CSV file {path} is empty")
    has_header = any(_number(c) is None and not _looks_like_date(c) for c in rows[0])
    if has_header:
        # a quoted name may hold line breaks; messages and run names need it on one line
        header = [" ".join(h.split()) or f"column{i}" for i, h in enumerate(rows[0])]
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise DataError(f"CSV file {path} has a header ({', '.join(header)}) but no data rows")
    else:
        header = [f"column{i}" for i in range(max(map(len, rows)))]
    for row, line in zip(rows, lines):
        if any(row[len(header):]):  # trailing empty cells (a delimiter at the end of a row) are harmless
            raise DataError(f"CSV file {path}: row {line} has {len(row)} cells but the header names "
                            f"{len(header)} columns ({', '.join(header)}); delimiter {delimiter!r}")
    return header, rows, lines


def _decimal(cell, delimiter):
    # where the comma does not separate cells, "1,5" is the decimal comma of most of Europe
    if delimiter != "," and re.fullmatch(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?", cell):
        return cell.replace(",", ".")
    return cell


def _number(cell):
    """float(cell), None for text; missing cells (empty, NA, NaN, inf) read as nan."""
    if cell.lower() in MISSING:
        return math.nan
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else math.nan


def _looks_like_numbers(numbers):
    """Every non-missing cell is a number and at least one is."""
    return all(v is not None for v in numbers) and any(v == v for v in numbers)


def _time_like(name):
    base = re.sub(r"\s*[(\[].*", "", name).strip().lower()  # "time(h)" -> "time"
    return base in ("t", "ds", "year") or base.startswith(("time", "date"))


def _time_axis(header, cols, numbers, col, date_format):
    """What the first column is: "date", "number", or None (not a time axis)."""
    if len(header) < 2 or col == 0:
        return None
    others = any(_mostly_numbers(numbers[j]) for j in range(1, len(header)) if col in (None, j))
    if _looks_like_numbers(numbers[0]) and not date_format:
        complete = all(v == v for v in numbers[0])
        increasing = complete and len(numbers[0]) > 1 and all(b > a for a, b in zip(numbers[0], numbers[0][1:]))
        return "number" if _time_like(header[0]) or (increasing and others) else None
    first = next((c for c in cols[0] if c), "")
    if date_format or _time_like(header[0]) or _looks_like_date(first):
        return "date"
    return None


def _mostly_numbers(numbers):
    finite = sum(v is not None and v == v for v in numbers)
    return finite > 0 and finite > sum(v is None for v in numbers)


def _column_index(column, header, path):
    choices = f"columns: {', '.join(header)} (or an index 0-{len(header) - 1})"
    if isinstance(column, str) and column in header:
        return header.index(column)
    if isinstance(column, int) or str(column).strip().isdigit():
        if int(column) < len(header):
            return int(column)
        raise DataError(f"column {column!r} not found in {path}: it has {len(header)} columns; {choices}")
    raise DataError(f"column {column!r} not found in {path}; {choices}")


def _value_column(header, cols, numbers, axis, path):
    """The last column besides the time axis whose non-empty cells are all numbers."""
    candidates = [j for j in range(len(header)) if not (j == 0 and axis) and _looks_like_numbers(numbers[j])]
    if not candidates:
        # a number column spoilt by a few text cells: pick it, so that the error names those cells
        mostly = [j for j in range(len(header)) if not (j == 0 and axis) and _mostly_numbers(numbers[j])]
        if mostly:
            return mostly[-1]
        time = f" besides the time axis {header[0]!r}" if axis else ""
        raise DataError(f"CSV file {path} has no numeric column{time}; columns: {', '.join(header)}")
    last = [v for v in numbers[candidates[-1]] if v == v]
    steps = [b - a for a, b in zip(last, last[1:])]  # Python floats: inf for 1e308 - -1e308, no warning
    if len(candidates) > 1 and len(steps) > 1 and 0 < steps[0] < math.inf and all(d == steps[0] for d in steps):
        raise DataError(f"CSV file {path}: which column is the series? {header[candidates[-1]]!r} counts up "
                        f"by {steps[0]:g} on every row like an index; candidates: "
                        f"{', '.join(header[j] for j in candidates)}; choose one with --column")
    return candidates[-1]


def _rows(cells, lines, mask):
    """'row 3 ('abc'), row 7 ('') and 4 more' for the cells where mask is True."""
    bad = [(line, cell) for cell, line, m in zip(cells, lines, mask) if m]
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return ", ".join(f"row {line} ({cell!r})" for line, cell in bad[:SHOWN]) + more


def _check_time_order(name, cells, lines, path, time):
    """A time column must increase row by row: a series read out of order would be trained on
    and continued backwards, and repeated times would count their rows twice."""
    order = time.astype(np.int64) if time.dtype.kind == "M" else time
    step = np.diff(order)
    back = np.concatenate([[False], step < 0])
    if back.any():
        raise DataError(f"time column {name!r} of {path} is not in time order (rows earlier than the "
                        f"row above: {_rows(cells, lines, back)}); sort the rows by {name}")
    same = np.concatenate([[False], step == 0])
    if same.any():
        raise DataError(f"time column {name!r} of {path} repeats times (rows equal to the row above: "
                        f"{_rows(cells, lines, same)}); keep one row per time: aggregate the repeats (e.g. their "
                        f"mean) or remove them")


def _values(name, cells, numbers, lines, path):
    """(values, observed) of the value column; text cells are an error."""
    text = [v is None for v in numbers]
    if any(text):
        raise DataError(f"column {name!r} of {path} has non-numeric values: {_rows(cells, lines, text)}; "
                        f"fix those cells or choose another column with --column")
    values = np.array(numbers, dtype=np.float64)
    observed = np.isfinite(values)
    if not observed.any():
        raise DataError(f"column {name!r} of {path} has no values, only empty, NaN or inf cells")
    return values, observed


def _fill(values, observed, fill):
    """Fill the gaps (observed False) by "ffill" or "interpolate"; see the module docstring."""
    seen = np.flatnonzero(observed)
    gaps = np.flatnonzero(~observed)
    k = np.searchsorted(seen, gaps)
    before = seen[np.maximum(k - 1, 0)]          # the first observed one for a gap at the start
    after = seen[np.minimum(k, len(seen) - 1)]   # the last observed one for a gap at the end
    out = values.copy()
    if fill == "ffill":
        out[gaps] = values[before]
        return out
    w = np.where(after > before, (gaps - before) / np.maximum(after - before, 1), 0.0)
    a, b = values[before], values[after]
    # a (1 - w) + b w rather than a + (b - a) w: b - a overflows for values near 1e308
    out[gaps] = np.clip(a * (1 - w) + b * w, np.minimum(a, b), np.maximum(a, b))
    return out


# ---------------------------------------------------------------- dates

# 2024/01/02, 01/02/2024, 02.01.2024, 01-02-2024, each with an optional 13:00, 13:00:05 or 13:00:05.25
_NUMERIC_DATE = re.compile(r"(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})"
                           r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?")


def _iso(cell):
    try:
        t = datetime.fromisoformat(cell)
    except ValueError:
        return None
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def _looks_like_date(cell):
    if _number(cell) is not None:
        return False
    m = _NUMERIC_DATE.fullmatch(cell)
    return bool(m and (len(m[1]) == 4 or len(m[4]) == 4)) or _iso(cell) is not None


def _dates(name, cells, lines, path, date_format):
    """The time column as datetime64: days where every time is midnight, else seconds or finer."""
    missing = [c == "" for c in cells]
    if any(missing):
        raise DataError(f"time column {name!r} of {path} has empty cells: {_rows(cells, lines, missing)}; "
                        f"fill them in or remove those rows")
    times = [None] * len(cells)
    if date_format:
        for k, (cell, line) in enumerate(zip(cells, lines)):
            try:
                times[k] = datetime.strptime(cell, date_format)
            except ValueError:
                raise DataError(f"time column {name!r} of {path}: {cell!r} at row {line} does not match "
                                f"--date_format {date_format!r}") from None
        return _datetime64(times)
    unordered = []  # 01/02/2024 style: the column as a whole decides day/month order
    for k, cell in enumerate(cells):
        m = _NUMERIC_DATE.fullmatch(cell)
        if m and len(m[1]) == 4:
            times[k] = (m, int(m[1]), int(m[3]), int(m[4]))
        elif m and len(m[4]) == 4 and m[2] == ".":
            times[k] = (m, int(m[4]), int(m[3]), int(m[1]))
        elif m and len(m[4]) == 4:
            unordered.append(k)
        else:
            times[k] = _iso(cell)
            if times[k] is None:
                raise DataError(f"time column {name!r} of {path}: {cell!r} at row {lines[k]} is not a date "
                                f"(ISO 2024-01-02, 2024/01/02 13:00, 02.01.2024, 01/02/2024); give its "
                                f"format with --date_format, e.g. '%d/%m/%Y %H:%M'")
    if unordered:
        day_first = _day_first(name, cells, lines, path, unordered)
        for k in unordered:
            m = _NUMERIC_DATE.fullmatch(cells[k])
            day, month = (int(m[1]), int(m[3])) if day_first else (int(m[3]), int(m[1]))
            times[k] = (m, int(m[4]), month, day)
    for k, t in enumerate(times):
        if isinstance(t, tuple):
            m, year, month, day = t
            clock = [int(m[i] or 0) for i in (5, 6, 7)] + [int((m[8] or "0").ljust(6, "0"))]
            try:
                times[k] = datetime(year, month, day, *clock)
            except ValueError as e:
                raise DataError(f"time column {name!r} of {path}: {cells[k]!r} at row {lines[k]} is not a "
                                f"valid date ({e})") from None
    return _datetime64(times)


def _day_first(name, cells, lines, path, unordered):
    """Whether 01/02/2024-style cells are day/month: a first field over 12 must be a day, a
    second over 12 must be a day too; where no cell says, the user must (date_format)."""
    first = [int(_NUMERIC_DATE.fullmatch(cells[k])[1]) for k in unordered]
    second = [int(_NUMERIC_DATE.fullmatch(cells[k])[3]) for k in unordered]
    day_first = next((k for k, a in zip(unordered, first) if a > 12), None)
    month_first = next((k for k, b in zip(unordered, second) if b > 12), None)
    m = _NUMERIC_DATE.fullmatch(cells[unordered[0]])
    sep = m[2]
    clock = " %H:%M:%S" if m[7] else " %H:%M" if m[5] else ""
    formats = f"--date_format '%d{sep}%m{sep}%Y{clock}' or '%m{sep}%d{sep}%Y{clock}'"
    if day_first is not None and month_first is not None:
        raise DataError(f"time column {name!r} of {path} mixes day/month ({cells[day_first]!r} at row "
                        f"{lines[day_first]}) and month/day ({cells[month_first]!r} at row {lines[month_first]}); "
                        f"fix the column or give its format with {formats}")
    if day_first is None and month_first is None and any(a != b for a, b in zip(first, second)):
        k = unordered[0]
        raise DataError(f"time column {name!r} of {path}: dates like {cells[k]!r} (row {lines[k]}) could be "
                        f"day/month or month/day; say which with {formats}")
    return day_first is not None


def _datetime64(times):
    if all(t.hour == t.minute == t.second == t.microsecond == 0 for t in times):
        return np.array([t.date() for t in times], dtype="datetime64[D]")
    unit = "s" if all(t.microsecond == 0 for t in times) else "us"
    return np.array(times, dtype=f"datetime64[{unit}]")


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


class WindowNorm(torch.nn.Module):
    """A model that reads each window normalised by itself, in and out in global z units.

    The series is z-scored once with the training part's mean and std (`normalise`); this
    wrapper then, per input window x (B, T, 1), takes a location and scale, gives the model
    (x - loc) / scale and maps its output back: out * scale + loc. So the model file stays the
    textbook computation, and everything around it (losses, val_mse_last, forecasts) stays in
    the global z units every norm shares.
      last:  loc = the window's last value, scale 1 (of global z: the training part's std).
             A forecast is a change from the last value: NLinear (Zeng et al. 2023).
      revin: loc, scale = the window's own mean and std (sqrt(var + REVIN_EPS)): RevIN without
             its affine weights (Kim et al., ICLR 2022).
    A regressive forecast re-normalises every new window, so no key of an earlier input stays
    valid: there is no KV cache (forecast.regressive_path). An aligned model's outputs before
    the last position forecast values inside the window its statistics came from; only the
    last position's output is a forecast, and val_mse_last measures just that."""

    def __init__(self, model, norm):
        super().__init__()
        self.model, self.norm, self.target = model, norm, model.target
        if hasattr(model, "code_probs"):  # codebook usage, measured on what the model reads
            self.code_probs = lambda x, start_pos=0: model.code_probs(self.normalise(x)[0], start_pos)

    def normalise(self, x):
        """(x normalised, loc (B, 1, 1), scale (B, 1, 1) or 1)."""
        if self.norm == "last":
            loc, scale = x[:, -1:], 1.0
        else:
            loc = x.mean(1, keepdim=True)
            scale = (x.var(1, keepdim=True, unbiased=False) + REVIN_EPS).sqrt()
        return (x - loc) / scale, loc, scale

    def forward(self, x, start_pos=0):
        xn, loc, scale = self.normalise(x)
        out = self.model(xn, start_pos=start_pos)                # (B, T, 1) aligned, (B, 1) last
        if self.target == "last":
            loc, scale = loc[:, 0], scale if self.norm == "last" else scale[:, 0]  # (B, 1)
        return out * scale + loc


def with_norm(model, norm):
    """model reading windows as `norm` says: itself for global (the log's), else WindowNorm."""
    if norm not in NORMS:
        raise DataError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return model if norm == "global" else WindowNorm(model, norm)


def check_time_steps(n_values, time_steps):
    if time_steps < 1:
        raise DataError(f"time_steps must be at least 1, got {time_steps}")
    if n_values < 3:  # the shortest window, time_steps 1, needs 3 values: two windows and their targets
        raise DataError(f"the series has {n_values} value" + ("s" if n_values != 1 else "") + f"; time_steps "
                        f"{time_steps} needs at least {time_steps + 2}, and even time_steps 1 needs 3: give a "
                        f"series of at least 3 values")
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
