"""The pipeline without Flink: library mode and the per-event baselines."""
