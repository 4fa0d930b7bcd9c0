"""The classical forecasters a practitioner would pick instead: ETS, ARIMA and Theta, on the same origins.

    pip install -r benchmarks/requirements.txt   # statsmodels: the benchmarks' own dependency
    python benchmarks/classical.py                         # the log's three series and membrane
    python benchmarks/classical.py --datasets y_w --horizon 24

Each method is fitted once, on the training and validation parts together, by statsmodels:
- ETS: exponential smoothing in state-space form (additive errors), the form chosen by AIC among
  level, level + trend and level + damped trend, each with and without an additive season of
  period m where the series has a known one (hourly ETTh1/ETTh2: 24); initial states estimated
  with the other parameters (so that nothing of the later data sets them);
- ARIMA(p, d, q): d by the KPSS test (1 where it rejects a stationary level at 5%, as auto.arima's
  first step), then p, q in 0..2 by AIC, with a constant where d is 0;
- Theta: the Theta method (Assimakopoulos and Nikolopoulos 2000; statsmodels' ThetaModel, theta 2:
  simple exponential smoothing plus half the least-squares trend), deseasonalised where its test
  finds the season m.
Then the fitted parameters are kept and the method is run forward over the whole series (a
filter: at each origin its state has seen every true value before the origin, as a network's input
window has), and from every origin it forecasts H steps. Refitting at each of ~2800 origins would
cost ~2800 fits a series for a model that the same data fitted once; it is not done. The forecasts
are scored by forecast.backtest itself (the same origins, naive, MASE scale and normalised errors
as the networks' backtests).

benchmarks/ett.py calls field_scores() for ETTh1 and ETTh2; this script's own table (MASE at step 1
and at the horizon, the honest table's columns) goes between `<!-- classical:start -->` and
`<!-- classical:end -->` of docs/RESULTS.md. train.py and forecast.py never import statsmodels.
"""
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import forecast  # noqa: E402
import runs  # noqa: E402
from data import load_series, normalise, parts  # noqa: E402
from data.download import LOG_SERIES  # noqa: E402
from benchmarks.tables import cell, table, write_section  # noqa: E402

try:
    import statsmodels
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, InterpolationWarning, ValueWarning
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.forecasting.theta import ThetaModel
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
    from statsmodels.tsa.stattools import kpss
except ImportError as e:  # ett.py and the tests say what to install
    raise ImportError(f"benchmarks/classical.py needs statsmodels ({e})") from None

METHODS = ("ETS", "ARIMA", "Theta")
SEASONS = {"ETTh1": 24, "ETTh2": 24}  # hourly: a daily season; the log's series and membrane have no known one
ORDERS = [(p, q) for p in range(3) for q in range(3)]  # ARIMA's (p, q)
ETS_FORMS = [(False, False), (True, False), (True, True)]  # (trend, damped), each with and without the season
START, END = "<!-- classical:start -->", "<!-- classical:end -->"


def stamp():
    """What the scores depend on besides the data: this file and statsmodels' version."""
    import hashlib
    with open(os.path.abspath(__file__), "rb") as f:
        return {"statsmodels": statsmodels.__version__, "code": hashlib.sha256(f.read()).hexdigest()}


# ---------------------------------------------------------------- fitting once

def fit_ets(y, season):
    """(results, form) of the state-space ETS with the lowest AIC on y."""
    best = None
    for trend, damped in ETS_FORMS:
        for seasonal in ([None, season] if season else [None]):
            model = ExponentialSmoothing(y, trend=trend, damped_trend=damped, seasonal=seasonal,
                                         initialization_method="estimated")
            res = model.fit(disp=False, maxiter=200)
            form = f"ETS(A,{'Ad' if damped else 'A' if trend else 'N'},{'A' if seasonal else 'N'})" \
                + (f" m={season}" if seasonal else "")
            if np.isfinite(res.aic) and (best is None or res.aic < best[0].aic):
                best = (res, form)
    return best


def fit_arima(y):
    """(results, form) of the ARIMA(p, d, q) with the lowest AIC on y, d by the KPSS test."""
    d = int(kpss(y, regression="c", nlags="auto", result_object=False)[1] < 0.05)
    best = None
    for p, q in ORDERS:
        res = ARIMA(y, order=(p, d, q), trend="c" if d == 0 else "n").fit()
        if np.isfinite(res.aic) and (best is None or res.aic < best[0].aic):
            best = (res, f"ARIMA({p},{d},{q})")
    return best


