"""Statistics of latency samples: the summary a record holds, as torch.utils.benchmark reports it, and
the distribution-free interval of a median every precision rule and every interval on a page uses.

Percentiles use linear interpolation between order statistics (numpy's default).
A measurement is flagged ``noisy`` when IQR / median exceeds 10%, the threshold at
which torch.utils.benchmark.Measurement warns.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

NOISY_IQR_RATIO = 0.10
#: Two-sided normal quantiles: a 95% interval, and a 97.5% one (two medians' 97.5% intervals give a ratio of
#: them a 95% interval at least, by Bonferroni: how the site bounds an unpaired speedup).
Z_95 = 1.959963984540054
Z_975 = 2.241402727604947
#: Above this many samples the order statistics are picked with numpy (a run's files hold millions).
_NUMPY_ABOVE = 4096


def median_interval(samples: Sequence[float], z: float = Z_95) -> tuple[float, float, float]:
    """(median, low, high): the sample median and its distribution-free interval from the order statistics
    around it (the binomial rule: ranks n/2 -/+ z sqrt(n)/2; with few samples it widens to the smallest and
    largest). Assumes the samples are independent. Raises ValueError on no samples."""
    n = len(samples)
    if n == 0:
        raise ValueError("no samples")
    half = z * math.sqrt(n) / 2
    lo_i, hi_i = max(math.floor(n / 2 - half) - 1, 0), min(math.ceil(n / 2 + half), n - 1)
    mid = (n // 2 - 1, n // 2) if n % 2 == 0 else (n // 2, n // 2)
    if n <= _NUMPY_ABOVE:
        s = sorted(samples)
        picked = [s[i] for i in (lo_i, *mid, hi_i)]
    else:
        import numpy as np

        a = np.asarray(samples, dtype=np.float64)
        at = sorted({lo_i, *mid, hi_i})
        part = np.partition(a, at)
        picked = [part[i] for i in (lo_i, *mid, hi_i)]
    lo, m1, m2, hi = (float(v) for v in picked)
    return (m1 + m2) / 2.0, lo, hi


def precise_enough(samples: Sequence[float], target_rel_ci: float) -> bool:
    """Whether the median's 95% interval is within ``target_rel_ci`` of it (half its width over the median)."""
    med, lo, hi = median_interval(samples)
    return med > 0 and (hi - lo) / 2 / med <= target_rel_ci


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
