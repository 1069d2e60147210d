"""`kind = "zero-shot"`: the base encoder (or another named model), untrained."""

from __future__ import annotations

from dataclasses import dataclass

from harness.api.params import Params, param
from harness.api.kind import Kind


@dataclass(frozen=True)
class ZeroShotParams(Params):
    model: str | None = param(None, "Encoder to use instead of [model].base.")


class ZeroShot(Kind):
    name = "zero-shot"
    help = "The base encoder, untrained."
    Params = ZeroShotParams

    def model_name(self, params: ZeroShotParams, base: str) -> str:
        """The model this variant evaluates as is."""
        return params.model or base


KIND = ZeroShot()
