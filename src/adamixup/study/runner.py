"""Running a plan: train only the runs the ledger lacks, each in a scratch folder, and write its record.

- Resume is rerunning the same command: a run whose record is in the ledger is not trained again.
- A run killed midway leaves its scratch folder ``<scratch>/<key>__<hash>`` (the hash of its config, so
  a changed plan never continues another config's run); the next time, the trainer's own resume
  continues it from ``checkpoints/last.pt`` (a folder without a checkpoint, or one that cannot be
  resumed, is removed and the run starts again). A scratch folder whose run finished but whose record
  was not yet written becomes its record without training.
- When a run's record is written its scratch folder is removed (or moved to ``keep_runs`` for later
  use, e.g. the intrusion measurement).
- Several runs train at once in spawned processes (``workers``), each with ``threads`` torch threads.
- A failed run does not stop the study: it is reported at the end and trained again by the next call.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import StudyError
from .ledger import Ledger, Match, make_record, machine_info, write_record
from .plan import Plan, Run, expand, select_runs
from .tasks import get_task

PathLike = Union[str, Path]
# (config dict, scratch folder, device) -> (summary, per-epoch metrics, resumed?)
TrainFn = Callable[[Dict[str, Any], Path, str], Tuple[Dict[str, Any], List[Dict[str, Any]], bool]]


def default_ledger(plan: Plan) -> Path:
    return Path("runs") / "studies" / plan.name / "ledger"


def scratch_root(ledger: Ledger) -> Path:
    """Where unfinished runs live: beside the (first) ledger folder, never inside it (a ledger may be
    committed; scratch folders hold checkpoints)."""
    return ledger.folder.parent / f"{ledger.folder.name}-scratch"


def scratch_dir(root: Path, run: Run) -> Path:
    return Path(root) / f"{run.slug}__{run.config_hash[:12]}"


def execute(run: Run, plan_name: str, ledger_dir: str, scratch: str, device: str = "auto",
            keep_dir: Optional[str] = None, train_fn: Optional[TrainFn] = None) -> Dict[str, Any]:
    """Train one run (in this process or a worker), write its record into ``ledger_dir``, then remove
    (or move to ``keep_dir``) its scratch folder. Returns ``{"key", "metric", "score", "seconds"}`` or
    ``{"key", "error", "trace"}``; never raises but for Ctrl-C."""
    run_dir = scratch_dir(Path(scratch), run)
    start = time.perf_counter()
    log = run_dir.parent / f"{run_dir.name}.log"
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f, contextlib.redirect_stdout(f):
            train = train_fn or get_task(run.task).train_or_resume  # trains, resumes or reads back the run
            summary, history, resumed = train(run.config, run_dir, device)
        if not history:
            raise StudyError(f"{run.key}: the run logged no epoch")
        seconds = time.perf_counter() - start
        record = make_record(plan_name, run, summary, history, seconds, machine_info(str(summary.get("device") or device)),
                             resumed=resumed)
        if run.cross:  # test-only data sets: scored now, while the run's folder (its checkpoint) is still here
            with open(log, "a") as f, contextlib.redirect_stdout(f):
                record["final"].update(get_task(run.task).score_cross(run_dir, run.cross, device))
        write_record(ledger_dir, record)
        if keep_dir and run_dir.is_dir():
            target = Path(keep_dir) / run.dataset / run.method / run.key.rsplit("/", 1)[1]
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(run_dir), str(target))
        elif run_dir.is_dir():
            shutil.rmtree(run_dir)
        log.unlink(missing_ok=True)
        task = get_task(run.task)
        key = task.score_key(bool(run.config.get("validation_fraction")))
        return {"key": run.key, "dataset": run.dataset, "method": run.method, "metric": task.names[key],
                "score": record["final"].get(key), "seconds": seconds}
    except Exception as err:  # one failed run must not stop the study; it is reported and retried next time
        return {"key": run.key, "dataset": run.dataset, "method": run.method, "error": f"{type(err).__name__}: {err}",
                "trace": traceback.format_exc(), "seconds": time.perf_counter() - start, "log": str(log)}


def _init_worker(threads: Optional[int]) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# estimates and status
# --------------------------------------------------------------------------------------------------
def seconds_per_cell(records: Iterable[Dict[str, Any]]) -> Dict[Tuple[str, str], float]:
    """Mean wall seconds of a run per (data set, method), from records that trained in one go."""
    sums: Dict[Tuple[str, str], List[float]] = {}
    for rec in records:
        if rec.get("resumed"):
            continue
        sums.setdefault((rec["dataset"], rec["method"]), []).append(float(rec["seconds"]))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def estimate(runs: Sequence[Run], per_cell: Dict[Tuple[str, str], float]) -> Tuple[float, int]:
    """(seconds, runs without an estimate): each run at its cell's mean, else its data set's mean over
    the methods measured (a rough stand-in); runs of data sets with no record are not counted."""
    per_ds: Dict[str, List[float]] = {}
    for (ds, _), s in per_cell.items():
        per_ds.setdefault(ds, []).append(s)
    total, unknown = 0.0, 0
    for run in runs:
        s = per_cell.get((run.dataset, run.method))
        if s is None and run.dataset in per_ds:
            s = sum(per_ds[run.dataset]) / len(per_ds[run.dataset])
        if s is None:
            unknown += 1
        else:
            total += s
    return total, unknown


def _score(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}%"


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_status(plan: Plan, ledger: Union[Ledger, PathLike, Sequence[PathLike]], runs: Optional[Sequence[Run]] = None,
                warn: bool = False, only: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """What the ledger holds of ``plan``: runs done and left, per cell, stale and unreadable records,
    duplicates, and an estimate of the time left from the ledger's own seconds per cell. ``only``:
    shell-style patterns of run keys; the counts and the time left cover those runs (the estimate still
    learns from every record of the plan)."""
    ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    runs = list(runs) if runs is not None else expand(plan)
    match = ledger.match(runs, warn=warn)
    per_cell = seconds_per_cell(match.used.values())
    if only:
        runs = select_runs(runs, only)
    todo = match.missing(runs)
    seconds, unknown = estimate(todo, per_cell)
    cells = {}
    for run in runs:
        cell = cells.setdefault(f"{run.dataset}/{run.method}", {"dataset": run.dataset, "method": run.method,
                                                                 "planned": 0, "done": 0})
        cell["planned"] += 1
        cell["done"] += run.key in match.used
    return {"plan": plan.name, "ledger": [str(f) for f in ledger.folders], "planned": len(runs),
            "done": sum(r.key in match.used for r in runs), "only": list(only or []),
            "todo": [r.key for r in todo], "cells": list(cells.values()), "stale": match.stale, "problems": match.problems,
            "duplicates": match.duplicates, "foreign": match.foreign, "estimate_seconds": seconds,
            "estimate_unknown": unknown, "seconds_per_cell": {f"{d}/{m}": s for (d, m), s in per_cell.items()}}


def format_status(status: Dict[str, Any], workers: int = 1) -> str:
    """The status as text: one line per cell, then what is left and how long it may take."""
    subset = f" (the runs matching {', '.join(status['only'])})" if status.get("only") else ""
    lines = [f"plan {status['plan']}: {status['done']} of {status['planned']} runs{subset} in the ledger "
             f"({', '.join(status['ledger'])})"]
    width = max((len(f"{c['dataset']}/{c['method']}") for c in status["cells"]), default=10)
    for c in status["cells"]:
        name = f"{c['dataset']}/{c['method']}"
        s = status["seconds_per_cell"].get(name)
        lines.append(f"  {name:<{width}}  {c['done']:>3}/{c['planned']:<3}" + (f"  {s:.0f} s/run" if s else ""))
    for what in ("problems", "stale", "duplicates"):
        for msg in status[what]:
            lines.append(f"  {what[:-1] if what != 'duplicates' else 'duplicate'}: {msg}")
    if status["foreign"]:
        lines.append(f"  {status['foreign']} record(s) in the ledger belong to runs this plan does not have (ignored)")
    left = len(status["todo"])
    if left:
        est = status["estimate_seconds"]
        text = f"{left} run(s) left"
        if est:
            text += (f"; about {_minutes(est)} of run time by this ledger's own seconds per run"
                     + (f" (with {workers} workers sharing the machine, wall time between {_minutes(est / workers)} "
                        f"and {_minutes(est)})" if workers > 1 else ""))
        if status["estimate_unknown"]:
            text += f"; {status['estimate_unknown']} of them of data sets with no record yet (no estimate)"
        lines.append(text)
    else:
        lines.append("nothing left to train")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------------
class _Progress:
    """Runs done / total and the time left (from the seconds per cell, measured so far)."""

    def __init__(self, total: int, done: int, todo: Sequence[Run], per_cell: Dict[Tuple[str, str], float],
                 workers: int, show: Optional[bool]):
        from tqdm.auto import tqdm

        self.left = list(todo)
        self.per_cell = dict(per_cell)
        self.samples: Dict[Tuple[str, str], List[float]] = {}
        self.workers = workers
        self.start = time.perf_counter()
        self.done_now = 0
        self.count, self.total = done, total
        disable = (not sys.stderr.isatty()) if show is None else not show
        self.bar = tqdm(total=total, initial=done, unit="run", desc="study", disable=disable, dynamic_ncols=True,
                        bar_format="{desc}: {n_fmt}/{total_fmt} runs |{bar}| {elapsed} elapsed{postfix}")
        self._postfix()

    def left_seconds(self) -> Optional[float]:
        seconds, unknown = estimate(self.left, self.per_cell)
        if unknown and self.done_now:  # no record of that data set yet: this session's mean run
            seconds += unknown * (time.perf_counter() - self.start) * self.workers / self.done_now
        elif unknown:
            return None
        return seconds / self.workers

    def _postfix(self) -> None:
        left = self.left_seconds()
        text = ("done" if not self.left else f"about {_minutes(left)} left" if left is not None
                else "time left: known after the first run")
        self.bar.set_postfix_str(text, refresh=True)

    def finished(self, run: Run, result: Dict[str, Any]) -> None:
        self.done_now += 1
        self.left = [r for r in self.left if r.key != run.key]
        if "error" not in result:
            cell = (run.dataset, run.method)
            self.samples.setdefault(cell, []).append(result["seconds"])
            self.per_cell[cell] = sum(self.samples[cell]) / len(self.samples[cell])
        self.count += 1
        self.bar.update(1)
        self._postfix()
        left = self.left_seconds()
        what = (f"FAILED ({result['error']})" if "error" in result
                else f"{result['metric']} {_score(result['score'])} ({result['seconds']:.0f} s)")
        self.bar.write(f"[{self.count}/{self.total}] {run.key}: {what}"
                       + (f"; about {_minutes(left)} left" if left is not None and self.left else ""), file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def run_plan(plan: Plan, ledger: Union[Ledger, PathLike, Sequence[PathLike], None] = None, workers: int = 1,
             threads: Optional[int] = None, device: str = "auto", keep_runs: Optional[PathLike] = None,
             train_fn: Optional[TrainFn] = None, progress: Optional[bool] = None,
             runs: Optional[Sequence[Run]] = None, only: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Train the runs of ``plan`` that ``ledger`` lacks and write a record for each.

    ledger:    a folder (records are written there), several (read together, written into the first),
               or None for ``runs/studies/<plan>/ledger``.
    workers:   runs in parallel, each in a spawned process (1: in this process).
    threads:   torch threads per run process (and of this process when ``workers`` is 1).
    device:    where the runs train (auto, cpu, cuda, cuda:1, mps); not part of a run's identity.
    keep_runs: move each finished run folder (checkpoints, plots) to ``keep_runs/<dataset>/<method>/<fold-seed>``
               instead of deleting it.
    train_fn:  the function that trains one run (tests inject one; default: the run's task's ``train_or_resume``, :mod:`adamixup.study.tasks`).
    progress:  show the progress bar (default: when stderr is a terminal; a line per run is printed anyway).
    only:      shell-style patterns of run keys (``dataset/method/fold-seed``): train only the matching runs
               (to fit a session, say); their records are the plan's own, as if the whole plan had run.

    Returns ``{"planned", "done_before", "trained", "failed": [{"key", "error"}], "ledger"}``.
    """
    if workers < 1:
        raise StudyError(f"workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise StudyError(f"threads must be at least 1, got {threads}")
    ledger = Ledger(default_ledger(plan) if ledger is None else ledger) if not isinstance(ledger, Ledger) else ledger
    runs = list(runs) if runs is not None else expand(plan)
    match: Match = ledger.match(runs)
    per_cell = seconds_per_cell(match.used.values())
    if only:
        runs = select_runs(runs, only)
    todo = match.missing(runs)
    scratch = scratch_root(ledger)
    result: Dict[str, Any] = {"planned": len(runs), "done_before": sum(r.key in match.used for r in runs),
                              "trained": 0, "failed": [],
                              "ledger": str(ledger.folder)}
    if not todo:
        return result
    ledger.folder.mkdir(parents=True, exist_ok=True)
    bar = _Progress(len(runs), result["done_before"], todo, per_cell, workers, progress)
    args = (plan.name, str(ledger.folder), str(scratch), device, str(keep_runs) if keep_runs else None, train_fn)

    def done(run: Run, res: Dict[str, Any]) -> None:
        bar.finished(run, res)
        if "error" in res:
            result["failed"].append({"key": res["key"], "error": res["error"], "trace": res.get("trace"),
                                     "log": res.get("log")})
        else:
            result["trained"] += 1

    try:
        if workers == 1:
            if threads:
                import torch

                torch.set_num_threads(threads)
            for run in todo:
                done(run, execute(run, *args))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker, initargs=(threads,)) as pool:
                futures = {pool.submit(execute, run, *args): run for run in todo}
                try:
                    for fut in as_completed(futures):
                        done(futures[fut], fut.result())
                except BaseException:  # Ctrl-C: finished runs have their records; the rest resume next time
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
    return result


def remove_scratch(ledger: Union[Ledger, PathLike]) -> int:
    """Remove the scratch folders of unfinished runs (their checkpoints); returns how many."""
    ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    root = scratch_root(ledger)
    if not root.is_dir():
        return 0
    n = sum(1 for p in root.iterdir() if p.is_dir())
    shutil.rmtree(root)
    return n
