"""Trainer: config validation, run directory, resume equality, non-finite loss, evaluate, compare, CLI."""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from adamixup.cli import main
from adamixup.study import compare
from adamixup.classify import build_config, resume, train
from adamixup.train import ConfigError, TrainingError
from adamixup.train.config import parse_set
from adamixup.train.schedule import lr_factor

FAST = {"dataset": "digits", "epochs": 2, "batch_size": 64, "model_args": {"width": 4}, "quiet": True,
        "train_eval_samples": 200}


def fast_config(**kw):
    return build_config("digits", {**FAST, **kw})


def test_unknown_and_bad_config_keys_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        build_config(None, {"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="'lr' must be of type float"):
        build_config(None, {"lr": "fast"})
    with pytest.raises(ConfigError, match="'method': must be one of"):
        build_config(None, {"method": "cutmix"})
    with pytest.raises(ConfigError, match="mixer_args.alpah' is not an option of mixup"):
        build_config(None, {"method": "mixup", "mixer_args": {"alpah": 1.0}})
    with pytest.raises(ConfigError, match="batch_size.*adamixup, which needs at least 4"):
        build_config(None, {"batch_size": 2})
    with pytest.raises(ConfigError, match="milestones"):
        build_config(None, {"schedule": "step"})
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3\nwarmup: 1\n")
    with pytest.raises(ConfigError, match=f"unknown config key 'warmup' in {recipe}"):
        build_config(str(recipe))
    with pytest.raises(ConfigError, match="no recipe .*: not a file, nor a shipped recipe"):
        build_config("nonexistent_recipe")
    assert parse_set(["lr=0.1", "mixer_args.alpha=0.4", "fold=null"]) == {"lr": 0.1, "mixer_args": {"alpha": 0.4}, "fold": None}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["lr"])


def test_every_shipped_recipe_is_valid():
    from adamixup.classify import list_recipes

    names = list_recipes()
    assert {"mnist5k", "digits", "mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "cifar10_s", "cifar100_s"} <= set(names)
    for name in names:
        cfg = build_config(name)
        assert cfg.epochs >= 1
    assert build_config("cifar10_s").train_fraction == 0.2
    c = build_config("cifar10")
    assert (c.model, c.optimizer, c.lr, c.weight_decay, c.batch_size, c.milestones) == ("preact_resnet18", "sgd", 0.1, 1e-4, 128, [100, 150])


def test_schedules():
    assert lr_factor(0, 10, 5, "constant") == 1.0
    assert lr_factor(25, 10, 5, "step", [2, 4], 0.1) == pytest.approx(0.1)
    assert lr_factor(45, 10, 5, "step", [2, 4], 0.1) == pytest.approx(0.01)
    assert lr_factor(49, 10, 5, "cosine") < 0.01 and lr_factor(0, 10, 5, "cosine") == 1.0
    assert lr_factor(0, 10, 5, "constant", warmup_epochs=1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 5, "constant", warmup_epochs=1) == pytest.approx(1.0)


def test_run_directory_contents(tmp_path):
    summary = train(fast_config(), tmp_path / "run")
    run = tmp_path / "run"
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt",
              "plots/learning_curves.png", "plots/lambda_distribution.png", "plots/mixed_samples.png"):
        assert (run / f).is_file(), f
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    for key in ("train_loss", "loss_clean", "loss_mixed", "loss_intrusion", "train_error", "test_error",
                "lam_mean", "lam_std", "intrusion_acc", "seconds"):
        assert key in lines[-1], key
    assert summary["finished"] and summary["final_test_error"] == lines[-1]["test_error"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["dataset"] == "digits" and saved["run_dir"] == str(run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and "rng" in ckpt and "mixer" in ckpt
    assert not list(run.glob("checkpoints/*.tmp"))
    with pytest.raises(TrainingError, match="already holds a run"):
        train(fast_config(), run)


@pytest.mark.parametrize("method", ["mixup", "adamixup"])
def test_resume_after_epoch_k_equals_uninterrupted_run(tmp_path, method):
    cfg = dict(epochs=3, method=method)
    train(fast_config(**cfg), tmp_path / "straight")
    train(fast_config(**cfg), tmp_path / "stopped", stop_after=1)
    # a run killed after logging epoch 2 but before its checkpoint: the log line must be dropped
    with open(tmp_path / "stopped" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "test_error": -1.0}) + "\n")
    resume(tmp_path / "stopped")
    a = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
    for m in a + b:
        m.pop("seconds")
    assert a == b
    sa = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "stopped/checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_non_finite_loss_stops_with_clear_message(tmp_path):
    with pytest.raises(TrainingError, match=r"non-finite at epoch 1, step \d+ .*no checkpoint was written yet"):
        train(fast_config(lr=1e30, method="erm", optimizer="sgd", momentum=0.0, nesterov=False), tmp_path / "nan")
    assert not (tmp_path / "nan").exists()  # nothing to resume: no folder left behind
    with pytest.raises(TrainingError, match="not a run directory"):
        resume(tmp_path / "nan")


def test_metrics_are_standard_json_and_lr_is_the_epochs_own(tmp_path):
    train(fast_config(train_fraction=0.3, method="erm"), tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    records = [json.loads(x, parse_constant=refuse) for x in lines]
    steps = 389 // 64  # 30 % of digits' 1,297 training images, batches of 64
    for m in records:  # the rate of the epoch's last step, not the next epoch's
        assert m["lr"] == pytest.approx(1e-3 * lr_factor(m["epoch"] * steps - 1, steps, 2, "cosine"))


def test_mix_sources_in_input_order():
    from adamixup.classify.task import mix_sources

    y = torch.tensor([3, 7, 1, 5])
    ids, w = mix_sources(torch.tensor([0.8, 0.3]), torch.tensor([[1, 0]]), y)
    assert ids.tolist() == [[3, 7], [7, 3]]
    assert torch.allclose(w, torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    # k = 3: the running mix of the first two inputs is mixed with the third
    ids, w = mix_sources(torch.tensor([0.5, 0.6]), torch.tensor([[2], [3]]), y)
    assert ids.tolist() == [[3, 1, 5]] and torch.allclose(w, torch.tensor([[0.3, 0.3, 0.4]]))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_with_more_epochs_extends_the_run(tmp_path, schedule, capsys):
    cfg = dict(method="mixup", train_fraction=0.3, schedule=schedule)
    train(fast_config(epochs=3, **cfg), tmp_path / "straight")
    train(fast_config(epochs=2, **cfg), tmp_path / "extended")  # finished at 2 epochs
    capsys.readouterr()
    summary = resume(tmp_path / "extended", epochs=3)
    note = capsys.readouterr().out
    assert summary["finished"] and summary["epochs_done"] == 3
    assert summary["extended"] == [{"at_epoch": 2, "from_epochs": 2, "to_epochs": 3}]
    assert yaml.safe_load((tmp_path / "extended" / "config.yaml").read_text())["epochs"] == 3
    a = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "extended" / "metrics.jsonl").read_text().splitlines()]
    for m in a + b:
        m.pop("seconds")
    sa = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "extended/checkpoints/last.pt", weights_only=True)["model"]
    if schedule == "constant":  # the schedule does not depend on the length: the same run, bit for bit
        assert "goes on as one started for 3 epochs" in note
        assert a == b and all(torch.equal(sa[k], sb[k]) for k in sa)
    else:  # epochs 1-2 followed the 2-epoch cosine; epoch 3 follows the 3-epoch one (README says so)
        assert "recomputed for 3 epochs" in note and "epochs 1-2 followed the 2-epoch schedule" in note
        assert [m["lr"] for m in b[:2]] != pytest.approx([m["lr"] for m in a[:2]])
        assert b[2]["lr"] == pytest.approx(a[2]["lr"])
        steps = 389 // 64
        assert b[1]["lr"] == pytest.approx(1e-3 * lr_factor(2 * steps - 1, steps, 2, "cosine"))
    with pytest.raises(ConfigError, match="already trained 3 epochs"):
        resume(tmp_path / "extended", epochs=2)


