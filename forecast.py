"""Evaluate a trained run on data it never saw, and forecast past the end of the series.

    python forecast.py runs/lstm_y_w_ts112_lr0.0005               # its latest run: backtest on the test part
    python forecast.py RUN --horizon 96 --season 30               # 96 steps ahead, seasonal naive of period 30
    python forecast.py RUN --future 48                            # 48 steps past the end, with an 80% interval
    python forecast.py RUN_A RUN_B --horizon 48                   # error against steps ahead, one line per run
    python forecast.py RUN --dataset 4single                      # another series (its own test part)
    python forecast.py RUN_A RUN_B --dataset y_w,w_y,4single      # the log's cross-dataset matrix

The model is rebuilt from the run directory alone (model.pt: the weights training chose).

Runs trained with --split chrono (the default) are evaluated by a rolling-origin backtest on the
test part: from each origin the model sees the true history before it and forecasts --horizon
steps, its own forecasts fed back. Errors (MSE, RMSE, MAE, sMAPE, MASE) are in the series' units
per step ahead and overall, always beside the same numbers for naive (the last value repeated)
and, with --season m, seasonal naive. MASE divides by the in-sample MAE of the one-step (or
seasonal) naive forecast on the training part. Prediction intervals come two ways, each with
its coverage on the test part: fixed split conformal (the level-quantile of the absolute errors
per step ahead on the validation part) and adaptive conformal (Gibbs and Candes 2021: the level
moves after every origin with the errors observed before it), which holds where errors change.
--future's interval uses the latest errors of the validation and test parts. A run trained with
--norm last or revin reads each window normalised by itself (config.json says; models/norm.py).

Runs trained with --split random (the log's protocol) are scored as in the log: one-step
(batch) and regressive forecasts over the whole series (--predict_rate: the last fraction),
normalised with each series' own statistics.

Each evaluation writes a new folder RUN/forecasts/{settings}/ (metrics.json, CSVs, PNGs; a repeat
of the same settings gets {settings}-2, then -3, ...), built under a hidden name and named when
whole, so nothing training or an earlier evaluation wrote is replaced. `train.py --resume` moves
the forecasts of the earlier weights aside, to RUN/forecasts-before-resume-epoch{N}/.

From Python (plain numpy and dicts):
    import forecast
    run = forecast.load("runs/lstm_y_w_ts112_lr0.0005")
    result = forecast.backtest(run, horizon=24)      # result["metrics"]["model"]["mase"], ...
    ahead = forecast.future(run, steps=48)           # ahead["time"], ahead["forecast"], ahead["lower"], ...
"""
import csv
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

import models
import runs
from data import (DATASETS, FILL_MODES, DataError, boundaries, check_time_steps, load_series, make_windows,
                  future_times, normalise)
from models.norm import with_norm

POSITIONS = ("sliding", "absolute")
KV_CACHE = ("auto", "on", "off")
DEFAULT_HORIZON = 24
DEFAULT_LEVEL = 80
MAX_ORIGINS = 100  # the default stride keeps a backtest to about this many origins
# Adaptive conformal's step size. Gibbs and Candes bound the long-run miscoverage of T origins by
# (max(alpha, 1 - alpha) + gamma) / (gamma T): with the ~100 origins of a backtest their 0.005 bounds
# nothing (the level moves by at most 0.4 in all), 0.05 bounds it by 0.17 and moves the level 4 points a miss.
ACI_GAMMA = 0.05
FUTURE_WINDOW = 100  # --future: per step ahead, the conformal quantile of the latest this many errors


# ---------------------------------------------------------------- the Python API

@dataclass
class Run:
    """A trained model with the series it forecasts, normalised as in training."""
    run_dir: str
    model: torch.nn.Module
    config: dict
    series: object          # data.Series
    z: np.ndarray           # (N,) normalised series
    mean: float
    std: float
    train_end: int          # [0, train_end) train, [train_end, val_end) validation, [val_end, N) test
    val_end: int
    observed: np.ndarray    # (N,) False where a value was filled in (never scored)
    device: str = "cpu"

    @property
    def time_steps(self):
        return self.config["time_steps"]

    @property
    def honest(self):
        return self.config["split"] == "chrono"


def load(run_dir, device="cpu", dataset=None, column=None, data_dir=None, fill=None, date_format=None):
    """A run directory (or runs/{run_name}: its latest complete run) with its series.

    dataset: another series to evaluate on (default: the training series). Under the chrono
    protocol a series is normalised with the training part's statistics: the stored ones for the
    training series, its own training part's for another. Under the log's protocol with the
    series' own whole-series statistics, as the log did."""
    run_dir = runs.latest_run(run_dir)
    model, config = load_run(run_dir, device)
    if dataset is None:  # the training series: a CSV is found again by its path
        dataset = config["dataset"] if config["dataset"] in DATASETS else config["source"]
        column = column or config["column"]
        fill = fill or config.get("fill")
        date_format = date_format or config.get("date_format")
        if dataset == config["source"] and not os.path.isfile(dataset):
            raise DataError(f"the run was trained on {dataset}, which is not there any more; give --dataset "
                            f"PATH (and --column) to point at the series")
    series = load_series(dataset, column, data_dir or config.get("data_dir"), fill=fill, date_format=date_format)
    check_time_steps(len(series.values), config["time_steps"])
    observed = np.ones(len(series.values), bool) if series.observed is None else np.asarray(series.observed, bool)
    n = len(series.values)
    if config["split"] == "chrono":
        train_end, val_end = boundaries(n, config["fractions"])
        same = series.name == config["dataset"] and getattr(series, "sha256", None) == config.get("sha256")
        if same:
            mean, std = config["normalisation"]["mean"], config["normalisation"]["std"]
        else:
            _, mean, std = normalise(series.values[:train_end])
        z = (series.values - mean) / std
    else:
        train_end = val_end = n
        z, mean, std = normalise(series.values)
    return Run(run_dir, model, config, series, z, mean, std, train_end, val_end, observed, device)


