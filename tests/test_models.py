"""Every registered forecasting model: builds, runs, backpropagates, keeps its codebooks fixed."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

import models
from conftest import assert_gradient_is_the_slope, run_script

NAMES = models.names()


def window_length(name):
    cls = models.get(name)
    return models.options(cls).get("block_size", cls.train_defaults["time_steps"])


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_fixed_buffers(name):
    torch.manual_seed(0)
    model = models.build(name)
    T = window_length(name)
    x = torch.randn(3, T, 1)
    out = model(x)
    expected = (3, T, 1) if model.target == "aligned" else (3, 1)
    assert out.shape == expected and torch.isfinite(out).all()
    with torch.no_grad():  # each window on its own: nothing leaks between the windows of a batch
        assert torch.allclose(model(x[1:2]), out[1:2], atol=1e-5)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        assert name == "naive" and torch.equal(out, x)  # persistence: each value forecasts the next
        return
    torch.manual_seed(0)  # autograd, closed-form backwards included, against a central difference
    assert_gradient_is_the_slope(models.build(name), torch.randn(3, T, 1))
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    opt = torch.optim.Adam(params, lr=0.01)
    loss = F.mse_loss(out, torch.randn(expected))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    before = [p.detach().clone() for p in params]
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
    for k, b in model.named_buffers():  # codebooks and positional tables are never trained
        assert torch.equal(buffers[k], b), f"{name}: buffer {k} changed"


@pytest.mark.parametrize("name", NAMES)
def test_model_file_contract(name):
    cls = models.get(name)
    assert cls.target in ("aligned", "last")
    assert set(cls.train_defaults) == {"time_steps", "batch_size", "lr", "epochs"}
    module = __import__(f"models.{name}", fromlist=["Model"])
    assert module.__doc__.startswith(f"{name}: ")
    imports = re.findall(r"^(?:import|from) (\w+)", open(module.__file__).read(), re.M)
    allowed = {"torch", "math", "dataclasses", "typing", "functools", "itertools", "collections"}
    assert set(imports) <= allowed, f"{name} imports {set(imports) - allowed}: torch and stdlib only"


@pytest.mark.parametrize("name", ["vqmlp", "vqlnmlp", "vqlnpemlp"])
def test_codebook_read_matches_the_plain_formula(name):
    """The fast read (closed-form backward, decoded codes, once per distinct value where the
    model has no positions) equals autograd through decoder(softmax(q E^T / sqrt d) E)."""
    torch.manual_seed(0)
    model = models.build(name, d_model=32)
    x = torch.randn(4, 96, 1).round(decimals=1)  # repeated values, as overlapping windows have

    def plain(x):
        q = model.query(x)
        p = torch.softmax(q @ model.codebook.T / math.sqrt(32), dim=-1)
        return model.decoder(p @ model.codebook)

    outs, grads = [], []
    for f in (model, plain):
        y = f(x)
        outs.append(y)
        grads.append(torch.autograd.grad((y ** 2).sum(), list(model.parameters())))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_vqlnpemlp_rank_three_scores_equal_the_layernorm_read():
    """vqlnpemlp's forward (LayerNorm in closed form, scores as a rank-3 product) gives the
    numbers of encode -> + pe -> LayerNorm -> read, gradients included, at any start_pos and with
    trained-looking parameters (non-zero biases, gamma != 1, beta != 0); float64, to 1e-12."""
    torch.manual_seed(0)
    model = models.build("vqlnpemlp", d_model=16, vocab_size=64, block_size=40).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 25, 1, dtype=torch.float64)
    for start_pos in (0, 6, 15):
        def plain(x):
            p = torch.softmax(model.query(x, start_pos) @ model.codebook.T / 4, dim=-1)
            return model.decoder(p @ model.codebook)
        outs = [f(x) for f in (lambda x: model(x, start_pos), plain)]
        assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-12)
        grads = [torch.autograd.grad((y ** 2).sum(), list(model.parameters())) for y in outs]
        for a, b in zip(*grads):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_positional_table_limit_is_one_line():
    model = models.build("vqlnpemlp", block_size=96)
    model(torch.randn(1, 96, 1), start_pos=0)
    with pytest.raises(ValueError, match="block_size 96"):
        model(torch.randn(1, 96, 1), start_pos=1)


def test_self_checks_run():
    """`python -m models.NAME` runs for every model (one interpreter for all, to stay fast)."""
    code = "import runpy\nfor n in %r:\n    runpy.run_module('models.' + n, run_name='__main__')" % NAMES
    r = run_script("-c", code)
    assert r.returncode == 0, r.stderr
    for name in NAMES:
        assert re.search(rf"^{name}: \d+ ", r.stdout, re.M), f"no self-check line for {name}"
    # vqlnmlp by hand: encoder 1 -> 64 (128), LayerNorm (128), decoder 64 -> 1 (65); codebook 512 x 64
    assert re.search(r"^vqlnmlp: 321 trainable, 32768 fixed parameters; \(4, 96, 1\) -> \(4, 96, 1\)$",
                     r.stdout, re.M), r.stdout


def test_unknown_model_and_option_errors():
    with pytest.raises(models.ModelError, match="unknown model 'vq'; choose one of .*vqlnmlp"):
        models.get("vq")
    with pytest.raises(models.ModelError, match="does not take --hidden; it takes --vocab_size, --d_model"):
        models.build("vqlnmlp", hidden=3)
