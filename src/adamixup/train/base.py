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
import os
import shutil
import sys
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
from .checkpoint import CheckpointError, TrainingError, load_checkpoint, rng_state, save_atomic, set_rng_state
from .config import ConfigError, _check_device_name, load_yaml

LAM_BINS = 20
# an epoch whose mean training loss is this many times the run's first step's is diverging
DIVERGENCE_FACTOR = 10.0
# what a checkpoint must hold for a run to resume from it
RESUME_KEYS = ("epoch", "model", "mixer", "optimizer", "extra_optimizers", "scheduler", "scaler", "best_score",
               "best_epoch", "rng")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` is the run's folder, ``resumable`` whether it holds a checkpoint
    (a run stopped before its first checkpoint has its folder removed)."""

    def __init__(self, run_dir: Path, resumable: bool):
        super().__init__(str(run_dir))
        self.run_dir, self.resumable = Path(run_dir), resumable


def warn(message: str) -> None:
    """One line on stderr, for things the user should know but that do not stop the run."""
    print(f"adamixup: warning: {message}", file=sys.stderr, flush=True)


def show_progress_bars(quiet: bool) -> bool:
    """Progress bars only on a terminal: in a log file their cursor codes are noise."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that it is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


class TrainStep(nn.Module):
    """The model and its mixer as one module, so that DistributedDataParallel can wrap both."""

    def __init__(self, model: nn.Module, mixer: nn.Module):
        super().__init__()
        self.model, self.mixer = model, mixer

    def forward(self, x: Tensor, y: Tensor) -> MixOutput:
        return self.mixer(self.model, x, y)


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
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


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
        self.show_bars = self.main and show_progress_bars(config.quiet)
        self.loss_reference: Optional[float] = None  # the first step's loss, for the divergence check
        self.diverged_at: Optional[int] = None  # first epoch flagged as diverging
        self.extensions: List[Dict[str, int]] = []  # --resume --epochs: at which epoch, from what length to what
        self.epoch_lr = float("nan")  # the rate the epoch's last step used

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
            "loss_reference": self.loss_reference,
            "diverged_at": self.diverged_at,
            "extensions": self.extensions,
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
        self.loss_reference = ckpt.get("loss_reference")
        self.diverged_at = ckpt.get("diverged_at")
        self.extensions = list(ckpt.get("extensions", []))

    def recompute_schedule(self) -> None:
        """Set the optimizer's rate from the (per-step) schedule as it reads the config now: after
        ``--resume --epochs N`` the restored optimizer holds the old schedule's rate."""
        step = self.scheduler.last_epoch
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * factor(step)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _checkpoint_note(self) -> str:
        last = self.ckpt_dir / "last.pt"
        if last.is_file():
            return f"the last good checkpoint is {last}, of epoch {self.epoch}"
        return "no checkpoint was written yet (the run failed in its first epoch, so its folder is removed)"

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
        self.epoch_lr = self.optimizer.param_groups[0]["lr"]
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
        cfg = self.config
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
            metrics.update(self.evaluate(final=self.epoch == cfg.epochs))
            metrics = {"epoch": self.epoch, "lr": self.epoch_lr, **metrics}
            diverged = self._check_divergence(metrics)
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
            if not self.show_bars and self.main:
                print(self.line(metrics), flush=True)
            if diverged or (stop_after is not None and self.epoch >= stop_after):
                break
        bar.close()
        if self.writer is not None:
            self.writer.close()
        if not self.main:
            summary: Dict[str, Any] = {}
        else:
            history = read_metrics(self.run_dir)
            self.plots(history)
            summary = {
                "run_dir": str(self.run_dir), "dataset": cfg.dataset, "method": cfg.method, "seed": cfg.seed,
                "epochs_done": self.epoch, "epochs": cfg.epochs, "finished": self.epoch >= cfg.epochs,
                f"best_{self.score_key}": self.best_score, "best_epoch": self.best_epoch,
                "train_seconds": sum(m["seconds"] for m in history),
                "epoch_seconds_mean": float(np.mean([m["seconds"] for m in history])) if history else None,
                "device": str(self.device), "world_size": self.world,
                "diverged_at_epoch": self.diverged_at, "extended": self.extensions,
                **self.summary(history),
            }
            (self.run_dir / "summary.json").write_text(json.dumps(finite_json(summary), indent=2, allow_nan=False))
        if diverged:
            raise TrainingError(f"the run diverged and was stopped (stop_on_divergence): {diverged}; lower the "
                                f"learning rate; its checkpoint is in {self.run_dir}")
        return summary

    def _log(self, metrics: Dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(finite_json(metrics), allow_nan=False) + "\n")
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
    """The epochs logged in ``run_dir/metrics.jsonl``. A torn last line (a run killed while writing
    it) is dropped with a warning, the checkpoint being the truth; a broken line before it is a
    :class:`TrainingError`."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = [(i + 1, line) for i, line in enumerate(path.read_text(errors="replace").splitlines()) if line.strip()]
    history = []
    for n, (number, line) in enumerate(lines):
        try:
            m = json.loads(line)
            if not isinstance(m, dict) or not isinstance(m.get("epoch"), int):
                raise ValueError("not an epoch's record")
        except ValueError:
            if n == len(lines) - 1:
                warn(f"{path}: its last line (line {number}) is torn and is dropped; the checkpoint holds the run's state")
                break
            raise TrainingError(f"{path}: line {number} is not an epoch's JSON record; the file is damaged "
                                "(delete the line to go on)") from None
        history.append(m)
    return history


def _truncate_metrics(run_dir: Path, epoch: int) -> None:
    """Drop epochs logged after the checkpoint (a run killed between its log line and its checkpoint)."""
    kept = [m for m in read_metrics(run_dir) if m["epoch"] <= epoch]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(finite_json(m), allow_nan=False) + "\n" for m in kept))


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that cannot be made or already holds a run, before anything is written."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} is a file, not a folder; choose another run_dir (--run-dir)")
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise TrainingError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another run_dir")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is not writable")


def _make_run_dir(run_dir: Path) -> Optional[Path]:
    """mkdir -p; returns the topmost folder this made (None if ``run_dir`` existed)."""
    top = None
    for p in [run_dir, *run_dir.parents]:
        if p.exists():
            break
        top = p
    run_dir.mkdir(parents=True, exist_ok=True)
    return top


def _discard_run(run_dir: Path, created: Optional[Path]) -> None:
    """Remove what a run that never reached a checkpoint wrote: its folder if this run made it,
    else the files it put into the folder it was given."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for name in ("config.yaml", "metrics.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)
    for name in ("checkpoints", "plots", "tensorboard"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _fit(trainer: BaseTrainer, stop_after: Optional[int], created: Optional[Path], fresh: bool) -> Dict[str, Any]:
    """``trainer.fit`` with the run folder's fate on failure: kept when it holds a checkpoint (the run
    resumes from it), removed otherwise (``fresh`` runs only); Ctrl-C becomes :class:`RunInterrupted`."""
    run_dir = trainer.run_dir
    try:
        return trainer.fit(stop_after)
    except BaseException as err:
        resumable = (run_dir / "checkpoints" / "last.pt").is_file()
        if fresh and not resumable and trainer.main:
            _discard_run(run_dir, created)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunInterrupted):
            raise RunInterrupted(run_dir, resumable) from None
        raise


def start_run(config, make_trainer: Callable[..., BaseTrainer], run_dir: Optional[Path] = None,
              stop_after: Optional[int] = None, **kwargs) -> Dict[str, Any]:
    """Validate, build the trainer (data, model, mixer), then create the run directory (rank 0),
    write ``config.yaml`` and train. Whatever fails before the first checkpoint leaves no folder."""
    config.validate()
    dist.setup()
    if run_dir is None and config.run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}-{stamp}"
    run_dir = dist.broadcast_path(Path(run_dir or config.run_dir))
    config.run_dir = str(run_dir)
    if dist.rank() == 0:
        check_new_run_dir(run_dir)
    trainer = make_trainer(config, run_dir, **kwargs)
    created = None
    if dist.rank() == 0:
        created = _make_run_dir(run_dir)
        try:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
            (run_dir / "metrics.jsonl").write_text("")
        except OSError as err:
            _discard_run(run_dir, created)
            raise TrainingError(f"cannot write to the run folder {run_dir}: {err.strerror or err}") from None
    dist.barrier()
    return _fit(trainer, stop_after, created, fresh=True)


def load_run_config(run_dir: Path, config_from_dict: Callable[[Dict[str, Any], str], Any]):
    """The config of the run in ``run_dir``; one-sentence errors for a missing folder, a missing,
    empty or invalid ``config.yaml``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainingError(f"{run_dir} is not a run directory ({'a file' if run_dir.exists() else 'it does not exist'})")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise TrainingError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        text = cfg_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TrainingError(f"{cfg_path} cannot be read ({type(err).__name__})") from None
    values = load_yaml(text, str(cfg_path))
    if not values:
        raise TrainingError(f"{cfg_path} is empty, so the run's settings are unknown")
    try:
        return config_from_dict(values, str(cfg_path))
    except ConfigError as err:
        msg = str(err)
        raise ConfigError(msg if str(cfg_path) in msg else f"{cfg_path}: {msg}") from None


def _resume_note(config, done: int, old_epochs: int) -> str:
    if config.schedule == "cosine":
        return (f"the cosine learning-rate schedule is recomputed for {config.epochs} epochs from epoch {done + 1} on "
                f"(epochs 1-{done} followed the {old_epochs}-epoch schedule, so the run differs from one "
                f"started for {config.epochs} epochs)")
    return (f"its {config.schedule} learning-rate schedule does not depend on the run's length, so the run goes on "
            f"as one started for {config.epochs} epochs")


def resume_run(run_dir: Path, config_from_dict, make_trainer: Callable[..., BaseTrainer],
               stop_after: Optional[int] = None, epochs: Optional[int] = None, device: Optional[str] = None,
               quiet: bool = False, **kwargs) -> Dict[str, Any]:
    """Continue a run from ``checkpoints/last.pt`` (a run killed mid-epoch restarts that epoch).

    epochs: a new length, at least the epochs already done: extends a finished or unfinished run,
            the schedule recomputed for the new length (said so on stdout; the config is updated).
    device: train the rest on another device. quiet: no progress bars.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, config_from_dict)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if not ckpt_path.is_file():
        raise TrainingError(f"{run_dir} has no checkpoint yet (it stopped during its first epoch); start it anew")
    ckpt = load_checkpoint(ckpt_path, "cpu", required=RESUME_KEYS,
                           alternative="copy it over last.pt and resume again, which trains the epochs after it anew")
    done, old_epochs = int(ckpt["epoch"]), config.epochs
    changed = []
    if epochs is not None and epochs != config.epochs:
        if epochs < done:
            raise ConfigError(f"--epochs {epochs}: the run in {run_dir} has already trained {done} epochs")
        config.epochs = epochs
        changed.append(f"epochs {old_epochs} -> {epochs}")
    if device is not None and device != config.device:
        changed.append(f"device {config.device} -> {device}")
        config.device = device
    if quiet:
        config.quiet = True
    config.validate()
    dist.setup()
    trainer = make_trainer(config, run_dir, **kwargs)
    try:
        trainer.load_state(ckpt)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        raise CheckpointError(f"checkpoint {ckpt_path} does not fit the run in {run_dir} "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    if config.epochs != old_epochs:
        trainer.extensions.append({"at_epoch": done, "from_epochs": old_epochs, "to_epochs": config.epochs})
        trainer.recompute_schedule()
    if trainer.main:
        _truncate_metrics(run_dir, trainer.epoch)
        if changed:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
        note = f"; {_resume_note(config, done, old_epochs)}" if config.epochs != old_epochs else ""
        print(f"resuming {run_dir} after epoch {done} of {config.epochs}"
              + (f" ({', '.join(changed)})" if changed else "") + note, flush=True)
    dist.barrier()
    return _fit(trainer, stop_after, None, fresh=False)
