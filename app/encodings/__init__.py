"""What a model makes of a data set, computed once and kept (see cache.py and run.py)."""
