"""Retrievers that need no dense model (BM25 via bm25s)."""