def backtest(run, horizon=DEFAULT_HORIZON, stride=None, origins=None, season=None, level=DEFAULT_LEVEL,
             kv_cache="auto"):
    """Rolling-origin backtest on the test part.

    Origins o run from the first test value to the last that leaves `horizon` values after it,
    every `stride` (default: about MAX_ORIGINS origins), at most `origins` of them (evenly
    spread). From each, the model forecasts values o .. o + horizon - 1 from the true values
    before o. Returns plain numpy and dicts: origins (K,), predictions, actual, naive (K, H) in
    the series' units; metrics {model, naive[, seasonal_naive]} each {mse, rmse, mae, smape,
    mase} overall, and by_step the same per step ahead; interval {level, halfwidth (H,),
    coverage, coverage_by_step} from the validation part's errors (fixed); interval_adaptive
    {level, gamma, halfwidth (K, H), alpha (K, H), coverage, coverage_by_step}: adaptive conformal
    inference over the origins (adaptive_intervals), each interval from errors observed before
    its origin only."""
    if not run.honest:
        raise DataError("a backtest needs a held-out test part, and this run was trained under the log's "
                        "protocol (--split random); train with --split chrono, or use --predict_rate")
    n_test = len(run.z) - run.val_end
    runs.check_positive(horizon=horizon, stride=stride, origins=origins, season=season)
    if horizon > n_test:
        raise DataError(f"--horizon {horizon} is longer than the test part ({n_test} values); choose "
                        f"--horizon <= {n_test} or train with a larger --test_fraction")
    if not 0 < level < 100:
        raise DataError(f"--level {level}: expected a percentage between 0 and 100, e.g. 80")
    candidates = np.arange(run.val_end, len(run.z) - horizon + 1)
    stride = stride or max(1, math.ceil(len(candidates) / MAX_ORIGINS))
    chosen = candidates[::stride]
    if origins and origins < len(chosen):
        chosen = chosen[np.unique(np.linspace(0, len(chosen) - 1, origins).round().astype(int))]
    y = run.series.values
    steps = chosen[:, None] + np.arange(horizon)                    # (K, H) value indices forecast
    pred = rollout(run, chosen, horizon, kv_cache)
    actual, scored = y[steps], run.observed[steps]
    forecasts = {"model": pred, "naive": np.repeat(y[chosen - 1, None], horizon, axis=1)}
    if season:
        lag = season * np.ceil(np.arange(1, horizon + 1) / season).astype(int)  # last season's value
        forecasts["seasonal_naive"] = y[steps - lag]
    scale = naive_scale(y[:run.train_end], run.observed[:run.train_end], season or 1)
    metrics, by_step = {}, {}
    for name, f in forecasts.items():
        metrics[name], by_step[name] = errors(f, actual, scored, scale)
    pool = validation_errors(run, horizon)
    halfwidth, n_cal = calibrate(run, horizon, level, pool)
    inside = (np.abs(pred - actual) <= halfwidth) & scored
    coverage_by_step = inside.sum(0) / np.maximum(scored.sum(0), 1)
    adaptive, alphas = adaptive_intervals(chosen, np.abs(pred - actual), scored, pool, level)
    inside_adaptive = (np.abs(pred - actual) <= adaptive) & scored
    return {"origins": chosen, "horizon": horizon, "stride": stride, "predictions": pred, "actual": actual,
            "naive": forecasts["naive"], "observed": scored, "metrics": metrics, "by_step": by_step,
            "mase_scale": scale, "season": season,
            "interval": {"level": level, "halfwidth": halfwidth, "n_calibration": n_cal,
                         "coverage": float(inside.sum() / max(scored.sum(), 1)),
                         "coverage_by_step": coverage_by_step},
            "interval_adaptive": {"level": level, "gamma": ACI_GAMMA, "halfwidth": adaptive, "alpha": alphas,
                                  "coverage": float(inside_adaptive.sum() / max(scored.sum(), 1)),
                                  "coverage_by_step": inside_adaptive.sum(0) / np.maximum(scored.sum(0), 1)}}


def future(run, steps, level=DEFAULT_LEVEL, kv_cache="auto"):
    """Forecast `steps` values past the end of the series from its last time_steps values.
    Returns {time (steps,), forecast, lower, upper, level, spacing, interval_steps}: time continues
    the series' own step, and spacing says how (data.future_times: calendar months, business days,
    or the median spacing, called a guess where the gaps differ; the row index without a time
    column). The interval is conformal on the most recent errors (recent_calibration; chrono runs,
    None under the log's protocol); it is infinite (a blank cell) past interval_steps, where the
    series is too short to give a step enough errors."""
    runs.check_positive(future=steps)
    if not 0 < level < 100:
        raise DataError(f"--level {level}: expected a percentage between 0 and 100, e.g. 80")
    pred = rollout(run, np.array([len(run.z)]), steps, kv_cache)[0]
    lower = upper = None
    interval_steps = 0
    if run.honest:
        halfwidth, _ = recent_calibration(run, steps, level)
        lower, upper = pred - halfwidth, pred + halfwidth
        interval_steps = int(np.argmin(np.isfinite(halfwidth))) if not np.isfinite(halfwidth).all() else steps
    time, spacing = future_times(run.series, steps)
    return {"time": time, "forecast": pred, "lower": lower, "upper": upper, "level": level if run.honest else None,
            "spacing": spacing, "interval_steps": interval_steps, "min_errors": min_errors(level),
            "window": FUTURE_WINDOW}


