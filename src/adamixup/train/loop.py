"""Classification training: ``train(config)`` makes a run directory and fills it.

The whole step, on one screen (the rest lives in :mod:`adamixup.train.base`)::

    x, y = augment(train_x[idx]), train_y[idx]          # batched, on the training device
    out = step(x, y)                                     # = mixer(model, x, y)
    out.loss.backward(); optimizer.step(); scheduler.step()

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per epoch),
``checkpoints/last.pt`` and ``best.pt``, ``plots/`` and ``summary.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import plots
from ..data import BatchAugment, Dataset, load_dataset
from ..mixing import MIXERS, AdaMixUp
from ..models import ModelError, build_model
from .base import BaseTrainer, EpochStats, TrainingError, autocast, resume_run, start_run
from .config import ConfigError, TrainConfig, config_from_dict
from .schedule import build_scheduler


def build_mixer(config, model: nn.Module, in_channels: int) -> nn.Module:
    cls = MIXERS[config.method]
    if cls is AdaMixUp:
        return cls(model, in_channels=in_channels, **config.mixer_kwargs())
    return cls(**config.mixer_kwargs())


def build_classifier(config: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The config's model; a model argument it refuses is a :class:`ConfigError` naming it."""
    try:
        return build_model(config.model, in_channels=in_channels, num_classes=num_classes, **config.model_args)
    except ModelError as err:
        raise ConfigError(f"config key 'model': {' '.join(str(err).split())}") from None
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. model_args.width=-1
        given = ", ".join(f"{k}={v!r}" for k, v in config.model_args.items()) or "no model_args"
        raise ConfigError(f"config key 'model_args' ({given}): {config.model} cannot be built with it: "
                          f"{' '.join(str(err).split())[:200]}") from None


def mix_sources(lam: Tensor, partners: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    """The class ids of each mix's inputs in input order, and their weights, ``(M, k)`` each.

    lam: ``(k-1) * M`` ratios, step-major; partners: ``(k-1, M)`` batch indices; mix ``i`` starts
    from ``x[i]`` and step ``j`` forms ``lam_j * running + (1 - lam_j) * x[partners[j, i]]``.
    """
    steps, m = partners.shape
    lam = lam.reshape(steps, m).float()
    ids, weights = [y[:m]], [torch.ones(m)]
    for j in range(steps):
        weights = [w * lam[j] for w in weights] + [1 - lam[j]]
        ids.append(y[partners[j]])
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, augment: BatchAugment, batch_size: int, device: torch.device,
            precision: str = "fp32") -> Tensor:
    """Predicted class ids of uint8 images ``x`` (eval mode, no augmentation)."""
    was_training = model.training
    model.eval()
    preds = []
    for i in range(0, x.shape[0], batch_size):
        xb = augment.normalize(x[i : i + batch_size].to(device, non_blocking=True))
        with autocast(device, precision):
            preds.append(model(xb).argmax(1))
    model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=device)


def error_rate(pred: Tensor, y: Tensor) -> float:
    return 100.0 * (pred.cpu() != y.cpu()).float().mean().item()


def per_class_error(pred: Tensor, y: Tensor, num_classes: int) -> List[float]:
    pred, y = pred.cpu(), y.cpu()
    return [100.0 * (pred[y == c] != c).float().mean().item() if (y == c).any() else float("nan") for c in range(num_classes)]


