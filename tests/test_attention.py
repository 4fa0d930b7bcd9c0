"""att and att_mh: causality, grouped-query heads, every option, the KV cache and its errors."""
import itertools
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import config
import log_protocol
import models
import train
from conftest import assert_gradient_is_the_slope, run_main
from forecast import load
from forecast import main as forecast_main
from log_protocol import predict_regressive, predict_regressive_cached
from models.rollout import regressive_path

# Every valid positional encoding, as (pe_type, pe_on).
ENCODINGS = [("none", "input"), ("randn", "input"), ("sinpe", "input"), ("rope", "input"), ("rope", "qk")]
RELATIVE = [("none", "input"), ("rope", "qk")]
ABSOLUTE = [("randn", "input"), ("sinpe", "input"), ("rope", "input")]


def build(name, pe=("rope", "qk"), seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("d_model", 16)
    if name == "att_mh":
        kwargs.setdefault("n_heads", 4)
        kwargs.setdefault("kv_heads", 2)
    return models.build(name, pe_type=pe[0], pe_on=pe[1], **kwargs).eval()


def series(n, seed=0):
    t = np.arange(n)
    return np.sin(t / 7) + 0.3 * np.sin(t / 23) + 0.1 * np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("name", ["att", "att_mh"])
@pytest.mark.parametrize("pe", ENCODINGS)
def test_changing_the_future_never_changes_the_past(name, pe):
    model = build(name, pe, block_size=24, q_ln=True, k_ln=True)
    x = torch.randn(2, 24, 1)
    y = model(x, start_pos=0)
    for t in (0, 7, 22):
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn(2, 23 - t, 1) * 5
        y2 = model(x2, start_pos=0)
        assert torch.equal(y2[:, :t + 1], y[:, :t + 1])
        assert not torch.allclose(y2[:, t + 1:], y[:, t + 1:])


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_without_the_causal_mask_the_future_leaks(name):
    model = build(name, block_size=24, causal=False)
    x = torch.randn(2, 24, 1)
    x2 = x.clone()
    x2[:, -1] += 5
    assert not torch.allclose(model(x)[:, 0], model(x2)[:, 0])
    with pytest.raises(ValueError, match="a KV cache needs causal attention"):
        model.new_cache()


def plain_attention(model, x):
    """Multi-head attention written out, with no grouping: every head has its own k and v."""
    B, T, _ = x.shape
    nh, hs = model.n_heads, model.head_size
    h = model.embed(x, 0)
    q = model.q(h).view(B, T, nh, hs).transpose(1, 2)
    k = model.k(h).view(B, T, nh, hs).transpose(1, 2)
    v = model.v(h).view(B, T, nh, hs).transpose(1, 2)
    cos, sin = __import__("models.att_mh", fromlist=["rope_angles"]).rope_angles(0, T, hs)
    rot = lambda u: torch.stack((u[..., 0::2] * cos - u[..., 1::2] * sin,
                                 u[..., 0::2] * sin + u[..., 1::2] * cos), -1).flatten(-2)
    scores = rot(q) @ rot(k).transpose(-1, -2) / math.sqrt(hs)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = torch.softmax(scores, -1) @ v                            # (B, nh, T, hs)
    return model.decoder(y.transpose(1, 2).reshape(B, T, -1))


def test_kv_heads_equal_to_n_heads_is_plain_multi_head_attention():
    model = build("att_mh", kv_heads=4, block_size=24)
    x = torch.randn(3, 24, 1)
    assert torch.allclose(model(x), plain_attention(model, x), atol=1e-6)


@pytest.mark.parametrize("kv_heads,bias", [(1, False), (2, False), (2, True)])
def test_grouped_heads_equal_multi_head_attention_with_copied_kv_heads(kv_heads, bias):
    gqa = build("att_mh", kv_heads=kv_heads, k_ln=True, block_size=24, bias=bias)
    mha = build("att_mh", kv_heads=4, k_ln=True, block_size=24, bias=bias, seed=1)
    state, group, hs = gqa.state_dict(), 4 // kv_heads, gqa.head_size
    for key in [k for k in state if k.split(".")[0] in ("k", "v")]:  # kv head j serves query heads j*group ...
        w = state[key]
        state[key] = w.view(kv_heads, hs, *w.shape[1:]).repeat_interleave(group, 0).flatten(0, 1)
    mha.load_state_dict(state)
    x = torch.randn(3, 24, 1)
    assert torch.allclose(gqa(x), mha(x), atol=1e-6)
    assert gqa.k.weight.numel() == mha.k.weight.numel() * kv_heads // 4  # fewer k, v weights


def test_one_head_att_mh_is_att():
    att = build("att", block_size=24, q_ln=True, k_ln=True)
    mh = build("att_mh", n_heads=1, kv_heads=1, block_size=24, q_ln=True, k_ln=True, seed=1)
    mh.load_state_dict(att.state_dict())
    x = torch.randn(2, 24, 1)
    assert torch.allclose(att(x), mh(x), atol=1e-6)


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_bias_adds_one_bias_per_projected_feature(name):
    """The original's projections have no bias; bias=True adds one to q, k, v and the decoder."""
    plain, biased = build(name), build(name, bias=True)
    count = lambda m: sum(p.numel() for p in m.parameters())
    projected = sum(m.out_features for m in (plain.q, plain.k, plain.v, plain.decoder))
    assert count(biased) - count(plain) == projected
    assert all(m.bias is None for m in (plain.q, plain.k, plain.v, plain.decoder))


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_pe_std_scales_the_random_table(name):
    tables = [build(name, ("randn", "input"), block_size=512, pe_std=std).pe for std in (0.02, 0.01)]
    assert torch.allclose(tables[0], 2 * tables[1])              # the same draw, seed 0
    assert abs(tables[0].std().item() - 0.02) < 0.001


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_rope_before_ln_makes_positions_absolute_and_after_keeps_them_relative(name):
    """The original rotates q and k, then normalises them: q . k then depends on absolute positions.
    rope_before_ln=False rotates last, and renumbering a window changes nothing."""
    x = torch.randn(2, 16, 1)
    for before in (True, False):
        model = build(name, ("rope", "qk"), block_size=16, q_ln=True, k_ln=True, rope_before_ln=before)
        same = torch.allclose(model(x, start_pos=0), model(x, start_pos=37), atol=1e-5)
        assert model.relative_positions == same == (not before)
    assert build(name, ("rope", "qk"), rope_before_ln=True).relative_positions  # no LayerNorm after it


@pytest.mark.parametrize("name", ["att", "att_mh"])
@pytest.mark.parametrize("pe", ENCODINGS)
@pytest.mark.parametrize("q_ln,k_ln,rope_before_ln", list(itertools.product([False, True], repeat=3)))
def test_relative_positions_is_what_renumbering_a_window_leaves_unchanged(name, pe, q_ln, k_ln, rope_before_ln):
    """The invariant behind the KV cache under sliding positions: a model with relative positions
    gives a window the same outputs whatever position numbers it (start_pos 0 or 7); one without
    them does not. relative_positions must say which, for every flag and encoding."""
    model = build(name, pe, block_size=32, q_ln=q_ln, k_ln=k_ln, rope_before_ln=rope_before_ln)
    x = torch.randn(2, 12, 1)
    change = (model(x, start_pos=0) - model(x, start_pos=7)).abs().max().item()
    assert change < 1e-5 or change > 1e-4, change                      # rounding, or a real difference
    assert model.relative_positions == (change < 1e-5), (change, model.relative_positions)


FLAGS = [dict(in_ln=False, q_ln=False, k_ln=False, causal=True), dict(in_ln=True, q_ln=True, k_ln=True, causal=False)]


@pytest.mark.parametrize("name", ["att", "att_mh"])
@pytest.mark.parametrize("pe,flags", list(itertools.product(ENCODINGS, FLAGS)))
def test_every_option_builds_and_trains_one_step(name, pe, flags):
    model = build(name, pe, block_size=12, **flags).train()
    x, y = torch.randn(4, 12, 1), torch.randn(4, 12, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed), [n for (n, _), c in zip(model.named_parameters(), changed) if not c]
    assert_gradient_is_the_slope(model, x)  # the gradient it stepped along is the loss's slope


@pytest.mark.parametrize("name", ["att", "att_mh"])
@pytest.mark.parametrize("pe", RELATIVE)
def test_cache_equals_sliding_recomputation_past_block_size(name, pe):
    """Relative positions: cached generation with absolute positions (up to 5 x block_size here)
    equals recomputing every window numbered from 0, forecast after forecast."""
    model = build(name, pe, block_size=32, d_model=32, bias=True)  # biases: the forecasts do not die out
    z = series(200)
    assert regressive_path(model, "sliding") == "kv_cache"
    slid = predict_regressive(model, z, 32, 160)
    cached = predict_regressive_cached(model, z, 32, 160)
    assert np.abs(slid).max() > 0.1 and np.abs(cached - slid).max() < 1e-5


@pytest.mark.parametrize("name", ["att", "att_mh"])
def test_the_cache_rolls_and_keeps_block_size_minus_one_positions(name):
    model = build(name, block_size=16)
    x = torch.randn(2, 80, 1)
    full = model(x, start_pos=0)                                 # banded causal mask: 16 positions back
    cache = model.new_cache()
    steps = [model(x[:, :10], 0, cache)]
    for t in range(10, 80):
        steps.append(model(x[:, t:t + 1], t, cache))
        assert cache.k.shape[-2] == min(t + 1, 15) and cache.next_pos == t + 1
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    # ... and each output sees exactly the 16 values ending at it
    t = 50
    alone = model(x[:, t - 15:t + 1], start_pos=t - 15)[:, -1]
    assert torch.allclose(alone, full[:, t], atol=1e-5)


@pytest.mark.parametrize("pe", ABSOLUTE)
def test_cache_with_absolute_encodings_equals_the_full_forward_not_sliding(pe):
    """Absolute encodings: the cache equals a full causal forward over the generated sequence at
    the same absolute positions; sliding (every window from 0) renumbers them and differs."""
    model = build("att_mh", pe, block_size=320, d_model=32)
    start = 40                                                   # absolute position of the first value
    x = torch.randn(1, 24, 1)
    cache = model.new_cache()
    outs = [model(x, start, cache)]
    values = [x]
    for i in range(60):                                          # feed the forecasts back
        values.append(outs[-1][:, -1:].detach())
        outs.append(model(values[-1], start + 24 + i, cache))
    generated = torch.cat(values, 1)                             # (1, 84, 1)
    full = model(generated, start_pos=start)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)

    z = series(300)
    assert regressive_path(model, "sliding") == "recompute"
    assert regressive_path(model, "absolute") == "kv_cache"
    absolute = predict_regressive(model, z, 24, 100, positions="absolute")
    cached = predict_regressive_cached(model, z, 24, 100, positions="absolute")
    slid = predict_regressive(model, z, 24, 100, positions="sliding")
    assert np.abs(cached - absolute).max() < 1e-5
    assert np.abs(cached - slid).max() > 1e-3


