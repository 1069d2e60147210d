"""Recipes: TOML parsed once, at the edge, into frozen typed objects.

Nothing here imports torch; `drbench validate` and `drbench ls` stay fast.
"""

from harness.recipe.expand import variant_seeds
from harness.recipe.loader import load_recipe, parse_recipe, recipe_warnings
from harness.recipe.plan import Plan, RunSpec, build_plan, run_count
from harness.recipe.model import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, Recipe, Variant

__all__ = ["load_recipe", "parse_recipe", "recipe_warnings", "Recipe", "ExperimentConfig", "ModelConfig", "DataConfig",
           "EvalConfig", "Variant", "Plan", "RunSpec", "build_plan", "run_count", "variant_seeds"]
