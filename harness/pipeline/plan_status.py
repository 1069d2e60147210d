"""Where each run of a recipe's :class:`~harness.recipe.plan.Plan` stands (`drbench plan`): stored
(it will be skipped), its model cached (evaluate only), to evaluate (nothing to train, or a model an
earlier run trains) or to train; with its run key and a cost that does not depend on the hardware.

Reads only. The store is opened read-only (none: nothing stored); cache entries are looked up
without being touched, moved aside or published; a collection's archives are hashed where they
lie (IR_DATASETS_HOME, else the mirror's manifest), never copied or downloaded; models are read to
fingerprint them. Keys come from the functions `drbench run` computes them with. What cannot be
known yet (a model not trained, an archive not downloaded, a point dev has not chosen) leaves the
key None and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.api.registry import kind
from harness.data.holdout import holdout_size
from harness.dense import DenseModel, ModelRef
from harness.errors import DataError, DrbenchError, StoreError
from harness.model.compute import Compute, check_names, resolve_compute
from harness.pipeline.models import mined_key, trained_ref, training_key
from harness.pipeline.run import check_cache_dir, run_key
from harness.pipeline.selection import select_point
from harness.recipe.model import Recipe, Variant, holdout_fraction
from harness.recipe.plan import Plan, RunSpec, dev_collection
from harness.train.strategy import Strategy, TrainInputs

STORED, CACHED, EVALUATE, TRAIN = "stored", "model cached", "to evaluate", "to train"
STATUSES = (STORED, CACHED, EVALUATE, TRAIN)
NOT_TRAINED = "is not trained yet"  # the expected reason a key waits: the plan itself trains it


@dataclass(frozen=True)
class Cost:
    """Work a run does, in units no hardware changes: documents and queries to encode (BM25:
    to index and search), and training steps x queries per step. Encodings are shared: the first
    index of a model on a collection carries them, its other indexes reuse them. None: unknown
    without downloading. Query counts are the split's, from ir_datasets' metadata (drbench encodes
    the judged ones: at most these)."""

    docs: int | None = 0
    queries: int | None = 0
    train_steps: int | None = 0
    train_batch: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"docs": self.docs, "queries": self.queries, "train_steps": self.train_steps,
                "train_batch": self.train_batch}


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    status: str
    key: str | None
    why: str | None  # why the key is unknown
    cost: Cost
    chosen: str | None = None  # the point dev chose, once its dev runs are stored (a run that reports it)

    def as_json(self) -> dict[str, Any]:
        out = {**self.spec.as_json(), "status": self.status, "run_key": self.key, "run_key_unknown": self.why,
               "cost": self.cost.as_json(), "chosen": self.chosen}
        if self.chosen is not None:  # dev has decided: say what, not that it will
            out["decided_later"] = []
        return out


@dataclass(frozen=True)
class KeyData:
    """What run and model keys read of a collection, without loading it."""

    dataset_id: str
    archive_digests: dict[str, str | None]


class Unknown(Exception):
    """Why a key cannot be computed before the run."""


def plan_status(plan: Plan, store: Path, cache_dir: Path, mirror: Path | None = None, device: str | None = None,
                precision: str | None = None, backend: str | None = None) -> list[PlannedRun]:
    """Each run of `plan` with its status against `store` and `cache_dir`, its key and its cost
    (`device`, `precision`, `backend`: `drbench run`'s options over the recipe's, which models' keys depend
    on).
    What `run` would refuse about them is refused here too, except a device this machine lacks:
    a plan may be made on a laptop for a GPU machine, and its dense keys are then unknown."""
    if store.is_dir():  # run's open would fail on it; the plan never opens a store it cannot read
        raise StoreError(f"--store {store} is a folder; pass the results store's file (it need not exist yet)")
    check_cache_dir(cache_dir)
    db = None
    if store.is_file():
        from harness.store import open_store_readonly

        db = open_store_readonly(store)
    if plan.folds:  # a k-fold recipe: each fold's runs as its own recipe plans them, then their combinations
        runs = [look.status(spec) for fold in plan.folds
                for look in [_Lookup(fold.recipe, cache_dir, mirror, db, device, precision, backend)]
                for spec in fold.runs]
        return runs + _combined(plan, runs, db)
    look = _Lookup(plan.recipe, cache_dir, mirror, db, device, precision, backend)
    return [look.status(spec) for spec in plan.runs]


def _combined(plan: Plan, folds: list[PlannedRun], db: Any) -> list[PlannedRun]:
    """The `folds` runs: keyed by their folds' keys (harness.pipeline.folds), stored or to do (no
    cost of their own: they read what their folds stored)."""
    from harness.pipeline.folds import combined_key

    keys = {run.spec.id: run.key for run in folds}
    out = []
    for spec in plan.phase("folds"):
        fold_keys = [keys[run_id] for run_id in spec.after]
        key = None if None in fold_keys else combined_key(fold_keys)  # type: ignore[arg-type]
        stored = None
        if db is not None:
            from harness.store import completed_run_key

            stored = completed_run_key(db, plan.recipe.experiment.name, spec.variant, spec.collection, spec.index,
                                       spec.seed)
        why = None if key is not None else "its folds' keys are known once they are"
        out.append(PlannedRun(spec, STORED if key is not None and stored == key else EVALUATE, key, why, Cost()))
    return out


@dataclass
class _Lookup:
    recipe: Recipe
    cache_dir: Path
    mirror: Path | None
    db: Any
    device: str | None = None
    precision: str | None = None
    backend: str | None = None
    compute: Compute | str = field(init=False)  # str: why this machine cannot say (a device it lacks)
    done: list[PlannedRun] = field(default_factory=list)  # the runs before this one
    _digests: dict[str, dict[str, str | None] | str] = field(default_factory=dict)
    _models: dict[tuple[str, int], DenseModel | str] = field(default_factory=dict)
    _chosen: dict[str, tuple[Variant, dict[str, Any]] | str] = field(default_factory=dict)
    _counts: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    _encoded: set[tuple[str, tuple[Any, ...], str]] = field(default_factory=set)  # (side, encoder, collection)

    def __post_init__(self) -> None:
        # A model's identity includes its precision on its device: planned on another machine than
        # the one that runs (a laptop, for a CUDA recipe), dense keys are unknown, not wrong. A
        # name drbench does not know is wrong anywhere, and refused.
        where = f"{self.recipe.path} [compute]"
        device, precision = self.device or self.recipe.compute.device, self.precision or self.recipe.compute.precision
        backend = self.backend or self.recipe.compute.backend
        labels = {"device_label": f"--device {self.device}" if self.device else f"{where} device",
                  "precision_label": f"--precision {self.precision}" if self.precision else f"{where} precision",
                  "backend": backend,
                  "backend_label": f"--backend {self.backend}" if self.backend else f"{where} backend"}
        check_names(device, precision, **labels)
        try:
            self.compute = resolve_compute(device, precision, **labels)
        except DrbenchError as exc:
            self.compute = f"dense keys depend on the device: {exc}"

    def status(self, spec: RunSpec) -> PlannedRun:
        key, why, model, chosen = None, None, None, None
        try:
            variant, model_name, selection = self._evaluated(spec)
            chosen = model_name if spec.model is None else None
            dense = kind(spec.kind).family == "dense"
            model = self.model(model_name, spec.seed) if dense else None
            key = run_key(self.recipe.with_seed(spec.seed), variant, self.data(spec.collection), spec.index,
                          model.identity if model is not None else None, selection)
        except Unknown as exc:
            why = str(exc)
        if key is not None and self._stored(spec) == key:
            status = STORED
        elif not kind(spec.kind).trains:
            status = EVALUATE
        elif model is not None:
            status = CACHED
        else:
            status = TRAIN if spec.trains else EVALUATE
        self.done.append(PlannedRun(spec, status, key, why, self._cost(spec), chosen))
        return self.done[-1]

    def _stored(self, spec: RunSpec) -> str | None:
        if self.db is None:
            return None
        from harness.store import completed_run_key

        return completed_run_key(self.db, self.recipe.experiment.name, spec.variant, spec.collection, spec.index,
                                 spec.seed)

    def _evaluated(self, spec: RunSpec) -> tuple[Variant, str, dict[str, Any] | None]:
        """The variant a run's key hashes, the model it evaluates and its selection record."""
        if spec.model is not None:
            return self.recipe.variant(spec.model), spec.model, None
        point, record = self.chosen(str(spec.sweep))
        return replace(point, name=spec.variant, sweep_of=None, point=()), point.name, record

    def chosen(self, name: str) -> tuple[Variant, dict[str, Any]]:
        """The point of the swept variant `name` chosen on dev, once all its dev runs are stored."""
        if name not in self._chosen:
            dev = str(dev_collection(self.recipe))
            points = {p.name for p in self.recipe.sweeps[name]}
            runs = [run for run in self.done if run.spec.phase == "dev" and run.spec.variant in points]
            if self.db is None or not runs or any(run.status != STORED for run in runs):
                self._chosen[name] = f"the point of {name} is chosen on dev once its dev runs are stored"
            else:
                self._chosen[name] = select_point(self.db, self.recipe, dev, name)
        if isinstance(chosen := self._chosen[name], str):
            raise Unknown(chosen)
        return chosen

    def data(self, dataset_id: str) -> KeyData:
        """A collection's id and archive digests, as a run's key reads them."""
        train = self.recipe.data.train
        source = str(train) if dataset_id == dev_collection(self.recipe) and holdout_fraction(
            self.recipe.data.dev) is not None else dataset_id
        if source not in self._digests:
            self._digests[source] = _digests(source, self.mirror)
        if isinstance(digests := self._digests[source], str):
            raise Unknown(digests)
        return KeyData(dataset_id, digests)

    def model(self, name: str, seed: int) -> DenseModel:
        """The encoders behind `base` or a dense variant, if they exist without training anything."""
        if name != "base" and name in self.recipe.sweeps:
            name = self.chosen(name)[0].name
        variant = None if name == "base" else self.recipe.variant(name)
        seed = seed if variant is not None and kind(variant.kind).trains else self.recipe.experiment.seed
        if (name, seed) not in self._models:
            try:
                self._models[name, seed] = self._open(name, variant, seed)
            except Unknown as exc:
                self._models[name, seed] = str(exc)
        if isinstance(model := self._models[name, seed], str):
            raise Unknown(model)
        return model

    def _open(self, name: str, variant: Variant | None, seed: int) -> DenseModel:
        base = self.recipe.model.base
        if variant is None:
            return self._dense(ModelRef.shared(base))
        declared = kind(variant.kind)
        if not isinstance(declared, Strategy):
            return self._dense(ModelRef.shared(declared.model_name(variant.params, base)))
        return self._trained(variant, declared, seed)

    def _dense(self, ref: ModelRef) -> DenseModel:
        """`ref`'s encoders, read where they are: a hub model not downloaded yet stays unknown."""
        if isinstance(self.compute, str):
            raise Unknown(self.compute)
        for name in {ref.query, ref.doc}:
            if not _local(name):
                raise Unknown(f"model {name} is not downloaded yet (the run fetches it)")
        return DenseModel.open(ref, self.recipe.model, self.compute)

    def _trained(self, variant: Variant, strategy: Strategy, seed: int) -> DenseModel:
        from harness.cache.manifest import damage
        from harness.train.artifacts import read_meta

        needs = strategy.needs(variant.params)
        documents = self.model(needs.documents, seed) if needs.documents else None
        init = self.model(needs.init, seed)
        train = self.data(str(self.recipe.data.train))
        negatives = None
        if needs.negatives:
            source = None if needs.negatives == "bm25" else self.model(needs.negatives, seed).identity
            if needs.denoise.filter_model is not None and isinstance(self.compute, str):
                raise Unknown(self.compute)  # the cross-encoder's key names the device it scores on
            device = "cpu" if isinstance(self.compute, str) else self.compute.device_type
            negatives = mined_key(source, needs.negatives_depth, train, needs.denoise.key(seed, device))
        inputs = TrainInputs(None, init.settings, seed, self.recipe.eval.nprobe)  # type: ignore[arg-type]
        key = training_key(self.recipe, strategy, variant, inputs, train, init, documents, negatives)
        folder = self.cache_dir / "models" / key
        if not folder.is_dir() or damage(folder, key) is not None:
            raise Unknown(f"model {variant.name} (seed {seed}) {NOT_TRAINED}")
        return self._dense(trained_ref(variant, key, folder, read_meta(folder), documents))

    def _cost(self, spec: RunSpec) -> Cost:
        """Documents and queries a run encodes (none for a sparse kind, which tokenises; none again
        for an encoder whose vectors of that collection an earlier run made: a model's other
        indexes, a query tower over another model's frozen documents), and its training."""
        docs, queries = self._count(spec.collection)
        cost = Cost()
        if kind(spec.kind).family == "dense":
            sides = [("docs", self._doc_encoder(spec.model or spec.sweep, spec.seed), docs),
                     ("queries", (spec.model or spec.sweep, spec.seed), queries)]
            for what, side, count in sides:
                # documents once per corpus (splits and parts of one collection share it), queries per split
                target = self._corpus(spec.collection) if what == "docs" else spec.collection
                if (what, side, target) not in self._encoded:
                    self._encoded.add((what, side, target))
                    cost = replace(cost, **{what: count})
        if spec.trains:
            variant = self.recipe.variant(str(spec.model))
            train_docs, train_queries = self._count(str(self.recipe.data.train))
            cost = replace(cost, **_training_cost(self.recipe, variant, train_queries))
            declared = kind(variant.kind)
            if isinstance(declared, Strategy) and cost.train_steps is not None:  # ANCE re-encodes as it trains
                if encodes := declared.corpus_encodes(variant.params, cost.train_steps):
                    cost = replace(cost, docs=None if cost.docs is None or train_docs is None
                                   else cost.docs + encodes * train_docs)
        return cost

    def _corpus(self, collection: str) -> str:
        """What names `collection`'s corpus in embedding keys (`catalog.docs_id`), else its name."""
        from harness.data.catalog import docs_id
        from harness.data.holdout import held_out_of

        try:
            return docs_id(held_out_of(collection))
        except (DrbenchError, KeyError, ValueError):  # a corpus this machine cannot name yet: counted per split
            return collection

    def _doc_encoder(self, name: str | None, seed: int) -> tuple[Any, ...]:
        """Whose document vectors a run of the variant (or sweep) `name` searches: an untrained
        model's, a shared tower's own (per seed), or, for a query tower, those of the model its
        documents come from."""
        if name is None or name == "base":
            return ("untrained", self.recipe.model.base)
        variant = self.recipe.sweeps[name][0] if name in self.recipe.sweeps else self.recipe.variant(name)
        declared = kind(variant.kind)
        if not isinstance(declared, Strategy):
            return ("untrained", declared.model_name(variant.params, self.recipe.model.base))
        if declared.tower == "query" and (documents := declared.needs(variant.params).documents):
            return self._doc_encoder(documents, seed)
        return (name, seed)

    def _count(self, dataset_id: str) -> tuple[int | None, int | None]:
        """(documents, queries) of a collection from ir_datasets' metadata, or None each."""
        dev = self.recipe.data.dev
        if dataset_id == dev_collection(self.recipe) and (fraction := holdout_fraction(dev)) is not None:
            docs, queries = self._count(str(self.recipe.data.train))
            return docs, None if queries is None else holdout_size(queries, fraction)
        if dataset_id not in self._counts:
            self._counts[dataset_id] = _metadata_counts(dataset_id)
        return self._counts[dataset_id]


