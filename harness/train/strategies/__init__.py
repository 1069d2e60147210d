"""Training strategies, one file each: its parameters, what it needs, its batch and its loss.

Each module declares `KIND` (a :class:`harness.train.strategy.Strategy`) and is registered by
one line in :data:`harness.api.registry.BUILTIN`. Modules here import no torch at import time.
"""
