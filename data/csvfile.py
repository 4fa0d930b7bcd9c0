"""Reading a CSV file into a series, the way a careful user would read it.

- encoding: UTF-8, with or without a byte-order mark, or UTF-16 with one (Excel's "Unicode
  text"). Anything else is an error that names the first bad byte and its line: we do not
  guess a legacy code page, because a wrong guess silently changes the column names;
- delimiter: comma, semicolon or tab, whichever splits the first lines into the same number
  of cells (ties: tab, then semicolon, then comma). With a semicolon or tab, a decimal comma
  ("1,5") reads as 1.5; thousands separators are dropped ("2,710,349" quoted in a comma-separated
  file, "1,234.5"; with a semicolon or tab also "2.710.349" and "1.234,5");
- header: the first row, unless every cell in it is a number or a date;
- time axis: the first column when its cells are dates or it is named like a time (t, ds,
  year, time..., date...); else the first column named like a time, wherever it stands
  (value,date); else the first column when it is a strictly increasing number column and another
  numeric column exists (then the other one is the series). Dates are ISO
  (2024-01-02, 2024-01-02T13:00:00+02:00), 2024/01/02, 01/02/2024, 02.01.2024, with an optional
  13:00 or 13:00:05, months (2024-11, 2024/11: the first of the month) or quarters (1959Q1, pandas'
  way of writing them: the quarter's first day). Dots mean
  day.month.year; with slashes or dashes the whole column decides the order (a first field over
  12 is a day, a second over 12 is a day) and where no cell decides it, `date_format` (a strptime
  format such as "%d/%m/%Y") must. Times with a UTC offset are stored in UTC (so the order checks
  hold across summer time) and each one's offset is kept (utc_offset); a column that mixes times
  with and without one is an error. Number time columns of YYYYMM or YYYYMMDD integers
  (202411, 20241105) are dates; other integers (years) stay integers. How the times were written
  (time_format: date_format, or the column's own shape, such as "%d.%m.%Y", "%Y-%m-%d %H:%M",
  "%Y-%m", "%YQ%q", an ISO time with its "Z") is kept, so future times are written the same way.
  Without a time axis the time is the row index. The time holds datetime64 values for dates;
- value column: `column` (a name, or a 0-based index such as "2"), else the last column, other
  than the time axis, whose non-empty cells are all numbers. A column that counts (the same
  step on every row, like an id) is as likely an index as a value, so when it is the last of
  several candidates the choice is left to the user (--column);
- gaps: empty cells, NA, N/A, null, none, NaN and inf in the value column are missing values.
  By default they are an error naming their rows; `fill` "interpolate" (linear in the row
  index; a gap at either end takes the nearest observed value), "ffill" (the previous observed
  value; a gap at the start takes the first observed one) or "drop" (the rows go) fills them.
  `observed` is False where a value was filled, so metrics never score one. Text in the
  value column is never filled: it is an error naming its rows. The time column must be
  complete and increase row by row: rows out of time order (sort them) and repeated times
  (aggregate them) are errors naming their rows, never read as a series.

Everything a user can get wrong raises DataError with a one-line message.
"""
import csv
import hashlib
import io
import math
import operator
import os
import re
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np

from runs import DataError, give_back_freed_memory

FILL_MODES = ("interpolate", "ffill", "drop")


class MissingColumn(DataError):
    """A --column (a name or an index) that the data set does not have."""

DELIMITERS = ("\t", ";", ",")  # in order of preference when two split the file equally well
MISSING = {"", "na", "n/a", "nan", "null", "none"}  # float() reads nan and inf itself
SHOWN = 5  # bad cells named in one error message


def read_csv(path, column=None, fill=None, date_format=None):
    """The fields of a data.Series read from the CSV file at path (all but its name): values,
    time, time_label, value_label, source (the absolute path), column, sha256, observed, filled,
    time_format, utc_offset."""
    try:
        return _read_csv(path, column, fill, date_format)
    finally:
        give_back_freed_memory()  # the cells' memory, freed by now


