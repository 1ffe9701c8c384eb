"""Studies of re-ID runs (task: reid): a plan's folds are the protocol's identity splits, methods carry
their own config keys (ablation steps), records keep mAP / CMC / re-ranked metrics, and the report
orients its comparisons for a score where higher is better. One real tiny study on a fake CUHK01
folder of PNG files (slow)."""
import copy
import json

import pytest

from adamixup.study import StudyError
from adamixup.study.ledger import make_record, read_records, write_record
from adamixup.study.plan import expand, merge_overrides, parse_plan
from adamixup.study.report import write_report
from adamixup.study.runner import run_plan
from adamixup.study.tasks import get_task
from test_cuhk01 import make_cuhk01
from test_reid_train import make_market

REID = {
    "name": "reid-tiny",
    "task": "reid",
    "datasets": {"cuhk01": {"recipe": "bot-a0-baseline", "dataset": "cuhk01", "data_root": "/nowhere",
                            "dataset_args": {"num_test": 6}, "pretrained": None, "backbone": "resnet18",
                            "height": 32, "width": 16, "p": 3, "k": 2, "workers": 0, "epochs": 2, "milestones": [1],
                            "eval_every": 1, "rerank": True}},
    "methods": {
        "baseline": {"method": "erm"},
        "bnneck": {"method": "erm", "overrides": {"neck": "bnneck", "last_stride": 1}},
        "bnneck-mixup": {"method": "mixup", "overrides": {"neck": "bnneck", "last_stride": 1}},
    },
    "folds": {"num_folds": 10, "use": [0, 2]},
    "seeds": [0],
    "primary": ["bnneck-mixup", "bnneck"],
    "comparisons": [["bnneck", "baseline"]],
}


def reid_plan(**changes):
    data = copy.deepcopy(REID)
    data.update(changes)
    return parse_plan(data, "reid-tiny.yaml")


def test_folds_are_identity_splits_and_methods_carry_their_settings():
    runs = expand(reid_plan())
    assert [r.key for r in runs[:3]] == ["cuhk01/baseline/fold0-seed0", "cuhk01/bnneck/fold0-seed0",
                                         "cuhk01/bnneck-mixup/fold0-seed0"]
    by = {r.key: r for r in runs}
    base, neck = by["cuhk01/baseline/fold2-seed0"].config, by["cuhk01/bnneck/fold2-seed0"].config
    # the fold is the split index; the data set's own reader options stay (nested keys merge)
    assert base["dataset_args"] == {"num_test": 6, "split": 2, "num_splits": 10}
    assert (base["neck"], base["last_stride"], neck["neck"], neck["last_stride"]) == ("none", 2, "bnneck", 1)
    assert base["backbone"] == "resnet18" and base["warmup_epochs"] == 0  # the recipe, then the data set's keys
    assert by["cuhk01/bnneck-mixup/fold0-seed0"].config["method"] == "mixup"
    assert all(r.task == "reid" for r in runs) and len({r.config_hash for r in runs}) == len(runs)


def test_a_method_may_run_on_some_folds_only():
    methods = copy.deepcopy(REID["methods"])
    methods["bnneck"]["folds"] = [2]
    runs = expand(reid_plan(methods=methods))
    assert [r.key for r in runs] == ["cuhk01/baseline/fold0-seed0", "cuhk01/bnneck-mixup/fold0-seed0",
                                     "cuhk01/baseline/fold2-seed0", "cuhk01/bnneck/fold2-seed0",
                                     "cuhk01/bnneck-mixup/fold2-seed0"]
    methods["bnneck"]["folds"] = [1]
    with pytest.raises(StudyError, match=r"'methods.bnneck.folds' names fold 1, which data set 'cuhk01' does not use"):
        reid_plan(methods=methods)


def test_reid_plan_errors_name_the_key():
    with pytest.raises(StudyError, match="'task' must be one of classification, reid"):
        reid_plan(task="detection")
    bad = copy.deepcopy(REID["methods"])
    bad["bnneck"]["overrides"]["seed"] = 3
    with pytest.raises(StudyError, match="'methods.bnneck.overrides.seed' is set by the study itself"):
        reid_plan(methods=bad)
    with pytest.raises(StudyError, match=r"method 'bnneck': config key 'neck': must be one of bnneck, none"):
        bad = copy.deepcopy(REID["methods"])
        bad["bnneck"]["overrides"]["neck"] = "bnnek"
        expand(reid_plan(methods=bad))


