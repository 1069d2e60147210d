"""The plan: every run a recipe makes, in the order `drbench run` makes them, as data.

Built from the recipe alone (no collection, model, store or cache is read), so it can be printed,
counted, filtered and handed to an executor before anything runs. A run is one stored row of
the store: (phase, variant, seed, collection, index). Training is not a run of its own: the first
run of a trained model trains it (when the cache lacks it) and says so in `produces`; the runs
that need that model name it in `needs` and the producing run in `after`.

What only the dev split decides (a sweep's chosen point, and what a variant chained on it trains
from) is named, not guessed: `later` lists the swept variants whose choice a run waits for, and
`point` is None where the run reports a point not chosen yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.recipe.expand import dev_order, referenced_names, variant_seeds
from harness.recipe.model import Recipe, Variant, holdout_fraction

PHASES = ("dev", "eval", "folds")  # folds: a run's folds combined (harness.recipe.folds)


def run_indexes(recipe: Recipe, variant: Variant) -> tuple[str, ...]:
    """The index column of a variant's runs: a sparse kind ranks by itself (one run, stored under
    `SPARSE_INDEX`); a dense one is searched with every faiss index of `[eval] indexes`."""
    from harness.api.registry import kind
    from harness.store.schema import SPARSE_INDEX

    return (SPARSE_INDEX,) if kind(variant.kind).family == "sparse" else recipe.eval.indexes


def selection_index(recipe: Recipe, variant: Variant) -> str:
    """The index a sweep's point is chosen on: its kind's first (BM25: its own)."""
    return run_indexes(recipe, variant)[0]


def dev_collection(recipe: Recipe) -> str | None:
    """The collection dev runs are stored under: `[data] dev`, or the held-out training queries'
    label (`beir/scifact/train[holdout:0.1]`); None without a dev split."""
    dev = recipe.data.dev
    if dev is None or holdout_fraction(dev) is None:
        return dev
    from harness.data.holdout import holdout_label

    return holdout_label(str(recipe.data.train), dev)


@dataclass(frozen=True)
class EvalRow:
    """One variant row of an evaluation split: stored as `name`, evaluating the recipe variant
    `variant` (a selected sweep: its first point stands for the one chosen on dev, `chosen` True)."""

    name: str
    variant: Variant
    chosen: bool = False


def eval_rows(recipe: Recipe) -> list[EvalRow]:
    """What the evaluation splits report, in recipe order: every variant, except that a sweep the
    recipe selects on dev is one row under its own name (whichever point dev chooses)."""
    out = []
    for variant in recipe.variants:
        if variant.sweep_of is None or not recipe.selects:
            out.append(EvalRow(variant.name, variant))
        elif variant is recipe.sweeps[variant.sweep_of][0]:
            out.append(EvalRow(variant.sweep_of, variant, chosen=True))
    return out


@dataclass(frozen=True)
class RunSpec:
    """One run of the plan. `model` is the recipe variant whose model (or ranking) is evaluated,
    None when it is the point dev chooses; artifacts are named `model:VARIANT@SEED`,
    `negatives:SOURCE:DEPTH[@SEED]` and `frozen:VARIANT[@SEED]` (a trained variant's name carries
    the seed it trains with; a sweep's name means its chosen point; denoised negatives carry their
    settings after DEPTH, `negatives:bm25:200[relative_margin=0.05]`)."""

    id: str
    phase: str  # "dev" or "eval"
    variant: str  # as stored
    kind: str
    seed: int
    collection: str
    index: str
    model: str | None
    sweep: str | None = None  # the swept variant this run evaluates a point of
    point: dict[str, Any] | None = None  # that point's values; None when chosen later
    later: tuple[str, ...] = ()  # swept variants whose choice on dev this run depends on
    trains: bool = False  # the first run of a trained model: it trains it on a cache miss
    needs: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "phase": self.phase, "variant": self.variant, "kind": self.kind, "seed": self.seed,
                "collection": self.collection, "index": self.index, "model": self.model, "sweep": self.sweep,
                "point": self.point, "decided_later": [f"point of {name} chosen on dev" for name in self.later],
                "trains": self.trains, "needs": list(self.needs), "produces": list(self.produces),
                "after": list(self.after)}


@dataclass(frozen=True)
class Plan:
    """Every run of a recipe, in execution order (the dev split first, then each evaluation
    collection); `len(plan)` is what `drbench validate` counts."""

    recipe: Recipe
    runs: tuple[RunSpec, ...]
    folds: tuple[Plan, ...] = ()  # a k-fold recipe: each fold's own plan (their runs lead `runs`)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Any:
        return iter(self.runs)

    def phase(self, phase: str) -> list[RunSpec]:
        return [run for run in self.runs if run.phase == phase]


def build_plan(recipe: Recipe) -> Plan:
    """The runs `recipe` makes, in the order `drbench run` makes them.

    >>> from harness.recipe import parse_recipe
    >>> r = parse_recipe('[experiment]\\nname="x"\\n[data]\\neval=["cranfield"]\\n'
    ...                  '[variant.bm25]\\nkind="bm25"\\n[variant.zs]\\nkind="zero-shot"\\n')
    >>> [run.id for run in build_plan(r)]
    ['eval/bm25/42/cranfield/bm25', 'eval/zs/42/cranfield/Flat']
    """
    from harness.recipe.folds import fold_recipes, folds_of

    if (split := folds_of(recipe)) is not None:
        folds = tuple(_in_fold(build_plan(r), k) for k, r in enumerate(fold_recipes(recipe), 1))
        return Plan(recipe, tuple(run for fold in folds for run in fold.runs) + _combined(folds, split.name),
                    folds)
    builder = _Builder(recipe)
    dev = dev_collection(recipe)
    if dev is not None:
        for variant in dev_order(recipe):
            builder.add("dev", variant.name, variant, dev)
    for collection in recipe.data.eval:
        for row in eval_rows(recipe):
            builder.add("eval", row.name, row.variant, collection, chosen=row.chosen)
    return Plan(recipe, tuple(builder.runs))


def _in_fold(plan: Plan, k: int) -> Plan:
    """Fold `k`'s plan, its artifacts named `foldK:...`: each fold trains its own models."""
    def named(artifacts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"fold{k}:{a}" for a in artifacts)

    return replace(plan, runs=tuple(replace(run, needs=named(run.needs), produces=named(run.produces))
                                    for run in plan.runs))