# ---------------------------------------------------------------- forecasting and scoring

def next_value(model, x, start_pos=0, cache=None):
    """The model's forecast of the value after each window: x (B, T, 1) -> (B,)."""
    out = model(x, start_pos, cache) if cache is not None else model(x, start_pos=start_pos)
    return out[:, -1, 0] if model.target == "aligned" else out[:, 0]


@torch.no_grad()
def regress(model, windows, steps, path="recompute", first_pos=None):
    """steps forecasts from each window (B, T, 1), each fed back as the next input: (B, steps).

    first_pos None: every window is numbered 0..T-1 (the log's sliding positions); an integer:
    the window's first value sits at that position of the series (absolute positions). path
    "kv_cache": the window once, then one value a step against the model's cache (see
    regressive_path for when this equals recomputing every window)."""
    B, T, _ = windows.shape
    preds = windows.new_empty(B, steps)
    if path == "kv_cache":
        pos = first_pos or 0
        cache = model.new_cache(T)                                # each step sees time_steps values
        preds[:, 0] = next_value(model, windows, pos, cache)
        for i in range(1, steps):  # forecast i - 1, at position pos + T + i - 1, goes in
            preds[:, i] = next_value(model, preds[:, i - 1].view(B, 1, 1), pos + T + i - 1, cache)
        return preds
    window = windows.clone()
    for i in range(steps):
        preds[:, i] = next_value(model, window, 0 if first_pos is None else first_pos + i)
        window = torch.cat([window[:, 1:], preds[:, i].view(B, 1, 1)], dim=1)  # slide by one, feed back
    return preds


def rollout(run, origins, steps, kv_cache="auto", chunk=256):
    """Regressive forecasts in the series' units of the `steps` values from each origin o,
    from the true values z[o - T:o]: (len(origins), steps). kv_cache: see regressive_path."""
    T, path = run.time_steps, regressive_path(run.model, "sliding", kv_cache)
    z = torch.as_tensor(run.z, dtype=torch.float32)
    out = []
    for i in range(0, len(origins), chunk):
        windows = torch.stack([z[o - T:o] for o in origins[i:i + chunk]]).unsqueeze(-1).to(run.device)
        out.append(regress(run.model, windows, steps, path).cpu().double().numpy())
    return np.concatenate(out) * run.std + run.mean


def naive_scale(y, observed, season=1):
    """MASE's denominator: the mean absolute error of the (seasonal) naive one-step forecast
    y[t - season] of y[t] over the training part, observed pairs only."""
    ok = observed[season:] & observed[:-season]
    scale = float(np.mean(np.abs(y[season:] - y[:-season])[ok])) if ok.any() else float("nan")
    if not scale > 0:
        raise DataError(f"the training part is constant at lag {season}: MASE has no scale")
    return scale


def errors(pred, actual, scored, scale):
    """({mse, rmse, mae, smape, mase} overall, the same per step ahead) over scored cells."""
    e = np.where(scored, pred - actual, 0.0)
    denominator = np.abs(pred) + np.abs(actual)
    ape = np.where(scored & (denominator > 0), 200 * np.abs(e) / np.where(denominator > 0, denominator, 1), 0.0)

    def summary(axis):
        n = np.maximum(scored.sum(axis), 1)
        mse, mae = (e ** 2).sum(axis) / n, np.abs(e).sum(axis) / n
        return {"mse": mse, "rmse": np.sqrt(mse), "mae": mae, "smape": ape.sum(axis) / n, "mase": mae / scale}
    overall = {k: float(v) for k, v in summary(None).items()}
    return overall, summary(0)


def conformal(r, level):
    """The split conformal half-width of the sorted errors r at `level` percent: the
    ceil((n + 1) level)-th smallest; inf where n is too small for the level, 0 at level <= 0."""
    k = math.ceil((len(r) + 1) * level / 100)
    if k > len(r):
        return math.inf
    return float(r[k - 1]) if k > 0 else 0.0


def min_errors(level):
    """The fewest errors that give a finite conformal interval at `level` percent."""
    n = 1
    while math.ceil((n + 1) * level / 100) > n:
        n += 1
    return n


@torch.no_grad()
def validation_errors(run, horizon):
    """Per step ahead h, the absolute errors of the forecasts whose target lies in the
    validation part, from every origin with true history before it: a list of H arrays."""
    first = max(run.time_steps, run.train_end - horizon + 1)
    origins = np.arange(first, run.val_end)
    pred = rollout(run, origins, horizon)
    targets = origins[:, None] + np.arange(horizon)
    inside = (targets >= run.train_end) & (targets < run.val_end)
    inside[inside] &= run.observed[targets[inside]]
    residual = np.abs(pred - run.series.values[np.minimum(targets, len(run.z) - 1)])
    return [residual[inside[:, h], h] for h in range(horizon)]


def calibrate(run, horizon, level, errors=None):
    """Split conformal half-widths per step ahead (fixed): for step h, the ceil((n + 1) level)-th
    smallest absolute error of the n forecasts whose target lies in the validation part
    (validation_errors, or the given ones). Returns (halfwidth (H,), n (H,)); inf where the
    validation part is too small for the level."""
    errors = validation_errors(run, horizon) if errors is None else errors
    halfwidth = np.array([conformal(np.sort(r), level) for r in errors])
    return halfwidth, np.array([len(r) for r in errors])


