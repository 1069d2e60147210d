"""What trained models and mined negatives hold, and the keys they are cached under.

A model artifact is a folder in sentence-transformers layout (so `SentenceTransformer(path)`
and `transformers.AutoModel` load it) plus `drbench.json` (what produced it) and
`train_log.jsonl`; a negatives artifact holds `negatives.json`. The pipeline publishes both
through :class:`harness.cache.entries.Entries` (manifest, atomic rename); a model's work
folder also holds its resumable checkpoint until it is published.
"""

from __future__ import annotations

import hashlib
import json
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


NEGATIVES = "negatives.json"
META = "drbench.json"


def write_negatives(folder: Path, negatives: dict[str, np.ndarray]) -> None:
    """Mined negatives (document rows per query) into an entry's work folder."""
    (folder / NEGATIVES).write_text(json.dumps({q: rows.tolist() for q, rows in negatives.items()}))


def read_negatives(folder: Path) -> dict[str, np.ndarray]:
    return {q: np.asarray(rows, dtype=np.int64) for q, rows in json.loads((folder / NEGATIVES).read_text()).items()}


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    """What produced a trained model (`drbench.json`, also read by people and `drbench cache ls`)."""
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / META).read_text())


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
    _stamp_as_source(target / "config.json", source / "config.json")
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


def _stamp_as_source(target: Path, source: Path) -> None:
    """Give the saved config.json the `transformers_version` of the model training started from
    (none if it had none), not the installed release's that save_pretrained stamps.

    A model's fingerprint hashes config.json, and a chained variant's key (STAR+ADORE on STAR)
    hashes its init's fingerprint: with the installed release there, every transformers release
    would retrain the chained stage from the same weights. The source's own stamp keeps the bytes
    fixed, and transformers, which reads the stamp (Mistral-family tokenizers load differently
    without one), treats the trained model as it treats its base. The release that trained it is
    in the store's provenance.
    """
    if not target.is_file():
        return
    config = json.loads(target.read_text())
    stamp = json.loads(source.read_text()).get("transformers_version") if source.is_file() else None
    if config.get("transformers_version") == stamp:
        return
    if stamp is None:
        del config["transformers_version"]
    else:
        config["transformers_version"] = stamp
    target.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_log(folder: Path, rows: list[dict[str, Any]]) -> None:
    with open(folder / "train_log.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def read_log(folder: Path) -> list[dict[str, Any]]:
    path = folder / "train_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
