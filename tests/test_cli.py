"""Every mistake a user can make through the CLI ends in one sentence: a table of cases run through
``adamixup.cli.main`` in-process, each asserting exit code != 0, exactly one line on stderr with no
traceback, no run folder left behind (unless the run was resumable), and for crafted files that no
code in them ran."""
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from adamixup.cli import build_parser, main

TINY = ["--dataset", "digits", "--epochs", "1", "--quiet", "--set", "train_fraction=0.1", "--set", "batch_size=32",
        "--set", "model_args.width=4", "--set", "train_eval_samples=50"]
REID_TINY = ["--dataset", "generic", "--quiet", "--epochs", "1", "--workers", "0", "--set", "backbone=resnet18",
             "--set", "height=64", "--set", "width=32", "--set", "p=4", "--set", "k=2", "--set", "warmup_epochs=0"]


class Evil:
    """A pickle that runs a command when unpickled (it must never be)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def all_files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished one-epoch run (ERM on 10 % of digits) to copy and damage."""
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", *TINY, "--method", "erm", "--run-dir", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def reid_root(tmp_path_factory):
    """A generic re-ID tree (Market-1501 layout) of small real JPEG files: 4 ids, 2 cameras."""
    root = tmp_path_factory.mktemp("reid") / "data"
    rng = np.random.default_rng(0)
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True)
    for pid in range(1, 5):
        for cam in (1, 2):
            for i, folder in enumerate(("bounding_box_train", "bounding_box_train", "query" if cam == 1 else "bounding_box_test")):
                img = rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / folder / f"{pid:04d}_c{cam}s1_{100 * cam + i:06d}_01.jpg")
    return root


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """Another finished one-epoch digits run (other seed and method): its checkpoints are another run's."""
    run = tmp_path_factory.mktemp("other") / "run"
    assert main(["train", *TINY, "--method", "mixup", "--seed", "1", "--run-dir", str(run)]) == 0
    return run


