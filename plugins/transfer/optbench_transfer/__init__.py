"""optbench-transfer: transfer-learning methods for optbench, registered through the ``optbench`` entry point."""

__version__ = "0.1.0"