def _read_csv(path, column, fill, date_format):
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read CSV file {path}: {e.strerror}") from None
    header, cols, lines, delimiter = _table(path, _decode(path, raw))
    cols, numbers, plain_dates = map(list, zip(*(_numbers(c, delimiter) for c in cols)))

    col = None if column is None else _column_index(column, header, path)
    axis, kind = _time_axis(header, cols, numbers, col, date_format)
    col = _value_column(header, cols, numbers, axis, path) if col is None else col

    values, observed = _values(header[col], cols[col], numbers[col], lines, path)
    time_format = utc_offset = None
    if kind == "date":
        time, utc_offset, time_format = _dates(header[axis], cols[axis], lines, path, date_format, plain_dates[axis])
    elif kind == "number":
        time = numbers[axis].values.copy()
        if not np.isfinite(time).all():
            raise DataError(f"time column {header[axis]!r} of {path} has empty, NaN or inf cells: "
                            f"{_rows(cols[axis], lines, ~np.isfinite(time))}; fill them in or remove those rows")
        time, time_format = _number_times(cols[axis], time)
    else:
        time = np.arange(len(values))
    if kind:
        _check_time_order(header[axis], cols[axis], lines, path, time)
    filled = 0
    if not observed.all():
        if fill is None:
            raise DataError(f"column {header[col]!r} of {path} has missing values (empty, NaN or inf): "
                            f"{_rows(cols[col], lines, ~observed)}; fill them with --fill {'|'.join(FILL_MODES)}")
        if fill == "drop":
            values, time = values[observed], time[observed]
            utc_offset = None if utc_offset is None else utc_offset[observed]
            observed = observed[observed]
        else:
            values, filled = _fill(values, observed, fill), int((~observed).sum())
    return dict(values=values, time=time, time_label=header[axis] if kind else "sample", value_label=header[col],
                source=path, column=header[col], sha256=hashlib.sha256(raw).hexdigest(), observed=observed,
                filled=filled, time_format=time_format, utc_offset=utc_offset, column_index=col,
                numeric_columns=sum(j != axis and _looks_like_numbers(numbers[j]) for j in range(len(header))))


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
    head = text[:1 << 16].splitlines()
    head = head[:-1] if len(text) > 1 << 16 and len(head) > 1 else head  # the last line may be cut short
    sample = [line for line in head[:50] if line.strip()]
    best, best_score = ",", None
    for rank, d in enumerate(reversed(DELIMITERS)):
        widths = [len(r) for r in csv.reader(sample, delimiter=d)]
        if widths and widths[0] >= 2:
            score = (sum(w == widths[0] for w in widths), rank)
            if best_score is None or score > best_score:
                best, best_score = d, score
    return best


def _table(path, text):
    """(header, columns of stripped cells, file line of each body row, delimiter); blank rows skipped.
    A plain table (no quotes, no blank rows, every row as wide) is split at once (_plain_columns),
    any other by the csv module row by row: the same cells either way."""
    delimiter = _delimiter(text)
    plain = _plain_columns(text, delimiter)
    if plain:
        columns, lines = plain
        first = [c[0] for c in columns]
    else:
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            rows, lines = [], []
            for r in reader:
                if any(cell.strip() for cell in r):
                    rows.append([cell.strip() for cell in r])
                    lines.append(reader.line_num)
        except csv.Error as e:
            raise DataError(f"CSV file {path} cannot be read as CSV: {e}") from None
        if not rows:
            raise DataError(f"CSV file {path} is empty")
        first = rows[0]
    first = [_decimal(c, delimiter) for c in first]
    has_header = any(_number(c) is None and not _looks_like_date(c) for c in first)
    if has_header:
        # a quoted name may hold line breaks; messages and run names need it on one line
        header = [" ".join(h.split()) or f"column{i}" for i, h in enumerate(first)]
        lines = lines[1:]
        if not lines:
            raise DataError(f"CSV file {path} has a header ({', '.join(header)}) but no data rows")
    if plain:
        return (header if has_header else [f"column{i}" for i in range(len(columns))],
                [c[1:] if has_header else c for c in columns], lines, delimiter)
    rows = rows[1:] if has_header else rows
    header = header if has_header else [f"column{i}" for i in range(max(map(len, rows)))]
    for row, line in zip(rows, lines):
        if any(row[len(header):]):  # trailing empty cells (a delimiter at the end of a row) are harmless
            raise DataError(f"CSV file {path}: row {line} has {len(row)} cells but the header names "
                            f"{len(header)} columns ({', '.join(header)}); delimiter {delimiter!r}")
    return header, [[row[i] if i < len(row) else "" for row in rows] for i in range(len(header))], lines, delimiter


