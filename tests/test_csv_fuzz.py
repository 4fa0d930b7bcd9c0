"""load_series on a few hundred small random CSVs: each loads finite float64 values with a
consistent Series, or raises DataError with a one-line message; never another exception."""
import random

import numpy as np

from data import FILL_MODES, DataError, load_series, time_step

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
            step = time_step(s)
            assert isinstance(step, (np.timedelta64, float, int)), where
        loaded += 1
    assert loaded > 30 and failed > 30, (loaded, failed)  # both paths exercised