def test_compare_table_and_reuse(tmp_path):
    base = fast_config(epochs=1)
    rows = compare(base, ["erm", "mixup"], [0, 1], tmp_path / "cmp")
    assert [r["method"] for r in rows] == ["erm", "mixup"] and all(r["runs"] == 2 for r in rows)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "Baseline" in md and "MixUp" in md and "±" in md
    assert (tmp_path / "cmp" / "compare.png").is_file()
    stamp = (tmp_path / "cmp" / "erm-seed0" / "summary.json").stat().st_mtime_ns
    said = []
    rows2 = compare(base, ["erm", "mixup"], [0, 1], tmp_path / "cmp", log=said.append)  # finished runs are reused
    assert rows2 == rows and (tmp_path / "cmp" / "erm-seed0" / "summary.json").stat().st_mtime_ns == stamp
    assert sum("finished earlier with the same settings; reusing it" in m for m in said) == 4
    # other settings: every run is trained again, and the table holds the new runs
    said.clear()
    from adamixup.study import StudyWarning

    with pytest.warns(StudyWarning, match=r"stale, not reused: it was trained with other settings .*epochs 1\S* -> 2"):
        rows3 = compare(fast_config(epochs=2), ["erm"], [0, 1], tmp_path / "cmp", log=said.append)
    assert sum("reusing" in m for m in said) == 0
    new = [json.loads((tmp_path / "cmp" / f"erm-seed{seed}" / "summary.json").read_text()) for seed in (0, 1)]
    assert all(s["epochs_done"] == 2 and s["finished"] for s in new)
    assert rows3[0]["errors"] == [s["final_test_error"] for s in new]


