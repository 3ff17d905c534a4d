"""Labelling at scale: sharded, resumable batch inference (``marigold label``), locally or on Ray Data."""
