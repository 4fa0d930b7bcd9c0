"""Every bad input a user may give, one row each: exit status 2, one line on stderr naming the bad
value, no traceback, and nothing created or changed under the output folder.

Rows run the script's main() in this process (conftest.run_main), as `python SCRIPT ARGS` would.
"""
import hashlib
import json
import os
import random

import pytest

import config
import train
from conftest import run_main

# ------------------------------------------------------------------ inputs the rows read

CSVS = {  # name: bytes
    "good": b"t,v\n" + b"".join(b"%d,%.3f\n" % (i, 10 + (i % 17) * 0.5 + (i % 5)) for i in range(300)),
    "latin1": "temp\u00e9rature,v\n".encode("latin-1") + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(300)),
    "text_label": b"date,label\n" + b"".join(b"2024-01-%02d,abc\n" % (1 + i % 28) for i in range(300)),
    "gap": b"year,co2\n" + b"".join(b"%d,%s\n" % (1700 + i, b"" if i == 0 else b"%d" % (300 + i % 9)) for i in range(300)),
    "ambiguous_dates": b"date,v\n" + b"".join(b"%02d/%02d/2024,%d\n" % (1 + i % 12, 1 + (5 * i + 3) % 12, i % 7)
                                              for i in range(300)),
    "bad_date": b"date,v\n2024-01-01,1\nsoon,2\n" + b"".join(b"2024-02-%02d,%d\n" % (1 + i % 28, i) for i in range(300)),
    "header_only": b"t,v\n",
    "empty": b"",
    "constant": b"t,v\n" + b"".join(b"%d,5\n" % i for i in range(300)),
    "short": b"t,v\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(40)),
    "oops": b"t,v\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(200)) + b"200,oops\n",
    "footer": b"date,v\n" + b"".join(b"2024-01-%02d,%d\n" % (1 + i % 28, i) for i in range(28)) + b"Total,378\n",
    # 98% gaps: filled in, no two observed values one step apart in the training part (every 50th kept)
    "gappy": b"t,v\n" + b"".join(b"%d,%s\n" % (i, b"%d" % (i % 7) if i % 50 == 0 else b"") for i in range(300)),
    # issue 35: series too short for the default fractions, or for any
    "ten": b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * i % 7) for i in range(10)),
    "eight": b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * i % 7) for i in range(8)),
    "four": b"t,v\n0,1\n1,3\n2,2\n3,5\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """CSV files, a chrono run and a random run (naive: nothing to train), and broken run copies."""
    root = tmp_path_factory.mktemp("bad")
    for name, data in CSVS.items():
        (root / f"{name}.csv").write_bytes(data)
    made = {}
    for split in ("chrono", "random"):
        cfg, _ = config.parse(["--model", "naive", "--dataset", str(root / "good.csv"), "--split", split,
                               "--out_dir", str(root / "runs"), "--time_steps", "24",
                               "--no_forecast"])
        made[split], _ = train.train(cfg)
    for name, damage in (("truncated_model", lambda d: open(os.path.join(d, "model.pt"), "r+b").truncate(100)),
                         ("random_model", lambda d: open(os.path.join(d, "model.pt"), "wb").write(random.Random(0).randbytes(5000))),
                         ("truncated_config", lambda d: open(os.path.join(d, "config.json"), "r+b").truncate(40))):
        target = root / "broken" / name / "2020-01-01-00-00-00"
        target.mkdir(parents=True)
        for f in os.listdir(made["chrono"]):
            if os.path.isfile(os.path.join(made["chrono"], f)):
                (target / f).write_bytes(open(os.path.join(made["chrono"], f), "rb").read())
        damage(str(target))
        made[name] = str(target)
    moved = root / "moved.csv"
    moved.write_bytes(CSVS["good"])
    cfg, _ = config.parse(["--model", "naive", "--dataset", str(moved), "--out_dir",
                           str(root / "runs"), "--time_steps", "24", "--no_forecast"])
    made["moved"], _ = train.train(cfg)
    os.remove(moved)
    # issue 28: runs whose series changed after training (edited in place; cut short) ...
    for name, change in (("edited", lambda b: b.replace(b"\n10,", b"\n10.5,", 1)), ("shortened", lambda b: b[:b.index(b"\n99,")])):
        path = root / f"{name}.csv"
        path.write_bytes(CSVS["good"].replace(b"t,v", b"t,v", 1))
        cfg, _ = config.parse(["--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--dataset", str(path),
                               "--out_dir", str(root / "runs"), "--time_steps", "24", "--epochs", "1", "--no_forecast"])
        made[name], _ = train.train(cfg)
        path.write_bytes(change(CSVS["good"]))
    # issue 35: a header renamed after training (the values are the same: the column is not)
    path = root / "renamed.csv"
    path.write_bytes(CSVS["good"])
    cfg, _ = config.parse(["--model", "naive", "--dataset", str(path), "--out_dir", str(root / "runs"), "--time_steps",
                           "24", "--no_forecast"])
    made["renamed"], _ = train.train(cfg)
    path.write_bytes(CSVS["good"].replace(b"t,v", b"t,level", 1))
    # ... and run folders whose files do not fit together, or were damaged
    def copy_run(source, name):
        target = root / "broken" / name / "2020-01-01-00-00-00"
        target.mkdir(parents=True)
        for f in os.listdir(source):
            if os.path.isfile(os.path.join(source, f)):
                (target / f).write_bytes(open(os.path.join(source, f), "rb").read())
        made[name] = str(target)
        return target
    vq = made["edited"]
    # issue 35: a run that --resume can continue (naive and linear have nothing to), and one of another seed
    (root / "vq.csv").write_bytes(CSVS["good"])
    for seed in (0, 1):
        cfg, _ = config.parse(["--model", "vqlnmlp", "--vocab_size", "16", "--d_model", "8", "--dataset",
                               str(root / "vq.csv"), "--out_dir", str(root / "runs"), "--time_steps", "24",
                               "--epochs", "1", "--no_forecast", "--seed", str(seed)])
        made[f"vq{seed}"], _ = train.train(cfg)
    cut = copy_run(made["chrono"], "foreign_model")          # a naive run holding a vqlnmlp model.pt ...
    (cut / "model.pt").write_bytes(open(os.path.join(vq, "model.pt"), "rb").read())
    cut = copy_run(made["vq0"], "foreign_last")              # ... a vqlnmlp run holding a naive last.pt
    (cut / "last.pt").write_bytes(open(os.path.join(made["chrono"], "last.pt"), "rb").read())
    cut = copy_run(made["vq0"], "other_seed")                # ... and the model.pt of the same run with --seed 1
    (cut / "model.pt").write_bytes(open(os.path.join(made["vq1"], "model.pt"), "rb").read())
    copy_run(made["chrono"], "empty_model").joinpath("model.pt").write_bytes(b"")
    copy_run(made["vq0"], "empty_last").joinpath("last.pt").write_bytes(b"")
    os.remove(copy_run(made["vq0"], "no_losses") / "losses.csv")
    target = copy_run(made["vq0"], "no_sha256")              # a hand-edited config.json without its checksums
    cfg = json.load(open(target / "config.json"))
    del cfg["sha256"], cfg["values_sha256"]
    (target / "config.json").write_text(json.dumps(cfg))
    for name, key, value in (("no_norm", "norm", None), ("bad_parts", "parts", "all")):
        target = copy_run(vq, name)
        cfg = json.load(open(target / "config.json"))
        cfg.pop(key) if value is None else cfg.update({key: value})
        (target / "config.json").write_text(json.dumps(cfg))
    partial = root / "runs" / "in_progress" / ".2020-01-01-00-00-00-abcd.partial"
    partial.mkdir(parents=True)
    made["partial"] = str(partial)
    image = root / "broken" / "vqvae" / "2020-01-01-00-00-00"   # vqvae_imagenet.py's run, as its config says
    image.mkdir(parents=True)
    (image / "config.json").write_text(json.dumps({"model": "vqvae", "image_size": 64, "patch_size": 32}))
    (image / "model.pt").write_bytes(b"")
    made["vqvae"] = str(image)
    return root, made


def snapshot(folder):
    """{path: sha256} of every file below folder (hidden ones too)."""
    found = {}
    for r, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(r, f)
            found[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def csv(name):
    return ("CSV", name)


TRAIN = [  # (id, args, text the one line must contain)
    ("unknown model", ["--model", "vqnope"], "unknown model 'vqnope'; choose one of att"),
    ("option the model lacks", ["--model", "lstm", "--vocab_size", "8"], "does not take --vocab_size; it takes --hidden_size"),
    ("unknown data set", ["--model", "lstm", "--dataset", "nope"], "unknown data set 'nope'; choose one of membrane"),
    ("missing CSV", ["--model", "lstm", "--dataset", "missing.csv"], "'missing.csv' not found"),
    ("unknown column", ["--model", "lstm", "--dataset", "goog", "--column", "price"], "column 'price' not found"),
    ("unknown column index", ["--model", "lstm", "--dataset", csv("good"), "--column", "7"], "column '7' not found"),
    ("unknown split", ["--model", "lstm", "--split", "shuffle"], "'shuffle' (choose from 'chrono', 'random')"),
    ("unknown device", ["--model", "lstm", "--device", "tpu"], "unknown device 'tpu'; choose one of auto, cpu"),
    ("time_steps 0", ["--model", "lstm", "--time_steps", "0"], "--time_steps must be at least 1, got 0"),
    ("time_steps too long", ["--model", "lstm", "--dataset", "goog", "--time_steps", "800"], "time_steps 800 needs"),
    ("time_steps longer than a short CSV", ["--model", "lstm", "--dataset", csv("short")], "time_steps 112 needs"),
    ("batch_size 0", ["--model", "lstm", "--batch_size", "0"], "--batch_size must be at least 1, got 0"),
    ("epochs -1", ["--model", "lstm", "--epochs", "-1"], "--epochs -1: give 0 or more"),
    ("lr 0", ["--model", "lstm", "--lr", "0"], "--lr 0: the learning rate must be above 0, e.g. 0.0005 (lstm's default)"),
    ("lr negative", ["--model", "naive", "--lr", "-0.01"], "--lr -0.01: the learning rate must be above 0"),
    ("epochs not a number", ["--model", "lstm", "--epochs", "x"], "invalid int value: 'x'"),
    ("d_model not a number", ["--model", "vqlnmlp", "--d_model", "big"], "--d_model 'big': expected a value like 64"),
    ("vocab_size 0", ["--model", "vqlnmlp", "--vocab_size", "0"], "--vocab_size must be at least 1, got 0"),
    ("d_model negative", ["--model", "vqlnmlp", "--d_model", "-4"], "--d_model must be at least 1, got -4"),
    ("block_size shorter than a window", ["--model", "vqlnpemlp", "--block_size", "10"], "--block_size 10"),
    ("n_heads not dividing d_model", ["--model", "mhvqlnmlp", "--n_heads", "3"], "choose n_heads among 1, 2, 4, 8"),
    ("kv_heads not dividing n_heads", ["--model", "att_mh", "--kv_heads", "3"], "kv_heads 3"),
    ("boolean option", ["--model", "att", "--causal", "maybe"], "--causal 'maybe'"),
    ("fractions leave nothing to train", ["--model", "lstm", "--val_fraction", "0.5", "--test_fraction", "0.5"],
     "--val_fraction 0.5 --test_fraction 0.5"),
    ("Latin-1 CSV", ["--model", "lstm", "--dataset", csv("latin1")], "not UTF-8"),
    ("text value column", ["--model", "lstm", "--dataset", csv("text_label")], "no numeric column"),
    ("gap without --fill", ["--model", "lstm", "--dataset", csv("gap")], "--fill interpolate|ffill|drop"),
    ("unknown fill mode", ["--model", "lstm", "--dataset", csv("gap"), "--fill", "mean"], "unknown fill 'mean'"),
    ("ambiguous dates", ["--model", "lstm", "--dataset", csv("ambiguous_dates")], "--date_format"),
    ("unparsable date", ["--model", "lstm", "--dataset", csv("bad_date")], "'soon'"),
    ("date format that does not match", ["--model", "lstm", "--dataset", csv("ambiguous_dates"), "--date_format",
                                         "%d.%m.%Y"], "--date_format '%d.%m.%Y'"),
    ("header only", ["--model", "lstm", "--dataset", csv("header_only")], "no data rows"),
    ("empty CSV", ["--model", "lstm", "--dataset", csv("empty")], "empty"),
    ("constant series", ["--model", "naive", "--dataset", csv("constant")], "constant"),
    ("text cell", ["--model", "naive", "--dataset", csv("oops")], "row 202 ('oops')"),
    ("resume of no run", ["--resume", "nowhere"], "'nowhere' not found"),
    ("resume with another model", ["--resume", "RUN:chrono", "--model", "lstm"], "drop --model"),
    ("resume to fewer epochs", ["--resume", "RUN:vq0", "--epochs", "1"], "give --epochs larger than that"),
    ("sweep jobs 0", ["--model", "naive,linear", "--jobs", "0"], "--jobs '0'"),
    ("sweep of an unknown model", ["--model", "naive,nope"], "unknown model 'nope'"),
    # issue 28
    ("seed beyond torch's range", ["--model", "naive", "--seed", "1180591620717411303424"],
     "'1180591620717411303424' is outside the seeds torch takes (-2**63 to 2**64 - 1)"),
    ("epochs beyond a billion", ["--model", "lstm", "--epochs", "99999999999999999999999"], "at most 1,000,000,000"),
    ("no --model", ["--dataset", "goog"], "--model is required: python train.py --list shows the models"),
    ("forecast.py's option", ["--model", "lstm", "--horizon", "5"], "--horizon is forecast.py's option, not train.py's"),
    ("an option nobody takes, in a grid", ["--model", "lstm", "--fractions", "0.7,0.1,0.2"],
     "unknown option --fractions; python train.py --help"),
    ("time_steps longer than the training part", ["--model", "lstm", "--dataset", csv("good"), "--time_steps",
                                                  "100000"], "the training part has 210 values; time_steps 100000 "
     "needs at least 100002 (choose time_steps <= 208)"),
    ("98% gaps filled in", ["--model", "naive", "--dataset", csv("gappy"), "--fill", "interpolate", "--time_steps", "4"],
     "the training part has no two observed values 1 step(s) apart (205 of its 210 values were filled in)"),  # 0, 50, .., 200 kept
    ("a Total row below the data", ["--model", "naive", "--dataset", csv("footer")],
     "the last row, 30, holds 'Total', not a time like the rows above it: a footer (a total, a note)? remove that row"),
    ("resume after losses.csv was deleted", ["--resume", "RUN:no_losses", "--epochs", "5"], "losses.csv is missing"),
    ("resume with another model's last.pt", ["--resume", "RUN:foreign_last", "--epochs", "5"],
     "last.pt holds a naive model where config.json names vqlnmlp"),
    ("resume with a 0-byte last.pt", ["--resume", "RUN:empty_last", "--epochs", "5"], "is not a vqseq checkpoint (EOFError"),
    ("resume after the CSV was edited", ["--resume", "RUN:edited", "--epochs", "5"],
     "the series changed since the run was trained (the values read differ: their sha256 is"),
    # issue 35
    ("resume of a naive run", ["--resume", "RUN:chrono", "--epochs", "5"],
     "model naive has nothing more to learn (nothing to train), so there is nothing to continue"),
    ("resume with another seed's model.pt", ["--resume", "RUN:other_seed", "--epochs", "5"],
     "model.pt holds a model trained with --seed 1 where config.json names --seed 0"),
    ("resume with config.json's sha256 deleted", ["--resume", "RUN:no_sha256", "--epochs", "5"],
     "config.json has no sha256 of the series it was trained on"),
    ("n_heads 3 with RoPE", ["--model", "mhvqlnmlp_rope", "--n_heads", "3"],
     "d_model 64 is not divisible by n_heads 3; choose n_heads among 1, 2, 4, 8, 16, 32"),
    ("n_heads 64 with RoPE", ["--model", "mhvqlnmlp_rope", "--n_heads", "64"],
     "head_size 1 must be even; choose n_heads among 1, 2, 4, 8, 16, 32"),
    ("a 10-value series", ["--model", "naive", "--dataset", csv("ten")],
     "the training part has 7 values; time_steps 96 needs at least 98 (choose time_steps <= 5)"),
    ("an 8-value series: no value to validate", ["--model", "naive", "--dataset", csv("eight")],
     "into 6 to train on, 0 to validate and 2 to test; it needs time_steps + 2 values to train on (two windows) and one "
     "in each other part: choose --val_fraction 0.1 --test_fraction 0.15 --time_steps 4 (or less)"),
    ("a 4-value series", ["--model", "naive", "--dataset", csv("four"), "--time_steps", "1"],
     "--split chrono needs at least 3, 1 and 1 (5 values), so no --time_steps and no fractions work for it"),
]

FORECAST = [
    ("no such run", ["nowhere"], "'nowhere' not found"),
    ("folder with no complete run", ["OUT"], "holds no complete run"),
    ("truncated model.pt", ["RUN:truncated_model"], "not a readable run"),
    ("foreign model.pt", ["RUN:random_model"], "not a readable run"),
    ("truncated config.json", ["RUN:truncated_config"], "not a readable run"),
    ("horizon 0", ["RUN:chrono", "--horizon", "0"], "--horizon must be at least 1, got 0"),
    ("horizon past the test part", ["RUN:chrono", "--horizon", "500"], "--horizon 500 is longer than the test part"),
    ("stride 0", ["RUN:chrono", "--stride", "0"], "--stride must be at least 1, got 0"),
    ("season 0", ["RUN:chrono", "--season", "0"], "--season must be at least 1, got 0"),
    ("level 100", ["RUN:chrono", "--level", "100"], "--level 100.0"),
    ("future 0", ["RUN:chrono", "--future", "0"], "--future must be at least 1, got 0"),
    ("predict_rate under chrono", ["RUN:chrono", "--predict_rate", "0.5"], "--predict_rate belongs to the log's"),
    ("predict_rate above 1", ["RUN:random", "--predict_rate", "1.5"], "predict_rate must be in (0, 1], got 1.5"),
    ("backtest of a log-protocol run", ["RUN:random", "--horizon", "5", "--stride", "2"], None),
    ("unknown positions", ["RUN:random", "--positions", "random"], "unknown positions 'random'"),
    ("unknown kv_cache", ["RUN:random", "--kv_cache", "yes"], "invalid choice: 'yes' (choose from 'auto', 'on', 'off')"),
    ("unknown device", ["RUN:chrono", "--device", "tpu"], "unknown device 'tpu'"),
    ("unknown data set", ["RUN:chrono", "--dataset", "nope"], "unknown data set 'nope'"),
    ("moved training CSV", ["RUN:moved"], "not there any more; give --dataset PATH"),
    ("horizon not a number", ["RUN:chrono", "--horizon", "x"], "invalid int value: 'x'"),
    # issue 28
    ("season longer than the training part", ["RUN:chrono", "--season", "100000"],
     "--season 100000 is not shorter than the training part (210 values)"),
    ("a 0-byte model.pt", ["RUN:empty_model"], "model.pt is not a vqseq checkpoint (EOFError"),
    ("another model's model.pt", ["RUN:foreign_model"], "model.pt holds a vqlnmlp model where"),
    ("config.json without its norm", ["RUN:no_norm"], "config.json has no norm (global, last or revin)"),
    ("parts not a dict", ["RUN:bad_parts"], "config.json: parts is 'all', expected a dict of train_end"),
    ("a run still being written", ["RUN:partial"], "is a run still being written"),
    ("a CSV given as the run", [csv("good")], "is a file, not a run directory"),
    ("vqvae_imagenet.py's run", ["RUN:vqvae"], "is a vqvae_imagenet.py run (an image autoencoder): evaluate it with"),
    ("the CSV edited after training", ["RUN:edited"], "the series changed since the run was trained (the values read differ"),
    ("the CSV cut short after training", ["RUN:shortened", "--future", "3"], "; 99 values now, 300 at training)"),
    # issue 35: options another kind of evaluation would ignore, runs put together from two
    ("horizon with --future", ["RUN:chrono", "--future", "3", "--horizon", "5"],
     "--horizon 5 shapes an evaluation on the series, and --future 3 forecasts 3 steps past its end"),
    ("stride with --future", ["RUN:chrono", "--future", "3", "--stride", "2"], "drop --stride, or drop --future"),
    ("origins with --future", ["RUN:chrono", "--future", "3", "--origins", "5"], "--origins 5 shapes an evaluation"),
    ("positions with --future", ["RUN:chrono", "--future", "3", "--positions", "sliding"], "--positions sliding shapes"),
    ("horizon with the log's evaluation", ["RUN:chrono", "--positions", "sliding", "--horizon", "5"],
     "--horizon 5 shapes the backtest, and --positions sliding asks for the log's batch and regressive evaluation"),
    ("season with the log's evaluation", ["RUN:chrono", "--positions", "sliding", "--season", "7"],
     "--season 7 shapes the backtest"),
    ("horizon with the cross-dataset matrix", ["RUN:random", "--dataset", "membrane,goog", "--horizon", "5"],
     "--horizon 5 shapes the backtest, and --dataset membrane,goog asks for the log's"),
    ("another seed's model.pt", ["RUN:other_seed"], "model.pt holds a model trained with --seed 1 where"),
    ("a column renamed after training", ["RUN:renamed"], "the series changed since the run was trained (column "
     "'level' now, 'v' at training)"),
    ("config.json's sha256 deleted", ["RUN:no_sha256"], "config.json has no sha256 of the series it was trained on"),
]

VQVAE = [
    ("unknown model", ["--model", "nope", "--data", "sample"], "'nope'"),
    ("no such data folder", ["--model", "vqvae", "--data", "/nonexistent/images"], "/nonexistent/images"),
    ("eval of no run", ["--eval", "nowhere"], "nowhere"),
]


def resolve(args, root, made):
    out = []
    for a in args:
        if isinstance(a, tuple):
            a = str(root / f"{a[1]}.csv")
        elif a.startswith("RUN:"):
            a = made[a[4:]]
        elif a == "OUT":
            a = str(root / "emptyrun")
            os.makedirs(a, exist_ok=True)
        out.append(a)
    return out


def check(script, args, message, root):
    before = snapshot(root)
    r = run_main(script, *args)
    assert r.returncode == 2, (args, r.returncode, r.stdout[-500:], r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"{script}: error: "), r.stderr
    if message:
        assert message in r.stderr, r.stderr
    assert snapshot(root) == before, "the bad input created or changed files"


@pytest.mark.parametrize("name, args, message", TRAIN, ids=[t[0] for t in TRAIN])
def test_train_bad_input(world, name, args, message):
    root, made = world
    args = resolve(args, root, made)
    extra = [] if "--resume" in args else ["--out_dir", str(root / "runs")]
    check("train.py", args + extra, message, root)


@pytest.mark.parametrize("name, args, message", FORECAST, ids=[t[0] for t in FORECAST])
def test_forecast_bad_input(world, name, args, message):
    root, made = world
    if message is None:  # a run of the log's protocol has no test part: the error says what to do
        message = "needs a held-out test part"
    check("forecast.py", resolve(args, root, made), message, root)


@pytest.mark.parametrize("name, args, message", VQVAE, ids=[t[0] for t in VQVAE])
def test_vqvae_bad_input(world, name, args, message, tmp_path):
    root, _ = world
    check("vqvae_imagenet.py", args + ["--out_dir", str(root / "runs")], message, root)


def test_there_are_at_least_forty_rows():
    assert len(TRAIN) + len(FORECAST) + len(VQVAE) >= 40
