"""Cascaded-cache VQ (cvqlnmlp, mhcvqlnmlp): shapes, gradients, fixed and trainable caches, the
two orders, parameter counts against the memory arithmetic, errors, run names, a run end to end."""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

import config
import models
from conftest import run_script
from data import load_series
from forecast import load, load_run
from log_protocol import evaluate
from models.mhcvqlnmlp import LOG_EXAMPLES, memory

# (model, constructor arguments): both orders of both models, small enough to be quick.
CONFIGS = [
    ("cvqlnmlp", dict(levels=(8, 16, 32), order="inc", d_model=16)),
    ("cvqlnmlp", dict(levels=(32, 16, 8), order="dec", d_model=16)),
    ("mhcvqlnmlp", dict(levels=(4, 8, 16), heads=(5, 2, 1), order="dec", d_model=20)),
    ("mhcvqlnmlp", dict(levels=(4, 8, 16), heads=(4, 2, 1), order="inc", d_model=16)),
]
IDS = [f"{name}-{kw['order']}" for name, kw in CONFIGS]


def build(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return models.build(name, **kwargs)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_shapes_and_every_parameter_gets_a_gradient(name, kwargs):
    model = build(name, **kwargs)
    x = torch.randn(3, 24, 1)
    out = model(x)
    assert out.shape == (3, 24, 1) and torch.isfinite(out).all()
    heads = kwargs.get("heads", (1,))[0]
    assert model.query(x).shape[-1] * heads == kwargs["d_model"]
    probs = model.code_probs(x)
    assert probs.shape == (3, 24, heads, kwargs["levels"][0])
    assert torch.allclose(probs.sum(-1), torch.ones(3, 24, heads))
    F.mse_loss(out, torch.randn_like(out)).backward()
    for pname, p in model.named_parameters():  # every LayerNorm of every level is used
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} has no gradient"


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("trainable", [False, True])
def test_fixed_caches_stay_trainable_caches_change(name, kwargs, trainable):
    model = build(name, trainable_codebooks=trainable, **kwargs)
    before = [c.detach().clone() for c in model.caches()]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.01)
    x, y = torch.randn(4, 24, 1), torch.randn(4, 24, 1)
    for _ in range(3):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    trained, fixed = models.count_parameters(model)
    codebook_floats = sum(c.numel() for c in before)
    for i, (b, c) in enumerate(zip(before, model.caches()), 1):
        assert torch.equal(b, c) != trainable, f"cache{i} {'did not change' if trainable else 'changed'}"
    assert fixed == (0 if trainable else codebook_floats)
    assert any(p is c for p in params for c in model.caches()) == trainable


@pytest.mark.parametrize("name,extra", [("cvqlnmlp", {}), ("mhcvqlnmlp", dict(heads=(2, 2, 1)))])
def test_the_orders_differ_in_what_the_input_meets_first(name, extra):
    """The rule: in dec the input's first read is of L1 alone, so changing the last cache leaves
    the input's read (code_probs, level 0) exactly as it was; in inc the caches exchange first,
    so L1' has absorbed the last (largest) cache and the same change moves the input's read.
    Either way the output changes."""
    x = torch.randn(2, 24, 1)
    for order, read_moves in (("inc", True), ("dec", False)):
        model = build(name, levels=(8, 16, 32), order=order, d_model=16, **extra)
        with torch.no_grad():
            probs, out = model.code_probs(x), model(x)
            model.cache3.add_(torch.randn_like(model.cache3))  # the last cache, the largest here
            probs2, out2 = model.code_probs(x), model(x)
        assert (probs2 - probs).abs().max() > 1e-4 if read_moves else torch.equal(probs, probs2), order
        assert (out2 - out).abs().max() > 1e-4, order


def test_dec_has_a_read_per_level_inc_one():
    x = torch.randn(2, 24, 1)
    dec = build("cvqlnmlp", levels=(32, 16, 8), order="dec", d_model=16)
    assert [dec.code_probs(x, level=i).shape[-1] for i in range(3)] == [32, 16, 8]
    inc = build("cvqlnmlp", levels=(8, 16, 32), order="inc", d_model=16)
    with pytest.raises(ValueError, match="levels 0..0, not 1"):
        inc.code_probs(x, level=1)


