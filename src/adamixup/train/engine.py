"""The engine: one epoch loop and one step, for every task.

A task (classification: :mod:`adamixup.classify.task`; re-ID: :mod:`adamixup.reid.trainer`)
builds its data, model, mixer and an *objective*: an ``nn.Module`` whose ``forward(x, y)`` returns the
whole loss of a step (:class:`StepOutput`). The engine wraps the objective in DDP, so that every
parameter it holds (model, mixer, a task's own losses) is averaged over processes, and runs::

    for x, y in task.batches(epoch, generator):
        with autocast: out = objective(x, y)
        out.loss.backward(); for opt in optimizers: opt.step(); scheduler.step()

The engine knows nothing of any task beyond :class:`Task`; the run folder is :class:`RunDir`'s.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..mixing import MixOutput
from . import distributed as dist
from .checkpoint import CheckpointError, TrainingError, rng_state, set_rng_state
from .config import ConfigError, _check_device_name
from .rundir import RunDir, warn
from .schedule import build_scheduler

LAM_BINS = 20
# an epoch whose mean training loss is this many times the run's first step's is diverging
DIVERGENCE_FACTOR = 10.0
# what a checkpoint must hold for a run to resume from it
RESUME_KEYS = ("epoch", "model", "mixer", "optimizer", "extra_optimizers", "scheduler", "scaler", "best_score",
               "best_epoch", "rng")


@dataclass
class StepOutput:
    """What a task's objective returns for one batch.

    loss:  the whole loss of the step (``backward`` is called on it).
    terms: detached loss terms for logging (logged as ``loss_<name>``).
    lam:   the mixing ratios used (empty without mixing).
    stats: further detached scalars (e.g. the intrusion discriminator's accuracy).
    mix:   the mixer's own output, for pictures.
    """

    loss: Tensor
    terms: Dict[str, Tensor]
    lam: Tensor
    stats: Dict[str, Tensor] = field(default_factory=dict)
    mix: Optional[MixOutput] = None


class Task:
    """What a task gives the engine. Built as ``Task(config, device, rank, world, **kwargs)``.

    Attributes: ``model`` (the network a checkpoint's ``"model"`` holds), ``objective`` (an
    ``nn.Module``: ``forward(x, y) -> StepOutput``), ``steps_per_epoch``, ``score_key`` (the
    metric that picks ``best.pt``) and ``higher_is_better``.
    """

    score_key = "test_error"
    higher_is_better = False
    model: nn.Module
    objective: nn.Module
    steps_per_epoch: int

    def modules(self) -> Dict[str, nn.Module]:
        """The modules a checkpoint holds, by name (``model`` and ``mixer`` at least)."""
        raise NotImplementedError

    def optimizers(self) -> List[torch.optim.Optimizer]:
        """The optimizers of a step; the first one follows the learning-rate schedule."""
        raise NotImplementedError

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Tuple[Tensor, Tensor]]:
        """This process's ``(x, y)`` training batches of an epoch, on the device."""
        raise NotImplementedError

    def evaluate(self, epoch: int, final: bool) -> Dict[str, Any]:
        """Metrics of the model after ``epoch``; called every ``eval_every`` epochs and after the last
        (``final``)."""
        raise NotImplementedError

    def plots(self, run: RunDir, history: List[Dict[str, Any]], last: Optional[StepOutput]) -> None:
        raise NotImplementedError

    def summary(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {}

    def line(self, m: Dict[str, Any], epochs: int) -> str:
        """One line per epoch for logs (no progress bars off a terminal)."""
        lam = f" λ {m['lam_mean']:.2f}±{m['lam_std']:.2f}" if "lam_mean" in m else ""
        score = f" {self.score_key} {m[self.score_key]:.2f}" if self.score_key in m else ""
        return f"epoch {m['epoch']}/{epochs} loss {m['train_loss']:.4f}{score}{lam} ({m['seconds']:.1f}s)"


class Trained(NamedTuple):
    """A trained run rebuilt from its folder (both tasks' ``load``): its config, its data, the model in
    eval mode on the device, the mixer (or None) and the checkpoint's contents."""

    config: Any
    data: Any
    model: nn.Module
    mixer: Optional[nn.Module]
    checkpoint: Dict[str, Any]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` is the run's folder, ``resumable`` whether it holds a checkpoint
    (a run stopped before its first checkpoint has its folder removed)."""

    def __init__(self, run_dir: Path, resumable: bool):
        super().__init__(str(run_dir))
        self.run_dir, self.resumable = Path(run_dir), resumable


def show_progress_bars(quiet: bool) -> bool:
    """Progress bars only on a terminal: in a log file their cursor codes are noise."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (auto, cpu, cuda, cuda:N, mps); :class:`ConfigError` for a name
    that is none of these, :class:`TrainingError` for a device this machine does not have."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank() if dist.is_distributed() else 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    why = _check_device_name(name)
    if why:
        raise ConfigError(f"device {name!r}: {why}")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r} was asked for, but torch sees no CUDA device; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"device {name!r} was asked for, but torch sees {torch.cuda.device_count()} CUDA "
                                f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not _mps_available():
        raise TrainingError(f"device {name!r} was asked for, but torch sees no Apple MPS device; use --device cpu")
    return device


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def build_optimizer(config, params) -> torch.optim.Optimizer:
    """The config's optimizer (sgd or adam) over ``params``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def trainable(*modules: nn.Module) -> List[nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


class EpochStats:
    """Running sums of an epoch's loss terms and the λ values used, reduced over ranks at the end."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.steps = 0
        self.first_loss: Optional[float] = None
        self.lams: List[Tensor] = []
        self.start = time.perf_counter()

    def postfix(self) -> Dict[str, str]:
        """Progress-bar text: the epoch's running mean loss and the last step's mean λ (no device sync)."""
        text = {"loss": f"{self.sums.get('train_loss', float('nan')) / max(self.steps, 1):.3f}"}
        if self.lams:
            text["λ"] = f"{self.lams[-1].mean().item():.2f}"
        return text

    def add(self, values: Dict[str, float], lam: Tensor) -> None:
        if self.first_loss is None:
            self.first_loss = values["train_loss"]
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        if lam.numel():
            self.lams.append(lam.detach().float().cpu())

    def result(self, device: torch.device) -> Dict[str, Any]:
        means = {k: v / max(self.steps, 1) for k, v in self.sums.items()}
        if self.first_loss is not None:
            means["first_step_loss"] = self.first_loss  # the divergence check's reference (popped by fit)
        metrics = dist.mean_dict(means, device)
        lam = dist.gather_cat(torch.cat(self.lams) if self.lams else torch.empty(0))
        if lam.numel():
            metrics["lam_mean"], metrics["lam_std"] = lam.mean().item(), lam.std().item() if lam.numel() > 1 else 0.0
            metrics["lam_hist"] = np.histogram(lam.numpy(), bins=LAM_BINS, range=(0.0, 1.0))[0].tolist()
        metrics["seconds"] = dist.max_value(time.perf_counter() - self.start, device)
        return metrics


class Trainer:
    """One run: a task, its optimizers and schedule, the run folder; ``fit()`` trains from the
    current epoch to the end."""

    def __init__(self, config, run: RunDir, make_task: Callable[..., Task], **task_kwargs):
        self.config, self.run = config, run
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self.device = select_device(config.device)
        torch.manual_seed(config.seed)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        if self.device.type == "cpu" and config.precision == "fp16" and self.main:
            warn("fp16 autocast on a CPU is far slower than fp32 (about 20x here); use bf16 or fp32 on a CPU")
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.epoch, self.best_score, self.best_epoch = 0, None, 0
        self.writer = None
        self.show_bars = self.main and show_progress_bars(config.quiet)
        self.loss_reference: Optional[float] = None  # the first step's loss, for the divergence check
        self.diverged_at: Optional[int] = None  # first epoch flagged as diverging
        self.extensions: List[Dict[str, int]] = []  # --resume --epochs: at which epoch, from what length to what
        self.epoch_lr = float("nan")  # the rate the epoch's last step used
        self.last: Optional[StepOutput] = None  # the last step's output, for pictures

        self.task = task = make_task(config, self.device, self.rank, self.world, **task_kwargs)
        if config.channels_last:
            task.objective.to(memory_format=torch.channels_last)
        if config.compile:  # the backbone is the hot path; state_dict keys stay those of the plain module
            task.model.forward_features = torch.compile(task.model.forward_features)
        self.objective = dist.wrap(task.objective, self.device)
        self.optimizers = task.optimizers()
        self.scheduler = build_scheduler(self.optimizers[0], task.steps_per_epoch, config)

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        state = {name: module.state_dict() for name, module in self.task.modules().items()}
        state.update({
            "epoch": self.epoch,
            "optimizer": self.optimizers[0].state_dict(),
            "extra_optimizers": [o.state_dict() for o in self.optimizers[1:]],
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "rng": rng_state(self.data_generator),
            "config": asdict(self.config),
            "run_id": self.run.run_id,
            "loss_reference": self.loss_reference,
            "diverged_at": self.diverged_at,
            "extensions": self.extensions,
        })
        return state

    def load_state(self, ckpt: Dict[str, Any]) -> None:
        for name, module in self.task.modules().items():
            module.load_state_dict(ckpt[name])
        self.optimizers[0].load_state_dict(ckpt["optimizer"])
        for opt, s in zip(self.optimizers[1:], ckpt["extra_optimizers"]):
            opt.load_state_dict(s)
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best_score, self.best_epoch = ckpt["epoch"], ckpt["best_score"], ckpt["best_epoch"]
        set_rng_state(ckpt["rng"], self.data_generator)
        self.loss_reference = ckpt.get("loss_reference")
        self.diverged_at = ckpt.get("diverged_at")
        self.extensions = list(ckpt.get("extensions", []))

    def recompute_schedule(self) -> None:
        """Set the optimizer's rate from the (per-step) schedule as it reads the config now: after
        ``--resume --epochs N`` the restored optimizer holds the old schedule's rate."""
        step = self.scheduler.last_epoch
        for group, base, factor in zip(self.optimizers[0].param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * factor(step)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizers[0].param_groups]

    def _checkpoint_note(self) -> str:
        if self.run.has_checkpoint():
            return f"the last good checkpoint is {self.run.checkpoint()}, of epoch {self.epoch}"
        return "no checkpoint was written yet (the run failed in its first epoch, so its folder is removed)"

    # ---- one step ----------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor, step_index: int, stats: EpochStats) -> StepOutput:
        with autocast(self.device, self.config.precision):
            out = self.objective(x, y)
        keys = ["loss", *(f"loss_{k}" for k in out.terms), *out.stats]
        values = torch.stack([out.loss.detach().float(), *[v.float() for v in out.terms.values()],
                              *[v.float() for v in out.stats.values()]]).tolist()
        if not all(math.isfinite(v) for v in values):
            raise TrainingError(
                f"the loss became non-finite at epoch {self.epoch + 1}, step {step_index + 1} "
                f"({', '.join(f'{k}={v:.4g}' for k, v in zip(keys, values))}); "
                f"{self._checkpoint_note()} (lower the learning rate, or train in fp32)")
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        for opt in self.optimizers:
            self.scaler.step(opt)
        self.scaler.update()
        self.epoch_lr = self.optimizers[0].param_groups[0]["lr"]
        self.scheduler.step()
        stats.add(dict(zip(["train_loss", *keys[1:]], values)), out.lam)
        return out

    # ---- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> Dict[str, Any]:
        cfg = self.config
        self.objective.train()
        stats = EpochStats()
        bar = tqdm(self.task.batches(self.epoch, self.data_generator), total=self.task.steps_per_epoch,
                   desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False, disable=not self.show_bars,
                   dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.last = self.train_step(x, y, i, stats)
            if self.show_bars:
                bar.set_postfix(stats.postfix())
        return stats.result(self.device)

    # ---- the run -----------------------------------------------------------------------------
    def _better(self, score: Optional[float]) -> bool:
        if score is None:
            return False
        if self.best_score is None:
            return True
        return score > self.best_score if self.task.higher_is_better else score < self.best_score

    def _check_divergence(self, metrics: Dict[str, Any]) -> Optional[str]:
        """Flag an epoch whose mean loss is far above the run's first step's: a warning the first
        time (returns None), or with ``stop_on_divergence`` the reason to stop (returned)."""
        ref, loss = self.loss_reference, metrics.get("train_loss")
        if ref is None or loss is None or not ref > 0 or loss <= DIVERGENCE_FACTOR * ref:
            return None
        what = (f"epoch {self.epoch}'s mean training loss {loss:.4g} is {loss / ref:.3g} times its first step's "
                f"({ref:.4g})")
        first = self.diverged_at is None
        if first:
            self.diverged_at = self.epoch
        if getattr(self.config, "stop_on_divergence", False):
            return what
        if first and self.main:
            warn(f"the run is diverging: {what}; lower the learning rate (stop_on_divergence: true, or "
                 "--stop-on-divergence, stops such a run)")
        return None

    def fit(self, stop_after: Optional[int] = None) -> Dict[str, Any]:
        cfg, task = self.config, self.task
        if self.main:
            self._open_writer()
        bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training", disable=not self.show_bars,
                   dynamic_ncols=True)
        diverged: Optional[str] = None
        while self.epoch < cfg.epochs:
            metrics = self.train_epoch()
            self.epoch += 1
            first_step_loss = metrics.pop("first_step_loss", None)
            if self.loss_reference is None:
                self.loss_reference = first_step_loss
            final = self.epoch == cfg.epochs
            if final or self.epoch % cfg.eval_every == 0:  # between evaluations a line holds the training terms
                metrics.update(task.evaluate(self.epoch, final=final))
            metrics = {"epoch": self.epoch, "lr": self.epoch_lr, **metrics}
            diverged = self._check_divergence(metrics)
            if self.main:
                self._log(metrics)
                best = self._better(metrics.get(task.score_key))
                if best:
                    self.best_score, self.best_epoch = metrics[task.score_key], self.epoch
                self.run.save_checkpoint(self.state(), best)
            bar.update(1)
            if task.score_key in metrics:
                bar.set_postfix({task.score_key: f"{metrics[task.score_key]:.2f}",
                                 "λ": f"{metrics.get('lam_mean', float('nan')):.2f}"})
            if not self.show_bars and self.main:
                print(task.line(metrics, cfg.epochs), flush=True)
            if diverged or (stop_after is not None and self.epoch >= stop_after):
                break
        bar.close()
        if self.writer is not None:
            self.writer.close()
        summary: Dict[str, Any] = {}
        if self.main:
            history = self.run.read_metrics()
            task.plots(self.run, history, self.last)
            summary = {
                "run_dir": str(self.run), "dataset": cfg.dataset, "method": cfg.method, "seed": cfg.seed,
                "epochs_done": self.epoch, "epochs": cfg.epochs, "finished": self.epoch >= cfg.epochs,
                f"best_{task.score_key}": self.best_score, "best_epoch": self.best_epoch,
                "train_seconds": sum(m["seconds"] for m in history),
                "epoch_seconds_mean": float(np.mean([m["seconds"] for m in history])) if history else None,
                "device": str(self.device), "world_size": self.world,
                "diverged_at_epoch": self.diverged_at, "extended": self.extensions,
                **task.summary(history),
            }
            self.run.write_summary(summary)
        if diverged:
            raise TrainingError(f"the run diverged and was stopped (stop_on_divergence): {diverged}; lower the "
                                f"learning rate; its checkpoint is in {self.run}")
        return summary

    def _log(self, metrics: Dict[str, Any]) -> None:
        self.run.append_metrics(metrics)
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
        self.writer = SummaryWriter(str(self.run.tensorboard))


def _fit(trainer: Trainer, stop_after: Optional[int], created: Optional[Path], fresh: bool) -> Dict[str, Any]:
    """``trainer.fit`` with the run folder's fate on failure: kept when it holds a checkpoint (the run
    resumes from it), removed otherwise (``fresh`` runs only); Ctrl-C becomes :class:`RunInterrupted`."""
    run = trainer.run
    try:
        return trainer.fit(stop_after)
    except BaseException as err:
        resumable = run.has_checkpoint()
        if fresh and not resumable and trainer.main:
            run.discard(created)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunInterrupted):
            raise RunInterrupted(run.path, resumable) from None
        raise


def start_run(config, make_task: Callable[..., Task], run_dir: Optional[Path] = None,
              stop_after: Optional[int] = None, **task_kwargs) -> Dict[str, Any]:
    """Validate, build the trainer (data, model, mixer), then create the run folder (rank 0), write
    ``config.yaml`` and train. Whatever fails before the first checkpoint leaves no folder."""
    config.validate()
    dist.setup()
    if run_dir is None and config.run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}-{stamp}"
    run = RunDir(dist.broadcast_path(Path(run_dir or config.run_dir)))
    config.run_dir = str(run)
    dist.check_on_rank0(run.check_new)  # a refused folder stops every rank, not rank 0 alone
    trainer = Trainer(config, run, make_task, **task_kwargs)
    created = run.create(config) if dist.rank() == 0 else None
    dist.barrier()
    return _fit(trainer, stop_after, created, fresh=True)


def _resume_note(config, done: int, old_epochs: int) -> str:
    if config.schedule == "cosine":
        return (f"the cosine learning-rate schedule is recomputed for {config.epochs} epochs from epoch {done + 1} on "
                f"(epochs 1-{done} followed the {old_epochs}-epoch schedule, so the run differs from one "
                f"started for {config.epochs} epochs)")
    return (f"its {config.schedule} learning-rate schedule does not depend on the run's length, so the run goes on "
            f"as one started for {config.epochs} epochs")


def resume_run(run_dir: Path, config_from_dict, make_task: Callable[..., Task],
               stop_after: Optional[int] = None, epochs: Optional[int] = None, device: Optional[str] = None,
               quiet: bool = False, **task_kwargs) -> Dict[str, Any]:
    """Continue a run from ``checkpoints/last.pt`` (a run killed mid-epoch restarts that epoch).

    epochs: a new length, at least the epochs already done: extends a finished or unfinished run,
            the schedule recomputed for the new length (said so on stdout; the config is updated).
    device: train the rest on another device. quiet: no progress bars.
    """
    run = RunDir(run_dir)
    config = run.read_config(config_from_dict)
    if not run.has_checkpoint():
        raise TrainingError(f"{run} has no checkpoint yet (it stopped during its first epoch); start it anew")
    ckpt = run.load_checkpoint("last", required=RESUME_KEYS,
                               alternative="copy it over last.pt and resume again, which trains the epochs after it anew")
    done, old_epochs = int(ckpt["epoch"]), config.epochs
    changed = []
    if epochs is not None and epochs != config.epochs:
        if epochs < done:
            raise ConfigError(f"--epochs {epochs}: the run in {run} has already trained {done} epochs")
        config.epochs = epochs
        changed.append(f"epochs {old_epochs} -> {epochs}")
    if device is not None and device != config.device:
        changed.append(f"device {config.device} -> {device}")
        config.device = device
    if quiet:
        config.quiet = True
    config.validate()
    dist.setup()
    trainer = Trainer(config, run, make_task, **task_kwargs)
    try:
        trainer.load_state(ckpt)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        raise CheckpointError(f"checkpoint {run.checkpoint()} does not fit the run in {run} "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    if config.epochs != old_epochs:
        trainer.extensions.append({"at_epoch": done, "from_epochs": old_epochs, "to_epochs": config.epochs})
        trainer.recompute_schedule()
    if trainer.main:
        run.truncate_metrics(trainer.epoch)
        if changed:
            run.write_config(config)
        note = f"; {_resume_note(config, done, old_epochs)}" if config.epochs != old_epochs else ""
        print(f"resuming {run} after epoch {done} of {config.epochs}"
              + (f" ({', '.join(changed)})" if changed else "") + note, flush=True)
    dist.barrier()
    return _fit(trainer, stop_after, None, fresh=False)
