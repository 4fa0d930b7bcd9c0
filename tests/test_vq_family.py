"""The VQ-MLP family (issue: Method Two, SinPE, RoPE, start_pos, codebook usage)."""
import math
import os
import subprocess

import pytest
import torch
import types

import models
from conftest import ROOT, run_main
from models import codebook_usage

# variant -> parent; a variant's file differs from its parent's by its idea alone.
LINEAGE = {"vqlnmlp": "vqmlp", "vqlnpemlp": "vqlnmlp", "vqlnmlp_sinpe": "vqlnmlp", "vqlnmlp_rope": "vqlnmlp",
           "mhvqlnmlp": "vqlnmlp", "mhvqlnpemlp": "mhvqlnmlp", "mhvqlnmlp_sinpe": "mhvqlnmlp",
           "mhvqlnmlp_rope": "mhvqlnmlp"}
# The bound on changed lines (diff's < and > lines, docstrings included): the size of a new
# function plus its call and docstring. The speed tricks live in models/kernels.py, so no variant
# needs more.
DIFF_BOUND = 50
POSITIONAL = ["vqlnpemlp", "vqlnmlp_sinpe", "vqlnmlp_rope", "mhvqlnpemlp", "mhvqlnmlp_sinpe", "mhvqlnmlp_rope"]


@pytest.mark.parametrize("variant", LINEAGE)
def test_variant_differs_from_its_parent_by_its_idea_alone(variant):
    parent = LINEAGE[variant]
    r = subprocess.run(["diff", f"models/{parent}.py", f"models/{variant}.py"], cwd=ROOT,
                       capture_output=True, text=True)
    changed = [l for l in r.stdout.splitlines() if l[:1] in "<>"]
    assert 0 < len(changed) <= DIFF_BOUND, f"{variant} vs {parent}: {len(changed)} changed lines > {DIFF_BOUND}"
    assert f"Parent: {parent}" in open(os.path.join(ROOT, "models", f"{variant}.py")).read()


@pytest.mark.parametrize("name", ["mhvqlnmlp", "mhvqlnpemlp", "mhvqlnmlp_sinpe", "mhvqlnmlp_rope"])
def test_multi_head_read_matches_the_plain_formula(name):
    torch.manual_seed(0)
    model = models.build(name, n_heads=4)
    x = torch.randn(3, 96, 1).round(decimals=1)

    def plain(x):
        q = model.query(x)                                            # (B, T, H, hs)
        p = torch.softmax(torch.einsum("bthd,hvd->bthv", q, model.codebook) / math.sqrt(64), -1)
        return model.decoder(torch.einsum("bthv,hvd->bthd", p, model.codebook).flatten(2))

    outs = [f(x) for f in (model, plain)]
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    grads = [torch.autograd.grad((f(x) ** 2).sum(), list(model.parameters())) for f in (model, plain)]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_multi_head_codebook_shape_and_arithmetic():
    model = models.build("mhvqlnmlp", vocab_size=32, d_model=64, n_heads=2)
    assert model.codebook.shape == (2, 32, 32)
    r = run_main("train.py", "--list")
    line = next(l for l in r.stdout.splitlines() if l.startswith("mhvqlnmlp "))
    assert " 1024 " in line and "262144" in line  # 2 x 512 codes index 512 ** 2 combinations


def test_d_model_not_divisible_by_n_heads_is_one_line(tmp_path):
    r = run_main("train.py", "--model", "mhvqlnmlp", "--n_heads", "3", "--out_dir", tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and not os.listdir(tmp_path)
    assert "d_model 64 is not divisible by n_heads 3" in r.stderr
    with pytest.raises(models.ModelError, match="head_size 1 must be even"):  # RoPE rotates pairs
        models.build("mhvqlnmlp_rope", n_heads=64)


def rope_of(module_name):
    return __import__(f"models.{module_name}", fromlist=["rope"]).rope


@pytest.mark.parametrize("module_name", ["vqlnmlp_rope", "mhvqlnmlp_rope"])
def test_rope_keeps_norms_and_depends_only_on_offsets(module_name):
    rope = rope_of(module_name)
    torch.manual_seed(0)
    v = torch.randn(1, 1, 16)
    x = v.expand(1, 50, 16)                                            # the same vector at 50 positions
    r = rope(x, start_pos=7)
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    k = torch.randn(1, 1, 16).expand(1, 50, 16)
    rk = rope(k, start_pos=7)
    dots = (r[0, :, None] * rk[0, None, :]).sum(-1)                    # (50, 50): q at m . k at n
    for offset in (0, 3, -5):
        diag = torch.diagonal(dots, offset)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-4)
    assert not torch.allclose(dots[0, 0], dots[0, 3])
    # multi-head layout: each head rotated alike
    xh = torch.randn(2, 10, 4, 8)
    assert torch.allclose(rope(xh, 3)[:, :, 1], rope(xh[:, :, 1], 3), atol=1e-6)


