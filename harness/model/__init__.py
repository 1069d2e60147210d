"""The model layer: find a model, describe it, encode texts, cache the vectors.

* :mod:`harness.model.spec` resolves a name to a folder and reads a frozen :class:`ModelSpec`
  (torch-free, so ``validate`` and ``ls`` stay light).
* :mod:`harness.model.encoder` is the one module that imports torch and transformers for encoding.
* :mod:`harness.model.embedding_cache` stores encoded collections on disk (numpy only).

Nothing heavy is imported here; import the submodule you need.
"""
