"""pi0-style flow-matching VLA: transformer trunk + action expert."""
