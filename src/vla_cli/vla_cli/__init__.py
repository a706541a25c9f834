"""The ``vla`` command: one entry point for the suite's offline tools."""
