"""How forecasts are scored and how wide their intervals are: the formulas, in plain numpy.

For forecasts f of values y over the scored cells (a filled-in value is never scored):

    MSE   = mean (f - y)^2              RMSE = sqrt(MSE)            MAE = mean |f - y|
    sMAPE = mean 200 |f - y| / (|f| + |y|)      (0 where both are 0)
    MASE  = MAE / scale,  scale = mean_t |y_t - y_{t-m}| over the training part (naive_scale):
            the one-step (m = 1) or seasonal (m = season) naive forecast's error in sample, so
            MASE 1 at step 1 is "as good as persistence" (Hyndman and Koehler 2006).

Intervals are conformal: for absolute errors r_1 <= ... <= r_n of past forecasts, the half-width
at level L (percent) is r_k with k = ceil((n + 1) L / 100) (conformal); with fewer than
min_errors(L) errors there is no finite one. Fixed intervals take the validation part's errors
per step ahead (conformal_halfwidths); adaptive ones (adaptive_intervals, Gibbs and Candes 2021)
move their level after every outcome: alpha <- alpha + gamma (alpha_target - miss).
"""
import bisect
import math

import numpy as np

from runs import DataError


def naive_scale(y, observed, season=1):
    """MASE's denominator: the mean absolute error of the (seasonal) naive one-step forecast
    y[t - season] of y[t] over the training part, observed pairs only."""
    ok = observed[season:] & observed[:-season]
    if not ok.any():
        raise DataError(f"the training part has no two observed values {season} step(s) apart ({int((~observed).sum())} "
                        f"of its {len(y)} values were filled in), so MASE has no scale; fill fewer gaps "
                        f"(--fill drop), or give more of the series to the training part")
    scale = float(np.mean(np.abs(y[season:] - y[:-season])[ok]))
    if not scale > 0:
        raise DataError(f"the training part is constant at lag {season}: MASE has no scale")
    return scale


def errors(pred, actual, scored, scale):
    """({mse, rmse, mae, smape, mase} overall, the same per step ahead) over scored cells."""
    with np.errstate(invalid="ignore", over="ignore"):  # forecasts that diverged: nan and inf, said in words
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


def conformal_halfwidths(errors_by_step, level):
    """Fixed split conformal half-widths per step ahead: for step h, conformal() of the absolute
    errors errors_by_step[h] (those of the validation part). Returns (halfwidth (H,), n (H,)); inf
    where a step has too few errors for the level."""
    halfwidth = np.array([conformal(np.sort(r), level) for r in errors_by_step])
    return halfwidth, np.array([len(r) for r in errors_by_step])


def adaptive_intervals(origins, errors, scored, pool, level, gamma):
    """Adaptive conformal inference (Gibbs and Candes, NeurIPS 2021) per step ahead.

    origins (K,) increasing; errors, scored (K, H): the backtest's absolute errors; pool: per
    step, the validation part's errors. Step h of origin o_k forecasts value o_k + h, which is
    known from origin o_k + h + 1 on. The interval of origin o_k at step h is the conformal
    quantile at 1 - alpha_k of pool[h] plus the errors of earlier origins whose targets lie
    before o_k; alpha starts at 1 - level and, for each such outcome in turn, moves by
    alpha_{t+1} = alpha_t + gamma (alpha - miss_t), clipped to [-gamma, 1 + gamma]
    (alpha_t <= 0: an infinite interval). Only the backtest's own origins are used (no extra
    rollouts at stride 1); gamma: config.ACI_GAMMA. Returns (halfwidth (K, H), alpha (K, H))."""
    K, H = errors.shape
    alpha = 1 - level / 100
    halfwidth, alphas = np.empty((K, H)), np.empty((K, H))
    for h in range(H):
        known = np.searchsorted(origins + h, origins, side="left")  # origins j whose target o_j + h < o_k
        a, applied = alpha, 0
        calibration = sorted(pool[h])  # kept sorted as outcomes join it: no sort per origin
        for k in range(K):
            while applied < known[k]:  # outcomes observed since the last origin, in order
                if scored[applied, h]:
                    miss = errors[applied, h] > halfwidth[applied, h]
                    a = min(max(a + gamma * (alpha - miss), -gamma), 1 + gamma)
                    bisect.insort(calibration, errors[applied, h])
                applied += 1
            alphas[k, h] = a
            level_k = round(100 * (1 - a), 9)  # so that alpha_k = alpha gives the fixed level exactly
            halfwidth[k, h] = conformal(calibration, level_k)
    return halfwidth, alphas
