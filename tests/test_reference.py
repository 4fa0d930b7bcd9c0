"""Fidelity to the original code: our models with the original's weights give its outputs.

Each tests/reference/*.npz (written by benchmarks/reference_outputs.py from the research log's
repository, donglinkang2021/simple-sequence-prediction) holds an input, the original model's
weights under our parameter names, and the original's output, in float64. Nothing here needs the
original code or the network.
"""
import glob
import json
import os

import numpy as np
import pytest
import torch

import models

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
FILES = sorted(f for f in glob.glob(os.path.join(REFERENCE_DIR, "*.npz"))  # the image models: tests/test_vqvae.py
               if not os.path.basename(f).startswith("vqvae_"))
TOL = 1e-6


def load(path):
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        state = {k[len("state/"):]: torch.from_numpy(f[k]) for k in f.files if k.startswith("state/")}
        return meta, state, torch.from_numpy(f["x"]), f["y"]


def ours(meta, state, **changes):
    """Our model with the reference's arguments (and `changes`), carrying the original's weights."""
    torch.manual_seed(0)
    model = models.build(meta["model"], **{**meta["kwargs"], **changes})
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, f"the original has no counterpart for our {unexpected}"
    parameters = dict(model.named_parameters())
    assert not [k for k in missing if k in parameters], f"parameters the original lacks: {missing}"
    return model.double().eval()                                 # missing: computed tables only


def output(model, x):
    with torch.no_grad():
        return model(x).numpy()


def test_every_sequence_model_with_an_original_has_a_reference():
    covered = {load(path)[0]["model"] for path in FILES}
    assert covered == {"vqmlp", "vqlnmlp", "vqlnpemlp", "vqlnmlp_sinpe", "vqlnmlp_rope", "mhvqlnmlp",
                       "mhvqlnpemlp", "mhvqlnmlp_sinpe", "mhvqlnmlp_rope", "lstm", "att", "att_mh"}
    assert all(os.path.getsize(path) < 256 * 1024 for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-4] for p in FILES])
def test_outputs_equal_the_original(path):
    meta, state, x, y = load(path)
    model = ours(meta, state)
    np.testing.assert_allclose(output(model, x), y, rtol=TOL, atol=TOL)
    fresh = models.build(meta["model"], **meta["kwargs"])
    for name, buffer in fresh.named_buffers():                  # stored buffers are random draws (codebooks,
        if name in state:                                        # randn tables): ours draw with the same std
            assert abs(buffer.std().item() / state[name].std().item() - 1) < 0.1, name


@pytest.mark.parametrize("case,changes", [
    ("att_rope_qk", dict(rope_before_ln=False)),                 # our old order: LayerNorm, then RoPE
    ("att_mh_rope_qk", dict(rope_before_ln=False)),
])
def test_our_old_att_order_differs_from_the_original(case, changes):
    """The reference can fail: with the old order the outputs move by far more than TOL."""
    meta, state, x, y = load(os.path.join(REFERENCE_DIR, f"{case}.npz"))
    assert np.abs(output(ours(meta, state, **changes), x) - y).max() > 1e-3


@pytest.mark.parametrize("case", ["att_randn", "att_mh_randn"])
def test_our_old_att_defaults_do_not_load_or_draw_as_the_original(case):
    meta, state, _, _ = load(os.path.join(REFERENCE_DIR, f"{case}.npz"))
    with pytest.raises(AssertionError, match="parameters the original lacks"):
        ours(meta, state, bias=True)
    old = models.build(meta["model"], **meta["kwargs"], pe_std=0.01).pe
    assert abs(old.std().item() / state["pe"].std().item() - 0.5) < 0.1  # half the original's std


# -- the scripts that wrote the references (they need the original code; what runs without it) --
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f)[:-4] for f in FILES])
def test_the_script_builds_our_model_as_the_reference_was_built(path):
    """benchmarks/reference_outputs.py's arguments for our model, from the original's settings that
    the file records, are the arguments the file was made with (a drift there once went unseen)."""
    from benchmarks import reference_outputs
    meta = load(path)[0]
    assert reference_outputs.our_arguments(meta["model"], meta["original_settings"]) == meta["kwargs"]


@pytest.mark.parametrize("script, needs", [("benchmarks/reference_outputs.py", "cannot read commit"),
                                           ("benchmarks/reference_vqvae.py", "--commit 'fe3d527")])
def test_the_reference_scripts_refuse_a_missing_original_in_one_line(script, needs, tmp_path):
    """No folder, or a git repository without the original's commits: exit 2, one line that names
    the value, and no output folder made."""
    import subprocess
    from conftest import run_main
    empty = tmp_path / "empty.git"
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
    for orig, says in ((tmp_path / "nowhere", "nowhere"), (empty, needs)):
        r = run_main(script, "--orig", orig, "--out", tmp_path / "out")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
        assert not (tmp_path / "out").exists()
