"""Run a study plan and write its report into ``benchmarks/results`` — a thin wrapper of
``adamixup.study`` (the home of plans, the ledger, the statistics and the reports; issue 15).

    python benchmarks/reproduce.py                        # digits-controls: train what its ledger lacks, then report
    python benchmarks/reproduce.py mnist5k-controls --workers 2 --threads 1
    python benchmarks/reproduce.py --quick                # the quick plan (about 2 min), report reproduce_quick.md
    python benchmarks/reproduce.py --plan                 # what is left, and a time estimate from the ledger
    python benchmarks/reproduce.py --report-only          # the report from the ledger alone
    python benchmarks/reproduce.py --intrusion            # keep the run folders and measure manifold intrusion
                                                          # (benchmarks/intrusion.py) on the first fold and seed

The same as ``adamixup study run PLAN`` then ``adamixup study report PLAN --out benchmarks/results``. The
ledger (one record per finished run) is ``runs/studies/<plan>/ledger`` unless ``--ledger`` says otherwise;
rerunning the command resumes the study. The reports of the issue-6 script that the README quotes
(``reproduce.md``, ``phi_cpu.md``, ...) stay in ``benchmarks/results`` as they were written.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import List, Optional, Sequence

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan_name", nargs="?", default=None, metavar="PLAN",
                   help="a shipped plan (adamixup study plans) or a YAML file (default digits-controls; quick with --quick)")
    p.add_argument("--quick", action="store_true", help="the quick plan, reported as reproduce_quick")
    p.add_argument("--ledger", action="append", metavar="DIR", help="ledger folder(s) (default runs/studies/<plan>/ledger)")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel, each in a spawned process (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run process")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--results-dir", default=str(RESULTS), help="where the report goes (default benchmarks/results)")
    p.add_argument("--name", default=None, help="report file stem (default: the plan's name; reproduce_quick with --quick)")
    p.add_argument("--plan", action="store_true", help="print what is left and a time estimate, then stop")
    p.add_argument("--report-only", action="store_true", help="train nothing; write the report from the ledger")
    p.add_argument("--intrusion", action="store_true",
                   help="keep run folders under runs/studies/<plan>/runs and measure manifold intrusion on the first "
                        "fold and seed of every data set (only runs trained with this flag have folders)")
    p.add_argument("--intrusion-pairs", type=int, default=2000, help="mixed pairs per run for the intrusion measure")
    p.add_argument("--runs-dir", default=None, help="where --intrusion keeps the run folders (default runs/studies/<plan>/runs)")
    return p


def _intrusion():
    spec = importlib.util.spec_from_file_location("adamixup_bench_intrusion", HERE / "intrusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from adamixup.study import Ledger, StudyError, expand, format_status, load_plan, plan_status, run_plan, write_report
    from adamixup.study.runner import default_ledger

    try:
        plan = load_plan(args.plan_name or ("quick" if args.quick else "digits-controls"))
        name = args.name or ("reproduce_quick" if args.quick else plan.name)
        ledger = Ledger(args.ledger or [default_ledger(plan)])
        runs = expand(plan)
        print(format_status(plan_status(plan, ledger, runs), workers=args.workers), flush=True)
        if args.plan:
            return 0
        runs_root = Path(args.runs_dir) if args.runs_dir else Path("runs") / "studies" / plan.name / "runs"
        failed: List[dict] = []
        if not args.report_only:
            result = run_plan(plan, ledger, workers=args.workers, threads=args.threads, device=args.device,
                              keep_runs=runs_root if args.intrusion else None, runs=runs)
            failed = result["failed"]
        command = "python benchmarks/reproduce.py" + "".join(f" {a}" for a in argv)
        analysis = write_report(plan, ledger, args.results_dir, name=name, command=command, runs=runs)
    except StudyError as err:
        print(f"reproduce.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if args.intrusion and runs_root.is_dir():
        intrusion = _intrusion()
        first = runs[0]
        groups = intrusion.find_groups(runs_root, list(plan.datasets), first.fold or 0, first.seed)
        if groups:
            device = args.device if args.device.startswith("cuda") else "cpu"
            iname = f"{name}_intrusion"
            intrusion.measure_and_report(groups, Path(args.results_dir), iname, pairs=args.intrusion_pairs, device=device,
                                         command=command)
            print(f"wrote {Path(args.results_dir) / (iname + '.md')}", flush=True)
    cov = analysis["coverage"]
    print(f"wrote {Path(args.results_dir) / (name + '.md')} ({cov['done']} of {cov['planned']} planned runs)", flush=True)
    for f in failed:
        print(f"{f['key']} failed: {f['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} run(s) failed; rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
