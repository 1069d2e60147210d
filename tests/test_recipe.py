"""Recipes: parsing into frozen objects, every structural error, and the resource checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import RecipeError
from harness.recipe import load_recipe, parse_recipe
from harness.recipe.checks import check_resources
from harness.recipe.explain import sections

PATH = "recipes/t.toml"
REPO = Path(__file__).resolve().parent.parent
HEAD = '[experiment]\nname = "x"\n[data]\neval = ["cranfield"]\n'
BM25 = '[variant.bm25]\nkind = "bm25"\n'


def _error(text: str) -> str:
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, PATH)
    message = str(err.value)
    assert "\n" not in message and message.startswith(PATH)
    return message


def test_minimal_recipe_gets_the_declared_defaults() -> None:
    recipe = parse_recipe(HEAD + BM25 + '[variant.zs]\nkind = "zero-shot"\n', PATH)
    assert recipe.experiment.name == "x" and recipe.experiment.seed == 42
    assert recipe.data.eval == ("cranfield",) and recipe.data.train is None
    assert recipe.eval.indexes == ("Flat",) and recipe.eval.depth == 1000
    assert [(v.name, v.kind) for v in recipe.variants] == [("bm25", "bm25"), ("zs", "zero-shot")]
    assert recipe.variant("bm25").params.as_dict() == {"k1": 1.2, "b": 0.75, "method": "lucene",
                                                   "stemmer": "english", "stopwords": "en"}
    assert recipe.path == Path(PATH) and len(recipe.hash) == 64


def test_int_is_accepted_for_float_and_lone_string_for_list() -> None:
    recipe = parse_recipe(HEAD.replace('["cranfield"]', '"cranfield"')
                          + '[variant.bm25]\nkind = "bm25"\nk1 = 1\n', PATH)
    k1 = recipe.variant("bm25").params.k1
    assert k1 == 1.0 and isinstance(k1, float)
    assert recipe.data.eval == ("cranfield",)


# (recipe text, "[table] key" it must name, fragments the message must contain)
ERRORS = [
    pytest.param(HEAD.replace("name =", "nmae =") + BM25, "[experiment] nmae",
                 ['unknown key; did you mean "name"?'], id="unknown-key"),
    pytest.param(HEAD + "[evall]\ndepth = 3\n" + BM25, "[evall]",
                 ['unknown table; did you mean "eval"?'], id="unknown-table"),
    pytest.param(HEAD + "[model]\nbatch_size = \"8\"\n" + BM25, "[model] batch_size",
                 ["expected int, got str"], id="str-for-int"),
    pytest.param(HEAD + "[model]\nbatch_size = true\n" + BM25, "[model] batch_size",
                 ["expected int, got bool"], id="bool-for-int"),
    pytest.param(HEAD + '[variant.bm25]\nkind = "bm25"\nk1 = true\n', "[variant.bm25] k1",
                 ["expected float, got bool"], id="bool-for-float"),
    pytest.param(HEAD + '[model]\npooling = "maen"\n' + BM25, '[model] pooling = "maen"',
                 ['did you mean "mean"?', "(cls, mean, max)"], id="choice"),
    pytest.param(HEAD + '[variant.bm25]\nkind = "bm25"\nmethod = "lucen"\n',
                 '[variant.bm25] method = "lucen"', ['did you mean "lucene"?'], id="variant-choice"),
    pytest.param(HEAD + '[variant.bm25]\nkind = "bm52"\n', '[variant.bm25] kind = "bm52"',
                 ['unknown variant kind; did you mean "bm25"?', "zero-shot"], id="unknown-kind"),
    pytest.param(HEAD + '[variant.bm25]\nkind = "bm25"\nmodel = "m"\n', "[variant.bm25] model",
                 ["unknown key", "k1"], id="key-of-another-kind"),
    pytest.param('[experiment]\nseed = 1\n[data]\neval = ["cranfield"]\n' + BM25,
                 "[experiment] name", ["missing required key"], id="missing-name"),
    pytest.param('[experiment]\nname = "x"\n' + BM25, "[data] eval",
                 ["missing required key"], id="missing-eval"),
    pytest.param(HEAD + '[variant.bm25]\ndescription = "d"\n', "[variant.bm25] kind",
                 ["missing required key", "bm25, zero-shot"], id="missing-kind"),
    pytest.param(HEAD + BM25 + '[variant.zs]\nkind = "zero-shot"\n' + BM25, "[variant.bm25]",
                 ["duplicate variant name (lines 5 and 9)"], id="duplicate-variant"),
    pytest.param(HEAD + BM25 + "[variant.'bm25']\nkind = 'bm25'\n", "[variant.bm25]",
                 ["duplicate variant name (lines 5 and 7)"], id="duplicate-quoted-variant"),
    pytest.param(HEAD + '[eval]\nmetrics = ["ndgc@10"]\n' + BM25, "[eval] metrics",
                 ["unknown metric 'ndgc@10'", 'did you mean "ndcg@10"?'], id="unknown-metric"),
    pytest.param(HEAD + '[eval]\nmetrics = ["ndcg@10", "ndcg@10"]\n' + BM25, "[eval] metrics",
                 ["duplicate entry 'ndcg@10'"], id="duplicate-metric"),
    pytest.param(HEAD + '[eval]\nmetrics = ["ndcg@10", "recall@100"]\ndepth = 50\n' + BM25,
                 "[eval] depth = 50", ["recall@100", "depth >= 100"], id="depth-below-cutoff"),
    pytest.param(HEAD + "[eval]\ndepth = 0\n" + BM25, "[eval] depth = 0", ["must be >= 1"],
                 id="below-minimum"),
    pytest.param('[experiment]\nname = "x"\nseed = -5\n[data]\neval = ["cranfield"]\n' + BM25,
                 "[experiment] seed = -5", ["must be >= 0"], id="negative-seed"),
    pytest.param(HEAD + "[eval]\nindexes = []\n" + BM25, "[eval] indexes", ["must not be empty"],
                 id="empty-list"),
    pytest.param(HEAD, "[variant]", ["declare at least one [variant.NAME]"], id="no-variants"),
    pytest.param(HEAD + "[variant]\n", "[variant]", ["declare at least one"], id="empty-variants"),
    pytest.param(HEAD + '[variant."a b"]\nkind = "bm25"\n', "[variant.a b]",
                 ["variant names use"], id="bad-variant-name"),
]


@pytest.mark.parametrize("text, where, fragments", ERRORS)
def test_structural_errors_name_file_table_and_key(text: str, where: str,
                                                   fragments: list[str]) -> None:
    message = _error(text)
    assert message.startswith(f"{PATH} {where}")
    for fragment in fragments:
        assert fragment in message


def test_invalid_toml_names_the_file_and_line() -> None:
    message = _error(HEAD + "[eval\n" + BM25)
    assert message.startswith(f"{PATH}: invalid TOML") and "line 5" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"nope\.toml: no such recipe file$"):
        load_recipe(tmp_path / "nope.toml")


def test_relative_mirror_is_taken_from_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    recipe_file = tmp_path / "recipes" / "r.toml"
    recipe_file.write_text(HEAD + 'mirror = "../mirror"\n' + BM25)
    assert load_recipe(recipe_file).data.mirror == str(tmp_path / "recipes" / "../mirror")
    recipe_file.write_text(HEAD + f'mirror = "{tmp_path}"\n' + BM25)
    assert load_recipe(recipe_file).data.mirror == str(tmp_path)


@pytest.mark.parametrize("part, attribute", [
    ("experiment", "name"), ("model", "base"), ("data", "eval"), ("eval", "depth"), (None, "text")])
def test_parsed_objects_are_frozen(part: str | None, attribute: str) -> None:
    recipe = parse_recipe(HEAD + BM25, PATH)
    target = getattr(recipe, part) if part else recipe
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(target, attribute, "changed")


def test_variant_params_are_read_only() -> None:
    variant = parse_recipe(HEAD + BM25, PATH).variant("bm25")
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.kind = "zero-shot"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.params.k1 = 9.0  # type: ignore[misc]


# --- resources ------------------------------------------------------------------------------

def _checked(text: str) -> str:
    with pytest.raises(RecipeError) as err:
        check_resources(parse_recipe(text, PATH))
    message = str(err.value)
    assert "\n" not in message and message.startswith(PATH)
    return message


def test_resources_of_a_good_recipe_pass(tiny_model: Path) -> None:
    check_resources(parse_recipe(
        HEAD + f'[model]\nbase = "{tiny_model}"\n[eval]\nindexes = ["Flat", "PQ8", "OPQ4,PQ4"]\n'
        + BM25 + '[variant.zs]\nkind = "zero-shot"\n', PATH))


def test_unknown_dataset_id_suggests_a_known_one() -> None:
    message = _checked(HEAD.replace('"cranfield"', '"beir/scifcat/test"') + BM25)
    assert message.startswith(f'{PATH} [data] eval = "beir/scifcat/test"')
    assert "did you mean 'beir/scifact/test'" in message


def test_missing_model_folder_names_model_base(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    message = _checked(HEAD + f'[model]\nbase = "{missing}"\n[variant.zs]\nkind = "zero-shot"\n')
    assert message.startswith(f'{PATH} [model] base = "{missing}"') and "does not exist" in message


def test_model_of_a_bm25_only_recipe_is_not_checked(tmp_path: Path) -> None:
    check_resources(parse_recipe(HEAD + f'[model]\nbase = "{tmp_path / "nope"}"\n' + BM25, PATH))


@pytest.mark.parametrize("factory, reason", [("Flatt", "faiss rejects index 'Flatt'"),
                                             ("PQ7", "PQ7 needs M to divide the embedding dimension 32")])
def test_index_faiss_rejects_for_the_model_dim(tiny_model: Path, factory: str, reason: str) -> None:
    message = _checked(HEAD + f'[model]\nbase = "{tiny_model}"\n[eval]\nindexes = ["Flat", "{factory}"]\n'
                       + '[variant.zs]\nkind = "zero-shot"\n')
    assert message.startswith(f'{PATH} [eval] indexes = "{factory}"') and reason in message


# --- the reference --------------------------------------------------------------------------

@pytest.mark.parametrize("format, key", [("markdown", "| `{}` |"), ("text", "\n  {}  (")])
def test_explain_lists_every_declared_key(format: str, key: str) -> None:
    result = CliRunner().invoke(app, ["validate", "--explain", "--format", format])
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # the text is wrapped, long lists of choices too
    for table, params in sections():
        assert table in result.output
        for param in params:
            assert key.format(param.name) in result.output, (table, param.name)
            if param.choices:
                assert ", ".join(param.choices) in words
    assert "[variant.NAME.sweep]" in result.output


def test_explain_on_a_terminal_is_readable_sections_and_an_example() -> None:
    from harness.recipe.explain import EXAMPLE

    text = CliRunner().invoke(app, ["validate", "--explain"]).output
    assert "| key |" not in text and max(map(len, text.splitlines())) <= 120
    assert "[experiment]\n============\n" in text and text.rstrip().endswith(EXAMPLE.rstrip())


def test_the_explain_example_is_a_valid_recipe_with_train_seeds_a_sweep_and_dev() -> None:
    from harness.recipe.explain import EXAMPLE

    recipe = parse_recipe(EXAMPLE, "example.toml")
    assert "[train]" in EXAMPLE and len(recipe.experiment.seeds or ()) > 1 and recipe.sweeps
    assert recipe.data.dev and recipe.selects


@pytest.mark.parametrize("sweep", ["sweep = 5", "sweep = [1e-5]"])
def test_a_sweep_that_is_no_table_is_one_line(sweep: str) -> None:
    text = STAR_TRAIN.replace("[variant.star]", "[train]\nlr = 1e-5\n[variant.star]") + sweep + "\n"
    assert "[variant.star.sweep]: expected a table of key = [values to try]" in _error(text)


def test_a_sweep_table_typo_suggests_sweep() -> None:
    text = HEAD.replace('eval = ["cranfield"]', 'train = "vaswani"\neval = ["cranfield"]\ndev = "holdout:0.1"')
    message = _error(text + '[variant.star]\nkind = "star"\n[variant.star.sweeps]\nlr = [1e-5]\n')
    assert '[variant.star] sweeps: unknown key; did you mean "sweep"?' in message, message


@pytest.mark.parametrize("line, fragment", [
    ('stemmer = "englsh"', '[variant.bm25] stemmer = "englsh": unknown Snowball stemmer; did you mean "english"?'),
    ('stopwords = "xx"', '[variant.bm25] stopwords = "xx": not an allowed value'),
])
def test_bm25_language_typos_stop_validate_not_a_run(line: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(HEAD + BM25 + line + "\n", PATH)
    assert fragment in str(err.value)


TRAIN = ('[experiment]\nname = "x"\n[data]\ntrain = "cranfield"\neval = ["cranfield"]\n'
         '[train]\nlr = 3e-5\nscale = 20.0\nepochs = 2\n'
         '[variant.star]\nkind = "star"\n[variant.adore]\nkind = "adore"\nlr = 1e-6\n[variant.bm25]\nkind = "bm25"\n')


def test_train_table_gives_trained_variants_defaults_they_can_override() -> None:
    recipe = parse_recipe(TRAIN, PATH)
    star, adore, bm25 = recipe.variants
    assert (star.params.lr, star.params.scale, star.params.epochs) == (3e-5, 20.0, 2)
    assert (adore.params.lr, adore.params.scale) == (1e-6, 20.0)  # its own lr wins
    assert adore.params.warmup_steps == 10 and adore.params.metric_cut == 200  # neither sets it: the kind's default
    assert not hasattr(bm25.params, "lr")  # kinds that do not train ignore [train]


@pytest.mark.parametrize("table, where, fragment", [
    ("[train]\nlr = -1e-5\n", "[train] lr = -1e-05", "must be >= 0"),
    ("[train]\ninit = \"base\"\n", "[train] init", "unknown key"),
    ("[train]\nwarmup_step = 3\n", "[train] warmup_step", 'did you mean "warmup_steps"'),
])
def test_train_table_is_checked_as_its_own_table(table: str, where: str, fragment: str) -> None:
    message = _error(HEAD + table + BM25)
    assert message.startswith(f"{PATH} {where}") and fragment in message, message


STAR_TRAIN = ('[experiment]\nname = "x"\n[data]\ntrain = "cranfield"\neval = ["cranfield"]\n'
              '[variant.star]\nkind = "star"\n')


@pytest.mark.parametrize("train, variant, where", [
    ("eval_every = 5", "", "[train] eval_every = 5: scores on the dev split"),
    ('keep = "best"', "", '[train] keep = "best": keeps the step with the best dev score'),
    ("eval_every = 5", "eval_every = 3", "[variant.star] eval_every = 3: scores on the dev split"),
    ("", "eval_every = 3", "[variant.star] eval_every = 3: scores on the dev split"),
], ids=["train", "train-keep", "variant-overrides", "variant"])
def test_a_bad_value_from_train_names_train(train: str, variant: str, where: str) -> None:
    text = STAR_TRAIN.replace("[variant.star]", f"[train]\n{train}\n[variant.star]") + variant + "\n"
    message = _error(text)
    assert message.startswith(f"{PATH} {where}"), message


def test_shipped_recipes_share_their_training_defaults_through_train() -> None:
    recipe = load_recipe(REPO / "recipes" / "star_adore.toml")
    trained = {v.name: v.params for v in recipe.variants if hasattr(v.params, "lr")}
    assert {n: (p.lr, p.epochs, p.warmup_steps, p.scale) for n, p in trained.items()} == {
        "inbatch": (2e-5, 1, 3, 20.0), "random": (2e-5, 1, 3, 20.0), "static": (2e-5, 1, 3, 20.0),
        "star": (1e-4, 3, 3, 20.0), "adore": (1e-5, 3, 8, 20.0), "star+adore": (2e-5, 3, 8, 20.0)}
