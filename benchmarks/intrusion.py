"""Manifold intrusion, measured: how often does a mixed sample lie closer to a real training sample of a
THIRD class (neither of its two sources' classes) than to either of its sources? Issue 6.

For trained runs of each method, mixes are drawn the way the method draws them, on the same random pairs
of training images for every method: MixUp λ ~ Beta(1, 1); AdaMixUp λ from the run's trained policy π
(the checkpoint's ``mixer`` state; π in training mode, i.e. batch statistics over batches of the size
of a training batch's mixed half, as during training). A mix x̃ = λ·a + (1−λ)·b intrudes when

    min over training samples r of a class other than class(a) and class(b) of ||x̃ − r||  <  min(||x̃ − a||, ||x̃ − b||)

measured in pixel space (Euclidean on normalized pixels) and in the trained model's feature space
(pooled pre-logits features, eval mode). Also reported: how often the model predicts a third class for
the mix, and for AdaMixUp the same rates with its λ values shuffled across pairs (same λ distribution,
no pair-specific choice): if π picks λ per pair to avoid intrusion, the shuffled rate is higher. The ERM
row applies MixUp's mixes to the ERM model (its pixel figures are MixUp's by construction).

    python benchmarks/intrusion.py                                   # runs/reproduce: every data set, fold 0, seed 0
    python benchmarks/intrusion.py --runs-root runs/reproduce-quick --name intrusion_quick
    python benchmarks/intrusion.py RUN_DIR [RUN_DIR ...]              # explicit runs (grouped by data set, fold, seed)

Writes ``benchmarks/results/<name>.md``, ``<name>.json``, ``<name>_examples.png`` (intruding mixes next
to their two sources and the real sample they collide with) and ``<name>_by_lambda.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from adamixup.models import features_and_logits
from adamixup.plots import figure, save_figure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LAM_BINS = 10
BASELINES = ("erm", "mixup")  # listed first; the AdaMixUp variants follow by name


# --------------------------------------------------------------------------------------------------
# the measurement, on plain tensors
# --------------------------------------------------------------------------------------------------
def intrusion_flags(mixed: Tensor, a: Tensor, b: Tensor, ya: Tensor, yb: Tensor, ref: Tensor, ref_y: Tensor,
                    chunk: int = 512) -> Dict[str, Tensor]:
    """Which mixes intrude on a third class.

    mixed, a, b: ``(N, ...)`` the mixes and their two sources (any shape; flattened per row).
    ya, yb:      ``(N,)`` the sources' classes.
    ref, ref_y:  ``(R, ...)`` and ``(R,)`` the real samples to compare with (the training set).
    Returns ``flags`` (bool ``(N,)``: the nearest real sample of a class other than ``ya`` and ``yb``
    is strictly closer than the nearer source), ``d_source``, ``d_third`` (``inf`` where no third
    class exists) and ``nearest`` (index into ``ref`` of that third-class sample, -1 where none).
    """
    m = mixed.reshape(mixed.shape[0], -1).float()
    a, b, ref = a.reshape(m.shape).float(), b.reshape(m.shape).float(), ref.reshape(ref.shape[0], -1).float()
    ya, yb, ref_y = ya.to(m.device), yb.to(m.device), ref_y.to(m.device)
    d_source = torch.minimum((m - a).norm(dim=1), (m - b).norm(dim=1))
    d_third = torch.full((m.shape[0],), math.inf)
    nearest = torch.full((m.shape[0],), -1, dtype=torch.long)
    for s in range(0, m.shape[0], chunk):
        e = s + chunk
        d = torch.cdist(m[s:e], ref)
        own = (ref_y[None, :] == ya[s:e, None]) | (ref_y[None, :] == yb[s:e, None])
        d = d.masked_fill(own, math.inf)
        d_min, idx = d.min(dim=1)
        d_third[s:e] = d_min.cpu()
        nearest[s:e] = torch.where(torch.isfinite(d_min), idx, torch.full_like(idx, -1)).cpu()
    return {"flags": (d_third < d_source.cpu()), "d_source": d_source.cpu(), "d_third": d_third, "nearest": nearest}


def rate_by_lambda(lam: Tensor, flags: Tensor, bins: int = LAM_BINS) -> List[Dict[str, Any]]:
    """Intrusion rate per λ bin of width 1/bins over [0, 1] (the last bin includes 1)."""
    lam, flags = lam.detach().cpu().float(), flags.cpu().bool()
    idx = (lam * bins).long().clamp_(0, bins - 1)
    out = []
    for i in range(bins):
        sel = idx == i
        n = int(sel.sum())
        out.append({"lo": i / bins, "hi": (i + 1) / bins, "n": n,
                    "rate": float(flags[sel].float().mean()) if n else float("nan")})
    return out


def wilson(k: int, n: int, z: float = 1.96) -> Tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95 % by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def draw_pairs(n: int, pairs: int, seed: int) -> Tuple[Tensor, Tensor]:
    """``pairs`` random (i, j) index pairs of ``range(n)`` with i != j (like a derangement's pairs)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n, (pairs,), generator=g)
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n
    return i, j


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------
def method_label(run_dir: Path, config) -> str:
    """The method's name in the reproduce layout (``<out>/<dataset>/<method>/fold<F>-seed<S>``), else
    the config's method with its non-empty mixer arguments."""
    run_dir = Path(run_dir)
    if re.fullmatch(r"fold\d+-seed\d+", run_dir.name) and run_dir.parent.name.split("-")[0] == config.method:
        return run_dir.parent.name
    args = ",".join(f"{k}={v}" for k, v in sorted(config.mixer_args.items()))
    return config.method + (f"({args})" if args else "")


def dataset_label(config) -> str:
    frac = config.train_fraction
    return config.dataset if frac == 1 else f"{config.dataset}-S" if abs(frac - 0.2) < 1e-9 else f"{config.dataset}@{frac:g}"


def load_run(run_dir: Path, device: torch.device):
    """(config, model in eval mode, AdaMixUp-style mixer or None) of a finished run, from its last checkpoint."""
    from adamixup.classify import load

    config, _, model, mixer, _ = load(Path(run_dir), "last", str(device), with_mixer=True)
    return config, model, mixer if hasattr(mixer, "policy") else None


@torch.no_grad()
def features_of(model, x: Tensor, batch: int = 1000) -> Tuple[Tensor, Tensor]:
    """(features, logits) of normalized images ``x`` in eval mode."""
    model.eval()
    feats, logits = [], []
    for s in range(0, x.shape[0], batch):
        f, out = features_and_logits(model, x[s : s + batch])
        feats.append(f.float())
        logits.append(out.float())
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def policy_lambda(mixer, xa: Tensor, xb: Tensor, batch: int, seed: int, bn_mode: str = "train") -> Tensor:
    """λ of a trained AdaMixUp policy for each pair (π's own noise u seeded by ``seed``). ``bn_mode``
    "train" uses batch statistics over batches of ``batch`` pairs, as during training (on a copy, so
    the running statistics of the run stay untouched); "eval" uses the running statistics."""
    policy = copy.deepcopy(mixer.policy)
    policy.train(bn_mode == "train")
    torch.manual_seed(seed)
    out = []
    for s in range(0, xa.shape[0], batch):
        out.append(policy(xa[s : s + batch], xb[s : s + batch]).float().cpu())
    return torch.cat(out)


def mix(xa: Tensor, xb: Tensor, lam: Tensor) -> Tensor:
    lam = lam.to(xa.device, xa.dtype).view(-1, *([1] * (xa.dim() - 1)))
    return lam * xa + (1 - lam) * xb


def measure_group(runs: Dict[str, Path], pairs: int = 2000, device: str = "cpu", seed: int = 0,
                  bn_mode: str = "train") -> Dict[str, Any]:
    """Measure every run of one (data set, fold, seed): ``runs`` maps method names to run folders."""
    from adamixup.data import BatchAugment, load_dataset
    from adamixup.train import read_metrics

    from adamixup.classify import config_from_dict
    from adamixup.train import RunDir

    dev = torch.device(device)
    configs = {name: RunDir(path).read_config(config_from_dict) for name, path in runs.items()}
    keys = {(c.dataset, c.data_root, c.train_fraction, c.fold, c.num_folds, c.seed) for c in configs.values()}
    if len(keys) != 1:
        raise ValueError("these runs were trained on different data (dataset, data_root, train_fraction, fold, num_folds, "
                         f"seed): {sorted(keys, key=str)}")
    config = next(iter(configs.values()))
    data = load_dataset(config.dataset, config.data_root, train_fraction=config.train_fraction, seed=config.seed,
                        fold=config.fold, num_folds=config.num_folds)
    loaded = {name: load_run(path, dev) for name, path in runs.items()}
    x = BatchAugment(data.mean, data.std).normalize(data.train_x).to(dev)
    y = data.train_y
    i, j = draw_pairs(len(y), pairs, seed)
    xa, xb, ya, yb = x[i], x[j], y[i], y[j]
    g = torch.Generator().manual_seed(seed + 1)
    lam_beta = torch.rand(pairs, generator=g)  # MixUp's λ ~ Beta(1, 1), i.e. U(0, 1)
    shuffle = torch.randperm(pairs, generator=g)
    pixel_cache: Dict[str, Dict[str, Tensor]] = {}

    def pixel(lam: Tensor, key: str) -> Dict[str, Tensor]:
        if key not in pixel_cache:
            pixel_cache[key] = intrusion_flags(mix(xa, xb, lam), xa, xb, ya, yb, x, y)
        return pixel_cache[key]

    out: Dict[str, Any] = {"dataset": dataset_label(config), "fold": config.fold, "seed": config.seed,
                           "train_size": len(y), "pairs": pairs, "same_class_share": float((ya == yb).float().mean()),
                           "methods": {}, "classes": list(data.classes)}
    examples_src = {"x": x.cpu(), "y": y, "i": i, "j": j, "mean": data.mean, "std": data.std}
    for name in sorted(loaded, key=lambda n: (BASELINES.index(n) if n in BASELINES else len(BASELINES), n)):
        cfg, model, mixer = loaded[name]
        if mixer is not None:
            lam = policy_lambda(mixer, xa, xb, max(2, cfg.batch_size // 2), seed + 2, bn_mode)
            how = "π (trained policy)"
        else:
            lam, how = lam_beta, "Beta(1, 1)"
        feats, logits = features_of(model, x)
        mixed = mix(xa, xb, lam)
        f_mix, l_mix = features_of(model, mixed)
        px = pixel(lam, "beta" if mixer is None else name)
        ft = intrusion_flags(f_mix, feats[i], feats[j], ya, yb, feats, y)
        pred = l_mix.argmax(1).cpu()
        third_pred = (pred != ya) & (pred != yb)
        hist = read_metrics(runs[name])
        row = {
            "run_dir": str(runs[name]), "lambda_from": how, "lam": lam.tolist(),
            "lam_mean": float(lam.mean()), "lam_std": float(lam.std()),
            "lam_ends": float(((lam < 0.05) | (lam >= 0.95)).float().mean()),
            "lam_mixedness": float(torch.minimum(lam, 1 - lam).mean()),
            "train_log_lam_mean": hist[-1].get("lam_mean") if hist else None,
            "pixel": _rate(px["flags"]), "feature": _rate(ft["flags"]), "predicted_third": _rate(third_pred),
            "pixel_by_lambda": rate_by_lambda(lam, px["flags"]), "feature_by_lambda": rate_by_lambda(lam, ft["flags"]),
            "pixel_flags": px["flags"].tolist(), "pixel_nearest": px["nearest"].tolist(),
            "feature_flags": ft["flags"].tolist(), "feature_nearest": ft["nearest"].tolist(),
        }
        if mixer is not None:  # the same λ values, shuffled across pairs: the policy's distribution without its choice
            lam_sh = lam[shuffle]
            f_sh, _ = features_of(model, mix(xa, xb, lam_sh))
            row["pixel_shuffled"] = _rate(pixel(lam_sh, name + "-shuffled")["flags"])
            row["feature_shuffled"] = _rate(intrusion_flags(f_sh, feats[i], feats[j], ya, yb, feats, y)["flags"])
        out["methods"][name] = row
    out["_examples_src"] = examples_src
    return out


def _rate(flags: Tensor) -> Dict[str, float]:
    k, n = int(flags.sum()), int(flags.numel())
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "lo": lo, "hi": hi}


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _pct(r: Optional[Dict[str, float]]) -> str:
    if not r:
        return "—"
    return f"{100 * r['rate']:.1f} ({100 * r['lo']:.1f}–{100 * r['hi']:.1f})"


def render_markdown(groups: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    L = [f"# {meta.get('title', 'Manifold intrusion of mixed samples (issue 6)')}", "",
         "Generated by `benchmarks/intrusion.py` from trained runs; every number is computed from them.", "",
         f"- Command: `{meta.get('command', '?')}`",
         f"- Device: {meta.get('device', '?')}; π's batch-norm mode: {meta.get('bn_mode', 'train')}",
         "- Definition: a mix x̃ = λ·a + (1−λ)·b *intrudes* when the nearest real training sample of a class other than "
         "class(a) and class(b) is closer to x̃ than the nearer of a and b. Pixel space: Euclidean distance on normalized "
         "pixels; feature space: on the pooled pre-logits features of the run's final model (eval mode). The same random pairs "
         "of training images (a ≠ b; same-class pairs included, as the methods draw them) serve every method; "
         "images are not augmented here.",
         "- min(λ, 1−λ): how far a mix lies from its nearer source (0: a source itself, 0.5: halfway; U(0, 1): 0.25); "
         "intrusion needs mixes far from both sources, so it depends on this first of all.",
         "- Percentages with 95 % Wilson intervals. *predicted third class*: the model's prediction for x̃ is neither "
         "class(a) nor class(b). *λ shuffled*: the policy's λ values permuted across the pairs (same distribution, no "
         "per-pair choice). The ERM row uses MixUp's mixes (so its pixel figure equals MixUp's by construction) on the "
         "ERM model.", ""]
    for g in groups:
        L += [f"## {g['dataset']}, fold {g['fold']}, seed {g['seed']}", "",
              f"{g['pairs']:,} pairs from {g['train_size']:,} training images; {100 * g['same_class_share']:.1f} % of the "
              "pairs share a class.", "",
              "| method | λ from | λ mean ± std | mean min(λ, 1−λ) | λ within 0.05 of 0 or 1 | pixel-space intrusion % | "
              "λ shuffled | feature-space intrusion % | λ shuffled | predicted third class % |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in g["methods"].items():
            log = r.get("train_log_lam_mean")
            lam = f"{r['lam_mean']:.3f} ± {r['lam_std']:.3f}" + (f" (training log: {log:.3f})" if log is not None and r["lambda_from"].startswith("π") else "")
            L.append(f"| {name} | {r['lambda_from']} | {lam} | {r['lam_mixedness']:.3f} | {100 * r['lam_ends']:.1f} % | {_pct(r['pixel'])} | "
                     f"{_pct(r.get('pixel_shuffled'))} | {_pct(r['feature'])} | {_pct(r.get('feature_shuffled'))} | "
                     f"{_pct(r['predicted_third'])} |")
        L.append("")
        ref = g["methods"].get("mixup") or next((r for n, r in g["methods"].items() if r["lambda_from"] == "Beta(1, 1)"), None)
        if ref:
            L += ["Intrusion by λ for MixUp's mixes (λ ~ U(0, 1)); λ weighs source a:", "",
                  "| λ bin | pairs | pixel-space % | feature-space % (MixUp model) |", "|---|---:|---:|---:|"]
            for pb, fb in zip(ref["pixel_by_lambda"], ref["feature_by_lambda"]):
                rate = lambda b: "—" if b["n"] == 0 else f"{100 * b['rate']:.1f}"  # noqa: E731
                L.append(f"| [{pb['lo']:.1f}, {pb['hi']:.1f}) | {pb['n']} | {rate(pb)} | {rate(fb)} |")
            L.append("")
    for p in meta.get("plots", []):
        L += [f"![{Path(p).stem}]({Path(p).name})", ""]
    return "\n".join(L)


def summary_sentence(summary: Dict[str, Any], name: str) -> str:
    """A short generated paragraph for the reproduce report: the rates per data set and method."""
    parts = []
    for g in summary["groups"]:
        rates = ", ".join(f"{m} {100 * r['pixel']['rate']:.1f} % / {100 * r['feature']['rate']:.1f} %"
                          for m, r in g["methods"].items())
        parts.append(f"- {g['dataset']} (fold {g['fold']}, seed {g['seed']}), pixel / feature-space intrusion: {rates}")
    return (f"Measured by `benchmarks/intrusion.py` on one fold and seed per data set; details in [{name}.md]({name}.md).\n\n"
            + "\n".join(parts))


def _denorm(x: Tensor, mean, std) -> np.ndarray:
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    img = (x * s + m).clamp(0, 1).permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[-1] == 1 else img


def pick_examples(groups: List[Dict[str, Any]], per_group: int = 3) -> List[Dict[str, Any]]:
    """Up to ``per_group`` intruding mixes per data set: MixUp in pixel space, MixUp in feature space,
    and the first AdaMixUp variant with an intrusion (pixel first, then feature space)."""
    picks = []
    for g in groups:
        src = g["_examples_src"]
        wanted = [("mixup", "pixel"), ("mixup", "feature")]
        wanted += [(m, s) for m in g["methods"] if m.startswith("adamixup") for s in ("pixel", "feature")]
        chosen, used = [], set()
        for method, space in wanted:
            if len(chosen) >= per_group or (method.startswith("adamixup") and any(c["method"].startswith("adamixup") for c in chosen)):
                continue
            r = g["methods"].get(method)
            if not r:
                continue
            for k, flag in enumerate(r[f"{space}_flags"]):
                if flag and k not in used:
                    used.add(k)
                    chosen.append({"dataset": g["dataset"], "method": method, "space": space, "pair": k,
                                   "a": int(src["i"][k]), "b": int(src["j"][k]), "lam": r["lam"][k],
                                   "nearest": int(r[f"{space}_nearest"][k]), "classes": g["classes"], "src": src})
                    break
        picks += chosen
    return picks


def plot_examples(picks: List[Dict[str, Any]], path: Path) -> Optional[str]:
    if not picks:
        return None
    fig, axes = figure(len(picks), 4, figsize=(6.4, 1.75 * len(picks)), squeeze=False)
    for row, p in zip(axes, picks):
        src, cls = p["src"], p["classes"]
        x, y, lam = src["x"], src["y"], p["lam"]
        xa, xb, xn = x[p["a"]], x[p["b"]], x[p["nearest"]]
        panels = [
            (xa, f"a: class {cls[int(y[p['a']])]}\nweight λ={lam:.2f}"),
            (xb, f"b: class {cls[int(y[p['b']])]}\nweight 1−λ={1 - lam:.2f}"),
            (lam * xa + (1 - lam) * xb, f"mix ({p['method']})\n{p['space']} space"),
            (xn, f"nearest 3rd-class real\n({p['space']}s): class {cls[int(y[p['nearest']])]}"),
        ]
        for ax, (img, title) in zip(row, panels):
            arr = _denorm(img, src["mean"], src["std"])
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
        row[0].text(-0.15, 0.5, p["dataset"], transform=row[0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.suptitle("intruding mixes: closer to a real sample of a third class than to either source", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # leave the suptitle its own strip
    return str(save_figure(fig, path))


def plot_by_lambda(groups: List[Dict[str, Any]], path: Path) -> Optional[str]:

    groups = [g for g in groups if "mixup" in g["methods"]]
    if not groups:
        return None
    fig, axes = figure(1, len(groups), figsize=(3.8 * len(groups), 3.3), squeeze=False, sharey=True)
    for ax, g in zip(axes[0], groups):
        r = g["methods"]["mixup"]
        centres = [(b["lo"] + b["hi"]) / 2 for b in r["pixel_by_lambda"]]
        for key, label in (("pixel_by_lambda", "pixel space"), ("feature_by_lambda", "feature space (MixUp model)")):
            ax.plot(centres, [100 * b["rate"] for b in r[key]], marker="o", label=label)
        ax.set(title=f"{g['dataset']} (fold {g['fold']}, seed {g['seed']})", xlabel="λ (weight of source a)",
               ylabel="intrusion (% of mixes)", xlim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("MixUp's mixes: how often they intrude on a third class, by λ", fontsize=10)
    fig.tight_layout()
    return str(save_figure(fig, path))


def measure_and_report(groups: Dict[str, Dict[str, Path]], results_dir: Path, name: str = "intrusion", pairs: int = 2000,
                       device: str = "cpu", command: str = "", seed: int = 0, bn_mode: str = "train",
                       title: Optional[str] = None) -> Dict[str, Any]:
    """Measure every group (a data set's runs of one fold and seed, ``{method: run_dir}``) and write
    ``<name>.md``, ``<name>.json``, ``<name>_examples.png`` and ``<name>_by_lambda.png``."""
    results_dir = Path(results_dir)
    measured = []
    for label, runs in groups.items():
        print(f"intrusion: {label}: {', '.join(runs)}", flush=True)
        measured.append(measure_group(runs, pairs, device, seed, bn_mode))
    plots = [p for p in (plot_examples(pick_examples(measured), results_dir / f"{name}_examples.png"),
                         plot_by_lambda(measured, results_dir / f"{name}_by_lambda.png")) if p]
    dev = torch.device(device)
    meta = {"command": command, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "bn_mode": bn_mode, "plots": plots, "pairs": pairs, "seed": seed}
    if title:
        meta["title"] = title
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.md").write_text(render_markdown(measured, meta))
    slim = []
    for g in measured:
        slim.append({**{k: v for k, v in g.items() if k != "_examples_src"},
                     "methods": {m: {k: v for k, v in r.items() if not k.endswith(("_flags", "_nearest")) and k != "lam"}
                                 for m, r in g["methods"].items()}})
    (results_dir / f"{name}.json").write_text(json.dumps({"meta": meta, "groups": slim}, indent=1))
    return {"meta": meta, "groups": slim}


def find_groups(root: Path, datasets: Optional[Sequence[str]], fold: int, seed: int,
                methods: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Path]]:
    """``{dataset: {method: run_dir}}`` of the finished runs ``root/<dataset>/<method>/fold<F>-seed<S>``
    (only the named ``methods`` when given)."""
    from adamixup.train import RunDir

    groups: Dict[str, Dict[str, Path]] = {}
    ds_dirs = ([Path(root) / d for d in datasets] if datasets  # in the order given
               else sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name != "logs"))
    for ds_dir in ds_dirs:
        if not ds_dir.is_dir():
            continue
        runs = {}
        for m_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir()):
            if methods and m_dir.name not in methods:
                continue
            run = m_dir / f"fold{fold}-seed{seed}"
            if RunDir(run).summary_path.is_file() and RunDir(run).has_checkpoint():
                runs[m_dir.name] = run
        if runs:
            groups[ds_dir.name] = runs
    return groups


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run folders (default: pick them from --runs-root)")
    p.add_argument("--runs-root", default="runs/reproduce", help="the reproduce study's --out (default runs/reproduce)")
    p.add_argument("--datasets", default=None, help="comma list of data sets under --runs-root, reported in this order (default: all there)")
    p.add_argument("--methods", default=None, help="comma list of methods under --runs-root (default: all there)")
    p.add_argument("--fold", type=int, default=0, help="which fold's runs to use from --runs-root (default 0)")
    p.add_argument("--seed", type=int, default=0, help="which seed's runs to use from --runs-root (default 0)")
    p.add_argument("--pairs", type=int, default=2000, help="random training pairs to mix per run (default 2000)")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the pairs, of MixUp's λ and of π's noise (default 0)")
    p.add_argument("--bn-mode", choices=("train", "eval"), default="train",
                   help="π's batch norm: batch statistics as in training (default) or running statistics")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--name", default="intrusion", help="file name stem of the outputs (default intrusion)")
    args = p.parse_args(argv)
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    if args.runs:
        from adamixup.classify import config_from_dict
        from adamixup.train import RunDir

        groups: Dict[str, Dict[str, Path]] = {}
        for run in map(Path, args.runs):
            cfg = RunDir(run).read_config(config_from_dict)
            key = f"{dataset_label(cfg)} fold {cfg.fold} seed {cfg.seed}"
            groups.setdefault(key, {})[method_label(run, cfg)] = run
    else:
        root = Path(args.runs_root)
        if not root.is_dir():
            p.error(f"--runs-root {root} is not a folder; run benchmarks/reproduce.py first or pass run folders")
        datasets = args.datasets.split(",") if args.datasets else None
        methods = args.methods.split(",") if args.methods else None
        missing = [d for d in datasets or () if not (root / d).is_dir()]
        if missing:
            p.error(f"no data set folder {', '.join(missing)} under {root}")
        groups = find_groups(root, datasets, args.fold, args.seed, methods)
        missing = [m for m in methods or () if not any(m in runs for runs in groups.values())]
        if missing:
            p.error(f"no finished run of method {', '.join(missing)} (fold {args.fold}, seed {args.seed}) under {root}")
        if not groups:
            p.error(f"no finished runs of fold {args.fold}, seed {args.seed} under {root}")
    command = "python benchmarks/intrusion.py" + "".join(f" {a}" for a in argv)
    measure_and_report(groups, Path(args.results_dir), args.name, args.pairs, args.device, command, args.pair_seed, args.bn_mode)
    print(f"wrote {Path(args.results_dir) / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