def test_a_validation_selection_holds_out_training_identities_and_scores_them():
    plan = reid_plan(selection={"split": "validation", "fraction": 0.2})
    assert plan.metric == "val_mAP"
    runs = expand(plan)
    assert all(r.config["validation_fraction"] == 0.2 for r in runs)
    final = get_task("reid").final({"validation_fraction": 0.2}, _fake_history(25.0, 30.0))
    assert final["val_mAP"] == 25.0 and "mAP" not in final and final["rank1"] == 30.0
    assert get_task("reid").final({"validation_fraction": 0.0}, _fake_history(25.0, 30.0))["mAP"] == 25.0


def test_merge_overrides_merges_nested_keys_only():
    merged = merge_overrides({"model_args": {"width": 8}, "lr": 0.1}, {"model_args": {"depth": 2}, "lr": 0.2},
                             {"dataset_args": {"split": 1}})
    assert merged == {"model_args": {"width": 8, "depth": 2}, "lr": 0.2, "dataset_args": {"split": 1}}


def _fake_history(mAP, rank1):
    cmc = [min(100.0, rank1 + 5 * i) for i in range(50)]
    return [{"epoch": 1, "lr": 1e-3, "train_loss": 2.0, "seconds": 1.0},
            {"epoch": 2, "lr": 1e-3, "train_loss": 1.0, "seconds": 1.0, "mAP": mAP, "rank1": rank1, "rank5": rank1 + 10,
             "rank10": rank1 + 20, "rank20": rank1 + 30, "mINP": mAP / 2, "cmc": cmc, "rerank_mAP": mAP + 3,
             "rerank_rank1": rank1 + 1, "rerank_rank5": rank1 + 11, "rerank_rank10": rank1 + 21,
             "rerank_mINP": mAP / 2 + 1, "rerank_cmc": cmc}]


def test_cross_targets_are_for_reid_plans_and_name_their_data_set():
    classification = {"datasets": {"digits": {"recipe": "digits", "cross": {"x": {"dataset": "generic", "data_root": "/d"}}}},
                      "methods": ["erm"], "folds": 5, "seeds": [0]}
    with pytest.raises(StudyError, match="'datasets.digits.cross' is for re-ID plans"):
        parse_plan(classification, "c.yaml")
    datasets = copy.deepcopy(REID["datasets"])
    datasets["cuhk01"]["cross"] = {"market": {"data_root": "/d"}}
    with pytest.raises(StudyError, match="'datasets.cuhk01.cross.market.dataset' must be given"):
        reid_plan(datasets=datasets)
    datasets["cuhk01"]["cross"] = {"market": {"dataset": "generic", "data_root": "/d", "dataset_args": {"x": 1}}}
    runs = expand(reid_plan(datasets=datasets))
    assert runs[0].cross == {"market": {"dataset": "generic", "data_root": "/d", "dataset_args": {"x": 1}}}
    plain = expand(reid_plan())
    assert [r.config_hash for r in runs] == [r.config_hash for r in plain]  # the same runs, scored on more


