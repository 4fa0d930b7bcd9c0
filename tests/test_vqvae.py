"""The image side (issue 6): models/vqvae.py and vqvae_imagenet.py, small (32-64 px, a few steps).

Script runs use a narrow model (--hidden 32 --res_channels 8) around the log's bottleneck
(embed_dim 64, n_embed 512) so the whole file stays well under two minutes on two cores.
tests/reference/vqvae_*.npz hold the original code's outputs (benchmarks/reference_vqvae.py).
"""
import glob
import json
import math
import os
import random
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
import vqvae_run
from conftest import run_main, run_script
from data import images
from models.vqvae import BOTTLENECKS, Model

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")

SMALL = ["--hidden", "32", "--res_channels", "8"]
# Tiny convolutions gain nothing from a second thread and lose much when the cores are shared.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
QUICK = ["--data", "sample", "--image_size", "64", "--batch_size", "4", "--workers", "0", *SMALL]
QUICK_2_WORKERS = list(QUICK)
QUICK_2_WORKERS[QUICK.index("--workers") + 1] = "2"


def vq_main(*args):
    """`python vqvae_imagenet.py ARGS` as main(argv) in this process, with one thread (a new
    process would spend seconds importing torch; the scripts' own start is tested by the README's)."""
    return run_main("vqvae_imagenet.py", *args, threads=1)


def train_run(out_dir, *args):
    """Run vqvae_imagenet.py; returns (run_dir, metrics, checkpoint)."""
    r = vq_main("--out_dir", out_dir, *args)
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    return run_dir, metrics, torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three bottlenecks trained for three steps on the sample data, seed 0."""
    out = tmp_path_factory.mktemp("runs")
    return {name: train_run(out, "--model", name, "--max_steps", "3", *QUICK)
            for name in ("vqvae", "smvqvae", "ffnae")}


# ---------------------------------------------------------------- the model file

@pytest.mark.parametrize("name", BOTTLENECKS)
def test_shapes_and_which_parameters_get_gradients(name):
    torch.manual_seed(0)
    model = Model(bottleneck=name, hidden=32, res_channels=8)
    x = torch.randn(2, 3, 32, 32)
    z = model.encode(x)
    assert z.shape == (2, 64, 8, 8)
    out = model(x)
    assert out.shape == x.shape
    F.mse_loss(out, x).backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert grads["encoder.0.weight"].abs().sum() > 0 and grads["from_latent.weight"].abs().sum() > 0
    if name == "vqvae":
        assert grads["bottleneck.codebook"] is None  # the log's discovery: E is never trained
    if name in ("amvqvae", "smvqvae"):
        assert grads["bottleneck.codebook"].abs().sum() > 0
    if name in ("vqvae", "amvqvae", "smvqvae"):
        assert grads["bottleneck.ln.weight"].abs().sum() > 0
    else:
        assert grads["bottleneck.up.weight"].abs().sum() > 0


def conv(c_in, c_out, k):
    """Parameters of a k x k convolution (or transposed convolution) with a bias."""
    return c_in * c_out * k * k + c_out


def parameter_counts(in_channels=3, hidden=128, res_channels=32, n_res_blocks=2, embed_dim=64, n_embed=512,
                     scale_factor=1):
    """(encoder + decoder, codebook bottleneck, FFN bottleneck), counted from the architecture in
    the module docstring; with the log's defaults 744771, 32896 and 66112."""
    ch = hidden // 2 ** scale_factor
    widths = [ch * 2 ** i for i in range(scale_factor + 1)]                       # ch, ..., hidden
    down = conv(in_channels, ch, 4) + sum(conv(a, b, 4) for a, b in zip(widths, widths[1:]))
    up = conv(ch, in_channels, 4) + sum(conv(b, a, 4) for a, b in zip(widths, widths[1:]))
    res_blocks = n_res_blocks * (conv(hidden, res_channels, 3) + conv(res_channels, hidden, 1))
    codec = (down + up + 2 * (res_blocks + conv(hidden, hidden, 3))                # encoder and decoder
             + conv(hidden, embed_dim, 1) + conv(embed_dim, hidden, 1))            # to and from the latent
    return codec, 2 * embed_dim + n_embed * embed_dim, conv(embed_dim, n_embed, 1) + conv(n_embed, embed_dim, 1)


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_parameter_counts_follow_from_the_architecture(name):
    codec, vq, ffn = parameter_counts()
    model = Model(bottleneck=name)
    inner = sum(p.numel() for p in model.bottleneck.parameters())
    assert inner == (ffn if "ffn" in name else vq)
    assert sum(p.numel() for p in model.parameters()) == codec + inner
    small = Model(bottleneck=name, hidden=32, res_channels=8, scale_factor=2)
    assert sum(p.numel() for p in small.parameters()) == parameter_counts(hidden=32, res_channels=8,
                                                                          scale_factor=2)[0] + inner


