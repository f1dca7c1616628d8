"""The fields the harness itself writes, in the order a record holds them.

Plugins declare theirs through ``register_fields`` (the gpu backends' device memory and energy,
the deployment runtimes' export sizes and precisions); ``docs/records.md`` lists both, and a test
checks that it lists exactly these.
"""
from __future__ import annotations

from harness.record.field import BOOL, INTEGER, LIST, NUMBER, OBJECT, TEXT, TIMESTAMP, RecordField


def _f(name: str, type_: str, group: str, doc: str, unit: str | None = None, label: str = "") -> RecordField:
    return RecordField(name=name, type=type_, doc=doc, group=group, unit=unit, label=label)


IDENTITY = "identity"
OUTCOME = "outcome"
LATENCY = "latency"
CONTENTION = "contention"
MEMORY = "memory"
SIZE = "size"
QUALITY = "quality"
FIDELITY = "fidelity"
LANGUAGE = "language model"
GENERATION = "generation"
PAIRING = "pairing"
RELATIVE = "relative to the baseline"
METHOD = "method"
TRAINING = "training"
BACKEND = "backend"

CORE_FIELDS: tuple[RecordField, ...] = (
    # -- what was measured -------------------------------------------------------------------------
    _f("run_id", TEXT, IDENTITY, "the run's folder name: <date>-<time>-<4 hex digits>", label="run"),
    _f("cell_id", TEXT, IDENTITY, "hash of the cell's resolved model, dataset, method, backend (all params, defaults "
       "included), seed and training budget; stable across runs, independent of measurement settings", label="cell"),
    _f("suite", TEXT, IDENTITY, "the suite's name"),
    _f("model", TEXT, IDENTITY, "the model's id in the suite (its name unless the suite gave an id)"),
    _f("model_name", TEXT, IDENTITY, "the model plugin's name"),
    _f("dataset", TEXT, IDENTITY, "the dataset's id in the suite (its name unless the suite gave an id)"),
    _f("dataset_name", TEXT, IDENTITY, "the dataset plugin's name"),
    _f("dataset_params", OBJECT, IDENTITY, "the dataset's params, defaults filled in: variants of one dataset are "
       "compared with their own baseline"),
    _f("method", TEXT, IDENTITY, "the method's name (a pipeline's steps joined by ' > '); 'baseline' for the "
       "unchanged model"),
    _f("method_kind", TEXT, IDENTITY, "the method's kind (quantizer, pruner, ..., 'pipeline')", label="kind"),
    _f("method_id", TEXT, IDENTITY, "the method's display id, when the suite gave one"),
    _f("params", OBJECT, IDENTITY, "the method's params, defaults filled in (a pipeline: {steps: [{name, params}]})"),
    _f("search_params", LIST, IDENTITY, "the params the suite searched over (grid or log_grid)"),
    _f("train", OBJECT, IDENTITY, "a training cell's budget (epochs, batch size, optimizer, lr, targets)"),
    _f("backend", TEXT, IDENTITY, "the backend's name"),
    _f("backend_params", OBJECT, IDENTITY, "the backend's params, defaults filled in"),
    _f("seed", INTEGER, IDENTITY, "the cell's seed"),
    _f("batch_size", INTEGER, IDENTITY, "inputs per timed call (a generation record: sequences generated at once)",
       label="batch"),
    _f("prompt_tokens", INTEGER, IDENTITY, "a generation record's prompt length; records are keyed by (cell_id, "
       "batch_size, prompt_tokens)", unit="tokens", label="prompt"),
    _f("new_tokens", INTEGER, IDENTITY, "tokens generated per prompt in a generation record", unit="tokens"),
    # -- how the cell ended ------------------------------------------------------------------------
    _f("status", TEXT, OUTCOME, "ok, failed, oom, timeout or skipped"),
    _f("error", TEXT, OUTCOME, "why the cell did not end ok (the exception, signal, limit or skip reason)"),
    # -- latency -----------------------------------------------------------------------------------
    _f("latency_p50_ms", NUMBER, LATENCY, "median latency per call (a generation record: one generation end to "
       "end)", unit="ms", label="p50 ms"),
    _f("latency_p90_ms", NUMBER, LATENCY, "90th percentile latency per call", unit="ms", label="p90 ms"),
    _f("latency_p99_ms", NUMBER, LATENCY, "99th percentile latency per call", unit="ms", label="p99 ms"),
    _f("latency_mean_ms", NUMBER, LATENCY, "mean latency per call", unit="ms", label="mean ms"),
    _f("latency_std_ms", NUMBER, LATENCY, "standard deviation of the latency per call", unit="ms", label="std ms"),
    _f("latency_iqr_ms", NUMBER, LATENCY, "interquartile range of the latency per call", unit="ms", label="IQR ms"),
    _f("latency_n", INTEGER, LATENCY, "timed calls behind the latency figures", label="calls"),
    _f("noisy", BOOL, LATENCY, "the IQR is over 10% of the median (torch.utils.benchmark's warning)"),
    _f("throughput_per_s", NUMBER, LATENCY, "batch size / mean latency", unit="1/s", label="throughput/s"),
    _f("host_peak_mb", NUMBER, MEMORY, "peak RSS during the measured window minus RSS just before the model was "
       "built", unit="MB", label="host peak MB"),
    _f("host_other_cpu", NUMBER, CONTENTION, "cores other processes kept busy while the cell was timed (mean)",
       unit="cores"),
    _f("host_run_wait", NUMBER, CONTENTION, "mean share of the cell's running threads' time spent waiting for a "
       "CPU over the kept timing blocks"),
    # -- size and work -----------------------------------------------------------------------------
    _f("model_bytes", INTEGER, SIZE, "what the model takes: the torch.save(state_dict) length, the method's "
       "effective storage when it reports one, or what a deployment backend loads (an exported graph)",
       unit="bytes", label="model bytes"),
    _f("serialized_bytes", INTEGER, SIZE, "the torch.save(state_dict) length, always", unit="bytes"),
    _f("bits_per_param", NUMBER, SIZE, "model_bytes x 8 / params_count, or what the method reports", unit="bits"),
    _f("params_count", INTEGER, SIZE, "elements of every weight and bias, packed weights of quantized modules "
       "included", label="params"),
    _f("nonzero_params", INTEGER, SIZE, "nonzero elements of every weight and bias", label="nonzero params"),
    _f("flops", INTEGER, SIZE, "one forward pass on one sample (torch.utils.flop_counter, 2 per multiply-add; "
       "quantized layers counted from their shapes); zeros counted"),
    _f("effective_flops", NUMBER, SIZE, "flops with each Linear/Conv layer's share scaled by its fraction of "
       "nonzero weights: what a kernel that skipped every zero would do"),
    # -- quality -----------------------------------------------------------------------------------
    _f("accuracy", NUMBER, QUALITY, "top-1 accuracy on the held-out split (null without labels or trained "
       "weights)"),
    _f("top5_accuracy", NUMBER, QUALITY, "the share of held-out inputs whose label is among the 5 highest outputs "
       "(null below 5 classes)", label="top-5"),
    _f("task", TEXT, QUALITY, "what the dataset's targets are: classification, regression, multilabel, segmentation, "
       "detection, seq2seq (text) or unlabelled"),
    _f("quality_metric", TEXT, QUALITY, "the metric the record's quality is: the first the suite names for the "
       "dataset, else the task's first (accuracy, rmse, f1, miou, map, bleu)", label="metric"),
    _f("quality", NUMBER, QUALITY, "the quality metric's score on the held-out split"),
    _f("quality_higher_is_better", BOOL, QUALITY, "whether a higher quality is better (false for an error such as "
       "rmse)"),
    _f("metrics", OBJECT, QUALITY, "every quality metric's score by id: the suite's for the dataset, else the "
       "task's own"),
    _f("lower_is_better", LIST, QUALITY, "the ids of the metrics whose lower score is better (errors: rmse, mae)"),
    _f("agreement", NUMBER, FIDELITY, "the share of inputs whose top-1 prediction equals the baseline's (a "
       "language model: the top next token; a seq2seq model: the whole generated text; a segmentation: per pixel)"),
    _f("kl_div", NUMBER, FIDELITY, "mean KL divergence of the baseline's softmax from the method's (nats)",
       label="KL"),
    _f("cosine", NUMBER, FIDELITY, "mean cosine similarity of the method's outputs to the baseline's"),
    _f("max_abs_err", NUMBER, FIDELITY, "the largest absolute difference of an output element from the "
       "baseline's", label="max abs err"),
    _f("rel_err", NUMBER, FIDELITY, "one value per input (a regression): the mean absolute difference from the "
       "baseline's outputs over their mean absolute value, where cosine would only compare signs",
       label="rel err"),
    _f("map_vs_baseline", NUMBER, FIDELITY, "detection: COCO box mAP of the method's detections with the baseline's "
       "(those scored at least 0.5) as the ground truth; needs no labels", label="mAP vs base"),
    _f("fidelity_n", INTEGER, FIDELITY, "held-out inputs the fidelity figures cover (measure.fidelity_samples, "
       "fewer when the split is smaller)"),
    _f("perplexity", NUMBER, LANGUAGE, "perplexity on the held-out text, with a sliding window"),
    _f("nll_per_token", NUMBER, LANGUAGE, "mean negative log-likelihood per scored token (nats)"),
    _f("baseline_perplexity", NUMBER, LANGUAGE, "the baseline's perplexity on the same windows"),
    _f("ppl_ratio", NUMBER, LANGUAGE, "perplexity / baseline_perplexity"),
    _f("perplexity_tokens", INTEGER, LANGUAGE, "held-out tokens scored", unit="tokens"),
    _f("perplexity_window", INTEGER, LANGUAGE, "tokens per window", unit="tokens"),
    _f("perplexity_stride", INTEGER, LANGUAGE, "tokens between window starts", unit="tokens"),
    # -- generation --------------------------------------------------------------------------------
    _f("ttft_p50_ms", NUMBER, GENERATION, "median time to the first token (the prefill)", unit="ms", label="TTFT ms"),
    _f("ttft_p90_ms", NUMBER, GENERATION, "90th percentile time to the first token", unit="ms"),
    _f("tpot_p50_ms", NUMBER, GENERATION, "median time per output token after the first", unit="ms",
       label="TPOT ms"),
    _f("tpot_p90_ms", NUMBER, GENERATION, "90th percentile time per output token after the first", unit="ms"),
    _f("e2e_p50_ms", NUMBER, GENERATION, "median time of one generation end to end", unit="ms"),
    _f("prefill_tokens_per_s", NUMBER, GENERATION, "prompt tokens per second of prefill", unit="tokens/s"),
    _f("decode_tokens_per_s", NUMBER, GENERATION, "generated tokens per second of decoding (batch included)",
       unit="tokens/s", label="decode tok/s"),
    _f("generations_n", INTEGER, GENERATION, "timed generations"),
    _f("first_generation_ms", NUMBER, GENERATION, "the first generation at this point, made apart and untimed "
       "otherwise (what a lazy model pays once)", unit="ms"),
    _f("kv_cache_mb", NUMBER, GENERATION, "the KV cache the generation holds at its longest", unit="MB",
       label="KV cache MB"),
    _f("baseline_ttft_p50_ms", NUMBER, GENERATION, "the baseline's median TTFT in the paired blocks", unit="ms"),
    _f("baseline_tpot_p50_ms", NUMBER, GENERATION, "the baseline's median TPOT in the paired blocks", unit="ms"),
    _f("ttft_speedup", NUMBER, GENERATION, "paired: the baseline's TTFT / the method's", unit="x"),
    _f("decode_speedup", NUMBER, GENERATION, "paired: the baseline's TPOT / the method's", unit="x"),
    # -- speed against the baseline ----------------------------------------------------------------
    _f("speedup", NUMBER, RELATIVE, "baseline p50 / p50 (above 1 is faster); for a cell timed paired with its "
       "baseline, the ratio of the pairs", unit="x"),
    _f("speedup_ci_low", NUMBER, PAIRING, "lower end of the paired speedup's 95% interval", unit="x"),
    _f("speedup_ci_high", NUMBER, PAIRING, "upper end of the paired speedup's 95% interval", unit="x"),
    _f("paired", BOOL, PAIRING, "timed against a copy of the baseline in alternating blocks in one process"),
    _f("unpaired_reason", TEXT, PAIRING, "why the cell was not timed paired"),
    _f("baseline_p50_ms", NUMBER, PAIRING, "the baseline copy's p50 in the same paired blocks", unit="ms"),
    _f("paired_speedup", NUMBER, PAIRING, "the ratio of the paired blocks' medians", unit="x"),
    _f("pair_blocks", INTEGER, PAIRING, "block pairs behind the paired speedup"),
    _f("precision_reached", BOOL, PAIRING, "whether measure.repeat.target_rel_ci was met before max_seconds"),
    _f("contended", BOOL, CONTENTION, "more than a quarter of the timed blocks ran while the cell's threads waited "
       "for a CPU, after re-measuring; left out of rankings"),
    _f("contended_reason", TEXT, CONTENTION, "how much contention, and why"),
    _f("contention_retries", INTEGER, CONTENTION, "contended timing blocks measured again"),
    _f("timing_s", NUMBER, PAIRING, "seconds the paired timing took", unit="s"),
    _f("theoretical_speedup", NUMBER, RELATIVE, "baseline effective_flops / effective_flops: what skipping every "
       "zero weight would give", unit="x", label="theoretical"),
    _f("size_ratio", NUMBER, RELATIVE, "baseline model_bytes / model_bytes (above 1 is smaller)", unit="x",
       label="size ratio"),
    _f("accuracy_delta", NUMBER, RELATIVE, "accuracy - the baseline's (null when the method changed the task)",
       label="Δ accuracy"),
    _f("quality_delta", NUMBER, RELATIVE, "quality - the baseline's, on the same metric (a rise is worse when lower "
       "is better)", label="Δ quality"),
    _f("quality_ratio", NUMBER, RELATIVE, "quality / the baseline's, on the same metric (MLPerf's fraction of the "
       "reference score)", label="quality ratio"),
    _f("metrics_delta", OBJECT, RELATIVE, "each quality metric's score - the baseline's, by id"),
    _f("passes_gate", BOOL, RELATIVE, "the accuracy gate's verdict on what can be judged (null without a gate or a "
       "figure it needs)", label="gate"),
    # -- applying the method -----------------------------------------------------------------------
    _f("setup_s", NUMBER, METHOD, "seconds to apply the method (calibration, fine-tuning, compiling included)",
       unit="s"),
    _f("setup_peak_mb", NUMBER, MEMORY, "peak RSS while the method was applied, minus RSS before the model was "
       "built", unit="MB"),
    _f("compile_s", NUMBER, METHOD, "the compiling part of setup_s (compilers)", unit="s"),
    _f("finetuned", BOOL, METHOD, "the suite's finetune schedule ran after the method"),
    # -- training cells ----------------------------------------------------------------------------
    _f("train_time_s", NUMBER, TRAINING, "training seconds, every evaluation excluded", unit="s"),
    _f("epochs_run", INTEGER, TRAINING, "epochs trained"),
    _f("steps_run", INTEGER, TRAINING, "optimizer steps"),
    _f("grad_evals", INTEGER, TRAINING, "closure calls (an L-BFGS line search costs several per step)"),
    _f("final_accuracy", NUMBER, TRAINING, "held-out top-1 at the last evaluation"),
    _f("best_accuracy", NUMBER, TRAINING, "held-out top-1 at the best evaluation"),
    _f("final_loss", NUMBER, TRAINING, "held-out loss at the last evaluation"),
    _f("final_objective", NUMBER, TRAINING, "the full-pass training objective at the last evaluation (loss "
       "problems)"),
    _f("loss_floor", NUMBER, TRAINING, "the problem's exact minimum, where known"),
    _f("target_accuracy", NUMBER, TRAINING, "the held-out accuracy that counts as reached"),
    _f("target_loss", NUMBER, TRAINING, "the training objective that counts as reached"),
    _f("time_to_target_s", NUMBER, TRAINING, "training seconds to the first evaluation at or past the target "
       "(null when never)", unit="s"),
    _f("epochs_to_target", INTEGER, TRAINING, "epochs to the first evaluation at or past the target"),
    _f("steps_to_target", INTEGER, TRAINING, "optimizer steps to the first evaluation at or past the target"),
    _f("diverged", BOOL, TRAINING, "the loss stopped being finite and the run ended early"),
    _f("train_labels", INTEGER, TRAINING, "training labels the run saw"),
    _f("train_samples_per_s", NUMBER, TRAINING, "training inputs per second of training time, every epoch but the "
       "first", unit="1/s"),
    _f("train_single_rank_samples_per_s", NUMBER, TRAINING, "data-parallel training: the same run on one device "
       "alone (capped at 3 epochs)", unit="1/s"),
    _f("train_scaling_efficiency", NUMBER, TRAINING, "samples/s on N ranks / (N x samples/s on one)"),
    _f("train_skipped_steps", INTEGER, TRAINING, "epoch tails smaller than the number of ranks"),
    _f("reference_accuracy", NUMBER, TRAINING, "distillers and transfer: accuracy of the reference run at the same "
       "budget and seed"),
    _f("accuracy_gain", NUMBER, TRAINING, "main - reference accuracy"),
    _f("pretrain_s", NUMBER, TRAINING, "transfer: seconds pretraining on the source task", unit="s"),
    _f("task_changed", BOOL, TRAINING, "the method evaluates on another task (transfer), so accuracy_delta is null"),
    # -- where it ran ------------------------------------------------------------------------------
    _f("threads", INTEGER, BACKEND, "intra-op threads the backend ran with"),
    _f("reference_backend", TEXT, RELATIVE, "the suite's reference backend (reference_speedup is against its "
       "baseline)"),
    _f("reference_backend_params", OBJECT, RELATIVE, "the reference backend's params"),
    _f("reference_speedup", NUMBER, RELATIVE, "the reference backend's baseline p50 / p50: one scale for every "
       "backend; across backends a ratio of medians from different processes", unit="x", label="vs reference"),
    _f("duration_s", NUMBER, OUTCOME, "the cell's wall time, from asking for a process to reading its result",
       unit="s"),
    _f("started_at", TIMESTAMP, OUTCOME, "when the cell started (UTC, ISO 8601)"),
)
