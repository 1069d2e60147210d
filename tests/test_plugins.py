"""Strategies from outside the repository: a distribution that declares an entry point in the
group `drbench.strategies` adds a kind, without a line of drbench touched.

Each test installs a real (if tiny) distribution: a `*.dist-info` folder with METADATA and
entry_points.txt beside the plug-in's module, in a folder put first on sys.path, so the real
`importlib.metadata` machinery finds it, as it would find a `pip install`-ed package.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from typer.testing import CliRunner, Result

from harness.api import registry
from harness.api.kind import Kind
from harness.cli import app
from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import parse_recipe
from harness.recipe.explain import explain_markdown
from harness.pipeline import models
from harness.store import list_experiments, open_store, training_log

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, count_calls, quiet_console, recipe_text)

# The whole plug-in, as its author would ship it: parameters, batch, loss, and `KIND`.
STRATEGY = '''
from dataclasses import dataclass

from harness.api.params import param
from harness.api.train_params import TrainParams
from harness.train.sampling import Batch, relevance_mask, sample_positives
from harness.train.strategy import PairStrategy


@dataclass(frozen=True)
class MarginParams(TrainParams):
    margin: float = param(0.5, "Hinge margin between a positive and an in-batch negative.", minimum=0.0)


class Margin(PairStrategy):
    name = "plug-margin"
    help = "Plug-in: in-batch negatives under a hinge loss."
    Params = MarginParams

    def batch(self, query_ids, data, rng, params, negatives):
        positives = sample_positives(query_ids, data, rng)
        return Batch(query_ids, positives, rel_mask=relevance_mask(query_ids, positives, data))

    def loss(self, q, d_pos, d_neg, batch, params):
        import torch

        scores = q @ d_pos.T
        hinge = torch.relu(params.margin - scores.diagonal().unsqueeze(1) + scores)
        keep = torch.from_numpy(batch.rel_mask) & ~torch.eye(len(batch.query_ids), dtype=torch.bool)
        return (hinge * keep).sum() / keep.sum().clamp(min=1), {}


KIND = Margin()
'''

VARIANT = """
[variant.plug]
kind = "plug-margin"
margin = 0.2
max_steps = 2
batch_size = 8
query_max_length = 16
doc_max_length = 32
"""

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """`install(dist, version, {entry point: "module:attr"}, {module: source})`: a distribution on sys.path.

    Afterwards the folders leave sys.path, the plug-in modules leave sys.modules and the
    registry reads the entry points again, so no other test sees them."""
    modules: list[str] = []

    def install_(dist: str, version: str, entry_points: dict[str, str], sources: dict[str, str]) -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            "[drbench.strategies]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points.items()))
        for module, source in sources.items():
            (site / f"{module}.py").write_text(source)
            modules.append(module)
        monkeypatch.syspath_prepend(str(site))  # also invalidates importlib's caches
        registry.reset()
        return site

    yield install_
    monkeypatch.undo()
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()
    registry.reset()


def recipe_file(tmp_path: Path, variants: str, model: Path | str = "tiny") -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(recipe_text(tmp_path, Path(model), variants))
    return path


def validate(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["validate", *map(str, args)])


def one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


# --- a working plug-in --------------------------------------------------------------------------

def test_its_kind_is_found_after_the_builtins_with_its_package(install: Install) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    loaded = registry.kinds()
    assert list(loaded)[:len(registry.BUILTIN)] == list(registry.BUILTIN)
    assert isinstance(registry.kind("plug-margin"), Kind) and registry.kind("plug-margin").trains
    assert registry.origin("plug-margin") == "drbench-plug 1.2 (entry point plug-margin = drbench_plug:KIND)"
    assert registry.origin("star") is None and registry.problems() == {}


def test_a_module_alone_names_its_KIND(install: Install) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug"}, {"drbench_plug": STRATEGY})
    assert registry.kind("plug-margin").help.startswith("Plug-in:")


def test_its_module_is_imported_on_the_first_lookup_not_before(install: Install) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    assert "drbench_plug" not in sys.modules
    assert "plug-margin" in registry.kinds() and "drbench_plug" in sys.modules


def test_validate_accepts_a_recipe_using_it(install: Install, tmp_path: Path) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    result = validate(recipe_file(tmp_path, VARIANT), "--offline")
    assert result.exit_code == 0, result.output
    assert "ok — 1 variant [plug (plug-margin)]" in result.stdout
    variant = parse_recipe(recipe_file(tmp_path, VARIANT).read_text()).variant("plug")
    assert variant.params.margin == 0.2 and variant.params.lr == 2e-5


def test_did_you_mean_names_it(install: Install, tmp_path: Path) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    with pytest.raises(RecipeError, match='unknown variant kind; did you mean "plug-margin"?'):
        parse_recipe(recipe_file(tmp_path, VARIANT.replace('"plug-margin"', '"plug-margn"')).read_text())


def test_explain_lists_it_with_its_package_but_the_readme_does_not(install: Install) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    source = "From package drbench-plug 1.2 (entry point plug-margin = drbench_plug:KIND)."
    markdown = validate("--explain", "--format", "markdown")
    assert markdown.exit_code == 0 and markdown.stderr == "", markdown.output
    section = markdown.stdout.split('#### `[variant.NAME] kind = "plug-margin"`')[1]
    assert f"Plug-in: in-batch negatives under a hinge loss. {source}" in section
    assert "| `margin` | float | 0.5 | >= 0 |" in section
    terminal = validate("--explain").stdout.split('kind = "plug-margin"')[1]
    assert "drbench-plug 1.2" in terminal and "margin  (float; default 0.5; allowed >= 0)" in terminal
    readme = explain_markdown(builtin_only=True)  # the README documents drbench's own kinds only
    assert "plug-margin" not in readme and 'kind = "star"' in readme


def test_run_trains_it_for_two_steps_keyed_and_recorded_with_its_package(
        install: Install, tiny_model: Path, tmp_path: Path, use_cranfield: Collection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    keys = count_calls(monkeypatch, models, "artifact_key")
    recipe = parse_recipe(recipe_file(tmp_path, VARIANT, tiny_model).read_text(), tmp_path / "recipe.toml")
    outcomes = run_recipe(recipe, RunOptions(), quiet_console())
    assert [(o.variant, o.status) for o in outcomes] == [("plug", "done")]
    db = open_store(tmp_path / "drbench.db")
    log = training_log(db, "train-test", "plug")
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)
    # upgrading the plug-in retrains; the stored provenance names its release
    assert {kw.get("package") for _, kw in keys} == {"drbench-plug 1.2 (entry point plug-margin = drbench_plug:KIND)"}
    assert list_experiments(db)[0]["packages"]["drbench-plug"] == "1.2"


# --- plug-ins that cannot load ------------------------------------------------------------------

BROKEN = [
    ({"plug-margin": "drbench_gone:KIND"}, {}, "ModuleNotFoundError: No module named 'drbench_gone'"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": "import nowhere_to_be_found\n"},
     "ModuleNotFoundError: No module named 'nowhere_to_be_found'"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": "raise RuntimeError('no GPU\\nsecond line')\n"},
     "RuntimeError: no GPU"),
    ({"plug-margin": "drbench_plug:NOPE"}, {"drbench_plug": STRATEGY}, "AttributeError:"),
    ({"plug-margin": "drbench_plug"}, {"drbench_plug": "x = 1\n"}, "module 'drbench_plug' declares no KIND"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": "KIND = 3\n"},
     "TypeError: drbench_plug:KIND is of type int, not a harness.api.kind.Kind instance"),
    ({"plug-margin": "drbench_plug:Margin"}, {"drbench_plug": STRATEGY},
     "TypeError: drbench_plug:Margin is a Kind class, not an instance: declare KIND = Margin()"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": "raise ValueError()\n"}, "failed to load: ValueError"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY.replace('"plug-margin"', '"other"')},
     "drbench_plug:KIND declares kind 'other', registered as 'plug-margin'"),
    ({"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": "import sys\nsys.exit(3)\n"}, "SystemExit: 3"),
]


@pytest.mark.parametrize("entry_points, sources, reason", BROKEN,
                         ids=["no-module", "import-error", "raises", "no-attr", "no-KIND", "not-a-kind", "a-class",
                              "no-message", "renamed", "exits"])
def test_a_broken_plugin_is_one_line_and_the_builtins_still_work(install: Install, tmp_path: Path,
                                                                  entry_points: dict[str, str],
                                                                  sources: dict[str, str], reason: str) -> None:
    install("drbench-plug", "1.2", entry_points, sources)
    line = one_error_line(validate(recipe_file(tmp_path, VARIANT), "--offline"),
                          '[variant.plug] kind = "plug-margin": plug-in kind "plug-margin" from drbench-plug 1.2 '
                          f"(entry point plug-margin = {entry_points['plug-margin']}) failed to load", reason)
    assert "second line" not in line
    with pytest.raises(LookupError, match="failed to load"):
        registry.kind("plug-margin")
    assert registry.kind("star").name == "star"
    ok = validate(recipe_file(tmp_path, '[variant.bm25]\nkind = "bm25"\n'), "--offline")
    assert ok.exit_code == 0 and ok.stderr == "", ok.output  # a recipe that does not use it: not a word
    explain = validate("--explain")
    assert explain.exit_code == 0 and 'kind = "star"' in explain.stdout and "plug-margin" not in explain.stdout
    assert explain.stderr.strip().splitlines() == [f"warning: {registry.problems()['plug-margin']}"]


def test_a_broken_plugin_leaves_the_other_plugins_loaded(install: Install) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND", "plug-broken": "drbench_gone:KIND"},
            {"drbench_plug": STRATEGY})
    assert "plug-margin" in registry.kinds() and "plug-broken" not in registry.kinds()
    assert list(registry.problems()) == ["plug-broken"]


# --- names taken twice --------------------------------------------------------------------------

def test_a_plugin_taking_a_builtin_name_is_refused_and_the_builtin_runs(install: Install, tmp_path: Path) -> None:
    install("drbench-plug", "1.2", {"star": "drbench_plug:KIND"},
            {"drbench_plug": STRATEGY.replace('"plug-margin"', '"star"')})
    assert registry.kind("star").__module__ == "harness.train.strategies.star"
    assert "drbench_plug" not in sys.modules  # refused before its module is imported
    refusal = ('plug-in kind "star" from drbench-plug 1.2 (entry point star = drbench_plug:KIND) is refused: '
               '"star" is a built-in kind, which keeps the name; rename the entry point')
    assert registry.problems() == {"star": refusal}
    result = validate(recipe_file(tmp_path, '[variant.s]\nkind = "star"\n'), "--offline")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert f'[variant.s] kind = "star": the built-in kind runs; {refusal}' in warnings[0]


def test_two_plugins_under_one_name_are_one_line_naming_both(install: Install, tmp_path: Path) -> None:
    install("drbench-plug", "1.2", {"plug-margin": "drbench_plug:KIND"}, {"drbench_plug": STRATEGY})
    install("other-plug", "0.3", {"plug-margin": "other_plug:KIND"}, {"other_plug": STRATEGY})
    one_error_line(validate(recipe_file(tmp_path, VARIANT), "--offline"),
                   'plug-in kind "plug-margin" is declared twice, by', "drbench-plug 1.2", "other-plug 0.3")
    assert "drbench_plug" not in sys.modules and "other_plug" not in sys.modules
