"""Summary statistics of latency samples, as torch.utils.benchmark reports them.

Percentiles use linear interpolation between order statistics (numpy's default).
A measurement is flagged ``noisy`` when IQR / median exceeds 10%, the threshold at
which torch.utils.benchmark.Measurement warns.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NOISY_IQR_RATIO = 0.10


def summarize(samples_ns: Sequence[int], batch_size: int) -> dict[str, Any]:
    """Latency fields of a record (milliseconds) from raw per-call samples (ns)."""
    import numpy as np

    if len(samples_ns) == 0:
        raise ValueError("no latency samples")
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p25, p50, p75, p90, p99 = np.percentile(ms, [25, 50, 75, 90, 99])
    mean = float(ms.mean())
    iqr = float(p75 - p25)
    return {
        "latency_p50_ms": float(p50),
        "latency_p90_ms": float(p90),
        "latency_p99_ms": float(p99),
        "latency_mean_ms": mean,
        "latency_std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "latency_iqr_ms": iqr,
        "latency_n": int(len(ms)),
        "noisy": bool(p50 > 0 and iqr / p50 > NOISY_IQR_RATIO),
        "throughput_per_s": batch_size / (mean / 1e3) if mean > 0 else None,
    }
