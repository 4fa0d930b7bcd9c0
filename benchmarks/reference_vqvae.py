"""Reference outputs of the original image code, for tests/test_vqvae.py (issue 16).

The research log's image models are MinVQVAE's (github.com/donglinkang2021/MinVQVAE). This script
builds each original model that models/vqvae.py has a bottleneck for (VQVAE, AMVQVAE, SMVQVAE,
FFNAE, LLMFFNAE) with a fixed seed, maps its state_dict to our parameter names, runs a small
fixed input through it in float64 and writes tests/reference/vqvae_{bottleneck}.npz:

    config      our Model's constructor arguments (JSON), the original's in orig_config
    input       (2, 3, 32, 32) pixels in [0, 1] with 8 x 8 patches masked by the original's patch_mask
    target      the same images unmasked;  output: the original model's reconstruction (eval mode)
    grad_input  d MSE(output, target) / d input, and g/NAME the bottleneck's parameter gradients
                (they tell the straight-through variants apart)
    w/NAME      the original's weights under our names, float64

The channels are narrower than the log's (hidden 32, res_channels 8, embed_dim 16, n_embed 32;
scale_factor 1 and 2 ResBlocks as the log) so that each file stays under 1 MB in float64.

Never part of the product; the tests run only its error paths (it needs the original code and einops).
How the committed files were made (commit fe3d527, 2024-12-16, the log's time):

    python -m venv PATH/TO/vq-venv --system-site-packages && PATH/TO/vq-venv/bin/pip install einops==0.8.0
    PATH/TO/vq-venv/bin/python benchmarks/reference_vqvae.py --orig PATH/TO/MinVQVAE   # a clone or bare mirror

--orig may be a git repository (bare or not: --commit is taken out of it with git archive) or a
plain folder holding minvqvae/ (its commit is then recorded as unknown).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models.vqvae import Model  # noqa: E402  (to report how far ours is from the original)

COMMIT = "fe3d527d68668016c1420257a84711c09f5cbdf1"
ORIGINAL = {"vqvae": ("vqvae", "VQVAE"), "amvqvae": ("amvqvae", "AMVQVAE"), "smvqvae": ("smvqvae", "SMVQVAE"),
            "ffnae": ("ffnae", "FFNAE"), "llmffnae": ("llmffnae", "LLMFFNAE")}
ORIG_CONFIG = {"in_channel": 3, "hid_channel": 32, "n_res_block": 2, "n_res_channel": 8, "embed_dim": 16,
               "n_embed": 32, "scale_factor": 1}
SEED = 1337


def our_config(bottleneck, c=ORIG_CONFIG):
    return {"bottleneck": bottleneck, "in_channels": c["in_channel"], "hidden": c["hid_channel"],
            "res_channels": c["n_res_channel"], "n_res_blocks": c["n_res_block"], "embed_dim": c["embed_dim"],
            "n_embed": c["n_embed"], "scale_factor": c["scale_factor"], "residual": "relu", "decoder": "original"}


def our_name(name, c=ORIG_CONFIG):
    """The original's parameter name -> ours (models/vqvae.py)."""
    down = 3 + 2 * c["scale_factor"]  # layers of the original's SubSampleBlock, our encoder's first
    n = c["n_res_block"]
    rules = [
        (r"^encoder\.blocks\.0\.blocks\.(\d+)\.", lambda m: f"encoder.{m[1]}."),
        (r"^encoder\.blocks\.(\d+)\.conv\.", lambda m: f"encoder.{int(m[1]) - 1 + down}.conv."),
        (r"^enc_out\.", lambda m: "to_latent."),
        (r"^dec_in\.", lambda m: "from_latent."),
        (r"^quantize\.ln\.", lambda m: "bottleneck.ln."),
        (r"^quantize\.embd\.weight$", lambda m: "bottleneck.codebook"),
        (r"^quantize\.c_fc\.", lambda m: "bottleneck.up."),
        (r"^quantize\.c_proj\.", lambda m: "bottleneck.down."),
        (rf"^decoder\.blocks\.{n + 1}\.blocks\.(\d+)\.", lambda m: f"decoder.{n + 1 + int(m[1])}."),
        (r"^decoder\.blocks\.(\d+)\.conv\.", lambda m: f"decoder.{m[1]}.conv."),
    ]
    for pattern, replace in rules:
        new, k = re.subn(pattern, replace, name)
        if k:
            return new
    raise KeyError(f"no rule maps the original's parameter {name!r}")


