"""Shared pieces of every test that trains or reads what training made: hand-made training data
and loop parameters, a cut-down Cranfield, recipe and stage helpers, weight and folder checks.

Everything uses the tiny random-weight BERT. Tests that need a corpus use the first 300
Cranfield documents (loaded through the real ir_datasets API from the offline mirror, then cut
down): encoding the full 1,400 documents on a shared CPU would dominate the run time. The cut
stays above 256 documents so that a PQ8 index (256 centroids per sub-quantizer) can train.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rich.console import Console

from harness.data.collection import Collection, load_collection
from harness.pipeline.models import Models
from harness.progress import StageProgress
from harness.recipe.loader import parse_recipe
from harness.train.data import TrainData
from harness.api.train_params import TrainParams

N_DOCS = 300


# --- helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """Tiny models on a shared 2-core machine: torch's intra-op threads only spin-wait on each
    other (a training step goes from ~10 ms to ~0.5 s under load). One thread, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=250, force_terminal=False)


def console_text(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


def hand_data() -> TrainData:
    """10 documents, 4 queries; q2 and q3 share document 2 (q3's only positive)."""
    positives = {"q1": (0,), "q2": (1, 2), "q3": (2,), "q4": (3,)}
    return TrainData(query_ids=("q1", "q2", "q3", "q4"),
                     queries={q: f"query {q}" for q in positives}, positives=positives,
                     doc_texts=tuple(f"doc {i}" for i in range(10)),
                     relevance={q: {r: 1 for r in rows} for q, rows in positives.items()})


# q4's only mined negative (doc 0) is q1's positive: a cross-query collision the masks must catch.
HAND_NEGATIVES = {"q1": np.array([5, 6, 7]), "q2": np.array([4, 5]), "q3": np.array([8, 9]),
                  "q4": np.array([0])}


def loop_params(**overrides: Any) -> TrainParams:
    params = {"batch_size": 4, "epochs": 1, "max_steps": 5, "grad_accum": 1, "lr": 1e-3,
              "weight_decay": 0.01, "warmup_steps": 2, "grad_clip": 1.0, "checkpoint_every": 2}
    return TrainParams(**{**params, **overrides})


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def folder_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def files_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cranfield(mirror: Path) -> Collection:
    """The first N_DOCS Cranfield documents and the queries judged on them."""
    full = load_collection("cranfield", mirror)
    keep = set(full.doc_ids[:N_DOCS])
    qrels = {q: {d: r for d, r in rels.items() if d in keep} for q, rels in full.qrels.items()}
    qrels = {q: rels for q, rels in qrels.items() if rels}
    return replace(full, doc_ids=full.doc_ids[:N_DOCS], doc_texts=full.doc_texts[:N_DOCS],
                   queries={q: full.queries[q] for q in qrels}, qrels=qrels)


@pytest.fixture
def use_cranfield(cranfield: Collection, monkeypatch: pytest.MonkeyPatch) -> Collection:
    """Make the pipeline and StageContext load the cut-down Cranfield."""
    def fake_load(dataset_id: str, mirror: Any = None, **_: Any) -> Collection:
        assert dataset_id == "cranfield"
        return cranfield

    monkeypatch.setattr("harness.pipeline.run.load_collection", fake_load)
    monkeypatch.setattr("harness.pipeline.models.load_collection", fake_load)
    monkeypatch.setattr("harness.pipeline.run.git_commit", lambda _: (None, False))
    return cranfield


def recipe_text(folder: Path, model: Path, variants: str, *, name: str = "train-test",
                seed: int = 3, cache: str = "cache") -> str:
    return f"""\
[experiment]
name = "{name}"
seed = {seed}
store = "{folder}/drbench.db"
cache_dir = "{folder}/{cache}"
[model]
base = "{model}"
[data]
train = "cranfield"
eval = ["cranfield"]
[eval]
indexes = ["Flat"]
metrics = ["mrr@10", "recall@100"]
depth = 100
{variants}"""


def stage_context(text: str, cache_dir: Path) -> Models:
    """The pipeline's model resolver for a recipe, without a store."""
    console = quiet_console()
    return Models(parse_recipe(text), cache_dir, StageProgress(console), console)


def count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Wrap module.name, recording every call as (args, kwargs)."""
    calls: list[Any] = []
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def forbid(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError(f"{module.__name__}.{name} must not be called")

    monkeypatch.setattr(module, name, refuse)

def load_tiny(path: Path) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)

class Interrupted(Exception):
    pass
