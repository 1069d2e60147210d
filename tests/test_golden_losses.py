"""Every training kind, trained 3 steps on the tiny fixtures: its per-step losses must not move.

The numbers were recorded before the one-strategy-one-file refactor; a change that alters what
any kind computes (sampling order, masks, loss, optimiser) shows up here first. Record anew only
for a change that is meant to alter training, and bump `TRAIN_VERSION` with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.data.collection import Collection

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, recipe_text, stage_context)

_COMMON = "max_steps = 3\nbatch_size = 8\nquery_max_length = 16\ndoc_max_length = 32\nlr = 1e-3\nscale = 20\n"
VARIANTS = "".join(f"[variant.{name}]\nkind = \"{kind}\"\n{extra}{_COMMON}\n" for name, kind, extra in [
    ("inb", "inbatch", ""),
    ("rnd", "random", "random_negatives = 2\n"),
    ("sta", "static", 'negatives_from = "bm25"\nnegatives_depth = 20\nnegatives_per_query = 2\n'),
    ("star", "star", "negatives_depth = 20\n"),
    ("ado", "adore", 'top_k = 50\ntrain_index = "PQ8"\nmetric_cut = 10\n'),
    ('"star+adore"', "star+adore", "top_k = 50\n"),
])

# variant -> per step: loss, learning rate and the extra values the kind logs; recorded at dd6b219,
# ADORE's two re-recorded for the official loss (loss_version 2) and metric_cut 200 (issue 12);
# `ado` (trained against PQ8) again for codebooks trained on one thread with BLAS k-means
# (faiss_index.CODEBOOK_VERSION 2).
GOLDEN: dict[str, list[dict[str, float]]] = {
    'inb': [
        {'loss': 0.6880510449409485, 'lr': 9.090909090909092e-05},
        {'loss': 0.6666498780250549, 'lr': 0.00018181818181818183},
        {'loss': 0.7116360664367676, 'lr': 0.00027272727272727274},
    ],
    'rnd': [
        {'loss': 0.7147818803787231, 'hard_loss': 0.726648211479187, 'random_loss': 0.6878706812858582, 'lr': 9.090909090909092e-05},
        {'loss': 0.657380998134613, 'hard_loss': 0.6531313061714172, 'random_loss': 0.6672968864440918, 'lr': 0.00018181818181818183},
        {'loss': 0.6941227316856384, 'hard_loss': 0.6864176392555237, 'random_loss': 0.7118159532546997, 'lr': 0.00027272727272727274},
    ],
    'sta': [
        {'loss': 0.7234553098678589, 'lr': 9.090909090909092e-05},
        {'loss': 0.6473663449287415, 'lr': 0.00018181818181818183},
        {'loss': 0.6920581459999084, 'lr': 0.00027272727272727274},
    ],
    'star': [
        {'loss': 0.7342802882194519, 'hard_loss': 0.7752051949501038, 'random_loss': 0.6875088810920715, 'lr': 9.090909090909092e-05},
        {'loss': 0.6779909729957581, 'hard_loss': 0.6870440244674683, 'random_loss': 0.6672614812850952, 'lr': 0.00018181818181818183},
        {'loss': 0.7027503848075867, 'hard_loss': 0.6958743929862976, 'random_loss': 0.7108996510505676, 'lr': 0.00027272727272727274},
    ],
    'ado': [
        {'loss': 0.060074836015701294, 'train_mrr@10': 0.041666666666666664, 'train_recall@10': 0.125, 'lr': 9.090909090909092e-05},
        {'loss': 0.0488102100789547, 'train_mrr@10': 0.0, 'train_recall@10': 0.0, 'lr': 0.00018181818181818183},
        {'loss': 0.04817776381969452, 'train_mrr@10': 0.0, 'train_recall@10': 0.0, 'lr': 0.00027272727272727274},
    ],
    'star+adore': [
        {'loss': 0.07198953628540039, 'train_mrr@10': 0.0625, 'train_recall@10': 0.125, 'lr': 9.090909090909092e-05},
        {'loss': 0.05652985721826553, 'train_mrr@10': 0.017857142857142856, 'train_recall@10': 0.125, 'lr': 0.00018181818181818183},
        {'loss': 0.05509690195322037, 'train_mrr@10': 0.0, 'train_recall@10': 0.0, 'lr': 0.00027272727272727274},
    ],
}

# variant -> trained model's artifact key (its cache folder name), with models fingerprinted by
# their weights alone (_weights_fingerprint). Re-recorded once for that: the full fingerprint
# hashes config.json as the installed transformers writes it, and CI broke on 5.24.0's stamp.
KEYS = {
    'inb': 'c8517e848c549f12936b9eaa16a8d7e2f6ea9f3344dbfdb6479a28444f6e0eba',
    'rnd': '0c368c5f2d7c77aab7382087f78e1ef4535714a3892b3d3fdda985e9880ebdcb',
    'sta': '56ef9aeaa6a5f448252988796ef298555993b27a9dd9c8ab8b63f944651ff936',
    'star': 'bc4d3a922a24c55124f1853de929e3a7077966c30b59cba76be3427852edf736',
    'ado': '78f4093e1d7be16acf6e4a714fbf824e61bad72117e3a247d1b1ea4513ac2b8b',
    'star+adore': '75ee527394305d09045be66e7247b771b6599986e3cf87a988d28f24cfa38a2f',
}


def _weights_fingerprint(path: str | Path) -> str:
    """A model's fingerprint from its weights alone. The real one also hashes config.json and the
    tokenizer files as the installed transformers writes them, and a release that adds a config
    field would move every key here without drbench changing (test_model pins that algorithm)."""
    return hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
            cranfield: Collection) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("golden")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("harness.pipeline.models.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.model.spec.fingerprint", _weights_fingerprint)
        ctx = stage_context(recipe_text(folder, tiny_model, VARIANTS, name="golden"), folder / "cache")
        folders = {name: Path(ctx.resolve(name).query) for name in GOLDEN}
    return folders


def test_adore_loss_is_the_official_one_twice_what_drbench_had(trained: dict[str, Path]) -> None:
    # Step 1 runs before any update, so the ADORE loss of the same list is comparable across the
    # fix: the official loss (DRhard adore/train.py at its HEAD) is exactly twice the one drbench
    # computed before ADORE's loss_version 2, 0.030037418007850647 here (that commit's code run with
    # CODEBOOK_VERSION 2's PQ8 training; 0.03003699891269207 with the codebooks of its day).
    first = json.loads((trained["ado"] / "train_log.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(2 * 0.030037418007850647, rel=1e-6)


@pytest.mark.parametrize("variant", ["inb", "rnd", "sta", "star", "ado", "star+adore"])
def test_training_losses_unchanged(trained: dict[str, Path], variant: str) -> None:
    rows = [json.loads(line) for line in (trained[variant] / "train_log.jsonl").read_text().splitlines()]
    assert [row.pop("step") for row in rows] == [1, 2, 3]
    assert rows == [pytest.approx(row, rel=1e-6, abs=1e-9) for row in GOLDEN[variant]]


def test_artifact_keys_unchanged(trained: dict[str, Path]) -> None:
    # Same keys: caches trained before the refactor (benchmarks take 40 minutes) stay valid.
    # They hash the tiny model's fingerprint (and STAR+ADORE its trained STAR's), here by weights
    # alone, so a transformers release leaves them alone and a move here is drbench's own.
    assert {name: folder.name for name, folder in trained.items()} == KEYS
