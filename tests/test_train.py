"""train.py and forecast.py end to end: run directories, metrics, errors, names, determinism."""
import csv
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import config
import runs
from conftest import ROOT, needs_formaldehyde, run_main, run_script

RUN_FILES = {"config.json", "model.pt", "last.pt", "losses.csv", "loss.png", "metrics.json", "forecasts"}


def only_run_dir(out_dir):
    dirs = [os.path.join(r, d) for r, ds, fs in os.walk(out_dir) for d in ds
            if "config.json" in os.listdir(os.path.join(r, d))]
    assert len(dirs) == 1, dirs
    return dirs[0]


def train(out_dir, *args):
    r = run_script("train.py", "--out_dir", out_dir, *args)
    assert r.returncode == 0, r.stderr
    return r


def run_name(model, model_args, dataset, time_steps, lr):
    return config.run_name(config.Config(model=model, time_steps=time_steps, lr=lr, split="chrono", norm=config.CHRONO_NORM,
                                         model_args=model_args), dataset)


@pytest.fixture(scope="module")
def goog_run(tmp_path_factory):
    """vqlnpemlp trained for 2 epochs on a real series (goog) under the log's protocol, with its forecast."""
    out = tmp_path_factory.mktemp("runs")
    r = train(out, "--model", "vqlnpemlp", "--dataset", "goog", "--epochs", "2", "--d_model", "16", "--split", "random")
    return only_run_dir(out), r.stdout


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """naive and linear trained under the default (chrono) protocol on a noisy sine CSV."""
    out = tmp_path_factory.mktemp("sine")
    t = np.arange(400)
    path = out / "sine.csv"
    rng = np.random.default_rng(1)
    v = 20 + 5 * np.sin(2 * np.pi * t / 25) + 0.3 * rng.standard_normal(400)
    path.write_text("t,v\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    r = train(out / "runs", "--model", "linear", "--dataset", path, "--epochs", "60", "--time_steps", "50",
              "--lr", "0.01")
    return only_run_dir(out / "runs"), r.stdout, path, v


def test_run_directory_has_every_file(goog_run):
    run_dir, stdout = goog_run
    assert RUN_FILES <= set(os.listdir(run_dir))
    assert os.path.basename(os.path.dirname(run_dir)) == "vqlnpemlp_vs512_dm16_goog_ts96_lr0.007_random"
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["model_args"] == {"vocab_size": 512, "d_model": 16, "block_size": 96}
    assert config["split"] == "random" and config["seed"] == 0 and not config["interrupted"]
    assert set(config["normalisation"]) == {"mean", "std"} and config["versions"]["torch"]
    # the log's protocol by hand: statistics of the whole series, int(0.8 n) of its 1047 - 96 windows train
    from data import load_series
    v = load_series("goog").values
    assert (config["normalisation"]["mean"], config["normalisation"]["std"]) == pytest.approx((v.mean(), v.std()),
                                                                                              rel=1e-12)
    assert config["n_windows"] == {"train": int(0.8 * 951), "val": 951 - int(0.8 * 951)}
    rows = list(csv.DictReader(open(os.path.join(run_dir, "losses.csv"))))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["val_loss"] == pytest.approx(float(rows[-1]["val_loss"]))
    assert metrics["best_epoch"] == 2  # the log's protocol keeps the last epoch
    assert metrics["trainable_parameters"] == 1 * 16 + 16 + 2 * 16 + 16 + 1
    assert metrics["fixed_parameters"] == 512 * 16 + 96 * 16
    assert metrics["codebook_usage"][0]["vocab_size"] == 512
    assert "mse_regressive" in stdout and run_dir in stdout


def test_forecast_reproduces_metrics_from_the_run_directory(goog_run, tmp_path):
    run_dir, _ = goog_run
    before = json.load(open(os.path.join(run_dir, "forecasts", "goog_log", "metrics.json")))
    copy = tmp_path / "copied_run"  # nothing but the run directory itself
    copy.mkdir()
    for f in ("config.json", "model.pt"):
        (copy / f).write_bytes(open(os.path.join(run_dir, f), "rb").read())
    r = run_main("forecast.py", copy)
    assert r.returncode == 0, r.stderr
    after = json.load(open(copy / "forecasts" / "goog_log" / "metrics.json"))
    for k in ("mse_batch", "mse_regressive", "mae_batch", "mae_regressive", "n_predicted"):
        assert after[k] == pytest.approx(before[k], rel=1e-6), k
    # predict_rate 1 generates the whole series after the first window
    assert before["n_predicted"] == 1047 - 96 and before["start_index"] == 96


