"""Reading images robustly and writing prediction files atomically."""
