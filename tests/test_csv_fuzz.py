"""load_series on a few hundred small random CSVs: each loads finite float64 values with a
consistent Series, or raises DataError with a one-line message; never another exception."""
import json
import random

import numpy as np
import pytest

from data import FILL_MODES, DataError, future_times, load_series

CELLS = ["0", "1", "-2.5", "3e2", "1e308", "-1e308", "1e999", "", " ", "nan", "NaN", "inf", "-inf", "NA",
         "abc", "é", "température", '"1,5"', "1,5", "2024-01-02", "2024-01-02T13:00", "01/02/2024",
         "13/01/2024", "02.01.2024", "2024/01/02 13:00:05", "2024-02-30", "12:00", "\x00", "'", '"']
HEADERS = ["date", "time(h)", "t", "year", "value", "co2", "label", "id", "", "1", "é"]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16"]


def random_csv(rng):
    delimiter = rng.choice([",", ";", "\t"])
    width, height = rng.randint(1, 4), rng.randint(0, 8)
    lines = []
    if rng.random() < 0.8:
        lines.append([rng.choice(HEADERS) for _ in range(width)])
    kind, dates = rng.random(), rng.random() < 0.5
    for k in range(height):
        if kind < 0.5:  # a tidy series: dates or numbers, then values with some holes
            row = [f"2024-01-{k + 1:02d}" if dates else str(k)]
            row += [rng.choice([str(rng.uniform(-5, 5)), "", "nan", "1e308"]) for _ in range(width - 1)]
        elif kind < 0.6:  # only dates
            row = [f"{k + 1:02d}/0{rng.randint(1, 9)}/2024" for _ in range(width)]
        else:
            row = [rng.choice(CELLS) for _ in range(width)]
        if rng.random() < 0.15:  # ragged
            row = row[:rng.randint(0, len(row))] if rng.random() < 0.5 else row + [rng.choice(CELLS)]
        lines.append(row)
    text = "".join(delimiter.join(row) + rng.choice(["\n", "\r\n"]) for row in lines)
    try:
        return text.encode(rng.choice(ENCODINGS))
    except UnicodeEncodeError:
        return text.encode("utf-8")


def test_random_csvs_load_or_fail_in_one_line(tmp_path):
    rng = random.Random(0)
    loaded = failed = 0
    for case in range(400):
        content = random_csv(rng)
        path = tmp_path / f"case{case}.csv"
        path.write_bytes(content)
        kwargs = {"fill": rng.choice((None,) + FILL_MODES),
                  "column": rng.choice([None, None, None, "0", "1", "2", "value", "nope"]),
                  "date_format": rng.choice([None, None, None, "%d/%m/%Y", "%Y-%m-%d"])}
        try:
            s = load_series(str(path), **kwargs)
        except DataError as e:
            assert "\n" not in str(e) and str(e), (content, kwargs, str(e))
            failed += 1
            continue
        where = (content, kwargs)
        assert s.values.dtype == np.float64 and np.isfinite(s.values).all(), where
        assert len(s.values) == len(s.time) == len(s.observed) > 0, where
        assert s.observed.dtype == bool and s.filled == (~s.observed).sum(), where
        assert kwargs["fill"] in ("interpolate", "ffill") or s.observed.all(), where
        assert s.time.dtype.kind in "Mfi", where
        if len(s.values) > 1:
            times, how = future_times(s, 3)
            assert len(times) == 3 and (times > s.time[-1]).all() and how, where
        loaded += 1
    assert loaded > 30 and failed > 30, (loaded, failed)  # both paths exercised


