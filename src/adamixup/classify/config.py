"""The classification config: :class:`ClassificationConfig`, the shipped recipes (``recipes/classify``)
and the one way to build a config from a recipe and overrides."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..train.config import RECIPE_DIR, ConfigError, RunConfig, _non_finite, find_recipe, load_recipe, update_config

CLASSIFY_RECIPES = RECIPE_DIR / "classify"


@dataclass
class ClassificationConfig(RunConfig):
    """A classification run: the shared keys (:class:`~adamixup.train.config.RunConfig`) and the data,
    model and evaluation keys of this task."""

    dataset: str = "mnist5k"
    method: str = "adamixup"
    epochs: int = 15
    # data
    train_fraction: float = 1.0
    # a stratified share of the training split held out and scored instead of the test split (val_error):
    # choose settings on it, never on the test split
    validation_fraction: float = 0.0
    fold: Optional[int] = None  # embedded sets: use stratified fold `fold` of `num_folds` as the test set
    num_folds: int = 5
    augment: bool = True
    # model
    model: str = "small_cnn"
    model_args: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128
    # evaluation
    eval_batch_size: int = 1000
    train_eval_samples: int = 1000  # fixed subset of the training set on which train error is measured

    def validate(self) -> "ClassificationConfig":
        from ..data import DATASETS
        from ..data.registry import EMBEDDED
        from ..models import ModelError, check_model_spec

        self.validate_run(DATASETS)
        if self.dataset in EMBEDDED and self.data_root:
            warnings.warn(f"{self.dataset} ships with the package: data_root {self.data_root} is not read", stacklevel=2)
            self.data_root = None
        bad = _non_finite(self.model_args)
        if bad:
            raise ConfigError(f"config key 'model_args.{bad}' must be a finite number, got {self.model_args[bad]!r}")
        try:
            check_model_spec(self.model, self.model_args)
        except ModelError as err:
            raise ConfigError(f"config key 'model': {err}") from None
        for key in ("batch_size", "eval_batch_size", "num_folds"):
            if getattr(self, key) < 1:
                raise self.bad(key, "must be at least 1")
        if self.train_eval_samples < 0:
            raise self.bad("train_eval_samples", "must not be negative")
        if not 0 < self.train_fraction <= 1:
            raise self.bad("train_fraction", "must lie in (0, 1]")
        if not 0 <= self.validation_fraction < 1:
            raise self.bad("validation_fraction", "must be 0 (off) or lie in (0, 1)")
        self.check_batch("batch_size", self.batch_size)
        return self


TrainConfig = ClassificationConfig  # the name before 0.2; kept for a release


def list_recipes() -> List[str]:
    """The shipped classification recipes."""
    from ..train.config import list_recipes as listed

    return listed(CLASSIFY_RECIPES)


def build_config(recipe: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> ClassificationConfig:
    """Defaults, then the recipe (a shipped name or a YAML file), then the overrides; validated."""
    config = ClassificationConfig()
    if recipe:
        update_config(config, load_recipe(recipe, CLASSIFY_RECIPES), str(find_recipe(recipe, CLASSIFY_RECIPES)))
    if overrides:
        update_config(config, overrides, "the command line")
    return config.validate()


def config_from_dict(values: Dict[str, Any], source: str) -> ClassificationConfig:
    return update_config(ClassificationConfig(), values, source).validate()