def test_report_orients_comparisons_for_a_score_where_higher_is_better(tmp_path):
    plan = reid_plan(folds={"num_folds": 10, "use": [0, 1, 2, 3, 4, 5]})
    ledger = tmp_path / "ledger"
    base = {"baseline": 20.0, "bnneck": 30.0, "bnneck-mixup": 33.0}
    for i, run in enumerate(expand(plan)):
        mAP = base[run.method] + 0.1 * i
        summary = {"epochs_done": 2, "epoch_seconds_mean": 1.0, "train_seconds": 2.0, "device": "cpu", "finished": True}
        write_record(ledger, make_record(plan.name, run, summary, _fake_history(mAP, mAP + 10), 3.0, {"hostname": "h"}))
    records, problems = read_records(ledger)
    assert not problems and all(r["task"] == "reid" and r["final"]["mAP"] > 0 for r in records)
    analysis = write_report(plan, ledger, tmp_path / "out")
    primary = analysis["comparisons"]["cuhk01"][0]
    assert (primary["a"], primary["b"], primary["pairs"]) == ("bnneck-mixup", "bnneck", 6)
    assert primary["mean"] == pytest.approx(3.0 + 0.1) and primary["a_better"] == 6 and primary["b_better"] == 0
    assert analysis["tables"]["cuhk01"][0]["relative"] == {}  # no relative "improvements" of a score
    text = (tmp_path / "out" / "reid-tiny.md").read_text()
    assert "Score = mAP (%)" in text and "higher is better" in text
    assert "(bnneck-mixup had the higher mAP)" in text
    assert "| rank-1 | rank-5 | rank-10 | mINP | re-ranked mAP | re-ranked rank-1 | re-ranked mINP | runs |" in text
    for png in ("reid-tiny_errors.png", "reid-tiny_cmc.png", "reid-tiny_rerank_cmc.png", "reid-tiny_paired.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000, png
    # a re-ID record without its mAP is not a whole record
    rec = json.loads(next(ledger.glob("*.json")).read_text())
    del rec["final"]["mAP"]
    (ledger / "broken.json").write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match="it has no final mAP"):
        records, problems = read_records(ledger)
    assert len(problems) == 1 and len(records) == 6 * 3


@pytest.mark.slow
def test_a_tiny_reid_study_runs_resumes_and_reports(tmp_path):
    campus = make_cuhk01(tmp_path / "data", persons=24)
    market = make_market(tmp_path / "market", ids=6, seed=3)  # a test-only data set in the generic layout
    datasets = copy.deepcopy(REID["datasets"])
    datasets["cuhk01"].update(data_root=str(campus), dataset_args={"num_test": 12},  # re-ranking needs 21 images
                              cross={"market": {"dataset": "generic", "data_root": str(market)}})
    plan = reid_plan(datasets=datasets, methods={"baseline": {"method": "erm"},
                                                 "mixup": {"method": "mixup"}},
                     primary=["mixup", "baseline"], comparisons=[], folds={"num_folds": 10, "use": [0, 1]})
    ledger = tmp_path / "ledger"
    result = run_plan(plan, ledger, workers=1, device="cpu", progress=False)
    assert result["trained"] == 4 and not result["failed"]
    records, problems = read_records(ledger)
    assert not problems and len(records) == 4
    for rec in records:
        final = rec["final"]
        assert rec["task"] == "reid" and 0 <= final["mAP"] <= 100 and len(final["cmc"]) == 50  # CMC_RANKS
        assert 0 <= final["rerank_mAP"] <= 100 and final["eval_epoch"] == 2
        assert rec["config"]["dataset_args"] == {"num_test": 12, "split": rec["fold"], "num_splits": 10}
        assert 0 <= final["cross:market:mAP"] <= 100 and 0 <= final["cross:market:rank1"] <= 100  # scored on the other set
        assert "cross" not in json.dumps(rec["identity"])  # a test-only data set is not part of what a run computes
    again = run_plan(plan, ledger, workers=1, device="cpu", progress=False)
    assert again["trained"] == 0
    analysis = write_report(plan, ledger, tmp_path / "out")
    assert analysis["comparisons"]["cuhk01"][0]["pairs"] == 2
    cross = analysis["cross"][0]
    assert (cross["dataset"], cross["label"], len(cross["rows"]), cross["comparisons"][0]["pairs"]) == ("cuhk01", "market", 2, 2)
    text = (tmp_path / "out" / f"{plan.name}.md").read_text()
    assert "## Across data sets: trained on cuhk01, scored on market" in text
    # too few images for re-ranking is an error before training, not after it
    small = make_cuhk01(tmp_path / "small", persons=12)
    datasets["cuhk01"].update(data_root=str(small), dataset_args={"num_test": 6})
    failed = run_plan(reid_plan(datasets=datasets, seeds=[1]), tmp_path / "ledger2", device="cpu", progress=False)["failed"]
    assert failed and all("rerank: true needs at least 21 query and gallery images" in f["error"] for f in failed)
