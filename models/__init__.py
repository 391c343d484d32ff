"""Floor 2: the Dense/MoE transformer, the trainer and the LADS networks (torch)."""
