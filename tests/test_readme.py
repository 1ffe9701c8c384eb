"""The README's Python examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README shows no Python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    assert "λ mean" in capsys.readouterr().out


def readme_commands():
    """Every ``adamixup ...`` line of the README's bash blocks, without its comment."""
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    for block in blocks:
        block = re.sub(r"\\\n\s*", " ", block)  # continuation lines: one command
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("adamixup "):
                yield [t.strip("[]") for t in shlex.split(line)[1:]]


def test_readme_commands_parse_and_their_configs_are_valid():
    from adamixup.cli import _config, build_parser

    parser = build_parser()
    commands = list(readme_commands())
    assert len(commands) >= 10
    for argv in commands:
        args = parser.parse_args(argv)  # an unknown flag would exit here
        if args.command in ("train", "compare") and not getattr(args, "resume", None):
            _config(args)  # raises ConfigError for a value the README gets wrong

