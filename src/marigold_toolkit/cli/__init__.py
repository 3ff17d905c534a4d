"""Command-line interface (``marigold``)."""
