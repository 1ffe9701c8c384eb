"""benchmarks/reproduce.py (a thin wrapper of adamixup.study, whose statistics, ledger and reports are
tested in test_study.py) and benchmarks/intrusion.py: the intrusion measure on a constructed example,
and the wrapper's plan printout."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import yaml

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rep = _load("reproduce")
intr = _load("intrusion")


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


# ---- the wrapper ---------------------------------------------------------------------------------------
def test_wrapper_prints_the_plan_and_refuses_a_bad_one(tmp_path, capsys):
    assert rep.main(["--quick", "--plan", "--ledger", str(tmp_path / "ledger")]) == 0
    out = capsys.readouterr().out
    assert "plan quick: 0 of 8 runs in the ledger" in out and "8 run(s) left" in out
    assert rep.main(["no-such-plan", "--plan"]) == 2
    assert "no plan file 'no-such-plan'" in capsys.readouterr().err


def test_wrapper_runs_a_tiny_plan_and_measures_intrusion(tmp_path, capsys):
    plan = tmp_path / "tiny.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "tiny", "datasets": {"digits-S": {"recipe": "digits", "train_fraction": 0.2, "epochs": 2}},
        "methods": ["erm", "mixup", "adamixup"], "folds": {"num_folds": 5, "use": [0]}, "seeds": [0],
        "overrides": {"model_args": {"width": 4}}, "primary": ["adamixup", "mixup"]}))
    runs, res = tmp_path / "runs", tmp_path / "results"
    args = [str(plan), "--ledger", str(tmp_path / "ledger"), "--device", "cpu", "--threads", "1", "--results-dir", str(res),
            "--intrusion", "--intrusion-pairs", "200", "--runs-dir", str(runs)]
    assert rep.main(args) == 0
    md = (res / "tiny.md").read_text()
    assert "All 3 planned runs are in the ledger." in md and "| **★ adamixup − mixup** | 1 (1) |" in md
    assert (runs / "digits-S" / "adamixup" / "fold0-seed0" / "checkpoints" / "last.pt").is_file()
    imd = (res / "tiny_intrusion.md").read_text()
    assert "| mixup | Beta(1, 1) |" in imd and "| adamixup | π (trained policy) |" in imd
    # the intrusion script on its own, on a chosen subset of the kept runs
    assert intr.main(["--runs-root", str(runs), "--methods", "mixup,adamixup", "--pairs", "100",
                      "--results-dir", str(res), "--name", "sub"]) == 0
    sub = (res / "sub.md").read_text()
    assert "| adamixup | π (trained policy) |" in sub and "| erm |" not in sub
    for bad in (["--methods", "mixp"], ["--datasets", "digitz"]):  # a typo is an error, not a shorter report
        with pytest.raises(SystemExit):
            intr.main(["--runs-root", str(runs), *bad])
        assert "no " in capsys.readouterr().err
    # a second call trains nothing and rebuilds the report from the ledger
    capsys.readouterr()
    assert rep.main(args[:-5] + ["--report-only"]) == 0
    assert "plan tiny: 3 of 3 runs in the ledger" in capsys.readouterr().out
