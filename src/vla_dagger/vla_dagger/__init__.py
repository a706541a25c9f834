"""DAgger: the policy drives, an expert labels the states it visits."""
