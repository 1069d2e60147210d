"""faiss indexes from factory strings. :mod:`harness.index.faiss_index` is the only module
that imports faiss."""
