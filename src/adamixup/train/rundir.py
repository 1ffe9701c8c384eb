"""The run folder: the one place that knows its layout. Every reader and writer goes through :class:`RunDir`.

    RUN/config.yaml            the run's id (``run_id``), then the resolved config
    RUN/metrics.jsonl          one JSON line per epoch (standard JSON: no NaN or infinity)
    RUN/checkpoints/last.pt    the state after the last epoch; best.pt after the best-scoring one
    RUN/plots/                 pictures
    RUN/summary.json           written when a run stops
    RUN/features/              re-ID: exported query and gallery features
    RUN/tensorboard/           optional event files
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import yaml

from .checkpoint import CheckpointError, TrainingError, load_checkpoint, save_atomic
from .config import ConfigError, load_yaml


RUN_ID = "run_id"  # the key of config.yaml (and of every checkpoint) that names the run
# config keys that may differ between a run's checkpoint and its config.yaml: --resume changes them
RESUMABLE_KEYS = ("epochs", "device", "quiet", "run_dir")


@contextlib.contextmanager
def leaves_nothing_new(folder: Union[str, os.PathLike], keep: Callable[[Path], bool] = lambda folder: False):
    """On any failure or Ctrl-C inside the block, remove what it added under ``folder`` (the folder
    itself if it made it), unless ``keep(folder)`` says something there is worth keeping (a
    checkpoint to resume from, a finished record)."""
    folder = Path(folder)
    before = set(folder.rglob("*")) if folder.is_dir() else None
    try:
        yield folder
    except BaseException:
        if folder.is_dir() and not keep(folder):
            if before is None:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        raise


def warn(message: str) -> None:
    """One line on stderr, for things the user should know but that do not stop the run."""
    print(f"adamixup: warning: {message}", file=sys.stderr, flush=True)


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that it is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _json_line(record: Dict[str, Any]) -> str:
    return json.dumps(finite_json(record), allow_nan=False) + "\n"


class RunDir:
    """A run folder at ``path`` (which need not exist yet)."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        self.run_id: Optional[str] = None  # set by create() or read_config()
        self._config_values: Optional[Dict[str, Any]] = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- layout -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str = "last") -> Path:
        """``checkpoints/<name>.pt`` (``name``: last or best)."""
        return self.checkpoints / f"{name}.pt"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def features(self) -> Path:
        return self.path / "features"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def has_checkpoint(self, name: str = "last") -> bool:
        return self.checkpoint(name).is_file()

    # ---- a new run ----------------------------------------------------------------------------
    def check_new(self) -> None:
        """Refuse a folder that cannot be made or already holds a run, before anything is written."""
        run_dir = self.path
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"run folder {run_dir} is a file, not a folder; choose another run_dir (--run-dir)")
        if self.has_checkpoint():
            raise TrainingError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another run_dir")
        existing = run_dir
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is not writable")

    def create(self, config) -> Optional[Path]:
        """mkdir -p, write ``config.yaml`` and an empty ``metrics.jsonl``; returns the topmost folder
        this made (None if the folder existed), for :meth:`discard`."""
        top = None
        for p in [self.path, *self.path.parents]:
            if p.exists():
                break
            top = p
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.run_id = uuid.uuid4().hex[:16]
            self.write_config(config)
            self.metrics_path.write_text("")
        except OSError as err:
            self.discard(top)
            raise TrainingError(f"cannot write to the run folder {self.path}: {err.strerror or err}") from None
        return top

    def discard(self, created: Optional[Path]) -> None:
        """Remove what a run that never reached a checkpoint wrote: the folder if the run made it
        (``created``: what :meth:`create` returned), else the files it put into the given folder."""
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
            return
        for path in (self.config_path, self.metrics_path, self.summary_path):
            path.unlink(missing_ok=True)
        for path in (self.checkpoints, self.plots, self.tensorboard):
            shutil.rmtree(path, ignore_errors=True)

    # ---- config -------------------------------------------------------------------------------
    def write_config(self, config) -> None:
        values = asdict(config)
        head = {RUN_ID: self.run_id} if self.run_id else {}
        self.config_path.write_text(yaml.safe_dump({**head, **values}, sort_keys=False))
        self._config_values = values

    def read_config(self, config_from_dict: Callable[[Dict[str, Any], str], Any]):
        """The run's config (and its id, :attr:`run_id`; runs written before ids have none);
        one-sentence errors for a missing folder, a missing, empty or invalid ``config.yaml``."""
        run_dir, cfg_path = self.path, self.config_path
        if not run_dir.is_dir():
            raise TrainingError(f"{run_dir} is not a run directory ({'a file' if run_dir.exists() else 'it does not exist'})")
        if not cfg_path.is_file():
            raise TrainingError(f"{run_dir} is not a run directory (no config.yaml)")
        try:
            text = cfg_path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise TrainingError(f"{cfg_path} cannot be read ({type(err).__name__})") from None
        values = load_yaml(text, str(cfg_path))
        if not values:
            raise TrainingError(f"{cfg_path} is empty, so the run's settings are unknown")
        if not isinstance(values, dict):
            raise TrainingError(f"{cfg_path} is not a mapping of config keys, so the run's settings are unknown")
        values = self._remember(values)
        try:
            return config_from_dict(values, str(cfg_path))
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if str(cfg_path) in msg else f"{cfg_path}: {msg}") from None

    def _remember(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """Take the run's id out of config.yaml's values and keep both; returns the config keys."""
        values = dict(values)
        run_id = values.pop(RUN_ID, None)
        self.run_id = str(run_id) if run_id is not None else None
        self._config_values = dict(values)
        return values

    # ---- metrics ------------------------------------------------------------------------------
    def append_metrics(self, record: Dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(_json_line(record))

    def read_metrics(self) -> List[Dict[str, Any]]:
        """The epochs logged. A torn last line (a run killed while writing it) is dropped with a
        warning, the checkpoint being the truth; a broken line before it is a :class:`TrainingError`."""
        path = self.metrics_path
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

    def truncate_metrics(self, epoch: int) -> None:
        """Drop epochs logged after the checkpoint (a run killed between its log line and its checkpoint)."""
        kept = [m for m in self.read_metrics() if m["epoch"] <= epoch]
        self.metrics_path.write_text("".join(_json_line(m) for m in kept))

    # ---- checkpoints and summary --------------------------------------------------------------
    def save_checkpoint(self, state: Dict[str, Any], best: bool) -> None:
        save_atomic(state, self.checkpoint("last"))
        if best:
            save_atomic(state, self.checkpoint("best"))

    def load_checkpoint(self, name: str = "last", required: Sequence[str] = ("model",),
                        alternative: Optional[str] = None) -> Dict[str, Any]:
        """``checkpoints/<name>.pt`` read safely (see :func:`adamixup.train.checkpoint.load_checkpoint`)."""
        path = self.checkpoint(name)
        if not path.is_file():
            raise TrainingError(f"{self.path} has no {name}.pt checkpoint")
        ckpt = load_checkpoint(path, "cpu", required=required, alternative=alternative)
        self.check_belongs(ckpt, path)
        return ckpt

    def check_belongs(self, ckpt: Dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint of another run (its ``run_id`` differs from config.yaml's) or, for
        checkpoints without an id, one trained with other settings than config.yaml holds (but for
        :data:`RESUMABLE_KEYS`): one sentence naming both, and nothing of the run is written."""
        if self._config_values is None and self.config_path.is_file():
            try:
                values = load_yaml(self.config_path.read_text(), str(self.config_path))
            except (OSError, UnicodeDecodeError, ConfigError):
                values = None
            if isinstance(values, dict):
                self._remember(values)
        theirs = ckpt.get(RUN_ID)
        if theirs is not None and self.run_id is not None and str(theirs) != self.run_id:
            origin = (ckpt.get("config") or {}).get("run_dir") if isinstance(ckpt.get("config"), dict) else None
            where = f", trained in {origin}" if origin else ""
            raise CheckpointError(f"{path} belongs to run {theirs}{where}, not to the run of {self.config_path} "
                                  f"({self.run_id}); it is not used and nothing in {self.path} was changed")
        stored, ours = ckpt.get("config"), self._config_values
        if isinstance(stored, dict) and isinstance(ours, dict):
            diff = [f"{k} {stored.get(k)!r} vs {ours.get(k)!r}" for k in sorted(set(stored) | set(ours))
                    if k not in RESUMABLE_KEYS and k in stored and k in ours and stored.get(k) != ours.get(k)]
            if diff:
                more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
                raise CheckpointError(f"{path} was trained with other settings than {self.config_path} holds "
                                      f"({'; '.join(diff[:3])}{more}): it belongs to another run and is not used; "
                                      f"nothing in {self.path} was changed")

    def load_weights(self, model, name: str = "last", alternative: str = "use it with --checkpoint {name}",
                     ckpt: Optional[Dict[str, Any]] = None):
        """Load the model weights of ``checkpoints/<name>.pt`` (or of ``ckpt``, that checkpoint read
        already) into ``model``; returns the checkpoint. A checkpoint that does not fit the model is
        one :class:`CheckpointError` sentence (``alternative``: how to use an intact sibling
        checkpoint, see :meth:`load_checkpoint`)."""
        if ckpt is None:
            ckpt = self.load_checkpoint(name, required=("model", "epoch"), alternative=alternative)
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointError(f"checkpoint {self.checkpoint(name)} does not fit the run's model "
                                  f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
        return ckpt

    def write_summary(self, summary: Dict[str, Any]) -> None:
        self.summary_path.write_text(json.dumps(finite_json(summary), indent=2, allow_nan=False))

    def read_summary(self) -> Optional[Dict[str, Any]]:
        """The summary of a run that stopped, or None (no summary yet, or an unreadable one)."""
        try:
            summary = json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None


def read_metrics(run_dir: Union[str, os.PathLike, RunDir]) -> List[Dict[str, Any]]:
    """The epochs logged in a run folder (see :meth:`RunDir.read_metrics`)."""
    return (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).read_metrics()
