"""The models and the window policy: scaler, learners, model kinds, metrics, the trainer, scoring."""
