"""adamixup.study: plans and their errors, the ledger (resume, merge of two machines, corrupt and stale
records), the statistics on known answers, the report from hand-written records, compare on the
ledger, and one real run of a tiny version of the quick plan (run, kill, resume, report)."""
import copy
import json
import math
import warnings

import numpy as np
import pytest
import yaml

from adamixup.study import StudyError, StudyWarning, stats
from adamixup.study.cli import main as study_main
from adamixup.study.ledger import Ledger, make_record, read_records, write_record
from adamixup.study.plan import (PLAN_DIR, config_for, config_identity, expand, identity_differences, identity_hash,
                                 list_plans, load_plan, parse_plan)
from adamixup.study.report import analyse, write_report
from adamixup.study.runner import plan_status, run_plan, scratch_dir, scratch_root

TINY = {
    "name": "tiny",
    "datasets": {"digits": {"recipe": "digits", "epochs": 2}, "digits-S": {"recipe": "digits", "train_fraction": 0.2, "epochs": 2}},
    "methods": {"erm": "erm", "mixup": "mixup", "adamixup-w0": {"method": "adamixup", "mixer_args": {"intrusion_weight": 0}}},
    "folds": {"num_folds": 5, "use": [0, 1]},
    "seeds": [0, 1],
    "primary": ["adamixup-w0", "mixup"],
    "comparisons": [["mixup", "erm"]],
}


def tiny_plan(**changes):
    data = copy.deepcopy(TINY)
    data.update(changes)
    return parse_plan(data, "tiny.yaml")


def _machine(host):
    return {"hostname": host, "platform": "Linux", "processor": "x86_64", "cpu_count": 2, "python": "3", "torch": "2",
            "torch_threads": 1, "device": "cpu", "accelerator": None}


def fake_record(run, error, host="cpu-box", seconds=2.0, finished_at=None, lam=True):
    """A record as the runner writes it, with made-up metrics."""
    hist = [5] * 20 if lam and run.registry_method != "erm" else None
    history = []
    for epoch in (1, 2):
        m = {"epoch": epoch, "lr": 1e-3, "train_loss": 1.0 / epoch, "test_error": error + (2 - epoch), "train_error": 1.0,
             "seconds": 0.5}
        if hist:
            m.update(lam_mean=0.5, lam_std=0.29, lam_hist=hist)
        history.append(m)
    summary = {"epochs_done": 2, "epoch_seconds_mean": 0.5 if run.method == "erm" else 1.0, "train_seconds": 1.0,
               "device": "cpu", "final_test_error": error, "finished": True}
    rec = make_record("tiny", run, summary, history, seconds, _machine(host))
    if finished_at:
        rec["finished_at"] = finished_at
    return rec


def fake_train(calls, fail=(), interrupt_after=None):
    """A stand-in for training one run: counts the calls, fails or 'is killed' when told."""
    def train_fn(config, run_dir, device):
        calls.append((config["dataset"], config["train_fraction"], config["method"], config["fold"], config["seed"]))
        if interrupt_after is not None and len(calls) > interrupt_after:
            raise KeyboardInterrupt
        if (config["method"], config["fold"]) in fail:
            raise ValueError("boom")
        err = 1.0 + config["fold"] + 0.1 * config["seed"]
        history = [{"epoch": 1, "test_error": err, "train_error": 0.5, "seconds": 0.1}]
        return {"epochs_done": 1, "epoch_seconds_mean": 0.1, "train_seconds": 0.1, "device": device,
                "final_test_error": err, "finished": True}, history, False
    return train_fn


# ---- plans ----------------------------------------------------------------------------------------
def test_shipped_plans_parse_and_the_quick_plan_expands():
    assert {"quick", "digits-controls", "mnist5k-controls", "cifar10s-cpu"} <= set(list_plans())
    for name in list_plans():
        plan = load_plan(name)
        assert plan.name == name and (plan.primary is not None or plan.selection.split == "validation")  # a selection states its rule
    plan = load_plan("quick")
    assert plan.source == "recipes/studies/quick.yaml"
    runs = expand(plan)
    assert len(runs) == 8 and len({r.key for r in runs}) == 8
    assert runs[0].key == "digits/erm/fold0-seed0" and runs[-1].key == "digits/adamixup/fold1-seed0"
    assert runs[0].config["epochs"] == 20 and runs[0].config["num_folds"] == 5
    clean = next(r for r in runs if r.method == "mixup-clean")
    assert clean.identity["mixer"] == "MixUp" and clean.identity["mixer.include_clean"] is True
    controls = load_plan("digits-controls")
    assert controls.primary == ("adamixup", "mixup-matched") and controls.pooled
    assert list(controls.methods) == ["erm", "mixup", "mixup-clean", "mixup-matched", "fixed-region", "pi-frozen",
                                      "adamixup-w0", "adamixup"]
    assert controls.datasets["digits-S"].overrides == {"train_fraction": 0.2, "epochs": 40}
    cifar = load_plan("cifar10s-cpu")
    assert cifar.datasets["cifar10-S"].folds.num_folds is None and len(cifar.seeds) == 10
    cifar_set = cifar.datasets["cifar10-S"].overrides  # the budget chosen on validation (benchmarks/cifar_budget.py)
    assert cifar_set["augment"] is False and cifar_set["model_args"] == {"width": 16} and cifar_set["epochs"] == 40


