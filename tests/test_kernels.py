"""models/kernels.py: every kernel equals its textbook formula in float64, outputs and gradients."""
import os
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ROOT
from models import kernels


def linear(n_in, n_out):
    """A float64 nn.Linear with trained-looking (non-zero) weights and bias."""
    layer = nn.Linear(n_in, n_out).double()
    with torch.no_grad():
        layer.bias.copy_(torch.randn_like(layer.bias))
    return layer


def assert_same(kernel, textbook, inputs):
    """Outputs and the gradients w.r.t. every input agree to float64 rounding."""
    outs = [f() for f in (kernel, textbook)]
    assert outs[0].shape == outs[1].shape
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    g = torch.randn_like(outs[1])                                  # a general upstream gradient
    grads = [torch.autograd.grad((out * g).sum(), inputs) for out in outs]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# B * T above one block's rows (BLOCK // (H * V)) to exercise the blocking, and a single query
@pytest.mark.parametrize("B, T", [(3, 700), (1, 1)])
@pytest.mark.parametrize("H", [1, 4])
def test_multi_head_codebook_read_equals_its_formula(B, T, H):
    torch.manual_seed(0)
    hs, V, scale = 6, 256, 0.3
    assert B * T == 1 or B * T > kernels.BLOCK // (H * V)
    q = torch.randn(B, T, H, hs, dtype=torch.float64, requires_grad=True)
    codes = torch.randn(H, V, hs, dtype=torch.float64)
    decoder = linear(H * hs, 1)

    def textbook():  # decoder(concat_h softmax(q_h @ codes_h.T * scale) @ codes_h)
        p = torch.softmax(torch.einsum("bthd,hvd->bthv", q, codes) * scale, dim=-1)  # (B, T, H, V)
        return decoder(torch.einsum("bthv,hvd->bthd", p, codes).flatten(2))         # (B, T, 1)

    assert_same(lambda: kernels.codebook_read(q, codes, decoder, scale), textbook,
                [q, decoder.weight, decoder.bias])


@pytest.mark.parametrize("B, T", [(4, 300), (1, 1)])
def test_one_codebook_read_equals_its_formula(B, T):
    torch.manual_seed(0)
    D, V, scale = 16, 128, 0.25
    q = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    codes = torch.randn(V, D, dtype=torch.float64)
    decoder = linear(D, 1)

    def textbook():  # decoder(softmax(q @ codes.T * scale) @ codes)
        return decoder(torch.softmax(q @ codes.T * scale, dim=-1) @ codes)

    assert_same(lambda: kernels.codebook_read(q, codes, decoder, scale), textbook,
                [q, decoder.weight, decoder.bias])


@pytest.mark.parametrize("B, T", [(3, 50), (1, 1)])
def test_layernorm_read_equals_its_formula(B, T):
    torch.manual_seed(0)
    D, V, scale = 16, 64, 0.25
    x = torch.randn(B, T, 1, dtype=torch.float64, requires_grad=True)
    pe = torch.randn(T, D, dtype=torch.float64, requires_grad=True)
    encoder, decoder = linear(1, D), linear(D, 1)
    ln = nn.LayerNorm(D, eps=1e-3).double()                       # a large eps: its place matters
    with torch.no_grad():
        ln.weight.add_(0.5 * torch.randn(D, dtype=torch.float64))
        ln.bias.add_(0.5 * torch.randn(D, dtype=torch.float64))
    codes = torch.randn(V, D, dtype=torch.float64)

    def textbook():  # decoder(softmax(ln(encoder(x) + pe) @ codes.T * scale) @ codes)
        q = F.layer_norm(x * encoder.weight[:, 0] + encoder.bias + pe, (D,), ln.weight, ln.bias, ln.eps)
        return decoder(torch.softmax(q @ codes.T * scale, dim=-1) @ codes)

    inputs = [x, pe, encoder.weight, encoder.bias, ln.weight, ln.bias, decoder.weight, decoder.bias]
    assert_same(lambda: kernels.layernorm_read(x, encoder, pe, ln, codes, decoder, scale), textbook, inputs)


@pytest.mark.parametrize("shape, values", [((4, 30, 1), 5), ((1, 1, 1), 1), ((2, 7, 1), None)])
def test_per_distinct_value_equals_the_function_on_every_value(shape, values):
    """Repeated values (5 distinct among 120), one value, and all values distinct."""
    torch.manual_seed(0)
    pool = torch.randn(values or shape[1] * shape[0], dtype=torch.float64)
    x = pool[torch.randint(len(pool), shape)] if values else pool.view(shape)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    calls = []

    def f(v):  # each value on its own; records how many values it was given
        calls.append(v.numel())
        return (torch.sin(v * w[0]) + w[1] * v ** 2 + w[2]).clone()

    assert_same(lambda: kernels.per_distinct_value(f, x), lambda: f(x), [w])
    assert calls[0] == torch.unique(x).numel()                     # once per distinct value


def test_no_autograd_function_outside_the_kernel_module():
    models_dir = os.path.join(ROOT, "models")
    for filename in sorted(os.listdir(models_dir)):
        if filename.endswith(".py") and filename != "kernels.py":
            source = open(os.path.join(models_dir, filename)).read()
            assert not re.search(r"autograd\s*\.\s*Function|\bFunction\)", source), \
                f"models/{filename} defines an autograd Function: it belongs in models/kernels.py"
