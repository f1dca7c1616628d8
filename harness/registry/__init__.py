"""Discovering plugins: loading the built-ins, installed entry points and session plugins into one
registry, validating what they register, and describing it (``optbench plugins``)."""
