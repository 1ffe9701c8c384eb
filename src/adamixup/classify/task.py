"""Image classification, the task: ``train(config)`` makes a run folder and fills it; ``resume``,
``evaluate`` and ``load`` read one back (the same verbs as :mod:`adamixup.reid`).

The whole step, top to bottom (the engine, :mod:`adamixup.train.engine`, runs it for every batch)::

    x, y = augment(train_x[idx]), train_y[idx]          # batched, on the training device
    out = mixer(model, x, y)                             # ERM, MixUp, AdaMixUp, a control: the whole loss
    out.loss.backward(); optimizer.step(); scheduler.step()
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..data import BatchAugment, Dataset, load_dataset
from ..mixing import build_mixer, get_method
from ..models import ModelError, build_model
from ..plots import lambda_distribution
from ..train.config import ConfigError
from ..train.engine import (StepOutput, Task, Trained, TrainingError, autocast, build_optimizer, resume_run, select_device,
                            start_run, trainable)
from ..train.rundir import RunDir
from . import plots
from .config import ClassificationConfig, config_from_dict


def build_classifier(config: ClassificationConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The config's model; a model argument it refuses is a :class:`ConfigError` naming it."""
    try:
        return build_model(config.model, in_channels=in_channels, num_classes=num_classes, **config.model_args)
    except ModelError as err:
        raise ConfigError(f"config key 'model': {' '.join(str(err).split())}") from None
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. model_args.width=-1
        given = ", ".join(f"{k}={v!r}" for k, v in config.model_args.items()) or "no model_args"
        raise ConfigError(f"config key 'model_args' ({given}): {config.model} cannot be built with it: "
                          f"{' '.join(str(err).split())[:200]}") from None


def load_data(config: ClassificationConfig) -> Dataset:
    return load_dataset(config.dataset, config.data_root, train_fraction=config.train_fraction, seed=config.seed,
                        fold=config.fold, num_folds=config.num_folds, validation_fraction=config.validation_fraction)


def eval_key(data: Dataset) -> str:
    """The metric a run reports on its evaluation split: ``test_error``, or ``val_error`` when a
    validation split is held out (the test split is then never scored)."""
    return "val_error" if data.eval_split == "validation" else "test_error"


class ClassificationObjective(nn.Module):
    """The classification step's whole loss: the mixer's."""

    def __init__(self, model: nn.Module, mixer: nn.Module):
        super().__init__()
        self.model, self.mixer = model, mixer

    def forward(self, x: Tensor, y: Tensor) -> StepOutput:
        out = self.mixer(self.model, x, y)
        return StepOutput(out.loss, dict(out.terms), out.lam, out.stats, out)


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


