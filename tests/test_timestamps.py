"""Time axes that are not clean: rows out of order and repeated times are errors naming the rows;
calendar series (month ends, one day of the month, quarters, years, business days) continue on
the calendar; any other spacing continues its median step and says it is a guess.

Expected dates come from datetime and calendar arithmetic written here, not from data.future_times.
"""
import calendar
import csv
import os
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

import config
import outputs
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
    assert "13 steps past 2023-12-31, monthly, on month ends with an 80% interval" in r.stdout
    folder = r.stdout.strip().split("-> ")[-1]
    rows = list(csv.DictReader(open(os.path.join(folder, "future.csv"))))
    assert [row["date"] for row in rows] == [str(add_months(ends[-1], k, 31)) for k in range(1, 14)]
    assert rows[1]["date"] == "2024-02-29" and rows[11]["date"] == "2024-12-31"


# ---------------------------------------------------------------- times as the user wrote them

def future_rows(tmp_path, path, steps=3):
    """Train naive on the CSV and run forecast.py --future: (future.csv's rows as dicts, its folder)."""
    out = tmp_path / ("runs_" + os.path.basename(path))
    cfg, _ = config.parse(["--model", "naive", "--dataset", path, "--time_steps", "4", "--out_dir", str(out),
                           "--no_forecast"])
    run_dir, _ = train.train(cfg)
    r = run_main("forecast.py", run_dir, "--future", str(steps))
    assert r.returncode == 0, r.stderr
    folder = r.stdout.strip().split("-> ")[-1]
    return list(csv.DictReader(open(os.path.join(folder, "future.csv")))), folder


@pytest.mark.parametrize("offset, kind", [
    (timedelta(hours=2), "hours"),                  # the user's hourly data
    (timedelta(hours=-5), "day 30 at 22:00"),       # in UTC: the 31st, or the 1st of the next month at 03:00
    (timedelta(hours=5, minutes=30), "weekdays"),   # in UTC: 18:30 the day before, Sunday to Thursday
    (timedelta(0), "hours, Z"),
])
def test_times_with_a_utc_offset_continue_in_that_offset(tmp_path, offset, kind):
    zone = timezone(offset)

    def wall(days, hour=0):
        return [datetime(d.year, d.month, d.day, hour, tzinfo=zone) for d in days]
    if kind == "day 30 at 22:00":
        days = [add_months(date(2021, 1, 30), k, 30) for k in range(40)]
        local, expected = wall(days, 22), wall([add_months(days[-1], k, 30) for k in (1, 2, 3)], 22)
    elif kind == "weekdays":
        days = [d for d in (date(2024, 1, 1) + timedelta(days=k) for k in range(60)) if d.weekday() < 5]
        local, expected = wall(days), wall(next_weekdays(days[-1], 3))
    else:
        last = datetime(2024, 4, 11, 12, tzinfo=zone)
        local = [last - timedelta(hours=k) for k in range(47, -1, -1)]
        expected = [last + timedelta(hours=k) for k in (1, 2, 3)]
    cells = [t.isoformat() for t in local]
    if kind == "hours, Z":
        cells = [c.replace("+00:00", "Z") for c in cells]
    path = write_series(tmp_path, cells, header="time,v")
    series = load_series(path)
    assert (series.utc_offset == offset).all()
    # kept in UTC, so that the order checks hold across offsets
    assert series.time[-1].astype(datetime) == local[-1].astimezone(timezone.utc).replace(tzinfo=None)
    rows, _ = future_rows(tmp_path, path)
    # written as the CSV writes them: Z stays Z (issue 35; it came back +00:00)
    written = [t.isoformat() for t in expected]
    assert [row["time"] for row in rows] == ([c.replace("+00:00", "Z") for c in written] if kind == "hours, Z" else written)
    how = future_times(series, 1)[1]
    assert how == {"day 30 at 22:00": "monthly, on day 30, or the month's last day",
                   "weekdays": "on business days, Monday to Friday (holidays are not known)"}.get(kind, "every 1 hour")
    if kind == "hours":
        assert rows[0]["time"] == "2024-04-11T13:00:00+02:00"  # an hour on, not 11:00 UTC


