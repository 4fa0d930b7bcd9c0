"""data/: data sets, CSV parsing, windows, splits, normalisation, download and their errors."""
import hashlib
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import needs_formaldehyde, run_script
from data import (DATASETS, DataError, check_time_steps, load_series, make_windows, normalise,
                  split_indices)
from data.download import FILES, default_data_dir


def test_embedded_data_sets_are_real_recordings():
    membrane = load_series("membrane")
    assert len(membrane.values) == 3000 and membrane.values.std() > 0  # 12000 samples, block means of 4
    assert membrane.time[1] == 4 and membrane.values.max() > -0.1    # spikes survive
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


def test_random_split_is_the_logs_and_chrono_is_ordered():
    g = torch.Generator().manual_seed(42)
    train, val = torch.utils.data.random_split(range(637), [0.8, 0.2], generator=g)
    t, v = split_indices(637, "random")
    assert t.tolist() == train.indices and v.tolist() == val.indices
    t, v = split_indices(637, "chrono")
    assert t.tolist() == list(range(510)) and v.tolist() == list(range(510, 637))
    t, v = split_indices(2, "random")  # the shortest series still validates on one window
    assert len(t) == 1 and len(v) == 1
    with pytest.raises(DataError, match="choose one of random, chrono"):
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
    for name, (filename, sha) in FILES.items():
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
    for filename, _ in FILES.values():
        shutil.copy(os.path.join(default_data_dir(), filename), mirror / filename)
    r = run_script("data/download.py", "--data_dir", target, "--base_url", mirror.as_uri() + "/")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(target)) == sorted(f for f, _ in FILES.values())

    (mirror / "w+y.csv").write_text("time(h),formaldehyde(ug/m³)\n0,1\n")
    (target / "w+y.csv").unlink()
    r = run_script("data/download.py", "--data_dir", target, "--base_url", mirror.as_uri() + "/")
    assert r.returncode == 1 and "checksum mismatch" in r.stderr
    assert not (target / "w+y.csv").exists() and not [f for f in os.listdir(target) if f.startswith(".")]


def test_dataset_names_are_the_logs():
    assert DATASETS == ("membrane", "goog", "y_w", "w_y", "4single")
