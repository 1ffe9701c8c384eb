"""Study plans: which runs a study is made of, written down before any of them trains.

A plan is a YAML file (shipped ones live in ``recipes/studies/``; ``adamixup study run quick`` finds
them by name)::

    name: digits-controls                  # optional; default: the file's stem
    description: what the study asks
    task: classification                   # or reid (recipes of `adamixup reid train`; folds are identity splits)
    datasets:                              # label -> a training recipe and its overrides
      digits:   {recipe: digits, epochs: 20}
      digits-S: {recipe: digits, train_fraction: 0.2, epochs: 40}
      # re-ID only: test-only data sets every run is also scored on (cross-data-set), e.g.
      # cuhk01: {recipe: bot, dataset: cuhk01, data_root: D, cross: {market: {dataset: market1501, data_root: M}}}
    methods:                               # label -> a registry method (adamixup.mixing.METHODS) and its options
      erm: erm                             # shorthand: the label is the registry name
      adamixup-w0: {method: adamixup, mixer_args: {intrusion_weight: 0}}
      mixup-matched: {method: mixup-matched}
      wide: {method: mixup, overrides: {model_args: {width: 32}}}   # config keys of this method's runs
      step3: {method: erm, overrides: {...}, folds: [0]}            # only on these folds (a costly ablation step)
    folds: 5                               # k-fold of the embedded sets (every fold the test fold once);
                                           # or {num_folds: 5, use: [0, 1]}; or fixed (the data set's own split);
                                           # re-ID: the protocol's identity splits (CUHK01: {num_folds: 10, use: [0, 1, 2]})
    seeds: [0, 1]                          # or "0-4", or a count: 2
    overrides: {model_args: {width: 16}}   # config keys for every run (the budget); a data set's own keys win
    primary: [adamixup, mixup-matched]     # THE comparison, stated before running (first and marked in the report)
    comparisons: [[mixup, erm], [adamixup, mixup]]   # more paired comparisons (Holm-corrected together)
    pooled: true                           # also pool each comparison over the data sets
    selection: {split: test}               # or {split: validation, fraction: 0.1}: score on a validation split
    chosen:                                # where the settings that results chose were chosen (the report lists it)
      min_width 0.4: "width-val study, validation splits (benchmarks/results/width-val.md)"
    statistics: {test: wilcoxon, interval: cluster, resamples: 10000, level: 0.95, seed: 0}

:func:`expand` turns a plan into :class:`Run` s, each with a stable key
``<dataset>/<method>/fold<F>-seed<S>`` (``fixed-seed<S>`` on a fixed split) and a resolved, validated
config; :func:`config_identity` is what a ledger record must match to stand for a run (the config
without the keys that do not change what a run computes, the method as its mixer class and every
mixer option written out), and :func:`identity_hash` its hash.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from .errors import StudyError
from .tasks import TASKS, StudyTask, get_task

PLAN_DIR = Path(__file__).resolve().parents[1] / "recipes" / "studies"
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
PLAN_KEYS = ("name", "description", "task", "datasets", "methods", "folds", "seeds", "overrides", "primary",
             "comparisons", "pooled", "selection", "statistics", "chosen")
METHOD_KEYS = ("method", "mixer_args", "overrides", "folds", "description")
# what the study sets per run; a plan may not set them through overrides
RESERVED = ("method", "mixer_args", "seed", "fold", "num_folds", "run_dir", "device", "quiet")
# keys that do not change what a run computes (display, where it runs, speed-only knobs) or that name a place rather
# than the data: not part of a run's identity, so that a record made on another machine (another device, another
# path to the same data, channels-last or compiled on a GPU) stands for the run
NOT_IN_IDENTITY = ("run_dir", "quiet", "tensorboard", "stop_on_divergence", "device", "data_root", "channels_last",
                   "compile", "eval_batch_size", "eval_every")
TESTS = ("wilcoxon", "signflip")
INTERVALS = ("cluster", "stratified", "pairs")
STATISTICS = {"test": "wilcoxon", "interval": "cluster", "resamples": 10_000, "level": 0.95, "seed": 0}


# --------------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Folds:
    """``num_folds`` stratified folds of which ``use`` are test folds; ``num_folds=None``: the data set's
    own fixed split (one "fold", ``use == (None,)``)."""

    num_folds: Optional[int]
    use: Tuple[Optional[int], ...]

    def label(self, fold: Optional[int]) -> str:
        return "fixed" if fold is None else f"fold{fold}"

    def describe(self, task: Optional[StudyTask] = None) -> str:
        if self.num_folds is None:
            return "the data set's own train/test split"
        return (task or get_task(None)).describe_folds(tuple(self.use), self.num_folds)


@dataclass(frozen=True)
class DatasetSpec:
    label: str
    recipe: str
    overrides: Dict[str, Any]
    folds: Folds
    description: str = ""
    # re-ID: test-only data sets each run is also scored on (label -> {dataset, data_root, dataset_args})
    cross: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    label: str
    method: str  # a name in adamixup.mixing.METHODS
    mixer_args: Dict[str, Any]
    description: str = ""
    overrides: Dict[str, Any] = field(default_factory=dict)  # config keys of this method's runs (an ablation step)
    folds: Optional[Tuple[int, ...]] = None  # only these of the data sets' folds (None: all of them)


@dataclass(frozen=True)
class Selection:
    """Which split scores the runs: ``test`` (the final plan) or ``validation`` (choosing settings:
    ``fraction`` of each training fold held out, the test split never looked at)."""

    split: str = "test"
    fraction: Optional[float] = None


@dataclass
class Plan:
    name: str
    source: str
    datasets: Dict[str, DatasetSpec]
    methods: Dict[str, MethodSpec]
    seeds: List[int]
    task: StudyTask = field(default_factory=lambda: get_task(None))
    overrides: Dict[str, Any] = field(default_factory=dict)
    description: str = ""
    primary: Optional[Tuple[str, str]] = None
    comparisons: List[Tuple[str, str]] = field(default_factory=list)
    pooled: bool = False
    selection: Selection = field(default_factory=Selection)
    statistics: Dict[str, Any] = field(default_factory=lambda: dict(STATISTICS))
    chosen: Dict[str, str] = field(default_factory=dict)  # setting -> the runs (validation) that chose it

    @property
    def metric(self) -> str:
        """The final metric the comparisons use: the task's (test error, mAP), or its validation metric
        when the selection scores a validation split."""
        return self.task.score_key(self.selection.split == "validation")

    def all_comparisons(self) -> List[Tuple[str, str]]:
        """The primary comparison first, then the plan's others (each pair once, in either direction);
        with none given, every method against the first method."""
        pairs: List[Tuple[str, str]] = [self.primary] if self.primary else []
        others = self.comparisons or [(m, next(iter(self.methods))) for m in list(self.methods)[1:]]
        for a, b in others:
            if {(a, b), (b, a)}.isdisjoint(pairs):
                pairs.append((a, b))
        return pairs


@dataclass(frozen=True)
class Run:
    """One run of a plan: its key, where it sits in the plan, and the resolved config it trains."""

    key: str
    dataset: str
    method: str
    fold: Optional[int]
    seed: int
    registry_method: str
    mixer_args: Dict[str, Any]
    config: Dict[str, Any]
    identity: Dict[str, Any]
    config_hash: str
    task: str = "classification"
    cross: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # test-only data sets (not the run's identity)

    @property
    def slug(self) -> str:
        """The key as one file-name part: ``digits-S__adamixup__fold0-seed1``."""
        return self.key.replace("/", "__")


def _bad(source: str, key: str, why: str) -> StudyError:
    return StudyError(f"plan {source}: key {key!r} {why}")


def list_plans() -> List[str]:
    """The names of the plans shipped in ``recipes/studies``."""
    return sorted(p.stem for p in PLAN_DIR.glob("*.yaml"))


def find_plan(name_or_path: Union[str, Path]) -> Path:
    """A plan file: a path, a shipped plan's name, or ``recipes/studies/NAME.yaml`` (a shipped plan's
    ``source``, as reports print it)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = PLAN_DIR / (path.name if path.parent == Path("recipes/studies") else f"{name_or_path}.yaml")
    if shipped.is_file():
        return shipped
    raise StudyError(f"no plan file {str(name_or_path)!r}; shipped plans: {', '.join(list_plans()) or 'none'}")


