"""The report of a study, rebuilt from its ledger alone: markdown, JSON and PNG plots.

Per data set: the score (classification: test or validation error; re-ID: mAP with rank-1/5/10,
mINP and the re-ranked metrics beside it) as mean ± std of every method, relative improvements of
errors as the paper states them, paired differences with cluster-bootstrap intervals and Holm-adjusted p-values (the primary
comparison first and marked), λ's distribution per method, epoch-time ratios; then the machines the
records came from and how much of the plan the ledger holds (a partial ledger gives a partial report
that says so). No number in it is typed by hand.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import stats
from .ledger import DUPLICATE_RULE, Ledger, Match, lam_ends_share, lam_mixedness
from .plan import Plan, Run, expand, plan_summary
from .tasks import cross_metric

PathLike = Union[str, Path]
MIN_PAIRS = 5  # below this many pairs the report says that an interval or a test means little
ALPHA = 0.05
PAPER_NAMES = {"erm": "Baseline", "mixup": "MixUp", "adamixup": "AdaMixUp"}
COLUMN_NAMES = {"rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10", "mINP": "mINP", "rerank_mAP": "re-ranked mAP",
                "rerank_rank1": "re-ranked rank-1", "rerank_mINP": "re-ranked mINP"}


# --------------------------------------------------------------------------------------------------
# analysis: plain data
# --------------------------------------------------------------------------------------------------
def _score(record: Dict[str, Any], metric: str) -> Optional[float]:
    v = record["final"].get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _cluster(record: Dict[str, Any], pooled: bool) -> Any:
    """Pairs that share a test fold form a cluster; on a fixed split each seed is its own. Pooled over data
    sets, the cluster is the underlying data set's fold (digits and digits-S share their test folds)."""
    fold = record.get("fold")
    if fold is None:
        return f"seed{record['seed']}"
    if pooled:
        cfg = record["config"]
        return f"{cfg.get('dataset')}:{cfg.get('data_root')}:fold{fold}"
    return f"fold{fold}"


def _oriented(summary: Dict[str, Any], higher: bool) -> Dict[str, Any]:
    """``a_better`` / ``b_better`` counted the pairs with a negative / positive difference (errors); for a
    score where higher is better (mAP) they swap."""
    if higher:
        summary["a_better"], summary["b_better"] = summary["b_better"], summary["a_better"]
    return summary


def _reference(plan: Plan, registry: str) -> Optional[str]:
    return next((label for label, m in plan.methods.items() if m.method == registry and not m.mixer_args), None)


def paired(records: Sequence[Dict[str, Any]], a: str, b: str, metric: str, dataset: Optional[str] = None) -> Dict[str, Any]:
    """The pairs of methods ``a`` and ``b`` (same data set, fold, seed) on ``dataset`` (None: every data
    set), with their differences ``a − b`` and cluster labels."""
    def runs(method: str) -> Dict[Tuple, Dict[str, Any]]:
        return {(r["dataset"], r.get("fold"), r["seed"]): r for r in records
                if r["method"] == method and dataset in (None, r["dataset"]) and _score(r, metric) is not None}

    ra, rb = runs(a), runs(b)
    keys = sorted(set(ra) & set(rb), key=lambda k: (k[0], -1 if k[1] is None else k[1], k[2]))
    return {"keys": [list(k) for k in keys], "diffs": [_score(ra[k], metric) - _score(rb[k], metric) for k in keys],
            "clusters": [_cluster(ra[k], dataset is None) for k in keys],
            "datasets": list(dict.fromkeys(k[0] for k in keys))}


def _machine(record: Dict[str, Any]) -> str:
    """The machine a record ran on, in words: host, processor or accelerator, CPUs, platform, torch."""
    mach = record.get("machine") or {}
    return (f"{mach.get('hostname', '?')}: {mach.get('accelerator') or mach.get('processor') or '?'}, "
            f"{mach.get('cpu_count', '?')} CPUs, {mach.get('platform', '?')}, torch {mach.get('torch', '?')}")


def _time_ratio(records: Sequence[Dict[str, Any]], method: str, ref: Optional[str],
                dataset: str) -> Tuple[Optional[float], int]:
    """Epoch time of ``method`` over that of ``ref`` on ``dataset``: the geometric mean of the ratios of paired
    runs (same fold and seed) that ran on the same machine, and how many pairs that is. Pairing cancels the
    speed of the machine, which a ratio of means over runs from machines of different speed would not."""
    def seconds(m: str) -> Dict[Tuple, float]:
        return {(r.get("fold"), r["seed"], _machine(r)): float(r["final"]["epoch_seconds_mean"]) for r in records
                if r["dataset"] == dataset and r["method"] == m and (r["final"].get("epoch_seconds_mean") or 0) > 0}
    if ref is None:
        return None, 0
    a, b = seconds(method), seconds(ref)
    logs = [math.log(a[k] / b[k]) for k in set(a) & set(b)]
    return (math.exp(sum(logs) / len(logs)) if logs else None), len(logs)


