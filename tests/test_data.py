"""data/: data sets, CSV parsing, windows, splits, normalisation, download and their errors."""
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import needs_formaldehyde, run_script
from data import (DATASETS, DataError, check_time_steps, load_series, make_windows, normalise,
                  future_times, split_indices, split_series)
from data.download import FILES, LOG_SERIES, default_data_dir


def test_embedded_data_sets_are_real_recordings():
    membrane = load_series("membrane")
    assert len(membrane.values) == 3000 and membrane.values.std() > 0  # 12000 samples, block means of 4
    assert membrane.time[1] == 4 and membrane.values.max() > -0.1    # spikes survive
    from matplotlib import cbook  # the raw file read on its own: value k is the mean of samples 4k ... 4k + 3
    raw = np.fromfile(cbook.get_sample_data("membrane.dat", asfileobj=False), dtype="<f4")
    for k in (0, 1, 1234, 2999):
        assert membrane.values[k] == pytest.approx(sum(float(r) for r in raw[4 * k:4 * k + 4]) / 4, rel=1e-12)
    goog = load_series("goog")
    assert len(goog.values) == 1047 and goog.time_label == "date"
    assert goog.column == "adj_close"  # the last numeric column
    assert load_series("goog", "open").values[0] == pytest.approx(100.0)


def test_csv_time_column_labels_and_default_column(sine_csv):
    s = load_series(str(sine_csv))
    assert s.name == "sine" and s.time_label == "time(s)" and s.value_label == "level(m)"
    assert s.time[1] == pytest.approx(0.5) and len(s.values) == 300


def test_csv_column_choice_and_dates(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text("date,a,b\n2024-01-01,1,10\n2024-01-02,2,20\n2024-01-03,3,31\n")
    assert list(load_series(str(path)).values) == [10, 20, 31]  # last numeric column
    s = load_series(str(path), "a")
    assert list(s.values) == [1, 2, 3] and s.time.dtype.kind == "M" and s.time_label == "date"


@pytest.mark.parametrize("content, message", [
    ("t,v\n0,1\n1,abc\n2,3\n3,nan\n", "column 'v' of .* has non-numeric values: row 3 ('abc');"),
    ("t,v\n0,1\n1,inf\n2,3\n3,nan\n", "missing values (empty, NaN or inf): row 3 ('inf'), row 5 ('nan');"),
])
def test_bad_values_name_their_rows(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_series(str(path))


def test_unknown_names_list_the_choices(sine_csv, tmp_path):
    with pytest.raises(DataError, match="choose one of membrane, goog, y_w, w_y, 4single"):
        load_series("nope")
    with pytest.raises(DataError, match=r"column 'depth' not found .*columns: time\(s\), level\(m\)"):
        load_series(str(sine_csv), "depth")
    with pytest.raises(DataError, match="not found"):
        load_series(str(tmp_path / "missing.csv"))


def test_missing_formaldehyde_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"python data/download.py"):
        load_series("y_w", data_dir=str(tmp_path))


def test_time_steps_limits():
    with pytest.raises(DataError, match="at least 1"):
        check_time_steps(100, 0)
    with pytest.raises(DataError, match="needs at least 12"):
        check_time_steps(11, 10)
    check_time_steps(12, 10)


def test_windows_both_layouts():
    z = np.arange(10, dtype=np.float64)
    x, y = make_windows(z, 4, "aligned")
    assert x.shape == (6, 4, 1) and y.shape == (6, 4, 1)
    assert x[2, :, 0].tolist() == [2, 3, 4, 5] and y[2, :, 0].tolist() == [3, 4, 5, 6]
    x, y = make_windows(z, 4, "last")
    assert y.shape == (6, 1) and y[2, 0] == 6 and x[-1, -1, 0] == 8 and y[-1, 0] == 9


def test_random_split_is_the_logs():
    """The log's code: random_split(dataset, [int(0.8 n), n - int(0.8 n)]) with generator seed 42:
    y_w at 96 steps gives 509 training and 128 validation windows."""
    g = torch.Generator().manual_seed(42)
    train, val = torch.utils.data.random_split(range(637), [509, 128], generator=g)
    t, v = split_indices(637, "random")
    assert t.tolist() == train.indices and v.tolist() == val.indices
    t, v = split_indices(2, "random")  # the shortest series still validates on one window
    assert len(t) == 1 and len(v) == 1
    with pytest.raises(DataError, match="choose one of chrono, random"):
        split_indices(10, "shuffle")


def test_normalise_stats():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    z, mean, std = normalise(values)
    assert mean == 2.5 and std == pytest.approx(np.std(values))
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    with pytest.raises(DataError, match="constant"):
        normalise(np.ones(5))


@needs_formaldehyde
def test_formaldehyde_series_and_checksums():
    rows = {"y_w": 733, "w_y": 728, "4single": 1785}
    for name in LOG_SERIES:
        filename, sha, _ = FILES[name]
        path = os.path.join(default_data_dir(), filename)
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sha
        s = load_series(name)
        assert len(s.values) == rows[name]
        assert s.time_label == "time(h)" and s.value_label == "formaldehyde(ug/m³)"


@needs_formaldehyde
def test_download_verifies_checksums(tmp_path):
    """download.py against a local mirror: good files land, a corrupted one is refused and removed."""
    mirror, target = tmp_path / "mirror", tmp_path / "target"
    mirror.mkdir()
    target.mkdir()
    files = [FILES[name][0] for name in LOG_SERIES]
    for filename in files:
        shutil.copy(os.path.join(default_data_dir(), filename), mirror / filename)
    r = run_script("data/download.py", *LOG_SERIES, "--data_dir", target, "--base_url", mirror.as_uri() + "/")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(target)) == sorted(files)
    for filename in files:  # byte for byte what the mirror serves
        assert (target / filename).read_bytes() == (mirror / filename).read_bytes(), filename

    (mirror / "w+y.csv").write_text("time(h),formaldehyde(ug/m³)\n0,1\n")
    (target / "w+y.csv").unlink()
    r = run_script("data/download.py", *LOG_SERIES, "--data_dir", target, "--base_url", mirror.as_uri() + "/")
    assert r.returncode == 1 and "checksum mismatch" in r.stderr
    assert not (target / "w+y.csv").exists() and not [f for f in os.listdir(target) if f.startswith(".")]


