"""``compare``: each method over several seeds on the same data, model and schedule — a small study
made on the spot, on top of the ledger — and a Table-1-shaped summary (compare.md, .json, .png).

A run is reused only when its ledger record was trained with the same settings (the same rule as
every study: :func:`adamixup.study.ledger.match_records`); a run killed midway resumes from its
checkpoint. Finished run folders (checkpoints, plots) are kept as ``<out>/<method>-seed<S>``.
"""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .errors import StudyError
from .ledger import Ledger
from .plan import RESERVED, DatasetSpec, Folds, MethodSpec, Plan, expand

PAPER_NAMES = {"erm": "Baseline", "mixup": "MixUp", "adamixup": "AdaMixUp"}


def relative_improvement(base: float, new: float) -> float:
    """(base − new) / base in %, the paper's "relative improvement" of an error rate."""
    return 100.0 * (base - new) / base if base > 0 else float("nan")


def table_markdown(rows: List[Dict[str, Any]]) -> str:
    by = {r["method"]: r for r in rows}
    lines = ["| method | test error (%) mean ± std | runs | rel. impr. over Baseline | rel. impr. over MixUp | epoch time × MixUp |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel_base = f"{relative_improvement(by['erm']['mean'], r['mean']):+.1f}%" if "erm" in by and r["method"] != "erm" else "—"
        rel_mix = (f"{relative_improvement(by['mixup']['mean'], r['mean']):+.1f}%"
                   if "mixup" in by and r["method"] not in ("erm", "mixup") else "—")
        speed = f"{r['epoch_seconds'] / by['mixup']['epoch_seconds']:.2f}" if "mixup" in by else "—"
        lines.append(f"| {PAPER_NAMES.get(r['method'], r['method'])} | {r['mean']:.2f} ± {r['std']:.2f} | {r['runs']} "
                     f"| {rel_base} | {rel_mix} | {speed} |")
    return "\n".join(lines)


def compare_plan(base, methods: Sequence[str], seeds: Sequence[int]) -> Plan:
    """The study that ``compare`` runs: ``base``'s data set and settings, ``methods`` (registry names, their
    default options) × ``seeds``, on ``base``'s fold (or the data set's own split)."""
    cfg = base.to_dict()
    if cfg.get("mixer_args"):
        raise StudyError("compare runs several methods; mixer_args would apply to all of them: "
                         "put method options in a study plan instead")
    if len(set(methods)) < len(methods) or not methods:
        raise StudyError(f"compare needs distinct methods, got {', '.join(methods) or 'none'}")
    from ..mixing import METHODS

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise StudyError(f"unknown method {bad[0]!r}; choose among {', '.join(METHODS)}")
    fold = cfg.get("fold")
    folds = Folds(None, (None,)) if fold is None else Folds(int(cfg["num_folds"]), (int(fold),))
    overrides = {k: v for k, v in cfg.items() if k not in RESERVED and k not in ("tensorboard",)}
    label = str(cfg["dataset"])
    return Plan(name=f"compare-{label}", source="adamixup compare",
                datasets={label: DatasetSpec(label, "", overrides, folds)},
                methods={m: MethodSpec(m, m, {}) for m in methods}, seeds=list(seeds))


def summarize(records: List[Dict[str, Any]], dataset: str, methods: Sequence[str]) -> List[Dict[str, Any]]:
    rows = []
    for method in methods:
        runs = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
        errors = [float(r["final"]["test_error"]) for r in runs]
        seconds = [float(r["final"]["epoch_seconds_mean"] or 0.0) for r in runs]
        if not errors:
            continue
        rows.append({"dataset": dataset, "method": method, "runs": len(errors), "errors": errors,
                     "mean": statistics.fmean(errors), "std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                     "epoch_seconds": statistics.fmean(seconds)})
    return rows


def compare(base, methods: Sequence[str], seeds: Sequence[int], out_dir: Path,
            log: Callable[[str], None] = print, workers: int = 1, threads: Optional[int] = None) -> List[Dict[str, Any]]:
    """Train every method with every seed (same data, model, schedule; ``base``: a ``TrainConfig``) with
    its ledger in ``out_dir/ledger``; write compare.md/.json/.png into ``out_dir``. Every config is
    validated before anything is written; ``log`` is told what is reused and what trains."""
    from ..train import ConfigError

    out_dir = Path(out_dir)
    plan = compare_plan(base, list(methods), list(seeds))
    try:
        runs = expand(plan)
    except StudyError as err:
        raise ConfigError(str(err)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; choose another --out")
    from ..train.rundir import leaves_nothing_new

    # a failed or interrupted comparison leaves nothing, unless a finished record or a checkpoint is worth keeping
    worth_keeping = lambda folder: any(folder.rglob("*.pt")) or any((folder / "ledger").glob("*.json"))  # noqa: E731
    with leaves_nothing_new(out_dir, keep=worth_keeping):
        out_dir.mkdir(parents=True, exist_ok=True)
        return _compare(base, plan, runs, methods, seeds, out_dir, log, workers, threads)


def _compare(base, plan, runs, methods, seeds, out_dir: Path, log, workers, threads) -> List[Dict[str, Any]]:
    ledger = Ledger(out_dir / "ledger")
    match = ledger.match(runs)
    for key in match.used:
        log(f"{key}: finished earlier with the same settings; reusing it")
    for msg in match.stale:
        log(msg)
    from .runner import run_plan

    device = str(base.device)
    keep = out_dir / ".runs"
    result = run_plan(plan, ledger, workers=workers, threads=threads, device=device, keep_runs=keep, runs=runs)
    # finished run folders as compare always laid them out: <out>/<method>-seed<S>
    if keep.is_dir():
        for run in runs:
            src = keep / run.dataset / run.method / run.key.rsplit("/", 1)[1]
            if src.is_dir():
                dst = out_dir / f"{run.method}-seed{run.seed}"
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.move(str(src), str(dst))
        shutil.rmtree(keep, ignore_errors=True)
    if result["failed"]:
        first = result["failed"][0]
        raise StudyError(f"{len(result['failed'])} run(s) failed, the first {first['key']}: {first['error']}; "
                         "run the same command again to retry them")
    match = ledger.match(runs, warn=False)
    records = [match.used[r.key] for r in runs if r.key in match.used]
    rows = summarize(records, base.dataset, methods)
    header = (f"# {base.dataset}: {', '.join(methods)} over seeds {', '.join(map(str, seeds))}\n\n"
              f"Model {base.model}, {base.epochs} epochs, batch {base.batch_size}, {base.optimizer} lr {base.lr}, "
              f"{base.schedule} schedule; final-epoch test error.\n\n")
    (out_dir / "compare.md").write_text(header + table_markdown(rows) + "\n")
    from .report import _jsonable

    (out_dir / "compare.json").write_text(json.dumps(_jsonable({"config": base.to_dict(), "rows": rows}), indent=2))
    from ..classify import plots

    plots.compare_bars(rows, out_dir / "compare.png", title=f"{base.dataset}: test error over {len(seeds)} seeds")
    return rows
