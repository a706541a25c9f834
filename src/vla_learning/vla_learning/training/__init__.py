"""Training loop, checkpoints, plots and distributed helpers."""
