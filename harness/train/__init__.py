"""Training: losses (pure torch) for in-batch, random, static, STAR and ADORE strategies."""
