"""Two processes with the gloo backend on the CPU: disjoint shards, identical parameters, one run directory."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from adamixup.classify import build_config, resume, train
from adamixup.train import RunDir, Trainer, TrainingError
from adamixup.train import distributed as dist
from adamixup.classify.task import ClassificationTask

pytestmark = pytest.mark.slow  # several processes

CFG = {"dataset": "digits", "epochs": 2, "batch_size": 32, "model_args": {"width": 4}, "quiet": True,
       "train_eval_samples": 100, "mixer_args": {"policy": "light"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, world, port, run_dir, out_dir, stop_after, do_resume):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    seen = []
    original = ClassificationTask.shard

    def recording(self, generator):  # record the sample indices this rank trains on
        for idx in original(self, generator):
            seen.append(idx.tolist())
            yield idx

    ClassificationTask.shard = recording
    if do_resume:
        resume(run_dir)
    else:
        train(build_config("digits", CFG), run_dir, stop_after=stop_after)
    with open(os.path.join(out_dir, f"seen{rank}-{int(do_resume)}.json"), "w") as f:
        json.dump(seen, f)
    dist.cleanup()


def run_ranks(tmp_path, run_dir, stop_after=None, do_resume=False):
    mp.spawn(worker, args=(2, free_port(), str(run_dir), str(tmp_path), stop_after, do_resume), nprocs=2, join=True)


def refused_worker(rank, world, port, run_dir, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(build_config("digits", CFG), run_dir)
        outcome = "trained"
    except TrainingError as err:
        outcome = str(err)
    with open(os.path.join(out_dir, f"refused{rank}.txt"), "w") as f:
        f.write(outcome)
    dist.cleanup()


def test_a_folder_refused_on_rank_0_stops_every_rank(tmp_path):
    taken = tmp_path / "taken"
    (taken / "checkpoints").mkdir(parents=True)
    (taken / "checkpoints" / "last.pt").write_bytes(b"")  # holds a run already
    ctx = mp.start_processes(refused_worker, args=(2, free_port(), str(taken), str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 300  # before the fix, rank 1 waited at the next collective for ever
    while not ctx.join(timeout=5) and time.monotonic() < deadline:  # join returns when one process ends
        pass
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank is still waiting"
    for rank in (0, 1):
        assert "already holds a run" in (tmp_path / f"refused{rank}.txt").read_text()


def test_two_process_training_shards_and_sync(tmp_path):
    run = tmp_path / "ddp"
    run_ranks(tmp_path, run, stop_after=1)
    run_ranks(tmp_path, run, do_resume=True)
    for phase in (0, 1):
        s0 = json.loads((tmp_path / f"seen0-{phase}.json").read_text())
        s1 = json.loads((tmp_path / f"seen1-{phase}.json").read_text())
        assert len(s0) == len(s1) > 0 and all(len(b) == 16 for b in s0 + s1)  # 32 split over 2 ranks
        a = {i for b in s0 for i in b}
        b = {i for b in s1 for i in b}
        assert not a & b, "the ranks trained on overlapping samples"
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt",
              "plots/learning_curves.png", "plots/lambda_distribution.png"):
        assert (run / f).is_file(), f
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]  # one writer: no duplicated lines
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"]


def _param_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.setup()
    cfg = build_config("digits", {**CFG, "epochs": 1, "run_dir": None})
    t = Trainer(cfg, RunDir(os.path.join(out_dir, "unused")), ClassificationTask)
    t.train_epoch()
    params = torch.cat([p.detach().flatten() for p in list(t.task.model.parameters()) + list(t.task.mixer.parameters())])
    torch.save(params, os.path.join(out_dir, f"params{rank}.pt"))
    dist.cleanup()


def test_parameters_identical_across_ranks_after_training(tmp_path):
    mp.spawn(_param_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    p0 = torch.load(tmp_path / "params0.pt")
    p1 = torch.load(tmp_path / "params1.pt")
    assert torch.equal(p0, p1)
    assert p0.numel() > 1000  # model, π and φ all compared


def test_torchrun_command_of_the_readme(tmp_path):
    run = tmp_path / "torchrun-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "adamixup", "train", "--dataset", "digits", "--epochs", "1", "--quiet", "--run-dir", str(run),
           "--set", "model_args.width=4", "--set", "mixer_args.policy=light", "--batch-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "summary.json").is_file()
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
