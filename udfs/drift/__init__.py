"""Drift checks (KS tests, error rate) and what the trainer does about drift."""
