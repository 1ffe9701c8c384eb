"""Budget probe for the CIFAR-10-S CPU study (issue 15, item 5): which model and schedule make MixUp beat
ERM on CIFAR-10-S, scored on a validation split carved from the training data, cheaply enough that
10 paired runs x 6 methods fit in about 8 machine-hours on a 2-core CPU?

    python benchmarks/cifar_budget.py cache                    # cold decode vs cache hit of the JPEG copy
    python benchmarks/cifar_budget.py speed                    # seconds per epoch, 1 thread, per model/width/method
    python benchmarks/cifar_budget.py probe --jobs 2 --minutes 75 --candidates a,b --seeds 0
    python benchmarks/cifar_budget.py report [--conclusion "..."]

Data: ``--data-root`` (default ``../shared/data/cifar10-jpeg``), an image folder ``train/<class>/``,
``test/<class>/``. Every probe run loads it with ``train_fraction=0.2, validation_fraction=0.1`` and
the run's seed: 5,000 training images (500 per class) are held out as the validation split, and the
-S training set is a stratified 20 % of the other 45,000 (9,000 images). The test split is never read
by a probe run: choosing a budget is a selection. Each run is a subprocess with one thread
(``OMP_NUM_THREADS=1``); ``--jobs`` of them run at once. Every finished run is written at once to
``benchmarks/results/cifar_budget.json`` and the report ``cifar_budget.md`` is rebuilt from it, so a
stopped probe keeps what it finished and ``probe`` skips runs the JSON already holds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
JSON_PATH = RESULTS / "cifar_budget.json"
MD_PATH = RESULTS / "cifar_budget.md"
DEFAULT_ROOT = str((HERE.parent / ".." / "shared" / "data" / "cifar10-jpeg").resolve())
TRAIN_FRACTION, VALIDATION_FRACTION = 0.2, 0.1
STUDY_METHODS = ("erm", "mixup", "mixup-matched", "fixed-region", "adamixup-w0", "adamixup")
STUDY_SEEDS = 10
STUDY_HOURS = 8.0
CORES = 2

# The recipes' optimizers: SGD as in the paper's CIFAR recipe (0.1, momentum 0.9, weight decay 1e-4 here,
# 5e-4 in the imagefolder recipe) and Adam as in the mnist5k recipe; a cosine schedule fits a short budget.
SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4, "schedule": "cosine",
       "warmup_epochs": 1.0}
ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "cosine", "warmup_epochs": 0.0}

# name: (description, overrides). Every candidate trains at 32x32 with batch 128. Sized from the speed table so that
# an ERM run takes about 6-7 minutes on one thread.
CANDIDATES: Dict[str, Any] = {
    "cnn16-sgd-e40": ("small_cnn width 16, SGD 0.1 cosine, 40 epochs",
                      {"model": "small_cnn", "model_args": {"width": 16}, "epochs": 40, **SGD}),
    "cnn16-sgd-e40-noaug": ("small_cnn width 16, SGD 0.1 cosine, 40 epochs, no crop/flip augmentation",
                            {"model": "small_cnn", "model_args": {"width": 16}, "epochs": 40, "augment": False, **SGD}),
    "preact8-sgd-e25": ("preact_resnet18 width 8, SGD 0.1 cosine, 25 epochs",
                        {"model": "preact_resnet18", "model_args": {"width": 8}, "epochs": 25, **SGD}),
    "cnn8-sgd-e80": ("small_cnn width 8, SGD 0.1 cosine, 80 epochs",
                     {"model": "small_cnn", "model_args": {"width": 8}, "epochs": 80, **SGD}),
    "cnn16-adam-e40": ("small_cnn width 16, Adam 1e-3 cosine, 40 epochs",
                       {"model": "small_cnn", "model_args": {"width": 16}, "epochs": 40, **ADAM}),
    "cnn32-sgd-e15": ("small_cnn width 32, SGD 0.1 cosine, 15 epochs",
                      {"model": "small_cnn", "model_args": {"width": 32}, "epochs": 15, **SGD}),
    "preact8-sgd-e25-noaug": ("preact_resnet18 width 8, SGD 0.1 cosine, 25 epochs, no crop/flip augmentation",
                              {"model": "preact_resnet18", "model_args": {"width": 8}, "epochs": 25, "augment": False,
                               **SGD}),
    "cnn32-sgd-e15-noaug": ("small_cnn width 32, SGD 0.1 cosine, 15 epochs, no crop/flip augmentation",
                            {"model": "small_cnn", "model_args": {"width": 32}, "epochs": 15, "augment": False, **SGD}),
    "cnn16-sgd-e80": ("small_cnn width 16, SGD 0.1 cosine, 80 epochs",
                      {"model": "small_cnn", "model_args": {"width": 16}, "epochs": 80, **SGD}),
}
# MixUp's alpha (Beta(alpha, alpha)) per candidate where it is not the default 1.0: a candidate "<base>-a<alpha>"
# runs MixUp only and is paired with <base>'s ERM run.
for _base in list(CANDIDATES):
    for _alpha in (0.2, 0.4):
        _desc, _over = CANDIDATES[_base]
        CANDIDATES[f"{_base}-a{_alpha}"] = (f"{_desc}; MixUp alpha {_alpha}", dict(_over))
MIXER_ARGS = {name: {"mixup": {"alpha": float(name.rsplit("-a", 1)[1])}} for name in CANDIDATES if "-a0." in name}


def erm_partner(candidate: str) -> str:
    """The candidate whose ERM run a candidate's MixUp run is paired with (itself, or the base of an alpha variant)."""
    return candidate.rsplit("-a0.", 1)[0] if "-a0." in candidate else candidate