def load_plan(name_or_path: Union[str, Path]) -> Plan:
    """Read and check a plan: a YAML file, or the name of a shipped plan (``quick``)."""
    from ..train.config import YAMLLoader  # YAML as the recipes read it: floats may be written 1e-4

    path = find_plan(name_or_path)
    try:
        data = yaml.load(path.read_text(), Loader=YAMLLoader)
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(f"plan {path} cannot be read ({type(err).__name__}: {err})") from None
    except yaml.YAMLError as err:
        raise StudyError(f"plan {path} is not valid YAML: {' '.join(str(err).split())}") from None
    source = f"recipes/studies/{path.name}" if path.resolve().parent == PLAN_DIR else str(path)
    return parse_plan(data, source, default_name=path.stem)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_ints(value: Any, source: str, key: str) -> List[int]:
    """``[0, 1]``, ``"0-4"``, ``"0-2,4"`` or a count ``3`` (= 0, 1, 2)."""
    if _int(value):
        if value < 1:
            raise _bad(source, key, f"as a count must be at least 1, got {value!r}")
        return list(range(value))
    items: List[Any]
    if isinstance(value, str):
        items = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise _bad(source, key, f"must be a list of integers, a range like \"0-4\" or a count, got {value!r}")
    out: List[int] = []
    for item in items:
        if _int(item):
            out.append(item)
            continue
        lo, sep, hi = str(item).partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
        except ValueError:
            raise _bad(source, key, f"holds {item!r}, which is neither an integer nor a range like 0-4") from None
    if not out:
        raise _bad(source, key, "is empty")
    if len(set(out)) < len(out):
        raise _bad(source, key, f"names a value twice: {value!r}")
    if any(v < 0 for v in out):
        raise _bad(source, key, f"must not be negative, got {value!r}")
    return out


