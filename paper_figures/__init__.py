"""Floor 4: one script per paper figure; reads committed result files, imports theory only."""