def _plain_columns(text, delimiter):
    """(columns of stripped cells, file lines) of a table that needs no CSV rules, split at once: no
    quote, no carriage return, no blank row, the same number of cells on every row; else None."""
    if '"' in text or "\r" in text or len(delimiter.encode()) != 1:
        return None
    lines = text.count("\n") + (not text.endswith("\n"))
    buf = np.frombuffer(text.encode(), dtype=np.uint8)          # the delimiter and line ends are one byte each
    ends = np.flatnonzero(buf == 10)
    marks = np.flatnonzero(buf == ord(delimiter))
    width = int(np.searchsorted(marks, ends[0] if len(ends) else len(buf))) + 1
    if width < 2 or len(marks) != (width - 1) * lines or \
            np.any(np.bincount(np.searchsorted(ends, marks), minlength=lines)[:lines] != width - 1):
        return None                                             # rows of other widths: the csv path says which
    space = (buf == 32) | (buf == 9) | (buf == 11) | (buf == 12) | (buf >= 128)  # 128: perhaps a non-ASCII space
    space[marks] = False
    edge = np.zeros(len(buf) + 2, dtype=bool)
    edge[[0, -1]] = True
    edge[ends + 1] = edge[marks + 1] = True                    # edge[i + 1]: byte i ends a cell
    strip = bool(np.any(space & (edge[:-2] | edge[2:])))        # a cell may begin or end with a space
    del buf, ends, marks, space, edge                           # a long file's bytes, before its cells are made
    cells = text.replace(delimiter, "\n").split("\n")
    columns = [cells[j:width * lines:width] for j in range(width)]
    del cells
    if strip:
        columns = [list(map(str.strip, column)) for column in columns]
    if all("" in column for column in columns) and not all(map(any, zip(*columns))):
        return None  # a row of empty cells: a blank row, which the csv path skips
    return columns, range(1, lines + 1)


def _decimal(cell, delimiter):
    """A number cell as float() reads it: thousands separators dropped ("2,710,349", quoted where commas
    separate cells; "1,234.5"; with ; or tab also "2.710.349" and "1.234,5"), a decimal comma read as a
    point ("1,5" where the comma does not separate cells: most of Europe's)."""
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", cell) and (delimiter == "," or cell.count(",") > 1 or "." in cell):
        return cell.replace(",", "")
    if delimiter != "," and re.fullmatch(r"[+-]?\d{1,3}(?:\.\d{3})+,\d+|[+-]?\d{1,3}(?:\.\d{3}){2,}", cell):
        return cell.replace(".", "").replace(",", ".")
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


class Numbers(NamedTuple):
    """A column read as numbers: values (nan where a cell is missing or text), and where it is text."""
    values: np.ndarray
    text: np.ndarray