def original_source(orig, commit, tmp):
    """A folder holding the original's minvqvae/ package, and the commit it is at."""
    git = lambda *args: subprocess.run(["git", "-C", orig, *args], capture_output=True)
    if git("rev-parse", "--git-dir").returncode:
        if not os.path.isdir(os.path.join(orig, "minvqvae")):
            fail(f"--orig {orig!r} is neither a git repository nor a folder holding minvqvae/")
        return orig, "unknown (a plain folder)"
    full = git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if full.returncode:
        fail(f"--commit {commit!r} is not in {orig} (MinVQVAE's history holds {COMMIT[:7]})")
    full = full.stdout.decode().strip()
    subprocess.run(["tar", "-x", "-C", tmp], input=git("archive", full, "minvqvae").stdout, check=True)
    return tmp, full


def fail(message):
    print(f"reference_vqvae.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def reference(bottleneck, x, target):
    """(mapped weights, output, input gradient, bottleneck gradients) of the original model."""
    import importlib
    module, cls = ORIGINAL[bottleneck]
    torch.manual_seed(SEED)
    model = getattr(importlib.import_module(f"minvqvae.models.{module}"), cls)(**ORIG_CONFIG).double().eval()
    x = x.clone().requires_grad_(True)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out  # the VQ models also return code indices
    torch.nn.functional.mse_loss(out, target).backward()
    weights = {our_name(k): v.detach().numpy() for k, v in model.state_dict().items()}
    grads = {our_name(k): p.grad.numpy() for k, p in model.named_parameters()
             if k.startswith("quantize.") and p.grad is not None}
    return weights, out.detach().numpy(), x.grad.numpy(), grads


def ours(bottleneck, weights, x, target):
    """Our model with the mapped weights: (output, input gradient, bottleneck gradients)."""
    model = Model(**our_config(bottleneck)).double().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x = x.clone().requires_grad_(True)
    out = model(x)
    torch.nn.functional.mse_loss(out, target).backward()
    grads = {k: p.grad.numpy() for k, p in model.named_parameters() if k.startswith("bottleneck.") and p.grad is not None}
    return out.detach().numpy(), x.grad.numpy(), grads


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orig", required=True, help="MinVQVAE: a clone, a bare mirror or a folder with minvqvae/")
    p.add_argument("--commit", default=COMMIT, help=f"(default {COMMIT[:7]}, the log's time)")
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "reference"),
                   help="where vqvae_*.npz go (default tests/reference)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source, commit = original_source(args.orig, args.commit, tmp)
        sys.path.insert(0, source)
        try:
            from minvqvae.models.core.mask import patch_mask  # the original's masking, for a realistic input
        except ModuleNotFoundError as e:
            fail(f"the original code needs {e.name}: run this script in a venv with einops==0.8.0 (see its docstring)")
        os.makedirs(args.out, exist_ok=True)

        torch.manual_seed(SEED)
        target = torch.rand(2, 3, 32, 32, dtype=torch.float64)   # (B, C, H, W) pixels in [0, 1]
        x = patch_mask(target, mask_prob=0.5, patch_size=8)
        for bottleneck in ORIGINAL:
            weights, out, grad_input, grads = reference(bottleneck, x, target)
            our_out, our_grad, our_grads = ours(bottleneck, weights, x, target)
            diff = max([np.abs(out - our_out).max(), np.abs(grad_input - our_grad).max()]
                       + [np.abs(grads[k] - our_grads[k]).max() for k in grads])
            assert set(grads) == set(our_grads), (set(grads), set(our_grads))
            path = os.path.join(args.out, f"vqvae_{bottleneck}.npz")
            np.savez_compressed(
                path, config=json.dumps(our_config(bottleneck)), orig_config=json.dumps(ORIG_CONFIG),
                orig_class=f"minvqvae.models.{ORIGINAL[bottleneck][0]}.{ORIGINAL[bottleneck][1]}",
                commit=commit, seed=SEED, input=x.numpy(), target=target.numpy(), output=out,
                grad_input=grad_input, **{f"w/{k}": v for k, v in weights.items()},
                **{f"g/{k}": v for k, v in grads.items()})
            print(f"{bottleneck:9s} {os.path.getsize(path) / 1e3:6.0f} kB  ours vs original: max abs difference "
                  f"{diff:.3g} (output, input gradient, bottleneck gradients)  -> {os.path.relpath(path, ROOT)}")
        print(f"original: MinVQVAE {commit}")


if __name__ == "__main__":
    main()
