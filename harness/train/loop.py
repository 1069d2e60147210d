"""The optimisation loop every trained kind shares: AdamW or LAMB with linear warm-up and decay,
gradient accumulation and clipping, periodic actions (:mod:`harness.train.hooks`: a strategy's,
dev scores, checkpoints), exact resume, a training log, progress.

Determinism: the data order of epoch e comes from `rng([seed, e])`, every micro-batch samples
with `rng([seed, step, micro])` and reseeds torch (dropout) from the same numbers, and the
checkpoint keeps every hook's state. A run resumed from a checkpoint therefore replays exactly
what an uninterrupted run would do.

Several processes: every rank draws the same global micro-batch (the data order does not depend
on their number), encodes its share of it and gathers the rest (:meth:`Encoder.embed`), so each
computes the whole batch's loss. Its backward pass gives the gradient through its own rows;
DistributedDataParallel averages those over the N ranks, so the loss is scaled by N first and
the update is the one a single process makes at the same global batch. Dropout draws its masks
per rank (rank r > 0 reseeds with `2, r` appended), so with dropout N processes train the same
objective with different noise; without it, the same numbers up to float rounding.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness.api.train_params import TrainParams
from harness.cache.manifest import file_damage, write_file_manifest
from harness.errors import CacheError
from harness.files import replacing
from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.train.hooks import DevScores, Hook, check_names, join, run_due
from harness.train.schedule import Schedule, training_schedule
from harness.train.strategy import StepFn

CHECKPOINT = "checkpoint.pt"


def micro_batch(query_ids: tuple[str, ...], schedule: Schedule, seed: int, index: int) -> list[str]:
    """The queries of global micro-batch `index` (a fresh seeded permutation every epoch)."""
    epoch, position = divmod(index, schedule.batches_per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(query_ids))
    rows = order[position * schedule.batch_size:(position + 1) * schedule.batch_size]
    return [query_ids[i] for i in rows]


def lamb(groups: list[dict[str, Any]], lr: float) -> Any:
    """LAMB as the official STAR code runs it (DRhard's lamb.py, from cybertronai/pytorch-lamb):
    Adam moments without bias correction, weight decay added to the Adam step (not decoupled),
    trust ratio ||w|| (clamped at 10) / ||step||, eps 1e-8 (its --adam_epsilon). pytorch-optimizer's
    Lamb, set so: `adam_debias=True` keeps it from dividing the step by 1 - beta1^t (it does by
    default), and it adds eps to the trust ratio's denominator, which the official one does not
    (tests/test_loop.py holds the two within 1e-6 over several steps)."""
    from pytorch_optimizer import Lamb

    return Lamb(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decouple=False, grad_averaging=True,
                pre_norm=False, adam=False, adam_debias=True)


def optimizer_for(model: torch.nn.Module, params: TrainParams, total_steps: int) -> tuple[Any, Any]:
    """AdamW or LAMB (no decay on biases and LayerNorm) with linear warm-up then linear decay to 0."""
    # By module type as well as by name: DistilBERT calls its LayerNorms `sa_layer_norm`, T5 `layer_norm`.
    norms = {id(p) for m in model.modules()
             if isinstance(m, torch.nn.LayerNorm) or type(m).__name__.endswith(("LayerNorm", "RMSNorm"))
             for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name or id(param) in norms
             else decay).append(param)
    groups = [{"params": decay, "weight_decay": params.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = lamb(groups, params.lr) if params.optimizer == "lamb" else torch.optim.AdamW(groups, lr=params.lr)
    warmup = params.warmup_steps
    # shifted: drbench's (s+1)/(w+1), so the first step already learns; official: transformers' s/w
    shift = 0 if params.warmup == "official" else 1

    def factor(step: int) -> float:
        if step < warmup:
            return (step + shift) / (warmup + shift)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _Optimiser:
    """What one optimizer step updates: AdamW or LAMB, its schedule and the fp16 gradient scaler (a
    disabled scaler passes every call straight through, so fp32 and bf16 steps are unchanged)."""

    optimizer: Any
    scheduler: Any
    scaler: Any

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def train(model: torch.nn.Module, params: TrainParams, query_ids: tuple[str, ...], seed: int, step_fn: StepFn,
          workdir: Path, progress: StageProgress, label: str,
          compute: Compute = Compute(), replica: Any = None,
          score: Callable[[], dict[str, float]] | None = None,
          hooks: Sequence[Hook] = ()) -> tuple[list[dict[str, Any]], float]:
    """Run (or resume) the loop; returns (training log, seconds spent in this call and before).

    Forward passes run under `compute`'s autocast (losses and scores stay fp32, see
    :mod:`harness.train.losses`); fp16 on CUDA scales the loss against underflow. `replica`:
    the DistributedDataParallel module the step's forward passes go through, when
    `compute.world` has several processes (rank 0 alone writes checkpoints). `score`: the dev
    scores of the model as it is now, taken every `params.eval_every` steps and after the last
    (:class:`~harness.train.hooks.DevScores`); with `params.keep == "best"` the weights of the
    best first score are the ones left in `model`, and the last log row names their step.
    `hooks`: the strategy's periodic actions, run after each step they are due, before the dev
    scores and the checkpoint (which keeps their state; see :mod:`harness.train.hooks`).
    """
    schedule = training_schedule(len(query_ids), params)
    total = schedule.total_steps
    optimizer, scheduler = optimizer_for(model, params, total)
    optim = _Optimiser(optimizer, scheduler,
                       torch.amp.GradScaler(compute.device_type, enabled=compute.scales_gradients))
    checkpoint = workdir / CHECKPOINT
    log: list[dict[str, Any]] = []
    start_step, seconds_before = 0, 0.0
    hooks = list(hooks)
    if score is not None and params.eval_every:
        hooks.append(DevScores(model, score, params.eval_every, total, keep=params.keep == "best"))
    check_names(hooks)
    if checkpoint.is_file():
        state = _load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optim.load(state)
        start_step, seconds_before = state["step"], state["seconds"]
        log.extend(state["log"])
        # before hooks: a checkpoint with dev scores kept its best weights under "best"
        saved = state.get("hooks", {"dev": {"best": state["best"]}} if "best" in state else {})
        for hook in hooks:
            hook.load(saved.get(hook.name, {}))
    model.train()
    started = time.perf_counter()
    hooks.append(_Checkpoint(checkpoint, model, optim, log, hooks, params.checkpoint_every,
                             lambda: seconds_before + time.perf_counter() - started, compute.world.main))
    before: dict[str, Any] = {}  # what hooks run before the first step log: it joins step 1's row
    if start_step == 0:
        run_due(hooks, 0, total, model, before, progress, label)
    with progress.task(f"{label}: training", total, "steps", start=start_step) as advance:
        for step in range(start_step, total):
            info = _one_step(model, optim, params, schedule, query_ids, seed, step, step_fn, compute, replica)
            log.append({"step": step + 1, **info})
            if step == 0:
                join(log[-1], before, "a hook run before the first step")
            run_due(hooks, step + 1, total, model, log[-1], progress, label)
            advance(1, f"loss {info['loss']:.4f}")
    model.eval()
    return log, seconds_before + time.perf_counter() - started


class _Checkpoint(Hook):
    """Every `checkpoint_every` steps but after the last (the finished model is saved elsewhere):
    the model, optimiser, log and every hook's state, so a resumed run replays the rest exactly.
    It runs after all other hooks of its step, so their state and log values are in; every rank
    calls it, rank 0 alone writes."""

    name = "checkpoint"

    def __init__(self, path: Path, model: torch.nn.Module, optim: _Optimiser, log: list[dict[str, Any]],
                 hooks: list[Hook], every: int, seconds: Callable[[], float], writes: bool) -> None:
        self.path, self.model, self.optim, self.log, self.hooks = path, model, optim, log, hooks
        self.every, self.seconds, self.writes = every, seconds, writes

    def due(self, step: int, total: int) -> bool:
        return 0 < step < total and step % self.every == 0

    def run(self, step: int) -> None:
        if self.writes:
            states = {hook.name: kept for hook in self.hooks if (kept := hook.state())}
            _save(self.path, self.model, self.optim, step, self.log, self.seconds(), states)


def _one_step(model: torch.nn.Module, optim: _Optimiser, params: TrainParams, schedule: Schedule,
              query_ids: tuple[str, ...], seed: int, step: int, step_fn: StepFn, compute: Compute,
              replica: Any = None) -> dict[str, Any]:
    totals: dict[str, float] = {}
    lr = optim.scheduler.get_last_lr()[0]
    world = compute.world
    # ADORE's `clip = "micro"` (declared by the query-tower strategies, hence getattr)
    per_micro = params.grad_clip > 0 and getattr(params, "clip", "step") == "micro"
    for micro in range(schedule.grad_accum):
        index = step * schedule.grad_accum + micro
        torch.manual_seed(int(np.random.default_rng([seed, step, micro, *([2, world.rank] if world.rank else [])])
                              .integers(2**62)))
        last = micro == schedule.grad_accum - 1
        # DDP all-reduces gradients on the last micro-batch only, as one process accumulates them
        syncing = contextlib.nullcontext() if last or replica is None or world.size == 1 else replica.no_sync()
        with syncing:
            with compute.autocast():
                loss, info = step_fn(micro_batch(query_ids, schedule, seed, index),
                                     np.random.default_rng([seed, step, micro, 1]), step)
            # Every rank's loss is the whole batch's; DDP averages gradients, so scale by N to sum them.
            objective = loss * world.size if world.size > 1 else loss
            optim.scaler.scale(objective / schedule.grad_accum).backward()
        if per_micro and not last:  # the last one is clipped below, with the step's own clipping
            # the gradient summed so far, as the official ADORE code clips it after every backward; a
            # scaled (fp16) gradient clipped at grad_clip * scale is the true one clipped at grad_clip
            torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip * optim.scaler.get_scale())
        for key, value in {"loss": float(loss.detach()), **info}.items():
            totals[key] = totals.get(key, 0.0) + value / schedule.grad_accum
    if params.grad_clip > 0:
        optim.scaler.unscale_(optim.optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
    optim.scaler.step(optim.optimizer)
    optim.scaler.update()
    optim.scheduler.step()
    optim.optimizer.zero_grad(set_to_none=True)
    return {**totals, "lr": lr}


def checkpoint_damage(workdir: Path) -> str | None:
    """Why the checkpoint in `workdir` cannot be resumed from, or None when it can (or there is
    none to resume: a work folder without a checkpoint has nothing to give)."""
    path = workdir / CHECKPOINT
    if not path.exists():
        return "no checkpoint"
    return file_damage(path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint holds tensors and plain numbers only; loading one must never run code (a
    cache folder may be shared, or planted), so anything else is refused, not unpickled."""
    import pickle

    try:
        # map_location: a checkpoint saved on cuda:1 resumes on a machine with one GPU, or none
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise CacheError(f"{path}: refusing to load a checkpoint that holds more than tensors and numbers "
                         f"(unpickling it could run code); delete {path.parent} to train from scratch") from None


def _save(path: Path, model: torch.nn.Module, optim: _Optimiser, step: int, log: list[dict[str, Any]],
          seconds: float, hooks: dict[str, dict[str, Any]] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"hooks": hooks} if hooks else {}  # only then: checkpoints keep their old shape
    with replacing(path) as tmp:
        torch.save({"step": step, "model": model.state_dict(), **optim.state(), "log": log, "seconds": seconds,
                    **extra}, tmp)
    write_file_manifest(path, step=step)  # a resume trusts the checkpoint only if this holds