def _numbers(cells, delimiter):
    """(cells, Numbers, plain ISO times or None) of a column. Where float() reads every cell as
    written, the whole column is converted at once; a column of plain ISO dates (_plain_iso) is no
    number, and its times are kept for _dates; else cell by cell, thousands separators and decimal
    commas first (_decimal, which leaves any cell float() reads as it is), _number for each."""
    try:
        values = np.array(cells, dtype=np.float64)  # float() of each cell, in C
    except (ValueError, TypeError):
        times = _plain_iso(cells) if cells else None
        if times is not None:  # _decimal and _number leave such cells text
            return cells, Numbers(np.full(len(cells), math.nan), np.ones(len(cells), dtype=bool)), times
        return (*_numbers_by_cell(cells, delimiter), None)
    values[~np.isfinite(values)] = math.nan
    return cells, Numbers(values, np.zeros(len(values), dtype=bool)), None


def _numbers_by_cell(cells, delimiter):
    """(cells, Numbers) of a column read cell by cell: _decimal, then _number."""
    cells = [_decimal(c, delimiter) for c in cells]
    read = [_number(c) for c in cells]
    return cells, Numbers(np.array([math.nan if v is None else v for v in read], dtype=np.float64),
                          np.array([v is None for v in read], dtype=bool))


def _looks_like_numbers(numbers):
    """Every non-missing cell is a number and at least one is."""
    return not numbers.text.any() and not np.isnan(numbers.values).all()


def _time_like(name):
    base = re.sub(r"\s*[(\[].*", "", name).strip().lower()  # "time(h)" -> "time"
    return base in ("t", "ds", "year") or base.startswith(("time", "date"))


def _time_axis(header, cols, numbers, col, date_format):
    """(index, kind) of the time axis, kind "date" or "number"; (None, None) without one. In order:
    a first column named like a time or of dates; the first other column named like a time; with
    date_format, the first column; an increasing first number column. The value column the user
    chose (col) is never the axis."""
    def kind(j):
        return "number" if _looks_like_numbers(numbers[j]) and not date_format else "date"
    if len(header) < 2:
        return None, None
    first = next((c for c in cols[0] if c), "")
    if col != 0 and (_time_like(header[0]) or _looks_like_date(first)):
        return 0, kind(0)
    named = [j for j in range(1, len(header)) if j != col and _time_like(header[j])]
    if named:  # wherever it stands (value,date), and before a first column that merely counts up
        return named[0], kind(named[0])
    if col == 0:
        return None, None
    if date_format:
        return 0, "date"
    others = any(_mostly_numbers(numbers[j]) for j in range(1, len(header)) if col in (None, j))
    if _looks_like_numbers(numbers[0]):
        v = numbers[0].values
        with np.errstate(over="ignore", invalid="ignore"):  # inf for 1e308 - -1e308, as Python floats give
            increasing = not np.isnan(v).any() and len(v) > 1 and bool(np.all(np.diff(v) > 0))
        return (0, "number") if increasing and others else (None, None)
    return None, None


def _mostly_numbers(numbers):
    finite = int((~np.isnan(numbers.values)).sum())  # text cells are nan too
    return finite > 0 and finite > int(numbers.text.sum())


def _column_index(column, header, path):
    choices = f"columns: {', '.join(header)} (or an index 0-{len(header) - 1})"
    if isinstance(column, str) and column in header:
        return header.index(column)
    if isinstance(column, int) or str(column).strip().isdigit():
        if int(column) < len(header):
            return int(column)
        raise MissingColumn(f"column {column!r} not found in {path}: it has {len(header)} columns; {choices}")
    raise MissingColumn(f"column {column!r} not found in {path}; {choices}")


