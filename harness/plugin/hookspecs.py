"""Hook specifications: the whole contract between the harness and its plugins.

Every hook receives a ``register`` callable and calls it once per object it provides.
The harness calls each plugin's hook on its own, with keyword arguments only, so that
an error is reported against the plugin that caused it and new keyword arguments can
be added later without breaking plugins that do not ask for them.
"""
from __future__ import annotations

from collections.abc import Callable

import pluggy

from harness.plugin.metric import Metric
from harness.plugin.types import Backend, Dataset, Method, Model
from harness.record.field import RecordField

PROJECT = "optbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[Method], None]) -> None:
    """Called once at plugin discovery; call ``register(Method(...))`` for each method.

    A method name is dotted by family (``prune.magnitude``) and must be unique across
    all plugins; a duplicate fails at registration, naming both distributions.
    """


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Called once at plugin discovery; call ``register(Backend(...))`` for each backend."""


@hookspec
def register_models(register: Callable[[Model], None]) -> None:
    """Called once at plugin discovery; call ``register(Model(...))`` for each model."""


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Called once at plugin discovery; call ``register(Dataset(...))`` for each dataset."""


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Called once at plugin discovery; call ``register(Metric(...))`` for each metric: a way to score a task's
    quality that a suite names in ``metrics`` (``harness.plugin.metric``)."""


@hookspec
def register_fields(register: Callable[[RecordField], None]) -> None:
    """Called once at plugin discovery; call ``register(RecordField(...))`` for each record field the
    plugin's objects write (a backend's facts and memory reading, a method's figures).

    A field is declared once across the harness and every plugin: a name the harness or another plugin
    already declares fails at registration, naming both. A cell that writes a field no one declared
    fails, naming the field. The records page of the docs lists every declaration with its owner.
    """
