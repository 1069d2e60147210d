"""The optimisation loop: batches, step counts, the LR schedule, checkpoints and exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from harness.errors import CacheError
from harness.model.encoder import embed_batch
from harness.progress import StageProgress
from harness.train.loop import micro_batch, optimizer_for, train
from harness.train.schedule import training_schedule

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, quiet_console, loop_params, state, assert_same_weights, load_tiny,
    Interrupted)


# --- loop: batches, steps, learning rate ------------------------------------------------------

@pytest.mark.parametrize("n, batch", [(10, 4), (12, 4), (3, 8)])
def test_micro_batch_covers_every_query_once_per_epoch(n: int, batch: int) -> None:
    ids = tuple(f"q{i}" for i in range(n))
    schedule = training_schedule(n, loop_params(batch_size=batch, max_steps=0, epochs=3))
    orders = []
    for epoch in range(3):
        drawn = [q for i in range(schedule.batches_per_epoch)
                 for q in micro_batch(ids, schedule, 5, epoch * schedule.batches_per_epoch + i)]
        assert sorted(drawn) == sorted(ids)
        assert all(len(micro_batch(ids, schedule, 5, epoch * schedule.batches_per_epoch + i)) <= batch
                   for i in range(schedule.batches_per_epoch))
        orders.append(drawn)
    if n > 3:
        assert orders[0] != orders[1]  # reshuffled every epoch
    assert micro_batch(ids, schedule, 5, 1) == micro_batch(ids, schedule, 5, 1)


@pytest.mark.parametrize("overrides, total, per_epoch", [
    ({"epochs": 1}, 3, 3),                     # ceil(10 / 4) batches
    ({"epochs": 2}, 6, 3),
    ({"epochs": 2, "grad_accum": 2}, 3, 3),    # 6 micro-batches, 2 per optimizer step
    ({"epochs": 1, "grad_accum": 2}, 2, 3),    # rounds up: never less than the epochs asked
    ({"epochs": 5, "max_steps": 4}, 4, 3),     # max_steps wins
    ({"epochs": 1, "max_steps": 4, "grad_accum": 3}, 4, 3),
])
def test_plan_step_counts(overrides: dict[str, Any], total: int, per_epoch: int) -> None:
    schedule = training_schedule(10, loop_params(**{"max_steps": 0, **overrides}))
    assert (schedule.total_steps, schedule.batches_per_epoch) == (total, per_epoch)
    assert schedule.grad_accum == overrides.get("grad_accum", 1)


def test_plan_with_fewer_queries_than_a_batch() -> None:
    assert training_schedule(3, loop_params(max_steps=0, batch_size=32)).total_steps == 1


def test_lr_warms_up_linearly_then_decays_to_zero() -> None:
    model = torch.nn.ModuleDict({"dense": torch.nn.Linear(2, 2), "LayerNorm": torch.nn.LayerNorm(2),
                                 "norm": torch.nn.LayerNorm(2)})  # e.g. DistilBERT's `sa_layer_norm`
    optimizer, scheduler = optimizer_for(model, loop_params(lr=1.0, warmup_steps=4), total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    expected = [0.2, 0.4, 0.6, 0.8] + [(10 - s) / 6 for s in range(4, 10)]
    assert lrs == pytest.approx(expected)
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 4
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0)
    # weight decay on weights only, never on biases or LayerNorm
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model["dense"].weight)}


def official_lamb_step(p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], lr: float, weight_decay: float,
                       eps: float = 1e-8, betas: tuple[float, float] = (0.9, 0.999)) -> None:
    """DRhard's lamb.py `Lamb.step` for one tensor, transcribed (its deprecated `add_(scalar,
    tensor)` calls spelled as today's torch spells them); eps 1e-8 is star/train.py's."""
    if not state:
        state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    state["step"] += 1
    state["exp_avg"].mul_(betas[0]).add_(grad, alpha=1 - betas[0])
    state["exp_avg_sq"].mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
    weight_norm = p.pow(2).sum().sqrt().clamp(0, 10)
    adam_step = state["exp_avg"] / state["exp_avg_sq"].sqrt().add(eps)
    if weight_decay != 0:
        adam_step.add_(p, alpha=weight_decay)
    adam_norm = adam_step.pow(2).sum().sqrt()
    trust_ratio = 1 if weight_norm == 0 or adam_norm == 0 else weight_norm / adam_norm
    p.add_(adam_step * trust_ratio, alpha=-lr)


def test_lamb_steps_as_the_official_star_code() -> None:
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"dense": torch.nn.Linear(20, 30), "LayerNorm": torch.nn.LayerNorm(30)})
    with torch.no_grad():
        model["dense"].weight.mul_(5)  # a weight norm above 10: the official code clamps it
    theirs = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer, _ = optimizer_for(model, loop_params(optimizer="lamb", lr=1e-3, weight_decay=0.01,
                                                       warmup_steps=0), total_steps=10)  # lr stays 1e-3
    states: dict[str, dict[str, Any]] = {name: {} for name in theirs}
    for _ in range(5):
        grads = {name: torch.randn_like(p) for name, p in theirs.items()}
        for name, p in model.named_parameters():
            p.grad = grads[name].clone()
        optimizer.step()
        for name, p in theirs.items():
            official_lamb_step(p, grads[name], states[name], 1e-3, 0.01 if name == "dense.weight" else 0.0)
    for name, p in model.named_parameters():
        moved = (theirs[name] - p.detach()).abs().max().item()
        assert moved < 1e-6, name  # pytorch-optimizer adds eps to the trust ratio's denominator
    assert type(optimizer).__name__ == "Lamb"


def test_an_added_key_at_its_default_is_in_no_key() -> None:
    # `optimizer` came after results existed: at "adamw" it leaves every run and cache key as it was.
    assert "optimizer" not in loop_params().key_dict() and loop_params().as_dict()["optimizer"] == "adamw"
    assert loop_params(optimizer="lamb").key_dict()["optimizer"] == "lamb"


# --- loop: training and resume ----------------------------------------------------------------

TEXTS = ["the cell", "cells of the", "a cell in cells", "on the and", "to a is", "for with on",
         "cell cell cell", "the of and in", "is for", "with cells"]
QUERY_IDS = tuple(str(i) for i in range(len(TEXTS)))



def toy_step(model: torch.nn.Module, tokenizer: Any, calls: list[int],
             fail_at: int | None = None) -> Callable[..., Any]:
    """A loss that uses the sampling rng and dropout, so both must replay after a resume."""
    def step(query_ids: list[str], rng: np.random.Generator, at: int) -> tuple[torch.Tensor, dict[str, float]]:
        calls.append(len(calls) + 1)
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupted
        batch = tokenizer([TEXTS[int(q)] for q in query_ids], padding=True, return_tensors="pt")
        vectors = embed_batch(model, batch, pooling="mean", normalize=False)
        target = torch.from_numpy(rng.standard_normal(vectors.shape).astype(np.float32))
        return ((vectors - target) ** 2).mean(), {"target_mean": float(target.mean())}

    return step



@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_after_interruption_matches_uninterrupted(tiny_model: Path, tmp_path: Path,
                                                         grad_accum: int) -> None:
    params = loop_params(batch_size=3, max_steps=5, checkpoint_every=2, grad_accum=grad_accum)
    progress = StageProgress(quiet_console())

    model, tok = load_tiny(tiny_model)
    initial = state(model)
    calls: list[int] = []
    log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls), tmp_path / "whole", progress, "x")
    whole = state(model)
    assert [row["step"] for row in log] == [1, 2, 3, 4, 5] and len(calls) == 5 * grad_accum
    assert not all(torch.equal(initial[k], whole[k]) for k in whole)
    assert not model.training  # left in eval mode for encoding

    # die in the middle of step 4: the last checkpoint is after step 2
    model, tok = load_tiny(tiny_model)
    calls = []
    with pytest.raises(Interrupted):
        train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls, fail_at=3 * grad_accum + 1),
              tmp_path / "cut", progress, "x")
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 2

    model, tok = load_tiny(tiny_model)  # a fresh process: weights from disk, then the checkpoint
    calls = []
    resumed_log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls), tmp_path / "cut",
                           progress, "x")
    assert len(calls) == 3 * grad_accum  # steps 3, 4, 5 only
    assert resumed_log == log
    assert_same_weights(state(model), whole)


def test_keep_best_survives_a_resume_and_keeps_that_steps_weights(tiny_model: Path, tmp_path: Path) -> None:
    params = loop_params(batch_size=3, max_steps=5, checkpoint_every=2, eval_every=1, keep="best")
    progress = StageProgress(quiet_console())
    dev = {1: 0.2, 2: 0.5, 3: 0.4, 4: 0.5, 5: 0.3}  # best at step 2 (step 4 only ties it)

    def scored(model: torch.nn.Module, at: dict[int, dict[str, torch.Tensor]]) -> Callable[[], dict[str, float]]:
        def score() -> dict[str, float]:
            step = len(at) + 1
            at[step] = state(model)
            return {"dev_ndcg@10": dev[step], "dev_mrr@10": 1.0 - dev[step]}
        return score

    model, tok = load_tiny(tiny_model)
    weights: dict[int, dict[str, torch.Tensor]] = {}
    log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, []), tmp_path / "whole", progress, "x",
                   score=scored(model, weights))
    assert [row["dev_ndcg@10"] for row in log] == list(dev.values()) and log[-1]["kept_step"] == 2
    assert_same_weights(state(model), weights[2])  # the step-2 model, not the last

    model, tok = load_tiny(tiny_model)
    with pytest.raises(Interrupted):  # dies in step 4; the checkpoint after step 2 holds the best so far
        train(model, params, QUERY_IDS, 11, toy_step(model, tok, [], fail_at=4), tmp_path / "cut", progress, "x",
              score=scored(model, {}))
    model, tok = load_tiny(tiny_model)
    resumed: dict[int, dict[str, torch.Tensor]] = {1: {}, 2: {}}  # steps 1 and 2 were scored before the cut
    resumed_log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, []), tmp_path / "cut", progress, "x",
                           score=scored(model, resumed))
    assert resumed_log == log
    assert_same_weights(state(model), weights[2])


def test_training_log_records_lr_schedule_and_checkpoints(tiny_model: Path, tmp_path: Path) -> None:
    params = loop_params(batch_size=4, max_steps=4, warmup_steps=2, lr=1e-3, checkpoint_every=1)
    model, tok = load_tiny(tiny_model)
    log, seconds = train(model, params, QUERY_IDS, 0, toy_step(model, tok, []), tmp_path,
                         StageProgress(quiet_console()), "x")
    assert [r["lr"] for r in log] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 5e-4])
    assert all(set(r) == {"step", "loss", "lr", "target_mean"} for r in log) and seconds > 0
    # the last checkpoint is the one before the final step (the final model is saved elsewhere)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3


def test_different_seed_trains_differently(tiny_model: Path, tmp_path: Path) -> None:
    params = loop_params(max_steps=2)
    finals = []
    for seed in (1, 1, 2):
        model, tok = load_tiny(tiny_model)
        train(model, params, QUERY_IDS, seed, toy_step(model, tok, []), tmp_path / f"{seed}-{len(finals)}",
              StageProgress(quiet_console()), "x")
        finals.append(state(model))
    assert_same_weights(finals[0], finals[1])
    assert not all(torch.equal(finals[0][k], finals[2][k]) for k in finals[0])


class _Payload:
    """Unpickling this runs code: it touches a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def test_a_planted_checkpoint_is_refused_and_runs_nothing(tiny_model: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    workdir = tmp_path / "models" / "key.partial"
    workdir.mkdir(parents=True)
    torch.save({"step": 1, "model": _Payload(marker)}, workdir / "checkpoint.pt")
    model, tok = load_tiny(tiny_model)
    with pytest.raises(CacheError, match="refusing to load a checkpoint") as err:
        train(model, loop_params(), QUERY_IDS, 11, toy_step(model, tok, []), workdir,
              StageProgress(quiet_console()), "x")
    assert not marker.exists()
    assert str(workdir) in str(err.value) and "\n" not in str(err.value)
