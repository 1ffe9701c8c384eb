"""How long a CUHK01 re-ID run takes on this machine: the budget of the CPU ablation studies (issues 16
and 28).

Times training steps (PK batch, the whole objective, backward, the optimizers' steps) of a strong
baseline recipe (by default the last ablation step: BNNeck, last stride 1, triplet + center loss,
random erasing, label smoothing) with each method asked for on the ID loss, and one final evaluation
(features of query and gallery, mAP / CMC / mINP, plain and re-ranked), for each input size and
backbone asked for; then projects the seconds of an epoch and of a run. One torch thread, in this
process. From scratch unless ``--pretrained recipe`` keeps the recipe's weights (then the untrained
mAP is that of the ImageNet features).

    python benchmarks/reid_budget.py --data-root ../shared/data/cuhk01 --sizes 128x64 160x64 \
        --backbones resnet18 --steps 4 --out benchmarks/results
    python benchmarks/reid_budget.py --config bot-lite0 --pretrained recipe --sizes 128x64 256x128 \
        --methods erm mixup adamixup-paper adamixup --steps 2 --epochs 40 --eval-every 20 --name reid_budget_lite0

Writes ``NAME.md`` and ``NAME.json`` (``--name``, default ``reid_budget``); the machine's load is
recorded beside the figures (these CPUs are shared: a run beside another run is slower than one alone).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch


def measure(data_root: str, backbone: Optional[str], height: int, width: int, method: str, steps: int, warmup: int,
            evaluate: bool, data=None, config: str = "bot-a6-center", pretrained: bool = False):
    from adamixup.reid.task import ReIDTask, build_config as build_reid_config

    overrides = {"dataset": "cuhk01", "data_root": data_root, "height": height, "width": width, "workers": 0,
                 "method": method, "rerank": True, "quiet": True}
    if backbone:
        overrides["backbone"] = backbone
    if not pretrained:
        overrides["pretrained"] = None
    cfg = build_reid_config(config, overrides)
    task = ReIDTask(cfg, torch.device("cpu"), 0, 1, data=data)
    ev_row = {}
    if evaluate:  # before any training step: the network as it starts
        t0 = time.perf_counter()
        task.model.eval()
        ev = task.evaluate(1, final=True)
        ev_row = {"eval_seconds": time.perf_counter() - t0, "eval_images": len(task.data.query) + len(task.data.gallery),
                  "untrained_mAP": ev["mAP"], "untrained_rerank_mAP": ev["rerank_mAP"]}
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
    row = {"backbone": cfg.backbone, "height": height, "width": width, "method": method, "s_per_step": step,
           "steps_per_epoch": task.steps_per_epoch, "train_images": len(task.data.train),
           "parameters": sum(p.numel() for p in task.model.parameters()), **ev_row}
    return row, task.data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data/cuhk01")
    ap.add_argument("--config", default="bot-a6-center", help="the re-ID recipe timed (default bot-a6-center)")
    ap.add_argument("--pretrained", choices=["none", "recipe"], default="none",
                    help="none: from scratch (default); recipe: the recipe's own weights")
    ap.add_argument("--sizes", nargs="+", default=["128x64"])
    ap.add_argument("--backbones", nargs="+", default=[None], help="default: the recipe's")
    ap.add_argument("--methods", nargs="+", default=["erm", "mixup", "adamixup"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--epochs", type=int, nargs="+", default=[30, 40, 60], help="run lengths to project")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--eval-every", type=int, default=10, help="evaluations in the projected runs (default 10)")
    ap.add_argument("--name", default="reid_budget", help="file name of the report, without .md / .json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows, data = [], None
    for backbone in args.backbones:
        for size in args.sizes:
            h, w = map(int, size.lower().split("x"))
            for j, method in enumerate(args.methods):
                row, data = measure(args.data_root, backbone, h, w, method, args.steps, args.warmup, evaluate=j == 0,
                                    data=data, config=args.config, pretrained=args.pretrained == "recipe")
                rows.append(row)
                print(json.dumps(row), flush=True)
    load_end = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_1min_start": load,
            "load_1min_end": load_end, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "platform": platform.platform(), "threads": 1, "steps": args.steps, "warmup": args.warmup,
            "config": args.config, "pretrained": args.pretrained}
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    evals = {(r["backbone"], r["height"], r["width"]): r for r in rows if "eval_seconds" in r}
    weights = "the recipe's pretrained weights" if args.pretrained == "recipe" else "no pretrained weights"
    L = ["# CUHK01 re-ID budget on this CPU", "",
         f"What a run of the strong baseline costs here. Written by `benchmarks/reid_budget.py {' '.join(sys.argv[1:])}`.", "",
         f"{meta['when']}; one torch thread; machine load (1 min) {load:.1f} at the start, {load_end:.1f} at the end "
         f"({meta['cpu_count']} CPUs shared with whatever else ran). Settings: the recipe `{args.config}` (BNNeck, last "
         f"stride 1, triplet + center loss, random erasing 0.5, label smoothing 0.1, flip, pad 10), P×K = 16×4, {weights}, "
         "data loading in the training process (workers 0). A step = loading and augmenting the PK batch, "
         f"the objective, backward and the optimizers' steps; mean of {args.steps} steps after {args.warmup} warm-up.", "",
         "| backbone | input | method | parameters | s/step | steps/epoch | s/epoch (train) | final eval s (plain + re-ranked) | "
         + " | ".join(f"run of {e} epochs, min" for e in args.epochs) + " |",
         "|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(args.epochs)]
    for r in rows:
        ev = evals[(r["backbone"], r["height"], r["width"])]
        epoch = r["s_per_step"] * r["steps_per_epoch"]
        # evaluations every --eval-every epochs and after the last, each as long as the measured one
        n = args.eval_every
        runs = [(e * epoch + (e // n + (e % n != 0)) * ev["eval_seconds"]) / 60 for e in args.epochs]
        L.append(f"| {r['backbone']} | {r['height']}×{r['width']} | {r['method']} | {r['parameters']:,} | "
                 f"{r['s_per_step']:.2f} | {r['steps_per_epoch']} | {epoch:.0f} | {ev['eval_seconds']:.1f} | "
                 + " | ".join(f"{m:.0f}" for m in runs) + " |")
    L += ["", f"Query + gallery: {next(iter(evals.values()))['eval_images']} images. mAP before any re-ID training "
          f"({'the ImageNet features' if args.pretrained == 'recipe' else 'random weights: a sanity floor'}): " + ", ".join(f"{k[0]} {k[1]}×{k[2]}: {v['untrained_mAP']:.1f} % (re-ranked "
                                          f"{v['untrained_rerank_mAP']:.1f} %)" for k, v in evals.items()) + ".", ""]
    (out / f"{args.name}.md").write_text("\n".join(L))
    print((out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