def reference(name):
    with np.load(os.path.join(REFERENCE, f"vqvae_{name}.npz")) as f:
        return {k: f[k] for k in f.files}


def run_reference(ref, **change):
    """Our model with the original's weights on the reference input, float64: (output, input
    gradient, bottleneck gradients)."""
    model = Model(**{**json.loads(str(ref["config"])), **change}).double().eval()
    model.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in ref.items() if k.startswith("w/")})
    x = torch.from_numpy(ref["input"]).requires_grad_(True)
    out = model(x)
    F.mse_loss(out, torch.from_numpy(ref["target"])).backward()
    grads = {k: p.grad for k, p in model.named_parameters() if k.startswith("bottleneck.") and p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_matches_the_original_code(name):
    """MinVQVAE fe3d527's model (benchmarks/reference_vqvae.py) and ours agree in float64: the
    network, the decoder's order, the ResBlock's relu(x) skip and the straight-through gradients."""
    ref = reference(name)
    assert str(ref["commit"]).startswith("fe3d527")
    out, grad_input, grads = run_reference(ref)
    assert np.abs(out.numpy() - ref["output"]).max() < 1e-6
    assert np.abs(grad_input.numpy() - ref["grad_input"]).max() < 1e-6
    assert sorted(grads) == sorted(k[2:] for k in ref if k.startswith("g/"))  # vqvae: no codebook gradient
    for k, g in grads.items():
        assert np.abs(g.numpy() - ref[f"g/{k}"]).max() < 1e-6, k


def test_identity_residual_is_a_different_network():
    """residual='identity' (the textbook skip) changes the output: the reference test sees it."""
    ref = reference("vqvae")
    out, _, _ = run_reference(ref, residual="identity")
    assert np.abs(out.numpy() - ref["output"]).max() > 1e-3


def test_mirror_decoder_has_the_same_size_and_another_order():
    original, mirror = Model(), Model(decoder="mirror")
    assert sum(p.numel() for p in original.parameters()) == sum(p.numel() for p in mirror.parameters())
    assert isinstance(original.decoder[0], type(original.encoder[5])) and isinstance(mirror.decoder[0], torch.nn.Conv2d)


def test_quantizers_output_the_code_values():
    """The straight-through changes gradients, not values: vqvae outputs the softmax read,
    amvqvae the argmax code."""
    torch.manual_seed(0)
    z = torch.randn(10, 64)
    soft, argmax = Model("vqvae").bottleneck, Model("amvqvae").bottleneck
    q = F.layer_norm(z, (64,))
    read = torch.softmax(q @ soft.codebook.T / 8, -1) @ soft.codebook
    assert torch.allclose(soft(z), read, atol=1e-5)
    assert torch.allclose(argmax(z), argmax.codebook[(q @ argmax.codebook.T).argmax(-1)], atol=1e-5)


def test_not_a_forecasting_model():
    assert not hasattr(Model, "target") and "vqvae" not in models.names()


def test_self_check_runs():
    r = run_script("-m", "models.vqvae", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()] == list(BOTTLENECKS)
    codec, vq_params, ffn_params = parameter_counts()  # counted from the architecture, not the modules
    for line in r.stdout.splitlines():
        inner = ffn_params if "ffn" in line.split()[0] else vq_params
        assert line.split()[1:5] == ["parameters", str(codec + inner), "bottleneck", str(inner)], line
        assert "-> latent (2, 64, 16, 16) -> (2, 3, 64, 64)" in line  # two stride-2 convolutions: 64 / 4


# ---------------------------------------------------------------- data and masking

def sample(split, size, patch, ratio, mask_count="bernoulli", eval_masks="fresh"):
    photo = images.load_splits("sample", "train")[1]["source"]
    return images.Images(None, split, size, patch, ratio, mask_count=mask_count, eval_masks=eval_masks, photo=photo)


@pytest.mark.parametrize("mask_count", ["exact", "bernoulli"])
def test_masking_zeroes_the_expected_patches(mask_count):
    for size, patch, ratio in ((256, 32, 0.5), (64, 16, 0.25)):
        ds = sample("train", size, patch, ratio, mask_count)
        grid = size // patch
        masks = []
        for i in range(4):
            img, mask = ds[i]
            assert torch.equal(ds[i][1], mask)  # the same item, the same mask
            x = images.to_pixels(img[None])
            masked = images.apply_mask(x, mask[None], patch)[0]                       # (3, S, S)
            tiles = masked.unfold(1, patch, patch).unfold(2, patch, patch)        # (3, g, g, p, p)
            zero = (tiles == 0).flatten(3).all(-1).all(0)                         # (g, g)
            assert torch.equal(zero, mask)  # [0, 1] pixels: a masked patch is black
            if mask_count == "exact":
                assert zero.sum() == round(ratio * grid * grid)
            keep = ~mask.repeat_interleave(patch, 0).repeat_interleave(patch, 1)
            assert torch.equal(masked[:, keep], x[0][:, keep])
            masks.append(mask)
        assert any(not torch.equal(masks[0], m) for m in masks[1:])
    if mask_count == "bernoulli":  # each patch on its own: the count varies around ratio * patches
        ds = sample("train", 64, 16, 0.5)
        counts = [int(ds.__getitem__(i)[1].sum()) for i in range(40)]
        assert len(set(counts)) > 2 and 6 < np.mean(counts) < 10
        ds = sample("train", 64, 16, 0.25)  # not 0.5: < and > differ
        counts = [int(ds.__getitem__(i)[1].sum()) for i in range(40)]
        assert 2.5 < np.mean(counts) < 5.5  # 0.25 of 16 patches


def test_evaluation_masks_fresh_per_epoch_or_fixed():
    for eval_masks, same in (("fresh", False), ("fixed", True)):
        ds = sample("val", 64, 16, 0.5, eval_masks=eval_masks)
        first = [ds[i][1] for i in range(4)]
        ds.epoch = 1
        assert all(torch.equal(a, ds[i][1]) for i, a in enumerate(first)) == same


def test_validation_is_the_originals_random_split_of_train():
    files = [f"f{i}" for i in range(100)]
    train, val = images.split_off_validation(files)
    expected = torch.utils.data.random_split(files, [80, 20], generator=torch.Generator().manual_seed(1337))
    assert train == list(expected[0]) and val == list(expected[1])


def test_swap_keeps_encoder_and_decoder():
    torch.manual_seed(1)
    source = Model(bottleneck="llmffnae")
    ckpt = {"model_args": {**vqvae_run.model_options(), "bottleneck": "llmffnae"}, "state_dict": source.state_dict(),
            "path": "x"}
    model = vqvae_run.swap_ffn_with_vq(ckpt, seed=0)
    assert isinstance(model.bottleneck, type(Model("vqvae").bottleneck))
    kept = [k for k in source.state_dict() if not k.startswith("bottleneck.")]
    assert len(kept) > 20
    for k in kept:
        assert torch.equal(model.state_dict()[k], source.state_dict()[k]), k
    E = model.bottleneck.codebook
    assert E.shape == (512, 64) and abs(E.mean()) < 0.02 and abs(E.std() - 1) < 0.02  # N(0, 1), untrained
    assert torch.equal(model.bottleneck.ln.weight, torch.ones(64))


# ---------------------------------------------------------------- training runs

def test_run_directory_and_metrics(runs):
    for name, (run_dir, metrics, ckpt) in runs.items():
        files = set(os.listdir(run_dir))
        assert {"config.json", "model.pt", "last.pt", "losses.csv", "loss.png", "recon_epoch001.png",
                "metrics.json"} <= files
        assert not [f for f in files if f.startswith(".tmp")]
        assert re.search(rf"vqvae/{name}/\d{{4}}(-\d\d){{5}}$", run_dir)
        assert math.isfinite(metrics["test_loss"]) and metrics["steps"] == 3
        model = Model(**ckpt["model_args"])  # the checkpoint rebuilds its model
        model.load_state_dict(ckpt["state_dict"])
        assert metrics["parameters"]["model"] == sum(p.numel() for p in model.parameters())
        _, vq_params, ffn_params = parameter_counts()
        assert metrics["parameters"]["bottleneck"] == (vq_params if name != "ffnae" else ffn_params)
        config = json.load(open(os.path.join(run_dir, "config.json")))
        assert config["model_args"] == ckpt["model_args"] and config["image_size"] == 64


def test_vqvae_codebook_never_changes_smvqvae_codebook_does(runs):
    for name, changed in (("vqvae", False), ("smvqvae", True)):
        _, metrics, ckpt = runs[name]
        torch.manual_seed(0)  # the seed's first draw is the model: rebuild its initial codebook
        initial = Model(**ckpt["model_args"]).bottleneck.codebook.detach()
        assert torch.equal(ckpt["initial_codebook"], initial)
        final = ckpt["state_dict"]["bottleneck.codebook"]
        assert torch.equal(final, initial) != changed, name
        assert (metrics["codebook_change"]["l2"] > 0) == changed
    assert runs["ffnae"][1]["codebook_change"] is None


def test_eval_reports_the_runs_test_loss(runs):
    run_dir, metrics, _ = runs["vqvae"]
    r = vq_main("--eval", run_dir, "--workers", "0", "--batch_size", "4")
    assert r.returncode == 0, r.stderr
    test_loss = float(re.search(r"test_loss (\S+)", r.stdout).group(1))
    assert test_loss == pytest.approx(metrics["test_loss"], rel=1e-5)


def test_same_seed_same_numbers_with_any_number_of_workers(runs, tmp_path):
    _, metrics, ckpt = runs["vqvae"]
    _, metrics2, ckpt2 = train_run(tmp_path, "--model", "vqvae", "--max_steps", "3", *QUICK_2_WORKERS)
    assert metrics2["test_loss"] == metrics["test_loss"]
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(v, ckpt2["state_dict"][k]), k


def test_swap_then_layernorm_only_changes_nothing_else(runs, tmp_path):
    source_dir, _, source = runs["ffnae"]
    run_dir, metrics, ckpt = train_run(tmp_path, "--swap_ffn_with_vq", source_dir, "--train_only", "ln",
                                       "--max_steps", "2", "--workers", "0", "--batch_size", "4")
    assert "ffnae_swapvq_ln" in run_dir and os.path.isfile(os.path.join(run_dir, "recon_epoch000.png"))
    config = json.load(open(os.path.join(run_dir, "config.json")))  # the source's images, not the defaults
    assert (config["data"], config["image_size"]) == ("sample", 64)
    assert metrics["parameters"]["trainable"] == 128 and metrics["steps"] == 2
    # The source on the swap's test masks (seed 0, drawn for epoch 0), not those of its own final epoch
    assert metrics["source_test_loss"] == pytest.approx(runs["ffnae"][1]["test_loss"], rel=0.1)
    r = vq_main("--eval", run_dir, "--workers", "0", "--batch_size", "4")
    assert float(re.search(r"test_loss (\S+)", r.stdout).group(1)) == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert math.isfinite(metrics["test_loss_before_training"]) and metrics["codebook_change"]["l2"] == 0
    state = ckpt["state_dict"]
    assert ckpt["model_args"]["bottleneck"] == "vqvae"
    for k, v in state.items():
        if not k.startswith("bottleneck."):
            assert torch.equal(v, source["state_dict"][k]), k  # the swap kept it, fine-tuning left it
    assert torch.equal(state["bottleneck.codebook"], ckpt["initial_codebook"])
    assert not torch.equal(state["bottleneck.ln.weight"], torch.ones(64))  # the LayerNorm learned


@pytest.mark.parametrize("layout", ["tree", "flat"])
def test_unreadable_image_is_skipped_and_counted(tmp_path, layout):
    rng = np.random.default_rng(0)
    from PIL import Image
    root = tmp_path / "images"
    folders = [root / "train" / "n01", root / "val" / "n01"] if layout == "tree" else [root]
    for folder in folders:
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (72, 90, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folders[0] / "broken.jpg").write_bytes(b"not a jpeg")
    r = vq_main("--data", root, "--image_size", "64", "--batch_size", "4", "--workers", "0", "--max_steps", "3",
                "--out_dir", tmp_path / "runs", *SMALL)
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: skipped 1 unreadable image\(s\), e\.g\. .*broken\.jpg", r.stderr)
    metrics = json.load(open(os.path.join(r.stdout.strip().splitlines()[-1][3:], "metrics.json")))
    assert metrics["unreadable_images"] == 1 and math.isfinite(metrics["test_loss"])
    assert metrics["test_split"] == ("val" if layout == "tree" else "test")  # the original tests on val/


def test_torchrun_two_processes_gloo_one_run_directory(tmp_path):
    command = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "vqvae_imagenet.py",
               "--model", "vqvae", "--max_steps", "2", *QUICK)
    r = run_script(*command, "--out_dir", tmp_path / "first", timeout=300)
    if r.returncode == 0:
        os.rename(tmp_path / "first" / "vqvae", tmp_path / "vqvae")
    elif "terminate called without an active exception" in r.stderr:
        # gloo's threads at interpreter exit, after the run (once in about 65 runs on 2026-12-05; a known
        # torch shutdown problem, see pytorch/pytorch pull request 179291): the run must be whole; one more try
        assert len(glob.glob(str(tmp_path / "first" / "vqvae" / "vqvae" / "*" / "metrics.json"))) == 1, r.stderr
        r = run_script(*command, "--out_dir", tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = os.listdir(tmp_path / "vqvae" / "vqvae")
    assert len(runs) == 1
    run_dir = tmp_path / "vqvae" / "vqvae" / runs[0]
    config = json.load(open(run_dir / "config.json"))
    metrics = json.load(open(run_dir / "metrics.json"))
    assert config["world_size"] == 2 and config["global_batch_size"] == 8
    assert metrics["steps"] == 2 and metrics["codebook_change"]["l2"] == 0  # DDP leaves E untouched too


# ---------------------------------------------------------------- --list and errors

def test_list_prints_every_bottleneck():
    r = run_main("vqvae_imagenet.py", "--list")
    assert r.returncode == 0, r.stderr
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:-1]] for l in r.stdout.splitlines()
            if l.startswith("| ") and not l.startswith("| model")}
    assert list(rows) == list(BOTTLENECKS)
    codec, vq_params, ffn_params = parameter_counts()  # 744771, 32896, 66112
    assert rows["vqvae"][1:] == [str(codec + vq_params), str(codec), str(vq_params), "128"]
    assert rows["ffnae"][1:] == [str(codec + ffn_params), str(codec), str(ffn_params), "-"]


