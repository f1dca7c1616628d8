"""Adapters that bring real model libraries into optbench as model plugins."""
