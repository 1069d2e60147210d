"""Periodic actions of the training loop (harness.train.hooks): when they run, what they log, and
that a hooked run killed between two hook calls resumes to exactly the uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch

from harness.api.train_params import TrainParams
from harness.dense import EncoderSettings
from harness.model.encoder import embed_batch
from harness.progress import StageProgress
from harness.train.hooks import Hook, run_due
from harness.train.loop import CHECKPOINT, train
from harness.train.strategy import StepFn, Strategy, TrainInputs
from harness.train.trainer import train_into

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, quiet_console, console_text, loop_params, state, assert_same_weights, load_tiny, folder_weights,
    hand_data, Interrupted)

TEXTS = ["the cell", "cells of the", "a cell in cells", "on the and", "to a is", "for with on",
         "cell cell cell", "the of and in", "is for", "with cells"]
QUERY_IDS = tuple(str(i) for i in range(len(TEXTS)))


class Drift(Hook):
    """A toy refresh: every `every` steps (and before the first) the shift the loss aims at moves by
    a seeded draw. The shift depends on every earlier draw, so only the state carries it over."""

    name = "drift"
    at_start = True

    def __init__(self, seed: int, every: int = 2, model: torch.nn.Module | None = None) -> None:
        self.seed, self.every, self.model = seed, every, model
        self.shift = torch.zeros(())
        self.ran: list[int] = []  # the steps it ran at, in this process (not state)

    def run(self, step: int) -> dict[str, Any]:
        assert not torch.is_grad_enabled() and (self.model is None or not self.model.training)
        self.ran.append(step)
        self.shift = self.shift + float(np.random.default_rng([self.seed, step]).standard_normal())
        return {"drift": {"shift": float(self.shift), "at": step}}

    def state(self) -> dict[str, Any]:
        return {"shift": self.shift}

    def load(self, state: dict[str, Any]) -> None:
        self.shift = state["shift"]


class Forgetful(Drift):
    """The same hook keeping nothing in the checkpoint: a resume cannot replay it."""

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        pass


def drift_step(model: torch.nn.Module, tokenizer: Any, drift: Drift, seen: list[int],
               fail_at: int | None = None) -> StepFn:
    """A loss pulled towards the hook's current shift; dies when the loop reaches step `fail_at`."""
    def step(query_ids: list[str], rng: np.random.Generator, at: int) -> tuple[torch.Tensor, dict[str, float]]:
        seen.append(at)
        if at == fail_at:
            raise Interrupted
        batch = tokenizer([TEXTS[int(q)] for q in query_ids], padding=True, return_tensors="pt")
        vectors = embed_batch(model, batch, pooling="mean", normalize=False)
        target = torch.from_numpy(rng.standard_normal(vectors.shape).astype(np.float32)) + drift.shift
        return ((vectors - target) ** 2).mean(), {}

    return step


def run(tiny_model: Path, folder: Path, hook: type[Drift] = Drift, fail_at: int | None = None,
        **overrides: Any) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor], Drift, list[int]]:
    """Train 5 steps (a checkpoint after step 3) with the toy hook, in a fresh 'process'."""
    model, tok = load_tiny(tiny_model)
    drift, seen = hook(seed=7, model=model), []
    params = loop_params(batch_size=3, max_steps=5, checkpoint_every=3, **overrides)
    log, _ = train(model, params, QUERY_IDS, 11, drift_step(model, tok, drift, seen, fail_at), folder,
                   StageProgress(quiet_console()), "x", hooks=[drift])
    return log, state(model), drift, seen


def test_hooks_run_with_the_step_number_and_log_into_its_row(tiny_model: Path, tmp_path: Path) -> None:
    log, _, drift, seen = run(tiny_model, tmp_path)
    assert drift.ran == [0, 2, 4]  # before the first step, then after every second
    assert seen == [0, 1, 2, 3, 4]  # the step function counts as the hooks do
    # what it logs before the first step joins step 1's row; the others their own step's
    assert [row.get("drift", {}).get("at") for row in log] == [0, 2, None, 4, None]
    assert all(set(row) <= {"step", "loss", "lr", "drift"} for row in log)
    assert log[3]["drift"]["shift"] == pytest.approx(float(drift.shift))