def test_random_csvs_through_train_py_end_to_end(tmp_path):
    """A few random CSVs, long enough to train on, through train.py itself: each either trains
    (a complete run directory with weights) or ends in one line with exit 2 and writes nothing."""
    import os

    from conftest import run_main

    rng = random.Random(7)
    outcomes = set()
    for case in range(12):
        n = rng.randint(20, 60)
        lines = ["date,v" if rng.random() < 0.5 else "t;v"]
        sep = "," if lines[0].startswith("date") else ";"
        for k in range(n):
            bad = ["", "abc", "1e308", "inf"] if case % 3 == 0 else [""] if case % 3 == 1 else []
            value = rng.choice([f"{rng.uniform(-5, 5):.3f}"] * 20 + bad)
            lines.append(f"2024-01-{1 + k // 24:02d}T{k % 24:02d}:00{sep}{value}" if sep == "," else f"{k}{sep}{value}")
        path = tmp_path / f"fuzz{case}.csv"
        path.write_text("\n".join(lines) + "\n", encoding=rng.choice(["utf-8", "utf-8-sig"]))
        out = tmp_path / f"runs{case}"
        fill = ["--fill", rng.choice(FILL_MODES)] if rng.random() < 0.5 else []
        r = run_main("train.py", "--model", "linear", "--dataset", path, "--time_steps", "4", "--epochs", "1",
                     "--out_dir", out, *fill)
        assert "Traceback" not in r.stderr
        if r.returncode == 0:
            run_dirs = [d for d, _, files in os.walk(out) if "model.pt" in files]
            assert len(run_dirs) == 1 and not os.path.basename(run_dirs[0]).startswith(".")
            # the stored statistics are numpy's of the training part (the first 70%) of what loaded
            values = load_series(path, fill=fill[1] if fill else None).values
            train_part = values[:round(0.7 * len(values))]
            config = json.load(open(os.path.join(run_dirs[0], "config.json")))
            assert (config["normalisation"]["mean"], config["normalisation"]["std"]) == \
                pytest.approx((train_part.mean(), train_part.std()), rel=1e-9)
            outcomes.add("trained")
        else:
            assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
            assert not os.path.exists(out) or not any(files for _, _, files in os.walk(out))
            outcomes.add("refused")
    assert outcomes == {"trained", "refused"}  # both paths were exercised


# ---------------------------------------------------------------- the fast paths read what the slow ones read (issue 37)

def plain_csv(rng):
    """A random table of the kinds the fast paths take (and some they must refuse): "\\n" line ends, ISO
    times of one shape, numbers, padded cells, empty cells, blank rows, quotes, rows of other widths."""
    delimiter = rng.choice([",", ";", "\t"])
    width, height = rng.randint(1, 4), rng.randint(1, 12)
    shape = rng.choice(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y"])
    start = np.datetime64("2023-12-31T22:00") + rng.randint(0, 5000)
    rows = [[rng.choice(["time", "date", "value", "y", "ü x"]) for _ in range(width)]] if rng.random() < 0.8 else []
    for k in range(height):
        t = (start + np.timedelta64(k * rng.choice([1, 60, 1440]), "m")).astype(object)
        row = [t.strftime(shape) if rng.random() > 0.03 else rng.choice(["2024-02-30", "2024-01-01 24:00", ""])]
        row += [rng.choice([f"{rng.uniform(-9, 9):.3f}", str(rng.randint(0, 99)), "", " 4.5 ", "nan", "1,5", "NA",
                            "1e999", "x", "\u00a07"]) if rng.random() < 0.3 else f"{rng.uniform(-9, 9):.4f}"
                for _ in range(width - 1)]
        if rng.random() < 0.05:
            row = [""] * width                                         # a blank row
        if rng.random() < 0.04:
            row = row[:-1] if len(row) > 1 else row + ["1"]            # another width
        rows.append(row)
    text = "".join(delimiter.join(row) + "\n" for row in rows)
    if rng.random() < 0.05:
        text = text.replace("\n", '"\n', 1)                           # a quote: the csv module's
    return text.encode("utf-8")


def test_the_fast_paths_read_what_the_cell_by_cell_paths_read(tmp_path, monkeypatch):
    """read_csv with its fast paths (the table split at once, numbers and ISO times converted a column at
    a time) against read_csv with them turned off: the same arrays, the same fields, the same errors."""
    from data import csvfile
    rng, took = random.Random(1), 0

    def read(path, **kwargs):
        try:
            return csvfile.read_csv(str(path), **kwargs)
        except DataError as e:
            return str(e)
    for case in range(300):
        path = tmp_path / f"plain{case}.csv"
        path.write_bytes(plain_csv(rng))
        kwargs = {"fill": rng.choice([None, "interpolate"]), "column": rng.choice([None, None, "1"])}
        took += csvfile._plain_columns(path.read_text(), csvfile._delimiter(path.read_text())) is not None
        fast = read(path, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(csvfile, "_plain_columns", lambda text, delimiter: None)
            m.setattr(csvfile, "_numbers", lambda cells, delimiter: (*csvfile._numbers_by_cell(cells, delimiter), None))
            slow = read(path, **kwargs)
        assert type(fast) is type(slow), (path.read_text(), fast, slow)
        if isinstance(fast, str):
            assert fast == slow
            continue
        assert fast.keys() == slow.keys()
        for key in fast:
            a, b = fast[key], slow[key]
            same = (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")) \
                if isinstance(a, np.ndarray) else a == b
            assert same, (key, path.read_text(), a, b)
    assert took > 90  # many tables went the fast way
