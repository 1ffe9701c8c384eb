"""The strong baseline's ablation chain, three regimes side by side: the published Market-1501 chain
(Luo et al., CVPR-W 2019, Table 1: ImageNet ResNet-50 at 256x128), ours on CUHK01 from scratch
(plan ``cuhk01-bot-cpu``) and ours on CUHK01 from ImageNet weights (plan ``cuhk01-lite0``), one
identity split, read from the committed ledgers (only records that match their plan's current runs).

    python benchmarks/reid_chain.py --out benchmarks/results

Writes ``reid_chain.md`` and ``reid_chain.json``: each step's mAP / rank-1 / re-ranked mAP and what the
step added to mAP, and the wall- and core-hours each ledger holds. A step not yet in a ledger says so.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

STEPS = [
    ("a0-baseline", "a0 baseline (ID + triplet)"),
    ("a1-warmup", "a1 + warm-up"),
    ("a2-erasing", "a2 + random erasing"),
    ("a3-smoothing", "a3 + label smoothing"),
    ("a4-laststride", "a4 + last stride 1"),
    ("a5-bnneck", "a5 + BNNeck"),
    ("a6-center", "a6 + center loss (the strong baseline)"),
]

# Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification" (CVPR-W 2019),
# Table 1, Market-1501: (rank-1, mAP) of each step, ResNet-50 from ImageNet at 256x128.
PUBLISHED_MARKET = {
    "a0-baseline": (87.7, 74.0), "a1-warmup": (88.7, 75.2), "a2-erasing": (91.3, 79.3),
    "a3-smoothing": (91.4, 80.3), "a4-laststride": (92.0, 81.7), "a5-bnneck": (94.1, 85.7),
    "a6-center": (94.5, 85.9),
}

ROOT = Path(__file__).resolve().parents[1]
REGIMES = [  # (column title, plan, ledger relative to the repository)
    ("CUHK01 from scratch (ResNet-18)", "cuhk01-bot-cpu", "benchmarks/ledgers/cuhk01-bot-cpu"),
    ("CUHK01 from ImageNet (EfficientNet-Lite0)", "cuhk01-lite0", "benchmarks/ledgers/cuhk01-lite0"),
]


def chain(plan_name: str, ledger: str, split: int) -> Dict[str, Any]:
    """The chain's records of one plan on one split (step -> its final metrics) and the ledger's
    wall- and core-hours (every matched record, all splits)."""
    from adamixup.study.ledger import Ledger
    from adamixup.study.plan import expand, load_plan

    runs = expand(load_plan(plan_name))
    match = Ledger(ROOT / ledger).match(runs, warn=False)
    steps: Dict[str, Optional[Dict[str, float]]] = {}
    for step, _ in STEPS:
        rec = next((r for r in match.used.values() if r["method"] == step and r["fold"] == split), None)
        steps[step] = None if rec is None else {
            "mAP": rec["final"]["mAP"], "rank1": rec["final"]["rank1"], "rerank_mAP": rec["final"].get("rerank_mAP")}
    last = STEPS[-1][0]
    return {"plan": plan_name, "ledger": ledger, "steps": steps, "runs_done": len(match.used),
            "runs_planned": len(runs), "wall_hours": sum(r["seconds"] for r in match.used.values()) / 3600,
            # wall time x torch threads: a run resumed alone on two threads counts both cores
            "core_hours": sum(r["seconds"] * r["machine"].get("torch_threads", 1) for r in match.used.values()) / 3600,
            "multi_thread_runs": sum(r["machine"].get("torch_threads", 1) > 1 for r in match.used.values()),
            "resumed": sum(bool(r.get("resumed")) for r in match.used.values()),
            "last_step_mAP_by_split": {r["fold"]: r["final"]["mAP"] for r in match.used.values() if r["method"] == last}}


def _delta(value: Optional[float], before: Optional[float]) -> str:
    if value is None or before is None:
        return ""
    d = round(value - before, 1)
    return " (±0.0)" if d == 0 else f" ({d:+.1f})".replace("-", "−")


def table(regimes: Sequence[Dict[str, Any]], titles: Sequence[str], split: int) -> str:
    head = ["step", "Market-1501, published: mAP (Δ) / rank-1"] + [f"{t}, split {split}: mAP (Δ) / rank-1 / re-ranked mAP"
                                                                  for t in titles]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    prev_pub, prev = None, [None] * len(regimes)
    for step, label in STEPS:
        r1, m = PUBLISHED_MARKET[step]
        cells = [label, f"{m:.1f}{_delta(m, prev_pub)} / {r1:.1f}"]
        prev_pub = m
        for i, reg in enumerate(regimes):
            s = reg["steps"][step]
            if s is None:
                cells.append("not run yet")
                prev[i] = None
                continue
            rr = "—" if s["rerank_mAP"] is None else f"{s['rerank_mAP']:.1f}"
            cells.append(f"{s['mAP']:.1f}{_delta(s['mAP'], prev[i])} / {s['rank1']:.1f} / {rr}")
            prev[i] = s["mAP"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _hours(reg: Dict[str, Any]) -> str:
    """One ledger's run count and machine time, with what makes the sums partial or uneven."""
    notes = []
    if reg["resumed"]:
        notes.append(f"{reg['resumed']} resumed: their records count only the stretch after the last resume")
    if reg["multi_thread_runs"]:
        notes.append(f"{reg['multi_thread_runs']} ran alone on more threads (a resumed one: its last stretch)")
    return (f"`{reg['plan']}`: {reg['runs_done']} of {reg['runs_planned']} runs, {reg['wall_hours']:.1f} wall-hours, "
            f"{reg['core_hours']:.1f} core-hours" + (f" ({'; '.join(notes)})" if notes else ""))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=int, default=0, help="the identity split of the chain (default 0)")
    ap.add_argument("--out", default="benchmarks/results", help="folder for reid_chain.md / .json")
    args = ap.parse_args(argv)
    regimes = [chain(plan, ledger, args.split) for _, plan, ledger in REGIMES]
    titles = [t for t, _, _ in REGIMES]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hours = "; ".join(_hours(r) for r in regimes)
    spreads = []  # the strong baseline's mAP over the splits each regime has: how far runs lie apart
    for title, reg in zip(titles, regimes):
        by_split = reg["last_step_mAP_by_split"]
        if len(by_split) > 1:
            spreads.append(f"{title}: {min(by_split.values()):.1f}–{max(by_split.values()):.1f} over splits "
                           f"{', '.join(str(k) for k in sorted(by_split))}")
    spreads = "; ".join(spreads)
    md = (f"# The strong baseline's ablation chain in three regimes\n\n"
          f"Built by `python benchmarks/reid_chain.py --out {args.out}` from the ledgers "
          f"({', '.join('`' + r['ledger'] + '`' for r in regimes)}; only records that match their plan). "
          f"mAP and rank-1 in %, final epoch; (Δ): what the step added to the step before it, in mAP points. "
          f"One run per step and regime: differences of a few points are within a single run's noise"
          + (f" (the strong baseline's mAP, {spreads})" if spreads else "") + ". With one true match per query, "
          f"mINP equals mAP on CUHK01. Published: Luo et al. (CVPR-W 2019), Table 1, ImageNet ResNet-50 at "
          f"256×128 on Market-1501; a different data set and network, beside ours for orientation only.\n\n"
          f"{table(regimes, titles, args.split)}\n\n"
          f"Machine time in the ledgers (every split; the sum of each run's wall time, and of wall time × "
          f"its torch threads, the core-hours; one thread per run, two runs at a time on a 2-core CPU, "
          f"unless said): {hours}.\n")
    (out / "reid_chain.md").write_text(md)
    (out / "reid_chain.json").write_text(json.dumps({"split": args.split, "published_market1501": PUBLISHED_MARKET,
                                                      "regimes": regimes}, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