def foreign_run(tmp_path):
    """A train.py-like run directory: config.json and a model.pt that is not this script's."""
    path = tmp_path / "foreign"
    path.mkdir()
    torch.save({"model": "vqlnmlp", "model_args": {"vocab_size": 512}, "state_dict": {}}, path / "model.pt")
    (path / "config.json").write_text("{}")
    return path


def broken_run(tmp_path, runs, which):
    """A copy of the vqvae run with model.pt truncated or config.json cut short."""
    import shutil
    path = tmp_path / f"broken_{which.replace('.', '_')}"
    shutil.copytree(runs["vqvae"][0], path)
    data = (path / which).read_bytes()
    (path / which).write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("args, expected", [
    (["--data", "/no/such/folder"], "'/no/such/folder': no such folder"),
    (["--data", "EMPTY"], "found 0 images"),
    (["--image_size", "100"], "--image_size 100 is not a multiple of --patch_size 32"),
    (["--model", "vqgan"], "invalid choice: 'vqgan' (choose from 'vqvae', 'amvqvae'"),
    (["--epochs", "many"], "invalid int value: 'many'"),
    (["--residual", "none"], "--residual: invalid choice: 'none' (choose from 'relu', 'identity')"),
    (["--pixels", "hdr"], "invalid choice: 'hdr' (choose from 'unit', 'signed')"),
    (["--accumulate", "0"], "--accumulate 0: must be >= 1"),
    (["--eval", "FOREIGN"], "is not a vqvae_imagenet.py run (it holds model 'vqlnmlp')"),
    (["--eval", "TRUNCATED_MODEL"], "model.pt is not a vqseq checkpoint"),
    (["--eval", "TRUNCATED_CONFIG"], "config.json is not valid JSON"),
    (["--eval", "/no/such/run"], "run directory '/no/such/run' not found"),
    (["--swap_ffn_with_vq", "VQVAE_RUN"], "holds bottleneck 'vqvae'; it needs a run of ffnae or llmffnae"),
    (["--train_only", "ln", "--max_steps", "2"], "add --swap_ffn_with_vq RUN"),
    (["--resume", "VQVAE_RUN", "--epochs", "1"], "it has run 1 epochs already; give --epochs larger than that"),
    (["--resume", "VQVAE_RUN", "--lr", "0.1"], "--resume continues a run with its own settings; drop --lr"),
    (["--resume", "FOREIGN"], "holds no complete run"),
    (["--hidden", "0"], "--hidden 0: must be a whole number >= 1"),
    (["--embed_dim", "0"], "--embed_dim 0: must be a whole number >= 1"),
    (["--n_embed", "0"], "--n_embed 0: must be a whole number >= 1"),
    (["--res_channels", "-2"], "--res_channels -2: must be a whole number >= 1"),
    (["--n_res_blocks", "-1"], "--n_res_blocks -1: must be a whole number >= 0"),
    (["--scale_factor", "-1"], "--scale_factor -1: must be a whole number >= 0"),
    (["--hidden", "30", "--scale_factor", "2"], "hidden must be a multiple of 2 ** scale_factor, e.g. 4, 8, 16"),
    (["--dropout", "1"], "--dropout 1.0: must be at least 0 and below 1"),
    (["--in_channels", "2"], "--in_channels 2: choose 1 (the images read as grayscale) or 3 (RGB)"),
    (["--weight_decay", "-0.1"], "--weight_decay -0.1: must be >= 0"),
    (["--lr", "nan"], "'nan' is not a finite number"),
    (["--resume", "VQVAE_RUN", "--hidden", "8"], "--resume continues a run with its own settings; drop --hidden"),
])
def test_bad_input_is_one_line_and_exit_2(args, expected, tmp_path, runs):
    (tmp_path / "empty").mkdir()
    subst = {"EMPTY": tmp_path / "empty", "FOREIGN": foreign_run(tmp_path), "VQVAE_RUN": runs["vqvae"][0],
             "TRUNCATED_MODEL": "model.pt", "TRUNCATED_CONFIG": "config.json"}
    for key in ("TRUNCATED_MODEL", "TRUNCATED_CONFIG"):
        if key in args:
            subst[key] = broken_run(tmp_path, runs, subst[key])
    out = tmp_path / "out"
    r = run_main("vqvae_imagenet.py", *[subst.get(a, a) for a in args], "--out_dir", out)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert expected in r.stderr, r.stderr
    assert not out.exists()  # nothing written


