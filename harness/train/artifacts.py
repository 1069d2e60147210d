"""Trained models and mined negatives as cached artifacts, keyed by what produced them.

Only the pipeline reads and publishes them; training stages write into the folder they are given.

A model artifact is a folder in sentence-transformers layout (so `SentenceTransformer(path)`
and `transformers.AutoModel` load it) plus `drbench.json` (what produced it) and
`train_log.jsonl`. It appears atomically: built in `<key>.partial/`, renamed when complete.
The partial folder also holds the resumable checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

# Bump when training code changes what a given recipe produces.
TRAIN_VERSION = 1
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def artifact_key(**parts: Any) -> str:
    """sha256 of a canonical JSON of everything that determines an artifact."""
    blob = json.dumps({"train_version": TRAIN_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_negatives(path: Path) -> dict[str, np.ndarray] | None:
    """Cached mined negatives (document rows per query), or None when absent."""
    if not path.is_file():
        return None
    return {q: np.asarray(rows, dtype=np.int64) for q, rows in json.loads(path.read_text()).items()}


def save_negatives(path: Path, negatives: dict[str, np.ndarray]) -> None:
    """Write mined negatives atomically: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({q: rows.tolist() for q, rows in negatives.items()}))
    os.replace(tmp, path)


class ModelArtifacts:
    """`root/<key>/` for finished models, `root/<key>.partial/` while training."""

    def __init__(self, root: Path):
        self.root = root

    def final(self, key: str) -> Path:
        return self.root / key

    def partial(self, key: str) -> Path:
        return self.root / f"{key}.partial"

    def load(self, key: str) -> dict[str, Any] | None:
        """The finished artifact's `drbench.json`, or None when it is absent or incomplete."""
        meta = self.final(key) / "drbench.json"
        if not meta.is_file():
            return None
        try:
            return json.loads(meta.read_text())
        except json.JSONDecodeError:
            return None

    def publish(self, key: str, meta: dict[str, Any]) -> Path:
        """Write `drbench.json` last and move the partial folder into place."""
        partial, final = self.partial(key), self.final(key)
        (partial / "checkpoint.pt").unlink(missing_ok=True)
        tmp = partial / "drbench.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, partial / "drbench.json")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        return final


def save_encoder(model: Any, tokenizer: Any, source: Path, target: Path, *, max_seq_length: int | None) -> None:
    """Save a transformers model in sentence-transformers layout, copying the source's
    pooling/normalize modules so the saved folder encodes exactly as drbench does."""
    from transformers.utils import logging as hf_logging

    target.mkdir(parents=True, exist_ok=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its tqdm bar would break the rich display
    try:
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    for name in _ST_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    for sub in source.iterdir():
        if sub.is_dir() and (sub / "config.json").is_file() and sub.name[0].isdigit():
            shutil.copytree(sub, target / sub.name, dirs_exist_ok=True)
    if max_seq_length and (target / "sentence_bert_config.json").is_file():
        config = json.loads((target / "sentence_bert_config.json").read_text())
        config["max_seq_length"] = max_seq_length
        (target / "sentence_bert_config.json").write_text(json.dumps(config, indent=2))


def write_log(folder: Path, rows: list[dict[str, Any]]) -> None:
    with open(folder / "train_log.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def read_log(folder: Path) -> list[dict[str, Any]]:
    path = folder / "train_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
