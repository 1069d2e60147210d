"""`kind = "star+adore"`: ADORE on STAR's frozen index, the query encoder starting from STAR.

The same training as :mod:`harness.train.strategies.adore`; only where the documents (and the
starting query encoder) come from differs, so it shares ADORE's cache keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from harness.api.params import param
from harness.train.strategies.adore import Adore, QueryTowerParams


@dataclass(frozen=True)
class StarAdoreParams(QueryTowerParams):
    star: str = param("star", "The STAR variant whose model and frozen index ADORE starts from.", refers=())


class StarAdore(Adore):
    name = "star+adore"
    help = "ADORE on STAR's frozen index."
    Params = StarAdoreParams

    def documents(self, params: StarAdoreParams) -> str:  # type: ignore[override]
        return params.star


KIND = StarAdore()