def test_only_unreadable_images_leave_no_run_directory(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(6):
        (root / f"{i}.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "runs"
    r = run_main("vqvae_imagenet.py", "--data", root, "--image_size", "32", "--batch_size", "4", "--workers", "0",
                 "--out_dir", out, *SMALL)
    assert r.returncode == 2 and "no readable images in the training split" in r.stderr
    assert not out.exists() or not any(out.rglob("*"))  # no run, not even a hidden one


def test_eval_takes_the_latest_complete_run(runs, tmp_path):
    """A hidden .partial directory (a run still being built) is not a run."""
    import shutil
    parent = tmp_path / "vqvae"
    shutil.copytree(runs["vqvae"][0], parent / "2000-01-01-00-00-00")
    (parent / ".2999-01-01-00-00-00-abcd.partial").mkdir()
    r = run_main("vqvae_imagenet.py", "--eval", parent, "--workers", "0", "--batch_size", "4")
    assert r.returncode == 0, r.stderr
    assert "2000-01-01-00-00-00" in r.stdout


def test_resume_gives_the_same_weights_as_one_straight_run(tmp_path):
    """llmffnae: its dropout needs the random state, AdamW its moments; 2 epochs of 32 steps.
    A learning rate and a seed other than the defaults: a resume that fell back to either would
    differ (seed 0's crops, masks and order in place of seed 3's)."""
    quick = ["--model", "llmffnae", "--data", "sample", "--image_size", "32", "--batch_size", "16", "--workers", "0",
             "--lr", "0.001", "--seed", "3", *SMALL]
    _, _, straight = train_run(tmp_path / "a", *quick, "--epochs", "2")
    first_dir, first, _ = train_run(tmp_path / "b", *quick, "--epochs", "1")
    assert first["steps"] == 32 and first["epochs_run"] == 1
    r = vq_main("--resume", tmp_path / "b" / "vqvae" / "llmffnae", "--epochs", "2", "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"-> {first_dir}"  # the same run directory
    resumed = torch.load(os.path.join(first_dir, "model.pt"), weights_only=True)
    assert resumed["epoch"] == straight["epoch"] == 2
    for k, v in straight["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    with open(os.path.join(first_dir, "losses.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()] == ["epoch", "1", "2"]  # losses appended


def test_resume_takes_max_steps_as_the_total(runs, tmp_path):
    """--max_steps with --resume is the total, as in a fresh run: a run at step 3 resumed with
    --max_steps 5 trains 2 more steps (epoch 2 stops there); with --max_steps 3 there is nothing to
    train, which is an error that writes nothing."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(runs["vqvae"][0], run)
    r = vq_main("--resume", run, "--epochs", "3", "--max_steps", "3")
    assert r.returncode == 2 and "it has run 3 steps already; give --max_steps larger than that" in r.stderr
    assert [row["step"] for row in vqvae_run.read_resume(str(run))["rows"]] == [3]
    r = vq_main("--resume", run, "--epochs", "3", "--max_steps", "5", "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert [(row["epoch"], row["step"]) for row in vqvae_run.read_resume(str(run))["rows"]] == [(1, 3), (2, 5)]
    assert json.load(open(run / "metrics.json"))["steps"] == 5


def make_tree(root, sizes):
    """An ImageNet-like tree: {split: images}, each split's images in two class folders; returns the paths."""
    from PIL import Image
    rng = np.random.default_rng(1)
    paths = {}
    for split, n in sizes.items():
        paths[split] = []
        for i in range(n):
            folder = root / split / f"n0{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            paths[split].append(str(folder / f"{split}{i}.png"))
            Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)).save(paths[split][-1])
    return paths


def test_an_imagenet_tree_validates_on_a_fifth_of_train_and_tests_on_val(tmp_path):
    """--val_from train (the original's): validation is torch's random_split of train/ (80/20, seed
    1337), the test is val/, and test/ is not read; --val_from val: validation is val/, the test is
    test/. A run says so in config.json and --eval in its line (2 val and 3 test images, not 3 and 2)."""
    paths = make_tree(tmp_path / "tree", {"train": 10, "val": 3, "test": 4})
    train = sorted(paths["train"], key=lambda p: (os.path.dirname(p), p))  # the order a walk of train/ finds
    keep, held = torch.utils.data.random_split(train, [8, 2], generator=torch.Generator().manual_seed(1337))
    splits, info = images.load_splits(str(tmp_path / "tree"), "train")
    assert splits["train"] == list(keep) and splits["val"] == list(held) and info["test_split"] == "val"
    assert sorted(splits["test"]) == sorted(paths["val"])
    splits, info = images.load_splits(str(tmp_path / "tree"), "val")
    assert sorted(splits["val"]) == sorted(paths["val"]) and sorted(splits["test"]) == sorted(paths["test"])
    assert sorted(splits["train"]) == sorted(paths["train"]) and info["test_split"] == "test"
    r = vq_main("--data", tmp_path / "tree", "--image_size", "32", "--batch_size", "4", "--workers", "0",
                "--epochs", "0", "--out_dir", tmp_path / "runs", *SMALL)
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1].removeprefix("-> ")
    assert json.load(open(os.path.join(run_dir, "config.json")))["images"] == {"train": 8, "val": 2, "test": 3}
    r = vq_main("--eval", run_dir, "--workers", "0")
    assert r.returncode == 0 and "(2 val, 3 test images of" in r.stdout, r.stdout + r.stderr


