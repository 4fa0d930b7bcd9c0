"""Per-window normalisation (--norm): a model that reads each window relative to itself.

    global  the model reads the series z-scored with the training part's statistics (the log's);
    last    each window relative to its last value (NLinear);
    revin   each window relative to its own mean and std (RevIN without affine weights).
"""
import torch

NORMS = ("global", "last", "revin")  # what a model reads: the series' level, or each window's changes
NORM_STATS = ("step", "origin")  # fed-back forecasts: each window's own statistics, or the origin window's (frozen)
CHRONO_NORM = "revin"  # the default under --split chrono, chosen by validation error (docs/RESULTS.md, first section)
REVIN_EPS = 1e-5  # added to a window's variance, so a constant window divides by 0.003, not 0


class WindowNorm(torch.nn.Module):
    """A model that reads each window normalised by itself, in and out in global z units.

    The series is z-scored once with the training part's mean and std (data.normalise); this
    wrapper then, per input window x (B, T, 1), takes a location and scale, gives the model
    (x - loc) / scale and maps its output back: out * scale + loc. So the model file stays the
    textbook computation, and everything around it (losses, val_mse_last, forecasts) stays in
    the global z units every norm shares.
      last:  loc = the window's last value, scale 1 (of global z: the training part's std).
             A forecast is a change from the last value: NLinear (Zeng et al. 2023).
      revin: loc, scale = the window's own mean and std (sqrt(var + REVIN_EPS)): RevIN without
             its affine weights (Kim et al., ICLR 2022).
    A regressive forecast re-normalises every new window, so no key of an earlier input stays
    valid: there is no KV cache (models/rollout.py, regressive_path); unless `frozen` (forecast.py
    --norm_stats origin): then every fed-back window is read with the statistics of the forecast
    origin's window, as RevIN reads a whole forecast, and the cache holds. An aligned model's outputs before
    the last position forecast values inside the window its statistics came from; only the
    last position's output is a forecast, and val_mse_last measures just that."""

    def __init__(self, model, norm):
        super().__init__()
        self.model, self.norm, self.target = model, norm, model.target
        self.frozen = False  # fed-back forecasts: the origin window's statistics for every step (models/rollout.py)
        if hasattr(model, "code_probs"):  # codebook usage, measured on what the model reads
            self.code_probs = lambda x, start_pos=0: model.code_probs(self.normalise(x)[0], start_pos)
        if hasattr(model, "solve"):  # a closed-form fit, of what the model reads and returns
            self.solve = self._solve

    def normalise(self, x):
        """(x normalised, loc (B, 1, 1), scale (B, 1, 1) or 1)."""
        if self.norm == "last":
            loc, scale = x[:, -1:], 1.0
        else:
            loc = x.mean(1, keepdim=True)
            scale = (x.var(1, keepdim=True, unbiased=False) + REVIN_EPS).sqrt()
        return (x - loc) / scale, loc, scale

    def _solve(self, x, y):
        """The model's closed-form fit on normalised windows: y (N, 1) mapped as the model's outputs are."""
        xn, loc, scale = self.normalise(x)                          # loc, scale (N, 1, 1) or 1
        self.model.solve(xn, (y - loc[:, 0]) / (scale[:, 0] if torch.is_tensor(scale) else scale))

    def forward(self, x, start_pos=0):
        xn, loc, scale = self.normalise(x)
        out = self.model(xn, start_pos=start_pos)                # (B, T, 1) aligned, (B, 1) last
        if self.target == "last":
            loc, scale = loc[:, 0], scale if self.norm == "last" else scale[:, 0]  # (B, 1)
        return out * scale + loc


def with_norm(model, norm):
    """model reading windows as `norm` says: itself for global (the log's), else WindowNorm."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return model if norm == "global" else WindowNorm(model, norm)
