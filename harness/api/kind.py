"""What every variant kind declares: the base class the plug-ins (`harness/kinds/`,
`harness/train/strategies/`) subclass, and that the recipe loader and the pipeline read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness.api.params import Params

if TYPE_CHECKING:
    from harness.data.collection import Collection


class Kind:
    """What every variant kind declares. Subclasses add what their family runs:

    * `family = "sparse"`: ranks documents itself (`rank`, see :mod:`harness.kinds.bm25`);
    * `family = "dense"`: yields encoders that the shared encode -> index -> search stages use;
      untrained (`model_name`, see :mod:`harness.kinds.zero_shot`) or trained
      (:class:`harness.train.strategy.Strategy`).
    """

    name: str = ""
    help: str = ""
    family: str = "dense"
    trains: bool = False  # True: needs `[data] train`
    Params: type[Params] = Params

    def rank(self, collection: Collection, params: Any, depth: int,
             progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
        """Sparse kinds: the top-`depth` (doc_id, score) of every evaluated query."""
        raise NotImplementedError(f"{self.name} is not a sparse kind")

    def model_name(self, params: Any, base: str) -> str:
        """Untrained dense kinds: the model folder or name the variant evaluates as is."""
        raise NotImplementedError(f"{self.name} is not an untrained dense kind")
