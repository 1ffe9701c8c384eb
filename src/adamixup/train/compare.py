"""``compare``: each method over several seeds, the same data, model and schedule; a Table-1-shaped summary."""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import plots
from .base import finite_json, load_run_config
from .checkpoint import CheckpointError, TrainingError
from .config import ConfigError, TrainConfig, config_from_dict
from .loop import train

PAPER_NAMES = {"erm": "Baseline", "mixup": "MixUp", "adamixup": "AdaMixUp"}
# keys that do not change what a run computes: a saved run that differs only in them is reused
DISPLAY_KEYS = ("run_dir", "quiet", "tensorboard", "stop_on_divergence")
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints", "summary.json")


def config_differences(saved: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """``key saved -> wanted`` for every setting (other than :data:`DISPLAY_KEYS`) that differs."""
    keys = sorted((set(saved) | set(wanted)) - set(DISPLAY_KEYS))
    return [f"{k} {saved.get(k)!r} -> {wanted.get(k)!r}" for k in keys if saved.get(k) != wanted.get(k)]


def _finished_summary(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("finished") else None


def _why_not_reusable(config: TrainConfig, run_dir: Path) -> Optional[str]:
    try:
        saved = load_run_config(run_dir, config_from_dict)
    except (TrainingError, ConfigError) as err:
        return f"its config cannot be used ({err})"
    diff = config_differences(saved.to_dict(), config.to_dict())
    if diff:
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        return f"it was trained with other settings ({', '.join(diff[:3])}{more})"
    return None


def run_or_reuse(config: TrainConfig, run_dir: Path, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train ``config`` into ``run_dir``, reusing what is there only when its saved config equals
    ``config`` (but for :data:`DISPLAY_KEYS`): a finished run is read back, an unfinished one resumed.
    A run with other settings (or an unreadable one) is deleted and trained again, which ``log`` says."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, where a run of this comparison belongs; move it away")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not any((run_dir / f).exists() for f in RUN_FILES):
            raise ConfigError(f"{run_dir} holds files that are not a run's; move them away or choose another output folder")
        why = _why_not_reusable(config, run_dir)
        if why is None:
            summary = _finished_summary(run_dir)
            if summary is not None:
                log(f"{run_dir}: finished earlier with the same settings; reusing it")
                return summary
            if (run_dir / "checkpoints" / "last.pt").is_file():
                from .loop import resume

                try:
                    log(f"{run_dir}: unfinished, same settings; resuming it")
                    return resume(run_dir, quiet=config.quiet)
                except CheckpointError as err:
                    why = f"it cannot be resumed ({err})"
        if why is not None:
            log(f"{run_dir}: {why}; training it again")
        shutil.rmtree(run_dir)
    return train(config, run_dir)


def summarize(results: Dict[str, List[Dict[str, Any]]], dataset: str) -> List[Dict[str, Any]]:
    rows = []
    for method, runs in results.items():
        errors = [r["final_test_error"] for r in runs]
        seconds = [r["epoch_seconds_mean"] for r in runs]
        rows.append({
            "dataset": dataset, "method": method, "runs": len(errors), "errors": errors,
            "mean": statistics.fmean(errors), "std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "epoch_seconds": statistics.fmean(seconds),
        })
    return rows


def relative_improvement(base: float, new: float) -> float:
    """(base − new) / base in %, the paper's "relative improvement" of an error rate."""
    return 100.0 * (base - new) / base if base > 0 else float("nan")


def table_markdown(rows: List[Dict[str, Any]]) -> str:
    by = {r["method"]: r for r in rows}
    lines = ["| method | test error (%) mean ± std | runs | rel. impr. over Baseline | rel. impr. over MixUp | epoch time × MixUp |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel_base = f"{relative_improvement(by['erm']['mean'], r['mean']):+.1f}%" if "erm" in by and r["method"] != "erm" else "—"
        rel_mix = f"{relative_improvement(by['mixup']['mean'], r['mean']):+.1f}%" if "mixup" in by and r["method"] not in ("erm", "mixup") else "—"
        speed = f"{r['epoch_seconds'] / by['mixup']['epoch_seconds']:.2f}" if "mixup" in by else "—"
        lines.append(f"| {PAPER_NAMES.get(r['method'], r['method'])} | {r['mean']:.2f} ± {r['std']:.2f} | {r['runs']} "
                     f"| {rel_base} | {rel_mix} | {speed} |")
    return "\n".join(lines)


def compare(base: TrainConfig, methods: Sequence[str], seeds: Sequence[int], out_dir: Path,
            log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Train every method with every seed (same data, model, schedule) into ``out_dir/<method>-seed<S>``;
    write compare.md/.json/.png. Every config is validated before anything is written; ``log`` is
    told which run is on and whether a saved one is reused (see :func:`run_or_reuse`)."""
    out_dir = Path(out_dir)
    configs = []
    for method in methods:
        for seed in seeds:
            cfg = TrainConfig(**{**base.to_dict(), "method": method, "seed": seed, "run_dir": None, "mixer_args": {}})
            configs.append(cfg.validate())
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, List[Dict[str, Any]]] = {}
    for i, cfg in enumerate(configs, 1):
        run_dir = out_dir / f"{cfg.method}-seed{cfg.seed}"
        log(f"[{i}/{len(configs)}] {cfg.method}, seed {cfg.seed}: {run_dir}")
        results.setdefault(cfg.method, []).append(run_or_reuse(cfg, run_dir, log))
    rows = summarize(results, base.dataset)
    md = table_markdown(rows)
    header = (f"# {base.dataset}: {', '.join(methods)} over seeds {', '.join(map(str, seeds))}\n\n"
              f"Model {base.model}, {base.epochs} epochs, batch {base.batch_size}, {base.optimizer} lr {base.lr}, "
              f"{base.schedule} schedule; final-epoch test error.\n\n")
    (out_dir / "compare.md").write_text(header + md + "\n")
    (out_dir / "compare.json").write_text(json.dumps(finite_json({"config": base.to_dict(), "rows": rows}), indent=2))
    plots.compare_bars(rows, out_dir / "compare.png", title=f"{base.dataset}: test error over {len(seeds)} seeds")
    return rows
