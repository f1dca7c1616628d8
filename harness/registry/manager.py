"""Plugin discovery: a small typed facade over pluggy.

Plugins come from the ``optbench`` entry-point group (installed distributions,
first-party included) and from ``harness.builtin.hooks``. Entry points named in
``OPTBENCH_DISABLE_PLUGINS`` (comma-separated) are not loaded. A plugin that fails to
import, implements a hook the harness does not know, or raises inside a hook is
reported by name and dropped; the others still load.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import pluggy
from pydantic import BaseModel

from harness.builtin import hooks as builtin_hooks
from harness.errors import RegistrationError, suggest
from harness.plugin import hookspecs
from harness.plugin.metric import Metric
from harness.plugin.types import (
    METHOD_KINDS,
    NAME_PATTERN,
    TRAINING_FIELDS,
    Backend,
    Dataset,
    Method,
    Model,
    Params,
    TrainableParams,
)
from harness.record.core_fields import CORE_FIELDS
from harness.record.field import RecordField
from harness.record.schema import RecordSchema
from harness.version import __version__

ENTRY_POINT_GROUP = "optbench"
DISABLE_ENV = "OPTBENCH_DISABLE_PLUGINS"
BUILTIN_NAME = "builtins"

#: hook name -> (registry attribute, object type it accepts)
HOOKS: dict[str, tuple[str, type]] = {
    "register_methods": ("methods", Method),
    "register_backends": ("backends", Backend),
    "register_models": ("models", Model),
    "register_datasets": ("datasets", Dataset),
    "register_metrics": ("metrics", Metric),
    "register_fields": ("fields", RecordField),
}


@dataclass
class PluginInfo:
    """One loaded (or broken) plugin: where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    module: str
    registered: list[Any] = field(default_factory=list)
    fields: list[RecordField] = field(default_factory=list)
    error: str | None = None


@dataclass
class Registry:
    methods: dict[str, Method] = field(default_factory=dict)
    backends: dict[str, Backend] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    #: Record fields plugins declare (the core's are ``harness.record.core_fields``), each with its owner.
    fields: dict[str, RecordField] = field(default_factory=dict)
    owner: dict[tuple[str, str], PluginInfo] = field(default_factory=dict)

    @property
    def schema(self) -> RecordSchema:
        """Every field a record may hold: the core's, then the plugins' in the order they loaded."""
        return RecordSchema((*CORE_FIELDS, *self.fields.values()))

    def owners(self, objects: Iterable[Any]) -> list[str]:
        """The plugins that registered ``objects`` (a cell's backend, model, dataset, methods): the owners
        of the fields its records hold besides the core's."""
        return [self.owner[(o.plugin_type, o.name)].name for o in objects if (o.plugin_type, o.name) in self.owner]

    def lookup(self, table: str, name: str) -> Any:
        """The named object, or a RegistrationError listing valid names."""
        items = getattr(self, table)
        if name not in items:
            raise RegistrationError(f"unknown {table[:-1]} {name!r}; {suggest(name, items)}")
        return items[name]


def disabled_names(env: dict[str, str] | None = None) -> set[str]:
    raw = (env if env is not None else os.environ).get(DISABLE_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()}


def _validate(obj: Any, expected: type, info: PluginInfo) -> None:
    who = f"plugin {info.name!r} (distribution {info.distribution} {info.version})"
    if not isinstance(obj, expected):
        raise RegistrationError(
            f"{who} registered {type(obj).__name__} {obj!r:.80} from its "
            f"{expected.plugin_type} hook; expected a harness.{expected.__name__}"
        )
    if not isinstance(obj.name, str) or not NAME_PATTERN.match(obj.name):
        raise RegistrationError(
            f"{who}: name {obj.name!r} is not valid; expected lower-case words joined by "
            "dots (a word may hold single hyphens), e.g. 'prune.magnitude' or 'multi-gpu'"
        )
    if isinstance(obj, Method) and obj.kind not in METHOD_KINDS[1:] + ("baseline",):
        raise RegistrationError(
            f"{who}: method {obj.name!r} has kind {obj.kind!r}; expected one of "
            f"{', '.join(METHOD_KINDS[1:])}"
        )
    if not isinstance(obj.description, str) or not obj.description.strip() or "\n" in obj.description:
        raise RegistrationError(f"{who}: {obj.name!r} needs a one-line description")
    if not (isinstance(obj.params, type) and issubclass(obj.params, BaseModel)):
        raise RegistrationError(
            f"{who}: {obj.name!r} params must be a harness.Params subclass, got {obj.params!r:.80}"
        )
    for f in fields(obj):
        if f.name in ("apply", "build", "load", "create") and not callable(getattr(obj, f.name)):
            raise RegistrationError(f"{who}: {obj.name!r}.{f.name} must be callable")
        if f.name in ("fingerprint", "preprocess", "postprocess", "pretrained") and getattr(obj, f.name) is not None \
                and not callable(getattr(obj, f.name)):
            raise RegistrationError(f"{who}: {obj.name!r}.{f.name} must be a callable or None")


