"""The frozen objects a recipe is parsed into. No raw dict travels past the loader."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    seed: int
    store: str
    cache_dir: str
    description: str


@dataclass(frozen=True)
class ModelConfig:
    base: str
    query_max_length: int | None
    doc_max_length: int | None
    pooling: str | None
    normalize: bool | None
    batch_size: int
    query_prefix: str
    doc_prefix: str


@dataclass(frozen=True)
class DataConfig:
    train: str | None
    eval: tuple[str, ...]
    mirror: str | None


@dataclass(frozen=True)
class EvalConfig:
    indexes: tuple[str, ...]
    metrics: tuple[str, ...]
    depth: int
    search_batch_size: int
    nprobe: int
    index_train_sample: int


@dataclass(frozen=True)
class Variant:
    """One row of the leaderboard: a named kind plus its kind-specific parameters."""

    name: str
    kind: str
    description: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def param(self, key: str) -> Any:
        return self.params[key]

    def as_json(self) -> str:
        """Canonical JSON of what determines this variant's results (for run keys)."""
        return json.dumps({"kind": self.kind, **dict(self.params)}, sort_keys=True)


@dataclass(frozen=True)
class Recipe:
    path: Path
    text: str
    experiment: ExperimentConfig
    model: ModelConfig
    data: DataConfig
    eval: EvalConfig
    variants: tuple[Variant, ...]

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    def model_json(self) -> str:
        return json.dumps(asdict(self.model), sort_keys=True)
