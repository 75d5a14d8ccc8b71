"""Pictures of predictions and metrics."""