def _parse_folds(value: Any, source: str, key: str) -> Folds:
    if value in ("fixed", None):
        return Folds(None, (None,))
    if _int(value):
        if value < 2:
            raise _bad(source, key, f"needs at least 2 folds, got {value!r}")
        return Folds(value, tuple(range(value)))
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"num_folds", "use"})
        if unknown:
            raise _bad(source, f"{key}.{unknown[0]}", "is not a folds key; use num_folds and use")
        num = value.get("num_folds")
        if not _int(num) or num < 2:
            raise _bad(source, f"{key}.num_folds", f"must be an integer of at least 2, got {num!r}")
        use = _parse_ints(value.get("use", num), source, f"{key}.use")
        bad = [f for f in use if f >= num]
        if bad:
            raise _bad(source, f"{key}.use", f"names fold {bad[0]}, but there are only folds 0-{num - 1}")
        return Folds(num, tuple(use))
    raise _bad(source, key, f"must be a number of folds, {{num_folds: N, use: [...]}} or fixed, got {value!r}")


def _label(source: str, key: str, label: Any) -> str:
    if not isinstance(label, str) or not LABEL.match(label):
        raise _bad(source, key, f"has the label {label!r}; labels are letters, digits and . _ + - (no '/')")
    return label


def _mapping(value: Any, source: str, key: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(source, key, f"must be a mapping, got {value!r}")
    return dict(value)


CROSS_KEYS = ("dataset", "data_root", "dataset_args")


def _parse_cross(value: Any, source: str, key: str, task: StudyTask) -> Dict[str, Dict[str, Any]]:
    """``cross: {label: {dataset: NAME, data_root: DIR, dataset_args: {...}}}``: test-only data sets a
    re-ID run is also scored on after training (cross-data-set evaluation)."""
    if task.name != "reid":
        raise _bad(source, key, "is for re-ID plans (task: reid): a classification run has no other data set to be scored on")
    value = _mapping(value, source, key)
    out: Dict[str, Dict[str, Any]] = {}
    for label, target in value.items():
        _label(source, key, label)
        target = _mapping(target, source, f"{key}.{label}")
        unknown = sorted(set(target) - set(CROSS_KEYS))
        if unknown:
            raise _bad(source, f"{key}.{label}.{unknown[0]}", f"is not one of {', '.join(CROSS_KEYS)}")
        for need in ("dataset", "data_root"):
            if not isinstance(target.get(need), str) or not target[need]:
                raise _bad(source, f"{key}.{label}.{need}", "must be given (the data set's name and its folder)")
        if not isinstance(target.get("dataset_args", {}), dict):
            raise _bad(source, f"{key}.{label}.dataset_args", "must be a mapping of the reader's options")
        out[label] = {"dataset": target["dataset"], "data_root": target["data_root"],
                      "dataset_args": dict(target.get("dataset_args") or {})}
    return out


def _reserved(values: Dict[str, Any], source: str, key: str) -> None:
    clash = [k for k in values if k in RESERVED]
    if clash:
        raise _bad(source, f"{key}.{clash[0]}", "is set by the study itself for each run (methods, folds, seeds; "
                                               "the device is an option of `study run`); remove it")


def _pair(value: Any, methods: Dict[str, MethodSpec], source: str, key: str) -> Tuple[str, str]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, str) for v in value)):
        raise _bad(source, key, f"must be a pair of method labels like [adamixup, mixup], got {value!r}")
    a, b = value
    for m in (a, b):
        if m not in methods:
            raise _bad(source, key, f"names the method {m!r}, which is not among the plan's methods "
                                    f"({', '.join(methods)})")
    if a == b:
        raise _bad(source, key, f"compares {a!r} with itself")
    return a, b


