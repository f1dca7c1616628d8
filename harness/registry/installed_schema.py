"""The record schema of this installation: the harness's fields and those of every plugin that loads
here (and of this process's session plugins), for readers of records that do not hold a plugin manager
(the report, exports, ``optbench compare``, the site)."""
from __future__ import annotations

import functools

from harness.record.schema import RecordSchema
from harness.registry import manager


def installed_schema() -> RecordSchema:
    """Every field a record may hold here, loaded once per process (again when the session plugins or
    ``OPTBENCH_DISABLE_PLUGINS`` change). A field of a plugin that is not installed is still read, as
    any JSON value (``RecordSchema.validate``)."""
    return _schema(manager.session_plugin_names(), tuple(sorted(manager.disabled_names())))


@functools.lru_cache(maxsize=8)
def _schema(session: tuple[str, ...], disabled: tuple[str, ...]) -> RecordSchema:
    return manager.PluginManager.load(disabled=set(disabled)).registry.schema
