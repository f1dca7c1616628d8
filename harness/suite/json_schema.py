"""``optbench schema``: a JSON Schema for suites that knows every installed plugin.

Method entries become a ``oneOf`` keyed by ``name``; each method's ``params`` accept
the plugin's own parameter schema, where every parameter may also be given as a
list of values (a grid) or a search (``{grid: [..]}``, and for numbers
``{log_grid: [low, high], points: n}``). Editors that read JSON Schema then complete and check
plugin parameters as the harness does.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from harness.record.status import BASELINE
from harness.registry.manager import Registry
from harness.suite.schema import Suite


def _hoist(schema: dict[str, Any], defs: dict[str, Any], root: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Move a plugin schema's ``$defs`` to the suite schema's root, where its ``#/$defs/..``
    references resolve; a name already used there for something else gets ``prefix``."""
    renames = {}
    for name, definition in defs.items():
        target = name if root.get(name, definition) == definition else f"{prefix}_{name}"
        root[target] = definition
        if target != name:
            renames[name] = target
    if not renames:
        return schema
    text = json.dumps(schema)
    for old, new in renames.items():
        text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
    return json.loads(text)


def _params_schema(model: Any, grid: bool, root_defs: dict[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    if grid:
        for name, prop in list(schema.get("properties", {}).items()):
            one = copy.deepcopy(prop)
            one.pop("default", None)
            one.pop("description", None)
            choices = [one, {"type": "array", "items": one, "minItems": 1},
                       {"type": "object", "properties": {"grid": {"type": "array", "items": one, "minItems": 1}},
                        "required": ["grid"], "additionalProperties": False,
                        "description": "a searched hyperparameter: reports pick the best value"}]
            if one.get("type") in ("number", "integer"):
                choices.append({
                    "type": "object", "required": ["log_grid"], "additionalProperties": False,
                    "description": "a searched hyperparameter: points log-spaced values from low to high",
                    "properties": {
                        "log_grid": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                                     "minItems": 2, "maxItems": 2},
                        "points": {"type": "integer", "minimum": 2, "maximum": 100, "default": 5},
                    },
                })
            schema["properties"][name] = {
                "anyOf": choices,
                **{k: prop[k] for k in ("default", "description", "title") if k in prop},
            }
    schema["additionalProperties"] = False
    if defs and root_defs is not None:
        return _hoist(schema, defs, root_defs, prefix)
    if defs:
        schema["$defs"] = defs
    return schema


def _entries(table: dict[str, Any], base: dict[str, Any], grid: bool, root_defs: dict[str, Any]) -> dict[str, Any]:
    variants = []
    for name, obj in sorted(table.items()):
        if getattr(obj, "kind", None) == BASELINE:
            continue
        entry = copy.deepcopy(base)
        entry["properties"]["name"] = {"const": name, "description": obj.description}
        entry["properties"]["params"] = _params_schema(obj.params, grid, root_defs, name.replace(".", "_"))
        entry["required"] = ["name"]
        variants.append(entry)
        if not any(f.is_required() for f in obj.params.model_fields.values()):
            variants.append({"const": name, "description": obj.description})
    return {"oneOf": variants}


def suite_schema(registry: Registry) -> dict[str, Any]:
    schema = Suite.model_json_schema()
    defs = schema.get("$defs", {})
    props = schema["properties"]
    entry_base = {"type": "object", "properties": {}, "additionalProperties": False}
    model_base = copy.deepcopy(entry_base)
    model_base["properties"].update(copy.deepcopy(defs["ModelEntry"]["properties"]))
    method_base = copy.deepcopy(entry_base)
    method_base["properties"].update(copy.deepcopy(defs["MethodEntry"]["properties"]))
    dataset_base = copy.deepcopy(entry_base)
    dataset_base["properties"].update(copy.deepcopy(defs["DatasetEntry"]["properties"]))
    props["datasets"]["items"] = _entries(registry.datasets, dataset_base, False, defs)
    props["backends"]["items"] = _entries(registry.backends, copy.deepcopy(entry_base), False, defs)
    props["models"]["items"] = _entries(registry.models, model_base, False, defs)
    props["methods"]["items"] = _entries(registry.methods, method_base, True, defs)
    step = copy.deepcopy(props["methods"]["items"])  # a pipeline step is any method entry
    for variant in step["oneOf"]:
        if isinstance(variant, dict) and "properties" in variant:
            variant["properties"] = {k: v for k, v in variant["properties"].items() if k in ("name", "params")}
    pipeline = copy.deepcopy(method_base)
    pipeline["properties"] = {k: v for k, v in pipeline["properties"].items() if k not in ("name", "params")}
    pipeline["properties"]["pipeline"] = {"type": "array", "minItems": 1, "items": step,
                                          "description": "methods applied in order"}
    pipeline["required"] = ["pipeline"]
    props["methods"]["items"]["oneOf"].append(pipeline)
    for key in ("ModelEntry", "MethodEntry"):  # Entry stays: pipeline steps refer to it
        defs.pop(key, None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "optbench suite"
    return schema
