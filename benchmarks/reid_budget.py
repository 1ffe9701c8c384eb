"""How long a CUHK01 re-ID run takes on this machine: the budget of the CPU ablation study (issue 16).

Times training steps (PK batch, the whole objective, backward, the optimizers' steps) of the strong
baseline's last ablation step (BNNeck, last stride 1, triplet + center loss, random erasing, label
smoothing) with ERM, MixUp and AdaMixUp on the ID loss, and one final evaluation (features of query
and gallery, mAP / CMC / mINP, plain and re-ranked), for each input size and backbone asked for;
then projects the seconds of an epoch and of a run. One torch thread, in this process.

    python benchmarks/reid_budget.py --data-root ../shared/data/cuhk01 --sizes 128x64 160x64 \
        --backbones resnet18 --steps 4 --out benchmarks/results

Writes ``reid_budget.md`` and ``reid_budget.json``; the machine's load is recorded beside the figures
(these CPUs are shared: a run beside another run is slower than one alone).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def measure(data_root: str, backbone: str, height: int, width: int, method: str, steps: int, warmup: int,
            evaluate: bool, data=None):
    from adamixup.reid.task import ReIDTask, build_config as build_reid_config

    cfg = build_reid_config("bot-a6-center", {
        "dataset": "cuhk01", "data_root": data_root, "pretrained": None, "backbone": backbone, "height": height,
        "width": width, "workers": 0, "method": method, "rerank": True, "quiet": True})
    task = ReIDTask(cfg, torch.device("cpu"), 0, 1, data=data)
    opts = task.optimizers()
    task.objective.train()
    gen = torch.Generator().manual_seed(0)
    times = []
    batches = task.batches(0, gen)
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        x, y = next(batches)
        out = task.objective(x, y)
        for o in opts:
            o.zero_grad(set_to_none=True)
        out.loss.backward()
        for o in opts:
            o.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    row = {"backbone": backbone, "height": height, "width": width, "method": method, "s_per_step": step,
           "steps_per_epoch": task.steps_per_epoch, "train_images": len(task.data.train),
           "parameters": sum(p.numel() for p in task.model.parameters())}
    if evaluate:
        t0 = time.perf_counter()
        task.model.eval()
        ev = task.evaluate(1, final=True)
        row["eval_seconds"] = time.perf_counter() - t0
        row["eval_images"] = len(task.data.query) + len(task.data.gallery)
        row["untrained_mAP"], row["untrained_rerank_mAP"] = ev["mAP"], ev["rerank_mAP"]
    return row, task.data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data/cuhk01")
    ap.add_argument("--sizes", nargs="+", default=["128x64"])
    ap.add_argument("--backbones", nargs="+", default=["resnet18"])
    ap.add_argument("--methods", nargs="+", default=["erm", "mixup", "adamixup"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--epochs", type=int, nargs="+", default=[30, 40, 60], help="run lengths to project")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows, data = [], None
    for backbone in args.backbones:
        for size in args.sizes:
            h, w = map(int, size.lower().split("x"))
            for j, method in enumerate(args.methods):
                row, data = measure(args.data_root, backbone, h, w, method, args.steps, args.warmup, evaluate=j == 0,
                                    data=data)
                rows.append(row)
                print(json.dumps(row), flush=True)
    load_end = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_1min_start": load,
            "load_1min_end": load_end, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "platform": platform.platform(), "threads": 1, "steps": args.steps, "warmup": args.warmup}
    (out / "reid_budget.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    evals = {(r["backbone"], r["height"], r["width"]): r for r in rows if "eval_seconds" in r}
    L = ["# CUHK01 re-ID budget on this CPU", "",
         "Issue 16: what a from-scratch run of the strong baseline costs here. Written by `benchmarks/reid_budget.py`.", "",
         f"{meta['when']}; one torch thread; machine load (1 min) {load:.1f} at the start, {load_end:.1f} at the end "
         f"({meta['cpu_count']} CPUs shared with whatever else ran). Settings: `bot-a6-center` (BNNeck, last stride 1, "
         "triplet + center loss, random erasing 0.5, label smoothing 0.1, flip, pad 10), P×K = 16×4, no pretrained "
         "weights, data loading in the training process (workers 0). A step = loading and augmenting the PK batch, "
         f"the objective, backward and the optimizers' steps; mean of {args.steps} steps after {args.warmup} warm-up.", "",
         "| backbone | input | method | parameters | s/step | steps/epoch | s/epoch (train) | final eval s (plain + re-ranked) | "
         + " | ".join(f"run of {e} epochs, min" for e in args.epochs) + " |",
         "|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(args.epochs)]
    for r in rows:
        ev = evals[(r["backbone"], r["height"], r["width"])]
        epoch = r["s_per_step"] * r["steps_per_epoch"]
        # evaluations every 10 epochs and after the last, each as long as the measured one
        runs = [(e * epoch + (e // 10 + (e % 10 != 0)) * ev["eval_seconds"]) / 60 for e in args.epochs]
        L.append(f"| {r['backbone']} | {r['height']}×{r['width']} | {r['method']} | {r['parameters']:,} | "
                 f"{r['s_per_step']:.2f} | {r['steps_per_epoch']} | {epoch:.0f} | {ev['eval_seconds']:.1f} | "
                 + " | ".join(f"{m:.0f}" for m in runs) + " |")
    L += ["", f"Query + gallery: {next(iter(evals.values()))['eval_images']} images. An untrained network's mAP "
          "(a sanity floor): " + ", ".join(f"{k[0]} {k[1]}×{k[2]}: {v['untrained_mAP']:.1f} % (re-ranked "
                                          f"{v['untrained_rerank_mAP']:.1f} %)" for k, v in evals.items()) + ".", ""]
    (out / "reid_budget.md").write_text("\n".join(L))
    print((out / "reid_budget.md").read_text())


if __name__ == "__main__":
    main()
