"""Messages that used to mislead: each names the bad value and what would work, in one line with
exit status 2, and nothing is written."""
import os

import numpy as np
import pytest

from conftest import run_main
from data import DataError, check_time_steps, normalise


def refused(script, *args, out):
    r = run_main(script, *args, "--out_dir", out)
    assert r.returncode == 2, (r.stdout[-300:], r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"{script}: error: "), r.stderr
    assert not os.path.exists(out), "a refused command wrote something"
    return r.stderr


@pytest.mark.parametrize("rows", [1, 2])
def test_a_series_too_short_for_any_window(tmp_path, rows):
    path = tmp_path / "short.csv"
    path.write_text("t,v\n" + "".join(f"{k},{k * 1.5}\n" for k in range(rows)))
    message = refused("train.py", "--model", "naive", "--dataset", path, "--time_steps", "5", "--split", "random",
                      out=tmp_path / "runs")
    plural = "value" if rows == 1 else "values"
    assert f"the series has {rows} {plural}; time_steps 5 needs at least 7" in message
    assert "even time_steps 1 needs 3" in message and "<= -1" not in message and "<= 0" not in message
    message = refused("train.py", "--model", "naive", "--dataset", path, "--time_steps", "5", out=tmp_path / "runs")
    assert "--split chrono needs at least 3, 1 and 1 (5 values), so no --time_steps and no fractions work" in message
    with pytest.raises(DataError, match="the series has 4 values; time_steps 3 needs at least 5 "
                                        r"\(choose time_steps <= 2\)"):
        check_time_steps(4, 3)                      # long enough for some window: the old advice stands


def test_values_too_small_for_float64_are_not_called_constant(tmp_path):
    values = 1e-300 * (1 + np.arange(40) % 7)        # they vary: from 1e-300 to 7e-300
    assert np.std(values) == 0.0                     # ... but their squared deviations underflow
    with pytest.raises(DataError) as e:
        normalise(values)
    message = str(e.value)
    assert "range from 1e-300 to 7e-300" in message and "multiply it by 1e300" in message
    assert "constant" not in message
    path = tmp_path / "tiny.csv"
    path.write_text("t,v\n" + "".join(f"{k},{float(v)!r}\n" for k, v in enumerate(values)))
    message = refused("train.py", "--model", "naive", "--dataset", path, "--time_steps", "4", out=tmp_path / "runs")
    assert "range from 1e-300 to 7e-300" in message and "constant" not in message
    with pytest.raises(DataError, match="constant at 2.5 "):   # a constant series still says so
        normalise(np.full(10, 2.5))


def test_vqvae_data_that_is_a_file(tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG not really")
    message = refused("vqvae_imagenet.py", "--data", image, "--image_size", "64", out=tmp_path / "runs")
    assert f"--data '{image}': is a file, not a folder" in message and "or 'sample'" in message
    assert "no such folder" not in message


@pytest.mark.parametrize("patch, size, choices", [(32, 0, "32, 64, ..., 256"), (16, -16, "16, 32, ..., 128")])
def test_vqvae_image_size_that_is_not_positive(tmp_path, patch, size, choices):
    message = refused("vqvae_imagenet.py", "--data", "sample", "--patch_size", str(patch), "--image_size", str(size),
                      out=tmp_path / "runs")
    assert f"--image_size {size}: must be positive, a multiple of --patch_size {patch}; choose one of {choices}" \
        in message
    assert "is not a multiple" not in message
