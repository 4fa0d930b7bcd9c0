"""--norm: each window read as changes from its last value (last) or by its own statistics (revin).

Expected numbers come from outside the code under test: the last observed value, a hand-written
linear forecast, the closed form of a pointwise model under `last`, naive's own error.
"""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import config
import forecast
import log_protocol
import models
import train
from conftest import run_main, run_script
from data import DataError, Series, boundaries
from models import rollout
from models.norm import NORMS, WindowNorm, with_norm


def make_run(values, model, time_steps, fractions=(0.7, 0.1, 0.2), run_dir="/nonexistent"):
    """A forecast.Run over `values` for a given model, normalised with the training part."""
    n = len(values)
    train_end, val_end = boundaries(n, fractions)
    mean, std = float(values[:train_end].mean()), float(values[:train_end].std())
    series = Series("synthetic", values, np.arange(n), "sample", "value", "test", "v")
    config = {"split": "chrono", "time_steps": time_steps, "run_name": "test", "fractions": list(fractions)}
    return forecast.Run(str(run_dir), model.eval(), config, series, (values - mean) / std, mean, std,
                        train_end, val_end, np.ones(n, bool))


class LastValue(nn.Module):
    """A last-target model whose forecast is the (normalised) last value it reads."""
    target = "last"

    def forward(self, x, start_pos=0):
        return x[:, -1].clone()                                   # (B, 1)


class NoChange(nn.Module):
    """A last-target model that forecasts 0: no change from the window's reference."""
    target = "last"

    def forward(self, x, start_pos=0):
        return x.new_zeros(len(x), 1)