class ClassificationTask(Task):
    """Image classification on a :class:`Dataset` of uint8 tensors that lives on the device."""

    score_key = "test_error"
    higher_is_better = False

    def __init__(self, config: ClassificationConfig, device: torch.device, rank: int, world: int, data: Optional[Dataset] = None):
        self.config, self.device, self.rank, self.world = config, device, rank, world
        self.data = d = data if data is not None else load_data(config)
        self.score_key = eval_key(d)
        # the whole uint8 training set lives on the training device: no host-to-device copy per step
        self.train_x, self.train_y = d.train_x.to(device), d.train_y.to(device)
        self.augment = BatchAugment(d.mean, d.std, pad=d.pad if config.augment else 0,
                                    flip=d.flip and config.augment).to(device)
        self.model = build_classifier(config, d.in_channels, d.num_classes).to(device)
        self.mixer = build_mixer(config.method, self.model, **config.mixer_args).to(device)
        self.objective = ClassificationObjective(self.model, self.mixer)
        per_rank = config.batch_size // world
        if per_rank < get_method(config.method).min_batch:
            raise TrainingError(f"batch_size {config.batch_size} over {world} processes leaves {per_rank} "
                                f"samples per process, too few for {type(self.mixer).__name__}")
        self.per_rank_batch = per_rank
        self.steps_per_epoch = len(d.train_y) // (per_rank * world)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training set has {len(d.train_y)} samples, fewer than one batch of "
                                f"{per_rank * world}; lower batch_size")
        g = torch.Generator().manual_seed(12345)  # a fixed subset, the same for every method and seed
        k = min(config.train_eval_samples, len(d.train_y))
        self.train_eval_idx = torch.randperm(len(d.train_y), generator=g)[:k]

    def modules(self) -> Dict[str, nn.Module]:
        return {"model": self.model, "mixer": self.mixer}

    def optimizers(self) -> List[torch.optim.Optimizer]:
        return [build_optimizer(self.config, trainable(self.model, self.mixer))]

    def shard(self, generator: torch.Generator) -> Iterator[Tensor]:
        """The sample indices of this rank's batches in an epoch. Every rank draws the same
        permutation (same generator state); rank r takes batch slots r, r + world, ...: disjoint
        shards, and the tail that does not fill a batch on every rank is left for another epoch."""
        perm = torch.randperm(len(self.train_y), generator=generator)
        b = self.per_rank_batch
        for i in range(self.steps_per_epoch):
            lo = (i * self.world + self.rank) * b
            yield perm[lo : lo + b].to(self.device, non_blocking=True)

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Tuple[Tensor, Tensor]]:
        """This rank's batches of an epoch (the indices of `shard`, augmented)."""
        for idx in self.shard(generator):
            yield self.augment(self.train_x[idx], generator=generator), self.train_y[idx]

    def evaluate(self, epoch: int, final: bool) -> Dict[str, float]:
        cfg, d = self.config, self.data
        test_pred = predict(self.model, d.test_x, self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        idx = self.train_eval_idx
        train_pred = predict(self.model, d.train_x[idx], self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        return {self.score_key: error_rate(test_pred, d.test_y), "train_error": error_rate(train_pred, d.train_y[idx])}

    def line(self, m: Dict[str, Any], epochs: int) -> str:
        lam = f" λ {m['lam_mean']:.2f}±{m['lam_std']:.2f}" if "lam_mean" in m else ""
        split = "val" if self.score_key == "val_error" else "test"
        errors = (f" train err {m['train_error']:.2f}% {split} err {m[self.score_key]:.2f}%"
                  if self.score_key in m else "")
        return f"epoch {m['epoch']}/{epochs} loss {m['train_loss']:.4f}{errors}{lam} ({m['seconds']:.1f}s)"

    def plots(self, run: RunDir, history: List[Dict[str, Any]], last: Optional[StepOutput]) -> None:
        title = f"{self.config.dataset} · {self.config.method}"
        plots.learning_curves(history, run.plots / "learning_curves.png", title=title)
        if any("lam_hist" in m for m in history):
            lambda_distribution(history, run.plots / "lambda_distribution.png")
        out = last.mix if last is not None else None
        if out is not None and out.mixed is not None and out.partners is not None and out.lam.numel() == out.partners.numel():
            # a few mixes of the last batch, labelled with their inputs' classes in input order
            ids, weights = mix_sources(out.lam.detach().cpu(), out.partners.cpu(), out.targets.cpu())
            m = min(16, out.mixed.shape[0])
            plots.mixed_grid(out.mixed[:m].float().cpu(), ids[:m], weights[:m], self.data.classes, self.data.mean,
                             self.data.std, run.plots / "mixed_samples.png")

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {"model": self.config.model, "eval_split": self.data.eval_split,
                f"final_{self.score_key}": history[-1].get(self.score_key) if history else None}


def train(config: ClassificationConfig, run_dir: Optional[Path] = None, stop_after: Optional[int] = None,
          data: Optional[Dataset] = None) -> Dict[str, Any]:
    """Train a new run; returns its summary. ``stop_after`` ends it early after that epoch (resumable)."""
    return start_run(config, ClassificationTask, run_dir, stop_after, data=data)


def resume(run_dir: Path, stop_after: Optional[int] = None, data: Optional[Dataset] = None,
           epochs: Optional[int] = None, device: Optional[str] = None, quiet: bool = False) -> Dict[str, Any]:
    """Continue a run from its last checkpoint (a run killed mid-epoch restarts that epoch);
    ``epochs`` extends it (see :func:`adamixup.train.engine.resume_run`)."""
    return resume_run(run_dir, config_from_dict, ClassificationTask, stop_after, epochs=epochs, device=device,
                      quiet=quiet, data=data)


def load(run_dir: Path, checkpoint: str = "last", device: str = "auto", with_mixer: bool = False) -> Trained:
    """A trained run, rebuilt: :class:`~adamixup.train.engine.Trained` ``(config, data, model in eval
    mode, mixer or None, checkpoint)``; the mixer (π and φ) with ``with_mixer``. The one way to get a
    trained classifier back from its run folder."""
    run = RunDir(run_dir)
    config = run.read_config(config_from_dict)
    dev = select_device(device)
    data = load_data(config)
    model = build_classifier(config, data.in_channels, data.num_classes)
    ckpt = run.load_weights(model, checkpoint, alternative="evaluate it with --checkpoint {name}")
    mixer = None
    if with_mixer and "mixer" in ckpt:
        mixer = build_mixer(config.method, model, **config.mixer_args)
        mixer.load_state_dict(ckpt["mixer"])
        mixer.to(dev).eval()
    return Trained(config, data, model.to(dev).eval(), mixer, ckpt)


def evaluate(run_dir: Path, checkpoint: str = "last", device: str = "auto") -> Dict[str, Any]:
    """Error and per-class errors of a saved run on its evaluation split (test, or validation)."""
    config, data, model, _, ckpt = load(run_dir, checkpoint, device)
    dev = next(model.parameters()).device
    augment = BatchAugment(data.mean, data.std).to(dev)
    pred = predict(model, data.test_x, augment, config.eval_batch_size, dev)
    return {
        "run_dir": str(run_dir), "checkpoint": checkpoint, "epoch": ckpt["epoch"], "dataset": config.dataset,
        "eval_split": data.eval_split, "samples": len(data.test_y), eval_key(data): error_rate(pred, data.test_y),
        "per_class_error": dict(zip(data.classes, per_class_error(pred, data.test_y, data.num_classes))),
    }
