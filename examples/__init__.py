"""Worked examples of bringing your own model to the explorer (see docs/plugins.md)."""