def write_csv(path, values):
    path.write_text("t,value\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values)))
    return path


def train_run(tmp_path, csv, model, norm, *extra):
    cfg, _ = config.parse(["--model", model, "--dataset", str(csv)] + (["--norm", norm] if norm else [])
                          + ["--time_steps", "8", "--out_dir", str(tmp_path / "runs"),
                             "--no_forecast", *extra])
    return train.train(cfg)[0]


@pytest.mark.parametrize("norm", ["last", "revin"])
def test_last_and_revin_invert_exactly_in_batch_and_regressive_paths(norm, tmp_path):
    rng = np.random.default_rng(1)
    values = 50 + np.cumsum(rng.standard_normal(300))             # a random walk far from 0
    exact = norm == "last"                                         # revin divides and multiplies by the std
    identities = [("naive", models.build("naive"))] + [("last-value", LastValue())] \
        + ([("no-change", NoChange())] if exact else [])           # under revin, no change is the window mean
    tol = 1e-4                                                     # original units: float32 forecasts
    for name, inner in identities:
        run = make_run(values, with_norm(inner, norm), 8, run_dir=tmp_path / name)
        z = torch.as_tensor(run.z, dtype=torch.float32)            # what the models read
        # batch: every one-step forecast of the test part is the value before it
        batch = log_protocol.predict_batch(run.model, run.z, 8, 40)
        regressive = rollout.regress(run.model, torch.stack([z[o - 8:o] for o in range(250, 290, 7)]).unsqueeze(-1), 6)
        last = torch.stack([z[o - 1] for o in range(250, 290, 7)])[:, None].expand(-1, 6)
        if exact:
            assert np.array_equal(batch, z[-41:-1].numpy()), name
            assert torch.equal(regressive, last), name
        else:
            assert np.allclose(batch, z[-41:-1].numpy(), atol=1e-5), name
            assert torch.allclose(regressive, last, atol=1e-5), name
        # in original units through the backtest (regressive: each new window re-normalised), with
        # the cache's auto and off, log_protocol.evaluate() (batch and regressive on the test part) and future()
        result = forecast.backtest(run, horizon=6, stride=7)
        assert np.abs(result["predictions"] - values[result["origins"] - 1][:, None]).max() <= tol, name
        for kv in ("auto", "off"):
            again = forecast.backtest(run, horizon=6, stride=7, kv_cache=kv)["predictions"]
            assert np.array_equal(again, result["predictions"]), (name, kv)
        m = log_protocol.evaluate(run)
        assert m["mae_batch"] == pytest.approx(np.mean(np.abs(np.diff(values[run.val_end - 1:]))), abs=tol)
        assert m["mae_regressive"] == pytest.approx(np.mean(np.abs(values[run.val_end:] - values[run.val_end - 1])),
                                                    abs=tol)
        assert np.abs(forecast.future(run, 5)["forecast"] - values[-1]).max() <= tol


def test_the_kv_cache_falls_back_under_auto_and_is_refused_when_asked_for():
    torch.manual_seed(0)
    att = models.build("att", d_model=8, block_size=8, pe_on="qk")  # its cache is exact under global
    assert rollout.regressive_path(att, "sliding", "auto") == "kv_cache"
    wrapped = with_norm(att, "last")
    assert rollout.regressive_path(wrapped, "sliding", "auto") == "recompute"
    assert rollout.regressive_path(wrapped, "sliding", "off") == "recompute"
    with pytest.raises(DataError, match="kv_cache on: .*--norm last"):
        rollout.regressive_path(wrapped, "sliding", "on")
    # auto, under revin, forecasts what recomputing every window by hand forecasts
    values = 5 + np.sin(np.arange(200) / 6)
    run = make_run(values, with_norm(att, "revin"), 8)
    auto = forecast.backtest(run, horizon=4, stride=9)
    z = torch.as_tensor(run.z, dtype=torch.float32)
    with torch.no_grad():
        for k, o in enumerate(auto["origins"][:3]):
            window = z[o - 8:o].clone()
            for h in range(4):
                mu, sd = window.mean(), (window.var(unbiased=False) + 1e-5).sqrt()
                nxt = att(((window - mu) / sd).view(1, 8, 1))[0, -1, 0] * sd + mu
                assert float(nxt) * run.std + run.mean == pytest.approx(auto["predictions"][k, h], abs=1e-4)
                window = torch.cat([window[1:], nxt.view(1)])


def test_a_level_shift_is_forecast_by_last_and_not_by_global(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(1000)                             # white noise at level 0 ...
    _, val_end = boundaries(1000)
    values[val_end:] += 20                                         # ... the test part at level 20
    csv = write_csv(tmp_path / "shift.csv", values)
    small = ("--vocab_size", "16", "--d_model", "8", "--epochs", "3")
    result = {}
    for norm in ("global", "last"):
        run = forecast.load(train_run(tmp_path, csv, "vqlnmlp", norm, *small))
        result[norm] = forecast.backtest(run, horizon=4, stride=1)
    naive = result["last"]["by_step"]["naive"]["mase"]
    # global: a softmax read returns a convex combination of fixed codes, bounded near the training range
    assert np.all(result["global"]["by_step"]["model"]["mase"] > 5 * naive)
    # last: as good as persistence (white noise: no forecast of the change beats 0 by much)
    assert np.all(result["last"]["by_step"]["model"]["mase"] <= 1.1 * naive)
    # and why: vqlnmlp reads each value alone, and under last the last value reads 0, so the forecast is
    # the last value plus one learned constant c, and h steps ahead the last value plus h c
    pred, origins = result["last"]["predictions"], result["last"]["origins"]
    step = pred - values[origins - 1][:, None]
    c = step[0, 0]
    assert np.allclose(step, c * np.arange(1, 5), atol=1e-4)


def test_config_records_the_norm_and_the_run_name_tells_it(tmp_path):
    csv = write_csv(tmp_path / "s.csv", 3 + np.sin(np.arange(200) / 5))
    plain = train_run(tmp_path, csv, "naive", "global")
    revin = train_run(tmp_path, csv, "naive", "revin")
    default = train_run(tmp_path, csv, "naive", None)                     # chrono: revin, chosen by validation
    logs = train_run(tmp_path, csv, "naive", None, "--split", "random")   # the log's protocol: global
    assert json.load(open(os.path.join(plain, "config.json")))["norm"] == "global"
    assert json.load(open(os.path.join(revin, "config.json")))["norm"] == "revin"
    assert json.load(open(os.path.join(default, "config.json")))["norm"] == "revin" != NORMS[0]
    assert json.load(open(os.path.join(logs, "config.json")))["norm"] == "global"
    # the name tells a norm other than its split's default: chrono's revin, random's global
    assert os.path.basename(os.path.dirname(plain)) == "naive_s_ts8_lr0.007_normglobal"
    assert os.path.basename(os.path.dirname(revin)) == "naive_s_ts8_lr0.007"
    assert os.path.dirname(default) == os.path.dirname(revin) != os.path.dirname(plain)
    assert isinstance(forecast.load(revin).model, WindowNorm)
    # a run from before --norm has no key: it is global
    config = json.load(open(os.path.join(plain, "config.json")))
    del config["norm"]
    json.dump(config, open(os.path.join(plain, "config.json"), "w"))
    assert not isinstance(forecast.load(plain).model, WindowNorm)


def test_resume_and_sweeps_keep_the_norm(tmp_path):
    csv = write_csv(tmp_path / "s.csv", 3 + np.sin(np.arange(200) / 5))
    first = train_run(tmp_path, csv, "vqlnmlp", "last", "--epochs", "1", "--vocab_size", "16", "--d_model", "8")
    cfg, _ = config.parse(["--resume", first, "--epochs", "2", "--no_forecast"])
    resumed, metrics = train.train(cfg)
    assert resumed == first and metrics["epochs_run"] == 2 and config.resume(cfg)[0].norm == "last"
    assert isinstance(forecast.load(resumed).model, WindowNorm)
    out = run_main("train.py", "--model", "naive", "--dataset", csv, "--time_steps", "8", "--norm", "global,revin",
                   "--out_dir", tmp_path / "grid", "--no_forecast")
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(tmp_path / "grid")) == ["naive_s_ts8_lr0.007", "naive_s_ts8_lr0.007_normglobal"]


def read_window(w, b, x, norm):
    """The linear model's next value after window x (global z units) under `norm`, by numpy."""
    if norm == "global":
        return w @ x + b
    if norm == "last":                                             # NLinear
        return w @ (x - x[-1]) + b + x[-1]
    mu, sd = x.mean(), np.sqrt(x.var() + 1e-5)                     # RevIN, no affine weights
    return (w @ ((x - mu) / sd) + b) * sd + mu


@pytest.mark.parametrize("norm", ["global", "last", "revin"])
def test_forecast_py_applies_the_norm_without_being_told(tmp_path, norm):
    """Under every norm, and with numpy's statistics of the training part (not config.json's):
    under revin the global mean and std cancel, so global and last are where a run that used
    other statistics shows."""
    rng = np.random.default_rng(3)
    values = 100 + np.cumsum(rng.standard_normal(400))
    csv = write_csv(tmp_path / "walk.csv", values)
    run_dir = train_run(tmp_path, csv, "linear", norm, "--epochs", "1")
    # the norm comes from the run directory: under last in a second process, elsewhere main(argv) here
    out = (run_script if norm == "last" else run_main)("forecast.py", run_dir, "--horizon", "3", "--stride", "5")
    assert out.returncode == 0, out.stderr
    folder = out.stdout.split("-> ")[-1].strip()
    m = json.load(open(os.path.join(folder, "metrics.json")))
    # by hand, from the stored weights, in global z units of the training part [0, 280)
    train_end, _ = boundaries(400)
    mean, std = values[:train_end].mean(), values[:train_end].std()
    state = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    prefix = "" if norm == "global" else "model."
    w, b = state[prefix + "head.weight"].double().numpy()[0], float(state[prefix + "head.bias"])
    z = (values - mean) / std
    origins = np.arange(m["first_origin"], m["last_origin"] + 1, m["stride"])
    one_step = np.array([read_window(w, b, z[o - 8:o], norm) for o in origins]) * std + mean
    mae = m["at_step"]["h1"]["model"]["mae"]
    assert mae == pytest.approx(np.mean(np.abs(one_step - values[origins])), rel=1e-5)
    if norm != "global":  # what forgetting the norm gives
        ignored = np.array([w @ z[o - 8:o] + b for o in origins]) * std + mean
        assert abs(np.mean(np.abs(ignored - values[origins])) - mae) > 1e-3
    if norm != "revin":   # what the whole series' statistics give (under revin: the same forecasts)
        whole = (values - values.mean()) / values.std()
        other = np.array([read_window(w, b, whole[o - 8:o], norm) for o in origins]) * values.std() + values.mean()
        assert abs(np.mean(np.abs(other - values[origins])) - mae) > 1e-3
    # the kv cache cannot be reused under a window norm, and linear has none: asking for it is one line
    refused = run_main("forecast.py", run_dir, "--horizon", "3", "--kv_cache", "on")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert (f"--norm {norm}" if norm != "global" else "model linear has no KV cache") in refused.stderr


def test_random_split_with_a_window_norm_is_refused(tmp_path):
    out = run_main("train.py", "--model", "naive", "--split", "random", "--norm", "last",
                   "--out_dir", tmp_path / "runs")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("train.py: error: --norm last with --split random") and "--norm global" in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.json"))
    bad = run_main("train.py", "--model", "naive", "--norm", "median", "--out_dir", tmp_path / "runs")
    assert bad.returncode == 2 and "median" in bad.stderr and "revin" in bad.stderr


# ---------------------------------------------------------------- statistics held at the origin (issue 37)

@pytest.mark.parametrize("norm", ["last", "revin"])
def test_origin_statistics_feed_back_through_the_inner_model_by_hand(norm):
    """WindowNorm.frozen: every fed-back window is read with the origin window's loc and scale, by a
    hand loop over the inner model in float64; step 1 is the same either way, later steps are not."""
    from models.rollout import regress
    torch.manual_seed(2)
    inner = models.build("lstm").double().eval()
    windows = (5 + torch.randn(3, 20, 1, dtype=torch.float64).cumsum(1))
    model = with_norm(inner, norm).eval()
    step = regress(model, windows, 6)
    model.frozen = True
    held = regress(model, windows, 6)
    loc = windows[:, -1:] if norm == "last" else windows.mean(1, keepdim=True)
    scale = torch.ones_like(loc) if norm == "last" else (windows.var(1, keepdim=True, unbiased=False) + 1e-5).sqrt()
    window, want = (windows - loc) / scale, []
    with torch.no_grad():
        for _ in range(6):
            nxt = inner(window)[:, 0]                                   # (B,): normalised units
            want.append(nxt * scale[:, 0, 0] + loc[:, 0, 0])
            window = torch.cat([window[:, 1:], nxt.view(-1, 1, 1)], 1)
    assert torch.allclose(held, torch.stack(want, 1), rtol=1e-12, atol=1e-12)
    assert torch.allclose(held[:, 0], step[:, 0], rtol=1e-12) and not torch.allclose(held[:, 1:], step[:, 1:])


def test_origin_statistics_let_the_kv_cache_forecast_what_recomputing_does():
    """att_mh (RoPE on q and k) under revin: with the origin's statistics the cache is valid again
    (auto takes it) and gives the recomputed forecasts; with each step's, the cache is refused."""
    from models.rollout import regress, regressive_path
    torch.manual_seed(3)
    model = with_norm(models.build("att_mh", pe_type="rope", pe_on="qk"), "revin").double().eval()
    windows = 5 + torch.randn(2, 16, 1, dtype=torch.float64).cumsum(1)
    assert regressive_path(model, "sliding", "auto") == "recompute"
    model.frozen = True
    assert regressive_path(model, "sliding", "auto") == "kv_cache"
    cached, recomputed = regress(model, windows, 8, "kv_cache"), regress(model, windows, 8, "recompute")
    assert torch.allclose(cached, recomputed, rtol=1e-10, atol=1e-10)
    assert (recomputed[:, -1] - recomputed[:, 0]).abs().max() > 1e-4   # the forecasts move


def test_norm_stats_origin_on_the_command_line(tmp_path):
    values = 50 + np.cumsum(np.random.default_rng(5).standard_normal(400))
    csv = write_csv(tmp_path / "walk.csv", values)
    revin = train_run(tmp_path, csv, "vqlnmlp", "revin", "--epochs", "2")
    step = run_main("forecast.py", revin, "--horizon", "6")
    held = run_main("forecast.py", revin, "--horizon", "6", "--norm_stats", "origin")
    assert step.returncode == held.returncode == 0, held.stderr
    folders = [r.stdout.strip().split("-> ")[-1] for r in (step, held)]
    assert folders[1].endswith("_statsorigin") and not folders[0].endswith("_statsorigin")
    a, b = (json.load(open(os.path.join(f, "metrics.json"))) for f in folders)
    assert (a["norm_stats"], b["norm_stats"]) == ("step", "origin")
    assert b["by_step"]["model"]["mae"][0] == pytest.approx(a["by_step"]["model"]["mae"][0], rel=1e-6)  # step 1 alike
    assert b["by_step"]["model"]["mae"][-1] != pytest.approx(a["by_step"]["model"]["mae"][-1], rel=1e-6)
    plain = train_run(tmp_path / "g", csv, "vqlnmlp", "global", "--epochs", "1")
    r = run_main("forecast.py", plain, "--norm_stats", "origin")
    assert r.returncode == 2 and "reads the global level" in r.stderr and r.stderr.count("\n") == 1