def _parse_method(label: str, value: Any, source: str) -> MethodSpec:
    from ..mixing import METHODS

    key = f"methods.{label}"
    if isinstance(value, str) or value is None:
        value = {"method": value or label}
    if not isinstance(value, dict):
        raise _bad(source, key, f"must be a registry method name or {{method: NAME, mixer_args: {{...}}}}, got {value!r}")
    unknown = sorted(set(value) - set(METHOD_KEYS))
    if unknown:
        raise _bad(source, f"{key}.{unknown[0]}", f"is not a method key; use {', '.join(METHOD_KEYS)}")
    name = value.get("method", label)
    if name not in METHODS:
        raise _bad(source, f"{key}.method", f"names {name!r}, which is not a method; choose one of {', '.join(METHODS)}")
    args = _mapping(value.get("mixer_args"), source, f"{key}.mixer_args")
    overrides = _mapping(value.get("overrides"), source, f"{key}.overrides")
    _reserved(overrides, source, f"{key}.overrides")
    allowed = METHODS[name].options()
    bad = sorted(set(args) - allowed)
    if bad:
        fixed = " (the method fixes it)" if bad[0] in METHODS[name].fixed else ""
        raise _bad(source, f"{key}.mixer_args.{bad[0]}", f"is not an option of {name}{fixed}; its options are "
                                                         f"{', '.join(sorted(allowed)) or 'none'}")
    folds = tuple(_parse_ints(value["folds"], source, f"{key}.folds")) if value.get("folds") is not None else None
    return MethodSpec(label, name, args, str(value.get("description") or ""), overrides, folds)


