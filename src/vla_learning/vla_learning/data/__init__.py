"""Datasets of (observation, action chunk) pairs and recorded observations for export checks."""