def test_expand_orders_runs_so_paired_groups_finish_first():
    runs = expand(tiny_plan())
    assert len(runs) == 2 * 2 * 2 * 3
    assert [r.key for r in runs[:6]] == ["digits/erm/fold0-seed0", "digits/mixup/fold0-seed0", "digits/adamixup-w0/fold0-seed0",
                                         "digits-S/erm/fold0-seed0", "digits-S/mixup/fold0-seed0",
                                         "digits-S/adamixup-w0/fold0-seed0"]
    s_run = runs[3]
    assert s_run.config["train_fraction"] == 0.2 and s_run.config["fold"] == 0 and s_run.config["quiet"] is True
    fixed = expand(tiny_plan(folds="fixed", seeds=1))
    assert [r.key for r in fixed][:2] == ["digits/erm/fixed-seed0", "digits/mixup/fixed-seed0"]
    assert fixed[0].config["fold"] is None


@pytest.mark.parametrize("change, key", [
    ({"method": "erm"}, "'method' is not a plan key"),
    ({"datasets": {"a/b": {"recipe": "digits"}}}, "has the label 'a/b'"),
    ({"datasets": {"digits": {"epochs": 2}}}, "'datasets.digits.recipe'"),
    ({"datasets": {"digits": {"recipe": "digits", "seed": 3}}}, "'datasets.digits.seed' is set by the study"),
    ({"overrides": {"device": "cuda"}}, "'overrides.device' is set by the study"),
    ({"methods": {"x": "mixupp"}}, "'methods.x.method' names 'mixupp'"),
    ({"methods": {"x": {"method": "mixup", "mixer_args": {"alpah": 1}}}}, "'methods.x.mixer_args.alpah' is not an option of mixup"),
    ({"methods": {"x": {"method": "mixup-clean", "mixer_args": {"include_clean": False}}}}, "(the method fixes it)"),
    ({"methods": {"x": {"method": "mixup", "args": {}}}}, "'methods.x.args' is not a method key"),
    ({"primary": ["adamixup", "mixup"]}, "'primary' names the method 'adamixup'"),
    ({"primary": "adamixup-w0"}, "'primary' must be a pair"),
    ({"comparisons": [["mixup", "mixup"]]}, "'comparisons[0]' compares 'mixup' with itself"),
    ({"folds": {"num_folds": 5, "use": [0, 5]}}, "'folds.use' names fold 5"),
    ({"folds": 1}, "'folds' needs at least 2 folds"),
    ({"seeds": "0-x"}, "'seeds' holds '0-x'"),
    ({"seeds": [0, 0]}, "'seeds' names a value twice"),
    ({"seeds": []}, "'seeds' is missing or empty"),
    ({"selection": {"split": "val"}}, "'selection.split' must be test or validation"),
    ({"selection": {"split": "validation", "fraction": 1.5}}, "'selection.fraction' must lie in (0, 1)"),
    ({"statistics": {"test": "t-test"}}, "'statistics.test' must be one of wilcoxon, signflip"),
    ({"pooled": "yes"}, "'pooled' must be true or false"),
])
def test_plan_errors_name_the_key(change, key):
    with pytest.raises(StudyError) as err:
        tiny_plan(**change)
    msg = str(err.value)
    assert key in msg and msg.startswith("plan tiny.yaml: ") and "\n" not in msg


