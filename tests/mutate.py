"""Mutation check: put known one-line bugs back, one at a time, and see that a test fails.

    python tests/mutate.py                  # every mutation below; exit 1 if any survives
    python tests/mutate.py --list           # the mutations and the tests each one runs
    python tests/mutate.py --only seed_ignored codebook_parameter   # some of them
    python tests/mutate.py --jobs 2         # two at a time (each test run uses one thread)

Each mutation is (name, file, exact old text, new text, tests). For each one the script copies
the repository's code and tests into a temporary directory (the checkout is never touched),
replaces the old text, which must occur exactly once in the file, and runs the named tests
there with `python -m pytest -x`. A mutation is caught when a test fails, and survives when
they all pass: a bug the suite would let through. First the named tests run on the unmutated
copy, where they must pass. Exit status: 0 every mutation caught; 1 some survived or broke the
test run itself (a collection error is no proof); 2 a mutation no longer applies (its old text
is not in the file once: update the list) or the tests fail without any mutation.

Add a mutation for each bug a review finds that the suite missed, with the few tests that
should catch it (each test selection small, so that the whole check takes a few minutes).
The bugs below are the ones of issue 18, adapted to the current code.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY_IGNORE = shutil.ignore_patterns(".git", "runs", "docs", "__pycache__", ".pytest_cache", "*.png")
BITE = "tests/test_bite.py::"
HONEST = "tests/test_honest.py::"

MUTATIONS = [
    # forecasts back in original units: z * std + mean, not z + mean
    ("denormalise_without_std", "forecast.py",
     "pred = pred.astype(np.float64) * run.std + run.mean",
     "pred = pred.astype(np.float64) + run.mean",
     [BITE + "test_naive_forecasts_are_the_series_shifted_by_one_in_original_units"]),
    # the run's stored statistics, mean and std swapped
    ("stored_mean_std_swapped", "train.py",
     '"normalisation": {"mean": data.mean, "std": data.std}',
     '"normalisation": {"mean": data.std, "std": data.mean}',
     [BITE + "test_stored_normalisation_is_numpys_statistics_of_its_part"]),
    # --seed ignored for the model and its codebooks
    ("seed_ignored", "train.py",
     "torch.manual_seed(args.seed)",
     "torch.manual_seed(0)",
     [BITE + "test_seed_sets_initial_weights_and_codebooks"]),
    # --split chrono silently trains on the log's random split
    ("chrono_trains_on_random_split", "train.py",
     'split_series(series.values, hp["time_steps"], cls.target, args.split, fractions)',
     'split_series(series.values, hp["time_steps"], cls.target, "random", fractions)',
     [BITE + "test_chrono_training_never_reads_the_test_part"]),
    # a fixed codebook turned into a parameter: one codebook, and a cascade's caches
    ("codebook_parameter", "models/vqlnmlp.py",
     'self.register_buffer("codebook", torch.randn(vocab_size, d_model))',
     'self.codebook = nn.Parameter(torch.randn(vocab_size, d_model))',
     [BITE + "test_codebooks_stay_fixed_buffers_through_training[vqlnmlp]"]),
    ("cascade_caches_parameters", "models/cvqlnmlp.py",
     'self.register_buffer(f"cache{i}", cache)  # fixed, never trained',
     'self.register_parameter(f"cache{i}", nn.Parameter(cache))',
     [BITE + "test_codebooks_stay_fixed_buffers_through_training[cvqlnmlp]"]),
    # chrono's statistics from the whole series, test part included
    ("chrono_whole_series_statistics", "data/__init__.py",
     "_, mean, std = normalise(values[:train_end])",
     "_, mean, std = normalise(values)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # validation windows that run on into the test part
    ("validation_reads_test_part", "data/__init__.py",
     "make_windows(z[max(0, train_end - time_steps):val_end], time_steps, target)",
     "make_windows(z[max(0, train_end - time_steps):], time_steps, target)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # training windows that run on into the validation part
    ("training_reads_validation_part", "data/__init__.py",
     "x_train, y_train = make_windows(z[:train_end], time_steps, target)",
     "x_train, y_train = make_windows(z[:val_end], time_steps, target)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # the original-units validation error scaled by std instead of std ** 2
    ("original_units_std_not_squared", "train.py",
     'chosen["val_mse_last"] * data.std ** 2',
     'chosen["val_mse_last"] * data.std',
     [BITE + "test_naive_validation_error_in_original_units"]),
    # codebook usage: perplexity as the entropy itself, used fraction as a count
    ("perplexity_is_entropy", "train.py",
     '"perplexity": float(entropy[h].exp())',
     '"perplexity": float(entropy[h])',
     [BITE + "test_codebook_usage_on_a_hand_made_case"]),
    ("used_fraction_is_count", "train.py",
     '"used_fraction": float(hits[h].float().mean())',
     '"used_fraction": float(hits[h].float().sum())',
     [BITE + "test_codebook_usage_on_a_hand_made_case"]),
    # a second run in the same second: 2025-...-002 instead of 2025-...-00-2
    ("run_dir_suffix_without_dash", "runs.py",
     'path = f"{base}-{k}"',
     'path = f"{base}{k}"',
     [BITE + "test_a_second_and_third_run_in_the_same_second_get_suffixes"]),
    # keep_freed_memory with one of its two settings gone
    ("freed_memory_trimmed", "train.py",
     "mallopt(M_TRIM_THRESHOLD, limit)  # free heap below this stays with the process",
     "pass",
     ["tests/test_train.py::test_keep_freed_memory_reuses_a_freed_block_without_page_faults"]),
    ("freed_memory_mmapped", "train.py",
     "mallopt(M_MMAP_THRESHOLD, limit)  # blocks below this come from the heap, not a fresh mmap",
     "pass",
     ["tests/test_train.py::test_keep_freed_memory_reuses_a_freed_block_without_page_faults"]),
    # --- issue 14, the honest protocol ---
    # backtest forecasts back in original units without the std
    ("backtest_denormalise_without_std", "forecast.py",
     "return np.concatenate(out) * run.std + run.mean",
     "return np.concatenate(out) + run.mean",
     [HONEST + "test_a_model_that_is_exact_has_mase_near_zero_and_naive_does_not"]),
    # the naive baseline peeks at the value it forecasts
    ("naive_sees_the_origin", "forecast.py",
     'forecasts = {"model": pred, "naive": np.repeat(y[chosen - 1, None], horizon, axis=1)}',
     'forecasts = {"model": pred, "naive": np.repeat(y[chosen, None], horizon, axis=1)}',
     [HONEST + "test_backtest_naive_matches_a_hand_computation"]),
    # MASE scaled by the level of the series instead of naive's error
    ("mase_scale_wrong", "forecast.py",
     "scale = float(np.mean(np.abs(y[season:] - y[:-season])[ok])) if ok.any() else float(\"nan\")",
     "scale = float(np.mean(np.abs(y[season:])[ok])) if ok.any() else float(\"nan\")",
     [HONEST + "test_naive_mase_on_the_training_part_is_one_by_construction"]),
    # the conformal quantile without the (n + 1) correction and at half the level
    ("interval_quantile_wrong", "forecast.py",
     "k = math.ceil((len(r) + 1) * level / 100)",
     "k = math.ceil(len(r) * level / 200)",
     [HONEST + "test_intervals_reach_their_nominal_coverage_on_a_noisy_series"]),
    # future timestamps start at the last observed time instead of one step after it
    ("future_time_off_by_one", "data/__init__.py",
     "ahead = np.arange(1, n + 1)",
     "ahead = np.arange(n)",
     [HONEST + "test_future_continues_daily_and_hourly_timestamps",
      "tests/test_timestamps.py::test_month_ends_continue_on_month_ends"]),
    # resume forgets the shuffling state: not the same as an uninterrupted run
    ("resume_forgets_shuffle", "train.py",
     'shuffle.set_state(resumed["last"]["shuffle"])',
     'pass',
     [HONEST + "test_resume_gives_the_same_weights_as_an_uninterrupted_run"]),
    # chrono keeps the last epoch instead of the best validation epoch
    ("best_epoch_ignored", "train.py",
     "if complete and score < best[\"score\"]:",
     "if complete:",
     [HONEST + "test_chrono_keeps_the_best_validation_epoch"]),
    # issue 24: an epoch Ctrl-C cut short chosen for model.pt
    ("partial_epoch_chosen", "train.py",
     "if complete and score < best[\"score\"]:",
     "if score < best[\"score\"]:",
     ["tests/test_first_hour.py::test_a_partial_epoch_is_marked_and_never_chosen_even_when_best"]),
    # --- issue 16, fidelity: a model that departs from the original's outputs ---
    ("att_pe_std", "models/att.py",
     "pe_std=0.02",
     "pe_std=0.01",
     ["tests/test_reference.py"]),
    # --- issue 22, window norms and intervals under shift ---
    # the window's level is not added back to the forecast
    ("norm_level_not_restored", "data/__init__.py",
     "return out * scale + loc",
     "return out * scale",
     ["tests/test_norm.py::test_last_and_revin_invert_exactly_in_batch_and_regressive_paths"]),
    # adaptive conformal counts the target at the origin itself as observed
    ("aci_sees_the_origin", "forecast.py",
     'known = np.searchsorted(origins + h, origins, side="left")',
     'known = np.searchsorted(origins + h, origins, side="right")',
     ["tests/test_intervals.py::test_no_interval_uses_an_error_whose_target_lies_after_its_origin"]),
    # --future calibrated on the validation part only, as before issue 22
    ("future_ignores_the_test_part", "forecast.py",
     "inside = (targets >= run.train_end) & (targets < n)",
     "inside = (targets >= run.train_end) & (targets < run.val_end)",
     ["tests/test_intervals.py::test_future_intervals_follow_the_latest_errors_not_the_training_part"]),
]


def scratch_copy(repo, dest):
    shutil.copytree(repo, dest, ignore=COPY_IGNORE)
    return dest


def pytest_run(directory, tests, timeout):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if env.get("VQSEQ_DATA_DIR"):
        env["VQSEQ_DATA_DIR"] = os.path.abspath(env["VQSEQ_DATA_DIR"])
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    return r.returncode, (lines[-1] if lines else "")


def apply(directory, name, path, old, new):
    """Replace old by new in directory/path; a message if old is not there exactly once."""
    full = os.path.join(directory, path)
    text = open(full).read()
    count = text.count(old)
    if count != 1:
        return f"{name}: {path} holds the old text {count} times (expected once): {old!r}"
    with open(full, "w") as f:
        f.write(text.replace(old, new))
    return None


def check(mutation, repo, scratch, timeout):
    name, path, old, new, tests = mutation
    directory = scratch_copy(repo, os.path.join(scratch, name))
    stale = apply(directory, name, path, old, new)
    if stale:
        return name, "stale", stale, 0.0
    t0 = time.time()
    code, last = pytest_run(directory, tests, timeout)
    seconds = time.time() - t0
    shutil.rmtree(directory, ignore_errors=True)
    verdict = {1: "caught", 0: "SURVIVED"}.get(code, "ERROR")  # 1: a test failed; else no verdict
    return name, verdict, last, seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="print the mutations and their tests")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run these mutations only")
    p.add_argument("--jobs", type=int, default=1, help="mutations checked at a time")
    p.add_argument("--repo", default=ROOT, help="the repository to copy (default: this one)")
    p.add_argument("--timeout", type=int, default=300, help="seconds for one mutation's tests")
    args = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only is None or m[0] in args.only]
    unknown = sorted(set(args.only or ()) - {m[0] for m in MUTATIONS})
    if unknown:
        p.error(f"unknown mutation {unknown[0]!r}; choose from {', '.join(m[0] for m in MUTATIONS)}")
    if args.list:
        for name, path, old, new, tests in chosen:
            print(f"{name}: {path}\n  - {old}\n  + {new}\n  tests: {' '.join(tests)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="vqseq-mutate-") as scratch:
        tests = sorted({t for m in chosen for t in m[4]})
        t0 = time.time()
        code, last = pytest_run(scratch_copy(args.repo, os.path.join(scratch, "baseline")), tests, args.timeout)
        print(f"{'baseline (no mutation)':32s} {'passes' if code == 0 else 'FAILS'}  {time.time() - t0:5.1f}s  {last}",
              flush=True)
        if code != 0:
            print("the selected tests fail without any mutation: fix them first", file=sys.stderr)
            return 2
        results = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for name, verdict, detail, seconds in pool.map(lambda m: check(m, args.repo, scratch, args.timeout),
                                                           chosen):
                print(f"{name:32s} {verdict:8s} {seconds:5.1f}s  {detail}", flush=True)
                results.append(verdict)
    survived = results.count("SURVIVED") + results.count("ERROR")
    print(f"{results.count('caught')} of {len(results)} mutations caught"
          + (f"; {survived} survived or broke the test run" if survived else ""))
    if "stale" in results:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
