"""Exception types the library raises; only the CLI turns them into exit codes."""


class DrbenchError(Exception):
    """Base class: every error drbench raises on purpose. Its message is one line."""


class RecipeError(DrbenchError):
    """A recipe is malformed: names file, table, key, bad value and the allowed values."""


class DataError(DrbenchError):
    """A collection cannot be loaded (unknown id, not cached, mirror checksum mismatch, ...)."""


class ModelError(DrbenchError):
    """A model cannot be found or loaded."""


class IndexBuildError(DrbenchError):
    """A faiss index cannot be built from its factory string."""


class StoreError(DrbenchError):
    """The results store cannot be read or written (bad path, unknown run, newer schema, ...)."""


class CacheError(DrbenchError):
    """A cached artifact (checkpoint, model, negatives, embeddings) cannot be trusted or read."""


class RunsFailed(DrbenchError):
    """Some runs of a recipe failed and the others are stored: the recipe was fine, a run was not (exit 1)."""
