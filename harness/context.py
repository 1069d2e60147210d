"""What stages share during one `drbench run`: the recipe, caches, progress, and the models
variants have produced so far (so chained variants train each stage once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.data.collection import Collection, load_collection
from harness.dense import DenseModel, ModelRef
from harness.progress import StageProgress
from harness.recipe.model import Recipe
from harness.registry import KINDS, resolve


@dataclass
class StageContext:
    recipe: Recipe
    cache_dir: Path
    progress: StageProgress
    console: Console
    mirror: Path | None = None
    db: Any = None
    experiment: Any = None  # ExperimentRecord: training logs are stored under its name
    _models: dict[str, ModelRef] = field(default_factory=dict)
    _dense: dict[tuple[str, str], DenseModel] = field(default_factory=dict)
    _train: Collection | None = None

    def train_collection(self) -> Collection:
        """The recipe's training split, loaded once."""
        if self._train is None:
            dataset_id = self.recipe.data.train
            assert dataset_id is not None, "the recipe loader requires [data] train for trained kinds"
            with self.progress.spinner(f"loading {dataset_id}"):
                self._train = load_collection(dataset_id, self.mirror)
        return self._train

    def model_for(self, name: str) -> ModelRef:
        """The encoders behind `base` or a dense variant's name, training it on first use."""
        if name == "base":
            return ModelRef.shared(self.recipe.model.base)
        if name not in self._models:
            variant = self.recipe.variant(name)
            if KINDS[variant.kind].family != "dense":
                raise ValueError(f"variant {name!r} has no dense model")
            self._models[name] = resolve(variant.kind)(variant, self)
        return self._models[name]

    def dense(self, ref: ModelRef) -> DenseModel:
        """A DenseModel for `ref` with the recipe's encoding settings (cached per ref)."""
        key = (ref.query, ref.doc)
        if key not in self._dense:
            self._dense[key] = DenseModel.open(ref, self.recipe.model)
        return self._dense[key]
