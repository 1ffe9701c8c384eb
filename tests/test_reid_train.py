"""Re-ID end to end on a small Market-1501 tree of real JPEG files: train, resume, evaluate, re-rank, export."""
import json

import numpy as np
import pytest
from PIL import Image

from adamixup.cli import main
from adamixup.train import ConfigError
from adamixup.reid.task import build_config as build_reid_config, evaluate as evaluate_reid_run, resume as resume_reid, train as train_reid

pytestmark = pytest.mark.slow  # end-to-end re-ID training

TINY = {"backbone": "resnet18", "pretrained": None, "height": 64, "width": 32, "p": 4, "k": 2, "workers": 0,
        "epochs": 2, "eval_every": 1, "warmup_epochs": 0, "quiet": True, "lr": 0.001}


def make_market(root, ids=8, seed=0):
    """Train ids 1..ids (cams 1, 2, three images each), junk (-1) and distractors (0000) in the gallery;
    query: one image of each id in camera 1; gallery: two of each id in camera 2 and one in camera 1.
    Each identity has its own colour, so that a network can learn them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("bounding_box_train", "query", "bounding_box_test"):
        (root / name).mkdir()

    def save(folder, pid, cam, i):
        base = np.array([(pid * 53) % 255, (pid * 97) % 255, (pid * 29) % 255], dtype=np.float64)
        img = np.clip(base + rng.normal(0, 20, (32, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / folder / f"{pid:04d}_c{cam}s1_{i:06d}_01.jpg" if pid >= 0 else
                                  root / folder / f"-1_c{cam}s1_{i:06d}_01.jpg", quality=90)

    for pid in range(1, ids + 1):
        for cam in (1, 2):
            for i in range(3):
                save("bounding_box_train", pid, cam, 100 * cam + i)
        save("query", pid, 1, 900)
        save("bounding_box_test", pid, 1, 901)
        save("bounding_box_test", pid, 2, 902)
        save("bounding_box_test", pid, 2, 903)
    save("bounding_box_test", 0, 3, 1)  # distractor
    save("bounding_box_test", -1, 3, 2)  # junk
    return root


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return make_market(tmp_path_factory.mktemp("market") / "Market-1501")


def cfg(market, **kw):
    return build_reid_config("bot", {**TINY, "data_root": str(market), **kw})


@pytest.mark.parametrize("method", ["erm", "mixup", "adamixup"])
def test_train_each_mixer_writes_a_complete_run(tmp_path, market, method):
    extra = {"mixer_args": {"policy": "light"}} if method == "adamixup" else {}
    summary = train_reid(cfg(market, method=method, **extra), tmp_path / "run")
    run = tmp_path / "run"
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt",
              "plots/learning_curves.png", "plots/cmc.png", "plots/ranked_lists.png"):
        assert (run / f).is_file(), f
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert "loss_triplet" in lines[0] and "loss_center" in lines[0]
    # the summary's figures are the last evaluation's, and re-evaluating the saved model gives them again
    assert summary["final"] == {k: lines[-1][k] for k in summary["final"]}
    again = evaluate_reid_run(run)
    assert again["dataset"] == again["trained_on"] == "market1501"
    assert {k: again[k] for k in summary["final"]} == pytest.approx(summary["final"], abs=1e-6)
    if method != "erm":
        assert "lam_mean" in lines[0]


def test_resume_continues_identically(tmp_path, market):
    a = train_reid(cfg(market, epochs=2), tmp_path / "a")
    train_reid(cfg(market, epochs=2), tmp_path / "b", stop_after=1)
    b = resume_reid(tmp_path / "b")
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    for m in la + lb:
        m.pop("seconds")
    assert la == lb and a["final"] == b["final"]


def test_evaluating_draws_no_random_numbers_of_the_training(tmp_path, market):
    # random erasing draws from the same stream as everything else: an evaluation between two epochs
    # must leave it alone, or eval_every would change what a run computes
    every = train_reid(cfg(market, epochs=3, eval_every=1, random_erasing=0.5), tmp_path / "every")
    sparse = train_reid(cfg(market, epochs=3, eval_every=3, random_erasing=0.5), tmp_path / "sparse")
    la = [json.loads(x) for x in (tmp_path / "every" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in la] == pytest.approx([m["train_loss"] for m in lb], rel=1e-6)
    assert ["mAP" in m for m in lb] == [False, False, True]
    assert every["final"] == pytest.approx(sparse["final"], abs=1e-6)
    # so a run extended from 2 to 3 epochs (constant schedule) is the run trained for 3 from the start
    train_reid(cfg(market, epochs=2, eval_every=1, random_erasing=0.5), tmp_path / "extended")
    extended = resume_reid(tmp_path / "extended", epochs=3)
    lc = [json.loads(x) for x in (tmp_path / "extended" / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in lc] == [m["train_loss"] for m in la] and extended["final"] == every["final"]


def test_cli_evaluate_rerank_export_and_reevaluate(tmp_path, market, capsys):
    run = tmp_path / "cli"
    args = ["reid", "train", "--data-root", str(market), "--run-dir", str(run), "--quiet", "--epochs", "1",
            "--method", "mixup", "--set=pretrained=null"] + [f"--set={k}={v}" for k, v in TINY.items() if k not in ("epochs", "quiet", "pretrained")]
    assert main(args) == 0
    assert "mAP" in capsys.readouterr().out
    assert main(["reid", "evaluate", str(run)]) == 0
    plain = capsys.readouterr().out.splitlines()[-1]
    assert main(["reid", "evaluate", str(run), "--rerank"]) == 0
    assert (run / "plots" / "cmc_last_rerank.png").is_file() and (run / "plots" / "ranked_lists_last_rerank.png").is_file()
    capsys.readouterr()
    assert main(["reid", "export", str(run)]) == 0
    assert (run / "features" / "query.npz").is_file()
    capsys.readouterr()
    assert main(["reid", "evaluate", "--features", str(run / "features")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == plain  # same numbers from the exported features


def test_bad_input_is_one_sentence(tmp_path, market, capsys):
    assert main(["reid", "train", "--data-root", str(tmp_path / "missing"), "--set", "pretrained=null"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("adamixup: error:") and "Traceback" not in err
    # the recipe's ImageNet weights need a download: offline, one sentence says what to do instead
    assert main(["reid", "train", "--data-root", str(market), "--run-dir", str(tmp_path / "r"), "--set", "backbone=resnet18"]) == 1
    err = capsys.readouterr().err
    assert "--pretrained PATH" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="mixer_args.alpah"):
        cfg(market, method="mixup", mixer_args={"alpah": 1})
    with pytest.raises(ConfigError, match="no re-ID recipe"):
        build_reid_config("nope")


def test_old_reid_flag_names_still_work_for_one_release(capsys):
    # --recipe is the old --config, --mixer the old --method: accepted, with a note
    assert main(["reid", "train", "--recipe", "nope", "--data-root", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "adamixup: note: --recipe is now --config, as in adamixup train; --recipe goes in the next release"
    assert err[1].startswith("adamixup: error: no re-ID recipe 'nope'")
    assert main(["reid", "train", "--mixer", "mixup", "--method", "erm", "--data-root", "x"]) == 2
    assert "--mixer is the old name of --method; give only --method" in capsys.readouterr().err


def test_compare_draws_two_runs_side_by_side_and_refuses_other_images(tmp_path, market, capsys):
    from adamixup.reid.task import export as export_reid

    a = tmp_path / "a"
    train_reid(cfg(market, epochs=1), a)
    b = tmp_path / "b"
    train_reid(cfg(market, epochs=1, seed=1, method="mixup"), b)
    features_b = export_reid(b)  # one side as exported features: the run's config is found beside them
    out = tmp_path / "cmp" / "side.png"
    assert main(["reid", "compare", f"scratch={a}", f"other={features_b}", "--out", str(out), "--queries", "0,3",
                 "--topk", "5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = {line.split("|")[1].strip(): [float(x) for x in line.split("|")[2:-1]] for line in printed if line.startswith("| scratch") or line.startswith("| other")}
    # each run's numbers are those `reid evaluate` gives it
    for label, run in (("scratch", a), ("other", b)):
        m = evaluate_reid_run(run)
        assert rows[label] == pytest.approx([m[k] for k in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")], abs=0.051)
    with Image.open(out) as img:
        # 2 queries x 2 runs, 14-pixel captions, a 14-pixel strip between the queries; 5 gallery tiles + the query + a gap
        assert img.size == (64 * 6 + 21, (128 + 14) * 4 + 14)
    # another data set's images cannot be compared tile by tile
    other = make_market(tmp_path / "m2" / "Market-1501", ids=6, seed=1)
    c = tmp_path / "c"
    train_reid(build_reid_config("bot", {**TINY, "data_root": str(other), "epochs": 1}), c)
    assert main(["reid", "compare", f"a={a}", f"c={c}", "--out", str(tmp_path / "x.png")]) == 1
    assert "a and c have different query images (8 and 6)" in capsys.readouterr().err
    # usage errors exit 2, what the data says 1; each is one sentence
    for bad, code, says in ((["a", f"b={b}"], 2, "LABEL=PATH"), ([f"a={a}", f"a={b}"], 2, "given twice"),
                            ([f"a={a}"], 2, "two runs"), ([f"a={a}", f"n={tmp_path}"], 1, "neither a re-ID run directory"),
                            ([f"a={a}", f"b={b}", "--queries", "99"], 2, "query index 99 is outside 0..7"),
                            ([f"a={a}", f"b={b}", "--queries", "x"], 2, "query indices separated by commas")):
        assert main(["reid", "compare", *bad, "--out", str(tmp_path / "y.png")]) == code
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
