"""ACT: CVAE + transformer, chunked."""
