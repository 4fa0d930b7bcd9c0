"""The calendar: the times that continue a series past its last value (forecast.py --future).

Dates continue in their own UTC offset (14:00+02:00 after 13:00+02:00, not 12:00 UTC); month dates
(2024-11, 202411) continue monthly; integers (years, 2011 after 2010) stay integers. How they are
written back (offset, 2025-01, 202501) is the Series' time_format and utc_offset: outputs.time_text.
"""
import numpy as np

from runs import DataError


def future_times(series, n):
    """(times, how): the n times after the series' last, and how they continue it, one phrase for
    the user. forecast.py's --future dates its forecasts with them.

    - dates all on one day of the month, or on that day cut to the month's end (31 Jan, 29 Feb,
      31 Mar: month ends), at one time of day, continue in calendar months: the median gap in
      months (1 monthly, 3 quarterly, 12 yearly);
    - dates on weekdays only that skip weekends (a Friday, then a Monday) continue on business
      days, Monday to Friday (holidays are not known);
    - any other time axis (dates, a number column, the sample index) continues its median
      spacing, rounded up to a whole number for integers; where its gaps differ the phrase says
      so, because those times are a guess.

    Dates with UTC offsets (series.utc_offset) continue on the wall clock, where their calendar is:
    each time plus its own offset where they are all at one time of day (midnights and month
    starts stay so across summer time), else UTC plus the last offset (hours step evenly across a
    change of clock); future times take the last offset. They are returned in UTC, like series.time.
    """
    if series.utc_offset is None:
        return _continue(series, series.time, n)
    last = series.utc_offset[-1]
    wall = series.time + series.utc_offset
    clock = wall - wall.astype("datetime64[D]")
    times, how = _continue(series, wall if (clock == clock[0]).all() else series.time + last, n)
    return times - last, how


def _continue(series, t, n):
    """future_times on the time axis t."""
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
        step = int(np.ceil(step)) if t.dtype.kind in "iu" else step  # integers (years) stay integers
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
