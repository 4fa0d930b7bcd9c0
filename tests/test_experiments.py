"""Sweeps (grid expansion, skipping, --jobs, --dry_run), result tables, the parameter ranking,
the cross-dataset table, the --quick reproduction report, honest.py's ranks and reuse, and the product's independence of
benchmarks/."""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, needs_formaldehyde, run_main, run_script

import config
import sweep
from benchmarks import results
from data import load_series


# -- grid expansion and skipping ---------------------------------------------------------------
def test_expand_grid_is_the_product_in_order_and_keeps_flags():
    grid = sweep.expand_grid(["--model", "vqlnmlp,lstm", "--lr=0.1,0.2", "--no_forecast", "--jobs", "2",
                              "--levels", "32-128-512,64-256"])
    assert len(grid) == 8
    assert grid[0] == ["--model", "vqlnmlp", "--lr", "0.1", "--no_forecast", "--levels", "32-128-512"]
    assert grid[1][-1] == "64-256"                       # the last option varies fastest
    assert grid[-1] == ["--model", "lstm", "--lr", "0.2", "--no_forecast", "--levels", "64-256"]
    assert all("--jobs" not in g for g in grid)
    assert sweep.expand_grid(["--model", "naive"]) == [["--model", "naive"]]


def test_is_sweep_only_with_a_comma_or_a_sweep_option():
    assert not config.is_sweep(["--model", "vqlnmlp", "--lr", "0.01"])
    assert config.is_sweep(["--model", "vqlnmlp", "--lr", "0.01,0.02"])
    assert config.is_sweep(["--model", "vqlnmlp", "--dry_run"])
    assert not config.is_sweep(["--list"])


def test_skip_reason_names_what_the_model_cannot_take():
    assert sweep.skip_reason(["--model", "vqlnmlp", "--vocab_size", "32"]) is None
    assert "does not take --vocab_size" in sweep.skip_reason(["--model", "lstm", "--vocab_size", "32"])
    reason = sweep.skip_reason(["--model", "mhvqlnmlp", "--d_model", "8", "--n_heads", "3"])
    assert "divisible" in reason and "\n" not in reason


def test_dry_run_prints_one_command_per_run_and_skips_with_a_reason():
    r = run_main("train.py", "--model", "vqlnmlp,lstm", "--vocab_size", "32,64", "--epochs", "1", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "python train.py --model vqlnmlp --vocab_size 32 --epochs 1",
        "python train.py --model vqlnmlp --vocab_size 64 --epochs 1"]
    skips = r.stderr.strip().splitlines()
    assert len(skips) == 2 and all("model lstm does not take --vocab_size" in s for s in skips)


@pytest.mark.parametrize("args, words", [
    (["--model", "vqlnmlp,nope", "--dry_run"], ["nope", "choose one of"]),
    (["--model", "vqlnmlp", "--lr", "0.1,abc", "--dry_run"], ["abc"]),
    (["--model", "lstm", "--vocab_size", "1,2", "--dry_run"], ["no combination"]),
    (["--model", "naive,linear", "--jobs", "0"], ["--jobs", "'0'"]),
])
@pytest.mark.parametrize("script", ["sweep.py", "train.py"])
def test_sweep_user_errors_are_one_line_exit_2(script, args, words):
    r = run_main(script, *args)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    # train.py hands a grid to sweep.py, whose errors name sweep.py (train.py would be kinder)
    assert re.match(r"(sweep|train)\.py: error: ", last) and all(w in last for w in words), r.stderr
    if script == "sweep.py":
        assert last.startswith("sweep.py: error: ")