class Announced(Hook):
    """A long hook: it names what it does and counts `items` texts through `advance`."""

    name, every, announce = "slow", 1, "re-encoding"

    def __init__(self, items: int) -> None:
        self.items = items

    def work(self) -> tuple[int, str]:
        return self.items, "texts"

    def run(self, step: int, advance: Any = None) -> dict[str, Any]:
        advance(self.items)
        return {"slow": step}


@pytest.mark.parametrize("items", [0, 1500], ids=["spinner", "counted"])
def test_an_announced_hook_is_a_stage_of_the_trainings_progress(items: int) -> None:
    console, row = quiet_console(), {}
    run_due([Announced(items)], 2, 4, torch.nn.Linear(1, 1), row, StageProgress(console, plain=True), "star")
    assert row == {"slow": 2}
    shown = console_text(console)
    assert "star: re-encoding after step 2" in shown and "star: re-encoding after step 2: done" in shown
    assert ("done, 1,500 texts" in shown) == bool(items)  # counted through `advance`
    bare: dict[str, Any] = {}
    run_due([Announced(items)], 2, 4, torch.nn.Linear(1, 1), bare)  # no progress: it runs all the same
    assert bare == {"slow": 2}


def test_an_announced_hook_whose_run_takes_no_advance_is_refused_before_the_first_step(tiny_model: Path,
                                                                                       tmp_path: Path) -> None:
    class Old(Drift):
        announce = "drifting"  # its run(step) takes no `advance`

    with pytest.raises(ValueError, match="training hook 'drift' sets announce = 'drifting'.*give its run an"):
        run(tiny_model, tmp_path, hook=Old)
    assert not (tmp_path / CHECKPOINT).exists()


def test_a_hooked_run_resumes_from_its_checkpoint_as_if_never_stopped(tiny_model: Path, tmp_path: Path) -> None:
    whole_log, whole, whole_drift, _ = run(tiny_model, tmp_path / "whole")

    # killed in step 5, between the hook calls after steps 2 and 4; the checkpoint is after step 3
    with pytest.raises(Interrupted):
        run(tiny_model, tmp_path / "cut", fail_at=4)
    saved = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert saved["step"] == 3 and set(saved["hooks"]) == {"drift"}
    assert saved["hooks"]["drift"]["shift"] == pytest.approx(whole_log[1]["drift"]["shift"])

    log, weights, drift, seen = run(tiny_model, tmp_path / "cut")
    assert seen == [3, 4] and drift.ran == [4]  # no hook call before step 1 again, nor after step 2
    assert log == whole_log
    assert_same_weights(weights, whole)
    assert torch.equal(drift.shift, whole_drift.shift)


def test_a_hook_whose_state_is_lost_would_resume_differently(tiny_model: Path, tmp_path: Path) -> None:
    # The control that gives the test above its teeth: the shift matters to the loss.
    whole_log, whole, _, _ = run(tiny_model, tmp_path / "whole", hook=Forgetful)
    with pytest.raises(Interrupted):
        run(tiny_model, tmp_path / "cut", hook=Forgetful, fail_at=4)
    log, weights, _, _ = run(tiny_model, tmp_path / "cut", hook=Forgetful)
    assert log[:3] == whole_log[:3] and log[3:] != whole_log[3:]


def test_a_hook_logs_no_key_the_row_has(tiny_model: Path, tmp_path: Path) -> None:
    class Clash(Drift):
        at_start = False

        def run(self, step: int) -> dict[str, Any]:
            return {"loss": 0.0}

    with pytest.raises(ValueError, match="hook 'drift' at step 2 logs 'loss', which the log row already has"):
        run(tiny_model, tmp_path, hook=Clash)