def adaptive_intervals(origins, errors, scored, pool, level, gamma=ACI_GAMMA):
    """Adaptive conformal inference (Gibbs and Candes, NeurIPS 2021) per step ahead.

    origins (K,) increasing; errors, scored (K, H): the backtest's absolute errors; pool: per
    step, the validation part's errors. Step h of origin o_k forecasts value o_k + h, which is
    known from origin o_k + h + 1 on. The interval of origin o_k at step h is the conformal
    quantile at 1 - alpha_k of pool[h] plus the errors of earlier origins whose targets lie
    before o_k; alpha starts at 1 - level and, for each such outcome in turn, moves by
    alpha_{t+1} = alpha_t + gamma (alpha - miss_t), clipped to [-gamma, 1 + gamma]
    (alpha_t <= 0: an infinite interval). Only the backtest's own origins are used (no extra
    rollouts at stride 1). Returns (halfwidth (K, H), alpha (K, H))."""
    K, H = errors.shape
    alpha = 1 - level / 100
    halfwidth, alphas = np.empty((K, H)), np.empty((K, H))
    for h in range(H):
        known = np.searchsorted(origins + h, origins, side="left")  # origins j whose target o_j + h < o_k
        a, applied = alpha, 0
        for k in range(K):
            while applied < known[k]:  # outcomes observed since the last origin, in order
                if scored[applied, h]:
                    miss = errors[applied, h] > halfwidth[applied, h]
                    a = min(max(a + gamma * (alpha - miss), -gamma), 1 + gamma)
                applied += 1
            seen = errors[:known[k], h][scored[:known[k], h]]
            alphas[k, h] = a
            level_k = round(100 * (1 - a), 9)  # so that alpha_k = alpha gives the fixed level exactly
            halfwidth[k, h] = conformal(np.sort(np.concatenate([pool[h], seen])), level_k)
    return halfwidth, alphas


@torch.no_grad()
def recent_calibration(run, steps, level, window=FUTURE_WINDOW):
    """--future's half-widths: per step ahead h, the conformal quantile of the latest `window`
    absolute errors of forecasts whose targets lie in the validation and test parts
    [train_end, N), from every origin with true history before it (a backtest over both
    parts at stride 1). Nothing is evaluated past the end, so the newest errors are the best
    guide. A step needs at least min_errors(level) errors; far steps of a long --future have
    fewer (origins must leave h values before the end), and their interval is inf. Returns
    (halfwidth (steps,), n (steps,))."""
    n, T = len(run.z), run.time_steps
    window = max(window, min_errors(level))
    h = np.arange(steps)
    available = np.minimum(n - h - T, n - run.train_end)   # origins o >= T, o >= train_end - h, o + h < n
    reach = int((available >= min_errors(level)).sum())     # non-increasing in h: the steps with enough
    halfwidth, counts = np.full(steps, np.inf), np.zeros(steps, int)
    if reach == 0:
        return halfwidth, counts
    origins = np.arange(max(T, run.train_end - reach + 1, n - reach + 1 - window), n)
    pred = rollout(run, origins, reach)
    targets = origins[:, None] + np.arange(reach)
    inside = (targets >= run.train_end) & (targets < n)
    inside[inside] &= run.observed[targets[inside]]
    residual = np.abs(pred - run.series.values[np.minimum(targets, n - 1)])
    for k in range(reach):
        r = residual[inside[:, k], k][-window:]            # origins increase: the latest targets last
        halfwidth[k], counts[k] = conformal(np.sort(r), level), len(r)
    return halfwidth, counts


# ---------------------------------------------------------------- the log's protocol

def load_run(run_dir, device="cpu", weights="model.pt"):
    """(model, config) rebuilt from RUN_DIR/config.json and its weights (model.pt: the ones
    training chose). A run directory that cannot be read is a one-line RunError."""
    config = runs.read_config(run_dir)
    checkpoint = runs.load_checkpoint(os.path.join(run_dir, weights), device)
    try:
        model = with_norm(models.build(checkpoint["model"], **checkpoint["model_args"]), config.get("norm", "global"))
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:  # TypeError: model_args not a dict
        raise runs.RunError(f"not a readable run: {os.path.join(run_dir, weights)} does not fit its model "
                            f"({str(e).splitlines()[0][:120]})") from None
    return model.to(device).eval(), config


@torch.no_grad()
def predict_batch(model, z, time_steps, n, device="cpu", positions="sliding", chunk=1024):
    """One-step forecasts of the last n values of z, each from the true window before it.

    positions "sliding" numbers every window 0..T-1 (the log's protocol); "absolute" gives each
    value its position in the series (window i starts at position i), one window at a time.
    """
    x, _ = make_windows(z, time_steps, model.target)
    first = len(x) - n                                  # index of the first predicted window
    x = x[first:].to(device)
    if positions == "absolute":
        return torch.cat([next_value(model, x[i:i + 1], start_pos=first + i).cpu()
                          for i in range(n)]).numpy()
    return torch.cat([next_value(model, x[i:i + chunk]).cpu() for i in range(0, n, chunk)]).numpy()


def predict_regressive(model, z, time_steps, n, device="cpu", positions="sliding", path="recompute"):
    """n forecasts, each fed back as input, starting from the window before the last n values."""
    start = len(z) - n
    window = torch.as_tensor(z[start - time_steps:start], dtype=torch.float32, device=device).view(1, -1, 1)
    first_pos = start - time_steps if positions == "absolute" else None
    return regress(model, window, n, path, first_pos)[0].cpu().numpy()


def predict_regressive_cached(model, z, time_steps, n, device="cpu", positions="sliding"):
    """predict_regressive with the model's KV cache: the first window once, then one value a step."""
    return predict_regressive(model, z, time_steps, n, device, positions, path="kv_cache")


