"""``compare``: each method over several seeds, the same data, model and schedule; a Table-1-shaped summary."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .. import plots
from .config import TrainConfig
from .loop import train

PAPER_NAMES = {"erm": "Baseline", "mixup": "MixUp", "adamixup": "AdaMixUp"}


def run_or_reuse(config: TrainConfig, run_dir: Path) -> Dict[str, Any]:
    """Train into ``run_dir``, or return its summary if it already finished (a rerun of ``compare``
    after a crash redoes only the runs that did not finish; an unfinished one is resumed)."""
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("finished"):
            return summary
    if (run_dir / "checkpoints" / "last.pt").is_file():
        from .loop import resume

        return resume(run_dir)
    if run_dir.exists():  # started but died before its first checkpoint
        for f in ("config.yaml", "metrics.jsonl"):
            (run_dir / f).unlink(missing_ok=True)
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


def compare(base: TrainConfig, methods: Sequence[str], seeds: Sequence[int], out_dir: Path) -> List[Dict[str, Any]]:
    """Train every method with every seed (same data, model, schedule); write compare.md/.json/.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, List[Dict[str, Any]]] = {}
    for method in methods:
        for seed in seeds:
            cfg = TrainConfig(**{**base.to_dict(), "method": method, "seed": seed, "run_dir": None,
                                 "mixer_args": {}})
            cfg.validate()
            results.setdefault(method, []).append(run_or_reuse(cfg, out_dir / f"{method}-seed{seed}"))
    rows = summarize(results, base.dataset)
    md = table_markdown(rows)
    header = (f"# {base.dataset}: {', '.join(methods)} over seeds {', '.join(map(str, seeds))}\n\n"
              f"Model {base.model}, {base.epochs} epochs, batch {base.batch_size}, {base.optimizer} lr {base.lr}, "
              f"{base.schedule} schedule; final-epoch test error.\n\n")
    (out_dir / "compare.md").write_text(header + md + "\n")
    (out_dir / "compare.json").write_text(json.dumps({"config": base.to_dict(), "rows": rows}, indent=2))
    plots.compare_bars(rows, out_dir / "compare.png", title=f"{base.dataset}: test error over {len(seeds)} seeds")
    return rows
