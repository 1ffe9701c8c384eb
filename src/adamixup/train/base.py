"""What every trainer shares: the step, epoch statistics, checkpoints, logging, the epoch loop, runs.

A task (classification, re-ID) subclasses :class:`BaseTrainer` and provides its data, model, epoch
iteration, evaluation, plots and summary. One step, for every mixer and task::

    with autocast: out = step(x, y); loss, terms = total_loss(out)
    loss.backward(); optimizer.step(); scheduler.step()
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..mixing import MixOutput
from . import distributed as dist
from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state

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


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def build_optimizer(config, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


class EpochStats:
    """Running sums of an epoch's loss terms and the λ values used, reduced over ranks at the end."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.steps = 0
        self.lams: List[Tensor] = []
        self.start = time.perf_counter()

    def postfix(self) -> Dict[str, str]:
        """Progress-bar text: the epoch's running mean loss and the last step's mean λ (no device sync)."""
        text = {"loss": f"{self.sums.get('train_loss', float('nan')) / max(self.steps, 1):.3f}"}
        if self.lams:
            text["λ"] = f"{self.lams[-1].mean().item():.2f}"
        return text

    def add(self, values: Dict[str, float], lam: Tensor) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        if lam.numel():
            self.lams.append(lam.detach().float().cpu())

    def result(self, device: torch.device) -> Dict[str, Any]:
        metrics = dist.mean_dict({k: v / max(self.steps, 1) for k, v in self.sums.items()}, device)
        lam = dist.gather_cat(torch.cat(self.lams) if self.lams else torch.empty(0))
        if lam.numel():
            metrics["lam_mean"], metrics["lam_std"] = lam.mean().item(), lam.std().item() if lam.numel() > 1 else 0.0
            metrics["lam_hist"] = np.histogram(lam.numpy(), bins=LAM_BINS, range=(0.0, 1.0))[0].tolist()
        metrics["seconds"] = dist.max_value(time.perf_counter() - self.start, device)
        return metrics