def parse_plan(data: Any, source: str = "<plan>", default_name: Optional[str] = None) -> Plan:
    """Check a plan's mapping (as read from YAML); every mistake is one :class:`StudyError` naming the key."""
    if not isinstance(data, dict):
        raise StudyError(f"plan {source} must be a mapping of plan keys ({', '.join(PLAN_KEYS)}), "
                         f"got {'nothing' if data is None else type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(PLAN_KEYS))
    if unknown:
        raise _bad(source, unknown[0], f"is not a plan key; the keys are {', '.join(PLAN_KEYS)}")
    name = data.get("name", default_name or "study")
    _label(source, "name", name)
    task_name = data.get("task", "classification")
    if task_name not in TASKS:
        raise _bad(source, "task", f"must be one of {', '.join(TASKS)}, got {task_name!r}")
    task = get_task(task_name)
    for required in ("datasets", "methods", "seeds"):
        if not data.get(required):
            raise _bad(source, required, "is missing or empty")
    folds = _parse_folds(data.get("folds", "fixed"), source, "folds")
    overrides = _mapping(data.get("overrides"), source, "overrides")
    _reserved(overrides, source, "overrides")

    raw_ds = data["datasets"]
    if not isinstance(raw_ds, dict):
        raise _bad(source, "datasets", f"must map labels to {{recipe: NAME, ...config keys}}, got {raw_ds!r}")
    datasets: Dict[str, DatasetSpec] = {}
    for label, value in raw_ds.items():
        _label(source, "datasets", label)
        key = f"datasets.{label}"
        value = _mapping(value, source, key)
        recipe = value.pop("recipe", None)
        if not isinstance(recipe, str) or not recipe:
            raise _bad(source, f"{key}.recipe", f"must name a training recipe (adamixup recipes) or a recipe file, got {recipe!r}")
        ds_folds = _parse_folds(value.pop("folds"), source, f"{key}.folds") if "folds" in value else folds
        description = str(value.pop("description", "") or "")
        cross = _parse_cross(value.pop("cross", None), source, f"{key}.cross", task) if "cross" in value else {}
        _reserved(value, source, key)
        datasets[label] = DatasetSpec(label, recipe, value, ds_folds, description, cross)

    raw_m = data["methods"]
    if isinstance(raw_m, list):
        if not all(isinstance(m, str) for m in raw_m):
            raise _bad(source, "methods", "as a list must hold registry method names; use a mapping for options")
        raw_m = {m: m for m in raw_m}
    if not isinstance(raw_m, dict):
        raise _bad(source, "methods", f"must map labels to registry methods, got {raw_m!r}")
    methods = {_label(source, "methods", label): _parse_method(label, value, source) for label, value in raw_m.items()}

    for m in methods.values():
        for d in datasets.values():
            stray = [f for f in (m.folds or ()) if f not in d.folds.use]
            if stray:
                raise _bad(source, f"methods.{m.label}.folds", f"names fold {stray[0]}, which data set {d.label!r} does "
                                                               f"not use ({d.folds.describe(task)})")
    seeds = _parse_ints(data["seeds"], source, "seeds")
    primary = _pair(data["primary"], methods, source, "primary") if data.get("primary") is not None else None
    raw_c = data.get("comparisons") or []
    if not isinstance(raw_c, list):
        raise _bad(source, "comparisons", f"must be a list of method pairs, got {raw_c!r}")
    comparisons = [_pair(c, methods, source, f"comparisons[{i}]") for i, c in enumerate(raw_c)]
    pooled = data.get("pooled", False)
    if not isinstance(pooled, bool):
        raise _bad(source, "pooled", f"must be true or false, got {pooled!r}")

    sel = _mapping(data.get("selection"), source, "selection")
    unknown = sorted(set(sel) - {"split", "fraction"})
    if unknown:
        raise _bad(source, f"selection.{unknown[0]}", "is not a selection key; use split and fraction")
    split = sel.get("split", "test")
    if split not in ("test", "validation"):
        raise _bad(source, "selection.split", f"must be test or validation, got {split!r}")
    if split == "validation" and task.validation_metric is None:
        raise _bad(source, "selection.split", f"validation needs a task that holds out a validation split; a {task_name} plan "
                                              "chooses on its own training identities (use another split)")
    fraction = sel.get("fraction")
    if split == "validation":
        if fraction is None:
            fraction = 0.1
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise _bad(source, "selection.fraction", f"must lie in (0, 1), got {fraction!r}")
    elif fraction is not None:
        raise _bad(source, "selection.fraction", "applies only to split: validation")

    stats = _mapping(data.get("statistics"), source, "statistics")
    unknown = sorted(set(stats) - set(STATISTICS))
    if unknown:
        raise _bad(source, f"statistics.{unknown[0]}", f"is not a statistics key; use {', '.join(STATISTICS)}")
    stats = {**STATISTICS, **stats}
    if stats["test"] not in TESTS:
        raise _bad(source, "statistics.test", f"must be one of {', '.join(TESTS)}, got {stats['test']!r}")
    if stats["interval"] not in INTERVALS:
        raise _bad(source, "statistics.interval", f"must be one of {', '.join(INTERVALS)}, got {stats['interval']!r}")
    if not _int(stats["resamples"]) or stats["resamples"] < 100:
        raise _bad(source, "statistics.resamples", f"must be an integer of at least 100, got {stats['resamples']!r}")
    if isinstance(stats["level"], bool) or not isinstance(stats["level"], float) or not 0.5 <= stats["level"] < 1:
        raise _bad(source, "statistics.level", f"must be a number in [0.5, 1), got {stats['level']!r}")
    if not _int(stats["seed"]):
        raise _bad(source, "statistics.seed", f"must be an integer, got {stats['seed']!r}")

    chosen = _mapping(data.get("chosen"), source, "chosen")
    bad = next((k for k, v in chosen.items() if not isinstance(v, str) or not v.strip()), None)
    if bad is not None:
        raise _bad(source, f"chosen.{bad}", "must say in words which runs chose the setting")
    return Plan(name=name, source=source, datasets=datasets, methods=methods, seeds=seeds, task=task,
                chosen={str(k): v for k, v in chosen.items()},
                overrides=overrides,
                description=str(data.get("description") or ""), primary=primary, comparisons=comparisons,
                pooled=pooled, selection=Selection(split, None if fraction is None else float(fraction)),
                statistics=stats)


# --------------------------------------------------------------------------------------------------
# a run's config and identity
# --------------------------------------------------------------------------------------------------
def config_for(recipe: Optional[str], overrides: Dict[str, Any], method: str, mixer_args: Dict[str, Any],
               task: Optional[StudyTask] = None):
    """The validated config (``TrainConfig``, or ``ReIDConfig`` for ``task`` reid) of one run of
    registry ``method`` with ``mixer_args``: the recipe, then ``overrides``."""
    task = task or get_task(None)
    return task.build(recipe, {**overrides, "method": method, "mixer_args": dict(mixer_args)})


def merge_overrides(*layers: Dict[str, Any]) -> Dict[str, Any]:
    """Config keys of several layers (plan, data set, method, fold), later ones winning; the sub-keys
    of the config's mapping keys (``DICT_KEYS``: ``model_args``, ``mixer_args``, ``dataset_args``) merge
    (a data set's ``dataset_args.num_test`` and a fold's ``dataset_args.split`` both hold)."""
    from ..train.config import DICT_KEYS

    out: Dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            if k in DICT_KEYS and isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = {**out[k], **v}
            else:
                out[k] = dict(v) if isinstance(v, dict) else v
    return out


def _canon(value: Any) -> Any:
    """A JSON-stable form: numbers as floats (``0`` and ``0.0`` are one setting), mappings sorted."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return str(value)


def mixer_defaults(cls) -> Dict[str, Any]:
    """A mixer class's constructor defaults (the options a config may set)."""
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in ("self", "model", "in_channels") and p.default is not inspect.Parameter.empty}


