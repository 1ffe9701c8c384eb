"""The training configuration: one flat dataclass, read from recipes (YAML) and ``--set key=value``.

Unknown keys, wrong types and impossible values are errors that name the key; the resolved config
is written to each run directory as ``config.yaml``.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
METHODS = ("erm", "mixup", "adamixup")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A bad recipe or ``--set`` value; the message names the key."""


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    train_fraction: float = 1.0
    fold: Optional[int] = None  # embedded sets: use stratified fold `fold` of `num_folds` as the test set
    num_folds: int = 5
    augment: bool = True
    # model and method
    model: str = "small_cnn"
    model_args: Dict[str, Any] = field(default_factory=dict)
    method: str = "adamixup"
    mixer_args: Dict[str, Any] = field(default_factory=dict)
    # optimization
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: List[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    # run
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int = 1000
    train_eval_samples: int = 1000  # fixed subset of the training set on which train error is measured
    run_dir: Optional[str] = None
    tensorboard: bool = False
    quiet: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        from ..data import DATASETS
        from ..mixing import MIXERS
        from ..models import MODELS

        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"config key {key!r}: {why} (got {getattr(self, key)!r})")

        if self.dataset not in DATASETS:
            raise bad("dataset", f"must be one of {', '.join(DATASETS)}")
        if self.method not in METHODS:
            raise bad("method", f"must be one of {', '.join(METHODS)}")
        if self.model not in MODELS:
            raise bad("model", f"must be one of {', '.join(sorted(MODELS))}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        for key in ("epochs", "batch_size", "eval_batch_size", "num_folds"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        for key in ("lr", "weight_decay", "momentum", "warmup_epochs", "train_eval_samples"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if not 0 < self.train_fraction <= 1:
            raise bad("train_fraction", "must lie in (0, 1]")
        if self.schedule == "step" and not self.milestones:
            raise bad("milestones", "the step schedule needs epochs at which to multiply the rate by gamma")
        if sorted(self.milestones) != list(self.milestones):
            raise bad("milestones", "must be increasing")
        mixer_cls = MIXERS[self.method]
        accepted = set(inspect.signature(mixer_cls.__init__).parameters) - {"self", "model", "in_channels"}
        unknown = sorted(set(self.mixer_args) - accepted)
        if unknown:
            raise ConfigError(
                f"config key 'mixer_args.{unknown[0]}' is not an option of {mixer_cls.__name__}; "
                f"its options are {', '.join(sorted(accepted)) or 'none'}"
            )
        min_batch = 4 if self.method == "adamixup" else 2 if self.method == "mixup" else 1
        if self.batch_size < min_batch:
            raise bad("batch_size", f"{mixer_cls.__name__} needs at least {min_batch}")
        return self


def _check_type(field_types: Dict[str, str], key: str, value: Any) -> Any:
    kind = field_types[key]
    optional = "Optional" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r} must not be empty")
    base = kind.replace("Optional[", "").rstrip("]")
    if base.startswith("Dict"):
        ok = isinstance(value, dict)
    elif base.startswith("List"):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    elif base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"config key {key!r} must be of type {kind}, got {value!r}")
    return value


def update_config(config, values: Dict[str, Any], source: str):
    """Apply ``values`` (from a recipe or ``--set``) to a config dataclass; ``source`` names where they came from."""
    field_types = {f.name: f.type for f in fields(config)}
    for key, value in values.items():
        if key in ("model_args", "mixer_args") and isinstance(value, dict):
            merged = dict(getattr(config, key))
            merged.update(value)
            setattr(config, key, merged)
            continue
        if key not in field_types:
            close = [k for k in field_types if k.startswith(key[:3])]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r} in {source}{hint}")
        setattr(config, key, _check_type(field_types, key, value))
    return config


def find_recipe(name_or_path: Union[str, Path]) -> Path:
    """A recipe file: a path, or the name of a recipe shipped with the package (``mnist5k``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPE_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"no recipe file {str(name_or_path)!r}; shipped recipes: {', '.join(list_recipes())}")


def list_recipes() -> List[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: Union[str, Path]) -> Dict[str, Any]:
    path = find_recipe(name_or_path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {path} must be a mapping of config keys to values")
    values.pop("description", None)
    return values


def parse_set(items: List[str]) -> Dict[str, Any]:
    """``["lr=0.1", "mixer_args.alpha=0.4"]`` -> ``{"lr": 0.1, "mixer_args": {"alpha": 0.4}}``."""
    values: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = yaml.safe_load(raw) if raw else None
        head, dot, sub = key.partition(".")
        if dot:
            if head not in ("model_args", "mixer_args"):
                raise ConfigError(f"unknown config key {key!r}: only model_args.* and mixer_args.* take sub-keys")
            values.setdefault(head, {})[sub] = value
        else:
            values[key] = value
    return values


def build_config(recipe: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Defaults, then the recipe, then the overrides; validated."""
    config = TrainConfig()
    if recipe:
        update_config(config, load_recipe(recipe), str(find_recipe(recipe)))
    if overrides:
        update_config(config, overrides, "the command line")
    return config.validate()


def config_from_dict(values: Dict[str, Any], source: str) -> TrainConfig:
    return update_config(TrainConfig(), values, source).validate()