def _value_column(header, cols, numbers, axis, path):
    """The last column besides the time axis whose non-empty cells are all numbers."""
    candidates = [j for j in range(len(header)) if j != axis and _looks_like_numbers(numbers[j])]
    if not candidates:
        # a number column spoilt by a few text cells: pick it, so that the error names those cells
        mostly = [j for j in range(len(header)) if j != axis and _mostly_numbers(numbers[j])]
        if mostly:
            return mostly[-1]
        time = f" besides the time axis {header[axis]!r}" if axis is not None else ""
        raise DataError(f"CSV file {path} has no numeric column{time}; columns: {', '.join(header)}")
    last = numbers[candidates[-1]].values
    with np.errstate(over="ignore", invalid="ignore"):  # inf for 1e308 - -1e308
        steps = np.diff(last[~np.isnan(last)])
    if len(candidates) > 1 and len(steps) > 1 and 0 < steps[0] < math.inf and bool(np.all(steps == steps[0])):
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


def _number_times(cells, time):
    """(time, time_format) of a complete number time column: YYYYMM or YYYYMMDD integers are dates
    (the first of the month for YYYYMM) that future times continue on the calendar and write back
    in that form; other integers stay integers (2011 after 2010, not 2011.0); else float64."""
    if all(re.fullmatch(r"[1-9]\d{5}", c) and 1 <= int(c[4:]) <= 12 for c in cells):
        return np.array([f"{c[:4]}-{c[4:]}" for c in cells], dtype="datetime64[M]").astype("datetime64[D]"), "%Y%m"
    if all(re.fullmatch(r"[1-9]\d{7}", c) for c in cells):
        try:
            return _datetime64([datetime.strptime(c, "%Y%m%d") for c in cells]), "%Y%m%d"
        except ValueError:  # 20241301 is a number, not a date
            pass
    if all(re.fullmatch(r"[+-]?\d{1,18}", c) for c in cells):  # 18 digits: within int64
        return np.array([int(c) for c in cells], dtype=np.int64), None
    return time, None


def _values(name, cells, numbers, lines, path):
    """(values, observed) of the value column; text cells are an error."""
    if numbers.text.any():
        raise DataError(f"column {name!r} of {path} has non-numeric values: {_rows(cells, lines, numbers.text)}; "
                        f"fix those cells or choose another column with --column")
    values = numbers.values.copy()
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
_YEAR_MONTH = re.compile(r"(\d{4})([/-])(\d{1,2})")  # 2024-11, 2024/11: the month as a whole
_QUARTER = re.compile(r"(\d{4})([-\s]?)[Qq]([1-4])")  # 1959Q1 (pandas' Period), 1959-Q1: the quarter's first day
# An ISO time as fromisoformat reads it, for the shape it is written in (the separator, seconds, the offset)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:([T ])\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")


def _iso(cell):
    """The datetime of an ISO cell as written (with its UTC offset, if any); None if it is not one."""
    try:
        return datetime.fromisoformat(cell)
    except ValueError:
        return None


def _looks_like_date(cell):
    if _number(cell) is not None:
        return False
    m = _NUMERIC_DATE.fullmatch(cell)
    if m and (len(m[1]) == 4 or len(m[4]) == 4) or _YEAR_MONTH.fullmatch(cell) or _QUARTER.fullmatch(cell):
        return True
    return _iso(cell) is not None