def test_sinusoidal_table_matches_its_formula():
    table = __import__("models.vqlnmlp_sinpe", fromlist=["x"]).sinusoidal_table(50, 16)
    for pos in (0, 1, 17, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


@pytest.mark.parametrize("name", POSITIONAL + ["mhvqlnmlp", "vqlnmlp"])
def test_window_with_start_pos_equals_the_slice_of_the_whole_series(name):
    torch.manual_seed(0)
    model = models.build(name, **({"block_size": 200} if "block_size" in models.options(models.get(name)) else {}))
    series = torch.randn(1, 200, 1)
    whole = model(series)
    for k in (0, 37, 104):
        assert torch.allclose(model(series[:, k:k + 96], start_pos=k), whole[:, k:k + 96], atol=1e-5)


def test_rope_runs_past_any_block_size_and_tables_do_not():
    model = models.build("mhvqlnmlp_rope")
    assert model(torch.randn(1, 96, 1), start_pos=5000).shape == (1, 96, 1)
    for name in ("vqlnmlp_sinpe", "mhvqlnmlp_sinpe", "mhvqlnpemlp"):
        with pytest.raises(ValueError, match="block_size 96"):
            models.build(name)(torch.randn(1, 96, 1), start_pos=1)


def test_codebook_usage_on_a_hand_made_case():
    """Head 0 spreads evenly over codes 0-3 of 8 (perplexity 4) and always chooses code 0 or 1;
    head 1 puts everything on code 5 (perplexity 1, one code used)."""
    probs = torch.zeros(6, 2, 2, 8)                                   # (B, T, heads, V)
    probs[:, :, 0, :4] = 0.25
    probs[:3, :, 0, 0] += 0.01                                         # argmax 0 for half the inputs
    probs[3:, :, 0, 1] += 0.01                                         # argmax 1 for the rest
    probs[:, :, 0] /= probs[:, :, 0].sum(-1, keepdim=True)
    probs[:, :, 1, 5] = 1.0
    fake = types.SimpleNamespace(code_probs=lambda x, start_pos=0: probs[: len(x)],
                                 eval=lambda: None, train=lambda: None)
    usage = codebook_usage(fake, torch.zeros(6, 2, 1), chunk=4)
    assert usage[0]["perplexity"] == pytest.approx(4.0, rel=1e-3) and usage[0]["used_fraction"] == 2 / 8
    assert usage[1]["perplexity"] == pytest.approx(1.0) and usage[1]["used_fraction"] == 1 / 8


def test_multi_head_sinpe_adds_one_head_size_table_to_every_head_by_default():
    """The log's code: one sinusoidal table of width head_size, the same in every head;
    pe_per_head=False: one d_model table split across the heads."""
    torch.manual_seed(0)
    table = __import__("models.vqlnmlp_sinpe", fromlist=["x"]).sinusoidal_table
    x = torch.randn(2, 30, 1)
    for pe_per_head, pe in ((True, table(96, 8).repeat(1, 8)), (False, table(96, 64))):
        model = models.build("mhvqlnmlp_sinpe", n_heads=8, pe_per_head=pe_per_head)
        assert model.pe.shape == ((96, 8) if pe_per_head else (96, 64))
        h = model.encoder(x) + pe[5:35]                                # (B, T, D)
        expected = torch.nn.functional.layer_norm(h.view(2, 30, 8, 8), (8,), model.ln.weight, model.ln.bias)
        assert torch.allclose(model.query(x, start_pos=5), expected, atol=1e-6)
    assert models.options(models.get("mhvqlnmlp_sinpe"))["pe_per_head"] is True
