"""optbench-myplugin: an optbench plugin (the template's package; rename it)."""

__version__ = "0.1.0"
