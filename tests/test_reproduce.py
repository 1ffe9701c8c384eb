"""benchmarks/reproduce.py and benchmarks/intrusion.py: the statistics, the intrusion measure on a
constructed example, the report from fake runs, and one tiny end-to-end invocation."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rep = _load("reproduce")
intr = _load("intrusion")


# ---- statistics ------------------------------------------------------------------------------------
def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    diffs = [-0.4, 0.1, -0.3, -0.2, 0.5, -0.6, -0.1, 0.0, -0.2, -0.3]
    lo, hi = rep.bootstrap_ci(diffs, resamples=10_000, seed=0)
    assert lo < np.mean(diffs) < hi
    assert lo > min(diffs) and hi < max(diffs)
    assert (lo, hi) == rep.bootstrap_ci(diffs, resamples=10_000, seed=0)
    # a more variable sample of the same mean gets a wider interval
    lo2, hi2 = rep.bootstrap_ci([3 * d - 2 * np.mean(diffs) for d in diffs], seed=0)
    assert hi2 - lo2 > 2 * (hi - lo)


def test_bootstrap_known_small_cases():
    assert rep.bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))
    assert rep.bootstrap_ci([2.0]) == pytest.approx((2.0, 2.0))
    assert all(math.isnan(v) for v in rep.bootstrap_ci([]))
    # two values: the resampled means are 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    lo, hi = rep.bootstrap_ci([0.0, 1.0], resamples=20_000)
    assert (lo, hi) == pytest.approx((0.0, 1.0))


def test_wilcoxon_and_sign_test():
    assert rep.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(rep.wilcoxon_p([]))
    # ten negative differences: the exact two-sided p is 2 / 2^10
    assert rep.wilcoxon_p([-1.0 - 0.1 * i for i in range(10)]) == pytest.approx(2 / 1024)
    assert rep.wilcoxon_p([-1.0, 1.0, -2.0, 2.0, -3.0, 3.0]) > 0.5
    neg, zero, pos, p = rep.sign_test([-1, -2, 0, 3, -4])
    assert (neg, zero, pos) == (3, 1, 1)
    assert p == pytest.approx(0.625)  # binomial: P(X <= 1 or X >= 3 | n = 4) = 10/16


def test_paired_matches_runs_by_fold_and_seed():
    recs = [
        {"dataset": "d", "method": "a", "fold": 0, "seed": 0, "test_error": 1.0},
        {"dataset": "d", "method": "a", "fold": 1, "seed": 0, "test_error": 2.0},
        {"dataset": "d", "method": "a", "fold": 2, "seed": 0, "test_error": 9.0},  # b did not finish this one
        {"dataset": "d", "method": "b", "fold": 1, "seed": 0, "test_error": 2.5},
        {"dataset": "d", "method": "b", "fold": 0, "seed": 0, "test_error": 1.5},
        {"dataset": "other", "method": "b", "fold": 2, "seed": 0, "test_error": 0.0},
    ]
    keys, diffs = rep.paired(recs, "d", "a", "b")
    assert keys == [(0, 0), (1, 0)]
    assert diffs == pytest.approx([-0.5, -0.5])
    recs.append({"dataset": "other", "method": "a", "fold": 2, "seed": 0, "test_error": 0.25})
    keys, diffs = rep.paired(recs, None, "a", "b")  # pooled: pairs keyed by data set too
    assert keys == [("d", 0, 0), ("d", 1, 0), ("other", 2, 0)]
    assert diffs == pytest.approx([-0.5, -0.5, 0.25])
    assert rep.paired_summary(recs, None, "a", "b")["datasets"] == ["d", "other"]


def test_small_helpers():
    hist = [5] + [0] * 18 + [15]
    assert rep.lam_ends_share(hist) == pytest.approx(1.0)
    assert rep.lam_ends_share([1] * 20) == pytest.approx(0.1)
    assert rep.relative_improvement(2.0, 1.5) == pytest.approx(25.0)
    assert rep.lam_mixedness([1] * 20) == pytest.approx(0.25)  # U(0, 1)
    assert rep.lam_mixedness([0] * 3 + [7] + [0] * 16) == pytest.approx(rep.lam_mixedness([0] * 16 + [7] + [0] * 3))
    assert rep._fmt(-1e-12, ".2f", True) == "+0.00"
    assert rep.parse_ints("0-2,4", "folds") == [0, 1, 2, 4]
    assert rep.parse_epochs("7", ["digits", "mnist5k-S"]) == {"digits": 7, "mnist5k-S": 7}
    assert rep.parse_epochs("digits=3,mnist5k-S=9", ["digits", "digits-S", "mnist5k-S"]) == {"digits": 3, "digits-S": 3, "mnist5k-S": 9}
    assert rep.parse_epochs(None, ["digits"]) == {"digits": rep.DEFAULT_EPOCHS["digits"]}
    with pytest.raises(SystemExit):
        rep.parse_epochs("cifar=3", ["digits"])


# ---- intrusion on a constructed example ----------------------------------------------------------------
def test_intrusion_on_points_on_a_line():
    # class 0 at x = 0, class 1 at x = 10, class 2 at x = 5 (in the middle), class 3 far away at x = 100
    ref = torch.tensor([[0.0], [10.0], [5.0], [100.0]])
    ref_y = torch.tensor([0, 1, 2, 3])
    a, b = ref[[0, 0, 0]], ref[[1, 1, 1]]
    ya, yb = torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1])
    lam = torch.tensor([0.5, 0.9, 0.35])
    mixed = lam[:, None] * a + (1 - lam[:, None]) * b  # 5.0, 1.0, 6.5
    out = intr.intrusion_flags(mixed, a, b, ya, yb, ref, ref_y)
    assert out["flags"].tolist() == [True, False, True]
    assert out["nearest"].tolist() == [2, 2, 2]
    assert out["d_third"].tolist() == pytest.approx([0.0, 4.0, 1.5])
    assert out["d_source"].tolist() == pytest.approx([5.0, 1.0, 3.5])
    # a pair of the same class: every other class is a third class
    same = intr.intrusion_flags(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[4.0]]),
                                torch.tensor([0]), torch.tensor([0]), ref, ref_y)
    assert same["flags"].tolist() == [False] and same["nearest"].tolist() == [2]
    # the sources' own classes never count as a third class, even when closer
    only_sources = intr.intrusion_flags(torch.tensor([[5.0]]), torch.tensor([[0.0]]), torch.tensor([[10.0]]),
                                        torch.tensor([0]), torch.tensor([2]), ref[:3], torch.tensor([0, 2, 2]))
    assert only_sources["flags"].tolist() == [False] and math.isinf(only_sources["d_third"].item())


def test_intrusion_rate_by_lambda_bins():
    lam = torch.tensor([0.05, 0.45, 0.5, 0.55, 1.0])
    flags = torch.tensor([False, True, True, False, False])
    bins = intr.rate_by_lambda(lam, flags, bins=10)
    assert [b["n"] for b in bins] == [1, 0, 0, 0, 1, 2, 0, 0, 0, 1]
    assert bins[4]["rate"] == 1.0 and bins[5]["rate"] == 0.5 and bins[0]["rate"] == 0.0
    assert math.isnan(bins[1]["rate"])
    lo, hi = intr.wilson(5, 10)
    assert lo < 0.5 < hi and 0 <= lo and hi <= 1
    i, j = intr.draw_pairs(7, 500, seed=3)
    assert bool((i != j).all()) and int(i.max()) < 7 and int(j.max()) < 7


# ---- the report from fake runs ---------------------------------------------------------------------------
def _fake_records():
    recs = []
    errors = {"erm": [2.0, 2.2, 1.8, 2.4, 2.1], "mixup": [1.6, 1.8, 1.5, 1.9, 1.7], "adamixup": [1.5, 1.8, 1.4, 1.7, 1.6],
              "adamixup-w0": [1.9, 2.0, 1.7, 2.1, 1.8]}
    for method, errs in errors.items():
        for fold, e in enumerate(errs):
            mixing = method != "erm"
            hist = ([5] * 20 if method == "mixup" else [50] + [0] * 18 + [50]) if mixing else None
            recs.append({
                "dataset": "digits", "method": method, "fold": fold, "seed": 0, "run_dir": f"/x/{method}/{fold}",
                "test_error": e, "epochs": 3, "epoch_seconds": {"erm": 1.0, "mixup": 1.0}.get(method, 2.5),
                "device": "cpu", "train_error": 0.5,
                "lam_mean": 0.5 if mixing else None, "lam_std": 0.29 if mixing else None,
                "lam_ends": rep.lam_ends_share(hist) if mixing else None,
                "lam_mixedness": rep.lam_mixedness(hist) if mixing else None,
                "intrusion_acc": 0.9 if method.startswith("adamixup") else None,
                "history": [{"epoch": k + 1, "lam_mean": 0.5, "lam_std": 0.2, "lam_hist": hist, "intrusion_acc": None,
                             "test_error": e} for k in range(3)] if mixing else [{"epoch": 1, "test_error": e}],
            })
    return recs


def test_markdown_tables_from_fake_runs(tmp_path):
    recs = _fake_records()
    meta = {"command": "python benchmarks/reproduce.py --fake", "device_name": "CPU test", "run_devices": ["cpu"],
            "workers": 1, "torch": "x", "out": "runs/fake", "folds": [0, 1, 2, 3, 4], "num_folds": 5, "seeds": [0],
            "epochs": {"digits": 3}, "resamples": 2000, "trained": 0, "reused": 20, "wall_seconds": 60.0}
    analysis = rep.write_report(recs, meta, tmp_path, "rep")
    md = (tmp_path / "rep.md").read_text()
    # Table 1: Baseline 2.10 ± 0.22, MixUp 1.70 ± 0.16, AdaMixUp 1.60 ± 0.16; rel. impr. (2.1-1.6)/2.1 = 23.8 %, (1.7-1.6)/1.7 = 5.9 %
    assert "| digits | 2.10 ± 0.22 | 1.70 ± 0.16 | 1.60 ± 0.16 | +23.8% | +5.9% |" in md
    assert "| AdaMixUp − MixUp | 5 | -0.10 |" in md
    assert "-0.10, +0.00, -0.10, -0.20, -0.10" in md  # per-run differences in fold order
    assert "| adamixup-w0 − MixUp | 5 | +0.20 |" in md
    assert "| digits | adamixup-w0 | 0.500 ± 0.000 | 0.290 ± 0.000 | 0.025 ± 0.000 | 1.000 ± 0.000 | 0.900 ± 0.000 | 5 |" in md
    assert "| digits | MixUp | 0.500 ± 0.000 | 0.290 ± 0.000 | 0.250 ± 0.000 | 0.100 ± 0.000 | — | 5 |" in md
    assert "| AdaMixUp | 1.60 ± 0.16 | 5 | +23.8% | +5.9% | 2.50 |" in md  # epoch time x MixUp
    assert "`python benchmarks/reproduce.py --fake`" in md and "CPU test" in md
    # the AdaMixUp − MixUp interval: all differences are <= 0 and their mean is -0.1
    p = next(p for p in analysis["paired"]["digits"] if (p["a"], p["b"]) == ("adamixup", "mixup"))
    assert p["ci_low"] <= -0.1 <= p["ci_high"] and p["ci_high"] <= 0.0 + 1e-12
    assert (p["a_better"], p["ties"], p["b_better"]) == (4, 1, 0)
    for png in ("rep_errors.png", "rep_paired.png", "rep_lambda.png", "rep_lambda_hist.png"):
        assert (tmp_path / png).stat().st_size > 1000
    data = json.loads((tmp_path / "rep.json").read_text())
    assert len(data["runs"]) == len(recs) and "history" not in data["runs"][0]


def test_extra_comparisons_are_added_once_in_either_direction():
    methods = ["erm", "mixup", "adamixup", "adamixup-paper", "adamixup-kl-minw40-w0"]
    base = rep.comparisons_for(methods)
    assert ("adamixup-kl-minw40-w0", "adamixup") in base
    extra = [("adamixup", "adamixup-kl-minw40-w0"), ("adamixup-paper", "erm"), ("adamixup-paper", "erm"), ("erm", "absent")]
    assert rep.comparisons_for(methods, extra) == base + [("adamixup-paper", "erm")]


def test_verdict_does_not_overclaim_with_few_pairs():
    p = rep.paired_summary(_fake_records()[:2] + _fake_records()[5:7], "digits", "erm", "mixup")
    assert p["pairs"] == 2
    assert "too few pairs" in rep.verdict(p)


# ---- a tiny end-to-end invocation ------------------------------------------------------------------------
def test_tiny_study_end_to_end_and_reuse(tmp_path, capsys):
    torch.set_num_threads(1)
    out, res = tmp_path / "runs", tmp_path / "results"
    args = ["--datasets", "digits-S", "--methods", "erm,mixup,adamixup-light", "--folds", "0", "--seeds", "0",
            "--epochs", "2", "--device", "cpu", "--threads", "1", "--set", "model_args.width=4",
            "--out", str(out), "--results-dir", str(res), "--name", "tiny", "--intrusion-pairs", "200"]
    assert rep.main(args) == 0
    md = (res / "tiny.md").read_text()
    assert "## digits-S" in md and "| Baseline |" in md and "| adamixup-light |" in md
    runs = json.loads((res / "tiny.json").read_text())["runs"]
    assert sorted(r["method"] for r in runs) == ["adamixup-light", "erm", "mixup"]
    assert all(r["epochs"] == 2 for r in runs)
    assert (out / "digits-S" / "adamixup-light" / "fold0-seed0" / "checkpoints" / "last.pt").is_file()
    imd = (res / "tiny_intrusion.md").read_text()
    assert "| mixup | Beta(1, 1) |" in imd and "| adamixup-light | π (trained policy) |" in imd
    # the intrusion script on its own, on a chosen subset of the study's methods
    assert intr.main(["--runs-root", str(out), "--methods", "mixup,adamixup-light", "--pairs", "100",
                      "--results-dir", str(res), "--name", "sub"]) == 0
    sub = (res / "sub.md").read_text()
    assert "| adamixup-light | π (trained policy) |" in sub and "| erm |" not in sub
    for bad in (["--methods", "mixp"], ["--datasets", "digitz"]):  # a typo is an error, not a shorter report
        with pytest.raises(SystemExit):
            intr.main(["--runs-root", str(out), *bad])
        assert "no " in capsys.readouterr().err
    # a second call reuses every finished run
    capsys.readouterr()
    assert rep.main(args + ["--no-intrusion"]) == 0
    assert "3 finished already" in capsys.readouterr().out
    assert "0 runs trained or resumed now, 3 read back" in (res / "tiny.md").read_text()
    # other settings in the same --out are refused instead of silently reused
    changed = [a if a != "2" else "3" for a in args]
    assert rep.main(changed) == 2
