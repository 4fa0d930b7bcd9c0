"""Shared test helpers: the repository root on sys.path, script runner, data-set markers."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from data.download import FILES, default_data_dir  # noqa: E402


def formaldehyde_available():
    return all(os.path.isfile(os.path.join(default_data_dir(), f)) for f, _ in FILES.values())


# Tests on the log's series run where the data directory holds them (CI points $VQSEQ_DATA_DIR
# at ../shared/data) and skip cleanly elsewhere.
needs_formaldehyde = pytest.mark.skipif(
    not formaldehyde_available(),
    reason="formaldehyde series not in the data directory (python data/download.py, or set $VQSEQ_DATA_DIR)")


def run_script(*args, timeout=600, env=None):
    """Run `python ARGS...` from the repository root; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.fixture
def sine_csv(tmp_path):
    """A small CSV with a time column and a noisy sine, 300 rows."""
    t = np.arange(300) * 0.5
    rng = np.random.default_rng(0)
    v = 10 + 3 * np.sin(t / 4) + 0.1 * rng.standard_normal(300)
    path = tmp_path / "sine.csv"
    path.write_text("time(s),level(m)\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    return path
