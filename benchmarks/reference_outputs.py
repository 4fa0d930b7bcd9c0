"""Reference outputs of the original code, for tests/test_reference.py.

The research log's code is donglinkang2021/simple-sequence-prediction (MIT License). This script
takes each of its sequence models from the commit where it last existed, builds it with fixed
seeds at the settings of its conf/model/*.yaml, maps its state_dict to this project's parameter
names, runs a fixed small input in float64 and writes one .npz per model to tests/reference/:

    x            (B, T, 1) float64, the input
    y            the original's output, float64
    state/NAME   the original's weights and buffers under our names (float32: the original draws
                 them in float32; converting to float64 is exact)
    meta         JSON: our model's name and constructor arguments, the original's file, commit and
                 settings, and notes

The commits (the vq family was deleted from the original at 5b97253):
    ac49824 (2024-12-23)  src/model/{vqmlp, vqlnmlp, vqlnpemlp, vqlnmlp_sinpe, vqlnmlp_rope,
                          mhvqlnmlp, mhvqlnpemlp, mhvqlnmlp_sinpe, mhvqlnmlp_rope}.py with
                          conf/model/<same name>.yaml (unchanged up to 8239d7e)
    5b97253 (2025-01-10)  src/model/{lstm, att, att_mh}.py and src/model/utils.py (unchanged up to
                          the head, 5d0a590); conf/model/{att, att_mh}.yaml at 5b97253 (RoPE on q
                          and k) and at a8fe9ca (the final settings: sinpe on the input)

Which original model is which of ours: the vq family has the same names; lstm is the original's
lstm.py (the log's lstm_linear1, the same network with a zero initial state); att and att_mh are
the original's att.py and att_mh.py. Files (our model, original file, conf):
    att, att_mh                 the final conf (a8fe9ca): sinpe on the input
    att_rope_qk, att_mh_rope_qk the conf at 5b97253: RoPE on q and k, then their LayerNorms
    att_randn, att_mh_randn     the final conf with pe_type randn (the sweeps' "randpe" was no
                                positional encoding at all: get_pe returns None for it)

Settings common to all: torch.manual_seed(0) before the constructor, the original's init_weights
(as its train.py does), then 0.1 * N(0, 1) added to every parameter (seed 1), so that biases and
LayerNorm weights are not their initial 0 and 1 and a wrongly mapped one shows. Input: B = 2,
T = 24, N(0, 1) (seed 2). Random tables (the codebooks' N(0, 1), randn positions) are stored; the
original's 512-row position tables are cut to the T rows the input reads, and our model is built
with block_size = T. Sinusoidal and rotary tables are computed, not stored: the original builds
them in float32 (simplepe), so this script checks its float32 tables against the same formula in
float64 (printed: at most a few 1e-5 over 512 rows) and runs the original with the float64 ones,
so the reference is exact to float64 rounding.

How to run (the original's code needs simplepe 0.0.3, the first with RandomNormalPositionalEncoding,
einops and tabulate; keep them out of the project's environment):
    python -m venv PATH/TO/orig-venv --system-site-packages      # reuses torch and numpy
    PATH/TO/orig-venv/bin/pip install simplepe==0.0.3 einops tabulate
    git clone --mirror https://github.com/donglinkang2021/simple-sequence-prediction PATH/TO/ssp.git
    PATH/TO/orig-venv/bin/python benchmarks/reference_outputs.py --orig PATH/TO/ssp.git
--orig takes a bare mirror or a checkout (git clone without --depth): the script reads the commits
with `git archive`, so a shallow checkout, missing them, is an error. It then prints, per file,
the largest difference between the original's output and ours (models/ from this repository).
"""
import argparse
import importlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "reference")
B, T = 2, 24

VQ_COMMIT, ATT_COMMIT, FINAL_CONF = "ac49824", "5b97253", "a8fe9ca"
VQ_NAMES = ["vqmlp", "vqlnmlp", "vqlnpemlp", "vqlnmlp_sinpe", "vqlnmlp_rope",
            "mhvqlnmlp", "mhvqlnpemlp", "mhvqlnmlp_sinpe", "mhvqlnmlp_rope"]
