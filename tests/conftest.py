"""Shared test helpers: the repository root on sys.path, script runner, data-set markers."""
import contextlib
import importlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: two workers share the cores, one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the scripts the tests start
    import torch
    torch.set_num_threads(1)

from data.download import FIELD_SERIES, FILES, LOG_SERIES, default_data_dir  # noqa: E402


def available(names):
    return all(os.path.isfile(os.path.join(default_data_dir(), FILES[name][0])) for name in names)


def formaldehyde_available():
    return available(LOG_SERIES)


# Tests on the log's series and on the field's ETTh1/ETTh2 run where the data directory holds them
# (CI points $VQSEQ_DATA_DIR at a copy beside the clone: .ci/run) and skip cleanly elsewhere.
needs_formaldehyde = pytest.mark.skipif(
    not formaldehyde_available(),
    reason="formaldehyde series not in the data directory (python data/download.py, or set $VQSEQ_DATA_DIR)")
needs_ett = pytest.mark.skipif(
    not available(FIELD_SERIES),
    reason="ETTh1/ETTh2 not in the data directory (python data/download.py ETTh1 ETTh2, or set $VQSEQ_DATA_DIR)")


def pytest_collection_modifyitems(items):
    """The README's and docs' commands first: the longest file by far, so that under `-n 2 --dist
    loadfile` one worker starts on it while the other takes the rest, instead of it starting last."""
    items.sort(key=lambda item: item.path.name != "test_readme.py")  # stable: the rest keep their order


def run_script(*args, timeout=600, env=None):
    """Run `python ARGS...` from the repository root; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def run_main(script, *args, threads=None):
    """Run a script's main(argv) in this process, as `python SCRIPT ARGS...` would (SCRIPT such as
    train.py or benchmarks/report.py), with `threads` torch threads if given: a CompletedProcess
    with the exit status and what it printed. It saves the seconds a new process spends importing
    torch; torch's thread count is put back."""
    import torch
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    out, err, argv, before = io.StringIO(), io.StringIO(), sys.argv, torch.get_num_threads()
    sys.argv = [script, *map(str, args)]  # argparse names the program after argv[0]
    torch.set_num_threads(threads or before)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.main(sys.argv[1:])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
        torch.set_num_threads(before)
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def assert_gradient_is_the_slope(model, x, seed=0):
    """model in float64 on x: autograd's gradient of an MSE loss along a random direction d of all
    trainable parameters equals the central difference (L(p + eps d) - L(p - eps d)) / 2 eps."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    model, x = model.double(), x.double()
    target = torch.randn_like(model(x))
    params = [p for p in model.parameters() if p.requires_grad]
    loss = lambda: F.mse_loss(model(x), target)
    directions = [torch.randn_like(p) for p in params]
    slope = sum((g * d).sum() for g, d in zip(torch.autograd.grad(loss(), params), directions))
    eps = 1e-6
    with torch.no_grad():
        ends = []
        for step in (eps, -2 * eps):
            for p, d in zip(params, directions):
                p.add_(step * d)
            ends.append(loss().item())
        for p, d in zip(params, directions):
            p.add_(eps * d)
    assert (ends[0] - ends[1]) / (2 * eps) == pytest.approx(slope.item(), rel=1e-5, abs=1e-9)


def membrane_val_mse_last(run_dir):
    """A chrono membrane run's model.pt scored by numpy, not by train.py: the squared error of the
    value after each window whose next value is a validation value [2100, 2400) of 3000, in the
    training part's statistics (mean and std of the first 2100 values)."""
    import torch
    from data import load_series
    from forecast import load_run
    model, config = load_run(run_dir)
    t = config["time_steps"]
    v = load_series("membrane").values
    z = (v - v[:2100].mean()) / v[:2100].std()
    x = np.stack([z[i - t:i] for i in range(2100, 2400)])[..., None]      # (300, t, 1)
    with torch.no_grad():
        out = model(torch.tensor(x, dtype=torch.float32))
    last = out[:, -1].reshape(-1).double().numpy()                       # aligned or last: the next value
    return np.mean((last - z[2100:2400]) ** 2)


@pytest.fixture
def sine_csv(tmp_path):
    """A small CSV with a time column and a noisy sine, 300 rows."""
    t = np.arange(300) * 0.5
    rng = np.random.default_rng(0)
    v = 10 + 3 * np.sin(t / 4) + 0.1 * rng.standard_normal(300)
    path = tmp_path / "sine.csv"
    path.write_text("time(s),level(m)\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    return path


def write(path, header, rows):
    """A CSV at path: the header line, then the rows joined by commas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def trained(out, *args):
    """train.py ARGS --out_dir OUT in this process; the run directory it names last."""
    r = run_main("train.py", *args, "--out_dir", out)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1].removeprefix("-> ")
