"""Callables named by reference in a suite: ``"package.module:callable"`` (anything importable) or
``"path/to/file.py:callable"`` (a file, made absolute against the suite file's folder when the suite is
planned). Shared by the ``python`` model and the ``python`` dataset: importing with errors that name the
file and line, and hashing the source that shapes what a callable returns (for the weight cache).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

#: The folder files of a factory's own folder (or package) are hashed from, at the most.
MAX_HASHED_FILES = 500


def split_factory(ref: str) -> tuple[str, str]:
    """("module or file", "callable") from "a.b:c" or "path/x.py:c"."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr or not attr.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"factory {ref!r}: expected 'package.module:callable' or 'path/to/file.py:callable'")
    return target, attr


def is_file_ref(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def resolve_factory(ref: str, base: Path) -> str:
    """A file factory made absolute against ``base`` (the suite's folder); a module reference as it is."""
    target, attr = split_factory(ref)
    if not is_file_ref(target):
        return ref
    path = Path(target).expanduser()
    return f"{path if path.is_absolute() else (base / path).resolve()}:{attr}"


def _where(exc: BaseException, path: Path | None) -> str:
    """" (file.py, line 12)" for the innermost frame of the user's code, when there is one."""
    if isinstance(exc, SyntaxError):  # its message already says where
        return ""
    machinery = str(Path(importlib.__file__).parent)  # the import system's own frames say nothing
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<", machinery)) and f.filename != __file__]
    mine = [f for f in frames if path is None or Path(f.filename) == path] or frames[-1:]
    return f" ({mine[-1].filename}, line {mine[-1].lineno})" if mine else ""


def _module_of_file(path: Path) -> Any:
    """Import a source file once per process, as a module named after its path (so two files of the
    same name in different folders stay apart); its folder goes on sys.path for its own imports."""
    name = "optbench_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12] + "_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as Python source")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_factory(ref: str) -> Any:
    """The callable ``ref`` names, or a ValueError that says what failed and where (file and line)."""
    target, attr = split_factory(ref)
    path = Path(target) if is_file_ref(target) else None
    try:
        if path is not None:
            if not path.is_file():
                raise ValueError(f"factory {ref!r}: no such file {path}")
            module = _module_of_file(path)
        else:
            module = importlib.import_module(target)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything while importing
        hint = ("; a file is named with its path: 'path/to/file.py:callable'"
                if path is None and isinstance(exc, ModuleNotFoundError) and exc.name == target.split(".")[0]
                else "")
        raise ValueError(f"factory {ref!r} does not import: {type(exc).__name__}: {exc}{_where(exc, path)}"
                         f"{hint}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise ValueError(f"factory {ref!r}: {target} has no attribute {attr!r}; its callables: "
                             f"{', '.join(public[:20]) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"factory {ref!r}: {attr} is a {type(obj).__name__}, not a callable")
    return obj


def source_files(ref: str) -> list[Path]:
    """The files whose text shapes what the factory builds: a file factory's folder's ``.py`` files
    (its own imports usually sit beside it), a module's package (or the module alone)."""
    target, _ = split_factory(ref)
    if is_file_ref(target):
        folder = Path(target).parent
        return sorted(folder.glob("*.py"))[:MAX_HASHED_FILES]
    spec = importlib.util.find_spec(target.split(".")[0])
    if spec is None:
        return []
    if spec.submodule_search_locations:  # a package: every source file in it
        roots = [Path(p) for p in spec.submodule_search_locations]
        return sorted(f for root in roots for f in root.rglob("*.py"))[:MAX_HASHED_FILES]
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


def source_hash(ref: str) -> str:
    """A hash of the factory's source files, for the weight cache's key: editing them retrains."""
    digest = hashlib.sha256()
    for path in source_files(ref):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            continue
    return digest.hexdigest()[:16]


def call_factory(factory: Any, kwargs: dict[str, Any], offered: dict[str, Any]) -> Any:
    """``factory(**kwargs)``, plus each of ``offered`` (num_classes, input_shape, data, seed) that its
    signature names and ``kwargs`` does not give."""
    import inspect

    kwargs = dict(kwargs)
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    for name, value in offered.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    return factory(**kwargs)