# file name -> (our model, original file, code commit, conf commit, conf overrides)
CASES = {name: (name, name, VQ_COMMIT, VQ_COMMIT, {}) for name in VQ_NAMES}
CASES.update({
    "lstm": ("lstm", "lstm", ATT_COMMIT, ATT_COMMIT, {}),
    "att": ("att", "att", ATT_COMMIT, FINAL_CONF, {}),
    "att_rope_qk": ("att", "att", ATT_COMMIT, ATT_COMMIT, {}),
    "att_randn": ("att", "att", ATT_COMMIT, FINAL_CONF, {"pe_type": "randn"}),
    "att_mh": ("att_mh", "att_mh", ATT_COMMIT, FINAL_CONF, {}),
    "att_mh_rope_qk": ("att_mh", "att_mh", ATT_COMMIT, ATT_COMMIT, {}),
    "att_mh_randn": ("att_mh", "att_mh", ATT_COMMIT, FINAL_CONF, {"pe_type": "randn"}),
})


def fail(message):
    print(f"reference_outputs.py: {message}", file=sys.stderr)
    sys.exit(2)


def extract(orig, commit, dest):
    """The tree of `commit` of the repository at `orig` (bare or not) into `dest`."""
    r = subprocess.run(["git", "-C", orig, "archive", "--format=tar", commit], capture_output=True)
    if r.returncode:
        fail(f"cannot read commit {commit} from {orig} (a bare mirror or a full clone of "
             f"simple-sequence-prediction): {r.stderr.decode().strip().splitlines()[-1]}")
    with tarfile.open(fileobj=__import__("io").BytesIO(r.stdout)) as tar:
        tar.extractall(dest, filter="data")


def read_conf(path):
    """conf/model/*.yaml: flat `key: value` lines; the values are ints, booleans or strings."""
    conf = {}
    for line in open(path):
        key, _, value = line.partition(":")
        value = value.strip()
        if not key.strip() or key.startswith(("#", "_target_")):
            continue
        conf[key.strip()] = (int(value) if value.lstrip("-").isdigit() else
                             {"true": True, "false": False}.get(value.lower(), value))
    return conf