def test_in_channels_1_reads_the_images_as_grayscale(tmp_path):
    """--in_channels 1: each image is Pillow's grayscale of it (L = (299 R + 587 G + 114 B) / 1000),
    the model reads and writes one channel, and the run trains; 2 is refused."""
    from PIL import Image
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    gray = images.Images([str(folder / "0.png")], "val", 32, 16, 0.5, channels=1)
    x, _ = gray[0]
    rgb = np.asarray(Image.open(folder / "0.png")).astype(np.int64)
    by_hand = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000
    assert x.shape == (1, 32, 32) and np.abs(x[0].numpy().astype(np.int64) - by_hand).max() <= 1
    run_dir, metrics, ckpt = train_run(tmp_path / "runs", "--data", folder, "--image_size", "32", "--batch_size", "4",
                                       "--workers", "0", "--in_channels", "1", "--max_steps", "1", *SMALL)
    assert ckpt["model_args"]["in_channels"] == 1 and ckpt["state_dict"]["encoder.0.weight"].shape[1] == 1
    assert math.isfinite(metrics["test_loss"])
    assert Image.open(os.path.join(run_dir, "recon_epoch001.png")).mode == "L"


def test_help_describes_every_option_with_its_default():
    r = run_main("vqvae_imagenet.py", "--help")
    assert r.returncode == 0
    for action in vqvae_run.parser()._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        if action.dest in vqvae_run.model_options() or action.default not in (None, False):
            assert "default" in action.help, action.dest
    text = " ".join(r.stdout.split())
    assert "a fixed 1/20 of a plain folder's images (at least one; validation is then 20% of the rest)" in text
