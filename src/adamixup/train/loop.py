"""One training loop for every mixer: ``train(config)`` makes a run directory and fills it.

The whole step, on one screen::

    x, y = augment(train_x[idx]), train_y[idx]          # batched, on the training device
    out = step(x, y)                                     # = mixer(model, x, y)
    out.loss.backward(); optimizer.step(); scheduler.step()

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per epoch),
``checkpoints/last.pt`` and ``best.pt``, ``plots/`` and ``summary.json``.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import plots
from ..data import BatchAugment, Dataset, load_dataset
from ..mixing import MIXERS, AdaMixUp, MixOutput
from ..models import build_model
from . import distributed as dist
from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from .config import TrainConfig, config_from_dict
from .schedule import build_scheduler

LAM_BINS = 20


class TrainingError(RuntimeError):
    """A run that cannot go on (non-finite loss, nothing to resume); the message says what to do."""


class TrainStep(nn.Module):
    """The model and its mixer as one module, so that DistributedDataParallel can wrap both."""

    def __init__(self, model: nn.Module, mixer: nn.Module):
        super().__init__()
        self.model, self.mixer = model, mixer

    def forward(self, x: Tensor, y: Tensor) -> MixOutput:
        return self.mixer(self.model, x, y)


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank() if dist.is_distributed() else 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def build_mixer(config: TrainConfig, model: nn.Module, in_channels: int) -> nn.Module:
    cls = MIXERS[config.method]
    if cls is AdaMixUp:
        return cls(model, in_channels=in_channels, **config.mixer_args)
    return cls(**config.mixer_args)


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


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


def new_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}-{stamp}"


class Trainer:
    """Holds one run's state; ``fit()`` trains from the current epoch to the end."""

    def __init__(self, config: TrainConfig, run_dir: Path, data: Optional[Dataset] = None):
        self.config, self.run_dir = config, run_dir
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self.device = select_device(config.device)
        torch.manual_seed(config.seed)
        self.data = data if data is not None else load_dataset(
            config.dataset, config.data_root, train_fraction=config.train_fraction, seed=config.seed,
            fold=config.fold, num_folds=config.num_folds)
        d = self.data
        # the whole uint8 training set lives on the training device: no host-to-device copy per step
        self.train_x, self.train_y = d.train_x.to(self.device), d.train_y.to(self.device)
        self.augment = BatchAugment(d.mean, d.std, pad=d.pad if config.augment else 0,
                                    flip=d.flip and config.augment).to(self.device)
        self.model = build_model(config.model, in_channels=d.in_channels, num_classes=d.num_classes,
                                 **config.model_args).to(self.device)
        self.mixer = build_mixer(config, self.model, d.in_channels).to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.mixer.to(memory_format=torch.channels_last)
        if config.compile:  # the backbone is the hot path; state_dict keys stay those of the plain module
            self.model.forward_features = torch.compile(self.model.forward_features)
        step = TrainStep(self.model, self.mixer)
        self.step = dist.wrap(step, self.device)
        self.optimizer = build_optimizer(config, list(self.model.parameters()) + list(self.mixer.parameters()))
        per_rank = config.batch_size // self.world if self.world > 1 else config.batch_size
        if per_rank < getattr(self.mixer, "min_batch", 2 if config.method == "mixup" else 1):
            raise TrainingError(f"batch_size {config.batch_size} over {self.world} processes leaves {per_rank} "
                                f"samples per process, too few for {type(self.mixer).__name__}")
        self.per_rank_batch = per_rank
        self.steps_per_epoch = len(d.train_y) // (per_rank * self.world)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training set has {len(d.train_y)} samples, fewer than one batch of "
                                f"{per_rank * self.world}; lower batch_size")
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.data_generator = torch.Generator().manual_seed(config.seed)
        g = torch.Generator().manual_seed(12345)  # a fixed subset, the same for every method and seed
        k = min(config.train_eval_samples, len(d.train_y))
        self.train_eval_idx = torch.randperm(len(d.train_y), generator=g)[:k]
        self.epoch, self.best_error, self.best_epoch = 0, math.inf, 0
        self.last_mixes = None  # (inputs, λ, soft targets) of the last batch's first mixes
        self.writer = None

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "mixer": self.mixer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_error": self.best_error,
            "best_epoch": self.best_epoch,
            "rng": rng_state(self.data_generator),
            "config": self.config.to_dict(),
        }

    def load_state(self, ckpt: Dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.mixer.load_state_dict(ckpt["mixer"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best_error, self.best_epoch = ckpt["epoch"], ckpt["best_error"], ckpt["best_epoch"]
        set_rng_state(ckpt["rng"], self.data_generator)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # ---- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> Dict[str, Any]:
        cfg, b = self.config, self.per_rank_batch
        self.step.train()
        perm = torch.randperm(len(self.train_y), generator=self.data_generator)
        sums: Dict[str, float] = {}
        lams: List[Tensor] = []
        start = time.perf_counter()
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=cfg.quiet or not self.main, dynamic_ncols=True)
        for i, idx in zip(bar, self.batches(perm)):
            x = self.augment(self.train_x[idx], generator=self.data_generator)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.train_y[idx]
            with autocast(self.device, cfg.precision):
                out = self.step(x, y)
            values = torch.stack([out.loss.detach().float(), *[v.float() for v in out.terms.values()],
                                  *[v.float() for v in out.stats.values()]]).tolist()
            if not all(math.isfinite(v) for v in values):
                raise TrainingError(
                    f"the loss became non-finite at epoch {self.epoch + 1}, step {i + 1} "
                    f"({', '.join(f'{k}={v:.4g}' for k, v in zip(['loss', *out.terms, *out.stats], values))}); "
                    f"{self._checkpoint_note()} (lower the learning rate, or train in fp32)")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out.loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            for key, v in zip(["loss", *out.terms, *out.stats], values):
                sums[key] = sums.get(key, 0.0) + v
            if out.lam.numel():
                lams.append(out.lam.detach().float().cpu())
            if not cfg.quiet and self.main:
                postfix = {"loss": f"{values[0]:.3f}"}
                if lams:
                    postfix["λ"] = f"{lams[-1].mean().item():.2f}"
                bar.set_postfix(postfix)
        if out.mixed is not None:  # a few mixes of the epoch's last batch, for the picture
            m = min(16, out.mixed.shape[0])
            self.last_mixes = (out.mixed[:m].float().cpu(), out.lam[:m].float().cpu(), out.mixed_targets[:m].cpu())
        n = self.steps_per_epoch
        metrics = {("train_loss" if k == "loss" else f"loss_{k}" if k in out.terms else k): v / n
                   for k, v in sums.items()}
        lam = torch.cat(lams) if lams else torch.empty(0)
        lam = dist.gather_cat(lam, self.device)
        metrics = dist.mean_dict(metrics, self.device)
        if lam.numel():
            metrics["lam_mean"], metrics["lam_std"] = lam.mean().item(), lam.std().item() if lam.numel() > 1 else 0.0
            metrics["lam_hist"] = np.histogram(lam.numpy(), bins=LAM_BINS, range=(0.0, 1.0))[0].tolist()
        metrics["seconds"] = dist.max_value(time.perf_counter() - start, self.device)
        return metrics

    def batches(self, perm: Tensor):
        """This rank's index batches of an epoch. Every rank draws the same permutation (same
        generator state); rank r takes batch slots r, r + world, ...: disjoint shards, and the
        tail that does not fill a batch on every rank is left for another epoch."""
        b = self.per_rank_batch
        for i in range(self.steps_per_epoch):
            lo = (i * self.world + self.rank) * b
            yield perm[lo : lo + b].to(self.device, non_blocking=True)

    def _checkpoint_note(self) -> str:
        last = self.ckpt_dir / "last.pt"
        if last.is_file():
            return f"the last good checkpoint is {last}, of epoch {self.epoch}"
        return "no checkpoint was written yet (the run failed in its first epoch)"

    def evaluate(self) -> Dict[str, float]:
        cfg, d = self.config, self.data
        test_pred = predict(self.model, d.test_x, self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        idx = self.train_eval_idx
        train_pred = predict(self.model, d.train_x[idx], self.augment, cfg.eval_batch_size, self.device, cfg.precision)
        return {"test_error": error_rate(test_pred, d.test_y), "train_error": error_rate(train_pred, d.train_y[idx])}

    # ---- the run -----------------------------------------------------------------------------
    def fit(self, stop_after: Optional[int] = None) -> Dict[str, Any]:
        cfg = self.config
        if self.main:
            self._open_writer()
        epoch_bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training", disable=cfg.quiet or not self.main,
                         dynamic_ncols=True)
        while self.epoch < cfg.epochs:
            metrics = self.train_epoch()
            metrics.update(self.evaluate())
            self.epoch += 1
            metrics = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], **metrics}
            if self.main:
                self._log(metrics)
                best = metrics["test_error"] < self.best_error
                if best:
                    self.best_error, self.best_epoch = metrics["test_error"], self.epoch
                state = self.state()
                save_atomic(state, self.ckpt_dir / "last.pt")
                if best:
                    save_atomic(state, self.ckpt_dir / "best.pt")
            epoch_bar.update(1)
            epoch_bar.set_postfix(test_err=f"{metrics['test_error']:.2f}%", lam=f"{metrics.get('lam_mean', float('nan')):.2f}")
            if cfg.quiet and self.main:
                print(self._line(metrics), flush=True)
            if stop_after is not None and self.epoch >= stop_after:
                break
        epoch_bar.close()
        if self.writer is not None:
            self.writer.close()
        if not self.main:
            return {}
        history = read_metrics(self.run_dir)
        self._plots(history)
        summary = {
            "run_dir": str(self.run_dir),
            "dataset": cfg.dataset, "method": cfg.method, "model": cfg.model, "seed": cfg.seed,
            "epochs_done": self.epoch, "epochs": cfg.epochs, "finished": self.epoch >= cfg.epochs,
            "final_test_error": history[-1]["test_error"] if history else None,
            "best_test_error": self.best_error, "best_epoch": self.best_epoch,
            "train_seconds": sum(m["seconds"] for m in history),
            "epoch_seconds_mean": float(np.mean([m["seconds"] for m in history])) if history else None,
            "device": str(self.device), "world_size": self.world,
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _line(self, m: Dict[str, Any]) -> str:
        lam = f" λ {m['lam_mean']:.2f}±{m['lam_std']:.2f}" if "lam_mean" in m else ""
        return (f"epoch {m['epoch']}/{self.config.epochs} loss {m['train_loss']:.4f} train err {m['train_error']:.2f}% "
                f"test err {m['test_error']:.2f}%{lam} ({m['seconds']:.1f}s)")

    def _log(self, metrics: Dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.writer.add_scalar(k, v, metrics["epoch"])

    def _open_writer(self) -> None:
        if not self.config.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainingError("tensorboard: true needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _plots(self, history: List[Dict[str, Any]]) -> None:
        out = self.run_dir / "plots"
        plots.learning_curves(history, out / "learning_curves.png", title=f"{self.config.dataset} · {self.config.method}")
        if any("lam_hist" in m for m in history):
            plots.lambda_distribution(history, out / "lambda_distribution.png")
        if self.last_mixes is not None:
            mixed, lam, targets = self.last_mixes
            plots.mixed_grid(mixed, lam, targets, self.data.classes, self.data.mean, self.data.std,
                             out / "mixed_samples.png")


def read_metrics(run_dir: Path) -> List[Dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_metrics(run_dir: Path, epoch: int) -> None:
    """Drop epochs logged after the checkpoint (a run killed between its log line and its checkpoint)."""
    kept = [m for m in read_metrics(run_dir) if m["epoch"] <= epoch]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in kept))


def train(config: TrainConfig, run_dir: Optional[Path] = None, stop_after: Optional[int] = None,
          data: Optional[Dataset] = None) -> Dict[str, Any]:
    """Train a new run; returns its summary. ``stop_after`` ends it early after that epoch (resumable)."""
    config.validate()
    dist.setup()
    run_dir = Path(run_dir or config.run_dir or new_run_dir(config))
    run_dir = dist.broadcast_path(run_dir)
    if dist.rank() == 0:
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise TrainingError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        config.run_dir = str(run_dir)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        (run_dir / "metrics.jsonl").write_text("")
    config.run_dir = str(run_dir)
    trainer = Trainer(config, run_dir, data)
    return trainer.fit(stop_after)


def resume(run_dir: Path, stop_after: Optional[int] = None, data: Optional[Dataset] = None) -> Dict[str, Any]:
    """Continue an interrupted run from ``checkpoints/last.pt`` (a run killed mid-epoch restarts that epoch)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise TrainingError(f"{run_dir} is not a run directory (no config.yaml)")
    config = config_from_dict(yaml.safe_load(cfg_path.read_text()), str(cfg_path))
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if not ckpt_path.is_file():
        raise TrainingError(f"{run_dir} has no checkpoint yet (it stopped during its first epoch); start it anew")
    dist.setup()
    trainer = Trainer(config, run_dir, data)
    ckpt = load_checkpoint(ckpt_path, map_location=trainer.device)
    trainer.load_state(ckpt)
    if trainer.main:
        _truncate_metrics(run_dir, trainer.epoch)
    return trainer.fit(stop_after)
