"""Studies: a YAML plan of runs (data sets × methods × folds or splits × seeds), a ledger that keeps
one record per finished run, the runner that trains what the ledger lacks, the statistics of paired
runs, and the report rebuilt from the ledger alone.

    from adamixup.study import load_plan, expand, run_plan, write_report
    plan = load_plan("quick")                 # a shipped plan (recipes/studies/quick.yaml) or a path
    run_plan(plan, "runs/studies/quick/ledger", workers=2, threads=1)
    write_report(plan, "runs/studies/quick/ledger", "runs/studies/quick/report")

Nothing heavy is imported with this package (``adamixup --help`` stays fast): the names below load
their module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import StudyError, StudyWarning

_EXPORTS = {
    "Plan": "plan", "Run": "plan", "load_plan": "plan", "parse_plan": "plan", "expand": "plan", "config_for": "plan",
    "list_plans": "plan", "config_identity": "plan", "identity_hash": "plan",
    "Ledger": "ledger", "write_record": "ledger", "read_records": "ledger", "match_records": "ledger",
    "make_record": "ledger", "machine_info": "ledger",
    "run_plan": "runner", "plan_status": "runner", "format_status": "runner", "default_ledger": "runner",
    "analyse": "report", "render_markdown": "report", "write_report": "report",
    "compare": "comparison", "table_markdown": "comparison", "compare_plan": "comparison",
}

__all__ = ["StudyError", "StudyWarning", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adamixup.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
