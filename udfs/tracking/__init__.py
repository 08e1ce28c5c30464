"""MLflow: the background reporter, the registered pyfunc model, warm starts."""