class BaseTrainer:
    """One run's state; ``fit()`` trains from the current epoch to the end.

    A subclass sets, in ``__init__`` after calling ``super().__init__``: ``model``, ``mixer``,
    ``optimizer``, ``scheduler`` (stepped per batch), ``steps_per_epoch``; and implements
    ``train_epoch``, ``evaluate``, ``plots`` and ``summary``. ``score_key`` names the metric that
    picks ``best.pt`` (``higher_is_better`` says which way).
    """

    score_key = "test_error"
    higher_is_better = False

    def __init__(self, config, run_dir: Path):
        self.config, self.run_dir = config, Path(run_dir)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self.device = select_device(config.device)
        torch.manual_seed(config.seed)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.epoch, self.best_score, self.best_epoch = 0, None, 0
        self.extra_optimizers: List[torch.optim.Optimizer] = []
        self.writer = None

    # ---- model set-up shared by the tasks -------------------------------------------------------
    def finish_setup(self, model: nn.Module, mixer: nn.Module, extra_params: Tuple[nn.Parameter, ...] = ()) -> None:
        """Move to the device, apply channels-last / compile, wrap for DDP, build the optimizer."""
        cfg = self.config
        self.model, self.mixer = model.to(self.device), mixer.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.mixer.to(memory_format=torch.channels_last)
        if cfg.compile:  # the backbone is the hot path; state_dict keys stay those of the plain module
            self.model.forward_features = torch.compile(self.model.forward_features)
        self.step = dist.wrap(TrainStep(self.model, self.mixer), self.device)
        params = [p for p in (*self.model.parameters(), *self.mixer.parameters(), *extra_params) if p.requires_grad]
        self.optimizer = build_optimizer(cfg, params)

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "mixer": self.mixer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "extra_optimizers": [o.state_dict() for o in self.extra_optimizers],
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "rng": rng_state(self.data_generator),
            "config": asdict(self.config),
        }

    def load_state(self, ckpt: Dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.mixer.load_state_dict(ckpt["mixer"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for opt, s in zip(self.extra_optimizers, ckpt["extra_optimizers"]):
            opt.load_state_dict(s)
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best_score, self.best_epoch = ckpt["epoch"], ckpt["best_score"], ckpt["best_epoch"]
        set_rng_state(ckpt["rng"], self.data_generator)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _checkpoint_note(self) -> str:
        last = self.ckpt_dir / "last.pt"
        if last.is_file():
            return f"the last good checkpoint is {last}, of epoch {self.epoch}"
        return "no checkpoint was written yet (the run failed in its first epoch)"

    # ---- one step ----------------------------------------------------------------------------
    def total_loss(self, out: MixOutput) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The loss to minimize and the terms to log; a task may add its own (re-ID: triplet, center)."""
        return out.loss, dict(out.terms)

    def before_optimizer_step(self) -> None:
        """Hook between backward and the optimizer steps (re-ID: rescale the center-loss gradients)."""

    def train_step(self, x: Tensor, y: Tensor, step_index: int, stats: EpochStats) -> MixOutput:
        cfg = self.config
        with autocast(self.device, cfg.precision):
            out = self.step(x, y)
            loss, terms = self.total_loss(out)
        keys = ["loss", *(f"loss_{k}" for k in terms), *out.stats]
        values = torch.stack([loss.detach().float(), *[v.float() for v in terms.values()],
                              *[v.float() for v in out.stats.values()]]).tolist()
        if not all(math.isfinite(v) for v in values):
            raise TrainingError(
                f"the loss became non-finite at epoch {self.epoch + 1}, step {step_index + 1} "
                f"({', '.join(f'{k}={v:.4g}' for k, v in zip(keys, values))}); "
                f"{self._checkpoint_note()} (lower the learning rate, or train in fp32)")
        for opt in (self.optimizer, *self.extra_optimizers):
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.before_optimizer_step()
        for opt in (self.optimizer, *self.extra_optimizers):
            self.scaler.step(opt)
        self.scaler.update()
        self.scheduler.step()
        stats.add(dict(zip(["train_loss", *keys[1:]], values)), out.lam)
        return out

    # ---- the run -----------------------------------------------------------------------------
    def train_epoch(self) -> Dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, final: bool) -> Dict[str, Any]:
        raise NotImplementedError

    def plots(self, history: List[Dict[str, Any]]) -> None:
        raise NotImplementedError

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        raise NotImplementedError

    def line(self, m: Dict[str, Any]) -> str:
        lam = f" λ {m['lam_mean']:.2f}±{m['lam_std']:.2f}" if "lam_mean" in m else ""
        score = f" {self.score_key} {m[self.score_key]:.2f}" if self.score_key in m else ""
        return f"epoch {m['epoch']}/{self.config.epochs} loss {m['train_loss']:.4f}{score}{lam} ({m['seconds']:.1f}s)"

    def _better(self, score: Optional[float]) -> bool:
        if score is None:
            return False
        if self.best_score is None:
            return True
        return score > self.best_score if self.higher_is_better else score < self.best_score

    def fit(self, stop_after: Optional[int] = None) -> Dict[str, Any]:
        cfg = self.config
        if self.main:
            self._open_writer()
        bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training", disable=cfg.quiet or not self.main,
                   dynamic_ncols=True)
        while self.epoch < cfg.epochs:
            metrics = self.train_epoch()
            self.epoch += 1
            metrics.update(self.evaluate(final=self.epoch == cfg.epochs))
            metrics = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], **metrics}
            if self.main:
                self._log(metrics)
                best = self._better(metrics.get(self.score_key))
                if best:
                    self.best_score, self.best_epoch = metrics[self.score_key], self.epoch
                state = self.state()
                save_atomic(state, self.ckpt_dir / "last.pt")
                if best:
                    save_atomic(state, self.ckpt_dir / "best.pt")
            bar.update(1)
            if self.score_key in metrics:
                bar.set_postfix({self.score_key: f"{metrics[self.score_key]:.2f}", "λ": f"{metrics.get('lam_mean', float('nan')):.2f}"})
            if cfg.quiet and self.main:
                print(self.line(metrics), flush=True)
            if stop_after is not None and self.epoch >= stop_after:
                break
        bar.close()
        if self.writer is not None:
            self.writer.close()
        if not self.main:
            return {}
        history = read_metrics(self.run_dir)
        self.plots(history)
        summary = {
            "run_dir": str(self.run_dir), "dataset": cfg.dataset, "method": cfg.method, "seed": cfg.seed,
            "epochs_done": self.epoch, "epochs": cfg.epochs, "finished": self.epoch >= cfg.epochs,
            f"best_{self.score_key}": self.best_score, "best_epoch": self.best_epoch,
            "train_seconds": sum(m["seconds"] for m in history),
            "epoch_seconds_mean": float(np.mean([m["seconds"] for m in history])) if history else None,
            "device": str(self.device), "world_size": self.world,
            **self.summary(history),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

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


def read_metrics(run_dir: Path) -> List[Dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_metrics(run_dir: Path, epoch: int) -> None:
    """Drop epochs logged after the checkpoint (a run killed between its log line and its checkpoint)."""
    kept = [m for m in read_metrics(run_dir) if m["epoch"] <= epoch]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in kept))


def start_run(config, make_trainer: Callable[..., BaseTrainer], run_dir: Optional[Path] = None,
              stop_after: Optional[int] = None, **kwargs) -> Dict[str, Any]:
    """Create the run directory (rank 0), write ``config.yaml``, train."""
    config.validate()
    dist.setup()
    if run_dir is None and config.run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}-{stamp}"
    run_dir = dist.broadcast_path(Path(run_dir or config.run_dir))
    config.run_dir = str(run_dir)
    if dist.rank() == 0:
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise TrainingError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
        (run_dir / "metrics.jsonl").write_text("")
    dist.barrier()
    return make_trainer(config, run_dir, **kwargs).fit(stop_after)


def load_run_config(run_dir: Path, config_from_dict: Callable[[Dict[str, Any], str], Any]):
    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.is_file():
        raise TrainingError(f"{run_dir} is not a run directory (no config.yaml)")
    return config_from_dict(yaml.safe_load(cfg_path.read_text()), str(cfg_path))


def resume_run(run_dir: Path, config_from_dict, make_trainer: Callable[..., BaseTrainer],
               stop_after: Optional[int] = None, **kwargs) -> Dict[str, Any]:
    """Continue an interrupted run from ``checkpoints/last.pt`` (a run killed mid-epoch restarts that epoch)."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, config_from_dict)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if not ckpt_path.is_file():
        raise TrainingError(f"{run_dir} has no checkpoint yet (it stopped during its first epoch); start it anew")
    dist.setup()
    trainer = make_trainer(config, run_dir, **kwargs)
    trainer.load_state(load_checkpoint(ckpt_path, map_location=trainer.device))
    if trainer.main:
        _truncate_metrics(run_dir, trainer.epoch)
    dist.barrier()
    return trainer.fit(stop_after)
