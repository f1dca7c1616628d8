"""optbench-optim: optimizer methods for optbench, registered through the ``optbench`` entry point."""

__version__ = "0.1.0"
