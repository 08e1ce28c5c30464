"""Synthetic streams: the realistic generator and the reference drift streams."""