def _local(name: str) -> bool:
    """Whether the model `name` is on this machine (packaged, a folder, or in the hub's cache)."""
    from harness.model.spec import MINILM_ALIASES, looks_like_path

    if name in MINILM_ALIASES or looks_like_path(name):
        return True
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or no huggingface_hub: DenseModel.open would download it
        return False
    return True


def _training_cost(recipe: Recipe, variant: Variant, queries: int | None) -> dict[str, Any]:
    """Optimizer steps and queries per step of training `variant` on `queries` training queries."""
    from harness.train.schedule import training_schedule

    params = variant.params
    if queries is not None and (fraction := holdout_fraction(recipe.data.dev)) is not None:
        queries -= holdout_size(queries, fraction)
    batch = params.batch_size * params.grad_accum
    if params.max_steps:
        return {"train_steps": params.max_steps, "train_batch": batch}
    steps = None if queries is None else training_schedule(queries, params).total_steps
    return {"train_steps": steps, "train_batch": batch}


def _digests(dataset_id: str, mirror: Path | None) -> dict[str, str | None] | str:
    """sha256 per archive of `dataset_id`, as `ensure_available` would record it, without copying
    or downloading; or why that is not known yet. A declared collection's files are read (and
    checked) here, as `run` reads them: nothing is written."""
    from harness.data.availability import archives_for, cached_sha256, load_manifest, locate
    from harness.data.catalog import ensure_available
    from harness.data.local.declared import lookup

    if (found := lookup(dataset_id)) is not None:  # declared: its files are here or nowhere
        try:
            return {r.relpath: r.sha256 for r in ensure_available(dataset_id, None, probe_timeout=0.0)}
        except DataError as exc:
            source = getattr(found[0], "source", None)
            if source is not None and lookup(source) is None:  # a split of an ir_datasets id not cached yet
                return (f"the partition of {source} is known once its archives are in IR_DATASETS_HOME (`drbench "
                        "run` copies them from the mirror)")
            return str(exc)
    manifest = load_manifest()
    out: dict[str, str | None] = {}
    try:
        archives = archives_for(dataset_id)
    except DataError as exc:
        return str(exc)
    for archive in archives:
        where, path = locate(archive, mirror)
        if path is None:
            return f"{archive.relpath} not downloaded yet: stored or not is unknown (pass --mirror DIR)"
        listed = manifest.get(archive.relpath) if where == "mirror" else None
        out[archive.relpath] = listed["sha256"] if listed else cached_sha256(path, remember=False)
    return out


def _metadata_counts(dataset_id: str) -> tuple[int | None, int | None]:
    """(documents, queries) from ir_datasets' metadata (shipped with it: nothing is read from the
    collection), or a declared collection's checks; None where it has none."""
    from harness.data.catalog import declared_counts
    from harness.data.local.declared import lookup

    if lookup(dataset_id) is not None:
        return declared_counts(dataset_id)
    try:
        import ir_datasets

        from harness.data.collection import quiet_ir_datasets

        with quiet_ir_datasets():
            metadata = ir_datasets.load(dataset_id).metadata()
    except Exception:  # an id ir_datasets cannot set up offline: unknown, not an error here
        return None, None
    return _count(metadata, "docs"), _count(metadata, "queries")


def _count(metadata: Any, part: str) -> int | None:
    count = metadata.get(part, {}).get("count") if isinstance(metadata, dict) else None
    return count if isinstance(count, int) else None
