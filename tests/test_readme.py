"""The README's and docs/'s commands run: the quick start's training, and every ```bash block of
README.md, docs/GUIDE.md, docs/MODELS.md and docs/BENCHMARKS.md, line by line.

Each block runs in its own copy of the repository (the files a command can read: scripts,
models/, data/, benchmarks/), so no block sees another's run names or "latest run". The one
block that reads runs/ (benchmarks/results.py runs) reads the runs of the block before it in the
README (the sweep), so the two run in one copy, one after the other. train.py lines get
`--epochs 1` (unless they set --epochs or only list or help); the commands are otherwise exactly
as written. Lines that name a series of the data directory (y_w, w_y, 4single, ETTh1, ETTh2, in
a run name too) run where the data directory holds it; elsewhere they are left out and the block is reported SKIPPED with those
lines as the reason, after its other lines ran. ```sh blocks are shown, not executed. Two
blocks run at a time (one torch thread each).
"""
import glob
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import ROOT, available
from data.download import FILES
from data import load_series
from data.download import DATA_DIR_ENV

README = open(os.path.join(ROOT, "README.md")).read()
DOCS = {name: open(os.path.join(ROOT, name)).read()
        for name in ("README.md", "docs/GUIDE.md", "docs/MODELS.md", "docs/BENCHMARKS.md")}
FORMALDEHYDE = re.compile(r"(?<![A-Za-z0-9])(y_w|w_y|4single|ETTh1|ETTh2)(?![A-Za-z0-9])")  # in run names too
COPY = ("*.py", "requirements.txt", "models", "data", "benchmarks")  # what README commands read
QUICK_START = README.split("## Quick start", 1)[1].split("```", 2)[1]
QUICK_TRAIN = QUICK_START.splitlines()[1].split("&&")[1].strip()  # python train.py --model ...


def bash_blocks():
    """{id: lines}: one case per ```bash block, named by its file and line; a runs/ reader
    joins the block before it in the same file."""
    cases = {}
    for name, text in DOCS.items():
        prefix, last = os.path.basename(name).removesuffix(".md"), None
        for match in re.finditer(r"```bash\n(.*?)```", text, re.S):
            line = text.count("\n", 0, match.start()) + 1
            lines = list(commands(match.group(1)))
            if any(re.search(r"results\.py runs\b", c) for c in lines) and last:
                cases[f"{last}+{line}"] = cases.pop(last) + lines
                last = f"{last}+{line}"
            else:
                last = f"{prefix}:line{line}"
                cases[last] = lines
    return cases


def commands(block):
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            yield line


# The quick start's training skips its forecast here (a regressive pass over the whole series,
# the longest part of that command): the README's other blocks and tests/test_train.py run
# train.py's forecast; this case checks the run directory the quick start promises.
CASES = {"quick_start": [QUICK_TRAIN + " --epochs 1 --no_forecast"], **bash_blocks()}


def copy_repo(dest):
    os.makedirs(dest)
    for pattern in COPY:
        for path in glob.glob(os.path.join(ROOT, pattern)):
            target = os.path.join(dest, os.path.basename(path))
            if os.path.isdir(path):
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "y+w.csv", "w+y.csv", "4single.csv"))
            else:
                shutil.copy2(path, target)
    return dest