class PluginManager:
    """Loads plugins and holds what they registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.broken: dict[str, PluginInfo] = {}
        self.registry = Registry()
        #: plugins added at run time (tests), re-created in cell processes by reference
        self.extra: list[tuple[str, Any]] = []

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        *,
        entry_points: bool = True,
        extra: Iterable[tuple[str, Any]] | None = None,
        disabled: set[str] | None = None,
    ) -> PluginManager:
        """Built-ins, then installed entry points (unless disabled), then ``extra`` plugins
        (by default the session plugins registered with ``register_session_plugin``)."""
        self = cls()
        disabled = disabled_names() if disabled is None else disabled
        self._add(builtin_hooks, PluginInfo(BUILTIN_NAME, "optbench", __version__, builtin_hooks.__name__))
        if entry_points:
            for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                if ep.name in disabled:
                    continue
                dist = ep.dist.name if ep.dist else "?"
                version = ep.dist.version if ep.dist else "?"
                info = PluginInfo(ep.name, dist, version, ep.value)
                try:
                    plugin = ep.load()
                except (Exception, SystemExit) as exc:  # a broken plugin must not stop the others (nor exit)
                    info.error = f"import failed: {type(exc).__name__}: {exc}"
                    self.broken[ep.name] = info
                    continue
                self._add(plugin, info)
        for name, plugin in list(_session_plugins if extra is None else extra):
            self.add(plugin, name=name)
        return self

    def add(self, plugin: Any, *, name: str, distribution: str = "(in-process)", version: str = "0") -> PluginInfo:
        """Register a plugin object (module, class or instance) at run time, e.g. from a test.

        A plugin that is already loaded (the same object, typically the module an installed
        entry point names: a plugin's own tests register it while it is pip-installed) is not
        registered twice; its first registration stands and is returned.
        """
        if self.pm.is_registered(plugin):
            loaded = self.pm.get_name(plugin)
            if loaded in self.plugins:
                self.extra.append((name, plugin))
                return self.plugins[loaded]
        if name in self.plugins or name in self.broken:
            raise RegistrationError(f"a plugin named {name!r} is already loaded")
        module = getattr(plugin, "__name__", type(plugin).__name__)
        info = self._add(plugin, PluginInfo(name, distribution, version, module))
        if info.error:
            raise RegistrationError(f"plugin {name!r} is broken: {info.error}")
        self.extra.append((name, plugin))
        return info

    def _add(self, plugin: Any, info: PluginInfo) -> PluginInfo:
        try:
            self.pm.register(plugin, name=info.name)
            unknown = [i.function.__name__ for i in self._impls(info.name, pending=True)]
            if unknown:
                raise RegistrationError(
                    f"implements unknown hook(s) {', '.join(unknown)}; "
                    f"known hooks: {', '.join(HOOKS)}"
                )
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.broken[info.name] = info
            return info
        staged: list[Any] = []
        try:
            for hook_name, (table, expected) in HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name != info.name:
                        continue
                    register = self._register_fn(info, table, expected, staged)
                    kwargs = {"register": register}
                    impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
        except (Exception, SystemExit) as exc:  # sys.exit() in a hook must not end every command silently
            info.error = (
                str(exc) if isinstance(exc, RegistrationError)
                else f"hook raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-2)}"
            )
            for table, obj in staged:  # all-or-nothing: a half-registered plugin is confusing
                getattr(self.registry, table).pop(obj.name, None)
                if table != "fields":
                    self.registry.owner.pop((obj.plugin_type, obj.name), None)
            self.pm.unregister(name=info.name)
            self.broken[info.name] = info
            return info
        info.registered = [obj for table, obj in staged if table != "fields"]
        info.fields = [self.registry.fields[obj.name] for table, obj in staged if table == "fields"]
        self.plugins[info.name] = info
        return info

    def _impls(self, plugin_name: str, *, pending: bool) -> list[Any]:
        out = []
        for hook_name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller):
                continue
            if pending != (not caller.has_spec()):
                continue
            out += [i for i in caller.get_hookimpls() if i.plugin_name == plugin_name]
        return out

    def _register_fn(self, info: PluginInfo, table: str, expected: type, staged: list) -> Callable[[Any], None]:
        if table == "fields":
            return self._register_field_fn(info, staged)

        def register(obj: Any) -> None:
            _validate(obj, expected, info)
            items = getattr(self.registry, table)
            if obj.name in items:
                first = self.registry.owner[(obj.plugin_type, obj.name)]
                raise RegistrationError(
                    f"plugin {info.name!r} (distribution {info.distribution} {info.version}) "
                    f"registers {obj.plugin_type} {obj.name!r}, already registered by plugin "
                    f"{first.name!r} (distribution {first.distribution} {first.version})"
                )
            items[obj.name] = obj
            self.registry.owner[(obj.plugin_type, obj.name)] = info
            staged.append((table, obj))

        return register

    def _register_field_fn(self, info: PluginInfo, staged: list) -> Callable[[Any], None]:
        who = f"plugin {info.name!r} (distribution {info.distribution} {info.version})"
        core = {f.name for f in CORE_FIELDS}

        def register(declared: Any) -> None:
            if not isinstance(declared, RecordField):
                raise RegistrationError(f"{who} registered {type(declared).__name__} {declared!r:.80} from its fields "
                                        "hook; expected a harness.RecordField")
            if declared.name in core:
                raise RegistrationError(f"{who} declares record field {declared.name!r}, which the harness declares")
            first = self.registry.fields.get(declared.name)
            if first is not None:
                raise RegistrationError(f"{who} declares record field {declared.name!r}, already declared by plugin "
                                        f"{first.owner!r}")
            self.registry.fields[declared.name] = declared.with_owner(info.name)
            staged.append(("fields", declared))

        return register

    # -- reading ---------------------------------------------------------------------------
    def owner(self, obj: Any) -> PluginInfo:
        return self.registry.owner[(obj.plugin_type, obj.name)]

    def describe(self) -> list[dict[str, Any]]:
        """Everything loaded, for ``optbench plugins`` (JSON-ready)."""
        out = []
        for info in list(self.plugins.values()) + list(self.broken.values()):
            out.append(
                {
                    "plugin": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "module": info.module,
                    "error": info.error,
                    "registers": [describe_object(o) for o in info.registered],
                    "fields": [describe_field(f) for f in info.fields],
                }
            )
        return out

    def setup_payload(self) -> dict[str, Any]:
        """What a cell process needs to rebuild this manager (picklable)."""
        return {"disabled": sorted(disabled_names()), "extra": [(n, _plugin_ref(p)) for n, p in self.extra]}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PluginManager:
        extra = [(n, _resolve_ref(r)) for n, r in payload.get("extra", [])]
        return cls.load(disabled=set(payload.get("disabled", [])), extra=extra)


def _plugin_ref(plugin: Any) -> Any:
    """Modules travel by name; classes and instances are pickled (by reference for classes)."""
    if isinstance(plugin, type(importlib)):
        return ("module", plugin.__name__)
    return ("object", plugin)


def _resolve_ref(ref: Any) -> Any:
    kind, value = ref
    return importlib.import_module(value) if kind == "module" else value


def describe_params(params: type[Params]) -> list[dict[str, Any]]:
    """Each parameter's name, type, default, bounds and description from its pydantic model."""
    schema = params.model_json_schema()
    props = schema.get("properties", {})
    out = []
    for name, f in params.model_fields.items():
        p = props.get(name, {})
        for alt in p.get("anyOf", []):  # Optional[...] fields keep their bounds in a branch
            if alt.get("type") != "null":
                p = {**alt, **p}
        bounds = {k: p[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in p}
        choices = p.get("enum")
        out.append(
            {
                "name": name,
                "type": _type_text(f.annotation),
                "default": None if f.is_required() else _jsonable(f.get_default(call_default_factory=True)),
                "required": f.is_required(),
                "bounds": bounds or None,
                "choices": choices,
                "description": f.description or "",
            }
        )
    return out


def describe_object(obj: Any) -> dict[str, Any]:
    out = {
        "type": obj.plugin_type,
        "name": obj.name,
        "kind": obj.kind,
        "description": obj.description,
        "params": describe_params(obj.params),
    }
    if isinstance(obj, Metric):
        # what a suite author picks a metric by: the tasks it scores and its direction
        out["kind"] = f"{'/'.join(obj.tasks or ('any task',))}, {'higher' if obj.higher_is_better else 'lower'} is better"
        out["tasks"], out["higher_is_better"] = list(obj.tasks) if obj.tasks else None, obj.higher_is_better
    if isinstance(obj, Model) and obj.trainable:
        # What the harness trains the baseline with where the params do not say (TrainableParams)
        defaults = TrainableParams()
        out["training_defaults"] = {name: getattr(defaults, name) for name in TRAINING_FIELDS
                                    if name not in obj.params.model_fields}
    return out


def describe_field(declared: RecordField) -> dict[str, Any]:
    """A record field's declaration, JSON-ready (``optbench plugins --json``, the records page)."""
    return {"name": declared.name, "type": declared.type, "unit": declared.unit, "label": declared.label,
            "group": declared.group, "doc": declared.doc, "owner": declared.owner}


def _type_text(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


#: Plugins added for this process only (tests, notebooks); every manager loads them.
_session_plugins: list[tuple[str, Any]] = []


def register_session_plugin(plugin: Any, name: str) -> None:
    """Make ``plugin`` part of every plugin manager created in this process (and its cells).

    Cell processes re-create it by reference, so it must be importable: a module, or a
    class or instance defined at module level of an importable module.
    """
    if any(n == name for n, _ in _session_plugins):
        raise RegistrationError(f"a session plugin named {name!r} is already registered")
    _session_plugins.append((name, plugin))


def session_plugin_names() -> tuple[str, ...]:
    """The names of this process's session plugins, in the order they were registered."""
    return tuple(name for name, _ in _session_plugins)


def unregister_session_plugin(name: str) -> None:
    _session_plugins[:] = [(n, p) for n, p in _session_plugins if n != name]
