"""Parse and validate a recipe's structure: tables, keys, types, allowed values.

Checks that need the outside world (ir_datasets ids, model folders, faiss factory strings)
live in :mod:`harness.recipe.checks`, so this module stays instant and dependency-free.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
import re
import tomllib
from pathlib import Path
from typing import Any

from harness.api import params as P
from harness.errors import RecipeError
from harness.evaluate.metrics import metric_cutoff
from harness.data.local.declared import Declared, FileCollection, QuerySplit, declare, split_problem
from harness.recipe.collections import parse_collections
from harness.recipe.folds import folds_problem
from harness.recipe.where import Where, as_toml
from harness.recipe.model import (TABLES, ComputeConfig, DataConfig, EvalConfig, ExperimentConfig, ModelConfig,
                                  Recipe, Variant)

_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_PY_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _check_type(where: Where, table: str, param: P.Param, value: Any) -> Any:
    if param.toml_type == "list[str]":
        if isinstance(value, str):
            value = [value]  # a lone string is an obvious one-element list
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise where.error(table, param.name, value, "expected a list of strings")
        if not value:
            raise where.error(table, param.name, value, "must not be empty")
        if len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise where.error(table, param.name, value, f"duplicate entry {dup!r}")
        return tuple(value)
    if param.toml_type == "list[int]":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise where.error(table, param.name, value, "expected a list of integers")
        if not value:
            raise where.error(table, param.name, value, "must not be empty")
        if param.minimum is not None and (low := min(value)) < param.minimum:
            raise where.error(table, param.name, value, f"{low} is below the minimum {param.minimum:g}")
        if len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise where.error(table, param.name, value, f"{dup} is listed twice; seeds must be distinct")
        return tuple(value)
    types = _PY_TYPES[param.toml_type]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise where.error(table, param.name, value, f"expected {param.toml_type}, got {type(value).__name__}")
    if param.toml_type == "float":
        value = float(value)
    if param.minimum is not None and value < param.minimum:
        raise where.error(table, param.name, value, f"must be >= {param.minimum:g}")
    if param.choices and value not in param.choices:
        raise where.error(table, param.name, value, "not an allowed value", param.choices)
    return value


def parse_table(where: Where, table: str, raw: Any, decls: tuple[P.Param, ...]) -> dict[str, Any]:
    """Check one TOML table against its declarations; return every key with defaults filled in.

    Shared with other TOML files drbench reads (e.g. `drbench check` expectations), so their
    errors read like recipe errors.
    """
    if not isinstance(raw, dict):
        raise where.error(table, None, None, "expected a table")
    known = {p.name: p for p in decls}
    for key in raw:
        if key not in known:
            raise where.error(table, key, None, "unknown key", tuple(known))
    out: dict[str, Any] = {}
    for param in decls:
        if param.name not in raw:
            if param.required:
                raise where.error(table, param.name, None, "missing required key")
            out[param.name] = tuple(param.default) if isinstance(param.default, list) else param.default
            continue
        value = _check_type(where, table, param, raw[param.name])
        if param.check and (problem := param.check(list(value) if isinstance(value, tuple) else value)):
            raise RecipeError(problem if problem.startswith(str(where.path)) else
                              f"{where.path} [{table}] {param.name} = {as_toml(raw[param.name])}: {problem}")
        out[param.name] = value
    return out


def _duplicate_variant(text: str) -> tuple[str, int, int] | None:
    seen: dict[str, int] = {}
    header = re.compile(r'''^\s*\[\s*variant\s*\.\s*("([^"]+)"|'([^']+)'|[A-Za-z0-9_-]+)\s*\]\s*(#.*)?$''')
    for lineno, line in enumerate(text.splitlines(), 1):
        if match := header.match(line):
            name = match.group(2) or match.group(3) or match.group(1)
            if name in seen:
                return name, seen[name], lineno
            seen[name] = lineno
    return None


def variant_keys() -> tuple[P.Param, ...]:
    """Keys every variant takes, whatever its kind (the kinds are the registry's)."""
    from harness.api.registry import kinds

    return (P.Param("kind", "str", None, "Variant kind.", required=True, choices=tuple(kinds())),
            P.Param("description", "str", "", "Free text shown next to the variant."))


def train_keys() -> tuple[P.Param, ...]:
    """Keys `[train]` takes: those every trained kind shares (but `init`, which names a model),
    each unset unless given, when the kind's own default applies."""
    from dataclasses import replace

    from harness.api.train_params import TrainParams

    return tuple(replace(p, default=None, help=f"Default for every trained variant: {p.help}")
                 for p in P.declared(TrainParams) if p.name != "init")


def _parse_train(where: Where, raw: Any) -> dict[str, Any]:
    """The `[train]` keys given, checked like a variant's (only those given: the rest stay each kind's)."""
    checked = parse_table(where, "train", raw, train_keys())
    return {key: checked[key] for key in raw}


def _parse_variants(where: Where, raw: Any, train: dict[str, Any] | None = None) -> tuple[Variant, ...]:
    """Each [variant.NAME]; a trained kind takes `train`'s values ([train]) for keys it does not set."""
    from harness.api.registry import kinds as registered, problems

    if not isinstance(raw, dict) or not raw:
        raise where.error("variant", None, None, 'declare at least one [variant.NAME] table with kind = "..."')
    variants = []
    declared = registered()
    kinds = tuple(declared)
    for name, table in raw.items():
        label = f"variant.{name}"
        if not _VARIANT_NAME.match(name):
            raise where.error(label, None, None, "variant names use letters, digits, _ . + -")
        if not isinstance(table, dict):
            raise where.error(label, None, None, "expected a table")
        kind = table.get("kind")
        if kind is None:
            raise where.error(label, "kind", None, "missing required key", kinds)
        if not isinstance(kind, str):
            raise where.error(label, "kind", kind, f"expected str, got {type(kind).__name__}", kinds)
        if kind not in declared:
            if problem := problems().get(kind):  # a plug-in that failed to load: its reason, not "unknown"
                raise where.error(label, "kind", kind, problem)
            raise where.error(label, "kind", kind, "unknown variant kind", kinds)
        params_class = declared[kind].Params
        shared = {k: v for k, v in (train or {}).items() if declared[kind].trains}
        own = {k: v for k, v in table.items() if k not in ("kind", "sweep")}
        swept = table["sweep"] if isinstance(table.get("sweep"), dict) else {}  # not a table: _sweep_points says so
        where.inherited[name] = set(shared) - set(own) - set(swept)
        keys = variant_keys()[1:] + P.declared(params_class)
        for key in own:  # before parse_table, whose list leaves out the two keys taken here
            if key not in {p.name for p in keys}:
                if key in params_class.instead:
                    raise where.error(label, key, None, params_class.instead[key])
                raise where.error(label, key, None, "unknown key", ("kind", "sweep", *(p.name for p in keys)))
        for point in _sweep_points(where, name, kind, table.get("sweep"), own, P.declared(params_class)):
            values = parse_table(where, label, {**shared, **own, **dict(point)}, keys)
            description = values.pop("description")
            label_ = f"{name}[{','.join(f'{k}={_point_value(v)}' for k, v in point)}]" if point else name
            variants.append(Variant(label_, kind, description, params_class(**values),
                                    sweep_of=name if point else None, point=point))
    return tuple(variants)


def _point_value(value: Any) -> str:
    """A swept value as a variant name shows it: `2e-05`, `3`, `true`, `mean`."""
    return as_toml(value).strip('"')


def _sweep_points(where: Where, name: str, kind: str, sweep: Any, own: dict[str, Any],
                  decls: tuple[P.Param, ...]) -> list[tuple[tuple[str, Any], ...]]:
    """The grid of `[variant.NAME.sweep]` (key -> list of values), each point as ((key, value), ...),
    in the table's key order; [()] (one point, nothing swept) without a sweep."""
    import itertools

    if sweep is None:
        return [()]
    label = f"variant.{name}.sweep"
    if not isinstance(sweep, dict) or not sweep:
        raise where.error(label, None, None, "expected a table of key = [values to try], e.g. lr = [1e-5, 2e-5]")
    known = {p.name: p for p in decls}
    for key, values in sweep.items():
        if key not in known:
            raise where.error(label, key, None, f'not a key kind "{kind}" takes, so it cannot be swept', tuple(known))
        if key in own:
            raise where.error(label, key, None, f"also set in [variant.{name}]; keep it in one of the two")
        if not isinstance(values, list) or not values:
            raise where.error(label, key, values, "expected a non-empty list of values to try")
        for value in values:
            _check_type(where, label, known[key], value)
        if len({as_toml(v) for v in values}) != len(values):
            raise where.error(label, key, values, "lists a value twice")
    return [tuple(zip(sweep, combo)) for combo in itertools.product(*sweep.values())]


def parse_recipe(text: str, path: str | Path = "<recipe>") -> Recipe:
    """Parse recipe text into a frozen :class:`Recipe`, or raise a one-line RecipeError.

    >>> parse_recipe('[experiment]\\nname="x"\\n[data]\\neval=["cranfield"]\\n'
    ...              '[variant.bm25]\\nkind="bm25"\\n').variants[0].kind
    'bm25'
    """
    where = Where(Path(path))
    if dup := _duplicate_variant(text):
        raise RecipeError(f"{path} [variant.{dup[0]}]: duplicate variant name (lines {dup[1]} and {dup[2]}); "
                          "rename one of them")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    tables = tuple(TABLES) + ("collections", "train", "variant")
    for key in raw:
        if key not in tables:
            raise where.error(key, None, None, "unknown table", tables)
    parsed = {name: parse_table(where, name, raw.get(name, {}), P.declared(cls)) for name, cls in TABLES.items()}
    _one_seed_key(where, raw.get("experiment", {}), parsed["experiment"])
    recipe = Recipe(
        path=Path(path), text=text,
        experiment=ExperimentConfig(**parsed["experiment"]),
        model=ModelConfig(**parsed["model"]),
        data=DataConfig(**parsed["data"]),
        eval=EvalConfig(**parsed["eval"]),
        variants=_parse_variants(where, raw.get("variant"), _parse_train(where, raw.get("train", {}))),
        compute=ComputeConfig(**parsed["compute"]),
        collections=parse_collections(where, raw.get("collections"), Path(path).parent),
    )
    _check_depth(where, recipe)
    _check_references(where, recipe)
    _check_compute(where, recipe)
    _check_dev(where, recipe)
    _check_mining(where, recipe)
    _check_declared(where, recipe)
    declare(recipe.collections)  # as ir_datasets registers its ids: every stage resolves the names alike
    return recipe


def parse_eval(text: str, path: str | Path = "<recipe>") -> EvalConfig:
    """A recipe's `[eval]` table alone, read as `parse_recipe` reads it (declared defaults filled
    in), or a one-line RecipeError. For recipes stored with past runs, whose other tables a later
    drbench may no longer accept.

    >>> parse_eval('[experiment]\\nname="x"\\n[eval]\\nmetrics=["mrr@10"]\\n').indexes
    ('Flat',)
    """
    try:
        raw = tomllib.loads(text).get("eval", {})
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    return EvalConfig(**parse_table(Where(Path(path)), "eval", raw, P.declared(EvalConfig)))


def _check_declared(where: Where, recipe: Recipe) -> None:
    """`[data]` names that start with a declared collection name one of its splits (a BEIR
    folder's splits are its files, checked before any work), and splits are taken of files or
    ir_datasets ids, not of other splits."""
    names = {c.name: c for c in recipe.collections}
    data = recipe.data
    for key, value in (("train", data.train), *(("eval", e) for e in data.eval), ("dev", data.dev)):
        name, _, split = (value or "").partition("/")
        collection = names.get(name)
        if isinstance(collection, QuerySplit) and (problem := split_problem(collection, split or None)):
            raise where.error("data", key, value, problem)
        if isinstance(collection, FileCollection) and not split:
            raise where.error("data", key, value, f"names a collection, not one of its splits; write {name}/SPLIT, "
                                                  f"e.g. {name}/test")
    if problem := folds_problem(recipe):
        raise where.error("data", *problem)
    for collection in recipe.collections:
        if isinstance(collection, QuerySplit):
            source = names.get(collection.source.partition("/")[0])
            if isinstance(source, QuerySplit):
                raise where.error(f"collections.{collection.name}", "from", collection.source,
                                  "is itself a split of queries; split an ir_datasets id or a declared file "
                                  "collection's split")
            if isinstance(source, FileCollection) and "/" not in collection.source:
                raise where.error(f"collections.{collection.name}", "from", collection.source,
                                  f"names a collection, not one of its splits; write {source.name}/SPLIT")


def parse_declared(text: str, path: str | Path = "<recipe>") -> tuple[Declared, ...]:
    """A recipe's `[collections]` alone, paths resolved against the recipe's folder, or a
    one-line RecipeError: for recipes stored with past runs (the report reads their texts).

    >>> [c.name for c in parse_declared('[collections.cran]\\nfrom = "cranfield"\\nfolds = 5\\n')]
    ['cran']
    """
    try:
        raw = tomllib.loads(text).get("collections")
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    return parse_collections(Where(Path(path)), raw, Path(path).parent)


def _check_mining(where: Where, recipe: Recipe) -> None:
    """Denoising keys that contradict each other (MinedParams.mining_problem)."""
    for variant in recipe.variants:
        problem = getattr(variant.params, "mining_problem", lambda: None)()
        if problem is not None:
            key, value, why = problem
            raise where.error(where.variant_table(variant.sweep_of or variant.name, key), key, value, why)


def _check_dev(where: Where, recipe: Recipe) -> None:
    """A dev split must exist for selection and must not be an evaluation split."""
    from harness.recipe.model import holdout_fraction

    data = recipe.data
    for variant in recipe.variants:
        every, keep = getattr(variant.params, "eval_every", 0), getattr(variant.params, "keep", "last")
        name = variant.sweep_of or variant.name
        if every and data.dev is None:
            raise where.error(where.variant_table(name, "eval_every"), "eval_every", every,
                              'scores on the dev split; set [data] dev = "holdout:0.1" (or an ir_datasets dev split)')
        if keep == "best" and not every:
            raise where.error(where.variant_table(name, "keep"), "keep", keep,
                              "keeps the step with the best dev score; set eval_every = N too")
    if recipe.selects and data.dev is None:
        if data.select == "dev":
            raise where.error("data", "select", "dev", 'needs [data] dev: an ir_datasets dev split, or "holdout:0.1"')
        raise where.error("data", "dev", None, f"variant {next(iter(recipe.sweeps))!r} is swept and sweeps are "
                          'selected on a dev split; set dev = "holdout:0.1" (or an ir_datasets dev split), or '
                          'select = "none" to report every point')
    if data.dev is None:
        return
    if holdout_fraction(data.dev) is None:
        if data.dev == data.train:
            raise where.error("data", "dev", data.dev, "is the training split: points would be chosen on the queries "
                              'they trained on; use dev = "holdout:0.1" (or another split)')
        if data.dev in data.eval:
            raise where.error("data", "dev", data.dev, "is also an evaluation split; the splits that report "
                              "results must never choose anything: pick another dev split")
    else:
        if data.train is None:
            raise where.error("data", "dev", data.dev, 'a holdout is taken from the training queries; set train = '
                              '"<ir_datasets id>"')
        if data.train in data.eval:
            raise where.error("data", "dev", data.dev, f"holds out queries of {data.train}, which is also an "
                              "evaluation split; evaluate on another split")


def recipe_warnings(recipe: Recipe) -> tuple[str, ...]:
    """What a valid recipe does that is rarely meant: training on an evaluation split, or using a
    built-in kind whose name an installed plug-in also claims (the built-in runs; the plug-in is refused).

    `validate` and `run` print each as one `warning:` line; none stops a run (a smoke test may
    train and evaluate on one small collection on purpose).
    """
    from harness.api.registry import kind, problems

    refused = problems()
    warnings = tuple(f'{recipe.path} [variant.{name}] kind = "{k}": the built-in kind runs; {refused[k]}'
                     for name, k in dict.fromkeys((v.sweep_of or v.name, v.kind) for v in recipe.variants)
                     if k in refused)
    trained = list(dict.fromkeys(v.sweep_of or v.name for v in recipe.variants if kind(v.kind).trains))
    train = recipe.data.train
    if not trained or train is None or train not in recipe.data.eval:
        return warnings
    return warnings + (f'{recipe.path} [data] train = "{train}" is also an evaluation split: the trained variants '
                       f"({', '.join(trained)}) are evaluated on the queries they trained on; evaluate on another "
                       "split for numbers that measure retrieval, not memory",)


def _one_seed_key(where: Where, raw: dict[str, Any], experiment: dict[str, Any]) -> None:
    """`seed` or `seeds`, not both; with `seeds`, `seed` is the first of them (what runs no seed
    changes, BM25 and zero-shot, run with)."""
    if "seed" in raw and "seeds" in raw:
        raise where.error("experiment", "seeds", raw["seeds"], "give seed or seeds, not both; drop seed")
    if experiment["seeds"]:
        experiment["seed"] = experiment["seeds"][0]


def _check_compute(where: Where, recipe: Recipe) -> None:
    """What needs no GPU probe to be wrong (`run` checks the device itself before any work)."""
    from harness.model.compute import compute_problem

    compute = recipe.compute
    if found := compute_problem(compute.device, compute.precision, compute.backend):
        key, problem = found
        raise where.error("compute", key, getattr(compute, key), problem)


def _check_references(where: Where, recipe: Recipe) -> None:
    """Chained variants must name existing dense variants, and no chain may loop."""
    from harness.api.registry import kind

    dense = [v.name for v in recipe.variants if kind(v.kind).family == "dense"]
    edges: dict[str, list[str]] = {}
    for variant in recipe.variants:
        declared = kind(variant.kind)
        if declared.trains and recipe.data.train is None:
            raise where.error("data", "train", None, f"variant {variant.name!r} ({variant.kind}) trains; "
                              'set train = "<ir_datasets id>"')
        edges[variant.name] = []
        for ref in P.declared(declared.Params):
            value, builtins = getattr(variant.params, ref.name), ref.refers
            if builtins is None or value is None or value == "" or value in builtins:
                continue
            # a point's keys are its variant's table
            table = where.variant_table(variant.sweep_of or variant.name, ref.name)
            siblings = {v.name for v in recipe.sweeps.get(variant.sweep_of or "", ())} | {variant.name}
            swept_dense = [n for n, points in recipe.sweeps.items()
                           if kind(points[0].kind).family == "dense" and n != variant.sweep_of]
            allowed = list(builtins) + [n for n in dense if n not in siblings] + swept_dense * recipe.selects
            if value == variant.sweep_of or value in siblings:
                raise where.error(table, ref.name, value, "names its own sweep; name another variant", allowed)
            if value in recipe.sweeps and value in swept_dense:
                _check_init_tower(where, recipe, variant, ref.name, value, table)
                if not recipe.selects:
                    raise where.error(table, ref.name, value, 'is swept and select = "none" picks no point; name '
                                      "one of its points", [v.name for v in recipe.sweeps[value]])
                edges[variant.name] += [v.name for v in recipe.sweeps[value]]  # its chosen point: one of them
                continue
            if value not in allowed:
                raise where.error(table, ref.name, value, "not a built-in or another dense variant of this recipe",
                                  allowed)
            _check_init_tower(where, recipe, variant, ref.name, value, table)
            edges[variant.name].append(value)
    for name in edges:
        if cycle := _find_cycle(name, edges, []):
            raise where.error(f"variant.{name}", None, None,
                              "variants depend on each other in a loop: " + " -> ".join(cycle))


def _check_init_tower(where: Where, recipe: Recipe, variant: Variant, key: str, value: str, table: str) -> None:
    """A shared-tower kind starts (`init`) from one encoder, so not from a variant (or sweep) that
    trains a query encoder beside frozen documents (adore, star+adore): refused here, before any
    training, rather than once that variant has trained."""
    from harness.api.registry import kind

    named = recipe.sweeps[value][0] if value in recipe.sweeps else recipe.variant(value)
    if (key == "init" and getattr(kind(variant.kind), "tower", None) == "shared"
            and getattr(kind(named.kind), "tower", None) == "query"):
        raise where.error(table, key, value, f"that variant ({named.kind}) trains a query encoder beside frozen "
                          "documents; start shared-tower training from \"base\" or a shared-tower variant")


def _find_cycle(name: str, edges: dict[str, list[str]], path: list[str]) -> list[str] | None:
    if name in path:
        return path[path.index(name):] + [name]
    for dep in edges.get(name, []):
        if found := _find_cycle(dep, edges, path + [name]):
            return found
    return None


def _check_depth(where: Where, recipe: Recipe) -> None:
    store_depth = recipe.eval.store_depth
    if store_depth is not None and store_depth > recipe.eval.depth:
        raise where.error("eval", "store_depth", store_depth, f"deeper than depth = {recipe.eval.depth}; "
                          "store at most what is retrieved")
    cutoffs = [(m, metric_cutoff(m)) for m in recipe.eval.metrics]
    for metric, k in cutoffs:
        if k is not None and k > recipe.eval.depth:
            raise where.error("eval", "depth", recipe.eval.depth,
                              f"smaller than {metric}'s cutoff; set depth >= {k}")


def load_recipe(path: str | Path) -> Recipe:
    """Read and parse a recipe file; a missing or unreadable file is a RecipeError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    recipe = parse_recipe(text, path)
    mirror = recipe.data.mirror
    if mirror and not Path(mirror).expanduser().is_absolute():
        # resolve_mirror takes relative paths from the working directory; a recipe's own
        # paths are meant relative to the recipe file.
        recipe = replace(recipe, data=replace(recipe.data, mirror=str(path.parent / mirror)))
    return recipe
