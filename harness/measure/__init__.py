"""Measuring: the latency timer, its statistics, host memory, contention from other processes, and
model size and FLOPs. The primitives every backend and the cell worker share; they import nothing
from the rest of the harness."""
