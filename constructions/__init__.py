"""Floor 3: hand-built weights for :class:`models.Transformer`, and probes of MoE failure."""