def config_identity(config: Dict[str, Any]) -> Dict[str, Any]:
    """What a run computes, as one flat mapping: the config but :data:`NOT_IN_IDENTITY`, with the method
    as its mixer class (``mixer``) and every mixer option written out (``mixer.<option>``: the class's
    defaults, the registry method's fixed options, the config's ``mixer_args``). A record made under
    other package defaults therefore differs from a run asked for now."""
    from ..mixing import get_method

    spec = get_method(config["method"])
    flat = {k: _canon(v) for k, v in config.items() if k not in NOT_IN_IDENTITY and k not in ("method", "mixer_args")}
    flat["mixer"] = spec.cls.__name__
    options = {**mixer_defaults(spec.cls), **spec.fixed, **(config.get("mixer_args") or {})}
    for k, v in options.items():
        flat[f"mixer.{k}"] = _canon(v)
    return dict(sorted(flat.items()))


def identity_hash(identity: Dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_identity(mixer: str, task: Optional[str] = None) -> Dict[str, Any]:
    """The identity's values when nothing is set: the task's config defaults and ``mixer``'s option
    defaults. A key that a newer trainer or mixer added is harmless in an older record when the run
    asked for now keeps its default (see :func:`identity_differences`)."""
    from ..mixing import METHODS

    flat = {k: _canon(v) for k, v in get_task(task).build(None, {}).to_dict().items()
            if k not in NOT_IN_IDENTITY and k not in ("method", "mixer_args")}
    cls = next((m.cls for m in METHODS.values() if m.cls.__name__ == mixer), None)
    if cls is not None:
        flat.update({f"mixer.{k}": _canon(v) for k, v in mixer_defaults(cls).items()})
    return flat


def identity_differences(stored: Dict[str, Any], wanted: Dict[str, Any],
                         defaults: Optional[Dict[str, Any]] = None) -> List[str]:
    """``key stored -> wanted`` for every setting in which a stored record differs from the run asked for.
    A key the record lacks (added to the trainer or a mixer since) counts only when the run asks for other
    than its default; a key the run no longer has is ignored."""
    if defaults is None:
        defaults = default_identity(str(wanted.get("mixer")))
    missing = object()
    out = []
    for k in sorted(wanted):
        have = stored.get(k, missing)
        if have is missing:
            if k in defaults and wanted[k] == defaults[k]:
                continue
            out.append(f"{k} (absent) -> {_show(wanted[k])}")
        elif have != wanted[k]:
            out.append(f"{k} {_show(have)} -> {_show(wanted[k])}")
    return out


def _show(value: Any) -> str:
    """A setting as a person wrote it: the identity keeps every number as a float, 20.0 reads 20."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_finite_tree(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_is_finite_tree(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_finite_tree(v) for v in value)
    return True


def expand(plan: Plan) -> List[Run]:
    """Every run of ``plan``, ordered seed, fold, data set, method (so that whole paired groups finish
    early); each config resolved and validated now, before anything trains."""
    runs: List[Run] = []
    extra: Dict[str, Any] = {}
    if plan.selection.split == "validation":
        extra["validation_fraction"] = plan.selection.fraction
    most = max(len(ds.folds.use) for ds in plan.datasets.values())
    for seed in plan.seeds:
        for i in range(most):
            for ds in plan.datasets.values():
                if i >= len(ds.folds.use):
                    continue
                fold = ds.folds.use[i]
                where_fold = {} if fold is None else plan.task.fold_overrides(fold, ds.folds.num_folds)
                for m in plan.methods.values():
                    if m.folds is not None and fold not in m.folds:
                        continue
                    overrides = merge_overrides(plan.overrides, ds.overrides, m.overrides, extra, where_fold,
                                                {"seed": seed, "quiet": True})
                    where = f"plan {plan.source}, data set {ds.label!r}, method {m.label!r}"
                    try:
                        config = config_for(ds.recipe, overrides, m.method, m.mixer_args, plan.task).to_dict()
                    except ValueError as err:  # ConfigError, StudyError
                        raise StudyError(f"{where}: {err}") from None
                    if not _is_finite_tree(config):
                        raise StudyError(f"{where}: the config holds a number that is not finite")
                    config["run_dir"] = None
                    identity = config_identity(config)
                    key = f"{ds.label}/{m.label}/{ds.folds.label(fold)}-seed{seed}"
                    runs.append(Run(key, ds.label, m.label, fold, seed, m.method, dict(m.mixer_args), config,
                                    identity, identity_hash(identity), plan.task.name, dict(ds.cross)))
    return runs


def select_runs(runs: Sequence[Run], patterns: Sequence[str]) -> List[Run]:
    """The runs whose key (``dataset/method/fold-seed``) matches one of the shell-style ``patterns``, in
    plan order; a pattern that matches no run is an error (a typo would otherwise train nothing)."""
    from fnmatch import fnmatchcase

    for pattern in patterns:
        if not any(fnmatchcase(r.key, pattern) for r in runs):
            example = runs[0].key if runs else "none"
            raise StudyError(f"--only {pattern!r} matches none of the plan's {len(runs)} runs "
                             f"(keys look like {example!r})")
    return [r for r in runs if any(fnmatchcase(r.key, p) for p in patterns)]


def plan_summary(plan: Plan) -> Dict[str, Any]:
    """The plan as plain data (for the report's JSON)."""
    return {
        "name": plan.name, "source": plan.source, "description": plan.description, "task": plan.task.name,
        "metric": plan.metric, "higher_is_better": plan.task.higher_is_better,
        "datasets": {k: {"recipe": d.recipe, "overrides": d.overrides, "folds": list(d.folds.use),
                         "num_folds": d.folds.num_folds, "description": d.description} for k, d in plan.datasets.items()},
        "methods": {k: {"method": m.method, "mixer_args": m.mixer_args, "overrides": m.overrides,
                        "folds": list(m.folds) if m.folds is not None else None, "description": m.description}
                    for k, m in plan.methods.items()},
        "seeds": plan.seeds, "overrides": plan.overrides, "primary": list(plan.primary) if plan.primary else None,
        "comparisons": [list(c) for c in plan.all_comparisons()], "pooled": plan.pooled,
        "selection": {"split": plan.selection.split, "fraction": plan.selection.fraction}, "statistics": plan.statistics,
        "chosen": plan.chosen,
    }


def ordered(values: Sequence[str], order: Sequence[str]) -> List[str]:
    present = set(values)
    return [v for v in order if v in present] + sorted(present - set(order))
