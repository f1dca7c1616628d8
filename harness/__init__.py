"""optbench: a plugin-based benchmarking harness for neural-network optimization methods.

Plugin authors need only what this module exports::

    from harness import hookimpl, Method, Params
"""
from harness.fit import FitResult, TrainingContext
from harness.hookspecs import hookimpl
from harness.plugin_types import (
    Backend,
    BackendSession,
    Dataset,
    DatasetSplits,
    MemoryReading,
    Method,
    MethodContext,
    Model,
    ModelRef,
    NoParams,
    Params,
    Skip,
)

__version__ = "0.1.0"


__all__ = [
    "Backend",
    "BackendSession",
    "Dataset",
    "DatasetSplits",
    "FitResult",
    "MemoryReading",
    "Method",
    "MethodContext",
    "Model",
    "ModelRef",
    "NoParams",
    "TrainingContext",
    "Params",
    "Skip",
    "__version__",
    "hookimpl",
]