def test_sweep_end_to_end_with_two_jobs_lists_failures_and_ranks(tmp_path, sine_csv):
    out = tmp_path / "runs"
    # time_steps 400 > the 300 values of the series: those two runs fail, the other two go on
    r = run_script("train.py", "--model", "naive,linear", "--time_steps", "8,400", "--dataset", sine_csv,
                   "--epochs", "1", "--no_forecast", "--out_dir", out, "--jobs", "2")
    assert r.returncode == 1, r.stderr
    assert "sweep: 4 runs, 2 at a time" in r.stdout
    failed = r.stdout.split("runs failed:")[1].strip().splitlines()
    assert len(failed) == 2 and all("--time_steps 400" in f and "time_steps 400" in f for f in failed)
    header = next(l for l in r.stdout.splitlines() if l.startswith("| rank |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    table = [dict(zip(columns, (c.strip() for c in l.strip("|").split("|"))))
             for l in r.stdout.splitlines() if re.match(r"\| \d+ \|", l)]
    assert [row["rank"] for row in table] == ["1", "2"]
    records = results.load_runs(out)
    assert sorted(r_["options"]["model"] for r_ in records) == ["linear", "naive"]
    assert all(r_["options"]["split"] == "chrono" for r_ in records)   # train.py's default
    best = min(records, key=lambda r_: r_["val_mse_last"])        # chrono ranks by val_mse_last
    assert table[0]["run"] == best["run_name"] and table[0]["dir"] == best["dir"]     # best first
    assert table[0]["validation"] == f"val_mse_last {best['val_mse_last']:.6g}"


# -- result tables ------------------------------------------------------------------------------
def fake_run(root, model, val_loss, stamp, dataset="y_w", seed=0, mse_regressive=None, split="random",
             **model_args):
    """A run directory as train.py (and forecast.py) would leave it, with chosen numbers. The
    directory's name is not the run name a reader would parse: the settings are in config.json."""
    lr = model_args.pop("lr", 0.007)
    name = "_".join([model] + [f"{k}{v}" for k, v in model_args.items()] + [dataset, f"lr{lr}"])
    run_dir = root / name / stamp
    run_dir.mkdir(parents=True)
    config = {"run_name": name, "model": model, "model_args": model_args, "dataset": dataset, "split": split,
              "seed": seed, "time_steps": 96, "batch_size": 32, "lr": lr, "epochs": 50}
    (run_dir / "config.json").write_text(json.dumps(config))
    metrics = {"train_loss": val_loss / 2, "val_loss": val_loss, "val_mse_last": val_loss * 3,
               "trainable_parameters": 10, "fixed_parameters": 5, "seconds": 1.5}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if mse_regressive is not None:  # forecast.py's folder: {dataset}_log (random) or {dataset}_test (chrono)
        folder = run_dir / "forecasts" / f"{dataset}_{'test' if split == 'chrono' else 'log'}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"mse_batch": 1.0, "mse_regressive": mse_regressive}))
    return run_dir


@pytest.fixture
def grid_runs(tmp_path):
    """lr x vocab_size with val losses 1 < 2 < 3 < 4, so the ranks are known; and an lstm (no vocab_size)."""
    root = tmp_path / "runs"
    for i, (lr, vs) in enumerate([(0.1, 32), (0.1, 64), (0.2, 32), (0.2, 64)]):
        fake_run(root, "vqlnmlp", 1.0 + i, f"t{i}", vocab_size=vs, lr=lr, mse_regressive=40.0 - i)
    fake_run(root, "lstm", 5.0, "t9", lr=0.1)
    (root / "unfinished" / "t0").mkdir(parents=True)  # no metrics.json: still running
    (root / "unfinished" / "t0" / "config.json").write_text("{}")
    image_run = root / "vqvae" / "vqvae" / "t0"  # vqvae_imagenet.py's: no series, no forecast
    image_run.mkdir(parents=True)
    (image_run / "config.json").write_text(json.dumps({"model": "vqvae", "data": "sample", "lr": 0.001}))
    (image_run / "metrics.json").write_text(json.dumps({"test_loss": 0.01}))
    return root


def test_ranks_share_ties():
    assert results.ranks([3.0, 1.0, 1.0, 2.0]) == [4.0, 1.5, 1.5, 3.0]


def test_parameter_ranking_on_runs_with_known_ranks(grid_runs):
    runs = results.load_runs(grid_runs)
    assert len(runs) == 5
    singles, pairs = results.option_ranks(runs, "val_loss")
    # ranks 1..5 by val loss; lr 0.1: vqlnmlp ranks 1, 2 and lstm 5
    assert singles["lr"] == {"0.1": ((1 + 2 + 5) / 3, 3), "0.2": ((3 + 4) / 2, 2)}
    assert singles["vocab_size"] == {"32": ((1 + 3) / 2, 2), "64": ((2 + 4) / 2, 2)}  # lstm has none
    assert singles["model"] == {"lstm": (5.0, 1), "vqlnmlp": (2.5, 4)}
    assert pairs[("lr", "vocab_size")][("0.2", "64")] == (4.0, 1)
    # by regressive MSE the order of the vqlnmlp runs reverses (lstm has no forecast: left out)
    singles, _ = results.option_ranks(runs, "mse_regressive")
    assert singles["vocab_size"] == {"32": ((4 + 2) / 2, 2), "64": ((3 + 1) / 2, 2)}
    table = results.rank_table(runs, "val_loss")
    assert table.index("| model ") < table.index("| vocab_size ")  # model's spread 2.5 > vocab's 1.0
    row = next(l for l in table.splitlines() if l.startswith("| lr=0.1 "))
    assert [c.strip() for c in row.strip("|").split("|")] == ["lr=0.1", "3", "2.67"]


def test_log_table_format_sort_top_and_filters(grid_runs):
    runs = results.load_runs(grid_runs)
    table = results.log_table(runs, "val_loss", top=2).splitlines()
    assert re.match(r"\| File +\| +Loss \|", table[0]) and set(table[1]) <= set("|-: ")
    assert len(table) == 4 and table[2].startswith("| vqlnmlp_vocab_size32_y_w_lr0.1/t0 ") and table[2].endswith(" 1 |")
    by_mse = results.log_table(runs, "mse_regressive").splitlines()
    assert "mse_regressive" in by_mse[0] and "/t3 " in by_mse[2] and len(by_mse) == 6  # lstm has no forecast
    assert len(results.select(runs, "lstm")) == 1
    assert len(results.select(runs, "vocab_size=64")) == 2
    assert len(results.select(runs, "lr=0.2,lstm")) == 3
    assert len(results.select(runs, "*vocab_size32*")) == 2


def test_filter_by_model_name_is_exact(tmp_path):
    fake_run(tmp_path, "vqlnmlp", 1.0, "a")
    fake_run(tmp_path, "mhvqlnmlp", 2.0, "b")
    runs = results.load_runs(tmp_path)
    assert [r["options"]["model"] for r in results.select(runs, "vqlnmlp")] == ["vqlnmlp"]


def test_records_read_settings_from_config_and_forecasts_from_their_folder(tmp_path):
    run_dir = fake_run(tmp_path, "vqlnmlp", 1.0, "t0", split="chrono", mse_regressive=7.0, vocab_size=64)
    os.rename(run_dir.parent, tmp_path / "renamed")  # a directory name says nothing about the run
    (tmp_path / "renamed" / ".2025-01-01-00-00-00-abcd.partial").mkdir()  # a run still being written
    (tmp_path / "renamed" / ".2025-01-01-00-00-00-abcd.partial" / "config.json").write_text("{}")
    (record,) = results.load_runs(tmp_path)
    assert record["options"]["model"] == "vqlnmlp" and record["options"]["vocab_size"] == "64"
    assert record["options"]["split"] == "chrono" and record["options"]["dataset"] == "y_w"
    assert record["file"] == "vqlnmlp_vocab_size64_y_w_lr0.007/t0" and record["mse_regressive"] == 7.0
    assert record["forecast_dir"].endswith(os.path.join("forecasts", "y_w_test"))
    assert results.load_record(tmp_path / "renamed" / "nope") is None
    assert not hasattr(results, "load_run")  # one load_run: forecast.py's


def test_wide_and_pivot_tables(tmp_path):
    for seed, (a, b) in enumerate([(1.0, 3.0), (2.0, 5.0)]):
        fake_run(tmp_path, "vqlnmlp", a, f"s{seed}", seed=seed)
        fake_run(tmp_path, "vqlnmlp_rope", b, f"s{seed}", seed=seed)
        fake_run(tmp_path, "mhvqlnpemlp", 0.5, f"s{seed}", seed=seed)
    runs = results.load_runs(tmp_path)
    wide = results.wide_table(runs).splitlines()
    assert [c.strip() for c in wide[0].strip("|").split("|")] == [
        "File", "train_loss", "val_loss", "val_mse_last", "mse_batch", "mse_regressive", "params", "seconds"]
    assert [c.strip() for c in wide[2].strip("|").split("|")][-2:] == ["10+5", "1.5"]
    pivot = results.pivot_table(runs, "family", "pe").splitlines()
    assert [c.strip() for c in pivot[0].strip("|").split("|")] == ["family \\ pe", "Original", "+RandnPE", "+RoPE"]
    row = {p.split("|")[1].strip(): [c.strip() for c in p.strip("|").split("|")[1:]] for p in pivot[2:]}
    assert row["vqlnmlp"] == ["**1.5 +- 0.71 (2)**", "-", "4 +- 1.4 (2)"]   # mean +- sd (n), best in bold
    assert row["mhvqlnmlp"] == ["-", "0.5 +- 0 (2)", "-"]


def test_a_pivot_cell_never_pools_protocols_splits_or_norms(tmp_path):
    """A chrono run (0.0218) and a random-split run (0.106) of vqlnmlp were one cell, 0.064 +- 0.06
    "over seeds": each protocol now has a table of its own, headed by it, and only seeds are pooled."""
    for seed, (chrono, random) in enumerate([(0.0218, 0.106), (0.0222, 0.104)]):
        fake_run(tmp_path, "vqlnmlp", chrono, f"c{seed}", seed=seed, split="chrono")
        fake_run(tmp_path, "vqlnmlp", random, f"r{seed}", seed=seed, split="random")
    r = run_main("benchmarks/results.py", tmp_path, "--pivot", "family,pe")
    assert r.returncode == 0, r.stderr
    tables = r.stdout.split("\n\n")
    assert tables[0] == "split=chrono (2 runs):" and tables[2] == "split=random (2 runs):"
    cells = [[c.strip() for c in t.splitlines()[2].strip("|").split("|")] for t in (tables[1], tables[3])]
    assert cells == [["vqlnmlp", f"0.022 +- {np.std([0.0218, 0.0222], ddof=1):.2g} (2)"],
                     ["vqlnmlp", f"0.105 +- {np.std([0.106, 0.104], ddof=1):.2g} (2)"]]
    (tmp_path / "vqlnmlp_y_w_lr0.007" / "c1" / "config.json").write_text(json.dumps({  # another norm: apart again
        **json.load(open(tmp_path / "vqlnmlp_y_w_lr0.007" / "c1" / "config.json")), "norm": "last"}))
    r = run_main("benchmarks/results.py", tmp_path, "--pivot", "family,pe", "--filter", "split=chrono")
    assert r.stdout.startswith("norm=global (1 run):") and "\n\nnorm=last (1 run):\n" in r.stdout


def test_results_cli_tables_and_errors(grid_runs):
    r = run_main("benchmarks/results.py", grid_runs, "--top", "1", "--filter", "vqlnmlp", "--sort", "val_mse_last")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3 and "/t0 " in r.stdout, r.stderr
    r = run_main("benchmarks/results.py", grid_runs, "--pivot", "vocab_size,lr")
    assert r.returncode == 0 and "vocab_size \\ lr" in r.stdout, r.stderr
    for args, word in ((["--sort", "loss"], "mse_regressive"), (["--pivot", "nope,lr"], "nope"),
                       (["--filter", "att"], "no finished runs"), (["--top", "0"], "--top")):
        r = run_main("benchmarks/results.py", grid_runs, *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and word in r.stderr, r.stderr


# -- cross-dataset ----------------------------------------------------------------------------
@pytest.mark.parametrize("split, tag", [("random", "log"), ("chrono", "test")])
def test_cross_dataset_table_and_png(tmp_path, sine_csv, split, tag):
    other = tmp_path / "wave.csv"
    other.write_text("t,v\n" + "".join(f"{i},{(i % 17) * 0.5 + (i % 5)}\n" for i in range(200)))
    r = run_main("train.py", "--model", "linear", "--dataset", sine_csv, "--epochs", "1", "--time_steps", "8",
                 "--split", split, "--norm", "global", "--no_forecast", "--out_dir", tmp_path / "runs")  # by hand below
    assert r.returncode == 0, r.stderr
    run_dir = r.stdout.strip().splitlines()[-1][3:]
    r = run_main("forecast.py", run_dir, "--dataset", f"{sine_csv},{other}")  # in-process: no torch import
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "| Method\\Trainset-Testset | sine-sine | sine-wave |"
    for line, kind in zip(lines[2:4], ("batch", "regressive")):
        assert line.startswith(f"| {kind.capitalize()} (")
        cells = [float(c) for c in line.strip("|").split("|")[1:]]
        for cell, dataset in zip(cells, ("sine", "wave")):
            saved = json.load(open(os.path.join(run_dir, "forecasts", f"{dataset}_{tag}", "metrics.json")))
            assert cell == pytest.approx(saved[f"mse_{kind}"], rel=1e-5)
    # the sine-wave batch cell by hand: the linear model's weights on the wave normalised with its
    # own statistics (chrono: its training part's, scored on its test part; the log: the whole series)
    head = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]
    w, b = head["head.weight"].double().numpy()[0], float(head["head.bias"])
    wave = np.array([(i % 17) * 0.5 + (i % 5) for i in range(200)])
    part = wave[:140] if split == "chrono" else wave
    z = (wave - part.mean()) / part.std()
    start = 160 if split == "chrono" else 8
    pred = np.array([z[t - 8:t] @ w + b for t in range(start, 200)]) * part.std() + part.mean()
    batch = float(lines[2].strip("|").split("|")[2])
    assert batch == pytest.approx(np.mean((pred - wave[start:]) ** 2), rel=1e-4)
    png = lines[-1][3:]
    assert png.endswith(".png") and os.path.getsize(png) > 10000
    record = results.load_record(run_dir)  # results.py reads the evaluation of the run's own series
    assert record["options"]["split"] == split
    assert record["mse_batch"] == pytest.approx(float(lines[2].strip("|").split("|")[1]), rel=1e-5)
    r = run_main("forecast.py", run_dir, "--dataset", f"{sine_csv},nope")
    assert r.returncode == 2 and "nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- the reproduction report --------------------------------------------------------------------
def test_quick_report_writes_results_and_plots(tmp_path):
    out, runs = tmp_path / "docs", tmp_path / "runs"
    out.mkdir()
    kept = "<!-- honest:start -->\n## made by honest.py\n<!-- honest:end -->"
    (out / "RESULTS.md").write_text(f"# old\n\n{kept}\n\n## old table\n")
    r = run_script("benchmarks/report.py", "--quick", "--out", out, "--runs_dir", runs, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "0 failed runs" in r.stdout
    text = (out / "RESULTS.md").read_text()
    for heading in ("## Noise floors and baselines", "## 2024-12-21", "## 2024-12-22", "## 2024-12-23",
                    "## 2025-01-06", "## The same under the chrono split"):
        assert heading in text
    assert "**Time.**" in text and "<!-- time -->" not in text
    assert re.search(r"needs about [1-9]\d* (seconds|minutes) \(CPU time / 2\)", text)  # never "about 0 minutes"
    assert "../shared" not in text and "donglinkang2021/simple-sequence-prediction" in text  # a path a reader has
    assert text.count(kept) == 1 and "## old table" not in text  # honest.py's section stays, the rest is new
    assert text.index("**Time.**") < text.index(kept) < text.index("## Noise floors")
    for png in re.findall(r"\]\((results_\w+\.png)\)", text):
        assert (out / png).stat().st_size > 10000
    assert len(re.findall(r"\]\((results_\w+\.png)\)", text)) >= 4
    assert len(results.load_runs(runs)) >= 5


def test_full_report_without_the_data_is_a_one_line_error(tmp_path):
    r = run_main("benchmarks/report.py", "--data_dir", tmp_path, "--out", tmp_path / "docs")
    assert r.returncode == 2 and "download.py" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "docs").exists()


def test_report_bad_seeds_is_a_one_line_error():
    r = run_main("benchmarks/report.py", "--seeds", "0,x")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "'0,x'" in r.stderr, r.stderr


def test_speed_steps_are_exact_rewrites_and_bad_repeat_is_a_one_line_error():
    """The four formulations of one mhvqlnmlp_rope step compute the same outputs and gradients (an
    invariant: they are exact rewrites), so their printed differences from plain are rounding."""
    r = run_main("benchmarks/speed.py", "steps", "--repeat", "0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--repeat" in r.stderr and "0" in r.stderr, r.stderr
    r = run_main("benchmarks/speed.py", "steps", "--repeat", "1")
    assert r.returncode == 0, r.stderr
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.splitlines() if l.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["plain", "sdpa", "saved P", "ours"]
    assert float(rows[0][2]) == 0 and all(float(row[2]) < 1e-5 for row in rows), rows


# -- benchmarks/honest.py: the table to trust, in parts ------------------------------------------
def test_honest_mean_ranks_by_hand_and_ties_share_their_rank():
    from benchmarks import honest
    val = {("a", "global", "s"): [3.0], ("a", "last", "s"): [1.0], ("a", "revin", "s"): [2.0],
           ("b", "global", "s"): [5.0, 7.0], ("b", "last", "s"): [6.0], ("b", "revin", "s"): [6.0]}
    ranks = honest.mean_ranks(val, ["global", "last", "revin"], ["a", "b"], ["s"])
    # a: last 1, revin 2, global 3; b: all three 6.0 -> each (1 + 2 + 3) / 3 = 2
    assert ranks == {"global": 2.5, "last": 1.5, "revin": 2.0}


def honest_tables(stdout):
    return [line for line in stdout.splitlines() if line.startswith("| ")]


def test_honest_reuses_finished_runs_and_refuses_runs_of_other_code(tmp_path, monkeypatch):
    monkeypatch.setenv("VQSEQ_DATA_DIR", str(tmp_path / "no-data"))       # the built-in series only
    out, results_md = tmp_path / "runs", tmp_path / "docs" / "RESULTS.md"
    results_md.parent.mkdir()
    args = ["benchmarks/honest.py", "--quick", "--models", "naive,linear", "--norm", "global,revin",
            "--jobs", "1", "--out_dir", out, "--results", results_md]
    first = run_main(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "4 trainings: 0 reused" in first.stdout
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line.split("|")[3:]
            for line in honest_tables(first.stdout)}
    assert rows[("naive", "global")] == rows[("naive", "revin")]   # naive reads no normalised window
    assert rows[("linear", "global")] != rows[("linear", "revin")]
    text = results_md.read_text()
    again = run_main(*args)                          # the same folder: nothing to train
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 trainings: 4 reused" in again.stdout and ", 0 to train" in again.stdout and "\n    -> " not in again.stdout
    assert honest_tables(again.stdout) == honest_tables(first.stdout)
    assert "the other 4 reused from earlier calls" in results_md.read_text()
    stamp = json.loads((out / "honest.json").read_text())
    (out / "honest.json").write_text(json.dumps(dict(stamp, code="0" * 64)))   # made by other code
    results_md.write_text(text)
    before = sorted(p.name for p in out.rglob("*"))
    stale = run_main(*args)
    assert stale.returncode == 2 and len(stale.stderr.strip().splitlines()) == 1, stale.stderr
    assert str(out) in stale.stderr and "code" in stale.stderr and "new --out_dir" in stale.stderr
    assert sorted(p.name for p in out.rglob("*")) == before and results_md.read_text() == text


def test_honest_bad_models_is_a_one_line_error(tmp_path):
    r = run_main("benchmarks/honest.py", "--models", "naive,nope", "--out_dir", tmp_path / "runs")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "'naive,nope'" in r.stderr, r.stderr
    assert "vqlnmlp" in r.stderr and not (tmp_path / "runs").exists()


# -- benchmarks/report.py --floor: the report's arithmetic -------------------------------------------
@pytest.mark.parametrize("name, free", [("vqlnmlp", True), ("mhvqlnmlp", True), ("vqlnpemlp", False),
                                        ("mhvqlnpemlp", False), ("mhvqlnmlp_rope", False), ("vqlnmlp_sinpe", False)])
def test_floor_counts_only_the_models_whose_reads_depend_on_positions(name, free):
    from benchmarks import report
    import models
    import torch
    torch.manual_seed(0)
    assert report.position_free(models.build(name, **models.positions(models.get(name), 16)), 16) is free


@pytest.mark.parametrize("args, says", [(["--data_dir", "EMPTY"], "download.py"), (["--seeds", "0,x"], "'0,x'")])
def test_report_floor_bad_input_is_a_one_line_error(args, says, tmp_path, capsys):
    from benchmarks import report
    with pytest.raises(SystemExit) as e:
        report.main(["--floor"] + [str(tmp_path) if a == "EMPTY" else a for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


@needs_formaldehyde
def test_report_floor_prints_a_consistent_floor():
    r = run_main("benchmarks/report.py", "--floor")
    assert r.returncode == 0, r.stderr[-2000:]
    cores = int(re.search(r"(\d+) cores", r.stdout).group(1))
    scores = float(re.search(r"([0-9.]+) x 10\^12 scores", r.stdout).group(1)) * 1e12
    assert scores > 0
    for ns, cpu, wall in re.findall(r"at ([0-9.]+) ns per score .*?: +([0-9.]+) CPU-min, +([0-9.]+) min", r.stdout):
        assert float(cpu) == pytest.approx(scores * float(ns) * 1e-9 / 60, rel=0.01, abs=0.1)
        assert float(wall) == pytest.approx(float(cpu) / cores, abs=0.1)
    assert "floor (softmax alone + lstm kernel)" in r.stdout


# -- benchmarks/studies.py: att, pe and cascade -----------------------------------------------------
@needs_formaldehyde
def test_the_cascade_study_scores_naive_by_hand():
    """--quick: every model one epoch on y_w under the log's protocol; naive's batch forecast is the
    previous value, so its MSE over every value after the first window (time_steps 96) is numpy's."""
    r = run_main("benchmarks/studies.py", "cascade", "--quick")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {c[2]: c for c in ([x.strip() for x in l.strip("|").split("|")] for l in r.stdout.splitlines()
                              if l.startswith("| y_w |"))}
    assert len(rows) == 8 and rows["naive"][1] == "random"
    v = load_series("y_w").values
    assert float(rows["naive"][4]) == pytest.approx(np.mean((v[96:] - v[95:-1]) ** 2), rel=1e-3)
    assert rows["naive"][6] == "0+0"


@pytest.mark.parametrize("args, says", [(["att", "--configs", "99"], "--configs 99"),
                                        (["pe", "--seeds", "0,x"], "'0,x'"),
                                        (["cascade", "--threads", "0"], "--threads must be at least 1")])
def test_studies_bad_input_is_a_one_line_error(args, says):
    r = run_main("benchmarks/studies.py", *args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr


# -- benchmarks/kv_cache.py and vqvae_speed.py: the GPU-day benchmarks, small -----------------------
def table_rows(stdout):
    return [[c.strip() for c in l.strip("|").split("|")] for l in stdout.splitlines()
            if l.startswith("| ") and not l.startswith("|---")][1:]


@pytest.mark.parametrize("norm", ["global", "revin"])
def test_the_kv_cache_benchmark_times_the_same_forecasts_both_ways(norm):
    """Cached generation equals recomputing every window (att_mh with RoPE on q and k is the exact
    case; under revin with the origin's statistics held), and vqlnpemlp's last position equals its
    whole window: the printed largest difference is rounding, at every window length asked for."""
    r = run_main("benchmarks/kv_cache.py", "--steps", "20", "--time_steps", "16", "32", "--threads", "1",
                 "--norm", norm)
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert [(row[0], row[1], row[3]) for row in rows] == [("att_mh", "16", "kv_cache"), ("vqlnpemlp", "16", "last_position"),
                                                         ("att_mh", "32", "kv_cache"), ("vqlnpemlp", "32", "last_position")]
    assert all(float(row[6]) < 1e-5 for row in rows), rows


def test_vqvae_speed_measures_every_bottleneck():
    from models.vqvae import BOTTLENECKS
    r = run_main("benchmarks/vqvae_speed.py", "--sizes", "32", "--batch_64", "4", "--seconds", "0.01", threads=1)
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert [row[1] for row in rows] == list(BOTTLENECKS) and all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows)


# -- the product does not need benchmarks/ -------------------------------------------------------
def test_the_product_imports_nothing_from_benchmarks():
    code = ("import sys\nimport train, forecast, sweep, runs, data, models, vqvae_imagenet\n"
            "print(sorted(m for m in sys.modules if m == 'benchmarks' or m.startswith('benchmarks.')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


def test_the_norm_stats_study_compares_each_runs_two_ways(tmp_path):
    """studies.py norm_stats: naive's forecasts do not depend on a window's statistics (ratio 1.000 by
    hand), and the 'step' column is forecast.backtest's own MASE of the run."""
    import forecast
    values = 20 + np.cumsum(np.random.default_rng(4).standard_normal(260))
    csv = tmp_path / "walk.csv"
    csv.write_text("t,value\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values)))
    out = tmp_path / "runs"
    for model in ("naive", "vqlnmlp"):
        r = run_main("train.py", "--model", model, "--dataset", csv, "--time_steps", "12", "--epochs", "1",
                     "--no_forecast", "--out_dir", out, threads=1)
        assert r.returncode == 0, r.stderr
    r = run_main("benchmarks/studies.py", "norm_stats", "--runs", out, "--horizon", "8", threads=1)
    assert r.returncode == 0, r.stderr
    rows = {row[0]: row for row in table_rows(r.stdout)}
    assert rows.keys() == {"naive", "vqlnmlp"} and rows["naive"][7] == "1.000"
    run_dir = glob.glob(str(out / "vqlnmlp_*" / "*"))[0]
    step = forecast.backtest(forecast.load(run_dir), 8, level=None)["metrics"]["model"]["mase"]
    assert float(rows["vqlnmlp"][5]) == pytest.approx(step, rel=2e-3)   # printed to 3 digits


def test_scale_counts_train_py_peak_memory_alone_and_reads_like_pandas(tmp_path):
    """benchmarks/scale.py: its CSV holds the minutes and values it says (read back by numpy); a
    training's peak memory is train.py's own, not this process's: with 1 GB held here the count stays
    far below it (a child's ru_maxrss starts from its parent's size at the fork)."""
    from benchmarks import scale
    path = scale.make_csv(str(tmp_path / "s.csv"), 2500, block=1000)
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str)
    assert rows[0, 0] == "2020-01-01 00:00" and rows[1441, 0] == "2020-01-02 00:01" and len(rows) == 2500
    assert np.allclose(np.diff(rows[:, 1].astype(float))[:999].std(), 0.05, rtol=0.2)  # the walk's steps
    held = np.ones(2 ** 27)                                           # 1 GB resident in this process
    peak, per_window = scale.training(path, str(tmp_path / "runs"))
    assert 50 * 2 ** 20 < peak < 2 ** 30 and held.sum() == 2 ** 27
    assert 0 < per_window < 0.1