def import_original(tree, module):
    """src.model.<module> of an extracted tree (dropping any other tree's src package)."""
    for name in [n for n in sys.modules if n == "src" or n.startswith("src.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        return importlib.import_module(f"src.model.{module}"), importlib.import_module("src.model.utils")
    finally:
        sys.path.remove(tree)


def float64_tables(model):
    """Replace simplepe's float32 sinusoidal and rotary tables by the same formula in float64.

    Returns the largest difference between the two, which checks that the formula is the original's."""
    worst = 0.0
    for module in model.modules():
        kind = type(module).__name__
        if kind == "SinusoidalPositionalEncoding":
            n, d = module.pe.shape[1:]
            angles = torch.arange(n, dtype=torch.float64)[:, None] * 10000.0 ** (
                -torch.arange(0, d, 2, dtype=torch.float64) / d)
            table = torch.stack((angles.sin(), angles.cos()), -1).flatten(-2)[None]  # pe[:, 2i] = sin
            worst = max(worst, (table - module.pe).abs().max().item())
            module.pe = table
        elif kind == "RotaryPositionalEncoding":
            n, half = module.freqs_cis.shape[:2]
            angles = torch.arange(n, dtype=torch.float64)[:, None] * 10000.0 ** (
                -torch.arange(0, 2 * half, 2, dtype=torch.float64) / (2 * half))
            table = torch.stack((angles.cos(), angles.sin()), -1)    # (n, d / 2, 2): cos, sin
            worst = max(worst, (table - module.freqs_cis).abs().max().item())
            module.freqs_cis = table
    return worst


def our_arguments(model, conf):
    """Our constructor's arguments for the original's conf."""
    if model == "lstm":
        return dict(hidden_size=conf["hidden_dim"], num_layers=conf["num_layers"])
    if model.startswith(("vq", "mhvq")):
        kwargs = dict(vocab_size=conf["vocab_size"], d_model=conf["d_model"])
        if "n_head" in conf:
            kwargs["n_heads"] = conf["n_head"]
        if model.endswith(("pemlp", "_sinpe")):                   # a position table of T rows (random: cut)
            kwargs["block_size"] = T
        return kwargs
    pe = conf.get("pe_type")
    kwargs = dict(d_model=conf["d_model"], block_size=T,
                  pe_type=pe if pe in ("randn", "sinpe", "rope") else "none",  # get_pe: anything else is None
                  pe_on="qk" if conf["is_n_pe"] else "input", in_ln=conf["is_inln"],
                  q_ln=conf["is_qln"], k_ln=conf["is_kln"], causal=conf["is_causal"])
    if model == "att_mh":
        kwargs.update(n_heads=conf["n_heads"], kv_heads=conf["kv_heads"])
    return kwargs


# The original's names -> ours (None: a computed table, not stored).
RENAME = {"embedding": "codebook", "wpe": "pe", "fc_in": "encoder", "ln_in": "in_ln", "ln_q": "q_ln",
          "ln_k": "k_ln", "fc_q": "q", "fc_k": "k", "fc_v": "v", "fc_out": "decoder"}


def mapped_state(original):
    state = {}
    for name, value in original.state_dict().items():
        first, _, rest = name.partition(".")
        if name in ("pe.freqs_cis",) or (name == "pe.pe" and type(original.pe).__name__ != "RandomNormalPositionalEncoding"):
            continue                                             # sinusoidal / rotary: computed
        if name == "pe.pe":                                      # simplepe's random table (1, max_len, D)
            state["pe"] = value[0, :T]
        elif name == "wpe":
            state["pe"] = value[:T]
        elif first == "fc_qkv":                                  # one (3D, D) map: q, k, v by rows
            for key, part in zip("qkv", value.chunk(3, dim=0)):
                state[f"{key}.{rest}"] = part
        else:
            state[RENAME.get(first, first) + ("." + rest if rest else "")] = value
    return {k: v.detach().float().numpy() for k, v in state.items()}


def reference(tree, case):
    ours, module, commit, conf_commit, overrides = CASES[case]
    conf_tree = tree[conf_commit]
    conf = read_conf(os.path.join(conf_tree, "conf", "model", f"{module}.yaml"))
    conf.update(overrides)
    original_module, utils = import_original(tree[commit], module)
    torch.manual_seed(0)
    original = original_module.Model(**conf)
    original.apply(utils.init_weights)                           # as the original's train.py
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in original.parameters():                          # weights as after some training
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    state = mapped_state(original)
    original = original.double().eval()
    table_error = float64_tables(original)
    x = torch.randn(B, T, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        y = original(x)
    y = y[0] if isinstance(y, tuple) else y                      # the vq models return (y, codes)
    meta = dict(model=ours, kwargs=our_arguments(ours, conf), original_file=f"src/model/{module}.py",
                original_commit=commit, original_conf=f"conf/model/{module}.yaml at {conf_commit}",
                original_settings=conf, float32_table_error=table_error,
                notes="torch.manual_seed(0), init_weights, + 0.1 * N(0, 1) on every parameter (seed 1); "
                      "x ~ N(0, 1) (seed 2); float64")
    return x.numpy(), y.numpy(), state, meta


def ours_output(meta, state, x):
    sys.path.insert(0, ROOT)
    import models
    torch.manual_seed(0)
    model = models.build(meta["model"], **meta["kwargs"])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    with torch.no_grad():
        return model.double().eval()(torch.from_numpy(x)).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orig", required=True, help="simple-sequence-prediction: a bare mirror or a full clone")
    parser.add_argument("--out", default=OUT, help=f"where the .npz files go (default {os.path.relpath(OUT, ROOT)})")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES),
                        help="the reference files to make (default: all)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.orig):
        fail(f"--orig {args.orig} is not a directory")
    with tempfile.TemporaryDirectory() as tmp:
        tree = {}
        for commit in (VQ_COMMIT, ATT_COMMIT, FINAL_CONF):
            tree[commit] = os.path.join(tmp, commit)
            extract(args.orig, commit, tree[commit])
        os.makedirs(args.out, exist_ok=True)
        for case in args.cases:
            try:
                x, y, state, meta = reference(tree, case)
            except ModuleNotFoundError as e:
                fail(f"the original code needs {e.name}: run this script in a venv with simplepe==0.0.3, einops "
                     f"and tabulate (see its docstring)")
            path = os.path.join(args.out, f"{case}.npz")
            arrays = {f"state/{k}": v for k, v in state.items()}
            tmp_path = path + ".tmp.npz"
            np.savez_compressed(tmp_path, x=x, y=y, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp_path, path)                           # whole or not at all
            try:
                diff = f"{np.abs(ours_output(meta, state, x) - y).max():.2e}"
            except Exception as e:                               # ours may not take these arguments yet
                diff = f"ours failed: {type(e).__name__}: {e}"
            print(f"{case:16s} {os.path.getsize(path) / 1024:6.1f} KiB  table error {meta['float32_table_error']:.1e}"
                  f"  max |original - ours| {diff}")


if __name__ == "__main__":
    main()
