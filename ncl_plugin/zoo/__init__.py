"""IMDL-BenCo's model zoo as it trains here: one recipe per registry name (:mod:`.recipes`)."""

from ncl_plugin.zoo.recipes import (
    BROKEN,
    CANNOT,
    RECIPES,
    TRAINS,
    Recipe,
    adapt,
    default_models,
    empty_weight_file,
    environment,
    listing,
    recipe,
    recipe_flags,
    registry,
    seeded_torch_home,
    smallest_size,
)

__all__ = [
    "BROKEN",
    "CANNOT",
    "RECIPES",
    "TRAINS",
    "Recipe",
    "adapt",
    "default_models",
    "empty_weight_file",
    "environment",
    "listing",
    "recipe",
    "recipe_flags",
    "registry",
    "seeded_torch_home",
    "smallest_size",
]