SPEED_GRID = [  # (model, width, batch, method)
    ("small_cnn", 8, 128, "erm"), ("small_cnn", 16, 128, "erm"), ("small_cnn", 16, 128, "mixup"),
    ("small_cnn", 16, 128, "adamixup"), ("small_cnn", 16, 256, "erm"), ("small_cnn", 24, 128, "erm"),
    ("small_cnn", 32, 128, "erm"), ("small_cnn", 32, 128, "adamixup"), ("small_cnn", 48, 128, "erm"),
    ("preact_resnet18", 8, 128, "erm"), ("preact_resnet18", 8, 128, "adamixup"), ("preact_resnet18", 16, 128, "erm"),
    ("small_cnn", 16, 128, "mixup-matched"), ("small_cnn", 32, 128, "mixup"), ("small_cnn", 32, 128, "mixup-matched"),
    ("preact_resnet18", 8, 128, "mixup"), ("preact_resnet18", 8, 128, "mixup-matched"),
]


# --------------------------------------------------------------------------- results file


def load_results() -> Dict[str, Any]:
    if JSON_PATH.is_file():
        return json.loads(JSON_PATH.read_text())
    return {"cache": None, "speed": [], "runs": [], "conclusion": ""}


def save_results(results: Dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = JSON_PATH.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, JSON_PATH)
    write_report(results)


def machine() -> Dict[str, Any]:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"host": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_1min": load, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- cache timing


def cmd_cache(args) -> None:
    one_thread()
    import torch

    from adamixup.data import load_dataset
    from adamixup.data.imagefolder import cache_path

    root, out = args.data_root, {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="adamixup-cache-") as cache_dir:
        t = time.perf_counter()
        plain = load_dataset("imagefolder", root, cache=False)
        out["decode_without_cache_s"] = time.perf_counter() - t
        t = time.perf_counter()
        load_dataset("imagefolder", root, cache_dir=cache_dir)
        out["cold_decode_and_write_s"] = time.perf_counter() - t
        out["cache_file_bytes"] = cache_path(Path(root), 32, "stat", cache_dir).stat().st_size
        hits = []
        for _ in range(3):
            t = time.perf_counter()
            cached = load_dataset("imagefolder", root, cache_dir=cache_dir)
            hits.append(time.perf_counter() - t)
        out["hit_s"] = hits
        out["identical"] = all(torch.equal(getattr(plain, k), getattr(cached, k))
                               for k in ("train_x", "train_y", "test_x", "test_y")) and plain.classes == cached.classes
        t = time.perf_counter()
        load_dataset("imagefolder", root, cache_dir=cache_dir, cache="content")
        out["content_cold_s"] = time.perf_counter() - t
        t = time.perf_counter()
        load_dataset("imagefolder", root, cache_dir=cache_dir, cache="content")
        out["content_hit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        load_dataset("imagefolder", root, cache_dir=cache_dir, train_fraction=TRAIN_FRACTION,
                     validation_fraction=VALIDATION_FRACTION)
        out["hit_S_with_validation_s"] = time.perf_counter() - t
    results = load_results()
    results["cache"] = out
    save_results(results)
    print(json.dumps(out, indent=1))


