"""The ledger: one JSON file per finished run, so that a study resumes where it stopped, grows across
machines and days, and its report is rebuilt from the records alone.

A record holds the plan's name, the run's key and place in the plan, its resolved config, the
config's identity and hash (:func:`adamixup.study.plan.config_identity`), the final and per-epoch
metrics, λ's statistics, the seconds it took and the machine it ran on. It is written to a temporary
name and renamed, right after the run finishes, so a file in the ledger is either whole or absent.

Reading (:func:`read_records`): a file that is not a whole record (truncated, not JSON, fields
missing, a hash that does not match its own config) is reported — a :class:`StudyWarning` naming the
file — and skipped, never used. Matching against a plan (:func:`match_records`): a record whose
config differs from what the plan asks for now is stale: reported, not reused, and the run trains
again.

Merging the records of two machines is copying their files into one ledger folder (file names never
collide: each record's name carries its own id), or reading several folders at once. When two
records stand for the same run, :data:`DUPLICATE_RULE` decides which one is used, and the duplicates
are reported.
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import StudyWarning
from .plan import Run, identity_differences, identity_hash
from .tasks import TASKS, get_task

FORMAT = 1
LAM_BINS = 20
DUPLICATE_RULE = ("of two or more records of the same run (same key, same config), the one that finished first "
                  "(earliest finished_at; ties: the smaller file name) is used, whichever folder or machine it came "
                  "from; the others are listed as duplicates and left in place")
REQUIRED = ("format", "record_id", "plan", "key", "dataset", "method", "seed", "config", "identity", "config_hash",
            "final", "history", "machine", "finished_at")
PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------------
# the machine and the record
# --------------------------------------------------------------------------------------------------
def machine_info(device: Optional[str] = None) -> Dict[str, Any]:
    """Where a run trained: host, platform, CPU count, Python and torch versions, and the accelerator's
    name when ``device`` is a CUDA device."""
    import torch

    info: Dict[str, Any] = {
        "hostname": socket.gethostname(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": device, "accelerator": None,
    }
    if device and str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        info["accelerator"] = torch.cuda.get_device_name(index)
    elif device and str(device).startswith("mps"):
        info["accelerator"] = "Apple MPS"
    return info


def lam_ends_share(hist: Sequence[float]) -> float:
    """Share of λ within 0.05 of 0 or 1, from the trainer's 20-bin histogram over [0, 1]."""
    total = float(sum(hist))
    if total <= 0:
        return float("nan")
    if len(hist) != LAM_BINS:
        raise ValueError(f"expected a {LAM_BINS}-bin λ histogram over [0, 1], got {len(hist)} bins")
    return float((hist[0] + hist[-1]) / total)


def lam_mixedness(hist: Sequence[float]) -> float:
    """Mean of min(λ, 1 − λ) from a histogram over [0, 1] (bin centres; ±half a bin): how far the mixes
    lie from their nearer source (0: a source itself, 0.5: halfway; U(0, 1): 0.25)."""
    total = float(sum(hist))
    if total <= 0:
        return float("nan")
    n = len(hist)
    return float(sum(h * min((i + 0.5) / n, 1 - (i + 0.5) / n) for i, h in enumerate(hist)) / total)