def _dates(name, cells, lines, path, date_format, plain=None):
    """(time, utc_offset, time_format) of a date column. time: datetime64, in UTC where the cells have
    a UTC offset; days where every time is midnight, else seconds or finer. utc_offset: each cell's
    offset (timedelta64[s]), None for times without one. time_format: how future times are written
    back (date_format, or "%Y-%m" for year-month cells), None for ISO. plain: the times of a plain
    ISO column, parsed already (_plain_iso)."""
    if "" in cells:
        raise DataError(f"time column {name!r} of {path} has empty cells: {_rows(cells, lines, [c == '' for c in cells])}; "
                        f"fill them in or remove those rows")
    if plain is not None and not date_format:
        return plain, None, _shape(cells[-1], False)
    times = [None] * len(cells)
    if date_format:
        for k, (cell, line) in enumerate(zip(cells, lines)):
            try:
                times[k] = datetime.strptime(cell, date_format)
            except ValueError:
                raise DataError(f"time column {name!r} of {path}: {cell!r} at row {line} does not match "
                                f"--date_format {date_format!r}") from None
        return (*_utc(name, cells, lines, path, times), date_format)
    unordered = []  # 01/02/2024 style: the column as a whole decides day/month order
    for k, cell in enumerate(cells):
        m = _NUMERIC_DATE.fullmatch(cell)
        if m and len(m[1]) == 4:
            times[k] = (m, int(m[1]), int(m[3]), int(m[4]))
        elif m and len(m[4]) == 4 and m[2] == ".":
            times[k] = (m, int(m[4]), int(m[3]), int(m[1]))
        elif m and len(m[4]) == 4:
            unordered.append(k)
        elif ym := _YEAR_MONTH.fullmatch(cell):
            times[k] = (None, int(ym[1]), int(ym[3]), 1)
        elif q := _QUARTER.fullmatch(cell):
            times[k] = (None, int(q[1]), 3 * int(q[3]) - 2, 1)
        else:
            times[k] = _iso(cell)
            if times[k] is None and k == len(cells) - 1 and k >= 3:  # only the last row: a "Total" or a note below the data
                raise DataError(f"time column {name!r} of {path}: the last row, {lines[k]}, holds {cell!r}, not a "
                                f"time like the rows above it: a footer (a total, a note)? remove that row")
            if times[k] is None:
                raise DataError(f"time column {name!r} of {path}: {cell!r} at row {lines[k]} is not a date "
                                f"(ISO 2024-01-02, 2024/01/02 13:00, 02.01.2024, 01/02/2024, 2024-11); give its "
                                f"format with --date_format, e.g. '%d/%m/%Y %H:%M'")
    day_first = False
    if unordered:
        day_first = _day_first(name, cells, lines, path, unordered)
        for k in unordered:
            m = _NUMERIC_DATE.fullmatch(cells[k])
            day, month = (int(m[1]), int(m[3])) if day_first else (int(m[3]), int(m[1]))
            times[k] = (m, int(m[4]), month, day)
    for k, t in enumerate(times):
        if isinstance(t, tuple):
            m, year, month, day = t
            clock = [int(m[i] or 0) for i in (5, 6, 7)] + [int((m[8] or "0").ljust(6, "0"))] if m else []
            try:
                times[k] = datetime(year, month, day, *clock)
            except ValueError as e:
                raise DataError(f"time column {name!r} of {path}: {cells[k]!r} at row {lines[k]} is not a "
                                f"valid date ({e})") from None
    return (*_utc(name, cells, lines, path, times), _shape(cells[-1], day_first))


# ISO dates without an offset or fractions, each cell written alike: d a digit, ? the "T" or " " between
# date and time. Such a column is parsed at once (_plain_iso); every other goes cell by cell.
_PLAIN_ISO = {10: "dddd-dd-dd", 16: "dddd-dd-dd?dd:dd", 19: "dddd-dd-dd?dd:dd:dd"}


