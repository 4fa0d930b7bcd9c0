"""Mutation check: put known one-line bugs back, one at a time, and see that a test fails.

    python tests/mutate.py                  # every mutation below; exit 1 if any survives
    python tests/mutate.py --list           # the mutations and the tests each one runs
    python tests/mutate.py --round 2        # only the second list (issue 23)
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
issue 23, written from the code before looking at the tests (both run by default).
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
     'split_series(series.values, cfg.time_steps, cls.target, cfg.split, cfg.fractions)',
     'split_series(series.values, cfg.time_steps, cls.target, "random", cfg.fractions)',
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
     "scale = float(np.mean(np.abs(y[season:] - y[:-season])[ok])) if ok.any() else float(\"nan\")",
     "scale = float(np.mean(np.abs(y[season:])[ok])) if ok.any() else float(\"nan\")",
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
     "if complete and score < self.best[\"score\"]:",
     "if complete:",
     [HONEST + "test_chrono_keeps_the_best_validation_epoch"]),
    # issue 24: an epoch Ctrl-C cut short chosen for model.pt
    ("partial_epoch_chosen", "runs.py",
     "if complete and score < self.best[\"score\"]:",
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
     "candidates = np.arange(run.val_end, len(run.z) - horizon + 1)",
     "candidates = np.arange(run.val_end, len(run.z) - horizon)",
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
     "loss = F.mse_loss(recon.float(), apply_mask(x, mask, args.patch_size)) if len(x) else recon.sum() * 0",
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
     "first = len(x) - n                                  # index of the first predicted window",
     "first = len(x) - n - 1                              # index of the first predicted window",
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
     "y = z[time_steps:].unsqueeze(-1)                     # (N-T, 1)",
     "y = z[time_steps - 1:-1].unsqueeze(-1)               # (N-T, 1)",
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
    ("r2_vqvae_bernoulli_inverted", "vqvae_imagenet.py",
     "return torch.tensor([rng.random() < ratio for _ in range(n)]).view(grid, grid)",
     "return torch.tensor([rng.random() > ratio for _ in range(n)]).view(grid, grid)",
     ["tests/test_vqvae.py::test_masking_zeroes_the_expected_patches"]),
    ("r2_vqvae_discard_keeps_partial", "vqvae_imagenet.py",
     "runs.discard_run_dir(r.partial)  # a run directory is complete or absent",
     "pass",
     [MEANING + "test_a_vqvae_run_that_fails_after_its_run_directory_exists_leaves_nothing"]),
    ("r2_vqvae_swap_keeps_bottleneck", "vqvae_imagenet.py",
     'kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.")}',
     'kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("bottleneck.ln")}',
     ["tests/test_vqvae.py::test_swap_keeps_encoder_and_decoder"]),
    # (Tried and left out as harmless: --resume dropping "lr" from the settings it takes from the
    # run. AdamW's load_state_dict restores each parameter group's lr from last.pt, so the weights
    # are the same; the resume test runs at --lr 0.001 and passes with that bug.)
    ("r2_vqvae_resume_forgets_rng", "vqvae_imagenet.py",
     "set_rng_state(last[\"rng\"], rank, world, device)",
     "pass",
     ["tests/test_vqvae.py::test_resume_gives_the_same_weights_as_one_straight_run"]),
    # --- sweep.py ---
    ("r2_sweep_ranks_descending", "sweep.py",
     "rows.sort(key=lambda r: (r[0] is None, r[0]))",
     "rows.sort(key=lambda r: (r[0] is None, r[0]), reverse=True)",
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
     "return os.path.join(path, runs[-1])",
     "return os.path.join(path, runs[0])",
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
    p.add_argument("--round", type=int, choices=(1, 2), default=None,
                   help="only the first list (issue 18's bugs) or the second (issue 23's); default both")
    p.add_argument("--jobs", type=int, default=1, help="mutations checked at a time")
    p.add_argument("--repo", default=ROOT, help="the repository to copy (default: this one)")
    p.add_argument("--timeout", type=int, default=300, help="seconds for one mutation's tests")
    args = p.parse_args(argv)
    listed = {1: MUTATIONS, 2: MUTATIONS_ROUND2, None: MUTATIONS + MUTATIONS_ROUND2}[args.round]
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
