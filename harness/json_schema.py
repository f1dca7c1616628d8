"""``optbench schema``: a JSON Schema for suites that knows every installed plugin.

Method entries become a ``oneOf`` keyed by ``name``; each method's ``params`` accept
the plugin's own parameter schema, where every parameter may also be given as a
list of values (a grid). Editors that read JSON Schema then complete and check
plugin parameters as the harness does.
"""
from __future__ import annotations

import copy
from typing import Any

from harness.plugin_manager import Registry
from harness.suite import Suite


def _params_schema(model: Any, grid: bool) -> dict[str, Any]:
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    if grid:
        for name, prop in list(schema.get("properties", {}).items()):
            one = copy.deepcopy(prop)
            one.pop("default", None)
            one.pop("description", None)
            schema["properties"][name] = {
                "anyOf": [one, {"type": "array", "items": one, "minItems": 1}],
                **{k: prop[k] for k in ("default", "description", "title") if k in prop},
            }
    schema["additionalProperties"] = False
    if defs:
        schema["$defs"] = defs
    return schema


def _entries(table: dict[str, Any], base: dict[str, Any], grid: bool) -> dict[str, Any]:
    variants = []
    for name, obj in sorted(table.items()):
        if getattr(obj, "kind", None) == "baseline":
            continue
        entry = copy.deepcopy(base)
        entry["properties"]["name"] = {"const": name, "description": obj.description}
        entry["properties"]["params"] = _params_schema(obj.params, grid)
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
    props["datasets"]["items"] = _entries(registry.datasets, copy.deepcopy(entry_base), grid=False)
    props["backends"]["items"] = _entries(registry.backends, copy.deepcopy(entry_base), grid=False)
    props["models"]["items"] = _entries(registry.models, model_base, grid=False)
    props["methods"]["items"] = _entries(registry.methods, method_base, grid=True)
    for key in ("Entry", "ModelEntry", "MethodEntry"):
        defs.pop(key, None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "optbench suite"
    return schema