def analyse(plan: Plan, records: Sequence[Dict[str, Any]], runs: Optional[Sequence[Run]] = None,
            match: Optional[Match] = None) -> Dict[str, Any]:
    """Everything the report shows, as plain data. ``records``: the ledger records that stand for runs
    of ``plan`` (one per run key: :attr:`Match.used`); ``runs``: the plan's runs (for the coverage)."""
    metric, higher = plan.metric, plan.task.higher_is_better
    st = plan.statistics
    runs = list(runs) if runs is not None else []
    records = [r for r in records if _score(r, metric) is not None]
    datasets = [d for d in plan.datasets if any(r["dataset"] == d for r in records)]
    methods = [m for m in plan.methods if any(r["method"] == m for r in records)]
    refs = {name: _reference(plan, name) for name in ("erm", "mixup")}
    time_ref = refs["mixup"] or (methods[0] if methods else None)
    rel_refs = [x for x in dict.fromkeys([refs["erm"], refs["mixup"], plan.primary[1] if plan.primary else None]) if x]
    if higher:  # relative improvements are the paper's way with errors
        rel_refs = []

    out: Dict[str, Any] = {"metric": metric, "metric_name": plan.task.names[metric], "higher_is_better": higher,
                           "columns": list(plan.task.columns), "datasets": datasets, "methods": methods, "tables": {}, "comparisons": {},
                           "pooled": [], "lam": {}, "time_reference": time_ref, "relative_to": rel_refs}
    for ds in datasets:
        rows = []
        for m in methods:
            rs = [r for r in records if r["dataset"] == ds and r["method"] == m]
            if not rs:
                continue
            mean, sd, n = stats.mean_std(_score(r, metric) for r in rs)
            secs = [r["final"].get("epoch_seconds_mean") for r in rs]
            rows.append({"method": m, "registry_method": plan.methods[m].method, "mean": mean, "std": sd, "runs": n,
                         "errors": [_score(r, metric) for r in rs],
                         "epoch_seconds": stats.mean_std(secs)[0], "train_error": stats.mean_std(r["final"].get("train_error") for r in rs)[0],
                         "columns": {k: stats.mean_std(_score(r, k) for r in rs)[:2] for k in plan.task.columns}})
        by = {r["method"]: r for r in rows}
        for r in rows:
            r["relative"] = {ref: stats.relative_improvement(by[ref]["mean"], r["mean"])
                             for ref in rel_refs if ref in by and ref != r["method"]}
            r["time_ratio"], r["time_pairs"] = _time_ratio(records, r["method"], time_ref, ds)
        out["tables"][ds] = rows
        comps = []
        for a, b in plan.all_comparisons():
            p = paired(records, a, b, metric, ds)
            if not p["diffs"]:
                continue
            summary = _oriented(stats.compare_paired(p["diffs"], p["clusters"], st["resamples"], st["level"], st["seed"],
                                                     st["interval"]), higher)
            comps.append({"dataset": ds, "a": a, "b": b, "primary": (a, b) == plan.primary, **p, **summary})
        out["comparisons"][ds] = comps
        lam_rows = []
        for m in methods:
            rs = [r for r in records if r["dataset"] == ds and r["method"] == m and r.get("lam")]
            if not rs:
                continue
            row = {"method": m, "runs": len(rs)}
            for key in ("mean", "std", "mixedness", "ends"):
                row[key], row[key + "_sd"], _ = stats.mean_std(r["lam"].get(key) for r in rs)
            row["intrusion_acc"], row["intrusion_acc_sd"], _ = stats.mean_std(r["final"].get("intrusion_acc") for r in rs)
            lam_rows.append(row)
        out["lam"][ds] = lam_rows
    if plan.pooled and len(datasets) > 1:
        for a, b in plan.all_comparisons():
            p = paired(records, a, b, metric)
            if len(p["datasets"]) < 2:
                continue
            summary = _oriented(stats.compare_paired(p["diffs"], p["clusters"], st["resamples"], st["level"], st["seed"],
                                                     st["interval"]), higher)
            out["pooled"].append({"dataset": "pooled", "a": a, "b": b, "primary": (a, b) == plan.primary, **p, **summary})

    # test-only data sets (re-ID across data sets): each run's network scored on another data set's query and gallery
    out["cross"] = []
    for ds in datasets:
        for label, target in plan.datasets[ds].cross.items():
            key = cross_metric(label, "mAP")
            rows = []
            for m in methods:
                rs = [r for r in records if r["dataset"] == ds and r["method"] == m and _score(r, key) is not None]
                if rs:
                    rows.append({"method": m, "runs": len(rs), **{k: stats.mean_std(_score(r, cross_metric(label, k)) for r in rs)[:2]
                                                                  for k in ("mAP", "rank1", "mINP")}})
            comps = []
            for a_, b_ in plan.all_comparisons():
                p = paired(records, a_, b_, key, ds)
                if p["diffs"]:
                    summary = _oriented(stats.compare_paired(p["diffs"], p["clusters"], st["resamples"], st["level"],
                                                             st["seed"], st["interval"]), True)
                    comps.append({"dataset": f"{ds} → {label}", "a": a_, "b": b_, "primary": (a_, b_) == plan.primary,
                                  **p, **summary})
            if rows:
                out["cross"].append({"dataset": ds, "label": label, "target": target, "rows": rows, "comparisons": comps})

    # one Holm family: every comparison this report makes (per data set, pooled and across data sets, the primary included)
    family = ([c for ds in datasets for c in out["comparisons"][ds]] + out["pooled"]
              + [c for x in out["cross"] for c in x["comparisons"]])
    key = "p_signflip" if st["test"] == "signflip" else "p_wilcoxon"
    for c, adj in zip(family, stats.holm([c[key] for c in family])):
        c["p_test"], c["p_holm"] = c[key], adj
        c["survives"] = bool(adj <= ALPHA) if not math.isnan(adj) else False
    out["holm"] = {"test": st["test"], "family": len(family), "alpha": ALPHA,
                   "survivors": [f"{c['dataset']}: {c['a']} − {c['b']}" for c in family if c["survives"]]}

    means = {ds: {r["method"]: r["mean"] for r in out["tables"][ds]} for ds in datasets}
    overall = {m: float(np.mean([means[ds][m] for ds in datasets])) for m in methods
               if all(m in means[ds] for ds in datasets)}
    out["selected"] = {}
    for ds, ms in [*means.items(), *([("all data sets", overall)] if len(datasets) > 1 else [])]:
        ranked = sorted(ms.items(), key=lambda kv: -kv[1] if higher else kv[1])
        if ranked:
            out["selected"][ds] = (ranked[0], ranked[1] if len(ranked) > 1 else None)

    planned = {}
    for run in runs:
        cell = planned.setdefault((run.dataset, run.method), [0, 0])
        cell[0] += 1
    for r in records:
        if (r["dataset"], r["method"]) in planned:
            planned[(r["dataset"], r["method"])][1] += 1
    out["coverage"] = {"planned": len(runs), "done": len(records), "partial": len(records) < len(runs),
                       "cells": [{"dataset": d, "method": m, "planned": p, "done": n} for (d, m), (p, n) in planned.items()],
                       "problems": list(match.problems) if match else [], "stale": list(match.stale) if match else [],
                       "duplicates": list(match.duplicates) if match else []}
    machines: Dict[str, Dict[str, Any]] = {}
    for r in records:
        mach = r.get("machine") or {}
        desc = _machine(r)
        entry = machines.setdefault(desc, {"machine": desc, "runs": 0, "devices": set()})
        entry["runs"] += 1
        entry["devices"].add(str(r["final"].get("device") or mach.get("device")))
    out["machines"] = [{**m, "devices": sorted(m["devices"])} for m in machines.values()]
    out["train_seconds"] = float(sum(r["final"].get("train_seconds") or 0.0 for r in records))
    out["wall_seconds"] = float(sum(r.get("seconds") or 0.0 for r in records))
    # the report's date is its ledger's: rebuilding it from the same records writes the same files
    out["latest_record"] = max((str(r.get("finished_at") or "") for r in records), default="") or None
    return out


