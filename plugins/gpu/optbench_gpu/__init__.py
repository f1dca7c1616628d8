"""optbench-gpu: the ``cuda`` backend (NVIDIA GPUs), with NVML helpers in ``optbench_gpu.nvml``."""
