"""``adamixup study``: run, report and inspect a study plan.

    adamixup study run quick --parallel 2 --threads 1        # train what the ledger lacks (rerun = resume)
    adamixup study run digits-controls --dry-run             # what is left, and how long it may take
    adamixup study status digits-controls                    # the same, per data set and method
    adamixup study report digits-controls --out benchmarks/results
    adamixup study report cifar10s-cpu --ledger ledger-cpu --ledger ledger-gpu   # records of two machines

Wiring into the main parser: ``add_parser(subparsers)`` then ``run(args)`` for ``args.command == "study"``.
Nothing heavy is imported until a command runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional

DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else ""


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="a plan: a shipped plan's name (adamixup study plans) or a YAML file")
    p.add_argument("--ledger", action="append", metavar="DIR",
                   help="ledger folder (default runs/studies/<plan>/ledger); repeat it to read the records of several "
                        "folders together (new records go into the first)")


def _only_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", action="append", metavar="PATTERN",
                   help="only the runs whose key (DATASET/METHOD/FOLD-SEED, e.g. cuhk01/a6-mixup/fold1-seed0) matches "
                        "this shell-style pattern, e.g. 'cuhk01/a6-*/fold2-*'; repeat it for several (default: all). "
                        "A subset keeps the plan's run identities: its records count for the whole plan")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``study`` and its commands to ``subparsers`` (the main parser's ``add_subparsers()``)."""
    study = subparsers.add_parser("study", help="run a study plan, report it from its ledger, or show how far it is",
                                  description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = study.add_subparsers(dest="study_command", metavar="STUDY_COMMAND", help="run, report, status or plans")
    sub.required = True

    p = sub.add_parser("run", help="train the plan's runs that the ledger lacks (rerun the command to resume)")
    _plan_args(p)
    p.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="runs in parallel, each in its own spawned process (default 1)")
    p.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)  # the old name of --parallel, for one release
    p.add_argument("--threads", type=int, default=None, help="torch threads per run process (default: torch's own)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps; not part of a run's identity")
    p.add_argument("--keep-runs", metavar="DIR", help="keep finished run folders (checkpoints, plots) under "
                                                      "DIR/<dataset>/<method>/<fold-seed> instead of deleting them")
    p.add_argument("--dry-run", action="store_true", help="only list what is left and an estimate of the time")
    p.add_argument("--out", metavar="DIR", help="write the report into DIR when the runs are done")
    p.add_argument("--report", metavar="DIR", help=argparse.SUPPRESS)  # the old name of --out, for one release
    _only_arg(p)

    p = sub.add_parser("report", help="rebuild the report (markdown, JSON, plots) from the ledger alone")
    _plan_args(p)
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/studies/<plan>/report)")
    p.add_argument("--name", help="file name stem of the report (default: the plan's name)")
    p.add_argument("--no-plots", action="store_true", help="markdown and JSON only")

    p = sub.add_parser("status", help="runs done and left per data set and method, stale or unreadable records, time left")
    _plan_args(p)
    p.add_argument("--parallel", type=int, default=None, metavar="N", help="for the estimate: runs that would train in parallel")
    p.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    _only_arg(p)

    sub.add_parser("plans", help="list the shipped plans")
    return study


def _renamed(args: argparse.Namespace, old: str, new: str, default: Any) -> None:
    """An old flag name: accepted for one release, with a note (``--workers`` means DataLoader workers
    elsewhere; a command's output folder is ``--out`` everywhere)."""
    from .errors import StudyError

    value = getattr(args, old, None)
    if value is not None:
        if getattr(args, new, None) is not None:
            raise StudyError(f"--{old} is the old name of --{new}; give only --{new}")
        print(f"adamixup: note: --{old} is now --{new} here; --{old} goes in the next release", file=sys.stderr)
        setattr(args, new, value)
    if hasattr(args, new) and getattr(args, new) is None:
        setattr(args, new, default)


def _ledger(plan, args):
    from .ledger import Ledger
    from .runner import default_ledger

    return Ledger(args.ledger or [default_ledger(plan)])


