"""Fidelity to the official DRhard code: the warm-up, ADORE's loss divisor and clipping, and
dropout as a training key. Each defaults to drbench's earlier behaviour and names the official
value in `paper`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.api.params import declared
from harness.api.train_params import TrainParams
from harness.model.compute import Compute
from harness.model.encoder import Encoder, embed_batch, set_dropout
from harness.train.data import TrainData
from harness.train.frozen_index import frozen_index, live_retrieval_step
from harness.train.loop import _one_step, _Optimiser, micro_batch, optimizer_for
from harness.train.schedule import Schedule
from harness.train.strategies.adore import AdoreParams

from train_helpers import one_torch_thread, loop_params  # noqa: F401


# --- the warm-up --------------------------------------------------------------------------------

def lrs_of(params: TrainParams, total: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = optimizer_for(model, params, total_steps=total)
    out = []
    for _ in range(total):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_official_warmup_is_s_over_w_and_its_first_step_has_lr_zero() -> None:
    official = lrs_of(loop_params(lr=1.0, warmup_steps=4, warmup="official"), 10)
    assert official == pytest.approx([0.0, 0.25, 0.5, 0.75] + [(10 - s) / 6 for s in range(4, 10)])
    shifted = lrs_of(loop_params(lr=1.0, warmup_steps=4), 10)  # the default: (s+1)/(w+1)
    assert shifted == pytest.approx([0.2, 0.4, 0.6, 0.8] + [(10 - s) / 6 for s in range(4, 10)])
    # no warm-up: both are the plain linear decay
    assert lrs_of(loop_params(lr=1.0, warmup_steps=0, warmup="official"), 4) == pytest.approx([1, .75, .5, .25])


def test_new_keys_stay_out_of_keys_at_their_defaults() -> None:
    for params in (loop_params(), AdoreParams()):
        assert not {"warmup", "dropout", "loss_divisor", "clip"} & set(params.key_dict())
    assert loop_params(warmup="official").key_dict()["warmup"] == "official"
    assert loop_params(dropout=0.0).key_dict()["dropout"] == 0.0
    keys = AdoreParams(loss_divisor="nominal", clip="micro").key_dict()
    assert (keys["loss_divisor"], keys["clip"]) == ("nominal", "micro")
    papers = {p.name: p.paper for p in declared(AdoreParams)}
    assert papers["warmup"].startswith("official") and papers["loss_divisor"] == "nominal"
    assert papers["clip"] == "micro"
    check = {p.name: p for p in declared(TrainParams)}["dropout"]
    assert check.minimum == 0.0 and check.check(0.99) is None and check.check(1.0) and check.check(1.5)


# --- ADORE: the short last batch --------------------------------------------------------------

def test_nominal_divisor_scales_a_short_batch_by_actual_over_nominal(tiny_model: Path) -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((40, 32)).astype(np.float32)
    fi = frozen_index("Flat", raw, seed=0)
    data = TrainData(("a", "b", "c"), {"a": "the cell", "b": "cells of the", "c": "on a is"},
                     {"a": (1,), "b": (2, 3), "c": (4,)}, tuple(f"doc {i}" for i in range(40)))
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    encoder.model.eval()  # no dropout: both losses see the same vectors
    settings = SimpleNamespace(query_prefix="")
    base = dict(query_max_length=16, top_k=20, batch_size=4, scale=2.0)

    def loss(**extra: str) -> torch.Tensor:
        step = live_retrieval_step(encoder, AdoreParams(**base, **extra), data, fi, settings)
        return step(["a", "b", "c"], np.random.default_rng(0), 0)[0].detach()

    actual, nominal = loss(), loss(loss_divisor="nominal")
    # three queries in a batch of four: the official code divides their summed losses by 4, not 3
    assert float(nominal) == pytest.approx(float(actual) * 3 / 4, rel=1e-6)
    assert float(actual) > 0
    full = live_retrieval_step(encoder, AdoreParams(**{**base, "batch_size": 3}, loss_divisor="nominal"), data, fi,
                               settings)(["a", "b", "c"], np.random.default_rng(0), 0)[0].detach()
    assert float(full) == pytest.approx(float(actual), rel=1e-6)  # a full batch: the same loss


# --- ADORE: clipping every micro-batch ---------------------------------------------------------

GRADS = {"a": np.array([3.0, 4.0]), "b": np.array([2.0, 0.0])}  # d loss / d w of each query's loss


def clipped(g: np.ndarray, limit: float = 1.0) -> np.ndarray:
    norm = np.linalg.norm(g)
    return g * min(1.0, limit / (norm + 1e-6))  # torch's clip_grad_norm_ formula


def one_accumulated_step(clip: str) -> tuple[np.ndarray, list[str]]:
    """One SGD step (lr 1) from w = 0 over two micro-batches of one query each: returns -w (the
    gradient the step applied) and the order the queries came in."""
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optim = _Optimiser(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
                       torch.amp.GradScaler("cpu", enabled=False))
    params = AdoreParams(batch_size=1, grad_accum=2, grad_clip=1.0, clip=clip)
    schedule = Schedule(total_steps=1, batches_per_epoch=2, batch_size=1, grad_accum=2)
    ids = ("a", "b")

    def step(query_ids: list[str], rng: np.random.Generator, at: int) -> tuple[torch.Tensor, dict[str, float]]:
        [q] = query_ids
        return (model.weight[0] * torch.tensor(GRADS[q], dtype=torch.float32)).sum(), {}

    _one_step(model, optim, params, schedule, ids, 0, 0, step, Compute())
    order = [micro_batch(ids, schedule, 0, i)[0] for i in range(2)]
    return -model.weight.detach()[0].numpy().astype(np.float64), order


def test_clip_per_micro_batch_is_the_official_running_clip() -> None:
    per_step, order = one_accumulated_step("step")
    per_micro, same_order = one_accumulated_step("micro")
    assert order == same_order
    first, second = (GRADS[q] / 2 for q in order)  # the loop divides each micro-batch's loss by grad_accum
    assert per_step == pytest.approx(clipped(first + second), abs=1e-6)
    # adore/train.py:227 clips after every backward, the running sum included
    assert per_micro == pytest.approx(clipped(clipped(first) + second), abs=1e-6)
    assert not np.allclose(per_step, per_micro, atol=1e-3)




# --- dropout ----------------------------------------------------------------------------------

def train_mode_vectors(encoder: Encoder, torch_seed: int) -> torch.Tensor:
    encoder.model.train()
    torch.manual_seed(torch_seed)
    batch = encoder.tokenizer(["the cell", "cells of the"], padding=True, return_tensors="pt")
    with torch.no_grad():
        return embed_batch(encoder.model, batch, pooling="mean", normalize=True)


def test_dropout_zero_makes_training_forward_passes_independent_of_the_torch_seed(tiny_model: Path) -> None:
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    config_rate = encoder.model.config.hidden_dropout_prob
    assert config_rate > 0  # the model's own rate, which an unset `dropout` keeps
    assert not torch.allclose(train_mode_vectors(encoder, 1), train_mode_vectors(encoder, 2))
    assert set_dropout(encoder.model, 0.0) > 0
    assert all(m.p == 0.0 for m in encoder.model.modules() if isinstance(m, torch.nn.Dropout))
    assert torch.equal(train_mode_vectors(encoder, 1), train_mode_vectors(encoder, 2))
    assert encoder.model.config.hidden_dropout_prob == config_rate  # the saved config keeps the model's own