def test_dataset_names_are_the_logs_and_the_fields():
    assert DATASETS == ("membrane", "goog", "y_w", "w_y", "4single", "ETTh1", "ETTh2")


# ---------------------------------------------------------------- CSV files as users write them

def write(tmp_path, content, name="data.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def error(path, *fragments, **kwargs):
    """The one-line DataError that load_series(path, **kwargs) raises, checked for fragments."""
    with pytest.raises(DataError) as e:
        load_series(path, **kwargs)
    message = str(e.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("content", [
    "date;temp\n2024-01-01;1.5\n2024-01-02;-2\n2024-01-03;4\n",
    "date\ttemp\n2024-01-01\t1.5\n2024-01-02\t-2\n2024-01-03\t4\n",
    b"\xef\xbb\xbfdate,temp\r\n2024-01-01,1.5\r\n2024-01-02,-2\r\n2024-01-03,4\r\n",  # Excel's UTF-8
    "date;temp\n2024-01-01;1,5\n2024-01-02;-2\n2024-01-03;4,0\n",                    # decimal comma
    "date\ttemp\n2024-01-01\t1.5\n2024-01-02\t-2\n2024-01-03\t4\n".encode("utf-16"),
])
def test_delimiters_and_encodings(tmp_path, content):
    s = load_series(write(tmp_path, content))
    assert s.column == "temp" and s.time_label == "date"
    assert s.values.tolist() == [1.5, -2.0, 4.0]
    assert s.time.tolist() == [np.datetime64("2024-01-01").item(), np.datetime64("2024-01-02").item(),
                               np.datetime64("2024-01-03").item()]


def test_latin1_is_one_line_naming_the_byte(tmp_path):
    path = write(tmp_path, "date,température\n2024-01-01,1\n".encode("latin-1"))
    error(path, "is not UTF-8: byte 0xe9 at line 1; save it as UTF-8", path)


def test_path_and_checksum(tmp_path, monkeypatch):
    path = write(tmp_path, "t,v\n0,1\n1,2\n")
    monkeypatch.chdir(tmp_path)
    s = load_series("data.csv")
    assert s.source == path and s.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
    error("nope.csv", "CSV file 'nope.csv' not found", str(tmp_path / "nope.csv"))


def test_text_label_column_is_not_the_series(tmp_path):
    error(write(tmp_path, "date,label\n2024-01-01,a\n2024-01-02,b\n"),
          "has no numeric column besides the time axis 'date'; columns: date, label")
    s = load_series(write(tmp_path, "date,co2,label\n2024-01-01,1,a\n2024-01-02,2,b\n2024-01-03,5,c\n"))
    assert s.column == "co2" and s.values.tolist() == [1, 2, 5]


def test_value_column_is_read_from_all_rows(tmp_path):
    # the first co2 cell is empty: co2 is still the series (with a gap), never the year
    path = write(tmp_path, "year,co2\n2000,\n2001,3\n2002,4\n")
    error(path, "column 'co2'", "missing values (empty, NaN or inf): row 2 ('')",
          "--fill interpolate|ffill|drop")
    s = load_series(path, fill="drop")
    assert s.column == "co2" and s.values.tolist() == [3, 4] and s.time.tolist() == [2001, 2002]
    error(write(tmp_path, "date,co2\n2024-01-01,\n2024-01-02,3\n"), "column 'co2'", "row 2 ('')", "--fill")


def test_time_axis_of_numbers(tmp_path):
    # a strictly increasing first column is the time, unless it is the only number column
    s = load_series(write(tmp_path, "a,b\n1,5\n2,3\n4,6\n"))
    assert s.column == "b" and s.time_label == "a" and s.time.tolist() == [1, 2, 4]
    s = load_series(write(tmp_path, "a,note\n1,x\n2,y\n4,z\n"))
    assert s.column == "a" and s.time_label == "sample" and s.time.tolist() == [0, 1, 2]
    s = load_series(write(tmp_path, "a,b\n3,5\n2,3\n4,6\n"))  # not increasing: the index is the time
    assert s.column == "b" and s.time.tolist() == [0, 1, 2]
    s = load_series(write(tmp_path, "5\n6\n7\n"))  # no header, one column
    assert s.column == "column0" and s.values.tolist() == [5, 6, 7]


def test_column_by_name_or_index(tmp_path):
    path = write(tmp_path, "date,a,b\n2024-01-01,1,10\n2024-01-02,2,20\n2024-01-03,3,31\n")
    assert load_series(path, "1").values.tolist() == [1, 2, 3]
    assert load_series(path, 2).values.tolist() == [10, 20, 31]
    assert load_series(path, "a").column == "a"
    error(path, "column '3' not found", "it has 3 columns", "columns: date, a, b (or an index 0-2)", column="3")
    error(path, "column 'date' of", "non-numeric values: row 2 ('2024-01-01')", column="0")


def test_a_counting_last_column_is_ambiguous(tmp_path):
    path = write(tmp_path, "date,temp,id\n2024-01-01,4.5,1\n2024-01-02,3.5,2\n2024-01-03,5,3\n")
    error(path, "'id' counts up by 1", "candidates: temp, id", "--column")
    assert load_series(path, "temp").values.tolist() == [4.5, 3.5, 5]


@pytest.mark.parametrize("cells, expected", [
    (["2024-01-02", "2024-01-03"], ["2024-01-02", "2024-01-03"]),
    (["2024-01-02T13:00:00", "2024-01-02T14:00:00"], ["2024-01-02T13:00:00", "2024-01-02T14:00:00"]),
    (["2024-01-02T13:00:00+01:00", "2024-01-02T14:00Z"], ["2024-01-02T12:00:00", "2024-01-02T14:00:00"]),
    (["2024/01/02 13:00", "2024/01/02 14:00"], ["2024-01-02T13:00:00", "2024-01-02T14:00:00"]),
    (["02.01.2024", "03.01.2024"], ["2024-01-02", "2024-01-03"]),           # day.month.year
    (["02.01.2024 13:00:05", "02.01.2024 13:00:06"], ["2024-01-02T13:00:05", "2024-01-02T13:00:06"]),
    (["13/01/2024", "01/02/2024"], ["2024-01-13", "2024-02-01"]),          # 13 can only be a day
    (["01/13/2024", "02/01/2024"], ["2024-01-13", "2024-02-01"]),          # 13 can only be a day
    (["01-13-2024 08:30", "02-01-2024 09:30"], ["2024-01-13T08:30:00", "2024-02-01T09:30:00"]),
    (["05/05/2024", "06/06/2024"], ["2024-05-05", "2024-06-06"]),          # either order agrees
])
def test_dates(tmp_path, cells, expected):
    s = load_series(write(tmp_path, "when,v\n" + "".join(f"{c},{k}\n" for k, c in enumerate(cells))))
    assert s.time.dtype.kind == "M" and s.time_label == "when"
    assert s.time.tolist() == np.array(expected, dtype=s.time.dtype).tolist()


def test_ambiguous_day_month_needs_date_format(tmp_path):
    path = write(tmp_path, "date,v\n01/02/2024,1\n02/02/2024,2\n03/02/2024,3\n")
    error(path, "'01/02/2024' (row 2) could be day/month or month/day",
          "--date_format '%d/%m/%Y' or '%m/%d/%Y'")
    s = load_series(path, date_format="%d/%m/%Y")
    assert s.time.tolist() == np.array(["2024-02-01", "2024-02-02", "2024-02-03"], dtype="datetime64[D]").tolist()
    s = load_series(path, date_format="%m/%d/%Y")
    assert str(s.time[2]) == "2024-03-02"
    error(path, "'01/02/2024' at row 2 does not match --date_format '%d.%m.%Y'", date_format="%d.%m.%Y")
    error(write(tmp_path, "date,v\n13/01/2024,1\n01/13/2024,2\n"), "mixes day/month ('13/01/2024' at row 2)",
          "month/day ('01/13/2024' at row 3)")
    error(write(tmp_path, "date,v\n2024-01-01,1\nsoon,2\n"), "'soon' at row 3 is not a date", "--date_format")
    error(write(tmp_path, "date,v\n2024-02-30,1\n"), "'2024-02-30' at row 2 is not a valid date (day is out of range")


def test_future_times_continue_the_median_step(tmp_path):
    # Monday to Wednesday, then Friday: no weekend skipped, so days, and the gap of 2 makes it a guess
    daily = load_series(write(tmp_path, "date,v\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n2024-01-05,4\n"))
    times, how = future_times(daily, 2)
    assert times.tolist() == np.array(["2024-01-06", "2024-01-07"], dtype="datetime64[D]").tolist()
    assert how.startswith("every 1 day (the median gap; gaps vary from 1 day to 2 days")
    hourly = load_series(write(tmp_path, "time,v\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 02:00,3\n"))
    times, how = future_times(hourly, 1)
    assert times[0] == np.datetime64("2024-01-01T03:00") and how == "every 1 hour"
    assert future_times(load_series(write(tmp_path, "t,v\n0,1\n0.5,2\n1.0,3\n")), 2)[0].tolist() == [1.5, 2.0]
    assert future_times(load_series(write(tmp_path, "v\n1\n2\n3\n")), 2)[0].tolist() == [3, 4]


GAPPY = "t,v\n0,\n1,2\n2,nan\n3,\n4,8\n5,inf\n"  # v: _ 2 _ _ 8 _


@pytest.mark.parametrize("fill, values, observed", [
    ("interpolate", [2, 2, 4, 6, 8, 8], [0, 1, 0, 0, 1, 0]),   # ends take the nearest observed value
    ("ffill", [2, 2, 2, 2, 8, 8], [0, 1, 0, 0, 1, 0]),         # the start takes the first observed one
    ("drop", [2, 8], [1, 1]),
])
def test_fill_modes(tmp_path, fill, values, observed):
    path = write(tmp_path, GAPPY)
    error(path, "row 2 (''), row 4 ('nan'), row 5 (''), row 7 ('inf')", "--fill interpolate|ffill|drop")
    s = load_series(path, fill=fill)
    assert s.values.tolist() == values and s.observed.tolist() == [bool(o) for o in observed]
    assert s.filled == observed.count(0) and len(s.time) == len(s.values)
    if fill == "drop":
        assert s.time.tolist() == [1, 4]
    error(path, "unknown fill 'mean'; choose one of interpolate, ffill, drop", fill="mean")


def test_fill_never_overflows_and_leaves_text_alone(tmp_path):
    s = load_series(write(tmp_path, "t,v\n0,1e308\n1,\n2,-1e308\n"), fill="interpolate")
    assert s.values.tolist() == [1e308, 0.0, -1e308]
    error(write(tmp_path, "t,v\n0,1\n1,n.a.\n2,3\n"), "non-numeric values: row 3 ('n.a.')", fill="interpolate")
    path = write(tmp_path, "t,v\n0,\n1,nan\n")
    error(path, "no numeric column besides the time axis 't'", fill="ffill")
    error(path, "column 'v'", "has no values, only empty, NaN or inf cells", fill="ffill", column="v")


def test_header_only_ragged_rows_and_empty_time_cells(tmp_path):
    error(write(tmp_path, "date,v\n"), "has a header (date, v) but no data rows")
    error(write(tmp_path, "date,v\n2024-01-01,1,7\n"), "row 2 has 3 cells but the header names 2 columns")
    assert load_series(write(tmp_path, "date,v,\n2024-01-01,1,\n2024-01-02,2,\n")).values.tolist() == [1, 2]
    s = load_series(write(tmp_path, "date,a,b\n2024-01-01,1,2\n2024-01-02,3\n"), fill="ffill")  # short row
    assert s.values.tolist() == [2, 2] and s.observed.tolist() == [True, False]
    error(write(tmp_path, "date,v\n2024-01-01,1\n,2\n"), "time column 'date'", "empty cells: row 3 ('')")
    error(write(tmp_path, "time,v\n0,1\n,2\n"), "time column 'time'", "row 3 ('')")


@pytest.mark.parametrize("split, target", [("chrono", "aligned"), ("chrono", "last"), ("random", "aligned")])
def test_windows_are_read_out_of_the_series_not_materialised(split, target):
    """issue 37: every window tensor of a split holds the series once (N floats), not N x T; a batch
    gathered by index is numpy's windows of the normalised series."""
    n, t = 5000, 96
    values = np.sin(np.arange(n) / 9) + np.arange(n) / 1000
    s = split_series(values, t, target, split)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        w = getattr(s, name)
        assert w.series.untyped_storage().nbytes() <= 4 * n, name        # float32 values of (a part of) the series
        assert w.starts.untyped_storage().nbytes() <= 8 * n, name        # one start per window
    assert s.x_train.starts is s.y_train.starts                           # windows and targets share them
    z = torch.as_tensor(s.z, dtype=torch.float32).numpy()
    idx = torch.tensor([7, 0, 1234, len(s.x_train) - 1])
    starts = s.x_train.starts[idx].numpy()                                # random: the split's own order
    want = np.stack([z[a:a + t] for a in starts])
    assert np.array_equal(s.x_train[idx][..., 0].numpy(), want)
    last = s.y_train[idx][:, -1, 0] if target == "aligned" else s.y_train[idx][:, 0]
    assert np.array_equal(last.numpy(), z[starts + t])
    if target == "aligned":  # one position of every window, read without materialising them
        for position in (-1, 0, 5, -t):
            assert np.array_equal(s.y_val[:, position].numpy(), s.y_val[:][:, position].numpy())
            got = s.x_train[3:9, position][:, 0].numpy()
            assert np.array_equal(got, want_at(z, s.x_train.starts[3:9], position, t))


def want_at(z, starts, position, t):
    """numpy: value `position` (negative from the end) of the windows of t values starting at starts."""
    return z[starts.numpy() + position % t]


READ_AND_MEASURE = """
import sys
sys.path.insert(0, sys.argv[1])
def resident():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
import numpy as np
from data import load_series
before = resident()
s = load_series(sys.argv[2])
print(resident() - before, len(s.values), float(s.values.sum()), str(s.time[-1]))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_a_long_csv_read_leaves_what_it_freed_to_the_system(tmp_path):
    """issue 37: reading 400,000 rows makes ~800,000 cell strings and arrays the file's size; what
    stays resident afterwards is the series (values, times, observed: 17 bytes a row) and little
    more, not the ~110 bytes a row the freed cells kept in the heap before the reader gave them back."""
    n = 400_000
    minutes = np.arange(n)
    times = np.datetime64("2021-03-01T00:00") + minutes.astype("timedelta64[m]")
    values = np.round(np.sin(minutes / 50.0) * 10, 3)
    path = tmp_path / "long.csv"
    path.write_text("time,value\n" + "\n".join(f"{str(t).replace('T', ' ')},{v}" for t, v in zip(times, values)) + "\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", READ_AND_MEASURE, root, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kept, rows, total, last = out.stdout.split()
    assert int(rows) == n and float(total) == pytest.approx(values.sum(), abs=1e-6)     # the file's numbers
    assert last == str(times[-1].astype("datetime64[s]"))                               # the last time
    assert int(kept) < 50 * n, f"{int(kept) / n:.0f} bytes a row stayed resident after reading"