def copy_run(good_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    return run


def truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def crafted(path: Path, marker: Path):
    torch.save({"model": Evil(marker)}, path)


# Each case: (id, setup(tmp_path, good_run, reid_root, marker) -> argv, expected words in the message,
#             whether a folder may change: the resumable cases keep their run as it was)
CASES = [
    # config values
    ("nan-lr", lambda t, g, r, m: ["train", *TINY, "--set", "lr=.nan"], "finite number"),
    ("inf-lr", lambda t, g, r, m: ["train", *TINY, "--set", "lr=.inf"], "finite number"),
    ("lr-string", lambda t, g, r, m: ["train", *TINY, "--set", "lr=fast"], "'lr' must be of type float"),
    ("epochs-0", lambda t, g, r, m: ["train", *TINY, "--epochs", "0"], "'epochs': must be at least 1"),
    ("epochs-not-int", lambda t, g, r, m: ["train", *TINY, "--epochs", "x"], "invalid int value"),
    ("unknown-key", lambda t, g, r, m: ["train", *TINY, "--set", "learning_rate=0.1"], "unknown config key 'learning_rate'"),
    ("set-no-equals", lambda t, g, r, m: ["train", *TINY, "--set", "lr"], "key=value"),
    ("bad-yaml-set", lambda t, g, r, m: ["train", *TINY, "--set", "mixer_args.alpha=[1"], "not valid YAML"),
    ("mixup-alpha-negative", lambda t, g, r, m: ["train", *TINY, "--method", "mixup", "--set", "mixer_args.alpha=-1"],
     "alpha must be positive"),
    ("mixup-alpha-nan", lambda t, g, r, m: ["train", *TINY, "--method", "mixup", "--set", "mixer_args.alpha=.nan"],
     "mixer_args.alpha' must be a finite number"),
    ("adamixup-min-width-2", lambda t, g, r, m: ["train", *TINY, "--set", "mixer_args.min_width=2"], "min_width"),
    ("adamixup-policy-typo", lambda t, g, r, m: ["train", *TINY, "--set", "mixer_args.policy=lite"], "policy"),
    ("mixer-arg-unknown", lambda t, g, r, m: ["train", *TINY, "--set", "mixer_args.alpah=1"], "not an option of adamixup"),
    ("model-arg-unknown", lambda t, g, r, m: ["train", *TINY, "--set", "model_args.foo=1"], "model_args.foo"),
    ("model-arg-bad-value", lambda t, g, r, m: ["train", *TINY, "--set", "model_args.width=-1"], "model_args"),
    ("model-unknown", lambda t, g, r, m: ["train", *TINY, "--model", "resnet9000"], "unknown model 'resnet9000'"),
    ("model-timm-unknown", lambda t, g, r, m: ["train", *TINY, "--model", "timm/no_such_net_xyz"], "timm"),
    ("model-torchvision-unknown", lambda t, g, r, m: ["train", *TINY, "--model", "torchvision/no_such_net"],
     "torchvision has no model"),
    ("device-tpu", lambda t, g, r, m: ["train", *TINY, "--device", "tpu"], "'device'"),
    ("device-cuda-9", lambda t, g, r, m: ["train", *TINY, "--device", "cuda:9"], "cuda:9"),
    ("batch-too-small", lambda t, g, r, m: ["train", *TINY, "--set", "batch_size=2"], "needs at least 4"),
    # paths
    ("run-dir-is-a-file", lambda t, g, r, m: (t / "afile").write_text("x") and ["train", *TINY, "--run-dir", str(t / "afile")],
     "is a file"),
    ("run-dir-under-a-file", lambda t, g, r, m: (t / "afile").write_text("x") and
     ["train", *TINY, "--run-dir", str(t / "afile" / "run")], "is a file"),
    ("run-dir-holds-a-run", lambda t, g, r, m: ["train", *TINY, "--run-dir", str(copy_run(g, t))], "already holds a run"),
    ("dataset-files-missing", lambda t, g, r, m: ["train", "--dataset", "cifar10", "--data-root", str(t / "nothing")],
     "not found"),
    ("dataset-unknown", lambda t, g, r, m: ["train", "--dataset", "imagenet22k"], "'dataset'"),
    ("recipe-missing", lambda t, g, r, m: ["train", "--config", str(t / "nope.yaml")], "no recipe"),
    ("crafted-cifar-batch", lambda t, g, r, m: crafted_cifar(t, m), "cifar"),
    ("mnist-images-truncated", lambda t, g, r, m: truncated_mnist(t), "truncated"),
    ("imagefolder-zero-byte-image", lambda t, g, r, m: image_folder_with_empty_file(t), "empty.png"),
    # resume
    ("resume-missing-folder", lambda t, g, r, m: ["train", "--resume", str(t / "nothing")], "does not exist"),
    ("resume-truncated-last", lambda t, g, r, m: resume_damaged(g, t, truncate), "truncated or corrupt"),
    ("resume-foreign-checkpoint", lambda t, g, r, m: resume_damaged(g, t, lambda p: torch.save({"weights": 1}, p)),
     "not an adamixup checkpoint"),
    ("resume-crafted-checkpoint", lambda t, g, r, m: resume_damaged(g, t, lambda p: crafted(p, m)), "nothing in it ran"),
    ("resume-invalid-config", lambda t, g, r, m: damaged_config(g, t, "epochs: [1\n", "train"), "not valid YAML"),
    ("resume-empty-config", lambda t, g, r, m: damaged_config(g, t, "", "train"), "is empty"),
    ("resume-config-bad-value", lambda t, g, r, m: damaged_config(g, t, None, "train", lr=-1.0), "'lr': must not be negative"),
    ("resume-with-batch-size", lambda t, g, r, m: ["train", "--resume", str(copy_run(g, t)), "--batch-size", "8"],
     "drop --batch-size"),
    ("resume-with-method-seed-set", lambda t, g, r, m: ["train", "--resume", str(copy_run(g, t)), "--method", "mixup",
                                                        "--seed", "3", "--set", "lr=1"], "drop --set, --method, --seed"),
    ("resume-epochs-below-done", lambda t, g, r, m: ["train", "--resume", str(copy_run(g, t)), "--epochs", "0"],
     "already trained 1 epochs"),
    ("resume-device-tpu", lambda t, g, r, m: ["train", "--resume", str(copy_run(g, t)), "--device", "tpu"], "'device'"),
    # evaluate
    ("evaluate-not-a-run", lambda t, g, r, m: ["evaluate", str(t)], "not a run directory"),
    ("evaluate-truncated", lambda t, g, r, m: evaluate_damaged(g, t, truncate), "truncated or corrupt"),
    ("evaluate-crafted", lambda t, g, r, m: evaluate_damaged(g, t, lambda p: crafted(p, m)), "nothing in it ran"),
    ("evaluate-foreign", lambda t, g, r, m: evaluate_damaged(g, t, lambda p: torch.save([1, 2], p)),
     "not an adamixup checkpoint"),
    ("evaluate-misfit-state", lambda t, g, r, m: evaluate_damaged(g, t, lambda p: torch.save({"model": {"w": torch.ones(1)},
                                                                                              "epoch": 1}, p)),
     "does not fit"),
    ("evaluate-invalid-config", lambda t, g, r, m: damaged_config(g, t, "::\n  - [", "evaluate"), "not valid YAML"),
    # issue 30: a checkpoint belongs to its run
    ("evaluate-checkpoint-of-another-run", lambda t, g, r, m: foreign_checkpoint(g, t, "evaluate"), "belongs to run"),
    ("resume-checkpoint-of-another-run", lambda t, g, r, m: foreign_checkpoint(g, t, "train"), "belongs to run"),
    ("evaluate-old-checkpoint-other-settings", lambda t, g, r, m: foreign_checkpoint(g, t, "evaluate", keep_id=False),
     "trained with other settings"),
    ("seed-negative", lambda t, g, r, m: ["train", *TINY, "--seed", "-1"], "'seed': must not be negative"),
    ("recipe-empty", lambda t, g, r, m: (t / "empty.yaml").write_text("") or ["train", "--config", str(t / "empty.yaml")],
     "is empty"),
    ("evaluate-a-reid-run", lambda t, g, r, m: fake_reid_run(g, t, ["evaluate"]), "is a re-ID run"),
    ("reid-evaluate-a-classification-run", lambda t, g, r, m: ["reid", "evaluate", str(copy_run(g, t))],
     "is a classification run"),
    ("reid-export-a-classification-run", lambda t, g, r, m: ["reid", "export", str(copy_run(g, t))],
     "is a classification run"),
    ("reid-features-garbage", lambda t, g, r, m: garbage_features(t), "is not one that `adamixup reid export` writes"),
    ("study-report-missing-ledger", lambda t, g, r, m: ["study", "report", "quick", "--ledger", str(t / "nothing"),
                                                        "--out", str(t / "rep")], "does not exist"),
    ("study-report-out-is-a-file", lambda t, g, r, m: (t / "afile").write_text("x") and
     ["study", "report", "quick", "--ledger", str(t), "--out", str(t / "afile")], "is a file"),
    ("reid-target-without-dataset", lambda t, g, r, m: ["reid", "evaluate", str(t), "--data-root", str(r)], "--dataset"),
    ("reid-target-unknown-dataset", lambda t, g, r, m: fake_reid_run(g, t, ["reid", "evaluate"], "--dataset", "imagenet",
                                                                     "--data-root", str(r)), "not a re-ID data set"),
    ("compare-batch-floor-of-compared", lambda t, g, r, m: ["compare", *TINY, "--methods", "erm,mixup", "--set", "batch_size=1",
                                                            "--out", str(t / "cmp")], "too small for mixup"),
    # compare
    ("compare-methods-typo", lambda t, g, r, m: ["compare", *TINY, "--methods", "erm,mixpu"], "--methods"),
    ("compare-out-is-a-file", lambda t, g, r, m: (t / "afile").write_text("x") and
     ["compare", *TINY, "--methods", "erm", "--seeds", "1", "--out", str(t / "afile")], "is a file"),
    ("compare-bad-lr", lambda t, g, r, m: ["compare", *TINY, "--set", "lr=-1", "--out", str(t / "cmp")], "'lr'"),
    # re-ID
    ("reid-features-missing", lambda t, g, r, m: ["reid", "evaluate", "--features", str(t / "nothing")], "does not exist"),
    ("reid-pretrained-crafted", lambda t, g, r, m: reid_pretrained_crafted(t, r, m), "resnet18.pth"),
    ("reid-zero-byte-image", lambda t, g, r, m: reid_zero_byte(t, r), "is empty (0 bytes)"),
    ("reid-mixer-arg-bad", lambda t, g, r, m: ["reid", "train", *REID_TINY, "--data-root", str(r), "--method", "mixup",
                                               "--set", "mixer_args.alpha=-1"], "alpha must be positive"),
    ("reid-resume-with-seed", lambda t, g, r, m: ["reid", "train", "--resume", str(t / "x"), "--seed", "1"], "drop --seed"),
]


def foreign_checkpoint(good_run, t, command, keep_id=True):
    """``good_run`` with the last.pt of another run (another seed and method) copied in."""
    run = copy_run(good_run, t)
    other = t / "other"
    assert main(["train", *TINY, "--method", "mixup", "--seed", "1", "--set", "lr=0.01", "--run-dir", str(other)]) == 0
    ckpt = torch.load(other / "checkpoints" / "last.pt", weights_only=True)
    if not keep_id:  # a checkpoint written before runs had ids: only its settings can tell
        ckpt.pop("run_id")
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    shutil.rmtree(other)
    return ["train", "--resume", str(run)] if command == "train" else ["evaluate", str(run)]


def fake_reid_run(good_run, t, command, *extra):
    """A folder whose config.yaml is a re-ID run's (the strong baseline's recipe, resolved)."""
    from adamixup.reid.task import build_config

    run = t / "reid-run"
    (run / "checkpoints").mkdir(parents=True)
    config = build_config("bot", {"dataset": "generic", "data_root": str(t), "backbone": "resnet18"})
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    return [*command, str(run), *extra]


def garbage_features(t):
    folder = t / "feats"
    folder.mkdir()
    for name in ("query.npz", "gallery.npz"):
        (folder / name).write_bytes(b"this is not a zip file at all" * 10)
    return ["reid", "evaluate", "--features", str(folder)]


def crafted_cifar(t: Path, marker: Path):
    root = t / "cifar"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        with open(root / "cifar-10-batches-py" / name, "wb") as f:
            pickle.dump(Evil(marker), f)
    return ["train", "--dataset", "cifar10", "--data-root", str(root), "--epochs", "1", "--quiet",
            "--run-dir", str(t / "runs" / "cifar")]


def truncated_mnist(t: Path):
    import struct

    root = t / "mnist"
    root.mkdir()
    for name, n in (("train", 10), ("t10k", 10)):
        (root / f"{name}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + bytes(784 * n))
        (root / f"{name}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + bytes(n))
    data = (root / "train-images-idx3-ubyte").read_bytes()
    (root / "train-images-idx3-ubyte").write_bytes(data[: 16 + 784 * 5])  # half the images are missing
    return ["train", "--dataset", "mnist", "--data-root", str(root), "--epochs", "1", "--quiet"]


def image_folder_with_empty_file(t: Path):
    root = t / "images"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    (root / "train" / "dog" / "empty.png").write_bytes(b"")
    return ["train", "--dataset", "imagefolder", "--data-root", str(root), "--epochs", "1", "--quiet"]


def resume_damaged(good_run, t, damage):
    run = copy_run(good_run, t)
    damage(run / "checkpoints" / "last.pt")
    return ["train", "--resume", str(run)]


def evaluate_damaged(good_run, t, damage):
    run = copy_run(good_run, t)
    damage(run / "checkpoints" / "last.pt")
    return ["evaluate", str(run)]


def damaged_config(good_run, t, text, command, **values):
    run = copy_run(good_run, t)
    if text is None:
        saved = yaml.safe_load((run / "config.yaml").read_text())
        text = yaml.safe_dump({**saved, **values})
    (run / "config.yaml").write_text(text)
    return ["train", "--resume", str(run)] if command == "train" else ["evaluate", str(run)]


def reid_pretrained_crafted(t, reid_root, marker):
    weights = t / "resnet18.pth"
    torch.save({"conv1.weight": Evil(marker)}, weights)
    return ["reid", "train", *REID_TINY, "--data-root", str(reid_root), "--pretrained", str(weights),
            "--run-dir", str(t / "runs" / "reid")]


def reid_zero_byte(t, reid_root):
    root = t / "reid-broken"
    shutil.copytree(reid_root, root)
    victim = sorted((root / "bounding_box_train").iterdir())[0]
    victim.write_bytes(b"")
    return ["reid", "train", *REID_TINY, "--data-root", str(root), "--run-dir", str(t / "runs" / "reid")]


@pytest.mark.parametrize("setup,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_mistake_is_one_sentence(setup, expected, tmp_path, good_run, reid_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would appear here
    marker = tmp_path / "code-ran"
    argv = setup(tmp_path, good_run, reid_root, marker)
    before = all_files(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code not in (0, None), err
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("adamixup"), err
    assert expected in lines[0], lines[0]
    assert all_files(tmp_path) == before, "a failed command left files behind"
    assert not marker.exists(), "code in a crafted file ran"


def test_every_case_of_the_issue_is_in_the_table():
    ids = {c[0] for c in CASES}
    issue_14 = {"resume-truncated-last", "resume-foreign-checkpoint", "resume-crafted-checkpoint", "evaluate-truncated",
                "evaluate-crafted", "evaluate-foreign", "resume-invalid-config", "resume-empty-config", "nan-lr",
                "mixup-alpha-negative", "adamixup-min-width-2", "model-arg-unknown", "device-tpu", "run-dir-is-a-file",
                "reid-features-missing", "reid-zero-byte-image", "reid-pretrained-crafted"}
    assert issue_14 <= ids


def test_damaged_last_checkpoint_offers_best(good_run, tmp_path, capsys):
    run = copy_run(good_run, tmp_path)
    truncate(run / "checkpoints" / "last.pt")
    assert main(["evaluate", str(run)]) == 1
    err = capsys.readouterr().err
    assert "best.pt (epoch 1) is intact: evaluate it with --checkpoint best" in err
    assert main(["evaluate", str(run), "--checkpoint", "best"]) == 0
    assert main(["train", "--resume", str(run)]) == 1
    assert "best.pt (epoch 1) is intact: copy it over last.pt" in capsys.readouterr().err


def test_floats_as_everyone_writes_them(tmp_path):
    from adamixup.classify import build_config

    assert build_config(None, {"lr": 1e-4}).lr == 1e-4
    from adamixup.train.config import parse_set

    assert parse_set(["lr=1e-4", "weight_decay=5E-4", "mixer_args.alpha=2e0"]) == {
        "lr": 1e-4, "weight_decay": 5e-4, "mixer_args": {"alpha": 2.0}}
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 1e-4\nweight_decay: 5e-4\nepochs: 3\n")
    cfg = build_config(str(recipe))
    assert (cfg.lr, cfg.weight_decay, cfg.epochs) == (1e-4, 5e-4, 3)


def test_help_is_fast_plain_and_complete():
    # no torch before a command runs
    code = "import sys, adamixup.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "False"
    parser = build_parser()
    parsers = [parser]
    for p in parsers:
        for action in p._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                parsers.extend(action.choices.values())
    for p in parsers:
        text = p.format_help()
        assert "`" not in text, p.prog
        for action in p._actions:
            if action.dest not in ("help", "command", "reid_command"):
                assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"


def test_no_cursor_codes_without_a_terminal(tmp_path, capsys):
    # without --quiet, stderr not being a terminal: no bars, one line per epoch
    assert main(["train", *[a for a in TINY if a != "--quiet"], "--method", "erm", "--run-dir", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err and "\x1b[" not in err and "\r" not in out
    assert "epoch 1/1 loss" in out


@pytest.mark.parametrize("at_epoch", [1, 2])
def test_ctrl_c_names_the_run(tmp_path, capsys, monkeypatch, at_epoch):
    from adamixup.train import Trainer

    original = Trainer.train_epoch

    def interrupted(self):
        if self.epoch + 1 == at_epoch:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    run = tmp_path / "runs" / "r"
    argv = ["train", *TINY, "--epochs", "2", "--method", "erm", "--run-dir", str(run)]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    if at_epoch == 1:  # nothing to resume: nothing kept
        assert err == f"adamixup: interrupted before the run's first checkpoint; nothing of {run} was kept"
        assert not (tmp_path / "runs").exists()
    else:
        assert err == f"adamixup: interrupted; continue the run with: adamixup train --resume {run}"
        assert (run / "checkpoints" / "last.pt").is_file()
        monkeypatch.setattr(Trainer, "train_epoch", original)
        assert main(["train", "--resume", str(run)]) == 0
        assert "after 2 epochs" in capsys.readouterr().out


def test_torn_metrics_line_is_dropped_with_a_warning(good_run, tmp_path, capsys):
    run = copy_run(good_run, tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is torn and is dropped" in err
    epochs = [yaml.safe_load(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_divergence_warns_and_can_stop(tmp_path, capsys):
    argv = ["train", *TINY, "--epochs", "2", "--method", "erm", "--set", "lr=1e3"]
    assert main([*argv, "--run-dir", str(tmp_path / "warned")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the run is diverging" in err
    metrics = (tmp_path / "warned" / "metrics.jsonl").read_text()
    assert "Infinity" not in metrics and "NaN" not in metrics
    assert main([*argv, "--run-dir", str(tmp_path / "stopped"), "--stop-on-divergence"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged" in err and "Traceback" not in err
    # stopped after its first epoch, with a checkpoint: the folder is kept and resumable
    assert (tmp_path / "stopped" / "checkpoints" / "last.pt").is_file()


def test_error_line_is_one_line_for_any_exception():
    from adamixup.cli import error_line
    from adamixup.data import DataError

    worker = OSError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                     '  File "x.py", line 1, in f\n    raise OSError(...)\nOSError: image file x.jpg is truncated\n')
    assert error_line(worker) == "adamixup: error: image file x.jpg is truncated"
    assert error_line(DataError("file a.bin\nis short")) == "adamixup: error: file a.bin is short"
    line = error_line(RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB"))
    assert line.startswith("adamixup: error: unexpected RuntimeError: CUDA out of memory.") and "\n" not in line