class ClassificationTrainer(BaseTrainer):
    """Image classification on a :class:`Dataset` of uint8 tensors that lives on the device."""

    score_key = "test_error"
    higher_is_better = False

    def __init__(self, config: TrainConfig, run_dir: Path, data: Optional[Dataset] = None):
        super().__init__(config, run_dir)
        self.data = d = data if data is not None else load_dataset(
            config.dataset, config.data_root, train_fraction=config.train_fraction, seed=config.seed,
            fold=config.fold, num_folds=config.num_folds)
        # the whole uint8 training set lives on the training device: no host-to-device copy per step
        self.train_x, self.train_y = d.train_x.to(self.device), d.train_y.to(self.device)
        self.augment = BatchAugment(d.mean, d.std, pad=d.pad if config.augment else 0,
                                    flip=d.flip and config.augment).to(self.device)
        model = build_classifier(config, d.in_channels, d.num_classes)
        self.finish_setup(model, build_mixer(config, model, d.in_channels))
        per_rank = config.batch_size // self.world
        if per_rank < getattr(self.mixer, "min_batch", 2 if config.method == "mixup" else 1):
            raise TrainingError(f"batch_size {config.batch_size} over {self.world} processes leaves {per_rank} "
                                f"samples per process, too few for {type(self.mixer).__name__}")
        self.per_rank_batch = per_rank
        self.steps_per_epoch = len(d.train_y) // (per_rank * self.world)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training set has {len(d.train_y)} samples, fewer than one batch of "
                                f"{per_rank * self.world}; lower batch_size")
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, config)
        g = torch.Generator().manual_seed(12345)  # a fixed subset, the same for every method and seed
        k = min(config.train_eval_samples, len(d.train_y))
        self.train_eval_idx = torch.randperm(len(d.train_y), generator=g)[:k]
        self.last_mixes = None  # (mixes, their inputs' class ids, their weights) of the last batch's first mixes

    def batches(self, perm: Tensor):
        """This rank's index batches of an epoch. Every rank draws the same permutation (same
        generator state); rank r takes batch slots r, r + world, ...: disjoint shards, and the
        tail that does not fill a batch on every rank is left for another epoch."""
        b = self.per_rank_batch
        for i in range(self.steps_per_epoch):
            lo = (i * self.world + self.rank) * b
            yield perm[lo : lo + b].to(self.device, non_blocking=True)

    def train_epoch(self) -> Dict[str, Any]:
        cfg = self.config
        self.step.train()
        perm = torch.randperm(len(self.train_y), generator=self.data_generator)
        stats = EpochStats()
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not self.show_bars, dynamic_ncols=True)
        for i, idx in zip(bar, self.batches(perm)):
            x = self.augment(self.train_x[idx], generator=self.data_generator)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.train_y[idx]
            out = self.train_step(x, y, i, stats)
            if self.show_bars:
                bar.set_postfix(stats.postfix())
        if out.mixed is not None and out.partners is not None and out.lam.numel() == out.partners.numel():  # a few mixes of the epoch's last batch, for the picture
            ids, weights = mix_sources(out.lam.detach().cpu(), out.partners.cpu(), y.cpu())
            m = min(16, out.mixed.shape[0])
            self.last_mixes = (out.mixed[:m].float().cpu(), ids[:m], weights[:m])
        return stats.result(self.device)

    def evaluate(self, final: bool) -> Dict[str, float]:
        cfg, d = self.config, self.data
        test_pred = predict(self.model, d.test_x, self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        idx = self.train_eval_idx
        train_pred = predict(self.model, d.train_x[idx], self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        return {"test_error": error_rate(test_pred, d.test_y), "train_error": error_rate(train_pred, d.train_y[idx])}

    def line(self, m: Dict[str, Any]) -> str:
        lam = f" λ {m['lam_mean']:.2f}±{m['lam_std']:.2f}" if "lam_mean" in m else ""
        return (f"epoch {m['epoch']}/{self.config.epochs} loss {m['train_loss']:.4f} train err {m['train_error']:.2f}% "
                f"test err {m['test_error']:.2f}%{lam} ({m['seconds']:.1f}s)")

    def plots(self, history: List[Dict[str, Any]]) -> None:
        out = self.run_dir / "plots"
        plots.learning_curves(history, out / "learning_curves.png", title=f"{self.config.dataset} · {self.config.method}")
        if any("lam_hist" in m for m in history):
            plots.lambda_distribution(history, out / "lambda_distribution.png")
        if self.last_mixes is not None:
            mixed, ids, weights = self.last_mixes
            plots.mixed_grid(mixed, ids, weights, self.data.classes, self.data.mean, self.data.std,
                             out / "mixed_samples.png")

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {"model": self.config.model, "final_test_error": history[-1]["test_error"] if history else None}


def train(config: TrainConfig, run_dir: Optional[Path] = None, stop_after: Optional[int] = None,
          data: Optional[Dataset] = None) -> Dict[str, Any]:
    """Train a new run; returns its summary. ``stop_after`` ends it early after that epoch (resumable)."""
    return start_run(config, ClassificationTrainer, run_dir, stop_after, data=data)


def resume(run_dir: Path, stop_after: Optional[int] = None, data: Optional[Dataset] = None,
           epochs: Optional[int] = None, device: Optional[str] = None, quiet: bool = False) -> Dict[str, Any]:
    """Continue a run from ``checkpoints/last.pt`` (a run killed mid-epoch restarts that epoch);
    ``epochs`` extends it (see :func:`adamixup.train.base.resume_run`)."""
    return resume_run(run_dir, config_from_dict, ClassificationTrainer, stop_after, epochs=epochs, device=device,
                      quiet=quiet, data=data)
