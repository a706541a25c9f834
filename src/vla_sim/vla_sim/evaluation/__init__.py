"""Closed-loop evaluation in simulation: trained policies and the scripted expert."""
