"""A cross-encoder: a Hugging Face sequence-classification model with one output that scores a
(query, document) pair, as sentence-transformers' `CrossEncoder` and RocketQA's re-ranker do.

:func:`check_cross_encoder` reads the folder without torch (`validate` calls it);
:class:`CrossEncoder` loads it as drbench loads every model
(:func:`harness.model.encoder.load_pretrained`: local folder only, safetensors unless
`allow_pickle`, float32) and scores pairs as `sigmoid(logit)`, the probability that
sentence-transformers' `CrossEncoder.predict` returns for a one-output model by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import ModelError
from harness.model.spec import PICKLE_REFUSAL, pickle_only


def check_cross_encoder(name: str, allow_pickle: bool = False) -> Path:
    """The folder `name` names, if it holds a sequence-classification model with one output
    whose weights drbench may load; else a one-line ModelError."""
    folder = Path(name).expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"cross-encoder folder {folder} does not exist; pass a local model folder")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {folder / 'config.json'}: {exc}") from None
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(f"{folder} is not a sequence-classification model (architectures: "
                         f"{', '.join(architectures) or 'none'}); point at a cross-encoder, e.g. one saved by "
                         "sentence-transformers' CrossEncoder or AutoModelForSequenceClassification")
    # transformers' own rule: id2label decides num_labels, 2 when neither is written.
    labels = len(config["id2label"]) if "id2label" in config else config.get("num_labels", 2)
    if labels != 1:
        raise ModelError(f"{folder} has {labels} outputs; the filter reads a cross-encoder with one "
                         "(a relevance logit)")
    if pickle_only(folder) and not allow_pickle:
        raise ModelError(PICKLE_REFUSAL)
    return folder


class CrossEncoder:
    """Scores (query, document) pairs with the cross-encoder in `path`, fp32, no gradients.

    Texts are truncated to the model's limit as sentence-transformers does (`truncation=True`,
    longest first). Pairs are scored in batches of `batch_size`, longest first.
    """

    def __init__(self, path: Path, *, device: str = "cpu", batch_size: int = 32, allow_pickle: bool = False):
        import torch

        from harness.model.encoder import load_pretrained, model_limit

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer, self.model = load_pretrained(path, self.device, allow_pickle,
                                                     head="AutoModelForSequenceClassification")
        self.max_length = model_limit(self.tokenizer, self.model) or 512

    def score(self, pairs: Sequence[tuple[str, str]],
              advance: Callable[[int], None] = lambda _: None) -> np.ndarray:
        """sigmoid(logit) of each pair, float64, in the order given; `advance(n)` after each batch."""
        import torch

        out = np.empty(len(pairs), dtype=np.float64)
        # Longest first: batches of like lengths pad less; the first batch shows the peak memory.
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([pairs[i][0] for i in rows], [pairs[i][1] for i in rows], padding=True,
                                       truncation=True, max_length=self.max_length, return_tensors="pt")
                logits = self.model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                out[rows] = logits[:, 0].float().cpu().numpy().astype(np.float64)
                advance(len(rows))
        return 1.0 / (1.0 + np.exp(-out))