def test_cli_output_into_a_pipe_closed_early_stops_without_traceback():
    # `adamixup recipes | head -1`: the reader leaves after one line
    script = "import sys; from adamixup.cli import main; sys.exit(main(['recipes']))"
    proc = subprocess.run(f'"{sys.executable}" -c "{script}" | head -c 1', shell=True, capture_output=True, text=True, timeout=120)
    assert len(proc.stdout) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_cli_end_to_end(tmp_path, capsys):
    run = tmp_path / "cli-run"
    args = ["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--run-dir", str(run),
            "--set", "model_args.width=4", "--set", "mixer_args.policy=light"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test error" in out and str(run) in out
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| 9 |" in out and "test error" in out
    assert main(["train", "--set", "lr=oops"]) == 2
    assert "config key 'lr'" in capsys.readouterr().err
    assert main(["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("adamixup: error:") and "Traceback" not in err
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err
    assert main(["recipes"]) == 0 and "cifar10_s" in capsys.readouterr().out


def test_validation_split_is_scored_instead_of_the_test_split(tmp_path):
    summary = train(fast_config(epochs=1, validation_fraction=0.2), tmp_path / "v")
    line = json.loads((tmp_path / "v" / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_error" in line and "test_error" not in line  # the test split is never scored
    assert summary["eval_split"] == "validation" and summary["final_val_error"] == line["val_error"]
    assert (tmp_path / "v" / "plots" / "learning_curves.png").is_file()
    with pytest.raises(ConfigError, match="validation_fraction"):
        fast_config(validation_fraction=1.5)


def test_eval_every_skips_evaluations_but_not_the_last_and_changes_no_result(tmp_path):
    every = train(fast_config(method="mixup", epochs=3), tmp_path / "every")
    sparse = train(fast_config(method="mixup", epochs=3, eval_every=2), tmp_path / "sparse")
    lines = [json.loads(x) for x in (tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert [("test_error" in m, "train_error" in m) for m in lines] == [(False, False), (True, True), (True, True)]
    full = [json.loads(x) for x in (tmp_path / "every" / "metrics.jsonl").read_text().splitlines()]
    # evaluation draws no random numbers and changes no state: the same training, the same final error
    assert [m["train_loss"] for m in lines] == pytest.approx([m["train_loss"] for m in full], rel=1e-6)
    assert sparse["final_test_error"] == pytest.approx(every["final_test_error"], abs=1e-9)
    assert (tmp_path / "sparse" / "plots" / "learning_curves.png").is_file()
    with pytest.raises(ConfigError, match="eval_every"):
        fast_config(eval_every=0).validate()