def _combined(folds: tuple[Plan, ...], name: str) -> tuple[RunSpec, ...]:
    """One run per evaluation run of a fold: the folds of its (variant, seed, index) combined,
    stored under `NAME/test` once all of them are."""
    out = []
    for run in folds[0].phase("eval"):
        same = [r for fold in folds for r in fold.phase("eval")
                if (r.variant, r.seed, r.index) == (run.variant, run.seed, run.index)]
        out.append(replace(run, id="/".join(("folds", run.variant, str(run.seed), f"{name}/test", run.index)),
                           phase="folds", collection=f"{name}/test", trains=False, needs=(), produces=(),
                           after=tuple(r.id for r in same)))
    return tuple(out)


@dataclass
class _Builder:
    recipe: Recipe
    runs: list[RunSpec] = field(default_factory=list)
    producer: dict[str, str] = field(default_factory=dict)  # artifact -> the run id that makes it

    def add(self, phase: str, stored: str, variant: Variant, collection: str, chosen: bool = False) -> None:
        from harness.api.registry import kind

        recipe, trains = self.recipe, kind(variant.kind).trains
        sweep = variant.sweep_of
        later = tuple(dict.fromkeys(([sweep] if chosen else []) + self._chained(variant)))
        for seed in variant_seeds(recipe, variant):
            waits = self._dev_runs(later)
            model = f"model:{sweep if chosen else variant.name}@{seed}" if trains else None
            needs, produces = ([model], []) if model else ([], [])
            if model and model not in self.producer and not chosen:
                # Training makes the model, and the negatives and frozen vectors nothing made yet.
                inputs = self._training(variant, seed)
                made = [a for a in inputs if not a.startswith("model:") and a not in self.producer]
                needs, produces = [a for a in inputs if a not in made], [model, *made]
            for index in run_indexes(recipe, variant):
                run_id = "/".join((phase, stored, str(seed), collection, index))
                after = [self.producer[a] for a in needs if a in self.producer] + waits
                self.runs.append(RunSpec(
                    run_id, phase, stored, variant.kind, seed, collection, index,
                    model=None if chosen else variant.name, sweep=sweep,
                    point=None if chosen else (dict(variant.point) or None), later=later,
                    trains=bool(produces), needs=tuple(needs), produces=tuple(produces),
                    after=tuple(dict.fromkeys(after))))
                for artifact in produces:
                    self.producer.setdefault(artifact, run_id)
                if produces:  # the other indexes of this model search what the first run made
                    needs, produces = [model], []

    def _training(self, variant: Variant, seed: int) -> list[str]:
        """What training `variant` with `seed` needs: the models it starts from, its mined
        negatives and its frozen document vectors, named as artifacts."""
        from harness.api.registry import kind

        needs = kind(variant.kind).needs(variant.params)
        out = [self._model(needs.init, seed)]
        if needs.negatives:
            source = self._model(needs.negatives, seed)
            # Denoised negatives are other negatives: their settings name them (the seed too, when drawn).
            # (ance draws its own at every refresh: no negatives artifact; its keys are in its model's key.)
            settings = needs.denoise.settings(seed)
            denoised = f"[{', '.join(f'{k}={v}' for k, v in settings.items())}]" if settings else ""
            out += [source, f"negatives:{needs.negatives}:{needs.negatives_depth}{denoised}" + _at(source)]
        if needs.documents:
            source = self._model(needs.documents, seed)
            out += [source, f"frozen:{needs.documents}" + _at(source)]
        return [a for a in dict.fromkeys(out) if a]

    def _model(self, name: str, seed: int) -> str:
        """`model:NAME@SEED` for a trained variant (or a sweep of them), '' for built-ins and
        untrained kinds (nothing in the plan makes them)."""
        from harness.api.registry import kind

        if name not in self.recipe.sweeps and name not in {v.name for v in self.recipe.variants}:
            return ""  # base, bm25
        variant = self.recipe.sweeps[name][0] if name in self.recipe.sweeps else self.recipe.variant(name)
        return f"model:{name}@{seed}" if kind(variant.kind).trains else ""

    def _chained(self, variant: Variant) -> list[str]:
        """The swept variants `variant` builds on, directly or through the variants it names."""
        found: list[str] = []
        for name in referenced_names(variant):
            if name in self.recipe.sweeps:
                found.append(name)
            else:
                found += self._chained(self.recipe.variant(name))
        return found

    def _dev_runs(self, sweeps: tuple[str, ...]) -> list[str]:
        """The dev runs a choice among each sweep's points is made from."""
        points = {p.name for name in sweeps for p in self.recipe.sweeps[name]}
        return [run.id for run in self.runs if run.phase == "dev" and run.variant in points]


def _at(model: str) -> str:
    """`@SEED` of a trained model's artifact name, '' for a built-in source."""
    return "@" + model.rsplit("@", 1)[1] if model else ""


def run_count(recipe: Recipe) -> int:
    """How many runs (variant or sweep point x seed x collection x index) the recipe stores."""
    return len(build_plan(recipe))
