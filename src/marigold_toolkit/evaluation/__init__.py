"""Evaluation protocol: metrics, alignment, benchmark loaders, the runner and reports."""
