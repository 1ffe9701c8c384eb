"""benchmarks/reid_chain.py: the ablation chain of the committed re-ID ledgers beside the published one."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
spec = importlib.util.spec_from_file_location("bench_reid_chain", BENCH / "reid_chain.py")
rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)


def test_chain_reads_the_committed_from_scratch_ledger():
    reg = rc.chain("cuhk01-bot-cpu", "benchmarks/ledgers/cuhk01-bot-cpu", split=0)
    assert reg["runs_planned"] == 20 and reg["runs_done"] == 20
    # split 0's strong baseline, as its ledger record (and the study's report) has it
    assert reg["steps"]["a6-center"]["mAP"] == pytest.approx(40.46, abs=0.01)
    assert reg["steps"]["a0-baseline"]["rank1"] == pytest.approx(6.6, abs=0.05)
    assert 10 < reg["wall_hours"] < 30
    # that study ran one thread per run throughout, so its core-hours are its wall-hours
    assert reg["core_hours"] == pytest.approx(reg["wall_hours"]) and reg["multi_thread_runs"] == 0
    assert reg["resumed"] == 5 and sorted(reg["last_step_mAP_by_split"]) == [0, 1, 2]
    assert reg["last_step_mAP_by_split"][0] == pytest.approx(40.46, abs=0.01)
    assert rc.chain("cuhk01-bot-cpu", "benchmarks/ledgers/cuhk01-bot-cpu", split=7)["steps"]["a6-center"] is None


def test_core_hours_count_every_thread_of_a_run():
    # MixUp on splits 3 and 4, the fixed region on split 4 and the strong baseline on split 5 finished
    # alone on two threads (machine.torch_threads: 2; 403, 1196, 1740 and 1229 s): those seconds count twice
    reg = rc.chain("cuhk01-lite0", "benchmarks/ledgers/cuhk01-lite0", split=0)
    assert reg["multi_thread_runs"] >= 4
    assert reg["core_hours"] - reg["wall_hours"] >= (403 + 1196 + 1740 + 1229) / 3600 - 0.01


def test_table_gives_each_step_its_gain_and_says_what_has_not_run():
    steps = {s: None for s, _ in rc.STEPS}
    steps["a0-baseline"] = {"mAP": 50.0, "rank1": 40.0, "rerank_mAP": 55.0}
    steps["a1-warmup"] = {"mAP": 48.04, "rank1": 41.0, "rerank_mAP": None}
    steps["a6-center"] = {"mAP": 60.0, "rank1": 50.0, "rerank_mAP": 61.0}
    rows = rc.table([{"steps": steps}], ["mine"], split=0).splitlines()
    assert len(rows) == 2 + len(rc.STEPS)
    assert rows[2].endswith("| 74.0 / 87.7 | 50.0 / 40.0 / 55.0 |")
    assert rows[3].endswith("| 75.2 (+1.2) / 88.7 | 48.0 (−2.0) / 41.0 / — |")
    assert rows[4].endswith("| not run yet |")
    assert rows[-1].endswith("| 85.9 (+0.2) / 94.5 | 60.0 / 50.0 / 61.0 |")  # no gain over a step not run