def test_two_hooks_of_one_name_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    model, tok = load_tiny(tiny_model)
    drifts = [Drift(seed=1), Drift(seed=2)]
    with pytest.raises(ValueError, match=r"distinct names .* \['drift'\]"):
        train(model, loop_params(), QUERY_IDS, 11, drift_step(model, tok, drifts[0], []), tmp_path,
              StageProgress(quiet_console()), "x", hooks=drifts)


def test_a_checkpoint_from_before_hooks_resumes_its_best_weights(tiny_model: Path, tmp_path: Path) -> None:
    # Checkpoints written before hooks kept eval_every's best weights under "best", not "hooks".
    params = loop_params(batch_size=3, max_steps=5, checkpoint_every=2, eval_every=1, keep="best")
    dev = iter([0.2, 0.5, 0.4, 0.3, 0.1, 0.2, 0.5, 0.4, 0.3, 0.1])  # best at step 2, in both runs

    def trained(folder: Path, drift: Drift, fail_at: int | None = None) -> tuple[list[dict[str, Any]], Any]:
        model, tok = load_tiny(tiny_model)
        log, _ = train(model, params, QUERY_IDS, 11, drift_step(model, tok, drift, [], fail_at), folder,
                       StageProgress(quiet_console()), "x", score=lambda: {"dev_ndcg@10": next(dev)})
        return log, state(model)

    whole_log, whole = trained(tmp_path / "whole", Drift(7))
    with pytest.raises(Interrupted):
        trained(tmp_path / "cut", Drift(7), fail_at=3)
    dev = iter([0.4, 0.3, 0.1])  # steps 3 to 5
    path = tmp_path / "cut" / CHECKPOINT
    old = torch.load(path, weights_only=True)
    old["best"] = old.pop("hooks")["dev"]["best"]
    torch.save(old, path)  # the old shape (its manifest is not checked by the loop itself)
    log, weights = trained(tmp_path / "cut", Drift(7))
    assert log == whole_log and log[-1]["kept_step"] == 2
    assert_same_weights(weights, whole)


# --- a strategy declares its hooks; the trainer hands them to the loop and to its step ------------

class Drifting(Strategy):
    name = "toy-drifting"
    help = "Toy: queries pulled towards a target that a hook moves every 2 steps."

    def hooks(self, encoder: Any, params: TrainParams, inputs: TrainInputs) -> list[Hook]:
        return [Drift(inputs.seed, model=encoder.model)]

    def step(self, encoder: Any, params: TrainParams, inputs: TrainInputs, hooks: Sequence[Hook] = ()) -> StepFn:
        [drift] = hooks
        data = inputs.data

        def step(query_ids: list[str], rng: np.random.Generator, at: int) -> tuple[torch.Tensor, dict[str, float]]:
            if at == FAIL.get("at"):
                raise Interrupted
            q = encoder.embed([data.queries[x] for x in query_ids], max_length=8)
            return ((q - drift.shift) ** 2).mean(), {}  # type: ignore[attr-defined]

        return step


FAIL: dict[str, int] = {}


def test_a_strategys_hooks_resume_through_the_trainer(tiny_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = EncoderSettings(pooling="mean", normalize=False, query_max_length=None, doc_max_length=None,
                               query_prefix="", doc_prefix="", batch_size=8)
    inputs = TrainInputs(data=hand_data(), settings=settings, seed=3, nprobe=1)
    params = loop_params(batch_size=2, max_steps=4, checkpoint_every=3)

    def trained(folder: Path) -> list[dict[str, Any]]:
        log, _ = train_into(folder, Drifting(), params, inputs, tiny_model, StageProgress(quiet_console()),
                            quiet_console(), "x")
        return log

    whole_log = trained(tmp_path / "whole")
    assert [row.get("drift", {}).get("at") for row in whole_log] == [0, 2, None, 4]
    monkeypatch.setitem(FAIL, "at", 3)
    with pytest.raises(Interrupted):
        trained(tmp_path / "cut")
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["hooks"]["drift"]["shift"] != 0
    monkeypatch.delitem(FAIL, "at")
    assert trained(tmp_path / "cut") == whole_log
    assert_same_weights(folder_weights(tmp_path / "cut"), folder_weights(tmp_path / "whole"))