def test_training_on_a_csv_backtests_it_against_naive(sine_run):
    run_dir, stdout, _, _ = sine_run
    assert "test MASE h1" in stdout and "naive" in stdout and "interval coverage" in stdout
    folders = os.listdir(os.path.join(run_dir, "forecasts"))
    backtest = [f for f in folders if "_backtest_h24_" in f]
    assert backtest and folders == backtest  # the log's evaluation only where asked (forecast.py --positions)
    for f in ("metrics.json", "errors_by_step.csv", "error_by_horizon.png"):
        assert os.path.isfile(os.path.join(run_dir, "forecasts", backtest[0], f))
    # by hand: 400 values, test part [320, 400), 24 steps ahead: origins 320 ... 376, stride 1
    _, _, _, v = sine_run
    m = json.load(open(os.path.join(run_dir, "forecasts", backtest[0], "metrics.json")))
    assert (m["first_origin"], m["last_origin"], m["stride"]) == (320, 376, 1)
    naive_mae = np.mean([abs(v[o + h] - v[o - 1]) for o in range(320, 377) for h in range(24)])
    assert m["mase_scale"] == pytest.approx(np.mean(np.abs(np.diff(v[:280]))), rel=1e-9)
    assert m["metrics"]["naive"]["mae"] == pytest.approx(naive_mae, rel=1e-9)
    assert m["metrics"]["model"]["mase"] < 0.5 * m["metrics"]["naive"]["mase"]  # a sine: linear beats persistence


def test_forecast_other_dataset_and_rate_write_their_own_folders(goog_run, sine_csv):
    run_dir, _ = goog_run
    before = {f: open(os.path.join(run_dir, "forecasts", "goog_log", f), "rb").read()
              for f in os.listdir(os.path.join(run_dir, "forecasts", "goog_log"))}
    r = run_main("forecast.py", run_dir, "--dataset", sine_csv, "--predict_rate", "0.25")
    assert r.returncode == 0, r.stderr
    m = json.load(open(os.path.join(run_dir, "forecasts", "sine_log_rate0.25", "metrics.json")))
    assert m["n_predicted"] == int(0.25 * (300 - 96)) and m["start_index"] == 300 - int(0.25 * (300 - 96))
    v = np.loadtxt(sine_csv, delimiter=",", skiprows=1)[:, 1]  # the log's protocol: the other series' own statistics
    assert (m["normalisation"]["mean"], m["normalisation"]["std"]) == pytest.approx((v.mean(), v.std()), rel=1e-12)
    assert os.path.isfile(os.path.join(run_dir, "forecasts", "sine_log_rate0.25", "predict_regressive.png"))
    after = {f: open(os.path.join(run_dir, "forecasts", "goog_log", f), "rb").read() for f in before}
    assert after == before  # the training-time evaluation is untouched


def test_same_seed_same_losses_and_other_seed_differs(tmp_path):
    losses = []
    for i, seed in enumerate((3, 3, 4)):  # the first in a process of its own, the others here: no state carries over
        out = tmp_path / str(i)
        args = ("--model", "vqlnmlp", "--dataset", "goog", "--epochs", "2", "--seed", seed, "--d_model", "8",
                "--vocab_size", "32", "--no_forecast")
        assert (train(out, *args) if i == 0 else run_main("train.py", "--out_dir", out, *args)).returncode == 0
        losses.append(open(os.path.join(only_run_dir(out), "losses.csv")).read().splitlines())
    strip = lambda rows: [",".join(r.split(",")[:4]) for r in rows]  # drop the seconds column
    assert strip(losses[0]) == strip(losses[1])
    assert strip(losses[0]) != strip(losses[2])