def run_case(lines, repo):
    """Run the lines in order in a fresh copy; (failure message or None, lines left out)."""
    copy_repo(repo)
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two blocks share the two cores
    if env.get(DATA_DIR_ENV):  # a relative data directory must still find the data from the copy
        env[DATA_DIR_ENV] = os.path.abspath(env[DATA_DIR_ENV])
    left_out = []
    for cmd in lines:
        named = [n for n in FILES if re.search(rf"(?<![A-Za-z0-9]){n}(?![A-Za-z0-9])", cmd)]
        if named and not available(named):
            left_out.append(cmd)
            continue
        if cmd.startswith("python train.py") and not re.search(r"--(epochs|list|help)\b", cmd):
            cmd += " --epochs 1"
        r = subprocess.run(cmd, shell=True, cwd=repo, capture_output=True, text=True, timeout=600,
                           executable="/bin/bash", env=env)
        if r.returncode != 0:
            return f"README command failed: {cmd}\n{r.stderr[-2000:]}", left_out
    return None, left_out


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """The selected cases, started two at a time as soon as the first one is asked for."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_readme_commands_run" and hasattr(item, "callspec")]
    root = tmp_path_factory.mktemp("readme")
    with ThreadPoolExecutor(2) as pool:
        yield {case: (pool.submit(run_case, CASES[case], str(root / case)), root / case) for case in selected}


@pytest.mark.parametrize("case", list(CASES))
def test_readme_commands_run(results, case):
    future, repo = results[case]
    failure, left_out = future.result()
    assert not failure, failure
    if case == "quick_start":  # the run directory the README promises
        found = glob.glob(str(repo / "runs" / "*" / "*" / "config.json"))
        assert len(found) == 1, found
        run_dir = os.path.dirname(found[0])
        model = QUICK_TRAIN.split("--model ")[1].split()[0]
        assert re.fullmatch(rf"{model}_.*membrane_ts\d+_lr[\d.]+", os.path.basename(os.path.dirname(run_dir)))
        assert {"config.json", "model.pt", "metrics.json"} <= set(os.listdir(run_dir))
        # by hand: membrane's 3000 values, chrono parts 0.7 and 0.1, statistics of the training part
        config = json.load(open(found[0]))
        assert config["parts"] == {"train_end": 2100, "val_end": 2400, "test_end": 3000, "n_values": 3000}
        v = load_series("membrane").values[:2100]
        assert (config["normalisation"]["mean"], config["normalisation"]["std"]) == \
            pytest.approx((v.mean(), v.std()), rel=1e-9)
    if left_out:
        pytest.skip(f"named data sets not in the data directory (python data/download.py, or set "
                    f"${DATA_DIR_ENV}); left out: {'; '.join(left_out)}")


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    lines = [l for l in QUICK_START.splitlines()[1:] if l.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("pip install -r requirements.txt && python train.py --model ")
    ci_last = open(os.path.join(ROOT, ".ci", "run")).read().strip().splitlines()[-1]
    assert lines[1] == ci_last


def test_every_bash_line_is_in_a_case():
    every = [c for text in DOCS.values() for b in re.findall(r"```bash\n(.*?)```", text, re.S) for c in commands(b)]
    assert every and sorted(every) == sorted(c for case, lines in CASES.items() if case != "quick_start"
                                             for c in lines)


def slug(heading):
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_and_anchor_in_the_docs_exists():
    """A link such as docs/GUIDE.md#image-autoencoders points at a file that exists and a heading in it."""
    pages = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    checked = 0
    for page in pages:
        text = open(os.path.join(ROOT, page)).read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else os.path.join(ROOT, page)
            assert os.path.exists(file), f"{page}: link to {target}: no such file"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", open(file).read(), re.M)
                assert anchor in {slug(h) for h in headings}, f"{page}: link to {target}: no such heading"
            checked += 1
    assert checked > 5


def test_future_csv_has_the_columns_the_readme_names(tmp_path):
    """docs/GUIDE.md: future.csv's columns are the time column's name (or step), forecast, lower_L, upper_L."""
    from conftest import run_main
    sentence = re.search(r"`future\.csv` \(columns:(.*?)\) and `future\.png`", DOCS["docs/GUIDE.md"], re.S).group(1)
    named = re.findall(r"`([^`]+)`", sentence)
    assert named[:4] == ["step", "forecast", "lower_80", "upper_80"], named
    values = np.sin(np.arange(60) / 3)
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text("level\n" + "".join(f"{v}\n" for v in values))  # no time column
    bands = []
    for level, lower, upper in ((80, "lower_80", "upper_80"), (65, "lower_65", "upper_65")):
        out = tmp_path / f"runs{level}"
        assert run_main("train.py", "--model", "naive", "--dataset", csv_path, "--time_steps", "4",
                        "--out_dir", out, "--no_forecast").returncode == 0
        (run_dir,) = glob.glob(str(out / "naive_plain_ts4_*"))
        r = run_main("forecast.py", run_dir, "--future", "3", "--level", str(level))
        assert r.returncode == 0, r.stderr
        path = glob.glob(str(out / "*" / "*" / "forecasts" / "*future*" / "future.csv"))[0]
        header = open(path).readline().strip().split(",")
        assert header == ["step", "forecast", lower, upper]
        rows = np.loadtxt(path, delimiter=",", skiprows=1)
        # by hand: 60 values, no time column: steps 60-62; persistence repeats the last value
        assert rows[:, 0].tolist() == [60, 61, 62]
        np.testing.assert_allclose(rows[:, 1], values[-1], rtol=1e-6)
        assert (rows[:, 2] <= rows[:, 1]).all() and (rows[:, 1] <= rows[:, 3]).all()
        bands.append(rows[:, 3] - rows[:, 2])
    assert (bands[0] >= bands[1]).all() and (bands[0] > bands[1]).any()  # 80% is wider than 65%
