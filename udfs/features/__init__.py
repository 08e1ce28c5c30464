"""From raw JSON lines to feature rows: validation, lateness, duplicates, per-user state, batches."""