@pytest.mark.parametrize("args, message", [
    (["--model", "vqnope"], "unknown model 'vqnope'; choose one of"),
    (["--model", "lstm", "--vocab_size", "8"], "model lstm does not take --vocab_size; it takes --hidden_size, --num_layers"),
    (["--model", "lstm", "--dataset", "nope"], "unknown data set 'nope'; choose one of membrane, goog, y_w, w_y, 4single"),
    (["--model", "lstm", "--dataset", "missing.csv"], "missing.csv"),
    (["--model", "lstm", "--dataset", "goog", "--column", "price"], "column 'price' not found in goog; columns: open"),
    (["--model", "lstm", "--split", "shuffle"], "invalid choice: 'shuffle' (choose from 'chrono', 'random')"),
    (["--model", "lstm", "--device", "tpu"], "unknown device 'tpu'; choose one of auto, cpu, cuda, mps"),
    (["--model", "lstm", "--time_steps", "0"], "--time_steps must be at least 1, got 0"),
    (["--model", "lstm", "--dataset", "goog", "--time_steps", "1046", "--split", "random"],
     "the series has 1047 values; time_steps 1046 needs at least 1048"),
    (["--model", "lstm", "--dataset", "goog", "--time_steps", "800"],   # 1047 values, training part round(0.7 n) = 733
     "the training part has 733 values; time_steps 800 needs at least 802 (choose time_steps <= 731)"),
    (["--model", "vqlnmlp", "--d_model", "big"], "--d_model 'big': expected a value like 64"),
    (["--model", "vqlnmlp", "--vocab_size", "0"], "--vocab_size must be at least 1, got 0"),
    (["--model", "vqlnpemlp", "--block_size", "10"], "model vqlnpemlp with --block_size 10"),
    (["--model", "lstm", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = run_main("train.py", "--out_dir", tmp_path, *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not os.listdir(tmp_path)  # nothing written


def test_bad_csv_values_exit_2(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t,v\n" + "".join(f"{i},{i}\n" for i in range(200)) + "200,oops\n")
    r = run_main("train.py", "--model", "naive", "--dataset", path, "--out_dir", tmp_path / "runs")
    assert r.returncode == 2 and "row 202 ('oops')" in r.stderr and r.stderr.count("\n") == 1


def test_forecast_errors_exit_2(goog_run, sine_run, tmp_path):
    run_dir, _ = goog_run
    sine_dir = sine_run[0]
    for args, message in [((tmp_path,), "holds no complete run"),
                          ((run_dir, "--predict_rate", "1.5"), "predict_rate must be in (0, 1], got 1.5"),
                          ((run_dir, "--positions", "random"), "unknown positions 'random'; choose one of sliding, absolute"),
                          ((run_dir, "--positions", "absolute"), "exceed the positional table's block_size 96"),
                          ((sine_dir, "--horizon", "0"), "--horizon must be at least 1, got 0"),
                          ((sine_dir, "--horizon", "500"), "--horizon 500 is longer than the test part (80 values)"),
                          ((sine_dir, "--level", "100"), "--level 100.0: expected a percentage"),
                          ((sine_dir, "--future", "0"), "--future must be at least 1, got 0"),
                          ((sine_dir, "--predict_rate", "0.5"), "--predict_rate belongs to the log's protocol")]:
        r = run_main("forecast.py", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, (args, r.stderr)


def test_run_names_follow_the_log():
    assert run_name("vqlnpemlp", {"vocab_size": 512, "d_model": 32, "block_size": 96}, "y_w", 96, 0.007) \
        == "vqlnpemlp_vs512_dm32_y_w_ts96_lr0.007"
    assert run_name("mhvqlnmlp_rope", {"vocab_size": 512, "d_model": 64, "n_heads": 8}, "y_w", 96, 0.007) \
        == "mhvqlnmlp_rope_vs512_dm64_nh8_y_w_ts96_lr0.007"
    assert run_name("lstm", {"hidden_size": 64, "num_layers": 2}, "y_w", 112, 0.0005) == "lstm_y_w_ts112_lr0.0005"
    # an option outside the log's names appears only where it differs from the model's default
    assert run_name("lstm", {"hidden_size": 128, "num_layers": 2}, "y_w", 112, 0.0005) \
        == "lstm_hidden_size128_y_w_ts112_lr0.0005"


def test_attention_run_names_tell_every_option_apart():
    """Two att_mh runs that differ in any option get different names (the log named none)."""
    import models
    defaults = models.options(models.get("att_mh"))
    assert run_name("att_mh", defaults, "y_w", 96, 0.001) == "att_mh_dm64_nh4_kv2_rope_y_w_ts96_lr0.001"
    changes = [{"kv_heads": 4}, {"pe_on": "qk"}, {"in_ln": True}, {"q_ln": True}, {"k_ln": True},
               {"causal": False}] + [{"pe_type": t} for t in ("none", "randn", "sinpe")]
    names = {run_name("att_mh", {**defaults, **c}, "y_w", 96, 0.001) for c in changes + [{}]}
    assert len(names) == len(changes) + 1, names
    assert run_name("att", {**models.options(models.get("att")), "pe_type": "none", "causal": False}, "y_w", 96,
                    0.001) == "att_dm64_nope_bidir_y_w_ts96_lr0.001"


def test_run_directories_are_complete_or_absent_and_never_reused(tmp_path):
    a, b = runs.new_run_dir(tmp_path, "x"), runs.new_run_dir(tmp_path, "x")
    assert a != b and os.path.basename(a).startswith(".") and a.endswith(".partial")
    for p in (a, b):
        open(os.path.join(p, "config.json"), "w").write("{}")
    fa, fb = runs.finish_run_dir(a), runs.finish_run_dir(b)
    assert os.path.basename(fb) == os.path.basename(fa) + "-2" or fa[:-2] == fb[:-2]  # same second: -2
    c = runs.new_run_dir(tmp_path, "x")
    runs.discard_run_dir(c)
    assert sorted(os.listdir(tmp_path / "x")) == sorted({os.path.basename(fa), os.path.basename(fb)})


def test_a_failed_start_leaves_no_run_directory_and_latest_skips_partials(tmp_path):
    r = run_main("train.py", "--model", "vqlnpemlp", "--block_size", "10", "--out_dir", tmp_path, "--dataset", "goog")
    assert r.returncode == 2 and not os.listdir(tmp_path)
    good = tmp_path / "m" / "2020-01-01-00-00-00"
    good.mkdir(parents=True)
    (good / "config.json").write_text("{}")
    (good / "model.pt").write_bytes(b"x")
    (tmp_path / "m" / ".2030-01-01-00-00-00-abcd.partial").mkdir()
    (tmp_path / "m" / ".2030-01-01-00-00-00-abcd.partial" / "config.json").write_text("{}")
    assert runs.latest_run(str(tmp_path / "m")) == str(good)


def test_list_shows_every_model_and_method_two_arithmetic():
    r = run_main("train.py", "--list")
    assert r.returncode == 0
    import models
    for name in models.names():
        assert f"\n{name} " in r.stdout
    assert "1024" in r.stdout and "6.25%" in r.stdout and "4.69%" in r.stdout


@needs_formaldehyde
def test_lstm_on_y_w_uses_the_logs_layout(tmp_path):
    train(tmp_path, "--model", "lstm", "--dataset", "y_w", "--epochs", "1", "--no_forecast", "--split", "random")
    run_dir = only_run_dir(tmp_path)
    assert os.path.basename(os.path.dirname(run_dir)) == "lstm_y_w_ts112_lr0.0005_random"  # the log's name, its split
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["target"] == "last" and config["batch_size"] == 64
    # the log's code: int(0.8 n) of the 733 - 112 windows train
    assert config["n_windows"] == {"train": int(0.8 * 621), "val": 621 - int(0.8 * 621)}


FAULTS_PER_REUSE = """
import ctypes, resource, sys
sys.path.insert(0, {root!r})
import runs
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
SIZE = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB): mmapped under its defaults
def faults():
    # allocate, touch and free a block, then count the page faults of doing it again
    for i in range(2):
        if i == 1:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
default = faults()
runs.keep_freed_memory()
print(default, faults())
"""


def on_glibc():
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or not this name: not glibc
        return False


@pytest.mark.skipif(not on_glibc(), reason="keep_freed_memory acts on glibc's allocator only")
def test_keep_freed_memory_reuses_a_freed_block_without_page_faults():
    """A 64 MiB block freed and allocated again: under glibc's defaults it is unmapped and mapped
    afresh, so touching it again faults every one of its 16,384 pages; after
    runs.keep_freed_memory() it stays in the heap and the second touch faults none. Both sides
    are deterministic (the old test timed an lstm step, whose default side glibc's dynamic
    threshold sometimes hid, and a no-op passed it one run in eight); without either of the two
    mallopt settings the block is unmapped again (mmapped, or trimmed from the heap's top)."""
    r = subprocess.run([sys.executable, "-c", FAULTS_PER_REUSE.format(root=ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    default, kept = map(int, r.stdout.split())
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert default >= pages and kept < pages // 100, (default, kept)


FAULTS_INSIDE = FAULTS_PER_REUSE.replace("print(default, faults())", """kept = faults()
with runs.big_blocks_returned():
    inside = faults()
small = SIZE // 4  # a training step's block, below the context's 32 MiB: kept inside it too
def faults_of(size):
    global SIZE
    SIZE, old = size, SIZE
    try:
        return faults()
    finally:
        SIZE = old
with runs.big_blocks_returned():
    inside_small = faults_of(small)
print(default, kept, inside, faults(), inside_small)""")


@pytest.mark.skipif(not on_glibc(), reason="keep_freed_memory acts on glibc's allocator only")
def test_evaluation_gives_its_big_blocks_back_and_training_keeps_them_again():
    """issue 37: inside runs.big_blocks_returned() (evaluation, codebook usage) a 64 MiB block is
    unmapped when freed, so allocating it again faults all its pages, as under glibc's defaults;
    after it the same block is kept again (no faults), and a 16 MiB one is kept even inside."""
    r = subprocess.run([sys.executable, "-c", FAULTS_INSIDE.format(root=ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    default, kept, inside, after, inside_small = map(int, r.stdout.split())
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert default >= pages and kept < pages // 100, (default, kept)
    assert inside >= pages, inside                                   # given back, faulted afresh
    assert after < pages // 100 and inside_small < pages // 400, (after, inside_small)


@pytest.mark.parametrize("name", ["lstm", "vqlnpemlp", "att_mh", "mhcvqlnmlp"])
def test_adam_is_torchs_fused_adam_bit_for_bit(name):
    import torch

    import models
    from models.kernels import Adam
    torch.manual_seed(0)
    a = models.build(name)
    torch.manual_seed(0)
    b = models.build(name)
    pa = [p for p in a.parameters() if p.requires_grad]
    pb = [p for p in b.parameters() if p.requires_grad]
    reference, ours = torch.optim.Adam(pa, lr=0.01, fused=True), Adam(pb, 0.01)
    x = torch.randn(8, 96, 1)
    for _ in range(4):
        for model, optimizer in ((a, reference), (b, ours)):
            optimizer.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            optimizer.step()
    assert all(torch.equal(u, v) for u, v in zip(pa, pb))
    assert any(not torch.equal(u, v) for u, v in zip(pb, [p for p in models.build(name).parameters() if p.requires_grad]))
    state = reference.state_dict()["state"]
    assert all(torch.equal(state[i]["exp_avg_sq"], ours.exp_avg_sq[i]) for i in range(len(pb)))


@pytest.mark.parametrize("first, then", [("ours", "torch"), ("torch", "ours")])
def test_adam_state_moves_between_ours_and_torchs(first, then):
    """A run resumes under either optimizer (train.py uses torch.optim.Adam on mps): 3 steps under
    one, its state_dict loaded into the other, 3 more steps, gives the weights of 6 steps under
    torch's fused Adam alone: bit for bit into ours (the same fused kernel), to float32 rounding
    into torch's (our state names no implementation, so torch picks its default for the device);
    without the state the 3 more steps land elsewhere. A state saved before 2026-12-04 ({steps,
    exp_avg, exp_avg_sq} lists) loads too."""
    import torch

    import models
    from models.kernels import Adam

    def make(kind, params):
        return Adam(params, 0.01) if kind == "ours" else torch.optim.Adam(params, lr=0.01, fused=True)
    torch.manual_seed(0)
    a, b = models.build("att_mh", d_model=16), models.build("att_mh", d_model=16)
    b.load_state_dict(a.state_dict())
    pa, pb = list(a.parameters()), list(b.parameters())
    x = [torch.randn(4, 24, 1) for _ in range(6)]

    def steps(model, optimizer, xs):
        for xi in xs:
            optimizer.zero_grad(set_to_none=True)
            model(xi).square().mean().backward()
            optimizer.step()
    reference = make("torch", pa)
    steps(a, reference, x)
    one = make(first, pb)
    steps(b, one, x[:3])
    halfway = [p.detach().clone() for p in pb]
    other = make(then, pb)
    other.load_state_dict(one.state_dict())
    steps(b, other, x[3:])
    if then == "ours":
        assert all(torch.equal(u, v) for u, v in zip(pa, pb))
    else:
        assert all(torch.allclose(u, v, rtol=1e-5, atol=1e-7) for u, v in zip(pa, pb))
    fresh = models.build("att_mh", d_model=16)
    fresh.load_state_dict(dict(zip(dict(b.named_parameters()), halfway)), strict=False)
    steps(fresh, make(then, list(fresh.parameters())), x[3:])
    assert not all(torch.allclose(u, v, rtol=1e-5, atol=1e-7) for u, v in zip(pa, fresh.parameters()))
    old = Adam(pb, 0.01)
    old.load_state_dict({"lr": 0.01, "steps": [torch.tensor(3.0)] * len(pb),
                         "exp_avg": [torch.ones_like(p) for p in pb], "exp_avg_sq": [torch.ones_like(p) for p in pb]})
    assert old.state_dict()["state"][0]["step"].item() == 3 and torch.equal(old.exp_avg[0], torch.ones_like(pb[0]))


def test_a_training_process_never_imports_dynamo(tmp_path):
    """torch.optim's optimizers import torch's compiler front end, its module _dynamo, when built
    (a second or more per process): train.py's Adam (models/kernels.py) and the rest of a run must not."""
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import train; "
            f"train.main(['--model', 'lstm', '--dataset', 'goog', '--epochs', '1', '--out_dir', {str(tmp_path)!r}]); "
            f"print(any(name.split('.')[:2] == ['torch', '_dynamo'] for name in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_evaluation_and_codebook_usage_run_with_big_blocks_returned(monkeypatch, tmp_path):
    """issue 37: train.py's evaluation and codebook usage read long series in chunks whose scores
    are larger than any training step's; both run inside runs.big_blocks_returned (blocks over
    32 MiB unmapped when freed), training outside it (kept up to 256 MiB). The allocator settings
    are recorded in the order train.py makes them, and evaluate's losses are a hand computation."""
    import torch

    import train
    settings = []
    monkeypatch.setattr(runs, "_mallopt", lambda limit: settings.append(limit) or True)
    monkeypatch.setattr(runs, "_kept", None)
    runs.keep_freed_memory()
    assert settings == [256 << 20] and runs._kept == 256 << 20
    x = torch.arange(12.0).view(4, 3, 1)
    y = x + 1                                          # aligned: the next value at every position

    class Last(torch.nn.Module):                       # out = x: loss is mean((y - x)^2) = 1
        def forward(self, xb):
            return xb
    loss, last = train.evaluate(Last(), x, y, values=6)  # chunks of two windows
    assert (loss, last) == (1.0, 1.0) and settings == [256 << 20, 32 << 20, 256 << 20]
    settings.clear()
    done = run_main("train.py", "--model", "vqlnmlp", "--epochs", "1", "--no_forecast", "--out_dir", tmp_path)
    assert done.returncode == 0, done.stderr
    # Training's context keeps freed memory; each epoch's evaluation and the usage at the end give it back
    assert settings[0] == 256 << 20 and settings[-2:] == [32 << 20, 256 << 20], settings
    assert settings.count(32 << 20) == 2                # one epoch's evaluation, then codebook usage