def run(args: argparse.Namespace) -> int:
    """Carry out ``adamixup study ...``; errors are one-sentence :class:`~adamixup.study.StudyError` s."""
    from .errors import StudyError

    command = args.study_command
    if command == "plans":
        from .plan import list_plans, load_plan

        for name in list_plans():
            plan = load_plan(name)
            print(f"{name:<20} {plan.description}")
        return 0
    from .plan import expand, load_plan

    plan = load_plan(args.plan)
    if command == "report":  # a report of a ledger that is not there would be an empty one
        from .runner import default_ledger

        for folder in args.ledger or [default_ledger(plan)]:
            if not Path(folder).is_dir():
                raise StudyError(f"ledger folder {folder} {'is a file' if Path(folder).exists() else 'does not exist'}; "
                                 f"`adamixup study run {args.plan}` fills one (or name it with --ledger DIR)")
    ledger = _ledger(plan, args)
    _renamed(args, "workers", "parallel", 1)
    _renamed(args, "report", "out", None)
    if getattr(args, "parallel", 1) < 1:
        raise StudyError(f"--parallel must be at least 1, got {args.parallel}")
    runs = expand(plan)
    only = getattr(args, "only", None)
    if command == "status" or (command == "run" and args.dry_run):
        from .runner import format_status, plan_status

        print(format_status(plan_status(plan, ledger, runs, only=only), workers=args.parallel))
        return 0
    if command == "run":
        from .runner import run_plan

        subset = f" (only those matching {', '.join(only)})" if only else ""
        print(f"plan {plan.name}: {len(runs)} runs{subset}; ledger {ledger.folder}", flush=True)
        result = run_plan(plan, ledger, workers=args.parallel, threads=args.threads, device=args.device,
                          keep_runs=args.keep_runs, runs=runs, only=only)
        print(f"{result['trained']} run(s) trained now, {result['done_before']} were in the ledger, "
              f"{len(result['failed'])} failed", flush=True)
        for f in result["failed"]:
            print(f"{f['key']} failed: {f['error']}" + (f" (its log: {f['log']})" if f.get("log") else ""), file=sys.stderr)
        if args.out:
            _report(plan, ledger, args.out, None, True, runs)
        if result["failed"]:
            print(f"{len(result['failed'])} run(s) failed; run the same command again to retry them", file=sys.stderr)
            return 1
        return 0
    if command == "report":
        out = args.out or str(Path("runs") / "studies" / plan.name / "report")
        _report(plan, ledger, out, args.name, not args.no_plots, runs)
        return 0
    raise StudyError(f"unknown study command {command!r}")


def _report(plan, ledger, out, name, plots, runs) -> None:
    from .errors import StudyError
    from .report import write_report

    if Path(out).exists() and not Path(out).is_dir():
        raise StudyError(f"--out {out} is a file; name a folder for the report")
    command = f"adamixup study report {plan.source}" + "".join(f" --ledger {d}" for d in ledger.folders) + f" --out {out}"
    from ..train.rundir import leaves_nothing_new

    with leaves_nothing_new(out):  # an interrupted report leaves no half of its files
        analysis = write_report(plan, ledger, out, name=name, plots=plots, runs=runs, command=command)
    cov = analysis["coverage"]
    path = Path(out) / f"{name or plan.name}.md"
    print(f"wrote {path} ({cov['done']} of {cov['planned']} planned runs" + (", a partial report" if cov["partial"] else "")
          + ")", flush=True)
    notes = [f"{len(cov[k])} {what}" for k, what in (("problems", "unreadable record(s) skipped"),
                                                     ("stale", "stale record(s) not used"),
                                                     ("duplicates", "run(s) with duplicate records"))
             if cov[k]]
    if notes:
        print(f"ledger: {', '.join(notes)} (listed in the report)", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m adamixup.study.cli ...`` until the main CLI has the ``study`` command."""
    parser = argparse.ArgumentParser(prog="adamixup")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if args.command != "study":
        parser.print_help()
        return 2
    try:
        return run(args)
    except ValueError as err:  # StudyError and the trainer's ConfigError: one sentence
        print(f"adamixup: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nadamixup: interrupted; run the same command again to resume (finished runs are in the ledger)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