def regressive_path(model, positions="sliding", kv_cache="auto"):
    """How regressive prediction runs for this model: "kv_cache" or "recompute" (every window whole).

    The cache numbers positions absolutely, so it gives predict_regressive's forecasts under
    positions "absolute" always, and under "sliding" (every window from 0) when the model's
    outputs depend on positions only through their differences (relative_positions). auto uses
    the cache exactly then; on asks for it and fails where it would change the forecasts."""
    if kv_cache not in KV_CACHE:
        raise DataError(f"unknown kv_cache {kv_cache!r}; choose one of {', '.join(KV_CACHE)}")
    norm = getattr(model, "norm", "global")
    if norm != "global":  # every new window is re-normalised: no cached key of an earlier input holds
        if kv_cache == "on":
            raise DataError(f"kv_cache on: this run reads each window with --norm {norm}, which changes every "
                            f"input of a window at each step, so a cache cannot be reused; choose kv_cache auto or off")
        return "recompute"
    has_cache = hasattr(model, "new_cache") and getattr(model, "causal", False)
    same = positions == "absolute" or getattr(model, "relative_positions", False)
    if kv_cache == "off" or (kv_cache == "auto" and not (has_cache and same)):
        return "recompute"
    name = type(model).__module__.split(".")[-1]
    if not has_cache:
        raise DataError(f"kv_cache on: model {name} has no KV cache (causal attention models have one: "
                        f"att, att_mh with causal true); choose kv_cache auto or off")
    if not same:
        raise DataError(f"kv_cache on: model {name} encodes absolute positions (pe_type {model.pe_type} on "
                        f"{model.pe_on}), so the cache's absolute positions change its forecasts under "
                        f"positions sliding; choose positions absolute, or kv_cache auto or off")
    return "kv_cache"


def forecast(run_dir, dataset=None, column=None, predict_rate=None, device="cpu", data_dir=None,
             positions="sliding", kv_cache="auto"):
    """Batch and regressive forecasts with the run's model; returns the metrics.

    Under the log's protocol over the last predict_rate of windows (default 1: the whole series);
    under chrono over the test part (predict_rate is the log's and is refused). Writes
    predict_batch.png, predict_regressive.png and metrics.json into a new RUN/forecasts/{settings}/
    (metrics["folder"]). kv_cache (auto, on, off): regressive prediction with the model's KV cache;
    see regressive_path.
    run_dir may also be a Run from load() (its own series then; dataset and column are not used)."""
    if positions not in POSITIONS:
        raise DataError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
    run = run_dir if isinstance(run_dir, Run) else load(run_dir, device, dataset, column, data_dir)
    if run.honest and predict_rate is not None:
        raise DataError("--predict_rate belongs to the log's protocol (--split random); this run is scored "
                        "on its test part (use --horizon)")
    predict_rate = 1.0 if predict_rate is None else predict_rate
    if not 0.0 < predict_rate <= 1.0:
        raise DataError(f"--predict_rate must be in (0, 1], got {predict_rate}")
    path = regressive_path(run.model, positions, kv_cache)
    T, z, series = run.time_steps, run.z, run.series
    n = len(z) - run.val_end if run.honest else max(1, int(predict_rate * (len(z) - T)))
    start = len(z) - n
    actual, scored = series.values[start:], run.observed[start:]
    tag = f"{series.name}_{'test' if run.honest else 'log'}" + (f"_rate{predict_rate:g}" if predict_rate != 1 else "") \
        + ("_absolute" if positions == "absolute" else "") + (f"_kv{kv_cache}" if kv_cache != "auto" else "")
    metrics = {"run_dir": run.run_dir, "dataset": series.name, "source": series.source, "column": series.column,
               "protocol": run.config["split"], "predict_rate": None if run.honest else predict_rate,
               "n_predicted": n, "start_index": start, "positions": positions, "regressive_path": path,
               "normalisation": {"mean": run.mean, "std": run.std}, "norm": run.config.get("norm", "global")}
    predictions = {}
    for kind in ("batch", "regressive"):
        try:
            if kind == "batch":
                pred = predict_batch(run.model, z, T, n, device, positions)
            else:
                pred = predict_regressive(run.model, z, T, n, device, positions, path)
        except ValueError as e:  # e.g. absolute positions past a positional table's block_size
            raise DataError(f"{kind} prediction with positions {positions}: {e}") from None
        predictions[kind] = pred = pred.astype(np.float64) * run.std + run.mean
        metrics[f"mse_{kind}"] = float(np.mean((pred - actual)[scored] ** 2))
        metrics[f"mae_{kind}"] = float(np.mean(np.abs(pred - actual)[scored]))

    def write(folder):
        for kind, pred in predictions.items():
            title = f"{run.config['run_name']}: {kind} on {series.name}, MSE {metrics[f'mse_{kind}']:.4g}"
            plot(series, start, pred, title, os.path.join(folder, f"predict_{kind}.png"))
        runs.write_json(os.path.join(folder, "metrics.json"), metrics)
    metrics["folder"] = output_folder(run.run_dir, tag, write)
    return metrics


