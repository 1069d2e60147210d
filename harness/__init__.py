"""drbench harness: recipes -> data -> model -> index -> evaluate -> store.

Imports run one way, down these layers; :mod:`harness.pipeline` is the only module that
wires stages together. Light modules (recipe, store, data availability) never import torch.
"""

__version__ = "0.1.0"
