"""Floor 5: the ``parrots`` CLI, sweeps, runners and benchmarks; writes ``results/``."""