def lam_summary(history: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """λ of the last epoch that mixed: mean, std, histogram, mean min(λ, 1 − λ), share at the ends."""
    last = next((m for m in reversed(history) if m.get("lam_hist")), None)
    if last is None:
        return None
    hist = last["lam_hist"]
    return {"epoch": last.get("epoch"), "mean": last.get("lam_mean"), "std": last.get("lam_std"), "hist": hist,
            "mixedness": lam_mixedness(hist), "ends": lam_ends_share(hist) if len(hist) == LAM_BINS else None}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def make_record(plan_name: str, run: Run, summary: Dict[str, Any], history: List[Dict[str, Any]],
                wall_seconds: float, machine: Dict[str, Any], resumed: bool = False) -> Dict[str, Any]:
    """The ledger record of a finished run (``summary``: what ``train`` returned; ``history``: its
    per-epoch metrics)."""
    task = get_task(run.task)
    last = history[-1] if history else {}
    final = {
        **task.final(summary, history),
        "epochs": summary.get("epochs_done", last.get("epoch")),
        "epoch_seconds_mean": summary.get("epoch_seconds_mean"),
        "train_seconds": summary.get("train_seconds"),
        "device": summary.get("device"),
        "losses": {k: v for k, v in last.items() if k == "train_loss" or k.startswith("loss_")},
    }
    record = {
        "format": FORMAT, "record_id": uuid.uuid4().hex, "plan": plan_name, "task": task.name, "key": run.key,
        "dataset": run.dataset, "method": run.method, "fold": run.fold, "seed": run.seed,
        "registry_method": run.registry_method, "mixer_args": run.mixer_args,
        "config": run.config, "identity": run.identity, "config_hash": run.config_hash,
        "final": final, "lam": lam_summary(history), "history": history,
        "seconds": float(wall_seconds), "resumed": bool(resumed), "machine": machine,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return _finite(record)


def record_filename(record: Dict[str, Any]) -> str:
    return f"{record['key'].replace('/', '__')}__{record['config_hash'][:12]}__{record['record_id'][:8]}.json"


def write_record(ledger_dir: PathLike, record: Dict[str, Any]) -> Path:
    """Write ``record`` into ``ledger_dir`` atomically (a temporary name, flushed, then renamed)."""
    ledger_dir = Path(ledger_dir)
    ledger_dir.mkdir(parents=True, exist_ok=True)
    path = ledger_dir / record_filename(record)
    tmp = ledger_dir / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def check_record(record: Any) -> Optional[str]:
    """None if ``record`` is a whole ledger record, else what is wrong with it."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        return f"it lacks the field {missing[0]!r}"
    if record["format"] != FORMAT:
        return f"its format is {record['format']!r}, this version reads format {FORMAT}"
    if not isinstance(record["identity"], dict) or identity_hash(record["identity"]) != record["config_hash"]:
        return "its config_hash does not match its own config (edited or damaged)"
    if record.get("task", "classification") not in TASKS:
        return f"its task {record.get('task')!r} is none of {', '.join(TASKS)}"
    final, task = record["final"], get_task(record.get("task"))
    if not isinstance(final, dict) or not any(isinstance(final.get(k), (int, float)) for k in task.scores):
        return f"it has no final {' or '.join(task.names[k] for k in task.scores)}"
    if not isinstance(record["history"], list) or not record["history"]:
        return "it has no per-epoch metrics"
    if not isinstance(record["key"], str) or record["key"].count("/") != 2:
        return f"its key {record['key']!r} is not dataset/method/fold-seed"
    return None


def read_records(ledgers: Union[PathLike, Iterable[PathLike]], warn: bool = True) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Every whole record in one or several ledger folders (a missing folder holds none), and one
    sentence per file that was skipped (each also a :class:`StudyWarning` when ``warn``). Each record
    gets ``_file`` (its path). The same file content seen twice (one record copied into two of the
    folders) counts once."""
    dirs = [Path(ledgers)] if isinstance(ledgers, (str, Path)) else [Path(d) for d in ledgers]
    records: List[Dict[str, Any]] = []
    problems: List[str] = []
    seen = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                why = check_record(record)
            except (OSError, UnicodeDecodeError) as err:
                why = f"it cannot be read ({type(err).__name__})"
            except ValueError:
                why = "it is not valid JSON (truncated or damaged)"
            if why:
                problems.append(f"{path}: skipped, {why}")
                if warn:
                    warnings.warn(f"ledger record {path} is skipped: {why}", StudyWarning, stacklevel=2)
                continue
            ident = (record["record_id"], json.dumps(record, sort_keys=True))
            if ident in seen:
                continue
            seen.add(ident)
            record["_file"] = str(path)
            records.append(record)
    return records, problems


@dataclass
class Match:
    """The records that stand for a plan's runs."""

    used: Dict[str, Dict[str, Any]] = field(default_factory=dict)     # run key -> record
    stale: List[str] = field(default_factory=list)                     # one sentence per stale record
    duplicates: List[str] = field(default_factory=list)                # one sentence per run with several records
    foreign: int = 0                                                   # records of keys the plan does not have
    problems: List[str] = field(default_factory=list)                  # the unreadable files (from read_records)

    def missing(self, runs: Sequence[Run]) -> List[Run]:
        return [r for r in runs if r.key not in self.used]


def _order(record: Dict[str, Any]) -> Tuple[str, str]:
    return str(record.get("finished_at", "")), Path(record.get("_file", "")).name


def match_records(runs: Sequence[Run], records: Sequence[Dict[str, Any]], problems: Sequence[str] = (),
                  warn: bool = True) -> Match:
    """Which record stands for each run: one with the run's key and its config (same hash, or the same
    settings but for keys added to the trainer since, at their defaults: see
    :func:`~adamixup.study.plan.identity_differences`). Others of that key are stale (warned about, not
    used); several usable ones are duplicates, settled by :data:`DUPLICATE_RULE`."""
    by_key: Dict[str, List[Dict[str, Any]]] = {}
    for rec in records:
        by_key.setdefault(rec["key"], []).append(rec)
    want = {r.key: r for r in runs}
    match = Match(problems=list(problems))
    match.foreign = sum(len(v) for k, v in by_key.items() if k not in want)
    defaults_cache: Dict[str, Dict[str, Any]] = {}
    for key, recs in by_key.items():
        run = want.get(key)
        if run is None:
            continue
        usable = []
        for rec in recs:
            if rec["config_hash"] == run.config_hash:
                usable.append(rec)
                continue
            from .plan import default_identity

            mixer = str(run.identity.get("mixer"))
            defaults = defaults_cache.setdefault(f"{run.task}/{mixer}", default_identity(mixer, run.task))
            diff = identity_differences(rec["identity"], run.identity, defaults)
            if not diff:
                usable.append(rec)
                continue
            more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
            msg = (f"{rec.get('_file', key)}: stale, not reused: it was trained with other settings than the plan "
                   f"asks for ({', '.join(diff[:3])}{more}); {key} trains again")
            match.stale.append(msg)
            if warn:
                warnings.warn(msg, StudyWarning, stacklevel=2)
        if not usable:
            continue
        usable.sort(key=_order)
        match.used[key] = usable[0]
        if len(usable) > 1:
            others = ", ".join(Path(r.get("_file", "?")).name for r in usable[1:])
            match.duplicates.append(f"{key}: {len(usable)} records; used {Path(usable[0].get('_file', '?')).name} "
                                    f"(finished first), not {others}")
    return match


class Ledger:
    """One or several ledger folders read together; records are written into the first.

    ``Ledger("runs/studies/quick/ledger")``, ``Ledger(["ledger-cpu", "ledger-gpu"])``.
    """

    def __init__(self, folders: Union[PathLike, Iterable[PathLike]]):
        dirs = [folders] if isinstance(folders, (str, Path)) else list(folders)
        if not dirs:
            raise ValueError("a ledger needs at least one folder")
        self.folders = [Path(d) for d in dirs]

    @property
    def folder(self) -> Path:
        return self.folders[0]

    def write(self, record: Dict[str, Any]) -> Path:
        return write_record(self.folder, record)

    def read(self, warn: bool = True) -> Tuple[List[Dict[str, Any]], List[str]]:
        return read_records(self.folders, warn=warn)

    def match(self, runs: Sequence[Run], warn: bool = True) -> Match:
        records, problems = self.read(warn=warn)
        return match_records(runs, records, problems, warn=warn)
