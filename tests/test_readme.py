"""The README's commands run: every ```bash block, line by line, in a copy of the repository.

train.py lines get `--epochs 1` (unless they set --epochs or only list or help) so the suite
stays fast; the commands are otherwise exactly as written. Lines that name the formaldehyde
series skip when the data directory lacks them. ```sh blocks are shown, not executed.
The blocks are independent, so two run at a time (one torch thread each), except the blocks
that read runs/ (benchmarks/results.py), which run after the others have written theirs.
"""
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, formaldehyde_available

README = open(os.path.join(ROOT, "README.md")).read()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)
FORMALDEHYDE = re.compile(r"(?<![A-Za-z0-9])(y_w|w_y|4single)(?![A-Za-z0-9])")  # in run names too


def commands(block):
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            yield line


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    quick = README.split("## Quick start", 1)[1].split("```", 2)[1]
    lines = [l for l in quick.splitlines()[1:] if l.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("pip install -r requirements.txt && python train.py --model ")
    ci_last = open(os.path.join(ROOT, ".ci", "run")).read().strip().splitlines()[-1]
    assert lines[1] == ci_last


def run_block(block, repo):
    """Run one block's lines in order; the first failure as a message, or None."""
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two blocks share the two cores
    for cmd in commands(block):
        if FORMALDEHYDE.search(cmd) and not formaldehyde_available():
            continue
        if cmd.startswith("python train.py") and not re.search(r"--(epochs|list|help)\b", cmd):
            cmd += " --epochs 1"
        r = subprocess.run(cmd, shell=True, cwd=repo, capture_output=True, text=True, timeout=600,
                           executable="/bin/bash", env=env)
        if r.returncode != 0:
            return f"README command failed: {cmd}\n{r.stderr[-2000:]}"
    return None


def test_readme_bash_blocks_run(tmp_path):
    assert any(list(commands(b)) for b in BLOCKS), "the README has no bash block"
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns("runs", ".git", "__pycache__", "*.csv", "docs"))
    readers = [b for b in BLOCKS if "benchmarks/results.py runs" in b]
    with ThreadPoolExecutor(2) as pool:
        failures = list(pool.map(lambda b: run_block(b, repo), [b for b in BLOCKS if b not in readers]))
    failures += [run_block(b, repo) for b in readers]
    assert not any(failures), "\n".join(f for f in failures if f)