@pytest.mark.parametrize("order,levels", [("inc", (8, 16, 32)), ("dec", (32, 16, 8)), ("dec", (12,))])
def test_one_head_per_level_is_cvqlnmlp(order, levels):
    x = torch.randn(3, 24, 1)
    single = build("cvqlnmlp", seed=1, levels=levels, order=order, d_model=16)
    multi = build("mhcvqlnmlp", seed=1, levels=levels, heads=(1,) * len(levels), order=order, d_model=16)
    assert torch.allclose(single(x), multi(x), atol=1e-6)
    assert models.count_parameters(single) == models.count_parameters(multi)


@pytest.mark.parametrize("example", LOG_EXAMPLES, ids=[e[0].split(":")[0] for e in LOG_EXAMPLES])
def test_parameter_counts_equal_the_memory_arithmetic(example):
    _, levels, heads, order = example
    D, T = 60, 10
    m = memory(levels, heads, order, time_steps=T)
    model = build("mhcvqlnmlp", levels=levels, heads=heads, order=order, d_model=D)
    trainable, fixed = models.count_parameters(model)
    assert fixed == m["floats_per_d"] * D
    assert model.codebook_size() == (m["entries"], m["combinations"])
    query_heads = heads[:1] + heads[:-1] if order == "inc" else heads
    assert trainable == 2 * D + (D + 1) + sum(2 * D // h for h in query_heads)  # encoder, decoder, LayerNorms
    # scores: every per-position softmax weight for one sequence, plus inc's exchange
    x = torch.randn(1, T, 1)
    per_position = sum(model.code_probs(x, level=i).numel() for i in range(1 if order == "inc" else len(levels)))
    exchange = sum(h * a * b for h, a, b in zip(heads, levels, levels[1:])) if order == "inc" else 0
    assert per_position + exchange == m["scores"]
    if heads == (1,) * len(levels):  # the single-head rows are cvqlnmlp, and one level is vqlnmlp
        assert models.count_parameters(build("cvqlnmlp", levels=levels, order=order, d_model=D))[1] == fixed
    if len(levels) == 1 and heads == (1,):
        assert models.count_parameters(build("vqlnmlp", vocab_size=levels[0], d_model=D))[1] == fixed


def test_list_prints_the_memory_arithmetic():
    r = run_script("train.py", "--list")
    assert r.returncode == 0, r.stderr
    for name, levels, heads, order in LOG_EXAMPLES:
        m = memory(levels, heads, order)
        line = next(l for l in r.stdout.splitlines() if l.startswith(name))
        assert line.split()[-5:-3] == [str(m["floats_per_d"]), "D"] and line.endswith(f"{m['scores']:,d}")
        assert f" {m['entries']} " in line and f" {m['combinations']} " in line
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines() if l.startswith(("cvqlnmlp ", "mhcvqlnmlp "))}
    assert rows["mhcvqlnmlp"][4:6] == ["84", "1024"]  # codes and combinations of the log's 2+3 example


@pytest.mark.parametrize("kwargs,message", [
    (dict(heads=(5, 2, 1), order="inc"), "order inc needs each level's heads to divide the previous level's; got heads 5-2-1"),
    (dict(d_model=64), "d_model 64 must be divisible by every level's heads 5-2-1"),
    (dict(heads=(5, 2)), "heads needs one number >= 1 per level (3 levels), e.g. 5-2-1; got 5-2"),
    (dict(levels=(4, 0, 32)), "levels must be one or more codebook sizes >= 1 (L1 first), e.g. 4-16-32; got 4-0-32"),
    (dict(order="up"), "unknown order 'up'; choose one of inc, dec"),
])
def test_invalid_configurations_are_one_line_errors(kwargs, message):
    with pytest.raises(models.ModelError) as e:
        models.build("mhcvqlnmlp", **kwargs)
    text = str(e.value)
    assert "\n" not in text
    assert all(part in text for part in message.split("; "))


def test_invalid_split_on_the_command_line_exits_2():
    r = run_script("train.py", "--model", "mhcvqlnmlp", "--heads", "5-2-1", "--order", "inc")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "heads 5-2-1" in r.stderr and "Traceback" not in r.stderr


