"""The run configuration both tasks share: one flat dataclass (:class:`RunConfig`; each task's config
adds its keys), read from recipes (YAML) and ``--set key=value``.

Unknown keys, wrong types and impossible values are errors that name the key; the resolved config
is written to each run directory as ``config.yaml``.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import yaml

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"  # classify/, reid/, studies/
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")


DEVICE_TYPES = ("cpu", "cuda", "mps")
DICT_KEYS = ("model_args", "mixer_args", "dataset_args")  # config keys whose sub-keys --set reaches (key.sub=value)


class ConfigError(ValueError):
    """A bad recipe or ``--set`` value; the message names the key."""


class YAMLLoader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that floats may be written as everyone writes them:
    ``1e-4``, ``5E3``, ``.5e-2`` (YAML 1.1 wants ``1.0e-4`` and reads ``1e-4`` as a string)."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
YAMLLoader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YAMLLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text (a recipe, a saved config, a ``--set`` value); a syntax error is a
    :class:`ConfigError` naming ``source``."""
    try:
        return yaml.load(text, Loader=YAMLLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from None


def _check_device_name(name: Any) -> Optional[str]:
    """None if ``name`` is a device we run on (auto, cpu, cuda, cuda:N, mps), else why not."""
    if not isinstance(name, str):
        return "must be a string"
    if name == "auto":
        return None
    kind, _, index = name.partition(":")
    if kind not in DEVICE_TYPES or (index and not index.isdigit()) or (index and kind != "cuda"):
        return "must be auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
    return None


def _non_finite(values: Dict[str, Any]) -> Optional[str]:
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            return k
    return None


@dataclass
class RunConfig:
    """The keys every training run has, classification and re-ID alike (each task's config adds
    its own and sets its own defaults)."""

    dataset: str = ""
    data_root: Optional[str] = None
    method: str = "erm"
    mixer_args: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 1
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: List[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    run_dir: Optional[str] = None
    tensorboard: bool = False
    quiet: bool = False
    stop_on_divergence: bool = False  # stop (not only warn) when the loss grows far above its first step's
    eval_every: int = 1  # evaluate every N epochs and always after the last (the engine decides when)

    # mixer options that the task sets itself, so that a recipe may not
    task_mixer_args: ClassVar[Tuple[str, ...]] = ()
    # the smallest batch a process gets (re-ID: P × K; classification: the batch over the processes)
    batch_key: ClassVar[str] = "batch_size"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"config key {key!r}: {why} (got {getattr(self, key)!r})")

    def validate_run(self, datasets: Sequence[str]) -> None:
        """Checks of the shared keys; ``datasets``: the task's valid dataset names."""
        from ..mixing import METHODS

        choices = {"dataset": datasets, "method": tuple(METHODS), "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                   "precision": PRECISIONS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise self.bad(key, f"must be one of {', '.join(allowed)}")
        why = _check_device_name(self.device)
        if why:
            raise self.bad("device", why)
        for key in ("epochs", "eval_every"):
            if getattr(self, key) < 1:
                raise self.bad(key, "must be at least 1")
        if self.seed < 0:
            raise self.bad("seed", "must not be negative (a seed is 0, 1, 2, ...)")
        for key in ("lr", "weight_decay", "momentum", "warmup_epochs"):
            if getattr(self, key) < 0:
                raise self.bad(key, "must not be negative")
        if self.schedule == "step" and not self.milestones:
            raise self.bad("milestones", "the step schedule needs epochs at which to multiply the rate by gamma")
        if sorted(self.milestones) != list(self.milestones):
            raise self.bad("milestones", "must be increasing")
        method = METHODS[self.method]
        accepted = method.options(frozenset(self.task_mixer_args))
        unknown = sorted(set(self.mixer_args) - accepted)
        if unknown:
            fixed = f" ({self.method} fixes it)" if unknown[0] in method.fixed else ""
            raise ConfigError(
                f"config key 'mixer_args.{unknown[0]}' is not an option of {self.method}{fixed}; "
                f"its options are {', '.join(sorted(accepted)) or 'none'}"
            )
        self.check_mixer_values()

    def task_mixer_options(self) -> Dict[str, Any]:
        """Options the task itself gives its mixer (re-ID: label smoothing, the clean features)."""
        return {}

    def check_mixer_values(self) -> None:
        """Build the mixer once on a tiny stand-in model, so that a value it refuses
        (``mixer_args.alpha=-1``) is a config error before any run folder exists."""
        from ..mixing import METHODS
        from ..models import SmallCNN

        bad = _non_finite(self.mixer_args)
        if bad:
            raise ConfigError(f"config key 'mixer_args.{bad}' must be a finite number, got {self.mixer_args[bad]!r}")
        try:
            METHODS[self.method].build(SmallCNN(in_channels=1, num_classes=2, width=2), **self.mixer_args,
                                       **self.task_mixer_options())
        except (ValueError, TypeError) as err:
            given = ", ".join(f"{k}={v!r}" for k, v in self.mixer_args.items())
            raise ConfigError(f"config key 'mixer_args' ({given}): {self.method} refuses it: "
                              f"{' '.join(str(err).split())}") from None

    def check_batch(self, key: str, size: int) -> None:
        from ..mixing import METHODS

        min_batch = METHODS[self.method].min_batch
        if size < min_batch:
            raise self.bad(key, f"a batch of {size} is too small for {self.method}, which needs at least {min_batch}")


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
        if ok and not math.isfinite(value):
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"config key {key!r} must be of type {kind}, got {value!r}")
    return value


def update_config(config, values: Dict[str, Any], source: str):
    """Apply ``values`` (from a recipe or ``--set``) to a config dataclass; ``source`` names where they came from."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must be a mapping of config keys to values, got "
                          f"{'nothing' if values is None else type(values).__name__}")
    field_types = {f.name: f.type for f in fields(config)}
    for key, value in values.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: config keys are names, got {key!r}")
        if key in DICT_KEYS and key in field_types and isinstance(value, dict):
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


def find_recipe(name_or_path: Union[str, Path], directory: Path, kind: str = "recipe") -> Path:
    """A recipe file: a path, or the name of one shipped in ``directory`` (``mnist5k``, ``bot``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = directory / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"no {kind} {str(name_or_path)!r}: not a file, nor a shipped {kind} "
                      f"({', '.join(list_recipes(directory))})")


def list_recipes(directory: Path) -> List[str]:
    """The names of the recipes shipped in ``directory``."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_recipe(name_or_path: Union[str, Path], directory: Path, kind: str = "recipe") -> Dict[str, Any]:
    """A recipe's config keys (its ``description`` left out). A recipe that holds nothing is an error:
    an empty file is more likely a mistake than a wish for every default."""
    path = find_recipe(name_or_path, directory, kind)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{kind} {path} cannot be read ({type(err).__name__}: {err})") from None
    values = load_yaml(text, f"{kind} {path}")
    if values is None:
        raise ConfigError(f"{kind} {path} is empty; write the config keys it should set (or leave out --config for the defaults)")
    if not isinstance(values, dict):
        raise ConfigError(f"{kind} {path} must be a mapping of config keys to values")
    values.pop("description", None)
    return values


def parse_set(items: List[str]) -> Dict[str, Any]:
    """``["lr=0.1", "mixer_args.alpha=0.4"]`` -> ``{"lr": 0.1, "mixer_args": {"alpha": 0.4}}``."""
    values: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = load_yaml(raw, f"--set {item!r}") if raw else None
        head, dot, sub = key.partition(".")
        if dot:
            if head not in DICT_KEYS:
                raise ConfigError(f"unknown config key {key!r}: only {', '.join(k + '.*' for k in DICT_KEYS)} take sub-keys")
            values.setdefault(head, {})[sub] = value
        else:
            values[key] = value
    return values
