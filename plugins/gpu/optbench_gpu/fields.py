"""The record fields the ``cuda`` and ``multi-gpu`` backends write: their device facts, device memory
and energy over the timed window, and data-parallel inference across ranks."""
from __future__ import annotations

from harness import RecordField

_GPU, _MEMORY, _ENERGY, _RANKS = "GPU", "device memory", "energy", "ranks"

FIELDS: tuple[RecordField, ...] = (
    # cuda: the device, from setup()
    RecordField("device_index", "integer", "the torch CUDA device index the cell ran on", _GPU),
    RecordField("gpu_name", "text", "the GPU's name (torch.cuda.get_device_properties)", _GPU, label="GPU"),
    RecordField("gpu_uuid", "text", "the GPU's UUID as torch reports it", _GPU),
    RecordField("compute_capability", "text", "the GPU's CUDA compute capability (major.minor)", _GPU),
    RecordField("gpu_memory_total_mb", "number", "the GPU's memory", _GPU, unit="MB"),
    RecordField("dtype", "text", "the dtype the model and its floating inputs ran in (backend param)", _GPU),
    RecordField("tf32", "bool", "TF32 matmuls and convolutions allowed (backend param)", _GPU),
    RecordField("cudnn_benchmark", "bool", "cuDNN's autotuner on (backend param)", _GPU),
    RecordField("cuda_version", "text", "the CUDA version torch was built with", _GPU),
    RecordField("driver_version", "text", "the NVIDIA driver's version (NVML)", _GPU),
    RecordField("nvml_index", "integer", "the GPU's NVML index (null when NVML cannot identify it)", _GPU),
    RecordField("nvml_mapping", "text", "how the torch device was matched to NVML (uuid, visible_devices, identity)",
                _GPU),
    # cuda: one timed window
    RecordField("device_peak_allocated_mb", "number", "peak memory torch allocated on the device in the timed window",
                _MEMORY, unit="MB", label="device peak MB"),
    RecordField("device_peak_reserved_mb", "number", "peak memory torch's caching allocator reserved in the window",
                _MEMORY, unit="MB"),
    RecordField("device_used_mb", "number", "the cell's process's memory on the GPU as NVML sees it (CUDA context "
                "included)", _MEMORY, unit="MB"),
    RecordField("energy_j", "number", "the GPU's energy counter over the timed window", _ENERGY, unit="J"),
    RecordField("energy_calls", "integer", "calls in the window energy_j covers", _ENERGY),
    RecordField("energy_j_per_sample", "number", "energy_j / (calls x batch size)", _ENERGY, unit="J",
                label="J/sample"),
    RecordField("mean_power_w", "number", "energy_j / the window's seconds", _ENERGY, unit="W"),
    RecordField("gpu_other_processes", "integer", "other processes NVML saw on the GPU during the window", _GPU,
                caveat="another process used the GPU while it was measured; its latency and energy may be off"),
    # multi-gpu
    RecordField("world_size", "integer", "ranks of the multi-gpu backend", _RANKS),
    RecordField("dist_backend", "text", "torch.distributed's backend (nccl on GPUs, gloo on CPU processes)", _RANKS),
    RecordField("ranks_used", "integer", "ranks that got a share of the batch (a batch smaller than the world leaves "
                "some idle)", _RANKS),
    RecordField("rank_p50_ms", "list", "each rank's median latency for its share (null for an idle rank)", _RANKS,
                unit="ms"),
    RecordField("rank_p99_ms", "list", "each rank's 99th percentile latency for its share", _RANKS, unit="ms"),
    RecordField("single_rank_throughput_per_s", "number", "one rank alone on its share, samples per second",
                _RANKS, unit="1/s"),
    RecordField("scaling_efficiency", "number", "aggregate throughput / (ranks used x one rank's throughput)",
                _RANKS),
)
