"""ir_datasets made quiet: drbench shows its own progress, so ir_datasets' INFO logging and tqdm
bars are silenced while it reads."""

from __future__ import annotations

import contextlib
import logging
import os
import types
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def quiet_ir_datasets() -> Iterator[None]:
    """Silence ir_datasets' INFO logging and tqdm bars; drbench shows its own progress.

    ir_datasets has no switch for its bars and tqdm reads TQDM_DISABLE only when imported, so
    its cached tqdm module is swapped for one whose bars are disabled, and restored after.
    """
    import ir_datasets
    import tqdm

    logger = ir_datasets.log.easy().logger()  # created first: creating it resets it to INFO
    cache = getattr(ir_datasets.lazy_libs, "_cache", None)

    class QuietTqdm(tqdm.tqdm):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    level, pbar_env = logger.level, os.environ.get("IR_DATASETS_DL_DISABLE_PBAR")
    had_tqdm, old_tqdm = (cache is not None and "tqdm" in cache), (cache or {}).get("tqdm")
    logger.setLevel(logging.WARNING)
    os.environ["IR_DATASETS_DL_DISABLE_PBAR"] = "true"
    if isinstance(cache, dict):
        cache["tqdm"] = types.SimpleNamespace(tqdm=QuietTqdm)
    try:
        yield
    finally:
        logger.setLevel(level)
        if pbar_env is None:
            os.environ.pop("IR_DATASETS_DL_DISABLE_PBAR", None)
        else:
            os.environ["IR_DATASETS_DL_DISABLE_PBAR"] = pbar_env
        if isinstance(cache, dict):
            if had_tqdm:
                cache["tqdm"] = old_tqdm
            else:
                cache.pop("tqdm", None)