def cross_dataset(run_dirs, datasets, column=None, predict_rate=None, device="cpu", data_dir=None,
                  positions="sliding", kv_cache="auto"):
    """forecast() of every run on every data set: the log's 2025-01-06 matrix.

    Returns (table, png, cells): a markdown table with rows batch and regressive and one column
    per train-test pair (MSE, original units), the path of one PNG that lays the prediction plots
    out the same way (in the first run's forecasts/), and {"train-test": forecast metrics}."""
    cells = {}
    for run_dir in run_dirs:
        for dataset in datasets:
            m = forecast(run_dir, dataset, column, predict_rate, device, data_dir, positions, kv_cache)
            trained_on = runs.read_json(os.path.join(m["run_dir"], "config.json"))["dataset"]
            cells[f"{trained_on}-{m['dataset']}"] = m
    rows = [("batch", "Batch (input is original value)"), ("regressive", "Regressive (add predicted value to input)")]
    table = ["| Method\\Trainset-Testset | " + " | ".join(cells) + " |", "|---" * (len(cells) + 1) + "|"]
    table += [f"| {label} | " + " | ".join(f"{m[f'mse_{kind}']:.6g}" for m in cells.values()) + " |"
              for kind, label in rows]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cells), figsize=(5 * len(cells), 4.4), squeeze=False)
    for col, (pair, m) in enumerate(cells.items()):
        for row, (kind, label) in enumerate(rows):
            ax = axes[row, col]
            ax.imshow(plt.imread(os.path.join(m["folder"], f"predict_{kind}.png")))  # forecast()'s plot
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{pair}, {kind}: MSE {m[f'mse_{kind}']:.4g}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label.split(" (")[0])
    fig.tight_layout()
    folder = output_folder(next(iter(cells.values()))["run_dir"], f"matrix_{'+'.join(cells)}",
                           lambda folder: fig.savefig(os.path.join(folder, "predict_matrix.png"), dpi=150, format="png"))
    plt.close(fig)
    return "\n".join(table), os.path.join(folder, "predict_matrix.png"), cells


# ---------------------------------------------------------------- files and plots

def output_folder(run_dir, tag, write):
    """Call write(folder) on a new hidden folder in RUN/forecasts/, then name it {tag}, or {tag}-2,
    {tag}-3, ... where an earlier evaluation has that name: no evaluation replaces another's files
    (a repeat may read another version of a CSV), and a folder is whole or absent. Returns it."""
    partial = runs.new_folder(os.path.join(run_dir, "forecasts"), tag, f"run {run_dir}",
                              hint="move what is in its place away, or copy the run to a folder you can write to")
    try:
        write(partial)
    except BaseException:
        runs.discard_run_dir(partial)
        raise
    return runs.finish_folder(partial)