def test_run_names_carry_order_levels_heads():
    def name(model, **kwargs):
        cfg = config.Config(model=model, time_steps=96, lr=0.007, split="chrono", norm=config.CHRONO_NORM,
                            model_args={**models.options(models.get(model)), **kwargs})
        return config.run_name(cfg, "y_w")
    assert name("cvqlnmlp") == "cvqlnmlp_inc_l32-128-512_dm64_y_w_ts96_lr0.007"
    assert name("cvqlnmlp", order="dec", levels=(512, 128, 32)) == "cvqlnmlp_dec_l512-128-32_dm64_y_w_ts96_lr0.007"
    assert name("mhcvqlnmlp") == "mhcvqlnmlp_dec_l4-16-32_h5-2-1_dm60_y_w_ts96_lr0.007"
    assert name("cvqlnmlp", trainable_codebooks=True) == "cvqlnmlp_inc_l32-128-512_dm64_tc_y_w_ts96_lr0.007"
    assert name("cvqlnmlp", levels=[32, 128, 512]) == name("cvqlnmlp")  # lists, as config.json stores them
    assert name("vqlnmlp") == "vqlnmlp_vs512_dm64_y_w_ts96_lr0.007"  # other models' names unchanged
    variants = [name("cvqlnmlp", order=o, levels=l) for o in ("inc", "dec") for l in ((32, 128), (32, 128, 512), (3, 2))]
    variants += [name("mhcvqlnmlp", heads=h) for h in ((5, 2, 1), (1, 2, 5), (1, 1, 1))]
    assert len(set(variants)) == len(variants)


def test_train_and_forecast_end_to_end(tmp_path):
    r = run_script("train.py", "--model", "cvqlnmlp", "--order", "dec", "--levels", "16-8", "--d_model", "8",
                   "--trainable_codebooks", "true", "--dataset", "goog", "--epochs", "1", "--no_forecast", "--split", "random",
                   "--out_dir", tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    assert os.path.basename(os.path.dirname(run_dir)) == "cvqlnmlp_dec_l16-8_dm8_tc_goog_ts96_lr0.007_random"
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["model_args"] == {"levels": [16, 8], "order": "dec", "d_model": 8, "trainable_codebooks": True}
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["fixed_parameters"] == 0 and metrics["trainable_parameters"] == 24 * 8 + 2 * 8 + 9 + 2 * 2 * 8
    assert metrics["codebook_usage"][0]["vocab_size"] == 16
    model, _ = load_run(run_dir)  # the run rebuilds itself from its directory alone
    assert model.levels == (16, 8) and model.cache1.requires_grad
    m = evaluate(load(run_dir), predict_rate=0.05)
    assert m["n_predicted"] == int(0.05 * (1047 - 96)) and math.isfinite(m["mse_regressive"])
    # the batch MSE by hand: the last 47 values of goog, each from the 96 before it, normalised with
    # the whole series' numpy statistics (the log's protocol), the model's last output back in units
    v = load_series("goog").values
    z = torch.tensor((v - v.mean()) / v.std(), dtype=torch.float32)
    x = torch.stack([z[t - 96:t] for t in range(1000, 1047)]).unsqueeze(-1)   # (47, 96, 1)
    with torch.no_grad():
        pred = model(x)[:, -1, 0].double().numpy() * v.std() + v.mean()
    assert m["mse_batch"] == pytest.approx(((pred - v[1000:]) ** 2).mean(), rel=1e-4)


@pytest.mark.parametrize("name, args", [("cvqlnmlp", {"order": "inc"}), ("cvqlnmlp", {"order": "dec"}),
                                        ("mhcvqlnmlp", {})])
def test_cascades_are_position_wise_so_they_have_no_memory(name, args):
    """The README's verdict: the output at t depends on x at t alone (earlier values change nothing)."""
    torch.manual_seed(0)
    model = models.build(name, **args)
    x = torch.randn(2, 24, 1)
    x2 = x.clone()
    x2[:, :12] = torch.randn(2, 12, 1)
    with torch.no_grad():
        assert torch.equal(model(x)[:, 12:], model(x2)[:, 12:])
        assert not torch.equal(model(x)[:, :12], model(x2)[:, :12])
