"""The study grid from a validated config (stdlib only, and the schema): ids, config readers, shapes, job sizing and
the `Study` that composes them. Callers import from here: `from hrsa.grid import Study, parse_model_id, POOLED`."""

from hrsa.grid.config import (
    KNN_KEYS,
    RECIPE_FLAGS,
    RECIPES,
    Backbone,
    knn_config,
)
from hrsa.grid.ids import POOLED, ROLES, SAFE_NAME, Comparison, model_id, parse_comparison, parse_model_id
from hrsa.grid.shapes import Shape
from hrsa.grid.sizing import params_b
from hrsa.grid.study import Study

__all__ = [
    "KNN_KEYS", "POOLED", "RECIPES", "RECIPE_FLAGS", "ROLES", "SAFE_NAME", "Backbone", "Comparison",
    "Shape", "Study", "knn_config", "model_id", "params_b", "parse_comparison", "parse_model_id",
]
