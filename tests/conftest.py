"""Shared fixtures: a private IR_DATASETS_HOME, the offline mirror, a tiny random-weight BERT."""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path

import pytest

# ir_datasets reads IR_DATASETS_HOME when it is first imported, so it is set before any test
# module can import it. Tests never touch the user's ~/.ir_datasets.
_IRDS_HOME = Path(tempfile.mkdtemp(prefix="drbench-irds-"))
os.environ["IR_DATASETS_HOME"] = str(_IRDS_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
_DEFAULT_MIRROR = REPO.parent / "shared" / "data" / "ir_datasets"


@pytest.fixture(scope="session")
def irds_home() -> Path:
    """The IR_DATASETS_HOME every test shares (empty at session start)."""
    return _IRDS_HOME


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline ir_datasets mirror (../shared/data/ir_datasets or $DRBENCH_TEST_MIRROR).

    Missing mirror: skip locally, but fail when DRBENCH_REQUIRE_MIRROR=1 (as CI sets), so a
    misconfigured CI cannot pass by skipping every real-data test.
    """
    path = Path(os.environ.get("DRBENCH_TEST_MIRROR", _DEFAULT_MIRROR))
    if not path.is_dir():
        if os.environ.get("DRBENCH_REQUIRE_MIRROR") == "1":
            pytest.fail(f"offline mirror {path} not found (DRBENCH_REQUIRE_MIRROR=1)")
        pytest.skip(f"offline mirror {path} not found")
    return path


def _vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = ["the", "of", "and", "in", "to", "a", "is", "for", "with", "on", "cell", "cells"]
    tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars
              + ["##" + c for c in string.ascii_lowercase + string.digits])
    return list(dict.fromkeys(tokens))  # a duplicate entry silently breaks WordPiece


def build_tiny_bert(folder: Path, *, pooling: str = "mean", normalize: bool = True,
                    max_seq_length: int = 32, seed: int = 0, dropout: float = 0.1) -> Path:
    """Write a random-weight 2-layer BERT in sentence-transformers layout to `folder` (`dropout`:
    BERT's default 0.1; 0 makes training deterministic across process counts)."""
    import torch
    from transformers import BertModel

    folder.mkdir(parents=True, exist_ok=True)
    config = _tiny_bert_config(folder, dropout)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    return folder


def _tiny_bert_config(folder: Path, dropout: float = 0.1, **extra: object) -> object:
    """Save the tiny tokenizer to `folder`; return the tiny 2-layer BertConfig over its vocab."""
    from transformers import BertConfig, BertTokenizer

    vocab = _vocab()
    # transformers 5 ignores `vocab_file` for the fast tokenizer; an explicit vocab works on 4 and 5.
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, **extra)


def build_tiny_cross_encoder(folder: Path, *, seed: int = 0, num_labels: int = 1) -> Path:
    """Write a random-weight 2-layer BERT with a sequence-classification head of `num_labels`
    outputs (a cross-encoder, as sentence-transformers' CrossEncoder saves one) to `folder`."""
    import torch
    from transformers import BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    # A wide initialisation spreads the scores, so thresholds between them are far from rounding.
    config = _tiny_bert_config(folder, num_labels=num_labels, initializer_range=0.5)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A tiny random-weight cross-encoder (BERT, one output) built from a config."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight BERT (mean pooling, normalised, 32 dims) built from a config."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