# --------------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------------
def _fmt(x: Optional[float], spec: str = ".2f", signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if float(format(x, spec)) == 0:  # no "-0.00"
        x = 0.0
    return format(x, ("+" if signed else "") + spec)


def _fmt_p(p: Optional[float]) -> str:
    if p is None or math.isnan(p):
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _pm(mean: Optional[float], sd: Optional[float], spec: str = ".3f") -> str:
    if mean is None or math.isnan(mean):
        return "—"
    return f"{format(mean, spec)} ± {format(sd, spec)}"


def verdict(c: Dict[str, Any], level: float, higher: bool = False, metric_name: str = "error") -> str:
    """One mechanical sentence about a comparison: where the interval lies and whether it survives Holm."""
    a, b = c["a"], c["b"]
    better = f"the higher {metric_name}" if higher else f"the lower {metric_name}"
    head = f"{a} − {b}: {_fmt(c['mean'], '.2f', True)} points over {c['pairs']} pairs ({c['clusters']} clusters)"
    if c["pairs"] < MIN_PAIRS:
        return f"{head}: too few pairs for the interval or the tests to mean anything (at least {MIN_PAIRS} needed)."
    pct = f"{level * 100:g}%"
    if c["ci_high"] < 0:
        where = f"the {pct} interval lies below 0 ({b if higher else a} had {better})"
    elif c["ci_low"] > 0:
        where = f"the {pct} interval lies above 0 ({a if higher else b} had {better})"
    else:
        where = f"the {pct} interval contains 0 (no difference resolved)"
    holm = ("survives the Holm correction" if c.get("survives") else "does not survive the Holm correction")
    return f"{head}; {where}; Holm-adjusted p = {_fmt_p(c.get('p_holm'))}, {holm} at {ALPHA}."


def _all_comparisons(a: Dict[str, Any]) -> List[Dict[str, Any]]:
    return ([c for ds in a["datasets"] for c in a["comparisons"][ds]] + a["pooled"]
            + [c for x in a.get("cross", []) for c in x["comparisons"]])


def _comparison_table(comps: Sequence[Dict[str, Any]], pooled: bool = False) -> List[str]:
    head = "| comparison | " + ("data sets | " if pooled else "") + ("pairs (clusters) | mean | interval | naive interval | "
                                                                      "better / tie / worse | Wilcoxon p | sign p | sign-flip p | Holm p | survives |")
    L = [head, "|---|" + ("---|" if pooled else "") + "---:|---:|---|---|---|---:|---:|---:|---:|---|"]
    for c in comps:
        mark = "**★ " if c["primary"] else ""
        end = "**" if c["primary"] else ""
        L.append(f"| {mark}{c['a']} − {c['b']}{end} | " + (f"{', '.join(c['datasets'])} | " if pooled else "")
                 + f"{c['pairs']} ({c['clusters']}) | {_fmt(c['mean'], '.2f', True)} | "
                 f"[{_fmt(c['ci_low'], '.2f', True)}, {_fmt(c['ci_high'], '.2f', True)}] | "
                 f"[{_fmt(c['naive_ci_low'], '.2f', True)}, {_fmt(c['naive_ci_high'], '.2f', True)}] | "
                 f"{c['a_better']} / {c['ties']} / {c['b_better']} | {_fmt_p(c['p_wilcoxon'])} | {_fmt_p(c['p_sign'])} | "
                 f"{_fmt_p(c['p_signflip'])} | {_fmt_p(c.get('p_holm'))} | {'yes' if c.get('survives') else 'no'} |")
    return L


def render_markdown(plan: Plan, analysis: Dict[str, Any], plots: Sequence[str] = (), command: Optional[str] = None) -> str:
    a, st = analysis, plan.statistics
    cov = a["coverage"]
    metric_name, higher = a["metric_name"], a["higher_is_better"]
    L: List[str] = [f"# Study `{plan.name}`" + (f": {plan.description}" if plan.description else ""), ""]
    latest = f"; its latest record finished {a['latest_record']}" if a.get("latest_record") else ""
    L += ["Rebuilt from the ledger alone (`adamixup study report`)"
          + (f" by `{command}`" if command else "") + latest + f"; plan `{plan.source}`. Score = {metric_name} (%) of the final "
          "epoch (no best-epoch selection), " + ("higher is better." if higher else "lower is better."), ""]
    if cov["partial"]:
        L += [f"**Partial report: {cov['done']} of {cov['planned']} planned runs are in the ledger.** Every number "
              "below comes from the finished runs only; comparisons use the pairs both methods finished.", ""]
    else:
        L += [f"All {cov['planned']} planned runs are in the ledger.", ""]
    if plan.selection.split == "validation":
        L += [f"Selection mode: every run held out {plan.selection.fraction:g} of its training data as a validation split "
              f"({'training identities as query and gallery' if plan.task.name == 'reid' else 'stratified, from its training fold'}) "
              "and is scored on it; the test split is not looked at.", ""]

    # the plan
    L += ["## Plan", "", "| data set | recipe | settings | folds |", "|---|---|---|---|"]
    for d in plan.datasets.values():
        settings = ", ".join(f"{k}={v}" for k, v in {**plan.overrides, **d.overrides}.items()) or "the recipe's"
        L.append(f"| {d.label} | `{d.recipe}` | {settings} | {d.folds.describe(plan.task)} |")
    L += ["", "| method | registry method | options | settings |", "|---|---|---|---|"]
    for m in plan.methods.values():
        opts = ", ".join(f"{k}={v!r}" for k, v in m.mixer_args.items()) or "defaults"
        settings = ", ".join(f"{k}={v}" for k, v in m.overrides.items()) or "—"
        if m.folds is not None:
            settings += f"; only folds {', '.join(map(str, m.folds))}"
        L.append(f"| {m.label} | `{m.method}` | {opts} | {settings} |")
    L += ["", f"Seeds {', '.join(map(str, plan.seeds))}. {plan.task.pairing}", ""]
    if plan.chosen:
        L += ["Settings chosen from results, and the runs that chose them (the plan's `chosen`):", "",
              "| setting | chosen by |", "|---|---|"]
        L += [f"| {k} | {v} |" for k, v in plan.chosen.items()] + [""]
    elif plan.selection.split == "test":
        L += ["The plan names no setting chosen from results (`chosen`).", ""]
    if plan.primary:
        L += [f"**Primary comparison** (stated in the plan before running): **{plan.primary[0]} − {plan.primary[1]}**.", ""]
    L += [f"Intervals: {st['level'] * 100:g}% {'two-stage cluster bootstrap (folds, then seeds within them)' if st['interval'] == 'cluster' else 'bootstrap stratified by fold' if st['interval'] == 'stratified' else 'bootstrap over pairs'}, "
          f"{st['resamples']:,} resamples (seed {st['seed']}); the naive interval (pairs as independent) beside it. "
          f"Holm correction over all {a['holm']['family']} comparisons of this report (the primary included), applied to "
          f"the {'Wilcoxon signed-rank' if st['test'] == 'wilcoxon' else 'cluster sign-flip'} p-values; a comparison "
          f"survives when its adjusted p is at most {ALPHA}. The sign-flip test flips whole clusters (folds) and cannot go "
          "below 2/2^K with K clusters.", ""]

    primary = [c for ds in a["datasets"] for c in a["comparisons"][ds] if c["primary"]] + [c for c in a["pooled"] if c["primary"]]
    if primary:
        L += ["## Primary comparison", ""]
        L += [f"- {c['dataset']}: {verdict(c, st['level'], higher, metric_name)}" for c in primary] + [""]
    if plan.selection.split == "validation" and a["datasets"]:
        L += ["## What this selection chose", "",
              f"The method with the {'highest' if higher else 'lowest'} mean {metric_name} per data set, and over all "
              "data sets (the mean of the per-data-set means); whether that choice is resolved is for the comparisons "
              "below and the plan's own rule to say.", "", "| data set | chosen | its mean | runner-up | its mean |",
              "|---|---|---:|---|---:|"]
        for ds, (best, second) in a["selected"].items():
            L.append(f"| {ds} | **{best[0]}** | {best[1]:.2f} | {second[0] if second else '—'} | "
                     f"{_fmt(second[1]) if second else '—'} |")
        L.append("")
    survivors = a["holm"]["survivors"]
    L += [f"Comparisons that survive the Holm correction at {ALPHA}: " + (", ".join(survivors) if survivors else "none") + ".", ""]

    for ds in a["datasets"]:
        refs = [r for r in a["relative_to"]]
        cols = a["columns"]
        L += [f"## {ds}", "",
              "| method | " + metric_name + " (%) mean ± std | " + "".join(f"{COLUMN_NAMES.get(k, k)} | " for k in cols)
              + "runs | " + "".join(f"rel. impr. over {r} | " for r in refs) + f"epoch time × {a['time_reference']} |",
              "|---|---:|" + "---:|" * len(cols) + "---:|" + "---:|" * len(refs) + "---:|"]
        for r in a["tables"][ds]:
            rel = "".join(((_fmt(r["relative"][ref], ".1f", True) + "%") if ref in r["relative"] else "—") + " | "
                          for ref in refs)
            extra = "".join(_pm(*r["columns"][k], spec=".1f") + " | " for k in cols)
            L.append(f"| {r['method']} | {r['mean']:.2f} ± {r['std']:.2f} | {extra}{r['runs']} | {rel}"
                     f"{_fmt(r['time_ratio'])} |")
        L.append("")
        if a["comparisons"][ds]:
            few = min(c["pairs"] for c in a["comparisons"][ds]) < MIN_PAIRS
            L += [f"Paired differences of {metric_name}, first − second method, in percentage points ("
                  + ("positive: the first had the higher" if higher else "negative: the first had the lower")
                  + f" {metric_name}); ★ marks the primary comparison." + (f" **Some comparisons have fewer than {MIN_PAIRS} pairs: "
                                                               "their intervals and p-values mean little.**" if few else ""), ""]
            L += _comparison_table(a["comparisons"][ds]) + [""]
    if a["pooled"]:
        L += ["## Pooled over data sets", "",
              "Each comparison again over the pairs of every data set where both methods ran; clusters are the underlying "
              "data set's folds (a set and its -S variant share their test folds).", ""]
        L += _comparison_table(a["pooled"], pooled=True) + [""]
    for x in a.get("cross", []):
        t = x["target"]
        args = ", ".join(f"{k}={v}" for k, v in (t.get("dataset_args") or {}).items())
        L += [f"## Across data sets: trained on {x['dataset']}, scored on {x['label']}", "",
              f"Each run's network (its last checkpoint, its test-time settings) scored on `{t['dataset']}` in "
              f"`{t['data_root']}`" + (f" ({args})" if args else "") + "; mAP, rank-1 and mINP in %, mean ± std over runs. "
              "Paired differences of mAP (higher is better), in the report's Holm family.", "",
              "| method | mAP | rank-1 | mINP | runs |", "|---|---:|---:|---:|---:|"]
        L += [f"| {r['method']} | {_pm(*r['mAP'], '.1f')} | {_pm(*r['rank1'], '.1f')} | {_pm(*r['mINP'], '.1f')} | {r['runs']} |"
              for r in x["rows"]]
        L += [""] + (_comparison_table(x["comparisons"]) + [""] if x["comparisons"] else [])

    if any(a["lam"][ds] for ds in a["datasets"]):
        L += ["## λ per method", "",
              "Last epoch, mean ± std over runs: λ's mean and standard deviation, the mean of min(λ, 1 − λ) (how far a mix "
              "lies from its nearer source; U(0, 1): 0.25) and the share of λ within 0.05 of 0 or 1 (from the 20-bin "
              "histogram), and φ's accuracy where there is a φ.", "",
              "| data set | method | λ mean | λ std | mean min(λ, 1−λ) | share within 0.05 of 0 or 1 | φ accuracy | runs |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for ds in a["datasets"]:
            for r in a["lam"][ds]:
                cells = [_pm(r[k], r[k + "_sd"]) for k in ("mean", "std", "mixedness", "ends", "intrusion_acc")]
                L.append(f"| {ds} | {r['method']} | " + " | ".join(cells) + f" | {r['runs']} |")
        L.append("")

    L += ["## Epoch time", "",
          f"Mean seconds per training epoch over a method's runs (they depend on the machine each ran on), and the "
          f"ratio to {a['time_reference']}: the geometric mean over the pairs of runs (same data set, fold and seed) "
          "that ran on the same machine, with the number of such pairs; — where there is none. Rough when runs "
          "shared a machine.", "",
          "| method | " + " | ".join(f"{ds} s/epoch | × | pairs" for ds in a["datasets"]) + " |",
          "|---|" + "---:|---:|---:|" * len(a["datasets"])]
    for m in a["methods"]:
        cells = []
        for ds in a["datasets"]:
            r = next((r for r in a["tables"][ds] if r["method"] == m), None)
            cells += [_fmt(r["epoch_seconds"]), _fmt(r["time_ratio"]), str(r["time_pairs"])] if r else ["—", "—", "—"]
        L.append(f"| {m} | " + " | ".join(cells) + " |")
    L.append("")

    L += ["## Runs and machines", "",
          f"{cov['done']} of {cov['planned']} planned runs; {a['train_seconds'] / 60:.1f} min of training "
          f"({a['wall_seconds'] / 60:.1f} min of the runs' wall time, summed).", "",
          "| machine | runs | devices |", "|---|---:|---|"]
    L += [f"| {m['machine']} | {m['runs']} | {', '.join(m['devices'])} |" for m in a["machines"]] + [""]
    if cov["partial"]:
        L += ["| data set | method | done / planned |", "|---|---|---:|"]
        L += [f"| {c['dataset']} | {c['method']} | {c['done']} / {c['planned']} |" for c in cov["cells"]] + [""]
    notes = ([f"- skipped: {p}" for p in cov["problems"]] + [f"- stale: {s}" for s in cov["stale"]]
             + [f"- duplicate: {d}" for d in cov["duplicates"]])
    if notes:
        L += ["Ledger notes (" + DUPLICATE_RULE + "):", ""] + notes + [""]
    if plots:
        L += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    counts = sorted({int(c["clusters"]) for c in _all_comparisons(a) if isinstance(c.get("clusters"), (int, float))})
    over = " or ".join(map(str, counts)) if counts else "few"
    L += ["## Caveats", "",
          f"- Final-epoch {metric_name} for every method alike; differences smaller than the intervals are not resolved.",
          "- Folds share training images and a fold's pairs share its test images: the cluster interval treats the clusters "
          f"(folds; seeds on a fixed split) as the independent units, so with few of them it is itself rough (a bootstrap "
          f"over {over} clusters is optimistic).",
          ""]
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------
def write_plots(analysis: Dict[str, Any], records: Sequence[Dict[str, Any]], out_dir: Path, name: str) -> List[str]:
    """``<name>_errors.png``, ``<name>_paired.png`` and ``<name>_lambda.png`` in ``out_dir``; returns the
    paths written (drawn in the package's one style, :mod:`adamixup.plots`, without pyplot)."""
    from matplotlib import colormaps

    from ..plots import figure, save_figure

    def save(fig, path: Path) -> str:
        return str(save_figure(fig, path))

    paths: List[str] = []
    datasets, methods = analysis["datasets"], analysis["methods"]
    if not datasets:
        return paths
    cmap = colormaps["tab10"]
    colors = {m: cmap(i % 10) for i, m in enumerate(methods)}

    fig, axes = figure(1, len(datasets), figsize=(max(3.6, 0.55 * len(methods) + 1.5) * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        rows = analysis["tables"][ds]
        xs = np.arange(len(rows))
        # markers, not bars: the axis spans the data, so that a gap of a fraction of a point stays visible
        for x, r in zip(xs, rows):
            ax.errorbar([x], [r["mean"]], yerr=[r["std"]], fmt="s", ms=7, capsize=4, color=colors[r["method"]])
        for x, r in zip(xs, rows):
            jitter = np.linspace(-0.2, 0.2, len(r["errors"])) if len(r["errors"]) > 1 else np.zeros(1)
            ax.scatter(x + jitter, r["errors"], s=8, color="black", zorder=3)
        ax.set_xticks(xs, [r["method"] for r in rows], rotation=45, ha="right", fontsize=8)
        ax.set(title=ds, ylabel=f"{analysis['metric_name']} (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"final {analysis['metric_name']}: mean ± std over runs (squares; dots: single runs; the axis does "
                 "not start at 0)", fontsize=10)
    fig.tight_layout()
    paths.append(save(fig, out_dir / f"{name}_errors.png"))

    for key, what in (("cmc", "plain distance"), ("rerank_cmc", "re-ranked")):
        if any(isinstance(r["final"].get(key), list) for r in records):
            paths.append(save(_cmc_figure(records, datasets, methods, colors, key, what), out_dir / f"{name}_{key}.png"))

    panels = [(ds, analysis["comparisons"][ds]) for ds in datasets if analysis["comparisons"][ds]]
    if analysis["pooled"]:
        panels.append(("pooled", analysis["pooled"]))
    if panels:
        n = max(len(c) for _, c in panels)
        fig, axes = figure(1, len(panels), figsize=(4.2 * len(panels), 0.45 * n + 1.6), squeeze=False)
        for ax, (title, comps) in zip(axes[0], panels):
            for i, c in enumerate(comps):
                y = len(comps) - 1 - i
                ax.scatter(c["diffs"], [y] * len(c["diffs"]), s=10, color="gray", alpha=0.7, zorder=2)
                if c["pairs"] and not math.isnan(c["ci_low"]):
                    ax.errorbar([c["mean"]], [y], xerr=[[c["mean"] - c["ci_low"]], [c["ci_high"] - c["mean"]]], fmt="o",
                                color="C3" if c["primary"] else "C0", capsize=3, zorder=3)
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks(range(len(comps)), [("★ " if c["primary"] else "") + f"{c['a']} − {c['b']}" for c in comps][::-1],
                          fontsize=8)
            ax.set(title=title, xlabel=f"Δ {analysis['metric_name']} (points)")
            ax.grid(axis="x", alpha=0.3)
        side = "right" if analysis["higher_is_better"] else "left"
        fig.suptitle(f"paired differences (dots); mean with the cluster-bootstrap interval; {side} of 0: first method better",
                     fontsize=9)
        fig.tight_layout()
        paths.append(save(fig, out_dir / f"{name}_paired.png"))

    lam_methods = [m for m in methods if any(r["method"] == m and r.get("lam") for r in records)]
    if lam_methods:
        fig, axes = figure(2, len(datasets), figsize=(3.8 * len(datasets), 6), squeeze=False, sharex="col")
        for j, ds in enumerate(datasets):
            for m in lam_methods:
                curves = [[e for e in r["history"] if e.get("lam_hist")] for r in records if r["dataset"] == ds and r["method"] == m]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                ep = [e["epoch"] for e in curves[0][:n]]
                mixed = np.mean([[lam_mixedness(e["lam_hist"]) for e in c[:n]] for c in curves], axis=0)
                ends = np.mean([[lam_ends_share(e["lam_hist"]) if len(e["lam_hist"]) == 20 else np.nan for e in c[:n]]
                                for c in curves], axis=0)
                style = ("-", "--", ":", "-.")[methods.index(m) % 4]  # methods that draw alike stay visible
                axes[0, j].plot(ep, mixed, style, color=colors[m], label=m, marker=".")
                axes[1, j].plot(ep, ends, style, color=colors[m], label=m, marker=".")
            axes[0, j].set(title=ds, ylabel="mean of min(λ, 1 − λ)", ylim=(0, 0.5))
            axes[1, j].set(xlabel="epoch", ylabel="share of λ within 0.05 of 0 or 1", ylim=(0, 1))
            for ax in axes[:, j]:
                ax.grid(alpha=0.3)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.suptitle("λ over training, mean over runs", fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
        paths.append(save(fig, out_dir / f"{name}_lambda.png"))
    return paths


def _cmc_figure(records: Sequence[Dict[str, Any]], datasets: Sequence[str], methods: Sequence[str], colors: Dict[str, Any],
                key: str, what: str, ranks: int = 20):
    """Re-ID: each method's CMC curve (mean over its runs) on one plot per data set."""
    from matplotlib.ticker import MaxNLocator

    from ..plots import figure

    fig, axes = figure(1, len(datasets), figsize=(7.6 * len(datasets), 4.2), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for i, m in enumerate(methods):
            curves = [r["final"][key][:ranks] for r in records
                      if r["dataset"] == ds and r["method"] == m and isinstance(r["final"].get(key), list)]
            n = min((len(c) for c in curves), default=0)
            if not n:
                continue
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(np.arange(1, n + 1), mean, ("-", "--", ":", "-.")[i % 4], color=colors[m], marker=".",
                    label=f"{m} (rank-1 {mean[0]:.1f}, {len(curves)} run{'s' if len(curves) > 1 else ''})")
        ax.set(title=f"{ds}: CMC ({what}), mean over runs", xlabel="rank", ylabel="matching rate (%)", xlim=(1, ranks))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside: curves fill the axes
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# the whole report
# --------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    return value


def write_report(plan: Plan, ledger: Union[Ledger, PathLike, Sequence[PathLike]], out_dir: PathLike,
                 name: Optional[str] = None, plots: bool = True, command: Optional[str] = None,
                 runs: Optional[Sequence[Run]] = None) -> Dict[str, Any]:
    """Rebuild the report of ``plan`` from ``ledger`` into ``out_dir``: ``<name>.md``, ``<name>.json`` and
    the ``<name>_*.png`` plots (``name``: the plan's). Returns the analysis."""
    ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    runs = list(runs) if runs is not None else expand(plan)
    match = ledger.match(runs, warn=False)
    order = {r.key: i for i, r in enumerate(runs)}
    records = sorted(match.used.values(), key=lambda r: order[r["key"]])
    analysis = analyse(plan, records, runs, match)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or plan.name
    paths = write_plots(analysis, records, out_dir, name) if plots and records else []
    (out_dir / f"{name}.md").write_text(render_markdown(plan, analysis, paths, command))
    slim = [{k: v for k, v in r.items() if k not in ("history", "_file")} for r in records]
    (out_dir / f"{name}.json").write_text(json.dumps(_jsonable({"plan": plan_summary(plan), "analysis": analysis,
                                                                "runs": slim}), indent=1, allow_nan=False))
    return analysis
