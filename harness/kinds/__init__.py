"""Variant kinds that do not train: BM25 and the zero-shot base encoder.

Training strategies live in :mod:`harness.train.strategies`; all are registered in
:mod:`harness.api.registry`.
"""