def write_csv(path, header, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    runs.write_atomic(path, write)


def write_backtest(run, result, tag=None):
    """metrics.json, errors_by_step.csv and error_by_horizon.png of a backtest; returns the folder."""
    H = result["horizon"]
    tag = tag or f"{run.series.name}_backtest_h{H}_stride{result['stride']}_n{len(result['origins'])}" \
        + (f"_season{result['season']}" if result["season"] else "") + f"_level{result['interval']['level']:g}"
    interval, adaptive = result["interval"], result["interval_adaptive"]
    median_halfwidth = np.median(adaptive["halfwidth"], axis=0)  # per step, over origins (inf-safe)
    header = ["step"] + [f"{name}_{k}" for name in result["by_step"] for k in ("mse", "rmse", "mae", "smape", "mase")] \
        + ["interval_halfwidth", "interval_coverage", "adaptive_median_halfwidth", "adaptive_coverage"]
    rows = [[h + 1] + [result["by_step"][name][k][h] for name in result["by_step"]
                       for k in ("mse", "rmse", "mae", "smape", "mase")]
            + [interval["halfwidth"][h], interval["coverage_by_step"][h], median_halfwidth[h],
               adaptive["coverage_by_step"][h]] for h in range(H)]
    at = sorted({1, H})
    summary = {
        "run_dir": run.run_dir, "dataset": run.series.name, "protocol": "chrono: rolling-origin backtest on the test part",
        "test_part": {"first_index": run.val_end, "n_values": len(run.z) - run.val_end},
        "horizon": H, "stride": result["stride"], "n_origins": len(result["origins"]),
        "first_origin": int(result["origins"][0]), "last_origin": int(result["origins"][-1]),
        "season": result["season"], "mase_scale": result["mase_scale"],
        "metrics": result["metrics"],
        "by_step": {name: {k: [float(v) for v in vals] for k, vals in d.items()} for name, d in result["by_step"].items()},
        "at_step": {f"h{h}": {name: {k: float(v[h - 1]) for k, v in d.items()} for name, d in result["by_step"].items()}
                    for h in at},
        "interval": {"level": interval["level"], "coverage": interval["coverage"],
                     "halfwidth": [float(v) for v in interval["halfwidth"]],
                     "coverage_by_step": [float(v) for v in interval["coverage_by_step"]],
                     "n_calibration": [int(v) for v in interval["n_calibration"]],
                     "calibrated_on": "validation part (split conformal)"},
        "interval_adaptive": {"level": adaptive["level"], "gamma": adaptive["gamma"], "coverage": adaptive["coverage"],
                              "coverage_by_step": [float(v) for v in adaptive["coverage_by_step"]],
                              "median_halfwidth_by_step": [float(v) for v in median_halfwidth],
                              "infinite_fraction": float(np.mean(~np.isfinite(adaptive["halfwidth"]))),
                              "calibrated_on": "adaptive conformal (Gibbs and Candes 2021): the validation part's "
                                               "errors and the test errors observed before each origin"},
        "filled_values_not_scored": int((~result["observed"]).sum()),
    }

    def write(folder):
        write_csv(os.path.join(folder, "errors_by_step.csv"), header, rows)
        runs.write_json(os.path.join(folder, "metrics.json"), summary)
        plot_horizon({run.config["run_name"]: result}, os.path.join(folder, "error_by_horizon.png"))
    return output_folder(run.run_dir, tag, write)


def plot_horizon(results, path, metric="mase"):
    """Error against steps ahead: one line per run, naive (and seasonal naive) dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, result) in enumerate(results.items()):
        steps = np.arange(1, result["horizon"] + 1)
        ax.plot(steps, result["by_step"]["model"][metric], marker=".", label=name)
        if k == 0:
            for other, style in (("naive", "--"), ("seasonal_naive", ":")):
                if other in result["by_step"]:
                    ax.plot(steps, result["by_step"][other][metric], ls=style, color="black", label=other)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"{metric.upper()} on the test part")
    ax.legend(fontsize=7)
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def write_future(run, ahead):
    """future.csv and future.png in a new RUN/forecasts/{dataset}_future_{steps}_level{level}/; returns it."""
    steps = len(ahead["forecast"])
    level = ahead["level"]
    lower = ahead["lower"] if ahead["lower"] is not None else [None] * steps
    upper = ahead["upper"] if ahead["upper"] is not None else [None] * steps
    time_name = run.series.time_label if run.series.time_label != "sample" else "step"
    header = [time_name, "forecast", f"lower_{level:g}" if level else "lower", f"upper_{level:g}" if level else "upper"]
    rows = [[str(t), float(f), "" if lo is None or not np.isfinite(lo) else float(lo),
             "" if up is None or not np.isfinite(up) else float(up)]
            for t, f, lo, up in zip(ahead["time"], ahead["forecast"], lower, upper)]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    t, y = run.series.time, run.series.values
    recent = max(0, len(y) - 4 * steps)
    ax.plot(t[recent:], y[recent:], color="black", lw=1, label="series")
    ax.plot(ahead["time"], ahead["forecast"], color="tab:red", lw=1.2, label="forecast")
    if ahead["lower"] is not None:
        finite = np.isfinite(ahead["lower"]) & np.isfinite(ahead["upper"])
        ax.fill_between(ahead["time"][finite], ahead["lower"][finite], ahead["upper"][finite], color="tab:red",
                        alpha=0.2, label=f"{level}% interval")
    ax.set_xlabel(run.series.time_label)
    ax.set_ylabel(run.series.value_label)
    ax.set_title(f"{run.config['run_name']}: {steps} steps past the end", fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()

    def write(folder):
        write_csv(os.path.join(folder, "future.csv"), header, rows)
        fig.savefig(os.path.join(folder, "future.png"), dpi=100, format="png")
    folder = output_folder(run.run_dir, f"{run.series.name}_future_{steps}_level{level or 'none'}", write)
    plt.close(fig)
    return folder


def plot(series, start, prediction, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    t = series.time
    ax.plot(t, series.values, color="0.75", lw=1, label="series")
    ax.plot(t[start:], series.values[start:], color="black", lw=1, label="actual")
    ax.plot(t[start:], prediction, color="tab:red", lw=1, label="prediction")
    ax.axvline(t[start], color="tab:blue", ls="--", lw=1, label="prediction starts")
    ax.set_xlabel(series.time_label)
    ax.set_ylabel(series.value_label)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def backtest_line(result, folder):
    """Two lines: MASE at step 1, at the horizon and overall, beside naive, and the coverages; then
    the verdict in words, and the folder (the output's last word, as everywhere: -> PATH)."""
    m, s, H = result["metrics"], result["by_step"], result["horizon"]
    line = (f"test MASE h1 {s['model']['mase'][0]:.3g} h{H} {s['model']['mase'][-1]:.3g} all {m['model']['mase']:.3g}"
            f"  (naive {s['naive']['mase'][0]:.3g} / {s['naive']['mase'][-1]:.3g} / {m['naive']['mase']:.3g})")
    if "seasonal_naive" in m:
        line += f"  (seasonal naive all {m['seasonal_naive']['mase']:.3g})"
    line += (f"  RMSE {m['model']['rmse']:.4g} (naive {m['naive']['rmse']:.4g})  {result['interval']['level']:g}% "
             f"interval coverage fixed {result['interval']['coverage']:.0%}, adaptive "
             f"{result['interval_adaptive']['coverage']:.0%}  ({len(result['origins'])} origins)")
    return f"{line}\n{verdict(s['model']['mase'], s['naive']['mase'])}  -> {folder}"


def verdict(model, naive, tie=0.005):
    """One sentence from the per-step errors (MASE by step) of the model and of naive: at which
    steps ahead the model beats naive. Within `tie` (relative) of naive's error counts as the same, a
    NaN error as worse; more than three stretches of one kind are summarised as a count."""
    model, naive = np.asarray(model, dtype=float), np.asarray(naive, dtype=float)
    kind = np.where(np.abs(model - naive) <= tie * np.abs(naive), "same", np.where(model < naive, "better", "worse"))
    stretches = []  # [kind, first step, last step], steps counted from 1
    for h, k in enumerate(kind, 1):
        if stretches and stretches[-1][0] == k:
            stretches[-1][2] = h
        else:
            stretches.append([k, h, h])

    def steps(k):
        spans = [(a, b) for kk, a, b in stretches if kk == k]
        n = sum(b - a + 1 for a, b in spans)
        if len(spans) > 3:
            return f"{n} of {len(kind)} steps (between step {spans[0][0]} and {spans[-1][1]})"
        where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
        return f"step {where}" if n == 1 else f"steps {where}"
    naive_is = "naive (repeating the last value)"
    lead = {"better": f"Better than {naive_is}", "worse": f"Worse than {naive_is}",
            "same": f"The same as {naive_is}, within {tie:.1%},"}
    order = list(dict.fromkeys(kind))  # each kind once, in the order it first appears
    if len(order) == 1:
        return f"{lead[order[0]]} at every step ahead" + (f" (1-{len(kind)})." if len(kind) > 1 else ".")
    words = {"better": "better", "worse": "worse", "same": f"the same within {tie:.1%}"}
    return f"{lead[order[0]]} at {steps(order[0])}; " + "; ".join(f"{words[k]} at {steps(k)}" for k in order[1:]) + "."


def evaluate(run_dir, device="cpu"):
    """What train.py runs after training: the backtest at the default horizon and the test-part
    plots (chrono), or the log's batch and regressive forecasts (random). Returns one line."""
    run = load(run_dir, device)
    if not run.honest:
        m = forecast(run, device=device)
        return f"mse_batch {m['mse_batch']:.6g}  mse_regressive {m['mse_regressive']:.6g} -> {m['folder']}"
    horizon = min(DEFAULT_HORIZON, len(run.z) - run.val_end)
    result = backtest(run, horizon)
    forecast(run, device=device)
    return backtest_line(result, write_backtest(run, result))


def main(argv=None):
    parser = runs.Parser(description="Evaluate a trained run on its test part, or forecast past the end.")
    parser.add_argument("run_dir", nargs="+", help="a directory written by train.py, or runs/{run_name} for its "
                        "latest run; several: one horizon curve per run (or the cross-dataset table)")
    parser.add_argument("--horizon", type=int, default=None, help=f"steps ahead in the backtest ({DEFAULT_HORIZON})")
    parser.add_argument("--stride", type=int, default=None, help="steps between origins (default: about "
                        f"{MAX_ORIGINS} origins)")
    parser.add_argument("--origins", type=int, default=None, help="at most this many origins, evenly spread")
    parser.add_argument("--season", type=int, default=None, help="seasonal period m: seasonal naive and MASE's scale")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="prediction interval level, percent")
    parser.add_argument("--future", type=int, default=None, metavar="H", help="forecast H steps past the end")
    parser.add_argument("--dataset", default=None, help="data set to evaluate (default: the training set)")
    parser.add_argument("--column", default=None, help="value column of a CSV data set")
    parser.add_argument("--data_dir", default=None, help="where y_w, w_y and 4single live")
    parser.add_argument("--fill", default=None, help=f"gaps in another CSV: {', '.join(FILL_MODES)}")
    parser.add_argument("--date_format", default=None, help="strptime format of another CSV's dates")
    parser.add_argument("--predict_rate", type=float, default=None,
                        help="the log's protocol: fraction of windows to predict (default 1)")
    parser.add_argument("--positions", default="sliding",
                        help="sliding: every window numbered 0..T-1 (the log's); absolute: positions in the series")
    parser.add_argument("--kv_cache", default="auto",
                        help="regressive prediction with a KV cache: auto (where it gives the same "
                             "forecasts: causal att models trained with --norm global), on, off")
    parser.add_argument("--device", default="cpu", help=f"one of {', '.join(runs.DEVICES)}")
    args = parser.parse_args(argv)
    try:
        if args.future is not None and args.season is not None:  # the season shapes only the backtest
            raise DataError(f"--season {args.season} shapes the backtest (seasonal naive, MASE's scale), and "
                            f"--future {args.future} forecasts past the end without one; drop --season, or "
                            f"drop --future to backtest")
        device = runs.pick_device(args.device)
        runs.Threads().start()  # as many threads as other processes leave cores free
        if args.dataset and "," in args.dataset:
            datasets = [d for d in args.dataset.split(",") if d]  # the log's 2025-01-06 matrix
            table, png, _ = cross_dataset(args.run_dir, datasets, args.column, args.predict_rate, device,
                                          args.data_dir, args.positions, args.kv_cache)
            print(f"{table}\n-> {png}")
            return
        loaded = [load(r, device, args.dataset, args.column, args.data_dir, args.fill, args.date_format)
                  for r in args.run_dir]
        if args.future is not None:
            for run in loaded:
                ahead = future(run, args.future, args.level, args.kv_cache)
                band = f" with a {args.level:g}% interval" if ahead["level"] else \
                    " (no interval: the log's protocol keeps no held-out part to calibrate it)"
                if ahead["level"] and ahead["interval_steps"] < args.future:
                    band += (f" up to step {ahead['interval_steps']} (none after: a step needs at least "
                             f"{ahead['min_errors']} forecast errors with targets in the validation and test "
                             f"parts, and the series is too short to give step {ahead['interval_steps'] + 1} that many)")
                print(f"{args.future} steps past {run.series.time[-1]}, {ahead['spacing']}{band} "
                      f"-> {write_future(run, ahead)}")
            return
        backtest_options = [f"--{k}" for k in ("horizon", "stride", "origins", "season") if getattr(args, k) is not None]
        if not all(run.honest for run in loaded) and backtest_options:
            log_run = next(run for run in loaded if not run.honest)
            raise DataError(f"{backtest_options[0]}: a backtest needs a held-out test part, and {log_run.run_dir} was "
                            f"trained under the log's protocol (--split random); train with --split chrono")
        args.horizon = DEFAULT_HORIZON if args.horizon is None else args.horizon
        if not all(run.honest for run in loaded) or args.predict_rate is not None or args.positions != "sliding":
            for r in args.run_dir:
                m = forecast(r, args.dataset, args.column, args.predict_rate, device, args.data_dir,
                             args.positions, args.kv_cache)
                print(f"{m['dataset']}: mse_batch {m['mse_batch']:.6g}  mse_regressive {m['mse_regressive']:.6g}  "
                      f"mae_batch {m['mae_batch']:.6g}  mae_regressive {m['mae_regressive']:.6g}  "
                      f"({m['n_predicted']} steps) -> {m['folder']}")
            return
        results = {}
        for run in loaded:
            result = backtest(run, args.horizon, args.stride, args.origins, args.season, args.level, args.kv_cache)
            print(f"{run.config['run_name']}: {backtest_line(result, write_backtest(run, result))}")
            results[run.config["run_name"]] = result
        if len(loaded) > 1:
            folder = output_folder(loaded[0].run_dir, f"compare_h{args.horizon}_{len(loaded)}runs",
                                   lambda folder: plot_horizon(results, os.path.join(folder, "error_by_horizon.png")))
            print(f"-> {os.path.join(folder, 'error_by_horizon.png')}")
    except runs.UsageError as e:
        runs.fail(parser.prog, e)


if __name__ == "__main__":
    main()
