"""The house's rules, checked on the code's own imports (every import, lazy ones inside functions too):
no cycles between modules; arrows point down (cli -> study -> {classify, reid} -> train -> {mixing,
models, data, plots}); no task imports another task; train/ is the engine and imports no task;
data/ holds no re-ID code."""
import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "adamixup"

# top-level part -> the parts its modules may import (besides themselves)
ALLOWED = {
    "cli": {"study", "classify", "reid", "train", "mixing", "models", "data", "plots", "__init__"},
    "__main__": {"cli"},
    "__init__": {"mixing", "models", "data", "train", "classify", "reid", "study", "plots"},
    "study": {"classify", "reid", "train", "mixing", "models", "data", "plots"},  # a plan runs classification or re-ID runs
    "classify": {"train", "mixing", "models", "data", "plots"},  # a task: never the other task
    "reid": {"train", "mixing", "models", "data", "plots"},
    "train": {"mixing", "models", "data", "plots"},  # the engine: no task
    "mixing": {"models"},
    "models": set(),
    "data": set(),
    "plots": set(),
}
TASKS = ("classify", "reid")


def module_name(path: Path) -> str:
    parts = ["adamixup", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def imports_of(path: Path, modules: Set[str]) -> Set[str]:
    """The package's modules that ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from .x import y" may import the module x.y, or the name y of x
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def test_no_import_cycles(graph):
    state: Dict[str, int] = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_arrows_point_down(graph):
    wrong = [f"{m} -> {n}" for m, targets in graph.items() for n in targets
             if part(n) != part(m) and part(n) not in ALLOWED[part(m)]]
    assert not wrong, "imports against the layering: " + "; ".join(sorted(wrong))


def test_no_task_imports_another_and_both_use_the_engine(graph):
    wrong = [f"{m} -> {n}" for m, targets in graph.items() if part(m) in TASKS
             for n in targets if part(n) in TASKS and part(n) != part(m)]
    assert not wrong, "; ".join(wrong)
    for task in TASKS:  # the rule is exercised: each task stands on the engine
        assert any(part(n) == "train" for m, t in graph.items() if part(m) == task for n in t), task


def test_train_holds_the_engine_only():
    names = {p.stem for p in (PACKAGE / "train").glob("*.py")}
    assert not names & {"classification", "reid", "task"}, names


def test_both_tasks_answer_the_same_verbs():
    import inspect

    from adamixup import classify
    from adamixup.reid import task as reid

    for verb in ("train", "resume", "evaluate", "load", "build_config", "config_from_dict", "list_recipes"):
        a, b = getattr(classify, verb), getattr(reid, verb)
        shared = [p for p in inspect.signature(a).parameters][:2]
        assert shared == [p for p in inspect.signature(b).parameters][:2], verb
    assert hasattr(reid, "export")


def test_data_holds_no_reid_code(graph):
    data_files = [p.name for p in (PACKAGE / "data").glob("*.py")]
    assert not [f for f in data_files if "reid" in f or "sampler" in f], data_files
    assert not [m for m in graph if part(m) == "data" and any(part(n) == "reid" for n in graph[m])]
    for p in (PACKAGE / "data").glob("*.py"):
        text = p.read_text().lower()
        assert "re-identification" not in text and "pk sampler" not in text, p


def test_the_walk_sees_real_edges(graph):
    """The checks above mean something only if the walk finds the imports that exist."""
    assert "adamixup.train.engine" in graph["adamixup.reid.task"]
    assert "adamixup.train.engine" in graph["adamixup.classify.task"]
    assert "adamixup.models.base" in graph["adamixup.mixing.base"]
    assert "adamixup.mixing.registry" in graph["adamixup.mixing"]


def test_pictures_leave_matplotlibs_backend_alone(tmp_path):
    """Importing the package and drawing a picture neither switches the backend a notebook chose
    nor goes through pyplot."""
    import subprocess
    import sys

    code = f"""
import sys, matplotlib
matplotlib.use("svg")
import adamixup.classify, adamixup.reid.task, adamixup.study.report, adamixup.plots as p
fig, ax = p.figure()
ax.plot([0, 1])
p.save_figure(fig, {str(tmp_path / 'x.png')!r})
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "x.png").stat().st_size > 1000
