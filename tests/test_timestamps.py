"""Time axes that are not clean: rows out of order and repeated times are errors naming the rows;
calendar series (month ends, one day of the month, quarters, years, business days) continue on
the calendar; any other spacing continues its median step and says it is a guess.

Expected dates come from datetime and calendar arithmetic written here, not from data.future_times.
"""
import calendar
import csv
import os
from datetime import date, datetime, timedelta

import numpy as np
import pytest

import config
import train
from conftest import run_main
from data import DataError, future_times, load_series


def write_series(tmp_path, times, name="series.csv", header="date,v"):
    """A CSV of the given time cells with values that are not constant."""
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(f"{t},{10 + (k % 7) * 0.5 + 0.1 * k:.3f}\n" for k, t in enumerate(times)))
    return str(path)


def add_months(day, months, anchor):
    """The date `months` calendar months after day's month, on day `anchor` cut to the month's end."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(anchor, calendar.monthrange(year, month)[1]))


def next_weekdays(day, n):
    """The n weekdays (Monday to Friday) after day, by walking the calendar."""
    out = []
    while len(out) < n:
        day += timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def as_days(times):
    return [str(t) for t in np.asarray(times, dtype="datetime64[D]")]


# ---------------------------------------------------------------- errors naming the rows

def test_rows_out_of_time_order_are_an_error_naming_them(tmp_path):
    days = [date(2024, 1, 1) + timedelta(days=k) for k in range(30)]
    days[10], days[20] = days[20], days[10]          # 21 Jan moves up to line 12 of the file, 11 Jan down to 22
    path = write_series(tmp_path, days)
    with pytest.raises(DataError) as e:
        load_series(path)
    message = str(e.value)
    # a row is named when it is earlier than the row above: line 13 (12 Jan after 21 Jan), line 22 (11 Jan after 20 Jan)
    assert "not in time order" in message and "row 13 ('2024-01-12')" in message and "row 22 ('2024-01-11')" in message
    assert "sort the rows by date" in message and "\n" not in message


def test_repeated_times_are_an_error_naming_them(tmp_path):
    hours = [f"2024-03-01 {h:02d}:00" for h in range(24)]
    hours.insert(5, hours[4])                        # 04:00 twice: the repeat is line 7 of the file
    path = write_series(tmp_path, hours, header="time,v")
    with pytest.raises(DataError, match=r"repeats times \(rows equal to the row above: row 7 \('2024-03-01 04:00'\)\)"
                                        r"; keep one row per time: aggregate the repeats"):
        load_series(path)


def test_a_number_time_column_must_increase_too(tmp_path):
    path = write_series(tmp_path, [10 - k for k in range(20)], header="t,v")   # t counts down
    with pytest.raises(DataError, match=r"time column 't' .* not in time order \(rows earlier than the row above: "
                                        r"row 3 \('9'\), row 4 \('8'\), .* and 14 more\)"):
        load_series(path)
    path = write_series(tmp_path, [2000, 2001, 2001, 2002, 2003, 2003], header="year,v")
    with pytest.raises(DataError, match=r"repeats times \(rows equal to the row above: "
                                        r"row 4 \('2001'\), row 7 \('2003'\)\)"):
        load_series(path)
    hours = write_series(tmp_path, [k / 30 for k in range(40)], header="time(h),v")  # the log's series: every 2 minutes
    assert len(load_series(hours).values) == 40


def test_unsorted_csv_through_train_py_is_one_line_and_writes_nothing(tmp_path):
    days = [str(date(2024, 1, 1) + timedelta(days=k)) for k in range(40)]
    days.reverse()                                   # newest first, as many exports are
    path = write_series(tmp_path, days)
    out = tmp_path / "runs"
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--time_steps", "4", "--out_dir", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "row 3 ('2024-02-08')" in r.stderr and "sort the rows" in r.stderr
    assert not out.exists()


# ---------------------------------------------------------------- calendar steps

def test_month_ends_continue_on_month_ends(tmp_path):
    ends = [add_months(date(2022, 1, 31), k, 31) for k in range(26)]      # 31 Jan 2022 ... 29 Feb 2024
    assert str(ends[-1]) == "2024-02-29"
    times, how = future_times(load_series(write_series(tmp_path, ends)), 14)
    expected = [str(add_months(ends[-1], k, 31)) for k in range(1, 15)]   # 31 Mar, 30 Apr, 31 May, ...
    assert as_days(times) == expected
    assert expected[:3] == ["2024-03-31", "2024-04-30", "2024-05-31"]    # not 29 Mar, 29 Apr: no drift
    assert how == "monthly, on month ends"


def test_one_day_of_the_month_cut_to_short_months_and_its_time_of_day(tmp_path):
    thirtieths = [add_months(date(2023, 11, 30), k, 30) for k in range(14)]  # 30 Nov 2023 ... 30 Dec 2024, 29 Feb
    times, how = future_times(load_series(write_series(tmp_path, thirtieths)), 4)
    assert as_days(times) == [str(add_months(thirtieths[-1], k, 30)) for k in range(1, 5)]
    assert as_days(times)[1] == "2025-02-28" and as_days(times)[2] == "2025-03-30"  # day 30 again, not 28 or 31
    assert how == "monthly, on day 30, or the month's last day"
    fifteenths = [f"{add_months(date(2023, 5, 15), k, 15)} 09:30" for k in range(12)]
    times, how = future_times(load_series(write_series(tmp_path, fifteenths, "f.csv")), 3)
    assert [str(t) for t in times] == [f"{add_months(date(2024, 4, 15), k, 15)}T09:30:00" for k in range(1, 4)]
    assert how == "monthly, on day 15"


def test_quarters_and_years(tmp_path):
    quarters = [add_months(date(2019, 3, 31), 3 * k, 31) for k in range(16)]   # Mar, Jun, Sep, Dec ends
    times, how = future_times(load_series(write_series(tmp_path, quarters)), 5)
    assert as_days(times) == [str(add_months(quarters[-1], 3 * k, 31)) for k in range(1, 6)]
    assert as_days(times)[:2] == ["2023-03-31", "2023-06-30"] and how == "quarterly, on month ends"
    years = [date(2001 + k, 7, 1) for k in range(20)]
    times, how = future_times(load_series(write_series(tmp_path, years, "y.csv")), 3)
    assert as_days(times) == ["2021-07-01", "2022-07-01", "2023-07-01"] and how == "yearly, on day 1"


def test_business_days_skip_weekends(tmp_path):
    friday = date(2024, 3, 1)
    assert friday.weekday() == 4
    calendar_days = [friday - timedelta(days=k) for k in range(41, -1, -1)]  # six weeks up to the Friday
    days = [d for d in calendar_days if d.weekday() < 5]
    times, how = future_times(load_series(write_series(tmp_path, days)), 7)
    expected = next_weekdays(friday, 7)
    assert as_days(times) == [str(d) for d in expected] and str(expected[0]) == "2024-03-04"  # Monday, not Saturday
    assert how.startswith("on business days")
    at_four = [f"{d} 16:00" for d in days]           # the close of each day: the time of day stays
    times, _ = future_times(load_series(write_series(tmp_path, at_four, "close.csv")), 2)
    assert [str(t) for t in times] == [f"{d}T16:00:00" for d in expected[:2]]


def test_goog_continues_on_business_days():
    series = load_series("goog")
    last = series.time[-1].astype(datetime)
    times, how = future_times(series, 10)
    assert as_days(times) == [str(d) for d in next_weekdays(last, 10)] and how.startswith("on business days")


def test_irregular_spacing_continues_its_median_and_says_it_is_a_guess(tmp_path):
    gaps = [1, 1, 2, 1, 1, 3, 1, 1, 1, 2] * 3        # weekends included: not business days
    days = [date(2024, 1, 6)]
    for g in gaps:
        days.append(days[-1] + timedelta(days=g))
    times, how = future_times(load_series(write_series(tmp_path, days)), 3)
    assert as_days(times) == [str(days[-1] + timedelta(days=k)) for k in (1, 2, 3)]
    assert how == "every 1 day (the median gap; gaps vary from 1 day to 3 days, so these times are a guess)"
    regular = [date(2024, 1, 6) + timedelta(days=7 * k) for k in range(20)]   # weekly, on Saturdays
    times, how = future_times(load_series(write_series(tmp_path, regular, "w.csv")), 2)
    assert as_days(times) == [str(regular[-1] + timedelta(days=7 * k)) for k in (1, 2)] and how == "every 7 days"


def test_forecast_py_future_writes_calendar_dates_and_prints_how(tmp_path):
    ends = [add_months(date(2020, 1, 31), k, 31) for k in range(48)]
    path = write_series(tmp_path, ends)
    cfg, _ = config.parse(["--model", "naive", "--dataset", path, "--time_steps", "4",
                           "--out_dir", str(tmp_path / "runs"), "--no_forecast"])
    run_dir, _ = train.train(cfg)
    r = run_main("forecast.py", run_dir, "--future", "13")
    assert r.returncode == 0, r.stderr
    assert "13 steps past 2023-12-31, monthly, on month ends with a 80% interval" in r.stdout
    folder = r.stdout.strip().split("-> ")[-1]
    rows = list(csv.DictReader(open(os.path.join(folder, "future.csv"))))
    assert [row["date"] for row in rows] == [str(add_months(ends[-1], k, 31)) for k in range(1, 14)]
    assert rows[1]["date"] == "2024-02-29" and rows[11]["date"] == "2024-12-31"
