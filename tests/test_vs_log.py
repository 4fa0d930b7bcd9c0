"""benchmarks/vs_log.py without the original's code: its argument errors and its table on made-up numbers.

The side-by-side run itself needs the original repository and its environment; it is run by hand
(the script's docstring), never here.
"""
import subprocess
import sys

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, ROOT + "/benchmarks")
import vs_log  # noqa: E402


@pytest.fixture(scope="module")
def fake_repo(tmp_path_factory):
    """A git repository that is not the original (it lacks the commits vs_log.py needs)."""
    path = tmp_path_factory.mktemp("not_the_log")
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return str(path)


@pytest.mark.parametrize("args, says", [
    (["--orig", "/nonexistent/repo"], "is not a directory"),
    (["--orig", "FAKE"], "is not the simple-sequence-prediction repository"),
    (["--orig", "FAKE", "--models", "lstm,gru"], "unknown model 'gru'; choose from lstm, att"),
    (["--orig", "FAKE", "--repeat", "0"], "--repeat must be at least 1"),
    ([], "the following arguments are required: --orig"),
])
def test_errors_are_one_line(args, says, fake_repo):
    r = run_script("benchmarks/vs_log.py", *[fake_repo if a == "FAKE" else a for a in args])
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("vs_log.py: error:") and says in r.stderr
    assert r.stdout == ""


def test_missing_python_is_one_line(monkeypatch):
    # a repository that passes the commit check is not at hand: check the python before it
    monkeypatch.setattr(vs_log.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    with pytest.raises(SystemExit) as e:
        vs_log.parse_args(["--orig", ROOT, "--orig_python", "/nonexistent/python"])
    assert e.value.code == 2


def test_ratio_and_agreement():
    assert vs_log.ratio([10.0, 30.0, 20.0], [5.0, 4.0, 6.0]) == pytest.approx(4.0)  # medians 20 / 5
    assert vs_log.ratio([], [1.0]) is None
    assert vs_log.agree([0.0260], [0.0267]) is True      # +2.7%
    assert vs_log.agree([0.0260], [0.0269]) is False     # +3.5%
    assert vs_log.agree([0.0260], []) is None
    assert vs_log.spread([3.0, 1.0, 2.0]) == "2.0 (1.0-3.0)"
    assert vs_log.spread([0.01373], 4) == "0.0137"


def test_table_on_fake_numbers():
    results = {"lstm": {"log": {"train": [20.0, 22.0, 21.0], "whole": [30.0, 31.0, 29.0], "val": [0.0137, 0.0140]},
                        "ours": {"train": [7.0], "whole": [10.0], "val": [0.0138]}}}
    rows = vs_log.table_rows(results)
    assert rows == [["lstm", "21.0 (20.0-22.0)", "7.0", "3.00x", "30.0 (29.0-31.0)", "10.0", "3.00x",
                     "0.0139 (0.0137-0.0140)", "0.0138", "yes"]]
    text = vs_log.format_text(rows).splitlines()
    assert text[0].split()[0] == "model" and text[1].startswith("lstm ")
    md = vs_log.format_markdown(rows).splitlines()
    assert md[0].startswith("| model | log training s |") and md[1] == "|" + "---|" * len(vs_log.HEADER)
    assert md[2].count("|") == len(vs_log.HEADER) + 1


def test_training_bar_is_the_epoch_bar_not_the_forecast_bar():
    """The log's stderr as vs_log.py makes tqdm print it: the epoch bar redrawn with carriage
    returns, warnings between, then predict()'s bar over the forecast, whose seconds are not training."""
    m = vs_log.MARK
    stderr = (f"{m} Training 0/50 elapsed_s=0.000000 \r{m} Training 1/50 elapsed_s=0.812000 val_loss=0.0301\r"
              f"{m} Training 50/50 elapsed_s=31.250000 val_loss=0.0137\nsome warning\n"
              f"{m} Predict 0/600 elapsed_s=0.000000 \r{m} Predict 600/600 elapsed_s=0.950000 \n")
    assert vs_log.training_bar(stderr) == (31.25, 0.0137)
    assert vs_log.training_bar(f"{m} Training 3/3 elapsed_s=2.5 \n") == (2.5, None)  # no val in the bar


def test_no_training_bar_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        vs_log.training_bar(f"{vs_log.MARK} Predict 600/600 elapsed_s=0.95\n")
    assert e.value.code == 1
    assert "printed no progress bar" in capsys.readouterr().err.strip()
