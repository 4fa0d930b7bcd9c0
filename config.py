"""Every option of train.py and forecast.py, defined once.

A training run's settings are one `Config`: train.py's parser and --help are made from its
fields, config.json is the resolved Config written out (with what training found in the data:
its parts, statistics and windows), and --resume reads it back into a Config. A model's own
options are its constructor's keyword arguments (models/__init__.py), parsed into
Config.model_args. forecast.py's options are one `ForecastConfig`. The constants below are the
other settings a user may want to change; they are used where they are named. Three settings come
from the environment, because they belong to a machine rather than to a run: $VQSEQ_DATA_DIR
(where the log's series live; data/download.py), $VQSEQ_PROGRESS_SECONDS (the least seconds
between two progress lines in a log file; runs.Progress) and $VQSEQ_THREADS=follow (threads
that follow the cores other processes leave free; runs.Threads).
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field, fields, replace

import models
import runs
from data import DATASETS, DEFAULT_FRACTIONS, EMBEDDED, FIELD_SPLITS, FILL_MODES, SPLITS, digest, run_data_dir
from models.norm import NORM_STATS, NORMS, with_norm
from models.rollout import KV_CACHE
from runs import DataError

CHRONO_NORM = "revin"  # --norm's default under --split chrono, chosen by validation error (docs/RESULTS.md)
MAX_ORIGINS = 100      # forecast.py: the default --stride keeps a backtest to about this many origins
FUTURE_WINDOW = 100    # forecast.py --future: per step ahead, the conformal quantile of the latest this many errors
# Adaptive conformal's step size. Gibbs and Candes bound the long-run miscoverage of T origins by
# (max(alpha, 1 - alpha) + gamma) / (gamma T): with the ~100 origins of a backtest their 0.005 bounds
# nothing (the level moves by at most 0.4 in all), 0.05 bounds it by 0.17 and moves the level 4 points a miss.
ACI_GAMMA = 0.05
# forecast.py --future: a forecast this many standard deviations of the series away from its last value has
# diverged (a model feeding its own growth back); a trend continued 1000 times the series' length stays inside.
DIVERGED_STDS = 1e4
DIVERGED_MSE = 1000  # train.py: a kept epoch whose val_mse_last is this many times the training mean's has diverged
TRAINING = ("time_steps", "batch_size", "lr", "epochs")  # each model's file has its own defaults of these
MAX_EPOCHS = 10 ** 9  # --epochs at most: beyond, a progress bar cannot count them
MAX_NAME = 150  # characters of a run name; its folder name adds a timestamp
RESUME_TAKES = ("epochs", "device", "no_forecast", "data_dir")  # what --resume lets a command line change


def _whole(low):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text_or_none(v):
    return v is None or isinstance(v, str)


def option(default, help, check=None, expected=None, run=True, **argparse_kw):
    """A Config field: its default, its --help line, how a stored value is checked (check(value),
    and what a reader is told was expected), whether it is part of the run (run=False: how
    train.py is called, not what the run is; not in config.json), and argparse's own keywords."""
    return field(default=default, metadata=dict(help=help, check=check, expected=expected, run=run, **argparse_kw))