def fit_theta(y, season):
    res = ThetaModel(y, period=season or 1, deseasonalize=bool(season)).fit()
    seasonal = res._seasonal.shape[0] > 0  # its test found the season
    return res, "Theta(2)" + (f" deseasonalised ({res.model.method}) m={season}" if seasonal else "")


# ---------------------------------------------------------------- running forward

def invariant(matrix, dims):
    """A system matrix of `dims` dimensions; one with a time axis must hold the same values at every
    time (a constant's regression repeats one intercept), else it has no single recursion."""
    m = np.asarray(matrix)
    if m.ndim == dims + 1:
        if not np.all(m == m[..., :1]):
            raise ValueError("a time-varying state space: its forecasts are not one matrix recursion")
        m = m[..., 0]
    return m


def statespace_forecasts(res, y, origins, H):
    """(K, H) forecasts of a fitted state-space model from each origin o (values o .. o + H - 1,
    the model's state having filtered y[:o]), with the fitted parameters kept: the predicted state
    a(o | o-1) of a filter over y, then a <- T a + c, y_hat = Z a + d, H times."""
    full = res.apply(y[:max(origins)], refit=False)            # the same parameters, the longer series
    ssm = full.model.ssm
    Z, d, T, c = (invariant(ssm[name], dims) for name, dims in
                  (("design", 2), ("obs_intercept", 1), ("transition", 2), ("state_intercept", 1)))
    a = np.asarray(full.filter_results.predicted_state)[:, origins]  # (k_states, K): a(o | o - 1)
    out = np.empty((len(origins), H))
    for k in range(H):
        out[:, k] = (Z @ a)[0] + d[0]
        a = T @ a + c[:, None]                                  # (k_states, K)
    return out


def theta_forecasts(res, y, origins, H, theta=2.0):
    """(K, H) Theta forecasts from each origin o: simple exponential smoothing of the deseasonalised
    y[:o] with the fitted alpha (from y[0], as statsmodels starts it), plus (1 - 1/theta) b0 times
    the drift term h - 1 + 1/alpha - (1 - alpha)^o / alpha, reseasonalised (ThetaModelResults'
    forecast_components, at every origin)."""
    alpha, b0, seasonal = res._alpha, res._b0, res._seasonal
    m, multiplicative = res.model.period, not res.model.method.startswith("add")
    idx = np.arange(len(y))
    if seasonal.shape[0]:
        season = seasonal[idx % m]
        x = y / season if multiplicative else y - season
    else:
        x = y
    level = np.empty(len(y) + 1)                    # level[o]: the smoothed value after x[:o]
    level[0] = level[1] = x[0]
    for t in range(1, len(y)):
        level[t + 1] = alpha * x[t] + (1 - alpha) * level[t]
    h = np.arange(H, dtype=np.float64)[None, :] + (1 / alpha - (1 - alpha) ** origins[:, None] / alpha)
    out = (1 - 1 / theta) * b0 * h + level[origins][:, None]
    if seasonal.shape[0]:
        s = seasonal[(origins[:, None] + np.arange(H)) % m]
        out = out * s if multiplicative else out + s
    return out


def fitted(method, y_fit, season):
    """(forecasts(y, origins, H), form) of one method fitted on y_fit."""
    with warnings.catch_warnings():
        for category in (ConvergenceWarning, InterpolationWarning, ValueWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        if method == "ETS":
            res, form = fit_ets(y_fit, season)
        elif method == "ARIMA":
            res, form = fit_arima(y_fit)
        elif method == "Theta":
            res, form = fit_theta(y_fit, season)
            return (lambda y, origins, H: theta_forecasts(res, y, origins, H)), form
        else:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")

    def run(y, origins, H):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ValueWarning)
            return statespace_forecasts(res, y, origins, H)
    return run, form


# ---------------------------------------------------------------- scored as the networks are

def series_run(name, fractions=None):
    """A forecast.Run without a model: the series, its parts and statistics, as train.py cuts them
    under --split chrono (the field's split for ETTh1/ETTh2, 70/10/20 otherwise)."""
    series = load_series(name)
    train_end, val_end, test_end = parts(len(series.values), fractions, series.field_split)
    _, mean, std = normalise(series.values[:train_end])
    config = {"split": "chrono", "time_steps": 1, "run_name": name}
    return forecast.Run(None, None, config, series, (series.values - mean) / std, mean, std, train_end, val_end,
                        series.observed, "cpu", test_end)