def test_config_errors_and_validation_mode_are_one_sentence(tmp_path):
    with pytest.raises(StudyError, match=r"data set 'digits', method 'erm': unknown config key 'epoch'"):
        expand(tiny_plan(overrides={"epoch": 3}))
    with pytest.raises(StudyError, match=r"config key 'lr': must not be negative"):
        expand(tiny_plan(overrides={"lr": -1.0}))
    plan = tiny_plan(selection={"split": "validation", "fraction": 0.1})
    assert plan.metric == "val_error"
    assert {r.config["validation_fraction"] for r in expand(plan)} == {0.1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(StudyError, match="is not valid YAML"):
        load_plan(bad)
    with pytest.raises(StudyError, match="no plan file 'nope'; shipped plans: "):
        load_plan("nope")


def test_a_shipped_plans_source_as_reports_print_it_loads_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not where the package lives: the printed reference must still resolve
    plan = load_plan("quick")
    assert plan.source == "recipes/studies/quick.yaml"
    again = load_plan(plan.source)
    assert (again.name, again.source, sorted(again.methods)) == (plan.name, plan.source, sorted(plan.methods))
    with pytest.raises(StudyError, match="no plan file 'recipes/studies/nope.yaml'"):
        load_plan("recipes/studies/nope.yaml")


def test_registry_methods_map_to_the_config_with_one_identity():
    frozen = config_for("digits", {}, "pi-frozen", {}).to_dict()
    plain = config_for("digits", {}, "adamixup", {"train_policy": False}).to_dict()
    assert frozen["mixer_args"].get("train_policy") is False or frozen["method"] == "pi-frozen"
    assert config_identity(frozen) == config_identity(plain)
    # the spellings the config takes before and after it accepts registry names are one run
    assert config_identity({**plain, "method": "pi-frozen", "mixer_args": {}}) == config_identity(plain)
    # 0 and 0.0 are one setting; the device and the data's path are not part of a run's identity
    w0 = config_for("digits", {}, "adamixup", {"intrusion_weight": 0}).to_dict()
    w0f = config_for("digits", {"device": "cpu", "data_root": "/x"}, "adamixup", {"intrusion_weight": 0.0}).to_dict()
    assert identity_hash(config_identity(w0)) == identity_hash(config_identity(w0f))
    assert config_identity(w0)["mixer.intrusion_weight"] == 0.0 and config_identity(w0)["mixer.min_width"] == 0.4
    try:
        matched = config_for("digits", {}, "mixup-matched", {}).to_dict()
    except StudyError as err:  # the config does not take LayoutMixUp's methods yet
        assert "cannot be trained yet" in str(err)
    else:
        assert config_identity(matched)["mixer"] == "LayoutMixUp"


def test_identity_differences_ignore_keys_added_at_their_defaults():
    wanted = {"epochs": 20.0, "new_key": 0.0, "mixer": "MixUp", "mixer.alpha": 1.0, "mixer.new_option": "x"}
    defaults = {"new_key": 0.0, "mixer.new_option": "x"}
    old = {"epochs": 20.0, "mixer": "MixUp", "mixer.alpha": 1.0, "gone": 3.0}
    assert identity_differences(old, wanted, defaults) == []
    assert identity_differences(old, {**wanted, "new_key": 0.5}, defaults) == ["new_key (absent) -> 0.5"]
    assert identity_differences({**old, "epochs": 30.0}, wanted, defaults) == ["epochs 30 -> 20"]  # as written, not as the identity stores it


# ---- the ledger -------------------------------------------------------------------------------------
def test_ledger_resume_trains_only_what_is_missing(tmp_path):
    plan = tiny_plan()
    ledger = tmp_path / "ledger"
    calls = []
    with pytest.raises(KeyboardInterrupt):  # the study is killed during its 6th run
        run_plan(plan, ledger, train_fn=fake_train(calls, interrupt_after=5), progress=False)
    assert len(calls) == 6 and len(list(ledger.glob("*.json"))) == 5
    assert not list(ledger.glob(".*"))  # no temporary file left behind
    calls.clear()
    result = run_plan(plan, ledger, train_fn=fake_train(calls), progress=False)
    assert (result["done_before"], result["trained"], len(calls)) == (5, 19, 19)
    assert len(list(ledger.glob("*.json"))) == 24 and not scratch_root(Ledger(ledger)).exists()
    calls.clear()
    assert run_plan(plan, ledger, train_fn=fake_train(calls), progress=False)["trained"] == 0 and calls == []
    status = plan_status(plan, ledger)
    assert status["done"] == 24 and status["todo"] == [] and status["estimate_seconds"] == 0


def test_a_failed_run_is_reported_and_retried_next_time(tmp_path, capsys):
    plan = tiny_plan(seeds=[0])
    calls = []
    result = run_plan(plan, tmp_path / "ledger", train_fn=fake_train(calls, fail={("mixup", 1)}), progress=False)
    assert [f["key"] for f in result["failed"]] == ["digits/mixup/fold1-seed0", "digits-S/mixup/fold1-seed0"]
    assert "ValueError: boom" in result["failed"][0]["error"] and result["trained"] == 10
    assert "FAILED (ValueError: boom)" in capsys.readouterr().out
    calls.clear()
    assert run_plan(plan, tmp_path / "ledger", train_fn=fake_train(calls), progress=False)["trained"] == 2
    assert [c[2:4] for c in calls] == [("mixup", 1), ("mixup", 1)]


def test_merge_of_two_machines_and_duplicates(tmp_path):
    plan = tiny_plan(seeds=[0])
    runs = expand(plan)
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    for i, run in enumerate(runs):
        write_record(cpu if i % 2 else gpu, fake_record(run, 1.0 + i, host="cpu-box" if i % 2 else "gpu-box"))
    # the same run finished on both machines with other results: the earlier record is used
    dup = runs[0]
    write_record(cpu, fake_record(dup, 9.0, host="cpu-box", finished_at="2020-01-02T00:00:00+00:00"))
    write_record(gpu, fake_record(dup, 7.0, host="gpu-box", finished_at="2020-01-01T00:00:00+00:00"))
    match = Ledger([cpu, gpu]).match(runs)
    assert len(match.used) == len(runs) and match.stale == [] and match.problems == []
    assert match.used[dup.key]["final"]["test_error"] == 7.0
    assert len(match.duplicates) == 1 and match.duplicates[0].startswith(f"{dup.key}: 3 records")
    # merging by copying files into one folder gives the same choice (file names never collide)
    for f in gpu.glob("*.json"):
        (cpu / f.name).write_text(f.read_text())
    assert len(list(cpu.glob("*.json"))) == len(runs) + 2
    merged = Ledger(cpu).match(runs)
    assert merged.used[dup.key]["final"]["test_error"] == 7.0 and len(merged.used) == len(runs)
    # reading a folder twice (or a copy of the same record) does not make a duplicate
    assert len(Ledger([cpu, cpu]).match(runs).duplicates) == 1
    analysis = write_report(plan, [cpu], tmp_path / "report", plots=False, runs=runs)
    assert {m["machine"].split(":")[0] for m in analysis["machines"]} == {"cpu-box", "gpu-box"}
    assert "duplicate: " in (tmp_path / "report" / "tiny.md").read_text()


def test_corrupt_and_stale_records_are_reported_not_used(tmp_path):
    plan = tiny_plan(seeds=[0])
    runs = expand(plan)
    ledger = tmp_path / "ledger"
    paths = [write_record(ledger, fake_record(run, 1.0)) for run in runs[:4]]
    text = paths[0].read_text()
    paths[0].write_text(text[: len(text) // 2])                      # truncated
    edited = json.loads(paths[1].read_text())
    edited["config"]["epochs"] = 99                                  # edited by hand: its hash no longer matches
    edited["identity"]["epochs"] = 99.0
    paths[1].write_text(json.dumps(edited))
    (ledger / "notes.json").write_text("[1, 2]")                      # not a record at all
    with pytest.warns(StudyWarning) as caught:
        records, problems = read_records(ledger)
    assert len(records) == 2 and len(problems) == 3
    named = " ".join(str(w.message) for w in caught)
    assert paths[0].name in named and paths[1].name in named and "notes.json" in named
    assert any("not valid JSON" in p for p in problems) and any("config_hash does not match" in p for p in problems)
    # a record of the same key trained with other settings is stale: reported, not reused, trained again
    other = expand(tiny_plan(seeds=[0], overrides={"lr": 0.01}))
    write_record(ledger, fake_record(other[2], 1.0))
    (ledger / paths[2].name).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StudyWarning)
        match = Ledger(ledger).match(runs)
    assert sorted(match.used) == [runs[3].key]
    assert len(match.stale) == 1 and "lr 0.01 -> 0.001" in match.stale[0] and runs[2].key in match.stale[0]
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StudyWarning)
        result = run_plan(plan, ledger, train_fn=fake_train(calls), progress=False)
    assert result["trained"] == len(runs) - 1 and len(calls) == len(runs) - 1


# ---- statistics on known answers ------------------------------------------------------------------
def test_holm_on_a_hand_computed_example():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = stats.holm([0.2, float("nan"), 0.01])  # nan is no test: m = 2
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_intervals_of_a_constant_difference_are_that_constant():
    diffs, folds = [0.7] * 10, [f // 2 for f in range(10)]
    assert stats.bootstrap_ci(diffs) == pytest.approx((0.7, 0.7))
    assert stats.cluster_bootstrap_ci(diffs, folds) == pytest.approx((0.7, 0.7))
    assert stats.stratified_bootstrap_ci(diffs, folds) == pytest.approx((0.7, 0.7))
    assert all(math.isnan(v) for v in stats.cluster_bootstrap_ci([], []))
    assert stats.bootstrap_ci([0.0, 1.0], resamples=20_000) == pytest.approx((0.0, 1.0))


def test_cluster_bootstrap_is_wider_when_pairs_within_a_fold_agree():
    # 5 folds x 4 seeds: the folds differ a lot, the seeds within a fold hardly
    rng = np.random.default_rng(1)
    fold_effect = np.array([-1.0, -0.5, 0.0, 0.5, 1.2])
    diffs = np.repeat(fold_effect, 4) + rng.normal(0, 0.05, 20)
    folds = np.repeat(np.arange(5), 4)
    lo_n, hi_n = stats.bootstrap_ci(diffs)
    lo_c, hi_c = stats.cluster_bootstrap_ci(diffs, folds)
    assert hi_c - lo_c > 1.6 * (hi_n - lo_n)
    assert lo_c < diffs.mean() < hi_c
    # with independent pairs (one per cluster) the two agree
    lo_1, hi_1 = stats.cluster_bootstrap_ci(diffs, np.arange(20))
    assert (hi_1 - lo_1) == pytest.approx(hi_n - lo_n, rel=0.1)
    # stratifying by fold removes the between-fold spread: narrower than either
    lo_s, hi_s = stats.stratified_bootstrap_ci(diffs, folds)
    assert hi_s - lo_s < 0.5 * (hi_n - lo_n)


def test_tests_on_known_answers():
    assert stats.wilcoxon_p([-1.0 - 0.1 * i for i in range(10)]) == pytest.approx(2 / 1024)
    assert stats.wilcoxon_p([0.0, 0.0]) == 1.0 and math.isnan(stats.wilcoxon_p([]))
    neg, zero, pos, p = stats.sign_test([-1, -2, 0, 3, -4])
    assert (neg, zero, pos) == (3, 1, 1) and p == pytest.approx(0.625)
    # three clusters whose means are all positive: 2 of the 8 sign patterns are as extreme
    assert stats.signflip_p([1.0, 1.2, 0.9, 1.1, 1.0, 1.0], [0, 0, 1, 1, 2, 2]) == pytest.approx(2 / 8)
    assert stats.signflip_p([1.0, -1.0], [0, 1]) == pytest.approx(1.0)
    assert stats.relative_improvement(2.0, 1.5) == pytest.approx(25.0)
    assert stats.mean_std([1.0, 3.0, None, float("nan")]) == pytest.approx((2.0, math.sqrt(2), 2))
    summary = stats.compare_paired([-0.2] * 4 + [-0.1] * 4, [0, 0, 1, 1, 2, 2, 3, 3], resamples=2000)
    assert summary["mean"] == pytest.approx(-0.15) and summary["ci_high"] < 0 and summary["a_better"] == 8
    assert summary["p_bootstrap"] == 0.0 and summary["clusters"] == 4


# ---- the report from hand-written records -------------------------------------------------------------
def test_epoch_time_ratio_pairs_runs_on_the_same_machine():
    plan = tiny_plan()
    runs = [r for r in expand(plan) if r.dataset == "digits" and r.method in ("erm", "mixup")]
    # (fold, seed) -> host, erm's and mixup's seconds per epoch: box-b is three times slower than box-a, and
    # fold1-seed0's two runs ran on different machines, so that pair must not count
    setup = {(0, 0): (("box-a", 1.0), ("box-a", 2.0)), (0, 1): (("box-b", 3.0), ("box-b", 6.0)),
             (1, 0): (("box-a", 1.0), ("box-b", 6.0))}
    records = []
    for run in runs:
        if (run.fold, run.seed) not in setup:
            continue
        host, secs = setup[(run.fold, run.seed)][run.method == "mixup"]
        rec = fake_record(run, 1.0, host=host)
        rec["final"]["epoch_seconds_mean"] = secs
        records.append(rec)
    erm = next(r for r in analyse(plan, records)["tables"]["digits"] if r["method"] == "erm")
    # a ratio of means over all runs would be (5/3) / (14/3) = 0.36; the paired, same-machine ratio is 0.5
    assert erm["time_ratio"] == pytest.approx(0.5) and erm["time_pairs"] == 2
    assert erm["epoch_seconds"] == pytest.approx(5.0 / 3.0)
    lone = [r for r in records if not (r["method"] == "mixup" and r["fold"] == 0)]  # mixup only on box-b, erm's pair on box-a
    erm = next(r for r in analyse(plan, lone)["tables"]["digits"] if r["method"] == "erm")
    assert erm["time_ratio"] is None and erm["time_pairs"] == 0


def test_report_from_a_hand_written_partial_ledger(tmp_path):
    plan = tiny_plan(pooled=True)
    runs = expand(plan)
    errors = {"erm": 2.0, "mixup": 1.7, "adamixup-w0": 1.5}
    ledger = tmp_path / "ledger"
    for run in runs:
        if run.key == "digits/erm/fold1-seed1":
            continue  # not finished: a partial report
        bump = 0.1 * run.fold + 0.05 * run.seed + (1.0 if run.dataset == "digits-S" else 0.0)
        write_record(ledger, fake_record(run, errors[run.method] + bump, host="box-a" if run.seed else "box-b"))
    analysis = write_report(plan, ledger, tmp_path / "out", command="adamixup study report tiny")
    md = (tmp_path / "out" / "tiny.md").read_text()
    assert "**Partial report: 23 of 24 planned runs are in the ledger.**" in md
    # digits: erm over 3 runs (fold0 s0, fold0 s1, fold1 s0) = 2.0, 2.05, 2.1; mixup 1.7 + (0, .05, .1, .15), mean 1.775;
    # adamixup-w0 1.5 + the same, mean 1.575: relative improvements (2.05 - 1.575) / 2.05, (1.775 - 1.575) / 1.775
    assert "| erm | 2.05 ± 0.05 | 3 | — | -15.5% | 0.50 |" in md
    assert "| adamixup-w0 | 1.58 ± 0.06 | 4 | +23.2% | +11.3% | 1.00 |" in md
    rows = md.split("## digits\n")[1].split("## digits-S")[0]
    primary_row = next(line for line in rows.splitlines() if line.startswith("| **★"))
    assert primary_row.startswith("| **★ adamixup-w0 − mixup** | 4 (2) | -0.20 | [-0.20, -0.20] | [-0.20, -0.20] | 4 / 0 / 0 |")
    comps = analysis["comparisons"]["digits"]
    assert comps[0]["primary"] and (comps[0]["a"], comps[0]["b"]) == ("adamixup-w0", "mixup")
    assert comps[1]["pairs"] == 3  # mixup − erm: erm's missing run drops one pair
    family = [c for ds in analysis["datasets"] for c in analysis["comparisons"][ds]] + analysis["pooled"]
    assert analysis["holm"]["family"] == len(family) == 6
    assert [c["p_holm"] for c in family] == pytest.approx(stats.holm([c["p_wilcoxon"] for c in family]))
    pooled = analysis["pooled"][0]
    assert pooled["pairs"] == 8 and pooled["clusters"] == 2  # digits and digits-S share their test folds
    assert "## Pooled over data sets" in md and "## λ per method" in md
    assert "| digits | mixup | 0.500 ± 0.000 | 0.290 ± 0.000 | 0.250 ± 0.000 | 0.100 ± 0.000 | — | 4 |" in md
    assert "| erm | 0.50 | 0.50 | 3 | 0.50 | 0.50 | 4 |" in md  # epoch time, ratio to mixup, same-machine pairs
    assert "box-a:" in md and "box-b:" in md
    assert "| digits | erm | 3 / 4 |" in md
    data = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert len(data["runs"]) == 23 and "history" not in data["runs"][0] and data["plan"]["primary"] == ["adamixup-w0", "mixup"]
    for png in ("tiny_errors.png", "tiny_paired.png", "tiny_lambda.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


def test_only_trains_the_matching_runs_whose_records_count_for_the_whole_plan(tmp_path, capsys):
    plan = tiny_plan(seeds=[0])
    ledger = tmp_path / "ledger"
    calls = []
    result = run_plan(plan, ledger, train_fn=fake_train(calls), progress=False, only=["digits/mixup/*", "*/erm/fold1-*"])
    assert sorted(c[:4] for c in calls) == [("digits", 0.2, "erm", 1), ("digits", 1.0, "erm", 1),
                                            ("digits", 1.0, "mixup", 0), ("digits", 1.0, "mixup", 1)]
    assert (result["planned"], result["done_before"], result["trained"]) == (4, 0, 4)
    status = plan_status(plan, ledger)  # the whole plan reads those records as its own
    assert status["done"] == 4 and len(status["todo"]) == 8
    sub = plan_status(plan, ledger, only=["digits/*"])
    assert (sub["planned"], sub["done"]) == (6, 3) and all(k.startswith("digits/") for k in sub["todo"])
    calls.clear()
    assert run_plan(plan, ledger, train_fn=fake_train(calls), progress=False, only=["digits/mixup/*"])["trained"] == 0
    assert calls == []
    with pytest.raises(StudyError, match="--only 'digit/\\*' matches none of the plan's 12 runs"):
        run_plan(plan, ledger, train_fn=fake_train(calls), progress=False, only=["digit/*"])
    plan_file = tmp_path / "tiny.yaml"
    plan_file.write_text(yaml.safe_dump({**TINY, "seeds": [0]}))
    assert study_main(["study", "status", str(plan_file), "--ledger", str(ledger), "--only", "digits-S/*"]) == 0
    assert "plan tiny: 1 of 6 runs (the runs matching digits-S/*) in the ledger" in capsys.readouterr().out


def test_study_cli_status_report_and_errors(tmp_path, capsys):
    plan_file = tmp_path / "tiny.yaml"
    plan_file.write_text(yaml.safe_dump(TINY))
    ledger = tmp_path / "ledger"
    for run in expand(load_plan(plan_file))[:3]:
        write_record(ledger, fake_record(run, 1.0, seconds=10.0))
    assert study_main(["study", "status", str(plan_file), "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "plan tiny: 3 of 24 runs in the ledger" in out and "21 run(s) left; about" in out
    assert study_main(["study", "report", str(plan_file), "--ledger", str(ledger), "--out", str(tmp_path / "r"),
                       "--no-plots"]) == 0
    assert "3 of 24 planned runs, a partial report" in capsys.readouterr().out
    assert not list((tmp_path / "r").glob("*.png"))
    assert study_main(["study", "plans"]) == 0 and "quick" in capsys.readouterr().out
    plan_file.write_text(yaml.safe_dump({**TINY, "seeds": "x"}))
    assert study_main(["study", "status", str(plan_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adamixup: error: plan ") and "'seeds'" in err and err.count("\n") == 1


# ---- real runs ---------------------------------------------------------------------------------------
@pytest.mark.slow  # a whole (tiny) study in spawned processes
def test_quick_plan_end_to_end_kill_resume_report(tmp_path):
    """The shipped quick plan, shrunk (one fold, 2 epochs, a fifth of the data): one run killed after its
    first epoch resumes from its checkpoint, the others train in two spawned workers; a second call
    trains nothing; the report is rebuilt from the ledger."""
    from adamixup.classify import build_config, train

    data = yaml.safe_load((PLAN_DIR / "quick.yaml").read_text())
    data["datasets"]["digits"].update(epochs=2, train_fraction=0.2)
    data["folds"] = {"num_folds": 5, "use": [0]}
    data["methods"] = {k: v for k, v in data["methods"].items() if k in ("erm", "mixup-clean", "adamixup")}
    data["primary"], data["comparisons"] = ["adamixup", "mixup-clean"], [["mixup-clean", "erm"]]
    data["overrides"] = {"model_args": {"width": 4}}
    plan = parse_plan(data, "quick (shrunk)", default_name="quick")
    runs = expand(plan)
    ledger = Ledger(tmp_path / "ledger")
    killed = runs[2]  # adamixup: as if the study had been killed after its first epoch
    train(build_config(None, {**killed.config, "device": "cpu"}), run_dir=scratch_dir(scratch_root(ledger), killed),
          stop_after=1)
    result = run_plan(plan, ledger, workers=2, threads=1, device="cpu", progress=False,
                      keep_runs=tmp_path / "runs")
    assert result["failed"] == [] and result["trained"] == 3
    records, problems = read_records(ledger.folder)
    assert problems == [] and len(records) == 3
    by = {r["method"]: r for r in records}
    assert by["adamixup"]["resumed"] and not by["erm"]["resumed"]
    assert [m["epoch"] for m in by["adamixup"]["history"]] == [1, 2]
    assert by["adamixup"]["lam"]["mixedness"] > 0.25 and by["erm"]["lam"] is None
    assert by["mixup-clean"]["config"]["mixer_args"].get("include_clean", True) is True
    assert by["erm"]["machine"]["cpu_count"] >= 1 and by["erm"]["final"]["device"] == "cpu"
    assert not scratch_root(ledger).exists()
    assert (tmp_path / "runs" / "digits" / "adamixup" / "fold0-seed0" / "checkpoints" / "last.pt").is_file()
    assert run_plan(plan, ledger, progress=False)["trained"] == 0
    analysis = write_report(plan, ledger, tmp_path / "report", runs=runs)
    md = (tmp_path / "report" / "quick.md").read_text()
    assert "All 3 planned runs are in the ledger." in md and "| **★ adamixup − mixup-clean** | 1 (1) |" in md
    assert analysis["coverage"]["done"] == 3


def test_compare_on_the_ledger_reuses_only_runs_with_the_same_settings(tmp_path):
    from adamixup.study import compare
    from adamixup.classify import build_config

    base = build_config("digits", {"epochs": 1, "train_fraction": 0.1, "fold": 0, "device": "cpu", "quiet": True,
                                   "model_args": {"width": 4}})
    logs = []
    rows = compare(base, ["erm", "mixup"], [0], tmp_path / "cmp", log=logs.append)
    assert [r["method"] for r in rows] == ["erm", "mixup"] and all(r["runs"] == 1 for r in rows)
    for name in ("compare.md", "compare.json", "compare.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 100
    assert "| Baseline |" in (tmp_path / "cmp" / "compare.md").read_text()
    assert (tmp_path / "cmp" / "mixup-seed0" / "checkpoints" / "last.pt").is_file()
    logs.clear()
    again = compare(base, ["erm", "mixup"], [0], tmp_path / "cmp", log=logs.append)
    assert [r["errors"] for r in again] == [r["errors"] for r in rows]
    assert sum("reusing it" in m for m in logs) == 2
    with pytest.raises(ValueError, match="mixer_args would apply to all of them"):
        compare(build_config("digits", {"mixer_args": {"alpha": 0.4}, "method": "mixup"}), ["erm"], [0], tmp_path / "x")


def test_a_validation_mode_ledger_is_read_and_reported_on_its_validation_error(tmp_path):
    plan = tiny_plan(selection={"split": "validation", "fraction": 0.1})
    for i, run in enumerate(expand(plan)):
        history = [{"epoch": 1, "lr": 1e-3, "train_loss": 1.0, "val_error": 10.0 + i, "train_error": 1.0, "seconds": 0.5}]
        summary = {"epochs_done": 1, "epoch_seconds_mean": 0.5, "train_seconds": 0.5, "device": "cpu",
                   "final_val_error": 10.0 + i, "finished": True}
        write_record(tmp_path / "ledger", make_record("tiny", run, summary, history, 1.0, _machine("h")))
    records, problems = read_records(tmp_path / "ledger")
    assert not problems and len(records) == len(expand(plan))
    assert all(r["final"]["test_error"] is None and r["final"]["val_error"] >= 10 for r in records)
    analysis = write_report(plan, tmp_path / "ledger", tmp_path / "out", plots=False)
    assert analysis["metric"] == "val_error" and analysis["tables"]["digits"][0]["runs"] == 4
    text = (tmp_path / "out" / "tiny.md").read_text()
    assert "Score = validation error (%)" in text
    # the selection names its choice: on both sets the errors grow with the plan's order, so erm is the lowest
    assert analysis["selected"]["digits"][0] == ("erm", pytest.approx(analysis["tables"]["digits"][0]["mean"]))
    assert "| digits | **erm** |" in text and "| all data sets | **erm** |" in text
    write_report(plan, tmp_path / "ledger", tmp_path / "out", plots=False)
    assert (tmp_path / "out" / "tiny.md").read_text() == text  # the same ledger, the same report (no clock in it)


def test_the_plan_says_which_runs_chose_its_settings(tmp_path):
    plan = tiny_plan(chosen={"min_width 0.4": "width-val, validation splits"})
    write_report(plan, tmp_path / "empty", tmp_path / "out", plots=False)
    assert "| min_width 0.4 | width-val, validation splits |" in (tmp_path / "out" / "tiny.md").read_text()
    with pytest.raises(StudyError, match="'chosen.x' must say in words which runs chose the setting"):
        tiny_plan(chosen={"x": ""})


def test_a_bad_plan_is_a_usage_error_of_adamixup(tmp_path, capsys):
    from adamixup.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    assert main(["study", "run", str(bad)]) == 2  # like a bad config key: what was asked for is wrong
    assert "key 'datasets' is missing or empty" in capsys.readouterr().err
