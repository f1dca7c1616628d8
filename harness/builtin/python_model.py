"""The ``python`` model: any callable that returns a torch module, named by reference in a suite.

``factory`` is ``"package.module:callable"`` (anything importable) or ``"path/to/file.py:callable"``
(a file, relative to the suite file's folder). The callable is called with ``kwargs``, plus
``num_classes`` (when the dataset knows it), ``input_shape`` or ``data`` when its signature asks for them
and ``kwargs`` does not give them. With ``epochs`` > 0 and a labelled dataset the harness trains the result like a
built-in model and caches the weights, keyed by the source of the factory's code as well as its
params: editing the file retrains it. With ``epochs`` 0 (the default) the module is used as
built: its own initial weights, weights it loaded itself, or the suite's ``checkpoint``.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from harness.builtin.factories import (
    call_factory,
    load_factory,
    resolve_factory,
    source_hash,
)
from harness.plugin.types import DatasetSplits, Model, SuiteRelative, TrainableParams


class PythonModelParams(TrainableParams):
    factory: Annotated[str, SuiteRelative(resolve_factory)] = Field(
        description="'package.module:callable' or 'path/to/file.py:callable' (relative to the suite file)",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the callable")
    epochs: int = Field(0, ge=0, le=10_000, description="train the built module this many epochs (0: use it as built)")

    @field_validator("factory")
    @classmethod
    def _importable(cls, value: str) -> str:
        load_factory(value)  # validate reports what fails to import, with the file and line
        return value


def build_python(params: PythonModelParams, data: DatasetSplits) -> Any:
    offered = {"num_classes": data.num_classes, "input_shape": data.input_shape, "data": data}
    if not data.num_classes:  # not known (a detection dataset read sample by sample): the factory's default
        del offered["num_classes"]
    return call_factory(load_factory(params.factory), params.kwargs, offered)


PYTHON = Model(
    name="python",
    description="any callable returning a torch module: 'package.module:callable' or 'file.py:callable', with kwargs",
    build=build_python,
    params=PythonModelParams,
    fingerprint=lambda params: source_hash(params.factory),
)
