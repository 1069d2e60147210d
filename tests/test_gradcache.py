"""Gradient caching (`chunk_size`, harness/train/gradcache.py): the same training as one whole
batch, chunk by chunk; each chunk's second pass draws its first pass's dropout masks; off by
default, out of every key while off; declared by the shared-tower pair strategies only."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from harness.api.params import declared
from harness.api.train_params import PairParams
from harness.cli import app
from harness.dense import EncoderSettings
from harness.errors import RecipeError
from harness.model.compute import Compute
from harness.model.encoder import Encoder
from harness.progress import StageProgress
from harness.recipe import parse_recipe
from harness.recipe.checks import check_processes
from harness.train.gradcache import RandContext, cached_embed, chunk_bounds
from harness.train.strategies.adore import AdoreParams
from harness.train.strategies.ance import KIND as ance
from harness.train.strategies.inbatch import KIND as inbatch
from harness.train.strategies.random import KIND as random_neg
from harness.train.strategies.star import KIND as star
from harness.train.strategies.static import KIND as static
from harness.train.strategy import PairStrategy, TrainInputs
from harness.train.trainer import train_into
from harness.world import World

# Fixtures (one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, hand_data, HAND_NEGATIVES, quiet_console, recipe_text, folder_weights)

SETTINGS = EncoderSettings(pooling="mean", normalize=True, query_max_length=None, doc_max_length=None,
                           query_prefix="", doc_prefix="", batch_size=64)
COMMON = {"batch_size": 4, "max_steps": 3, "lr": 1e-3, "warmup_steps": 1, "scale": 20.0,
          "query_max_length": 16, "doc_max_length": 16}
KINDS: dict[str, tuple[PairStrategy, dict[str, Any]]] = {
    "inbatch": (inbatch, {}),
    "random": (random_neg, {"random_negatives": 2}),
    "static": (static, {"negatives_per_query": 2}),
    "star": (star, {}),
    "ance": (ance, {"negatives_depth": 5, "negatives": 2, "refresh_every": 2}),
}
TEXTS = [f"text number {i} about {'aero ' * (i % 4)}dynamics" for i in range(7)]


def _train(tmp_path: Path, model: Path, kind: str, world: World = World(),
           **keys: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    strategy, extra = KINDS[kind]
    params = strategy.Params(**{**COMMON, **extra, **keys})
    inputs = TrainInputs(data=hand_data(), settings=SETTINGS, seed=5, nprobe=1, negatives=HAND_NEGATIVES)
    console = quiet_console()
    workdir = tmp_path / f"{kind}-{keys.get('chunk_size', 0)}-{world.size}"
    log, _ = train_into(workdir, strategy, params, inputs, model, StageProgress(console), console, kind,
                        compute=Compute(world=world))
    return log, folder_weights(workdir) if world.main else {}


def _losses(log: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k.endswith("loss")} for row in log if "loss" in row]


def _assert_same_training(a: tuple[list[dict[str, Any]], dict[str, Any]],
                          b: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    losses_a, losses_b = _losses(a[0]), _losses(b[0])
    assert len(losses_a) == len(losses_b) == 3
    for x, y in zip(losses_a, losses_b):
        assert x.keys() == y.keys()
        for key in x:
            assert abs(x[key] - y[key]) < 1e-5, (key, x[key], y[key])
    for name, tensor in a[1].items():
        assert torch.allclose(tensor, b[1][name], atol=1e-5), name


# --- the same training --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
def test_without_dropout_chunks_train_what_the_whole_batch_trains(kind: str, tmp_path: Path,
                                                                  tiny_model: Path) -> None:
    whole = _train(tmp_path, tiny_model, kind, dropout=0.0)
    start = folder_weights(tiny_model)
    assert any(not torch.equal(whole[1][k], start[k]) for k in whole[1])  # the steps did train
    # 3: the 4 queries in chunks of 2, the documents (4 to 12 of them) in chunks of 2 or 3
    _assert_same_training(whole, _train(tmp_path, tiny_model, kind, dropout=0.0, chunk_size=3))


def test_with_accumulated_micro_batches_too(tmp_path: Path, tiny_model: Path) -> None:
    """The loop divides the loss by grad_accum before its backward: the cached gradients carry it."""
    whole = _train(tmp_path / "whole", tiny_model, "star", dropout=0.0, grad_accum=2)
    _assert_same_training(whole, _train(tmp_path / "chunked", tiny_model, "star", dropout=0.0, grad_accum=2,
                                        chunk_size=3))


def test_cached_gradients_are_the_chunked_graphs_gradients_with_dropout(tiny_model: Path) -> None:
    """With dropout on, back-propagating through the cache gives the weights the gradient that one
    graph over the same chunks, drawing the same masks, gives."""
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    assert encoder.model.config.hidden_dropout_prob > 0
    encoder.model.train()
    target = torch.randn(len(TEXTS), encoder.dim, generator=torch.Generator().manual_seed(0))

    def embed(part: Any) -> torch.Tensor:
        return encoder.embed(list(part), max_length=16)

    def gradients(cached: bool) -> tuple[dict[str, torch.Tensor], float]:
        encoder.model.zero_grad(set_to_none=True)
        torch.manual_seed(42)
        if cached:
            vectors = cached_embed(embed, TEXTS, 3, encoder.device)
        else:
            vectors = torch.cat([embed(TEXTS[lo:hi]) for lo, hi in chunk_bounds(len(TEXTS), 3)])
        loss = ((vectors @ target.T).softmax(-1).diagonal().log().neg()).mean()
        loss.backward()
        return {n: p.grad.clone() for n, p in encoder.model.named_parameters() if p.grad is not None}, loss.item()

    graph, graph_loss = gradients(cached=False)
    cache, cache_loss = gradients(cached=True)
    assert cache_loss == pytest.approx(graph_loss, abs=1e-6)
    assert graph.keys() == cache.keys() and graph
    for name in graph:
        assert torch.allclose(graph[name], cache[name], atol=1e-6), name


# --- dropout: each chunk's second pass is its first ---------------------------------------------

def test_rand_context_replays_a_chunks_dropout_masks(tiny_model: Path) -> None:
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    encoder.model.train()  # dropout 0.1 from the config
    torch.manual_seed(3)
    context = RandContext(encoder.device)
    with torch.no_grad():
        first = encoder.embed(TEXTS[:3], max_length=16)
        other = encoder.embed(TEXTS[:3], max_length=16)  # the generator has moved on
    assert not torch.equal(first, other)  # dropout is on: masks differ between passes
    after = torch.get_rng_state()
    with context:
        again = encoder.embed(TEXTS[:3], max_length=16)
    assert again.requires_grad and torch.equal(first, again.detach())
    assert torch.equal(torch.get_rng_state(), after)  # the caller's generator is left where it was


def test_chunks_are_at_most_chunk_size_and_as_even_as_possible() -> None:
    assert chunk_bounds(8, 3) == [(0, 2), (2, 5), (5, 8)]
    assert chunk_bounds(4, 4) == [(0, 4)]
    assert chunk_bounds(17, 16) == [(0, 8), (8, 17)]
    for n in range(1, 40):
        for size in range(1, 12):
            bounds = chunk_bounds(n, size)
            assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == -(-n // size)
            lengths = [hi - lo for lo, hi in bounds]
            assert max(lengths) <= size and max(lengths) - min(lengths) <= 1


# --- keys and declarations ----------------------------------------------------------------------

def test_off_by_default_and_out_of_every_key_while_off() -> None:
    for strategy, _ in KINDS.values():
        params = strategy.Params()
        assert params.chunk_size == 0 and "chunk_size" not in params.key_dict()
        assert strategy.Params(chunk_size=16).key_dict()["chunk_size"] == 16  # bit-level differences: own model


def test_only_the_shared_tower_pair_strategies_declare_it() -> None:
    assert {p.name for p in declared(PairParams)} >= {"chunk_size"}
    assert "chunk_size" not in {p.name for p in declared(AdoreParams)}
    help_text = {p.name: p for p in declared(PairParams)}["chunk_size"]
    assert "Gao et al." in help_text.help and "no such option" in (help_text.paper or "")


VARIANTS = '[variant.star]\nkind = "star"\nbatch_size = 64\nchunk_size = {chunk}\n'


def test_a_recipe_with_chunk_size_validates(tmp_path: Path) -> None:
    recipe = parse_recipe(recipe_text(tmp_path, tmp_path, VARIANTS.format(chunk=16)))
    assert recipe.variant("star").params.chunk_size == 16


@pytest.mark.parametrize("line, fragment", [
    ("chunk_size = -1", "chunk_size = -1"),
    ('chunk_size = "big"', "chunk_size"),
])
def test_a_bad_chunk_size_is_one_error_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(tmp_path, tmp_path, '[variant.star]\nkind = "star"\n' + line + "\n"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output


def test_adore_does_not_take_it(tmp_path: Path) -> None:
    text = recipe_text(tmp_path, tmp_path, '[variant.ado]\nkind = "adore"\nchunk_size = 4\n')
    with pytest.raises(RecipeError, match="chunk_size"):
        parse_recipe(text)


def test_several_processes_need_chunks_they_can_share(tmp_path: Path) -> None:
    recipe = parse_recipe(recipe_text(tmp_path, tmp_path, VARIANTS.format(chunk=3)))
    check_processes(recipe, 1)
    with pytest.raises(RecipeError, match=r"\[variant.star\] chunk_size = 3 .* 2 processes"):
        check_processes(recipe, 2)
    check_processes(parse_recipe(recipe_text(tmp_path, tmp_path, VARIANTS.format(chunk=4))), 2)
    # why 2 x processes: every chunk of any number of texts then holds at least one per process
    for n in range(1, 200):
        for processes in (2, 3, 4):
            assert min(hi - lo for lo, hi in chunk_bounds(n, 2 * processes)) >= min(n, processes)


# --- several processes ----------------------------------------------------------------------------

def _ranks(rank: int, port: int, folder: str, model: str) -> None:
    """One of two gloo processes: random and star trained with and without chunks of 4 (each
    chunk split 2 + 2 over the processes), the logs and rank 0's weights written to `folder`."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(rank, 2, rank, 2)
    out: dict[str, Any] = {}
    for kind in ("random", "star"):
        for chunk in (0, 4):
            log, weights = _train(Path(folder), Path(model), kind, world, dropout=0.0, chunk_size=chunk)
            out[f"{kind}-{chunk}"] = _losses(log)
            if weights:
                torch.save(weights, Path(folder) / f"{kind}-{chunk}.pt")
    (Path(folder) / f"{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def test_two_processes_chunked_train_what_they_train_unchunked(tmp_path: Path, tiny_model: Path) -> None:
    """Cross-device negatives with chunks: every chunk's vectors are gathered from both processes,
    each re-encodes its own rows; the same losses and weights as without chunks, and as one process."""
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_ranks, args=(port, str(tmp_path), str(tiny_model)), nprocs=2)
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    for kind in ("random", "star"):
        whole = (zero[f"{kind}-0"], torch.load(tmp_path / f"{kind}-0.pt"))
        chunked = (zero[f"{kind}-4"], torch.load(tmp_path / f"{kind}-4.pt"))
        assert one[f"{kind}-4"] == chunked[0]  # every rank computes the whole batch's loss
        _assert_same_training(whole, chunked)
        _assert_same_training(_train(tmp_path, tiny_model, kind, dropout=0.0), chunked)
