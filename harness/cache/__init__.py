"""Cached artifacts that cannot lie: every entry carries a manifest of its files' sizes and
sha256, checked before use; damaged entries are moved aside and rebuilt.

* :mod:`harness.cache.manifest`: write and check manifests (hashing each file once per process).
* :mod:`harness.cache.entries`: folder entries (trained models, mined negatives): per-process
  work folders, atomic publishing, stale-folder cleanup, damaged entries moved aside.
* :mod:`harness.cache.inventory`: what a cache folder holds and whether it is intact
  (`drbench cache ls`, `verify`); :mod:`harness.cache.prune`: what `drbench cache prune` removes.

Embedding matrices (:mod:`harness.model.embedding_cache`) are single files with the same
manifest fields; :mod:`harness.cache.partial` is one being encoded, in a work folder that records
the rows done so a later process resumes it. Nothing here imports torch.
"""
