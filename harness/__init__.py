"""optbench: a plugin-based benchmarking harness for neural-network optimization methods.

Plugin authors need only what this module exports::

    from harness import hookimpl, Method, Params

The plugin contract, by kind (the docs have a page for each, and ``docs/plugins/index.md`` lists
every name below); first-party plugins import nothing else of the harness (an import-linter
contract checks it):

- every plugin: ``hookimpl``, ``Params`` / ``NoParams``, ``Regex``, ``Skip``;
- a method: ``Method``, ``MethodContext`` (and, for training-time methods, ``TrainingContext``,
  ``FitResult``, ``Closure`` for a closure-based optimizer, ``evaluate`` for a held-out pass), ``ModelRef``
  for a model named in params, ``train_classifier`` (the harness's own baseline training);
- working with a model's inputs and outputs (a tensor or a dict of tensors): ``call_model``,
  ``map_tensors``, ``batch_size``, ``output_tensor``;
- a model: ``Model``, ``TrainableParams`` (the baseline's training settings); a causal
  language model: ``LanguageModel``, with the decoders ``GenerateDecoder`` (transformers'
  ``generate``), ``CausalLMDecoder`` and ``StepDecoder`` (the harness's own greedy loop),
  ``next_token_loss`` for a text dataset's objective and ``unwrap`` (the module inside a changed one);
- a file a parameter names, relative to the suite: ``SuitePath`` / ``SuiteRelative``;
- a dataset: ``Dataset``, ``DatasetSplits``, the splits ``Split`` and ``TensorSplit``,
  ``files_fingerprint``;
- a backend: ``Backend``, ``BackendSession``, ``MemoryReading``, the shared timer ``time_calls`` with
  its ``Budget``, and ``summarize`` (a record's latency fields from raw samples);
- a metric (a way to score a task's quality, registered with ``register_metrics``): ``Metric``, the state
  it builds ``MetricState`` (``update`` per batch, ``compute``), ``prediction`` (the model's main output
  tensor); a dataset's task: ``TASKS``;
- a record field a plugin's objects write: ``RecordField`` (declared with ``register_fields``); a
  record's ``Status`` and the ``BASELINE`` method's name.

The core's own modules never import from here: they import the stage module that
defines a name, so this file is only the front door.
"""
from harness.measure.fidelity import output_tensor
from harness.measure.generation import CausalLMDecoder, GenerateDecoder, StepDecoder
from harness.measure.inputs import batch_size, call_model, map_tensors
from harness.measure.stats import summarize
from harness.measure.timing import Budget, time_calls
from harness.plugin.data import Split, TensorSplit, files_fingerprint
from harness.plugin.hookspecs import hookimpl
from harness.plugin.language_model import LanguageModel, next_token_loss, unwrap
from harness.plugin.metric import Metric, MetricState, prediction
from harness.plugin.targets import TASKS
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
from harness.record.field import RecordField
from harness.record.status import BASELINE, Status
from harness.train.classifier import train_classifier
from harness.train.fit import Closure, FitResult, TrainingContext, evaluate
from harness.version import __version__

__all__ = [
    "BASELINE",
    "Backend",
    "BackendSession",
    "Budget",
    "CausalLMDecoder",
    "Closure",
    "Dataset",
    "DatasetSplits",
    "FitResult",
    "GenerateDecoder",
    "LanguageModel",
    "MemoryReading",
    "Method",
    "Metric",
    "MetricState",
    "MethodContext",
    "Model",
    "ModelRef",
    "NoParams",
    "Params",
    "RecordField",
    "Regex",
    "Skip",
    "Split",
    "Status",
    "TASKS",
    "StepDecoder",
    "SuitePath",
    "SuiteRelative",
    "TensorSplit",
    "TrainableParams",
    "TrainingContext",
    "__version__",
    "batch_size",
    "call_model",
    "evaluate",
    "files_fingerprint",
    "hookimpl",
    "map_tensors",
    "next_token_loss",
    "output_tensor",
    "prediction",
    "summarize",
    "time_calls",
    "train_classifier",
    "unwrap",
]
