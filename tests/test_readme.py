"""The README's and docs/' examples run as written: every Python block runs, every `adamixup ...`
command parses and its config is valid, every local link points at a file that exists, and each page
stays within its size."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]


def blocks(path: Path, language: str):
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_blocks_run(capsys):
    code = blocks(README, "python")
    assert code, "the README shows no Python example"
    for block in code:
        exec(compile(block, str(README), "exec"), {})
    assert "λ mean" in capsys.readouterr().out


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_python_blocks_run(page):
    for block in blocks(page, "python"):
        exec(compile(block, str(page), "exec"), {})


def commands(path: Path):
    """Every ``adamixup ...`` line of a page's bash blocks, without its comment."""
    import shlex

    for block in blocks(path, "bash"):
        block = re.sub(r"\\\n\s*", " ", block)  # continuation lines: one command
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("adamixup "):
                yield [t.strip("[]") for t in shlex.split(line)[1:]]


def readme_commands():
    return commands(README)


def test_readme_and_docs_commands_parse_and_their_configs_are_valid():
    from adamixup.cli import _config, build_parser

    parser = build_parser()
    every = [argv for page in PAGES for argv in commands(page)]
    assert len(list(readme_commands())) >= 10 and len(every) > len(list(readme_commands()))
    for argv in every:
        args = parser.parse_args(argv)  # an unknown flag would exit here
        if args.command in ("train", "compare") and not getattr(args, "resume", None):
            _config(args)  # raises ConfigError for a value the page gets wrong


def test_local_links_exist():
    missing = []
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).resolve().exists():
                missing.append(f"{page.name}: {target}")
    assert missing == []


def test_pages_stay_short():
    long = [f"{p.name}: {len(p.read_text().splitlines())}" for p in PAGES if len(p.read_text().splitlines()) > 250]
    assert not long, long
