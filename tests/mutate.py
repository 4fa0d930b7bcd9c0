"""Mutation check: put known one-line bugs back, one at a time, and see that a test fails.

    python tests/mutate.py                  # every mutation below; exit 1 if any survives
    python tests/mutate.py --list           # the mutations and the tests each one runs
    python tests/mutate.py --round 2        # only the second list (issue 23)
    python tests/mutate.py --round 3        # only the third list (tests that bite, round three)
    python tests/mutate.py --round 4        # only the fourth list (nothing quietly wrong, round four)
    python tests/mutate.py --round 5        # only the fifth list (issues 34 and 37)
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
MUTATIONS holds the bugs of issue 18, adapted to the current code; MUTATIONS_ROUND2 those of
issue 23, MUTATIONS_ROUND3 those of "tests that bite, round three" and MUTATIONS_ROUND4 those of
issue 35, MUTATIONS_ROUND5 those of issues 34 and 37, each written from the product code before
looking at the tests (all five lists run by default).
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
    ("denormalise_without_std", "log_protocol.py",
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
     "torch.manual_seed(cfg.seed)",
     "torch.manual_seed(0)",
     [BITE + "test_seed_sets_initial_weights_and_codebooks"]),
    # --split chrono silently trains on the log's random split
    ("chrono_trains_on_random_split", "train.py",
     'split_series(series.values, cfg.time_steps, cls.target, cfg.split, cfg.fractions, series.field_split)',
     'split_series(series.values, cfg.time_steps, cls.target, "random", cfg.fractions, series.field_split)',
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
    ("chrono_whole_series_statistics", "data/windows.py",
     "_, mean, std = normalise(values[:train_end])",
     "_, mean, std = normalise(values)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # validation windows that run on into the test part
    ("validation_reads_test_part", "data/windows.py",
     "make_windows(z[max(0, train_end - time_steps):val_end], time_steps, target)",
     "make_windows(z[max(0, train_end - time_steps):], time_steps, target)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # training windows that run on into the validation part
    ("training_reads_validation_part", "data/windows.py",
     "x_train, y_train = make_windows(z[:train_end], time_steps, target)",
     "x_train, y_train = make_windows(z[:val_end], time_steps, target)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    # the original-units validation error scaled by std instead of std ** 2
    ("original_units_std_not_squared", "train.py",
     'chosen["val_mse_last"] * data.std ** 2',
     'chosen["val_mse_last"] * data.std',
     [BITE + "test_naive_validation_error_in_original_units"]),
    # codebook usage: perplexity as the entropy itself, used fraction as a count
    ("perplexity_is_entropy", "models/__init__.py",
     '"perplexity": float(entropy[h].exp())',
     '"perplexity": float(entropy[h])',
     [BITE + "test_codebook_usage_on_a_hand_made_case"]),
    ("used_fraction_is_count", "models/__init__.py",
     '"used_fraction": float(hits[h].float().mean())',
     '"used_fraction": float(hits[h].float().sum())',
     [BITE + "test_codebook_usage_on_a_hand_made_case"]),
    # a second run in the same second: 2025-...-002 instead of 2025-...-00-2
    ("run_dir_suffix_without_dash", "runs.py",
     'new = f"{target}-{k}"',
     'new = f"{target}{k}"',
     [BITE + "test_a_second_and_third_run_in_the_same_second_get_suffixes"]),
    # keep_freed_memory with one of its two settings gone
    ("freed_memory_trimmed", "runs.py",
     "mallopt(M_TRIM_THRESHOLD, limit)  # free heap below this stays with the process",
     "pass",
     ["tests/test_train.py::test_keep_freed_memory_reuses_a_freed_block_without_page_faults"]),
    ("freed_memory_mmapped", "runs.py",
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
    ("mase_scale_wrong", "scoring.py",
     "scale = float(np.mean(np.abs(y[season:] - y[:-season])[ok]))",
     "scale = float(np.mean(np.abs(y[season:])[ok]))",
     [HONEST + "test_naive_mase_on_the_training_part_is_one_by_construction"]),
    # the conformal quantile without the (n + 1) correction and at half the level
    ("interval_quantile_wrong", "scoring.py",
     "k = math.ceil((len(r) + 1) * level / 100)",
     "k = math.ceil(len(r) * level / 200)",
     [HONEST + "test_intervals_reach_their_nominal_coverage_on_a_noisy_series"]),
    # future timestamps start at the last observed time instead of one step after it
    ("future_time_off_by_one", "data/future.py",
     "ahead = np.arange(1, n + 1)",
     "ahead = np.arange(n)",
     [HONEST + "test_future_continues_daily_and_hourly_timestamps",
      "tests/test_timestamps.py::test_month_ends_continue_on_month_ends"]),
    # resume forgets the shuffling state: not the same as an uninterrupted run
    ("resume_forgets_shuffle", "runs.py",
     'shuffle.set_state(self.last["shuffle"])',
     'pass',
     [HONEST + "test_resume_gives_the_same_weights_as_an_uninterrupted_run"]),
    # chrono keeps the last epoch instead of the best validation epoch
    ("best_epoch_ignored", "runs.py",
     "if usable(row) and score < self.best[\"score\"]:",
     "if usable(row):",
     [HONEST + "test_chrono_keeps_the_best_validation_epoch"]),
    # issue 24: an epoch Ctrl-C cut short chosen for model.pt
    ("partial_epoch_chosen", "runs.py",
     "if usable(row) and score < self.best[\"score\"]:",
     "if score < self.best[\"score\"]:",
     ["tests/test_first_hour.py::test_a_partial_epoch_is_marked_and_never_chosen_even_when_best"]),
    # --- issue 16, fidelity: a model that departs from the original's outputs ---
    ("att_pe_std", "models/att.py",
     "pe_std=0.02",
     "pe_std=0.01",
     ["tests/test_reference.py"]),
    # --- issue 22, window norms and intervals under shift ---
    # the window's level is not added back to the forecast
    ("norm_level_not_restored", "models/norm.py",
     "return out * scale + loc",
     "return out * scale",
     ["tests/test_norm.py::test_last_and_revin_invert_exactly_in_batch_and_regressive_paths"]),
    # adaptive conformal counts the target at the origin itself as observed
    ("aci_sees_the_origin", "scoring.py",
     'known = np.searchsorted(origins + h, origins, side="left")',
     'known = np.searchsorted(origins + h, origins, side="right")',
     ["tests/test_intervals.py::test_no_interval_uses_an_error_whose_target_lies_after_its_origin"]),
    # --future calibrated on the validation part only, as before issue 22
    ("future_ignores_the_test_part", "forecast.py",
     "inside = (targets >= run.train_end) & (targets < n)",
     "inside = (targets >= run.train_end) & (targets < run.val_end)",
     ["tests/test_intervals.py::test_future_intervals_follow_the_latest_errors_not_the_training_part"]),
]


# Round 2 (issue 23): written from reading each module, before looking at which tests exist: for
# each, three to five one-line bugs a developer could plausibly make. The first six are the
# issue's named survivors. Each names the few tests that should catch it.
MEANING = "tests/test_meaning.py::"
MUTATIONS_ROUND2 = [
    # --- the named survivors ---
    # calibration widened to errors whose targets lie in the test part (steps after the first)
    ("r2_calibrate_reads_test_part", "forecast.py",
     "inside = (targets >= run.train_end) & (targets < run.val_end)",
     "inside = targets >= run.train_end",
     [MEANING + "test_calibration_never_reads_the_test_part_and_counts_by_hand"]),
    # the last admissible backtest origin dropped
    ("r2_backtest_last_origin_dropped", "forecast.py",
     "candidates = np.arange(run.val_end, run.test_end - horizon + 1)",
     "candidates = np.arange(run.val_end, run.test_end - horizon)",
     [MEANING + "test_backtest_origins_reach_the_last_test_value_at_every_stride"]),
    # errors_by_step.csv numbering its steps from 0
    ("r2_errors_by_step_from_zero", "outputs.py",
     "rows = [[h + 1] + [result",
     "rows = [[h] + [result",
     [MEANING + "test_errors_by_step_rows_are_steps_one_to_h_with_hand_computed_errors"]),
    # a training that fails after its run directory exists leaves its hidden partial folder
    ("r2_train_failure_keeps_partial", "runs.py",
     "discard_run_dir(self.partial)  # a run directory is complete or absent",
     "pass",
     [MEANING + "test_a_training_that_fails_after_its_run_directory_exists_leaves_nothing"]),
    # single-head att: the banded mask lets one key too many through past block_size
    ("r2_att_band_one_too_many", "models/att.py",
     "mask = (k_pos <= q_pos) & (k_pos > q_pos - window)",
     "mask = (k_pos <= q_pos) & (k_pos >= q_pos - window)",
     ["tests/test_attention.py::test_the_cache_rolls_and_keeps_block_size_minus_one_positions"]),
    # the autoencoder trained to reproduce the masked (black) patches, not the original image
    ("r2_vqvae_loss_against_masked", "vqvae_imagenet.py",
     "loss = F.mse_loss(recon.float(), x) if len(x) else recon.sum() * 0",
     "loss = F.mse_loss(recon.float(), apply_mask(x, mask, cfg.patch_size)) if len(x) else recon.sum() * 0",
     [MEANING + "test_vqvae_training_loss_is_the_mse_against_the_unmasked_image"]),
    # --- forecast.py ---
    ("r2_origins_spread_drops_last", "forecast.py",
     "np.linspace(0, len(chosen) - 1, origins)",
     "np.linspace(0, len(chosen) - 2, origins)",
     [MEANING + "test_backtest_origins_reach_the_last_test_value_at_every_stride"]),
    ("r2_default_stride_floor", "forecast.py",
     "stride = stride or max(1, math.ceil(len(candidates) / MAX_ORIGINS))",
     "stride = stride or max(1, len(candidates) // MAX_ORIGINS)",
     [MEANING + "test_backtest_origins_reach_the_last_test_value_at_every_stride"]),
    ("r2_mase_scale_ignores_season", "forecast.py",
     "scale = scoring.naive_scale(y[:run.train_end], run.observed[:run.train_end], season or 1)",
     "scale = scoring.naive_scale(y[:run.train_end], run.observed[:run.train_end], 1)",
     [MEANING + "test_seasonal_mase_scale_and_gaps_by_hand"]),
    ("r2_naive_scale_half_observed_pairs", "scoring.py",
     "ok = observed[season:] & observed[:-season]",
     "ok = observed[season:]",
     [MEANING + "test_seasonal_mase_scale_and_gaps_by_hand"]),
    ("r2_kv_cache_position_off_by_one", "models/rollout.py",
     "preds[:, i] = next_value(model, preds[:, i - 1].view(B, 1, 1), pos + T + i - 1, cache)",
     "preds[:, i] = next_value(model, preds[:, i - 1].view(B, 1, 1), pos + T + i, cache)",
     ["tests/test_attention.py::test_cache_equals_sliding_recomputation_past_block_size"]),
    ("r2_kv_cache_window_is_block_size", "models/rollout.py",
     "cache = model.new_cache(T)                                # each step sees time_steps values",
     "cache = model.new_cache()                                 # each step sees time_steps values",
     [MEANING + "test_kv_cache_sees_time_steps_values_when_block_size_is_longer"]),
    ("r2_predict_batch_first_window", "log_protocol.py",
     "first = len(z) - time_steps - n                     # index of the first predicted window",
     "first = len(z) - time_steps - n - 1                 # index of the first predicted window",
     [MEANING + "test_log_protocol_forecasts_of_naive_are_the_previous_values"]),
    ("r2_predict_regressive_window_shifted", "log_protocol.py",
     "window = torch.as_tensor(z[start - time_steps:start], dtype=torch.float32, device=device).view(1, -1, 1)",
     "window = torch.as_tensor(z[start - time_steps + 1:start + 1], dtype=torch.float32, device=device).view(1, -1, 1)",
     [MEANING + "test_log_protocol_forecasts_of_naive_are_the_previous_values"]),
    # --- data/ ---
    ("r2_validation_first_target_skipped", "data/windows.py",
     "make_windows(z[max(0, train_end - time_steps):val_end], time_steps, target)",
     "make_windows(z[max(0, train_end - time_steps + 1):val_end], time_steps, target)",
     [BITE + "test_chrono_windows_are_the_parts_windows_and_ignore_the_test_part"]),
    ("r2_random_split_rounds", "data/windows.py",
     "n_train = min(int(n_windows * 0.8), n_windows - 1)",
     "n_train = min(round(n_windows * 0.8), n_windows - 1)",
     ["tests/test_data.py::test_random_split_is_the_logs"]),
    ("r2_normalise_sample_std", "data/windows.py",
     "mean, std = float(values.mean()), float(values.std())",
     "mean, std = float(values.mean()), float(values.std(ddof=1))",
     ["tests/test_data.py::test_normalise_stats"]),
    ("r2_interpolation_reversed", "data/csvfile.py",
     "w = np.where(after > before, (gaps - before) / np.maximum(after - before, 1), 0.0)",
     "w = np.where(after > before, (after - gaps) / np.maximum(after - before, 1), 0.0)",
     ["tests/test_data.py::test_fill_modes"]),
    ("r2_last_target_is_last_input", "data/windows.py",
     "y = Windows(z, starts, None, offset=time_steps)     # (n, 1)",
     "y = Windows(z, starts, None, offset=time_steps - 1) # (n, 1)",
     ["tests/test_data.py::test_windows_both_layouts"]),
    ("r2_boundaries_test_fraction_as_validation", "data/windows.py",
     "val_end = round(n_values * (fractions[0] + fractions[1]))",
     "val_end = round(n_values * (fractions[0] + fractions[2]))",
     [MEANING + "test_boundaries_by_hand_on_non_default_fractions"]),
    # --- train.py (outside the epoch loop, which is being rewritten) ---
    ("r2_resume_uses_default_lr", "config.py",
     'values = {f.name: saved[f.name] for f in run_fields() if f.name in saved}',
     'values = {f.name: saved[f.name] for f in run_fields() if f.name in saved and f.name != "lr"}',
     [HONEST + "test_resume_gives_the_same_weights_as_an_uninterrupted_run"]),
    ("r2_resume_fractions_swapped", "config.py",
     'values = {f.name: saved[f.name] for f in run_fields() if f.name in saved}',
     'values = {f.name: saved[{"val_fraction": "test_fraction", "test_fraction": "val_fraction"}.get(f.name, f.name)] '
     'for f in run_fields() if f.name in saved}',
     [HONEST + "test_resume_gives_the_same_weights_as_an_uninterrupted_run"]),
    ("r2_val_mse_last_first_position", "train.py",
     'last += F.mse_loss(out[:, -1], yb[:, -1], reduction="sum").item()',
     'last += F.mse_loss(out[:, 0], yb[:, 0], reduction="sum").item()',
     [BITE + "test_naive_validation_error_in_original_units"]),
    # --- models/att.py, models/att_mh.py ---
    ("r2_att_mh_band_one_too_many", "models/att_mh.py",
     "mask = (k_pos <= q_pos) & (k_pos > q_pos - window)",
     "mask = (k_pos <= q_pos) & (k_pos >= q_pos - window)",
     ["tests/test_attention.py::test_the_cache_rolls_and_keeps_block_size_minus_one_positions"]),
    ("r2_att_cache_keeps_window", "models/att.py",
     "self.window, self.keep = window, window - 1",
     "self.window, self.keep = window, window",
     ["tests/test_attention.py::test_the_cache_rolls_and_keeps_block_size_minus_one_positions"]),
    ("r2_att_mh_rope_sign", "models/att_mh.py",
     "return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)",
     "return torch.stack((x1 * cos + x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)",
     ["tests/test_attention.py::test_kv_heads_equal_to_n_heads_is_plain_multi_head_attention"]),
    ("r2_att_mh_kv_groups_tiled", "models/att_mh.py",
     "k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # serves a group",
     "k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)  # serves a group",
     ["tests/test_attention.py::test_grouped_heads_equal_multi_head_attention_with_copied_kv_heads"]),
    ("r2_att_cache_first_pos_from_keep", "models/att.py",
     "first_pos -= self.k.shape[-2]",
     "first_pos -= self.keep",
     [MEANING + "test_cache_fed_in_chunks_of_any_size_equals_the_full_forward"]),
    ("r2_att_rope_qk_from_zero", "models/att.py",
     "cos, sin = rope_angles(start_pos, T, q.shape[-1], x.device)",
     "cos, sin = rope_angles(0, T, q.shape[-1], x.device)",
     ["tests/test_attention.py::test_cache_equals_sliding_recomputation_past_block_size"]),
    # --- models/kernels.py ---
    ("r2_kernel_bias_dropped", "models/kernels.py",
     "return (out + decoder.bias).view(B, T, 1)",
     "return out.view(B, T, 1)",
     ["tests/test_kernels.py::test_multi_head_codebook_read_equals_its_formula"]),
    ("r2_kernel_backward_sign", "models/kernels.py",
     "grad_q = (u - out * r) * (g * ctx.scale)",
     "grad_q = (u + out * r) * (g * ctx.scale)",
     ["tests/test_kernels.py::test_multi_head_codebook_read_equals_its_formula"]),
    ("r2_kernel_scale_dropped", "models/kernels.py",
     "keys = codes.mT * scale",
     "keys = codes.mT",
     ["tests/test_kernels.py::test_multi_head_codebook_read_equals_its_formula"]),
    # --- vqvae_imagenet.py ---
    ("r2_vqvae_bernoulli_inverted", "data/images.py",
     "return torch.tensor([rng.random() < ratio for _ in range(n)]).view(grid, grid)",
     "return torch.tensor([rng.random() > ratio for _ in range(n)]).view(grid, grid)",
     ["tests/test_vqvae.py::test_masking_zeroes_the_expected_patches"]),
    # (the image run's life is runs.Training's since issue 36: the same line as r2_train_failure_keeps_partial's)
    ("r2_vqvae_discard_keeps_partial", "runs.py",
     "discard_run_dir(self.partial)  # a run directory is complete or absent",
     "pass",
     [MEANING + "test_a_vqvae_run_that_fails_after_its_run_directory_exists_leaves_nothing"]),
    ("r2_vqvae_swap_keeps_bottleneck", "vqvae_run.py",
     'kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.")}',
     'kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.ln")}',
     ["tests/test_vqvae.py::test_swap_keeps_encoder_and_decoder"]),
    # (Tried and left out as harmless: --resume dropping "lr" from the settings it takes from the
    # run. AdamW's load_state_dict restores each parameter group's lr from last.pt, so the weights
    # are the same; the resume test runs at --lr 0.001 and passes with that bug.)
    ("r2_vqvae_resume_forgets_rng", "distributed.py",
     'torch.set_rng_state(states[rank]["cpu"])',
     "pass",
     ["tests/test_vqvae.py::test_resume_gives_the_same_weights_as_one_straight_run"]),
    # --- sweep.py ---
    ("r2_sweep_ranks_descending", "sweep.py",
     "rows = sorted(known, key=lambda r: r[0]) + [r for r in rows if not finite(r[0])]",
     "rows = sorted(known, key=lambda r: r[0], reverse=True) + [r for r in rows if not finite(r[0])]",
     [MEANING + "test_ranked_table_orders_by_the_protocols_score"]),
    ("r2_sweep_scores_swapped", "sweep.py",
     'score = metrics["val_mse_last"] if config["split"] == "chrono" else metrics["val_loss"]',
     'score = metrics["val_loss"] if config["split"] == "chrono" else metrics["val_mse_last"]',
     [MEANING + "test_ranked_table_orders_by_the_protocols_score"]),
    ("r2_sweep_first_option_fastest", "sweep.py",
     "for combo in itertools.product(*choices):",
     "for combo in (c[::-1] for c in itertools.product(*choices[::-1])):",
     ["tests/test_experiments.py::test_expand_grid_is_the_product_in_order_and_keeps_flags"]),
    # --- runs.py ---
    ("r2_discard_keeps_partial", "runs.py",   # the same bug one level down
     "shutil.rmtree(partial, ignore_errors=True)",
     "pass",
     [MEANING + "test_a_training_that_fails_after_its_run_directory_exists_leaves_nothing"]),
    ("r2_latest_run_is_oldest", "runs.py",
     "return os.path.join(path, found[-1])",
     "return os.path.join(path, found[0])",
     [MEANING + "test_run_directories_latest_and_hidden_partials"]),
    ("r2_partial_counts_as_run", "runs.py",
     'return (not os.path.basename(os.path.normpath(path)).startswith(".")',
     'return (not os.path.basename(os.path.normpath(path)).startswith("..")',
     [MEANING + "test_run_directories_latest_and_hidden_partials"]),
    ("r2_finished_run_keeps_the_dot", "runs.py",
     'name = hidden[1:-len(".partial")].rsplit("-", 1)[0]',
     'name = hidden[0:-len(".partial")].rsplit("-", 1)[0]',
     [MEANING + "test_run_directories_latest_and_hidden_partials"]),
    # least squares under --norm revin fits the rounding direction (weights in the thousands)
    ("r2_lstsq_fits_rounding", "models/linear.py",
     'rcond=1e-6, driver="gelsd"', 'driver="gelsd"',
     ["tests/test_baselines_and_errors.py::test_linear_under_revin_fits_no_rounding_direction"]),
]


# Round 3 (issue "Tests that bite, round three", item 3): written from the product files before
# looking at the tests: for each module the one-line bugs a developer could plausibly make (an
# edge off by one, a statistic from the wrong part, a non-default setting mishandled, a check
# weakened, a record key dropped, a message that names the wrong cause); only then were the tests
# that should catch each one looked up. Where none did, a test was added (tests/test_bite_three.py).
BITE3 = "tests/test_bite_three.py::"
RECORD = "tests/test_run_record.py::"
FIRST = "tests/test_first_hour.py::"
STAMPS = "tests/test_timestamps.py::"
DATA = "tests/test_data.py::"
MUTATIONS_ROUND3 = [
    # --- forecast.py ---
    # another series (--dataset OTHER) z-scored with its whole series' statistics, test part included
    ("r3_other_series_whole_statistics", "forecast.py",
     "_, mean, std = normalise(series.values[:train_end])",
     "_, mean, std = normalise(series.values)",
     [BITE3 + "test_another_series_is_normalised_with_its_own_training_part[global]"]),
    # the training CSV edited, given on purpose: the stored statistics of the old file are reused
    ("r3_same_series_ignores_sha256", "forecast.py",
     'same = series.name == config["dataset"] and getattr(series, "sha256", None) == config.get("sha256")',
     'same = series.name == config["dataset"]',
     [BITE3 + "test_an_edited_csv_given_on_purpose_is_normalised_with_its_own_training_part"]),
    # seasonal naive past one season: the value one season back, which lies after the origin
    ("r3_seasonal_naive_one_season_back", "forecast.py",
     "lag = season * np.ceil(np.arange(1, horizon + 1) / season).astype(int)",
     "lag = np.full(horizon, season)",
     [BITE3 + "test_seasonal_naive_repeats_the_last_full_season"]),
    # the validation pool loses the first origin whose last step reaches the validation part
    ("r3_validation_pool_first_origin_dropped", "forecast.py",
     "first = max(run.time_steps, run.train_end - horizon + 1)",
     "first = max(run.time_steps, run.train_end - horizon + 2)",
     [MEANING + "test_calibration_never_reads_the_test_part_and_counts_by_hand"]),
    # --future's interval from the oldest errors of the window instead of the latest
    ("r3_future_calibrates_on_oldest_errors", "forecast.py",
     "r = residual[inside[:, k], k][-window:]",
     "r = residual[inside[:, k], k][:window]",
     [BITE3 + "test_future_calibration_takes_the_latest_errors_of_each_step"]),
    # a model.pt of another --norm: the error blames the weights, not the norm
    ("r3_norm_mismatch_not_named", "config.py",
     'named = (config["model"], json_form(config["model_args"]), config.get("norm", held[2]), config["seed"])',
     'named = (config["model"], json_form(config["model_args"]), held[2], config["seed"])',
     [BITE3 + "test_a_model_pt_of_another_norm_is_named_as_such"]),
    # the backtest's windows end at the origin itself: the model sees the value it forecasts
    ("r3_rollout_window_includes_origin", "forecast.py",
     "windows = torch.stack([z[o - T:o] for o in origins[i:i + chunk]])",
     "windows = torch.stack([z[o - T + 1:o + 1] for o in origins[i:i + chunk]])",
     [BITE3 + "test_forecasts_in_original_units_use_the_training_parts_statistics[global]"]),
    # --- data/ ---
    ("r3_boundaries_train_end_floor", "data/windows.py",
     "train_end = round(n_values * fractions[0])",
     "train_end = int(n_values * fractions[0])",
     [MEANING + "test_boundaries_by_hand_on_non_default_fractions", BITE3 + "test_boundaries_round_to_the_nearest_value"]),
    ("r3_fractions_below_one_accepted", "data/windows.py",
     "abs(sum(fractions) - 1) > 1e-6",
     "sum(fractions) - 1 > 1e-6",
     [BITE3 + "test_boundaries_refuse_fractions_that_do_not_sum_to_one_or_hold_a_zero"]),
    ("r3_time_steps_one_value_short", "data/windows.py",
     "if n_values < time_steps + 2:",
     "if n_values < time_steps + 1:",
     [DATA + "test_time_steps_limits"]),
    ("r3_random_split_seed", "data/windows.py",
     "g = torch.Generator().manual_seed(SPLIT_SEED)",
     "g = torch.Generator().manual_seed(0)",
     [DATA + "test_random_split_is_the_logs"]),
    # repeated times reported as rows out of order (the wrong cause, the wrong advice)
    ("r3_repeated_times_called_unsorted", "data/csvfile.py",
     "back = np.concatenate([[False], step < 0])",
     "back = np.concatenate([[False], step <= 0])",
     [STAMPS + "test_repeated_times_are_an_error_naming_them"]),
    # YYYYMM integers: December is not taken for a month, so the column stays integers
    ("r3_december_not_a_month", "data/csvfile.py",
     "1 <= int(c[4:]) <= 12",
     "1 <= int(c[4:]) < 12",
     [STAMPS + "test_integer_times_stay_integers"]),
    # a first field of 12 taken for a day: December dates month-first are called mixed
    ("r3_day_first_at_twelve", "data/csvfile.py",
     "day_first = next((k for k, a in zip(unordered, first) if a > 12), None)",
     "day_first = next((k for k, a in zip(unordered, first) if a >= 12), None)",
     [DATA + "test_dates", BITE3 + "test_month_first_dates_in_december_are_month_first"]),
    ("r3_csv_column_index_lost", "data/csvfile.py",
     "utc_offset=utc_offset, column_index=col,",
     "utc_offset=utc_offset, column_index=None,",
     [RECORD + "test_a_repeated_column_name_is_found_again_by_its_position"]),
    ("r3_sha256_of_the_path", "data/csvfile.py",
     "sha256=hashlib.sha256(raw).hexdigest()",
     "sha256=hashlib.sha256(path.encode()).hexdigest()",
     [DATA + "test_path_and_checksum"]),
    ("r3_ffill_takes_the_next_value", "data/csvfile.py",
     "out[gaps] = values[before]",
     "out[gaps] = values[after]",
     [DATA + "test_fill_modes"]),
    ("r3_month_end_anchor_min", "data/future.py",
     "anchor = dom.max()",
     "anchor = dom.min()",
     [STAMPS + "test_month_ends_continue_on_month_ends"]),
    ("r3_business_days_repeat_last", "data/future.py",
     "np.busday_offset(day[-1], ahead)",
     "np.busday_offset(day[-1], ahead - 1)",
     [STAMPS + "test_business_days_skip_weekends"]),
    # future times with a UTC offset returned on the wall clock, not in UTC like series.time
    ("r3_future_times_left_on_wall_clock", "data/future.py",
     "return times - last, how",
     "return times, how",
     [STAMPS + "test_times_with_a_utc_offset_continue_in_that_offset"]),
    ("r3_membrane_subsampled", "data/__init__.py",
     "values = raw.reshape(-1, MEMBRANE_DECIMATION).mean(1)",
     "values = raw[::MEMBRANE_DECIMATION]",
     [DATA + "test_embedded_data_sets_are_real_recordings"]),
    # --- train.py ---
    # chrono's epoch loss the mean of the batch means (a short last batch weighs as a full one)
    ("r3_chrono_train_loss_batch_mean", "train.py",
     "train_loss = total.item() / seen if honest else torch.stack(batch_means).mean().item()",
     "train_loss = torch.stack(batch_means).mean().item()",
     [BITE3 + "test_chrono_train_loss_is_the_mean_over_windows_and_the_logs_the_mean_of_batches"]),
    ("r3_partial_epoch_marked_complete", "train.py",
     "complete=seen == n)",
     "complete=True)",
     [FIRST + "test_a_partial_epoch_is_marked_and_never_chosen_even_when_best[chrono]"]),
    ("r3_sha256_not_recorded", "train.py",
     '"sha256": series.sha256,',
     '"sha256": None,',
     [RECORD + "test_an_edited_csv_is_refused_unless_given_on_purpose"]),
    ("r3_column_index_not_recorded", "train.py",
     '"column_index": getattr(series, "column_index", None),',
     '"column_index": None,',
     [RECORD + "test_a_repeated_column_name_is_found_again_by_its_position"]),
    # --- runs.py: the Training class ---
    # --resume to as many epochs as were run: accepted, nothing trained, the run rewritten
    ("r3_resume_to_equal_epochs_accepted", "runs.py",
     'if self.config["epochs"] <= self.resumed_from:',
     'if self.config["epochs"] < self.resumed_from:',
     ["tests/test_bad_input.py::test_train_bad_input[resume to fewer epochs]"]),
    ("r3_usable_complete_or_finite", "runs.py",
     'return bool(row["complete"]) and all(',
     'return bool(row["complete"]) or all(',
     [FIRST + "test_a_partial_epoch_is_marked_and_never_chosen_even_when_best[chrono]"]),
    # the run written only at the end: a second Ctrl-C (or a crash) loses every epoch
    ("r3_no_write_after_each_epoch", "runs.py",
     'self.write(model, interrupted=True)  # "interrupted" until save() says how it ended',
     'pass',
     [BITE3 + "test_each_complete_epoch_is_on_disk_before_the_next_begins"]),
    ("r3_interrupted_never_recorded", "runs.py",
     "self.write(model, interrupted=self.stopped, plot=True)",
     "self.write(model, interrupted=False, plot=True)",
     ["tests/test_ctrl_c.py::test_one_ctrl_c_saves_exits_130_and_says_how_to_go_on"]),
    # model.pt without its norm: a model.pt of another norm is no longer told apart
    ("r3_model_pt_without_norm", "runs.py",
     '"norm": self.config.get("norm", "global"), "seed": self.config.get("seed"), "epoch": best["epoch"]}',
     '"seed": self.config.get("seed"), "epoch": best["epoch"]}',
     [BITE3 + "test_a_model_pt_of_another_norm_is_named_as_such"]),
    # --resume forgets the best score: the first resumed epoch replaces a better earlier one
    ("r3_resume_forgets_best_score", "runs.py",
     '"score": self.last["best_score"],',
     '"score": float("inf"),',
     [BITE3 + "test_training_keeps_the_best_usable_epoch_across_a_resume"]),
    ("r3_resume_repeats_last_epoch", "runs.py",
     'self.first = self.rows[-1]["epoch"] + 1 if self.rows else 1',
     'self.first = self.rows[-1]["epoch"] if self.rows else 1',
     [HONEST + "test_resume_gives_the_same_weights_as_an_uninterrupted_run"]),
    ("r3_no_usable_epoch_keeps_trained", "runs.py",
     'self.best = {"epoch": 0, "score": float("inf"), "state": self.initial}',
     'self.best = {"epoch": 0, "score": float("inf"), "state": copy.deepcopy(model.state_dict())}',
     [RECORD + "test_a_training_that_diverges_keeps_the_untrained_model"]),
    ("r3_chrono_selects_by_val_loss", "runs.py",
     'self.select = "val_mse_last" if config.get("split") == "chrono" else None',
     'self.select = "val_loss" if config.get("split") == "chrono" else None',
     [HONEST + "test_chrono_keeps_the_best_validation_epoch"]),
    # a second Ctrl-C before any epoch was saved names the run directory it just removed
    ("r3_interrupted_names_discarded_dir", "runs.py",
     "raise Interrupted(self.dir if self.saved else None) from None",
     "raise Interrupted(self.dir) from None",
     [BITE3 + "test_a_second_ctrl_c_before_any_epoch_is_saved_names_no_run"]),
    # --- config.py ---
    ("r3_run_name_random_gets_norm", "config.py",
     'if cfg.norm != (CHRONO_NORM if cfg.split == "chrono" else "global"):',
     "if cfg.norm != CHRONO_NORM:",
     [RECORD + "test_every_setting_that_changes_the_numbers_is_in_the_name"]),
    ("r3_random_defaults_to_revin", "config.py",
     'norm = cfg.norm or ("global" if cfg.split == "random" else CHRONO_NORM)',
     "norm = cfg.norm or CHRONO_NORM",
     ["tests/test_norm.py::test_config_records_the_norm_and_the_run_name_tells_it"]),
    ("r3_resolve_fractions_or", "config.py",
     "cfg.val_fraction > 0 and cfg.test_fraction > 0 and cfg.fractions[0] > 0",
     "cfg.val_fraction > 0 and cfg.test_fraction > 0 or cfg.fractions[0] > 0",
     ["tests/test_bad_input.py::test_train_bad_input[fractions leave nothing to train]"]),
    # (Tried and left out as equivalent: --resume ignoring a column_index of 0, which is falsy, and
    # finding the column by its name instead. The first column of that name is column 0 itself.)
    # forecast.py finds the training CSV's column by name, not by the position config.json records
    ("r3_forecast_finds_column_by_name", "forecast.py",
     'column = column if column is not None else config.get("column_index", config["column"])',
     'column = column if column is not None else config["column"]',
     [RECORD + "test_a_repeated_column_name_is_found_again_by_its_position"]),
    # a run from before --norm resumed under chrono's default norm instead of the global it read
    ("r3_resumed_old_run_as_revin", "config.py",
     'values.setdefault("norm", "global")',
     'values.setdefault("norm", CHRONO_NORM)',
     [BITE3 + "test_resumed_takes_the_global_norm_of_a_run_from_before_norm"]),
    # the message of a series cut short swaps now and then
    ("r3_check_series_counts_swapped", "config.py",
     'changes.append(f"{len(series.values)} values now, {n} at training")',
     'changes.append(f"{n} values now, {len(series.values)} at training")',
     ["tests/test_bad_input.py::test_forecast_bad_input[the CSV cut short after training]"]),
    ("r3_read_config_std_zero", "config.py",
     '("normalisation.std", lambda v: _number(v) and v > 0, "a number > 0"),',
     '("normalisation.std", lambda v: _number(v) and v >= 0, "a number > 0"),',
     ["tests/test_baselines_and_errors.py::test_a_config_of_the_wrong_type_is_one_line[normalisation.std=0-forecast.py]"]),
    ("r3_run_name_fractions_swapped", "config.py",
     'parts.append(f"val{cfg.fractions[1]:g}_test{cfg.fractions[2]:g}")',
     'parts.append(f"val{cfg.fractions[2]:g}_test{cfg.fractions[1]:g}")',
     [RECORD + "test_every_setting_that_changes_the_numbers_is_in_the_name"]),
    # --- scoring.py ---
    ("r3_smape_percent_halved", "scoring.py",
     "200 * np.abs(e)",
     "100 * np.abs(e)",
     [HONEST + "test_naive_mase_on_the_training_part_is_one_by_construction"]),
    ("r3_errors_count_filled_cells", "scoring.py",
     "n = np.maximum(scored.sum(axis), 1)",
     "n = np.maximum(np.ones_like(scored).sum(axis), 1)",
     [HONEST + "test_filled_values_are_never_scored"]),
    ("r3_min_errors_geq", "scoring.py",
     "while math.ceil((n + 1) * level / 100) > n:",
     "while math.ceil((n + 1) * level / 100) >= n:",
     [BITE3 + "test_future_calibration_takes_the_latest_errors_of_each_step"]),
    # adaptive conformal: an error equal to its half-width counted a miss (the interval is closed)
    ("r3_aci_tie_is_a_miss", "scoring.py",
     "miss = errors[applied, h] > halfwidth[applied, h]",
     "miss = errors[applied, h] >= halfwidth[applied, h]",
     [BITE3 + "test_adaptive_intervals_by_hand_with_an_error_on_the_edge"]),
    # --- outputs.py ---
    ("r3_verdict_steps_from_zero", "outputs.py",
     "for h, k in enumerate(kind, 1):",
     "for h, k in enumerate(kind):",
     [FIRST + "test_verdict_names_the_steps_where_the_model_beats_naive"]),
    # "(horizon 24, not 24: ...)" when the test part is exactly as long as the horizon asked for
    ("r3_horizon_note_when_equal", "outputs.py",
     "if asked and asked > H:",
     "if asked and asked >= H:",
     [BITE3 + "test_the_horizon_note_appears_only_when_the_horizon_was_cut"]),
    # future.csv's decimals fixed at 5 whatever the series' scale
    ("r3_future_decimals_ignore_std", "outputs.py",
     "math.ceil(-math.log10(run.std * 1e-5))",
     "math.ceil(-math.log10(1e-5))",
     [BITE3 + "test_future_csv_keeps_five_digits_of_the_series_std"]),
    # --- models/ ---
    ("r3_revin_sample_std", "models/norm.py",
     "x.var(1, keepdim=True, unbiased=False)",
     "x.var(1, keepdim=True, unbiased=True)",
     [BITE3 + "test_forecasts_in_original_units_use_the_training_parts_statistics[revin]"]),
    ("r3_last_norm_first_value", "models/norm.py",
     "loc, scale = x[:, -1:], 1.0",
     "loc, scale = x[:, :1], 1.0",
     [BITE3 + "test_forecasts_in_original_units_use_the_training_parts_statistics[last]"]),
    ("r3_solve_fits_raw_targets", "models/norm.py",
     "self.model.solve(xn, (y - loc[:, 0]) / (scale[:, 0] if torch.is_tensor(scale) else scale))",
     "self.model.solve(xn, y)",
     ["tests/test_baselines_and_errors.py::test_linear_under_revin_fits_no_rounding_direction"]),
    ("r3_rollout_slides_the_wrong_end", "models/rollout.py",
     "window = torch.cat([window[:, 1:], preds[:, i].view(B, 1, 1)], dim=1)",
     "window = torch.cat([window[:, :-1], preds[:, i].view(B, 1, 1)], dim=1)",
     [BITE3 + "test_forecasts_in_original_units_use_the_training_parts_statistics[global]"]),
    # a KV cache allowed under --norm last (every new window is re-normalised: no cached key holds)
    ("r3_kv_cache_under_norm_last", "models/rollout.py",
     'if norm != "global":',
     'if norm == "revin":',
     [BITE3 + "test_models_without_a_cache_recompute_and_refuse_it_with_their_reason[last-linear]"]),
    ("r3_adam_beta2", "models/kernels.py",
     "beta1=0.9, beta2=0.999, weight_decay=0.0",
     "beta1=0.9, beta2=0.99, weight_decay=0.0",
     ["tests/test_train.py::test_adam_is_torchs_fused_adam_bit_for_bit"]),
    ("r3_vqlnmlp_scale_one_over_d", "models/vqlnmlp.py",
     "scale = 1 / math.sqrt(q.shape[-1])",
     "scale = 1 / q.shape[-1]",
     ["tests/test_models.py::test_codebook_read_matches_the_plain_formula"]),
    # --- sweep.py ---
    ("r3_sweep_merges_nothing", "sweep.py",
     'key = tuple(item for item in items if item[0].lstrip("-") not in inert)',
     "key = tuple(items)",
     ["tests/test_baselines_and_errors.py::test_a_sweep_runs_naive_once_for_any_learning_rate"]),
    ("r3_sweep_diverged_ranked_first", "sweep.py",
     "rows = sorted(known, key=lambda r: r[0]) + [r for r in rows if not finite(r[0])]",
     "rows = [r for r in rows if not finite(r[0])] + sorted(known, key=lambda r: r[0])",
     [RECORD + "test_the_sweep_table_ranks_a_run_without_a_score_last"]),
    # --- vqvae_imagenet.py ---
    ("r3_vqvae_validation_takes_80", "data/images.py",
     "n_train = int(len(files) * (1 - VAL_FRACTION))",
     "n_train = int(len(files) * VAL_FRACTION)",
     ["tests/test_vqvae.py::test_validation_is_the_originals_random_split_of_train"]),
    # a folder of fewer than 20 images: no test image at all
    ("r3_vqvae_small_folder_no_test", "data/images.py",
     "hold = max(1, len(files) // FOLDER_PART)",
     "hold = len(files) // FOLDER_PART",
     [BITE3 + "test_vqvae_folder_splits_by_hand"]),
    # --accumulate: the last, short group of batches averaged as if it were full
    ("r3_vqvae_short_group_full_weight", "vqvae_imagenet.py",
     "group_images = min((first + cfg.accumulate) * cfg.batch_size, len(sampler)) - first * cfg.batch_size",
     "group_images = cfg.accumulate * cfg.batch_size",
     [BITE3 + "test_vqvae_accumulated_step_is_the_mean_over_the_groups_images"]),
    # after a swap, the trained model tested on other masks than the source and the untrained swap
    ("r3_vqvae_swap_tested_on_other_masks", "vqvae_imagenet.py",
     'return 0 if config.get("swap_ffn_with_vq") else epoch',
     "return epoch",
     [BITE3 + "test_vqvae_test_masks_after_a_swap_are_the_sources"]),
    # (runs.Training's epochs() since issue 36: the same line as r3_resume_repeats_last_epoch's)
    ("r3_vqvae_resume_repeats_epoch", "runs.py",
     'self.first = self.rows[-1]["epoch"] + 1 if self.rows else 1',
     'self.first = self.rows[-1]["epoch"] if self.rows else 1',
     ["tests/test_vqvae.py::test_resume_gives_the_same_weights_as_one_straight_run"]),
    # issue 35's two image survivors (no test caught them): a resumed --seed 3 run that continues with
    # seed 0's crops, masks and order; an ImageNet tree's validation and test swapped under --val_from train
    ("r3_vqvae_resume_takes_default_seed", "vqvae_run.py",
     '"weight_decay", "seed",',
     '"weight_decay",',
     ["tests/test_vqvae.py::test_resume_gives_the_same_weights_as_one_straight_run"]),
    ("r3_vqvae_tree_val_and_test_swapped", "data/images.py",
     'splits["test"], splits["val"] = splits["val"], val',
     'splits["test"], splits["val"] = val, splits["val"]',
     ["tests/test_vqvae.py::test_an_imagenet_tree_validates_on_a_fifth_of_train_and_tests_on_val"]),
    # issue 36: an epoch a Ctrl-C cut short kept (its half-trained weights saved as the last epoch, so
    # --resume skips the rest of it); the run named only at its end (a killed process leaves it hidden)
    ("r3_vqvae_cut_epoch_kept", "vqvae_imagenet.py",
     "the run keeps the ones before it\n                raise KeyboardInterrupt",
     "the run keeps the ones before it\n                break",
     ["tests/test_vqvae_ctrl_c.py::test_an_epoch_cut_by_ctrl_c_is_trained_again_by_resume_bit_for_bit"]),
    ("r3_vqvae_named_at_the_end", "vqvae_run.py",
     "self.dir, self.partial = runs.finish_run_dir(self.partial), None",
     "pass",
     ["tests/test_vqvae_ctrl_c.py::test_a_killed_run_keeps_its_saved_epochs_under_its_name"]),
    # a fresh audit's two survivors (2026-12-05): choices that change no number
    ("r3_negative_seed_unnamed", "config.py",
     "    if cfg.seed != 0:",
     "    if cfg.seed > 0:",
     [BITE3 + "test_every_seed_but_zero_names_its_run"]),
    ("r3_sweep_workers_all_threads", "sweep.py",
     "pool.submit(run_one, c, 1)",
     "pool.submit(run_one, c, None)",
     [BITE3 + "test_a_sweep_on_several_workers_gives_each_training_one_thread"]),
]


# Round 4 (issue 35, "Nothing quietly wrong, round four"): the audit's survivors, each written from
# the product code before the tests (config.py, runs.py, data/csvfile.py, scoring.py,
# log_protocol.py), the three bugs only the golden outputs caught, and ten more of our own in the
# same files, written the same way; where none of the suite's tests caught one, a test was added
# (tests/test_bite_four.py, tests/test_nothing_quiet.py, tests/test_bad_input.py).
BITE4 = "tests/test_bite_four.py::"
QUIET = "tests/test_nothing_quiet.py::"
BAD = "tests/test_bad_input.py::"
MUTATIONS_ROUND4 = [
    # --- the audit's survivors ---
    ("r4_resume_keeps_the_old_data_dir", "config.py",
     'run_data_dir(saved["dataset"], cfg.data_dir or saved.get("data_dir"), saved.get("source"))',
     'run_data_dir(saved["dataset"], saved.get("data_dir") or cfg.data_dir, saved.get("source"))',
     [BITE4 + "test_resume_reads_the_data_dir_it_is_given_not_the_runs_old_one"]),
    ("r4_least_squares_named_by_batch_size", "config.py",
     'cfg.batch_size != cls.train_defaults["batch_size"] and not hasattr(cls, "solve"):',
     'cfg.batch_size != cls.train_defaults["batch_size"]:',
     [BITE4 + "test_a_batch_size_is_in_the_name_only_where_it_changes_the_numbers[linear-False]"]),
    ("r4_follow_overrides_omp_num_threads", "runs.py",
     'self.fixed = (os.environ.get("VQSEQ_THREADS") != "follow" or "OMP_NUM_THREADS" in os.environ',
     'self.fixed = (os.environ.get("VQSEQ_THREADS") != "follow"',
     [BITE4 + "test_threads_that_follow_the_machine_leave_the_users_omp_num_threads_alone"]),
    ("r4_fraction_of_a_second_padded_left", "data/csvfile.py",
     '[int((m[8] or "0").ljust(6, "0"))]',
     '[int((m[8] or "0").rjust(6, "0"))]',
     [BITE4 + "test_fractional_seconds_are_read_as_written"]),
    ("r4_adaptive_pool_takes_filled_values", "scoring.py",
     "if scored[applied, h]:",
     "if scored[applied, h] or True:",
     [BITE4 + "test_adaptive_intervals_never_learn_from_a_filled_in_value"]),
    ("r4_absolute_batch_positions_from_zero", "log_protocol.py",
     "next_value(model, x[i:i + 1], start_pos=first + i)",
     "next_value(model, x[i:i + 1], start_pos=i)",
     [BITE4 + "test_absolute_positions_number_each_window_by_its_place_in_the_series"]),
    # --- caught by the golden outputs only, before ---
    ("r4_adaptive_median_over_the_steps", "outputs.py",
     'np.median(adaptive["halfwidth"], axis=0)',
     'np.median(adaptive["halfwidth"], axis=1)',
     [BITE4 + "test_the_adaptive_median_is_over_the_origins_of_each_step"]),
    ("r4_adaptive_level_floor_at_zero", "scoring.py",
     "a = min(max(a + gamma * (alpha - miss), -gamma), 1 + gamma)",
     "a = min(max(a + gamma * (alpha - miss), 0), 1 + gamma)",
     [BITE4 + "test_an_adaptive_level_may_fall_below_zero_and_climbs_back_from_there"]),
    ("r4_codebook_read_unnormalised", "models/norm.py",
     "model.code_probs(self.normalise(x)[0], start_pos)",
     "model.code_probs(x, start_pos)",
     [BITE4 + "test_codebook_usage_under_a_window_norm_is_of_what_the_model_reads"]),
    # --- ten more of our own, in the same files ---
    # config.py: a series read from another column passes the changed-data check
    ("r4_check_series_ignores_the_column", "config.py",
     'if saved.get("column") is not None and str(series.column) != str(saved["column"]):',
     'if False:',
     [BAD + "test_forecast_bad_input[a column renamed after training]"]),
    # config.py: --positions with --future accepted and ignored
    ("r4_future_ignores_the_logs_options", "config.py",
     "if args.future is not None and backtest_only + log_only:",
     "if args.future is not None and backtest_only:",
     [BAD + "test_forecast_bad_input[positions with --future]"]),
    # config.py: a hand-edited config.json without its checksums turns the check off again
    ("r4_no_sha256_accepted", "config.py",
     'if saved["dataset"] not in EMBEDDED and not (saved.get("sha256") or saved.get("values_sha256")):',
     'if saved["dataset"] in EMBEDDED and not (saved.get("sha256") or saved.get("values_sha256")):',
     [BAD + "test_forecast_bad_input[config.json's sha256 deleted]"]),
    # runs.py: model.pt told apart by its size only (a resumed model.pt has the same size)
    ("r4_weights_stamp_is_the_size", "runs.py",
     "return s.st_ino, s.st_size, s.st_mtime_ns",
     "return s.st_size",
     [QUIET + "test_a_forecast_whose_model_pt_was_replaced_while_it_ran_is_not_written"]),
    # runs.py: True taken for 1 (forecast.backtest(run, horizon=True))
    ("r4_a_flag_is_a_whole_number", "runs.py",
     "if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):",
     "if value is not None and not isinstance(value, numbers.Integral):",
     [QUIET + "test_the_python_api_answers_bad_arguments_in_one_line_and_takes_a_path"]),
    # runs.py: a Ctrl-C in the first epoch keeps the untrained run again
    ("r4_first_epoch_ctrl_c_keeps_a_run", "runs.py",
     "raise KeyboardInterrupt  # __exit__ discards the run directory",
     "pass",
     ["tests/test_first_hour.py::test_stopped_in_the_first_epoch_nothing_is_left"]),
    # data/csvfile.py: day/month dates continued month/day in future.csv
    ("r4_day_first_written_month_first", "data/csvfile.py",
     'f"%d{sep}%m{sep}%Y" if day_first else f"%m{sep}%d{sep}%Y"',
     'f"%m{sep}%d{sep}%Y" if day_first else f"%d{sep}%m{sep}%Y"',
     [QUIET + "test_future_csv_writes_the_times_as_the_csv_did"]),
    # data/csvfile.py: 1959Q1 read as the quarter's last month
    ("r4_quarter_on_its_last_month", "data/csvfile.py",
     "times[k] = (None, int(q[1]), 3 * int(q[3]) - 2, 1)",
     "times[k] = (None, int(q[1]), 3 * int(q[3]), 1)",
     [QUIET + "test_quarterly_labels_are_times_and_the_future_is_written_alike"]),
    # scoring.py: MASE's scale counts differences to and from filled-in values
    ("r4_naive_scale_counts_filled_values", "scoring.py",
     "ok = observed[season:] & observed[:-season]",
     "ok = observed[season:]",
     [BITE4 + "test_mase_scale_skips_differences_with_a_filled_in_value"]),
    # log_protocol.py: regressive positions of an absolute evaluation one window late
    ("r4_absolute_regressive_positions_late", "log_protocol.py",
     'first_pos = start - time_steps if positions == "absolute" else None',
     'first_pos = start if positions == "absolute" else None',
     [BITE4 + "test_absolute_positions_number_each_window_by_its_place_in_the_series"]),
    # log_protocol.py: the log's MAE scores filled-in values
    ("r4_log_mae_scores_filled_values", "log_protocol.py",
     'metrics[f"mae_{kind}"] = float(np.mean(np.abs(pred - actual)[scored]))',
     'metrics[f"mae_{kind}"] = float(np.mean(np.abs(pred - actual)))',
     [BITE4 + "test_the_logs_errors_skip_filled_in_values"]),
]


FIELD = "tests/test_field.py::"
# Issues 34 and 37 (the field's yardstick; a million values): one-line bugs in the code they added,
# each written from the product code before looking at the tests that should catch it.
MUTATIONS_ROUND5 = [
    # the field's split forgets where its test part ends: the unused rows join the test part
    ("r5_field_split_test_end_is_n", "data/windows.py",
     "        return tuple(field_split)",
     "        return (field_split[0], field_split[1], n_values)",
     [FIELD + "test_a_field_split_cuts_at_its_borders_and_leaves_the_rest_unused"]),
    # the field's MSE divided by the std once, not squared
    ("r5_mse_normalised_by_std", "forecast.py",
     'metrics[name].update(mse_normalised=metrics[name]["mse"] / run.std ** 2,',
     'metrics[name].update(mse_normalised=metrics[name]["mse"] / run.std,',
     [FIELD + "test_a_backtest_stays_in_the_test_part_and_its_normalised_errors_are_the_hand_computed_ones"]),
    # origins run to the series' end, past the test part
    ("r5_origins_past_the_test_part", "forecast.py",
     "candidates = np.arange(run.val_end, run.test_end - horizon + 1)",
     "candidates = np.arange(run.val_end, len(run.z) - horizon + 1)",
     [FIELD + "test_a_backtest_stays_in_the_test_part_and_its_normalised_errors_are_the_hand_computed_ones"]),
    # a target window read at its window's start: the targets are the inputs
    ("r5_windows_ignore_the_offset", "data/windows.py",
     "rows = self.starts[key] + self.offset",
     "rows = self.starts[key]",
     ["tests/test_data.py::test_windows_are_read_out_of_the_series_not_materialised"]),
    # ETTh1 cut 70/10/20 like any CSV
    ("r5_no_field_split_for_ett", "config.py",
     'cfg.split == "chrono" and cfg.dataset in FIELD_SPLITS:',
     'cfg.split == "chrono" and cfg.dataset in ():',
     [FIELD + "test_naive_and_linear_on_etth1_at_96_steps_are_the_independent_computation"]),
    # the last position read at position 0: a positional table's first row for every step
    ("r5_last_position_at_zero", "models/rollout.py",
     "    return model(x[:, -1:], start_pos=start_pos + T - 1)[:, -1, 0]",
     "    return model(x[:, -1:], start_pos=start_pos)[:, -1, 0]",
     ["tests/test_attention.py::test_the_last_position_forecasts_what_recomputing_every_window_does"]),
    # held statistics: forecasts left in the window's units, the origin's level not added back
    ("r5_frozen_forgets_the_level", "models/rollout.py",
     "            + loc[:, 0]",
     "            + 0 * loc[:, 0]",
     ["tests/test_norm.py::test_origin_statistics_feed_back_through_the_inner_model_by_hand"]),
    # passive waiting only where five cores are busy: never on the machines that need it
    ("r5_wait_policy_threshold", "runs.py",
     "    if others < 0.5:",
     "    if others < 5:",
     ["tests/test_threads.py::test_a_busy_machine_gets_passive_waiting_and_an_idle_one_keeps_spinning"]),
    # a plain ISO month read one month late
    ("r5_plain_iso_month", "data/csvfile.py",
     "months = ((year - 1970) * 12 + month - 1)",
     "months = ((year - 1970) * 12 + month)",
     ["tests/test_csv_fuzz.py::test_the_fast_paths_read_what_the_cell_by_cell_paths_read"]),
    # a blank row kept by the fast split (the csv path skips it)
    ("r5_plain_keeps_blank_rows", "data/csvfile.py",
     "if all(\"\" in column for column in columns) and not all(map(any, zip(*columns))):",
     "if False:",
     ["tests/test_csv_fuzz.py::test_the_fast_paths_read_what_the_cell_by_cell_paths_read"]),
    # the adaptive calibration kept in arrival order, not sorted
    ("r5_adaptive_calibration_unsorted", "scoring.py",
     "bisect.insort(calibration, errors[applied, h])",
     "calibration.append(errors[applied, h])",
     ["tests/test_intervals.py", "tests/test_bite_three.py"]),
    # the reader's freed cells kept resident (issue 37: ~140 bytes a row under all of training)
    ("r5_reader_keeps_freed_memory", "runs.py",
     "    trim(0)\n",
     "    pass\n",
     ["tests/test_data.py::test_a_long_csv_read_leaves_what_it_freed_to_the_system"]),
    # evaluation's big blocks kept in the heap (issue 37: the peak varied by 350 MB)
    ("r5_big_blocks_kept", "runs.py",
     "    _mallopt(limit)\n    try:\n        yield",
     "    try:\n        yield",
     ["tests/test_train.py::test_evaluation_gives_its_big_blocks_back_and_training_keeps_them_again"]),
    ("r5_evaluation_outside_big_blocks_returned", "train.py",
     "    with runs.big_blocks_returned():  # a chunk's scores",
     "    if True:  # a chunk's scores",
     ["tests/test_train.py::test_evaluation_and_codebook_usage_run_with_big_blocks_returned"]),
    # the codebook's use counted from the last chunk alone
    ("r5_usage_of_the_last_chunk", "models/__init__.py",
     "            total += p.sum(0)",
     "            total = p.sum(0)",
     [BITE + "test_codebook_usage_on_a_hand_made_case"]),
    # a run evaluated to its series' end although training recorded where its test part ends
    ("r5_recorded_test_end_ignored", "forecast.py",
     'for k in ("train_end", "val_end", "test_end"))',
     'for k in ("train_end", "val_end", "n_values"))',
     [FIELD + "test_naive_and_linear_on_etth1_at_96_steps_are_the_independent_computation"]),
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
    p.add_argument("--round", type=int, choices=(1, 2, 3, 4, 5), default=None,
                   help="only the first list (issue 18's bugs), the second (issue 23's), the third (round "
                        "three's), the fourth (issue 35's) or the fifth (issues 34 and 37's); default all five")
    p.add_argument("--jobs", type=int, default=1, help="mutations checked at a time")
    p.add_argument("--repo", default=ROOT, help="the repository to copy (default: this one)")
    p.add_argument("--timeout", type=int, default=300, help="seconds for one mutation's tests")
    args = p.parse_args(argv)
    listed = {1: MUTATIONS, 2: MUTATIONS_ROUND2, 3: MUTATIONS_ROUND3, 4: MUTATIONS_ROUND4, 5: MUTATIONS_ROUND5,
              None: MUTATIONS + MUTATIONS_ROUND2 + MUTATIONS_ROUND3 + MUTATIONS_ROUND4 + MUTATIONS_ROUND5}[args.round]
    chosen = [m for m in listed if args.only is None or m[0] in args.only]
    unknown = sorted(set(args.only or ()) - {m[0] for m in listed})
    if unknown:
        p.error(f"unknown mutation {unknown[0]!r}; choose from {', '.join(m[0] for m in listed)}")
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
