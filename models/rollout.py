"""Forecasting many steps with any model of the protocol: each forecast fed back as the next input.

    next_value(model, x)              the value after each window x (B, T, 1) -> (B,)
    regress(model, windows, steps)    `steps` forecasts from each window, fed back, (B, steps)
    regressive_path(model)            "kv_cache" where the model's cache gives the same forecasts
                                      as recomputing every window, else "recompute"; asked for
                                      (kv_cache on), "last_position" for a pointwise model

Recomputing runs the whole window through the model at every step (quadratic in the window for
attention); with a KV cache the window goes in once and then one value a step (llama's start_pos
vocabulary; models/att_mh.py). A pointwise model (every VQ family: the output at t depends on
x[t] and t alone) needs nothing of the earlier positions at all: "last_position" runs the model on
the window's last value, at its position, after the window's normalisation (last_value). It gives
the recomputed forecasts to float32 rounding (the matrix products see B rows instead of B * T:
1e-7 relative, and exactly in float64, tests/test_attention.py) at 1/T of the work; auto keeps
recomputing, so the numbers recorded before it (tests/golden.py) stay bit for bit.
forecast.py's backtest and future forecasts and the log's regressive evaluation (log_protocol.py)
all forecast through regress.
"""
import torch

from models.norm import WindowNorm
from runs import DataError

KV_CACHE = ("auto", "on", "off")


def next_value(model, x, start_pos=0, cache=None):
    """The model's forecast of the value after each window: x (B, T, 1) -> (B,)."""
    out = model(x, start_pos, cache) if cache is not None else model(x, start_pos=start_pos)
    return out[:, -1, 0] if model.target == "aligned" else out[:, 0]


def pointwise(model):
    """Whether the output at t of model (or of the model a WindowNorm reads for) depends on x[t] and t alone."""
    return getattr(getattr(model, "model", model), "pointwise", False)


def last_value(model, x, start_pos=0):
    """next_value of a pointwise model from the window's last position alone: (B, T, 1) -> (B,).
    The window's normalisation (--norm last, revin) still reads the whole window."""
    T = x.shape[1]
    if isinstance(model, WindowNorm):
        xn, loc, scale = model.normalise(x)                         # loc, scale (B, 1, 1) or 1
        return (model.model(xn[:, -1:], start_pos=start_pos + T - 1) * scale + loc)[:, -1, 0]
    return model(x[:, -1:], start_pos=start_pos + T - 1)[:, -1, 0]


@torch.no_grad()
def regress(model, windows, steps, path="recompute", first_pos=None):
    """steps forecasts from each window (B, T, 1), each fed back as the next input: (B, steps).

    first_pos None: every window is numbered 0..T-1 (the log's sliding positions); an integer:
    the window's first value sits at that position of the series (absolute positions). path
    "kv_cache": the window once, then one value a step against the model's cache (see
    regressive_path for when this equals recomputing every window); "last_position": a pointwise
    model run on each window's last value only (last_value)."""
    B, T, _ = windows.shape
    if getattr(model, "frozen", False):  # the origin window's statistics for every step: the inner model's rollout
        xn, loc, scale = model.normalise(windows)                  # loc (B, 1, 1), scale (B, 1, 1) or 1
        return regress(model.model, xn, steps, path, first_pos) * (scale if model.norm == "last" else scale[:, 0]) \
            + loc[:, 0]
    preds = windows.new_empty(B, steps)
    if path == "kv_cache":
        pos = first_pos or 0
        cache = model.new_cache(T)                                # each step sees time_steps values
        preds[:, 0] = next_value(model, windows, pos, cache)
        for i in range(1, steps):  # forecast i - 1, at position pos + T + i - 1, goes in
            preds[:, i] = next_value(model, preds[:, i - 1].view(B, 1, 1), pos + T + i - 1, cache)
        return preds
    step = last_value if path == "last_position" else next_value
    window = windows.clone()
    for i in range(steps):
        preds[:, i] = step(model, window, 0 if first_pos is None else first_pos + i)
        window = torch.cat([window[:, 1:], preds[:, i].view(B, 1, 1)], dim=1)  # slide by one, feed back
    return preds


def regressive_path(model, positions="sliding", kv_cache="auto"):
    """How regressive prediction runs for this model: "kv_cache" or "recompute" (every window whole).

    The cache numbers positions absolutely, so it gives predict_regressive's forecasts under
    positions "absolute" always, and under "sliding" (every window from 0) when the model's
    outputs depend on positions only through their differences (relative_positions). auto uses
    the cache exactly then; on asks for it and fails where it would change the forecasts."""
    if kv_cache not in KV_CACHE:
        raise DataError(f"unknown kv_cache {kv_cache!r}; choose one of {', '.join(KV_CACHE)}")
    if kv_cache == "on" and pointwise(model):  # nothing of the earlier positions is needed, under any norm
        return "last_position"
    if getattr(model, "frozen", False):  # statistics held at the origin: the inner model's inputs never change
        return regressive_path(model.model, positions, kv_cache)
    norm = getattr(model, "norm", "global")
    if norm != "global":  # every new window is re-normalised: no cached key of an earlier input holds
        if kv_cache == "on":
            raise DataError(f"kv_cache on: this run reads each window with --norm {norm}, which changes every "
                            f"input of a window at each step, so a cache cannot be reused; choose kv_cache auto or "
                            f"off, or --norm_stats origin (the origin's statistics for every step)")
        return "recompute"
    has_cache = hasattr(model, "new_cache") and getattr(model, "causal", False)
    same = positions == "absolute" or getattr(model, "relative_positions", False)
    if kv_cache == "off" or (kv_cache == "auto" and not (has_cache and same)):
        return "recompute"
    name = type(model).__module__.split(".")[-1]
    if not has_cache:
        raise DataError(f"kv_cache on: model {name} has no KV cache (causal attention models have one: "
                        f"att, att_mh with causal true; the pointwise VQ models need none) and recomputes "
                        f"every window; choose kv_cache auto or off")
    if not same:
        raise DataError(f"kv_cache on: model {name} encodes absolute positions (pe_type {model.pe_type} on "
                        f"{model.pe_on}), so the cache's absolute positions change its forecasts under "
                        f"positions sliding; choose positions absolute, or kv_cache auto or off")
    return "kv_cache"
