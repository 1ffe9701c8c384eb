"""A run is what it says (issue 30): checkpoints tied to their run, clean one-line warnings, nothing
left behind by an interrupted comparison, and the settings worth a warning."""
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import yaml

from adamixup.cli import main

TINY = ["--dataset", "digits", "--epochs", "1", "--quiet", "--set", "train_fraction=0.1", "--set", "batch_size=32",
        "--set", "model_args.width=4", "--set", "train_eval_samples=50"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a", root / "b"
    assert main(["train", *TINY, "--method", "erm", "--run-dir", str(a)]) == 0
    assert main(["train", *TINY, "--method", "erm", "--seed", "1", "--run-dir", str(b)]) == 0
    return a, b


def test_every_checkpoint_names_its_run(two_runs):
    a, b = two_runs
    ids = [yaml.safe_load((run / "config.yaml").read_text())["run_id"] for run in (a, b)]
    assert ids[0] != ids[1] and all(len(i) >= 12 for i in ids)
    for run, run_id in zip((a, b), ids):
        for name in ("last", "best"):
            ckpt = torch.load(run / "checkpoints" / f"{name}.pt", weights_only=True)
            assert ckpt["run_id"] == run_id and ckpt["config"]["seed"] == (0 if run == a else 1)


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_another_runs_checkpoint_is_refused_and_the_run_is_untouched(two_runs, tmp_path, capsys, command):
    a, b = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    shutil.copy(b / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    before = _snapshot(run)
    argv = ["evaluate", str(run)] if command == "evaluate" else ["train", "--resume", str(run), "--epochs", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    b_id = yaml.safe_load((b / "config.yaml").read_text())["run_id"]
    assert err.count("\n") == 0 and "belongs to run " + b_id in err and str(b) in err, err
    assert _snapshot(run) == before  # nothing written: no metrics line, no summary, no config change


def test_a_resumed_run_keeps_its_id_and_its_own_checkpoints_load(two_runs, tmp_path):
    a, _ = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    run_id = yaml.safe_load((run / "config.yaml").read_text())["run_id"]
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0  # --epochs changes config.yaml: still its run
    assert yaml.safe_load((run / "config.yaml").read_text())["run_id"] == run_id
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["run_id"] == run_id
    assert main(["evaluate", str(run)]) == 0


def test_warnings_are_one_clean_line():
    """A warning raised while a command runs (a stale study record's StudyWarning, a library's) is one
    ``adamixup: warning:`` line, without Python's ``file:line: Category:`` and source echo."""
    code = ("import sys, warnings; from adamixup import cli; from adamixup.study import StudyWarning\n"
            "def noisy(args):\n"
            "    warnings.warn('ledger record r.json: stale,\\n  not reused', StudyWarning)\n"
            "    warnings.warn('a library speaks', UserWarning)\n"
            "    return 0\n"
            "cli.COMMANDS['methods'] = noisy\n"
            "sys.exit(cli.main(['methods']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == ["adamixup: warning: ledger record r.json: stale, not reused",
                                       "adamixup: warning: a library speaks"], res.stderr


def test_an_interrupted_comparison_leaves_nothing(tmp_path, monkeypatch, capsys):
    from adamixup.study import runner

    def interrupted(*args, **kwargs):
        (tmp_path / "cmp" / "ledger").mkdir(parents=True, exist_ok=True)
        (tmp_path / "cmp" / "run.log").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_plan", interrupted)
    assert main(["compare", *TINY, "--methods", "erm", "--seeds", "1", "--out", str(tmp_path / "cmp")]) == 130
    assert not (tmp_path / "cmp").exists()
    # a folder that was there before keeps what it held, and loses only what the comparison added
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "notes.txt").write_text("mine")
    assert main(["compare", *TINY, "--methods", "erm", "--seeds", "1", "--out", str(tmp_path / "cmp")]) == 130
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["notes.txt"]


def test_settings_worth_a_warning(capsys):
    from adamixup.classify import build_config
    from adamixup.reid.task import build_config as reid_config

    with pytest.warns(UserWarning, match="mnist5k ships with the package: data_root /somewhere is not read"):
        config = build_config("mnist5k", {"data_root": "/somewhere"})
    assert config.data_root is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reid_config("bot", {"pretrained": "none", "dataset": "generic"}).pretrained is None


def test_fp16_on_a_cpu_is_warned_about(tmp_path, capsys):
    assert main(["train", *TINY, "--method", "erm", "--precision", "fp16", "--device", "cpu",
                 "--run-dir", str(tmp_path / "r")]) == 0
    assert "fp16 autocast on a CPU is far slower" in capsys.readouterr().err


def test_an_interrupted_study_report_leaves_nothing(tmp_path, monkeypatch):
    from adamixup.study import report

    def interrupted(plan, ledger, out, **kwargs):
        out = tmp_path / "rep"
        out.mkdir(parents=True, exist_ok=True)
        (out / "quick.md").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    (tmp_path / "ledger").mkdir()
    assert main(["study", "report", "quick", "--ledger", str(tmp_path / "ledger"), "--out", str(tmp_path / "rep")]) == 130
    assert not (tmp_path / "rep").exists()
