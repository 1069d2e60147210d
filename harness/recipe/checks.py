"""Checks that look outside the recipe text: collection names, model folders, faiss strings.

Run by `drbench validate` and before any work by `drbench run`. Imports ir_datasets and faiss
(never torch) lazily.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError, DrbenchError, IndexBuildError, ModelError, RecipeError
from harness.recipe.model import Recipe, named_dev


def check_resources(recipe: Recipe) -> None:
    """Raise RecipeError naming the table and key of the first unusable resource."""
    from harness.data.catalog import check_name, is_file_collection, summary

    path = recipe.path
    _check_declared_names(recipe)
    for collection in recipe.collections:
        if source := getattr(collection, "source", None):
            try:
                check_name(source)
            except DataError as exc:
                raise RecipeError(f'{path} [collections.{collection.name}] from = "{source}": {exc}') from None
    for key, ids in (("train", [recipe.data.train] if recipe.data.train else []), ("eval", recipe.data.eval),
                     ("dev", named_dev(recipe.data))):
        for dataset_id in ids:
            try:
                check_name(dataset_id)
                if is_file_collection(dataset_id):
                    summary(dataset_id)  # its files' checks: one line naming file:line
            except DataError as exc:
                raise RecipeError(f'{path} [data] {key} = "{dataset_id}": {exc}') from None
    _check_filter_models(recipe)
    dims = _model_dims(recipe)
    n_docs = _min_docs(recipe)
    factories = [("[eval] indexes", f) for f in recipe.eval.indexes]
    factories += [(f"[variant.{v.name}] train_index", v.params.train_index)  # type: ignore[attr-defined]
                  for v in recipe.variants if hasattr(v.params, "train_index")]
    for where, factory in factories:
        for dim in sorted(set(dims.values())):
            _check_index(recipe, where, factory, dim, n_docs)


def _check_declared_names(recipe: Recipe) -> None:
    """A declared collection may not take a name ir_datasets uses: `beir/scifact/test` would then
    mean a split of the declared `beir`."""
    from harness.data.archives import known_dataset_ids

    taken = {dataset_id.partition("/")[0] for dataset_id in known_dataset_ids()}
    for collection in recipe.collections:
        if collection.name in taken:
            raise RecipeError(f"{recipe.path} [collections.{collection.name}]: {collection.name!r} is also an "
                              f"ir_datasets name ({collection.name}/...); rename the collection, e.g. "
                              f"my-{collection.name}")


def overlap_warnings(recipe: Recipe, mirror: Path | None, probe_timeout: float = 3.0) -> tuple[str, ...]:
    """One line per evaluation or dev split that shares judged queries with the training split
    (a split of one collection's queries evaluated against another of its parts, or against the
    whole): numbers on queries a model trained on measure memory. A split named like the training
    split is left to `recipe_warnings`; a split whose data cannot be read here is not judged."""
    from harness.api.registry import kind
    from harness.recipe.folds import fold_recipes

    if not any(kind(v.kind).trains for v in recipe.variants):
        return ()
    lines: list[str] = []
    for one in fold_recipes(recipe):  # a k-fold recipe: each fold's training and test parts
        lines += [line for line in _overlaps(one, recipe, mirror, probe_timeout) if line not in lines]
    return tuple(lines)


def check_dev_overlap(recipe: Recipe, mirror: Path | None, probe_timeout: float = 3.0) -> None:
    """RecipeError when the dev split shares judged queries with an evaluation split: a point
    chosen on dev would be chosen partly on test queries (`[data] dev` equal to an evaluation
    split is refused by the loader; this catches a dev split that contains one, e.g. a whole
    collection over one of its parts). Data that cannot be read here is not judged."""
    from harness.recipe.model import holdout_fraction

    dev = recipe.data.dev
    if dev is None or holdout_fraction(dev) is not None:
        return
    for other in recipe.data.eval:
        if shared := _shared(dev, other, mirror, probe_timeout):
            raise RecipeError(f'{recipe.path} [data] dev = "{dev}" shares {shared} judged queries with eval = '
                              f'"{other}": points would be chosen partly on test queries; pick a dev split '
                              'disjoint from it (a [collections.NAME] split part, or dev = "holdout:0.1")')


def _shared(one: str, other: str, mirror: Path | None, probe_timeout: float) -> int:
    """Judged queries `one` and `other` share over one corpus; 0 where their data cannot be read here."""
    from harness.data.catalog import shared_queries

    try:
        return shared_queries(one, other, mirror, probe_timeout)
    except DrbenchError:
        return 0


def _overlaps(recipe: Recipe, written: Recipe, mirror: Path | None, probe_timeout: float) -> list[str]:
    train = recipe.data.train
    if train is None:
        return []
    lines = []
    for key, other in [("eval", e) for e in recipe.data.eval] + [("dev", d) for d in named_dev(recipe.data)]:
        if other != train and (shared := _shared(train, other, mirror, probe_timeout)):
            lines.append(f'{written.path} [data] {key} = "{other}" shares {shared} judged queries with train = '
                         f'"{train}": the trained variants are scored on queries they trained on; split the '
                         "queries once ([collections.NAME] split or folds) and train and evaluate on its parts")
    return lines


def check_processes(recipe: Recipe, processes: int) -> None:
    """Raise RecipeError when a trained variant's batch, or its gradient-caching chunks, cannot be
    split over `processes` (every process encodes its share of each global batch and chunk)."""
    from harness.api.registry import kind

    for variant in recipe.variants:
        batch = getattr(variant.params, "batch_size", None)
        if kind(variant.kind).trains and batch is not None and batch < processes:
            raise RecipeError(f"{recipe.path} [variant.{variant.name}] batch_size = {batch} cannot be split over "
                              f"{processes} processes; use a batch_size of at least {processes}, or fewer processes")
        chunk = getattr(variant.params, "chunk_size", 0)
        if processes > 1 and 0 < chunk < 2 * processes:
            # chunks are split over the processes as batches are; at 2 x processes every chunk has a row for each
            raise RecipeError(f"{recipe.path} [variant.{variant.name}] chunk_size = {chunk} cannot be split over "
                              f"{processes} processes; use a chunk_size of at least {2 * processes}, or 0")


def _min_docs(recipe: Recipe) -> int | None:
    """The smallest corpus an index will be built over (from ir_datasets metadata; no loading)."""
    from harness.data.catalog import docs_count

    counts = [docs_count(d) for d in (*recipe.data.eval, *([recipe.data.train] if recipe.data.train else []))]
    known = [c for c in counts if c]
    return min(known) if known else None


def _check_filter_models(recipe: Recipe) -> None:
    """Every `filter_model` is a local cross-encoder drbench may load (sequence classification,
    one output; safetensors unless [model] allow_pickle)."""
    from harness.model.cross_encoder import check_cross_encoder

    for variant in recipe.variants:
        name = getattr(variant.params, "filter_model", None)
        if name is None:
            continue
        try:
            check_cross_encoder(name, recipe.model.allow_pickle)
        except ModelError as exc:
            raise RecipeError(f'{recipe.path} [variant.{variant.sweep_of or variant.name}] filter_model = "{name}": '
                              f"{exc}") from None


def _model_dims(recipe: Recipe) -> dict[str, int]:
    """Embedding size of every model the dense variants use, keyed by model name."""
    from harness.model.spec import PICKLE_REFUSAL, read_model_spec, resolve_model
    from harness.api.registry import kind

    models = {("model", "base"): recipe.model.base}
    for variant in recipe.variants:
        if kind(variant.kind).family == "dense" and getattr(variant.params, "model", None):
            models[(f"variant.{variant.name}", "model")] = variant.params.model  # type: ignore[attr-defined]
    if not any(kind(v.kind).family == "dense" for v in recipe.variants):
        return {}
    dims: dict[str, int] = {}
    for (table, key), name in models.items():
        try:
            spec = read_model_spec(resolve_model(name))
            if spec.pickle_only and not recipe.model.allow_pickle:
                raise ModelError(PICKLE_REFUSAL)
            dims[name] = spec.dim
        except ModelError as exc:
            raise RecipeError(f'{recipe.path} [{table}] {key} = "{name}": {exc}') from None
    return dims


def _check_index(recipe: Recipe, where: str, factory: str, dim: int, n_docs: int | None) -> None:
    from harness.index.faiss_index import check_factory

    try:
        check_factory(factory, dim, n_docs)
    except IndexBuildError as exc:
        raise RecipeError(f'{recipe.path} {where} = "{factory}": {exc}') from None