def test_rope_angles_at_large_positions_keep_the_cache_exact():
    model = build("att", block_size=16, d_model=32)
    x = torch.randn(1, 16, 1)
    far = 10 ** 6
    assert torch.allclose(model(x, start_pos=far), model(x, start_pos=0), atol=1e-5)


def test_table_and_cache_errors_are_one_line():
    model = build("att", ("randn", "input"), block_size=16)
    with pytest.raises(ValueError, match=r"positions 10\.\.25 exceed the positional table's block_size 16 \(pe_type randn\)"):
        model(torch.randn(1, 16, 1), start_pos=10)
    model = build("att", block_size=16)
    cache = model.new_cache()
    model(torch.randn(1, 16, 1), 0, cache)
    with pytest.raises(ValueError, match="the cache holds positions up to 15, so the next values start at 16; got start_pos 17"):
        model(torch.randn(1, 1, 1), 17, cache)


@pytest.mark.parametrize("name,kwargs,message", [
    ("att_mh", dict(n_heads=8, kv_heads=3), "kv_heads 3 does not divide n_heads 8; choose kv_heads among 1, 2, 4, 8"),
    ("att_mh", dict(d_model=64, n_heads=5, kv_heads=1), "d_model 64 is not divisible by n_heads 5; choose n_heads among 1, 2, 4, 8, 16, 32, 64"),
    ("att_mh", dict(pe_type="sinpe", pe_on="qk"), "pe_on 'qk' rotates q and k and needs pe_type 'rope', got pe_type 'sinpe'"),
    ("att", dict(pe_type="randn", pe_on="qk"), "pe_on 'qk' rotates q and k and needs pe_type 'rope', got pe_type 'randn'"),
    ("att", dict(pe_type="alibi"), "pe_type 'alibi' is not one of none, randn, sinpe, rope"),
    ("att", dict(pe_on="kq"), "pe_on 'kq' is not one of input, qk"),
    ("att", dict(d_model=15), "pe_type rope works on pairs of features and needs an even d_model, got 15"),
    ("att_mh", dict(d_model=12, n_heads=4, kv_heads=2, pe_on="qk"), "needs an even head_size d_model / n_heads, got 3"),
])
def test_bad_combinations_are_one_line_errors(name, kwargs, message):
    with pytest.raises(models.ModelError) as e:
        models.build(name, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_train_turns_a_bad_combination_into_exit_2(tmp_path):
    r = run_main("train.py", "--model", "att_mh", "--n_heads", "4", "--kv_heads", "3", "--out_dir", tmp_path, "--no_forecast")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "model att_mh with --kv_heads 3: kv_heads 3 does not divide n_heads 4; choose kv_heads among 1, 2, 4" in r.stderr
    assert not os.listdir(tmp_path)


@pytest.fixture(scope="module")
def att_runs(tmp_path_factory):
    """att_mh (rope on q, k) and att (randn table on the input), two epochs each on a small sine."""
    out = tmp_path_factory.mktemp("runs")
    csv = out / "sine.csv"
    csv.write_text("t,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(10 + 3 * series(260))))
    runs = {"csv": str(csv)}
    for name, extra in (("att_mh", ["--pe_on", "qk"]), ("att", ["--pe_type", "randn"])):
        cfg, _ = config.parse(["--model", name, "--dataset", str(csv), "--time_steps", "24",
                               "--epochs", "2", "--d_model", "16", "--out_dir", str(out),
                               "--norm", "global", *extra])  # a KV cache needs the global level
        runs[name], _ = train.train(cfg)
    return runs


def test_forecast_records_the_path_and_the_cache_changes_nothing(att_runs):
    run_dir, csv = att_runs["att_mh"], att_runs["csv"]
    m = log_protocol.evaluate(load(run_dir, dataset=csv))                                   # kv_cache auto, as train.py calls it
    with open(os.path.join(m["folder"], "metrics.json")) as f:
        assert json.load(f)["regressive_path"] == "kv_cache"
    off = log_protocol.evaluate(load(run_dir, dataset=csv), kv_cache="off")
    on = log_protocol.evaluate(load(run_dir, dataset=csv), kv_cache="on")
    assert (off["regressive_path"], on["regressive_path"]) == ("recompute", "kv_cache")
    assert math.isclose(on["mse_regressive"], off["mse_regressive"], rel_tol=1e-5)
    assert on["mse_batch"] == off["mse_batch"]
    auto = log_protocol.evaluate(load(att_runs["att"], dataset=csv), kv_cache="auto")       # absolute table: sliding recomputes
    assert auto["regressive_path"] == "recompute"


def test_forecast_kv_cache_errors_exit_2(att_runs, capsys):
    for run_dir, args, message in [
        (att_runs["att_mh"], ("--kv_cache", "yes"), "argument --kv_cache: invalid choice: 'yes' (choose from 'auto', 'on', 'off')"),
        (att_runs["att"], ("--kv_cache", "on"), "kv_cache on: model att encodes absolute positions (pe_type "
                                                "randn on input)"),
        (att_runs["att"], ("--kv_cache", "on", "--positions", "absolute"), "exceed the positional table's block_size 24"),
    ]:
        with pytest.raises(SystemExit) as e:
            forecast_main([run_dir, "--dataset", att_runs["csv"], *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_kv_cache_on_for_a_model_without_one_is_an_error():
    from data import DataError
    torch.manual_seed(0)
    with pytest.raises(DataError, match="kv_cache on: model lstm has no KV cache .*choose kv_cache auto or off"):
        regressive_path(models.build("lstm"), "sliding", "on")
    assert regressive_path(models.build("lstm"), "sliding", "auto") == "recompute"


# ---------------------------------------------------------------- pointwise models: the last position only

POINTWISE = [n for n in models.names() if getattr(models.get(n), "pointwise", False)]


def test_the_pointwise_models_are_the_vq_families_and_their_claim_holds():
    """Changing every value but the last leaves a pointwise model's last output as it was (and does
    not for the models that mix positions: attention, lstm)."""
    assert set(POINTWISE) == {n for n in models.names() if "vq" in n} | {"naive"}
    torch.manual_seed(0)
    x = torch.randn(3, 24, 1, dtype=torch.float64)
    y = x.clone()
    y[:, :-1] = torch.randn(3, 23, 1, dtype=torch.float64)
    for name in models.names():
        cls = models.get(name)
        if cls.target != "aligned":
            continue
        model = models.build(name, **models.positions(cls, 24)).double().eval()
        with torch.no_grad():
            same = torch.equal(model(x)[:, -1], model(y)[:, -1])
        assert same == (name in POINTWISE), name


@pytest.mark.parametrize("norm", ["global", "revin", "last"])
@pytest.mark.parametrize("positions", ["sliding", "absolute"])
def test_the_last_position_forecasts_what_recomputing_every_window_does(norm, positions):
    """kv_cache on for a pointwise model: the window's last position alone, after the window's
    normalisation, gives the recomputed forecasts in float64 (to 1e-12) for every VQ family."""
    from models.norm import with_norm
    from models.rollout import regress
    torch.manual_seed(1)
    windows = (3 + torch.randn(4, 16, 1, dtype=torch.float64)).cumsum(1) / 10
    for name in POINTWISE:
        model = with_norm(models.build(name, **models.positions(models.get(name), 16 + 30)), norm).double().eval()
        with torch.no_grad():  # as if trained: an untrained encoder (bias 0) reads only the sign through the LayerNorm
            for p in model.parameters():
                p += 0.5 * torch.randn_like(p)
        assert regressive_path(model, positions, "on") == "last_position"
        assert regressive_path(model, positions, "auto") == "recompute"  # auto keeps the recorded numbers
        first = 5 if positions == "absolute" else None
        fast = regress(model, windows, 6, "last_position", first)
        slow = regress(model, windows, 6, "recompute", first)
        assert torch.allclose(fast, slow, rtol=1e-12, atol=1e-12), name
        assert (slow[:, 0] - slow[:, 0].mean()).abs().max() > 1e-4  # forecasts differ: the comparison can fail