def scores(name, horizons, strides, log=print):
    """{"METHOD|H{h}_{tag}": numbers, "METHOD|form": text} for one data set: each method fitted once
    on its training and validation parts, scored by forecast.backtest at each horizon and stride
    (strides: {tag: stride or None, forecast.py's default at the smallest horizon})."""
    run = series_run(name)
    y, season = run.series.values, SEASONS.get(run.series.name)
    found = {}
    for method in METHODS:
        t0 = time.perf_counter()
        predict, form = fitted(method, y[:run.val_end], season)
        found[f"{method}|form"] = form
        for tag, stride in strides.items():
            stride = stride or forecast.backtest_origins(run, horizons[0])[1]
            union = forecast.backtest_origins(run, horizons[0], stride)[0]
            pred = predict(y[:run.test_end], union, horizons[-1])
            row = {o: i for i, o in enumerate(union)}
            for h in horizons:
                r = forecast.backtest(run, h, stride=stride, level=None, forecasts=lambda o: pred[[row[i] for i in o]])
                m = r["metrics"]
                found[f"{method}|H{h}_{tag}"] = {
                    "mse_normalised": m["model"]["mse_normalised"], "mae_normalised": m["model"]["mae_normalised"],
                    "mase": m["model"]["mase"], "mase_h1": float(r["by_step"]["model"]["mase"][0]),
                    f"mase_h{h}": float(r["by_step"]["model"]["mase"][-1]), "n_origins": len(r["origins"]),
                    "naive_mase_h1": float(r["by_step"]["naive"]["mase"][0]),
                    f"naive_mase_h{h}": float(r["by_step"]["naive"]["mase"][-1])}
        log(f"{name} {method}: {form}, {time.perf_counter() - t0:.0f} s")
    return found


def field_scores(name, horizons):
    """ETTh1/ETTh2 for benchmarks/ett.py: every origin (stride 1) at each horizon."""
    return scores(name, sorted(horizons), {"stride1": 1})


def main(argv=None):
    parser = runs.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(LOG_SERIES + ("membrane",)),
                        help="comma list of data sets (default: the log's three series and membrane)")
    parser.add_argument("--horizon", type=int, default=96, help="steps ahead (default 96, the honest table's)")
    parser.add_argument("--results", default=os.path.join(ROOT, "docs", "RESULTS.md"),
                        help="the markdown file whose classical section is replaced (default docs/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.horizon < 1:
        runs.fail("classical.py", f"--horizon {args.horizon}: expected a whole number >= 1, e.g. 96")
    datasets = [d for d in args.datasets.split(",") if d]
    t0, found, rows = time.perf_counter(), {}, []
    try:
        for d in datasets:
            run = series_run(d)
            h = min(args.horizon, run.test_end - run.val_end)
            found[d] = (h, scores(d, [h], {"default": None}))
    except runs.UsageError as e:
        runs.fail("classical.py", e)
    for method in ("naive",) + METHODS:
        row = [method if method == "naive" else f"{method} (statsmodels)"]
        for d in datasets:
            h, s = found[d]
            key = f"{METHODS[0]}|H{h}_default" if method == "naive" else f"{method}|H{h}_default"
            prefix = "naive_" if method == "naive" else ""
            row += [cell([s[key][f"{prefix}mase_h1"]]), cell([s[key][f"{prefix}mase_h{h}"]])]
        rows.append(row)
    forms = "; ".join(f"{d}: " + ", ".join(found[d][1][f"{m}|form"] for m in METHODS) for d in datasets)
    header = ["model"] + [f"{d} MASE {k}" for d in datasets for k in ("h1", f"h{found[d][0]}")]
    text = f"""{START}
### The classical forecasters on the same origins

Generated by `python benchmarks/classical.py` on {time.strftime('%Y-%m-%d')} ({(time.perf_counter() - t0) / 60:.1f}
minutes, statsmodels {statsmodels.__version__}): ETS, ARIMA and Theta fitted once on the training and validation
parts, their parameters kept and run forward over the test part, forecasting {args.horizon} steps from
the origins of the table above and scored the same way (MASE; naive beside them). Forms chosen:
{forms}.

{table(header, rows)}
{END}"""
    write_section(args.results, text, START, END, before="\n<!-- ett:start -->")
    print(text.replace(START, "").replace(END, "").strip())


if __name__ == "__main__":
    main()
