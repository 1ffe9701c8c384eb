"""Person re-ID training: the strong baseline (Luo et al., CVPR-W 2019) with MixUp / AdaMixUp on its ID loss.

One step::

    out = step(x, y)                          # the mixer: ID loss (label-smoothed; mixed if asked)
    loss = out.loss + triplet(out.features, y) + β · center(out.features, y)
    loss.backward(); optimizer.step(); center_optimizer.step()

The triplet and center losses read the clean samples' features before the BNNeck, which the mixer
returns (no extra forward pass); inference uses the feature after the BNNeck.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.pk_sampler import PKBatchSampler
from ..data.reid import ReIDData, ReIDImageDataset, describe, read_reid_dataset
from ..mixing import MIXERS, AdaMixUp, MixOutput, MixUp
from ..models.reid_resnet import ReIDResNet50
from ..reid import (CenterLoss, TripletLoss, build_test_transform, build_train_transform, evaluate_rank,
                    export_features, extract_features, plot_cmc, plot_ranked_lists)
from ..reid.metrics import compute_distance
from ..reid.rerank import re_ranking
from . import distributed as dist
from .base import BaseTrainer, EpochStats, TrainingError, load_run_config, resume_run, select_device, start_run
from .checkpoint import CheckpointError, load_checkpoint
from .config import RECIPE_DIR, ConfigError, RunConfig, load_recipe, update_config
from .schedule import build_scheduler

REID_DATASETS = ("market1501", "dukemtmcreid", "msmt17", "generic")
REID_RECIPES = RECIPE_DIR / "reid"


@dataclass
class ReIDConfig(RunConfig):
    # the strong baseline's run: Adam 3.5e-4, warm-up 10 epochs, ×0.1 at 40 and 70, 120 epochs
    dataset: str = "market1501"
    epochs: int = 120
    lr: float = 3.5e-4
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: List[int] = field(default_factory=lambda: [40, 70])
    warmup_epochs: float = 10.0
    # data
    height: int = 256
    width: int = 128
    flip: float = 0.5
    pad: int = 10
    random_erasing: float = 0.5
    p: int = 16  # identities per batch
    k: int = 4  # images per identity
    workers: int = 4
    # model
    backbone: str = "resnet50"
    pretrained: Optional[str] = None  # "imagenet" (torchvision's weights, downloaded) or a local file
    last_stride: int = 1
    neck: str = "bnneck"
    # losses (the ID loss is the mixer's; its label smoothing is set here)
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    soft_margin: bool = False
    center_weight: float = 5e-4
    center_lr: float = 0.5
    # evaluation
    eval_every: int = 10
    metric: str = "euclidean"
    feat_norm: bool = True
    rerank: bool = False

    task_mixer_args: ClassVar[Tuple[str, ...]] = ("label_smoothing", "include_clean")

    def mixer_kwargs(self) -> Dict[str, Any]:
        kwargs = dict(self.mixer_args, label_smoothing=self.label_smoothing)
        if MIXERS[self.method] is MixUp:
            kwargs["include_clean"] = True  # the triplet and center losses need the clean features
        return kwargs

    def validate(self) -> "ReIDConfig":
        if not 0 <= self.label_smoothing < 1:
            raise self.bad("label_smoothing", "must lie in [0, 1)")
        self.validate_run(REID_DATASETS)
        for key, allowed in {"neck": ("bnneck", "none"), "metric": ("euclidean", "cosine")}.items():
            if getattr(self, key) not in allowed:
                raise self.bad(key, f"must be one of {', '.join(allowed)}")
        if self.last_stride not in (1, 2):
            raise self.bad("last_stride", "must be 1 or 2")
        for key in ("p", "k", "eval_every", "height", "width"):
            if getattr(self, key) < 1:
                raise self.bad(key, "must be at least 1")
        for key in ("random_erasing", "flip"):
            if not 0 <= getattr(self, key) <= 1:
                raise self.bad(key, "is a probability in [0, 1]")
        for key in ("center_weight", "center_lr", "triplet_weight", "workers", "pad"):
            if getattr(self, key) < 0:
                raise self.bad(key, "must not be negative")
        if self.k < 2 and self.triplet_weight > 0:
            raise self.bad("k", "the triplet loss needs at least 2 images per identity")
        self.check_batch("p", self.p * self.k)
        return self


def list_reid_recipes() -> List[str]:
    return sorted(p.stem for p in REID_RECIPES.glob("*.yaml"))


def build_reid_config(recipe: Optional[str] = "bot", overrides: Optional[Dict[str, Any]] = None) -> ReIDConfig:
    """Defaults (= the ``bot`` recipe), then a re-ID recipe (a name in ``recipes/reid`` or a file), then overrides."""
    config = ReIDConfig()
    if recipe:
        path = REID_RECIPES / f"{recipe}.yaml"
        if not path.is_file() and not Path(recipe).is_file():
            raise ConfigError(f"no re-ID recipe {recipe!r}; shipped re-ID recipes: {', '.join(list_reid_recipes())}")
        source = path if path.is_file() else Path(recipe)
        update_config(config, load_recipe(source), str(source))
    if overrides:
        update_config(config, overrides, "the command line")
    return config.validate()


def reid_config_from_dict(values: Dict[str, Any], source: str) -> ReIDConfig:
    return update_config(ReIDConfig(), values, source).validate()


def build_reid_model(config: ReIDConfig, num_classes: int) -> ReIDResNet50:
    pretrained = True if config.pretrained == "imagenet" else config.pretrained
    try:
        return ReIDResNet50(num_classes=num_classes, last_stride=config.last_stride, neck=config.neck,
                            pretrained=pretrained, backbone=config.backbone)
    except ValueError as err:  # a missing or mismatched weights file, an unknown backbone
        raise TrainingError(str(err)) from None
    except OSError as err:  # the download of torchvision's ImageNet weights failed (offline)
        raise TrainingError(
            f"cannot download torchvision's ImageNet weights for {config.backbone} ({err}); download them on a "
            "machine that is online and pass --pretrained PATH, or train from scratch with --set pretrained=null") from None


def build_reid_mixer(config: ReIDConfig, model: nn.Module) -> nn.Module:
    cls = MIXERS[config.method]
    kwargs = config.mixer_kwargs()
    if cls is AdaMixUp:
        return cls(model, in_channels=3, **kwargs)
    return cls(**kwargs)


def test_loaders(config: ReIDConfig, data: ReIDData, batch_size: int = 128) -> Tuple[DataLoader, DataLoader]:
    transform = build_test_transform((config.height, config.width))
    make = lambda split: DataLoader(ReIDImageDataset(split, transform), batch_size=batch_size, shuffle=False,
                                    num_workers=config.workers, pin_memory=torch.cuda.is_available())
    return make(data.query), make(data.gallery)


@torch.no_grad()
def evaluate_model(model: nn.Module, config: ReIDConfig, data: ReIDData, device: torch.device,
                   rerank: bool = False) -> Dict[str, Any]:
    """Features of query and gallery (after the BNNeck), distances, and mAP / CMC / mINP."""
    q_loader, g_loader = test_loaders(config, data)
    qf = extract_features(model, q_loader, device)
    gf = extract_features(model, g_loader, device)
    return evaluate_feature_sets(qf, gf, config.metric, config.feat_norm, rerank)


def evaluate_feature_sets(qf, gf, metric: str = "euclidean", feat_norm: bool = True, rerank: bool = False) -> Dict[str, Any]:
    q, g = torch.as_tensor(qf.features).float(), torch.as_tensor(gf.features).float()
    if feat_norm:
        q, g = nn.functional.normalize(q, dim=1), nn.functional.normalize(g, dim=1)
    distmat = re_ranking(q, g, metric=metric) if rerank else compute_distance(q, g, metric=metric)
    cmc, mAP, mINP = evaluate_rank(distmat, qf.pids, gf.pids, qf.camids, gf.camids, max_rank=50)
    return {"mAP": 100 * float(mAP), "rank1": 100 * float(cmc[0]), "rank5": 100 * float(cmc[4]),
            "rank10": 100 * float(cmc[9]), "rank20": 100 * float(cmc[19]), "mINP": 100 * float(mINP),
            "cmc": np.asarray(cmc), "distmat": distmat, "query": qf, "gallery": gf}


SCALARS = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")


class ReIDTrainer(BaseTrainer):
    score_key = "mAP"
    higher_is_better = True

    def __init__(self, config: ReIDConfig, run_dir: Path, data: Optional[ReIDData] = None):
        super().__init__(config, run_dir)
        if data is None:
            if not config.data_root:
                raise TrainingError(f"re-ID training needs --data-root, the folder holding {config.dataset}")
            data = read_reid_dataset(config.dataset, config.data_root)
            if self.main:
                describe(data)
        self.data = data
        model = build_reid_model(config, data.num_train_pids)
        self.center = CenterLoss(data.num_train_pids, model.num_features) if config.center_weight > 0 else None
        self.triplet = TripletLoss(config.triplet_margin, soft_margin=config.soft_margin) if config.triplet_weight > 0 else None
        self.finish_setup(model, build_reid_mixer(config, model))
        if self.center is not None:
            self.center.to(self.device)
            self.extra_optimizers = [torch.optim.SGD(self.center.parameters(), lr=config.center_lr)]
        self.sampler = PKBatchSampler(data.train.pids, config.p, config.k, seed=config.seed,
                                      num_replicas=self.world, rank=self.rank)
        transform = build_train_transform((config.height, config.width), flip_p=config.flip, padding=config.pad,
                                          erasing_p=config.random_erasing)
        self.loader = DataLoader(ReIDImageDataset(data.train, transform), batch_sampler=self.sampler,
                                 num_workers=config.workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=config.workers > 0)
        self.steps_per_epoch = len(self.sampler)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{config.dataset}'s training split gives no PK batch of p={config.p} × k={config.k}")
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, config)
        self.last_eval: Optional[Dict[str, Any]] = None

    def state(self) -> Dict[str, Any]:
        state = super().state()
        state["center"] = self.center.state_dict() if self.center is not None else {}
        return state

    def load_state(self, ckpt: Dict[str, Any]) -> None:
        super().load_state(ckpt)
        if self.center is not None:
            self.center.load_state_dict(ckpt["center"])

    def total_loss(self, out: MixOutput) -> Tuple[Tensor, Dict[str, Tensor]]:
        loss, terms = out.loss, {"id": out.loss.detach()}
        terms.update({f"id_{k}": v for k, v in out.terms.items() if k != "clean" or len(out.terms) > 1})
        f, y = out.features, out.targets
        if self.triplet is not None:
            t = self.triplet(f.float(), y)
            loss = loss + self.config.triplet_weight * t
            terms["triplet"] = t.detach()
        if self.center is not None:
            c = self.center(f, y)
            loss = loss + self.config.center_weight * c
            terms["center"] = c.detach()
        return loss, terms

    def before_optimizer_step(self) -> None:
        if self.center is not None:
            self.center.rescale_center_grads(self.config.center_weight)
            dist.average_gradients(self.center.parameters())  # the centers live outside DDP

    def train_epoch(self) -> Dict[str, Any]:
        cfg = self.config
        self.step.train()
        self.sampler.set_epoch(self.epoch)
        stats = EpochStats()
        bar = tqdm(self.loader, total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not self.show_bars, dynamic_ncols=True)
        for i, (x, y, _) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.train_step(x, y.to(self.device, non_blocking=True), i, stats)
            if self.show_bars:
                bar.set_postfix(stats.postfix())
        return stats.result(self.device)

    def evaluate(self, final: bool) -> Dict[str, Any]:
        if not (final or self.epoch % self.config.eval_every == 0) or not self.main:
            return {}
        result = evaluate_model(self.model, self.config, self.data, self.device)
        self.last_eval = result
        return {k: result[k] for k in SCALARS}

    def line(self, m: Dict[str, Any]) -> str:
        ev = f" mAP {m['mAP']:.1f} rank-1 {m['rank1']:.1f}" if "mAP" in m else ""
        return f"epoch {m['epoch']}/{self.config.epochs} loss {m['train_loss']:.4f}{ev} ({m['seconds']:.1f}s)"

    def plots(self, history: List[Dict[str, Any]]) -> None:
        out = self.run_dir / "plots"
        from .. import plots as cls_plots

        evals = [m for m in history if "mAP" in m]
        reid_curves(history, out / "learning_curves.png", title=f"{self.config.dataset} · {self.config.method}")
        if any("lam_hist" in m for m in history):
            cls_plots.lambda_distribution(history, out / "lambda_distribution.png")
        if self.last_eval is not None and evals:
            ev = self.last_eval
            plot_cmc(ev["cmc"], out / "cmc.png", title=f"CMC, epoch {evals[-1]['epoch']}")
            plot_ranked_lists(ev["distmat"], self.data.query, self.data.gallery, out / "ranked_lists.png")

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        evals = [m for m in history if "mAP" in m]
        return {"final": {k: evals[-1][k] for k in SCALARS} if evals else None, "backbone": self.config.backbone}


def reid_curves(history: List[Dict[str, Any]], path: Path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    fig, (ax_loss, ax_ev) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [m["epoch"] for m in history]
    for key in [k for k in (history[0] if history else {}) if k == "train_loss" or k.startswith("loss_")]:
        ax_loss.plot(epochs, [m.get(key, np.nan) for m in history], marker=".", label=key.replace("loss_", ""))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss by term")
    ax_loss.legend(fontsize=8)
    evals = [m for m in history if "mAP" in m]
    for key in ("mAP", "rank1"):
        ax_ev.plot([m["epoch"] for m in evals], [m[key] for m in evals], marker="o", label=key)
    ax_ev.set(xlabel="epoch", ylabel="%", title="retrieval (query vs gallery)")
    ax_ev.legend(fontsize=8)
    for ax in (ax_loss, ax_ev):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def train_reid(config: ReIDConfig, run_dir: Optional[Path] = None, stop_after: Optional[int] = None,
               data: Optional[ReIDData] = None) -> Dict[str, Any]:
    return start_run(config, ReIDTrainer, run_dir, stop_after, data=data)


def resume_reid(run_dir: Path, stop_after: Optional[int] = None, data: Optional[ReIDData] = None,
                epochs: Optional[int] = None, device: Optional[str] = None, quiet: bool = False) -> Dict[str, Any]:
    return resume_run(run_dir, reid_config_from_dict, ReIDTrainer, stop_after, epochs=epochs, device=device,
                      quiet=quiet, data=data)


def _load_run_model(run_dir: Path, checkpoint: str, device: torch.device) -> Tuple[ReIDConfig, ReIDData, nn.Module]:
    config = load_run_config(run_dir, reid_config_from_dict)
    ckpt_path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        raise TrainingError(f"{run_dir} has no {checkpoint}.pt checkpoint")
    ckpt = load_checkpoint(ckpt_path, "cpu", required=("model",),
                           alternative="use it with --checkpoint {name}")
    data = read_reid_dataset(config.dataset, config.data_root)
    model = build_reid_model(ReIDConfig(**{**asdict(config), "pretrained": None}), data.num_train_pids)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {ckpt_path} does not fit the run's model "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    return config, data, model.to(device)


def evaluate_reid_run(run_dir: Optional[Path], checkpoint: str = "last", rerank: bool = False, device: str = "auto",
                      features: Optional[Path] = None) -> Dict[str, Any]:
    """mAP / CMC / mINP of a saved run, or of exported features (``features``: a folder holding
    ``query.npz`` and ``gallery.npz``, as :func:`export_reid_features` writes); writes the CMC curve
    and ranked lists to the run's (or the feature folder's) ``plots/``."""
    from ..reid import load_features

    if features is not None:
        features = Path(features)
        if not features.is_dir():
            raise TrainingError(f"feature folder {features} {'is a file' if features.exists() else 'does not exist'}; "
                                "`adamixup reid export RUN_DIR` writes one (query.npz and gallery.npz)")
        try:
            qf, gf = load_features(features / "query.npz"), load_features(features / "gallery.npz")
        except ValueError as err:
            raise TrainingError(" ".join(str(err).split())) from None
        config = ReIDConfig()
        if run_dir is not None and (Path(run_dir) / "config.yaml").is_file():
            config = load_run_config(Path(run_dir), reid_config_from_dict)
        result = evaluate_feature_sets(qf, gf, config.metric, config.feat_norm, rerank)
        plot_dir, query, gallery = features / "plots", qf, gf
    else:
        run_dir = Path(run_dir)
        dev = select_device(device)
        config, data, model = _load_run_model(run_dir, checkpoint, dev)
        result = evaluate_model(model, config, data, dev, rerank=rerank)
        plot_dir, query, gallery = run_dir / "plots", data.query, data.gallery
    tag = "rerank" if rerank else "plain"
    plot_cmc(result["cmc"], plot_dir / f"cmc_{checkpoint}_{tag}.png", title=f"CMC ({'re-ranked' if rerank else 'plain distance'})")
    plot_ranked_lists(result["distmat"], query, gallery, plot_dir / f"ranked_lists_{checkpoint}_{tag}.png")
    return {k: result[k] for k in SCALARS}


def export_reid_features(run_dir: Path, out: Optional[Path] = None, checkpoint: str = "last", device: str = "auto") -> Path:
    """Query and gallery features of a saved run (after the BNNeck) to ``query.npz`` and
    ``gallery.npz`` (features, pids, camids, paths) in ``out`` (default ``RUN_DIR/features``)."""
    dev = select_device(device)
    config, data, model = _load_run_model(Path(run_dir), checkpoint, dev)
    q_loader, g_loader = test_loaders(config, data)
    out = Path(out or Path(run_dir) / "features")
    for name, loader in (("query", q_loader), ("gallery", g_loader)):
        fs = extract_features(model, loader, dev)
        export_features(out / f"{name}.npz", fs.features, fs.pids, fs.camids, fs.paths)
    return out


__all__ = ["ReIDConfig", "ReIDTrainer", "build_reid_config", "train_reid", "resume_reid", "evaluate_reid_run",
           "export_reid_features", "list_reid_recipes"]
