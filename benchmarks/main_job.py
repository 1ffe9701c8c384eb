"""Where the main job's time goes: `adamixup train` (AdaMixUp on mnist5k, 15 epochs), phase by phase.

    python benchmarks/main_job.py                   # about 2-4 minutes on an idle 2-core machine
    python benchmarks/main_job.py --set channels_last=true --name main_job_channels_last

Runs the job twice on the same machine: once as a user does (`adamixup train` in a fresh process, wall
time from start to exit) and once in this process under cProfile, whose cumulative times split it into
start-up (imports), data, the training steps, evaluation, pictures and checkpoints. Writes
``benchmarks/results/<name>.md`` with the final test error of both runs (they must agree: the same
seed gives the same run).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = {  # phase -> (module file suffix, function name) whose cumulative time it is
    "data (read mnist5k, split, move to tensors)": ("classify/task.py", "load_data"),
    "training steps (mixer, backward, optimizer)": ("train/engine.py", "train_epoch"),
    "evaluation (test and train error each epoch)": ("classify/task.py", "evaluate"),
    "pictures (learning curves, λ, mixed samples)": ("classify/task.py", "plots"),
    "checkpoints (last.pt, best.pt)": ("train/rundir.py", "save_checkpoint"),
}


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(v[3] for (file, _, func), v in stats.stats.items() if file.endswith(suffix) and func == name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to adamixup train")
    p.add_argument("--name", default="main_job")
    args = p.parse_args()
    sets = [a for kv in args.set for a in ("--set", kv)]
    out = Path(__file__).parent / "results" / f"{args.name}.md"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "adamixup", "train", "--quiet", "--run-dir", f"{tmp}/cli", *sets], check=True)
        wall = time.perf_counter() - start
        cli_summary = json.loads(Path(f"{tmp}/cli/summary.json").read_text())

        start = time.perf_counter()
        imports = cProfile.Profile()
        imports.enable()
        from adamixup.cli import main as cli_main
        from adamixup.classify import task  # noqa: F401  the task's imports, as the first train call makes them
        imports.disable()
        import_seconds = time.perf_counter() - start
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        cli_main(["train", "--quiet", "--run-dir", f"{tmp}/prof", *sets])
        prof.disable()
        inside = time.perf_counter() - start
        summary = json.loads(Path(f"{tmp}/prof/summary.json").read_text())
    stats = pstats.Stats(prof)
    rows = [(phase, cumulative(stats, *where)) for phase, where in PHASES.items()]
    rest = inside - sum(s for _, s in rows)
    lines = [f"# The main job: where its time goes ({args.name})", "",
             f"Command: `python benchmarks/main_job.py{''.join(' --set ' + s for s in args.set)} --name {args.name}`; "
             f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}, {os.cpu_count()} CPUs.", "",
             f"- `adamixup train{''.join(' --set ' + s for s in args.set)}` in a fresh process: **{wall:.1f} s** from start to exit, "
             f"final test error {cli_summary['final_test_error']:.2f} % after {cli_summary['epochs_done']} epochs.",
             f"- The same job in-process under cProfile (profiling slows Python-heavy code a little): {inside:.1f} s, "
             f"final test error {summary['final_test_error']:.2f} %; start-up imports measured apart: {import_seconds:.1f} s.", "",
             "| phase | seconds | share of the in-process run |", "|---|---:|---:|"]
    lines += [f"| {phase} | {sec:.1f} | {100 * sec / inside:.0f} % |" for phase, sec in rows]
    lines += [f"| the rest (building the model and mixer, the run folder, bookkeeping) | {rest:.1f} | {100 * rest / inside:.0f} % |",
              f"| start-up imports (before the run; not in the in-process total) | {import_seconds:.1f} | — |"]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
