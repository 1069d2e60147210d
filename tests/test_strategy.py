"""A new training strategy is one file: a toy strategy declared here, and nowhere else, is
registered, validated, explained, trained for 2 steps by `drbench run` and shown on the
leaderboard. If this test needs another file touched, the house has lost its shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.api import registry
from harness.cli import app
from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import parse_recipe
from harness.api.params import param
from harness.store import open_store, training_log
from harness.train.data import TrainData
from harness.train.sampling import Batch, relevance_mask, sample_positives
from harness.api.train_params import TrainParams
from harness.train.strategy import PairStrategy
from leaderboard import leaderboard_rows, render

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, quiet_console, console_text, recipe_text)


# --- the whole strategy: parameters, batch, loss -----------------------------------------------

@dataclass(frozen=True)
class MarginParams(TrainParams):
    margin: float = param(0.5, "Hinge margin between a positive and an in-batch negative.", minimum=0.0,
                          paper="1.0")


class Margin(PairStrategy):
    name = "toy-margin"
    help = "Toy: in-batch negatives under a hinge loss."
    Params = MarginParams

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: MarginParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        return Batch(query_ids, positives, rel_mask=relevance_mask(query_ids, positives, data))

    def loss(self, q: Any, d_pos: Any, d_neg: Any, batch: Batch, params: MarginParams) -> tuple[Any, dict]:
        import torch

        scores = q @ d_pos.T
        hinge = torch.relu(params.margin - scores.diagonal().unsqueeze(1) + scores)
        keep = torch.from_numpy(batch.rel_mask) & ~torch.eye(len(batch.query_ids), dtype=torch.bool)
        return (hinge * keep).sum() / keep.sum().clamp(min=1), {}


@pytest.fixture
def toy() -> Iterator[Margin]:
    strategy = registry.register(Margin())
    yield strategy
    registry.unregister(strategy.name)


VARIANT = """
[variant.toy]
kind = "toy-margin"
margin = 0.2
max_steps = 2
batch_size = 8
query_max_length = 16
doc_max_length = 32
"""


# --- registered, validated, explained, trained, shown ----------------------------------------------

def test_recipes_accept_it_typed(toy: Margin, tmp_path: Path) -> None:
    variant = parse_recipe(recipe_text(tmp_path, tmp_path, VARIANT)).variant("toy")
    assert isinstance(variant.params, MarginParams)
    assert variant.params.margin == 0.2 and variant.params.max_steps == 2 and variant.params.lr == 2e-5


@pytest.mark.parametrize("line, fragments", [
    ("margin = -1.0", ["[variant.toy] margin = -1.0: must be >= 0"]),
    ("margn = 0.1", ['[variant.toy] margn: unknown key; did you mean "margin"?']),
    ('margin = "wide"', ["[variant.toy] margin", "expected float, got str"]),
])
def test_validation_errors_name_its_keys(toy: Margin, tmp_path: Path, line: str, fragments: list[str]) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe_text(tmp_path, tmp_path, VARIANT.replace("margin = 0.2", line)), "x.toml")
    assert all(f in str(err.value) for f in fragments), str(err.value)


def test_unregistered_it_is_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match='kind = "toy-margin": unknown variant kind'):
        parse_recipe(recipe_text(tmp_path, tmp_path, VARIANT))


def test_a_second_registration_is_refused(toy: Margin) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Margin())


def test_explain_documents_it(toy: Margin) -> None:
    result = CliRunner().invoke(app, ["validate", "--explain", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    section = result.output.split('kind = "toy-margin"')[1]
    assert "Toy: in-batch negatives under a hinge loss." in section
    assert "| `margin` | float | 0.5 | >= 0 | 1.0 | Hinge margin" in section
    assert "| `lr` | float | 2e-05 |" in section  # the shared training keys come with it
    terminal = CliRunner().invoke(app, ["validate", "--explain"]).output.split('kind = "toy-margin"')[1]
    assert "margin  (float; default 0.5; allowed >= 0; paper 1.0)" in terminal
    assert "| `dropout` | float | (unset) | >= 0, < 1 |" in section  # an upper bound its check declares


def test_run_trains_it_and_the_leaderboard_shows_it(toy: Margin, tiny_model: Path, tmp_path: Path,
                                                    use_cranfield: Collection) -> None:
    recipe = parse_recipe(recipe_text(tmp_path, tiny_model, VARIANT + '[variant.zs]\nkind = "zero-shot"\n',
                                      name="toy"), tmp_path / "recipe.toml")
    outcomes = run_recipe(recipe, RunOptions(), quiet_console())
    assert [(o.variant, o.status) for o in outcomes] == [("toy", "done"), ("zs", "done")]
    db = open_store(tmp_path / "drbench.db")
    log = training_log(db, "toy", "toy")
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)
    rows = leaderboard_rows(db, experiment="toy")
    toy_row = next(row for row in rows if row.variant == "toy")
    assert toy_row.kind == "toy-margin" and toy_row.params["margin"] == 0.2
    assert toy_row.timings["train"] > 0 and set(toy_row.metrics) == {"mrr@10", "recall@100"}
    console = quiet_console()
    render(rows, console)
    assert "toy" in console_text(console) and "zs" in console_text(console)
