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
steps, its own forecasts fed back (models/rollout.py). Errors are in the series' units per step
ahead and overall, always beside naive (the last value repeated) and, with --season m, seasonal
naive (the formulas: scoring.py). Intervals are conformal: fixed, from the validation part's
errors per step ahead, and adaptive (the level moves after every origin with the errors seen
before it). --future's interval uses the latest errors of the validation and test parts. Runs
trained with --split random (the log's protocol) are scored as the log did: log_protocol.py.

Each evaluation writes a new folder RUN/forecasts/{settings}/ (outputs.py), so nothing training
or an earlier evaluation wrote is replaced.

From Python (plain numpy and dicts):
    import forecast
    run = forecast.load("runs/lstm_y_w_ts112_lr0.0005")
    result = forecast.backtest(run, horizon=24)      # result["metrics"]["model"]["mase"], result["by_step"], ...
    ahead = forecast.future(run, steps=48)           # ahead["time"], ahead["forecast"], ahead["lower"], ...
"""
import math
import os
from dataclasses import dataclass

if __name__ == "__main__":  # before torch: a quiet Ctrl-C, OpenMP's wait policy for a busy machine
    import runs
    runs.before_torch("forecast.py")

import numpy as np
import torch

import log_protocol
import models
import outputs
import runs
import scoring
from data import (DATASETS, DataError, check_time_steps, future_times, load_other, load_series, normalise, parts,
                  run_data_dir)
from models.rollout import regress, regressive_path

from config import (ACI_GAMMA, DEFAULT_HORIZON, DEFAULT_LEVEL, DIVERGED_STDS, FUTURE_WINDOW, MAX_ORIGINS, check_options,
                    check_series, forecast_parser, load_run)


# ---------------------------------------------------------------- load a run

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
    train_end: int          # [0, train_end) train, [train_end, val_end) validation, [val_end, test_end) test
    val_end: int
    observed: np.ndarray    # (N,) False where a value was filled in (never scored)
    device: str = "cpu"
    test_end: int = None    # N (None), or less where the field's split leaves the last values unused
    column_how: str = None  # another series (--dataset): how its value column was chosen
    weights: tuple = None   # runs.stamp() of model.pt as it was read: an evaluation is written only while it holds

    def __post_init__(self):
        self.test_end = len(self.z) if self.test_end is None else self.test_end

    @property
    def time_steps(self):
        return self.config["time_steps"]

    @property
    def honest(self):
        return self.config["split"] == "chrono"


def load(run_dir, device="cpu", dataset=None, column=None, data_dir=None, fill=None, date_format=None,
         norm_stats="step"):
    """A run directory (or runs/{run_name}: its latest complete run) with its series. norm_stats
    origin: a run that reads each window by its statistics feeds its forecasts back with the
    origin window's (models/norm.py, WindowNorm.frozen).

    dataset: another series to evaluate on (default: the training series). Under the chrono
    protocol a series is normalised with the training part's statistics: the stored ones for the
    training series, its own training part's for another. Under the log's protocol with the
    series' own whole-series statistics, as the log did."""
    run_dir = runs.latest_run(run_dir)
    weights = runs.stamp(os.path.join(run_dir, "model.pt"))
    model, config = load_run(run_dir, device)
    if norm_stats != "step":
        if getattr(model, "norm", "global") == "global" or norm_stats != "origin":
            raise DataError(f"--norm_stats {norm_stats}: choose step or origin, origin only for a run trained with "
                            f"--norm last or revin ({run_dir} reads the global level: no window statistics to hold)")
        model.frozen = True
    own = dataset is None
    if own:  # the training series: a CSV is found again by its path, its column by position
        dataset = config["dataset"] if config["dataset"] in DATASETS else config["source"]
        column = column if column is not None else config.get("column_index", config["column"])
        fill = fill or config.get("fill")
        date_format = date_format or config.get("date_format")
        if dataset == config["source"] and not os.path.isfile(dataset):
            raise DataError(f"the run was trained on {dataset}, which is not there any more; give --dataset "
                            f"PATH (and --column) to point at the series")
    data_dir = run_data_dir(dataset, data_dir or config.get("data_dir"), own and config.get("source"))
    if own:
        series, column_how = load_series(dataset, column, data_dir, fill, date_format), None
        check_series(config, series, f"to evaluate the run on it anyway, give it with --dataset {series.source}")
    else:  # another series: the run's column, where it has one of that name
        series, column_how = load_other(dataset, column, config.get("column"), data_dir, fill, date_format)
    check_time_steps(len(series.values), config["time_steps"])
    n = len(series.values)
    observed = np.ones(n, bool) if series.observed is None else np.asarray(series.observed, bool)
    if config["split"] == "chrono":
        same = series.name == config["dataset"] and getattr(series, "sha256", None) == config.get("sha256")
        if same:  # the parts and statistics training used
            train_end, val_end, test_end = (config["parts"].get(k, n) for k in ("train_end", "val_end", "test_end"))
            mean, std = config["normalisation"]["mean"], config["normalisation"]["std"]
        else:  # another series: cut as the run's fractions say (none: its own field split, or the default)
            train_end, val_end, test_end = parts(n, config["fractions"], series.field_split)
            _, mean, std = normalise(series.values[:train_end])
        z = (series.values - mean) / std
    else:
        train_end = val_end = test_end = n
        z, mean, std = normalise(series.values)
    return Run(run_dir, model, config, series, z, mean, std, train_end, val_end, observed, device, test_end, column_how,
               weights)


def backtest_origins(run, horizon, stride=None, origins=None):
    """(origins (K,), stride) of a backtest; at one stride a longer horizon's are a shorter one's first."""
    candidates = np.arange(run.val_end, run.test_end - horizon + 1)
    stride = stride or max(1, math.ceil(len(candidates) / MAX_ORIGINS))
    chosen = candidates[::stride]
    if origins and origins < len(chosen):
        chosen = chosen[np.unique(np.linspace(0, len(chosen) - 1, origins).round().astype(int))]
    return chosen, stride


def backtest(run, horizon=DEFAULT_HORIZON, stride=None, origins=None, season=None, level=DEFAULT_LEVEL,
             kv_cache="auto", forecasts=None):
    """Rolling-origin backtest on the test part.

    Origins o run from the first test value to the last that leaves `horizon` values after it,
    every `stride` (default: about MAX_ORIGINS origins), at most `origins` of them (evenly
    spread). From each, the model forecasts values o .. o + horizon - 1 from the true values
    before o. Returns plain numpy and dicts: origins (K,), predictions, actual, naive (K, H) in
    the series' units; metrics {model, naive[, seasonal_naive]} each {mse, rmse, mae, smape,
    mase} overall, and by_step the same per step ahead; interval {level, halfwidth (H,),
    coverage, coverage_by_step} from the validation part's errors (fixed); interval_adaptive
    {level, gamma, halfwidth (K, H), alpha (K, H), coverage, coverage_by_step}: adaptive conformal
    inference over the origins (scoring.adaptive_intervals), each interval from errors observed before
    its origin only; level None: none (their calibration is most of a long horizon's cost). Each
    metric also comes as mse_normalised, mae_normalised: in units of the training part's std, the
    field's scale. forecasts: origins -> (K, >= horizon) forecasts already made (a fed-back
    rollout's first steps do not depend on how many follow: benchmarks/ett.py)."""
    run = run if isinstance(run, Run) else load(run)  # from Python: a run directory's path will do
    if not run.honest:
        raise DataError("a backtest needs a held-out test part, and this run was trained under the log's "
                        "protocol (--split random); train with --split chrono, or use --predict_rate")
    n_test = run.test_end - run.val_end
    runs.check_positive(horizon=horizon, stride=stride, origins=origins, season=season)
    if season and season >= run.train_end:
        raise DataError(f"--season {season} is not shorter than the training part ({run.train_end} values), whose "
                        f"values {season} steps apart give MASE its seasonal scale; choose --season < {run.train_end}")
    if horizon > n_test:
        raise DataError(f"--horizon {horizon} is longer than the test part ({outputs.plural(n_test, 'value')}); choose "
                        f"--horizon <= {n_test} or train with a larger --test_fraction")
    if level is not None:
        runs.check_level(level)
    chosen, stride = backtest_origins(run, horizon, stride, origins)
    y = run.series.values
    steps = chosen[:, None] + np.arange(horizon)                    # (K, H) value indices forecast
    pred = rollout(run, chosen, horizon, kv_cache) if forecasts is None else forecasts(chosen)[:, :horizon]
    actual, scored = y[steps], run.observed[steps]
    forecasts = {"model": pred, "naive": np.repeat(y[chosen - 1, None], horizon, axis=1)}
    if season:
        lag = season * np.ceil(np.arange(1, horizon + 1) / season).astype(int)  # last season's value
        forecasts["seasonal_naive"] = y[steps - lag]
    scale = scoring.naive_scale(y[:run.train_end], run.observed[:run.train_end], season or 1)
    metrics, by_step = {}, {}
    for name, f in forecasts.items():
        metrics[name], by_step[name] = scoring.errors(f, actual, scored, scale)
        metrics[name].update(mse_normalised=metrics[name]["mse"] / run.std ** 2, mae_normalised=metrics[name]["mae"] / run.std)
    result = {"origins": chosen, "horizon": horizon, "stride": stride, "predictions": pred, "actual": actual,
              "naive": forecasts["naive"], "observed": scored, "metrics": metrics, "by_step": by_step,
              "mase_scale": scale, "season": season, "interval": None, "interval_adaptive": None}
    if level is None:
        return result
    pool = validation_errors(run, horizon, kv_cache)
    halfwidth, n_cal = scoring.conformal_halfwidths(pool, level)
    inside = (np.abs(pred - actual) <= halfwidth) & scored
    coverage_by_step = inside.sum(0) / np.maximum(scored.sum(0), 1)
    adaptive, alphas = scoring.adaptive_intervals(chosen, np.abs(pred - actual), scored, pool, level, ACI_GAMMA)
    inside_adaptive = (np.abs(pred - actual) <= adaptive) & scored
    return {**result, "interval": {"level": level, "halfwidth": halfwidth, "n_calibration": n_cal,
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
    series is too short to give a step enough errors. A forecast that leaves the finite numbers, or
    goes DIVERGED_STDS standard deviations of the series from its last value (a model that feeds its
    own growth back), ends before the step where it did: diverged_at."""
    run = run if isinstance(run, Run) else load(run)  # from Python: a run directory's path will do
    runs.check_positive(future=steps)
    runs.check_level(level)
    pred = rollout(run, np.array([len(run.z)]), steps, kv_cache)[0]
    y = run.series.values
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.abs(pred - y[-1]) <= DIVERGED_STDS * np.std(y)  # False for inf and nan too
    diverged = None if finite.all() else int(np.argmin(finite)) + 1  # the first step, from 1, that diverged
    if diverged == 1:
        raise DataError(f"{run.run_dir}: the forecast of the first step past the end, {pred[0]:.4g}, is not a finite "
                        f"number within {DIVERGED_STDS:g} standard deviations ({np.std(y):.4g}) of the last value "
                        f"({y[-1]:.4g}); nothing to write (is the series' last window far outside what the model saw?)")
    steps, pred = (diverged - 1, pred[:diverged - 1]) if diverged else (steps, pred)  # only finite numbers
    lower = upper = None
    interval_steps = 0
    if run.honest:
        halfwidth, _ = recent_calibration(run, steps, level, kv_cache=kv_cache)
        lower, upper = pred - halfwidth, pred + halfwidth
        interval_steps = int(np.argmin(np.isfinite(halfwidth))) if not np.isfinite(halfwidth).all() else steps
    time, spacing = future_times(run.series, steps)
    return {"time": time, "forecast": pred, "lower": lower, "upper": upper, "level": level if run.honest else None,
            "spacing": spacing, "interval_steps": interval_steps, "min_errors": scoring.min_errors(level),
            "window": FUTURE_WINDOW, "diverged_at": diverged,
            "most_errors": max(0, len(run.z) - max(run.time_steps, run.train_end)) if run.honest else 0}


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


@torch.no_grad()
def validation_errors(run, horizon, kv_cache="auto"):
    """Per step ahead h, the absolute errors of the forecasts whose target lies in the
    validation part, from every origin with true history before it: a list of H arrays."""
    first = max(run.time_steps, run.train_end - horizon + 1)
    origins = np.arange(first, run.val_end)
    pred = rollout(run, origins, horizon, kv_cache)
    targets = origins[:, None] + np.arange(horizon)
    inside = (targets >= run.train_end) & (targets < run.val_end)
    inside[inside] &= run.observed[targets[inside]]
    residual = np.abs(pred - run.series.values[np.minimum(targets, len(run.z) - 1)])
    return [residual[inside[:, h], h] for h in range(horizon)]


@torch.no_grad()
def recent_calibration(run, steps, level, window=FUTURE_WINDOW, kv_cache="auto"):
    """--future's half-widths: per step ahead h, the conformal quantile of the latest `window`
    absolute errors of forecasts whose targets lie in the validation and test parts
    [train_end, N), from every origin with true history before it (a backtest over both
    parts at stride 1). Nothing is evaluated past the end, so the newest errors are the best
    guide. A step needs at least scoring.min_errors(level) errors; far steps of a long --future have
    fewer (origins must leave h values before the end), and their interval is inf. Returns
    (halfwidth (steps,), n (steps,))."""
    n, T = len(run.z), run.time_steps
    window = max(window, scoring.min_errors(level))
    h = np.arange(steps)
    available = np.minimum(n - h - T, n - run.train_end)   # origins o >= T, o >= train_end - h, o + h < n
    reach = int((available >= scoring.min_errors(level)).sum())     # non-increasing in h: the steps with enough
    halfwidth, counts = np.full(steps, np.inf), np.zeros(steps, int)
    if reach == 0:
        return halfwidth, counts
    origins = np.arange(max(T, run.train_end - reach + 1, n - reach + 1 - window), n)
    pred = rollout(run, origins, reach, kv_cache)
    targets = origins[:, None] + np.arange(reach)
    inside = (targets >= run.train_end) & (targets < n)
    inside[inside] &= run.observed[targets[inside]]
    residual = np.abs(pred - run.series.values[np.minimum(targets, n - 1)])
    for k in range(reach):
        r = residual[inside[:, k], k][-window:]            # origins increase: the latest targets last
        halfwidth[k], counts[k] = scoring.conformal(np.sort(r), level), len(r)
    return halfwidth, counts


def evaluate(run_dir, device="cpu"):
    """What train.py runs after training: the backtest on the test part at the default horizon
    (chrono), or the log's batch and regressive forecasts over the whole series (random). Returns
    the lines to print."""
    run = load(run_dir, device)
    if not run.honest:
        m = log_protocol.evaluate(run, device=device)
        return f"mse_batch {m['mse_batch']:.6g}  mse_regressive {m['mse_regressive']:.6g} -> {m['folder']}"
    result = backtest(run, min(DEFAULT_HORIZON, run.test_end - run.val_end))
    return outputs.backtest_line(result, outputs.write_backtest(run, result), asked=DEFAULT_HORIZON)


def main(argv=None):
    runs.ctrl_c_interrupts()
    parser = forecast_parser()
    args = parser.parse_args(argv)
    try:
        check_options(args)  # options that belong to another kind of evaluation
        device = runs.pick_device(args.device)
        runs.Threads().start()  # $VQSEQ_THREADS=follow: as many threads as other processes leave cores free
        datasets = [d for d in args.dataset.split(",") if d] if args.dataset and "," in args.dataset else [args.dataset]
        loaded = [load(r, device, d, args.column, args.data_dir, args.fill, args.date_format, args.norm_stats)
                  for r in args.run_dir for d in datasets]
        for note in filter(None, map(outputs.column_note, loaded)):  # another series: which column is forecast
            print(note, flush=True)
        if len(datasets) > 1:  # the log's 2025-01-06 matrix
            table, png, _ = log_protocol.cross_dataset(loaded, args.predict_rate, device, args.positions or "sliding",
                                                       args.kv_cache)
            print(f"{table}\n-> {png}")
        elif args.future is not None:
            for run in loaded:
                print(outputs.future_line(run, future(run, args.future, args.level, args.kv_cache)))
        elif not all(run.honest for run in loaded) or args.predict_rate is not None or args.positions is not None:
            backtest_options = [f"--{k}" for k in ("horizon", "stride", "origins", "season") if getattr(args, k) is not None]
            log_run = next((run for run in loaded if not run.honest), None)
            if backtest_options and log_run:
                raise DataError(f"{backtest_options[0]}: a backtest needs a held-out test part, and {log_run.run_dir} "
                                f"was trained under the log's protocol (--split random); train with --split chrono")
            for run in loaded:
                print(log_protocol.line(log_protocol.evaluate(run, args.predict_rate, device, args.positions or "sliding",
                                                              args.kv_cache)))
        else:
            results = {}
            for run in loaded:  # no --horizon: 24 steps, or the test part's length where that is shorter (it says so)
                asked = args.horizon is None and DEFAULT_HORIZON
                horizon = min(DEFAULT_HORIZON, run.test_end - run.val_end) if asked else args.horizon
                result = backtest(run, horizon, args.stride, args.origins, args.season, args.level, args.kv_cache)
                line = outputs.backtest_line(result, outputs.write_backtest(run, result), asked=asked)
                print(f"{run.config['run_name']}: {line}")
                results[run.config["run_name"]] = result
            if len(loaded) > 1:
                folder = runs.output_folder(loaded[0].run_dir, f"compare_h{horizon}_{len(loaded)}runs",
                                            lambda f: outputs.plot_horizon(results, os.path.join(f, "error_by_horizon.png")),
                                            loaded[0].weights)
                print(f"-> {os.path.join(folder, 'error_by_horizon.png')}")
    except runs.UsageError as e:
        runs.fail(parser.prog, e)
    except KeyboardInterrupt:
        runs.fail(parser.prog, "interrupted (Ctrl-C): the evaluation under way was not written; the run is as it was",
                  status=130)


if __name__ == "__main__":
    main()