def _plain_iso(cells):
    """datetime64 of a column of _PLAIN_ISO cells, all of one shape, read at once from their code
    points (days where every time is midnight, else seconds: as the cell-by-cell path gives them);
    None for any other column, or one with an invalid date or time (2024-02-30, 24:00), which the
    cell-by-cell path then reads or names."""
    shape = _PLAIN_ISO.get(len(cells[0]))
    if shape is None:
        return None
    try:  # one byte per character: a million cells hold 19 MB here, not the 150 MB of 4-byte code points
        codes = np.frombuffer("".join(cells).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:  # a non-ASCII character: no digit of a plain ISO time
        return None
    if codes.size != len(cells) * len(shape):  # a cell of another length
        return None
    codes = codes.reshape(len(cells), len(shape))
    digits = codes[:, [i for i, kind in enumerate(shape) if kind == "d"]] - np.uint8(48)  # below "0" wraps past 9
    marks = [i for i, kind in enumerate(shape) if kind in "-:"]
    if (digits > 9).any() or (codes[:, marks] != [ord(shape[i]) for i in marks]).any():
        return None
    if len(shape) > 10 and not (codes[0, 10] in (32, 84) and (codes[:, 10] == codes[0, 10]).all()):
        return None                                             # " " or "T" between date and time, the same in all

    def field(first, width):  # the number at digits first .. first + width - 1, a column at a time
        return sum(digits[:, first + i].astype(np.int64) * 10 ** (width - 1 - i) for i in range(width))
    year, month, day = field(0, 4), field(4, 2), field(6, 2)
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    if not ((year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (days.astype("datetime64[M]") == months)).all():
        return None                                            # day 0, month 13, February 30
    if len(shape) == 10:
        return days
    hours, minutes = field(8, 2), field(10, 2)
    seconds = field(12, 2) if len(shape) == 19 else 0
    if not ((hours < 24) & (minutes < 60) & (seconds < 60)).all():
        return None
    times = days.astype("datetime64[s]") + (hours * 3600 + minutes * 60 + seconds).astype("timedelta64[s]")
    return days if not (times.astype(np.int64) % 86400).any() else times


def _shape(cell, day_first):
    """The strftime format a date cell is written in, so that future times are written alike:
    "%d.%m.%Y", "%Y-%m-%d %H:%M", "%Y-%m", "%YQ%q" (%q: the quarter), ISO with "Z" or "%:z" (+02:00);
    None where a cell has no shape of these (ISO's own text is then written)."""
    if m := _NUMERIC_DATE.fullmatch(cell):
        sep = m[2]
        date = f"%Y{sep}%m{sep}%d" if len(m[1]) == 4 else "%d.%m.%Y" if sep == "." else \
            f"%d{sep}%m{sep}%Y" if day_first else f"%m{sep}%d{sep}%Y"
        clock = "" if not m[5] else cell[m.end(4)] + "%H:%M" + (":%S" if m[7] else "") + (".%f" if m[8] else "")
        return date + clock
    if ym := _YEAR_MONTH.fullmatch(cell):  # 2025-01 after 2024-12
        return f"%Y{ym[2]}%m"
    if q := _QUARTER.fullmatch(cell):  # 2009Q4 after 2009Q3
        return f"%Y{q[2]}{cell[-2]}%q"
    if iso := _ISO.fullmatch(cell):
        clock = "" if not iso[1] else iso[1] + "%H:%M" + (":%S" if iso[2] else "") + (".%f" if iso[3] else "")
        zone = {None: "", "Z": "Z"}.get(iso[4], "%:z" if iso[4] and ":" in iso[4] else "%z")
        return "%Y-%m-%d" + clock + zone
    return None


def _utc(name, cells, lines, path, times):
    """(datetime64 in UTC, their UTC offsets as timedelta64[s] or None) of datetimes that all have an
    offset or none: UTC keeps the order right across offsets (summer time); the offsets give back
    each time's wall clock, and the last one writes future times."""
    offsets = [t.utcoffset() for t in times]
    aware = [o is not None for o in offsets]
    if any(aware) and not all(aware):
        i, j = aware.index(True), aware.index(False)
        raise DataError(f"time column {name!r} of {path} mixes times with a UTC offset ({cells[i]!r} at row "
                        f"{lines[i]}) and without ({cells[j]!r} at row {lines[j]}); give every time an offset, or none")
    for k, t in enumerate(times):
        if t.tzinfo:
            try:
                times[k] = t.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:
                raise DataError(f"time column {name!r} of {path}: {cells[k]!r} at row {lines[k]} is outside the "
                                f"years 1-9999 in UTC") from None
    offsets = np.array([int(o.total_seconds()) for o in offsets], dtype="timedelta64[s]") if all(aware) else None
    return _datetime64(times), offsets


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
