"""Re-ID across data sets (issue 31): a run trained on one data set scores another's query and
gallery, by one command or one call, without touching the run's own results."""
import shutil

import numpy as np
import pytest

from adamixup.cli import main
from adamixup.reid import task as reid
from test_reid_train import TINY, make_market

pytestmark = pytest.mark.slow  # trains a small re-ID network once


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run trained on a Market-1501 tree; a second tree (other persons, the generic layout)."""
    root = tmp_path_factory.mktemp("cross")
    market = make_market(root / "Market-1501", ids=8, seed=0)
    other = make_market(root / "other-set", ids=6, seed=1)
    run = root / "run"
    reid.train(reid.build_config("bot", {**TINY, "epochs": 1, "data_root": str(market)}), run)
    return run, market, other


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_cli_scores_another_data_set_and_leaves_the_run_alone(trained, capsys):
    run, market, other = trained
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["reid", "evaluate", str(run), "--dataset", "generic", "--data-root", str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"scored on generic ({other}); trained on market1501 ({market})"), out[0]
    assert out[1].startswith("| mAP |")
    after = _snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing of the run's was changed
    new = sorted(str(k) for k in set(after) - set(before))
    assert new == ["plots/cross-generic/cmc_last_plain.png", "plots/cross-generic/ranked_lists_last_plain.png"], new


def test_one_call_in_python_and_the_same_numbers_by_export(trained, tmp_path):
    run, market, other = trained
    m = reid.evaluate(run, dataset="generic", data_root=str(other))
    assert (m["dataset"], m["trained_on"], m["cross"]) == ("generic", "market1501", True)
    own = reid.evaluate(run)
    assert (own["dataset"], own["cross"]) == ("market1501", False)
    out = reid.export(run, dataset="generic", data_root=str(other))
    assert out == run / "features" / "cross-generic"
    q = np.load(out / "query.npz")  # the other set's 6 persons, not the run's own 8
    assert len(q["pids"]) == 6 and set(q["pids"].tolist()) == set(range(1, 7))
    again = reid.evaluate_exported(out, run_dir=run)
    assert again["mAP"] == pytest.approx(m["mAP"], abs=1e-6) and again["rank1"] == pytest.approx(m["rank1"], abs=1e-6)


def test_a_copy_of_the_own_data_set_gets_its_own_folder(trained, tmp_path):
    run, market, _ = trained
    copy = tmp_path / "Market-copy"
    shutil.copytree(market, copy)
    reid.evaluate(run, dataset="market1501", data_root=str(copy))
    assert (run / "plots" / "cross-market1501-Market-copy" / "cmc_last_plain.png").is_file()


def test_what_cannot_work_is_one_sentence(trained, tmp_path, capsys):
    run, market, other = trained
    empty = tmp_path / "no-query"
    shutil.copytree(other, empty)
    for f in (empty / "query").iterdir():
        f.unlink()
    cases = [
        (["reid", "evaluate", str(run), "--dataset", "generic", "--data-root", str(empty)], "no usable images for the query split"),
        (["reid", "evaluate", str(run), "--dataset", "generic"], "needs --data-root"),
        (["reid", "evaluate", str(run), "--dataset", "generic", "--data-root", str(other), "--set", "lr=1"],
         "only dataset_args"),
        (["reid", "evaluate", str(run), "--dataset", "cuhk01", "--data-root", str(other), "--set", "dataset_args.nope=1"],
         "dataset_args.nope is not an option of the cuhk01 reader"),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        assert main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err


def test_the_own_data_set_in_another_split_is_scored_apart():
    """The run's own data set with other reader options is another query and gallery: its pictures go
    to their own folder, named for the options."""
    from adamixup.reid.task import ReIDConfig, _cross_folder

    config = ReIDConfig(dataset="cuhk01", data_root="/d/cuhk01", dataset_args={"num_test": 486, "split": 0})
    assert _cross_folder(config, "cuhk01", "/d/cuhk01", {"num_test": 486, "split": 0}) == ""
    assert _cross_folder(config, "cuhk01", "/d/cuhk01", {"num_test": 100, "split": 3}) == "cross-cuhk01-num_test100-split3"
    assert _cross_folder(config, "market1501", "/d/market", None) == "cross-market1501"
    assert _cross_folder(config, "cuhk01", "/e/other-copy", {"num_test": 486, "split": 0}) == "cross-cuhk01-other-copy"