def test_hours_across_the_end_of_summer_time(tmp_path):
    """Central European time: +02:00 until 01:00 UTC on 27 Oct 2024, then +01:00; the wall clock
    reads 02:00 twice, which is no repeat: the times are distinct in UTC."""
    change = datetime(2024, 10, 27, 1, tzinfo=timezone.utc)
    utc = [change + timedelta(hours=k) for k in range(-30, 30)]
    cells = [t.astimezone(timezone(timedelta(hours=2 if t < change else 1))).isoformat() for t in utc]
    assert cells[29][:19] == cells[30][:19] == "2024-10-27T02:00:00"  # +02:00, then +01:00
    series = load_series(write_series(tmp_path, cells, header="time,v"))
    assert series.utc_offset[29] == timedelta(hours=2) and series.utc_offset[-1] == timedelta(hours=1)
    times, how = future_times(series, 2)
    assert how == "every 1 hour"                    # in UTC: no 0-hour step at the change of clock
    assert outputs.time_text(series, times) == [(utc[-1] + timedelta(hours=k)).astimezone(
        timezone(timedelta(hours=1))).isoformat() for k in (1, 2)]
    # --fill drop drops a row's offset with it: the last kept row's (+02:00) writes the future
    path = tmp_path / "gap.csv"
    path.write_text("time,v\n" + "".join(f"{c},{'' if k >= 30 else k % 5}\n" for k, c in enumerate(cells)))
    series = load_series(str(path), fill="drop")
    assert len(series.utc_offset) == 30 and outputs.time_text(series, future_times(series, 1)[0]) == \
        [(utc[29] + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat()]


def cet(day):
    """Local midnight of day in Central European time: +02:00 from the day after the last Sunday of
    March to the last Sunday of October (the clock changes at 01:00 UTC, after midnight), else +01:00."""
    def last_sunday(month):
        end = date(day.year, month, 31)
        return end - timedelta(days=(end.weekday() + 1) % 7)
    summer = last_sunday(3) < day <= last_sunday(10)
    return datetime(day.year, day.month, day.day, tzinfo=timezone(timedelta(hours=2 if summer else 1)))


def test_local_midnights_keep_their_calendar_across_summer_time(tmp_path):
    months = [cet(add_months(date(2021, 1, 1), k, 1)) for k in range(36)]       # Jan 2021 ... Dec 2023
    assert {t.utcoffset() for t in months} == {timedelta(hours=1), timedelta(hours=2)}
    series = load_series(write_series(tmp_path, [t.isoformat() for t in months], header="time,v"))
    times, how = future_times(series, 3)
    assert how == "monthly, on day 1"               # not a guess at "every 743 hours"
    assert outputs.time_text(series, times) == [cet(date(2024, m, 1)).isoformat() for m in (1, 2, 3)]
    days = [cet(date(2024, 1, 1) + timedelta(days=k)) for k in range(120)]       # into April: summer time
    series = load_series(write_series(tmp_path, [t.isoformat() for t in days], "days.csv", header="time,v"))
    times, how = future_times(series, 2)
    assert how == "every 1 day"                     # not 23 or 25 hours on the days the clock changes
    assert outputs.time_text(series, times) == [cet(days[-1].date() + timedelta(days=k)).isoformat() for k in (1, 2)]


def test_a_column_that_mixes_times_with_and_without_offset_is_an_error(tmp_path):
    cells = [f"2024-01-{d:02d}T00:00:00" + ("+02:00" if d % 3 else "") for d in range(1, 20)]
    with pytest.raises(DataError) as e:
        load_series(write_series(tmp_path, cells, header="time,v"))
    message = str(e.value)
    assert "mixes times with a UTC offset ('2024-01-01T00:00:00+02:00' at row 2) and without " \
           "('2024-01-03T00:00:00' at row 4)" in message and "\n" not in message
    with pytest.raises(DataError, match=r"'0001-01-01T00:00:00\+01:00' at row 2 is outside the years 1-9999 in UTC$"):
        load_series(write_series(tmp_path, [f"0001-01-0{d}T00:00:00+01:00" for d in range(1, 9)], "early.csv",
                                 header="time,v"))


def test_year_month_dates_continue_monthly_in_their_own_form(tmp_path):
    months = [add_months(date(2021, 11, 1), k, 1) for k in range(38)]     # 2021-11 ... 2024-12
    assert months[-1] == date(2024, 12, 1)
    for sep in "-/":
        cells = [f"{d.year}{sep}{d.month:02d}" for d in months]
        rows, _ = future_rows(tmp_path, write_series(tmp_path, cells, f"ym{ord(sep)}.csv", header="month,v"))
        expected = [add_months(months[-1], k, 1) for k in (1, 2, 3)]
        assert [row["month"] for row in rows] == [f"{d.year}{sep}{d.month:02d}" for d in expected]
        assert rows[0]["month"] == f"2025{sep}01"
    headerless = tmp_path / "headerless.csv"                                 # the first row is data, not names
    headerless.write_text("".join(f"{d.year}-{d.month:02d},{k % 5}\n" for k, d in enumerate(months)))
    series = load_series(str(headerless))
    assert len(series.values) == 38 and as_days(series.time[:2]) == ["2021-11-01", "2021-12-01"]


def test_a_time_column_anywhere_is_the_time_axis(tmp_path):
    days = [date(2024, 1, 1) + timedelta(days=k) for k in range(40)]
    path = tmp_path / "value_date.csv"
    path.write_text("value,date\n" + "".join(f"{10 + k % 7 * 0.5},{d}\n" for k, d in enumerate(days)))
    series = load_series(str(path))
    assert series.time_label == "date" and series.column == "value" and as_days(series.time) == [str(d) for d in days]
    rows, _ = future_rows(tmp_path, str(path))
    assert [row["date"] for row in rows] == [str(days[-1] + timedelta(days=k)) for k in (1, 2, 3)]
    # several named like a time: the first is the axis, even past an increasing first column
    many = tmp_path / "many.csv"
    many.write_text("id,time(h),level,date\n" + "".join(f"{100 + k},{k / 2},{(k * 7) % 5},{d}\n"
                                                        for k, d in enumerate(days)))
    series = load_series(str(many))
    assert (series.time_label, series.column) == ("time(h)", "level") and series.time[3] == 1.5
    series = load_series(str(many), column="0")                             # --column 0: id, still against time(h)
    assert (series.time_label, series.column, series.values[0]) == ("time(h)", "id", 100)
    series = load_series(str(many), column="time(h)")                       # that one is the series: date is the axis
    assert (series.time_label, series.column) == ("date", "time(h)") and as_days(series.time[:1]) == ["2024-01-01"]
    # a first column of dates stays the axis before a later column named like a time
    spent = tmp_path / "spent.csv"
    spent.write_text("when,time_spent,v\n" + "".join(f"{d},{k % 3},{k % 5}\n" for k, d in enumerate(days)))
    assert load_series(str(spent)).time_label == "when"


def test_integer_times_stay_integers(tmp_path):
    rows, _ = future_rows(tmp_path, write_series(tmp_path, list(range(1980, 2010)), header="year,v"))
    assert [row["year"] for row in rows] == ["2010", "2011", "2012"]          # not 2010.0
    months = [add_months(date(2022, 3, 1), k, 1) for k in range(34)]          # 202203 ... 202412
    rows, _ = future_rows(tmp_path, write_series(tmp_path, [d.year * 100 + d.month for d in months], "ym.csv"))
    assert [row["date"] for row in rows] == [f"{d.year}{d.month:02d}" for d in
                                             (add_months(months[-1], k, 1) for k in (1, 2, 3))]
    assert rows[0]["date"] == "202501"                                        # not 202413
    days = [date(2024, 1, 21) + timedelta(days=k) for k in range(40)]         # to 29 Feb: then 1 Mar, not 30 Feb
    rows, _ = future_rows(tmp_path, write_series(tmp_path, [d.strftime("%Y%m%d") for d in days], "ymd.csv",
                                                 header="period,v"))           # an increasing first column
    assert [row["period"] for row in rows] == [(days[-1] + timedelta(days=k)).strftime("%Y%m%d") for k in (1, 2, 3)]
    counts = load_series(write_series(tmp_path, list(range(202401, 202431)), "counts.csv"))  # 202413: not a month
    assert outputs.time_text(counts, future_times(counts, 2)[0]) == ["202431", "202432"]


def test_times_past_the_year_9999_are_written_and_plotted_on_steps(tmp_path):
    years = [f"{y}-01-01" for y in range(9950, 10000)]
    rows, folder = future_rows(tmp_path, write_series(tmp_path, years))
    assert [row["date"] for row in rows] == ["10000-01-01", "10001-01-01", "10002-01-01"]
    assert os.path.getsize(os.path.join(folder, "future.png")) > 0
    series = load_series(write_series(tmp_path, years, "edge.csv"))  # 9999 plus the axis margin: past 9999
    path = tmp_path / "predict.png"
    outputs.plot(series, 40, series.values[40:], "edge", str(path))
    assert path.stat().st_size > 0
    x, label = outputs.plot_time(series, series.time, np.arange(50))
    assert x.tolist() == list(range(50)) and label == "step (date outside the years 1-9999 a plot can draw)"
