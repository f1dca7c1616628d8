"""optbench: a plugin-based benchmarking harness for neural-network optimization methods.

Plugin authors need only what this module exports::

    from harness import hookimpl, Method, Params

The plugin contract, by kind (the docs have a page for each):

- every plugin: ``hookimpl``, ``Params`` / ``NoParams``, ``Skip``;
- a method: ``Method``, ``MethodContext`` (and, for training-time methods,
  ``TrainingContext`` and ``FitResult``), ``ModelRef`` for a model named in params;
- a model: ``Model``, ``TrainableParams`` (the baseline's training settings); a causal
  language model: ``LanguageModel``, with the decoders ``GenerateDecoder`` (transformers'
  ``generate``), ``CausalLMDecoder`` and ``StepDecoder`` (the harness's own greedy loop), and
  ``next_token_loss`` for a text dataset's objective;
- a file a parameter names, relative to the suite: ``SuitePath`` / ``SuiteRelative``;
- a dataset: ``Dataset``, ``DatasetSplits``;
- a backend: ``Backend``, ``BackendSession``, ``MemoryReading``, and the shared timer
  ``time_calls`` with its ``Budget``.

The core's own modules never import from here: they import the stage module that
defines a name, so this file is only the front door.
"""
from harness.measure.generation import CausalLMDecoder, GenerateDecoder, StepDecoder
from harness.measure.timing import Budget, time_calls
from harness.plugin.data import files_fingerprint
from harness.plugin.hookspecs import hookimpl
from harness.plugin.language_model import LanguageModel, next_token_loss
from harness.plugin.types import (
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
    Regex,
    Skip,
    SuitePath,
    SuiteRelative,
    TrainableParams,
)
from harness.train.fit import FitResult, TrainingContext
from harness.version import __version__

__all__ = [
    "Backend",
    "BackendSession",
    "Budget",
    "CausalLMDecoder",
    "Dataset",
    "DatasetSplits",
    "FitResult",
    "GenerateDecoder",
    "LanguageModel",
    "MemoryReading",
    "Method",
    "MethodContext",
    "Model",
    "ModelRef",
    "NoParams",
    "Params",
    "Regex",
    "Skip",
    "StepDecoder",
    "SuitePath",
    "SuiteRelative",
    "TrainableParams",
    "TrainingContext",
    "__version__",
    "files_fingerprint",
    "hookimpl",
    "next_token_loss",
    "time_calls",
]