# --------------------------------------------------------------------------- speed


def cmd_speed(args) -> None:
    one_thread()
    import torch

    from adamixup.data import BatchAugment, load_dataset
    from adamixup.mixing import get_method
    from adamixup.models import build_model

    data = load_dataset("imagefolder", args.data_root, train_fraction=TRAIN_FRACTION,
                        validation_fraction=VALIDATION_FRACTION, seed=0)
    augment = BatchAugment(data.mean, data.std, pad=data.pad, flip=data.flip)
    n_train, n_eval = len(data.train_y), len(data.test_y) + 1000  # validation + the trainer's train-error subset
    g = torch.Generator().manual_seed(0)
    rows = []
    for model_name, width, batch, method in SPEED_GRID:
        torch.manual_seed(0)
        model = build_model(model_name, in_channels=3, num_classes=10, width=width)
        mixer = get_method(method).build(model)
        params = list(model.parameters()) + [p for p in mixer.parameters() if all(p is not q for q in model.parameters())]
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        mixer.train()
        model.train()

        def step():
            idx = torch.randint(0, n_train, (batch,), generator=g)
            x = augment(data.train_x[idx], generator=g)
            out = mixer(model, x, data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

        for _ in range(2):
            step()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        step_s = (time.perf_counter() - t) / args.steps
        model.eval()
        with torch.no_grad():
            x = augment.normalize(data.test_x[:500])
            t = time.perf_counter()
            for i in range(0, 500, 250):
                model(x[i : i + 250])
            eval_per_image = (time.perf_counter() - t) / 500
        epoch_s = (n_train // batch) * step_s + n_eval * eval_per_image
        row = {"model": model_name, "width": width, "batch": batch, "method": method, "step_s": step_s,
               "train_images_per_s": batch / step_s, "eval_images_per_s": 1 / eval_per_image, "epoch_s": epoch_s,
               "params": sum(p.numel() for p in model.parameters())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    results = load_results()
    results["speed"] = rows
    results["speed_machine"] = machine()
    results["speed_setup"] = {"train_images": n_train, "eval_images": n_eval, "steps": args.steps, "threads": 1}
    save_results(results)


# --------------------------------------------------------------------------- one run


def overrides_for(candidate: str, method: str, seed: int, data_root: str) -> Dict[str, Any]:
    _, base = CANDIDATES[candidate]
    values = {"dataset": "imagefolder", "data_root": data_root, "train_fraction": TRAIN_FRACTION, "batch_size": 128,
              "quiet": True, "device": "cpu", "seed": seed, "method": method, **base}
    values["mixer_args"] = dict(MIXER_ARGS.get(candidate, {}).get(method, {}))
    return values


def cmd_run(args) -> None:
    """One probe run; prints its record as the last line of stdout."""
    one_thread()
    from adamixup.data import load_dataset
    from adamixup.classify import build_config, train

    start = time.perf_counter()
    data = load_dataset("imagefolder", args.data_root, train_fraction=TRAIN_FRACTION,
                        validation_fraction=VALIDATION_FRACTION, seed=args.seed)
    assert data.eval_split == "validation"
    load_s = time.perf_counter() - start
    config = build_config(None, overrides_for(args.candidate, args.method, args.seed, args.data_root))
    with tempfile.TemporaryDirectory(prefix="cifar-budget-") as tmp:
        run_dir = Path(tmp) / "run"
        summary = train(config, run_dir, data=data)
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # the trainer calls its evaluation set "test"; here it is the validation split (data.eval_split)
    val = [m["test_error"] for m in history]
    record = {
        "candidate": args.candidate, "method": args.method, "seed": args.seed,
        "val_error": val[-1], "best_val_error": min(val), "best_epoch": 1 + val.index(min(val)),
        "train_error": history[-1].get("train_error"), "epochs": len(history),
        "train_seconds": summary.get("train_seconds"), "epoch_seconds_mean": summary.get("epoch_seconds_mean"),
        "wall_seconds": time.perf_counter() - start, "load_seconds": load_s,
        "val_curve": val, "train_images": len(data.train_y), "val_images": len(data.test_y),
        "mixer_args": config.mixer_args, "machine": machine(),
    }
    print(json.dumps(record), flush=True)


# --------------------------------------------------------------------------- probe


def cmd_probe(args) -> None:
    names = [c.strip() for c in args.candidates.split(",") if c.strip()] if args.candidates else list(CANDIDATES)
    for name in names:
        if name not in CANDIDATES:
            sys.exit(f"cifar_budget.py: unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    results = load_results()
    done = {(r["candidate"], r["method"], r["seed"]) for r in results["runs"]}
    queue = [(c, m, s) for s in seeds for c in names for m in methods
             if (c, m, s) not in done and not (m == "erm" and erm_partner(c) != c)]  # alpha variants: MixUp only
    deadline = time.time() + 60 * args.minutes
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: List[Any] = []
    log_dir = Path(tempfile.mkdtemp(prefix="cifar-budget-logs-"))
    print(f"{len(queue)} runs queued; logs in {log_dir}", flush=True)
    while queue or running:
        while queue and len(running) < args.jobs and time.time() < deadline:
            c, m, s = queue.pop(0)
            log = open(log_dir / f"{c}-{m}-{s}.log", "w")
            cmd = [sys.executable, __file__, "run", c, m, str(s), "--data-root", args.data_root]
            running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, text=True), (c, m, s), log))
            print(f"started {c} {m} seed {s}", flush=True)
        if not queue or time.time() >= deadline:
            queue = [] if time.time() >= deadline else queue
        time.sleep(2)
        for item in list(running):
            proc, key, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            out = proc.stdout.read().strip().splitlines()
            if proc.returncode != 0 or not out:
                print(f"FAILED {key} (exit {proc.returncode}); see {log.name}", flush=True)
                continue
            record = json.loads(out[-1])
            results = load_results()
            results["runs"] = [r for r in results["runs"] if (r["candidate"], r["method"], r["seed"]) != key] + [record]
            save_results(results)
            print(f"done {key}: val {record['val_error']:.2f}% train {record['train_error']:.2f}% "
                  f"{record['wall_seconds']:.0f} s", flush=True)


# --------------------------------------------------------------------------- report


def cost_ratios(speed: List[Dict[str, Any]], model: str, width: int) -> Dict[str, float]:
    """Seconds per epoch of each study method relative to ERM for ``model``/``width`` (batch 128), from the
    speed table; a method not measured there takes its ratio from the nearest measured width of the model."""
    rows = [r for r in speed if r["model"] == model and r["batch"] == 128]
    out = {}
    for method in ("erm", "mixup", "mixup-matched", "adamixup"):
        widths = sorted({r["width"] for r in rows if r["method"] == method and any(
            q["width"] == r["width"] and q["method"] == "erm" for q in rows)}, key=lambda w: abs(w - width))
        if not widths:
            continue
        w = widths[0]
        t = {q["method"]: q["epoch_s"] for q in rows if q["width"] == w}
        out[method] = t[method] / t["erm"]
    # fixed-region has mixup-matched's layout; AdaMixUp without phi still runs pi (phi's light body costs little)
    study = {"erm": 1.0, "mixup": out.get("mixup", 1.0), "mixup-matched": out.get("mixup-matched", 1.5),
             "fixed-region": out.get("mixup-matched", 1.5), "adamixup-w0": out.get("adamixup", 2.0),
             "adamixup": out.get("adamixup", 2.0)}
    return study


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def write_report(results: Dict[str, Any]) -> None:
    lines = ["# CIFAR-10-S budget probe for the CPU study", "",
             "Issue 15, item 5 (CPU tier). Written by `benchmarks/cifar_budget.py` from `cifar_budget.json`.", "",
             "Data: the JPEG copy of CIFAR-10 (`../shared/data/cifar10-jpeg`, quality ≈ 75). Every probe run holds a "
             f"stratified {VALIDATION_FRACTION:.0%} of the 50,000 training images out as its **validation split** "
             f"(5,000 images, drawn from the run's seed) and trains on a stratified {TRAIN_FRACTION:.0%} of the rest "
             "(9,000 images): `load_dataset('imagefolder', root, train_fraction=0.2, validation_fraction=0.1, seed=s)`. "
             "The test split is never read: choosing the budget is a selection. Errors are the last epoch's "
             "validation error (no early stopping); 'best' is the minimum over epochs, for reference only. "
             "One thread per run (`torch.set_num_threads(1)`), at most two runs at once on the shared 2-core machine.", ""]
    cache = results.get("cache")
    if cache:
        lines += ["## Image-folder cache", "",
                  "| load of all 60,000 images | seconds |", "|---|---:|",
                  f"| decode, no cache (`cache=False`) | {cache['decode_without_cache_s']:.1f} |",
                  f"| first load: decode and write the cache | {cache['cold_decode_and_write_s']:.1f} |",
                  f"| cache hit (`cache='stat'`, the default), 3 loads | {', '.join(f'{h:.1f}' for h in cache['hit_s'])} |",
                  f"| `cache='content'`: first load / hit (hashes the 57 MB of files) | {cache['content_cold_s']:.1f} / {cache['content_hit_s']:.1f} |",
                  f"| cache hit, then -S and the validation hold-out | {cache['hit_S_with_validation_s']:.1f} |", "",
                  f"Cache file: {cache['cache_file_bytes'] / 1e6:.0f} MB ({cache['cache_file_bytes']:,} bytes, uncompressed "
                  f"`.npz`); tensors identical to a fresh decode: {cache['identical']}. Machine load "
                  f"(1 min) {_fmt(cache['machine'].get('load_1min'), '.1f')} at {cache['machine']['time']}. A cache hit "
                  "still lists and stats every file (the key), reads the file and computes the channel statistics.", ""]
    speed = results.get("speed") or []
    if speed:
        setup = results.get("speed_setup", {})
        lines += ["## Speed, one thread", "",
                  f"Seconds per epoch = (training images {setup.get('train_images')} // batch) × seconds per step + "
                  f"{setup.get('eval_images')} evaluated images (validation + the trainer's 1,000-image train-error subset) "
                  f"× seconds per image; steps timed over {setup.get('steps')} steps after 2 warm-up steps (crop/flip "
                  f"augmentation, mixer, backward, SGD update). Load (1 min) {_fmt(results.get('speed_machine', {}).get('load_1min'), '.1f')}.", "",
                  "| model | width | batch | method | parameters | s/step | train img/s | eval img/s | s/epoch |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for r in speed:
            lines.append(f"| {r['model']} | {r['width']} | {r['batch']} | {r['method']} | {r['params']:,} | {r['step_s']:.3f} | "
                         f"{r['train_images_per_s']:.0f} | {r['eval_images_per_s']:.0f} | {r['epoch_s']:.1f} |")
        lines.append("")
    runs = results.get("runs") or []
    if runs:
        lines += ["## Candidates: ERM vs MixUp on the validation split", "",
                  "| candidate | method | seed | val error % | best val % (epoch) | train error % | epochs | s/epoch | run s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        order = list(CANDIDATES)
        for r in sorted(runs, key=lambda r: (order.index(r["candidate"]) if r["candidate"] in order else 99, r["seed"], r["method"])):
            lines.append(f"| {r['candidate']} | {r['method']} | {r['seed']} | {r['val_error']:.2f} | "
                         f"{r['best_val_error']:.2f} ({r['best_epoch']}) | {_fmt(r['train_error'])} | {r['epochs']} | "
                         f"{_fmt(r['epoch_seconds_mean'], '.1f')} | {r['wall_seconds']:.0f} |")
        lines += ["", "Paired: MixUp − ERM in validation error points (negative: MixUp wins), and the run time.", "",
                  "| candidate | description | seed | ERM % | MixUp % | MixUp − ERM | ERM s | MixUp s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        by = {(r["candidate"], r["method"], r["seed"]): r for r in runs}
        for c in order:
            for s in sorted({r["seed"] for r in runs if r["candidate"] == c}):
                e, m = by.get((erm_partner(c), "erm", s)), by.get((c, "mixup", s))
                if e and m:
                    lines.append(f"| {c} | {CANDIDATES[c][0]} | {s} | {e['val_error']:.2f} | {m['val_error']:.2f} | "
                                 f"{m['val_error'] - e['val_error']:+.2f} | {e['wall_seconds']:.0f} | {m['wall_seconds']:.0f} |")
        lines.append("")
        lines += ["Projected cost of the CPU study at each candidate's budget: "
                  f"{STUDY_SEEDS} seeds × ({', '.join(STUDY_METHODS)}), each method's run time = the candidate's measured "
                  "ERM run (wall seconds in this probe, two runs at once on the shared machine) × its seconds-per-epoch "
                  "ratio to ERM from the speed table (nearest measured width of the model); machine-hours = "
                  f"core-seconds / {CORES} cores / 3600. Budget: {STUDY_HOURS:g} machine-hours.", "",
                  "| candidate | ERM run s | MixUp − ERM (seeds) | ratios mixup / matched / adamixup | study machine-hours | at the speed table's pace | fits |",
                  "|---|---:|---|---|---:|---:|---|"]
        for c in order:
            e_runs = [r for r in runs if r["candidate"] == erm_partner(c) and r["method"] == "erm"]
            m_runs = {r["seed"]: r for r in runs if r["candidate"] == c and r["method"] == "mixup"}
            if not e_runs or not m_runs:
                continue
            diffs = [m_runs[r["seed"]]["val_error"] - r["val_error"] for r in e_runs if r["seed"] in m_runs]
            if not diffs:
                continue
            over = CANDIDATES[c][1]
            ratios = cost_ratios(speed, over["model"], over["model_args"]["width"])
            erm_s = sum(r["wall_seconds"] for r in e_runs) / len(e_runs)
            hours = STUDY_SEEDS * erm_s * sum(ratios[m] for m in STUDY_METHODS) / CORES / 3600
            pace = [r["epoch_s"] for r in speed if r["model"] == over["model"] and r["width"] == over["model_args"]["width"]
                    and r["batch"] == 128 and r["method"] == "erm"]
            quiet = (STUDY_SEEDS * over["epochs"] * pace[0] * sum(ratios[m] for m in STUDY_METHODS) / CORES / 3600
                     if pace else None)
            wins = all(d < 0 for d in diffs)
            lines.append(f"| {c} | {erm_s:.0f} | {', '.join(f'{d:+.2f}' for d in diffs)} | "
                         f"{ratios['mixup']:.2f} / {ratios['mixup-matched']:.2f} / {ratios['adamixup']:.2f} | {hours:.1f} | "
                         f"{_fmt(quiet, '.1f')} | "
                         f"{'MixUp wins' if wins else 'MixUp loses'}; within {STUDY_HOURS:g} h: "
                         f"{'yes' if quiet is not None and quiet <= STUDY_HOURS else 'no'} at the speed table's pace, "
                         f"{'yes' if hours <= STUDY_HOURS else 'no'} at this probe's |")
        lines.append("")
    if results.get("conclusion"):
        lines += ["## Recommendation", "", results["conclusion"], ""]
    MD_PATH.write_text("\n".join(lines))


def cmd_report(args) -> None:
    results = load_results()
    if args.conclusion is not None:
        results["conclusion"] = args.conclusion
    save_results(results)
    print(MD_PATH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("cache", "speed", "probe", "run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--data-root", default=DEFAULT_ROOT)
        if name == "speed":
            p.add_argument("--steps", type=int, default=6)
        if name == "probe":
            p.add_argument("--candidates", default="")
            p.add_argument("--methods", default="erm,mixup")
            p.add_argument("--seeds", default="0")
            p.add_argument("--jobs", type=int, default=2)
            p.add_argument("--minutes", type=float, default=75.0, help="launch no run after this many minutes")
        if name == "run":
            p.add_argument("candidate", choices=list(CANDIDATES))
            p.add_argument("method")
            p.add_argument("seed", type=int)
        if name == "report":
            p.add_argument("--conclusion", default=None)
    args = parser.parse_args()
    {"cache": cmd_cache, "speed": cmd_speed, "probe": cmd_probe, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
