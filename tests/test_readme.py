"""The README's two commands stay true: CI runs the README's test command, and the main job's CLI parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "pge-sam segment" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for part in readme_commands()[1].split("&&"):
        assert part.strip() in ci, f"CI does not run {part.strip()!r} from the README"


def test_main_job_arguments_parse():
    from pge_sam.cli import build_parser

    main_job = readme_commands()[0].split("&&")[1].strip()
    argv = shlex.split(main_job)[1:]  # drop the program name
    args = build_parser().parse_args(argv)
    assert args.command == "segment" and args.image == "sample:mni_t1"
    assert [kind for kind, _ in args.actions] == ["point", "propagate"]