@dataclass
class Config:
    """One training run: what train.py's options say, resolved against the model's defaults."""
    model: str = option(None, "model name (see --list)", lambda v: isinstance(v, str), "a model name")
    dataset: str = option("membrane", f"{', '.join(DATASETS)} or a .csv path", lambda v: isinstance(v, str),
                          "a data set name")
    column: str = option(None, "value column of a CSV: a name or a 0-based index (default: the last numeric column)",
                         lambda v: v is None or (isinstance(v, (str, int)) and not isinstance(v, bool)),
                         "a name, an index or null")
    data_dir: str = option(None, "where y_w, w_y, 4single live (default: data/ or $VQSEQ_DATA_DIR)",
                           _text_or_none, "a path or null")
    fill: str = option(None, f"gaps in a CSV: {', '.join(FILL_MODES)} (default: gaps are an error)",
                       _text_or_none, "a fill mode or null")
    date_format: str = option(None, "strptime format of a CSV's dates where day and month are ambiguous, "
                              "e.g. %%d/%%m/%%Y", _text_or_none, "a date format or null")
    time_steps: int = option(None, "window length", _whole(1), "a whole number >= 1")
    batch_size: int = option(None, "windows per Adam step", _whole(1), "a whole number >= 1")
    lr: float = option(None, "Adam learning rate", lambda v: _number(v) and v > 0, "a number > 0", type=runs.finite)
    epochs: int = option(None, "passes over the training windows", _whole(0), "a whole number >= 0")
    split: str = option("chrono", "chrono: train/validation/test in time (default); random: the log's protocol",
                        lambda v: v in SPLITS, "chrono or random", choices=SPLITS)
    norm: str = option(None, "what the model reads of each window: global (z-score with the training part's "
                       "statistics), last (changes from the window's last value: NLinear), revin (the window's own "
                       f"mean and std: RevIN); default: {CHRONO_NORM} under --split chrono (chosen by validation "
                       "error, docs/RESULTS.md), global under --split random",
                       lambda v: v in NORMS, " or ".join(NORMS), choices=NORMS)
    val_fraction: float = option(None, f"chrono: validation part (default {DEFAULT_FRACTIONS[1]}; for "
                                 f"{', '.join(FIELD_SPLITS)}: the field's split, see --test_fraction)",
                                 lambda v: v is None or _number(v), "a number or null", type=runs.finite)
    test_fraction: float = option(None, f"chrono: test part (default {DEFAULT_FRACTIONS[2]}; for "
                                  f"{', '.join(FIELD_SPLITS)}: the field's split, 8640 hours train, 2880 validate, "
                                  f"2880 test, the rest unused; either fraction given cuts the whole series instead)",
                                  lambda v: v is None or _number(v), "a number or null", type=runs.finite)
    seed: int = option(0, "seeds the model, the codebooks and the shuffling",
                       lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number", type=runs.seed)
    device: str = option("auto", f"one of {', '.join(runs.DEVICES)}")
    model_args: dict = option(None, "the model's constructor arguments (--NAME VALUE)", lambda v: isinstance(v, dict),
                              "a dict of constructor arguments")
    out_dir: str = option("runs", "where run directories go", run=False)
    resume: str = option(None, "continue this run (to --epochs in total)", run=False, metavar="RUN_DIR")
    no_forecast: bool = option(False, "skip forecast.py's evaluation after training", run=False)

    @property
    def fractions(self):
        """(train, validation, test) parts of the series under chrono; None: the field's split of a
        benchmark series (data.FIELD_SPLITS)."""
        if self.val_fraction is None and self.test_fraction is None:
            return None
        val = DEFAULT_FRACTIONS[1] if self.val_fraction is None else self.val_fraction
        test = DEFAULT_FRACTIONS[2] if self.test_fraction is None else self.test_fraction
        return (1 - val - test, val, test)


def run_fields():
    """The fields of Config that say what a run is (config.json holds them)."""
    return [f for f in fields(Config) if f.metadata["run"]]


# ---------------------------------------------------------------- the command line

# What the lines train.py prints mean: the epilog of --help (docs/GUIDE.md too).
TERMS = """\
what the lines train.py prints mean:
  epoch E/N  train A  val B  val_mse_last C  Ts
                 a line per epoch where stderr is not a terminal (a log file): at most one
                 every 2 s ($VQSEQ_PROGRESS_SECONDS; 0: every epoch), the first and last always
  val_loss       validation MSE of every output the model is trained on (its objective), in
                 normalised units (the series minus its training mean, over its std)
  val_mse_last   validation MSE of the value after each window alone: what a forecast needs;
                 chrono keeps the epoch where it is lowest
  (epoch N)      the epoch model.pt holds: chrono the lowest val_mse_last, random the last;
                 never a partial epoch (stopped by Ctrl-C: complete 0 in losses.csv)
  params A+B fixed
                 A trained parameters; B fixed numbers, never trained (codebooks, positions)
  headH ppl P/V  perplexity of head H's mean code probabilities on the validation windows:
                 about P of its V codes (vocab_size) carry the reads
  used U%        codes that are the most probable code for at least one validation value
  test MASE h1 A hH B all C  (naive a / b / c)
                 test-part mean absolute error over the naive one-step error on the training
                 part: 1 step ahead, H steps ahead, all steps; naive (the last value repeated)
                 beside it; then a sentence: at which steps it beats naive
  80% interval coverage
                 the share of test values inside the 80% prediction interval
"""


def parser(model=None):
    """train.py's options, from Config's fields; given a model's name, its training defaults in the
    help and its constructor's arguments as a group of options."""
    p = runs.Parser(add_help=False, description="Train one forecasting model and write a run directory. A comma "
                    "list in any option makes a grid of runs, which sweep.py runs (--jobs N at a time; --dry_run "
                    "prints their commands: python sweep.py --help).",
                    epilog=TERMS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action="store_true", help="show this help (with --model: its options)")
    p.add_argument("--list", action="store_true", help="list every model with its parameter counts")
    for f in fields(Config):
        if f.name == "model_args":
            continue
        m, help = f.metadata, f.metadata["help"]
        if f.name in TRAINING:
            default = f"{model}: {models.get(model).train_defaults[f.name]}" if model else \
                "default: the model's, see --model NAME --help"
            help += f" ({default})" + ("; with --resume: the total to reach" if f.name == "epochs" else "")
        if f.default is not None and f.default is not False and "default" not in help:  # every default shows
            help += f" (default {f.default})"
        kw = {k: v for k, v in m.items() if k in ("choices", "metavar", "type")}
        if f.type is bool:
            p.add_argument(f"--{f.name}", action="store_true", help=help)
        else:
            p.add_argument(f"--{f.name}", default=f.default, help=help, **{"type": f.type, **kw})
    if model:
        cls = models.get(model)
        group = p.add_argument_group(f"options of model {model} (its constructor's arguments)")
        for name, default in models.options(cls).items():
            shown = "time_steps" if name == "block_size" else runs.text(default)  # train.py's block_size
            group.add_argument(f"--{name}", default=None, metavar=models.values(cls, name),
                               help=f"{models.describe(cls, name)} (default {shown})")
    return p


def parse(argv):
    """A Config from train.py's command line (--help and --list answered here: (None, "list")).
    Every mistake is a one-line error with exit status 2. Returns (Config or None, what)."""
    p = parser()
    args, rest = p.parse_known_args(argv)
    if args.resume:
        given = [a for a in argv if a.startswith("--") and a.split("=")[0].lstrip("-") not in ("resume", *RESUME_TAKES)]
        if given or rest:
            runs.fail(p.prog, f"--resume continues a run with its own settings; drop {(given + rest)[0]} "
                      f"(only --epochs, --device, --no_forecast and --data_dir may be given)")
        return _config(args, {}), "train"
    if args.help and args.model is None:
        p.print_help()
        sys.exit(0)
    if args.list:
        return None, "list"
    if args.model is None:
        runs.fail(p.prog, "--model is required: python train.py --list shows the models, --help every option")
    try:
        cls = models.get(args.model)
    except models.ModelError as e:
        runs.fail(p.prog, e)
    p, defaults = parser(args.model), models.options(cls)
    if args.help:
        p.print_help()
        sys.exit(0)
    args, rest = p.parse_known_args(argv)
    if rest:
        runs.fail(p.prog, unknown_option(rest[0], args.model))
    model_args = {}
    for name, default in defaults.items():
        text = getattr(args, name)
        if text is not None:
            try:
                model_args[name] = parse_value(text, default)
            except ValueError:
                kind = "a finite number" if isinstance(default, float) else "a value"
                runs.fail(p.prog, f"--{name} {text!r}: expected {kind} like {runs.text(default)}")
    return _config(args, model_args), "train"


def unknown_option(token, model):
    """Why train.py does not take token: forecast.py's option, another model's, or no one's."""
    name = token.split("=")[0]
    if name.lstrip("-") in {f.name for f in fields(ForecastConfig)}:
        return f"{name} is forecast.py's option, not train.py's: python forecast.py RUN {name} ..."
    if model and any(name.lstrip("-") in models.options(models.get(m)) for m in models.names()):
        takes = ", ".join(f"--{k}" for k in models.options(models.get(model))) or "no model options"
        return f"model {model} does not take {name}; it takes {takes}"
    return f"unknown option {name}; python train.py --help lists train.py's options, --model NAME --help a model's"


def _config(args, model_args):
    return Config(**{f.name: getattr(args, f.name) for f in fields(Config) if f.name != "model_args"},
                  model_args=model_args)


SWEEP_ONLY = ("--jobs", "--dry_run")  # sweep.py's own options


def split_options(argv):
    """argv as [(option, value)]; flags (--no_forecast, ...) and stray words have value None."""
    flags = {s for a in parser()._actions if a.nargs == 0 for s in a.option_strings} | {"--dry_run"}
    items, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token in flags or not token.startswith("-"):
            items.append((token, None))
            i += 1
        elif "=" in token:
            items.append(tuple(token.split("=", 1)))
            i += 1
        else:
            items.append((token, argv[i + 1] if i + 1 < len(argv) else None))
            i += 2
    return items


def is_sweep(argv):
    """A grid of runs: any comma list or sweep-only option (but --help and --list always mean themselves)."""
    items = split_options(argv)
    if any(k in ("-h", "--help", "--list") for k, _ in items):
        return False
    return any(k in SWEEP_ONLY or (v is not None and "," in v) for k, v in items)


def parse_value(text, default):
    """Parse a command-line string as the type of a constructor default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if isinstance(default, (tuple, list)):  # e.g. --levels 32-128-512
        return tuple(type(default[0])(v) for v in text.split("-"))
    if isinstance(default, float) and not math.isfinite(float(text)):  # a run of NaN losses
        raise ValueError(f"{text!r} is not a finite number")
    return type(default)(text) if default is not None else text


# ---------------------------------------------------------------- resolving a Config

def resolve(cfg):
    """cfg with the model's own defaults where it names none (time_steps, batch_size, lr, epochs;
    every constructor argument, block_size following time_steps; norm following split), checked.
    A model fit in closed form (models/__init__.py: `solve`) runs one epoch: the solve."""
    cls = models.get(cfg.model)
    hp = {k: getattr(cfg, k) if getattr(cfg, k) is not None else cls.train_defaults[k] for k in TRAINING}
    runs.check_positive(batch_size=hp["batch_size"], time_steps=hp["time_steps"])
    if hp["epochs"] < 0:
        raise DataError(f"--epochs {hp['epochs']}: give 0 or more (0 keeps the untrained model)")
    if hp["lr"] <= 0:
        raise DataError(f"--lr {hp['lr']:g}: the learning rate must be above 0, e.g. {cls.train_defaults['lr']:g} "
                        f"({cfg.model}'s default)")
    if hp["epochs"] > MAX_EPOCHS:
        raise DataError(f"--epochs {hp['epochs']}: at most {MAX_EPOCHS:,} (a run stops at any epoch with Ctrl-C, "
                        f"and --resume continues it)")
    if hasattr(cls, "solve"):
        hp["epochs"] = 1  # one solve, recorded as epoch 1; lr and batch_size do not apply either
    model_args = {**models.options(cls), **models.positions(cls, hp["time_steps"]), **(cfg.model_args or {})}
    if cfg.val_fraction is None and cfg.test_fraction is None and cfg.split == "chrono" and cfg.dataset in FIELD_SPLITS:
        pass  # the field's split (data.parts)
    else:  # a fraction not given takes its default
        cfg = replace(cfg, val_fraction=DEFAULT_FRACTIONS[1] if cfg.val_fraction is None else cfg.val_fraction,
                      test_fraction=DEFAULT_FRACTIONS[2] if cfg.test_fraction is None else cfg.test_fraction)
    if cfg.split == "chrono" and cfg.fractions and not (cfg.val_fraction > 0 and cfg.test_fraction > 0 and cfg.fractions[0] > 0):
        raise DataError(f"--val_fraction {cfg.val_fraction} --test_fraction {cfg.test_fraction}: each must be "
                        f"above 0 and together below 1 (training takes the rest), e.g. 0.1 and 0.2")
    norm = cfg.norm or ("global" if cfg.split == "random" else CHRONO_NORM)  # the log read the global level
    if cfg.split == "random" and norm != "global":
        raise DataError(f"--norm {norm} with --split random: the log's protocol normalises the whole series "
                        f"(--norm global); choose --norm global or --split chrono")
    return replace(cfg, **hp, model_args=model_args, norm=norm)


def run_name(cfg, dataset, column=None):
    """The run name of a resolved cfg on the series named dataset: the log's name,
    {model}[_vs{vocab_size}][_dm{d_model}][_nh{n_heads}]..._{dataset}_ts{T}_lr{lr} (NAME_PARTS),
    then every other setting that changes a run's numbers where it differs from its default:
    _random (the log's protocol), _norm{norm}, _bs{batch_size}, _val{v}_test{t}, _seed{seed},
    _col{column} (column: given where it is not the series' default column), _fill{mode}. Only the
    number of epochs (which --resume extends) and the device are left out. At most MAX_NAME
    characters: a longer name ends in a hash of itself instead."""
    cls = models.get(cfg.model)
    defaults = {**models.options(cls), "block_size": cfg.time_steps}  # a table as long as the window
    parts = [cfg.model] + [_part(abbr, cfg.model_args[k]) for k, abbr in NAME_PARTS if k in cfg.model_args]
    named = {k for k, _ in NAME_PARTS}
    for k, value in cfg.model_args.items():
        if k not in named and value != defaults.get(k):
            parts.append(_part(k, value) if not isinstance(value, bool) else f"{k}{str(value).lower()}")
    parts += [dataset, f"ts{cfg.time_steps}", f"lr{cfg.lr}"]
    if cfg.split != "chrono":
        parts.append(cfg.split)
    if cfg.norm != (CHRONO_NORM if cfg.split == "chrono" else "global"):
        parts.append(f"norm{cfg.norm}")
    if cfg.batch_size is not None and cfg.batch_size != cls.train_defaults["batch_size"] and not hasattr(cls, "solve"):
        parts.append(f"bs{cfg.batch_size}")
    if cfg.split == "chrono" and cfg.fractions and (cfg.fractions[1:] != DEFAULT_FRACTIONS[1:]
                                                    or cfg.dataset in FIELD_SPLITS):  # not the data set's own split
        parts.append(f"val{cfg.fractions[1]:g}_test{cfg.fractions[2]:g}")
    if cfg.seed != 0:
        parts.append(f"seed{cfg.seed}")
    if column is not None:
        parts.append("col" + re.sub(r"[^A-Za-z0-9.+-]+", "-", str(column)).strip("-"))
    if cfg.fill:
        parts.append(f"fill{cfg.fill}")
    name = "_".join(p for p in parts if p)
    if len(name) > MAX_NAME:  # a file name has at most 255 bytes; a long CSV name or column must not reach it
        name = name[:MAX_NAME - 13] + "_" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


# Constructor arguments that appear in run names, in the log's order and spelling: the log's
# {model}[_vs{vocab_size}][_dm{d_model}][_nh{n_heads}]_{dataset}_ts{T}_lr{lr}, the cascades'
# order, levels and heads first, then the attention options. A value spells itself with its
# abbreviation (vs512); a tuple as l32-128-512; a true flag as the abbreviation alone, a false
# one not at all; a dict gives each value's text (None: left out). Any other argument appears
# as name+value only where it differs from the model's default (lstm_hidden_size128_...), so two
# runs that differ in an option never share a name. block_size's default is time_steps (ts): it
# appears only where it differs from it (vqlnpemlp_..._block_size200_y_w_ts96_...).
NAME_PARTS = (("order", ""), ("levels", "l"), ("heads", "h"), ("vocab_size", "vs"), ("d_model", "dm"),
              ("n_heads", "nh"), ("trainable_codebooks", "tc"), ("kv_heads", "kv"),
              ("pe_type", {"none": "nope", "randn": "randn", "sinpe": "sinpe", "rope": "rope"}),
              ("pe_on", {"input": None, "qk": "qk"}), ("in_ln", "inln"), ("q_ln", "qln"), ("k_ln", "kln"),
              ("causal", {True: None, False: "bidir"}))


def _part(abbr, value):
    if isinstance(abbr, dict):
        return abbr.get(value, str(value))
    if isinstance(value, bool):
        return abbr if value else None
    if isinstance(value, (tuple, list)):
        value = "-".join(map(str, value))
    return f"{abbr}{value}"


# ---------------------------------------------------------------- config.json

def record(cfg, **changes):
    """The run's fields of a resolved cfg (with changes), as config.json holds them."""
    cfg = replace(cfg, **changes)
    return {f.name: getattr(cfg, f.name) for f in run_fields()}


def read_config(run_dir):
    """RUN_DIR/config.json of a forecasting run, checked against Config's fields: a missing key or
    one of the wrong type is a one-line RunError naming the key and what was expected (instead of a
    traceback later). Runs written before a key existed lack it: their defaults are filled in."""
    path = os.path.join(run_dir, "config.json")
    saved = runs.read_json(path)
    if "image_size" in saved and "dataset" not in saved:
        raise runs.RunError(f"{run_dir} is a vqvae_imagenet.py run (an image autoencoder): evaluate it with "
                            f"python vqvae_imagenet.py --eval {run_dir}")

    def bad(key, value, expected):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return runs.RunError(f"not a readable run: {path}: {key} is {shown}, expected {expected}")
    required = ("model", "model_args", "dataset", "column", "split", "seed", *TRAINING)
    for f in run_fields():
        if f.name not in saved:
            if f.name in required:
                raise runs.RunError(f"not a readable run: {path} has no {f.name} (expected {f.metadata['expected']})")
            continue
        if f.metadata["check"] and not f.metadata["check"](saved[f.name]):
            raise bad(f.name, saved[f.name], f.metadata["expected"])
    for key, test, expected in RECORD_KEYS:
        holder, name = (saved, key) if "." not in key else (saved[key.split(".")[0]], key.split(".")[1])
        if name not in holder:
            raise runs.RunError(f"not a readable run: {path} has no {key} (expected {expected})")
        if not test(holder[name]):
            raise bad(key, holder[name], expected)
    for key in ("sha256", "values_sha256"):
        if key in saved and not _text_or_none(saved[key]):
            raise bad(key, saved[key], "a text or null")
    if saved["dataset"] not in EMBEDDED and not (saved.get("sha256") or saved.get("values_sha256")):
        raise runs.RunError(f"not a readable run: {path} has no sha256 of the series it was trained on, so a changed "
                            f"series could not be told from it; put back its sha256 and values_sha256, or train again")
    fractions, test_end = saved.get("fractions"), saved["parts"].get("test_end")
    field = fractions is None and _whole(1)(test_end) and saved["parts"]["val_end"] < test_end <= saved["parts"]["n_values"]
    if saved["split"] == "chrono" and not field and not (isinstance(fractions, list) and len(fractions) == 3
                                                         and all(_number(f) and 0 < f < 1 for f in fractions)):
        raise bad("fractions", fractions, "a list of three fractions (train, validation, test), e.g. [0.7, 0.1, 0.2], "
                  "or null with parts.test_end (the field's split)")
    return saved


# What training found and config.json records besides the Config (a key with a dot is one inside a dict).
RECORD_KEYS = (
    ("run_name", lambda v: isinstance(v, str), "a text"),
    ("parts", lambda v: isinstance(v, dict) and all(_whole(0)(v.get(k)) for k in ("train_end", "val_end", "n_values")),
     "a dict of train_end, val_end and n_values, whole numbers"),
    ("source", lambda v: isinstance(v, str), "a path or a description"),
    ("normalisation", lambda v: isinstance(v, dict), "a dict with mean and std"),
    ("normalisation.mean", _number, "a finite number"),
    ("normalisation.std", lambda v: _number(v) and v > 0, "a number > 0"),
)


def resume(cfg):
    """(the Config of the run that cfg.resume names, with what the command line may change;
    its config.json). A run fit in closed form has nothing to continue: a one-line error."""
    run_dir = runs.latest_run(cfg.resume, weights="last.pt")
    saved = read_config(run_dir)
    inert, why = models.inert_options(models.build(saved["model"], **saved["model_args"]))
    if "epochs" in inert:  # least squares in one solve, or nothing to train (naive): more epochs change nothing
        raise DataError(f"--resume {run_dir}: model {saved['model']} has nothing more to learn ({why}), so there is "
                        f"nothing to continue; its model.pt is final")
    return resumed(saved, replace(cfg, resume=run_dir)), saved


def resumed(saved, cfg):
    """The Config of a run to continue: config.json's, with what --resume lets the command line
    change (RESUME_TAKES: --epochs, the total to reach; --device; --no_forecast; --data_dir)."""
    values = {f.name: saved[f.name] for f in run_fields() if f.name in saved}
    values.setdefault("norm", "global")  # runs from before --norm read the global level
    if "val_fraction" not in saved and saved.get("fractions"):  # runs from before the two options were stored
        values["val_fraction"], values["test_fraction"] = saved["fractions"][1], saved["fractions"][2]
    if saved["dataset"] not in DATASETS:  # a CSV is found again by its path, its column by position
        values["dataset"] = saved["source"]
        values["column"] = saved.get("column_index", saved["column"]) if saved.get("column_index") is not None \
            else saved["column"]
    data_dir = run_data_dir(saved["dataset"], cfg.data_dir or saved.get("data_dir"), saved.get("source"))
    return replace(Config(**values), epochs=cfg.epochs if cfg.epochs is not None else saved["epochs"],
                   device=cfg.device, no_forecast=cfg.no_forecast, data_dir=data_dir,
                   resume=cfg.resume, out_dir=cfg.out_dir)


def check_series(saved, series, hint):
    """A one-line DataError where series is not the one a run was trained on, as its config.json
    records it: the CSV's sha256, the number of values, the column. hint: what to do instead."""
    changes = []
    if saved.get("values_sha256"):  # what was read: a file saved with CRLF line ends, or 24.20 for 24.2, is the same
        if digest(series) != saved["values_sha256"]:
            changes.append(f"the values read differ: their sha256 is {digest(series)[:12]}... now, "
                           f"{saved['values_sha256'][:12]}... at training")
    elif saved.get("sha256") and series.sha256 != saved["sha256"]:  # runs from before values_sha256: the file's bytes
        changes.append(f"its sha256 is {str(series.sha256)[:12]}... now, {saved['sha256'][:12]}... at training")
    n = (saved.get("parts") or {}).get("n_values")
    if isinstance(n, int) and len(series.values) != n:
        changes.append(f"{len(series.values)} values now, {n} at training")
    if saved.get("column") is not None and str(series.column) != str(saved["column"]):
        changes.append(f"column {series.column!r} now, {saved['column']!r} at training")
    if changes:
        raise DataError(f"{series.source}: the series changed since the run was trained ({'; '.join(changes)}); {hint}")


# ---------------------------------------------------------------- forecast.py

@dataclass
class ForecastConfig:
    """forecast.py's options (one run or several, a backtest or a forecast past the end)."""
    horizon: int = option(None, "steps ahead in the backtest (default 24, or the test part's length where that "
                          "is shorter)")
    stride: int = option(None, f"steps between origins (default: the stride that gives about {MAX_ORIGINS} origins)")
    origins: int = option(None, f"at most this many origins, evenly spread (default: at most about "
                          f"{MAX_ORIGINS}, evenly spread, as --stride's default gives)")
    season: int = option(None, "seasonal period m: seasonal naive and MASE's scale (default: none, naive and "
                         "one-step MASE)")
    level: float = option(80, "prediction interval level, percent")
    future: int = option(None, "forecast H steps past the end (default: backtest the test part instead)", metavar="H")
    dataset: str = option(None, "data set to evaluate (default: the training set)")
    column: str = option(None, "value column of a CSV data set (default: the run's column where the data set has it, "
                         "else its last numeric column)")
    data_dir: str = option(None, "where y_w, w_y and 4single live (default: the run's, data/ or $VQSEQ_DATA_DIR)")
    fill: str = option(None, f"gaps in another CSV: {', '.join(FILL_MODES)} (default: the run's; gaps are an error)")
    date_format: str = option(None, "strptime format of another CSV's dates (default: the run's, or read from the "
                              "dates)")
    predict_rate: float = option(None, "the log's protocol: fraction of windows to predict (default 1)")
    positions: str = option(None, "the log's batch and regressive evaluation (of the whole series; of the test "
                            "part of a chrono run), its windows numbered sliding: 0..T-1 each (the log's), or absolute: "
                            "by their place in the series")
    kv_cache: str = option("auto", "fed-back forecasts without recomputing every window: auto (the KV cache "
                           "where it gives the same forecasts: causal att models trained with --norm global), on "
                           "(alone: --kv_cache; also the VQ models' last position only, T times faster, the same "
                           "forecasts to float32 rounding), off",
                           choices=KV_CACHE, nargs="?", const="on")
    norm_stats: str = option("step", "fed-back forecasts of a run trained with --norm last or revin: step (each new "
                             "window read by its own statistics) or origin (the forecast origin's window's for every "
                             "step, as RevIN reads a whole forecast; the attention models' KV cache then works)",
                             choices=NORM_STATS)
    device: str = option("cpu", f"one of {', '.join(runs.DEVICES)}")


DEFAULT_HORIZON = 24
DEFAULT_LEVEL = ForecastConfig.level


def check_options(args):
    """A one-line DataError for forecast.py options that would be ignored: the backtest's (--horizon,
    --stride, --origins, --season) or the log's evaluation's (--predict_rate, --positions) with
    --future, and the two kinds together."""
    if args.future is not None and args.season is not None:  # the season shapes only the backtest
        raise DataError(f"--season {args.season} shapes the backtest (seasonal naive, MASE's scale), and "
                        f"--future {args.future} forecasts past the end without one; drop --season, or "
                        f"drop --future to backtest")
    backtest_only = [f"--{k} {getattr(args, k)}" for k in ("horizon", "stride", "origins")
                     if getattr(args, k) is not None]
    log_only = [f"--{k} {getattr(args, k)}" for k in ("predict_rate", "positions") if getattr(args, k) is not None]
    log_only += [f"--dataset {args.dataset}"] if args.dataset and "," in args.dataset else []  # the log's matrix
    if args.future is not None and backtest_only + log_only:  # none of them changes a forecast past the end
        raise DataError(f"{(backtest_only + log_only)[0]} shapes an evaluation on the series, and --future "
                        f"{args.future} forecasts {args.future} steps past its end (the steps are --future's); "
                        f"drop {(backtest_only + log_only)[0].split()[0]}, or drop --future to evaluate")
    backtest_only += [f"--season {args.season}"] if args.season is not None else []
    if log_only and backtest_only:  # the log's evaluation has no origins, no horizon and no seasonal naive
        raise DataError(f"{backtest_only[0]} shapes the backtest, and {log_only[0]} asks for the log's batch and "
                        f"regressive evaluation, which has neither; drop one of them")


def forecast_parser():
    p = runs.Parser(description="Evaluate a trained run on its test part, or forecast past the end.")
    p.add_argument("run_dir", nargs="+", help="a directory written by train.py, or runs/{run_name} for its "
                   "latest run; several: one horizon curve per run (or the cross-dataset table)")
    for f in fields(ForecastConfig):
        kw = {k: v for k, v in f.metadata.items() if k in ("metavar", "choices", "nargs", "const")}
        shown = f" (default {f.default:g})" if isinstance(f.default, float) else f" (default {f.default})"
        help = f.metadata["help"] + (shown if f.default is not None and "default" not in f.metadata["help"] else "")
        p.add_argument(f"--{f.name}", type=f.type, default=f.default, help=help, **kw)
    return p


# ---------------------------------------------------------------- a run's model

def load_run(run_dir, device="cpu", weights="model.pt"):
    """(model, config) rebuilt from RUN_DIR/config.json and its weights (model.pt: the ones
    training chose). A run directory that cannot be read, whose files belong to two runs, or whose
    weights are not finite numbers (a training that diverged) is a one-line error naming the file."""
    config = read_config(run_dir)
    path = os.path.join(run_dir, weights)
    checkpoint = runs.load_checkpoint(path, device)
    held = (checkpoint.get("model"), json_form(checkpoint.get("model_args")), checkpoint.get("norm", config.get("norm")),
            checkpoint.get("seed", config["seed"]))  # runs from before model.pt held its seed: not compared
    named = (config["model"], json_form(config["model_args"]), config.get("norm", held[2]), config["seed"])
    if held != named:
        i = next(i for i in range(4) if held[i] != named[i])
        what = ["a {} model", "model arguments {}", "a model read with --norm {}", "a model trained with --seed {}"][i]
        raise runs.RunError(f"not a readable run: {path} holds {what.format(runs.short(held[i]))} where "
                            f"{run_dir}/config.json names {what.format(runs.short(named[i]))}: the folder mixes two "
                            f"runs; put back the matching file, or train again")
    try:
        model = with_norm(models.build(checkpoint["model"], **checkpoint["model_args"]), config.get("norm", "global"))
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:  # TypeError: model_args not a dict
        if "norm" not in config:  # runs from before --norm read the global level; a run that did not lost its norm
            raise runs.RunError(f"not a readable run: {run_dir}/config.json has no norm (global, last or revin), and "
                                f"{weights} is not the model read with --norm global; add the run's norm to it") from None
        raise runs.RunError(f"not a readable run: {path} does not fit its model ({runs.first_line(e)})") from None
    if not all(v.isfinite().all() for v in model.state_dict().values() if v.is_floating_point()):
        raise DataError(f"{path}: the model's weights are not finite numbers: its training diverged (losses.csv "
                        f"shows from which epoch); train again, e.g. with a smaller --lr")
    return model.to(device).eval(), config


def json_form(value):
    """value as config.json holds it (tuples as lists), so that model.pt's arguments compare with it."""
    return json.loads(json.dumps(value, default=str))
